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
