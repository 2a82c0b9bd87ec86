//! Customers, their cards, groups, code words and the cards' secret codes,
//! and confirmation of new accounts.
//!
//! A secret, a code word and a confirmation code are stored only as
//! argon2id hashes with their own salt and compared in constant time. Wrong
//! secrets count on the card; after [`MAX_ATTEMPTS`] the card is locked for
//! [`LOCK_FOR`], recorded in the database so a restart does not lift it.
//!
//! With confirmation on, a new account is `pending`: it neither earns nor
//! spends (the ledger serves only `active` accounts) until
//! [`Accounts::activate`] accepts its code. The welcome bonus is credited
//! exactly once, in the same transaction that makes the account active:
//! the `pending` → `active` update succeeds once, and the bonus's
//! transaction carries the key `welcome:<account>`.
//!
//! Delivering codes is not done here (this floor has no network): the
//! caller gets a [`PendingCode`] and hands it to a notifier.

use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use time::OffsetDateTime;

use super::db::{Books, Db, DbError, Value, args};
use super::embedded::{entry, new_lot, ts, units};
use super::origin::Origin;
use super::rules::{self, Programme};
use crate::random::{self, RandomError, Source};
use crate::redact::Secret;
use crate::store::{Store, StoreError};

mod confirm;
mod gate;
mod groups;
mod guess;
mod redeem;
mod register;
mod search;
mod types;
mod values;
mod wire;
pub mod words;

use gate::{HashGate, KeyLocks};
pub(crate) use groups::groups_of;
use groups::missing_group;
pub use groups::{GROUPS_PAGE_MAX, GroupPage};
use guess::{CARD_SECRET, CODE_WORD, Checked, CodeCount, Guess};
pub use search::{
    CardRow, LOTS_MAX, LotView, SEARCH_MAX_LIMIT, SEARCH_MAX_QUERY, SaleFound, SearchHit,
    SearchPage,
};
pub use types::{
    AccountView, Activated, CodeWordCheck, GroupView, Issued, Lookup, PendingCode, Registered,
    Registration, Update,
};
pub use values::{
    argon2id_hash, argon2id_matches, group_name, normalise_email, normalise_phone, virtual_number,
};
use values::{
    check_card_number, check_secret, code_word_of, ean_digit, email_of, hash_secret, luhn_digit,
    phone_of, random_digits, random_from, secret_matches,
};

/// Wrong secrets in a row before a card locks.
pub const MAX_ATTEMPTS: i64 = 5;
/// How long a locked card stays locked.
pub const LOCK_FOR: Duration = Duration::from_secs(15 * 60);

/// The check digit of generated card numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckDigit {
    /// Luhn (payment-card style).
    Luhn,
    /// EAN/GTIN mod 10 with weights 3, 1 from the right (EAN-13 barcodes).
    Ean13,
}

/// How virtual card numbers are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardFormat {
    /// Leading digits.
    pub prefix: String,
    /// Total length, check digit included.
    pub length: usize,
    /// The check digit.
    pub check: CheckDigit,
}

impl CardFormat {
    /// A new number: prefix, random digits, check digit; none without
    /// randomness.
    pub fn generate(&self, source: Source) -> Result<String, RandomError> {
        let random = self.length.saturating_sub(self.prefix.len() + 1);
        let body = format!("{}{}", self.prefix, random_digits(source, random)?);
        let check = match self.check {
            CheckDigit::Luhn => luhn_digit(&body),
            CheckDigit::Ean13 => ean_digit(&body),
        };
        Ok(format!("{body}{check}"))
    }
}

/// How generated secrets look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFormat {
    /// Characters.
    pub length: usize,
    /// Drawn from these (ASCII letters or digits, distinct).
    pub alphabet: String,
}

/// Confirmation of new accounts by a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmSettings {
    /// Digits of a code.
    pub code_length: usize,
    /// How long a code is valid.
    pub ttl: Duration,
    /// Wrong codes before it is void.
    pub max_attempts: i64,
    /// Least time between two delivered codes for one account.
    pub resend_after: Duration,
}

/// The programme's registration settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Virtual card numbers.
    pub card: CardFormat,
    /// Leading digits of the programme's physical cards (empty: any).
    pub card_ranges: Vec<String>,
    /// Generated secrets.
    pub secret: SecretFormat,
    /// `None`: accounts are active at once.
    pub confirm: Option<ConfirmSettings>,
    /// `None`: points are spent only with a card and its secret; else a
    /// one-time code to the customer may stand in for the card.
    pub redeem_code: Option<ConfirmSettings>,
    /// argon2 runs at once (`[ledger] hash_concurrency`).
    pub hash_concurrency: usize,
    /// The longest a call waits for its turn to hash before it is answered
    /// busy (`[ledger] hash_queue_timeout_ms`).
    pub hash_queue_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            card_ranges: Vec::new(),
            card: CardFormat {
                prefix: "2990".into(),
                length: 16,
                check: CheckDigit::Luhn,
            },
            secret: SecretFormat {
                length: 6,
                alphabet: "0123456789".into(),
            },
            confirm: None,
            redeem_code: None,
            hash_concurrency: 2,
            hash_queue_timeout: Duration::from_secs(5),
        }
    }
}

/// Account errors; each maps to a stable API code.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Not a phone number.
    #[error("phone: not a phone number (E.164, such as +79161234567)")]
    BadPhone,
    /// Not an e-mail address.
    #[error("email: not an e-mail address")]
    BadEmail,
    /// Neither contact given (or an update would remove the last one).
    #[error("give phone or email")]
    NoContact,
    /// Someone already has this phone or e-mail.
    #[error("an account with this {0} exists")]
    Duplicate(&'static str),
    /// The card number is taken.
    #[error("the card number is already issued")]
    CardTaken,
    /// `[ledger.redemption] by_code` is off.
    #[error("this programme spends points only with the card and its secret")]
    RedeemByCodeOff,
    /// No redemption code is outstanding (none sent, or already used).
    #[error("no redemption code outstanding; send one with sale.redeem_code.send")]
    NoRedeemCode,
    /// Too many wrong code words: the account's code word is locked.
    #[error("the code word is locked until {until}")]
    CodeWordLocked {
        /// RFC 3339.
        until: String,
    },
    /// The number is outside the programme's card ranges.
    #[error("the card belongs to another programme")]
    OtherProgramme,
    /// A programme this till does not serve, or a name no programme has.
    #[error(transparent)]
    Programme(#[from] crate::ledger::programmes::ProgrammeError),
    /// The card number is not 4 to 32 digits.
    #[error("card_number: 4 to 32 digits")]
    BadCardNumber,
    /// The secret is not 4 to 32 letters or digits.
    #[error("secret: 4 to 32 letters or digits")]
    BadSecret,
    /// A code word is not 2 to 64 characters.
    #[error("code_word: 2 to 64 characters")]
    BadCodeWord,
    /// A group name is not 1 to 64 printable characters.
    #[error("group name: 1 to 64 printable characters")]
    BadGroupName,
    /// A search query is empty or longer than the bound (characters).
    #[error("query: 1 to {0} characters")]
    BadQuery(usize),
    /// No such card.
    #[error("unknown card")]
    UnknownCard,
    /// No such account.
    #[error("unknown account")]
    UnknownAccount,
    /// The card is blocked or lost.
    #[error("the card is {0}")]
    CardInactive(String),
    /// The card has no secret registered, so nothing can prove presence.
    #[error("the card has no secret code registered")]
    NoSecret,
    /// Wrong secret.
    #[error("wrong secret code; {attempts_left} attempts left before the card locks")]
    WrongSecret {
        /// Attempts left.
        attempts_left: i64,
    },
    /// Too many wrong secrets.
    #[error("the card is locked until {until}")]
    Locked {
        /// RFC 3339.
        until: String,
        /// This attempt locked it (publish `card.locked` once).
        just_locked: bool,
    },
    /// No such group.
    #[error("unknown group \"{0}\"")]
    UnknownGroup(String),
    /// The group exists.
    #[error("the group exists")]
    GroupExists,
    /// The group has members and `force` was not given.
    #[error("the group has {members} member(s); give force: true to remove them too")]
    GroupInUse {
        /// Accounts in it.
        members: i64,
    },
    /// `account.update` cannot set this status.
    #[error("status: {0}")]
    BadStatus(&'static str),
    /// The account is not waiting for confirmation.
    #[error("the account is {0}, not pending")]
    NotPending(String),
    /// Wrong confirmation code.
    #[error("wrong code; {attempts_left} attempts left")]
    WrongCode {
        /// Attempts left before the code is void.
        attempts_left: i64,
    },
    /// The code expired.
    #[error("the confirmation code expired; send a new one")]
    CodeExpired,
    /// Too many wrong codes: the code is void.
    #[error("too many wrong codes; send a new one")]
    CodeExhausted,
    /// A code was delivered too recently.
    #[error("a code was sent less than {retry_after_s} s ago")]
    TooSoon {
        /// Seconds to wait.
        retry_after_s: u64,
    },
    /// The rules refused (the welcome bonus's expiry).
    #[error(transparent)]
    Rules(#[from] rules::RulesError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The books failed (either store).
    #[error(transparent)]
    Db(#[from] DbError),
    /// The central ledger refused (its own code) or could not be reached.
    #[error(transparent)]
    Remote(#[from] crate::ledger::RemoteError),
    /// Every hashing turn stayed taken for the queue timeout: retry later.
    #[error("busy checking secrets; retry")]
    Busy,
    /// No randomness: nothing was minted.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// The two tables of one-time codes: registration confirmations and
/// redemption codes, alike in shape.
#[derive(Debug, Clone, Copy)]
enum CodeTable {
    Confirmations,
    RedeemCodes,
}

impl CodeTable {
    fn name(self) -> &'static str {
        match self {
            CodeTable::Confirmations => "confirmations",
            CodeTable::RedeemCodes => "redeem_codes",
        }
    }

    /// The account status a code of this kind is for.
    fn status(self) -> &'static str {
        match self {
            CodeTable::Confirmations => "pending",
            CodeTable::RedeemCodes => "active",
        }
    }

    fn wrong_status(self, status: String) -> AccountError {
        match self {
            CodeTable::Confirmations => AccountError::NotPending(status),
            CodeTable::RedeemCodes => AccountError::CardInactive(status),
        }
    }
}

fn card_exists(db: &dyn Db, number: &str) -> Result<bool, DbError> {
    Ok(db
        .query_opt(
            "SELECT 1 FROM cards WHERE number = ?1",
            args![number],
            |_| Ok(()),
        )?
        .is_some())
}

fn account_exists(db: &dyn Db, account: i64) -> Result<bool, DbError> {
    Ok(db
        .query_opt(
            "SELECT 1 FROM accounts WHERE id = ?1",
            args![account],
            |_| Ok(()),
        )?
        .is_some())
}

/// A fresh virtual number not yet issued.
fn unused_virtual(
    db: &dyn Db,
    f: &CardFormat,
    source: Source,
) -> Result<Result<String, AccountError>, DbError> {
    loop {
        let n = match f.generate(source) {
            Ok(n) => n,
            Err(e) => return Ok(Err(e.into())),
        };
        if !card_exists(db, &n)? {
            return Ok(Ok(n));
        }
    }
}

/// Who else holds this phone or e-mail (`except` the account itself).
fn duplicate(
    db: &dyn Db,
    phone: Option<&str>,
    email: Option<&str>,
    except: i64,
) -> Result<Option<&'static str>, DbError> {
    for (field, value) in [("phone", phone), ("email", email)] {
        if let Some(v) = value {
            let taken: Option<i64> = db.query_opt(
                &format!("SELECT id FROM accounts WHERE {field} = ?1 AND id != ?2"),
                args![v, except],
                |r| r.get(0),
            )?;
            if taken.is_some() {
                return Ok(Some(field));
            }
        }
    }
    Ok(None)
}

/// A welcome bonus and its expiry (`None`, `None`: no bonus).
type Welcome = (Option<Decimal>, Option<String>);

/// Credits the welcome bonus once per account, recording `origin` on its
/// transaction. Returns the amount and expiry credited, now or earlier
/// (`None`: no bonus).
fn credit_welcome(
    db: &dyn Db,
    account: i64,
    bonus: Option<Decimal>,
    expires: Option<&str>,
    stamp: &str,
    origin: &Origin,
) -> Result<Welcome, DbError> {
    if let Some(earlier) = welcome_of(db, account)? {
        return Ok(earlier);
    }
    let Some(bonus) = bonus else {
        return Ok((None, None));
    };
    // The key names the account: a second credit fails the UNIQUE index
    // and rolls the whole transaction back rather than paying twice.
    let txn = db.insert(
        "INSERT INTO txns (idempotency_key, kind, account_id, request, result, created_at,
                           store_id, terminal_id)
         VALUES (?1, 'welcome', ?2, '', '', ?3, ?4, ?5) RETURNING id",
        args![
            format!("welcome:{account}"),
            account,
            stamp,
            origin.store,
            origin.terminal
        ],
    )?;
    let u = units(bonus);
    // The shared book-keeping keeps the account's balance and next expiry.
    let lot = new_lot(db, txn, account, u, expires, stamp)?;
    entry(db, txn, account, Some(lot), "welcome", u, stamp)?;
    Ok((Some(bonus), expires.map(str::to_owned)))
}

/// The welcome bonus already credited to `account`, if any.
fn welcome_of(db: &dyn Db, account: i64) -> Result<Option<Welcome>, DbError> {
    db.query_opt(
        "SELECT l.amount, l.expires_at FROM txns t JOIN lots l ON l.txn_id = t.id
         WHERE t.idempotency_key = ?1 AND t.kind = 'welcome' AND t.account_id = ?2",
        args![format!("welcome:{account}"), account],
        |r| {
            let amount: i64 = r.get(0)?;
            Ok((
                Some(Decimal::new(amount, 4).normalize()),
                r.get::<Option<String>>(1)?,
            ))
        },
    )
}

/// The contact a code goes to: the phone when there is one.
fn contact_of(db: &dyn Db, account: i64) -> Result<Option<(&'static str, String)>, DbError> {
    let (phone, email): (Option<String>, Option<String>) = db.query_row(
        "SELECT phone, email FROM accounts WHERE id = ?1",
        args![account],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(phone
        .map(|p| ("phone", p))
        .or_else(|| email.map(|e| ("email", e))))
}

/// The welcome bonus of `p` and its expiry if granted at `now`.
fn welcome_now(
    p: &Programme,
    now: OffsetDateTime,
) -> Result<(Option<Decimal>, Option<String>), AccountError> {
    let welcome = p.welcome_bonus.filter(|b| *b > Decimal::ZERO);
    let expiry = match welcome {
        Some(_) => rules::welcome_expiry_of(p, now)?.map(ts),
        None => None,
    };
    Ok((welcome, expiry))
}

/// Expiry of a code made at `now`: at least `ttl` (timestamps are whole
/// seconds, so the second is rounded up).
fn code_expiry(now: OffsetDateTime, ttl: Duration) -> String {
    ts(now + ttl + Duration::from_millis(999))
}

/// Accounts and cards, on either store's books. Cloning is cheap: the
/// books, settings, hashing gate and guess locks are shared.
#[derive(Clone)]
pub struct Accounts {
    books: Books,
    settings: Arc<Settings>,
    gate: HashGate,
    keys: KeyLocks,
    random: Source,
    origin: Arc<Origin>,
}

impl Accounts {
    /// On `store` (the embedded SQLite books), with the programme's
    /// registration `settings`; its transactions record this till's
    /// terminal id.
    pub fn new(store: Store, settings: Settings) -> Self {
        let origin = Origin::new("", store.terminal_id());
        Accounts::with_books(Books::sqlite(store), settings, origin)
    }

    /// On any store's `books`, recording `origin` on the transactions it
    /// writes (the central service gives each till's own).
    pub fn with_books(books: Books, settings: Settings, origin: Origin) -> Self {
        let gate = HashGate::new(settings.hash_concurrency, settings.hash_queue_timeout);
        Accounts {
            books,
            settings: Arc::new(settings),
            gate,
            keys: KeyLocks::default(),
            random: random::system,
            origin: Arc::new(origin),
        }
    }

    /// The same accounts (books, gate and locks shared) acting for
    /// `origin`: the central service makes one per authenticated till.
    pub fn with_origin(&self, origin: Origin) -> Self {
        Accounts {
            origin: Arc::new(origin),
            ..self.clone()
        }
    }

    /// The same accounts drawing randomness from `source` (tests inject a
    /// failing one).
    pub fn with_random(mut self, source: Source) -> Self {
        self.random = source;
        self
    }

    /// Hashes `clear` with a fresh salt, through the gate.
    async fn hash(&self, clear: String) -> Result<String, AccountError> {
        let mut salt = [0u8; 16];
        (self.random)(&mut salt)?;
        self.gate.hash(move |m| hash_secret(&clear, salt, m)).await
    }

    /// `n` characters from `alphabet`.
    fn random_from(&self, alphabet: &str, n: usize) -> Result<String, RandomError> {
        random_from(self.random, alphabet.as_bytes(), n)
    }

    /// The registration settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Where the transactions these accounts write say they came from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Refuses a physical card of another programme: one whose number
    /// starts with none of the configured ranges (nor the virtual prefix).
    fn check_range(&self, number: &str) -> Result<(), AccountError> {
        let s = &self.settings;
        if s.card_ranges.is_empty()
            || s.card_ranges.iter().any(|r| number.starts_with(r.as_str()))
            || number.starts_with(s.card.prefix.as_str())
        {
            Ok(())
        } else {
            Err(AccountError::OtherProgramme)
        }
    }

    /// Changes an account's details, all or nothing. Phone and e-mail are
    /// validated as at registration; at least one must remain.
    pub async fn update(&self, account: i64, u: Update) -> Result<AccountView, AccountError> {
        let phone = match &u.phone {
            Some(Some(p)) => Some(Some(phone_of(p)?)),
            other => other.clone(),
        };
        let email = match &u.email {
            Some(Some(e)) => Some(Some(email_of(e)?)),
            other => other.clone(),
        };
        let word_hash = match &u.code_word {
            Some(Some(w)) => Some(Some(self.hash(code_word_of(w)?).await?)),
            Some(None) => Some(None),
            None => None,
        };
        let status = match u.status.as_deref() {
            None => None,
            Some("active") => Some("active"),
            Some("blocked") => Some("blocked"),
            Some(_) => return Err(AccountError::BadStatus("active or blocked")),
        };
        let name = u.name.clone();
        let birth_date = match &u.birth_date {
            Some(Some(b)) => Some(Some(crate::ledger::people::checked_birth_date(b)?)),
            other => other.clone(),
        };
        self.books
            .write(move |db| {
                let row: Option<(String, Option<String>, Option<String>)> = db.query_opt(
                    "SELECT status, phone, email FROM accounts WHERE id = ?1",
                    args![account],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
                let Some((current, old_phone, old_email)) = row else {
                    return Ok(Err(AccountError::UnknownAccount));
                };
                if status.is_some() && current == "pending" {
                    return Ok(Err(AccountError::BadStatus(
                        "the account is pending: account.activate makes it active",
                    )));
                }
                let touched = phone.is_some() || email.is_some();
                let new_phone = phone.clone().unwrap_or(old_phone);
                let new_email = email.clone().unwrap_or(old_email);
                // A card enrolled by a sale has no contact; blocking it must
                // not demand one.
                if touched && new_phone.is_none() && new_email.is_none() {
                    return Ok(Err(AccountError::NoContact));
                }
                if let Some(field) =
                    duplicate(db, new_phone.as_deref(), new_email.as_deref(), account)?
                {
                    return Ok(Err(AccountError::Duplicate(field)));
                }
                if let Some(n) = &name {
                    db.execute(
                        "UPDATE accounts SET name = ?2 WHERE id = ?1",
                        args![account, n],
                    )?;
                }
                db.execute(
                    "UPDATE accounts SET phone = ?2, email = ?3 WHERE id = ?1",
                    args![account, new_phone, new_email],
                )?;
                if name.is_some() || email.is_some() {
                    words::reindex(db, account)?;
                }
                if let Some(h) = &word_hash {
                    db.execute(
                        "UPDATE accounts SET code_word_hash = ?2 WHERE id = ?1",
                        args![account, h],
                    )?;
                }
                if let Some(s) = status {
                    db.execute(
                        "UPDATE accounts SET status = ?2 WHERE id = ?1",
                        args![account, s],
                    )?;
                }
                crate::ledger::people::set_birth_date(db, account, &birth_date)?;
                Ok(Ok(view_of(db, account)?))
            })
            .await?
    }

    /// Whether `word` is the account's code word (`false` when it has
    /// none). The comparison ignores case and surrounding spaces. Wrong
    /// words count like wrong secrets: after [`MAX_ATTEMPTS`] in a row the
    /// account's code word is locked for [`LOCK_FOR`] (stored, so a restart
    /// keeps it); a right one resets the count.
    pub async fn verify_code_word(
        &self,
        account: i64,
        word: Secret,
    ) -> Result<CodeWordCheck, AccountError> {
        let word = code_word_of(&word)?;
        match CODE_WORD.check(self, account, word).await? {
            Checked::Missing => Err(AccountError::UnknownAccount),
            Checked::NoHash => Ok(CodeWordCheck {
                matches: false,
                attempts_left: None,
            }),
            Checked::Guess(Guess::Right) => Ok(CodeWordCheck {
                matches: true,
                attempts_left: None,
            }),
            Checked::Guess(Guess::Wrong { attempts_left }) => Ok(CodeWordCheck {
                matches: false,
                attempts_left: Some(attempts_left),
            }),
            Checked::Guess(Guess::Locked { until, .. }) => {
                Err(AccountError::CodeWordLocked { until })
            }
        }
    }

    /// Adds a card to an account: a generated virtual one, or a physical
    /// one by number. The secret is given or generated (then returned once).
    pub async fn issue_card(
        &self,
        account: i64,
        card_number: Option<String>,
        secret: Option<Secret>,
    ) -> Result<Issued, AccountError> {
        if let Some(n) = &card_number {
            check_card_number(n)?;
            self.check_range(n)?;
        }
        if let Some(s) = &secret {
            check_secret(s)?;
        }
        let (secret, generated) = match secret {
            Some(s) => (s.expose().to_owned(), false),
            None => (
                self.random_from(&self.settings.secret.alphabet, self.settings.secret.length)?,
                true,
            ),
        };
        let hash = self.hash(secret.clone()).await?;
        let format = self.settings.card.clone();
        let source = self.random;
        let (number, kind) = self
            .books
            .write(move |db| {
                let status: Option<String> = db.query_opt(
                    "SELECT status FROM accounts WHERE id = ?1",
                    args![account],
                    |r| r.get(0),
                )?;
                match status.as_deref() {
                    None => return Ok(Err(AccountError::UnknownAccount)),
                    // A blocked customer gets no new way to spend; a pending
                    // one may (the card waits with the account).
                    Some("blocked") => {
                        return Ok(Err(AccountError::CardInactive("blocked".into())));
                    }
                    Some(_) => {}
                }
                let (number, kind) = match &card_number {
                    Some(n) if card_exists(db, n)? => return Ok(Err(AccountError::CardTaken)),
                    Some(n) => (n.clone(), "physical"),
                    None => match unused_virtual(db, &format, source)? {
                        Ok(n) => (n, "virtual"),
                        Err(e) => return Ok(Err(e)),
                    },
                };
                db.execute(
                    "INSERT INTO cards (number, account_id, kind, secret_hash) VALUES (?1, ?2, ?3, ?4)",
                    args![number, account, kind, hash],
                )?;
                Ok(Ok((number, kind)))
            })
            .await??;
        Ok(Issued {
            account,
            card_number: number,
            kind,
            secret: generated.then_some(secret),
        })
    }

    /// Checks a card's secret, counting wrong guesses and locking the card
    /// after [`MAX_ATTEMPTS`].
    pub async fn verify_secret(
        &self,
        number: String,
        presented: Secret,
    ) -> Result<(), AccountError> {
        let presented = presented.expose().to_owned();
        match CARD_SECRET.check(self, number, presented).await? {
            Checked::Missing => Err(AccountError::UnknownCard),
            Checked::NoHash => Err(AccountError::NoSecret),
            Checked::Guess(Guess::Right) => Ok(()),
            Checked::Guess(Guess::Wrong { attempts_left }) => {
                Err(AccountError::WrongSecret { attempts_left })
            }
            Checked::Guess(Guess::Locked { until, just_locked }) => {
                Err(AccountError::Locked { until, just_locked })
            }
        }
    }
}

fn view_of(db: &dyn Db, id: i64) -> Result<AccountView, DbError> {
    let (status, name, phone, email, has_code_word) = db.query_row(
        "SELECT status, name, phone, email, code_word_hash IS NOT NULL FROM accounts WHERE id = ?1",
        args![id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    // In issue order (both stores keep a rowid for cards).
    let cards = db.query_map(
        "SELECT number, kind, status, secret_hash IS NOT NULL, locked_until
         FROM cards WHERE account_id = ?1 ORDER BY rowid",
        args![id],
        |r| {
            let number: String = r.get(0)?;
            Ok(serde_json::json!({
                "card_masked": crate::redact::CardNumber::new(number).masked(),
                "kind": r.get::<String>(1)?,
                "status": r.get::<String>(2)?,
                "has_secret": r.get::<bool>(3)?,
                "locked_until": r.get::<Option<String>>(4)?,
            }))
        },
    )?;
    Ok(AccountView {
        account: id,
        status,
        name,
        phone,
        email,
        has_code_word,
        groups: groups_of(db, id)?,
        cards,
        person: crate::ledger::people::person_of(db, id)?,
    })
}

impl Accounts {
    /// An account with its cards.
    pub async fn get(&self, by: Lookup) -> Result<AccountView, AccountError> {
        let by = match by {
            Lookup::Phone(p) => Lookup::Phone(normalise_phone(&p).ok_or(AccountError::BadPhone)?),
            Lookup::Email(e) => Lookup::Email(e.trim().to_lowercase()),
            other => other,
        };
        self.books
            .read(move |db| {
                let (sql, arg): (&str, Value) = match &by {
                    Lookup::Account(id) => {
                        ("SELECT id FROM accounts WHERE id = ?1", Value::Int(*id))
                    }
                    Lookup::Card(n) => (
                        "SELECT account_id FROM cards WHERE number = ?1",
                        Value::Text(n.clone()),
                    ),
                    Lookup::Phone(p) => (
                        "SELECT id FROM accounts WHERE phone = ?1",
                        Value::Text(p.clone()),
                    ),
                    Lookup::Email(e) => (
                        "SELECT id FROM accounts WHERE email = ?1",
                        Value::Text(e.clone()),
                    ),
                };
                let Some(id) = db.query_opt(sql, args![arg], |r| r.get::<i64>(0))? else {
                    return Ok(Err(AccountError::UnknownCard));
                };
                Ok(Ok(view_of(db, id)?))
            })
            .await?
    }

    /// Blocks or unblocks a card (`blocked`, `lost`, `active`). Unblocking
    /// also lifts a lock from wrong secrets.
    pub async fn set_card_status(
        &self,
        number: String,
        status: &'static str,
    ) -> Result<(), AccountError> {
        let changed = self
            .books
            .write_always(move |db| {
                db.execute(
                    "UPDATE cards SET status = ?2,
                     failed_attempts = CASE WHEN ?2 = 'active' THEN 0 ELSE failed_attempts END,
                     locked_until = CASE WHEN ?2 = 'active' THEN NULL ELSE locked_until END
                     WHERE number = ?1",
                    args![number, status],
                )
            })
            .await?;
        if changed == 0 {
            return Err(AccountError::UnknownCard);
        }
        Ok(())
    }

    /// A new secret for a card (generated, returned once), replacing the old
    /// one and clearing wrong-guess counts. Cards that joined through a sale
    /// get their first secret this way.
    pub async fn regenerate_secret(&self, number: String) -> Result<String, AccountError> {
        let secret =
            self.random_from(&self.settings.secret.alphabet, self.settings.secret.length)?;
        let hash = self.hash(secret.clone()).await?;
        let changed = self
            .books
            .write_always(move |db| {
                db.execute(
                    "UPDATE cards SET secret_hash = ?2, failed_attempts = 0, locked_until = NULL
                     WHERE number = ?1",
                    args![number, hash],
                )
            })
            .await?;
        if changed == 0 {
            return Err(AccountError::UnknownCard);
        }
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        (dir, store)
    }

    fn confirming() -> Settings {
        Settings {
            confirm: Some(ConfirmSettings {
                code_length: 4,
                ttl: Duration::from_secs(600),
                max_attempts: 3,
                resend_after: Duration::from_secs(60),
            }),
            ..Settings::default()
        }
    }

    fn programme() -> Programme {
        Programme {
            welcome_bonus: Some(Decimal::from(100)),
            ..Programme::default()
        }
    }

    #[tokio::test]
    async fn activation_credits_the_welcome_bonus_once() {
        let (_d, store) = open();
        let a = Accounts::new(store.clone(), confirming());
        let p = programme();
        let r = a
            .register(
                &p,
                Registration {
                    email: Some("a@b.ru".into()),
                    ..Registration::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(r.status, "pending");
        assert_eq!(r.welcome_bonus, None);
        let pending = r.pending.unwrap();
        assert_eq!(
            (pending.channel, pending.contact.as_str()),
            ("email", "a@b.ru")
        );
        let code = pending.code.expose().to_owned();
        assert_eq!(code.len(), 4);
        let wrong = if code == "0000" { "1111" } else { "0000" };
        assert!(matches!(
            a.activate(&p, r.account, Secret::new(wrong)).await,
            Err(AccountError::WrongCode { attempts_left: 2 })
        ));
        let first = a
            .activate(&p, r.account, Secret::new(code.clone()))
            .await
            .unwrap();
        assert!(first.newly);
        assert_eq!(first.welcome_bonus, Some(Decimal::from(100)));
        let again = a.activate(&p, r.account, Secret::new(code)).await.unwrap();
        assert!(!again.newly);
        assert_eq!(again.welcome_bonus, Some(Decimal::from(100)));
        let credits: i64 = Books::sqlite(store)
            .read(|db| {
                db.query_row(
                    "SELECT COUNT(*) FROM entries WHERE kind = 'welcome'",
                    args![],
                    |r| r.get(0),
                )
            })
            .await
            .unwrap();
        assert_eq!(credits, 1);
        assert!(matches!(
            a.new_code(r.account).await,
            Err(AccountError::NotPending(s)) if s == "active"
        ));
    }

    #[tokio::test]
    async fn wrong_codes_void_the_code_and_a_resend_waits() {
        let (_d, store) = open();
        let a = Accounts::new(store, confirming());
        let p = programme();
        let r = a
            .register(
                &p,
                Registration {
                    phone: Some("+79160000009".into()),
                    ..Registration::default()
                },
            )
            .await
            .unwrap();
        let code = r.pending.unwrap().code.expose().to_owned();
        let wrong = if code == "0000" { "1111" } else { "0000" };
        for left in [2, 1] {
            assert!(matches!(
                a.activate(&p, r.account, Secret::new(wrong)).await,
                Err(AccountError::WrongCode { attempts_left }) if attempts_left == left
            ));
        }
        assert!(matches!(
            a.activate(&p, r.account, Secret::new(wrong)).await,
            Err(AccountError::CodeExhausted)
        ));
        // Void: even the right code no longer works.
        assert!(matches!(
            a.activate(&p, r.account, Secret::new(code)).await,
            Err(AccountError::CodeExhausted)
        ));
        // Never delivered: a new code may be sent at once; once delivered,
        // not again within a minute.
        let fresh = a.new_code(r.account).await.unwrap();
        a.code_delivered(r.account).await.unwrap();
        assert!(matches!(
            a.new_code(r.account).await,
            Err(AccountError::TooSoon { retry_after_s }) if retry_after_s > 0 && retry_after_s <= 61
        ));
        let ok = a.activate(&p, r.account, fresh.code).await.unwrap();
        assert!(ok.newly);
    }

    /// The welcome bonus's transaction says where it came from: this
    /// till's terminal on the embedded books, the given origin otherwise.
    #[tokio::test]
    async fn welcome_bonuses_record_their_origin() {
        let (_d, store) = open();
        let p = programme();
        let till = Accounts::new(store.clone(), Settings::default());
        assert_eq!(till.origin(), &Origin::new("", store.terminal_id()));
        let chain = Accounts::with_books(
            Books::sqlite(store.clone()),
            Settings::default(),
            Origin::new("shop-1", "till-1"),
        );
        let other = chain.with_origin(Origin::new("shop-2", "till-7"));
        let mut accounts = Vec::new();
        for (i, a) in [&till, &chain, &other].into_iter().enumerate() {
            let r = a
                .register(
                    &p,
                    Registration {
                        phone: Some(format!("+7916000002{i}")),
                        ..Registration::default()
                    },
                )
                .await
                .unwrap();
            assert_eq!(r.welcome_bonus, Some(Decimal::from(100)));
            accounts.push(r.account);
        }
        let books = Books::sqlite(store.clone());
        let mut origins = Vec::new();
        for account in accounts {
            let o: (Option<String>, Option<String>) = books
                .read(move |db| {
                    db.query_row(
                        "SELECT store_id, terminal_id FROM txns
                         WHERE kind = 'welcome' AND account_id = ?1",
                        args![account],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                })
                .await
                .unwrap();
            origins.push(o);
        }
        let s = |x: &str| Some(x.to_owned());
        assert_eq!(
            origins,
            [
                (s(""), s(store.terminal_id())),
                (s("shop-1"), s("till-1")),
                (s("shop-2"), s("till-7")),
            ]
        );
        // The clone shares the books: the first's account is visible.
        assert!(
            other
                .get(Lookup::Phone("+79160000020".into()))
                .await
                .is_ok()
        );
    }

    /// What the central service sends a till: the pending code in clear
    /// (for the till's notifier), an update's "clear" apart from "keep",
    /// and the static strings read back.
    #[test]
    fn wire_forms_round_trip() {
        let code = PendingCode {
            account: 7,
            channel: "phone",
            contact: "+79160000001".into(),
            code: Secret::new("4711"),
        };
        assert!(
            !format!("{code:?}").contains("4711"),
            "Debug hides the code"
        );
        let r = Registered {
            account: 7,
            status: "pending",
            card_number: "2990000000000001".into(),
            kind: "virtual",
            secret: Some("123456".into()),
            adopted: false,
            groups: vec!["staff".into()],
            welcome_bonus: None,
            welcome_expires_at: None,
            pending: Some(code),
        };
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["pending"]["code"], "4711");
        assert_eq!(json["pending"]["channel"], "phone");
        let back: Registered = serde_json::from_value(json).unwrap();
        assert_eq!((back.status, back.kind), ("pending", "virtual"));
        let pending = back.pending.unwrap();
        assert_eq!(
            (pending.account, pending.channel, pending.code.expose()),
            (7, "phone", "4711")
        );
        // Without a code the reply has no such field.
        let mut r2 =
            serde_json::from_value::<Registered>(serde_json::to_value(&r).unwrap()).unwrap();
        r2.pending = None;
        assert!(serde_json::to_value(&r2).unwrap().get("pending").is_none());
        assert!(
            serde_json::from_value::<Registered>(serde_json::json!({
                "account": 1, "status": "frozen", "card_number": "1", "kind": "virtual",
                "secret": null, "adopted": false, "groups": [], "welcome_bonus": null,
                "welcome_expires_at": null
            }))
            .is_err()
        );

        let u = Update {
            name: Some(None),
            email: Some(Some("a@b.ru".into())),
            code_word: Some(Some(Secret::new("ромашка"))),
            ..Update::default()
        };
        let json = serde_json::to_value(&u).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name": null, "email": "a@b.ru", "code_word": "ромашка"})
        );
        let back: Update = serde_json::from_value(json).unwrap();
        assert_eq!(back.name, Some(None));
        assert_eq!(back.phone, None);
        assert_eq!(back.email, Some(Some("a@b.ru".into())));
        assert_eq!(back.code_word, Some(Some(Secret::new("ромашка"))));
        assert_eq!(back.status, None);
        let cleared: Update =
            serde_json::from_value(serde_json::json!({"code_word": null})).unwrap();
        assert_eq!(cleared.code_word, Some(None));

        let reg: Registration = serde_json::from_value(serde_json::json!({
            "phone": "+79160000001", "secret": "4711", "code_word": "ромашка"
        }))
        .unwrap();
        assert_eq!(reg.secret.as_ref().map(Secret::expose), Some("4711"));
        assert!(reg.groups.is_empty());
        assert_eq!(
            serde_json::to_value(&reg).unwrap()["secret"],
            serde_json::json!("4711")
        );

        let by = serde_json::to_value(Lookup::Card("2990".into())).unwrap();
        assert_eq!(by, serde_json::json!({"card": "2990"}));
        assert!(matches!(
            serde_json::from_value::<Lookup>(serde_json::json!({"account": 5})).unwrap(),
            Lookup::Account(5)
        ));
    }
}
