//! `posbridge-central import`: one till's embedded ledger (its SQLite
//! file) into the chain's central ledger.
//!
//! The whole file goes in one PostgreSQL transaction (the books' own
//! serializable write): either every row of the till is imported or none
//! is, so there is no half-import to resume. The central ledger gives every
//! row a new id from its sequences; `imports` records which central id each
//! till id became, so a second run of the same file finds the till done
//! and changes nothing, and a second till's ids never collide with the
//! first's. Idempotency keys become `"{terminal}:{key}"`, as the service
//! prefixes a live till's keys, so a sale the till retries after the move
//! replays instead of applying twice.
//!
//! Before writing anything the import looks for conflicts (a card number,
//! phone, e-mail or key the chain already has, a store or terminal that does
//! not exist, a file that changed since it was imported) and refuses the
//! whole import if there is one; `--dry-run` lists them with the counts.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use posbridge::args;
use posbridge::ledger::db::{Books, Db, DbError, Row, SqliteDb, ToValue, Value};
use posbridge::redact::CardNumber;
use rusqlite::{Connection, OpenFlags};

/// Why an import could not run (conflicts are not errors: see [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The till's file could not be opened or read.
    #[error("{path}: {source}")]
    Sqlite {
        /// The file.
        path: String,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The file's schema is not the one this build reads.
    #[error(
        "{path}: schema version {found}, this build imports version {known} \
         (start the till's posbridge of this release on it once to migrate it)"
    )]
    Version {
        /// The file.
        path: String,
        /// Its `user_version`.
        found: i64,
        /// What this build reads.
        known: i64,
    },
    /// The file has no terminal id in its `meta` table.
    #[error("{0}: no terminal_id in its meta table: not a till's database")]
    NoTerminal(String),
    /// Reading the file or writing the central books failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Where the imported till goes in the chain.
#[derive(Debug, Clone)]
pub struct Target {
    /// The store its transactions record.
    pub store: String,
    /// The terminal its transactions record and its keys are prefixed
    /// with: the id the till will use in central mode. `None`: the till's
    /// own terminal id from its file.
    pub terminal: Option<String>,
}

/// One table of the till: what is copied of it.
struct Table {
    name: &'static str,
    /// The columns copied, in order; the first is the id where `kind` is set.
    columns: &'static [&'static str],
    /// The mapping kind of its id (`None`: the table has no id of its own).
    kind: Option<&'static str>,
}

/// Rows read from the till's file at a time: the file is streamed, never
/// held whole in memory.
const PAGE: usize = 1000;

/// Conflicts listed at most; the rest are counted.
const MAX_LISTED: usize = 100;

/// The tables in the order their references need, with the columns copied.
const TABLES: &[Table] = &[
    Table {
        name: "accounts",
        columns: &[
            "id",
            "status",
            "accrual_pct",
            "cap_pct",
            "created_at",
            "name",
            "phone",
            "email",
            "code_word_hash",
            "debt",
            "category_overrides",
            "tier",
            "tier_since",
            "code_word_failed",
            "code_word_locked_until",
        ],
        kind: Some("account"),
    },
    Table {
        name: "groups",
        columns: &["name", "description", "created_at"],
        kind: None,
    },
    Table {
        name: "account_groups",
        columns: &["account_id", "group_name"],
        kind: None,
    },
    Table {
        name: "cards",
        columns: &[
            "number",
            "account_id",
            "status",
            "kind",
            "secret_hash",
            "failed_attempts",
            "locked_until",
        ],
        kind: None,
    },
    Table {
        name: "confirmations",
        columns: &[
            "account_id",
            "code_hash",
            "expires_at",
            "attempts",
            "sent_at",
        ],
        kind: None,
    },
    Table {
        name: "redeem_codes",
        columns: &[
            "account_id",
            "code_hash",
            "expires_at",
            "attempts",
            "sent_at",
        ],
        kind: None,
    },
    Table {
        name: "tier_changes",
        columns: &[
            "id",
            "account_id",
            "from_tier",
            "to_tier",
            "reason",
            "source",
            "created_at",
        ],
        kind: Some("tier_change"),
    },
    Table {
        name: "txns",
        columns: &[
            "id",
            "idempotency_key",
            "kind",
            "account_id",
            "receipt_id",
            "request",
            "result",
            "created_at",
            "cashier",
        ],
        kind: Some("txn"),
    },
    Table {
        name: "lots",
        columns: &[
            "id",
            "account_id",
            "txn_id",
            "amount",
            "remaining",
            "expires_at",
            "created_at",
            "available_at",
        ],
        kind: Some("lot"),
    },
    Table {
        name: "entries",
        columns: &[
            "id",
            "txn_id",
            "account_id",
            "lot_id",
            "kind",
            "amount",
            "created_at",
        ],
        kind: Some("entry"),
    },
];

/// A till's ledger file, open read-only in one read transaction (one
/// snapshot, should anything still write to it), read page by page.
pub struct Source {
    /// The till's terminal id (its `meta` table): the import's `source`.
    pub terminal: String,
    conn: Connection,
}

impl Source {
    /// Opens the till's database at `path` read-only, after checking its
    /// schema version is the one this build knows.
    pub fn read(path: &Path) -> Result<Source, ImportError> {
        let shown = path.display().to_string();
        let err = |source| ImportError::Sqlite {
            path: shown.clone(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        // Held until the Source is dropped: every page reads one snapshot.
        conn.execute_batch("BEGIN").map_err(err)?;
        let found: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        let known = posbridge::store::schema_version();
        if found != known {
            return Err(ImportError::Version {
                path: shown,
                found,
                known,
            });
        }
        let terminal: Option<String> = (&SqliteDb(&conn) as &dyn Db).query_opt(
            "SELECT value FROM meta WHERE key = 'terminal_id'",
            args![],
            |r| r.get(0),
        )?;
        let terminal = terminal.ok_or_else(|| ImportError::NoTerminal(shown.clone()))?;
        Ok(Source { terminal, conn })
    }

    /// The rows of `table`.
    fn count(&self, table: &Table) -> Result<i64, DbError> {
        (&SqliteDb(&self.conn) as &dyn Db).query_row(
            &format!("SELECT COUNT(*) FROM {}", table.name),
            args![],
            |r| r.get(0),
        )
    }

    /// Calls `f` with every row of `table` in rowid (for tables with an
    /// integer id: id) order, [`PAGE`] rows read at a time.
    fn each(
        &self,
        table: &Table,
        mut f: impl FnMut(&Row) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        let db = SqliteDb(&self.conn);
        let sql = format!(
            "SELECT rowid, {} FROM {} WHERE rowid > ?1 ORDER BY rowid LIMIT {PAGE}",
            table.columns.join(", "),
            table.name
        );
        let mut after = i64::MIN;
        loop {
            let page = db.query(&sql, args![after])?;
            for mut row in page.iter().cloned() {
                after = row.get(0)?;
                row.0.remove(0);
                f(&row)?;
            }
            if page.len() < PAGE {
                return Ok(());
            }
        }
    }
}

fn table(name: &str) -> &'static Table {
    TABLES
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| unreachable!("table {name} is in TABLES"))
}

/// Conflicts found: the first [`MAX_LISTED`] and how many in all.
#[derive(Default)]
struct Found {
    listed: Vec<String>,
    total: usize,
}

impl Found {
    fn push(&mut self, conflict: String) {
        self.total += 1;
        if self.listed.len() < MAX_LISTED {
            self.listed.push(conflict);
        }
    }

    fn into_list(mut self) -> Vec<String> {
        if self.total > self.listed.len() {
            let more = self.total - self.listed.len();
            self.listed.push(format!("… and {more} more"));
        }
        self.listed
    }
}

/// What an import found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The till's terminal id.
    pub source: String,
    /// Per table: (name, rows in the file, rows imported or to import).
    pub tables: Vec<(&'static str, usize, usize)>,
    /// Why the import cannot run; empty when it can.
    pub conflicts: Vec<String>,
    /// The file was imported before: nothing to do.
    pub already: bool,
    /// The rows were written (a real run without conflicts).
    pub written: bool,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "source terminal {}", self.source)?;
        writeln!(f, "table\tin_file\timported")?;
        for (name, file, new) in &self.tables {
            writeln!(f, "{name}\t{file}\t{new}")?;
        }
        for c in &self.conflicts {
            writeln!(f, "conflict: {c}")?;
        }
        Ok(())
    }
}

/// Imports `source` into `books` as `target`; with `dry_run`, or when there
/// are conflicts, writes nothing. Blocking: call from a blocking thread.
pub fn run(
    books: &Books,
    source: &Source,
    target: &Target,
    dry_run: bool,
) -> Result<Report, ImportError> {
    let outcome = books.write_blocking(|db| {
        let report = plan(db, source, target)?;
        if dry_run || report.already || !report.conflicts.is_empty() {
            // Rolled back: nothing written.
            return Ok(Err(report));
        }
        apply(db, source, target)?;
        // The rows came in as the till had them; the imported accounts'
        // maintained balance and next expiry are summed once here.
        db.execute(
            "UPDATE accounts SET
                balance = (SELECT COALESCE(SUM(amount), 0) FROM entries e
                           WHERE e.account_id = accounts.id),
                next_expiry = (SELECT MIN(expires_at) FROM lots l
                               WHERE l.account_id = accounts.id AND l.remaining > 0)
             WHERE id IN (SELECT new_id FROM imports WHERE source = ?1 AND kind = 'account')",
            args![source.terminal],
        )?;
        Ok(Ok(Report {
            written: true,
            ..report
        }))
    })?;
    Ok(outcome.unwrap_or_else(|report| report))
}

/// Counts and conflicts, read in the import's own transaction.
fn plan(db: &dyn Db, source: &Source, target: &Target) -> Result<Report, DbError> {
    let mut found = Found::default();
    let done: HashMap<String, i64> = db
        .query_map(
            "SELECT kind, COUNT(*) FROM imports WHERE source = ?1 GROUP BY kind",
            args![source.terminal],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .into_iter()
        .collect();
    let already = !done.is_empty();
    let mut tables = Vec::new();
    for t in TABLES {
        let rows = source.count(t)?;
        if already && let Some(kind) = t.kind {
            // Imported whole (one transaction), so a row the mapping lacks
            // is one the till wrote after the import: importing it alone
            // would leave balances that disagree with the entries in.
            let had = done.get(kind).copied().unwrap_or(0);
            if had != rows {
                found.push(format!(
                    "the file changed since terminal {} was imported: {} has {rows} row(s), {had} imported",
                    source.terminal, t.name,
                ));
            }
        }
        let rows = usize::try_from(rows).unwrap_or(0);
        tables.push((t.name, rows, if already { 0 } else { rows }));
    }
    if !already {
        target_conflicts(db, target, &mut found)?;
        row_conflicts(db, source, target, &mut found)?;
    }
    Ok(Report {
        source: source.terminal.clone(),
        tables,
        conflicts: found.into_list(),
        already,
        written: false,
    })
}

fn target_conflicts(db: &dyn Db, target: &Target, found: &mut Found) -> Result<(), DbError> {
    let store: Option<String> = db.query_opt(
        "SELECT id FROM stores WHERE id = ?1",
        args![target.store],
        |r| r.get(0),
    )?;
    if store.is_none() {
        found.push(format!(
            "no store \"{}\" (posbridge-central store add)",
            target.store
        ));
    }
    if let Some(t) = &target.terminal {
        let of: Option<String> = db.query_opt(
            "SELECT store_id FROM terminals WHERE id = ?1",
            args![t],
            |r| r.get(0),
        )?;
        match of {
            None => found.push(format!(
                "no terminal \"{t}\" (posbridge-central terminal add)"
            )),
            Some(s) if s != target.store => found.push(format!(
                "terminal \"{t}\" belongs to store \"{s}\", not \"{}\"",
                target.store
            )),
            Some(_) => {}
        }
    }
    Ok(())
}

/// Rows whose natural keys the chain already holds.
fn row_conflicts(
    db: &dyn Db,
    source: &Source,
    target: &Target,
    found: &mut Found,
) -> Result<(), DbError> {
    source.each(table("cards"), |row| {
        let number: String = row.get(0)?;
        let account: i64 = row.get(1)?;
        let central: Option<i64> = db.query_opt(
            "SELECT account_id FROM cards WHERE number = ?1",
            args![number],
            |r| r.get(0),
        )?;
        if let Some(c) = central {
            found.push(format!(
                "card {} of till account {account} already belongs to central account {c}",
                CardNumber::new(number).masked()
            ));
        }
        Ok(())
    })?;
    source.each(table("accounts"), |row| {
        let account: i64 = row.get(0)?;
        for (col, what) in [(6, "phone"), (7, "email")] {
            let Some(value) = row.get::<Option<String>>(col)? else {
                continue;
            };
            let central: Option<i64> = db.query_opt(
                &format!("SELECT id FROM accounts WHERE {what} = ?1"),
                args![value],
                |r| r.get(0),
            )?;
            if let Some(c) = central {
                found.push(format!(
                    "the {what} of till account {account} is already central account {c}'s"
                ));
            }
        }
        Ok(())
    })?;
    let prefix = prefix(source, target);
    source.each(table("txns"), |row| {
        let key: String = row.get(1)?;
        let key = format!("{prefix}:{key}");
        let central: Option<i64> = db.query_opt(
            "SELECT id FROM txns WHERE idempotency_key = ?1",
            args![key],
            |r| r.get(0),
        )?;
        if let Some(c) = central {
            found.push(format!(
                "idempotency key {key} is already central transaction {c}'s"
            ));
        }
        Ok(())
    })
}

fn prefix<'a>(source: &'a Source, target: &'a Target) -> &'a str {
    target.terminal.as_deref().unwrap_or(&source.terminal)
}

/// Till ids to central ids, by kind, recorded in `imports` as they are
/// made; kept in memory too for the kinds later rows refer to.
struct Ids<'a> {
    db: &'a dyn Db,
    source: &'a str,
    map: HashMap<(&'static str, i64), i64>,
}

impl Ids<'_> {
    fn record(&mut self, kind: &'static str, old: i64, new: i64) -> Result<(), DbError> {
        self.db.execute(
            "INSERT INTO imports (source, kind, old_id, new_id) VALUES (?1, ?2, ?3, ?4)",
            args![self.source, kind, old, new],
        )?;
        // Nothing refers to an entry or a tier change.
        if !matches!(kind, "entry" | "tier_change") {
            self.map.insert((kind, old), new);
        }
        Ok(())
    }

    /// The central id of till id `v` (NULL stays NULL).
    fn get(&self, kind: &'static str, v: &Value) -> Result<Value, DbError> {
        match v {
            Value::Null => Ok(Value::Null),
            Value::Int(old) => {
                self.map
                    .get(&(kind, *old))
                    .map(|&n| Value::Int(n))
                    .ok_or(DbError::Invariant(
                        "the till's file refers to a row it does not have",
                    ))
            }
            _ => Err(DbError::Invariant("an id column that is not an integer")),
        }
    }

    fn id(&self, kind: &'static str, old: i64) -> Option<i64> {
        self.map.get(&(kind, old)).copied()
    }
}

/// Writes every table of `source`; the caller's transaction commits.
fn apply(db: &dyn Db, source: &Source, target: &Target) -> Result<(), DbError> {
    let mut ids = Ids {
        db,
        source: &source.terminal,
        map: HashMap::new(),
    };
    let prefix = prefix(source, target).to_owned();
    for table in TABLES {
        // The central sequence gives the id: it is not copied.
        let skip = usize::from(table.kind.is_some());
        let mut columns: Vec<&str> = table.columns[skip..].to_vec();
        if table.name == "txns" {
            columns.extend(["store_id", "terminal_id"]);
        }
        let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            table.name,
            columns.join(", "),
            marks.join(", ")
        );
        match table.kind {
            Some(_) => sql.push_str(" RETURNING id"),
            // A group of the same name the chain has already is the same
            // group; everything else is new (checked).
            None if table.name == "groups" => sql.push_str(" ON CONFLICT (name) DO NOTHING"),
            None => {}
        }
        source.each(table, |row| {
            let mut values = row.0.clone();
            remap(table.name, &mut values, &ids, &prefix)?;
            let mut values = values.split_off(skip);
            if table.name == "txns" {
                values.push(Value::Text(target.store.clone()));
                values.push(Value::Text(prefix.clone()));
            }
            let params: Vec<&dyn ToValue> = values.iter().map(|v| v as &dyn ToValue).collect();
            let Some(kind) = table.kind else {
                db.execute(&sql, &params)?;
                return Ok(());
            };
            let new = db.insert(&sql, &params)?;
            ids.record(kind, row.get(0)?, new)?;
            // The back office's search index, as the ledger writes it
            // with every account (the till's own index is not copied).
            if table.name == "accounts" {
                posbridge::ledger::accounts::words::reindex(db, new)?;
            }
            // The result names this transaction itself: rewritten once its
            // central id is known.
            if table.name == "txns"
                && let Value::Text(result) = &row.0[6]
                && let Some(changed) = rewrite_json(result, &ids)
            {
                db.execute(
                    "UPDATE txns SET result = ?1 WHERE id = ?2",
                    args![changed, new],
                )?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// Rewrites one row's references to central ids (and keys to the
/// terminal's), before its insert.
fn remap(table: &str, v: &mut [Value], ids: &Ids<'_>, prefix: &str) -> Result<(), DbError> {
    match table {
        "account_groups" | "confirmations" | "redeem_codes" => v[0] = ids.get("account", &v[0])?,
        "cards" => v[1] = ids.get("account", &v[1])?,
        "tier_changes" => v[1] = ids.get("account", &v[1])?,
        "txns" => {
            if let Value::Text(k) = &v[1] {
                v[1] = Value::Text(format!("{prefix}:{k}"));
            }
            v[3] = ids.get("account", &v[3])?;
            // A refund names its sale by transaction id.
            if let Value::Text(r) = &v[4]
                && let Some(old) = r
                    .strip_prefix("refund-of:")
                    .and_then(|s| s.parse::<i64>().ok())
                && let Some(new) = ids.id("txn", old)
            {
                v[4] = Value::Text(format!("refund-of:{new}"));
            }
            // The request now; the result (which names this transaction
            // itself) once its central id is known.
            if let Value::Text(text) = &v[5]
                && let Some(changed) = rewrite_json(text, ids)
            {
                v[5] = Value::Text(changed);
            }
        }
        "lots" => {
            v[1] = ids.get("account", &v[1])?;
            v[2] = ids.get("txn", &v[2])?;
        }
        "entries" => {
            v[1] = ids.get("txn", &v[1])?;
            v[2] = ids.get("account", &v[2])?;
            v[3] = ids.get("lot", &v[3])?;
        }
        _ => {}
    }
    Ok(())
}

/// A stored request or result with the ids it names (`account`,
/// `transaction`, `sale_transaction`, at any depth) made central; `None`
/// when it names none (or is not JSON), so the text stays byte for byte
/// what the till stored: a retried request is compared with it.
fn rewrite_json(text: &str, ids: &Ids<'_>) -> Option<String> {
    let mut value: serde_json::Value = serde_json::from_str(text).ok()?;
    fn walk(v: &mut serde_json::Value, ids: &Ids<'_>) -> bool {
        let mut changed = false;
        match v {
            serde_json::Value::Object(map) => {
                for (k, item) in map.iter_mut() {
                    let kind = match k.as_str() {
                        "account" => Some("account"),
                        "transaction" | "sale_transaction" => Some("txn"),
                        _ => None,
                    };
                    if let Some(kind) = kind
                        && let Some(old) = item.as_i64()
                        && let Some(new) = ids.id(kind, old)
                    {
                        *item = serde_json::Value::from(new);
                        changed = true;
                    } else {
                        changed |= walk(item, ids);
                    }
                }
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    changed |= walk(item, ids);
                }
            }
            _ => {}
        }
        changed
    }
    if walk(&mut value, ids) {
        Some(value.to_string())
    } else {
        None
    }
}
