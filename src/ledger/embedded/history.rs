//! An account's history: its transactions page by page, newest first.

use time::OffsetDateTime;

use super::refund::refund_marker_sale;
use super::{
    AccountRef, CommitResult, HISTORY_MAX_LIMIT, HistoryEntry, HistoryPage, HistoryTxn,
    LedgerError, TxResult, balance_units, card_account, expire_due, points,
};
use super::{audit, book};
use crate::ledger::db::{Db, args};
use crate::ledger::origin::Origin;

/// A stored origin column: empty means not recorded.
fn recorded(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// [`Embedded::history`] at `now`: transactions of the account older than
/// `cursor` (a transaction id; `None` = the newest), at most `limit`
/// (clamped to 1..=[`HISTORY_MAX_LIMIT`]). Runs in a write transaction:
/// posting due expiries writes, and the page must be one consistent
/// snapshot with the balance next to it.
///
/// [`Embedded::history`]: super::Embedded::history
pub(crate) fn history_tx(
    db: &dyn Db,
    who: &AccountRef,
    cursor: Option<i64>,
    limit: u32,
    now: OffsetDateTime,
    origin: &Origin,
) -> TxResult<HistoryPage> {
    let limit = limit.clamp(1, HISTORY_MAX_LIMIT);
    let account = match who {
        AccountRef::Number(n) => match card_account(db, n)? {
            Some((a, _)) => a,
            None => return Ok(Err(LedgerError::UnknownCard)),
        },
        AccountRef::Account(id) => {
            let found: Option<i64> =
                db.query_opt("SELECT id FROM accounts WHERE id = ?1", args![id], |r| {
                    r.get(0)
                })?;
            match found {
                Some(a) => a,
                None => return Ok(Err(LedgerError::UnknownAccount)),
            }
        }
    };
    expire_due(db, account, now, origin)?;
    let balance = balance_units(db, account)?;
    let held = book::held_units(db, account, now)?.0;
    // One row more than asked tells whether there is a next page.
    let mut txns: Vec<HistoryTxn> = db.query_map(
        // Only an adjustment's request is read (its reason and operator); a
        // sale's carries all its lines.
        "SELECT id, kind, created_at, receipt_id, result, store_id, terminal_id,
                CASE WHEN kind = 'adjust' THEN request END, cashier FROM txns
         WHERE account_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
        args![account, cursor.unwrap_or(i64::MAX), i64::from(limit) + 1],
        |r| {
            let kind: String = r.get(1)?;
            let receipt: Option<String> = r.get(3)?;
            let detail = if kind == "overrides" || kind == "tier" {
                serde_json::from_str(&r.get::<String>(4)?).ok()
            } else if kind == "sale" {
                // The order's own terms set by the cashier, if any: only
                // such a result is parsed.
                r.get::<Option<String>>(4)?
                    .filter(|s| s.contains("\"terms\""))
                    .and_then(|s| serde_json::from_str::<CommitResult>(&s).ok())
                    .and_then(|c| c.terms)
                    .and_then(|t| serde_json::to_value(t).ok())
            } else {
                None
            };
            // What the clamp policy forgave lives in the refund's result.
            let clawback_shortfall = if kind == "refund" {
                audit::forgiven(r.get::<Option<String>>(4)?.as_deref())
            } else {
                None
            };
            let (reason, operator) = audit::adjust_note(r.get::<Option<String>>(7)?.as_deref());
            let refund_of = if kind == "refund" {
                receipt.as_deref().and_then(refund_marker_sale)
            } else {
                None
            };
            Ok(HistoryTxn {
                transaction: r.get(0)?,
                created_at: r.get(2)?,
                receipt_id: if refund_of.is_some() { None } else { receipt },
                refund_of,
                kind,
                store: recorded(r.get(5)?),
                terminal: recorded(r.get(6)?),
                reason,
                operator,
                cashier: r.get(8)?,
                clawback_shortfall,
                entries: Vec::new(),
                detail,
            })
        },
    )?;
    let more = txns.len() > limit as usize;
    txns.truncate(limit as usize);
    for t in &mut txns {
        t.entries = db.query_map(
            "SELECT e.kind, e.amount, e.lot_id, l.expires_at, l.available_at
             FROM entries e LEFT JOIN lots l ON l.id = e.lot_id
             WHERE e.txn_id = ?1 ORDER BY e.id",
            args![t.transaction],
            |r| {
                Ok(HistoryEntry {
                    kind: r.get(0)?,
                    amount: points(r.get(1)?),
                    lot: r.get(2)?,
                    lot_expires_at: r.get(3)?,
                    lot_available_at: r.get(4)?,
                })
            },
        )?;
    }
    Ok(Ok(HistoryPage {
        account,
        balance: points(balance - held),
        held: points(held),
        next_cursor: if more {
            txns.last().map(|t| t.transaction)
        } else {
            None
        },
        transactions: txns,
    }))
}
