//! The back office's operators and its audit log, over [`Books`] so the
//! same SQL serves the till's SQLite and (later) the central PostgreSQL.
//!
//! An operator's password is kept only as an argon2id hash with its own
//! salt ([`argon2id_hash`]); checking one runs argon2 on a blocking thread,
//! because it takes tens of milliseconds of CPU.

use std::fmt;

use rust_decimal::Decimal;
use time::OffsetDateTime;

use crate::ledger::accounts::{argon2id_hash, argon2id_matches};
use crate::ledger::db::{Books, Db, DbError, args};
use crate::ledger::embedded::{points, ts, units};
use crate::random::{self, RandomError};

/// The longest operator name.
pub const NAME_MAX: usize = 64;
/// Password length bounds, in characters.
pub const PASSWORD_MIN: usize = 8;
/// See [`PASSWORD_MIN`]; argon2 of a megabyte would be a denial of service.
pub const PASSWORD_MAX: usize = 128;
/// The most audit rows one export writes (newest first).
pub const EXPORT_MAX: u32 = 100_000;

/// What an operator may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads customers, cards and history.
    Viewer,
    /// Also blocks cards and adjusts points within a per-operation limit.
    Operator,
    /// Unlimited adjustments and the audit log.
    Admin,
}

impl Role {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// The role a stored or typed word names.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operator as stored (the hash never leaves this module's callers'
/// reach for display; [`Operator`]'s `Debug` hides it).
#[derive(Clone)]
pub struct Operator {
    /// Login name.
    pub name: String,
    /// Rights.
    pub role: Role,
    /// argon2id hash of the password.
    password_hash: String,
    /// Most points one adjustment may move (operators only); `None`: no limit.
    pub limit: Option<Decimal>,
    /// A disabled operator cannot log in, and its sessions end.
    pub disabled: bool,
    /// RFC 3339.
    pub created_at: String,
}

impl fmt::Debug for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Operator")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("limit", &self.limit)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// Operator and audit errors.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The name is not 1 to 64 of `A-Z a-z 0-9 . _ -`.
    #[error("operator name: 1 to {NAME_MAX} letters, digits, '.', '_' or '-'")]
    BadName,
    /// The password is too short or too long.
    #[error("password: {PASSWORD_MIN} to {PASSWORD_MAX} characters")]
    BadPassword,
    /// An operator with this name exists.
    #[error("an operator named {0:?} exists")]
    Exists(String),
    /// No such operator.
    #[error("no operator named {0:?}")]
    Unknown(String),
    /// No randomness for a salt.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The hashing thread failed.
    #[error("password hashing failed")]
    Hashing,
}

/// One row of the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    /// Sequence number.
    pub id: i64,
    /// RFC 3339, UTC.
    pub at: String,
    /// Who.
    pub operator: String,
    /// What (`login`, `card.block`, `points.adjust`...).
    pub action: String,
    /// On what (`account:7`).
    pub target: Option<String>,
    /// Details, JSON text (never a full card number or a secret).
    pub detail: String,
    /// From where (the client's address).
    pub remote: Option<String>,
}

/// A change to write to the audit log.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    /// Who.
    pub operator: &'a str,
    /// What.
    pub action: &'a str,
    /// On what.
    pub target: Option<String>,
    /// Details (JSON).
    pub detail: serde_json::Value,
    /// From where.
    pub remote: Option<String>,
}

/// Operators and the audit log on a set of books.
#[derive(Clone)]
pub struct Operators {
    books: Books,
}

fn check_name(name: &str) -> Result<(), OperatorError> {
    let ok = !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(OperatorError::BadName)
    }
}

fn operator_of(r: &crate::ledger::db::Row) -> Result<Operator, DbError> {
    let role: String = r.get(1)?;
    Ok(Operator {
        name: r.get(0)?,
        // The CHECK constraint keeps other words out; read one as the
        // least privileged rather than fail the page.
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        password_hash: r.get(2)?,
        limit: r.get::<Option<i64>>(3)?.map(points),
        disabled: r.get(4)?,
        created_at: r.get(5)?,
    })
}

const COLUMNS: &str = "name, role, password_hash, op_limit, disabled, created_at";

impl Operators {
    /// Operators kept in `books`.
    pub fn new(books: Books) -> Self {
        Operators { books }
    }

    /// Adds an operator with a fresh salt.
    pub async fn add(
        &self,
        name: String,
        role: Role,
        password: String,
        limit: Option<Decimal>,
    ) -> Result<(), OperatorError> {
        check_name(&name)?;
        let n = password.chars().count();
        if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&n) {
            return Err(OperatorError::BadPassword);
        }
        let mut salt = [0u8; 16];
        random::system(&mut salt)?;
        let hash = tokio::task::spawn_blocking(move || argon2id_hash(&password, salt))
            .await
            .map_err(|_| OperatorError::Hashing)?;
        let now = ts(OffsetDateTime::now_utc());
        let limit = limit.map(units);
        self.books
            .write(move |db| {
                let exists = db.query_opt(
                    "SELECT name FROM bo_operators WHERE name = ?1",
                    args![name],
                    |r| r.get::<String>(0),
                )?;
                if exists.is_some() {
                    return Ok(Err(OperatorError::Exists(name.clone())));
                }
                db.execute(
                    "INSERT INTO bo_operators (name, role, password_hash, op_limit, disabled, created_at)
                     VALUES (?1, ?2, ?3, ?4, 0, ?5)",
                    args![name, role.as_str(), hash, limit, now],
                )?;
                Ok(Ok(()))
            })
            .await?
    }

    /// Every operator, by name.
    pub async fn list(&self) -> Result<Vec<Operator>, OperatorError> {
        Ok(self
            .books
            .read(|db| {
                db.query_map(
                    &format!("SELECT {COLUMNS} FROM bo_operators ORDER BY name"),
                    args![],
                    operator_of,
                )
            })
            .await?)
    }

    /// One operator.
    pub async fn get(&self, name: String) -> Result<Option<Operator>, OperatorError> {
        Ok(self
            .books
            .read(move |db| {
                db.query_opt(
                    &format!("SELECT {COLUMNS} FROM bo_operators WHERE name = ?1"),
                    args![name],
                    operator_of,
                )
            })
            .await?)
    }

    /// Disables an operator: no more logins, and open sessions end at
    /// their next request.
    pub async fn disable(&self, name: String) -> Result<(), OperatorError> {
        let n = name.clone();
        let changed = self
            .books
            .write_always(move |db| {
                db.execute(
                    "UPDATE bo_operators SET disabled = 1 WHERE name = ?1",
                    args![n],
                )
            })
            .await?;
        if changed == 0 {
            return Err(OperatorError::Unknown(name));
        }
        Ok(())
    }

    /// The enabled operator `name` if `password` is theirs. Runs argon2
    /// even for an unknown name, so the answer's timing does not tell
    /// which names exist.
    pub async fn check_password(
        &self,
        name: String,
        password: String,
    ) -> Result<Option<Operator>, OperatorError> {
        if check_name(&name).is_err() || password.chars().count() > PASSWORD_MAX {
            return Ok(None);
        }
        let op = self.get(name).await?;
        // A hash of a fixed password stands in for a missing one.
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let stored = op.as_ref().map(|o| o.password_hash.clone());
        let matches = tokio::task::spawn_blocking(move || {
            let stored = stored.unwrap_or_else(|| {
                DUMMY
                    .get_or_init(|| argon2id_hash("no such operator", [0; 16]))
                    .clone()
            });
            argon2id_matches(&stored, &password)
        })
        .await
        .map_err(|_| OperatorError::Hashing)?;
        Ok(op.filter(|o| matches && !o.disabled))
    }

    /// Appends to the audit log.
    pub async fn audit(&self, e: AuditEntry<'_>) -> Result<(), OperatorError> {
        let at = ts(OffsetDateTime::now_utc());
        let (operator, action, target, remote) = (
            e.operator.to_owned(),
            e.action.to_owned(),
            e.target,
            e.remote,
        );
        let detail = e.detail.to_string();
        self.books
            .write_always(move |db| {
                write_audit(
                    db,
                    &at,
                    &operator,
                    &action,
                    target.as_deref(),
                    &detail,
                    remote.as_deref(),
                )
            })
            .await?;
        Ok(())
    }

    /// A page of the audit log, newest first: rows with ids below
    /// `cursor`, at most `limit`; and the cursor of the next page.
    pub async fn audit_page(
        &self,
        cursor: Option<i64>,
        limit: u32,
    ) -> Result<(Vec<AuditRow>, Option<i64>), OperatorError> {
        let limit = limit.clamp(1, EXPORT_MAX);
        let mut rows = self
            .books
            .read(move |db| {
                db.query_map(
                    "SELECT id, at, operator, action, target, detail, remote FROM bo_audit
                     WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
                    args![cursor.unwrap_or(i64::MAX), i64::from(limit) + 1],
                    |r| {
                        Ok(AuditRow {
                            id: r.get(0)?,
                            at: r.get(1)?,
                            operator: r.get(2)?,
                            action: r.get(3)?,
                            target: r.get(4)?,
                            detail: r.get(5)?,
                            remote: r.get(6)?,
                        })
                    },
                )
            })
            .await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = if more {
            rows.last().map(|r| r.id)
        } else {
            None
        };
        Ok((rows, next))
    }
}

/// Writes one audit row in the caller's transaction. The id is the next
/// after the largest: both stores run this without a sequence.
fn write_audit(
    db: &dyn Db,
    at: &str,
    operator: &str,
    action: &str,
    target: Option<&str>,
    detail: &str,
    remote: Option<&str>,
) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO bo_audit (id, at, operator, action, target, detail, remote)
         SELECT COALESCE(MAX(id), 0) + 1, ?1, ?2, ?3, ?4, ?5, ?6 FROM bo_audit",
        args![at, operator, action, target, detail, remote],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops() -> (tempfile::TempDir, Operators) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("s.db")).unwrap();
        (dir, Operators::new(Books::sqlite(store)))
    }

    #[tokio::test]
    async fn operators_log_in_with_their_password_until_disabled() {
        let (_dir, ops) = ops();
        ops.add(
            "anna".into(),
            Role::Operator,
            "correct horse".into(),
            Some(Decimal::new(500, 0)),
        )
        .await
        .unwrap();
        assert!(matches!(
            ops.add("anna".into(), Role::Admin, "another one".into(), None)
                .await,
            Err(OperatorError::Exists(_))
        ));
        assert!(matches!(
            ops.add("bad name".into(), Role::Admin, "long enough".into(), None)
                .await,
            Err(OperatorError::BadName)
        ));
        assert!(matches!(
            ops.add("bob".into(), Role::Admin, "short".into(), None)
                .await,
            Err(OperatorError::BadPassword)
        ));
        let op = ops
            .check_password("anna".into(), "correct horse".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(op.role, Role::Operator);
        assert_eq!(op.limit, Some(Decimal::new(500, 0)));
        assert!(!format!("{op:?}").contains("argon2"));
        assert!(
            ops.check_password("anna".into(), "wrong".into())
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            ops.check_password("nobody".into(), "correct horse".into())
                .await
                .unwrap()
                .is_none()
        );
        ops.disable("anna".into()).await.unwrap();
        assert!(
            ops.check_password("anna".into(), "correct horse".into())
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn the_audit_log_pages_newest_first() {
        let (_dir, ops) = ops();
        for i in 0..5 {
            ops.audit(AuditEntry {
                operator: "anna",
                action: "points.adjust",
                target: Some(format!("account:{i}")),
                detail: serde_json::json!({"i": i}),
                remote: Some("127.0.0.1".into()),
            })
            .await
            .unwrap();
        }
        let (rows, next) = ops.audit_page(None, 3).await.unwrap();
        assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), [5, 4, 3]);
        let (rows, next2) = ops.audit_page(next, 3).await.unwrap();
        assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(next2, None);
    }
}
