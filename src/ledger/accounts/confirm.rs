//! Confirmation of new accounts by a code, and the one-time codes both
//! kinds of code (confirmation, redemption) share: issued hashed, resent no
//! sooner than allowed, each try counted before its verdict.

use std::time::Duration;

use time::OffsetDateTime;

use super::{
    AccountError, Accounts, Activated, CodeCount, CodeTable, ConfirmSettings, MAX_ATTEMPTS,
    PendingCode, code_expiry, contact_of, credit_welcome, random_digits, ts, welcome_now,
    welcome_of,
};
use crate::ledger::db::{Db, DbError, args};
use crate::ledger::rules::Programme;
use crate::redact::Secret;

/// A pending account's confirmation as `activate` reads it: the account's
/// status; `None` without a confirmation row, else the code's hash (`None`
/// once voided by wrong tries); and the code's expiry.
type ConfirmationRow = (String, Option<Option<String>>, Option<String>);

fn confirmation_of(db: &dyn Db, account: i64) -> Result<Option<ConfirmationRow>, DbError> {
    db.query_opt(
        "SELECT a.status, f.account_id IS NOT NULL, f.code_hash, f.expires_at
         FROM accounts a LEFT JOIN confirmations f ON f.account_id = a.id WHERE a.id = ?1",
        args![account],
        |r| {
            // The second column tells "no row" from "a row with a void code".
            let has_row: bool = r.get(1)?;
            let hash: Option<String> = r.get(2)?;
            Ok((r.get(0)?, has_row.then_some(hash), r.get(3)?))
        },
    )
}

/// The answer `activate` gives for an active account: the welcome bonus
/// credited at its activation, if any.
fn activated(db: &dyn Db, account: i64, newly: bool) -> Result<Activated, DbError> {
    let (b, e) = welcome_of(db, account)?.unwrap_or((None, None));
    Ok(Activated {
        account,
        status: "active",
        welcome_bonus: b,
        welcome_expires_at: e,
        newly,
    })
}

impl Accounts {
    /// Records that the pending code of `account` was delivered: resends
    /// are rate-limited from this moment.
    pub async fn code_delivered(&self, account: i64) -> Result<(), AccountError> {
        self.mark_delivered(CodeTable::Confirmations, account).await
    }

    /// A new confirmation code for a pending account, replacing the old one
    /// (its attempts start again). Refused within `resend_after` of the
    /// last delivered code; a code whose delivery failed may be replaced at
    /// once.
    pub async fn new_code(&self, account: i64) -> Result<PendingCode, AccountError> {
        // Accounts left pending when confirmation was switched off can
        // still be confirmed, with the default code settings.
        let conf = self.settings.confirm.clone().unwrap_or(ConfirmSettings {
            code_length: 6,
            ttl: Duration::from_secs(600),
            max_attempts: MAX_ATTEMPTS,
            resend_after: Duration::from_secs(60),
        });
        self.issue_code(CodeTable::Confirmations, conf, account)
            .await
    }

    /// Records a delivered code in `table`: the next one waits from now.
    pub(super) async fn mark_delivered(
        &self,
        table: CodeTable,
        account: i64,
    ) -> Result<(), AccountError> {
        let stamp = ts(OffsetDateTime::now_utc());
        let sql = format!(
            "UPDATE {} SET sent_at = ?2 WHERE account_id = ?1",
            table.name()
        );
        self.books
            .write_always(move |db| db.execute(&sql, args![account, stamp]))
            .await?;
        Ok(())
    }

    /// Makes a code for `account` in `table`, replacing any earlier one
    /// (attempts start again), if the account's status suits the table and
    /// the last delivered code is older than `resend_after`. The code is
    /// stored hashed and returned once, for the notifier.
    pub(super) async fn issue_code(
        &self,
        table: CodeTable,
        conf: ConfirmSettings,
        account: i64,
    ) -> Result<PendingCode, AccountError> {
        let code = random_digits(self.random, conf.code_length)?;
        let code_hash = self.hash(code.clone()).await?;
        let now = OffsetDateTime::now_utc();
        let expires = code_expiry(now, conf.ttl);
        let resend_after = conf.resend_after;
        let name = table.name();
        self.books
            .write(move |db| {
                let row: Option<(String, Option<String>)> = db.query_opt(
                    &format!(
                        "SELECT a.status, f.sent_at FROM accounts a
                         LEFT JOIN {name} f ON f.account_id = a.id WHERE a.id = ?1"
                    ),
                    args![account],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                let sent_at = match row {
                    None => return Ok(Err(AccountError::UnknownAccount)),
                    Some((status, _)) if status != table.status() => {
                        return Ok(Err(table.wrong_status(status)));
                    }
                    Some((_, sent_at)) => sent_at,
                };
                if let Some(sent) = sent_at.as_deref().and_then(|s| {
                    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
                }) {
                    let next = sent + resend_after;
                    if next > now {
                        let wait = (next - now).whole_seconds().max(0) as u64 + 1;
                        return Ok(Err(AccountError::TooSoon {
                            retry_after_s: wait,
                        }));
                    }
                }
                let Some((channel, contact)) = contact_of(db, account)? else {
                    return Ok(Err(AccountError::NoContact));
                };
                db.execute(
                    &format!(
                        "INSERT INTO {name} (account_id, code_hash, expires_at, attempts, sent_at)
                         VALUES (?1, ?2, ?3, 0, NULL)
                         ON CONFLICT(account_id) DO UPDATE SET code_hash = ?2, expires_at = ?3,
                         attempts = 0, sent_at = NULL"
                    ),
                    args![account, code_hash, expires],
                )?;
                Ok(Ok(PendingCode {
                    account,
                    channel,
                    contact,
                    code: Secret::new(code.clone()),
                }))
            })
            .await?
    }

    /// Activates a pending account with its confirmation code and credits
    /// the welcome bonus, exactly once however often or concurrently it is
    /// called: an account already active answers as the activation did.
    pub async fn activate(
        &self,
        p: &Programme,
        account: i64,
        code: Secret,
    ) -> Result<Activated, AccountError> {
        let max = self
            .settings
            .confirm
            .as_ref()
            .map_or(MAX_ATTEMPTS, |c| c.max_attempts);
        let now = OffsetDateTime::now_utc();
        let stamp = ts(now);
        // One try at a time per account; each is counted before its
        // verdict. argon2 runs outside any transaction; the row is
        // re-checked inside the one that decides.
        let deadline = self.gate.deadline();
        let _one_at_a_time = self
            .keys
            .lock(format!("confirmations:{account}"), deadline)
            .await?;
        let first = self
            .books
            .read(move |db| confirmation_of(db, account))
            .await?;
        let verified_against = match first {
            None => return Err(AccountError::UnknownAccount),
            Some((status, None, _)) if status == "active" => None,
            Some((status, None, _)) => return Err(AccountError::NotPending(status)),
            Some((status, Some(_), _)) if status != "pending" => {
                return Err(AccountError::NotPending(status));
            }
            Some((_, Some(None), _)) => return Err(AccountError::CodeExhausted),
            Some((_, Some(Some(_)), Some(exp))) if exp.as_str() <= stamp.as_str() => {
                return Err(AccountError::CodeExpired);
            }
            Some((_, Some(Some(_)), _)) => {
                let turn = self.gate.turn(deadline).await?;
                let max_tries = max;
                match self
                    .count_code_try(CodeTable::Confirmations, account, max_tries, stamp.clone())
                    .await?
                {
                    // Activated meanwhile: the transaction below answers.
                    CodeCount::Gone => None,
                    CodeCount::Refused(e) => return Err(e),
                    CodeCount::Compare(hash) => {
                        let ok = self
                            .compare(turn, hash.clone(), code.expose().to_owned())
                            .await?;
                        Some((hash, ok))
                    }
                }
            }
        };
        let (welcome, welcome_expiry) = welcome_now(p, now)?;
        let origin = self.origin.clone();
        // Commits on a wrong code too: voiding an exhausted code must stand
        // while the answer is an error.
        self.books
            .write_always(move |db| {
                let (hash_now, expires) = match confirmation_of(db, account)? {
                    None => return Ok(Err(AccountError::UnknownAccount)),
                    // Someone else activated it meanwhile: same answer.
                    Some((status, None, _)) if status == "active" => {
                        return activated(db, account, false).map(Ok);
                    }
                    Some((status, _, _)) if status != "pending" => {
                        return Ok(Err(AccountError::NotPending(status)));
                    }
                    Some((status, None, _)) => return Ok(Err(AccountError::NotPending(status))),
                    Some((_, Some(None), _)) => return Ok(Err(AccountError::CodeExhausted)),
                    Some((_, Some(Some(h)), e)) => (h, e),
                };
                if expires.is_some_and(|e| e.as_str() <= stamp.as_str()) {
                    return Ok(Err(AccountError::CodeExpired));
                }
                // Right only if it matched the code still in force (a resend
                // in between voids the old one).
                let ok = matches!(&verified_against, Some((h, true)) if *h == hash_now);
                if ok {
                    let changed = db.execute(
                        "UPDATE accounts SET status = 'active' WHERE id = ?1 AND status = 'pending'",
                        args![account],
                    )?;
                    db.execute(
                        "DELETE FROM confirmations WHERE account_id = ?1",
                        args![account],
                    )?;
                    if changed == 1 {
                        credit_welcome(
                            db,
                            account,
                            welcome,
                            welcome_expiry.as_deref(),
                            &stamp,
                            &origin,
                        )?;
                    }
                    return activated(db, account, changed == 1).map(Ok);
                }
                // Already counted, before the comparison.
                let attempts: i64 = db.query_row(
                    "SELECT attempts FROM confirmations WHERE account_id = ?1",
                    args![account],
                    |r| r.get(0),
                )?;
                if attempts >= max {
                    db.execute(
                        "UPDATE confirmations SET code_hash = NULL WHERE account_id = ?1",
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
}
