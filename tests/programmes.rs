//! Several programmes on one ledger (issue 21 item 10; seed 004: "the
//! bonus account is opened under one of the programmes"): each account
//! earns and spends by its own programme's rules, a card range routes a
//! card to its programme, and a till refuses an account of a programme it
//! does not serve (2029, naming it). `programmes_central.rs` runs the same
//! file against the central ledger.

mod common;

use std::time::Duration;

use common::Daemon;
use posbridge::client::{Client, ClientError};
use serde_json::{Value, json};

/// The cinema's tickets: 5 % back, and (seed 004) "на билет за 100₽ можно
/// потратить до 10 бонусов и 90₽": at most 10 % paid with points. The bar:
/// 10 % back, up to half. Cards from 7002 belong to the bar.
fn config(serves: &str) -> String {
    format!(
        r#"
[ledger]
serves = [{serves}]

[ledger.programme]
name = "Кино"
default_accrual_percent = "5"
cap_percent = "10"

[[ledger.programmes]]
name = "Бар"
default_accrual_percent = "10"
cap_percent = "50"

[ledger.programme_cards]
"Бар" = ["7002"]
"#
    )
}

const CINEMA_CARD: &str = "7001000000000001";
const BAR_CARD: &str = "7002000000000001";

fn code(r: Result<Value, ClientError>) -> (i64, Value) {
    match r {
        Err(ClientError::Rpc { error }) => (error["code"].as_i64().unwrap(), error["data"].clone()),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

fn lines(price: u32) -> Value {
    json!([{"sku": "T1", "name": "Билет", "category": "tickets", "qty": "1", "price": price.to_string()}])
}

fn sale(key: &str, card: &str, price: u32) -> Value {
    json!({"idempotency_key": key, "number": card, "receipt_id": key, "lines": lines(price)})
}

async fn register(c: &mut Client, phone: &str, card: &str, programme: Option<&str>) -> Value {
    let mut p = json!({"phone": phone, "card_number": card, "secret": "4711"});
    if let Some(name) = programme {
        p["programme"] = json!(name);
    }
    c.call("account.register", p).await.unwrap()
}

#[tokio::test]
async fn each_account_earns_and_spends_by_its_own_programme() {
    let d = Daemon::start("", &config(r#""Кино", "Бар""#));
    let mut c = d.client().await;
    // Named at registration, and routed by the card's range.
    register(&mut c, "+79160000001", CINEMA_CARD, Some("Кино")).await;
    register(&mut c, "+79160000002", BAR_CARD, None).await;

    let r = c
        .call("sale.commit", sale("s1", CINEMA_CARD, 1000))
        .await
        .unwrap();
    assert_eq!(r["accrued"], "50", "{r}");
    let r = c
        .call("sale.commit", sale("s2", BAR_CARD, 1000))
        .await
        .unwrap();
    assert_eq!(r["accrued"], "100", "{r}");

    // The seed's ticket: 100 ₽, at most 10 points; at the bar, half.
    let q = c
        .call(
            "sale.quote",
            json!({"number": CINEMA_CARD, "lines": lines(100)}),
        )
        .await
        .unwrap();
    assert_eq!(q["quote"]["max_redeemable"], "10", "{q}");
    assert_eq!(q["quote"]["accrual"], "5", "{q}");
    let q = c
        .call(
            "sale.quote",
            json!({"number": BAR_CARD, "lines": lines(100)}),
        )
        .await
        .unwrap();
    assert_eq!(q["quote"]["max_redeemable"], "50", "{q}");
    assert_eq!(q["quote"]["accrual"], "10", "{q}");

    // A card that first shows up at a sale joins by its range too.
    let r = c
        .call("sale.commit", sale("s3", "7002000000000002", 100))
        .await
        .unwrap();
    assert_eq!(r["accrued"], "10", "{r}");
    let r = c
        .call("sale.commit", sale("s4", "5555000000000001", 100))
        .await
        .unwrap();
    assert_eq!(r["accrued"], "5", "the till's own programme: {r}");

    // A name no programme has.
    let (n, data) = code(
        c.call(
            "account.register",
            json!({"phone": "+79160000003", "programme": "Ресторан"}),
        )
        .await,
    );
    assert_eq!((n, &data["field"]), (-32602, &json!("programme")), "{data}");
}

#[tokio::test]
async fn a_till_refuses_an_account_of_a_programme_it_does_not_serve() {
    let mut d = Daemon::start("", &config(r#""Кино", "Бар""#));
    let mut c = d.client().await;
    register(&mut c, "+79160000011", BAR_CARD, Some("Бар")).await;
    let bar_sale = c
        .call("sale.commit", sale("b1", BAR_CARD, 1000))
        .await
        .unwrap();
    assert_eq!(bar_sale["accrued"], "100");
    register(&mut c, "+79160000012", CINEMA_CARD, None).await;

    // The cinema's till: the same books, only its own programme.
    d.signal(nix::sys::signal::Signal::SIGTERM);
    d.wait_exit(Duration::from_secs(20));
    d.write_config("", &config(r#""Кино""#));
    d.spawn(|_| {});
    let mut c = d.client().await;

    let refused = |what: &str, (n, data): (i64, Value)| {
        assert_eq!(n, 2029, "{what}: {data}");
        assert_eq!(data["programme"], "Бар", "{what}: {data}");
    };
    refused(
        "sale",
        code(c.call("sale.commit", sale("b2", BAR_CARD, 100)).await),
    );
    refused(
        "quote",
        code(
            c.call(
                "sale.quote",
                json!({"number": BAR_CARD, "lines": lines(100)}),
            )
            .await,
        ),
    );
    refused(
        "resolve",
        code(c.call("card.resolve", json!({"number": BAR_CARD})).await),
    );
    refused(
        "refund",
        code(
            c.call(
                "sale.refund",
                json!({"idempotency_key": "rb1", "transaction": bar_sale["transaction"]}),
            )
            .await,
        ),
    );
    // A new card of the bar's range, and registering under the bar.
    refused(
        "new bar card",
        code(
            c.call("sale.commit", sale("b3", "7002000000000009", 100))
                .await,
        ),
    );
    refused(
        "register",
        code(
            c.call(
                "account.register",
                json!({"phone": "+79160000013", "programme": "Бар"}),
            )
            .await,
        ),
    );
    // The bar's points are untouched: nothing was booked there (the
    // history is a read, open to any till of the chain).
    let h = c
        .call(
            "account.history",
            json!({"account": bar_sale["account"], "limit": 10}),
        )
        .await
        .unwrap();
    assert_eq!(h["balance"], "100", "{h}");
    assert_eq!(h["transactions"].as_array().unwrap().len(), 1, "{h}");

    // The cinema's own account works as before.
    let r = c
        .call("sale.commit", sale("c1", CINEMA_CARD, 100))
        .await
        .unwrap();
    assert_eq!(r["accrued"], "5", "{r}");
}
