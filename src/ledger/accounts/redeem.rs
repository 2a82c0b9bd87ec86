//! One-time redemption codes: a customer identified at the till by phone
//! or e-mail (no card) spends points after entering a code sent to them,
//! as the pharmacy programme does with the last digits of a call.
//!
//! One outstanding code per account, stored only as an argon2id hash, with
//! an expiry and a limit of tries; using it deletes it, so a code pays for
//! one sale.
//!
//! A try is checked in three steps, so that argon2 never runs inside a
//! write transaction (SQLite has one writer; PostgreSQL transactions stay
//! short): read the hash and the count, hash the presented code through
//! the gate, then one write transaction re-reads the row, counts the try
//! only if it still holds the same hash with tries left (one conditional
//! `UPDATE`, so tries on two central instances cannot both take the last
//! one), and either records the wrong try (committed, the sale refused) or
//! consumes the code and commits the sale with it. A sale the rules refuse
//! rolls back everything, so a right code with a refused sale stays usable.

use time::OffsetDateTime;

use super::{AccountError, Accounts, CodeTable, PendingCode, ts};
use crate::ledger::SpendError;
use crate::ledger::db::{Db, DbError, args};
use crate::ledger::embedded::{CommitResult, commit_terms_tx, replay_commit_tx};
use crate::ledger::programmes::Programmes;
use crate::ledger::rules::{OrderTerms, SaleLine};
use crate::redact::Secret;
use rust_decimal::Decimal;

/// The account's redemption code: its hash (`None` once voided), expiry
/// and count of tries.
type CodeRow = (Option<String>, String, i64);

fn redeem_code_of(db: &dyn Db, account: i64) -> Result<Option<CodeRow>, DbError> {
    db.query_opt(
        "SELECT code_hash, expires_at, attempts FROM redeem_codes WHERE account_id = ?1",
        args![account],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

/// The hash to compare with, or why there is nothing to compare: no code,
/// voided, expired, out of tries.
fn in_force(row: Option<CodeRow>, max: i64, stamp: &str) -> Result<String, AccountError> {
    match row {
        None => Err(AccountError::NoRedeemCode),
        Some((None, _, _)) => Err(AccountError::CodeExhausted),
        Some((_, exp, _)) if exp.as_str() <= stamp => Err(AccountError::CodeExpired),
        Some((_, _, n)) if n >= max => Err(AccountError::CodeExhausted),
        Some((Some(h), _, _)) => Ok(h),
    }
}

/// What the deciding transaction found.
enum Decided<T, E> {
    /// The answer; what the transaction wrote commits (a counted wrong try,
    /// a voided code, or the consumed code with its sale).
    Answer(Result<T, E>),
    /// The code was replaced between the read and the decision: the
    /// comparison was against another code, so it starts again.
    Replaced,
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

    /// Uses the account's redemption code without a sale: right, it is
    /// deleted; wrong, the try is counted and the last allowed try voids
    /// it. Sales use [`Accounts::commit_with_code`], which does the same
    /// in the sale's own transaction.
    pub async fn use_redeem_code(&self, account: i64, code: Secret) -> Result<(), AccountError> {
        self.with_code(account, code, |_| Ok(None), |_| Ok(Ok(())))
            .await
    }

    /// A paid sale for `account` (booked on its first active card) that
    /// spends points with the one-time `code`: the code is checked,
    /// consumed and the sale committed in one write transaction. A repeat
    /// of `key` returns the stored sale without a code (the first one used
    /// it up). Returns the card the sale was booked on, and the result.
    ///
    /// A wrong code is counted (committed) and the sale refused; a right
    /// code with a sale the rules refuse changes nothing, and the code
    /// stays usable.
    #[allow(clippy::too_many_arguments)]
    pub async fn commit_with_code(
        &self,
        programmes: std::sync::Arc<Programmes>,
        key: String,
        account: i64,
        code: Secret,
        receipt_id: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
        cashier: Option<String>,
        terms: OrderTerms,
    ) -> Result<(String, CommitResult), SpendError> {
        crate::ledger::cashier::check_opt(cashier.as_deref())
            .map_err(|e| SpendError::Ledger(e.into()))?;
        let origin = self.origin.clone();
        let replayed = {
            let (key, receipt_id, lines) = (key.clone(), receipt_id.clone(), lines.clone());
            let terms = terms.clone();
            move |db: &dyn Db| replayed_sale(db, &key, account, &receipt_id, &lines, redeem, &terms)
        };
        // A retry needs no code: answered before anything is checked; so
        // is an account without a card to book on.
        let f = replayed.clone();
        let first = self
            .books
            .read(move |db| {
                if let Some(r) = f(db)? {
                    return Ok(Some(r));
                }
                Ok(booking_card_of(db, account)?
                    .err()
                    .map(|e| Err(SpendError::Account(e))))
            })
            .await?;
        if let Some(r) = first {
            return r;
        }
        self.with_code(account, code, replayed, move |db| {
            let Some(number) = booking_card_tx(db, account)? else {
                return Ok(Err(SpendError::Account(AccountError::CardInactive(
                    "without an active card".into(),
                ))));
            };
            let now = OffsetDateTime::now_utc();
            Ok(commit_terms_tx(
                db,
                &programmes,
                &key,
                &number,
                &receipt_id,
                &lines,
                redeem,
                now,
                &origin,
                cashier.as_deref(),
                &terms,
            )?
            .map(|r| (number, r))
            .map_err(SpendError::Ledger))
        })
        .await
    }

    /// Checks `code` against `account`'s redemption code, then, in the one
    /// write transaction that decides, runs `right` after consuming a right
    /// code (its refusal rolls back the consumption too). `replayed`, run
    /// first in each transaction, answers without a check (a repeat of a
    /// committed sale). One try at a time per account in this process; the
    /// database's count limits tries across processes.
    async fn with_code<T, E, P, R>(
        &self,
        account: i64,
        code: Secret,
        replayed: P,
        right: R,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<AccountError> + From<DbError> + Send + 'static,
        P: Fn(&dyn Db) -> Result<Option<Result<T, E>>, DbError> + Clone + Send + 'static,
        R: FnMut(&dyn Db) -> Result<Result<T, E>, DbError> + Clone + Send + 'static,
    {
        let max = self
            .settings
            .redeem_code
            .as_ref()
            .ok_or(AccountError::RedeemByCodeOff)?
            .max_attempts;
        let deadline = self.gate.deadline();
        let _one_at_a_time = self
            .keys
            .lock(format!("redeem_codes:{account}"), deadline)
            .await?;
        // Twice at most: a code replaced during the check is checked again
        // against the new one; replaced twice, the till may retry.
        for _ in 0..2 {
            let stamp = ts(OffsetDateTime::now_utc());
            // Cheap refusals first, without a hashing turn.
            let row = self
                .books
                .read(move |db| redeem_code_of(db, account))
                .await?;
            let hash = in_force(row, max, &stamp)?;
            let turn = self.gate.turn(deadline).await?;
            let ok = self
                .compare(turn, hash.clone(), code.expose().to_owned())
                .await?;
            let (replayed, mut right) = (replayed.clone(), right.clone());
            let decided = self
                .books
                .write(move |db| {
                    if let Some(r) = replayed(db)? {
                        return Ok(Ok(Decided::Answer(r)));
                    }
                    decide(db, account, max, &stamp, &hash, ok, &mut right)
                })
                .await?;
            match decided {
                Ok(Decided::Answer(r)) => return r,
                Ok(Decided::Replaced) => continue,
                // The sale was refused after a right code: rolled back,
                // the code stays usable.
                Err(e) => return Err(e),
            }
        }
        Err(AccountError::Busy.into())
    }
}

/// The deciding step, in the write transaction: re-reads the code, counts
/// the try if the code compared with is still in force with tries left
/// (atomically: a conditional update), then records a wrong try or
/// consumes a right code and runs `right`.
fn decide<T, E, R>(
    db: &dyn Db,
    account: i64,
    max: i64,
    stamp: &str,
    hash: &str,
    ok: bool,
    right: &mut R,
) -> Result<Result<Decided<T, E>, E>, DbError>
where
    E: From<AccountError>,
    R: FnMut(&dyn Db) -> Result<Result<T, E>, DbError>,
{
    let refuse = |e: AccountError| Ok(Ok(Decided::Answer(Err(e.into()))));
    let row = redeem_code_of(db, account)?;
    match &row {
        // Used meanwhile by a concurrent sale, or voided.
        None | Some((None, _, _)) => {}
        Some((Some(h), _, _)) if h != hash => return Ok(Ok(Decided::Replaced)),
        Some(_) => {}
    }
    let attempts = match in_force(row, max, stamp) {
        Ok(_) => {
            // Counted only while tries are left, in one statement: under
            // PostgreSQL two instances taking the last try conflict on the
            // row and the loser re-runs this transaction and finds none left.
            let counted = db.execute(
                "UPDATE redeem_codes SET attempts = attempts + 1
                 WHERE account_id = ?1 AND code_hash = ?2 AND attempts < ?3",
                args![account, hash, max],
            )?;
            if counted != 1 {
                return refuse(AccountError::CodeExhausted);
            }
            db.query_row(
                "SELECT attempts FROM redeem_codes WHERE account_id = ?1",
                args![account],
                |r| r.get::<i64>(0),
            )?
        }
        Err(e) => return refuse(e),
    };
    if !ok {
        if attempts >= max {
            db.execute(
                "UPDATE redeem_codes SET code_hash = NULL WHERE account_id = ?1",
                args![account],
            )?;
            return refuse(AccountError::CodeExhausted);
        }
        return refuse(AccountError::WrongCode {
            attempts_left: max - attempts,
        });
    }
    db.execute(
        "DELETE FROM redeem_codes WHERE account_id = ?1",
        args![account],
    )?;
    Ok(match right(db)? {
        Ok(t) => Ok(Decided::Answer(Ok(t))),
        Err(e) => Err(e),
    })
}

/// A sale spending with a code: the card it was booked on and its result,
/// or why not.
type Spent = Result<(String, CommitResult), SpendError>;

/// The stored sale under `key` for `account`, if the key was used:
/// `KeyReused` if it was used for another request or another account.
fn replayed_sale(
    db: &dyn Db,
    key: &str,
    account: i64,
    receipt_id: &str,
    lines: &[SaleLine],
    redeem: Decimal,
    terms: &OrderTerms,
) -> Result<Option<Spent>, DbError> {
    Ok(
        match replay_commit_tx(db, key, receipt_id, lines, redeem)? {
            Ok(None) => None,
            // The same account and the same order terms, or the key is
            // reused for another request.
            Ok(Some((number, r)))
                if r.account == account && r.terms.clone().unwrap_or_default() == *terms =>
            {
                Some(Ok((number, r)))
            }
            Ok(Some(_)) => Some(Err(SpendError::Ledger(
                crate::ledger::LedgerError::KeyReused,
            ))),
            Err(e) => Some(Err(SpendError::Ledger(e))),
        },
    )
}

/// The card a sale for `account` is booked on, in the caller's
/// transaction: its first active card (all of an account's cards share its
/// points). `None` if it has none.
fn booking_card_tx(db: &dyn Db, account: i64) -> Result<Option<String>, DbError> {
    // The first issued: both stores keep a rowid for cards.
    db.query_opt(
        "SELECT number FROM cards WHERE account_id = ?1 AND status = 'active'
         ORDER BY rowid LIMIT 1",
        args![account],
        |r| r.get(0),
    )
}

impl Accounts {
    /// The card a sale for `account` is booked on when no card is at hand:
    /// its first active card (all of an account's cards share its points).
    pub async fn booking_card(&self, account: i64) -> Result<String, AccountError> {
        self.books
            .read(move |db| booking_card_of(db, account))
            .await?
    }
}

/// [`Accounts::booking_card`] in the caller's transaction.
fn booking_card_of(db: &dyn Db, account: i64) -> Result<Result<String, AccountError>, DbError> {
    let status: Option<String> = db.query_opt(
        "SELECT status FROM accounts WHERE id = ?1",
        args![account],
        |r| r.get(0),
    )?;
    if status.is_none() {
        return Ok(Err(AccountError::UnknownAccount));
    }
    let card = booking_card_tx(db, account)?;
    Ok(card.ok_or_else(|| AccountError::CardInactive("without an active card".into())))
}
