//! `tiers.evaluate` (admin), `account.tier_history`, and the daily tier
//! job: levels re-evaluated at 00:05 programme time, each change published
//! as `account.tier_changed`.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, Time, UtcOffset};
use tokio_util::sync::CancellationToken;

use crate::api::errors::tier_error;
use crate::api::rpc::{self, RpcError};
use crate::app::App;
use crate::ledger::rules::Programme;
use crate::ledger::tiers::{TierChange, Tiers};

/// The most changes one `account.tier_history` call returns.
const HISTORY_MAX_LIMIT: u32 = 500;

fn programme(app: &App) -> Arc<Programme> {
    // The ledger's programme: fixed at start, like the rest of it.
    Arc::new(app.ledger.programme().clone())
}

/// Publishes each change as `account.tier_changed`.
fn publish(app: &App, changes: &[TierChange]) {
    for ch in changes {
        tracing::info!(account = ch.account, from = %ch.from, to = %ch.to, reason = %ch.reason, trigger = %ch.trigger, "tier changed");
        publish_one(app, ch);
    }
}

/// Publishes one change as `account.tier_changed` (also used by
/// `sale.commit`).
pub(crate) fn publish_one(app: &App, ch: &TierChange) {
    app.bus.publish(
        "account.tier_changed",
        json!({
            "account": ch.account,
            "from": ch.from,
            "to": ch.to,
            "reason": ch.reason,
            "trigger": ch.trigger,
            "at": ch.at,
        }),
    );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvaluateParams {
    account: Option<i64>,
    /// Evaluate as of this time (RFC 3339) instead of now: for back-dated
    /// runs and tests. Changes are stamped with it.
    at: Option<String>,
}

pub(super) async fn evaluate(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: EvaluateParams = rpc::params(params.or_else(|| Some(json!({}))))?;
    let now = match &p.at {
        None => OffsetDateTime::now_utc(),
        Some(s) => OffsetDateTime::parse(s, &Rfc3339)
            .map_err(|e| RpcError::invalid_params("at", format!("not RFC 3339: {e}")))?,
    };
    let (evaluated, changes) = app
        .ledger
        .evaluate_tiers(p.account, now)
        .await
        .map_err(tier_error)?;
    publish(app, &changes);
    Ok(json!({ "evaluated": evaluated, "changes": changes }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryParams {
    account: i64,
    limit: Option<u32>,
}

pub(super) async fn history(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: HistoryParams = rpc::params(params)?;
    let limit = p.limit.unwrap_or(50);
    if !(1..=HISTORY_MAX_LIMIT).contains(&limit) {
        return Err(RpcError::invalid_params(
            "limit",
            format!("1 to {HISTORY_MAX_LIMIT}"),
        ));
    }
    let (view, changes) = app
        .ledger
        .tier_history(p.account, limit, OffsetDateTime::now_utc())
        .await
        .map_err(tier_error)?;
    let mut out = json!({ "account": p.account, "tier": view.tier, "changes": changes });
    if let Some(progress) = view.progress {
        out["tier_progress"] = json!(progress);
    }
    Ok(out)
}

/// Adds `tier` and `tier_progress` to an account's JSON (`account.get`),
/// when the programme has levels.
pub(super) async fn add_tier(
    app: &Arc<App>,
    account: i64,
    out: &mut Value,
) -> Result<(), RpcError> {
    if !app.ledger.programmes().any_tiers() {
        return Ok(());
    }
    let found = app
        .ledger
        .tier_history(account, 1, OffsetDateTime::now_utc())
        .await;
    let (view, _) = match found {
        Ok(v) => v,
        // The account's programme has no levels, or is not this till's.
        Err(crate::ledger::tiers::TierError::NotConfigured)
        | Err(crate::ledger::tiers::TierError::Programme(_)) => return Ok(()),
        Err(e) => return Err(tier_error(e)),
    };
    out["tier"] = json!(view.tier);
    if let Some(progress) = view.progress {
        out["tier_progress"] = json!(progress);
    }
    Ok(())
}

/// The next 00:05 at `offset` strictly after `now`.
pub(super) fn next_run(now: OffsetDateTime, offset: UtcOffset) -> OffsetDateTime {
    let local = now.to_offset(offset);
    let today = local.replace_time(Time::from_hms(0, 5, 0).unwrap_or(Time::MIDNIGHT));
    if today > local {
        today
    } else {
        today.checked_add(Duration::days(1)).unwrap_or(today)
    }
}

/// The daily job: every account re-evaluated at 00:05 programme time until
/// `shutdown`. Does nothing without tiers. It runs where the books are: on
/// a till with the embedded ledger (`tiers` on its store), in the central
/// service for a chain.
pub(crate) async fn daily(app: Arc<App>, tiers: Tiers, shutdown: CancellationToken) {
    // Each programme's accounts by its own levels, on the till's own
    // programme's clock.
    let programmes = app.ledger.programmes();
    if !programmes.any_tiers() {
        return;
    }
    let p = programme(&app);
    let offset = UtcOffset::from_whole_seconds(p.utc_offset_minutes.saturating_mul(60))
        .unwrap_or(UtcOffset::UTC);
    loop {
        let now = OffsetDateTime::now_utc();
        let wait = (next_run(now, offset) - now)
            .try_into()
            .unwrap_or(std::time::Duration::from_secs(60));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let app2 = app.clone();
        let run = tiers.evaluate_in(
            programmes.clone(),
            None,
            OffsetDateTime::now_utc(),
            "daily",
            move |ch| publish(&app2, ch),
        );
        // Stopping mid-run is safe: each batch commits and is announced on
        // its own, and the next run picks up the rest.
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = run => r,
        };
        match result {
            Ok((n, changes)) => {
                tracing::info!(
                    accounts = n,
                    changes = changes.len(),
                    "daily tier evaluation"
                );
            }
            Err(e) => tracing::error!(error = %e, "daily tier evaluation failed"),
        }
    }
}

/// The daily expiry sweep on a till with the embedded ledger: every
/// account's due points posted at 00:05 programme time (stamped with their
/// own expiry), until `shutdown`. Runs whether or not the programme has
/// tiers; a chain's central service runs its own.
pub(crate) async fn expiry_daily(ledger: crate::ledger::Embedded, shutdown: CancellationToken) {
    let offset =
        UtcOffset::from_whole_seconds(ledger.programme().utc_offset_minutes.saturating_mul(60))
            .unwrap_or(UtcOffset::UTC);
    loop {
        let now = OffsetDateTime::now_utc();
        let wait = (next_run(now, offset) - now)
            .try_into()
            .unwrap_or(std::time::Duration::from_secs(60));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        // Each batch commits on its own: stopping midway loses nothing.
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = ledger.expire_all(OffsetDateTime::now_utc()) => r,
        };
        match result {
            Ok(n) => tracing::info!(accounts = n, "daily expiry sweep"),
            Err(e) => tracing::error!(error = %e, "daily expiry sweep failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{datetime, offset};

    #[test]
    fn the_daily_run_is_at_five_past_midnight_programme_time() {
        let msk = offset!(+3);
        // 20:00 UTC = 23:00 Moscow: tonight at 00:05 Moscow = 21:05 UTC.
        assert_eq!(
            next_run(datetime!(2026-03-01 20:00 UTC), msk),
            datetime!(2026-03-01 21:05 UTC)
        );
        // 21:05 UTC exactly: the next day's.
        assert_eq!(
            next_run(datetime!(2026-03-01 21:05 UTC), msk),
            datetime!(2026-03-02 21:05 UTC)
        );
        assert_eq!(
            next_run(datetime!(2026-03-01 21:00 UTC), msk),
            datetime!(2026-03-01 21:05 UTC)
        );
    }
}
