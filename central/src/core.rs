//! The ledger core as the service sees it: books, a ledger per request,
//! the wire dispatch, verify, export and the daily tier run.
//!
//! MERGE: this module is a stand-in until the `wire`, `port-core` and `pg`
//! branches land. Then `Core::open` builds `PgBooks` from the URL,
//! `Core::with_origin` returns `posbridge::ledger::local::Local::with_origin`,
//! [`dispatch`] and [`WireError`] become `posbridge::ledger::wire`'s, and
//! verify/export take `&dyn Db`. Until then it runs on the embedded SQLite
//! books (`url = "sqlite:/path"`), dispatches a few methods, and ignores
//! the origin (the SQLite core records its own terminal).

use std::io::Write;
use std::sync::Arc;

use posbridge::args;
use posbridge::cli::ledger::ExportFormat;
use posbridge::ledger::db::Books;
use posbridge::ledger::embedded::{self, Embedded, LedgerError};
use posbridge::ledger::origin::Origin;
use posbridge::ledger::rules::{Programme, SaleLine};
use posbridge::ledger::tiers::{TierError, Tiers};
use posbridge::store::Store;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::config::LedgerSection;

/// A failed call, as the wire carries it: HTTP status and the till's own
/// JSON-RPC error code.
#[derive(Debug, Clone, PartialEq)]
pub struct WireError {
    /// HTTP status.
    pub status: u16,
    /// JSON-RPC error code (the till's table).
    pub code: i64,
    /// For humans.
    pub message: String,
    /// For programs; `null` when there is nothing to add.
    pub data: Value,
}

/// Why the books could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The connection string names no store this build can open.
    #[error("database.url: {0}")]
    Url(String),
    /// The embedded store failed.
    #[error(transparent)]
    Store(#[from] posbridge::store::StoreError),
    /// The books failed.
    #[error(transparent)]
    Db(#[from] posbridge::ledger::db::DbError),
    /// Tier evaluation failed.
    #[error(transparent)]
    Tiers(#[from] TierError),
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
    store: Store,
    books: Books,
    programme: Arc<Programme>,
}

impl Core {
    /// Opens the books at `url` and brings their schema up to date.
    pub fn open(url: &str, _pool_size: usize, ledger: &LedgerSection) -> Result<Core, CoreError> {
        let Some(path) = url.strip_prefix("sqlite:") else {
            return Err(CoreError::Url(
                "this build serves only sqlite:PATH until the PostgreSQL store is merged".into(),
            ));
        };
        let store = Store::open(std::path::Path::new(path))?;
        let books = Books::sqlite(store.clone());
        let Ok(()) = books.write_blocking(|db| {
            for stmt in SQLITE_PRINCIPALS
                .split(';')
                .filter(|s| !s.trim().is_empty())
            {
                db.execute(stmt, args![])?;
            }
            Ok(Ok::<_, std::convert::Infallible>(()))
        })?;
        Ok(Core {
            store,
            books,
            programme: Arc::new(ledger.programme.clone()),
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

    /// Whether the books are on PostgreSQL (the daily job's lock needs it).
    pub fn is_postgres(&self) -> bool {
        false
    }

    /// The ledger for one request, recording `origin` on what it writes.
    pub fn with_origin(&self, origin: Origin) -> OriginLedger {
        OriginLedger {
            ledger: Embedded::new(self.store.clone(), (*self.programme).clone()),
            _origin: origin,
        }
    }

    /// The invariants `posbridge ledger verify` checks; the violations.
    pub async fn verify(&self) -> Result<Vec<String>, CoreError> {
        Ok(self.store.with(|c| embedded::verify(c)).await?)
    }

    /// Every transaction with its entries to `sink`.
    pub async fn export(
        &self,
        format: ExportFormat,
        sink: Box<dyn Write + Send>,
    ) -> Result<std::io::Result<()>, CoreError> {
        Ok(self
            .store
            .with(move |c| Ok(posbridge::cli::ledger::write_rows(c, format, sink)))
            .await?)
    }

    /// Re-evaluates every account's tier at `now`: (accounts, changes).
    /// `None` when the programme has no tiers.
    pub async fn evaluate_tiers(
        &self,
        now: OffsetDateTime,
    ) -> Result<Option<(usize, usize)>, CoreError> {
        match Tiers::new(self.store.clone())
            .evaluate(self.programme.clone(), None, now, "daily", |_| {})
            .await
        {
            Ok((n, ch)) => Ok(Some((n, ch.len()))),
            Err(TierError::NotConfigured) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// A ledger acting for one terminal (stands for `Local::with_origin`).
pub struct OriginLedger {
    ledger: Embedded,
    _origin: Origin,
}

fn args<T: DeserializeOwned>(v: Value) -> Result<T, WireError> {
    serde_json::from_value(v).map_err(|e| WireError {
        status: 400,
        code: -32602,
        message: format!("invalid arguments: {e}"),
        data: Value::Null,
    })
}

fn ledger_error(e: LedgerError) -> WireError {
    let (status, code) = match &e {
        LedgerError::Rules(_) => (400, -32602),
        LedgerError::UnknownCard | LedgerError::UnknownAccount => (404, 2001),
        LedgerError::Inactive(_) => (409, 2002),
        LedgerError::KeyReused => (409, 2005),
        LedgerError::UnknownSale => (404, 2006),
        LedgerError::InsufficientBalance { .. } => (409, 2007),
        LedgerError::Store(_) => (500, -32603),
    };
    WireError {
        status,
        code,
        message: e.to_string(),
        data: Value::Null,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveArgs {
    number: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitArgs {
    key: String,
    number: String,
    receipt_id: String,
    lines: Vec<SaleLine>,
    redeem: Decimal,
}

/// Runs `method` with `args` on `ledger` (stands for
/// `posbridge::ledger::wire::dispatch`; only `resolve` and `commit`).
pub async fn dispatch(ledger: &OriginLedger, method: &str, a: Value) -> Result<Value, WireError> {
    let l = &ledger.ledger;
    let out = match method {
        "resolve" => {
            let a: ResolveArgs = args(a)?;
            json!(l.resolve(a.number).await.map_err(ledger_error)?)
        }
        "commit" => {
            let a: CommitArgs = args(a)?;
            json!(
                l.commit(a.key, a.number, a.receipt_id, a.lines, a.redeem)
                    .await
                    .map_err(ledger_error)?
            )
        }
        _ => {
            return Err(WireError {
                status: 404,
                code: -32601,
                message: format!("no method \"{method}\""),
                data: Value::Null,
            });
        }
    };
    Ok(out)
}
