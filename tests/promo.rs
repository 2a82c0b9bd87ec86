//! Campaigns and promo codes through the socket (issue 21 item 12): a
//! campaign raises the quote and the commit of a sale at its own time (a
//! past campaign does not), a group's campaign only its members; a promo
//! code is matched ignoring case, counted once per sale key, refused by
//! name when unknown, disabled, expired or used up (per customer and in
//! all), and its last use taken by many sales at once goes to one.
//! `promo_central.rs` runs the same on the central ledger.

mod common;

use common::Daemon;
use posbridge::client::{Client, ClientError};
use serde_json::{Value, json};

const PROGRAMME: &str = r#"
[ledger.programme]
default_accrual_percent = "5"

[[ledger.programme.campaigns]]
name = "bar x2"
categories = ["bar"]
multiplier = "2"

[[ledger.programme.campaigns]]
name = "old"
until = "2020-01-31"
extra_percent = "50"

[[ledger.programme.campaigns]]
name = "staff +5"
groups = ["staff"]
extra_percent = "5"

[[ledger.programme.promo_codes]]
code = "Welcome10"
bonus = "10"
per_customer = 1
total = 2

[[ledger.programme.promo_codes]]
code = "X2"
multiplier = "2"

[[ledger.programme.promo_codes]]
code = "OLD"
bonus = "10"
until = "2020-01-31"

[[ledger.programme.promo_codes]]
code = "OFF"
bonus = "10"
disabled = true

[[ledger.programme.promo_codes]]
code = "LAST3"
bonus = "7"
total = 3
"#;

fn lines(total: u32) -> Value {
    json!([{"sku": "A1", "name": "Товар", "category": "general", "qty": "1", "price": total.to_string()}])
}

fn sale(key: &str, card: &str, total: u32, promo: Option<&str>) -> Value {
    let mut s = json!({
        "idempotency_key": key, "number": card, "receipt_id": key, "lines": lines(total),
    });
    if let Some(p) = promo {
        s["promo_code"] = json!(p);
    }
    s
}

fn refusal(r: Result<Value, ClientError>) -> Value {
    match r {
        Err(ClientError::Rpc { error }) => error,
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

#[tokio::test]
async fn campaigns_raise_the_quote_and_the_commit() {
    let d = Daemon::start("", PROGRAMME);
    let mut c = d.client().await;
    const CARD: &str = "6035000011112222";
    let basket = json!([
        {"sku": "T1", "name": "Билет", "category": "tickets", "qty": "1", "price": "1000"},
        {"sku": "P1", "name": "Попкорн", "category": "bar", "qty": "1", "price": "200"},
    ]);
    // Tickets 5 % of 1000 = 50; the bar's 10 doubled = 20. The campaign
    // that ended in 2020 gives nothing.
    let q = c
        .call("sale.quote", json!({"number": CARD, "lines": basket}))
        .await
        .unwrap();
    assert_eq!(q["quote"]["accrual"], "70", "{q}");
    assert_eq!(q["quote"]["extra_accrual"], "10");
    assert_eq!(
        q["quote"]["campaigns"],
        json!([{"name": "bar x2", "lines": [1]}])
    );
    let r = c
        .call(
            "sale.commit",
            json!({"idempotency_key": "s1", "number": CARD, "receipt_id": "R1", "lines": basket}),
        )
        .await
        .unwrap();
    assert_eq!(r["accrued"], "70");
    assert_eq!(r["campaigns"], json!(["bar x2"]));
    let account = r["account"].as_i64().unwrap();

    // In the staff group, 5 % more on every line: 50 + 50, 20 + 10.
    c.call("group.create", json!({"name": "staff"}))
        .await
        .unwrap();
    c.call(
        "account.groups.set",
        json!({"account": account, "groups": ["staff"]}),
    )
    .await
    .unwrap();
    let q = c
        .call("sale.quote", json!({"number": CARD, "lines": basket}))
        .await
        .unwrap();
    assert_eq!(q["quote"]["accrual"], "130", "{q}");
    let r = c
        .call(
            "sale.commit",
            json!({"idempotency_key": "s2", "number": CARD, "receipt_id": "R2", "lines": basket}),
        )
        .await
        .unwrap();
    assert_eq!(r["accrued"], "130");
    assert_eq!(r["campaigns"], json!(["bar x2", "staff +5"]));
    assert_eq!(r["balance_after"], "200");
    // A return claws the campaign's points back with the sale's.
    let rf = c
        .call(
            "sale.refund",
            json!({"idempotency_key": "rf2", "receipt_id": "R2"}),
        )
        .await
        .unwrap();
    assert_eq!(rf["clawback"], "130");
    d.verify_ledger();
}

#[tokio::test]
async fn promo_codes_count_once_per_sale_within_their_limits() {
    let d = Daemon::start("", PROGRAMME);
    let mut c = d.client().await;
    const A: &str = "6035000000000001";
    const B: &str = "6035000000000002";
    const C: &str = "6035000000000003";

    // Case does not matter; the quote shows the code and its bonus.
    let q = c
        .call(
            "sale.quote",
            json!({"number": A, "lines": lines(100), "promo_code": "welcome10"}),
        )
        .await
        .unwrap();
    assert_eq!(q["quote"]["accrual"], "15", "{q}");
    assert_eq!(q["quote"]["promo"]["code"], "WELCOME10");
    assert_eq!(q["quote"]["promo"]["bonus"], "10");

    let first = c
        .call("sale.commit", sale("a1", A, 100, Some("welcome10")))
        .await
        .unwrap();
    assert_eq!(first["accrued"], "15");
    assert_eq!(first["promo_code"], "WELCOME10");
    // The same key again: the stored answer, the use not counted twice.
    let again = c
        .call("sale.commit", sale("a1", A, 100, Some("WELCOME10")))
        .await
        .unwrap();
    assert_eq!(again, first);
    // The same key with another code is another request.
    let e = refusal(c.call("sale.commit", sale("a1", A, 100, Some("X2"))).await);
    assert_eq!(e["code"], 2005, "{e}");

    // One use per customer.
    let e = refusal(
        c.call("sale.commit", sale("a2", A, 100, Some("Welcome10")))
            .await,
    );
    assert_eq!(e["code"], 2061, "{e}");
    assert_eq!(e["data"]["field"], "promo_code");
    assert_eq!(e["data"]["reason"], "customer_limit");
    // The quote says so before the sale.
    let e = refusal(
        c.call(
            "sale.quote",
            json!({"number": A, "lines": lines(100), "promo_code": "WELCOME10"}),
        )
        .await,
    );
    assert_eq!(e["data"]["reason"], "customer_limit");

    // Two uses in all: B takes the second (the repeat of a1 did not
    // count), C finds none left.
    let r = c
        .call("sale.commit", sale("b1", B, 100, Some("WELCOME10")))
        .await
        .unwrap();
    assert_eq!(r["accrued"], "15");
    let e = refusal(
        c.call("sale.commit", sale("c1", C, 100, Some("WELCOME10")))
            .await,
    );
    assert_eq!(e["data"]["reason"], "used_up", "{e}");
    // A refused sale wrote nothing: its key books the sale without code.
    let r = c
        .call("sale.commit", sale("c1", C, 100, None))
        .await
        .unwrap();
    assert_eq!(r["accrued"], "5");
    assert!(r.get("promo_code").is_none(), "{r}");

    // A multiplier doubles the sale's accrual.
    let r = c
        .call("sale.commit", sale("c2", C, 100, Some("x2")))
        .await
        .unwrap();
    assert_eq!(r["accrued"], "10");

    for (code, reason) in [("NOPE", "unknown"), ("old", "expired"), ("off", "disabled")] {
        let e = refusal(c.call("sale.commit", sale("z", C, 100, Some(code))).await);
        assert_eq!(e["code"], 2061, "{code}: {e}");
        assert_eq!(e["data"]["field"], "promo_code");
        assert_eq!(e["data"]["reason"], reason, "{code}: {e}");
        let e = refusal(
            c.call(
                "sale.quote",
                json!({"number": C, "lines": lines(100), "promo_code": code}),
            )
            .await,
        );
        assert_eq!(e["data"]["reason"], reason, "{code}: {e}");
    }
    let e = refusal(c.call("sale.commit", sale("z", C, 100, Some(""))).await);
    assert_eq!(e["code"], -32602);
    assert_eq!(e["data"]["field"], "promo_code");

    // The admin's list: each code with the uses the ledger counted.
    let list = c.call("promo.list", json!({})).await.unwrap();
    let codes = list["codes"].as_array().unwrap();
    let find = |name: &str| codes.iter().find(|c| c["code"] == name).unwrap().clone();
    assert_eq!(codes.len(), 5, "{list}");
    let w = find("WELCOME10");
    assert_eq!(
        (w["used"].as_i64(), w["left"].as_i64()),
        (Some(2), Some(0)),
        "{w}"
    );
    assert_eq!(w["per_customer"], 1);
    let x = find("X2");
    assert_eq!(x["used"], 1);
    assert!(x["left"].is_null(), "{x}");
    let off = find("OFF");
    assert_eq!(
        (off["used"].as_i64(), off["disabled"].as_bool()),
        (Some(0), Some(true))
    );
    d.verify_ledger();
}

#[tokio::test]
async fn the_last_uses_taken_at_once_go_to_as_many_sales() {
    let d = Daemon::start("", PROGRAMME);
    // Eight sales on eight connections race for LAST3's three uses.
    let mut clients: Vec<Client> = Vec::new();
    for _ in 0..8 {
        clients.push(d.client().await);
    }
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            tokio::spawn(async move {
                let card = format!("60350000000001{i:02}");
                c.call(
                    "sale.commit",
                    sale(&format!("r{i}"), &card, 100, Some("last3")),
                )
                .await
            })
        })
        .collect();
    let (mut won, mut lost) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                assert_eq!(r["accrued"], "12", "{r}");
                won += 1;
            }
            Err(e) => {
                let e = refusal(Err(e));
                assert_eq!(e["data"]["reason"], "used_up", "{e}");
                lost += 1;
            }
        }
    }
    assert_eq!((won, lost), (3, 5));
    d.verify_ledger();
}
