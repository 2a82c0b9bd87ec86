//! Fiscal receipts end to end: fiscal.receipt over the socket, the journal,
//! the fiscal actor and the Shtrih-M emulator on loopback TCP. The point:
//! one job_id is one receipt, whatever happens to the link or the daemon.

mod common;

use std::time::Duration;

use common::Daemon;
use posbridge::client::ClientError;
use posbridge_drivers::sim::shtrih::{Fault, FiscalDocKind, ShtrihSim, ShtrihSimHandle};
use serde_json::{Value, json};

fn fiscal_entry(port: u16) -> String {
    format!(
        "[[printer]]\nname = \"fiscal\"\ntype = \"shtrih\"\n\
         [printer.tcp]\nhost = \"127.0.0.1\"\nport = {port}\nconnect_timeout_ms = 500\n"
    )
}

fn start_sim() -> (u16, ShtrihSimHandle) {
    let sim = ShtrihSim::new();
    let (addr, handle) = sim.spawn_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    (addr.port(), handle)
}

fn receipt(job: &str) -> Value {
    json!({
        "printer": "fiscal", "job_id": job, "type": "sell",
        "items": [
            {"name": "Молоко 3,2%", "price": "89.90", "quantity": "2", "tax": "vat10"},
            {"name": "Кофе", "price": "450.00", "quantity": "1", "tax": "vat22"}
        ],
        "payments": [{"type": "cash", "sum": "600.00"}, {"type": "points", "sum": "29.80"}],
        "post_text": ["БОНУСНАЯ ПРОГРАММА", "Начислено бонусов 30,00"]
    })
}

fn receipts(sim: &ShtrihSim) -> Vec<(u32, u64, u32)> {
    sim.documents()
        .iter()
        .filter(|d| matches!(d.kind, FiscalDocKind::Receipt(_)))
        .map(|d| (d.number, d.total, d.fiscal_sign))
        .collect()
}

#[tokio::test]
async fn a_receipt_is_fiscalised_once_with_its_bonus_block() {
    let (port, sim) = start_sim();
    let d = Daemon::start("", &fiscal_entry(port));
    let mut c = d.client().await;
    let r = c.call("fiscal.receipt", receipt("f1")).await.unwrap();
    assert_eq!(r["total"], "629.80");
    let docs = receipts(&sim);
    assert_eq!(docs.len(), 1);
    assert_eq!(r["fiscal_document_number"], docs[0].0);
    assert_eq!(r["fiscal_sign"], docs[0].2);
    assert_eq!(docs[0].1, 62_980);
    assert!(
        sim.tape()
            .iter()
            .any(|l| l.contains("Начислено бонусов 30,00"))
    );

    // The same job again: the stored result, no second receipt.
    assert_eq!(c.call("fiscal.receipt", receipt("f1")).await.unwrap(), r);
    assert_eq!(receipts(&sim).len(), 1);
    // A different request under the same id is refused.
    let mut other = receipt("f1");
    other["items"][0]["name"] = json!("Кефир");
    let ClientError::Rpc { error } = c.call("fiscal.receipt", other).await.unwrap_err() else {
        panic!()
    };
    assert_eq!(error["code"], 1202);

    let st = c
        .call(
            "fiscal.status",
            json!({"printer": "fiscal", "job_id": "f1"}),
        )
        .await
        .unwrap();
    assert_eq!(st["job"]["state"], "done");
    // The mode and submode numbers come with their words in both languages.
    let st = common::status_when(&mut c, "the open shift", |st| st["status"]["mode"] == 2).await;
    assert_eq!(
        st["status"]["mode_text"],
        json!({"ru": "Открытая смена, 24 часа не кончились", "en": "shift open, under 24 hours"})
    );
    assert_eq!(st["status"]["submode"], 0);
    assert_eq!(
        st["status"]["submode_text"],
        json!({"ru": "Бумага есть", "en": "paper present"})
    );
    let z = c
        .call(
            "fiscal.shift.close",
            json!({"printer": "fiscal", "job_id": "z1"}),
        )
        .await
        .unwrap();
    assert!(z["fiscal_document_number"].as_u64().unwrap() > docs[0].0 as u64);
}

#[tokio::test]
async fn device_errors_surface_with_their_meaning_and_leave_no_open_check() {
    let (port, sim) = start_sim();
    let d = Daemon::start("", &fiscal_entry(port));
    let mut c = d.client().await;
    sim.set_fault(Fault::PaperOut);
    let ClientError::Rpc { error } = c.call("fiscal.receipt", receipt("p1")).await.unwrap_err()
    else {
        panic!()
    };
    assert_eq!(error["code"], 1205);
    assert_eq!(error["data"]["device_code"], 0x6B);
    assert_eq!(error["data"]["meaning"], "Нет чековой ленты");
    assert_eq!(error["data"]["english"], "no receipt paper");
    // Both languages for the cashier (English by default in `message`).
    assert_eq!(
        error["message"],
        "the fiscal printer refused: no receipt paper"
    );
    assert_eq!(
        error["data"]["message_ru"],
        "фискальный регистратор отказал: Нет чековой ленты"
    );
    // The status says why in words: submode 1, passive paper out.
    let st = common::status_when(&mut c, "the paper-out submode", |st| {
        st["status"]["submode"] == 1
    })
    .await;
    assert_eq!(
        st["status"]["submode_text"],
        json!({"ru": "Пассивное отсутствие бумаги", "en": "out of paper, not printing"})
    );
    assert!(st["status"]["mode_text"]["en"].is_string(), "{st}");
    assert!(receipts(&sim).is_empty());
    assert_ne!(sim.state_summary().mode & 0x0F, 8, "no check left open");

    let bad = json!({"printer": "fiscal", "job_id": "x", "type": "sell",
        "items": [{"name": "A", "price": "1.001", "quantity": "1", "tax": "none"}],
        "payments": [{"type": "cash", "sum": "2"}]});
    let ClientError::Rpc { error } = c.call("fiscal.receipt", bad).await.unwrap_err() else {
        panic!()
    };
    assert_eq!(error["data"]["field"], "items[0].price");

    // Signs, blanks and exponents are refused as in the ledger's amounts,
    // naming the field, before anything is journaled.
    for (field, item_price, qty, paid) in [
        ("items[0].price", "+1", "1", "2"),
        ("items[0].price", " 1", "1", "2"),
        ("items[0].quantity", "1", "1e0", "2"),
        ("payments[0].sum", "1", "1", "+2"),
    ] {
        let bad = json!({"printer": "fiscal", "job_id": "y", "type": "sell",
            "items": [{"name": "A", "price": item_price, "quantity": qty, "tax": "none"}],
            "payments": [{"type": "cash", "sum": paid}]});
        let ClientError::Rpc { error } = c.call("fiscal.receipt", bad).await.unwrap_err() else {
            panic!()
        };
        assert_eq!(error["code"], -32602, "{error}");
        assert_eq!(error["data"]["field"], field, "{error}");
    }
    let bad = json!({"printer": "fiscal", "job_id": "z", "sum": "+100"});
    let ClientError::Rpc { error } = c.call("fiscal.cash_in", bad).await.unwrap_err() else {
        panic!()
    };
    assert_eq!(error["data"]["field"], "sum", "{error}");
}

#[tokio::test]
async fn a_link_drop_mid_receipt_still_makes_exactly_one_receipt() {
    let (port, sim) = start_sim();
    let d = Daemon::start("", &fiscal_entry(port));
    let mut c = d.client().await;
    // Let the actor connect, then drop the link after the next command.
    c.call(
        "fiscal.x_report",
        json!({"printer": "fiscal", "job_id": "x1"}),
    )
    .await
    .unwrap();
    for (i, fault) in [
        Fault::DropLinkAfterCommand,
        Fault::CorruptNextAnswer,
        Fault::NakNextFrame,
    ]
    .into_iter()
    .enumerate()
    {
        sim.set_fault(fault);
        let r = c
            .call("fiscal.receipt", receipt(&format!("l{i}")))
            .await
            .unwrap();
        assert!(r["fiscal_sign"].as_u64().unwrap() > 0);
        assert_eq!(receipts(&sim).len(), i + 1, "exactly one receipt per job");
    }
}

#[tokio::test]
async fn a_daemon_killed_mid_receipt_recovers_without_a_second_receipt() {
    // Kill at several points of a receipt whose every answer is slowed down.
    for kill_after_ms in [450u64, 1050, 1650, 2100, 2400, 2550, 2700] {
        let (port, sim) = start_sim();
        let mut d = Daemon::start("", &fiscal_entry(port));
        let mut c = d.client().await;
        c.call(
            "fiscal.shift.open",
            json!({"printer": "fiscal", "job_id": "s"}),
        )
        .await
        .unwrap();
        sim.set_fault(Fault::DelayAnswer(Duration::from_millis(300)));
        let pending = tokio::spawn(async move { c.call("fiscal.receipt", receipt("k")).await });
        tokio::time::sleep(Duration::from_millis(kill_after_ms)).await;
        d.signal(nix::sys::signal::Signal::SIGKILL);
        d.wait_exit(Duration::from_secs(10));
        let _ = pending.await;
        sim.clear_faults();
        let _ = std::fs::remove_file(&d.socket);
        d.spawn(|_| {});
        let mut c = d.client().await;
        let r = c
            .call("fiscal.receipt", receipt("k"))
            .await
            .unwrap_or_else(|e| panic!("after a kill at {kill_after_ms} ms: {e:?}\n{}", d.log()));
        let docs = receipts(&sim);
        assert_eq!(docs.len(), 1, "kill at {kill_after_ms} ms: {docs:?}");
        assert_eq!(r["fiscal_document_number"], docs[0].0);
        assert_eq!(r["fiscal_sign"], docs[0].2);
        assert_ne!(sim.state_summary().mode & 0x0F, 8);
        let log = d.log();
        let path = ["cancelling the open check", "the receipt was completed"]
            .into_iter()
            .find(|p| log.contains(p))
            .unwrap_or("ran from the start");
        eprintln!("kill at {kill_after_ms} ms: recovery {path}");
    }
}

#[tokio::test]
async fn the_link_dropped_after_each_step_of_a_receipt_still_makes_exactly_one() {
    // A receipt here is about ten commands (status, storage state, open,
    // two items, two text lines, close, shift number): cut the link after
    // each of them in turn, and a few beyond.
    for n in 1..=12u32 {
        let (port, sim) = start_sim();
        let d = Daemon::start("", &fiscal_entry(port));
        let mut c = d.client().await;
        c.call(
            "fiscal.x_report",
            json!({"printer": "fiscal", "job_id": "x"}),
        )
        .await
        .unwrap();
        sim.set_fault(Fault::DropLinkAfterCommands(n));
        let r = c
            .call("fiscal.receipt", receipt("d"))
            .await
            .unwrap_or_else(|e| panic!("drop after command {n}: {e:?}\n{}", d.log()));
        let docs = receipts(&sim);
        assert_eq!(docs.len(), 1, "drop after command {n}: {docs:?}");
        assert_eq!(
            r["fiscal_document_number"], docs[0].0,
            "drop after command {n}"
        );
        assert_eq!(r["fiscal_sign"], docs[0].2);
        assert_ne!(sim.state_summary().mode & 0x0F, 8, "no check left open");
    }
}

/// A register whose firmware has no FF46h/FF45h (it answers 37h): the
/// daemon falls back to the classic 80h…85h commands, once per link.
#[tokio::test]
async fn a_register_without_ff46_gets_the_classic_commands() {
    let (port, sim) = start_sim();
    sim.set_legacy(true);
    let d = Daemon::start("", &fiscal_entry(port));
    let mut c = d.client().await;
    let sell = |job: &str| {
        json!({
            "printer": "fiscal", "job_id": job, "type": "sell",
            "items": [
                {"name": "Молоко 3,2%", "price": "89.90", "quantity": "2", "tax": "vat10"},
                {"name": "Кофе", "price": "450.00", "quantity": "1", "tax": "vat22"}
            ],
            "payments": [{"type": "cash", "sum": "500.00"}, {"type": "electronically", "sum": "129.80"}],
        })
    };
    let r = c.call("fiscal.receipt", sell("l1")).await;
    let r = r.unwrap_or_else(|e| panic!("{e:?}\n{}", d.log()));
    assert_eq!(r["total"], "629.80");
    let docs = receipts(&sim);
    assert_eq!(docs.len(), 1, "exactly one receipt");
    assert_eq!(docs[0].1, 62_980);
    assert_eq!(r["fiscal_document_number"], docs[0].0);
    assert_eq!(r["fiscal_sign"], docs[0].2);
    let printed = sim.receipts();
    let receipt = printed
        .iter()
        .find(|p| p.iter().any(|l| l == "КАССОВЫЙ ЧЕК"))
        .expect("a receipt on the tape");
    assert!(receipt.contains(&"Молоко 3,2%".to_string()), "{receipt:?}");
    assert!(
        receipt.contains(&"ИТОГ: =629.80".to_string()),
        "{receipt:?}"
    );
    assert_eq!(
        printed
            .iter()
            .filter(|p| p.iter().any(|l| l == "КАССОВЫЙ ЧЕК"))
            .count(),
        1
    );
    // A second receipt on the same link: classic from the start.
    let r2 = c.call("fiscal.receipt", sell("l2")).await.unwrap();
    assert_eq!(receipts(&sim).len(), 2);
    assert!(r2["fiscal_document_number"].as_u64() > r["fiscal_document_number"].as_u64());
    // A quantity the classic commands cannot carry fails clearly.
    let mut odd = sell("l3");
    odd["items"][0]["quantity"] = json!("0.0005");
    odd["items"][0]["measure"] = json!(11); // FFD 1.2: a fraction needs its measure
    let ClientError::Rpc { error } = c.call("fiscal.receipt", odd).await.unwrap_err() else {
        panic!()
    };
    assert!(
        error["data"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("3 decimals")),
        "{error}"
    );
    assert_eq!(receipts(&sim).len(), 2);
    assert_ne!(sim.state_summary().mode & 0x0F, 8, "no check left open");
}
