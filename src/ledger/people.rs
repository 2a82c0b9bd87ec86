//! The customer as a person (issue 21 items 12c and 13): the birthday
//! bonus's daily run, consents under 152-FZ (to the processing of personal
//! data, to messages), and erasure of a customer's personal data on
//! request, on either store's books.
//!
//! A birthday bonus is a transaction keyed `birthday:<year>:<account>`:
//! the books' unique key makes it once a year per account however often,
//! on however many instances, the run goes (`ON CONFLICT DO NOTHING`; on
//! PostgreSQL a concurrent twin loses its serialisable transaction, runs
//! again and then finds the key taken).
//!
//! Erasure clears name, phone, e-mail, birth date and code word, the search
//! index and the pending codes, and withdraws both consents; the account,
//! its cards and its transactions stay, so the books still balance and
//! `ledger verify` passes, but nothing in them names the customer any more.

use std::convert::Infallible;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::accounts::AccountError;
use super::accounts::words::reindex;
use super::db::{Books, Db, DbError, args};
use super::embedded::{LedgerError, accrue, ts, units};
use super::origin::Origin;
use super::rules::Programme;
use super::rules::people::{DueBirthday, bonus_expiry_of, due_birthdays, local_date};

/// Accounts credited per write transaction of the birthday run.
pub const BIRTHDAY_BATCH: i64 = 200;

/// The most credits a run reports one by one (the count is always whole).
pub const CREDITS_SHOWN: usize = 500;

/// The consents a customer gives or withdraws.
pub const CONSENT_KINDS: &[&str] = &["personal_data", "messages"];

/// The most entries of the consent log an answer carries, newest first.
pub const CONSENT_LOG_MAX: i64 = 100;

/// The longest `how` and `operator` of a consent, in characters.
pub const CONSENT_TEXT_MAX: usize = 128;

/// One birthday bonus credited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BirthdayCredit {
    /// The account.
    pub account: i64,
    /// The year the bonus is for.
    pub year: i32,
    /// Points credited (a debt is repaid from them first).
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// When they expire (RFC 3339), if they do.
    pub expires_at: Option<String>,
}

/// What one birthday run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BirthdayRun {
    /// How many accounts were credited.
    pub credited: usize,
    /// The first [`CREDITS_SHOWN`] of them.
    pub credits: Vec<BirthdayCredit>,
}

/// A consent given or withdrawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentChange {
    /// `personal_data` or `messages`.
    pub kind: String,
    /// Given (true) or withdrawn (false).
    pub given: bool,
    /// How it was given: `paper` (a signed form), `sms`, `web`, … (at most
    /// [`CONSENT_TEXT_MAX`] characters).
    pub how: String,
    /// The operator (cashier) who recorded it.
    pub operator: String,
}

/// The consents in force: since when each is given, `None` = not given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Consents {
    /// Consent to the processing of personal data (RFC 3339).
    pub personal_data: Option<String>,
    /// Consent to messages (RFC 3339).
    pub messages: Option<String>,
}

/// One entry of the consent log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentRecord {
    /// `personal_data`, `messages`, or `erasure` (the data erased).
    pub kind: String,
    /// Given or withdrawn.
    pub given: bool,
    /// How.
    pub how: String,
    /// By whom.
    pub operator: String,
    /// The store it was recorded in (a chain), if known.
    pub store: Option<String>,
    /// The till it was recorded at, if known.
    pub terminal: Option<String>,
    /// When (RFC 3339).
    pub at: String,
}

/// An account's consents and their log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentView {
    /// The account.
    pub account: i64,
    /// In force now.
    pub consents: Consents,
    /// Newest first, at most [`CONSENT_LOG_MAX`].
    pub log: Vec<ConsentRecord>,
}

/// What `account.erase` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Erased {
    /// The account.
    pub account: i64,
    /// When its personal data was erased (the first call's time).
    pub erased_at: String,
    /// True only for the call that erased; a repeat answers `false`.
    pub newly: bool,
}

/// The person's part of an account's view: the birthday (day and month
/// only: the year is never shown back), the consents, and the erasure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PersonView {
    /// `MM-DD`, when a birth date is recorded.
    #[serde(default)]
    pub birthday: Option<String>,
    /// The consents in force.
    #[serde(default)]
    pub consents: Consents,
    /// When the personal data was erased, if it was.
    #[serde(default)]
    pub erased_at: Option<String>,
}

/// The person's part of account `id`'s view.
pub(crate) fn person_of(db: &dyn Db, id: i64) -> Result<PersonView, DbError> {
    db.query_row(
        "SELECT substr(birth_date, 6), consent_data_at, consent_messages_at, erased_at
         FROM accounts WHERE id = ?1",
        args![id],
        |r| {
            Ok(PersonView {
                birthday: r.get(0)?,
                consents: Consents {
                    personal_data: r.get(1)?,
                    messages: r.get(2)?,
                },
                erased_at: r.get(3)?,
            })
        },
    )
}

/// Sets (`Some(Some)`), clears (`Some(None)`) or leaves (`None`) an
/// account's birth date, already checked by
/// [`super::rules::people::parse_birth_date`] and written `YYYY-MM-DD`.
pub(crate) fn set_birth_date(
    db: &dyn Db,
    account: i64,
    birth_date: &Option<Option<String>>,
) -> Result<(), DbError> {
    if let Some(b) = birth_date {
        db.execute(
            "UPDATE accounts SET birth_date = ?2 WHERE id = ?1",
            args![account, b],
        )?;
    }
    Ok(())
}

/// A birth date for the books: checked against today (UTC plus the widest
/// offset, so no time zone's today is refused), written `YYYY-MM-DD`.
pub fn checked_birth_date(s: &str) -> Result<String, AccountError> {
    let today = (OffsetDateTime::now_utc() + time::Duration::hours(14)).date();
    let d = super::rules::people::parse_birth_date(s, today)?;
    Ok(format!(
        "{:04}-{:02}-{:02}",
        d.year(),
        u8::from(d.month()),
        d.day()
    ))
}

/// Credits the due birthdays of one `due` day: up to `batch` accounts with
/// ids above `after`. Returns the accounts looked at (for the cursor) and
/// the credits made.
#[allow(clippy::too_many_arguments)]
fn birthday_batch(
    db: &dyn Db,
    p: &Programme,
    bonus: Decimal,
    due: &DueBirthday,
    md: &str,
    after: i64,
    batch: i64,
    now: OffsetDateTime,
    origin: &Origin,
) -> Result<(Vec<i64>, Vec<BirthdayCredit>), DbError> {
    let accounts: Vec<i64> = db.query_map(
        "SELECT id FROM accounts
         WHERE substr(birth_date, 6) = ?1 AND birth_date IS NOT NULL
           AND status = 'active' AND erased_at IS NULL AND id > ?2
         ORDER BY id LIMIT ?3",
        args![md, after, batch],
        |r| r.get(0),
    )?;
    let stamp = ts(now);
    let expires = bonus_expiry_of(p, p.birthday_expiry_days, now)
        .map_err(|_| DbError::Invariant("the birthday bonus's expiry is out of range"))?
        .map(ts);
    let mut credits = Vec::new();
    for &account in &accounts {
        let key = format!("birthday:{}:{account}", due.year);
        let txn: Option<i64> = db.query_opt(
            "INSERT INTO txns (idempotency_key, kind, account_id, request, result, created_at,
                               store_id, terminal_id)
             VALUES (?1, 'birthday', ?2, '', '', ?3, ?4, ?5)
             ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
            args![key, account, stamp, origin.store, origin.terminal],
            |r| r.get(0),
        )?;
        let Some(txn) = txn else { continue };
        accrue(
            db,
            txn,
            account,
            units(bonus),
            "birthday",
            expires.as_deref(),
            // A gift: spendable at once, not held by the accrual window.
            None,
            &stamp,
        )?;
        credits.push(BirthdayCredit {
            account,
            year: due.year,
            amount: bonus,
            expires_at: expires.clone(),
        });
    }
    Ok((accounts, credits))
}

/// Birthdays, consents and erasure on one store's books.
#[derive(Clone)]
pub struct People {
    books: Books,
    origin: Origin,
}

impl People {
    /// On `books`, recording `origin` on what it writes.
    pub fn new(books: Books, origin: Origin) -> Self {
        People { books, origin }
    }

    /// Credits every birthday bonus due at `now` (the programme's local
    /// date), [`BIRTHDAY_BATCH`] accounts per write transaction. Nothing
    /// to do without a bonus configured. Safe to run any number of times.
    pub async fn birthday_run(
        &self,
        p: &Programme,
        now: OffsetDateTime,
    ) -> Result<BirthdayRun, LedgerError> {
        let mut run = BirthdayRun::default();
        let Some(bonus) = p.birthday_bonus.filter(|b| *b > Decimal::ZERO) else {
            return Ok(run);
        };
        let today = local_date(p, now)?;
        for due in due_birthdays(p, today) {
            for md in &due.month_days {
                let mut after = 0;
                loop {
                    let (p2, due2, md2, origin) =
                        (p.clone(), due.clone(), md.clone(), self.origin.clone());
                    let Ok((seen, credits)) = self
                        .books
                        .write(move |db| {
                            birthday_batch(
                                db,
                                &p2,
                                bonus,
                                &due2,
                                &md2,
                                after,
                                BIRTHDAY_BATCH,
                                now,
                                &origin,
                            )
                            .map(Ok::<_, Infallible>)
                        })
                        .await?;
                    run.credited += credits.len();
                    let room = CREDITS_SHOWN.saturating_sub(run.credits.len());
                    run.credits.extend(credits.into_iter().take(room));
                    match seen.last() {
                        Some(&last) if seen.len() as i64 == BIRTHDAY_BATCH => after = last,
                        _ => break,
                    }
                }
            }
        }
        Ok(run)
    }

    /// Records a consent given or withdrawn, now, by `c.operator` at this
    /// origin. Giving a consent in force keeps its first time; the log
    /// records every call.
    pub async fn set_consent(
        &self,
        account: i64,
        c: ConsentChange,
    ) -> Result<ConsentView, AccountError> {
        let kind = CONSENT_KINDS
            .iter()
            .find(|k| **k == c.kind)
            .copied()
            .ok_or_else(|| bad("kind", "personal_data or messages"))?;
        let how = c.how.trim().to_owned();
        let operator = c.operator.trim().to_owned();
        for (field, v) in [("how", &how), ("operator", &operator)] {
            if v.is_empty()
                || v.chars().count() > CONSENT_TEXT_MAX
                || v.chars().any(char::is_control)
            {
                return Err(bad(field, "1 to 128 printable characters"));
            }
        }
        let origin = self.origin.clone();
        let given = c.given;
        self.books
            .write(move |db| {
                let erased: Option<Option<String>> = db.query_opt(
                    "SELECT erased_at FROM accounts WHERE id = ?1",
                    args![account],
                    |r| r.get(0),
                )?;
                match erased {
                    None => return Ok(Err(AccountError::UnknownAccount)),
                    Some(Some(_)) if given => {
                        return Ok(Err(AccountError::BadStatus(
                            "the account's personal data was erased; register the customer anew",
                        )));
                    }
                    Some(_) => {}
                }
                let stamp = ts(OffsetDateTime::now_utc());
                let column = if kind == "personal_data" {
                    "consent_data_at"
                } else {
                    "consent_messages_at"
                };
                if given {
                    db.execute(
                        &format!(
                            "UPDATE accounts SET {column} = COALESCE({column}, ?2) WHERE id = ?1"
                        ),
                        args![account, stamp],
                    )?;
                } else {
                    db.execute(
                        &format!("UPDATE accounts SET {column} = NULL WHERE id = ?1"),
                        args![account],
                    )?;
                }
                log(db, account, kind, given, &how, &operator, &origin, &stamp)?;
                Ok(Ok(view(db, account)?))
            })
            .await?
    }

    /// An account's consents and their log.
    pub async fn consents(&self, account: i64) -> Result<ConsentView, AccountError> {
        self.books
            .read(move |db| {
                let exists: Option<i64> = db.query_opt(
                    "SELECT id FROM accounts WHERE id = ?1",
                    args![account],
                    |r| r.get(0),
                )?;
                if exists.is_none() {
                    return Ok(Err(AccountError::UnknownAccount));
                }
                Ok(Ok(view(db, account)?))
            })
            .await?
    }

    /// Erases the account's personal data on the customer's request,
    /// recording `operator`; a repeat changes nothing and answers the first
    /// erasure's time with `newly: false`.
    pub async fn erase(&self, account: i64, operator: String) -> Result<Erased, AccountError> {
        let operator = operator.trim().to_owned();
        if operator.is_empty()
            || operator.chars().count() > CONSENT_TEXT_MAX
            || operator.chars().any(char::is_control)
        {
            return Err(bad("operator", "1 to 128 printable characters"));
        }
        let origin = self.origin.clone();
        self.books
            .write(move |db| {
                let erased: Option<Option<String>> = db.query_opt(
                    "SELECT erased_at FROM accounts WHERE id = ?1",
                    args![account],
                    |r| r.get(0),
                )?;
                let first = match erased {
                    None => return Ok(Err(AccountError::UnknownAccount)),
                    Some(first) => first,
                };
                if let Some(at) = first {
                    return Ok(Ok(Erased {
                        account,
                        erased_at: at,
                        newly: false,
                    }));
                }
                let stamp = ts(OffsetDateTime::now_utc());
                db.execute(
                    "UPDATE accounts SET name = NULL, phone = NULL, email = NULL,
                        birth_date = NULL, code_word_hash = NULL, code_word_failed = 0,
                        consent_data_at = NULL, consent_messages_at = NULL, erased_at = ?2
                     WHERE id = ?1",
                    args![account, stamp],
                )?;
                // The search index holds words of the name and e-mail.
                reindex(db, account)?;
                db.execute(
                    "DELETE FROM confirmations WHERE account_id = ?1",
                    args![account],
                )?;
                db.execute(
                    "DELETE FROM redeem_codes WHERE account_id = ?1",
                    args![account],
                )?;
                log(
                    db, account, "erasure", false, "request", &operator, &origin, &stamp,
                )?;
                Ok(Ok(Erased {
                    account,
                    erased_at: stamp,
                    newly: true,
                }))
            })
            .await?
    }
}

/// A refusal naming `field`.
pub(crate) fn bad(field: &str, reason: &str) -> AccountError {
    AccountError::Rules(super::rules::RulesError::Invalid {
        field: field.to_owned(),
        reason: reason.to_owned(),
    })
}

#[allow(clippy::too_many_arguments)]
fn log(
    db: &dyn Db,
    account: i64,
    kind: &str,
    given: bool,
    how: &str,
    operator: &str,
    origin: &Origin,
    stamp: &str,
) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO consents (account_id, kind, given, how, operator, store_id, terminal_id,
                               created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        args![
            account,
            kind,
            i64::from(given),
            how,
            operator,
            (!origin.store.is_empty()).then_some(&origin.store),
            (!origin.terminal.is_empty()).then_some(&origin.terminal),
            stamp
        ],
    )?;
    Ok(())
}

fn view(db: &dyn Db, account: i64) -> Result<ConsentView, DbError> {
    let consents = person_of(db, account)?.consents;
    let log = db.query_map(
        "SELECT kind, given, how, operator, store_id, terminal_id, created_at
         FROM consents WHERE account_id = ?1 ORDER BY id DESC LIMIT ?2",
        args![account, CONSENT_LOG_MAX],
        |r| {
            Ok(ConsentRecord {
                kind: r.get(0)?,
                given: r.get::<i64>(1)? != 0,
                how: r.get(2)?,
                operator: r.get(3)?,
                store: r.get(4)?,
                terminal: r.get(5)?,
                at: r.get(6)?,
            })
        },
    )?;
    Ok(ConsentView {
        account,
        consents,
        log,
    })
}

/// The active, not erased account a registration's `referrer` names: a
/// card number (digits) or a phone in any common notation. `None` when
/// nobody matches.
pub(crate) fn referrer_of(db: &dyn Db, raw: &str) -> Result<Option<i64>, DbError> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 64 {
        return Ok(None);
    }
    let live = "a.status = 'active' AND a.erased_at IS NULL";
    if raw.bytes().all(|b| b.is_ascii_digit()) {
        let by_card: Option<i64> = db.query_opt(
            &format!(
                "SELECT a.id FROM cards c JOIN accounts a ON a.id = c.account_id
                 WHERE c.number = ?1 AND {live}"
            ),
            args![raw],
            |r| r.get(0),
        )?;
        if by_card.is_some() {
            return Ok(by_card);
        }
    }
    let Some(phone) = super::accounts::normalise_phone(raw) else {
        return Ok(None);
    };
    db.query_opt(
        &format!("SELECT a.id FROM accounts a WHERE a.phone = ?1 AND {live}"),
        args![phone],
        |r| r.get(0),
    )
}

/// Posts one referral bonus to `account` under `key`, unless the key is
/// taken; whether it posted.
#[allow(clippy::too_many_arguments)]
fn referral_credit(
    db: &dyn Db,
    key: &str,
    account: i64,
    bonus: Decimal,
    expires: Option<&str>,
    stamp: &str,
    origin: &Origin,
) -> Result<bool, DbError> {
    let txn: Option<i64> = db.query_opt(
        "INSERT INTO txns (idempotency_key, kind, account_id, request, result, created_at,
                           store_id, terminal_id)
         VALUES (?1, 'referral', ?2, '', '', ?3, ?4, ?5)
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        args![key, account, stamp, origin.store, origin.terminal],
        |r| r.get(0),
    )?;
    let Some(txn) = txn else { return Ok(false) };
    accrue(
        db,
        txn,
        account,
        units(bonus),
        "referral",
        expires,
        None,
        stamp,
    )?;
    Ok(true)
}

/// After a sale of `account` (in its transaction): when the account was
/// invited and this is its first purchase since, the invited customer gets
/// [`Programme::referral_bonus_invited`] and the inviter
/// [`Programme::referral_bonus_inviter`] (while the inviter is active and
/// under [`Programme::referral_max_per_inviter`] paid invitations). Keys
/// `referral:<invited>:invited` and `referral:<invited>:inviter` make each
/// once per invited account.
pub(crate) fn referral_after_sale(
    db: &dyn Db,
    p: &Programme,
    account: i64,
    now: OffsetDateTime,
    origin: &Origin,
) -> Result<(), DbError> {
    let invited_bonus = p.referral_bonus_invited.filter(|b| *b > Decimal::ZERO);
    let inviter_bonus = p.referral_bonus_inviter.filter(|b| *b > Decimal::ZERO);
    if invited_bonus.is_none() && inviter_bonus.is_none() {
        return Ok(());
    }
    let inviter: Option<Option<i64>> = db.query_opt(
        "SELECT referred_by FROM accounts WHERE id = ?1",
        args![account],
        |r| r.get(0),
    )?;
    let Some(Some(inviter)) = inviter else {
        return Ok(());
    };
    let stamp = ts(now);
    let expires = bonus_expiry_of(p, p.referral_expiry_days, now)
        .map_err(|_| DbError::Invariant("the referral bonus's expiry is out of range"))?
        .map(ts);
    if let Some(b) = invited_bonus {
        referral_credit(
            db,
            &format!("referral:{account}:invited"),
            account,
            b,
            expires.as_deref(),
            &stamp,
            origin,
        )?;
    }
    if let Some(b) = inviter_bonus {
        let key = format!("referral:{account}:inviter");
        // The inviter's count and balance are another account's books.
        crate::ledger::embedded::touch_account(db, inviter)?;
        let (active, paid): (bool, i64) = db.query_row(
            "SELECT a.status = 'active' AND a.erased_at IS NULL,
                    (SELECT COUNT(*) FROM txns t WHERE t.account_id = a.id AND t.kind = 'referral'
                       AND t.idempotency_key LIKE '%:inviter')
             FROM accounts a WHERE a.id = ?1",
            args![inviter],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let under = p
            .referral_max_per_inviter
            .is_none_or(|max| paid < i64::from(max));
        if active && under {
            referral_credit(db, &key, inviter, b, expires.as_deref(), &stamp, origin)?;
        }
    }
    Ok(())
}

/// An account's points that burn within a window, for the reminder
/// message (`[ledger.messages] burning_within_days`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Burning {
    /// The account.
    pub account: i64,
    /// Points on its open lots that expire in the window.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// The earliest of those lots' expiry (RFC 3339, UTC).
    pub expires_at: String,
}

/// The most accounts one reminder run returns.
pub const MAX_BURNING: i64 = 10_000;

/// Accounts that consented to messages, are not erased and hold open lots
/// expiring in `[from, until)`, with those lots' points.
pub(crate) fn burning_tx(
    db: &dyn Db,
    from: OffsetDateTime,
    until: OffsetDateTime,
) -> Result<Vec<Burning>, DbError> {
    db.query_map(
        "SELECT l.account_id, CAST(SUM(l.remaining) AS BIGINT), MIN(l.expires_at)
         FROM lots l JOIN accounts a ON a.id = l.account_id
         WHERE l.remaining > 0 AND l.expires_at >= ?1 AND l.expires_at < ?2
           AND a.consent_messages_at IS NOT NULL AND a.erased_at IS NULL
         GROUP BY l.account_id ORDER BY l.account_id LIMIT ?3",
        args![ts(from), ts(until), MAX_BURNING],
        |r| {
            Ok(Burning {
                account: r.get(0)?,
                amount: super::embedded::points(r.get(1)?),
                expires_at: r.get(2)?,
            })
        },
    )
}
