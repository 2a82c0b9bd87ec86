//! The ledger's view of a SQL database: the one seam between the
//! programme's book-keeping and whatever keeps the books.
//!
//! The ledger core (accounts, cards, lots, entries, tiers, idempotent
//! replay, verify) is written once against [`Db`], a transaction that runs
//! SQL with `?N` placeholders and returns rows of plain [`Value`]s. Two
//! stores implement it: SQLite for one till ([`SqliteBooks`], over the
//! daemon's [`Store`]) and PostgreSQL for a chain (in `posbridge-central`).
//! The SQL the core writes is the subset both dialects share: `INSERT …
//! RETURNING id` instead of `last_insert_rowid()`, `ON CONFLICT` instead of
//! `INSERT OR …`, `COALESCE`, text timestamps of fixed width (RFC 3339 in
//! UTC, so text order is time order), integer amounts in units of 0.0001.
//!
//! A [`Runner`] owns transactions: it begins one, hands the closure a
//! [`Db`], and commits or rolls back by the closure's answer. A store whose
//! isolation can refuse a transaction (PostgreSQL's serializable level)
//! runs the closure again; closures therefore compute from what they read
//! and keep no state across attempts.

use std::convert::Infallible;
use std::sync::Arc;

use crate::store::{Store, StoreError};

/// One SQL value, as both stores can carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A 64-bit integer (also booleans: 0 or 1).
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// Database errors, whichever store raised them.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A query that must return a row returned none.
    #[error("query returned no rows")]
    NoRows,
    /// A column held a value of another type than the code reads.
    #[error("column {column}: expected {expected}, found {found}")]
    Type {
        /// Zero-based column index.
        column: usize,
        /// What the code reads.
        expected: &'static str,
        /// What the row held.
        found: &'static str,
    },
    /// The store refused the transaction because a concurrent one
    /// conflicted with it (PostgreSQL's serialization failure or deadlock);
    /// running it again may succeed. Runners retry these themselves.
    #[error("transaction conflicted with a concurrent one: {0}")]
    Conflict(String),
    /// A uniqueness or check constraint refused a write.
    #[error("constraint violated: {0}")]
    Constraint(String),
    /// The books disagree with themselves (a broken invariant, a bug).
    #[error("ledger invariant broken: {0}")]
    Invariant(&'static str),
    /// The store could not be reached or failed.
    #[error("{0}")]
    Store(String),
    /// SQLite failed.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// The embedded database failed outside a statement.
    #[error(transparent)]
    Embedded(#[from] StoreError),
}

/// A parameter the core binds.
pub trait ToValue {
    /// The value to bind.
    fn to_value(&self) -> Value;
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}
impl ToValue for i64 {
    fn to_value(&self) -> Value {
        Value::Int(*self)
    }
}
impl ToValue for i32 {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for u32 {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for usize {
    fn to_value(&self) -> Value {
        Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}
impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}
impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null,
        }
    }
}

/// Parameters for a statement: `args![a, b]` is `&[&a, &b]` as trait
/// objects, in `?1, ?2` order.
#[macro_export]
macro_rules! args {
    () => { &[] as &[&dyn $crate::ledger::db::ToValue] };
    ($($p:expr),+ $(,)?) => { &[$(&$p as &dyn $crate::ledger::db::ToValue),+] as &[&dyn $crate::ledger::db::ToValue] };
}
pub use args;

/// A value read from a column.
pub trait FromValue: Sized {
    /// Converts column `column`'s value, or says what it held instead.
    fn from_value(v: &Value, column: usize) -> Result<Self, DbError>;
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "NULL",
        Value::Int(_) => "integer",
        Value::Text(_) => "text",
        Value::Blob(_) => "blob",
    }
}

fn mismatch<T>(v: &Value, column: usize, expected: &'static str) -> Result<T, DbError> {
    Err(DbError::Type {
        column,
        expected,
        found: kind(v),
    })
}

impl FromValue for Value {
    fn from_value(v: &Value, _: usize) -> Result<Self, DbError> {
        Ok(v.clone())
    }
}
impl FromValue for i64 {
    fn from_value(v: &Value, column: usize) -> Result<Self, DbError> {
        match v {
            Value::Int(i) => Ok(*i),
            _ => mismatch(v, column, "integer"),
        }
    }
}
impl FromValue for i32 {
    fn from_value(v: &Value, column: usize) -> Result<Self, DbError> {
        match v {
            Value::Int(i) => i32::try_from(*i).or_else(|_| mismatch(v, column, "32-bit integer")),
            _ => mismatch(v, column, "integer"),
        }
    }
}
impl FromValue for u32 {
    fn from_value(v: &Value, column: usize) -> Result<Self, DbError> {
        match v {
            Value::Int(i) => u32::try_from(*i).or_else(|_| mismatch(v, column, "unsigned integer")),
            _ => mismatch(v, column, "integer"),
        }
    }
}
impl FromValue for bool {
    fn from_value(v: &Value, column: usize) -> Result<Self, DbError> {
        match v {
            Value::Int(i) => Ok(*i != 0),
            _ => mismatch(v, column, "boolean"),
        }
    }
}
impl FromValue for String {
    fn from_value(v: &Value, column: usize) -> Result<Self, DbError> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            _ => mismatch(v, column, "text"),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: &Value, column: usize) -> Result<Self, DbError> {
        match v {
            Value::Blob(b) => Ok(b.clone()),
            _ => mismatch(v, column, "blob"),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value, column: usize) -> Result<Self, DbError> {
        match v {
            Value::Null => Ok(None),
            _ => T::from_value(v, column).map(Some),
        }
    }
}

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// Column `i` (zero-based) as `T`.
    pub fn get<T: FromValue>(&self, i: usize) -> Result<T, DbError> {
        match self.0.get(i) {
            Some(v) => T::from_value(v, i),
            None => Err(DbError::Type {
                column: i,
                expected: "a column",
                found: "no such column",
            }),
        }
    }
}

/// Which SQL dialect a [`Db`] speaks, for the few statements that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite (the embedded ledger).
    Sqlite,
    /// PostgreSQL (the central ledger).
    Postgres,
}

/// A transaction on the books. Statements use `?1, ?2, …` placeholders;
/// implementations translate them for their store.
pub trait Db {
    /// Runs a statement, returning the number of rows changed.
    fn execute(&self, sql: &str, params: &[&dyn ToValue]) -> Result<usize, DbError>;
    /// Runs a query, returning all its rows. Callers bound the result with
    /// `LIMIT` where a table can be large.
    fn query(&self, sql: &str, params: &[&dyn ToValue]) -> Result<Vec<Row>, DbError>;
    /// The dialect, for the rare statement the two stores spell apart.
    fn dialect(&self) -> Dialect;
}

impl dyn Db + '_ {
    /// The first row mapped by `f`; [`DbError::NoRows`] if there is none.
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: &[&dyn ToValue],
        f: impl FnOnce(&Row) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let rows = self.query(sql, params)?;
        match rows.first() {
            Some(r) => f(r),
            None => Err(DbError::NoRows),
        }
    }

    /// The first row mapped by `f`, if any.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        params: &[&dyn ToValue],
        f: impl FnOnce(&Row) -> Result<T, DbError>,
    ) -> Result<Option<T>, DbError> {
        let rows = self.query(sql, params)?;
        rows.first().map(f).transpose()
    }

    /// Every row mapped by `f`.
    pub fn query_map<T>(
        &self,
        sql: &str,
        params: &[&dyn ToValue],
        f: impl FnMut(&Row) -> Result<T, DbError>,
    ) -> Result<Vec<T>, DbError> {
        self.query(sql, params)?.iter().map(f).collect()
    }

    /// Runs an `INSERT … RETURNING id` and returns the id.
    pub fn insert(&self, sql: &str, params: &[&dyn ToValue]) -> Result<i64, DbError> {
        self.query_row(sql, params, |r| r.get(0))
    }
}

/// `Result::optional()` for [`DbError::NoRows`], as rusqlite spells it.
pub trait OptionalExt<T> {
    /// `Ok(None)` instead of [`DbError::NoRows`].
    fn optional(self) -> Result<Option<T>, DbError>;
}

impl<T> OptionalExt<T> for Result<T, DbError> {
    fn optional(self) -> Result<Option<T>, DbError> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Whether a transaction writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Reads only.
    Read,
    /// Reads and writes.
    Write,
    /// Reads and writes, and the closure locks every account whose books
    /// it reads before it reads them (`book::card_account_locked`,
    /// `book::lock_account`), and touches nothing else another
    /// transaction could change meanwhile. A store may run it at a weaker
    /// isolation than [`Mode::Write`] (PostgreSQL: READ COMMITTED, each
    /// statement seeing what committed before it), because the locks
    /// order it against every other writer of those accounts: each of
    /// them writes the account's row (`book::entry` keeps its balance),
    /// so a serializable writer that raced it fails on that row and runs
    /// again. SQLite has one writer and runs it as [`Mode::Write`].
    WriteLocking,
}

/// What the closure tells the runner when it returns `Ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Make the transaction's writes durable.
    Commit,
    /// Drop them.
    Rollback,
}

/// Runs closures in transactions on one store. Blocking: callers run it on
/// a blocking thread ([`Books`] does).
pub trait Runner: Send + Sync + 'static {
    /// Begins a transaction, runs `f`, and commits or rolls back by its
    /// answer (`Err` rolls back). A store that reports
    /// [`DbError::Conflict`] runs `f` again in a fresh transaction, a
    /// bounded number of times.
    fn transaction(
        &self,
        mode: Mode,
        f: &mut dyn FnMut(&dyn Db) -> Result<Finish, DbError>,
    ) -> Result<(), DbError>;
}

/// The books: a [`Runner`] shared by the ledger's parts, run from async
/// code on blocking threads.
#[derive(Clone)]
pub struct Books(Arc<dyn Runner>);

impl std::fmt::Debug for Books {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Books")
    }
}

impl Books {
    /// Books kept by `runner`.
    pub fn new(runner: Arc<dyn Runner>) -> Self {
        Books(runner)
    }

    /// The embedded SQLite books of `store`.
    pub fn sqlite(store: Store) -> Self {
        Books(Arc::new(SqliteBooks::new(store)))
    }

    /// Runs `f` in a transaction: `Ok(Ok(_))` commits, `Ok(Err(_))` (the
    /// rules refused) and `Err(_)` roll back.
    pub async fn write<T, E, F>(&self, f: F) -> Result<Result<T, E>, DbError>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnMut(&dyn Db) -> Result<Result<T, E>, DbError> + Send + 'static,
    {
        self.run(Mode::Write, f, |r| match r {
            Ok(_) => Finish::Commit,
            Err(_) => Finish::Rollback,
        })
        .await
    }

    /// [`Books::write`] for a closure that locks what it reads
    /// ([`Mode::WriteLocking`]): the sale's path, so concurrent sales on
    /// different accounts do not refuse each other on PostgreSQL.
    pub async fn write_locking<T, E, F>(&self, f: F) -> Result<Result<T, E>, DbError>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnMut(&dyn Db) -> Result<Result<T, E>, DbError> + Send + 'static,
    {
        self.run(Mode::WriteLocking, f, |r| match r {
            Ok(_) => Finish::Commit,
            Err(_) => Finish::Rollback,
        })
        .await
    }

    /// Runs `f` in a transaction that commits whenever `f` returns `Ok`,
    /// even with a refusal inside: for the writes that must stand when the
    /// answer is no (a wrong secret counted against the card).
    pub async fn write_always<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnMut(&dyn Db) -> Result<T, DbError> + Send + 'static,
    {
        let mut f = f;
        self.run(
            Mode::Write,
            move |db| f(db).map(Ok::<T, Infallible>),
            |_| Finish::Commit,
        )
        .await
        .map(|r| match r {
            Ok(v) => v,
            Err(never) => match never {},
        })
    }

    /// Runs `f` in a read-only transaction.
    pub async fn read<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnMut(&dyn Db) -> Result<T, DbError> + Send + 'static,
    {
        let mut f = f;
        self.run(
            Mode::Read,
            move |db| f(db).map(Ok::<T, Infallible>),
            |_| Finish::Rollback,
        )
        .await
        .map(|r| match r {
            Ok(v) => v,
            Err(never) => match never {},
        })
    }

    /// The same as [`Books::write`], on the calling thread (for
    /// command-line tools and tests outside a runtime).
    pub fn write_blocking<T, E>(
        &self,
        f: impl FnMut(&dyn Db) -> Result<Result<T, E>, DbError>,
    ) -> Result<Result<T, E>, DbError> {
        run_on(&*self.0, Mode::Write, f, |r| match r {
            Ok(_) => Finish::Commit,
            Err(_) => Finish::Rollback,
        })
    }

    /// The same as [`Books::read`], on the calling thread.
    pub fn read_blocking<T>(
        &self,
        mut f: impl FnMut(&dyn Db) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        run_on(
            &*self.0,
            Mode::Read,
            move |db| f(db).map(Ok::<T, Infallible>),
            |_| Finish::Rollback,
        )
        .map(|r| match r {
            Ok(v) => v,
            Err(never) => match never {},
        })
    }

    async fn run<T, E, F>(
        &self,
        mode: Mode,
        f: F,
        finish: fn(&Result<T, E>) -> Finish,
    ) -> Result<Result<T, E>, DbError>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnMut(&dyn Db) -> Result<Result<T, E>, DbError> + Send + 'static,
    {
        let runner = self.0.clone();
        tokio::task::spawn_blocking(move || run_on(&*runner, mode, f, finish))
            .await
            .map_err(|join| DbError::Store(format!("database worker failed: {join}")))?
    }
}

fn run_on<T, E>(
    runner: &dyn Runner,
    mode: Mode,
    mut f: impl FnMut(&dyn Db) -> Result<Result<T, E>, DbError>,
    finish: fn(&Result<T, E>) -> Finish,
) -> Result<Result<T, E>, DbError> {
    let mut out = None;
    runner.transaction(mode, &mut |db| {
        let r = f(db)?;
        let how = finish(&r);
        out = Some(r);
        Ok(how)
    })?;
    out.ok_or(DbError::Invariant("the runner never ran the transaction"))
}

/// The embedded books: the daemon's SQLite [`Store`]. Reads run on the
/// store's read-only WAL connections, so they never queue behind a write;
/// writes run on its one write connection with group commit (each caller
/// in its own savepoint of a shared transaction, all answered after its
/// one durable commit: see `store::group`).
pub struct SqliteBooks {
    store: Store,
}

impl SqliteBooks {
    /// Books on `store`.
    pub fn new(store: Store) -> Self {
        SqliteBooks { store }
    }
}

impl Runner for SqliteBooks {
    fn transaction(
        &self,
        mode: Mode,
        f: &mut dyn FnMut(&dyn Db) -> Result<Finish, DbError>,
    ) -> Result<(), DbError> {
        match mode {
            Mode::Read => {
                let mut conn = self.store.reader();
                let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)?;
                let how = f(&SqliteDb(&tx))?;
                // A reader has nothing to keep: either way it ends.
                let _ = how;
                tx.rollback()?;
                Ok(())
            }
            // One writer: locking adds nothing to it.
            Mode::Write | Mode::WriteLocking => self
                .store
                .writer()
                .group(|conn| Ok(f(&SqliteDb(conn))? == Finish::Commit)),
        }
    }
}

/// A SQLite connection (in a transaction) as a [`Db`].
pub struct SqliteDb<'a>(pub &'a rusqlite::Connection);

fn bind(params: &[&dyn ToValue]) -> Vec<rusqlite::types::Value> {
    params
        .iter()
        .map(|p| match p.to_value() {
            Value::Null => rusqlite::types::Value::Null,
            Value::Int(i) => rusqlite::types::Value::Integer(i),
            Value::Text(s) => rusqlite::types::Value::Text(s),
            Value::Blob(b) => rusqlite::types::Value::Blob(b),
        })
        .collect()
}

impl Db for SqliteDb<'_> {
    fn execute(&self, sql: &str, params: &[&dyn ToValue]) -> Result<usize, DbError> {
        let mut stmt = self.0.prepare_cached(sql)?;
        Ok(stmt.execute(rusqlite::params_from_iter(bind(params)))?)
    }

    fn query(&self, sql: &str, params: &[&dyn ToValue]) -> Result<Vec<Row>, DbError> {
        let mut stmt = self.0.prepare_cached(sql)?;
        let n = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(bind(params)))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut values = Vec::with_capacity(n);
            for i in 0..n {
                values.push(match r.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => Value::Null,
                    rusqlite::types::ValueRef::Integer(i) => Value::Int(i),
                    // The ledger keeps no floats; a REAL here is a bug in a
                    // statement (an AVG, a division) and reads as text so
                    // the type error names it.
                    rusqlite::types::ValueRef::Real(f) => Value::Text(f.to_string()),
                    rusqlite::types::ValueRef::Text(t) => {
                        Value::Text(String::from_utf8_lossy(t).into_owned())
                    }
                    rusqlite::types::ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                });
            }
            out.push(Row(values));
        }
        Ok(out)
    }

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
}

/// Rewrites `?N` placeholders as `$N` (PostgreSQL's), leaving string
/// literals and quoted identifiers alone.
pub fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '?' => {
                out.push('$');
                continue;
            }
            None => {}
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rewritten_outside_quotes() {
        assert_eq!(
            dollar_placeholders("SELECT '?1', \"a?\" FROM t WHERE a = ?1 AND b = ?12"),
            "SELECT '?1', \"a?\" FROM t WHERE a = $1 AND b = $12"
        );
    }

    #[test]
    fn sqlite_round_trip_and_rollback() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let books = Books::sqlite(store);
        let id = books
            .write_blocking(|db| {
                let id = db.insert(
                    "INSERT INTO accounts (created_at, name) VALUES (?1, ?2) RETURNING id",
                    args!["2026-01-01T00:00:00Z", Some("Anna")],
                )?;
                Ok(Ok::<_, ()>(id))
            })
            .unwrap()
            .unwrap();
        // A refusal rolls back what the closure wrote.
        let refused = books
            .write_blocking(|db| {
                db.execute(
                    "UPDATE accounts SET name = ?1 WHERE id = ?2",
                    args!["Boris", id],
                )?;
                Ok(Err::<(), _>("no"))
            })
            .unwrap();
        assert_eq!(refused, Err("no"));
        let name: Option<String> = books
            .read_blocking(|db| {
                db.query_row("SELECT name FROM accounts WHERE id = ?1", args![id], |r| {
                    r.get(0)
                })
            })
            .unwrap();
        assert_eq!(name.as_deref(), Some("Anna"));
        let none = books
            .read_blocking(|db| {
                db.query_row(
                    "SELECT id FROM accounts WHERE id = ?1",
                    args![id + 1],
                    |r| r.get::<i64>(0),
                )
                .optional()
            })
            .unwrap();
        assert_eq!(none, None);
    }
}
