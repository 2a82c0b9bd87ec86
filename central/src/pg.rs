//! The central ledger's books on PostgreSQL: [`PgBooks`], a
//! [`Runner`] over a bounded pool of blocking connections.
//!
//! The ledger core is synchronous (the same rules run over rusqlite), so
//! this store uses the `postgres` crate, the blocking face of
//! tokio-postgres; [`posbridge::ledger::db::Books`] calls runners on
//! tokio's blocking threads.
//!
//! Writes run at `SERIALIZABLE`: two tills spending one balance at the same
//! moment cannot both succeed. A sale ([`Mode::WriteLocking`]) runs at
//! `READ COMMITTED` instead, having taken its account's row in its first
//! statement; every writer of an account writes that row, so the two
//! levels meet there (docs/central.md, "Isolation"). A transaction PostgreSQL refuses for
//! a serialization failure (40001) or a deadlock (40P01) runs again from
//! the start, with jittered exponential backoff, up to [`MAX_ATTEMPTS`]
//! times. Reads run at `SERIALIZABLE READ ONLY`: what `verify`, `export`
//! and a balance show is a state some serial order of the commits
//! produced (`REPEATABLE READ` could show a state no order produces — the
//! read-only anomaly).
//!
//! Closures run again after a conflict, so they keep no state across
//! attempts, and they never start another transaction (as on SQLite, whose
//! one connection is not re-entrant). A connection lost during `COMMIT`
//! leaves the outcome unknown: that is a [`DbError::Store`], and the till's
//! idempotency key makes its retry safe either way.

mod pool;
mod types;

use std::cell::RefCell;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use posbridge::ledger::db::{Db, DbError, Dialect, Finish, Mode, Row, Runner, ToValue};
use postgres::error::SqlState;
use postgres::types::ToSql;

pub use pool::PoolStats;
use pool::{Conn, Pool};
use types::{Cell, Param};

/// How many times a transaction runs before a conflict is given up on.
pub const MAX_ATTEMPTS: u32 = 20;
/// The first retry's backoff; it doubles with each retry.
pub const BACKOFF_START: Duration = Duration::from_millis(2);
/// The longest backoff between two attempts.
pub const BACKOFF_CAP: Duration = Duration::from_millis(200);
/// Conflicts after which a write's next attempts run alone among this
/// instance's writers. Exponential backoff alone is unfair on a hot row (a
/// house card many tills use at once): a loser sleeps longer and longer
/// while fresh transactions keep taking the row, and with `fsync` making
/// every commit slow it can lose twenty times running. Running alone, it
/// can only conflict with another instance's writers.
pub const ALONE_AFTER: u32 = 4;
/// Prepared statements kept per connection; the cache is cleared when
/// full (the core's statements are few; ad-hoc ones should not grow it
/// without bound).
pub const STATEMENT_CACHE: usize = 256;

/// How to reach PostgreSQL and how long to wait for it. Its `Debug` masks
/// the password.
#[derive(Clone)]
pub struct PgConfig {
    /// `postgres://user@host:port/db` or `host=/path/to/socket dbname=…`
    /// (libpq's forms). May hold a password: never logged.
    pub url: String,
    /// Connections at most.
    pub pool_size: usize,
    /// How long a transaction waits for a free connection.
    pub checkout_timeout: Duration,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// The server cancels a statement running longer than this.
    pub statement_timeout: Duration,
    /// The server ends a session idle inside a transaction this long (a
    /// stuck instance must not hold locks forever).
    pub idle_in_transaction_timeout: Duration,
    /// TCP keepalive idle time: a peer that vanished is noticed while we
    /// wait for an answer.
    pub keepalive_idle: Duration,
    /// Sent data unacknowledged this long breaks the connection
    /// (`TCP_USER_TIMEOUT`).
    pub tcp_user_timeout: Duration,
}

impl PgConfig {
    /// The defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        PgConfig {
            url: url.into(),
            pool_size: 16,
            checkout_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            idle_in_transaction_timeout: Duration::from_secs(60),
            keepalive_idle: Duration::from_secs(30),
            tcp_user_timeout: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &masked(&self.url))
            .field("pool_size", &self.pool_size)
            .field("checkout_timeout", &self.checkout_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field(
                "idle_in_transaction_timeout",
                &self.idle_in_transaction_timeout,
            )
            .field("keepalive_idle", &self.keepalive_idle)
            .field("tcp_user_timeout", &self.tcp_user_timeout)
            .finish()
    }
}

/// A connection string with its password (URL user info or `password=`)
/// replaced by `***`, for logs.
pub fn masked(url: &str) -> String {
    if let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    {
        let scheme = &url[..url.len() - rest.len()];
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@')
            && let Some(colon) = rest[..at].find(':')
        {
            return format!("{scheme}{}:***{}", &rest[..colon], &rest[at..]);
        }
        return url.to_owned();
    }
    // key=value form: mask the password's value, quoted or not.
    let Some(start) = url.find("password") else {
        return url.to_owned();
    };
    let after_key = &url[start + "password".len()..];
    let Some(eq) = after_key
        .find('=')
        .filter(|&i| after_key[..i].trim().is_empty())
    else {
        return url.to_owned();
    };
    let value = after_key[eq + 1..].trim_start();
    let value_start = url.len() - value.len();
    let value_len = if let Some(quoted) = value.strip_prefix('\'') {
        // Up to the closing quote (a backslash escapes one).
        let mut escaped = false;
        quoted
            .char_indices()
            .find(|&(_, c)| {
                let end = c == '\'' && !escaped;
                escaped = c == '\\' && !escaped;
                end
            })
            .map_or(value.len(), |(i, _)| i + 2)
    } else {
        value.find(char::is_whitespace).unwrap_or(value.len())
    };
    format!(
        "{}***{}",
        &url[..value_start],
        &url[value_start + value_len..]
    )
}

/// Why the books could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The connection string does not parse.
    #[error("invalid PostgreSQL connection string: {0}")]
    Config(String),
    /// The server could not be reached or refused a statement.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The schema could not be brought up to date.
    #[error(transparent)]
    Schema(#[from] crate::schema::SchemaError),
}

/// The central ledger's books: a [`Runner`] over a PostgreSQL pool.
#[derive(Clone)]
pub struct PgBooks {
    pool: Arc<Pool>,
    stats: Arc<Stats>,
    /// Writers hold it shared for an attempt; a writer that conflicted
    /// [`ALONE_AFTER`] times holds it exclusively (see there).
    lane: Arc<RwLock<()>>,
}

impl std::fmt::Debug for PgBooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBooks").finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Stats {
    retried: AtomicU64,
    gave_up: AtomicU64,
    alone: AtomicU64,
}

/// Counters of the serializable retries, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryStats {
    /// Attempts that conflicted and were run again.
    pub retried: u64,
    /// Transactions that still conflicted after [`MAX_ATTEMPTS`].
    pub gave_up: u64,
    /// Attempts run alone among this instance's writers ([`ALONE_AFTER`]).
    pub alone: u64,
}

impl PgBooks {
    /// Opens the pool and brings the schema up to date
    /// ([`crate::schema::migrate`]). Blocking.
    pub fn connect(config: &PgConfig) -> Result<PgBooks, PgError> {
        let books = PgBooks::connect_unmigrated(config)?;
        books.migrate()?;
        Ok(books)
    }

    /// Opens the pool without touching the schema. Connects once, so a
    /// wrong address is reported now rather than on the first request.
    pub fn connect_unmigrated(config: &PgConfig) -> Result<PgBooks, PgError> {
        let mut pg = postgres::Config::from_str(&config.url)
            // The parser's message names the bad part, never the password.
            .map_err(|e| PgError::Config(e.to_string()))?;
        pg.connect_timeout(config.connect_timeout)
            .keepalives(true)
            .keepalives_idle(config.keepalive_idle)
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3)
            .tcp_user_timeout(config.tcp_user_timeout);
        if pg.get_application_name().is_none() {
            pg.application_name("posbridge-central");
        }
        let session = format!(
            "SET statement_timeout = {}; SET idle_in_transaction_session_timeout = {}",
            config.statement_timeout.as_millis().max(1),
            config.idle_in_transaction_timeout.as_millis().max(1),
        );
        let pool = Pool::new(
            pg,
            session,
            config.pool_size.max(1),
            config.checkout_timeout,
        );
        // Fails fast on a wrong address or credential.
        drop(pool.get()?);
        Ok(PgBooks {
            pool: Arc::new(pool),
            stats: Arc::default(),
            lane: Arc::default(),
        })
    }

    /// Applies the migrations this binary has and the database lacks;
    /// returns the version found.
    pub fn migrate(&self) -> Result<i64, PgError> {
        let mut conn = self.pool.get()?;
        let found = crate::schema::migrate(&mut conn.client)?;
        // Statements prepared before a migration may describe old tables.
        conn.statements.clear();
        Ok(found)
    }

    /// The retry counters since the books were opened.
    pub fn retry_stats(&self) -> RetryStats {
        RetryStats {
            retried: self.stats.retried.load(Ordering::Relaxed),
            gave_up: self.stats.gave_up.load(Ordering::Relaxed),
            alone: self.stats.alone.load(Ordering::Relaxed),
        }
    }

    /// The pool's connections, open and idle.
    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }
}

impl Runner for PgBooks {
    fn transaction(
        &self,
        mode: Mode,
        f: &mut dyn FnMut(&dyn Db) -> Result<Finish, DbError>,
    ) -> Result<(), DbError> {
        let begin = match mode {
            Mode::Write => "BEGIN ISOLATION LEVEL SERIALIZABLE",
            // The closure locks the accounts it reads first (see
            // `Mode::WriteLocking`): serializable's page-granular predicate
            // locks on the per-account index ranges would only add
            // refusals between sales on different accounts.
            Mode::WriteLocking => "BEGIN ISOLATION LEVEL READ COMMITTED",
            Mode::Read => "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY",
        };
        let writes = mode != Mode::Read;
        let mut backoff = BACKOFF_START;
        for attempt in 1..=MAX_ATTEMPTS {
            let outcome = {
                // Taken before a connection, so an exclusive holder never
                // waits on connections held by writers queued behind it.
                // std's RwLock queues new readers behind a waiting writer.
                let alone = writes && attempt > ALONE_AFTER;
                let _shared =
                    (writes && !alone).then(|| self.lane.read().unwrap_or_else(|p| p.into_inner()));
                let _alone = alone.then(|| {
                    self.stats.alone.fetch_add(1, Ordering::Relaxed);
                    self.lane.write().unwrap_or_else(|p| p.into_inner())
                });
                let mut conn = self.pool.get()?;
                if conn.begin(begin).is_err() {
                    // A pooled connection the server closed while it sat
                    // idle (a restart): nothing ran, so one more try on a
                    // fresh one. The failed one is dropped, not pooled.
                    drop(conn);
                    conn = self.pool.get()?;
                    conn.begin(begin)?;
                }
                attempt_once(&mut conn, f)
            };
            match outcome {
                Ok(()) => return Ok(()),
                Err(DbError::Conflict(why)) if attempt == MAX_ATTEMPTS => {
                    self.stats.gave_up.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(attempts = MAX_ATTEMPTS, %why, "transaction gave up on conflicts");
                    return Err(DbError::Conflict(format!(
                        "still conflicting after {MAX_ATTEMPTS} attempts: {why}"
                    )));
                }
                Err(DbError::Conflict(_)) => {
                    self.stats.retried.fetch_add(1, Ordering::Relaxed);
                    // Connection released first: a sleeper holds nothing.
                    std::thread::sleep(jitter(backoff));
                    backoff = (backoff * 2).min(BACKOFF_CAP);
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the last attempt returns")
    }
}

/// A random duration in [d/2, d] ("equal jitter"): retries of transactions
/// that conflicted with each other spread out instead of colliding again.
fn jitter(d: Duration) -> Duration {
    // RandomState is seeded per process and stepped per instance: enough
    // randomness for spreading retries, without a dependency.
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let half = d / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(r % nanos.saturating_add(1))
}

/// One run of `f` in the transaction `conn` has begun. Conflicts come
/// back as [`DbError::Conflict`] for the caller to retry.
fn attempt_once(
    conn: &mut Conn,
    f: &mut dyn FnMut(&dyn Db) -> Result<Finish, DbError>,
) -> Result<(), DbError> {
    let db = PgDb {
        conn: RefCell::new(&mut *conn),
        failed: RefCell::new(None),
    };
    let result = f(&db);
    let failed = db.failed.into_inner();
    // After any failed statement PostgreSQL has aborted the transaction
    // (SQLite would have carried on): its first error is the answer, even
    // if the closure swallowed it. A COMMIT now would quietly roll back.
    let how = match (result, failed) {
        (_, Some(first)) => Err(first),
        (Err(e), None) => Err(e),
        (Ok(how), None) => Ok(how),
    };
    match how {
        Ok(Finish::Commit) => conn.end("COMMIT"),
        Ok(Finish::Rollback) => conn.end("ROLLBACK"),
        Err(e) => {
            // A rollback that fails leaves the connection broken (the pool
            // drops it); the closure's error is the one to report.
            let _ = conn.end("ROLLBACK");
            Err(e)
        }
    }
}

/// A PostgreSQL transaction as the ledger core's [`Db`].
struct PgDb<'a> {
    conn: RefCell<&'a mut Conn>,
    /// The first statement error: the transaction is aborted from then on.
    failed: RefCell<Option<DbError>>,
}

impl PgDb<'_> {
    fn run<T>(
        &self,
        sql: &str,
        params: &[&dyn ToValue],
        op: impl FnOnce(
            &mut postgres::Client,
            &postgres::Statement,
            &[&(dyn ToSql + Sync)],
        ) -> Result<T, postgres::Error>,
    ) -> Result<T, DbError> {
        let mut conn = self.conn.borrow_mut();
        let result = conn.statement(sql).and_then(|(client, stmt)| {
            let values: Vec<Param> = params.iter().map(|p| Param(p.to_value())).collect();
            let refs: Vec<&(dyn ToSql + Sync)> =
                values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
            op(client, &stmt, &refs)
        });
        result.map_err(|e| {
            let mapped = if stale_plan(&e) {
                // Another instance changed a table this connection had
                // prepared statements on (a rolling upgrade): prepare
                // afresh and run the transaction again; nothing of it
                // was committed.
                conn.statements.clear();
                DbError::Conflict("a prepared statement's table changed".into())
            } else {
                db_error(&e)
            };
            let mut failed = self.failed.borrow_mut();
            if failed.is_none() {
                *failed = Some(copy(&mapped));
            }
            mapped
        })
    }
}

impl Db for PgDb<'_> {
    fn execute(&self, sql: &str, params: &[&dyn ToValue]) -> Result<usize, DbError> {
        let n = self.run(sql, params, |c, s, p| c.execute(s, p))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn query(&self, sql: &str, params: &[&dyn ToValue]) -> Result<Vec<Row>, DbError> {
        let rows = self.run(sql, params, |c, s, p| c.query(s, p))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut values = Vec::with_capacity(r.len());
            for i in 0..r.len() {
                let cell: Cell = r.try_get(i).map_err(|e| {
                    // A column type the core does not read (a bug in a
                    // statement): the row is unusable, the transaction
                    // itself is fine.
                    DbError::Store(format!("column {i}: {e}"))
                })?;
                values.push(cell.0);
            }
            out.push(Row(values));
        }
        Ok(out)
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
}

/// PostgreSQL refusing a cached plan whose result columns changed since it
/// was prepared (0A000, "cached plan must not change result type").
fn stale_plan(e: &postgres::Error) -> bool {
    e.as_db_error().is_some_and(|d| {
        *d.code() == SqlState::FEATURE_NOT_SUPPORTED && d.message().contains("cached plan")
    })
}

/// The same error again, for the kinds [`db_error`] makes.
fn copy(e: &DbError) -> DbError {
    match e {
        DbError::Conflict(m) => DbError::Conflict(m.clone()),
        DbError::Constraint(m) => DbError::Constraint(m.clone()),
        other => DbError::Store(other.to_string()),
    }
}

/// Maps a driver error to the core's: conflicts (retried), constraint
/// violations, and the rest (including a lost connection) as store errors.
/// Only the server's message and constraint name are kept: its detail can
/// quote the row (a card number, a phone).
fn db_error(e: &postgres::Error) -> DbError {
    let Some(db) = e.as_db_error() else {
        // The driver's own errors put the useful part (which parameter did
        // not fit, what the socket said) in the source.
        let mut msg = format!("PostgreSQL: {e}");
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            msg.push_str(&format!(": {s}"));
            source = s.source();
        }
        return DbError::Store(msg);
    };
    let msg = db.message().to_owned();
    let code = db.code();
    if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED {
        DbError::Conflict(msg)
    } else if code.code().starts_with("23") {
        // Class 23: unique, check, foreign key, not null, exclusion.
        DbError::Constraint(msg)
    } else {
        DbError::Store(format!("PostgreSQL {}: {msg}", code.code()))
    }
}

impl Conn {
    /// The prepared statement for `sql` (`?N` rewritten to `$N`), cached.
    fn statement(
        &mut self,
        sql: &str,
    ) -> Result<(&mut postgres::Client, postgres::Statement), postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok((&mut self.client, s.clone()));
        }
        let stmt = self
            .client
            .prepare(&posbridge::ledger::db::dollar_placeholders(sql))?;
        if self.statements.len() >= STATEMENT_CACHE {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), stmt.clone());
        Ok((&mut self.client, stmt))
    }

    fn begin(&mut self, sql: &str) -> Result<(), DbError> {
        self.in_transaction = true;
        self.client.batch_execute(sql).map_err(|e| db_error(&e))
    }

    fn end(&mut self, sql: &str) -> Result<(), DbError> {
        let r = self.client.batch_execute(sql);
        // A COMMIT the server refused (a serialization failure found at
        // commit) still ended the transaction; only a lost answer leaves
        // the connection in doubt, and the pool drops it.
        if r.as_ref()
            .map_or_else(|e| e.as_db_error().is_some(), |_| true)
        {
            self.in_transaction = false;
        }
        r.map_err(|e| db_error(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use posbridge::ledger::db::{Books, Value, args};
    use posbridge_pgtest::Cluster;

    #[test]
    fn passwords_are_masked() {
        for (url, want) in [
            (
                "postgres://ledger:s3cret@db:5432/chain",
                "postgres://ledger:***@db:5432/chain",
            ),
            (
                "postgresql://ledger@db/chain",
                "postgresql://ledger@db/chain",
            ),
            ("postgres://a:b@c@db/x", "postgres://a:***@db/x"),
            (
                "host=/run/pg dbname=chain password=s3cret user=l",
                "host=/run/pg dbname=chain password=*** user=l",
            ),
            (
                "host=db password = 'a \\' b' user=l",
                "host=db password = *** user=l",
            ),
            ("host=/run/pg dbname=chain", "host=/run/pg dbname=chain"),
        ] {
            assert_eq!(masked(url), want);
        }
        let debug = format!("{:?}", PgConfig::new("postgres://u:s3cret@h/d"));
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    #[test]
    fn statements_are_cached_per_connection_within_bounds_and_survive_table_changes() {
        let cluster = Cluster::shared().unwrap();
        let url = cluster.createdb("statement_cache").unwrap();
        let mut config = PgConfig::new(url);
        config.pool_size = 1;
        let pg = PgBooks::connect(&config).unwrap();
        let books = Books::new(Arc::new(pg.clone()));
        let cached = || pg.pool.get().unwrap().statements.len();
        books
            .write_blocking(|db| {
                db.execute("CREATE TABLE t (a BIGINT)", args![])?;
                db.execute("INSERT INTO t VALUES (1)", args![])?;
                Ok(Ok::<_, ()>(()))
            })
            .unwrap()
            .unwrap();
        let before = cached();
        // The same text twice is prepared once.
        for _ in 0..2 {
            books
                .read_blocking(|db| db.query("SELECT * FROM t WHERE a = ?1", args![1]))
                .unwrap();
        }
        assert_eq!(cached(), before + 1);
        // Distinct statements beyond the bound: the cache is cleared, not grown.
        books
            .read_blocking(|db| {
                for i in 0..STATEMENT_CACHE + 10 {
                    db.query(&format!("SELECT {i}"), args![])?;
                }
                Ok(())
            })
            .unwrap();
        assert!(cached() <= STATEMENT_CACHE, "{}", cached());

        // A cached `SELECT *` whose table gains a column elsewhere: the
        // server refuses the stale plan once, the runner prepares afresh.
        let rows = || {
            books
                .read_blocking(|db| db.query("SELECT * FROM t", args![]))
                .unwrap()
        };
        assert_eq!(rows()[0].0.len(), 1);
        let mut other = cluster.connect("statement_cache").unwrap();
        other
            .batch_execute("ALTER TABLE t ADD COLUMN b TEXT DEFAULT 'x'")
            .unwrap();
        drop(other);
        let now = rows();
        assert_eq!(now[0].0, [Value::Int(1), Value::Text("x".into())]);
        assert_eq!(pg.retry_stats().retried, 1);
    }
}
