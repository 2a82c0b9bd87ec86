//! `ledger.adjust` as an operator uses it (issue 21 item 7): by account id
//! as well as by card number, the account's and card's status checked
//! unless overridden, optionally tied to a past receipt of the account, and
//! the reason and operator shown back by `account.history`.

mod common;

use common::Daemon;
use posbridge::client::{Client, ClientError};
use serde_json::{Value, json};

const CARD: &str = "6035000044445555";
const OTHER: &str = "6035000066667777";

fn lines(total: u32) -> Value {
    json!([{"sku": "A1", "name": "Товар", "category": "general", "qty": "1", "price": total.to_string()}])
}

fn code(r: Result<Value, ClientError>) -> (i64, Value) {
    match r {
        Err(ClientError::Rpc { error }) => (error["code"].as_i64().unwrap(), error["data"].clone()),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

/// Registers a customer with `card`; the account id.
async fn register(c: &mut Client, phone: &str, card: &str) -> i64 {
    c.call(
        "account.register",
        json!({"phone": phone, "card_number": card, "secret": "4711"}),
    )
    .await
    .unwrap()["account"]
        .as_i64()
        .unwrap()
}

async fn balance(c: &mut Client, number: &str) -> Value {
    c.call("card.resolve", json!({"number": number}))
        .await
        .unwrap()["account"]["balance"]
        .clone()
}

#[tokio::test]
async fn adjust_by_account_id_checks_status_unless_overridden() {
    let d = Daemon::start("", "");
    let mut c = d.client().await;
    let id = register(&mut c, "+79161110001", CARD).await;

    let by_id = |key: &str, amount: &str| json!({"idempotency_key": key, "account_id": id, "amount": amount, "reason": "goodwill"});
    let r = c.call("ledger.adjust", by_id("a1", "25")).await.unwrap();
    assert_eq!(
        (r["account"].as_i64(), &r["balance_after"]),
        (Some(id), &json!("25"))
    );
    // The same key again answers the same, nothing booked twice.
    assert_eq!(c.call("ledger.adjust", by_id("a1", "25")).await.unwrap(), r);
    assert_eq!(balance(&mut c, CARD).await, "25");

    // Exactly one of number and account_id, the error naming the field.
    let mut both = by_id("a2", "1");
    both["number"] = json!(CARD);
    let (c1, data) = code(c.call("ledger.adjust", both).await);
    assert_eq!((c1, data["field"].clone()), (-32602, json!("account_id")));
    let neither = json!({"idempotency_key": "a2", "amount": "1", "reason": "x"});
    let (c2, data) = code(c.call("ledger.adjust", neither).await);
    assert_eq!((c2, data["field"].clone()), (-32602, json!("account_id")));
    let unknown =
        json!({"idempotency_key": "a2", "account_id": id + 100, "amount": "1", "reason": "x"});
    let (c3, data) = code(c.call("ledger.adjust", unknown).await);
    assert_eq!((c3, data["field"].clone()), (2001, json!("account_id")));

    // A lost card: refused by number and by account (no active card to book
    // on) with 2002, booked when overridden.
    c.call("card.block", json!({"number": CARD, "status": "lost"}))
        .await
        .unwrap();
    let by_number =
        json!({"idempotency_key": "a3", "number": CARD, "amount": "5", "reason": "goodwill"});
    let (c4, data) = code(c.call("ledger.adjust", by_number.clone()).await);
    assert_eq!((c4, data["status"].clone()), (2002, json!("lost")));
    assert_eq!(
        code(c.call("ledger.adjust", by_id("a4", "5")).await).0,
        2002
    );
    let mut forced = by_number;
    forced["override"] = json!(true);
    assert_eq!(
        c.call("ledger.adjust", forced).await.unwrap()["balance_after"],
        "30"
    );
    let mut forced = by_id("a4", "5");
    forced["override"] = json!(true);
    assert_eq!(
        c.call("ledger.adjust", forced).await.unwrap()["balance_after"],
        "35"
    );

    // A blocked account with an active card: refused both ways, naming the
    // account's status, unless overridden.
    c.call("card.unblock", json!({"number": CARD}))
        .await
        .unwrap();
    c.call(
        "account.update",
        json!({"account": id, "status": "blocked"}),
    )
    .await
    .unwrap();
    let (c5, data) = code(c.call("ledger.adjust", by_id("a5", "-5")).await);
    assert_eq!((c5, data["status"].clone()), (2002, json!("blocked")));
    let by_number = json!({"idempotency_key": "a5", "number": CARD, "amount": "-5", "reason": "x"});
    let (c6, data) = code(c.call("ledger.adjust", by_number).await);
    assert_eq!((c6, data["status"].clone()), (2002, json!("blocked")));
    let mut forced = by_id("a5", "-5");
    forced["override"] = json!(true);
    assert_eq!(
        c.call("ledger.adjust", forced).await.unwrap()["balance_after"],
        "30"
    );
    d.verify_ledger();
}

#[tokio::test]
async fn adjust_tied_to_a_receipt_shows_reason_and_operator_in_history() {
    let d = Daemon::start("", "");
    let mut c = d.client().await;
    let id = register(&mut c, "+79161110002", CARD).await;
    register(&mut c, "+79161110003", OTHER).await;
    let sale = c
        .call(
            "sale.commit",
            json!({"idempotency_key": "s1", "number": CARD, "receipt_id": "R-100", "lines": lines(1000)}),
        )
        .await
        .unwrap();
    c.call(
        "sale.commit",
        json!({"idempotency_key": "s2", "number": OTHER, "receipt_id": "R-200", "lines": lines(1000)}),
    )
    .await
    .unwrap();

    let tied = |key: &str, receipt: &str| {
        json!({"idempotency_key": key, "account_id": id, "amount": "50",
               "reason": "lost link", "receipt": receipt})
    };
    // Another account's receipt, or none at all: 2006 naming the field.
    for receipt in ["R-200", "R-999"] {
        let (c1, data) = code(c.call("ledger.adjust", tied("t1", receipt)).await);
        assert_eq!((c1, data["field"].clone()), (2006, json!("receipt")));
    }
    let (c2, data) = code(c.call("ledger.adjust", tied("t1", " ")).await);
    assert_eq!((c2, data["field"].clone()), (-32602, json!("receipt")));

    let r = c.call("ledger.adjust", tied("t1", "R-100")).await.unwrap();
    assert_eq!(r["balance_after"], "100");
    // A retry over the same key replays, the reason built the same way.
    assert_eq!(
        c.call("ledger.adjust", tied("t1", "R-100")).await.unwrap(),
        r
    );

    let h = c
        .call("account.history", json!({"account": id, "limit": 1}))
        .await
        .unwrap();
    let t = &h["transactions"][0];
    assert_eq!(t["kind"], "adjust");
    assert_eq!(t["transaction"], r["transaction"]);
    let want = format!(
        "lost link (receipt R-100, transaction {})",
        sale["transaction"]
    );
    assert_eq!(t["reason"], want.as_str());
    let operator = t["operator"].as_str().unwrap();
    assert!(operator.starts_with("unix uid "), "{operator}");
    assert_eq!(t["entries"][0]["amount"], "50");
    assert_eq!(balance(&mut c, OTHER).await, "50");
    d.verify_ledger();
}

#[tokio::test]
async fn a_pending_account_is_refused_unless_overridden() {
    let d = Daemon::start("", "[ledger.registration]\nconfirmation = \"code\"\n");
    let mut c = d.client().await;
    let r = c
        .call(
            "account.register",
            json!({"phone": "+79161110004", "card_number": CARD, "secret": "4711"}),
        )
        .await
        .unwrap();
    assert_eq!(r["status"], "pending");
    let id = r["account"].as_i64().unwrap();
    let by_id = json!({"idempotency_key": "p1", "account_id": id, "amount": "10", "reason": "x"});
    let by_number = json!({"idempotency_key": "p1", "number": CARD, "amount": "10", "reason": "x"});
    for p in [by_id.clone(), by_number] {
        let (c1, data) = code(c.call("ledger.adjust", p).await);
        assert_eq!((c1, data["status"].clone()), (2002, json!("pending")));
    }
    let mut forced = by_id;
    forced["override"] = json!(true);
    let r = c.call("ledger.adjust", forced).await.unwrap();
    assert_eq!(
        (r["account"].as_i64(), &r["balance_after"]),
        (Some(id), &json!("10"))
    );
    d.verify_ledger();
}

/// The export's rows as JSON objects (`ledger export --format json`, or
/// `posbridge-central export` on the central ledger).
fn export_json(d: &Daemon) -> Vec<Value> {
    let out = d.ledger_cli(&["export", "--format", "json"]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The export's CSV text.
fn export_csv(d: &Daemon) -> String {
    let out = d.ledger_cli(&["export", "--format", "csv"]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn the_export_carries_the_reason_operator_and_cashier() {
    let d = Daemon::start("", "");
    let mut c = d.client().await;
    let id = register(&mut c, "+79161110005", CARD).await;
    let sale = c
        .call(
            "sale.commit",
            json!({"idempotency_key": "s1", "number": CARD, "receipt_id": "R-1",
                   "lines": lines(1000), "cashier": "Анна, касса 2"}),
        )
        .await
        .unwrap();
    let adj = c
        .call(
            "ledger.adjust",
            json!({"idempotency_key": "a1", "account_id": id, "amount": "7",
                   "reason": "goodwill \"sorry\""}),
        )
        .await
        .unwrap();
    let refund = c
        .call(
            "sale.refund",
            json!({"idempotency_key": "r1", "receipt_id": "R-1", "amount": "100", "cashier": "Олег"}),
        )
        .await
        .unwrap();

    let rows = export_json(&d);
    let of = |txn: &Value| -> Vec<&Value> { rows.iter().filter(|r| r["txn"] == *txn).collect() };
    let sale_rows = of(&sale["transaction"]);
    assert!(!sale_rows.is_empty(), "{rows:#?}");
    for r in sale_rows {
        assert_eq!(r["cashier"], "Анна, касса 2");
        assert_eq!(
            (r["reason"].clone(), r["operator"].clone()),
            (Value::Null, Value::Null)
        );
    }
    let adj_rows = of(&adj["transaction"]);
    assert_eq!(adj_rows.len(), 1, "{rows:#?}");
    assert_eq!(adj_rows[0]["reason"], "goodwill \"sorry\"");
    let operator = adj_rows[0]["operator"].as_str().unwrap();
    assert!(operator.starts_with("unix uid "), "{operator}");
    assert_eq!(adj_rows[0]["cashier"], Value::Null);
    let refund_rows = of(&refund["transaction"]);
    assert!(!refund_rows.is_empty(), "{rows:#?}");
    for r in refund_rows {
        assert_eq!(r["cashier"], "Олег");
        // Nothing was forgiven: the points were all there.
        assert_eq!(r["clawback_shortfall"], Value::Null);
    }

    // The CSV: the new columns at the end, quoted where they need it.
    let csv = export_csv(&d);
    let mut lines_ = csv.lines();
    assert_eq!(
        lines_.next().unwrap(),
        "txn_id,kind,created_at,account,receipt_id,entry_kind,amount,lot_id,\
         reason,operator,cashier,clawback_shortfall"
    );
    assert!(
        csv.lines()
            .any(|l| l.starts_with(&format!("{},sale,", sale["transaction"]))
                && l.ends_with(",,,\"Анна, касса 2\",")),
        "{csv}"
    );
    assert!(
        csv.lines().any(
            |l| l.starts_with(&format!("{},adjust,", adj["transaction"]))
                && l.contains(",\"goodwill \"\"sorry\"\"\",unix uid ")
        ),
        "{csv}"
    );
    d.verify_ledger();
}

#[tokio::test]
async fn a_clamped_refund_shows_the_forgiven_points_in_history_and_export() {
    let d = Daemon::start("", "[ledger.programme]\nrefund_shortfall = \"clamp\"\n");
    let mut c = d.client().await;
    let id = register(&mut c, "+79161110006", CARD).await;
    // Sale "a" earns 50; 40 of them pay for sale "b" (which earns 2).
    let a = c
        .call(
            "sale.commit",
            json!({"idempotency_key": "a", "number": CARD, "receipt_id": "a", "lines": lines(1000)}),
        )
        .await
        .unwrap();
    assert_eq!(a["balance_after"], "50");
    let t = c
        .call("card.enter", json!({"number": CARD, "secret": "4711"}))
        .await
        .unwrap()["card_token"]
        .clone();
    let b = c
        .call(
            "sale.commit",
            json!({"idempotency_key": "b", "card_token": t, "receipt_id": "b",
                   "lines": lines(80), "redeem": "40"}),
        )
        .await
        .unwrap();
    assert_eq!(b["balance_after"], "12");
    // Refunding "a" claws back 50; only 12 are left, 38 are forgiven.
    let r = c
        .call(
            "sale.refund",
            json!({"idempotency_key": "r", "receipt_id": "a"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r["clawback"].clone(), r["clawback_shortfall"].clone()),
        (json!("12"), json!("38"))
    );

    let h = c
        .call("account.history", json!({"account": id}))
        .await
        .unwrap();
    let txns = h["transactions"].as_array().unwrap();
    assert_eq!(txns.len(), 3, "{h:#}");
    assert_eq!(txns[0]["kind"], "refund");
    assert_eq!(txns[0]["transaction"], r["transaction"]);
    assert_eq!(txns[0]["clawback_shortfall"], "38");
    for sale in &txns[1..] {
        assert_eq!(sale["kind"], "sale");
        assert!(sale.get("clawback_shortfall").is_none(), "{sale:#}");
    }
    // The same page again (the figure is stored, not recomputed).
    let again = c
        .call("account.history", json!({"account": id}))
        .await
        .unwrap();
    assert_eq!(again["transactions"][0]["clawback_shortfall"], "38");

    let rows = export_json(&d);
    let refund_rows: Vec<&Value> = rows
        .iter()
        .filter(|row| row["txn"] == r["transaction"])
        .collect();
    assert!(!refund_rows.is_empty(), "{rows:#?}");
    for row in &refund_rows {
        assert_eq!(row["clawback_shortfall"], "38");
    }
    for row in rows.iter().filter(|row| row["txn"] != r["transaction"]) {
        assert_eq!(row["clawback_shortfall"], Value::Null, "{row}");
    }
    let csv = export_csv(&d);
    assert!(
        csv.lines()
            .any(|l| l.starts_with(&format!("{},refund,", r["transaction"])) && l.ends_with(",38")),
        "{csv}"
    );
    d.verify_ledger();
}
