//! Loyalty tiers in the embedded database: an account's level
//! (`accounts.tier`, `accounts.tier_since`), its changes
//! (`tier_changes`), and evaluation against the account's sales.
//!
//! The rules are pure ([`super::rules::tiers`]); this module reads what
//! they need from `txns` (sales with their lines, refunds) and
//! `account_groups`, and writes the outcome. Every function works on the
//! caller's connection and inside the caller's transaction, so a sale and
//! the level it earns commit together.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

use super::embedded::{new_txn, store_result, ts};
use super::rules::tiers::{self as rules, Activity, Progress, Purchase, Tier};
use super::rules::{AccountOverrides, Programme, SaleLine};
use crate::store::{Store, StoreError};

/// One change of an account's level, as stored and published
/// (`account.tier_changed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierChange {
    /// Account id.
    pub account: i64,
    /// The level before (the entry level for an account never evaluated).
    pub from: String,
    /// The level now.
    pub to: String,
    /// `promoted`, `demoted` or `reassigned`.
    pub reason: String,
    /// What ran the evaluation: `sale`, `refund`, `daily` or `admin`.
    pub trigger: String,
    /// When (RFC 3339, UTC).
    pub at: String,
}

/// An account's level and how far the next one is, for summaries.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TierView {
    /// The level held (`None` when no levels are configured).
    pub tier: Option<String>,
    /// Progress to the next level up (`None` at the top or without levels).
    pub progress: Option<Progress>,
}

fn offset(p: &Programme) -> UtcOffset {
    // Validated at config load; UTC is only a fallback for a hand-built
    // programme.
    UtcOffset::from_whole_seconds(p.utc_offset_minutes.saturating_mul(60)).unwrap_or(UtcOffset::UTC)
}

/// The longest window any level looks at, in days.
fn longest_window(tiers: &[Tier]) -> u32 {
    tiers
        .iter()
        .flat_map(|t| [t.spend_period_days, t.visits_period_days])
        .flatten()
        .max()
        .unwrap_or(0)
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

fn decimal_at(v: &Value, key: &str) -> Option<Decimal> {
    match v.get(key)? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.to_string().parse().ok(),
        _ => None,
    }
}

/// The account's sales within the longest window, each less its refunds.
/// Rows that cannot be read (which the ledger never writes) count as
/// nothing rather than failing a sale.
fn purchases(
    c: &Connection,
    p: &Programme,
    account: i64,
    now: OffsetDateTime,
) -> rusqlite::Result<Vec<Purchase>> {
    let days = longest_window(&p.tiers);
    if days == 0 {
        return Ok(Vec::new());
    }
    let from = ts(now
        .checked_sub(Duration::days(i64::from(days)))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH));
    // Refunds come after their sale, so those of in-window sales are
    // in-window too.
    let mut refunded: BTreeMap<i64, Decimal> = BTreeMap::new();
    {
        let mut stmt = c.prepare_cached(
            "SELECT result FROM txns
             WHERE account_id = ?1 AND kind = 'refund' AND created_at > ?2",
        )?;
        let rows = stmt.query_map(params![account, from], |r| r.get::<_, String>(0))?;
        for r in rows {
            let Ok(v) = serde_json::from_str::<Value>(&r?) else {
                continue;
            };
            if let (Some(sale), Some(amount)) = (
                v.get("sale_transaction").and_then(Value::as_i64),
                decimal_at(&v, "refunded"),
            ) {
                *refunded.entry(sale).or_default() += amount;
            }
        }
    }
    let mut out = Vec::new();
    let mut stmt = c.prepare_cached(
        "SELECT id, request, created_at FROM txns
         WHERE account_id = ?1 AND kind = 'sale' AND created_at > ?2 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![account, from], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    for r in rows {
        // From the request's lines, not the stored result: the sale being
        // committed has no result yet when its own transaction evaluates.
        let (id, request, at) = r?;
        let Some(at) = parse_time(&at) else { continue };
        let Some(lines) = serde_json::from_str::<Value>(&request)
            .ok()
            .and_then(|v| v.get("lines").cloned())
            .and_then(|l| serde_json::from_value::<Vec<SaleLine>>(l).ok())
        else {
            continue;
        };
        let mut categories: BTreeMap<String, Decimal> = BTreeMap::new();
        for l in &lines {
            // The line total as the rules compute it (half away from zero
            // at the programme's precision); the lines passed validation.
            let amount = (l.qty * l.price - l.discount)
                .round_dp_with_strategy(p.precision, RoundingStrategy::MidpointAwayFromZero);
            *categories.entry(l.category.clone()).or_default() += amount;
        }
        let total: Decimal = categories.values().copied().sum();
        let back = refunded.get(&id).copied().unwrap_or_default();
        let net = (total - back).max(Decimal::ZERO);
        if back > Decimal::ZERO && total > Decimal::ZERO {
            // A refund names an amount, not lines: it comes off every
            // category in proportion.
            for v in categories.values_mut() {
                *v = (*v * net / total)
                    .round_dp_with_strategy(p.precision, RoundingStrategy::ToZero);
            }
        }
        out.push(Purchase {
            at,
            net,
            categories,
            visit: !(total > Decimal::ZERO && net.is_zero()),
        });
    }
    Ok(out)
}

/// The account's groups, as a set.
fn groups(c: &Connection, account: i64) -> rusqlite::Result<BTreeSet<String>> {
    Ok(super::accounts::groups_of(c, account)?
        .into_iter()
        .collect())
}

fn stored_tier(c: &Connection, account: i64) -> rusqlite::Result<Option<String>> {
    Ok(
        c.query_row("SELECT tier FROM accounts WHERE id = ?1", [account], |r| {
            r.get::<_, Option<String>>(0)
        })
        .optional()?
        .flatten(),
    )
}

/// The level an account holds now by its stored tier: the entry level when
/// it was never evaluated or its stored level is no longer configured.
/// `None` when the programme has no levels.
pub fn tier_of<'p>(
    c: &Connection,
    p: &'p Programme,
    account: i64,
) -> rusqlite::Result<Option<&'p Tier>> {
    if p.tiers.is_empty() {
        return Ok(None);
    }
    let stored = stored_tier(c, account)?;
    let order = rules::ordered(&p.tiers);
    Ok(stored
        .and_then(|n| order.iter().find(|t| t.name == n).copied())
        .or(order.first().copied()))
}

/// Merges the account's level into its own percentages: a per-customer
/// setting beats the level, which beats the programme default.
pub fn merge_overrides(
    c: &Connection,
    p: &Programme,
    account: i64,
    o: &mut AccountOverrides,
) -> rusqlite::Result<()> {
    if let Some(t) = tier_of(c, p, account)? {
        o.accrual_percent = o.accrual_percent.or(t.accrual_percent);
        o.cap_percent = o.cap_percent.or(t.cap_percent);
    }
    Ok(())
}

/// Evaluates one account at `now` and records a change: `accounts.tier`,
/// a `tier_changes` row. Runs inside the caller's transaction. `None` when
/// nothing changed or no levels are configured.
pub fn evaluate_tx(
    c: &Connection,
    p: &Programme,
    account: i64,
    now: OffsetDateTime,
    trigger: &str,
) -> rusqlite::Result<Option<TierChange>> {
    if p.tiers.is_empty() {
        return Ok(None);
    }
    let current = stored_tier(c, account)?;
    let bought = purchases(c, p, account, now)?;
    let groups = groups(c, account)?;
    let activity = Activity {
        purchases: &bought,
        groups: &groups,
        now,
        offset: offset(p),
    };
    let Some(outcome) = rules::evaluate(&p.tiers, current.as_deref(), &activity) else {
        return Ok(None);
    };
    let Some(kind) = outcome.change else {
        return Ok(None);
    };
    let from = match current {
        Some(n) => n,
        None => rules::ordered(&p.tiers)
            .first()
            .map(|t| t.name.clone())
            .unwrap_or_default(),
    };
    let stamp = ts(now);
    c.execute(
        "UPDATE accounts SET tier = ?1, tier_since = ?2 WHERE id = ?3",
        params![outcome.tier.name, stamp, account],
    )?;
    c.execute(
        "INSERT INTO tier_changes (account_id, from_tier, to_tier, reason, source, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            account,
            from,
            outcome.tier.name,
            kind.as_str(),
            trigger,
            stamp
        ],
    )?;
    // The change also goes into the account's history, as a transaction
    // without entries (like a change of its percentages), so
    // account.history tells the whole story in one list.
    let change_id = c.last_insert_rowid();
    let detail = serde_json::json!({
        "from": from,
        "to": outcome.tier.name,
        "reason": kind.as_str(),
        "trigger": trigger,
    });
    let txn = new_txn(
        c,
        &format!("tier:{account}:{change_id}"),
        "tier",
        account,
        None,
        &detail.to_string(),
        &stamp,
    )?;
    store_result(c, txn, &detail)?;
    Ok(Some(TierChange {
        account,
        from,
        to: outcome.tier.name.clone(),
        reason: kind.as_str().to_owned(),
        trigger: trigger.to_owned(),
        at: stamp,
    }))
}

/// The account's level and its progress to the next, at `now`.
pub fn view(
    c: &Connection,
    p: &Programme,
    account: i64,
    now: OffsetDateTime,
) -> rusqlite::Result<TierView> {
    let Some(tier) = tier_of(c, p, account)? else {
        return Ok(TierView::default());
    };
    let bought = purchases(c, p, account, now)?;
    let groups = groups(c, account)?;
    let activity = Activity {
        purchases: &bought,
        groups: &groups,
        now,
        offset: offset(p),
    };
    Ok(TierView {
        tier: Some(tier.name.clone()),
        progress: rules::progress(&p.tiers, Some(&tier.name), &activity),
    })
}

/// Fills a summary's `tier` and `tier_progress` (left unset without
/// levels).
pub fn annotate(
    c: &Connection,
    p: &Programme,
    s: &mut super::embedded::AccountSummary,
    now: OffsetDateTime,
) -> rusqlite::Result<()> {
    let v = view(c, p, s.account, now)?;
    s.tier = v.tier;
    s.tier_progress = v.progress;
    Ok(())
}

/// The most accounts one evaluation batch handles while holding the writer.
pub const BATCH: usize = 200;

/// Account ids above `after`, at most [`BATCH`], in id order.
pub fn account_batch(c: &Connection, after: i64) -> rusqlite::Result<Vec<i64>> {
    let mut stmt =
        c.prepare_cached("SELECT id FROM accounts WHERE id > ?1 ORDER BY id LIMIT ?2")?;
    let rows = stmt.query_map(params![after, BATCH as i64], |r| r.get(0))?;
    rows.collect()
}

/// Evaluates `accounts` at `now`, each in its own `BEGIN IMMEDIATE`
/// transaction. Returns the changes.
pub fn evaluate_many(
    c: &mut Connection,
    p: &Programme,
    accounts: &[i64],
    now: OffsetDateTime,
    trigger: &str,
) -> rusqlite::Result<Vec<TierChange>> {
    let mut out = Vec::new();
    for &a in accounts {
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let change = evaluate_tx(&tx, p, a, now, trigger)?;
        tx.commit()?;
        out.extend(change);
    }
    Ok(out)
}

/// Whether an account with this id exists.
pub fn account_exists(c: &Connection, account: i64) -> rusqlite::Result<bool> {
    Ok(c.query_row(
        "SELECT 1 FROM accounts WHERE id = ?1",
        [account],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

/// An account's level changes, newest first, at most `limit`.
pub fn history(c: &Connection, account: i64, limit: u32) -> rusqlite::Result<Vec<TierChange>> {
    let mut stmt = c.prepare_cached(
        "SELECT from_tier, to_tier, reason, source, created_at FROM tier_changes
         WHERE account_id = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![account, i64::from(limit)], |r| {
        Ok(TierChange {
            account,
            from: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
            to: r.get(1)?,
            reason: r.get(2)?,
            trigger: r.get(3)?,
            at: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// Why a tiers call failed.
#[derive(Debug, thiserror::Error)]
pub enum TierError {
    /// The programme has no levels.
    #[error("the programme has no tiers")]
    NotConfigured,
    /// No account has this id.
    #[error("no such account")]
    UnknownAccount,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The central ledger refused (its own code) or could not be reached.
    #[error(transparent)]
    Remote(#[from] crate::ledger::RemoteError),
}

/// Tier evaluation and history on the daemon's store, for the API and the
/// daily job.
#[derive(Clone)]
pub struct Tiers {
    store: Store,
}

impl Tiers {
    /// Tiers on `store`.
    pub fn new(store: Store) -> Self {
        Tiers { store }
    }

    /// Evaluates one account, or every account (in batches of [`BATCH`],
    /// so sales are not held up for the whole run), at `now`. Each batch's
    /// changes go to `committed` as soon as the batch is on disk, so a run
    /// stopped midway has announced what it stored. Returns the number of
    /// accounts evaluated and the changes.
    pub async fn evaluate(
        &self,
        programme: Arc<Programme>,
        account: Option<i64>,
        now: OffsetDateTime,
        trigger: &'static str,
        mut committed: impl FnMut(&[TierChange]) + Send,
    ) -> Result<(usize, Vec<TierChange>), TierError> {
        if programme.tiers.is_empty() {
            return Err(TierError::NotConfigured);
        }
        if let Some(a) = account {
            let p = programme.clone();
            let r = self
                .store
                .with(move |c| {
                    if !account_exists(c, a)? {
                        return Ok(None);
                    }
                    evaluate_many(c, &p, &[a], now, trigger).map(Some)
                })
                .await?;
            let ch = r.ok_or(TierError::UnknownAccount)?;
            committed(&ch);
            return Ok((1, ch));
        }
        let mut after = 0;
        let mut count = 0;
        let mut changes = Vec::new();
        loop {
            let p = programme.clone();
            let (batch, ch) = self
                .store
                .with(move |c| {
                    let batch = account_batch(c, after)?;
                    let ch = evaluate_many(c, &p, &batch, now, trigger)?;
                    Ok((batch, ch))
                })
                .await?;
            count += batch.len();
            committed(&ch);
            changes.extend(ch);
            match batch.last() {
                Some(&last) if batch.len() == BATCH => after = last,
                _ => break,
            }
        }
        Ok((count, changes))
    }

    /// An account's level and progress at `now`, and its changes, newest
    /// first.
    pub async fn history(
        &self,
        programme: Arc<Programme>,
        account: i64,
        limit: u32,
        now: OffsetDateTime,
    ) -> Result<(TierView, Vec<TierChange>), TierError> {
        self.store
            .with(move |c| {
                if !account_exists(c, account)? {
                    return Ok(Err(TierError::UnknownAccount));
                }
                let v = view(c, &programme, account, now)?;
                Ok(Ok((v, history(c, account, limit)?)))
            })
            .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::embedded::{SaleRef, commit_tx, refund_tx};
    use crate::ledger::rules::tiers::Combine;
    use time::macros::datetime;

    fn tiers() -> Vec<Tier> {
        let bronze = Tier {
            name: "Bronze".into(),
            priority: 1,
            accrual_percent: None,
            cap_percent: None,
            min_spend: None,
            spend_period_days: None,
            category_min_spend: BTreeMap::new(),
            min_visits: None,
            visits_period_days: None,
            groups: vec![],
            combine: Combine::Any,
        };
        let silver = Tier {
            name: "Silver".into(),
            priority: 2,
            accrual_percent: Some(Decimal::from(10)),
            min_spend: Some(Decimal::from(1000)),
            spend_period_days: Some(30),
            ..bronze.clone()
        };
        vec![bronze, silver]
    }

    fn sale(total: u32) -> Vec<SaleLine> {
        vec![SaleLine {
            sku: "A1".into(),
            name: "x".into(),
            category: "general".into(),
            qty: Decimal::ONE,
            price: Decimal::from(total),
            discount: Decimal::ZERO,
        }]
    }

    const CARD: &str = "6035000011112222";

    #[test]
    fn refunds_count_against_their_sale_and_windows_roll() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let _store = Store::open(&path).unwrap();
        let mut c = Connection::open(&path).unwrap();
        let p = Programme {
            tiers: tiers(),
            ..Programme::default()
        };
        let t0 = datetime!(2026-03-01 12:00:00 UTC);
        let r = commit_tx(&mut c, &p, "k1", CARD, "R1", &sale(1000), Decimal::ZERO, t0)
            .unwrap()
            .unwrap();
        let a = r.account;
        // The sale itself promotes, in its own transaction.
        let ch = r.tier_change.unwrap();
        assert_eq!((ch.from.as_str(), ch.to.as_str()), ("Bronze", "Silver"));
        assert_eq!(ch.trigger, "sale");
        assert!(evaluate_tx(&c, &p, a, t0, "admin").unwrap().is_none());
        assert_eq!(tier_of(&c, &p, a).unwrap().unwrap().name, "Silver");
        let mut o = AccountOverrides::default();
        merge_overrides(&c, &p, a, &mut o).unwrap();
        assert_eq!(o.accrual_percent, Some(Decimal::from(10)));
        // A per-customer setting beats the level.
        let mut own = AccountOverrides {
            accrual_percent: Some(Decimal::from(7)),
            ..Default::default()
        };
        merge_overrides(&c, &p, a, &mut own).unwrap();
        assert_eq!(own.accrual_percent, Some(Decimal::from(7)));

        // A partial refund takes the spend below the threshold: the
        // refund itself demotes, in its own transaction.
        let rf = refund_tx(
            &mut c,
            &p,
            "rf",
            &SaleRef::Transaction(r.transaction),
            Some(Decimal::ONE),
            t0,
        )
        .unwrap()
        .unwrap();
        let ch = rf.tier_change.unwrap();
        assert_eq!((ch.to.as_str(), ch.reason.as_str()), ("Bronze", "demoted"));
        assert_eq!(ch.trigger, "refund");
        let v = view(&c, &p, a, t0).unwrap();
        let pr = v.progress.unwrap();
        assert_eq!(pr.next_tier, "Silver");
        assert_eq!(pr.spend_needed, Some(Decimal::ONE));
        // Nothing changes a second time.
        assert!(evaluate_tx(&c, &p, a, t0, "daily").unwrap().is_none());
        let h = history(&c, a, 10).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].to, "Bronze");
        assert_eq!(h[1].to, "Silver");
        // Without levels nothing is evaluated or shown.
        let plain = Programme::default();
        assert!(evaluate_tx(&c, &plain, a, t0, "daily").unwrap().is_none());
        assert_eq!(view(&c, &plain, a, t0).unwrap(), TierView::default());
    }
}
