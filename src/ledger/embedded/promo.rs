//! Promo codes in the books: a code's uses are rows of `promo_uses`, one
//! per sale that used it, written in the sale's own transaction (so a
//! repeat of the sale's key, answered from its stored result, never counts
//! twice). The limits are checked by counting those rows in the same
//! transaction: SQLite runs one writer at a time, and PostgreSQL's
//! SERIALIZABLE makes two tills taking the last use at once conflict, one
//! of them running again and finding the code used up.

use time::OffsetDateTime;

use crate::ledger::db::{Db, DbError, args};
use crate::ledger::rules::Programme;
use crate::ledger::rules::campaigns::{PromoCode, PromoRefusal, normalize_code, promo_at};

/// The promo code `code` if `account` (none: a card without an account
/// yet) may use it at `at`: known, enabled, in its dates and within its
/// limits. Reads only.
pub(crate) fn check(
    db: &dyn Db,
    p: &Programme,
    code: &str,
    account: Option<i64>,
    at: OffsetDateTime,
) -> Result<Result<PromoCode, PromoRefusal>, DbError> {
    let found = match promo_at(p, code, at) {
        Ok(c) => c.clone(),
        Err(r) => return Ok(Err(r)),
    };
    let code = normalize_code(&found.code);
    if let Some(total) = found.total {
        let used: i64 = db.query_row(
            "SELECT COUNT(*) FROM promo_uses WHERE code = ?1",
            args![code.clone()],
            |r| r.get(0),
        )?;
        if used >= i64::from(total) {
            return Ok(Err(PromoRefusal::UsedUp(total)));
        }
    }
    if let (Some(limit), Some(account)) = (found.per_customer, account) {
        let used: i64 = db.query_row(
            "SELECT COUNT(*) FROM promo_uses WHERE code = ?1 AND account_id = ?2",
            args![code, account],
            |r| r.get(0),
        )?;
        if used >= i64::from(limit) {
            return Ok(Err(PromoRefusal::CustomerLimit(limit)));
        }
    }
    Ok(Ok(found))
}

/// Counts one use of `code` by `account` for the sale `txn`.
pub(crate) fn record(
    db: &dyn Db,
    code: &PromoCode,
    account: i64,
    txn: i64,
    stamp: &str,
) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO promo_uses (code, account_id, txn_id, created_at) VALUES (?1, ?2, ?3, ?4)",
        args![normalize_code(&code.code), account, txn, stamp],
    )?;
    Ok(())
}

/// Uses per code (upper case), by code; codes never used are left out.
pub(crate) fn uses(db: &dyn Db) -> Result<Vec<(String, i64)>, DbError> {
    db.query_map(
        "SELECT code, COUNT(*) FROM promo_uses GROUP BY code ORDER BY code",
        args![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}
