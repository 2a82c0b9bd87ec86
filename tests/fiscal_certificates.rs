//! The fiscal side of a gift certificate (docs/protocol.md, "Gift
//! certificates"), on the Shtrih-M emulator: its sale is an advance (tag
//! 1214 = 3 «аванс», tag 1212 = 10 «платёж», VAT at the calculated rate),
//! and a purchase it pays for is a full payment (1214 = 4) paid by
//! «предварительная оплата (зачёт аванса)» (tag 1215: FF45h payment type
//! 14), with the rest in cash.

mod common;

use common::Daemon;
use posbridge::client::ClientError;
use posbridge_drivers::sim::shtrih::{FiscalDocKind, ShtrihSim};
use serde_json::json;

fn fiscal_entry(port: u16) -> String {
    format!(
        "[[printer]]\nname = \"fiscal\"\ntype = \"shtrih\"\n\
         [printer.tcp]\nhost = \"127.0.0.1\"\nport = {port}\nconnect_timeout_ms = 500\n"
    )
}

#[tokio::test]
async fn a_certificate_is_sold_as_an_advance_and_spent_as_a_prepayment() {
    let sim = ShtrihSim::new();
    let (addr, sim) = sim.spawn_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    let d = Daemon::start("", &fiscal_entry(addr.port()));
    let mut c = d.client().await;

    // The sale: the ledger first (the code), then the advance receipt.
    let sold = c
        .call(
            "certificate.issue",
            json!({"idempotency_key": "cert-1", "nominal": "3000", "receipt_id": "S-1"}),
        )
        .await
        .unwrap();
    let code = sold["code"].as_str().unwrap().to_owned();
    c.call(
        "fiscal.receipt",
        json!({
            "printer": "fiscal", "job_id": "S-1", "type": "sell",
            "items": [{"name": "Подарочный сертификат", "price": "3000.00", "quantity": "1",
                       "tax": "vat22_122", "payment_method": 3, "payment_object": 10}],
            "payments": [{"type": "cash", "sum": "3000.00"}],
            "post_text": [format!("Сертификат {code}")]
        }),
    )
    .await
    .unwrap();
    let tape = sim.tape().join("\n");
    assert!(tape.contains("  АВАНС / ПЛАТЕЖ"), "{tape}");
    assert!(tape.contains(&format!("Сертификат {code}")), "{tape}");

    // A purchase of 3 500: 3 000 from the certificate, 500 in cash.
    let paid = c
        .call(
            "certificate.redeem",
            json!({"idempotency_key": "pay-1", "code": code, "amount": "3000", "receipt_id": "S-2"}),
        )
        .await
        .unwrap();
    assert_eq!(paid["certificate"]["state"], "used_up");
    let r = c
        .call(
            "fiscal.receipt",
            json!({
                "printer": "fiscal", "job_id": "S-2", "type": "sell",
                "items": [{"name": "Наушники", "price": "3500.00", "quantity": "1", "tax": "vat22"}],
                "payments": [{"type": "prepayment", "sum": "3000.00"}, {"type": "cash", "sum": "500.00"}]
            }),
        )
        .await
        .unwrap();
    assert_eq!(r["total"], "3500.00");
    let last = sim.receipts().last().unwrap().join("\n");
    assert!(
        last.contains("ПРЕДВАРИТЕЛЬНАЯ ОПЛАТА (АВАНС): =3000.00"),
        "{last}"
    );
    assert!(last.contains("НАЛИЧНЫМИ: =500.00"), "{last}");
    // A full payment for goods prints no method line.
    assert!(!last.contains(" / "), "{last}");
    let receipts = sim
        .documents()
        .iter()
        .filter(|d| matches!(d.kind, FiscalDocKind::Receipt(_)))
        .map(|d| d.total)
        .collect::<Vec<_>>();
    assert_eq!(receipts, vec![300_000, 350_000]);

    // A prepayment is refused as a payment kind only by its name's shape.
    let bad = c
        .call(
            "fiscal.receipt",
            json!({
                "printer": "fiscal", "job_id": "S-3", "type": "sell",
                "items": [{"name": "X", "price": "1.00", "quantity": "1", "tax": "vat22"}],
                "payments": [{"type": "advance", "sum": "1.00"}]
            }),
        )
        .await;
    let Err(ClientError::Rpc { error }) = bad else {
        panic!("{bad:?}")
    };
    assert_eq!(error["code"], -32602);
}
