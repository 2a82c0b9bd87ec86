//! `posbridge demo`: the whole job on simulated devices, through the real
//! daemon and its socket.
//!
//! A magstripe reader and a QR scanner are pseudo-terminals this process
//! writes card data into; the receipt printer is the ESC/POS simulator on
//! loopback TCP, whose paper is shown in the terminal. The daemon is this
//! same binary, started as a child with a temporary state dir.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use posbridge_drivers::sim::escpos::{EscPosSim, EscPosSimHandle, SimConfig};
use posbridge_drivers::sim::shtrih::ShtrihSim;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio_serial::{SerialPort, SerialStream};

use crate::client::Client;

/// The demo card: track 2 with the secret code 4711 in its discretionary data.
const SWIPE: &[u8] = b"%B6035000011112222^IVANOVA/MARIA^4912101?\r;6035000011112222=49121014711?\r";

/// The demo's back office operator (an admin).
pub(crate) const DEMO_OPERATOR: &str = "demo";

/// A free loopback port for the back office (bound, then released).
pub(crate) fn free_loopback_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// Adds the demo's admin with a fresh random password through `bin`'s own
/// command (`args` lead to `operator add`); the password. A throwaway
/// password for a throwaway ledger: printed so a newcomer can log in.
pub(crate) async fn add_demo_admin(bin: &Path, config: &Path, args: &[&str]) -> Result<String> {
    let password = crate::random::hex::<8>(crate::random::system)?;
    let mut child = tokio::process::Command::new(bin)
        .arg("--config")
        .arg(config)
        .args(args)
        .args(["operator", "add", DEMO_OPERATOR, "--role", "admin"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("adding the demo's back office operator")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(format!("{password}\n").as_bytes()).await?;
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .context("adding the demo's back office operator took over 60 s")??;
    if !out.status.success() {
        bail!(
            "adding the demo's back office operator: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(password)
}

/// Prints where the back office is and how to log in.
pub(crate) fn print_backoffice(port: u16, password: &str) {
    println!("\nThe back office: http://127.0.0.1:{port}/");
    println!("  login: {DEMO_OPERATOR}  password: {password}");
}

/// The demo's token file, in its temporary directory.
const TOKEN_FILE: &str = "tokens";

/// Writes a token file (mode 0600) with one fresh cashier token; the
/// token. A throwaway token for a throwaway daemon: printed so a newcomer
/// can paste it into the web POS.
pub(crate) fn write_demo_token(dir: &Path) -> Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let token = crate::random::hex::<16>(crate::random::system)?;
    let path = dir.join(TOKEN_FILE);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(f, "cashier {token}")?;
    Ok(token)
}

/// Prints where the web POS is and the token to paste into it.
pub(crate) fn print_web_pos(port: u16, token: &str) {
    println!("\nThe web POS: http://127.0.0.1:{port}/pos/");
    println!("  token: {token}");
    println!("  (type the card 6035000011112222 with the secret code 4711 to sell with points)");
}

/// How the reader's shell reaches this binary: `posbridge` when a
/// `posbridge` on `PATH` is this very file, else its full path (after
/// `cargo run` nothing put it on `PATH`).
pub(crate) fn shell_name(exe: &std::path::Path) -> String {
    let same = |p: std::path::PathBuf| {
        std::fs::canonicalize(p)
            .ok()
            .zip(std::fs::canonicalize(exe).ok())
            .is_some_and(|(a, b)| a == b)
    };
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| same(d.join("posbridge"))));
    if on_path {
        "posbridge".into()
    } else {
        exe.display().to_string()
    }
}

/// Prints a step's heading: bold on a terminal, plain text when stdout is a
/// pipe or a file (a log should not fill with escape codes).
pub(crate) fn step(n: u32, text: &str) {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        println!("\n\x1b[1m{n}. {text}\x1b[0m");
    } else {
        println!("\n{n}. {text}");
    }
}

/// Prints one labelled JSON value of the story.
pub(crate) fn show(label: &str, v: &Value) {
    println!("   {label}: {v}");
}

struct Child(tokio::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

async fn pty() -> Result<(SerialStream, String)> {
    let (device, host) = SerialStream::pair().context("creating a pseudo-terminal")?;
    let path = host.name().context("pty without a name")?;
    drop(host);
    Ok((device, path))
}

/// The demo's loyalty programme: 5 % back, up to half a line paid with
/// points, a welcome bonus of 100.
pub(crate) const PROGRAMME: &str = r#"[ledger.programme]
name = "Demo club"
accrual_rounding = "down_to_whole"
default_accrual_percent = "5"
cap_percent = "50"
expiry_months = 6
utc_offset_minutes = 180
welcome_bonus = "100"
welcome_expiry_days = 30
"#;

fn config(
    dir: &Path,
    msr: &str,
    qr: &str,
    printer_port: u16,
    fiscal_port: u16,
    backoffice_port: u16,
    web_port: u16,
) -> String {
    format!(
        r#"[daemon]
socket = "{socket}"
state_dir = "{state}"
log_level = "warn"
token_file = "{tokens}"

# The web POS and posbridge.js are served on this port (/pos/).
[daemon.tcp]
listen = "127.0.0.1:{web_port}"

[backoffice]
listen = "127.0.0.1:{backoffice_port}"

{PROGRAMME}
[[reader]]
name = "msr"
type = "msr"
[reader.serial]
port = "{msr}"
[reader.card]
secret = "track2_discretionary"
secret_len = 4

[[reader]]
name = "qr"
type = "scanner"
[reader.serial]
port = "{qr}"
[reader.card]
# Only "number;secret" is a loyalty card: goods barcodes become scan events.
presets = ["number_secret"]

[[printer]]
name = "receipt"
type = "escpos"
profile = "xprinter"
paper = "58mm"
[printer.tcp]
host = "127.0.0.1"
port = {printer_port}

[[printer]]
name = "fiscal"
type = "shtrih"
[printer.tcp]
host = "127.0.0.1"
port = {fiscal_port}
"#,
        socket = dir.join("posbridge.sock").display(),
        state = dir.join("state").display(),
        tokens = dir.join(TOKEN_FILE).display(),
    )
}

async fn next_event(c: &mut Client, topic: &str) -> Result<Value> {
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), c.next_notification())
            .await
            .with_context(|| format!("no {topic} within 10 s"))??;
        if n["params"]["topic"] == topic {
            return Ok(n["params"].clone());
        }
    }
}

async fn show_receipt(printer: &EscPosSimHandle, n: usize) -> Result<()> {
    let receipts = printer
        .wait_receipts(n, Duration::from_secs(10))
        .await
        .map_err(|e| anyhow::anyhow!("the printer produced no receipt: {e:?}"))?;
    if let Some(r) = receipts.get(n - 1) {
        println!("   the receipt as the paper shows it:");
        for line in r.render_text(32).lines() {
            println!("   | {line}");
        }
    }
    Ok(())
}

fn lines(total: &str) -> Value {
    json!([
        {"sku": "4601", "name": "Кофе в зёрнах", "category": "grocery", "qty": "1", "price": total},
    ])
}

/// Runs the demo; with `once` it exits after the story.
pub async fn run(once: bool) -> Result<()> {
    let dir = tempfile::tempdir().context("temporary state dir")?;
    let (printer_addr, printer) = EscPosSim::new(SimConfig::default())
        .listen_tcp("127.0.0.1:0".parse()?)
        .context("starting the printer simulator")?;
    let fiscal = ShtrihSim::new();
    let (fiscal_addr, _fiscal_handle) = fiscal
        .spawn_tcp("127.0.0.1:0".parse()?)
        .context("starting the fiscal register emulator")?;
    let (mut msr, msr_path) = pty().await?;
    let (mut qr, qr_path) = pty().await?;
    let cfg = dir.path().join("posbridge.toml");
    let backoffice_port = free_loopback_port()?;
    let web_port = free_loopback_port()?;
    let web_token = write_demo_token(dir.path())?;
    std::fs::write(
        &cfg,
        config(
            dir.path(),
            &msr_path,
            &qr_path,
            printer_addr.port(),
            fiscal_addr.port(),
            backoffice_port,
            web_port,
        ),
    )?;
    let socket: PathBuf = dir.path().join("posbridge.sock");

    println!("posbridge demo: simulated magstripe reader {msr_path}, QR scanner {qr_path},");
    println!(
        "ESC/POS printer on {printer_addr}, Shtrih-M fiscal register on {fiscal_addr},\nembedded ledger in {}",
        dir.path().display()
    );
    let exe = std::env::current_exe()?;
    let _daemon = Child(
        tokio::process::Command::new(exe)
            .arg("--config")
            .arg(&cfg)
            .arg("run")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting the daemon")?,
    );
    let mut c = loop {
        if let Ok(c) = Client::unix(&socket).await {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    c.call(
        "events.subscribe",
        json!({"topics": ["card.*", "device.status", "ledger.*", "scan"]}),
    )
    .await?;
    // Readers open their ports asynchronously.
    let mut ready = 0;
    while ready < 2 {
        let devs = c.call("devices.list", json!({})).await?;
        ready = devs["devices"].as_array().map_or(0, |d| {
            d.iter()
                .filter(|d| d["class"] == "reader" && d["status"] == "connected")
                .count()
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    step(
        0,
        "A customer registers at the till with her plastic card; the welcome bonus lands",
    );
    let reg = c
        .call(
            "account.register",
            json!({"phone": "+7 916 555-01-02", "name": "Мария Иванова",
                   "card_number": "6035000011112222", "secret": "4711"}),
        )
        .await?;
    show(
        "account.register",
        &json!({"account": reg["account"], "kind": reg["kind"], "welcome_bonus": reg["welcome_bonus"], "expires": reg["welcome_expires_at"]}),
    );
    let virt = c
        .call(
            "account.register",
            json!({"email": "oleg@example.ru", "virtual": true}),
        )
        .await?;
    show(
        "account.register (virtual card)",
        &json!({"card_number": virt["card_number"], "secret_shown_once": virt["secret"]}),
    );

    step(
        1,
        "She swipes her card (track data written into the reader's pty): it arrives resolved",
    );
    msr.write_all(SWIPE).await?;
    let read = next_event(&mut c, "card.read").await?;
    show(
        "card.read",
        &json!({"reader": read["reader"], "card": read["card_masked"], "has_secret": read["has_secret"], "account": read["account"]}),
    );
    let token = read["card_token"].as_str().unwrap_or_default().to_owned();

    step(
        2,
        "A purchase of 1 000,00 earns 5 %; the bonus block is printed",
    );
    let r = c
        .call("sale.commit", json!({"idempotency_key": "demo-1", "card_token": token, "receipt_id": "R-0001", "lines": lines("1000"), "print": {"printer": "receipt"}}))
        .await?;
    show(
        "sale.commit",
        &json!({"accrued": r["accrued"], "balance_after": r["balance_after"], "expires": r["accrued_expires_at"]}),
    );
    show_receipt(&printer, 1).await?;

    step(
        3,
        "Next visit: the cashier scans a product (EAN-13) and a medicine's marking code (GS1 DataMatrix); both arrive as scan events",
    );
    qr.write_all(b"]E04006381333931\r").await?;
    let scan = next_event(&mut c, "scan").await?;
    show(
        "scan",
        &json!({"symbology": scan["symbology"], "label": scan["label"]}),
    );
    qr.write_all(
        b"]d20104601662000016215RNef*ex0>P5\x1d91EE06\x1d92YWCXbmK6SN8vvwoxZFk7WAY8WoJNMGGr6Cgtiuja04c=\r",
    )
    .await?;
    let scan = next_event(&mut c, "scan").await?;
    show(
        "scan",
        &json!({"symbology": scan["symbology"], "gtin": scan["gs1"]["gtin"], "serial": scan["gs1"]["serial"], "marking_code_len": scan["marking_code"].as_str().map(str::len)}),
    );
    println!(
        "   Then she scans the QR code on her card (number;secret): the card arrives resolved"
    );
    qr.write_all(b"]Q16035000011112222;4711\r").await?;
    let read = next_event(&mut c, "card.read").await?;
    show(
        "card.read",
        &json!({"reader": read["reader"], "source": read["source"], "symbology": read["symbology"], "balance": read["account"]["balance"]}),
    );
    let token = read["card_token"].as_str().unwrap_or_default().to_owned();

    step(
        4,
        "A 700,00 sale: quote, then pay 30 points and 670,00 money",
    );
    let q = c
        .call(
            "sale.quote",
            json!({"card_token": token, "lines": lines("700"), "redeem": "30"}),
        )
        .await?;
    show(
        "sale.quote",
        &json!({"max_redeemable": q["quote"]["max_redeemable"], "accrual": q["quote"]["accrual"]}),
    );
    let r = c
        .call("sale.commit", json!({"idempotency_key": "demo-2", "card_token": token, "receipt_id": "R-0002", "lines": lines("700"), "redeem": "30", "print": {"printer": "receipt"}}))
        .await?;
    let sale = r["transaction"].clone();
    show(
        "sale.commit",
        &json!({"redeemed": r["redeemed"], "money_paid": r["money_paid"], "accrued": r["accrued"], "balance_after": r["balance_after"]}),
    );
    show_receipt(&printer, 2).await?;
    // The same sale on the fiscal register, the bonus block in its text.
    let f = c
        .call(
            "fiscal.receipt",
            json!({
                "printer": "fiscal", "job_id": "demo-fiscal-2", "type": "sell",
                "items": [{"name": "Кофе в зёрнах", "price": "700.00", "quantity": "1", "tax": "vat22"}],
                "payments": [{"type": "cash", "sum": "670.00"}, {"type": "points", "sum": "30.00"}],
                "post_text": r["bonus_lines"],
            }),
        )
        .await?;
    show("fiscal.receipt", &f);
    if let Some(tape) = fiscal.receipts().last() {
        println!("   the fiscal register's tape:");
        for line in tape {
            println!("   | {line}");
        }
    }

    step(
        5,
        "She returns half of it: half the accrual comes back, half the spent points return",
    );
    let r = c
        .call(
            "sale.refund",
            json!({"idempotency_key": "demo-3", "transaction": sale, "amount": "350"}),
        )
        .await?;
    show(
        "sale.refund",
        &json!({"clawback": r["clawback"], "returned": r["returned"], "balance_after": r["balance_after"]}),
    );
    let resolved = c
        .call("card.resolve", json!({"number": "6035000011112222"}))
        .await?;
    show("card.resolve", &resolved["account"]);
    if resolved["account"]["balance"] != r["balance_after"] {
        bail!("the balance does not add up");
    }
    let history = c
        .call(
            "account.history",
            json!({"number": "6035000011112222", "limit": 10}),
        )
        .await?;
    println!("   account.history, newest first:");
    for t in history["transactions"].as_array().into_iter().flatten() {
        println!(
            "   | #{:<3} {:<8} {}",
            t["transaction"],
            t["kind"].as_str().unwrap_or("?"),
            entries(t)
        );
    }

    if once {
        // The daemon stops with the demo: no address to open, no commands
        // to try.
        println!(
            "\nThe story is over; the daemon stops. Run `posbridge demo` without --once to keep it running."
        );
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let password = add_demo_admin(&exe, &cfg, &["backoffice"]).await?;
    println!("\nThe daemon is running on {}.", socket.display());
    print_backoffice(backoffice_port, &password);
    print_web_pos(web_port, &web_token);
    println!("\nTry, from another terminal:");
    let s = socket.display();
    let me = shell_name(&exe);
    println!("  {me} call --socket {s} devices.list");
    println!("  {me} call --socket {s} card.resolve '{{\"number\":\"6035000011112222\"}}'");
    println!("  {me} events --socket {s} 'card.*'");
    println!("Ctrl-C stops it.");
    tokio::signal::ctrl_c().await?;
    Ok(())
}

/// A history transaction's entries as one line: `accrue 50, redeem -10`.
pub(super) fn entries(t: &Value) -> String {
    t["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            format!(
                "{} {}",
                e["kind"].as_str().unwrap_or("?"),
                e["amount"].as_str().unwrap_or("?")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
