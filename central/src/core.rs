//! The ledger core as the service sees it: the chain's books (PostgreSQL),
//! a ledger per request acting for the authenticated till, verify, export
//! and the daily tier run. The rules and book-keeping are the till's own
//! (`posbridge::ledger`): one core, two stores.
//!
//! `url = "sqlite:PATH"` opens the embedded SQLite books instead: for
//! trying the service on one machine without PostgreSQL, never for a chain
//! (one file, one writer, one instance).

use std::io::Write;
use std::sync::Arc;

use posbridge::args;
use posbridge::cli::ledger::ExportFormat;
use posbridge::ledger::db::Books;
use posbridge::ledger::embedded;
use posbridge::ledger::local::Local;
use posbridge::ledger::origin::Origin;
use posbridge::ledger::programmes::ProgrammeError;
use posbridge::ledger::rules::Programme;
use posbridge::ledger::tiers::{TierError, Tiers};
use posbridge::store::Store;
use time::OffsetDateTime;

use crate::config::LedgerSection;
use crate::pg::{PgBooks, PgConfig, PgError};

pub use posbridge::ledger::wire::WireError;

/// Why the books could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The connection string names no store this build can open.
    #[error("database.url: {0}")]
    Url(String),
    /// PostgreSQL could not be reached, or its schema is newer than us.
    #[error(transparent)]
    Pg(#[from] PgError),
    /// The embedded store failed.
    #[error(transparent)]
    Store(#[from] posbridge::store::StoreError),
    /// The books failed.
    #[error(transparent)]
    Db(#[from] posbridge::ledger::db::DbError),
    /// Tier evaluation failed.
    #[error(transparent)]
    Tiers(#[from] TierError),
    /// The birthday run failed (the books, or the programme's dates).
    #[error(transparent)]
    Ledger(#[from] posbridge::ledger::LedgerError),
    /// The programmes' tables do not hold together.
    #[error("[ledger] programmes: {0}")]
    Programmes(#[from] posbridge::ledger::programmes::ProgrammeError),
}

/// The principals' tables on the SQLite stand-in, as the PostgreSQL
/// schema (migration 1) declares them.
const SQLITE_PRINCIPALS: &str = "
CREATE TABLE IF NOT EXISTS stores (id TEXT PRIMARY KEY, name TEXT, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS terminals (
    id TEXT PRIMARY KEY,
    store_id TEXT NOT NULL REFERENCES stores(id),
    key_hash TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    created_at TEXT NOT NULL,
    revoked_at TEXT
);";

/// The chain's books and the programme they run.
pub struct Core {
    books: Books,
    postgres: bool,
    /// The PostgreSQL books themselves, for their counters (`None` on the
    /// SQLite stand-in).
    pg: Option<PgBooks>,
    programme: Arc<Programme>,
    ledger: Local,
}

impl Core {
    /// Opens the books at `url` (migrating PostgreSQL's schema) with a pool
    /// of `pool_size` connections. Blocking.
    pub fn open(url: &str, pool_size: usize, ledger: &LedgerSection) -> Result<Core, CoreError> {
        let (books, pg) = if let Some(path) = url.strip_prefix("sqlite:") {
            let store = Store::open(std::path::Path::new(path))?;
            let books = Books::sqlite(store);
            let Ok(()) = books.write_blocking(|db| {
                for stmt in SQLITE_PRINCIPALS
                    .split(';')
                    .filter(|s| !s.trim().is_empty())
                {
                    db.execute(stmt, args![])?;
                }
                Ok(Ok::<_, std::convert::Infallible>(()))
            })?;
            (books, None)
        } else if url.starts_with("postgres") || url.contains("host=") || url.contains("dbname=") {
            let mut config = PgConfig::new(url);
            config.pool_size = pool_size.max(1);
            let pg = PgBooks::connect(&config)?;
            (Books::new(Arc::new(pg.clone())), Some(pg))
        } else {
            return Err(CoreError::Url(
                "expected postgres://… (or host=… dbname=…), or sqlite:PATH for a trial".into(),
            ));
        };
        let settings = posbridge::app::account_settings(&ledger.registration, &ledger.redemption);
        let programmes = ledger.programme_set()?;
        let local = Local::with_books(books.clone(), programmes, settings, Origin::default());
        Ok(Core {
            books,
            postgres: pg.is_some(),
            pg,
            programme: Arc::new(ledger.programme.clone()),
            ledger: local,
        })
    }

    /// The books (principals, health).
    pub fn books(&self) -> &Books {
        &self.books
    }

    /// The programme in force.
    pub fn programme(&self) -> &Programme {
        &self.programme
    }

    /// The PostgreSQL books' retry counters and pool, since this process
    /// opened them (`None` on the SQLite stand-in).
    pub fn pg_stats(&self) -> Option<(crate::pg::RetryStats, crate::pg::PoolStats)> {
        self.pg
            .as_ref()
            .map(|pg| (pg.retry_stats(), pg.pool_stats()))
    }

    /// Whether the books are on PostgreSQL (the daily job's lock needs it).
    pub fn is_postgres(&self) -> bool {
        self.postgres
    }

    /// The chain's ledger as the back office uses it: changes made there
    /// record no store or till.
    pub fn ledger(&self) -> Arc<dyn posbridge::ledger::Ledger> {
        Arc::new(self.ledger.with_origin(Origin::default()))
    }

    /// The ledger for one request, recording `origin` on what it writes.
    pub fn with_origin(&self, origin: Origin) -> Local {
        self.ledger.with_origin(origin)
    }

    /// [`Core::with_origin`] serving only the programmes a till names
    /// (`served`, its own first; empty: the default one). A name the
    /// chain does not have is refused.
    pub fn for_till(&self, origin: Origin, served: &[String]) -> Result<Local, ProgrammeError> {
        let local = self.ledger.with_origin(origin);
        if served.is_empty() {
            return Ok(local);
        }
        let programmes = local.programmes().serving(served)?;
        Ok(local.with_served(programmes))
    }

    /// The invariants `posbridge ledger verify` checks; the violations.
    pub async fn verify(&self) -> Result<Vec<String>, CoreError> {
        Ok(self.books.read(|db| embedded::verify(db)).await?)
    }

    /// Every transaction with its entries to `sink`.
    pub async fn export(
        &self,
        format: ExportFormat,
        sink: Box<dyn Write + Send>,
    ) -> Result<std::io::Result<()>, CoreError> {
        let mut sink = Some(sink);
        Ok(self
            .books
            .read(move |db| match sink.take() {
                Some(s) => Ok(posbridge::cli::ledger::write_rows(db, format, s)),
                None => Err(posbridge::ledger::db::DbError::Invariant(
                    "export ran twice",
                )),
            })
            .await?)
    }

    /// Posts every account's expiries due at `now` (the daily sweep), in
    /// batches of accounts; how many accounts burned points.
    pub async fn expire_all(&self, now: OffsetDateTime) -> Result<usize, CoreError> {
        let ledger = embedded::Embedded::with_books(
            self.books.clone(),
            (*self.programme).clone(),
            Origin::default(),
        );
        Ok(ledger.expire_all(now).await?)
    }

    /// Credits the birthday bonuses due at `now` (the daily job's second
    /// step): how many accounts were credited. Once per account and year,
    /// also when two instances race (the bonus's key is unique).
    pub async fn birthday_run(&self, now: OffsetDateTime) -> Result<usize, CoreError> {
        use posbridge::ledger::Ledger as _;
        Ok(self.ledger.birthday_run(now).await?.credited)
    }

    /// Re-evaluates every account's tier at `now`: (accounts, changes).
    /// `None` when the programme has no tiers.
    pub async fn evaluate_tiers(
        &self,
        now: OffsetDateTime,
    ) -> Result<Option<(usize, usize)>, CoreError> {
        // Each programme's accounts by its own levels.
        match Tiers::with_books(self.books.clone())
            .evaluate_in(self.ledger.programmes().clone(), None, now, "daily", |_| {})
            .await
        {
            Ok((n, ch)) => Ok(Some((n, ch.len()))),
            Err(TierError::NotConfigured) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
