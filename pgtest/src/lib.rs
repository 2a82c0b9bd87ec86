//! A throwaway PostgreSQL for posbridge's tests.
//!
//! [`Cluster::start`] finds Debian's PostgreSQL server (installing the
//! `postgresql` package when it is missing and we are root), runs `initdb`
//! in a fresh temporary directory, starts `postgres` on a free loopback port
//! and a private socket directory, and creates a database. Dropping the
//! [`Cluster`] stops the server and removes the directory. A test that
//! needs PostgreSQL never skips: when no server can be had, `start` fails
//! and says what to install.
//!
//! `fsync` stays on: the durability tests kill servers and count on what
//! was acknowledged being on disk.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, User, geteuid};

/// How long the server may take to accept connections after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a fast shutdown may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Attempts at a free port: another process may take the port between our
/// probe and the server's bind.
const PORT_ATTEMPTS: usize = 5;
/// The lock that keeps parallel test binaries from running apt at once.
const INSTALL_LOCK: &str = "/tmp/posbridge-pgtest-install.lock";
/// The database [`Cluster::url`] names.
pub const DEFAULT_DB: &str = "posbridge_test";
/// The cluster's superuser (initdb `-U`), whoever runs the tests.
pub const SUPERUSER: &str = "postgres";

/// Why a throwaway cluster could not be had.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No PostgreSQL server binaries, and they cannot be installed here.
    #[error(
        "PostgreSQL's server is not installed (no initdb from `pg_config --bindir` or in \
         /usr/lib/postgresql/*/bin) and {0}; install it with \
         `apt-get install postgresql` (Debian) and run the tests again"
    )]
    Missing(&'static str),
    /// Installing Debian's package failed.
    #[error("installing PostgreSQL failed: `{command}` exited with {status}: {tail}")]
    Install {
        /// What ran.
        command: String,
        /// How it ended.
        status: String,
        /// The end of its output.
        tail: String,
    },
    /// The `postgres` system account that must run the server is missing.
    #[error(
        "running as root, but there is no `postgres` user to run the server as \
         (initdb and postgres refuse root); Debian's postgresql package creates it"
    )]
    NoPostgresUser,
    /// A system call or a file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// initdb failed.
    #[error("initdb exited with {status}: {tail}")]
    Initdb {
        /// How it ended.
        status: String,
        /// The end of its output.
        tail: String,
    },
    /// The server did not come up.
    #[error("PostgreSQL did not start: {reason}; server log ends:\n{log_tail}")]
    Start {
        /// Why we gave up.
        reason: String,
        /// The end of the server's log.
        log_tail: String,
    },
    /// A statement against the cluster failed.
    #[error("{what}: {source}")]
    Sql {
        /// What was being done.
        what: String,
        /// The error.
        source: postgres::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// A running throwaway PostgreSQL cluster; stopped and removed on drop.
pub struct Cluster {
    child: Child,
    watchdog: Child,
    port: u16,
    socket_dir: PathBuf,
    data_dir: PathBuf,
    log: PathBuf,
    // Last: removed after the server stopped.
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("pid", &self.child.id())
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .finish()
    }
}

/// The OS account the server runs as, when it is not us (we are root).
#[derive(Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

impl Cluster {
    /// Starts a fresh cluster with an empty database [`DEFAULT_DB`].
    pub fn start() -> Result<Cluster, Error> {
        let bindir = server_bindir()?;
        let run_as = run_as()?;
        // As root, in /tmp: the postgres user must reach the directory, and
        // a TMPDIR under /root would stop it. /tmp also keeps the socket's
        // path within the 107 bytes a Unix socket address allows.
        let parent = match run_as {
            Some(_) => PathBuf::from("/tmp"),
            None => std::env::temp_dir(),
        };
        let dir = tempfile::Builder::new()
            .prefix("posbridge-pg-")
            .tempdir_in(&parent)
            .map_err(io("creating the cluster's temporary directory"))?;
        let data_dir = dir.path().join("data");
        let socket_dir = dir.path().join("socket");
        std::fs::create_dir(&socket_dir).map_err(io("creating the socket directory"))?;
        if let Some(r) = run_as {
            for p in [dir.path(), &socket_dir] {
                std::os::unix::fs::chown(p, Some(r.uid), Some(r.gid))
                    .map_err(io(format!("giving {} to the postgres user", p.display())))?;
            }
        }
        initdb(&bindir, &data_dir, run_as)?;
        let log = dir.path().join("server.log");
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            let mut child = spawn_server(&bindir, &data_dir, &socket_dir, &log, port, run_as)?;
            let mut watchdog = match spawn_watchdog(child.id(), dir.path()) {
                Ok(w) => w,
                Err(e) => {
                    stop(&mut child);
                    return Err(e);
                }
            };
            match wait_ready(&mut child, port, &log) {
                Ok(()) => {
                    let cluster = Cluster {
                        child,
                        watchdog,
                        port,
                        socket_dir,
                        data_dir,
                        log,
                        dir,
                    };
                    cluster.createdb(DEFAULT_DB)?;
                    return Ok(cluster);
                }
                Err(e) => {
                    stop(&mut child);
                    dismiss(&mut watchdog);
                    if !log_tail(&log).contains("could not bind") {
                        return Err(e);
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Start {
            reason: "no free port".into(),
            log_tail: String::new(),
        }))
    }

    /// A cluster shared by the tests of one binary that run at the same
    /// time: started by the first, stopped when the last drops its handle
    /// (a static would never be dropped and would leave the server
    /// running). Give each test its own database with [`Cluster::createdb`].
    pub fn shared() -> Result<Arc<Cluster>, Error> {
        static SHARED: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());
        let mut slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = slot.upgrade() {
            return Ok(c);
        }
        let c = Arc::new(Cluster::start()?);
        *slot = Arc::downgrade(&c);
        Ok(c)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The postmaster's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `postgres://` URL of [`DEFAULT_DB`] over TCP.
    pub fn url(&self) -> String {
        self.url_for(DEFAULT_DB)
    }

    /// A `postgres://` URL of database `db` over TCP.
    pub fn url_for(&self, db: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{db}", self.port)
    }

    /// A key=value connection string of database `db` over the Unix socket.
    pub fn socket_conninfo(&self, db: &str) -> String {
        format!(
            "host={} port={} user={SUPERUSER} dbname={db}",
            self.socket_dir.display(),
            self.port
        )
    }

    /// Creates database `name` (letters, digits and `_` only) and returns
    /// its URL.
    pub fn createdb(&self, name: &str) -> Result<String, Error> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(Error::Io {
                what: format!("database name {name:?}"),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "use letters, digits and _",
                ),
            });
        }
        let port = self.port;
        off_runtime(move || {
            connect(port, "postgres")?
                .batch_execute(&format!("CREATE DATABASE \"{name}\""))
                .map_err(|source| Error::Sql {
                    what: format!("creating database {name}"),
                    source,
                })
        })?;
        Ok(self.url_for(name))
    }

    /// A connection to database `db` as the superuser. The client is
    /// blocking: use (and drop) it outside async code.
    pub fn connect(&self, db: &str) -> Result<postgres::Client, Error> {
        connect(self.port, db)
    }

    /// The last lines of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }
}

/// Runs `f` on a thread of its own: the blocking `postgres` client starts
/// (and, dropped, runs) a runtime of its own, which tokio forbids on a
/// thread that drives async tasks, and the tests calling us are often
/// `#[tokio::test]`s.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

fn connect(port: u16, db: &str) -> Result<postgres::Client, Error> {
    let mut config = postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user(SUPERUSER)
        .dbname(db)
        .connect_timeout(Duration::from_secs(5));
    config
        .connect(postgres::NoTls)
        .map_err(|source| Error::Sql {
            what: format!("connecting to {db} on port {port}"),
            source,
        })
}

fn wait_ready(child: &mut Child, port: u16, log: &Path) -> Result<(), Error> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().map_err(io("waiting for the server"))? {
            return Err(Error::Start {
                reason: format!("the server exited with {status}"),
                log_tail: log_tail(log),
            });
        }
        match off_runtime(|| connect(port, "postgres").map(drop)) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(Error::Start {
                    reason: format!("not accepting connections after {START_TIMEOUT:?}: {e}"),
                    log_tail: log_tail(log),
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Stops the server: a fast shutdown (SIGINT to the postmaster, what
/// `pg_ctl stop -m fast` sends; we own the process, so no pid file is
/// needed), then SIGKILL if it has not exited in time.
fn stop(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Cluster {
    fn drop(&mut self) {
        stop(&mut self.child);
        dismiss(&mut self.watchdog);
        // The TempDir field removes the directory after this.
    }
}

/// A shell that stops the server and removes its directory if this process
/// dies without dropping the [`Cluster`] (a test binary killed by a
/// timeout): it waits for a line on a pipe only we hold, and end-of-file
/// without "done" means we are gone.
fn spawn_watchdog(postmaster: u32, dir: &Path) -> Result<Child, Error> {
    const SCRIPT: &str = r#"
        read -r word
        if [ "$word" != done ]; then
            kill -INT "$1" 2>/dev/null
            i=0
            while kill -0 "$1" 2>/dev/null && [ "$i" -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
            kill -KILL "$1" 2>/dev/null
            rm -rf "$2"
        fi"#;
    Command::new("/bin/sh")
        .args(["-c", SCRIPT, "pgtest-watchdog"])
        .arg(postmaster.to_string())
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io("starting the cluster's watchdog"))
}

/// Tells the watchdog we stopped the server ourselves, and reaps it.
fn dismiss(watchdog: &mut Child) {
    if let Some(mut pipe) = watchdog.stdin.take() {
        let _ = pipe.write_all(b"done\n");
    }
    let _ = watchdog.wait();
}

/// The directory of `initdb` and `postgres`, installing Debian's package
/// when they are missing and we may.
fn server_bindir() -> Result<PathBuf, Error> {
    if let Some(d) = find_bindir() {
        return Ok(d);
    }
    if !geteuid().is_root() {
        return Err(Error::Missing("we are not root, so cannot install it"));
    }
    // One installer at a time across the test binaries cargo runs; the
    // ones that waited find the server the first installed.
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(INSTALL_LOCK)
        .map_err(io(format!("opening {INSTALL_LOCK}")))?;
    lock.lock().map_err(io(format!("locking {INSTALL_LOCK}")))?;
    if let Some(d) = find_bindir() {
        return Ok(d);
    }
    apt(&["update"])?;
    apt(&["install", "-y", "--no-install-recommends", "postgresql"])?;
    find_bindir().ok_or(Error::Missing(
        "installing the postgresql package did not provide it",
    ))
}

fn apt(args: &[&str]) -> Result<(), Error> {
    let command = format!("apt-get {}", args.join(" "));
    let out = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .map_err(io(format!("running {command}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Install {
        command,
        status: out.status.to_string(),
        tail: tail_of(&[out.stdout, out.stderr].concat()),
    })
}

fn has_server(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}

fn find_bindir() -> Option<PathBuf> {
    // Debian's pg_config (libpq-dev) can name a bindir without a server in
    // it, so the binaries are checked, not trusted.
    if let Ok(out) = Command::new("pg_config")
        .arg("--bindir")
        .stderr(Stdio::null())
        .output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_server(&dir) {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_server(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, d)| d)
}

fn run_as() -> Result<Option<RunAs>, Error> {
    if !geteuid().is_root() {
        return Ok(None);
    }
    let user = User::from_name("postgres")
        .map_err(|e| Error::Io {
            what: "looking up the postgres user".into(),
            source: e.into(),
        })?
        .ok_or(Error::NoPostgresUser)?;
    Ok(Some(RunAs {
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
    }))
}

fn command(program: PathBuf, run_as: Option<RunAs>) -> Command {
    let mut c = Command::new(program);
    if let Some(r) = run_as {
        // std drops root's supplementary groups when it sets the uid.
        c.uid(r.uid).gid(r.gid);
    }
    c.stdin(Stdio::null()).env_remove("PGDATA");
    c
}

fn initdb(bindir: &Path, data_dir: &Path, run_as: Option<RunAs>) -> Result<(), Error> {
    // --no-sync only skips initdb's own fsyncs of the template files (a
    // fresh cluster that dies with the machine is not reused); the server
    // itself runs with fsync on.
    let out = command(bindir.join("initdb"), run_as)
        .arg("-D")
        .arg(data_dir)
        .args([
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
            "-U",
            SUPERUSER,
        ])
        .output()
        .map_err(io("running initdb"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Initdb {
        status: out.status.to_string(),
        tail: tail_of(&[out.stdout, out.stderr].concat()),
    })
}

fn spawn_server(
    bindir: &Path,
    data_dir: &Path,
    socket_dir: &Path,
    log: &Path,
    port: u16,
    run_as: Option<RunAs>,
) -> Result<Child, Error> {
    let out = File::create(log).map_err(io(format!("creating {}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(io(format!("opening {}", log.display())))?;
    command(bindir.join("postgres"), run_as)
        .arg("-D")
        .arg(data_dir)
        .arg("-k")
        .arg(socket_dir)
        .arg("-p")
        .arg(port.to_string())
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=on",
            "-c",
            "max_connections=200",
            // Several clusters may run at once on a small machine.
            "-c",
            "shared_buffers=32MB",
            "-c",
            "logging_collector=off",
        ])
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(io("starting postgres"))
}

fn free_port() -> Result<u16, Error> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    Ok(l.local_addr().map_err(io("finding a free port"))?.port())
}

/// The last 4 KiB of a file, as text.
fn log_tail(path: &Path) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(4096)));
    let mut buf = Vec::new();
    let _ = f.take(4096).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

fn tail_of(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(2048);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}
