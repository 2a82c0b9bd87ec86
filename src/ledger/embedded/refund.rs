//! The return path: a return's stored request and the return transaction,
//! by amount or by lines, against the sale it names.

use rust_decimal::Decimal;
use serde_json::json;
use time::OffsetDateTime;

use super::lines;
use super::{
    CommitResult, LedgerError, RefundResult, SaleRef, Take, TxResult, entry, expire_due, finish,
    new_txn, points, refresh_next_expiry, replay, spendable_units, store_result, take_from_lots,
    ts, units,
};
use crate::ledger::db::{Db, DbError, args};
use crate::ledger::origin::Origin;
use crate::ledger::programmes::Programmes;
use crate::ledger::rules::lines::ReturnLine;
use crate::ledger::rules::{self, Programme, RefundShortfall};

/// The refund marker stored in a refund's `receipt_id` column.
pub(super) fn refund_marker_sale(receipt: &str) -> Option<i64> {
    receipt.strip_prefix("refund-of:")?.parse().ok()
}

/// The text a return's request is stored as (its exact text is part of
/// every existing database, so it must not change: a return by lines adds
/// its `lines`, a return by amount is written as it always was).
pub(crate) fn refund_request(
    sale: &SaleRef,
    amount: Option<Decimal>,
    lines: Option<&[ReturnLine]>,
) -> String {
    match lines {
        None => json!({"sale": sale, "amount": amount.map(|a| a.to_string())}).to_string(),
        Some(l) => {
            json!({"sale": sale, "amount": amount.map(|a| a.to_string()), "lines": l}).to_string()
        }
    }
}

/// [`refund_tx_in`] with one programme (tests).
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn refund_tx(
    db: &dyn Db,
    p: &Programme,
    key: &str,
    sale: &SaleRef,
    amount: Option<Decimal>,
    returned: Option<&[ReturnLine]>,
    now: OffsetDateTime,
    origin: &Origin,
    cashier: Option<&str>,
) -> TxResult<RefundResult> {
    refund_tx_in(
        db,
        &Programmes::single(p.clone()),
        key,
        sale,
        amount,
        returned,
        now,
        origin,
        cashier,
    )
}

/// [`Embedded::refund`] at `now`, in the caller's transaction (tests pick
/// `now` to move through expiry boundaries), by the rules of the sale's
/// account's programme.
///
/// [`Embedded::refund`]: super::Embedded::refund
#[allow(clippy::too_many_arguments)]
pub(crate) fn refund_tx_in(
    db: &dyn Db,
    ps: &Programmes,
    key: &str,
    sale: &SaleRef,
    amount: Option<Decimal>,
    returned: Option<&[ReturnLine]>,
    now: OffsetDateTime,
    origin: &Origin,
    cashier: Option<&str>,
) -> TxResult<RefundResult> {
    // The stored request a repeat of the key is compared with: its exact
    // text is part of every existing database, so it must not change.
    let request = refund_request(sale, amount, returned);
    let request = request.as_str();
    if let Some(r) = replay(db, key, request)? {
        return Ok(r);
    }
    let read = |r: &crate::ledger::db::Row| Ok((r.get(0)?, r.get(1)?, r.get(2)?));
    let row: Option<(i64, i64, String)> = match sale {
        SaleRef::Transaction(id) => db.query_opt(
            "SELECT id, account_id, result FROM txns WHERE kind = 'sale' AND id = ?1",
            args![id],
            read,
        )?,
        SaleRef::Receipt(rid) => db.query_opt(
            "SELECT id, account_id, result FROM txns WHERE kind = 'sale' AND receipt_id = ?1
             ORDER BY id DESC LIMIT 1",
            args![rid],
            read,
        )?,
    };
    let Some((sale_txn, account, sale_result)) = row else {
        return Ok(Err(LedgerError::UnknownSale));
    };
    let p = match ps.of_account(db, account)? {
        Ok(p) => p,
        Err(e) => return Ok(Err(e.into())),
    };
    let p = p.as_ref();
    let Ok(original) = serde_json::from_str::<CommitResult>(&sale_result) else {
        return Err(DbError::Invariant("a sale's stored result is unreadable"));
    };
    // What earlier refunds of this sale already covered.
    let marker = format!("refund-of:{sale_txn}");
    let prev: Vec<RefundResult> = db
        .query_map(
            "SELECT result FROM txns WHERE kind = 'refund' AND receipt_id = ?1",
            args![marker],
            |r| r.get::<String>(0),
        )?
        .iter()
        .filter_map(|r| serde_json::from_str::<RefundResult>(r).ok())
        .collect();
    let already: Decimal = prev.iter().map(|prev| prev.refunded).sum();
    let by_lines = match lines::share(
        db,
        sale_txn,
        &prev,
        returned,
        amount,
        p.precision,
        p.accrual_rounding.scale(),
    )? {
        Ok(s) => s,
        Err(e) => return Ok(Err(e.into())),
    };
    let (amount, share, returned_lines) = match by_lines {
        Some(s) => (
            s.amount,
            rules::RefundShare {
                clawback: s.clawback,
                return_points: s.return_points,
            },
            s.lines,
        ),
        None => {
            let amount = amount.unwrap_or(original.total - already);
            let share = refund_share_of(p, &original, already, amount);
            match share {
                Ok(s) => (amount, s, Vec::new()),
                Err(e) => return Ok(Err(e.into())),
            }
        }
    };
    // The programme may keep the spent points on a return (seed 004's switch).
    let share = rules::switches::refund_policy(p, share);
    expire_due(db, account, now, origin)?;
    let before = spendable_units(db, account, now)?;
    let stamp = ts(now);
    let txn = new_txn(
        db,
        key,
        "refund",
        account,
        Some(&marker),
        request,
        &stamp,
        origin,
        cashier,
    )?;

    // Claw back the accrual, from the sale's own lot first.
    let sale_lot: Option<i64> = db.query_opt(
        "SELECT id FROM lots WHERE txn_id = ?1",
        args![sale_txn],
        |r| r.get(0),
    )?;
    let want = units(share.clawback);
    // Held points count: inside the window the sale's own lot still holds
    // its whole accrual (nothing could spend it), so the return takes it
    // back with no shortfall and no debt.
    let took = take_from_lots(
        db,
        txn,
        account,
        sale_lot,
        want,
        "clawback",
        &stamp,
        Take::Any,
    )?;
    // What the lots could not give: owed, or forgiven, per the programme.
    let owed = match p.refund_shortfall {
        RefundShortfall::Debt if want > took => {
            let owed = want - took;
            db.execute(
                "UPDATE accounts SET debt = debt + ?1 WHERE id = ?2",
                args![owed, account],
            )?;
            entry(db, txn, account, None, "debt", -owed, &stamp)?;
            owed
        }
        _ => 0,
    };

    // Give spent points back to the lots they came from, newest first.
    let spent: Vec<(i64, i64, Option<String>)> = db.query_map(
        "SELECT e.lot_id, -e.amount, l.expires_at FROM entries e JOIN lots l ON l.id = e.lot_id
         WHERE e.txn_id = ?1 AND e.kind = 'redeem' ORDER BY e.id DESC",
        args![sale_txn],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let mut left = units(share.return_points);
    let mut expired = 0;
    for (lot, taken, expires) in spent {
        if left == 0 {
            break;
        }
        let room: i64 = db.query_row(
            "SELECT amount - remaining FROM lots WHERE id = ?1",
            args![lot],
            |r| r.get(0),
        )?;
        let give = left.min(taken).min(room);
        if give == 0 {
            continue;
        }
        db.execute(
            "UPDATE lots SET remaining = remaining + ?1 WHERE id = ?2",
            args![give, lot],
        )?;
        entry(db, txn, account, Some(lot), "refund_return", give, &stamp)?;
        if expires.as_deref().is_some_and(|e| e <= stamp.as_str()) {
            // Returned to a lot that has expired meanwhile: it expires now.
            db.execute(
                "UPDATE lots SET remaining = remaining - ?1 WHERE id = ?2",
                args![give, lot],
            )?;
            entry(db, txn, account, Some(lot), "expire", -give, &stamp)?;
            expired += give;
        }
        left -= give;
    }
    // Points given back reopen lots, possibly earlier-expiring ones.
    refresh_next_expiry(db, account)?;
    let after = spendable_units(db, account, now)?;
    let mut result = RefundResult {
        transaction: txn,
        sale_transaction: sale_txn,
        account,
        refunded: amount,
        clawback: points(took + owed),
        clawback_shortfall: points(want - took - owed),
        clawback_debt: points(owed),
        returned: points(units(share.return_points) - left),
        returned_expired: points(expired),
        balance_before: points(before),
        balance_after: points(after),
        tier_change: None,
        replayed: false,
        pending: None,
        lines: returned_lines,
    };
    if !p.tiers.is_empty() {
        // Returned goods no longer count towards the account's level. The
        // evaluation reads refunds from their stored results, so this one's
        // is written first (and again, final, by `finish`).
        store_result(db, txn, &result)?;
        result.tier_change =
            crate::ledger::tiers::evaluate_as(db, p, account, now, "refund", origin)?;
    }
    finish(db, txn, result)
}

/// A return by amount's money share of `original`'s points (see
/// [`rules::refund_share`]).
fn refund_share_of(
    p: &Programme,
    original: &CommitResult,
    already: Decimal,
    amount: Decimal,
) -> Result<rules::RefundShare, rules::RulesError> {
    rules::refund_share(
        &rules::CommittedSale {
            total: original.total,
            accrued: original.accrued,
            redeemed: original.redeemed,
            precision: p.precision,
            accrual_scale: p.accrual_rounding.scale(),
        },
        already,
        amount,
    )
}
