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

use std::time::Duration;

use argon2::{Algorithm, Argon2, Params, Version};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

use super::embedded::{ts, units};
use super::rules::{self, Programme};
use crate::random::{self, RandomError, Source};
use crate::redact::{Secret, constant_time_eq};
use crate::store::{Store, StoreError};

mod gate;
mod guess;
mod redeem;

use gate::{HashGate, KeyLocks};
use guess::{CARD_SECRET, CODE_WORD, Checked, CodeCount, Guess};

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
    /// Every hashing turn stayed taken for the queue timeout: retry later.
    #[error("busy checking secrets; retry")]
    Busy,
    /// No randomness: nothing was minted.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The central ledger refused (its own code) or could not be reached.
    #[error(transparent)]
    Remote(#[from] crate::ledger::RemoteError),
}

/// A confirmation code to deliver; `Debug` hides the code. It crosses the
/// central ledger's wire (the till's notifier delivers it), so it
/// serialises the code in the clear: never put one in an API reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingCode {
    /// The account waiting for it.
    pub account: i64,
    /// `phone` (preferred when the account has one) or `email`.
    #[serde(deserialize_with = "known_word")]
    pub channel: Word,
    /// The phone number or e-mail address.
    pub contact: String,
    /// The code.
    #[serde(serialize_with = "crate::redact::expose")]
    pub code: Secret,
}

/// A fixed word: a status, a card kind, a channel. (An alias, so serde's
/// derive does not see a borrowed `&'static str` and ask for `'de: 'static`.)
pub type Word = &'static str;

/// The fixed words (statuses, kinds, channels) the [`Word`] fields
/// of crossing types hold, read back from the wire.
fn known_word<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    const WORDS: [&str; 8] = [
        "active", "pending", "blocked", "lost", "physical", "virtual", "phone", "email",
    ];
    let w = String::deserialize(d)?;
    WORDS
        .into_iter()
        .find(|k| *k == w)
        .ok_or_else(|| serde::de::Error::custom(format!("unexpected word \"{w}\"")))
}

/// `Some(None)` for an explicit `null`, so an [`Update`] can clear a field.
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
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

/// What registration created. The secret is shown here once and never again.
#[derive(Debug, Serialize, Deserialize)]
pub struct Registered {
    /// Account id.
    pub account: i64,
    /// `active`, or `pending` until confirmed.
    #[serde(deserialize_with = "known_word")]
    pub status: Word,
    /// The card.
    pub card_number: String,
    /// `physical` or `virtual`.
    #[serde(deserialize_with = "known_word")]
    pub kind: Word,
    /// The secret code when it was generated here (shown once).
    pub secret: Option<String>,
    /// True when the card had joined through a sale and its account (with
    /// its points) became this customer's.
    pub adopted: bool,
    /// Groups.
    pub groups: Vec<String>,
    /// Welcome bonus credited now (`None` while pending).
    #[serde(with = "rust_decimal::serde::str_option")]
    pub welcome_bonus: Option<Decimal>,
    /// When it expires.
    pub welcome_expires_at: Option<String>,
    /// The code to deliver, with confirmation on. Serialised only for the
    /// central ledger's wire: the API takes it out before it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingCode>,
}

/// A registration request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Registration {
    /// Phone, any common notation.
    pub phone: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// A physical card's number; absent: a virtual card is generated.
    pub card_number: Option<String>,
    /// The card's secret; absent: one is generated.
    #[serde(serialize_with = "crate::redact::expose")]
    pub secret: Option<Secret>,
    /// Groups to join (each must exist).
    pub groups: Vec<String>,
    /// A word the customer can give a cashier instead of the card.
    #[serde(serialize_with = "crate::redact::expose")]
    pub code_word: Option<Secret>,
}

/// What `account.activate` did.
#[derive(Debug, Serialize, Deserialize)]
pub struct Activated {
    /// Account id.
    pub account: i64,
    /// Always `active`.
    #[serde(deserialize_with = "known_word")]
    pub status: Word,
    /// The welcome bonus credited at activation (the same on a repeat).
    #[serde(with = "rust_decimal::serde::str_option")]
    pub welcome_bonus: Option<Decimal>,
    /// When it expires.
    pub welcome_expires_at: Option<String>,
    /// True only for the call that activated; a repeat (or a race loser)
    /// gets the same reply with `false`. Serialised for the central
    /// ledger's wire; the API leaves it out of its reply.
    #[serde(default)]
    pub newly: bool,
}

/// A card added to an account. The secret is shown here once.
#[derive(Debug, Serialize, Deserialize)]
pub struct Issued {
    /// Account id.
    pub account: i64,
    /// The card.
    pub card_number: String,
    /// `physical` or `virtual`.
    #[serde(deserialize_with = "known_word")]
    pub kind: Word,
    /// The secret code when it was generated here (shown once).
    pub secret: Option<String>,
}

/// A group as `group.list` shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct GroupView {
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Accounts in it.
    pub members: i64,
    /// RFC 3339.
    pub created_at: String,
}

/// An `account.update`: each field `None` = unchanged, `Some(None)` =
/// cleared (absent and `null` on the wire).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Update {
    /// Name.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<Option<String>>,
    /// Phone.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub phone: Option<Option<String>>,
    /// E-mail.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub email: Option<Option<String>>,
    /// Code word.
    #[serde(
        default,
        deserialize_with = "nullable",
        serialize_with = "crate::redact::expose",
        skip_serializing_if = "Option::is_none"
    )]
    pub code_word: Option<Option<Secret>>,
    /// `active` or `blocked`.
    #[serde(default)]
    pub status: Option<String>,
}

/// `n` characters drawn uniformly enough (16 random bits per character,
/// bias below 0.1 % for alphabets up to 62) from `alphabet`.
fn random_from(source: Source, alphabet: &[u8], n: usize) -> Result<String, RandomError> {
    if alphabet.is_empty() {
        return Ok(String::new());
    }
    let mut buf = vec![0u8; n * 2];
    source(&mut buf)?;
    Ok(buf
        .chunks(2)
        .map(|c| {
            let i = usize::from(u16::from(c[0]) << 8 | u16::from(c[1])) % alphabet.len();
            char::from(alphabet[i])
        })
        .collect())
}

fn random_digits(source: Source, n: usize) -> Result<String, RandomError> {
    random_from(source, b"0123456789", n)
}

fn luhn_digit(body: &str) -> char {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

fn ean_digit(body: &str) -> char {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

/// A new virtual card number in the default format (prefix 2990, 16
/// digits, Luhn).
pub fn virtual_number() -> Result<String, RandomError> {
    Settings::default().card.generate(random::system)
}

/// `+7…` from the usual Russian notations; other countries must come with
/// their `+` code.
pub fn normalise_phone(raw: &str) -> Option<String> {
    let plus = raw.trim_start().starts_with('+');
    if raw
        .chars()
        .any(|c| !(c.is_ascii_digit() || " +-()".contains(c)))
    {
        return None;
    }
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let e164 = match (plus, digits.len(), digits.as_bytes().first()) {
        (false, 11, Some(b'8')) => format!("+7{}", &digits[1..]),
        (false, 11, Some(b'7')) => format!("+{digits}"),
        (false, 10, Some(b'9')) => format!("+7{digits}"),
        (true, 8..=15, Some(d)) if *d != b'0' => format!("+{digits}"),
        _ => return None,
    };
    Some(e164)
}

fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && e.len() <= 254
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@')
}

fn phone_of(raw: &str) -> Result<String, AccountError> {
    normalise_phone(raw).ok_or(AccountError::BadPhone)
}

fn email_of(raw: &str) -> Result<String, AccountError> {
    let e = raw.trim();
    if valid_email(e) {
        Ok(e.to_lowercase())
    } else {
        Err(AccountError::BadEmail)
    }
}

fn check_card_number(n: &str) -> Result<(), AccountError> {
    if (4..=32).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(AccountError::BadCardNumber)
    }
}

fn check_secret(s: &Secret) -> Result<(), AccountError> {
    let s = s.expose();
    if (4..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(AccountError::BadSecret)
    }
}

/// A code word as compared: trimmed, lower case, so a cashier's typing
/// of "Ромашка " matches "ромашка".
fn code_word_of(w: &Secret) -> Result<String, AccountError> {
    let w = w.expose().trim().to_lowercase();
    if (2..=64).contains(&w.chars().count()) && !w.chars().any(char::is_control) {
        Ok(w)
    } else {
        Err(AccountError::BadCodeWord)
    }
}

/// A group name: trimmed, 1 to 64 characters, none of them control ones.
pub fn group_name(raw: &str) -> Result<String, AccountError> {
    let n = raw.trim();
    if (1..=64).contains(&n.chars().count()) && !n.chars().any(char::is_control) {
        Ok(n.to_owned())
    } else {
        Err(AccountError::BadGroupName)
    }
}

fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::DEFAULT)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `argon2id$<salt hex>$<hash hex>`.
fn hash_secret(secret: &str, salt: [u8; 16], memory: &mut [argon2::Block]) -> String {
    let mut out = [0u8; 32];
    // Fixed parameters and lengths: this cannot fail.
    let _ = hasher().hash_password_into_with_memory(secret.as_bytes(), &salt, &mut out, memory);
    format!("argon2id${}${}", hex(&salt), hex(&out))
}

fn secret_matches(stored: &str, presented: &str, memory: &mut [argon2::Block]) -> bool {
    let mut parts = stored.split('$');
    let (Some("argon2id"), Some(salt), Some(hash)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Some(salt), Some(hash)) = (unhex(salt), unhex(hash)) else {
        return false;
    };
    let mut out = vec![0u8; hash.len()];
    if hasher()
        .hash_password_into_with_memory(presented.as_bytes(), &salt, &mut out, memory)
        .is_err()
    {
        return false;
    }
    constant_time_eq(&out, &hash)
}

/// The groups an account belongs to, by name, sorted. Read inside the
/// caller's transaction (the tiers restrict levels to groups).
pub(crate) fn groups_of(c: &rusqlite::Connection, account: i64) -> rusqlite::Result<Vec<String>> {
    let mut stmt = c.prepare_cached(
        "SELECT group_name FROM account_groups WHERE account_id = ?1 ORDER BY group_name",
    )?;
    stmt.query_map([account], |r| r.get(0))?.collect()
}

fn card_exists(c: &Connection, number: &str) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT 1 FROM cards WHERE number = ?1",
        [number],
        |_| Ok(()),
    )
    .optional()
    .map(|r| r.is_some())
}

fn account_exists(c: &Connection, account: i64) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT 1 FROM accounts WHERE id = ?1",
        [account],
        |_| Ok(()),
    )
    .optional()
    .map(|r| r.is_some())
}

/// A fresh virtual number not yet issued.
fn unused_virtual(
    c: &Connection,
    f: &CardFormat,
    source: Source,
) -> rusqlite::Result<Result<String, AccountError>> {
    loop {
        let n = match f.generate(source) {
            Ok(n) => n,
            Err(e) => return Ok(Err(e.into())),
        };
        if !card_exists(c, &n)? {
            return Ok(Ok(n));
        }
    }
}

/// The first group of `groups` that does not exist.
fn missing_group(c: &Connection, groups: &[String]) -> rusqlite::Result<Option<String>> {
    for g in groups {
        let found = c
            .query_row("SELECT 1 FROM groups WHERE name = ?1", [g], |_| Ok(()))
            .optional()?;
        if found.is_none() {
            return Ok(Some(g.clone()));
        }
    }
    Ok(None)
}

/// Who else holds this phone or e-mail (`except` the account itself).
fn duplicate(
    c: &Connection,
    phone: Option<&str>,
    email: Option<&str>,
    except: i64,
) -> rusqlite::Result<Option<&'static str>> {
    for (field, value) in [("phone", phone), ("email", email)] {
        if let Some(v) = value {
            let taken: Option<i64> = c
                .query_row(
                    &format!("SELECT id FROM accounts WHERE {field} = ?1 AND id != ?2"),
                    params![v, except],
                    |r| r.get(0),
                )
                .optional()?;
            if taken.is_some() {
                return Ok(Some(field));
            }
        }
    }
    Ok(None)
}

/// Credits the welcome bonus once per account. Returns the amount and
/// expiry credited, now or earlier (`None`: no bonus).
fn credit_welcome(
    tx: &Connection,
    account: i64,
    bonus: Option<Decimal>,
    expires: Option<String>,
    stamp: &str,
) -> rusqlite::Result<(Option<Decimal>, Option<String>)> {
    if let Some(earlier) = welcome_of(tx, account)? {
        return Ok(earlier);
    }
    let Some(bonus) = bonus else {
        return Ok((None, None));
    };
    // The key names the account: a second credit fails the UNIQUE index
    // and rolls the whole transaction back rather than paying twice.
    tx.execute(
        "INSERT INTO txns (idempotency_key, kind, account_id, request, result, created_at)
         VALUES (?1, 'welcome', ?2, '', '', ?3)",
        params![format!("welcome:{account}"), account, stamp],
    )?;
    let txn = tx.last_insert_rowid();
    let u = units(bonus);
    tx.execute(
        "INSERT INTO lots (account_id, txn_id, amount, remaining, expires_at, created_at)
         VALUES (?1, ?2, ?3, ?3, ?4, ?5)",
        params![account, txn, u, expires, stamp],
    )?;
    let lot = tx.last_insert_rowid();
    tx.execute(
        "INSERT INTO entries (txn_id, account_id, lot_id, kind, amount, created_at)
         VALUES (?1, ?2, ?3, 'welcome', ?4, ?5)",
        params![txn, account, lot, u, stamp],
    )?;
    Ok((Some(bonus), expires))
}

/// The welcome bonus already credited to `account`, if any.
fn welcome_of(
    c: &Connection,
    account: i64,
) -> rusqlite::Result<Option<(Option<Decimal>, Option<String>)>> {
    c.query_row(
        "SELECT l.amount, l.expires_at FROM txns t JOIN lots l ON l.txn_id = t.id
         WHERE t.idempotency_key = ?1 AND t.kind = 'welcome' AND t.account_id = ?2",
        params![format!("welcome:{account}"), account],
        |r| {
            let amount: i64 = r.get(0)?;
            Ok((
                Some(Decimal::new(amount, 4).normalize()),
                r.get::<_, Option<String>>(1)?,
            ))
        },
    )
    .optional()
}

/// The contact a code goes to: the phone when there is one.
fn contact_of(c: &Connection, account: i64) -> rusqlite::Result<Option<(&'static str, String)>> {
    let (phone, email): (Option<String>, Option<String>) = c.query_row(
        "SELECT phone, email FROM accounts WHERE id = ?1",
        [account],
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

/// Accounts and cards.
#[derive(Clone)]
pub struct Accounts {
    store: Store,
    settings: Settings,
    gate: HashGate,
    keys: KeyLocks,
    random: Source,
}

impl Accounts {
    /// On `store`, with the programme's registration `settings`.
    pub fn new(store: Store, settings: Settings) -> Self {
        let gate = HashGate::new(settings.hash_concurrency, settings.hash_queue_timeout);
        Accounts {
            store,
            settings,
            gate,
            keys: KeyLocks::default(),
            random: random::system,
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

    /// Registers a customer with a card, all in one transaction. Without
    /// confirmation the welcome bonus is credited in it; with confirmation
    /// the account is `pending` and [`Registered::pending`] holds the code
    /// to deliver.
    ///
    /// A physical card that joined through a sale (an account with no
    /// contact yet) is adopted: its account, with its points, becomes the
    /// customer's. A card whose account has a customer is refused.
    pub async fn register(
        &self,
        p: &Programme,
        r: Registration,
    ) -> Result<Registered, AccountError> {
        let phone = r.phone.as_deref().map(phone_of).transpose()?;
        let email = r.email.as_deref().map(email_of).transpose()?;
        if phone.is_none() && email.is_none() {
            return Err(AccountError::NoContact);
        }
        if let Some(n) = &r.card_number {
            check_card_number(n)?;
            self.check_range(n)?;
        }
        if let Some(s) = &r.secret {
            check_secret(s)?;
        }
        let code_word = r.code_word.as_ref().map(code_word_of).transpose()?;
        let mut groups = r
            .groups
            .iter()
            .map(|g| group_name(g))
            .collect::<Result<Vec<_>, _>>()?;
        groups.sort();
        groups.dedup();
        let (secret, generated) = match &r.secret {
            Some(s) => (s.expose().to_owned(), false),
            None => (
                self.random_from(&self.settings.secret.alphabet, self.settings.secret.length)?,
                true,
            ),
        };
        // The slow hashes run before the write lock is taken.
        let hash = self.hash(secret.clone()).await?;
        let word_hash = match code_word {
            Some(w) => Some(self.hash(w).await?),
            None => None,
        };
        let code = match &self.settings.confirm {
            Some(c) => {
                let code = random_digits(self.random, c.code_length)?;
                let h = self.hash(code.clone()).await?;
                Some((code, h, c.ttl))
            }
            None => None,
        };
        let now = OffsetDateTime::now_utc();
        let (welcome, welcome_expiry) = welcome_now(p, now)?;
        let card_format = self.settings.card.clone();
        let source = self.random;
        let out = self
            .store
            .with(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if let Some(field) = duplicate(&tx, phone.as_deref(), email.as_deref(), 0)? {
                    return Ok(Err(AccountError::Duplicate(field)));
                }
                if let Some(g) = missing_group(&tx, &groups)? {
                    return Ok(Err(AccountError::UnknownGroup(g)));
                }
                let stamp = ts(now);
                let status = if code.is_some() { "pending" } else { "active" };
                // An existing card: adopt its account if nobody owns it.
                let existing: Option<(i64, String, bool)> = match &r.card_number {
                    Some(n) => tx
                        .query_row(
                            "SELECT a.id,
                                    CASE WHEN c.status != 'active' THEN c.status ELSE a.status END,
                                    a.phone IS NOT NULL OR a.email IS NOT NULL
                             FROM cards c JOIN accounts a ON a.id = c.account_id
                             WHERE c.number = ?1",
                            [n],
                            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                        )
                        .optional()?,
                    None => None,
                };
                let (account, number, kind, adopted) = match (existing, r.card_number) {
                    (Some((_, _, true)), _) => return Ok(Err(AccountError::CardTaken)),
                    (Some((_, card_status, _)), _) if card_status != "active" => {
                        return Ok(Err(AccountError::CardInactive(card_status)));
                    }
                    (Some((account, _, false)), Some(n)) => {
                        let kind: String = tx.query_row(
                            "SELECT kind FROM cards WHERE number = ?1",
                            [&n],
                            |r| r.get(0),
                        )?;
                        tx.execute(
                            "UPDATE accounts SET name = ?2, phone = ?3, email = ?4,
                             code_word_hash = ?5, status = ?6 WHERE id = ?1",
                            params![account, r.name, phone, email, word_hash, status],
                        )?;
                        tx.execute(
                            "UPDATE cards SET secret_hash = ?2, failed_attempts = 0,
                             locked_until = NULL WHERE number = ?1",
                            params![n, hash],
                        )?;
                        let kind = if kind == "virtual" { "virtual" } else { "physical" };
                        (account, n, kind, true)
                    }
                    (_, physical) => {
                        let (number, kind) = match physical {
                            Some(n) => (n, "physical"),
                            None => match unused_virtual(&tx, &card_format, source)? {
                                Ok(n) => (n, "virtual"),
                                Err(e) => return Ok(Err(e)),
                            },
                        };
                        tx.execute(
                            "INSERT INTO accounts (created_at, name, phone, email, code_word_hash, status)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                            params![stamp, r.name, phone, email, word_hash, status],
                        )?;
                        let account = tx.last_insert_rowid();
                        tx.execute(
                            "INSERT INTO cards (number, account_id, kind, secret_hash)
                             VALUES (?1, ?2, ?3, ?4)",
                            params![number, account, kind, hash],
                        )?;
                        (account, number, kind, false)
                    }
                };
                for g in &groups {
                    tx.execute(
                        "INSERT OR IGNORE INTO account_groups (account_id, group_name) VALUES (?1, ?2)",
                        params![account, g],
                    )?;
                }
                let (bonus, expiry, pending) = match code {
                    Some((code, code_hash, ttl)) => {
                        tx.execute(
                            "INSERT INTO confirmations (account_id, code_hash, expires_at, attempts, sent_at)
                             VALUES (?1, ?2, ?3, 0, NULL)
                             ON CONFLICT(account_id) DO UPDATE SET code_hash = ?2, expires_at = ?3,
                             attempts = 0, sent_at = NULL",
                            params![account, code_hash, code_expiry(now, ttl)],
                        )?;
                        let (channel, contact) = match contact_of(&tx, account)? {
                            Some(x) => x,
                            None => return Err(rusqlite::Error::InvalidQuery),
                        };
                        let pending = PendingCode {
                            account,
                            channel,
                            contact,
                            code: Secret::new(code),
                        };
                        (None, None, Some(pending))
                    }
                    None => {
                        let (b, e) = credit_welcome(&tx, account, welcome, welcome_expiry, &stamp)?;
                        (b, e, None)
                    }
                };
                let groups = groups_of(&tx, account)?;
                tx.commit()?;
                Ok(Ok(Registered {
                    account,
                    status,
                    card_number: number,
                    kind,
                    secret: generated.then_some(secret),
                    adopted,
                    groups,
                    welcome_bonus: bonus,
                    welcome_expires_at: expiry,
                    pending,
                }))
            })
            .await??;
        Ok(out)
    }

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
    async fn mark_delivered(&self, table: CodeTable, account: i64) -> Result<(), AccountError> {
        let stamp = ts(OffsetDateTime::now_utc());
        let sql = format!(
            "UPDATE {} SET sent_at = ?2 WHERE account_id = ?1",
            table.name()
        );
        self.store
            .with(move |c| c.execute(&sql, params![account, stamp]))
            .await?;
        Ok(())
    }

    /// Makes a code for `account` in `table`, replacing any earlier one
    /// (attempts start again), if the account's status suits the table and
    /// the last delivered code is older than `resend_after`. The code is
    /// stored hashed and returned once, for the notifier.
    async fn issue_code(
        &self,
        table: CodeTable,
        conf: ConfirmSettings,
        account: i64,
    ) -> Result<PendingCode, AccountError> {
        let code = random_digits(self.random, conf.code_length)?;
        let code_hash = self.hash(code.clone()).await?;
        let now = OffsetDateTime::now_utc();
        let expires = code_expiry(now, conf.ttl);
        let name = table.name();
        self.store
            .with(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let row: Option<(String, Option<String>)> = tx
                    .query_row(
                        &format!(
                            "SELECT a.status, f.sent_at FROM accounts a
                             LEFT JOIN {name} f ON f.account_id = a.id WHERE a.id = ?1"
                        ),
                        [account],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
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
                    let next = sent + conf.resend_after;
                    if next > now {
                        let wait = (next - now).whole_seconds().max(0) as u64 + 1;
                        return Ok(Err(AccountError::TooSoon {
                            retry_after_s: wait,
                        }));
                    }
                }
                let Some((channel, contact)) = contact_of(&tx, account)? else {
                    return Ok(Err(AccountError::NoContact));
                };
                tx.execute(
                    &format!(
                        "INSERT INTO {name} (account_id, code_hash, expires_at, attempts, sent_at)
                         VALUES (?1, ?2, ?3, 0, NULL)
                         ON CONFLICT(account_id) DO UPDATE SET code_hash = ?2, expires_at = ?3,
                         attempts = 0, sent_at = NULL"
                    ),
                    params![account, code_hash, expires],
                )?;
                tx.commit()?;
                Ok(Ok(PendingCode {
                    account,
                    channel,
                    contact,
                    code: Secret::new(code),
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
        type Row = (String, Option<Option<String>>, Option<String>);
        let read = move |c: &Connection| -> rusqlite::Result<Option<Row>> {
            c.query_row(
                "SELECT a.status, CASE WHEN f.account_id IS NULL THEN NULL ELSE json_array(f.code_hash) END,
                        f.expires_at
                 FROM accounts a LEFT JOIN confirmations f ON f.account_id = a.id WHERE a.id = ?1",
                [account],
                |r| {
                    let status: String = r.get(0)?;
                    // json_array distinguishes "no row" from "row with a void code".
                    let wrapped: Option<String> = r.get(1)?;
                    let hash = wrapped.map(|w| {
                        serde_json::from_str::<Vec<Option<String>>>(&w)
                            .ok()
                            .and_then(|v| v.into_iter().next().flatten())
                    });
                    Ok((status, hash, r.get(2)?))
                },
            )
            .optional()
        };
        // One try at a time per account; each is counted before its
        // verdict. argon2 runs outside the write lock; the row is re-checked
        // inside it.
        let deadline = self.gate.deadline();
        let _one_at_a_time = self
            .keys
            .lock(format!("confirmations:{account}"), deadline)
            .await?;
        let first = self.store.with(move |c| read(c)).await?;
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
        self.store
            .with(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let row = read(&tx)?;
                let done = |tx: &Connection, newly| -> rusqlite::Result<Activated> {
                    let (b, e) = welcome_of(tx, account)?.unwrap_or((None, None));
                    Ok(Activated {
                        account,
                        status: "active",
                        welcome_bonus: b,
                        welcome_expires_at: e,
                        newly,
                    })
                };
                let (hash_now, expires) = match row {
                    None => return Ok(Err(AccountError::UnknownAccount)),
                    // Someone else activated it meanwhile: same answer.
                    Some((status, None, _)) if status == "active" => {
                        return done(&tx, false).map(Ok);
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
                    let changed = tx.execute(
                        "UPDATE accounts SET status = 'active' WHERE id = ?1 AND status = 'pending'",
                        [account],
                    )?;
                    tx.execute("DELETE FROM confirmations WHERE account_id = ?1", [account])?;
                    if changed == 1 {
                        credit_welcome(&tx, account, welcome, welcome_expiry, &stamp)?;
                    }
                    let out = done(&tx, changed == 1)?;
                    tx.commit()?;
                    return Ok(Ok(out));
                }
                // Already counted, before the comparison.
                let attempts: i64 = tx.query_row(
                    "SELECT attempts FROM confirmations WHERE account_id = ?1",
                    [account],
                    |r| r.get(0),
                )?;
                let r = if attempts >= max {
                    tx.execute(
                        "UPDATE confirmations SET code_hash = NULL WHERE account_id = ?1",
                        [account],
                    )?;
                    Err(AccountError::CodeExhausted)
                } else {
                    Err(AccountError::WrongCode {
                        attempts_left: max - attempts,
                    })
                };
                tx.commit()?;
                Ok(r)
            })
            .await?
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
        self.store
            .with(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let row: Option<(String, Option<String>, Option<String>)> = tx
                    .query_row(
                        "SELECT status, phone, email FROM accounts WHERE id = ?1",
                        [account],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()?;
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
                    duplicate(&tx, new_phone.as_deref(), new_email.as_deref(), account)?
                {
                    return Ok(Err(AccountError::Duplicate(field)));
                }
                if let Some(n) = &name {
                    tx.execute(
                        "UPDATE accounts SET name = ?2 WHERE id = ?1",
                        params![account, n],
                    )?;
                }
                tx.execute(
                    "UPDATE accounts SET phone = ?2, email = ?3 WHERE id = ?1",
                    params![account, new_phone, new_email],
                )?;
                if let Some(h) = &word_hash {
                    tx.execute(
                        "UPDATE accounts SET code_word_hash = ?2 WHERE id = ?1",
                        params![account, h],
                    )?;
                }
                if let Some(s) = status {
                    tx.execute(
                        "UPDATE accounts SET status = ?2 WHERE id = ?1",
                        params![account, s],
                    )?;
                }
                let view = view_of(&tx, account)?;
                tx.commit()?;
                Ok(Ok(view))
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
            .store
            .with(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let status: Option<String> = tx
                    .query_row("SELECT status FROM accounts WHERE id = ?1", [account], |r| {
                        r.get(0)
                    })
                    .optional()?;
                match status.as_deref() {
                    None => return Ok(Err(AccountError::UnknownAccount)),
                    // A blocked customer gets no new way to spend; a pending
                    // one may (the card waits with the account).
                    Some("blocked") => {
                        return Ok(Err(AccountError::CardInactive("blocked".into())));
                    }
                    Some(_) => {}
                }
                let (number, kind) = match card_number {
                    Some(n) if card_exists(&tx, &n)? => return Ok(Err(AccountError::CardTaken)),
                    Some(n) => (n, "physical"),
                    None => match unused_virtual(&tx, &format, source)? {
                        Ok(n) => (n, "virtual"),
                        Err(e) => return Ok(Err(e)),
                    },
                };
                tx.execute(
                    "INSERT INTO cards (number, account_id, kind, secret_hash) VALUES (?1, ?2, ?3, ?4)",
                    params![number, account, kind, hash],
                )?;
                tx.commit()?;
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

    /// Creates a group.
    pub async fn create_group(
        &self,
        name: &str,
        description: Option<String>,
    ) -> Result<GroupView, AccountError> {
        let name = group_name(name)?;
        let stamp = ts(OffsetDateTime::now_utc());
        self.store
            .with(move |c| {
                let n = c.execute(
                    "INSERT INTO groups (name, description, created_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT(name) DO NOTHING",
                    params![name, description, stamp],
                )?;
                if n == 0 {
                    return Ok(Err(AccountError::GroupExists));
                }
                Ok(Ok(GroupView {
                    name,
                    description,
                    members: 0,
                    created_at: stamp,
                }))
            })
            .await?
    }

    /// Every group with its member count, by name.
    pub async fn list_groups(&self) -> Result<Vec<GroupView>, AccountError> {
        Ok(self
            .store
            .with(|c| {
                let mut stmt = c.prepare(
                    "SELECT g.name, g.description, g.created_at,
                            (SELECT COUNT(*) FROM account_groups m WHERE m.group_name = g.name)
                     FROM groups g ORDER BY g.name",
                )?;
                stmt.query_map([], |r| {
                    Ok(GroupView {
                        name: r.get(0)?,
                        description: r.get(1)?,
                        created_at: r.get(2)?,
                        members: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?)
    }

    /// Deletes a group; with members only when `force` (they leave it).
    /// Returns how many accounts left it.
    pub async fn delete_group(&self, name: &str, force: bool) -> Result<i64, AccountError> {
        let name = group_name(name)?;
        self.store
            .with(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let exists = tx
                    .query_row("SELECT 1 FROM groups WHERE name = ?1", [&name], |_| Ok(()))
                    .optional()?
                    .is_some();
                if !exists {
                    return Ok(Err(AccountError::UnknownGroup(name)));
                }
                let members: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM account_groups WHERE group_name = ?1",
                    [&name],
                    |r| r.get(0),
                )?;
                if members > 0 && !force {
                    return Ok(Err(AccountError::GroupInUse { members }));
                }
                tx.execute("DELETE FROM account_groups WHERE group_name = ?1", [&name])?;
                tx.execute("DELETE FROM groups WHERE name = ?1", [&name])?;
                tx.commit()?;
                Ok(Ok(members))
            })
            .await?
    }

    /// Replaces an account's groups with `groups` (each must exist).
    /// Returns the groups now.
    pub async fn set_groups(
        &self,
        account: i64,
        groups: Vec<String>,
    ) -> Result<Vec<String>, AccountError> {
        let mut groups = groups
            .iter()
            .map(|g| group_name(g))
            .collect::<Result<Vec<_>, _>>()?;
        groups.sort();
        groups.dedup();
        self.store
            .with(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if !account_exists(&tx, account)? {
                    return Ok(Err(AccountError::UnknownAccount));
                }
                if let Some(g) = missing_group(&tx, &groups)? {
                    return Ok(Err(AccountError::UnknownGroup(g)));
                }
                tx.execute(
                    "DELETE FROM account_groups WHERE account_id = ?1",
                    [account],
                )?;
                for g in &groups {
                    tx.execute(
                        "INSERT INTO account_groups (account_id, group_name) VALUES (?1, ?2)",
                        params![account, g],
                    )?;
                }
                let now = groups_of(&tx, account)?;
                tx.commit()?;
                Ok(Ok(now))
            })
            .await?
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

/// The answer of [`Accounts::verify_code_word`].
#[derive(Debug, Serialize, Deserialize)]
pub struct CodeWordCheck {
    /// Whether the word is the account's.
    pub matches: bool,
    /// After a wrong word: tries left before the code word locks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts_left: Option<i64>,
}

/// An account as `account.get` shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct AccountView {
    /// Account id.
    pub account: i64,
    /// Status: `active`, `pending` (awaiting confirmation) or `blocked`.
    pub status: String,
    /// Name.
    pub name: Option<String>,
    /// Phone (E.164).
    pub phone: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Whether a code word is set (never the word).
    pub has_code_word: bool,
    /// Groups, by name.
    pub groups: Vec<String>,
    /// Cards, masked, with kind, status and whether a secret is set.
    pub cards: Vec<serde_json::Value>,
}

fn view_of(c: &Connection, id: i64) -> rusqlite::Result<AccountView> {
    let (status, name, phone, email, has_code_word) = c.query_row(
        "SELECT status, name, phone, email, code_word_hash IS NOT NULL FROM accounts WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    let mut stmt = c.prepare(
        "SELECT number, kind, status, secret_hash IS NOT NULL, locked_until
         FROM cards WHERE account_id = ?1 ORDER BY rowid",
    )?;
    let cards = stmt
        .query_map([id], |r| {
            let number: String = r.get(0)?;
            Ok(serde_json::json!({
                "card_masked": crate::redact::CardNumber::new(number).masked(),
                "kind": r.get::<_, String>(1)?,
                "status": r.get::<_, String>(2)?,
                "has_secret": r.get::<_, bool>(3)?,
                "locked_until": r.get::<_, Option<String>>(4)?,
            }))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(AccountView {
        account: id,
        status,
        name,
        phone,
        email,
        has_code_word,
        groups: groups_of(c, id)?,
        cards,
    })
}

/// Who `account.get` is about.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lookup {
    /// By id.
    Account(i64),
    /// By card number.
    Card(String),
    /// By phone, any notation.
    Phone(String),
    /// By e-mail.
    Email(String),
}

impl Accounts {
    /// An account with its cards.
    pub async fn get(&self, by: Lookup) -> Result<AccountView, AccountError> {
        let by = match by {
            Lookup::Phone(p) => Lookup::Phone(normalise_phone(&p).ok_or(AccountError::BadPhone)?),
            Lookup::Email(e) => Lookup::Email(e.trim().to_lowercase()),
            other => other,
        };
        self.store
            .with(move |c| {
                let (sql, arg): (&str, String) = match &by {
                    Lookup::Account(id) => {
                        ("SELECT id FROM accounts WHERE id = ?1", id.to_string())
                    }
                    Lookup::Card(n) => {
                        ("SELECT account_id FROM cards WHERE number = ?1", n.clone())
                    }
                    Lookup::Phone(p) => ("SELECT id FROM accounts WHERE phone = ?1", p.clone()),
                    Lookup::Email(e) => ("SELECT id FROM accounts WHERE email = ?1", e.clone()),
                };
                let Some(id): Option<i64> = c.query_row(sql, [&arg], |r| r.get(0)).optional()?
                else {
                    return Ok(Err(AccountError::UnknownCard));
                };
                Ok(Ok(view_of(c, id)?))
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
            .store
            .with(move |c| {
                c.execute(
                    "UPDATE cards SET status = ?2,
                     failed_attempts = CASE WHEN ?2 = 'active' THEN 0 ELSE failed_attempts END,
                     locked_until = CASE WHEN ?2 = 'active' THEN NULL ELSE locked_until END
                     WHERE number = ?1",
                    params![number, status],
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
            .store
            .with(move |c| {
                c.execute(
                    "UPDATE cards SET secret_hash = ?2, failed_attempts = 0, locked_until = NULL
                     WHERE number = ?1",
                    params![number, hash],
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

    #[test]
    fn phones_normalise_to_e164() {
        assert_eq!(
            normalise_phone("8 (916) 123-45-67").as_deref(),
            Some("+79161234567")
        );
        assert_eq!(
            normalise_phone("+7 916 123 45 67").as_deref(),
            Some("+79161234567")
        );
        assert_eq!(
            normalise_phone("9161234567").as_deref(),
            Some("+79161234567")
        );
        assert_eq!(
            normalise_phone("+44 20 7946 0958").as_deref(),
            Some("+442079460958")
        );
        assert_eq!(normalise_phone("12345"), None);
        assert_eq!(normalise_phone("+7 916 abc"), None);
    }

    #[test]
    fn emails() {
        assert!(valid_email("maria@example.ru"));
        assert!(!valid_email("maria@example"));
        assert!(!valid_email("@example.ru"));
        assert!(!valid_email("ma ria@example.ru"));
    }

    #[test]
    fn virtual_numbers_have_prefix_length_and_luhn() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let n = virtual_number().unwrap();
            assert_eq!(n.len(), 16);
            assert!(n.starts_with("2990"));
            let body = &n[..15];
            assert_eq!(n.chars().last(), Some(luhn_digit(body)));
            seen.insert(n);
        }
        assert!(seen.len() > 190, "numbers must not repeat");
        assert_eq!(luhn_digit("7992739871"), '3');
    }

    #[test]
    fn ean13_check_digits() {
        // Published EAN-13 codes.
        assert_eq!(ean_digit("400638133393"), '1');
        assert_eq!(ean_digit("590123412345"), '7');
        assert_eq!(ean_digit("460123456789"), '3');
        let f = CardFormat {
            prefix: "277".into(),
            length: 13,
            check: CheckDigit::Ean13,
        };
        for _ in 0..50 {
            let n = f.generate(random::system).unwrap();
            assert_eq!(n.len(), 13);
            assert!(n.starts_with("277"));
            assert_eq!(n.chars().last(), Some(ean_digit(&n[..12])));
        }
    }

    #[test]
    fn secrets_follow_length_and_alphabet() {
        let s = random_from(random::system, b"ABC", 12).unwrap();
        assert_eq!(s.len(), 12);
        assert!(s.bytes().all(|b| b"ABC".contains(&b)));
        assert_eq!(random_digits(random::system, 6).unwrap().len(), 6);
    }

    #[test]
    fn code_words_and_group_names() {
        assert_eq!(code_word_of(&Secret::new(" Ромашка ")).unwrap(), "ромашка");
        assert!(code_word_of(&Secret::new("x")).is_err());
        assert_eq!(group_name(" staff ").unwrap(), "staff");
        assert!(group_name("").is_err());
        assert!(group_name("a\nb").is_err());
    }

    #[test]
    fn secrets_hash_with_salt_and_verify() {
        let m = &mut vec![argon2::Block::default(); Params::DEFAULT.block_count()];
        let a = hash_secret("4711", [1; 16], m);
        let b = hash_secret("4711", [2; 16], m);
        assert_ne!(a, b, "salted");
        assert!(!a.contains("4711"));
        assert!(secret_matches(&a, "4711", m));
        assert!(!secret_matches(&a, "4712", m));
        assert!(!secret_matches("garbage", "4711", m));
    }

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
        let credits: i64 = store
            .with(|c| {
                c.query_row(
                    "SELECT COUNT(*) FROM entries WHERE kind = 'welcome'",
                    [],
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
}
