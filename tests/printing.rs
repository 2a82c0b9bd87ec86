//! Receipt printing end to end: print.document over the socket, the durable
//! queue, the printer actor, and the ESC/POS simulator on loopback TCP.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::Daemon;
use posbridge::client::{Client, ClientError};
use posbridge_drivers::sim::escpos::{EscPosSim, EscPosSimHandle, SimConfig, SimFault};
use serde_json::{Value, json};

fn printer_entry(port: u16) -> String {
    format!(
        "[[printer]]\nname = \"receipt\"\ntype = \"escpos\"\nprofile = \"epson-tm-t20\"\n\
         [printer.tcp]\nhost = \"127.0.0.1\"\nport = {port}\nconnect_timeout_ms = 500\n"
    )
}

fn doc(n: usize) -> Value {
    json!({"blocks": [
        {"type": "text", "text": format!("Чек {n}"), "bold": true},
        {"type": "text", "text": "Бонусы: 120,00"},
        {"type": "cut", "partial": true}
    ]})
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_sim(port: u16) -> EscPosSimHandle {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    EscPosSim::new(SimConfig::default())
        .listen_tcp(addr)
        .unwrap()
        .1
}

fn texts(h: &EscPosSimHandle) -> Vec<String> {
    h.paper()
        .receipts
        .iter()
        .map(|r| r.lines.first().map(|l| l.text.clone()).unwrap_or_default())
        .collect()
}

async fn print(c: &mut Client, job: &str, n: usize) -> Value {
    c.call(
        "print.document",
        json!({"printer": "receipt", "job_id": job, "document": doc(n)}),
    )
    .await
    .unwrap()
}

/// Polls `print.status` until the job is in `state` (and `detail`).
async fn wait_job(c: &mut Client, job: &str, state: &str, detail: Option<&str>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let j = c
            .call("print.status", json!({"job_id": job}))
            .await
            .unwrap();
        if j["state"] == state && detail.is_none_or(|d| j["detail"] == d) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{job} never {state}: {j}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn wait_done(c: &mut Client, job: &str) {
    wait_job(c, job, "done", None).await;
}

#[tokio::test]
async fn a_document_prints_once_with_cyrillic_and_a_repeat_prints_nothing() {
    let port = free_port();
    let sim = start_sim(port);
    let d = Daemon::start("", &printer_entry(port));
    let mut c = d.client().await;
    let r = print(&mut c, "j1", 1).await;
    assert_eq!(r["state"], "queued");
    let receipts = sim.wait_receipts(1, Duration::from_secs(10)).await.unwrap();
    assert_eq!(receipts[0].lines[0].text, "Чек 1");
    assert!(receipts[0].lines[0].bold);
    assert_eq!(receipts[0].lines[1].text, "Бонусы: 120,00");
    wait_done(&mut c, "j1").await;

    // The same job again: the same job back, nothing printed. A second job
    // behind it proves the queue moved on without printing the repeat.
    assert_eq!(print(&mut c, "j1", 1).await["seq"], r["seq"]);
    print(&mut c, "j2", 2).await;
    sim.wait_receipts(2, Duration::from_secs(10)).await.unwrap();
    wait_done(&mut c, "j2").await;
    assert_eq!(texts(&sim), vec!["Чек 1", "Чек 2"]);
    // Same id, different document: refused.
    let err = c
        .call(
            "print.document",
            json!({"printer": "receipt", "job_id": "j1", "document": doc(9)}),
        )
        .await
        .unwrap_err();
    let ClientError::Rpc { error } = err else {
        panic!()
    };
    assert_eq!(error["code"], 1202);
}

/// Characters the code page lacks: dashes, typographic quotes and € get
/// the stand-ins a reader expects, on paper; the rest print as `?` and the
/// job's result names them.
#[tokio::test]
async fn characters_the_code_page_lacks_get_stand_ins_or_are_named() {
    let port = free_port();
    let sim = start_sim(port);
    let d = Daemon::start("", &printer_entry(port));
    let mut c = d.client().await;
    let document = json!({"blocks": [
        {"type": "text", "text": "«Ёлка» — 5€ ☃"},
        {"type": "cut", "partial": true}
    ]});
    c.call(
        "print.document",
        json!({"printer": "receipt", "job_id": "cp", "document": document}),
    )
    .await
    .unwrap();
    let receipts = sim.wait_receipts(1, Duration::from_secs(10)).await.unwrap();
    assert_eq!(receipts[0].lines[0].text, "\"Ёлка\" - 5EUR ?");
    wait_done(&mut c, "cp").await;
    let j = c
        .call("print.status", json!({"job_id": "cp"}))
        .await
        .unwrap();
    assert_eq!(j["unrepresentable"], 1, "{j}");
    assert!(
        j["detail"].as_str().unwrap_or("").contains("☃ (U+2603)"),
        "{j}"
    );
}

#[tokio::test]
async fn a_bad_document_is_refused_before_it_is_queued() {
    let port = free_port();
    let _sim = start_sim(port);
    let d = Daemon::start("", &printer_entry(port));
    let mut c = d.client().await;
    let bad = json!({"blocks": [{"type": "barcode", "kind": "ean13", "data": "12ab"}]});
    let err = c
        .call(
            "print.document",
            json!({"printer": "receipt", "job_id": "b", "document": bad}),
        )
        .await
        .unwrap_err();
    let ClientError::Rpc { error } = err else {
        panic!()
    };
    assert_eq!(error["code"], -32602);
    assert_eq!(error["data"]["field"], "document.blocks[0].data");
    let err = c
        .call("print.status", json!({"job_id": "b"}))
        .await
        .unwrap_err();
    let ClientError::Rpc { error } = err else {
        panic!()
    };
    assert_eq!(error["code"], 1203);
    let err = c
        .call(
            "print.document",
            json!({"printer": "nope", "job_id": "x", "document": doc(1)}),
        )
        .await
        .unwrap_err();
    let ClientError::Rpc { error } = err else {
        panic!()
    };
    assert_eq!(error["code"], 1201);
}

#[tokio::test]
async fn paper_end_mid_queue_holds_then_resumes_in_order_once_each() {
    let port = free_port();
    let sim = start_sim(port);
    let d = Daemon::start("", &printer_entry(port));
    let mut c = d.client().await;
    let mut events = d.client().await;
    events
        .call(
            "events.subscribe",
            json!({"topics": ["job.status", "printer.status"]}),
        )
        .await
        .unwrap();
    for i in 0..5 {
        print(&mut c, &format!("p{i}"), i).await;
    }
    sim.wait_receipts(5, Duration::from_secs(20)).await.unwrap();
    wait_done(&mut c, "p4").await;
    sim.set_fault(SimFault::PaperEnd);
    for i in 5..20 {
        print(&mut c, &format!("p{i}"), i).await;
    }
    // The queue holds: the next job waits on paper end.
    wait_job(&mut c, "p5", "held", Some("paper end")).await;
    assert_eq!(sim.paper().receipts.len(), 5);
    sim.set_fault(SimFault::None);
    sim.wait_receipts(20, Duration::from_secs(60))
        .await
        .unwrap();
    wait_done(&mut c, "p19").await;
    let expected: Vec<String> = (0..20).map(|i| format!("Чек {i}")).collect();
    assert_eq!(texts(&sim), expected);
    // job.status and printer.status events went out.
    let mut saw_held = false;
    let mut saw_paper_end = false;
    while !(saw_held && saw_paper_end) {
        let n = tokio::time::timeout(Duration::from_secs(5), events.next_notification())
            .await
            .expect("events")
            .unwrap();
        let p = &n["params"];
        saw_held |= p["topic"] == "job.status" && p["state"] == "held";
        saw_paper_end |= p["topic"] == "printer.status" && p["status"]["paper_end"] == true;
    }
}

#[tokio::test]
async fn a_cutter_error_holds_the_queue_and_is_reported() {
    let port = free_port();
    let sim = start_sim(port);
    let d = Daemon::start("", &printer_entry(port));
    let mut c = d.client().await;
    let mut events = d.client().await;
    events
        .call("events.subscribe", json!({"topics": ["printer.status"]}))
        .await
        .unwrap();
    print(&mut c, "c0", 0).await;
    wait_done(&mut c, "c0").await;
    // DLE EOT 2 says "error"; only DLE EOT 3 tells which.
    for (fault, flag) in [
        (SimFault::CutterError, "cutter_error"),
        (SimFault::UnrecoverableError, "unrecoverable_error"),
    ] {
        sim.set_fault(fault);
        let job = format!("c-{flag}");
        print(&mut c, &job, 1).await;
        wait_job(&mut c, &job, "held", Some("printer error")).await;
        loop {
            let n = tokio::time::timeout(Duration::from_secs(10), events.next_notification())
                .await
                .expect("a printer.status event naming the error")
                .unwrap();
            if n["params"]["status"][flag] == true {
                break;
            }
        }
        // printers.list shows the last status too.
        let list = c.call("printers.list", json!({})).await.unwrap();
        let p = &list["printers"][0];
        assert_eq!(p["printer_status"][flag], true, "{p}");
        sim.set_fault(SimFault::None);
        wait_done(&mut c, &job).await;
    }
    assert_eq!(sim.paper().receipts.len(), 3);
}

#[tokio::test]
async fn jobs_wait_for_a_printer_that_is_down_and_survive_a_restart() {
    let port = free_port();
    let mut d = Daemon::start("", &printer_entry(port));
    let mut c = d.client().await;
    for i in 0..3 {
        print(&mut c, &format!("w{i}"), i).await;
    }
    // Nothing listens: the jobs wait. Kill the daemon hard.
    d.signal(nix::sys::signal::Signal::SIGKILL);
    d.wait_exit(Duration::from_secs(10));
    let _ = std::fs::remove_file(&d.socket);
    d.spawn(|_| {});
    let sim = start_sim(port);
    let receipts = sim.wait_receipts(3, Duration::from_secs(30)).await.unwrap();
    let mut c = d.client().await;
    wait_done(&mut c, "w2").await;
    assert_eq!(receipts.len(), 3);
    assert_eq!(texts(&sim), vec!["Чек 0", "Чек 1", "Чек 2"]);
    let list = c.call("printers.list", json!({})).await.unwrap();
    assert_eq!(list["printers"][0]["queued"], 0);
}

#[tokio::test]
async fn cancel_takes_only_waiting_jobs() {
    let port = free_port();
    let d = Daemon::start("", &printer_entry(port));
    let mut c = d.client().await;
    print(&mut c, "c1", 1).await;
    let r = c
        .call("print.cancel", json!({"job_id": "c1"}))
        .await
        .unwrap();
    assert_eq!(r["state"], "cancelled");
    let sim = start_sim(port);
    print(&mut c, "c2", 2).await;
    sim.wait_receipts(1, Duration::from_secs(30)).await.unwrap();
    wait_done(&mut c, "c2").await;
    assert_eq!(texts(&sim), vec!["Чек 2"]);
    let err = c
        .call("print.cancel", json!({"job_id": "c2"}))
        .await
        .unwrap_err();
    let ClientError::Rpc { error } = err else {
        panic!()
    };
    assert_eq!(error["code"], 1204);
}

#[tokio::test]
async fn sale_commit_prints_the_bonus_block_once() {
    let port = free_port();
    let sim = start_sim(port);
    let d = Daemon::start("", &printer_entry(port));
    let mut c = d.client().await;
    let sale = json!({
        "idempotency_key": "s1", "number": "6035000011112222", "receipt_id": "R1",
        "lines": [{"sku": "1", "name": "x", "category": "g", "qty": "1", "price": "1000"}],
        "print": {"printer": "receipt"}
    });
    let r = c.call("sale.commit", sale.clone()).await.unwrap();
    assert_eq!(r["print_job"]["job_id"], "bonus-s1");
    // A retried commit: the same result, no second block.
    let again = c.call("sale.commit", sale).await.unwrap();
    assert_eq!(again["transaction"], r["transaction"]);
    wait_done(&mut c, "bonus-s1").await;
    let receipts = sim.wait_receipts(1, Duration::from_secs(10)).await.unwrap();
    // The TM-T20 on 80 mm paper lays out 48 columns.
    let text = receipts[0].render_text(48);
    assert!(text.contains("Начислено бонусов"), "{text}");
    assert!(text.contains("****2222"), "{text}");
    assert_eq!(sim.paper().receipts.len(), 1);
}

fn usb_entry(device: &std::path::Path, profile: &str) -> String {
    format!(
        "[[printer]]\nname = \"receipt\"\ntype = \"escpos\"\nprofile = \"{profile}\"\n\
         [printer.usb]\ndevice = \"{}\"\n",
        device.display()
    )
}

/// A pty stands in for `/dev/usb/lp0`: the `usb` transport opens any
/// character device, and a pty answers reads like a bidirectional usblp.
#[tokio::test]
async fn status_is_read_over_a_usb_printer_node() {
    let (path, sim) = EscPosSim::new(SimConfig::default()).open_pty().unwrap();
    sim.set_fault(SimFault::PaperEnd);
    let d = Daemon::start("", &usb_entry(&path, "epson-tm-t20"));
    let mut c = d.client().await;
    print(&mut c, "u1", 1).await;
    // Held on the status read over the device node, not written blind.
    wait_job(&mut c, "u1", "held", Some("paper end")).await;
    assert!(sim.paper().receipts.is_empty());
    assert_eq!(
        sim.paper().status_requests,
        0,
        "a faulted sim parses nothing"
    );
    sim.set_fault(SimFault::None);
    sim.wait_receipts(1, Duration::from_secs(20)).await.unwrap();
    wait_done(&mut c, "u1").await;
    assert_eq!(texts(&sim), vec!["Чек 1"]);
    assert!(
        sim.paper().status_requests > 0,
        "DLE EOT went over the node"
    );
}

#[tokio::test]
async fn a_silent_usb_printer_is_unknown_unless_its_profile_never_answers() {
    let silent = SimConfig {
        answer_status: false,
    };
    let (path, sim) = EscPosSim::new(silent).open_pty().unwrap();
    let d = Daemon::start("", &usb_entry(&path, "epson-tm-t20"));
    let mut c = d.client().await;
    print(&mut c, "s1", 1).await;
    // No reply within the timeout: unknown, so the job waits.
    wait_job(&mut c, "s1", "held", Some("no status reply (offline?)")).await;
    assert!(sim.paper().receipts.is_empty());
    drop(d);

    // pos-5890 never answers (status_reply = false): printed blind.
    let (path, sim) = EscPosSim::new(silent).open_pty().unwrap();
    let d = Daemon::start("", &usb_entry(&path, "pos-5890"));
    let mut c = d.client().await;
    print(&mut c, "s2", 2).await;
    wait_done(&mut c, "s2").await;
    // No cutter on this model: the receipt stays on the roll, uncut.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sim.paper().current.lines.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "{:?}", sim.paper());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(sim.paper().current.lines[0].text, "Чек 2");
    assert_eq!(sim.paper().status_requests, 0);
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG file");
    assert_eq!(&png[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes([png[i], png[i + 1], png[i + 2], png[i + 3]]);
    (be(16), be(20))
}

#[test]
fn preview_renders_a_document_and_the_test_page_without_a_printer() {
    let dir = tempfile::tempdir().unwrap();
    let doc_path = dir.path().join("doc.json");
    std::fs::write(&doc_path, doc(7).to_string()).unwrap();
    let out = dir.path().join("doc.png");
    let run = std::process::Command::new(common::BIN)
        .args([
            "preview",
            "--profile",
            "epson-tm-t20",
            "--paper",
            "58mm",
            "--document",
        ])
        .arg(&doc_path)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    let (w, h) = png_size(&std::fs::read(&out).unwrap());
    assert_eq!(w, 420, "epson-tm-t20 on 58 mm paper");
    assert!(h > 24, "{h} rows");

    // A bad document names the field and writes nothing.
    std::fs::write(
        &doc_path,
        json!({"blocks": [{"type": "barcode", "kind": "ean13", "data": "12"}]}).to_string(),
    )
    .unwrap();
    let bad = dir.path().join("bad.png");
    let run = std::process::Command::new(common::BIN)
        .args(["preview", "--document"])
        .arg(&doc_path)
        .arg("--out")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("blocks[0].data"), "{err}");
    assert!(!bad.exists());

    // print-test --preview: the configured printer's profile and paper, no
    // daemon running.
    let config = dir.path().join("posbridge.toml");
    std::fs::write(
        &config,
        common::config_text(
            dir.path(),
            "",
            "[[printer]]\nname = \"front\"\ntype = \"escpos\"\nprofile = \"epson-tm-t88\"\n\
             paper = \"80mm\"\n[printer.tcp]\nhost = \"127.0.0.1\"\nport = 9\n",
        ),
    )
    .unwrap();
    let page = dir.path().join("page.png");
    let run = std::process::Command::new(common::BIN)
        .arg("--config")
        .arg(&config)
        .args(["print-test", "front", "--preview"])
        .arg(&page)
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    let (w, _) = png_size(&std::fs::read(&page).unwrap());
    assert_eq!(w, 512, "epson-tm-t88 on 80 mm paper");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("512x"), "{stdout}");
}

#[tokio::test]
async fn print_preview_returns_a_png_and_queues_nothing() {
    let port = free_port();
    let sim = start_sim(port);
    let d = Daemon::start("", &printer_entry(port));
    let mut c = d.client().await;
    let r = c
        .call(
            "print.preview",
            json!({"printer": "receipt", "document": doc(3)}),
        )
        .await
        .unwrap();
    assert_eq!(r["profile"], "epson-tm-t20");
    assert_eq!(r["width"], 576, "the printer's 80 mm paper: {r}");
    let png =
        posbridge_drivers::printer::document::decode_base64(r["png_base64"].as_str().unwrap())
            .unwrap();
    assert_eq!(png_size(&png), (576, r["height"].as_u64().unwrap() as u32));
    // A built-in profile on 58 mm paper instead of a printer.
    let r = c
        .call(
            "print.preview",
            json!({"profile": "pos-5890", "paper": "58mm", "document": doc(3)}),
        )
        .await
        .unwrap();
    assert_eq!(r["width"], 384, "{r}");
    // Errors name the field; nothing was queued or printed.
    let code = |e: ClientError| match e {
        ClientError::Rpc { error } => (error["code"].clone(), error["message"].clone()),
        other => panic!("{other:?}"),
    };
    let (n, _) = code(
        c.call(
            "print.preview",
            json!({"printer": "nope", "document": doc(1)}),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(n, 1201);
    let (n, msg) = code(
        c.call(
            "print.preview",
            json!({"document": {"blocks": [{"type": "qr", "payload": ""}]}}),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(n, -32602);
    assert!(
        msg.as_str().unwrap().contains("document.blocks[0]"),
        "{msg}"
    );
    let (n, _) = code(
        c.call(
            "print.preview",
            json!({"printer": "receipt", "profile": "star", "document": doc(1)}),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(n, -32602);
    let list = c.call("printers.list", json!({})).await.unwrap();
    assert_eq!(list["printers"][0]["queued"], 0);
    assert!(sim.paper().receipts.is_empty());
}

fn config_check(dir: &std::path::Path, printer: &str) -> std::process::Output {
    let config = dir.join("check.toml");
    std::fs::write(&config, common::config_text(dir, "", printer)).unwrap();
    std::process::Command::new(common::BIN)
        .args(["config", "check"])
        .arg(&config)
        .output()
        .unwrap()
}

#[test]
fn hid_printer_config_is_checked_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let entry = |hid: &str| {
        format!("[[printer]]\nname = \"receipt\"\ntype = \"escpos\"\n[printer.hid]\n{hid}\n")
    };
    let ok = config_check(
        dir.path(),
        &entry("usb = \"0416:5011\"\nreport_size = 63\nreport_id = 2"),
    );
    assert!(ok.status.success(), "{ok:?}");
    for (hid, key) in [
        (
            "usb = \"0416:5011\"\nreport_size = 300",
            "printer #1, hid.report_size",
        ),
        (
            "usb = \"0416:5011\"\nreport_size = 0\nlength_prefix = false",
            "printer #1, hid.report_size",
        ),
        (
            "usb = \"0416:5011\"\npath = \"/dev/hidraw0\"",
            "printer #1, hid",
        ),
        ("report_id = 1", "printer #1, hid"),
        ("usb = \"0416:5011\"\nreport_sise = 64", "report_sise"),
    ] {
        let out = config_check(dir.path(), &entry(hid));
        assert!(!out.status.success(), "{hid}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{hid}: {err}");
    }
}

/// The bonus block writes dates in the receipt's language, one format per
/// receipt: `DD.MM.YYYY` in Russian, as the fiscal tape does (it printed
/// the ISO `2027-12-07`), and `7 Dec 2027` in English, as the printer
/// receives them.
#[tokio::test]
async fn the_bonus_block_writes_dates_as_its_language_does() {
    for (lang, label) in [("ru", "Сгорит"), ("en", "Expiring")] {
        let port = free_port();
        let sim = start_sim(port);
        let d = Daemon::start(
            "",
            &format!(
                "[receipt]\nlanguage = \"{lang}\"\n\n\
                 [ledger.programme]\nexpiry_months = 12\n\n{}",
                printer_entry(port)
            ),
        );
        let mut c = d.client().await;
        let sale = json!({
            "idempotency_key": "d1", "number": "6035000011112222", "receipt_id": "R1",
            "lines": [{"sku": "1", "name": "x", "category": "g", "qty": "1", "price": "1000"}],
            "print": {"printer": "receipt"}
        });
        let r = c.call("sale.commit", sale).await.unwrap();
        let at = r["next_expiry"]["at"].as_str().unwrap();
        let (y, m, day) = (&at[..4], &at[5..7], &at[8..10]);
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let want = match lang {
            "ru" => format!("{label} {day}.{m}.{y}"),
            _ => format!(
                "{label} {} {} {y}",
                day.trim_start_matches('0'),
                MONTHS[m.parse::<usize>().unwrap() - 1]
            ),
        };
        wait_done(&mut c, "bonus-d1").await;
        let receipts = sim.wait_receipts(1, Duration::from_secs(10)).await.unwrap();
        let text = receipts[0].render_text(48);
        assert!(text.contains(&want), "{want} in\n{text}");
        assert!(!text.contains(&at[..10]), "no ISO date in\n{text}");
        // The block in the reply is the one printed.
        let lines = r["bonus_lines"].as_array().unwrap();
        assert!(
            lines.iter().any(|l| l.as_str().unwrap().starts_with(&want)),
            "{lines:?}"
        );
    }
}
