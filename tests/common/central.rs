//! The central half of a [`super::Daemon`] in central mode: a database of
//! its own on the test binary's shared PostgreSQL cluster, a real
//! `posbridge-central` instance on it, and one store and terminal whose key
//! the till uses. The same test file, built as target `X_central`, then runs
//! every ledger call through till → central → PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use posbridge_pgtest::Cluster;

/// The terminal every central-mode daemon acts as.
pub const TERMINAL: &str = "T1";

/// The tables that configure the ledger's rules: the central service needs
/// them; the till keeps them too (it compares its programme with the
/// central one, prices receipts and delivers codes with them).
const LEDGER_TABLES: [&str; 5] = [
    "programme",
    "registration",
    "redemption",
    "programmes",
    "programme_cards",
];

/// The central service binary (see [`super::bins::workspace_bin`]).
pub fn central_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let fallback = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/central-bin");
        super::bins::workspace_bin("posbridge-central", "posbridge-central", &fallback)
    })
    .clone()
}

/// A running central instance with its own database; killed on drop.
pub struct Side {
    pg: Arc<Cluster>,
    db: String,
    db_url: String,
    /// The process and the ledger tables it runs on; behind a lock so a
    /// `&Daemon` can rewrite its configuration.
    state: std::sync::Mutex<State>,
    port: u16,
    /// The central service's configuration file.
    pub config: PathBuf,
    log: PathBuf,
    key_file: PathBuf,
}

struct State {
    child: Option<Child>,
    /// The ledger tables last written to the central configuration.
    ledger: toml::Table,
}

impl Side {
    /// Creates the database, starts the service with `rest`'s ledger
    /// tables and issues the terminal.
    pub fn start(dir: &Path, rest: &str) -> Side {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let pg = Cluster::shared().expect("start PostgreSQL");
        let db = format!(
            "{}_{}_{}",
            env!("CARGO_CRATE_NAME"),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let db_url = pg.createdb(&db).expect("createdb");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let side = Side {
            pg,
            db,
            db_url,
            state: std::sync::Mutex::new(State {
                child: None,
                ledger: ledger_tables(rest),
            }),
            port,
            config: dir.join("central.toml"),
            log: dir.join("central.log"),
            key_file: dir.join("terminal.key"),
        };
        {
            let mut state = side.state();
            side.write_config(&state.ledger);
            side.spawn(&mut state);
        }
        side.admin(&["store", "add", "S1", "--name", "Store 1"]);
        let key = side.admin(&["terminal", "add", TERMINAL, "--store", "S1"]);
        let key = key.trim();
        assert!(!key.is_empty(), "terminal add printed no key");
        std::fs::write(&side.key_file, key).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&side.key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        side
    }

    /// The service's base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `rest` for the till: everything it had, plus the central backend.
    pub fn till_rest(&self, rest: &str) -> String {
        let mut table: toml::Table = rest.parse().expect("rest is TOML");
        let ledger = table
            .entry("ledger")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .expect("[ledger] is a table");
        assert!(
            !ledger.contains_key("backend"),
            "a test that picks its own backend cannot run in central mode"
        );
        ledger.insert("backend".into(), "central".into());
        let mut central = toml::Table::new();
        central.insert("url".into(), self.url().into());
        central.insert("terminal".into(), TERMINAL.into());
        central.insert(
            "key_file".into(),
            self.key_file.display().to_string().into(),
        );
        ledger.insert("central".into(), central.into());
        toml::to_string(&table).expect("serialise the till's config")
    }

    /// A new `rest`: when its ledger tables differ, the service restarts
    /// on them (as an operator would change both sides).
    pub fn reconfigure(&self, rest: &str) {
        let ledger = ledger_tables(rest);
        let mut state = self.state();
        if ledger != state.ledger {
            self.write_config(&ledger);
            state.ledger = ledger;
            kill(&mut state);
            self.spawn(&mut state);
        }
    }

    /// SIGKILL of the service, then a fresh start on the same database.
    pub fn kill9_and_restart(&self) {
        let mut state = self.state();
        kill(&mut state);
        self.spawn(&mut state);
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write_config(&self, tables: &toml::Table) {
        let mut ledger = toml::Table::new();
        ledger.insert("ledger".into(), tables.clone().into());
        std::fs::write(
            &self.config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{}\"\n\n[database]\nurl = \"{}\"\npool_size = 4\n\n{}",
                self.port,
                self.db_url,
                toml::to_string(&ledger).unwrap()
            ),
        )
        .unwrap();
    }

    fn spawn(&self, state: &mut State) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(central_bin())
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn posbridge-central");
        let child = state.child.insert(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(s) = child.try_wait().unwrap() {
                panic!("central exited early ({s}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "central did not come up:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `posbridge-central --config F args…`.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(central_bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run posbridge-central")
    }

    /// Runs an admin command that must succeed; its stdout.
    pub fn admin(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "posbridge-central {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Everything the service logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs SQL statements on this daemon's database.
    pub fn execute(&self, sql: &str) {
        let (pg, db, sql) = (self.pg.clone(), self.db.clone(), sql.to_owned());
        // The client is blocking: off the test's runtime.
        std::thread::spawn(move || {
            pg.connect(&db)
                .expect("connect")
                .batch_execute(&sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        })
        .join()
        .expect("sql thread");
    }

    /// Every row of every table of the ledger, as text: what a leak into
    /// the database would show.
    pub fn all_rows(&self) -> String {
        let (pg, db) = (self.pg.clone(), self.db.clone());
        std::thread::spawn(move || {
            let mut c = pg.connect(&db).expect("connect");
            let tables = c
                .query(
                    "SELECT table_name::text FROM information_schema.tables \
                     WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
                    &[],
                )
                .expect("list tables");
            assert!(!tables.is_empty(), "no tables in {db}");
            let mut all = String::new();
            for t in tables {
                let name: String = t.get(0);
                for row in c
                    .query(&format!("SELECT t::text FROM \"{name}\" t"), &[])
                    .expect("read table")
                {
                    all.push_str(&row.get::<_, String>(0));
                    all.push('\n');
                }
            }
            all
        })
        .join()
        .expect("sql thread")
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        kill(&mut self.state());
        // Dropped, its pages need no writing back: the shared cluster's
        // shutdown at the end of the binary otherwise flushes every test's
        // database (tens of seconds). Best effort: a failure only costs time.
        let (pg, sql) = (
            self.pg.clone(),
            format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.db),
        );
        let _ = std::thread::spawn(move || {
            if let Ok(mut c) = pg.connect("postgres") {
                let _ = c.batch_execute(&sql);
            }
        })
        .join();
    }
}

fn kill(state: &mut State) {
    if let Some(mut c) = state.child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// `[ledger.programme]`, `[ledger.registration]`, `[ledger.redemption]`,
/// `[[ledger.programmes]]` and `[ledger.programme_cards]` of `rest`, as
/// they sit under `[ledger]`.
fn ledger_tables(rest: &str) -> toml::Table {
    let table: toml::Table = rest.parse().expect("rest is TOML");
    let mut out = toml::Table::new();
    if let Some(ledger) = table.get("ledger").and_then(toml::Value::as_table) {
        for key in LEDGER_TABLES {
            if let Some(v) = ledger.get(key) {
                out.insert(key.into(), v.clone());
            }
        }
    }
    out
}
