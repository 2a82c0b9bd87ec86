//! An operator's adjustment of an account's balance.

use rust_decimal::Decimal;
use serde_json::json;
use time::OffsetDateTime;

use super::{
    AdjustResult, LedgerError, Take, TxResult, accrue, balance_units, card_account, expire_due,
    finish, new_txn, points, replay, spendable_units, take_from_lots, ts, units,
};
use crate::ledger::db::Db;
use crate::ledger::origin::Origin;
use crate::ledger::programmes::Programmes;
use crate::ledger::rules;
#[cfg(test)]
use crate::ledger::rules::Programme;

/// [`adjust_tx_in`] with one programme (tests).
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn adjust_tx(
    db: &dyn Db,
    p: &Programme,
    key: &str,
    number: &str,
    amount: Decimal,
    reason: &str,
    operator: &str,
    expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
    origin: &Origin,
) -> TxResult<AdjustResult> {
    adjust_tx_in(
        db,
        &Programmes::single(p.clone()),
        key,
        number,
        amount,
        reason,
        operator,
        expires_at,
        now,
        origin,
    )
}

/// [`Embedded::adjust`] at `now`, in the caller's transaction, by the
/// rules of the card's account's programme.
///
/// [`Embedded::adjust`]: super::Embedded::adjust
#[allow(clippy::too_many_arguments)]
pub(crate) fn adjust_tx_in(
    db: &dyn Db,
    ps: &Programmes,
    key: &str,
    number: &str,
    amount: Decimal,
    reason: &str,
    operator: &str,
    expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
    origin: &Origin,
) -> TxResult<AdjustResult> {
    // Same text as it always was: existing keys must keep replaying.
    let request = json!({
        "number": number, "amount": amount.to_string(), "reason": reason,
        "operator": operator, "expires_at": expires_at.map(ts),
    })
    .to_string();
    let request = request.as_str();
    if let Some(r) = replay(db, key, request)? {
        return Ok(r);
    }
    let Some((account, _)) = card_account(db, number)? else {
        return Ok(Err(LedgerError::UnknownCard));
    };
    let p = match ps.of_account(db, account)? {
        Ok(p) => p,
        Err(e) => return Ok(Err(e.into())),
    };
    let p = p.as_ref();
    expire_due(db, account, now, origin)?;
    // An operator's deduction may take held points too (correcting an
    // accrual inside its window); the figures shown are spendable ones.
    let total = balance_units(db, account)?;
    let before = spendable_units(db, account, now)?;
    let stamp = ts(now);
    let delta = units(amount);
    if delta < 0 && total < -delta {
        return Ok(Err(LedgerError::InsufficientBalance {
            balance: points(total.max(0)),
        }));
    }
    let txn = new_txn(
        db, key, "adjust", account, None, request, &stamp, origin, None,
    )?;
    let mut expires = None;
    let mut repaid = 0;
    if delta > 0 {
        let at = match expires_at {
            Some(t) => Some(ts(t)),
            // Dated by the account's level, as a sale's points are.
            None => match rules::levels::expiry_for(
                p,
                crate::ledger::tiers::tier_of(db, p, account)?,
                now,
            ) {
                Ok(e) => e.map(ts),
                Err(e) => return Ok(Err(e.into())),
            },
        };
        let (lot, r) = accrue(
            db,
            txn,
            account,
            delta,
            "adjust",
            at.as_deref(),
            None,
            &stamp,
        )?;
        repaid = r;
        if lot.is_some() {
            expires = at;
        }
    } else if delta < 0 {
        take_from_lots(db, txn, account, None, -delta, "adjust", &stamp, Take::Any)?;
    }
    let after = spendable_units(db, account, now)?;
    let result = AdjustResult {
        transaction: txn,
        account,
        amount,
        expires_at: expires,
        debt_repaid: points(repaid),
        balance_before: points(before),
        balance_after: points(after),
        replayed: false,
    };
    finish(db, txn, result)
}
