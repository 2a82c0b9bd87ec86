//! The one helper every integration test uses: start the real daemon binary
//! on a temporary state dir with a small config, and talk to its socket.

#![allow(dead_code)]

pub mod bins;
pub mod central;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use posbridge::client::Client;
use serde_json::Value;

/// Path of the daemon binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_posbridge");

/// Whether this test binary runs the ledger on the central service: the
/// ledger tests are built twice, as `X` (embedded SQLite) and `X_central`
/// (a real `posbridge-central` on PostgreSQL), from the same file.
pub fn central_mode() -> bool {
    env!("CARGO_CRATE_NAME").ends_with("_central")
}

/// A running daemon in its own temp dir; killed on drop.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub socket: PathBuf,
    pub config: PathBuf,
    /// The central service in central mode ([`central_mode`]); dropped
    /// (killed) after the till.
    pub central: Option<central::Side>,
}

/// Config text with the socket and state dir inside `dir`; `extra` is
/// appended inside `[daemon]` (`daemon_extra`) and after it (`rest`).
pub fn config_text(dir: &Path, daemon_extra: &str, rest: &str) -> String {
    format!(
        "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\nlog_level = \"debug\"\n{daemon_extra}\n{rest}\n",
        dir.join("posbridge.sock").display(),
        dir.join("state").display(),
    )
}

impl Daemon {
    /// Starts with `[daemon]` extras and further sections.
    pub fn start(daemon_extra: &str, rest: &str) -> Daemon {
        Self::start_with(daemon_extra, rest, |_| {})
    }

    /// Starts with a hook to adjust the command (environment, fds).
    pub fn start_with(daemon_extra: &str, rest: &str, adjust: impl FnOnce(&mut Command)) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("posbridge.toml");
        let socket = dir.path().join("posbridge.sock");
        let central = central_mode().then(|| central::Side::start(dir.path(), rest));
        let mut d = Daemon {
            child: None,
            socket,
            config,
            dir,
            central,
        };
        d.write_config(daemon_extra, rest);
        d.spawn(adjust);
        if d.central.is_some() {
            // A central-mode run that quietly fell back to the embedded
            // ledger would prove nothing. (The line may land in the log
            // just after the socket answers.)
            let deadline = Instant::now() + Duration::from_secs(10);
            while !d.log().contains("ledger: central") {
                assert!(
                    Instant::now() < deadline,
                    "the till is not on the central ledger:\n{}",
                    d.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        d
    }

    /// Spawns the process and waits until the socket answers.
    pub fn spawn(&mut self, adjust: impl FnOnce(&mut Command)) {
        let _no_pty_leaks = SPAWN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(&self.config)
            .arg("run")
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("WATCHDOG_USEC")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        adjust(&mut cmd);
        self.child = Some(cmd.spawn().expect("spawn posbridge"));
        drop(_no_pty_leaks);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("daemon exited early ({status}); log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("daemon did not come up; log:\n{}", self.log());
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    /// Everything the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    /// Sends a signal.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
    }

    /// Waits for the process to exit (panics after `limit`).
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                self.child = None;
                return s;
            }
            if Instant::now() > deadline {
                panic!("daemon did not exit; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Rewrites the config file; in central mode the service's too (it
    /// restarts when its ledger tables change).
    pub fn write_config(&self, daemon_extra: &str, rest: &str) {
        let rest = match &self.central {
            Some(side) => {
                side.reconfigure(rest);
                side.till_rest(rest)
            }
            None => rest.to_owned(),
        };
        std::fs::write(
            &self.config,
            config_text(self.dir.path(), daemon_extra, &rest),
        )
        .unwrap();
    }

    /// Runs the ledger's admin command: `posbridge ledger args…` on the
    /// till's books, or `posbridge-central args…` in central mode.
    pub fn ledger_cli(&self, args: &[&str]) -> std::process::Output {
        match &self.central {
            Some(side) => side.run(args),
            None => Command::new(BIN)
                .arg("--config")
                .arg(&self.config)
                .arg("ledger")
                .args(args)
                .env_remove("RUST_LOG")
                .output()
                .expect("run posbridge ledger"),
        }
    }

    /// The ledger's verify command finds nothing wrong.
    pub fn verify_ledger(&self) {
        let out = self.ledger_cli(&["verify"]);
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// What the ledger's store holds, as bytes to search for leaks: the
    /// SQLite file and its WAL, or every row of the central database as
    /// text (and the service's log, which must not leak either).
    pub fn ledger_bytes(&self) -> Vec<Vec<u8>> {
        match &self.central {
            Some(side) => vec![side.all_rows().into_bytes(), side.log().into_bytes()],
            None => ["posbridge.sqlite3", "posbridge.sqlite3-wal"]
                .iter()
                .map(|f| std::fs::read(self.dir.path().join("state").join(f)).unwrap_or_default())
                .collect(),
        }
    }

    /// Runs SQL statements (the dialect both stores share) straight on the
    /// ledger's database, for tests about reading what is there.
    pub fn ledger_sql(&self, sql: &str) {
        match &self.central {
            Some(side) => side.execute(sql),
            None => {
                let db =
                    rusqlite::Connection::open(self.dir.path().join("state/posbridge.sqlite3"))
                        .unwrap();
                db.busy_timeout(Duration::from_secs(10)).unwrap();
                db.execute_batch(sql).unwrap();
            }
        }
    }

    /// A connected client.
    pub async fn client(&self) -> Client {
        Client::unix(&self.socket).await.expect("connect")
    }

    /// A raw connection for malformed input.
    pub async fn raw(&self) -> RawConn {
        let s = tokio::net::UnixStream::connect(&self.socket).await.unwrap();
        RawConn::new(s)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A line-oriented raw connection.
pub struct RawConn {
    rd: tokio::io::BufReader<tokio::io::ReadHalf<tokio::net::UnixStream>>,
    wr: tokio::io::WriteHalf<tokio::net::UnixStream>,
}

impl RawConn {
    fn new(s: tokio::net::UnixStream) -> Self {
        let (r, w) = tokio::io::split(s);
        RawConn {
            rd: tokio::io::BufReader::new(r),
            wr: w,
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.wr.write_all(bytes).await
    }

    /// Next line as JSON, or None at EOF. Fails the test after 10 s.
    pub async fn recv(&mut self) -> Option<Value> {
        use tokio::io::AsyncBufReadExt;
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(10), self.rd.read_line(&mut line))
            .await
            .expect("no reply within 10 s")
            .ok()?;
        if n == 0 {
            return None;
        }
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}")))
    }
}

/// Polls `f` until it returns Some, up to 10 s.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A printer entry writing to a file in `dir`.
pub fn file_printer(name: &str, dir: &Path) -> String {
    format!(
        "[[printer]]\nname = \"{name}\"\ntype = \"escpos\"\n[printer.file]\npath = \"{}\"\n",
        dir.join(format!("{name}.bin")).display()
    )
}

/// Held while spawning daemons and while creating pty pairs: serialport
/// opens the pty master without close-on-exec, and a daemon spawned by a
/// parallel test in between would inherit it and keep the pty from ever
/// hanging up.
static SPAWN_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A pseudo-terminal pair: the device end (kept by the test) and the path
/// of the port the daemon opens.
pub fn pty_pair() -> (tokio_serial::SerialStream, String) {
    use std::os::fd::{AsRawFd, BorrowedFd};
    use tokio_serial::SerialPort;
    let _guard = SPAWN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let (device, host) = tokio_serial::SerialStream::pair().expect("pty pair");
    // SAFETY: the descriptor belongs to `device`, alive for this call.
    let fd = unsafe { BorrowedFd::borrow_raw(device.as_raw_fd()) };
    nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .expect("cloexec");
    let path = host.name().expect("pty name");
    (device, path)
}

/// The cashier's token in [`TcpTokens`]' token file.
#[allow(dead_code)]
pub const CASHIER_TOKEN: &str = "cashier-token-0123456789";
/// The admin's token in [`TcpTokens`]' token file.
#[allow(dead_code)]
pub const ADMIN_TOKEN: &str = "admin-token-0123456789ab";

/// A token file with one cashier and one admin token, and the `[daemon]`
/// lines that use it and listen on a free loopback TCP port: for tests of
/// roles, which a Unix socket client (root, so admin) cannot show.
#[allow(dead_code)]
pub struct TcpTokens {
    /// Goes into `Daemon::start`'s `daemon_extra`.
    pub daemon_extra: String,
    /// `127.0.0.1:port`.
    pub addr: String,
    // Kept so the file lives as long as the daemon reads it.
    _file: tempfile::NamedTempFile,
}

#[allow(dead_code)]
impl TcpTokens {
    /// A fresh token file and port.
    pub fn new() -> TcpTokens {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            file.path(),
            format!("# test\ncashier {CASHIER_TOKEN}\nadmin {ADMIN_TOKEN}\n"),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        TcpTokens {
            daemon_extra: format!(
                "token_file = \"{}\"\n[daemon.tcp]\nlisten = \"127.0.0.1:{port}\"\n",
                file.path().display()
            ),
            addr: format!("127.0.0.1:{port}"),
            _file: file,
        }
    }

    /// A TCP client logged in with `token`.
    pub async fn login(&self, token: &str) -> Client {
        let mut c = Client::tcp(&self.addr).await.unwrap();
        c.call("auth.login", serde_json::json!({ "token": token }))
            .await
            .unwrap();
        c
    }
}

/// The last code the `log` notifier wrote for `account`.
#[allow(dead_code)]
pub fn logged_code(d: &Daemon, account: i64) -> String {
    let log = d.log();
    let line = log
        .lines()
        .rfind(|l| l.contains("demo notifier") && l.contains(&format!("account={account} ")))
        .unwrap_or_else(|| panic!("no demo notifier line for {account}:\n{log}"));
    let at = line.find("code=").expect("code field") + 5;
    line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

/// `posbridge backoffice operator add NAME --role ROLE [--limit L]` on
/// `d`'s configuration, the password on stdin.
pub fn add_operator(d: &Daemon, name: &str, role: &str, limit: Option<&str>, password: &str) {
    use std::io::Write;
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(&d.config)
        .args(["backoffice", "operator", "add", name, "--role", role])
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(l) = limit {
        cmd.args(["--limit", l]);
    }
    let mut child = cmd.spawn().unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `fiscal.status` of the printer named `fiscal`, once `ready` holds for
/// it (the daemon reads the register every few seconds while idle; 10 s at
/// most).
pub async fn status_when(
    c: &mut posbridge::client::Client,
    what: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let st = c
            .call("fiscal.status", serde_json::json!({"printer": "fiscal"}))
            .await
            .unwrap();
        if ready(&st) {
            return st;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {st}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
