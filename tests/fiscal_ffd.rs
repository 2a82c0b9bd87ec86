//! FFD 1.2 operations end to end, daemon against the Shtrih-M emulator on
//! loopback TCP: 2026 VAT names and the tax-table check, marked medicines
//! (one refused by the register), buyer contact and cashier, cash in/out,
//! corrections, the ФН/OFD state in fiscal.status and its warning events,
//! and one document per job_id whatever happens to the link.

mod common;

use std::time::Duration;

use common::Daemon;
use posbridge::client::ClientError;
use posbridge_drivers::sim::shtrih::{Fault, FiscalDocKind, ShtrihSim, ShtrihSimHandle};
use serde_json::{Value, json};

const GOOD_KM: &str = "0104607028580012215'NbGpH7k5Kt<\u{1d}93dGVz";
const BAD_KM: &str = "0104607028580029215=qTyP&1mNf5\u{1d}93QmZx";

fn fiscal_entry(port: u16) -> String {
    format!(
        "[[printer]]\nname = \"fiscal\"\ntype = \"shtrih\"\n\
         [printer.tcp]\nhost = \"127.0.0.1\"\nport = {port}\nconnect_timeout_ms = 500\n"
    )
}

fn start_sim(sim: ShtrihSim) -> (u16, ShtrihSimHandle) {
    let (addr, handle) = sim.spawn_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    (addr.port(), handle)
}

async fn rpc_error(r: Result<Value, ClientError>) -> Value {
    match r {
        Err(ClientError::Rpc { error }) => error,
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

fn count(sim: &ShtrihSim, f: impl Fn(&FiscalDocKind) -> bool) -> usize {
    sim.documents().iter().filter(|d| f(&d.kind)).count()
}

fn is_receipt(k: &FiscalDocKind) -> bool {
    matches!(k, FiscalDocKind::Receipt(_))
}

fn pharmacy(job: &str, codes: &[&str]) -> Value {
    let mut items: Vec<Value> = codes
        .iter()
        .enumerate()
        .map(|(i, km)| {
            json!({"name": format!("Амоксициллин 500 мг №{}", i + 1), "price": "245.00",
                   "quantity": "1", "tax": "vat10", "payment_object": 1, "marking_code": km})
        })
        .collect();
    items.push(
        json!({"name": "Вата 100 г", "price": "80.00", "quantity": "0.5",
                      "measure": 11, "tax": "vat22"}),
    );
    let total = 245 * codes.len() + 40;
    json!({
        "printer": "fiscal", "job_id": job, "type": "sell", "taxation": "osn",
        "items": items,
        "payments": [{"type": "electronically", "sum": format!("{total}.00")}],
        "customer_contact": "+79161234567",
        "cashier": {"name": "Провизор Петрова А.С.", "inn": "500100732259"}
    })
}

#[tokio::test]
async fn a_pharmacy_receipt_with_marked_medicines_one_refused_by_the_register() {
    let sim = ShtrihSim::new();
    sim.refuse_marking_code(BAD_KM);
    let (port, sim) = start_sim(sim);
    let d = Daemon::start("", &fiscal_entry(port));
    let mut c = d.client().await;

    // Both packs: the register refuses the second code, nothing is printed.
    let e = rpc_error(
        c.call("fiscal.receipt", pharmacy("ph1", &[GOOD_KM, BAD_KM]))
            .await,
    )
    .await;
    assert_eq!(e["code"], 1205, "{e}");
    assert!(e["message"].as_str().unwrap().contains("items[1]"), "{e}");
    let marks = e["data"]["marking"].as_array().unwrap();
    assert_eq!(marks.len(), 2);
    assert_eq!(marks[0]["accepted"], true);
    assert_eq!(marks[1]["accepted"], false);
    assert_eq!(marks[1]["result"], 0b0101);
    assert_eq!(count(&sim, is_receipt), 0);
    assert!(sim.tape().iter().any(|l| l.contains("КМ ОТКЛОНЕН")));
    assert_ne!(sim.state_summary().mode & 0x0F, 8, "no check left open");
    // The failure is journaled: the same job answers the same.
    let again = rpc_error(
        c.call("fiscal.receipt", pharmacy("ph1", &[GOOD_KM, BAD_KM]))
            .await,
    )
    .await;
    assert_eq!(again["data"], e["data"]);

    // The cashier takes the refused pack out: one receipt, the code bound.
    let r = c
        .call("fiscal.receipt", pharmacy("ph2", &[GOOD_KM]))
        .await
        .unwrap();
    assert_eq!(r["total"], "285.00");
    assert_eq!(r["marking"][0]["accepted"], true);
    assert_eq!(r["marking"][0]["item"], 0);
    assert_eq!(count(&sim, is_receipt), 1);
    let tape = sim.receipts().concat().join("\n");
    for want in [
        "[М+] КМ ПРОВЕРЕН",
        "ПОКУПАТЕЛЬ: +79161234567",
        "КАССИР: Провизор Петрова А.С.",
        "ИНН КАССИРА: 500100732259",
        "МЕРА: 11",
        "0.5 X 80.00 = 40.00",
        "НДС 10%",
        "НДС 22%",
    ] {
        assert!(tape.contains(want), "{want} not on the tape:\n{tape}");
    }
    assert_eq!(
        c.call("fiscal.receipt", pharmacy("ph2", &[GOOD_KM]))
            .await
            .unwrap(),
        r
    );
    assert_eq!(count(&sim, is_receipt), 1);
}

#[tokio::test]
async fn inputs_are_checked_strictly_and_old_vat_names_say_what_replaced_them() {
    let (port, _sim) = start_sim(ShtrihSim::new());
    let d = Daemon::start("", &fiscal_entry(port));
    let mut c = d.client().await;
    let item = |tax: &str| json!({"name": "Кофе", "price": "120.00", "quantity": "1", "tax": tax});
    let base = |items: Value| {
        json!({"printer": "fiscal", "job_id": "v", "type": "sell", "items": items,
               "payments": [{"type": "cash", "sum": "200.00"}]})
    };
    for (old, new) in [
        ("vat20", "vat22"),
        ("vat120", "vat22_122"),
        ("vat110", "vat10_110"),
    ] {
        let e = rpc_error(c.call("fiscal.receipt", base(json!([item(old)]))).await).await;
        assert_eq!(e["code"], -32602);
        assert_eq!(e["data"]["field"], "items[0].tax");
        let m = e["message"].as_str().unwrap();
        assert!(m.contains(&format!("\"{new}\"")), "{m}");
    }
    let cases: [(&str, Value, &str); 7] = [
        ("taxation", json!("envd"), "taxation"),
        ("customer_contact", json!("89161234567"), "customer_contact"),
        (
            "customer_contact",
            json!("anna@localhost"),
            "customer_contact",
        ),
        (
            "cashier",
            json!({"name": "Иванова", "inn": "500100732258"}),
            "cashier.inn",
        ),
        ("cashier", json!({"name": " "}), "cashier.name"),
        (
            "items",
            json!([{"name": "A", "price": "1.00", "quantity": "1", "tax": "vat22", "marking_code": "КМ"}]),
            "items[0].marking_code",
        ),
        (
            "items",
            json!([{"name": "A", "price": "1.00", "quantity": "0.5", "tax": "vat22"}]),
            "items[0].measure",
        ),
    ];
    for (key, value, field) in cases {
        let mut p = base(json!([item("vat22")]));
        p[key] = value;
        let e = rpc_error(c.call("fiscal.receipt", p).await).await;
        assert_eq!(e["code"], -32602, "{key}: {e}");
        assert_eq!(e["data"]["field"], field, "{e}");
    }
    // All ten 2026 names are accepted by the parser; 5/105 and 7/107 are
    // not in the default mapping and fail with a clear message.
    let e = rpc_error(
        c.call("fiscal.receipt", base(json!([item("vat5_105")])))
            .await,
    )
    .await;
    assert_eq!(e["code"], 1205);
    assert!(
        e["message"].as_str().unwrap().contains("[printer.taxes]"),
        "{e}"
    );
}

#[tokio::test]
async fn a_register_without_the_2026_rate_is_reported_and_refuses_receipts() {
    let sim = ShtrihSim::new();
    sim.set_tax_rate(1, 2000, "НДС 20%");
    let (port, sim) = start_sim(sim);
    let d = Daemon::start("", &fiscal_entry(port));
    let mut c = d.client().await;
    let st = common::status_when(&mut c, "the tax table check", |st| {
        !st["status"]["tax_table"].is_null()
    })
    .await;
    assert_eq!(st["status"]["tax_table"]["ok"], false);
    let why = st["status"]["tax_table"]["error"].as_str().unwrap();
    assert!(why.contains("vat22") && why.contains("20.00 %"), "{why}");
    let p = json!({"printer": "fiscal", "job_id": "t1", "type": "sell",
        "items": [{"name": "Кофе", "price": "122.00", "quantity": "1", "tax": "vat22"}],
        "payments": [{"type": "cash", "sum": "122.00"}]});
    let e = rpc_error(c.call("fiscal.receipt", p.clone()).await).await;
    assert_eq!(e["code"], 1205);
    assert!(
        e["message"].as_str().unwrap().contains("register tax 1"),
        "{e}"
    );
    assert_eq!(count(&sim, is_receipt), 0);
    // The technician reprograms table 6: the next receipt goes through.
    sim.set_tax_rate(1, 2200, "НДС 22%");
    let mut p2 = p;
    p2["job_id"] = json!("t2");
    c.call("fiscal.receipt", p2).await.unwrap();
    assert_eq!(count(&sim, is_receipt), 1);
    assert!(sim.tape().iter().any(|l| l == "СУММА НДС 22%: =22.00"));
}

#[tokio::test]
async fn cash_in_and_out_happen_once_per_job_even_when_the_link_drops() {
    let (port, sim) = start_sim(ShtrihSim::new());
    let d = Daemon::start("", &fiscal_entry(port));
    let mut c = d.client().await;
    let cash = |job: &str, sum: &str| json!({"printer": "fiscal", "job_id": job, "sum": sum});
    let r = c
        .call("fiscal.cash_in", cash("ci1", "5000.00"))
        .await
        .unwrap();
    assert_eq!(r["sum"], "5000.00");
    assert_eq!(sim.cash(), 500_000);
    assert_eq!(
        c.call("fiscal.cash_in", cash("ci1", "5000.00"))
            .await
            .unwrap(),
        r
    );
    assert_eq!(sim.cash(), 500_000, "a repeat deposits nothing");
    let e = rpc_error(c.call("fiscal.cash_out", cash("co1", "6000.00")).await).await;
    assert_eq!(e["code"], 1205);
    assert_eq!(e["data"]["device_code"], 0x46);
    let e = rpc_error(c.call("fiscal.cash_out", cash("co2", "0")).await).await;
    assert_eq!(e["data"]["field"], "sum");
    c.call("fiscal.cash_out", cash("co3", "1000.00"))
        .await
        .unwrap();
    assert_eq!(sim.cash(), 400_000);
    // Cut the link after each command of a cash in, in turn.
    for n in 1..=5u32 {
        let before = sim.cash();
        sim.set_fault(Fault::DropLinkAfterCommands(n));
        let job = format!("cd{n}");
        c.call("fiscal.cash_in", cash(&job, "1.00"))
            .await
            .unwrap_or_else(|e| panic!("drop after {n}: {e:?}\n{}", d.log()));
        assert_eq!(sim.cash(), before + 100, "drop after command {n}");
        sim.clear_faults();
    }
}

fn correction(job: &str) -> Value {
    json!({"printer": "fiscal", "job_id": job, "type": "sell", "correction": "self",
           "basis": {"date": "2026-11-30", "number": "б/н"}, "sum": "122.00",
           "payments": [{"type": "cash", "sum": "122.00"}],
           "taxes": [{"tax": "vat22", "sum": "22.00"}],
           "cashier": {"name": "Старший кассир Сидорова"}})
}

#[tokio::test]
async fn a_correction_with_its_basis_is_made_once() {
    let (port, sim) = start_sim(ShtrihSim::new());
    let d = Daemon::start("", &fiscal_entry(port));
    let mut c = d.client().await;
    let is_corr = |k: &FiscalDocKind| matches!(k, FiscalDocKind::Correction(_));
    let r = c.call("fiscal.correction", correction("c1")).await.unwrap();
    let docs = sim.documents();
    let doc = docs.iter().find(|d| is_corr(&d.kind)).unwrap();
    assert_eq!(r["fiscal_document_number"], doc.number);
    assert_eq!(r["fiscal_sign"], doc.fiscal_sign);
    assert_eq!(doc.total, 12_200);
    let tape = sim.tape().join("\n");
    assert!(tape.contains("ОСНОВАНИЕ: б/н ОТ 30.11.2026"), "{tape}");
    assert!(tape.contains("СУММА НДС 22%: =22.00"), "{tape}");
    assert_eq!(
        c.call("fiscal.correction", correction("c1")).await.unwrap(),
        r
    );
    assert_eq!(count(&sim, is_corr), 1);

    let mut bad = correction("c2");
    bad["basis"]["date"] = json!("30.11.2026");
    assert_eq!(
        rpc_error(c.call("fiscal.correction", bad).await).await["data"]["field"],
        "basis.date"
    );
    let mut bad = correction("c2");
    bad["payments"][0]["sum"] = json!("100.00");
    assert_eq!(
        rpc_error(c.call("fiscal.correction", bad).await).await["data"]["field"],
        "payments"
    );
    for n in 1..=7u32 {
        sim.set_fault(Fault::DropLinkAfterCommands(n));
        let job = format!("cd{n}");
        let r = c
            .call("fiscal.correction", correction(&job))
            .await
            .unwrap_or_else(|e| panic!("drop after {n}: {e:?}\n{}", d.log()));
        assert_eq!(
            count(&sim, is_corr),
            1 + n as usize,
            "drop after command {n}"
        );
        assert_eq!(
            r["fiscal_document_number"],
            sim.state_summary().last_fd_number
        );
        sim.clear_faults();
    }
}

#[tokio::test]
async fn fiscal_status_shows_unsent_documents_and_warnings_are_published() {
    let (port, sim) = start_sim(ShtrihSim::new());
    sim.set_ofd_online(false);
    let d = Daemon::start("", &fiscal_entry(port));
    let mut c = d.client().await;
    let mut events = d.client().await;
    events
        .call("events.subscribe", json!({"topics": ["fiscal.warning"]}))
        .await
        .unwrap();
    c.call(
        "fiscal.shift.open",
        json!({"printer": "fiscal", "job_id": "s1"}),
    )
    .await
    .unwrap();
    sim.set_fn_expires_in_days(10);
    c.call(
        "fiscal.x_report",
        json!({"printer": "fiscal", "job_id": "x1"}),
    )
    .await
    .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), events.next_notification())
        .await
        .expect("a fiscal.warning event")
        .unwrap();
    assert_eq!(ev["params"]["topic"], "fiscal.warning");
    assert_eq!(ev["params"]["warning"], "fn_expiring");
    // The event goes out just before the status is stored: wait for both.
    let st = common::status_when(&mut c, "the FN state", |st| {
        let f = &st["status"]["fn"];
        f["ofd"]["unsent"] == 1
            && f["warnings"]
                .as_array()
                .is_some_and(|w| w.contains(&json!("fn_expiring")))
    })
    .await;
    let f = &st["status"]["fn"];
    assert_eq!(f["ofd"]["oldest_unsent_number"], 1);
    assert!(
        f["ofd"]["oldest_unsent_at"]
            .as_str()
            .unwrap()
            .starts_with("20")
    );
    assert_eq!(f["fn_number"], "9999078900012345");
    assert_eq!(f["marking"]["check_state"], 1, "{f}");
    assert!(
        f["warnings"]
            .as_array()
            .unwrap()
            .contains(&json!("fn_expiring"))
    );
    assert_eq!(sim.unsent_documents(), (1, 1));
    assert!(!f["warnings"].to_string().contains("ofd_backlog"), "{f}");
    // Four days on the register's clock: the backlog and the FN's own OFD
    // timeout are raised too, once each.
    sim.advance_clock(Duration::from_secs(4 * 86_400));
    c.call(
        "fiscal.x_report",
        json!({"printer": "fiscal", "job_id": "x2"}),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let ev = tokio::time::timeout(Duration::from_secs(10), events.next_notification())
            .await
            .expect("more fiscal.warning events")
            .unwrap();
        seen.push(ev["params"]["warning"].as_str().unwrap().to_owned());
    }
    seen.sort();
    assert_eq!(seen, ["ofd_backlog", "ofd_timeout"]);
}

#[tokio::test]
async fn with_the_marking_server_down_the_fn_local_check_decides() {
    let sim = ShtrihSim::new();
    sim.refuse_marking_code(BAD_KM);
    sim.set_marking_server_online(false);
    let (port, sim) = start_sim(sim);
    let d = Daemon::start("", &fiscal_entry(port));
    let mut c = d.client().await;
    let r = c
        .call("fiscal.receipt", pharmacy("off1", &[GOOD_KM]))
        .await
        .unwrap();
    assert_eq!(r["marking"][0]["accepted"], true);
    assert_eq!(r["marking"][0]["result"], 0b11, "the local result: {r}");
    let e = rpc_error(c.call("fiscal.receipt", pharmacy("off2", &[BAD_KM])).await).await;
    assert_eq!(e["data"]["marking"][0]["accepted"], false, "{e}");
    assert_eq!(count(&sim, is_receipt), 1);
}

#[tokio::test]
async fn a_daemon_killed_mid_cash_in_or_correction_makes_one_document() {
    // Every answer slowed down, the daemon killed at several points of the
    // job, restarted, and the same job_id asked again.
    for (method, kill_after_ms) in [
        ("fiscal.cash_in", 150u64),
        ("fiscal.cash_in", 450),
        ("fiscal.cash_in", 750),
        ("fiscal.correction", 300),
        ("fiscal.correction", 900),
        ("fiscal.correction", 1500),
    ] {
        let (port, sim) = start_sim(ShtrihSim::new());
        let mut d = Daemon::start("", &fiscal_entry(port));
        let mut c = d.client().await;
        c.call(
            "fiscal.shift.open",
            json!({"printer": "fiscal", "job_id": "s"}),
        )
        .await
        .unwrap();
        let params = if method == "fiscal.cash_in" {
            json!({"printer": "fiscal", "job_id": "k", "sum": "10.00"})
        } else {
            correction("k")
        };
        sim.set_fault(Fault::DelayAnswer(Duration::from_millis(300)));
        let p = params.clone();
        let pending = tokio::spawn(async move { c.call(method, p).await });
        tokio::time::sleep(Duration::from_millis(kill_after_ms)).await;
        d.signal(nix::sys::signal::Signal::SIGKILL);
        d.wait_exit(Duration::from_secs(10));
        let _ = pending.await;
        sim.clear_faults();
        let _ = std::fs::remove_file(&d.socket);
        d.spawn(|_| {});
        let mut c = d.client().await;
        let r = c.call(method, params.clone()).await.unwrap_or_else(|e| {
            panic!("{method} killed at {kill_after_ms} ms: {e:?}\n{}", d.log())
        });
        if method == "fiscal.cash_in" {
            assert_eq!(sim.cash(), 1_000, "{method} killed at {kill_after_ms} ms");
        } else {
            let n = count(&sim, |k| matches!(k, FiscalDocKind::Correction(_)));
            assert_eq!(n, 1, "{method} killed at {kill_after_ms} ms");
            assert_eq!(
                r["fiscal_document_number"],
                sim.state_summary().last_fd_number
            );
        }
        // And once more: the stored result, nothing new.
        assert_eq!(c.call(method, params).await.unwrap(), r);
        assert_ne!(sim.state_summary().mode & 0x0F, 8);
    }
}
