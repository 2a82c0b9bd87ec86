//! A sale's lines as committed (`sale_lines`), and what a return by lines
//! gives back from them ([`crate::ledger::rules::lines`] does the
//! arithmetic).

use rust_decimal::Decimal;

use super::{points, units};
use crate::ledger::db::{Db, DbError, args};
use crate::ledger::rules::lines::{self, CommittedLine, ReturnLine, ReturnedLine};
use crate::ledger::rules::{Quote, RulesError, SaleLine};
use crate::ledger::types::RefundResult;

/// Records a committed sale's lines with their own share of its accrual
/// (`accrued`, in `accrual_scale` places) and of its redemption.
pub(crate) fn store(
    db: &dyn Db,
    txn: i64,
    sold: &[SaleLine],
    q: &Quote,
    accrual_scale: u32,
) -> Result<(), DbError> {
    let accrued = lines::line_accruals(&q.lines, q.accrual, accrual_scale);
    for (i, ((l, lq), a)) in sold.iter().zip(&q.lines).zip(accrued).enumerate() {
        db.execute(
            "INSERT INTO sale_lines (txn_id, idx, sku, qty, total, accrued, redeemed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            args![
                txn,
                i,
                l.sku,
                l.qty.normalize().to_string(),
                units(lq.total),
                units(a),
                units(lq.redeemed)
            ],
        )?;
    }
    Ok(())
}

/// A sale's committed lines in order; `None` for a sale committed before
/// lines were kept.
pub(crate) fn committed(db: &dyn Db, sale_txn: i64) -> Result<Option<Vec<CommittedLine>>, DbError> {
    let rows: Vec<(String, String, i64, i64, i64)> = db.query_map(
        "SELECT sku, qty, total, accrued, redeemed FROM sale_lines WHERE txn_id = ?1 ORDER BY idx",
        args![sale_txn],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    if rows.is_empty() {
        return Ok(None);
    }
    rows.into_iter()
        .map(|(sku, qty, total, accrued, redeemed)| {
            let qty = qty
                .parse::<Decimal>()
                .map_err(|_| DbError::Invariant("a sale line's quantity is unreadable"))?;
            Ok(CommittedLine {
                sku,
                qty,
                total: points(total),
                accrued: points(accrued),
                redeemed: points(redeemed),
            })
        })
        .collect::<Result<Vec<_>, DbError>>()
        .map(Some)
}

/// What a return gives back: the money refunded, the accrual to claw back,
/// the spent points to give back, and its lines (empty for a return by
/// amount).
pub(crate) struct Share {
    pub amount: Decimal,
    pub clawback: Decimal,
    pub return_points: Decimal,
    pub lines: Vec<ReturnedLine>,
}

fn refused(field: &str, reason: &str) -> RulesError {
    RulesError::Invalid {
        field: field.to_owned(),
        reason: reason.to_owned(),
    }
}

/// The share of a return by lines (`returned`), or of the whole rest of a
/// sale that earlier returns took back by lines (`returned` `None`), after
/// the earlier returns `prev`. `Ok(None)`: a return by amount on a sale
/// never returned by lines, for the caller's money-share path.
/// A sale returned one way is not returned the other: the two shares
/// would not add up to the sale's figures.
pub(crate) fn share(
    db: &dyn Db,
    sale_txn: i64,
    prev: &[RefundResult],
    returned: Option<&[ReturnLine]>,
    amount: Option<Decimal>,
    precision: u32,
    accrual_scale: u32,
) -> Result<Result<Option<Share>, RulesError>, DbError> {
    let by_lines = prev.iter().any(|r| !r.lines.is_empty());
    let by_amount = prev
        .iter()
        .any(|r| r.lines.is_empty() && !r.refunded.is_zero());
    let returned: Vec<ReturnLine> = match (returned, amount) {
        (Some(_), Some(_)) => {
            return Ok(Err(refused(
                "amount",
                "give either amount or lines, not both",
            )));
        }
        (Some(_), None) if by_amount => {
            return Ok(Err(refused(
                "lines",
                "this sale was returned by amount before: return the rest by amount",
            )));
        }
        (Some(r), None) => r.to_vec(),
        (None, Some(_)) if by_lines => {
            return Ok(Err(refused(
                "amount",
                "this sale was returned by lines before: name the lines returned",
            )));
        }
        (None, None) if by_lines => Vec::new(),
        (None, _) => return Ok(Ok(None)),
    };
    let Some(sale) = committed(db, sale_txn)? else {
        return Ok(Err(refused(
            "lines",
            "this sale was committed before sales kept their lines: return it by amount",
        )));
    };
    // What earlier returns took back of each line.
    let mut already = vec![Decimal::ZERO; sale.len()];
    for l in prev.iter().flat_map(|r| &r.lines) {
        if let Some(a) = already.get_mut(l.line) {
            *a += l.qty;
        }
    }
    let returned = if returned.is_empty() {
        // The whole rest: every line not yet fully returned.
        sale.iter()
            .zip(&already)
            .enumerate()
            .filter(|(_, (l, a))| l.qty > **a)
            .map(|(i, (l, a))| ReturnLine {
                sku: l.sku.clone(),
                qty: l.qty - *a,
                line: Some(i),
            })
            .collect()
    } else {
        returned
    };
    let lines = if returned.is_empty() {
        Vec::new()
    } else {
        match lines::return_lines(&sale, &already, &returned, precision, accrual_scale) {
            Ok(l) => l,
            Err(e) => return Ok(Err(e)),
        }
    };
    Ok(Ok(Some(Share {
        amount: lines.iter().map(|l| l.amount).sum::<Decimal>().normalize(),
        clawback: lines.iter().map(|l| l.clawback).sum(),
        return_points: lines.iter().map(|l| l.return_points).sum(),
        lines,
    })))
}
