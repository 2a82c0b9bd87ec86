//! Points a guest did not get because the till lost its link (issue 21
//! item 7, seed 003): an operator books a past receipt's accrual, computed
//! by the programme's rules for its lines, once per receipt and account.
//!
//! It is an adjustment (`kind` `adjust`, so history and export show its
//! reason and operator) whose `receipt_id` is the receipt: that is what
//! refuses a second credit for the receipt, and what tells the receipt had
//! accrued already when the till did book the sale after all.

use rust_decimal::Decimal;
use serde_json::json;
use time::OffsetDateTime;

use super::{
    AdjustResult, LATE_AHEAD, LedgerError, TxResult, accrue, balance_units, card_account,
    expire_due, finish, new_txn, points, priced_overrides, replay, ts, units,
};
use crate::ledger::db::{Db, args};
use crate::ledger::origin::Origin;
use crate::ledger::programmes::Programmes;
use crate::ledger::rules::{self, Programme, RulesError, SaleLine};

fn refused(field: &str, reason: String) -> LedgerError {
    LedgerError::Rules(RulesError::Invalid {
        field: field.to_owned(),
        reason,
    })
}

/// What an operator names of the missed sale.
pub struct Missed<'a> {
    /// The card the points go to.
    pub number: &'a str,
    /// The POS's receipt id of the sale.
    pub receipt: &'a str,
    /// Its lines, as the receipt shows them.
    pub lines: &'a [SaleLine],
    /// When it was sold: the points' expiry counts from then.
    pub sold_at: OffsetDateTime,
    /// Why, for history.
    pub reason: &'a str,
    /// Who, for history.
    pub operator: &'a str,
    /// Overrides the expiry counted from `sold_at`.
    pub expires_at: Option<OffsetDateTime>,
}

/// Books `m`'s accrual at `now`, in the caller's transaction: the
/// programme's rules of today and the account's own rates (no points were
/// spent on a sale the ledger never saw), expiring as if accrued at the
/// sale. Refused (`-32602`) when the receipt already accrued on this
/// account (a sale, or an earlier missed accrual), when the lines accrue
/// nothing, when `sold_at` lies ahead, or when the points would already
/// have expired and no `expires_at` is given.
pub(crate) fn accrue_missed_tx(
    db: &dyn Db,
    ps: &Programmes,
    key: &str,
    m: &Missed<'_>,
    now: OffsetDateTime,
    origin: &Origin,
) -> TxResult<AdjustResult> {
    let request = json!({
        "missed_receipt": m.receipt, "number": m.number, "lines": m.lines,
        "sold_at": ts(m.sold_at), "reason": m.reason, "operator": m.operator,
        "expires_at": m.expires_at.map(ts),
    })
    .to_string();
    if let Some(r) = replay(db, key, &request)? {
        return Ok(r);
    }
    if m.sold_at > now + LATE_AHEAD {
        return Ok(Err(refused(
            "sold_at",
            format!("{} is ahead of the ledger's clock", ts(m.sold_at)),
        )));
    }
    let Some((account, _)) = card_account(db, m.number)? else {
        return Ok(Err(LedgerError::UnknownCard));
    };
    // By the rules of the account's own programme.
    let p = match ps.of_account(db, account)? {
        Ok(p) => p,
        Err(e) => return Ok(Err(e.into())),
    };
    let p: &Programme = p.as_ref();
    let before_txn: Option<(i64, String)> = db.query_opt(
        "SELECT id, kind FROM txns WHERE account_id = ?1 AND receipt_id = ?2
           AND kind IN ('sale', 'adjust') ORDER BY id LIMIT 1",
        args![account, m.receipt],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if let Some((id, kind)) = before_txn {
        let what = if kind == "sale" {
            "its sale"
        } else {
            "a missed accrual"
        };
        return Ok(Err(refused(
            "receipt",
            format!(
                "receipt {} already accrued on this account ({what}, transaction {id})",
                m.receipt
            ),
        )));
    }
    let overrides = priced_overrides(db, p, account)?;
    let q = match rules::quote(p, &overrides, m.lines, Decimal::ZERO, Decimal::ZERO) {
        Ok(q) => q,
        Err(e) => return Ok(Err(e.into())),
    };
    if q.accrual <= Decimal::ZERO {
        return Ok(Err(refused(
            "lines",
            "these lines accrue nothing under the programme's rules".into(),
        )));
    }
    let expires = match m.expires_at {
        Some(t) => Some(t),
        // Dated by the account's level, as the sale's points would have been.
        None => match rules::levels::expiry_for(
            p,
            crate::ledger::tiers::tier_of(db, p, account)?,
            m.sold_at,
        ) {
            Ok(e) => e,
            Err(e) => return Ok(Err(e.into())),
        },
    };
    if let Some(e) = expires.filter(|e| *e <= now) {
        return Ok(Err(refused(
            "sold_at",
            format!(
                "points accrued at {} expired at {}: give expires_at to credit them anyway",
                ts(m.sold_at),
                ts(e)
            ),
        )));
    }
    expire_due(db, account, now, origin)?;
    let before = balance_units(db, account)?;
    let stamp = ts(now);
    let txn = new_txn(
        db,
        key,
        "adjust",
        account,
        Some(m.receipt),
        &request,
        &stamp,
        origin,
        None,
    )?;
    let at = expires.map(ts);
    let (lot, repaid) = accrue(
        db,
        txn,
        account,
        units(q.accrual),
        "adjust",
        at.as_deref(),
        // Owed since the sale: spendable at once, not held again.
        None,
        &stamp,
    )?;
    let result = AdjustResult {
        transaction: txn,
        account,
        amount: q.accrual,
        expires_at: if lot.is_some() { at } else { None },
        debt_repaid: points(repaid),
        balance_before: points(before),
        balance_after: points(balance_units(db, account)?),
        replayed: false,
    };
    finish(db, txn, result)
}
