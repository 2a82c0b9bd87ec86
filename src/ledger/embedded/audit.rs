//! The whole ledger at once: the invariant check (`posbridge ledger
//! verify`, `posbridge-central verify`) and the export of every
//! transaction (`ledger export`). Both read in pages of bounded size, so
//! a ledger of millions of rows never sits in memory at once.

use rust_decimal::Decimal;

use super::{ExportRow, points};
use crate::ledger::db::{Db, DbError, args};

/// An adjustment's reason and operator, read from its stored request: they
/// live only there (the request text is compared on a key's repeat, so it
/// is never rewritten into columns).
pub(super) fn adjust_note(request: Option<&str>) -> (Option<String>, Option<String>) {
    let Some(req) = request else {
        return (None, None);
    };
    let req: serde_json::Value = serde_json::from_str(req).unwrap_or_default();
    let text = |k: &str| req.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    (text("reason"), text("operator"))
}

/// The clawback a refund forgave (the `clamp` policy: points already
/// spent), read from its stored result, which has always recorded it;
/// `None` when nothing was forgiven.
pub(super) fn forgiven(result: Option<&str>) -> Option<Decimal> {
    let v: serde_json::Value = serde_json::from_str(result?).ok()?;
    v.get("clawback_shortfall")?
        .as_str()?
        .parse::<Decimal>()
        .ok()
        .filter(|d| !d.is_zero())
}

/// Accounts or transactions read per query. Tests read in pages of two,
/// so their few rows cross page boundaries.
const PAGE: i64 = if cfg!(test) { 2 } else { 1000 };

/// Every invariant of every account: balance = Σ entries = Σ lot
/// remainders − debt, the debt ≥ 0 and equal to what its lot-less entries
/// (`debt`, `debt_repay`) leave owed, each lot's remainder = Σ its entries,
/// no lot below zero or above its amount, and the account's maintained
/// columns equal to what they summarise (`balance` = Σ entries,
/// `next_expiry` = the earliest expiry of its open lots), no held lot spent
/// before its window ended nor expiring before it. Returns the violations found,
/// empty when all hold. Run it in one (read) transaction so it sees one
/// state of the books.
pub fn verify(db: &dyn Db) -> Result<Vec<String>, DbError> {
    let mut problems = Vec::new();
    let mut after = 0_i64;
    loop {
        #[allow(clippy::type_complexity)]
        let rows: Vec<(i64, i64, i64, i64, i64, i64, Option<String>, Option<String>)> = db
            .query_map(
                "SELECT a.id,
                    (SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT)
                     FROM entries e WHERE e.account_id = a.id),
                    (SELECT CAST(COALESCE(SUM(remaining), 0) AS BIGINT)
                     FROM lots l WHERE l.account_id = a.id),
                    a.debt,
                    (SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM entries e
                     WHERE e.account_id = a.id AND e.lot_id IS NULL),
                    a.balance,
                    a.next_expiry,
                    (SELECT MIN(expires_at) FROM lots l
                     WHERE l.account_id = a.id AND l.remaining > 0)
             FROM accounts a WHERE a.id > ?1 ORDER BY a.id LIMIT ?2",
                args![after, PAGE],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                    ))
                },
            )?;
        for (account, entries, lots, debt, lotless, balance, next, earliest) in &rows {
            let (account, entries, lots, debt, lotless, balance) =
                (*account, *entries, *lots, *debt, *lotless, *balance);
            if balance != entries {
                problems.push(format!(
                    "account {account}: balance column says {} but entries sum to {}",
                    points(balance),
                    points(entries)
                ));
            }
            if next != earliest {
                problems.push(format!(
                    "account {account}: next_expiry column says {} but the earliest open lot expires {}",
                    next.as_deref().unwrap_or("never"),
                    earliest.as_deref().unwrap_or("never")
                ));
            }
            if debt < 0 {
                problems.push(format!("account {account}: debt {} < 0", points(debt)));
            }
            if entries != lots - debt {
                problems.push(format!(
                    "account {account}: entries sum to {} but lots hold {} and the debt is {}",
                    points(entries),
                    points(lots),
                    points(debt)
                ));
            }
            if lotless != -debt {
                problems.push(format!(
                    "account {account}: debt entries leave {} owed but the debt is {}",
                    points(-lotless),
                    points(debt)
                ));
            }
        }
        match rows.last() {
            Some(&(last, ..)) if rows.len() as i64 == PAGE => after = last,
            _ => break,
        }
    }
    let bad: i64 = db.query_row(
        "SELECT COUNT(*) FROM lots WHERE remaining < 0 OR remaining > amount",
        args![],
        |r| r.get(0),
    )?;
    if bad > 0 {
        problems.push(format!("{bad} lots outside 0..=amount"));
    }
    // Every entry names its lot, so each lot's entries must add up to what
    // is left of it; a sum that only matches per account could hide points
    // moved between lots (spent from one, returned to another). Only the
    // violations come back, so the result stays small on a sound ledger.
    let rows: Vec<(i64, i64, i64)> = db.query_map(
        "SELECT l.id, l.remaining, CAST(COALESCE(SUM(e.amount), 0) AS BIGINT)
         FROM lots l LEFT JOIN entries e ON e.lot_id = l.id
         GROUP BY l.id, l.remaining HAVING l.remaining != COALESCE(SUM(e.amount), 0)
         ORDER BY l.id",
        args![],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    for (lot, remaining, sum) in rows {
        problems.push(format!(
            "lot {lot}: entries sum to {} but {} remains",
            points(sum),
            points(remaining)
        ));
    }
    // The accrual window: held points are never spent before their time,
    // and a held lot's lifetime starts when it becomes spendable. (What is
    // held is not a maintained column but summed from `lots_held` at the
    // time asked, so there is no copy to check against the lots.)
    let rows: Vec<(i64, String, String)> = db.query_map(
        "SELECT l.id, l.available_at, MIN(e.created_at)
         FROM lots l JOIN entries e ON e.lot_id = l.id
         WHERE l.available_at IS NOT NULL AND e.kind = 'redeem'
         GROUP BY l.id, l.available_at HAVING MIN(e.created_at) < l.available_at
         ORDER BY l.id LIMIT 100",
        args![],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    for (lot, available, spent) in rows {
        problems.push(format!(
            "lot {lot}: spent at {spent} while held until {available}"
        ));
    }
    let early: i64 = db.query_row(
        "SELECT COUNT(*) FROM lots
         WHERE available_at IS NOT NULL AND expires_at IS NOT NULL AND expires_at <= available_at",
        args![],
        |r| r.get(0),
    )?;
    if early > 0 {
        problems.push(format!(
            "{early} lots expire before their accrual window ends"
        ));
    }
    Ok(problems)
}

/// Calls `f` with every transaction and entry of the ledger, in id order,
/// stopping at the first error `f` returns (the inner result). Run it in
/// one (read) transaction so the pages add up to one state of the books.
pub fn export(
    db: &dyn Db,
    mut f: impl FnMut(&ExportRow) -> std::io::Result<()>,
) -> Result<std::io::Result<()>, DbError> {
    let mut after = 0_i64;
    loop {
        // A page of transactions by id, then their entries: a page holds
        // at most PAGE transactions whatever the size of the ledger.
        let ids: Vec<i64> = db.query_map(
            "SELECT id FROM txns WHERE id > ?1 ORDER BY id LIMIT ?2",
            args![after, PAGE],
            |r| r.get(0),
        )?;
        let Some(&last) = ids.last() else {
            return Ok(Ok(()));
        };
        let rows = db.query_map(
            // Only an adjustment's request (reason, operator) and a
            // refund's result (its forgiven clawback) are read; a sale's
            // request carries all its lines.
            "SELECT t.id, t.kind, t.created_at, t.account_id, t.receipt_id,
                    e.kind, e.amount, e.lot_id, t.cashier,
                    CASE WHEN t.kind = 'adjust' THEN t.request END,
                    CASE WHEN t.kind = 'refund' THEN t.result END
             FROM txns t LEFT JOIN entries e ON e.txn_id = t.id
             WHERE t.id > ?1 AND t.id <= ?2
             ORDER BY t.id, e.id",
            args![after, last],
            |r| {
                let (reason, operator) = adjust_note(r.get::<Option<String>>(9)?.as_deref());
                Ok(ExportRow {
                    txn: r.get(0)?,
                    kind: r.get(1)?,
                    created_at: r.get(2)?,
                    account: r.get(3)?,
                    receipt_id: r.get(4)?,
                    entry_kind: r.get(5)?,
                    amount: r.get::<Option<i64>>(6)?.map(points),
                    lot: r.get(7)?,
                    reason,
                    operator,
                    cashier: r.get(8)?,
                    clawback_shortfall: forgiven(r.get::<Option<String>>(10)?.as_deref()),
                })
            },
        )?;
        for row in &rows {
            if let Err(e) = f(row) {
                return Ok(Err(e));
            }
        }
        if (ids.len() as i64) < PAGE {
            return Ok(Ok(()));
        }
        after = last;
    }
}
