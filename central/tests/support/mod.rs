//! A chain on one machine for the tests: a throwaway PostgreSQL, real
//! `posbridge-central` instances and real till daemons in central mode.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use posbridge::client::{Client, ClientError};
use serde_json::{Value, json};

/// The central service under test.
pub const CENTRAL: &str = env!("CARGO_BIN_EXE_posbridge-central");

#[path = "../../../tests/common/bins.rs"]
mod bins;
pub mod netfault;

/// The till daemon (see [`bins::workspace_bin`]).
pub fn till_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let fallback = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/chain-tills");
        bins::workspace_bin("posbridge", "posbridge", &fallback)
    })
    .clone()
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The programme every test's chain runs, unless it says otherwise.
pub const PROGRAMME: &str = "[ledger.programme]\n";

/// One `posbridge-central` instance.
pub struct Central {
    pub child: Option<Child>,
    pub url: String,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Central {
    /// Starts an instance with `config` and waits for its health check.
    pub fn start(dir: &Path, name: &str, db_url: &str, ledger: &str) -> Central {
        let port = free_port();
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[database]\nurl = \"{db_url}\"\npool_size = 16\n\n{ledger}\n"
            ),
        )
        .unwrap();
        let log = dir.join(format!("{name}.log"));
        let mut c = Central {
            child: None,
            url: format!("http://127.0.0.1:{port}"),
            config,
            log,
        };
        c.spawn();
        c
    }

    /// (Re)spawns the process on the same config and port.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(CENTRAL)
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn posbridge-central");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = self.url.trim_start_matches("http://").to_owned();
        loop {
            if std::net::TcpStream::connect(&addr).is_ok() {
                return;
            }
            if let Some(s) = self.child.as_mut().unwrap().try_wait().unwrap() {
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

    /// Runs an admin command against this instance's config; its stdout.
    pub fn admin(&self, args: &[&str]) -> String {
        let out = Command::new(CENTRAL)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run posbridge-central");
        assert!(
            out.status.success(),
            "posbridge-central {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs an admin command that may fail: (success, stdout, stderr).
    pub fn admin_output(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(CENTRAL)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run posbridge-central");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// SIGKILL, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Central {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A till daemon in central mode.
pub struct Till {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub socket: PathBuf,
    /// Its `posbridge.toml` (in `dir`), for [`Till::restart`].
    pub config: PathBuf,
}

impl Till {
    /// Starts a till that uses `central` as terminal `terminal` with `key`.
    pub fn start(central_url: &str, terminal: &str, key: &str) -> Till {
        Till::start_with(central_url, terminal, key, "")
    }

    /// [`Till::start`] with `extra` appended to its config (the programme
    /// and redemption settings the till reads itself).
    pub fn start_with(central_url: &str, terminal: &str, key: &str, extra: &str) -> Till {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("terminal.key");
        std::fs::write(&key_file, key).unwrap();
        let ledger = format!(
            "[ledger]\nbackend = \"central\"\n\n[ledger.central]\nurl = \"{central_url}\"\n\
             terminal = \"{terminal}\"\nkey_file = \"{}\"\n\n{extra}\n",
            key_file.display(),
        );
        Till::launch(dir, &ledger)
    }

    /// Starts a till with its own embedded ledger (a single shop before it
    /// joins a chain), running `ledger` (its `[ledger…]` sections).
    pub fn embedded(ledger: &str) -> Till {
        Till::launch(tempfile::tempdir().unwrap(), ledger)
    }

    /// The till's embedded database.
    pub fn state_file(&self) -> PathBuf {
        self.dir.path().join("state/posbridge.sqlite3")
    }

    /// SIGTERM and wait: the till checkpoints its database and exits.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let status = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status()
                .expect("run kill");
            assert!(status.success(), "kill -TERM failed");
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().unwrap().is_none() {
                assert!(
                    Instant::now() < deadline,
                    "till did not stop:\n{}",
                    self.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// SIGKILL and wait: no checkpoint, no goodbye (the socket file stays
    /// behind, as after a crash).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the daemon again on the same config and state dir, after
    /// [`Till::kill9`] or [`Till::stop`]. A socket file a killed daemon
    /// left is the daemon's to replace (it removes a socket nobody answers
    /// on), as after a real crash.
    pub fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "restart: the till is still running (kill9 or stop it first)"
        );
        let mut log = self.log_file();
        writeln!(log, "--- restart ---").unwrap();
        self.spawn();
    }

    fn launch(dir: tempfile::TempDir, ledger: &str) -> Till {
        let socket = dir.path().join("posbridge.sock");
        let config = dir.path().join("posbridge.toml");
        std::fs::write(
            &config,
            format!(
                "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\nlog_level = \"debug\"\n\n{ledger}\n",
                socket.display(),
                dir.path().join("state").display(),
            ),
        )
        .unwrap();
        let mut t = Till {
            dir,
            child: None,
            socket,
            config,
        };
        t.spawn();
        t
    }

    /// Spawns the daemon on `self.config` and waits until its socket answers.
    fn spawn(&mut self) {
        let child = Command::new(till_bin())
            .arg("--config")
            .arg(&self.config)
            .arg("run")
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("LISTEN_FDS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(self.log_file())
            .spawn()
            .expect("spawn posbridge");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            if let Some(s) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("till exited early ({s}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "till did not come up:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The daemon's log, opened for appending (a restart keeps the earlier
    /// runs' lines).
    fn log_file(&self) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .unwrap()
    }

    pub async fn client(&self) -> Client {
        Client::unix(&self.socket).await.expect("connect")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }
}

impl Drop for Till {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A chain: PostgreSQL, one central instance per `instances`, a store and
/// terminals issued by the admin command.
pub struct Chain {
    pub dir: tempfile::TempDir,
    pub centrals: Vec<Central>,
    pub db_url: String,
    pub pg: posbridge_pgtest::Cluster,
}

impl Chain {
    /// A chain with `instances` central instances on one database.
    pub fn start(instances: usize, ledger: &str) -> Chain {
        let pg = posbridge_pgtest::Cluster::start().expect("start PostgreSQL");
        let db_url = pg.url();
        let dir = tempfile::tempdir().unwrap();
        let centrals = (0..instances)
            .map(|i| Central::start(dir.path(), &format!("central{i}"), &db_url, ledger))
            .collect::<Vec<_>>();
        centrals[0].admin(&["store", "add", "S1", "--name", "Store 1"]);
        centrals[0].admin(&["store", "add", "S2", "--name", "Store 2"]);
        Chain {
            dir,
            centrals,
            db_url,
            pg,
        }
    }

    /// Issues terminal `id` in `store` and starts a till with it, talking to
    /// central instance `instance`.
    pub fn till(&self, id: &str, store: &str, instance: usize) -> Till {
        Till::start(&self.centrals[instance].url, id, &self.issue(id, store))
    }

    /// [`Chain::till`] with `extra` appended to the till's config.
    pub fn till_with(&self, id: &str, store: &str, instance: usize, extra: &str) -> Till {
        Till::start_with(
            &self.centrals[instance].url,
            id,
            &self.issue(id, store),
            extra,
        )
    }

    /// Issues terminal `id` in `store` and starts a till with it that talks
    /// to the central service at `url` (a [`netfault::Proxy`] in front of an
    /// instance), with `extra` appended to its config.
    pub fn till_via(&self, id: &str, store: &str, url: &str, extra: &str) -> Till {
        Till::start_with(url, id, &self.issue(id, store), extra)
    }

    /// Issues terminal `id` in `store`: its key.
    fn issue(&self, id: &str, store: &str) -> String {
        key_of(&self.centrals[0].admin(&["terminal", "add", id, "--store", store]))
    }

    /// How many ledger calls the central instances have served, by method
    /// (from their logs' `call` lines).
    pub fn calls(&self) -> std::collections::BTreeMap<String, usize> {
        let mut n = std::collections::BTreeMap::new();
        for c in &self.centrals {
            for l in c.log().lines().filter(|l| l.contains(" call ")) {
                if let Some(m) = l.split_whitespace().find_map(|w| w.strip_prefix("method=")) {
                    *n.entry(m.to_owned()).or_insert(0) += 1;
                }
            }
        }
        n
    }

    /// `posbridge-central verify` finds nothing wrong.
    pub fn verify(&self) {
        self.centrals[0].admin(&["verify"]);
    }
}

/// The key `terminal add` printed: its stdout is the key alone.
pub fn key_of(out: &str) -> String {
    out.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or_else(|| panic!("no key in {out:?}"))
        .to_owned()
}

pub fn lines(total: u32) -> Value {
    json!([{"sku": "A1", "name": "Товар", "category": "general", "qty": "1", "price": total.to_string()}])
}

pub fn code(r: Result<Value, ClientError>) -> (i64, Value) {
    match r {
        Err(ClientError::Rpc { error }) => (error["code"].as_i64().unwrap(), error["data"].clone()),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}
