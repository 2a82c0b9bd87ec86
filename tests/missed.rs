//! A missed accrual (issue 21 item 7, seed 003: "the guest did not get the
//! points for an order because of a link failure with the till"):
//! `ledger.adjust` with a past receipt's `lines` and `sold_at` credits the
//! programme's accrual for them, once per receipt and account, expiring as
//! if accrued at the sale, and history shows it with its receipt, reason
//! and operator. Figures: seed 002's rates (essential medicines 1 %, the
//! rest 5 %).

mod common;

use common::Daemon;
use posbridge::client::{Client, ClientError};
use posbridge::ledger::rules::{Programme, expiry_of};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const CARD: &str = "6035000077770001";

const PHARMACY: &str = r#"
[ledger.programme]
default_accrual_percent = "5"

[[ledger.programme.categories]]
category = "essential"
accrual_percent = "1"
"#;

fn code(r: Result<Value, ClientError>) -> (i64, Value) {
    match r {
        Err(ClientError::Rpc { error }) => (error["code"].as_i64().unwrap(), error["data"].clone()),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

fn lines() -> Value {
    json!([
        {"sku": "ESS1", "name": "Essential", "category": "essential", "qty": "2", "price": "150"},
        {"sku": "VIT", "name": "Vitamins", "category": "general", "qty": "1", "price": "500"},
    ])
}

fn rfc(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

async fn register(c: &mut Client) -> i64 {
    c.call(
        "account.register",
        json!({"phone": "+79161113344", "card_number": CARD, "secret": "4711"}),
    )
    .await
    .unwrap()["account"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn a_lost_receipt_accrues_once_by_the_programme_s_rules() {
    let d = Daemon::start("", PHARMACY);
    let mut c = d.client().await;
    let id = register(&mut c).await;
    let sold_at = (OffsetDateTime::now_utc() - time::Duration::days(2))
        .replace_nanosecond(0)
        .unwrap();
    let missed = |key: &str, receipt: &str, sold_at: OffsetDateTime| {
        json!({"idempotency_key": key, "account_id": id, "receipt": receipt,
               "sold_at": rfc(sold_at), "lines": lines(), "reason": "the till lost its link"})
    };
    // 1 % of 300 + 5 % of 500 = 28 points, expiring six months after the
    // sale, not after today.
    let r = c
        .call("ledger.adjust", missed("m1", "R-LOST", sold_at))
        .await
        .unwrap();
    assert_eq!(
        (&r["amount"], &r["balance_after"]),
        (&json!("28"), &json!("28"))
    );
    let due = expiry_of(&Programme::default(), sold_at).unwrap().unwrap();
    let got = OffsetDateTime::parse(r["expires_at"].as_str().unwrap(), &Rfc3339).unwrap();
    assert_eq!(got, due);
    // The same key again: the same answer, nothing booked twice.
    assert_eq!(
        c.call("ledger.adjust", missed("m1", "R-LOST", sold_at))
            .await
            .unwrap(),
        r
    );
    // Another key for the same receipt: refused, naming the receipt.
    let (e, data) = code(
        c.call("ledger.adjust", missed("m2", "R-LOST", sold_at))
            .await,
    );
    assert_eq!((e, &data["field"]), (-32602, &json!("receipt")));

    // A receipt the till did book has accrued already.
    c.call(
        "sale.commit",
        json!({"idempotency_key": "s1", "number": CARD, "receipt_id": "R-OK", "lines": lines()}),
    )
    .await
    .unwrap();
    let (e, data) = code(c.call("ledger.adjust", missed("m3", "R-OK", sold_at)).await);
    assert_eq!((e, &data["field"]), (-32602, &json!("receipt")));

    // Seven months ago: the points would have burnt already, unless the
    // operator gives them an expiry.
    let long_ago = sold_at - time::Duration::days(215);
    let (e, data) = code(
        c.call("ledger.adjust", missed("m4", "R-OLD", long_ago))
            .await,
    );
    assert_eq!((e, &data["field"]), (-32602, &json!("sold_at")));
    let mut with_expiry = missed("m4", "R-OLD", long_ago);
    with_expiry["expires_at"] = json!(rfc(OffsetDateTime::now_utc() + time::Duration::days(30)));
    let old = c.call("ledger.adjust", with_expiry).await.unwrap();
    assert_eq!(
        (&old["amount"], &old["balance_after"]),
        (&json!("28"), &json!("84"))
    );

    // The request's shape: amount and lines exclude each other; lines need
    // their receipt and sale time; a sale time needs lines.
    let mut both = missed("m5", "R-5", sold_at);
    both["amount"] = json!("10");
    assert_eq!(
        code(c.call("ledger.adjust", both).await).1["field"],
        "amount"
    );
    let mut no_receipt = missed("m5", "R-5", sold_at);
    no_receipt.as_object_mut().unwrap().remove("receipt");
    assert_eq!(
        code(c.call("ledger.adjust", no_receipt).await).1["field"],
        "receipt"
    );
    let mut no_time = missed("m5", "R-5", sold_at);
    no_time.as_object_mut().unwrap().remove("sold_at");
    assert_eq!(
        code(c.call("ledger.adjust", no_time).await).1["field"],
        "sold_at"
    );
    let ahead = missed(
        "m5",
        "R-5",
        OffsetDateTime::now_utc() + time::Duration::days(1),
    );
    assert_eq!(
        code(c.call("ledger.adjust", ahead).await).1["field"],
        "sold_at"
    );

    // A blocked account is refused unless overridden, as any adjustment.
    c.call(
        "account.update",
        json!({"account": id, "status": "blocked"}),
    )
    .await
    .unwrap();
    assert_eq!(
        code(c.call("ledger.adjust", missed("m6", "R-6", sold_at)).await).0,
        2002
    );
    let mut forced = missed("m6", "R-6", sold_at);
    forced["override"] = json!(true);
    assert_eq!(
        c.call("ledger.adjust", forced).await.unwrap()["amount"],
        "28"
    );

    // History shows the missed accrual with its receipt, reason and
    // operator.
    let h = c
        .call("account.history", json!({"account": id}))
        .await
        .unwrap();
    let t = h["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["transaction"] == r["transaction"])
        .unwrap()
        .clone();
    assert_eq!(
        (&t["kind"], &t["receipt_id"], &t["reason"]),
        (
            &json!("adjust"),
            &json!("R-LOST"),
            &json!("the till lost its link")
        )
    );
    assert!(
        t["operator"].as_str().unwrap().starts_with("unix uid"),
        "{t}"
    );
}
