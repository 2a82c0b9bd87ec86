//! The embedded database: one SQLite file in the state dir, opened with the
//! durability settings every table in it relies on, and versioned
//! migrations.
//!
//! WAL with `synchronous=FULL` fsyncs the log on every commit: a commit that
//! returned survives a power cut. Writers use `BEGIN IMMEDIATE` so two
//! writers never deadlock upgrading read locks.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags, params};

mod group;
pub mod private;

pub(crate) use group::{Readers, Writer};

/// Read-only connections kept for reads (WAL readers never wait for the
/// writer): enough for the terminals' swipes and the back office at once.
const READERS: usize = 4;

/// Prepared statements each connection keeps. A sale alone runs about 20
/// distinct statements and the write connection serves every operation:
/// with rusqlite's default of 16 the LRU cache missed on every statement
/// of a sale and re-parsed it (an eighth of a sale's CPU).
const STATEMENT_CACHE: usize = 512;

/// Schema migrations, applied in order; `PRAGMA user_version` records how
/// many ran. Append only: never edit a migration that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: identity of this terminal's store.
    "CREATE TABLE meta (
        key   TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
    ) STRICT;",
    // 2: the embedded ledger. Amounts are integers in units of 0.0001 so
    // sums are exact in SQL (SQLite's SUM over text would go through
    // floats). Every operation is one `txns` row with its entries; lots
    // carry accruals with their expiry and what is left of them.
    "CREATE TABLE accounts (
        id          INTEGER PRIMARY KEY,
        status      TEXT NOT NULL DEFAULT 'active',
        accrual_pct TEXT,
        cap_pct     TEXT,
        created_at  TEXT NOT NULL
    ) STRICT;
    CREATE TABLE cards (
        number     TEXT PRIMARY KEY NOT NULL,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        status     TEXT NOT NULL DEFAULT 'active'
    ) STRICT;
    CREATE TABLE txns (
        id              INTEGER PRIMARY KEY,
        idempotency_key TEXT NOT NULL UNIQUE,
        kind            TEXT NOT NULL,
        account_id      INTEGER NOT NULL REFERENCES accounts(id),
        receipt_id      TEXT,
        request         TEXT NOT NULL,
        result          TEXT NOT NULL,
        created_at      TEXT NOT NULL
    ) STRICT;
    CREATE TABLE lots (
        id         INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        txn_id     INTEGER NOT NULL REFERENCES txns(id),
        amount     INTEGER NOT NULL CHECK (amount > 0),
        remaining  INTEGER NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
        expires_at TEXT,
        created_at TEXT NOT NULL
    ) STRICT;
    CREATE INDEX lots_open ON lots(account_id, expires_at) WHERE remaining > 0;
    CREATE TABLE entries (
        id         INTEGER PRIMARY KEY,
        txn_id     INTEGER NOT NULL REFERENCES txns(id),
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        lot_id     INTEGER REFERENCES lots(id),
        kind       TEXT NOT NULL,
        amount     INTEGER NOT NULL,
        created_at TEXT NOT NULL
    ) STRICT;
    CREATE INDEX entries_account ON entries(account_id, id);",
    // 3: print jobs, one FIFO per printer. A row is written (and fsynced)
    // before the client hears "queued", so an accepted job survives a
    // restart.
    "CREATE TABLE print_jobs (
        id              INTEGER PRIMARY KEY,
        job_id          TEXT NOT NULL UNIQUE,
        printer         TEXT NOT NULL,
        document        TEXT NOT NULL,
        state           TEXT NOT NULL,
        detail          TEXT,
        unrepresentable INTEGER NOT NULL DEFAULT 0,
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL
    ) STRICT;
    CREATE INDEX print_jobs_open ON print_jobs(printer, id)
        WHERE state IN ('queued', 'printing', 'held');",
    // 4: the fiscal journal. A job is `pending` when accepted; it becomes
    // `sending` (with the fiscal storage's last document number) before the
    // first byte of the document goes out, so recovery can tell whether
    // the device finished it.
    "CREATE TABLE fiscal_jobs (
        id         INTEGER PRIMARY KEY,
        job_id     TEXT NOT NULL UNIQUE,
        printer    TEXT NOT NULL,
        kind       TEXT NOT NULL,
        request    TEXT NOT NULL,
        state      TEXT NOT NULL,
        fd_before  INTEGER,
        result     TEXT,
        error      TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    ) STRICT;
    CREATE INDEX fiscal_jobs_open ON fiscal_jobs(printer, id)
        WHERE state IN ('pending', 'sending');",
    // 5: ledger lookups that scanned whole tables: an account's history
    // (txns by account, entries by txn), a refund finding its sale and the
    // earlier refunds of it (txns by receipt id) and the sale's lot.
    "CREATE INDEX txns_account ON txns(account_id, id);
    CREATE INDEX txns_receipt ON txns(receipt_id) WHERE receipt_id IS NOT NULL;
    CREATE INDEX entries_txn ON entries(txn_id);
    CREATE INDEX lots_txn ON lots(txn_id);",
    // 6: customers and card secrets. A secret is kept only as an argon2id
    // hash; wrong guesses are counted on the card and lock it for a while,
    // and the lock is a row, so it survives a restart.
    "ALTER TABLE accounts ADD COLUMN name TEXT;
    ALTER TABLE accounts ADD COLUMN phone TEXT;
    ALTER TABLE accounts ADD COLUMN email TEXT;
    CREATE UNIQUE INDEX accounts_phone ON accounts(phone) WHERE phone IS NOT NULL;
    CREATE UNIQUE INDEX accounts_email ON accounts(email) WHERE email IS NOT NULL;
    ALTER TABLE cards ADD COLUMN kind TEXT NOT NULL DEFAULT 'physical';
    ALTER TABLE cards ADD COLUMN secret_hash TEXT;
    ALTER TABLE cards ADD COLUMN failed_attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE cards ADD COLUMN locked_until TEXT;",
    // Customer groups, code words and registration confirmation. A code
    // word and a confirmation code are kept only as argon2id hashes, like
    // card secrets. `account_groups` is read by the tiers (a level may be
    // restricted to groups). A confirmation row exists while an account
    // is `pending`; its attempts and expiry are rows so a restart keeps them
    // (`sent_at` is NULL until a notifier delivered the code).
    "CREATE TABLE groups (
        name        TEXT PRIMARY KEY NOT NULL,
        description TEXT,
        created_at  TEXT NOT NULL
    ) STRICT;
    CREATE TABLE account_groups (
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        group_name TEXT NOT NULL REFERENCES groups(name),
        PRIMARY KEY (account_id, group_name)
    ) STRICT;
    CREATE INDEX account_groups_group ON account_groups(group_name);
    ALTER TABLE accounts ADD COLUMN code_word_hash TEXT;
    CREATE TABLE confirmations (
        account_id INTEGER PRIMARY KEY NOT NULL REFERENCES accounts(id),
        code_hash  TEXT,
        expires_at TEXT NOT NULL,
        attempts   INTEGER NOT NULL DEFAULT 0,
        sent_at    TEXT
    ) STRICT;",
    // Ledger: what a refund could not claw back under the `debt` policy
    // (units of 0.0001, never negative; the balance is lots minus debt),
    // an account's per-category percentages as JSON
    // (`{"bar": {"cap_percent": "100"}}`), and a covering index so an
    // account's balance (SUM of its entries, read on every sale) is summed
    // from the index without visiting each entry row.
    "ALTER TABLE accounts ADD COLUMN debt INTEGER NOT NULL DEFAULT 0 CHECK (debt >= 0);
    ALTER TABLE accounts ADD COLUMN category_overrides TEXT;
    CREATE INDEX entries_account_amount ON entries(account_id, amount);",
    // Loyalty tiers: the level an account holds (NULL = the entry level,
    // never evaluated) since when, and every change of it with why and
    // what ran the evaluation (`sale`, `daily`, `admin`).
    "ALTER TABLE accounts ADD COLUMN tier TEXT;
    ALTER TABLE accounts ADD COLUMN tier_since TEXT;
    CREATE TABLE tier_changes (
        id         INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        from_tier  TEXT,
        to_tier    TEXT NOT NULL,
        reason     TEXT NOT NULL,
        source     TEXT NOT NULL,
        created_at TEXT NOT NULL
    ) STRICT;
    CREATE INDEX tier_changes_account ON tier_changes(account_id, id);",
    // 10: wrong code words count on the account and lock its code word for
    // a while, as wrong secrets do on a card: otherwise a cashier session
    // could guess a customer's word without limit.
    "ALTER TABLE accounts ADD COLUMN code_word_failed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE accounts ADD COLUMN code_word_locked_until TEXT;",
    // 11: one-time codes that let a customer without the card spend points
    // ([ledger.redemption] by_code): one outstanding code per account,
    // hashed; `code_hash` NULL once wrong tries used it up; the row goes
    // when the code is used.
    "CREATE TABLE redeem_codes (
        account_id INTEGER PRIMARY KEY REFERENCES accounts(id),
        code_hash  TEXT,
        expires_at TEXT NOT NULL,
        attempts   INTEGER NOT NULL DEFAULT 0,
        sent_at    TEXT
    ) STRICT;",
    // 12: every ledger transaction records the store and terminal it came
    // from (a chain's central ledger shares this schema's shape; on one
    // till they are this till's own).
    "ALTER TABLE txns ADD COLUMN store_id TEXT;
    ALTER TABLE txns ADD COLUMN terminal_id TEXT;",
    // 13: a till in central mode while the central ledger is out of reach
    // (`ledger/offline/`): the sales and returns it accepted, in order,
    // until the central ledger has booked them (`state` 'failed': refused
    // there, kept for an operator), and the accounts it has seen.
    "CREATE TABLE sync_outbox (
        id         INTEGER PRIMARY KEY,
        key        TEXT NOT NULL UNIQUE,
        kind       TEXT NOT NULL CHECK (kind IN ('sale', 'refund')),
        number     TEXT,
        redeem     TEXT NOT NULL DEFAULT '0',
        request    TEXT NOT NULL,
        at         TEXT NOT NULL,
        result     TEXT NOT NULL,
        queued_at  TEXT NOT NULL,
        state      TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'failed')),
        attempts   INTEGER NOT NULL DEFAULT 0,
        code       INTEGER,
        reason     TEXT,
        failed_at  TEXT
    ) STRICT;
    CREATE INDEX sync_outbox_state ON sync_outbox(state, id);
    CREATE INDEX sync_outbox_number ON sync_outbox(number);
    CREATE TABLE sync_cards (
        number          TEXT PRIMARY KEY,
        summary         TEXT NOT NULL,
        as_of           TEXT NOT NULL,
        secret_hash     TEXT,
        secret_failures INTEGER NOT NULL DEFAULT 0
    ) STRICT;",
    // 14: the back office's operators and its audit log. Plain SQL that
    // PostgreSQL also runs (no STRICT, no rowid alias: the audit id is
    // written by the code as MAX(id) + 1 inside the write transaction), so
    // the central service can keep the same tables. A password is kept
    // only as an argon2id hash; `op_limit` is points per operation in
    // units of 0.0001 (NULL: unlimited).
    "CREATE TABLE bo_operators (
        name          TEXT PRIMARY KEY NOT NULL,
        role          TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
        password_hash TEXT NOT NULL,
        op_limit      BIGINT CHECK (op_limit IS NULL OR op_limit >= 0),
        disabled      INTEGER NOT NULL DEFAULT 0,
        created_at    TEXT NOT NULL
    );
    CREATE TABLE bo_audit (
        id       BIGINT PRIMARY KEY NOT NULL,
        at       TEXT NOT NULL,
        operator TEXT NOT NULL,
        action   TEXT NOT NULL,
        target   TEXT,
        detail   TEXT NOT NULL,
        remote   TEXT
    );",
    // 15: the back office's search index: every word of a customer's name
    // and e-mail, lower-cased by the ledger's Rust code (Unicode: SQLite's
    // lower() and LIKE fold ASCII only), so "иванов" finds "Иван ИВАНОВ"
    // by a range on the key rather than a scan of every account. Written
    // with the account ([`crate::ledger::accounts::words`]); existing
    // accounts are indexed in Rust by `migrate` ([`index_words`]).
    "CREATE TABLE account_words (
        word       TEXT NOT NULL,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        PRIMARY KEY (word, account_id)
    );
    CREATE INDEX account_words_account ON account_words(account_id);",
    // 16: the daily expiry sweep finds due lots by expiry (open lots
    // only), and the back office's reports read a period's entries and
    // new accounts by time rather than scanning the tables.
    "CREATE INDEX lots_due ON lots(expires_at) WHERE remaining > 0;
    CREATE INDEX entries_created ON entries(created_at);
    CREATE INDEX accounts_created ON accounts(created_at);",
    // 17: an account's balance (Σ of its entries) and next expiry (the
    // earliest expiry of its open lots) kept on the account, updated in
    // the same transaction as its entries and lots
    // ([`crate::ledger::embedded`]'s book-keeping), so a sale costs the
    // same on an account with 50,000 lots as on a new one; `ledger verify`
    // checks both against the sums. Backfilled here.
    "ALTER TABLE accounts ADD COLUMN balance INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE accounts ADD COLUMN next_expiry TEXT;
    UPDATE accounts SET
        balance = (SELECT COALESCE(SUM(amount), 0) FROM entries e WHERE e.account_id = accounts.id),
        next_expiry = (SELECT MIN(expires_at) FROM lots l
                       WHERE l.account_id = accounts.id AND l.remaining > 0);",
    // 18: the cashier (name or id, as the POS sent it) of each sale and
    // return, for the back office's history; NULL where none was sent.
    // The offline queue keeps it beside the request (not in it: the
    // request text is what a repeat of the key is compared with, and a
    // repeat keeps the first cashier).
    "ALTER TABLE txns ADD COLUMN cashier TEXT;
    ALTER TABLE sync_outbox ADD COLUMN cashier TEXT;",
    // 19: the accrual window
    // (`hold_days`). A lot held until `available_at` (NULL: spendable at
    // once) cannot be spent before then; the held points of an account are
    // summed from this index, which a range on `available_at > now` reads
    // only the lots still held (a sale's accruals of the last `hold_days`),
    // so nothing has to be written when a window ends.
    "ALTER TABLE lots ADD COLUMN available_at TEXT;
    CREATE INDEX lots_held ON lots(account_id, available_at)
        WHERE remaining > 0 AND available_at IS NOT NULL;",
    // 20: each sale's lines as
    // committed, with their own share of the accrual and of the points
    // spent, so a return by lines gives back exactly those (`sale.refund`
    // with `lines`). `qty` is the decimal text as sold (weighed goods are
    // fractional); money and points in units of 0.0001. Sales committed
    // before have no rows and are returned by amount only.
    "CREATE TABLE sale_lines (
        txn_id   INTEGER NOT NULL REFERENCES txns(id),
        idx      INTEGER NOT NULL,
        sku      TEXT NOT NULL,
        qty      TEXT NOT NULL,
        total    INTEGER NOT NULL,
        accrued  INTEGER NOT NULL CHECK (accrued >= 0),
        redeemed INTEGER NOT NULL CHECK (redeemed >= 0),
        PRIMARY KEY (txn_id, idx)
    ) STRICT;",
    // 21 (issue 21 item 12a): gift certificates, a
    // balance in kopecks (not points). The code is kept only as its
    // SHA-256 digest and last four symbols; every write is a
    // `certificate_ops` row under its idempotency key (a refund names the
    // redemption it returns). PostgreSQL's migration 12 is the same.
    "CREATE TABLE certificates (
        id          INTEGER PRIMARY KEY,
        code_hash   TEXT NOT NULL UNIQUE,
        code_tail   TEXT NOT NULL,
        nominal     INTEGER NOT NULL CHECK (nominal > 0),
        balance     INTEGER NOT NULL CHECK (balance >= 0 AND balance <= nominal),
        status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'blocked')),
        expires_at  TEXT NOT NULL,
        issued_at   TEXT NOT NULL,
        receipt_id  TEXT,
        store_id    TEXT,
        terminal_id TEXT
    ) STRICT;
    CREATE TABLE certificate_ops (
        id              INTEGER PRIMARY KEY,
        idempotency_key TEXT NOT NULL UNIQUE,
        certificate_id  INTEGER NOT NULL REFERENCES certificates(id),
        kind            TEXT NOT NULL
                        CHECK (kind IN ('issue', 'redeem', 'refund', 'block', 'unblock')),
        amount          INTEGER NOT NULL CHECK (amount >= 0),
        receipt_id      TEXT,
        redemption_id   INTEGER REFERENCES certificate_ops(id),
        request         TEXT NOT NULL,
        result          TEXT NOT NULL,
        created_at      TEXT NOT NULL,
        store_id        TEXT,
        terminal_id     TEXT
    ) STRICT;
    CREATE INDEX certificate_ops_certificate ON certificate_ops(certificate_id, id);
    CREATE INDEX certificate_ops_redemption ON certificate_ops(redemption_id);",
    // 22 (promo codes): one row per sale that used a promo code, written in the
    // sale's transaction; a code's limits count these rows.
    "CREATE TABLE promo_uses (
        code       TEXT NOT NULL,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        txn_id     INTEGER NOT NULL UNIQUE REFERENCES txns(id),
        created_at TEXT NOT NULL
    );
    CREATE INDEX promo_uses_code ON promo_uses(code, account_id);",
    // 23 (issue 21 items 12c and 13): a customer's
    // birth date (`YYYY-MM-DD`; the daily birthday run finds the day's
    // birthdays by month-day through `accounts_birthday`), the consents
    // in force (152-FZ: processing personal data, messages) and when the
    // personal data was erased on request; `consents` keeps every
    // consent given or withdrawn: when, how, by which operator and till;
    // `referred_by` is the account that invited this one (the referral
    // bonus, paid on the invited customer's first purchase).
    "ALTER TABLE accounts ADD COLUMN birth_date TEXT;
    ALTER TABLE accounts ADD COLUMN consent_data_at TEXT;
    ALTER TABLE accounts ADD COLUMN consent_messages_at TEXT;
    ALTER TABLE accounts ADD COLUMN erased_at TEXT;
    CREATE INDEX accounts_birthday ON accounts(substr(birth_date, 6))
        WHERE birth_date IS NOT NULL;
    CREATE TABLE consents (
        id          INTEGER PRIMARY KEY,
        account_id  INTEGER NOT NULL REFERENCES accounts(id),
        kind        TEXT NOT NULL,
        given       INTEGER NOT NULL,
        how         TEXT NOT NULL,
        operator    TEXT NOT NULL,
        store_id    TEXT,
        terminal_id TEXT,
        created_at  TEXT NOT NULL
    ) STRICT;
    CREATE INDEX consents_account ON consents(account_id, id);
    ALTER TABLE accounts ADD COLUMN referred_by INTEGER REFERENCES accounts(id);",
    // 24: the programme each account
    // belongs to, by name; '' is the default programme
    // ([ledger.programme]), which every existing account keeps whatever
    // that programme is named.
    "ALTER TABLE accounts ADD COLUMN programme TEXT NOT NULL DEFAULT '';",
];

/// The schema version this build writes (`PRAGMA user_version` after its
/// migrations): tools reading a till's file check it against this.
pub fn schema_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Database errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state directory could not be created.
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The database file could not be created or made private (0600).
    #[error("cannot make {} private: {source}", path.display())]
    Private {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// SQLite failed.
    #[error("database {}: {source}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database worker thread died (a bug); the call had no effect
    /// beyond what SQLite rolled back.
    #[error("database worker failed: {0}")]
    Worker(String),
    /// The file was written by a newer posbridge.
    #[error("database {} has schema version {found}, newer than this build's {known}; refusing to touch it", path.display())]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Version in the file.
        found: i64,
        /// Latest version this build knows.
        known: i64,
    },
    /// A read-only tool met a file an older posbridge wrote: it does not
    /// migrate (that is a write), the daemon of this version does at start.
    #[error("database {} has schema version {found}, older than this build's {known}; start the daemon of this version once to migrate it, then run this again", path.display())]
    TooOld {
        /// The database file.
        path: PathBuf,
        /// Version in the file.
        found: i64,
        /// Latest version this build knows.
        known: i64,
    },
}

/// The open database, shared by the daemon's modules.
#[derive(Clone)]
pub struct Store {
    path: PathBuf,
    // One connection for writes: SQLite allows one writer anyway, and a
    // mutex makes the queue explicit instead of busy-waiting on locks; the
    // queue commits as a group (`group`).
    writer: Arc<Writer>,
    readers: Arc<Readers>,
    terminal_id: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            private::create_dir(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let err = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        // SQLite gives the -wal and -shm files the database file's mode, so
        // a private database file makes all three private.
        private::file(path).map_err(|source| StoreError::Private {
            path: path.to_path_buf(),
            source,
        })?;
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        // Each group-commit caller's savepoint copies the pages it touches
        // into the statement journal; on a temp file (the default) that
        // spilled past 64 KiB and every sale paid for file writes.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(err)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        migrate(&mut conn, path)?;
        // Files an older version left readable to others.
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            if let Err(e) = private::tighten(Path::new(&side))
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(file = ?side, error = %e, "could not make the file private");
            }
        }
        let terminal_id = terminal_id(&mut conn).map_err(err)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(err)?;
            r.busy_timeout(std::time::Duration::from_secs(5))
                .map_err(err)?;
            r.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            readers.push(r);
        }
        Ok(Store {
            path: path.to_path_buf(),
            writer: Arc::new(Writer::new(conn)),
            readers: Arc::new(Readers::new(readers)),
            terminal_id,
        })
    }

    /// Opens an existing database read-only, for tools that only look
    /// (`posbridge ledger verify|export`): never creates the file, never
    /// migrates, never writes, so it is safe beside the running daemon.
    /// A missing file is [`rusqlite::Error`]'s "unable to open" here; the
    /// caller checks for it first to name the fix.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        use rusqlite::OptionalExtension as _;
        let err = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        let found: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        let known = MIGRATIONS.len() as i64;
        if found != known {
            let path = path.to_path_buf();
            return Err(if found > known {
                StoreError::TooNew { path, found, known }
            } else {
                StoreError::TooOld { path, found, known }
            });
        }
        let terminal_id = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'terminal_id'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)?
            .unwrap_or_default();
        // verify and export read through both paths (the writer for their
        // whole-ledger transaction, the pool for reads): both read-only.
        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        reader
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        Ok(Store {
            path: path.to_path_buf(),
            writer: Arc::new(Writer::new(conn)),
            readers: Arc::new(Readers::new(vec![reader])),
            terminal_id,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A random id minted when this database was created; it names the
    /// terminal to a central ledger and binds card tokens to this till.
    pub fn terminal_id(&self) -> &str {
        &self.terminal_id
    }

    /// Runs `f` on the connection in a blocking-safe thread.
    pub async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let writer = self.writer.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = writer.exclusive();
            f(&mut guard.conn)
        })
        .await
        .map_err(|join| StoreError::Worker(join.to_string()))?
        .map_err(|source| StoreError::Sqlite { path, source })
    }

    /// The write connection with group commit, for the ledger's
    /// [`crate::ledger::db::SqliteBooks`].
    pub(crate) fn writer(&self) -> &Writer {
        &self.writer
    }

    /// A read-only connection of the pool, for read transactions.
    pub(crate) fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.readers.get()
    }

    /// Moves the WAL into the main file and truncates it: called on
    /// shutdown so the file on disk is complete by itself.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        self.with(|c| c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())))
            .await
    }
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let err = |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let known = MIGRATIONS.len() as i64;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(err)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    if version > known {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: version,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql).map_err(err)?;
        if sql.contains("CREATE TABLE account_words") {
            index_words(&tx).map_err(err)?;
        }
        tx.pragma_update(None, "user_version", i as i64 + 1)
            .map_err(err)?;
    }
    tx.commit().map_err(err)
}

/// Indexes the words of the accounts written before `account_words`
/// existed, as the ledger indexes each account it writes.
fn index_words(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    let mut read = tx.prepare(
        "SELECT id, name, email FROM accounts WHERE name IS NOT NULL OR email IS NOT NULL",
    )?;
    let mut write =
        tx.prepare("INSERT OR IGNORE INTO account_words (word, account_id) VALUES (?1, ?2)")?;
    let rows = read.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, Option<String>>(2)?,
        ))
    })?;
    for row in rows {
        let (id, name, email) = row?;
        for w in crate::ledger::accounts::words::account_words(name.as_deref(), email.as_deref()) {
            write.execute(rusqlite::params![w, id])?;
        }
    }
    Ok(())
}

fn terminal_id(conn: &mut Connection) -> rusqlite::Result<String> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let existing: Option<String> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'terminal_id'",
            [],
            |r| r.get(0),
        )
        .ok();
    let id = match existing {
        Some(id) => id,
        None => {
            let id: String = tx.query_row("SELECT lower(hex(randomblob(16)))", [], |r| r.get(0))?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('terminal_id', ?1)",
                params![id],
            )?;
            id
        }
    };
    tx.commit()?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_with_wal_full_sync_and_keeps_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/db.sqlite3");
        let store = Store::open(&path).unwrap();
        let id = store.terminal_id().to_owned();
        assert_eq!(id.len(), 32);
        let (mode, sync, version): (String, i64, i64) = store
            .with(|c| {
                Ok((
                    c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?,
                    c.query_row("PRAGMA synchronous", [], |r| r.get(0))?,
                    c.query_row("PRAGMA user_version", [], |r| r.get(0))?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous=FULL");
        assert_eq!(version, MIGRATIONS.len() as i64);
        store.checkpoint().await.unwrap();
        drop(store);
        assert_eq!(Store::open(&path).unwrap().terminal_id(), id);
    }

    #[test]
    fn accounts_written_before_the_word_index_are_indexed_in_unicode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            // The file as the build before the word index left it: only
            // the migrations before it, so later ones need no undoing here.
            let at = MIGRATIONS
                .iter()
                .position(|m| m.contains("CREATE TABLE account_words"))
                .unwrap();
            let c = Connection::open(&path).unwrap();
            for m in &MIGRATIONS[..at] {
                c.execute_batch(m).unwrap();
            }
            c.execute(
                "INSERT INTO accounts (created_at, name, email)
                 VALUES ('2026-01-01T00:00:00Z', 'Иван ИВАНОВ', 'Ivan@Example.ru')",
                [],
            )
            .unwrap();
            c.pragma_update(None, "user_version", at as i64).unwrap();
        }
        drop(Store::open(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        let mut st = c
            .prepare("SELECT word FROM account_words ORDER BY word")
            .unwrap();
        let words: Vec<String> = st
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(words, ["example", "ivan", "ru", "иван", "иванов"]);
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let c = Connection::open(&path).unwrap();
            c.pragma_update(None, "user_version", 999).unwrap();
        }
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::TooNew { found: 999, .. })
        ));
    }
}
