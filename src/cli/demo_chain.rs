//! `posbridge demo --chain`: a store chain on one machine, all real.
//!
//! A throwaway PostgreSQL cluster (the one the tests use, `posbridge-pgtest`),
//! the central service (`posbridge-central`, the binary beside this one) with
//! a store and two terminals issued by its admin command, and two till
//! daemons in central mode (this binary, each with its own temporary state
//! dir). The tills have no devices: the cashier types the card
//! (`card.enter`), which is all a chain's story needs. The story is told with
//! real JSON-RPC calls on the tills' sockets.
//!
//! Every process and directory is the demo's own and is removed when it
//! ends, whether the story finished, failed or was interrupted (SIGINT or
//! SIGTERM). If the demo itself is killed with SIGKILL, the cluster's
//! watchdog still stops PostgreSQL.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use posbridge_pgtest::Cluster;
use serde_json::{Value, json};
use tokio::signal::unix::{SignalKind, signal};

// The single-till demo's programme: the central service and both tills run
// it (a till compares its own with the central one at start).
use super::demo::{PROGRAMME, add_demo_admin, entries, print_backoffice, show, step};
use crate::client::Client;

/// The demo card and its secret code.
const CARD: &str = "6035000011112222";
const SECRET: &str = "4711";
/// The name of the central service's binary, looked for beside this one.
const CENTRAL_BIN: &str = "posbridge-central";
/// How long a process may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a process may take to stop on SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a JSON-RPC call or an admin command may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A child process of the demo, stopped (SIGTERM, then SIGKILL) and reaped
/// when dropped.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Result<Proc> {
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            // Its own process group: a Ctrl-C in the terminal reaches only
            // the demo, which then stops the tills before the service they
            // talk to.
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Proc {
            name: name.to_owned(),
            child,
            log,
        })
    }

    /// Fails, with the end of its log, if the process has exited.
    fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!(
                "{} exited with {status}; its log ends:\n{}",
                self.name,
                log_tail(&self.log)
            ),
            Err(e) => bail!("waiting for {}: {e}", self.name),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything the demo started. Fields drop in order: the tills, then the
/// service, then PostgreSQL, then the directory holding their files.
#[derive(Default)]
struct Parts {
    tills: Vec<Proc>,
    central: Option<Proc>,
    pg: Option<Cluster>,
    dir: Option<tempfile::TempDir>,
}

/// The end of a log file, for error messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(2000);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].to_owned()
}

/// `posbridge-central` beside the running binary.
fn central_bin() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the posbridge binary")?;
    let bin = exe
        .parent()
        .map(|d| d.join(CENTRAL_BIN))
        .ok_or_else(|| anyhow!("{} has no directory", exe.display()))?;
    if !bin.is_file() {
        bail!(
            "the central service's binary is not beside this one ({} is missing); \
             build the whole workspace with `cargo build --release --workspace` and run \
             target/release/posbridge demo --chain",
            bin.display()
        );
    }
    Ok(bin)
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// Runs `posbridge-central --config CONFIG ARGS`; its standard output.
async fn admin(bin: &Path, config: &Path, args: &[&str]) -> Result<String> {
    let run = tokio::process::Command::new(bin)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(CALL_TIMEOUT, run)
        .await
        .map_err(|_| {
            anyhow!(
                "posbridge-central {} took over {CALL_TIMEOUT:?}",
                args.join(" ")
            )
        })?
        .context("running posbridge-central")?;
    if !out.status.success() {
        bail!(
            "posbridge-central {} exited with {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Starts the service and waits until its health check answers.
async fn start_central(bin: &Path, config: &Path, url: &str, log: PathBuf) -> Result<Proc> {
    let mut cmd = Command::new(bin);
    cmd.arg("--config").arg(config).arg("serve");
    let mut p = Proc::spawn(CENTRAL_BIN, cmd, log)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        p.check_alive()?;
        if let Ok(r) = http.get(format!("{url}/v1/health")).send().await
            && r.status().is_success()
        {
            return Ok(p);
        }
        if Instant::now() > deadline {
            bail!(
                "posbridge-central did not answer within {START_TIMEOUT:?}; its log ends:\n{}",
                log_tail(&p.log)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A till daemon in central mode: its process and socket.
struct Till {
    socket: PathBuf,
    key_file: PathBuf,
}

/// Writes the till's configuration and key, starts it and waits for its
/// socket.
async fn start_till(dir: &Path, name: &str, central_url: &str, key: &str) -> Result<(Proc, Till)> {
    let home = dir.join(name);
    std::fs::create_dir(&home).with_context(|| format!("creating {}", home.display()))?;
    let key_file = home.join("terminal.key");
    write_private(&key_file, key)?;
    let socket = home.join("posbridge.sock");
    let config = home.join("posbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nsocket = \"{socket}\"\nstate_dir = \"{state}\"\nlog_level = \"warn\"\n\n\
             [ledger]\nbackend = \"central\"\n\n[ledger.central]\nurl = \"{central_url}\"\n\
             terminal = \"{name}\"\nkey_file = \"{key}\"\n\n{PROGRAMME}",
            socket = socket.display(),
            state = home.join("state").display(),
            key = key_file.display(),
        ),
    )?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("--config")
        .arg(&config)
        .arg("run")
        // A demo run from a systemd unit must not hand its socket or
        // readiness notification to the tills.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID");
    let mut p = Proc::spawn(name, cmd, home.join("daemon.log"))?;
    let deadline = Instant::now() + START_TIMEOUT;
    while Client::unix(&socket).await.is_err() {
        p.check_alive()?;
        if Instant::now() > deadline {
            bail!(
                "{name} did not open its socket within {START_TIMEOUT:?}; its log ends:\n{}",
                log_tail(&p.log)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let till = Till { socket, key_file };
    Ok((p, till))
}

/// Writes a secret readable by its owner only.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// One JSON-RPC call with a deadline; the error names the till and method.
async fn call(c: &mut Client, till: &str, method: &str, params: Value) -> Result<Value> {
    tokio::time::timeout(CALL_TIMEOUT, c.call(method, params))
        .await
        .map_err(|_| anyhow!("{till}: {method} took over {CALL_TIMEOUT:?}"))?
        .with_context(|| format!("{till}: {method}"))
}

/// The card's balance as `card.resolve` at a till shows it.
async fn balance(c: &mut Client, till: &str) -> Result<String> {
    let r = call(c, till, "card.resolve", json!({"number": CARD})).await?;
    r["account"]["balance"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("{till}: card.resolve without a balance: {r}"))
}

/// Shows the balance from both tills and checks both equal `expected`.
async fn balances(c1: &mut Client, c2: &mut Client, expected: &Value) -> Result<()> {
    let (b1, b2) = (balance(c1, "till-1").await?, balance(c2, "till-2").await?);
    println!("   balance at till 1: {b1}, at till 2: {b2}");
    if expected.as_str() != Some(b1.as_str()) || b1 != b2 {
        bail!("the balance does not add up: the reply said {expected}");
    }
    Ok(())
}

fn lines(total: &str) -> Value {
    json!([{"sku": "4601", "name": "Кофе в зёрнах", "category": "grocery", "qty": "1", "price": total}])
}

fn print_block(reply: &Value) {
    for l in reply["bonus_lines"].as_array().into_iter().flatten() {
        println!("   | {}", l.as_str().unwrap_or_default());
    }
}

/// Runs the chain demo; with `once` it exits after the story, else it
/// keeps the chain running until SIGINT or SIGTERM.
pub async fn run(once: bool) -> Result<()> {
    // Before anything starts: from here on a signal ends the story and the
    // parts are stopped in order.
    let mut int = signal(SignalKind::interrupt()).context("catching SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("catching SIGTERM")?;
    let mut parts = Parts::default();
    let result = tokio::select! {
        r = story(&mut parts, once) => r,
        _ = int.recv() => Err(anyhow!("interrupted")),
        _ = term.recv() => Err(anyhow!("terminated")),
    };
    if result.is_ok() && !once {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    }
    if parts.pg.is_some() {
        println!("\nStopping the tills, the central service and PostgreSQL.");
    }
    // Stopping waits for processes: off the async threads.
    tokio::task::spawn_blocking(move || drop(parts))
        .await
        .context("stopping the chain")?;
    result
}

async fn story(parts: &mut Parts, once: bool) -> Result<()> {
    let central = central_bin()?;
    let dir = tempfile::Builder::new()
        .prefix("posbridge-demo-")
        .tempdir()
        .context("temporary directory")?;
    let root = dir.path().to_owned();
    parts.dir = Some(dir);

    println!(
        "posbridge demo --chain: starting a throwaway PostgreSQL (initdb in a temporary directory)"
    );
    let pg = tokio::task::spawn_blocking(Cluster::start)
        .await
        .context("starting PostgreSQL")?
        .context("starting PostgreSQL")?;
    let (db_url, pg_pid, pg_port) = (pg.url(), pg.pid(), pg.port());
    let pg_dir = pg.data_dir().parent().unwrap_or(pg.data_dir()).to_owned();
    parts.pg = Some(pg);

    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let config = root.join("central.toml");
    // The chain's back office is the central one.
    let backoffice_port = free_port()?;
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[database]\nurl = \"{db_url}\"\npool_size = 4\n\n\
             [backoffice]\nlisten = \"127.0.0.1:{backoffice_port}\"\n\n{PROGRAMME}"
        ),
    )?;
    // migrate first, so the admin commands below find the schema.
    admin(&central, &config, &["migrate"]).await?;
    let password = add_demo_admin(&central, &config, &[]).await?;
    let p = start_central(&central, &config, &url, root.join("central.log")).await?;
    let central_pid = p.child.id();
    parts.central = Some(p);
    admin(
        &central,
        &config,
        &["store", "add", "S1", "--name", "Demo store"],
    )
    .await?;

    let mut tills = Vec::new();
    for name in ["till-1", "till-2"] {
        let out = admin(
            &central,
            &config,
            &["terminal", "add", name, "--store", "S1"],
        )
        .await?;
        // Its standard output is the key alone.
        let key = out
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .ok_or_else(|| anyhow!("terminal add printed no key"))?
            .to_owned();
        let (p, t) = start_till(&root, name, &url, &key).await?;
        parts.tills.push(p);
        tills.push(t);
    }
    let pids: Vec<String> = parts
        .tills
        .iter()
        .map(|p| format!("{}={}", p.name, p.child.id()))
        .collect();
    println!("PostgreSQL on 127.0.0.1:{pg_port}, posbridge-central on {url},");
    println!(
        "store S1 with terminals till-1 and till-2 (keys issued by `posbridge-central terminal add`),"
    );
    println!(
        "two till daemons in central mode, without devices (the cashier types the card): {} and {}",
        tills[0].socket.display(),
        tills[1].socket.display()
    );
    println!(
        "processes: postgres={pg_pid} posbridge-central={central_pid} {}",
        pids.join(" ")
    );
    println!(
        "files: {} and {} (PostgreSQL's)",
        root.display(),
        pg_dir.display()
    );

    let mut c1 = Client::unix(&tills[0].socket).await?;
    let mut c2 = Client::unix(&tills[1].socket).await?;

    step(
        1,
        "A customer registers at till 1 with her plastic card; the welcome bonus lands in the chain's ledger",
    );
    let reg = call(
        &mut c1,
        "till-1",
        "account.register",
        json!({"phone": "+7 916 555-01-02", "name": "Мария Иванова",
               "card_number": CARD, "secret": SECRET}),
    )
    .await?;
    show(
        "till 1 account.register",
        &json!({"account": reg["account"], "welcome_bonus": reg["welcome_bonus"], "expires": reg["welcome_expires_at"]}),
    );
    balances(&mut c1, &mut c2, &reg["welcome_bonus"]).await?;

    step(
        2,
        "She buys for 1 000,00 at till 1: 5 % comes back as points",
    );
    let card = call(
        &mut c1,
        "till-1",
        "card.enter",
        json!({"number": CARD, "secret": SECRET}),
    )
    .await?;
    let r = call(&mut c1, "till-1", "sale.commit", json!({"idempotency_key": "demo-1", "card_token": card["card_token"], "receipt_id": "R-0001", "lines": lines("1000")})).await?;
    show(
        "till 1 sale.commit",
        &json!({"receipt_id": "R-0001", "accrued": r["accrued"], "balance_after": r["balance_after"]}),
    );
    print_block(&r);
    balances(&mut c1, &mut c2, &r["balance_after"]).await?;

    step(
        3,
        "At till 2 she pays 100 of a 700,00 purchase with points: the chain's balance, not the till's",
    );
    let card = call(
        &mut c2,
        "till-2",
        "card.enter",
        json!({"number": CARD, "secret": SECRET}),
    )
    .await?;
    let token = card["card_token"].clone();
    let q = call(
        &mut c2,
        "till-2",
        "sale.quote",
        json!({"card_token": token, "lines": lines("700"), "redeem": "100"}),
    )
    .await?;
    show(
        "till 2 sale.quote",
        &json!({"max_redeemable": q["quote"]["max_redeemable"], "accrual": q["quote"]["accrual"]}),
    );
    let r = call(&mut c2, "till-2", "sale.commit", json!({"idempotency_key": "demo-2", "card_token": token, "receipt_id": "R-0002", "lines": lines("700"), "redeem": "100"})).await?;
    show(
        "till 2 sale.commit",
        &json!({"receipt_id": "R-0002", "redeemed": r["redeemed"], "money_paid": r["money_paid"], "accrued": r["accrued"], "balance_after": r["balance_after"]}),
    );
    print_block(&r);
    balances(&mut c1, &mut c2, &r["balance_after"]).await?;

    step(
        4,
        "She returns the first purchase at till 2: what till 1 accrued is taken back",
    );
    let r = call(
        &mut c2,
        "till-2",
        "sale.refund",
        json!({"idempotency_key": "demo-3", "receipt_id": "R-0001"}),
    )
    .await?;
    show(
        "till 2 sale.refund of R-0001",
        &json!({"clawback": r["clawback"], "returned": r["returned"], "balance_after": r["balance_after"]}),
    );
    balances(&mut c1, &mut c2, &r["balance_after"]).await?;
    let history = call(
        &mut c1,
        "till-1",
        "account.history",
        json!({"number": CARD, "limit": 10}),
    )
    .await?;
    println!("   till 1 account.history, newest first, with the till that wrote each:");
    for t in history["transactions"].as_array().into_iter().flatten() {
        println!(
            "   | #{:<3} {:<8} {:<7} {}",
            t["transaction"].as_i64().unwrap_or_default(),
            t["kind"].as_str().unwrap_or("?"),
            t["terminal"].as_str().unwrap_or("-"),
            entries(t)
        );
    }

    step(5, "The central service checks the chain's books");
    let out = admin(&central, &config, &["verify"]).await?;
    println!("   posbridge-central verify: {}", out.trim());
    if once {
        println!(
            "\nThe story is over; the chain stops. Run `posbridge demo --chain` without --once to keep it running."
        );
        return Ok(());
    }
    print_backoffice(backoffice_port, &password);
    println!("\nThe chain is running. Try, from another terminal:");
    let exe = std::env::current_exe()?;
    for t in &tills {
        println!(
            "  {} call --socket {} card.resolve '{{\"number\":\"{CARD}\"}}'",
            exe.display(),
            t.socket.display()
        );
    }
    println!("  curl {url}/v1/health");
    println!(
        "  curl -u till-1:\"$(cat {})\" -H 'content-type: application/json' -d '{{\"number\":\"{CARD}\"}}' {url}/v1/resolve",
        tills[0].key_file.display()
    );
    for cmd in ["terminal list", "verify", "export --format json"] {
        println!(
            "  {} --config {} {cmd}",
            central.display(),
            config.display()
        );
    }
    println!("  psql {db_url}");
    println!("Ctrl-C stops it all.");
    Ok(())
}
