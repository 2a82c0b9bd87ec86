//! One-time redemption codes: a customer identified at the till by phone
//! or e-mail (no card) spends points after entering a code sent to them,
//! as the pharmacy programme does with the last digits of a call.
//!
//! One outstanding code per account, stored only as an argon2id hash, with
//! an expiry and a limit of wrong tries; using it deletes it, so a code
//! pays for one sale.

use time::OffsetDateTime;

use super::{AccountError, Accounts, CodeCount, CodeTable, PendingCode, ts};
use crate::ledger::db::{Db, DbError, args};
use crate::redact::Secret;

/// The account's redemption code: its hash (`None` once voided) and expiry.
fn redeem_code_of(db: &dyn Db, account: i64) -> Result<Option<(Option<String>, String)>, DbError> {
    db.query_opt(
        "SELECT code_hash, expires_at FROM redeem_codes WHERE account_id = ?1",
        args![account],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

impl Accounts {
    /// A new redemption code for an active account, replacing any earlier
    /// one. Refused within `resend_after` of the last delivered code.
    pub async fn new_redeem_code(&self, account: i64) -> Result<PendingCode, AccountError> {
        let conf = self
            .settings
            .redeem_code
            .clone()
            .ok_or(AccountError::RedeemByCodeOff)?;
        self.issue_code(CodeTable::RedeemCodes, conf, account).await
    }

    /// Records that the redemption code of `account` was delivered: the
    /// next one waits `resend_after` from now.
    pub async fn redeem_code_delivered(&self, account: i64) -> Result<(), AccountError> {
        self.mark_delivered(CodeTable::RedeemCodes, account).await
    }

    /// Uses the account's redemption code: right, it is deleted (one sale);
    /// wrong, the try is counted and the last allowed wrong try voids it.
    pub async fn use_redeem_code(&self, account: i64, code: Secret) -> Result<(), AccountError> {
        let max = self
            .settings
            .redeem_code
            .as_ref()
            .ok_or(AccountError::RedeemByCodeOff)?
            .max_attempts;
        let stamp = ts(OffsetDateTime::now_utc());
        // One try at a time per account, counted before its verdict;
        // argon2 outside any transaction; the row is re-read in the one
        // that decides, and only a match against the code still in force
        // counts.
        let deadline = self.gate.deadline();
        let _one_at_a_time = self
            .keys
            .lock(format!("redeem_codes:{account}"), deadline)
            .await?;
        match self
            .books
            .read(move |db| redeem_code_of(db, account))
            .await?
        {
            None => return Err(AccountError::NoRedeemCode),
            Some((None, _)) => return Err(AccountError::CodeExhausted),
            Some((_, exp)) if exp.as_str() <= stamp.as_str() => {
                return Err(AccountError::CodeExpired);
            }
            Some((Some(_), _)) => {}
        };
        let turn = self.gate.turn(deadline).await?;
        let hash = match self
            .count_code_try(CodeTable::RedeemCodes, account, max, stamp)
            .await?
        {
            CodeCount::Gone => return Err(AccountError::NoRedeemCode),
            CodeCount::Refused(e) => return Err(e),
            CodeCount::Compare(h) => h,
        };
        let ok = self
            .compare(turn, hash.clone(), code.expose().to_owned())
            .await?;
        // Commits on a wrong code too: voiding an exhausted code must stand
        // while the answer is an error.
        self.books
            .write_always(move |db| {
                match redeem_code_of(db, account)? {
                    // Used meanwhile by a concurrent sale.
                    None => return Ok(Err(AccountError::NoRedeemCode)),
                    Some((Some(h), _)) if ok && h == hash => {
                        db.execute(
                            "DELETE FROM redeem_codes WHERE account_id = ?1",
                            args![account],
                        )?;
                        return Ok(Ok(()));
                    }
                    Some((None, _)) => return Ok(Err(AccountError::CodeExhausted)),
                    Some(_) => {}
                }
                // Already counted, before the comparison.
                let attempts: i64 = db.query_row(
                    "SELECT attempts FROM redeem_codes WHERE account_id = ?1",
                    args![account],
                    |r| r.get(0),
                )?;
                if attempts >= max {
                    db.execute(
                        "UPDATE redeem_codes SET code_hash = NULL WHERE account_id = ?1",
                        args![account],
                    )?;
                    Ok(Err(AccountError::CodeExhausted))
                } else {
                    Ok(Err(AccountError::WrongCode {
                        attempts_left: max - attempts,
                    }))
                }
            })
            .await?
    }

    /// The card a sale for `account` is booked on when no card is at hand:
    /// its first active card (all of an account's cards share its points).
    pub async fn booking_card(&self, account: i64) -> Result<String, AccountError> {
        self.books
            .read(move |db| {
                let status: Option<String> = db.query_opt(
                    "SELECT status FROM accounts WHERE id = ?1",
                    args![account],
                    |r| r.get(0),
                )?;
                if status.is_none() {
                    return Ok(Err(AccountError::UnknownAccount));
                }
                // The first issued: both stores keep a rowid for cards.
                let card: Option<String> = db.query_opt(
                    "SELECT number FROM cards WHERE account_id = ?1 AND status = 'active'
                     ORDER BY rowid LIMIT 1",
                    args![account],
                    |r| r.get(0),
                )?;
                Ok(card.ok_or_else(|| AccountError::CardInactive("without an active card".into())))
            })
            .await?
    }
}
