//! What the benches share: env parameters, a free port, a
//! `posbridge-central serve` process on a throwaway PostgreSQL, latency
//! percentiles and the machine's CPU model. A subdirectory, so cargo does
//! not take it for a bench target of its own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CENTRAL_BIN: &str = env!("CARGO_BIN_EXE_posbridge-central");

/// The env var `name` parsed, or `default` when it is not set.
pub fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

/// `BENCH_TILL_BIN`, or the release build of the till daemon
/// (`cargo build --release --bin posbridge`).
pub fn till_bin() -> PathBuf {
    std::env::var_os("BENCH_TILL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/posbridge")
        })
}

/// Writes `dir/posbridge.toml` for a till daemon in central mode talking to
/// `url` as `terminal` with the key in `key_file`, its socket and state in
/// `dir`, `extra` appended; returns the socket's and the config's paths.
pub fn till_config(
    dir: &Path,
    url: &str,
    terminal: &str,
    key_file: &Path,
    extra: &str,
) -> (PathBuf, PathBuf) {
    let socket = dir.join("posbridge.sock");
    let config = dir.join("posbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\nlog_level = \"warn\"\n\n\
             [ledger]\nbackend = \"central\"\n\n[ledger.central]\nurl = \"{url}\"\n\
             terminal = \"{terminal}\"\nkey_file = \"{}\"\n{extra}",
            socket.display(),
            dir.join("state").display(),
            key_file.display(),
        ),
    )
    .unwrap();
    (socket, config)
}

/// `bin --config config run`: a till daemon, none of this process's
/// logging, systemd or socket-activation environment, no stdin or stdout
/// (the caller picks stderr and spawns it).
pub fn till_command(bin: &Path, config: &Path) -> Command {
    let mut c = Command::new(bin);
    c.arg("--config")
        .arg(config)
        .arg("run")
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LISTEN_FDS")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `posbridge-central serve` process; killed on drop.
pub struct Service {
    child: Child,
    pub addr: std::net::SocketAddr,
    config: PathBuf,
}

impl Service {
    /// Starts the service on `db_url` with a pool of `pool` connections,
    /// its config and log `name.toml` and `name.log` in `dir`, and adds
    /// store S1.
    pub fn start(dir: &Path, name: &str, db_url: &str, pool: usize) -> Service {
        let port = free_port();
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\nmax_concurrent_requests = 512\n\n\
                 [database]\nurl = \"{db_url}\"\npool_size = {pool}\n\n[ledger.programme]\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        let child = Command::new(CENTRAL_BIN)
            .arg("--config")
            .arg(&config)
            .arg("serve")
            // Requests are not logged one by one: the bench measures the service.
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn posbridge-central");
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "posbridge-central did not come up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let s = Service {
            child,
            addr,
            config,
        };
        s.admin(&["store", "add", "S1", "--name", "Bench"]);
        s
    }

    /// Runs an admin command; the last line it printed.
    pub fn admin(&self, args: &[&str]) -> String {
        let out = Command::new(CENTRAL_BIN)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run posbridge-central");
        assert!(
            out.status.success(),
            "posbridge-central {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let out = String::from_utf8_lossy(&out.stdout);
        out.lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or_default()
            .to_owned()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `p` quantile of `l` (sorted in place) in ms; NaN when empty.
pub fn pct(l: &mut [Duration], p: f64) -> f64 {
    if l.is_empty() {
        return f64::NAN;
    }
    l.sort_unstable();
    let i = ((l.len() as f64 - 1.0) * p).round() as usize;
    l[i].as_secs_f64() * 1000.0
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
