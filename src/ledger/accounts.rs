//! Customers, their cards and the cards' secret codes.
//!
//! A secret is stored only as an argon2id hash with its own salt and
//! compared in constant time. Wrong guesses count on the card; after
//! [`MAX_ATTEMPTS`] the card is locked for [`LOCK_FOR`], recorded in the
//! database so a restart does not lift it.

use std::io::Read;
use std::time::Duration;

use argon2::{Algorithm, Argon2, Params, Version};
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use rust_decimal::Decimal;
use serde::Serialize;
use time::OffsetDateTime;

use super::embedded::{ts, units};
use super::rules::{self, Programme};
use crate::redact::{Secret, constant_time_eq};
use crate::store::{Store, StoreError};

/// Wrong secrets in a row before a card locks.
pub const MAX_ATTEMPTS: i64 = 5;
/// How long a locked card stays locked.
pub const LOCK_FOR: Duration = Duration::from_secs(15 * 60);
/// Virtual card numbers: this prefix, 16 digits, Luhn check digit.
const VIRTUAL_PREFIX: &str = "2990";
const VIRTUAL_LEN: usize = 16;

/// Account errors; each maps to a stable API code.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Not a phone number.
    #[error("phone: not a phone number (E.164, such as +79161234567)")]
    BadPhone,
    /// Not an e-mail address.
    #[error("email: not an e-mail address")]
    BadEmail,
    /// Neither contact given.
    #[error("give phone or email")]
    NoContact,
    /// Someone already has this phone or e-mail.
    #[error("an account with this {0} exists")]
    Duplicate(&'static str),
    /// The card number is taken.
    #[error("the card number is already issued")]
    CardTaken,
    /// The card number is not 4 to 32 digits.
    #[error("card_number: 4 to 32 digits")]
    BadCardNumber,
    /// The secret is not 4 to 32 letters or digits.
    #[error("secret: 4 to 32 letters or digits")]
    BadSecret,
    /// No such card.
    #[error("unknown card")]
    UnknownCard,
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
    /// The rules refused (the welcome bonus's expiry).
    #[error(transparent)]
    Rules(#[from] rules::RulesError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What registration created. The secret is shown here once and never again.
#[derive(Debug, Serialize)]
pub struct Registered {
    /// Account id.
    pub account: i64,
    /// The card.
    pub card_number: String,
    /// `physical` or `virtual`.
    pub kind: &'static str,
    /// The secret code when it was generated here (shown once).
    pub secret: Option<String>,
    /// Welcome bonus credited.
    #[serde(with = "rust_decimal::serde::str_option")]
    pub welcome_bonus: Option<Decimal>,
    /// When it expires.
    pub welcome_expires_at: Option<String>,
}

/// A registration request.
#[derive(Debug, Clone)]
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
    pub secret: Option<Secret>,
}

fn urandom(buf: &mut [u8]) {
    // A till without /dev/urandom is broken beyond repair; zeros would be
    // caught by the uniqueness checks, never silently shared as secrets.
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(buf));
}

fn random_digits(n: usize) -> String {
    let mut buf = vec![0u8; n * 2];
    urandom(&mut buf);
    buf.chunks(2)
        .map(|c| char::from(b'0' + ((u16::from(c[0]) << 8 | u16::from(c[1])) % 10) as u8))
        .collect()
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

/// A new virtual card number: prefix, random digits, Luhn check digit.
pub fn virtual_number() -> String {
    let body = format!(
        "{VIRTUAL_PREFIX}{}",
        random_digits(VIRTUAL_LEN - VIRTUAL_PREFIX.len() - 1)
    );
    let check = luhn_digit(&body);
    format!("{body}{check}")
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
fn hash_secret(secret: &str) -> String {
    let mut salt = [0u8; 16];
    urandom(&mut salt);
    let mut out = [0u8; 32];
    // Fixed parameters and lengths: this cannot fail.
    let _ = hasher().hash_password_into(secret.as_bytes(), &salt, &mut out);
    format!("argon2id${}${}", hex(&salt), hex(&out))
}

fn secret_matches(stored: &str, presented: &str) -> bool {
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
        .hash_password_into(presented.as_bytes(), &salt, &mut out)
        .is_err()
    {
        return false;
    }
    constant_time_eq(&out, &hash)
}

/// Accounts and cards.
#[derive(Clone)]
pub struct Accounts {
    store: Store,
}

impl Accounts {
    /// On `store`.
    pub fn new(store: Store) -> Self {
        Accounts { store }
    }

    /// Registers a customer with a card and credits the programme's welcome
    /// bonus, all in one transaction.
    pub async fn register(
        &self,
        p: &Programme,
        r: Registration,
    ) -> Result<Registered, AccountError> {
        let phone = match &r.phone {
            Some(ph) => Some(normalise_phone(ph).ok_or(AccountError::BadPhone)?),
            None => None,
        };
        let email = match &r.email {
            Some(e) if valid_email(e.trim()) => Some(e.trim().to_lowercase()),
            Some(_) => return Err(AccountError::BadEmail),
            None => None,
        };
        if phone.is_none() && email.is_none() {
            return Err(AccountError::NoContact);
        }
        if let Some(n) = &r.card_number
            && (!(4..=32).contains(&n.len()) || !n.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(AccountError::BadCardNumber);
        }
        let (secret, generated) = match &r.secret {
            Some(s) => {
                let s = s.expose();
                if !(4..=32).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(AccountError::BadSecret);
                }
                (s.to_owned(), false)
            }
            None => (random_digits(6), true),
        };
        // The slow hash runs before the write lock is taken.
        let hash = tokio::task::spawn_blocking({
            let s = secret.clone();
            move || hash_secret(&s)
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?;
        let now = OffsetDateTime::now_utc();
        let welcome = p.welcome_bonus.filter(|b| *b > Decimal::ZERO);
        let welcome_expiry = match welcome {
            Some(_) => rules::welcome_expiry_of(p, now)?.map(ts),
            None => None,
        };
        let physical = r.card_number.clone();
        let name = r.name.clone();
        let expiry_row = welcome_expiry.clone();
        let out = self
            .store
            .with(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                for (field, value) in [("phone", &phone), ("email", &email)] {
                    if let Some(v) = value {
                        let taken: Option<i64> = tx
                            .query_row(
                                &format!("SELECT id FROM accounts WHERE {field} = ?1"),
                                [v],
                                |r| r.get(0),
                            )
                            .optional()?;
                        if taken.is_some() {
                            return Ok(Err(AccountError::Duplicate(field)));
                        }
                    }
                }
                let (number, kind) = match physical {
                    Some(n) => {
                        let taken: Option<String> = tx
                            .query_row("SELECT number FROM cards WHERE number = ?1", [&n], |r| {
                                r.get(0)
                            })
                            .optional()?;
                        if taken.is_some() {
                            return Ok(Err(AccountError::CardTaken));
                        }
                        (n, "physical")
                    }
                    None => loop {
                        let n = virtual_number();
                        let taken: Option<String> = tx
                            .query_row("SELECT number FROM cards WHERE number = ?1", [&n], |r| {
                                r.get(0)
                            })
                            .optional()?;
                        if taken.is_none() {
                            break (n, "virtual");
                        }
                    },
                };
                let stamp = ts(now);
                tx.execute(
                    "INSERT INTO accounts (created_at, name, phone, email) VALUES (?1, ?2, ?3, ?4)",
                    params![stamp, name, phone, email],
                )?;
                let account = tx.last_insert_rowid();
                tx.execute(
                    "INSERT INTO cards (number, account_id, kind, secret_hash) VALUES (?1, ?2, ?3, ?4)",
                    params![number, account, kind, hash],
                )?;
                if let Some(bonus) = welcome {
                    // Once per account, by construction: the key names it.
                    tx.execute(
                        "INSERT INTO txns (idempotency_key, kind, account_id, request, result, created_at)
                         VALUES (?1, 'welcome', ?2, '', '', ?3)",
                        params![format!("welcome:{account}"), account, stamp],
                    )?;
                    let txn = tx.last_insert_rowid();
                    let units = units(bonus);
                    tx.execute(
                        "INSERT INTO lots (account_id, txn_id, amount, remaining, expires_at, created_at)
                         VALUES (?1, ?2, ?3, ?3, ?4, ?5)",
                        params![account, txn, units, expiry_row, stamp],
                    )?;
                    let lot = tx.last_insert_rowid();
                    tx.execute(
                        "INSERT INTO entries (txn_id, account_id, lot_id, kind, amount, created_at)
                         VALUES (?1, ?2, ?3, 'welcome', ?4, ?5)",
                        params![txn, account, lot, units, stamp],
                    )?;
                }
                tx.commit()?;
                Ok(Ok((account, number, kind)))
            })
            .await??;
        let (account, card_number, kind) = out;
        Ok(Registered {
            account,
            card_number,
            kind,
            secret: generated.then_some(secret),
            welcome_bonus: welcome,
            welcome_expires_at: welcome_expiry,
        })
    }

    /// Checks a card's secret, counting wrong guesses and locking the card
    /// after [`MAX_ATTEMPTS`].
    pub async fn verify_secret(
        &self,
        number: String,
        presented: Secret,
    ) -> Result<(), AccountError> {
        let now = OffsetDateTime::now_utc();
        let card: Option<(Option<String>, i64, Option<String>)> = {
            let n = number.clone();
            self.store
                .with(move |c| {
                    c.query_row(
                        "SELECT secret_hash, failed_attempts, locked_until FROM cards WHERE number = ?1",
                        [&n],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()
                })
                .await?
        };
        let Some((hash, _, locked)) = card else {
            return Err(AccountError::UnknownCard);
        };
        let stamp = ts(now);
        if let Some(until) = locked.filter(|u| u.as_str() > stamp.as_str()) {
            return Err(AccountError::Locked {
                until,
                just_locked: false,
            });
        }
        let Some(hash) = hash else {
            return Err(AccountError::NoSecret);
        };
        let ok = tokio::task::spawn_blocking(move || secret_matches(&hash, presented.expose()))
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))?;
        let until = ts(now + LOCK_FOR);
        self.store
            .with(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if ok {
                    tx.execute(
                        "UPDATE cards SET failed_attempts = 0, locked_until = NULL WHERE number = ?1",
                        [&number],
                    )?;
                    tx.commit()?;
                    return Ok(Ok(()));
                }
                let attempts: i64 = tx.query_row(
                    "UPDATE cards SET failed_attempts = failed_attempts + 1 WHERE number = ?1
                     RETURNING failed_attempts",
                    [&number],
                    |r| r.get(0),
                )?;
                let r = if attempts >= MAX_ATTEMPTS {
                    tx.execute(
                        "UPDATE cards SET failed_attempts = 0, locked_until = ?2 WHERE number = ?1",
                        params![number, until],
                    )?;
                    Err(AccountError::Locked {
                        until: until.clone(),
                        just_locked: true,
                    })
                } else {
                    Err(AccountError::WrongSecret {
                        attempts_left: MAX_ATTEMPTS - attempts,
                    })
                };
                tx.commit()?;
                Ok(r)
            })
            .await?
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
            let n = virtual_number();
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
    fn secrets_hash_with_salt_and_verify() {
        let a = hash_secret("4711");
        let b = hash_secret("4711");
        assert_ne!(a, b, "salted");
        assert!(!a.contains("4711"));
        assert!(secret_matches(&a, "4711"));
        assert!(!secret_matches(&a, "4712"));
        assert!(!secret_matches("garbage", "4711"));
    }
}

/// An account as `account.get` shows it.
#[derive(Debug, Serialize)]
pub struct AccountView {
    /// Account id.
    pub account: i64,
    /// Status.
    pub status: String,
    /// Name.
    pub name: Option<String>,
    /// Phone (E.164).
    pub phone: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Cards, masked, with kind, status and whether a secret is set.
    pub cards: Vec<serde_json::Value>,
}

/// Who `account.get` is about.
#[derive(Debug, Clone)]
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
                let (status, name, phone, email) = c.query_row(
                    "SELECT status, name, phone, email FROM accounts WHERE id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
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
                Ok(Ok(AccountView {
                    account: id,
                    status,
                    name,
                    phone,
                    email,
                    cards,
                }))
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
        let secret = random_digits(6);
        let hash = tokio::task::spawn_blocking({
            let s = secret.clone();
            move || hash_secret(&s)
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?;
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
