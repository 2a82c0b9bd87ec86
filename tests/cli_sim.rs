//! `posbridge sim printer`, `posbridge sim shtrih` and `posbridge print-test`
//! as a technician runs them: the real binary as a child process.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{BIN, Daemon};
use posbridge_drivers::sim::escpos::{EscPosSim, SimConfig};

const SAMPLE: &str = "Съешь же ещё этих мягких французских булок, да выпей чаю";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A simulator child whose stdout lines arrive on a channel (a thread reads
/// them, so waiting can time out); killed on drop.
struct SimChild {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl SimChild {
    fn start(args: &[&str]) -> SimChild {
        let mut child = Command::new(BIN)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn posbridge sim");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        SimChild {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits up to 10 s for a stdout line containing `needle`.
    fn wait_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {needle:?}; stdout so far: {:#?}", self.seen),
            }
        }
    }
}

impl Drop for SimChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the simulator");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

#[test]
fn sim_printer_shows_a_cut_receipt_as_text() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut sim = SimChild::start(&["sim", "printer", "--tcp", &addr, "--width", "32"]);
    sim.wait_line(&format!("listening on {addr}"));
    let mut s = connect(port);
    let mut bytes = vec![0x1B, b'@'];
    bytes.extend_from_slice(b"Hello from the test");
    bytes.extend_from_slice(&[b'\n', 0x1D, b'V', 66, 0]);
    s.write_all(&bytes).unwrap();
    sim.wait_line("Hello from the test");
    // The cut is drawn after the text.
    sim.wait_line("✂");
}

#[test]
fn sim_shtrih_answers_enq_with_nak_when_idle() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut sim = SimChild::start(&["sim", "shtrih", "--tcp", &addr]);
    sim.wait_line(&format!("listening on {addr}"));
    let mut s = connect(port);
    s.write_all(&[0x05]).unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    assert_eq!(b[0], 0x15, "ENQ with no answer pending gets NAK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_shtrih_shows_a_fiscal_receipt_printed_through_the_daemon() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut sim = SimChild::start(&["sim", "shtrih", "--tcp", &addr]);
    sim.wait_line(&format!("listening on {addr}"));
    let d = Daemon::start(
        "",
        &format!(
            "[[printer]]\nname = \"fiscal\"\ntype = \"shtrih\"\n\
             [printer.tcp]\nhost = \"127.0.0.1\"\nport = {port}\n"
        ),
    );
    let mut c = d.client().await;
    let r = c
        .call(
            "fiscal.receipt",
            serde_json::json!({
                "printer": "fiscal", "job_id": "cli-sim-1", "type": "sell",
                "items": [{"name": "Кофе в зёрнах", "price": "700.00", "quantity": "1", "tax": "vat22"}],
                "payments": [{"type": "cash", "sum": "700.00"}],
            }),
        )
        .await;
    assert!(r.is_ok(), "{r:?}\ndaemon log:\n{}", d.log());
    let sim_task = tokio::task::spawn_blocking(move || {
        // Both are there once the call returned; either may be read first.
        sim.wait_line("fiscal document");
        if !sim.seen.iter().any(|l| l.contains("Кофе в зёрнах")) {
            sim.wait_line("Кофе в зёрнах");
        }
        sim
    });
    let sim = sim_task.await.unwrap();
    assert!(
        sim.seen.iter().any(|l| l.contains("Кофе в зёрнах")),
        "{:#?}",
        sim.seen
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_shtrih_refuses_configured_marking_codes_and_keeps_documents_unsent() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut sim = SimChild::start(&[
        "sim",
        "shtrih",
        "--tcp",
        &addr,
        "--refuse-mark",
        "0104600000000001215BAD\\x1d93xyz",
        "--ofd-offline",
        "--fn-expires-in-days",
        "10",
    ]);
    sim.wait_line(&format!("listening on {addr}"));
    let d = Daemon::start(
        "",
        &format!(
            "[[printer]]\nname = \"fiscal\"\ntype = \"shtrih\"\n\
             [printer.tcp]\nhost = \"127.0.0.1\"\nport = {port}\n"
        ),
    );
    let mut c = d.client().await;
    let r = c
        .call(
            "fiscal.receipt",
            serde_json::json!({
                "printer": "fiscal", "job_id": "km-1", "type": "sell",
                "items": [{"name": "Аспирин", "price": "100.00", "quantity": "1", "tax": "vat10",
                           "marking_code": "0104600000000001215BAD\u{1d}93xyz"}],
                "payments": [{"type": "cash", "sum": "100.00"}],
            }),
        )
        .await;
    let Err(posbridge::client::ClientError::Rpc { error }) = r else {
        panic!("the refused code must fail the receipt: {r:?}\n{}", d.log())
    };
    assert_eq!(error["data"]["marking"][0]["accepted"], false, "{error}");
    c.call(
        "fiscal.cash_in",
        serde_json::json!({"printer": "fiscal", "job_id": "ci", "sum": "100.00"}),
    )
    .await
    .unwrap();
    // The FN state is read after each job: wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let st = loop {
        let st = c
            .call("fiscal.status", serde_json::json!({"printer": "fiscal"}))
            .await
            .unwrap();
        if st["status"]["fn"]["ofd"]["unsent"].as_u64().unwrap_or(0) >= 1 {
            break st;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no unsent documents: {st}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let sim = tokio::task::spawn_blocking(move || {
        sim.wait_line("ВНЕСЕНИЕ");
        sim
    })
    .await
    .unwrap();
    assert!(
        sim.seen.iter().any(|l| l.contains("КМ ОТКЛОНЕН")),
        "{:#?}",
        sim.seen
    );
    // The shift opened by the receipt is an FN document the OFD never got.
    let f = &st["status"]["fn"];
    assert!(f["warnings"].to_string().contains("fn_expiring"), "{f}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn print_test_prints_the_page_through_the_daemon() {
    let (addr, printer) = EscPosSim::new(SimConfig::default())
        .listen_tcp("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let d = Daemon::start(
        "",
        &format!(
            "[[printer]]\nname = \"receipt\"\ntype = \"escpos\"\nprofile = \"epson-tm-t20\"\npaper = \"80mm\"\n\
             [printer.tcp]\nhost = \"127.0.0.1\"\nport = {}\nconnect_timeout_ms = 500\n",
            addr.port()
        ),
    );
    let out = tokio::process::Command::new(BIN)
        .arg("print-test")
        .arg("receipt")
        .arg("--socket")
        .arg(&d.socket)
        .env_remove("POSBRIDGE_SOCKET")
        .env_remove("POSBRIDGE_TOKEN")
        .env_remove("POSBRIDGE_CONFIG")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "print-test failed: {stdout}{}\ndaemon log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    assert!(stdout.contains(": done"), "{stdout}");
    assert!(stdout.contains("unrepresentable characters: 0"), "{stdout}");

    let receipts = printer
        .wait_receipts(1, Duration::from_secs(10))
        .await
        .unwrap();
    let r = &receipts[0];
    // The sample is word-wrapped to the paper: join the lines back.
    let text = r
        .lines
        .iter()
        .map(|l| l.text.trim())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(text.contains(SAMPLE), "sample missing from {text:?}");
    assert!(
        text.contains("АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ"),
        "{text:?}"
    );
    assert!(
        text.contains("абвгдеёжзийклмнопрстуфхцчшщъыьэюя"),
        "{text:?}"
    );
    assert_eq!(r.qr.len(), 1);
    assert_eq!(r.barcodes.len(), 2, "{:?}", r.barcodes);
    assert!(r.cut.is_some());
}

#[test]
fn print_test_fails_for_an_unknown_printer() {
    let d = Daemon::start("", "");
    let out = Command::new(BIN)
        .args(["print-test", "nope", "--socket"])
        .arg(&d.socket)
        .env_remove("POSBRIDGE_SOCKET")
        .env_remove("POSBRIDGE_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nope"), "{stderr}");
}
