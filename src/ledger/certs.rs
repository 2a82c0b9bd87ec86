//! Gift certificates: a balance in money (not points) sold at a till and
//! spent as payment, in part or whole, until it expires.
//!
//! The code is a bearer secret: the books keep its SHA-256 digest
//! ([`code::digest`]) and its last four symbols, never the code, and the
//! code is shown once, in the answer to [`Certs::issue`]. Amounts are
//! kopecks in the database. Every write carries an idempotency key
//! (`certificate_ops`): a repeat returns the first answer. A redemption
//! takes the balance with a guarded `UPDATE … WHERE balance >= amount` in
//! the transaction that records it, so two tills spending one certificate
//! at once cannot both have it: SQLite has one writer, and PostgreSQL's
//! serializable level runs the loser again, which then finds the balance
//! gone.

pub mod code;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::RemoteError;
use super::db::{Books, Db, DbError, Row};
use super::embedded::ts;
use super::origin::Origin;
use crate::args;
use crate::redact::{Secret, constant_time_eq};

/// The largest nominal, in roubles.
pub const MAX_NOMINAL: i64 = 1_000_000;

/// Why a certificate call was refused.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The code is malformed or its check symbol is wrong.
    #[error(transparent)]
    Code(#[from] code::CodeError),
    /// No certificate has this code (or id).
    #[error("no such certificate")]
    Unknown,
    /// Past its expiry.
    #[error("the certificate expired at {expires_at}")]
    Expired {
        /// When it expired (RFC 3339).
        expires_at: String,
    },
    /// Blocked by an administrator.
    #[error("the certificate is blocked")]
    Blocked,
    /// Nothing is left on it.
    #[error("the certificate is used up")]
    UsedUp,
    /// Less is left than asked for.
    #[error("the certificate holds only {balance}")]
    Insufficient {
        /// What is left.
        balance: Decimal,
    },
    /// An imported code is already in the books.
    #[error("a certificate with this code exists")]
    CodeTaken,
    /// A refund names no redemption.
    #[error("no such redemption")]
    UnknownRedemption,
    /// A refund asks back more than the redemption has left to return.
    #[error("at most {refundable} of this redemption can be returned")]
    RefundTooHigh {
        /// What can still be returned.
        refundable: Decimal,
    },
    /// An argument is out of range.
    #[error("{field}: {reason}")]
    Invalid {
        /// The parameter.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The idempotency key was used for another request.
    #[error("idempotency key already used for a different request")]
    KeyReused,
    /// The random source failed: no code is minted.
    #[error(transparent)]
    Random(#[from] crate::random::RandomError),
    /// The books failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The central ledger did not answer, or refused.
    #[error(transparent)]
    Remote(#[from] RemoteError),
}

/// A certificate as shown: the code only as its last four symbols.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CertView {
    /// Its id.
    pub certificate: i64,
    /// `****` and the code's last four symbols.
    pub code: String,
    /// What it was sold for.
    #[serde(with = "rust_decimal::serde::str")]
    pub nominal: Decimal,
    /// What is left.
    #[serde(with = "rust_decimal::serde::str")]
    pub balance: Decimal,
    /// `active`, `blocked`, `expired` or `used_up` (in that precedence:
    /// a blocked certificate says so even when it has expired).
    pub state: String,
    /// When it stops paying (RFC 3339).
    pub expires_at: String,
    /// When it was sold.
    pub issued_at: String,
    /// The sale's receipt id, if the POS gave one.
    pub receipt_id: Option<String>,
    /// The store and terminal that sold it (empty on a single till).
    pub store: String,
    /// The terminal that sold it.
    pub terminal: String,
}

/// The answer to [`Certs::issue`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CertIssued {
    /// The certificate.
    pub certificate: CertView,
    /// The code, grouped for print: only in the first answer (the books
    /// keep a digest), `null` on a repeat of the key. A [`Secret`], so a
    /// debug print of the answer shows no code.
    #[serde(default, serialize_with = "crate::redact::expose")]
    pub code: Option<Secret>,
    /// A repeat of the key: nothing written.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
}

/// The answer to [`Certs::redeem`] and [`Certs::refund`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CertMoved {
    /// The operation's id (a redemption's is what a refund names).
    pub operation: i64,
    /// For a refund: the redemption it returns to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redemption: Option<i64>,
    /// The money taken (redeem) or given back (refund).
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// The certificate after it.
    pub certificate: CertView,
    /// A repeat of the key: nothing written.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
}

/// A certificate named by its code or, for an administrator, its id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum CertRef {
    /// By the code (normalised or as typed).
    Code(#[serde(serialize_with = "crate::redact::expose")] Secret),
    /// By id.
    Id(i64),
}

/// How long a sold certificate pays: until a time, or for a number of
/// days from its sale (the request a repeat is compared with keeps which).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Validity {
    /// Until this time.
    Until(#[serde(with = "time::serde::rfc3339")] OffsetDateTime),
    /// For this many days from the sale.
    Days(u32),
}

/// The longest validity in days (ten years).
pub const MAX_DAYS: u32 = 3660;

/// Kopecks of a money amount; `None` past 2 places or out of range.
pub fn kopecks(d: Decimal) -> Option<i64> {
    if d.normalize().scale() > 2 || d.is_sign_negative() {
        return None;
    }
    let k: i64 = (d * Decimal::from(100)).trunc().try_into().ok()?;
    (k <= MAX_NOMINAL * 100).then_some(k)
}

fn money(k: i64) -> Decimal {
    Decimal::new(k, 2).normalize()
}

fn positive(field: &'static str, d: Decimal) -> Result<i64, CertError> {
    match kopecks(d) {
        Some(k) if k > 0 => Ok(k),
        _ => Err(CertError::Invalid {
            field,
            reason: format!("a positive amount of at most {MAX_NOMINAL} with 2 decimal places"),
        }),
    }
}

/// Gift certificates on a set of books, acting for one origin.
#[derive(Clone)]
pub struct Certs {
    books: Books,
    origin: Origin,
}

/// The columns [`view`] reads, in its order.
const COLUMNS: &str = "id, code_hash, code_tail, nominal, balance, status, expires_at, issued_at, \
                       receipt_id, store_id, terminal_id";

fn view(r: &Row, now: &str) -> Result<(CertView, String), DbError> {
    let balance: i64 = r.get(4)?;
    let status: String = r.get(5)?;
    let expires_at: String = r.get(6)?;
    let state = if status != "active" {
        status
    } else if expires_at.as_str() <= now {
        "expired".into()
    } else if balance == 0 {
        "used_up".into()
    } else {
        "active".into()
    };
    let v = CertView {
        certificate: r.get(0)?,
        code: format!("****{}", r.get::<String>(2)?),
        nominal: money(r.get(3)?),
        balance: money(balance),
        state,
        expires_at,
        issued_at: r.get(7)?,
        receipt_id: r.get(8)?,
        store: r.get::<Option<String>>(9)?.unwrap_or_default(),
        terminal: r.get::<Option<String>>(10)?.unwrap_or_default(),
    };
    Ok((v, r.get(1)?))
}

/// The certificate `by` names, as of `now`: by code, looked up by its
/// digest and compared in constant time.
fn find(db: &dyn Db, by: &CertRef, now: &str) -> Result<Result<CertView, CertError>, DbError> {
    let row = match by {
        CertRef::Code(c) => {
            let code = match code::normalise(c.expose()) {
                Ok(c) => c,
                Err(e) => return Ok(Err(e.into())),
            };
            let hash = code::digest(&code);
            let sql = format!("SELECT {COLUMNS} FROM certificates WHERE code_hash = ?1");
            db.query_opt(&sql, args![hash], |r| view(r, now))?
                .filter(|(_, h)| constant_time_eq(h.as_bytes(), hash.as_bytes()))
        }
        CertRef::Id(id) => {
            let sql = format!("SELECT {COLUMNS} FROM certificates WHERE id = ?1");
            db.query_opt(&sql, args![id], |r| view(r, now))?
        }
    };
    Ok(row.map(|(v, _)| v).ok_or(CertError::Unknown))
}

/// The earlier answer under `key` if the same request made it; a refusal
/// when another did; `None` when the key is new.
fn replay<T: for<'de> Deserialize<'de>>(
    db: &dyn Db,
    key: &str,
    request: &str,
) -> Result<Option<Result<T, CertError>>, DbError> {
    let Some((stored, result)) = db.query_opt(
        "SELECT request, result FROM certificate_ops WHERE idempotency_key = ?1",
        args![key],
        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
    )?
    else {
        return Ok(None);
    };
    if stored != request {
        return Ok(Some(Err(CertError::KeyReused)));
    }
    serde_json::from_str(&result)
        .map(|r| Some(Ok(r)))
        .map_err(|_| DbError::Invariant("a stored certificate result does not parse"))
}

/// Records an operation; its id.
#[allow(clippy::too_many_arguments)]
fn record(
    db: &dyn Db,
    key: &str,
    cert: i64,
    kind: &str,
    amount: i64,
    receipt: Option<&str>,
    redemption: Option<i64>,
    request: &str,
    at: &str,
    origin: &Origin,
) -> Result<i64, DbError> {
    let store = Some(origin.store.as_str()).filter(|s| !s.is_empty());
    let terminal = Some(origin.terminal.as_str()).filter(|s| !s.is_empty());
    db.insert(
        "INSERT INTO certificate_ops (idempotency_key, certificate_id, kind, amount, receipt_id,
                                      redemption_id, request, result, created_at, store_id, terminal_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, '', ?8, ?9, ?10) RETURNING id",
        args![
            key, cert, kind, amount, receipt, redemption, request, at, store, terminal
        ],
    )
}

fn store_result<T: Serialize>(db: &dyn Db, op: i64, r: &T) -> Result<(), DbError> {
    let text = serde_json::to_string(r)
        .map_err(|_| DbError::Invariant("a certificate result does not serialise"))?;
    db.execute(
        "UPDATE certificate_ops SET result = ?1 WHERE id = ?2",
        args![text, op],
    )?;
    Ok(())
}

fn request(v: serde_json::Value) -> String {
    v.to_string()
}

/// A redemption that refuses: blocked, expired, used up or short.
fn spendable(c: &CertView, amount: i64) -> Result<(), CertError> {
    match c.state.as_str() {
        "blocked" => Err(CertError::Blocked),
        "expired" => Err(CertError::Expired {
            expires_at: c.expires_at.clone(),
        }),
        "used_up" => Err(CertError::UsedUp),
        _ if kopecks(c.balance).unwrap_or(0) < amount => {
            Err(CertError::Insufficient { balance: c.balance })
        }
        _ => Ok(()),
    }
}

type Tx<T> = Result<Result<T, CertError>, DbError>;

/// Sells a certificate: `code` given imports a pre-printed one.
#[allow(clippy::too_many_arguments)]
pub(crate) fn issue_tx(
    db: &dyn Db,
    origin: &Origin,
    key: &str,
    nominal: Decimal,
    validity: Validity,
    code: Option<&str>,
    receipt: Option<&str>,
    now: OffsetDateTime,
) -> Tx<CertIssued> {
    let nominal_k = match positive("nominal", nominal) {
        Ok(k) => k,
        Err(e) => return Ok(Err(e)),
    };
    let expires_at = match validity {
        Validity::Until(t) if t > now => t,
        Validity::Until(_) => {
            return Ok(Err(CertError::Invalid {
                field: "expires_at",
                reason: "must be in the future".into(),
            }));
        }
        Validity::Days(d) if (1..=MAX_DAYS).contains(&d) => now + time::Duration::days(d.into()),
        Validity::Days(_) => {
            return Ok(Err(CertError::Invalid {
                field: "valid_days",
                reason: format!("1 to {MAX_DAYS}"),
            }));
        }
    };
    let (code, minted) = match code {
        Some(c) => match code::normalise(c) {
            Ok(c) => (c, false),
            Err(e) => return Ok(Err(e.into())),
        },
        None => match code::mint(crate::random::system) {
            Ok(c) => (c, true),
            Err(e) => return Ok(Err(e.into())),
        },
    };
    let hash = code::digest(&code);
    // The request as compared on a repeat: an imported code by its digest
    // (the books never hold the code), a minted one not at all.
    let req = request(serde_json::json!({
        "op": "issue", "nominal": money(nominal_k).to_string(), "validity": match validity {
            Validity::Until(t) => serde_json::json!({ "until": ts(t) }),
            Validity::Days(d) => serde_json::json!({ "days": d }),
        },
        "code": (!minted).then_some(&hash), "receipt_id": receipt,
    }));
    if let Some(r) = replay::<CertIssued>(db, key, &req)? {
        return Ok(r.map(|r| CertIssued {
            code: None,
            replayed: true,
            ..r
        }));
    }
    let taken = db.query_opt(
        "SELECT id FROM certificates WHERE code_hash = ?1",
        args![hash],
        |r| r.get::<i64>(0),
    )?;
    if taken.is_some() {
        // A minted code colliding is a 2^-75 event; an import is refused.
        return Ok(Err(CertError::CodeTaken));
    }
    let at = ts(now);
    let store = Some(origin.store.as_str()).filter(|s| !s.is_empty());
    let terminal = Some(origin.terminal.as_str()).filter(|s| !s.is_empty());
    let id = db.insert(
        "INSERT INTO certificates (code_hash, code_tail, nominal, balance, status, expires_at,
                                   issued_at, receipt_id, store_id, terminal_id)
         VALUES (?1, ?2, ?3, ?3, 'active', ?4, ?5, ?6, ?7, ?8) RETURNING id",
        args![
            hash,
            code::tail(&code),
            nominal_k,
            ts(expires_at),
            at,
            receipt,
            store,
            terminal
        ],
    )?;
    let op = record(
        db, key, id, "issue", nominal_k, receipt, None, &req, &at, origin,
    )?;
    let (certificate, _) = db.query_row(
        &format!("SELECT {COLUMNS} FROM certificates WHERE id = ?1"),
        args![id],
        |r| view(r, &at),
    )?;
    let stored = CertIssued {
        certificate,
        code: None,
        replayed: false,
    };
    store_result(db, op, &stored)?;
    Ok(Ok(CertIssued {
        code: Some(Secret::new(code::grouped(&code))),
        ..stored
    }))
}

/// Spends `amount` of the certificate.
pub(crate) fn redeem_tx(
    db: &dyn Db,
    origin: &Origin,
    key: &str,
    by: &CertRef,
    amount: Decimal,
    receipt: Option<&str>,
    now: OffsetDateTime,
) -> Tx<CertMoved> {
    let amount_k = match positive("amount", amount) {
        Ok(k) => k,
        Err(e) => return Ok(Err(e)),
    };
    let at = ts(now);
    let cert = match find(db, by, &at)? {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    let req = request(serde_json::json!({
        "op": "redeem", "certificate": cert.certificate,
        "amount": money(amount_k).to_string(), "receipt_id": receipt,
    }));
    if let Some(r) = replay::<CertMoved>(db, key, &req)? {
        return Ok(r.map(|r| CertMoved {
            replayed: true,
            ..r
        }));
    }
    if let Err(e) = spendable(&cert, amount_k) {
        return Ok(Err(e));
    }
    let taken = db.execute(
        "UPDATE certificates SET balance = balance - ?1
         WHERE id = ?2 AND status = 'active' AND balance >= ?1 AND expires_at > ?3",
        args![amount_k, cert.certificate, at],
    )?;
    if taken != 1 {
        return Err(DbError::Invariant(
            "a certificate changed inside its own transaction",
        ));
    }
    let op = record(
        db,
        key,
        cert.certificate,
        "redeem",
        amount_k,
        receipt,
        None,
        &req,
        &at,
        origin,
    )?;
    let after = match find(db, &CertRef::Id(cert.certificate), &at)? {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    let r = CertMoved {
        operation: op,
        redemption: None,
        amount: money(amount_k),
        certificate: after,
        replayed: false,
    };
    store_result(db, op, &r)?;
    Ok(Ok(r))
}

/// Gives back to the certificate what redemption `redemption` took (all
/// that is left of it, or `amount`): a return of goods it paid for. The
/// money goes back even to an expired or blocked certificate (it is the
/// customer's), which still cannot spend it then.
pub(crate) fn refund_tx(
    db: &dyn Db,
    origin: &Origin,
    key: &str,
    redemption: i64,
    amount: Option<Decimal>,
    receipt: Option<&str>,
    now: OffsetDateTime,
) -> Tx<CertMoved> {
    let asked = match amount.map(|a| positive("amount", a)).transpose() {
        Ok(a) => a,
        Err(e) => return Ok(Err(e)),
    };
    let req = request(serde_json::json!({
        "op": "refund", "redemption": redemption,
        "amount": asked.map(|a| money(a).to_string()), "receipt_id": receipt,
    }));
    if let Some(r) = replay::<CertMoved>(db, key, &req)? {
        return Ok(r.map(|r| CertMoved {
            replayed: true,
            ..r
        }));
    }
    let Some((cert, taken)) = db.query_opt(
        "SELECT certificate_id, amount FROM certificate_ops WHERE id = ?1 AND kind = 'redeem'",
        args![redemption],
        |r| Ok((r.get::<i64>(0)?, r.get::<i64>(1)?)),
    )?
    else {
        return Ok(Err(CertError::UnknownRedemption));
    };
    let returned: i64 = db.query_row(
        "SELECT COALESCE(SUM(amount), 0) FROM certificate_ops
         WHERE redemption_id = ?1 AND kind = 'refund'",
        args![redemption],
        |r| r.get(0),
    )?;
    let left = taken - returned;
    let amount_k = asked.unwrap_or(left);
    if amount_k > left || amount_k == 0 {
        return Ok(Err(CertError::RefundTooHigh {
            refundable: money(left),
        }));
    }
    db.execute(
        "UPDATE certificates SET balance = balance + ?1 WHERE id = ?2",
        args![amount_k, cert],
    )?;
    let at = ts(now);
    let op = record(
        db,
        key,
        cert,
        "refund",
        amount_k,
        receipt,
        Some(redemption),
        &req,
        &at,
        origin,
    )?;
    let after = match find(db, &CertRef::Id(cert), &at)? {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    let r = CertMoved {
        operation: op,
        redemption: Some(redemption),
        amount: money(amount_k),
        certificate: after,
        replayed: false,
    };
    store_result(db, op, &r)?;
    Ok(Ok(r))
}

/// Blocks (or unblocks) a certificate.
pub(crate) fn block_tx(
    db: &dyn Db,
    origin: &Origin,
    key: &str,
    by: &CertRef,
    blocked: bool,
    now: OffsetDateTime,
) -> Tx<CertView> {
    let at = ts(now);
    let cert = match find(db, by, &at)? {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    let req = request(serde_json::json!({
        "op": "block", "certificate": cert.certificate, "blocked": blocked,
    }));
    if let Some(r) = replay::<CertView>(db, key, &req)? {
        return Ok(r);
    }
    db.execute(
        "UPDATE certificates SET status = ?1 WHERE id = ?2",
        args![if blocked { "blocked" } else { "active" }, cert.certificate],
    )?;
    let kind = if blocked { "block" } else { "unblock" };
    let op = record(
        db,
        key,
        cert.certificate,
        kind,
        0,
        None,
        None,
        &req,
        &at,
        origin,
    )?;
    let after = match find(db, &CertRef::Id(cert.certificate), &at)? {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    store_result(db, op, &after)?;
    Ok(Ok(after))
}

impl Certs {
    /// Certificates on `books`, written as `origin`.
    pub fn new(books: Books, origin: Origin) -> Self {
        Certs { books, origin }
    }

    /// The same books acting for another origin.
    pub fn with_origin(&self, origin: Origin) -> Self {
        Certs {
            books: self.books.clone(),
            origin,
        }
    }

    /// Sells a certificate of `nominal` for `validity`; `code` imports
    /// a pre-printed one instead of minting.
    pub async fn issue(
        &self,
        key: String,
        nominal: Decimal,
        validity: Validity,
        code: Option<Secret>,
        receipt_id: Option<String>,
    ) -> Result<CertIssued, CertError> {
        let origin = self.origin.clone();
        let now = OffsetDateTime::now_utc();
        self.books
            .write(move |db| {
                issue_tx(
                    db,
                    &origin,
                    &key,
                    nominal,
                    validity,
                    code.as_ref().map(Secret::expose),
                    receipt_id.as_deref(),
                    now,
                )
            })
            .await?
    }

    /// A certificate's balance and state.
    pub async fn get(&self, by: CertRef) -> Result<CertView, CertError> {
        let now = ts(OffsetDateTime::now_utc());
        self.books.read(move |db| find(db, &by, &now)).await?
    }

    /// Spends `amount` of a certificate.
    pub async fn redeem(
        &self,
        key: String,
        by: CertRef,
        amount: Decimal,
        receipt_id: Option<String>,
    ) -> Result<CertMoved, CertError> {
        let origin = self.origin.clone();
        let now = OffsetDateTime::now_utc();
        self.books
            .write(move |db| redeem_tx(db, &origin, &key, &by, amount, receipt_id.as_deref(), now))
            .await?
    }

    /// Returns a redemption's money to its certificate.
    pub async fn refund(
        &self,
        key: String,
        redemption: i64,
        amount: Option<Decimal>,
        receipt_id: Option<String>,
    ) -> Result<CertMoved, CertError> {
        let origin = self.origin.clone();
        let now = OffsetDateTime::now_utc();
        self.books
            .write(move |db| {
                refund_tx(
                    db,
                    &origin,
                    &key,
                    redemption,
                    amount,
                    receipt_id.as_deref(),
                    now,
                )
            })
            .await?
    }

    /// Blocks or unblocks a certificate.
    pub async fn block(
        &self,
        key: String,
        by: CertRef,
        blocked: bool,
    ) -> Result<CertView, CertError> {
        let origin = self.origin.clone();
        let now = OffsetDateTime::now_utc();
        self.books
            .write(move |db| block_tx(db, &origin, &key, &by, blocked, now))
            .await?
    }
}

#[cfg(test)]
mod tests;
