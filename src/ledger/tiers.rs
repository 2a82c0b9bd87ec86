//! Loyalty tiers in the embedded database: an account's level
//! (`accounts.tier`, `accounts.tier_since`), its changes
//! (`tier_changes`), and evaluation against the account's sales.
//!
//! The rules are pure ([`super::rules::tiers`]); this module reads what
//! they need from `txns` (sales with their lines, refunds) and
//! `account_groups`, and writes the outcome. Every function works inside
//! the caller's transaction on any [`Db`], so a sale and the level it
//! earns commit together, in SQLite or in PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

use super::db::{Books, Db, DbError, args};
use super::embedded::{new_txn, store_result, ts};
use super::origin::Origin;
use super::programmes::{ProgrammeError, Programmes};
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
    db: &dyn Db,
    p: &Programme,
    account: i64,
    now: OffsetDateTime,
) -> Result<Vec<Purchase>, DbError> {
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
    let results = db.query_map(
        "SELECT result FROM txns
         WHERE account_id = ?1 AND kind = 'refund' AND created_at > ?2",
        args![account, from],
        |r| r.get::<String>(0),
    )?;
    for r in results {
        let Ok(v) = serde_json::from_str::<Value>(&r) else {
            continue;
        };
        if let (Some(sale), Some(amount)) = (
            v.get("sale_transaction").and_then(Value::as_i64),
            decimal_at(&v, "refunded"),
        ) {
            *refunded.entry(sale).or_default() += amount;
        }
    }
    let mut out = Vec::new();
    let rows: Vec<(i64, String, String)> = db.query_map(
        "SELECT id, request, created_at FROM txns
         WHERE account_id = ?1 AND kind = 'sale' AND created_at > ?2 ORDER BY id",
        args![account, from],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    for (id, request, at) in rows {
        // From the request's lines, not the stored result: the sale being
        // committed has no result yet when its own transaction evaluates.
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
fn groups(db: &dyn Db, account: i64) -> Result<BTreeSet<String>, DbError> {
    Ok(super::accounts::groups_of(db, account)?
        .into_iter()
        .collect())
}

fn stored_tier(db: &dyn Db, account: i64) -> Result<Option<String>, DbError> {
    Ok(db
        .query_opt(
            "SELECT tier FROM accounts WHERE id = ?1",
            args![account],
            |r| r.get::<Option<String>>(0),
        )?
        .flatten())
}

/// The level an account holds now by its stored tier: the entry level when
/// it was never evaluated or its stored level is no longer configured.
/// `None` when the programme has no levels.
pub fn tier_of<'p>(
    db: &dyn Db,
    p: &'p Programme,
    account: i64,
) -> Result<Option<&'p Tier>, DbError> {
    if p.tiers.is_empty() {
        return Ok(None);
    }
    let stored = stored_tier(db, account)?;
    let order = rules::ordered(&p.tiers);
    Ok(stored
        .and_then(|n| order.iter().find(|t| t.name == n).copied())
        .or(order.first().copied()))
}

/// Merges the account's level into its own percentages: a per-customer
/// setting beats the level's, flat and per category, which beat the
/// programme's (see [`super::rules::levels::merge`]).
pub fn merge_overrides(
    db: &dyn Db,
    p: &Programme,
    account: i64,
    o: &mut AccountOverrides,
) -> Result<(), DbError> {
    if let Some(t) = tier_of(db, p, account)? {
        super::rules::levels::merge(t, o);
    }
    Ok(())
}

/// Evaluates one account at `now` and records a change: `accounts.tier`,
/// a `tier_changes` row, and a `tier` transaction in its history that
/// records no store or terminal (an evaluation not tied to a till: the
/// daily run, an administrator's). Runs inside the caller's transaction.
/// `None` when nothing changed or no levels are configured.
pub fn evaluate_tx(
    db: &dyn Db,
    p: &Programme,
    account: i64,
    now: OffsetDateTime,
    trigger: &str,
) -> Result<Option<TierChange>, DbError> {
    evaluate_as(db, p, account, now, trigger, &Origin::default())
}

/// [`evaluate_tx`] for an operation of `origin` (a sale or refund at a
/// till): the history's `tier` transaction records where it happened.
pub fn evaluate_as(
    db: &dyn Db,
    p: &Programme,
    account: i64,
    now: OffsetDateTime,
    trigger: &str,
    origin: &Origin,
) -> Result<Option<TierChange>, DbError> {
    if p.tiers.is_empty() {
        return Ok(None);
    }
    let current = stored_tier(db, account)?;
    let bought = purchases(db, p, account, now)?;
    let groups = groups(db, account)?;
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
    db.execute(
        "UPDATE accounts SET tier = ?1, tier_since = ?2 WHERE id = ?3",
        args![outcome.tier.name, stamp, account],
    )?;
    let change_id = db.insert(
        "INSERT INTO tier_changes (account_id, from_tier, to_tier, reason, source, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        args![
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
    let detail = serde_json::json!({
        "from": from,
        "to": outcome.tier.name,
        "reason": kind.as_str(),
        "trigger": trigger,
    });
    let txn = new_txn(
        db,
        &format!("tier:{account}:{change_id}"),
        "tier",
        account,
        None,
        &detail.to_string(),
        &stamp,
        origin,
        None,
    )?;
    store_result(db, txn, &detail)?;
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
    db: &dyn Db,
    p: &Programme,
    account: i64,
    now: OffsetDateTime,
) -> Result<TierView, DbError> {
    let Some(tier) = tier_of(db, p, account)? else {
        return Ok(TierView::default());
    };
    let bought = purchases(db, p, account, now)?;
    let groups = groups(db, account)?;
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
    db: &dyn Db,
    p: &Programme,
    s: &mut super::types::AccountSummary,
    now: OffsetDateTime,
) -> Result<(), DbError> {
    let v = view(db, p, s.account, now)?;
    s.tier = v.tier;
    s.tier_progress = v.progress;
    Ok(())
}

/// The most accounts one evaluation batch handles while holding the writer.
pub const BATCH: usize = 200;

/// Account ids above `after`, at most [`BATCH`], in id order.
pub fn account_batch(db: &dyn Db, after: i64) -> Result<Vec<i64>, DbError> {
    db.query_map(
        "SELECT id FROM accounts WHERE id > ?1 ORDER BY id LIMIT ?2",
        args![after, BATCH],
        |r| r.get(0),
    )
}

/// The next batch of ids of the accounts of one programme (its stored
/// key), after `after`.
pub fn account_batch_in(db: &dyn Db, after: i64, programme: &str) -> Result<Vec<i64>, DbError> {
    db.query_map(
        "SELECT id FROM accounts WHERE id > ?1 AND programme = ?3 ORDER BY id LIMIT ?2",
        args![after, BATCH, programme],
        |r| r.get(0),
    )
}

/// Whether an account with this id exists.
pub fn account_exists(db: &dyn Db, account: i64) -> Result<bool, DbError> {
    Ok(db
        .query_opt(
            "SELECT id FROM accounts WHERE id = ?1",
            args![account],
            |r| r.get::<i64>(0),
        )?
        .is_some())
}

/// An account's level changes, newest first, at most `limit`.
pub fn history(db: &dyn Db, account: i64, limit: u32) -> Result<Vec<TierChange>, DbError> {
    db.query_map(
        "SELECT from_tier, to_tier, reason, source, created_at FROM tier_changes
         WHERE account_id = ?1 ORDER BY id DESC LIMIT ?2",
        args![account, limit],
        |r| {
            Ok(TierChange {
                account,
                from: r.get::<Option<String>>(0)?.unwrap_or_default(),
                to: r.get(1)?,
                reason: r.get(2)?,
                trigger: r.get(3)?,
                at: r.get(4)?,
            })
        },
    )
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
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The books failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The central ledger refused (its own code) or could not be reached.
    #[error(transparent)]
    Remote(#[from] crate::ledger::RemoteError),
    /// The account's programme is not one this ledger serves.
    #[error(transparent)]
    Programme(#[from] ProgrammeError),
}

/// Tier evaluation and history on a set of books, for the API and the
/// daily job.
#[derive(Clone)]
pub struct Tiers {
    books: Books,
}

impl Tiers {
    /// Tiers on the till's own `store`.
    pub fn new(store: Store) -> Self {
        Tiers::with_books(Books::sqlite(store))
    }

    /// Tiers on `books` (the central service's PostgreSQL).
    pub fn with_books(books: Books) -> Self {
        Tiers { books }
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
            if !self.books.read(move |db| account_exists(db, a)).await? {
                return Err(TierError::UnknownAccount);
            }
            let ch = self
                .evaluate_each(&programme, vec![a], now, trigger)
                .await?;
            committed(&ch);
            return Ok((1, ch));
        }
        let mut after = 0;
        let mut count = 0;
        let mut changes = Vec::new();
        loop {
            let batch = self.books.read(move |db| account_batch(db, after)).await?;
            let ch = self
                .evaluate_each(&programme, batch.clone(), now, trigger)
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

    /// [`Tiers::evaluate`] with several programmes: one account by its
    /// own programme's levels (which this ledger must serve), or every
    /// programme's accounts by that programme's levels (programmes without
    /// levels are skipped; none with levels is [`TierError::NotConfigured`]).
    pub async fn evaluate_in(
        &self,
        programmes: Arc<Programmes>,
        account: Option<i64>,
        now: OffsetDateTime,
        trigger: &'static str,
        mut committed: impl FnMut(&[TierChange]) + Send,
    ) -> Result<(usize, Vec<TierChange>), TierError> {
        if let Some(a) = account {
            let p = self.programme_of(&programmes, a).await?;
            return self.evaluate(p, Some(a), now, trigger, committed).await;
        }
        if !programmes.any_tiers() {
            return Err(TierError::NotConfigured);
        }
        let mut count = 0;
        let mut changes = Vec::new();
        for (key, p) in programmes.keyed() {
            if p.tiers.is_empty() {
                continue;
            }
            let mut after = 0;
            loop {
                let k = key.to_owned();
                let batch = self
                    .books
                    .read(move |db| account_batch_in(db, after, &k))
                    .await?;
                let ch = self.evaluate_each(p, batch.clone(), now, trigger).await?;
                count += batch.len();
                committed(&ch);
                changes.extend(ch);
                match batch.last() {
                    Some(&last) if batch.len() == BATCH => after = last,
                    _ => break,
                }
            }
        }
        Ok((count, changes))
    }

    /// The rules of `account`'s programme, if served.
    pub async fn programme_of(
        &self,
        programmes: &Arc<Programmes>,
        account: i64,
    ) -> Result<Arc<Programme>, TierError> {
        let ps = programmes.clone();
        self.books
            .read(move |db| {
                if !account_exists(db, account)? {
                    return Ok(Err(TierError::UnknownAccount));
                }
                Ok(ps.of_account(db, account)?.map_err(TierError::from))
            })
            .await?
    }

    /// Evaluates `accounts`, each in its own write transaction (a sale
    /// waits for one account's evaluation at most), on one blocking thread.
    async fn evaluate_each(
        &self,
        programme: &Arc<Programme>,
        accounts: Vec<i64>,
        now: OffsetDateTime,
        trigger: &'static str,
    ) -> Result<Vec<TierChange>, TierError> {
        let books = self.books.clone();
        let p = programme.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for &a in &accounts {
                let change = books
                    .write_blocking(|db| evaluate_tx(db, &p, a, now, trigger).map(Ok::<_, ()>))?
                    .unwrap_or_default();
                out.extend(change);
            }
            Ok::<_, DbError>(out)
        })
        .await
        .map_err(|join| DbError::Store(format!("tier worker failed: {join}")))?
        .map_err(TierError::from)
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
        self.books
            .read(move |db| {
                if !account_exists(db, account)? {
                    return Ok(Err(TierError::UnknownAccount));
                }
                let v = view(db, &programme, account, now)?;
                Ok(Ok((v, history(db, account, limit)?)))
            })
            .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::embedded::{SaleRef, TxResult, commit_tx, refund_tx};
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
            categories: vec![],
            expiry_days: None,
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

    /// `f` in a write transaction on `books`, as the daemon runs it.
    fn wr<T>(books: &Books, mut f: impl FnMut(&dyn Db) -> Result<T, DbError>) -> T {
        books
            .write_blocking(|db| f(db).map(Ok::<_, ()>))
            .unwrap()
            .unwrap()
    }

    /// `f` in a read transaction on `books`.
    fn rd<T>(books: &Books, f: impl FnMut(&dyn Db) -> Result<T, DbError>) -> T {
        books.read_blocking(f).unwrap()
    }

    fn tx<T>(books: &Books, f: impl FnMut(&dyn Db) -> TxResult<T>) -> T {
        books.write_blocking(f).unwrap().unwrap()
    }

    #[test]
    fn refunds_count_against_their_sale_and_windows_roll() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let till = Origin::new("", store.terminal_id());
        let b = Books::sqlite(store);
        let p = Programme {
            tiers: tiers(),
            ..Programme::default()
        };
        let t0 = datetime!(2026-03-01 12:00:00 UTC);
        let r = tx(&b, |db| {
            commit_tx(
                db,
                &p,
                "k1",
                CARD,
                "R1",
                &sale(1000),
                Decimal::ZERO,
                t0,
                &till,
                None,
            )
        });
        let a = r.account;
        // The sale itself promotes, in its own transaction.
        let ch = r.tier_change.unwrap();
        assert_eq!((ch.from.as_str(), ch.to.as_str()), ("Bronze", "Silver"));
        assert_eq!(ch.trigger, "sale");
        assert!(wr(&b, |db| evaluate_tx(db, &p, a, t0, "admin")).is_none());
        assert_eq!(
            rd(&b, |db| Ok(tier_of(db, &p, a)?.map(|t| t.name.clone()))).as_deref(),
            Some("Silver")
        );
        let mut o = AccountOverrides::default();
        rd(&b, |db| merge_overrides(db, &p, a, &mut o));
        assert_eq!(o.accrual_percent, Some(Decimal::from(10)));
        // A per-customer setting beats the level.
        let mut own = AccountOverrides {
            accrual_percent: Some(Decimal::from(7)),
            ..Default::default()
        };
        rd(&b, |db| merge_overrides(db, &p, a, &mut own));
        assert_eq!(own.accrual_percent, Some(Decimal::from(7)));

        // A partial refund takes the spend below the threshold: the
        // refund itself demotes, in its own transaction.
        let rf = tx(&b, |db| {
            refund_tx(
                db,
                &p,
                "rf",
                &SaleRef::Transaction(r.transaction),
                Some(Decimal::ONE),
                None,
                t0,
                &till,
                None,
            )
        });
        let ch = rf.tier_change.unwrap();
        assert_eq!((ch.to.as_str(), ch.reason.as_str()), ("Bronze", "demoted"));
        assert_eq!(ch.trigger, "refund");
        let v = rd(&b, |db| view(db, &p, a, t0));
        let pr = v.progress.unwrap();
        assert_eq!(pr.next_tier, "Silver");
        assert_eq!(pr.spend_needed, Some(Decimal::ONE));
        // Nothing changes a second time.
        assert!(wr(&b, |db| evaluate_tx(db, &p, a, t0, "daily")).is_none());
        let h = rd(&b, |db| history(db, a, 10));
        assert_eq!(h.len(), 2);
        // Both changes came with a till's sale or refund: the history's
        // `tier` transactions say which till.
        let origins: Vec<Option<String>> = rd(&b, |db| {
            db.query_map(
                "SELECT terminal_id FROM txns WHERE kind = 'tier' ORDER BY id",
                args![],
                |r| r.get(0),
            )
        });
        assert_eq!(
            origins,
            [Some(till.terminal.clone()), Some(till.terminal.clone())]
        );
        assert_eq!(h[0].to, "Bronze");
        assert_eq!(h[1].to, "Silver");
        // Without levels nothing is evaluated or shown.
        let plain = Programme::default();
        assert!(wr(&b, |db| evaluate_tx(db, &plain, a, t0, "daily")).is_none());
        assert_eq!(rd(&b, |db| view(db, &plain, a, t0)), TierView::default());
    }

    #[tokio::test]
    async fn a_late_booking_counts_in_the_window_of_its_own_day() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let mut t = tiers();
        t[1].spend_period_days = Some(3);
        let p = Programme {
            tiers: t,
            ..Programme::default()
        };
        let e = crate::ledger::embedded::Embedded::new(store, p);
        let now = time::OffsetDateTime::now_utc();
        let day = |d: i64| Some(now - time::Duration::days(d));
        // Two sales of 600 a day apart, twenty days ago, booked only now: on
        // the second one's day the 3-day window holds both, 1200.
        e.commit_at(
            "k1".into(),
            CARD.into(),
            "R1".into(),
            sale(600),
            Decimal::ZERO,
            day(20),
            None,
        )
        .await
        .unwrap();
        let r = e
            .commit_at(
                "k2".into(),
                CARD.into(),
                "R2".into(),
                sale(600),
                Decimal::ZERO,
                day(19),
                None,
            )
            .await
            .unwrap();
        let change = r.tier_change.expect("the level changes on the sale's day");
        assert_eq!(change.to, "Silver", "{change:?}");
        assert_eq!(change.at, crate::ledger::embedded::ts(day(19).unwrap()));
        // The same two sales, the second booked at today's time: the first
        // is outside today's window, no change.
        let other = "6035000033334444";
        e.commit_at(
            "k3".into(),
            other.into(),
            "R3".into(),
            sale(600),
            Decimal::ZERO,
            day(20),
            None,
        )
        .await
        .unwrap();
        let today = e
            .commit(
                "k4".into(),
                other.into(),
                "R4".into(),
                sale(600),
                Decimal::ZERO,
                None,
            )
            .await
            .unwrap();
        assert!(
            today.tier_change.as_ref().is_none_or(|c| c.to != "Silver"),
            "{today:?}"
        );
    }
}
