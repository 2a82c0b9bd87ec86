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
