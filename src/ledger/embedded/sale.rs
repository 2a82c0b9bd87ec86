//! The sale path: a sale's stored request, its replay by key, and the one
//! sale transaction ([`commit_full_tx`]) with its shorthands.

use rust_decimal::Decimal;
use serde_json::json;
use time::OffsetDateTime;

use super::{
    CommitResult, LedgerError, Take, TxResult, balance_units, card_account_locked, claim_txn,
    commit_request, enrol, expire_due, finish, points, replay, ts, units,
};
use super::{book, lines, promo};
use crate::ledger::db::{Db, DbError, args};
use crate::ledger::origin::Origin;
use crate::ledger::programmes::Programmes;
#[cfg(test)]
use crate::ledger::rules::Programme;
use crate::ledger::rules::{self, OrderTerms, SaleLine};
use crate::ledger::types::Replayable;

/// [`commit_request`] with the order's own terms and promo code (the
/// code normalized), when the cashier gave any: the same text plus them,
/// so a repeat of the key with other terms or another code is refused
/// (without either, the text stays the old one).
pub(crate) fn commit_request_full(
    number: &str,
    receipt_id: &str,
    lines: &[SaleLine],
    redeem: Decimal,
    terms: &OrderTerms,
    promo_code: Option<&str>,
) -> String {
    if terms.is_empty() && promo_code.is_none() {
        return commit_request(number, receipt_id, lines, redeem);
    }
    // `json!` objects sort their keys: the same text as the one-extra forms.
    let mut v = json!({"number": number, "receipt_id": receipt_id, "lines": lines,
                       "redeem": redeem.to_string()});
    if !terms.is_empty() {
        v["terms"] = json!(terms);
    }
    if let Some(c) = promo_code {
        v["promo_code"] = json!(rules::campaigns::normalize_code(c));
    }
    v.to_string()
}

/// Whether a stored sale request is `wanted` (a [`commit_request`]) once
/// its order terms are set aside: a retry that can no longer name its
/// card finds its sale whatever terms it had, and the caller compares the
/// terms the stored result records.
fn same_sale_request(stored: &str, wanted: &str) -> bool {
    if stored == wanted {
        return true;
    }
    let Ok(serde_json::Value::Object(mut s)) = serde_json::from_str(stored) else {
        return false;
    };
    if s.remove("terms").is_none() {
        return false;
    }
    serde_json::from_str::<serde_json::Value>(wanted).ok() == Some(serde_json::Value::Object(s))
}

/// [`Embedded::replay_commit`] in the caller's transaction (it only reads).
///
/// [`Embedded::replay_commit`]: super::Embedded::replay_commit
pub(crate) fn replay_commit_tx(
    db: &dyn Db,
    key: &str,
    receipt_id: &str,
    lines: &[SaleLine],
    redeem: Decimal,
) -> TxResult<Option<(String, CommitResult)>> {
    let row: Option<(String, String, String)> = db.query_opt(
        "SELECT kind, request, result FROM txns WHERE idempotency_key = ?1",
        args![key],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let Some((kind, request, result)) = row else {
        return Ok(Ok(None));
    };
    let stored = serde_json::from_str::<serde_json::Value>(&request).ok();
    let field = |k: &str| {
        stored
            .as_ref()
            .and_then(|v| v.get(k).and_then(|n| n.as_str()).map(str::to_owned))
    };
    let number = field("number");
    let Some(number) = number.filter(|_| kind == "sale") else {
        return Ok(Err(LedgerError::KeyReused));
    };
    // A retry without its card token cannot name the promo code again
    // (the POS may not keep it): it is matched on everything else.
    let promo_code = field("promo_code");
    let wanted = commit_request_full(
        &number,
        receipt_id,
        lines,
        redeem,
        &OrderTerms::default(),
        promo_code.as_deref(),
    );
    if !same_sale_request(&request, &wanted) {
        return Ok(Err(LedgerError::KeyReused));
    }
    match serde_json::from_str::<CommitResult>(&result) {
        Ok(mut r) => {
            r.mark_replayed();
            Ok(Ok(Some((number, r))))
        }
        Err(_) => Ok(Err(LedgerError::KeyReused)),
    }
}

/// [`commit_tx_in`] with one programme (tests).
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn commit_tx(
    db: &dyn Db,
    p: &Programme,
    key: &str,
    number: &str,
    receipt_id: &str,
    lines: &[SaleLine],
    redeem: Decimal,
    now: OffsetDateTime,
    origin: &Origin,
    cashier: Option<&str>,
) -> TxResult<CommitResult> {
    commit_tx_in(
        db,
        &Programmes::single(p.clone()),
        key,
        number,
        receipt_id,
        lines,
        redeem,
        now,
        origin,
        cashier,
    )
}

/// [`Embedded::commit`] at `now`, in the caller's transaction, by the
/// rules of the card's account's programme (a card without an account
/// joins the programme its range routes to, else the till's own). Without
/// order terms or a promo code: the tests' shorthand for [`commit_full_tx`].
///
/// [`Embedded::commit`]: super::Embedded::commit
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn commit_tx_in(
    db: &dyn Db,
    ps: &Programmes,
    key: &str,
    number: &str,
    receipt_id: &str,
    lines: &[SaleLine],
    redeem: Decimal,
    now: OffsetDateTime,
    origin: &Origin,
    cashier: Option<&str>,
) -> TxResult<CommitResult> {
    let terms = OrderTerms::default();
    commit_full_tx(
        db, ps, key, number, receipt_id, lines, redeem, now, origin, cashier, &terms, None,
    )
}

/// [`commit_tx_in`] with the order's own terms set by the cashier.
#[allow(clippy::too_many_arguments)]
pub(crate) fn commit_terms_tx(
    db: &dyn Db,
    ps: &Programmes,
    key: &str,
    number: &str,
    receipt_id: &str,
    lines: &[SaleLine],
    redeem: Decimal,
    now: OffsetDateTime,
    origin: &Origin,
    cashier: Option<&str>,
    terms: &OrderTerms,
) -> TxResult<CommitResult> {
    commit_full_tx(
        db, ps, key, number, receipt_id, lines, redeem, now, origin, cashier, terms, None,
    )
}

/// The one sale transaction: the order's terms and a promo code (checked
/// against its limits and counted after the key is claimed, so a repeat of
/// the key counts nothing), either or both.
#[allow(clippy::too_many_arguments)]
pub(crate) fn commit_full_tx(
    db: &dyn Db,
    ps: &Programmes,
    key: &str,
    number: &str,
    receipt_id: &str,
    lines: &[SaleLine],
    redeem: Decimal,
    now: OffsetDateTime,
    origin: &Origin,
    cashier: Option<&str>,
    terms: &OrderTerms,
    promo_code: Option<&str>,
) -> TxResult<CommitResult> {
    let request = commit_request_full(number, receipt_id, lines, redeem, terms, promo_code);
    let request = request.as_str();
    // Taken first, with what the sale reads of it: the sale runs at READ
    // COMMITTED on PostgreSQL unless it carries a promo code
    // (`Embedded::commit_full`).
    let (acct, p) = match card_account_locked(db, number)? {
        Some(a) => match ps.of_stored_key(&a.programme) {
            Ok(p) => (a, p),
            // A repeat of a key booked before the till stopped serving
            // the programme is refused too: nothing of it is this till's.
            Err(e) => return Ok(Err(e.into())),
        },
        None => match ps.for_new(None, Some(number)) {
            Ok((key, p)) => {
                let id = enrol(db, number, &key, now)?;
                (book::LockedAccount::new_enrolled(id, key), p)
            }
            Err(e) => return Ok(Err(e.into())),
        },
    };
    let account = acct.id;
    let status = acct.status.clone();
    let p = p.as_ref();
    let stamp = ts(now);
    // The key is claimed by the txn row's insert, not looked up first (see
    // `claim_txn`). A repeat answers from the stored result even if the
    // card is blocked since; a refusal below rolls the claim back.
    let claimed = claim_txn(
        db,
        key,
        "sale",
        account,
        Some(receipt_id),
        request,
        &stamp,
        origin,
        cashier,
    )?;
    let Some(txn) = claimed else {
        return match replay(db, key, request)? {
            Some(r) => Ok(r),
            None => Err(DbError::Invariant("a claimed key without its txn row")),
        };
    };
    if status != "active" {
        return Ok(Err(LedgerError::Inactive(status)));
    }
    // After the claim, so a repeat of a sale booked while the programme
    // ran still answers; at the sale's own time (a late booking's `now`).
    if let Err(e) = rules::switches::check_active(p, now) {
        return Ok(Err(e.into()));
    }
    // After the claim: a repeat must write nothing, not even due burns.
    // The maintained next expiry says whether anything is due (the common
    // case: nothing, and no read of the lots).
    let mut before = acct.balance;
    // The account's next expiry, kept as this sale's writes move it.
    let mut next_expiry = acct.next_expiry.clone();
    if next_expiry
        .as_deref()
        .is_some_and(|at| at <= stamp.as_str())
    {
        expire_due(db, account, now, origin)?;
        before = balance_units(db, account)?;
        next_expiry = book::next_expiry_of(db, account)?;
    }
    // Held points (the accrual window) cannot pay for this sale.
    let held = book::held_units(db, account, now)?;
    let held_before = held.0;
    let spendable = before - held_before;
    let overrides = book::priced_overrides_from(db, p, account, acct.own.clone())?;
    let code = match promo_code {
        Some(c) => match promo::check(db, p, c, Some(account), now)? {
            Ok(code) => Some(code),
            Err(r) => return Ok(Err(r.into())),
        },
        None => None,
    };
    let groups = if p.campaigns.is_empty() {
        Vec::new()
    } else {
        crate::ledger::accounts::groups_of(db, account)?
    };
    let q = match rules::quote_with(
        p,
        &overrides,
        terms,
        lines,
        points(spendable.max(0)),
        redeem,
    )
    .and_then(|mut q| {
        rules::campaigns::apply(p, lines, &mut q, now, &groups, code.as_ref())?;
        Ok(q)
    }) {
        Ok(q) => q,
        Err(e) => return Ok(Err(e.into())),
    };
    if let Some(code) = &code {
        promo::record(db, code, account, txn, &stamp)?;
    }

    // Redeem: soonest-expiring lots first (lots without expiry last).
    let want = units(q.redeem);
    let (took, next_after_take) = book::take_from_lots_tracked(
        db,
        txn,
        account,
        None,
        want,
        "redeem",
        &stamp,
        Take::Spendable,
    )?;
    if took != want {
        // The balance said yes but the lots say no: a broken invariant.
        return Err(DbError::Invariant("the lots hold less than the balance"));
    }
    if let Some(n) = next_after_take {
        next_expiry = n;
    }

    // Accrue as a new lot.
    let accrued = units(q.accrual);
    // The level that priced the sale dates its points too (one this sale
    // earns applies from the next sale).
    let level = crate::ledger::tiers::tier_of(db, p, account)?;
    // Held until the window ends, and valid from then (`rules::hold`).
    let dates = match rules::hold::accrual_dates(p, level, now) {
        Ok(d) => d,
        Err(e) => return Ok(Err(e.into())),
    };
    let expires = dates.expires_at.map(ts);
    let available = dates.available_at.map(ts);
    let (lot, repaid) = if accrued > 0 {
        book::accrue_owing(
            db,
            txn,
            account,
            accrued,
            acct.debt,
            "accrue",
            expires.as_deref(),
            available.as_deref(),
            &stamp,
        )?
    } else {
        (None, 0)
    };
    // What the new lot changes of the summary's figures (`insert_lot`
    // keeps the stored next expiry the same way).
    let new_lot = if lot.is_some() { accrued - repaid } else { 0 };
    if new_lot > 0
        && let Some(at) = &expires
        && next_expiry.as_ref().is_none_or(|k| at < k)
    {
        next_expiry = Some(at.clone());
    }
    let newly_held = available.as_deref().is_some_and(|at| at > stamp.as_str());
    let held_after = match (held_before, newly_held && new_lot > 0) {
        (_, false) => held,
        (0, true) => (new_lot, available.clone().map(|at| (at, new_lot))),
        // Held lots before and a new one: which is released first is a read.
        (_, true) => book::held_units(db, account, now)?,
    };
    // Each line's share, for returns by lines.
    lines::store(db, txn, lines, &q, p.accrual_rounding.scale())?;
    // The sale counts towards the account's level in the same transaction;
    // a new level prices the next sale, not this one.
    let tier_change = crate::ledger::tiers::evaluate_as(db, p, account, now, "sale", origin)?;
    // The summary the bonus block prints, from this same transaction: no
    // second trip after the commit. The balance moved by exactly what this
    // sale posted (expiries were posted before `before`).
    let balance_after = before - want + accrued;
    // Tests and the proptests run with debug assertions: they hold this
    // arithmetic to the books.
    #[cfg(debug_assertions)]
    debug_assert_eq!(balance_after, balance_units(db, account)?);
    let debt_after = acct.debt - repaid;
    #[cfg(debug_assertions)]
    {
        let stored: (i64, Option<String>) = db.query_row(
            "SELECT debt, next_expiry FROM accounts WHERE id = ?1",
            args![account],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        debug_assert_eq!(stored, (debt_after, next_expiry.clone()));
        debug_assert_eq!(held_after, book::held_units(db, account, now)?);
    }
    let mut after = book::summary_known(
        db,
        account,
        status,
        balance_after,
        debt_after,
        next_expiry,
        held_after,
        now,
    )?;
    if !p.tiers.is_empty() {
        crate::ledger::tiers::annotate(db, p, &mut after, now)?;
    }
    // An invited customer's first purchase pays the referral bonuses, as
    // postings of their own after the sale's (its figures exclude them).
    crate::ledger::people::referral_after_sale(db, p, account, now, origin)?;
    let result = CommitResult {
        transaction: txn,
        account,
        receipt_id: receipt_id.to_owned(),
        total: q.total,
        redeemed: q.redeem,
        money_paid: q.money_paid,
        accrued: q.accrual,
        debt_repaid: points(repaid),
        accrued_expires_at: if lot.is_some() { expires } else { None },
        accrued_available_at: if lot.is_some() { available } else { None },
        balance_before: points(spendable),
        balance_after: after.balance,
        held: after.held,
        next_available: after.next_available,
        next_expiry: after.next_expiry,
        tier: after.tier,
        tier_change,
        replayed: false,
        pending: None,
        terms: (!terms.is_empty()).then(|| terms.clone()),
        campaigns: q.campaigns.iter().map(|c| c.name.clone()).collect(),
        promo_code: q.promo.map(|c| c.code),
    };
    finish(db, txn, result)
}
