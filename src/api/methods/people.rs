//! The customer as a person (issue 21 items 12c and 13):
//! `bonuses.birthday.run` (admin; the daily job runs it too),
//! `account.consent.set`, `account.consents`, `account.erase` (admin),
//! and the daily birthday job of a till with the embedded ledger.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::UtcOffset;
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;

use crate::api::errors::{account_error, ledger_error};
use crate::api::rpc::{self, RpcError};
use crate::app::App;
use crate::ledger::Ledger;
use crate::ledger::people::{BirthdayRun, ConsentChange};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunParams {
    /// Run as of this time (RFC 3339) instead of now: back-dated runs and
    /// tests. The credits are stamped with it.
    at: Option<String>,
}

/// Publishes each credit as `ledger.transaction`, like the other postings.
fn publish(app: &App, run: &BirthdayRun) {
    for c in &run.credits {
        app.bus.publish(
            "ledger.transaction",
            json!({"kind": "birthday", "account": c.account, "amount": c.amount.to_string()}),
        );
    }
}

pub(super) async fn birthday_run(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: RunParams = rpc::params(params.or_else(|| Some(json!({}))))?;
    let now = match &p.at {
        None => OffsetDateTime::now_utc(),
        Some(s) => OffsetDateTime::parse(s, &Rfc3339)
            .map_err(|e| RpcError::invalid_params("at", format!("not RFC 3339: {e}")))?,
    };
    let run = app.ledger.birthday_run(now).await.map_err(ledger_error)?;
    tracing::info!(credited = run.credited, "birthday bonuses");
    publish(app, &run);
    Ok(json!(run))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentParams {
    account: i64,
    kind: String,
    given: bool,
    how: String,
    operator: String,
}

pub(super) async fn consent_set(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: ConsentParams = rpc::params(params)?;
    let v = app
        .ledger
        .set_consent(
            p.account,
            ConsentChange {
                kind: p.kind,
                given: p.given,
                how: p.how,
                operator: p.operator,
            },
        )
        .await
        .map_err(account_error)?;
    tracing::info!(account = p.account, "consent recorded");
    Ok(json!(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountParams {
    account: i64,
}

pub(super) async fn consents(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: AccountParams = rpc::params(params)?;
    let v = app
        .ledger
        .consents(p.account)
        .await
        .map_err(account_error)?;
    Ok(json!(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EraseParams {
    account: i64,
    operator: String,
}

pub(super) async fn erase(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: EraseParams = rpc::params(params)?;
    let e = app
        .ledger
        .erase_account(p.account, p.operator)
        .await
        .map_err(account_error)?;
    if e.newly {
        tracing::info!(account = e.account, "personal data erased on request");
        app.bus.publish(
            "account.updated",
            json!({"account": e.account, "erased": true}),
        );
    }
    Ok(json!({"account": e.account, "erased_at": e.erased_at, "newly": e.newly}))
}

/// The daily birthday run on a till with the embedded ledger, at 00:05
/// programme time with the other daily jobs, until `shutdown`. A chain's
/// central service runs it once for the chain instead.
pub(crate) async fn birthday_daily(app: Arc<App>, shutdown: CancellationToken) {
    let ledger: Arc<dyn Ledger> = app.ledger.clone();
    if ledger.programme().birthday_bonus.is_none() {
        return;
    }
    let offset =
        UtcOffset::from_whole_seconds(ledger.programme().utc_offset_minutes.saturating_mul(60))
            .unwrap_or(UtcOffset::UTC);
    loop {
        let now = OffsetDateTime::now_utc();
        let wait = (super::tiers::next_run(now, offset) - now)
            .try_into()
            .unwrap_or(std::time::Duration::from_secs(60));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = ledger.birthday_run(OffsetDateTime::now_utc()) => r,
        };
        match result {
            Ok(run) => {
                tracing::info!(credited = run.credited, "daily birthday bonuses");
                publish(&app, &run);
            }
            Err(e) => tracing::error!(error = %e, "daily birthday bonuses failed"),
        }
    }
}

/// Queues the burning-soon reminders for the points that burn on the day
/// `burning_within_days` after `now`'s day (programme time). Each run
/// covers exactly one day, so a run a day reminds each expiry date once; a
/// day the till was off is not made up.
pub(crate) async fn queue_burning(app: &App, now: OffsetDateTime) -> Result<usize, RpcError> {
    use crate::notify::messages::{Job, MessageKind};
    let config = app.config();
    let days = config.ledger.messages.burning_within_days;
    if days == 0 {
        return Ok(0);
    }
    let minutes = app.ledger.programme().utc_offset_minutes;
    let offset =
        UtcOffset::from_whole_seconds(minutes.saturating_mul(60)).unwrap_or(UtcOffset::UTC);
    let Some(day) = now
        .checked_to_offset(offset)
        .and_then(|t| t.date().checked_add(time::Duration::days(i64::from(days))))
    else {
        return Err(RpcError::invalid_params("at", "out of the calendar"));
    };
    let from = day.midnight().assume_offset(offset);
    let until = from + time::Duration::days(1);
    let list = app
        .ledger
        .burning(from, until)
        .await
        .map_err(ledger_error)?;
    for b in &list {
        // The last day they can be spent: the day before the expiry moment.
        let last_day = OffsetDateTime::parse(&b.expires_at, &Rfc3339)
            .ok()
            .and_then(|t| (t - time::Duration::SECOND).checked_to_offset(offset))
            .map(|t| t.date().to_string())
            .unwrap_or_default();
        app.messages.enqueue(Job {
            account: b.account,
            card_masked: String::new(),
            balance: rust_decimal::Decimal::ZERO,
            accrued: b.amount,
            language: config.receipt.language,
            kind: MessageKind::Burning,
            last_day,
        });
    }
    Ok(list.len())
}

/// `messages.burning.run` (admin): the burning-soon reminders as of `at`
/// (default now); the daily job runs it on a till with the embedded ledger.
pub(super) async fn burning_run(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: RunParams = rpc::params(params.or_else(|| Some(json!({}))))?;
    let now = match &p.at {
        None => OffsetDateTime::now_utc(),
        Some(s) => OffsetDateTime::parse(s, &Rfc3339)
            .map_err(|e| RpcError::invalid_params("at", format!("not RFC 3339: {e}")))?,
    };
    let queued = queue_burning(app, now).await?;
    Ok(json!({ "queued": queued }))
}

/// The daily burning-soon reminders at 00:05 programme time, while
/// `burning_within_days` is set (read at start).
pub(crate) async fn burning_daily(app: Arc<App>, shutdown: CancellationToken) {
    if app.config().ledger.messages.burning_within_days == 0 {
        return;
    }
    let minutes = app.ledger.programme().utc_offset_minutes;
    let offset =
        UtcOffset::from_whole_seconds(minutes.saturating_mul(60)).unwrap_or(UtcOffset::UTC);
    loop {
        let now = OffsetDateTime::now_utc();
        let wait = (super::tiers::next_run(now, offset) - now)
            .try_into()
            .unwrap_or(std::time::Duration::from_secs(60));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        match queue_burning(&app, OffsetDateTime::now_utc()).await {
            Ok(n) => tracing::info!(queued = n, "daily burning-soon reminders"),
            Err(e) => tracing::error!(error = %e.message, "daily burning-soon reminders failed"),
        }
    }
}
