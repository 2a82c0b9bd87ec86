//! Customers and card secrets: registration, the welcome bonus, secrets
//! kept only as hashes, and the lock after too many wrong secrets.

mod common;

use std::time::Duration;

use common::Daemon;
use posbridge::client::{Client, ClientError};
use serde_json::{Value, json};

const PROGRAMME: &str = "[ledger.programme]\nwelcome_bonus = \"100\"\nwelcome_expiry_days = 30\n";

fn code(r: Result<Value, ClientError>) -> (i64, Value) {
    match r {
        Err(ClientError::Rpc { error }) => (error["code"].as_i64().unwrap(), error["data"].clone()),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

async fn redeem(
    c: &mut Client,
    number: &str,
    secret: &str,
    key: &str,
) -> Result<Value, ClientError> {
    let t = c
        .call("card.enter", json!({"number": number, "secret": secret}))
        .await
        .unwrap();
    c.call(
        "sale.commit",
        json!({"idempotency_key": key, "card_token": t["card_token"], "receipt_id": key,
               "lines": [{"sku": "1", "name": "x", "category": "g", "qty": "1", "price": "1000"}],
               "redeem": "10"}),
    )
    .await
}

#[tokio::test]
async fn a_virtual_card_gets_a_secret_shown_once_and_the_welcome_bonus() {
    let d = Daemon::start("", PROGRAMME);
    let mut c = d.client().await;
    let r = c
        .call(
            "account.register",
            json!({"phone": "8 (916) 555-01-02", "name": "Анна", "virtual": true}),
        )
        .await
        .unwrap();
    let number = r["card_number"].as_str().unwrap().to_owned();
    let secret = r["secret"].as_str().unwrap().to_owned();
    assert!(number.starts_with("2990") && number.len() == 16);
    assert_eq!(secret.len(), 6);
    assert_eq!(r["kind"], "virtual");
    assert_eq!(r["welcome_bonus"], "100");
    let resolved = c
        .call("card.resolve", json!({"number": number}))
        .await
        .unwrap();
    assert_eq!(resolved["account"]["balance"], "100");

    // The right secret spends points.
    let ok = redeem(&mut c, &number, &secret, "s1").await.unwrap();
    assert_eq!(ok["redeemed"], "10");

    // The same phone again is refused; nothing is written twice.
    let (code_, data) = code(
        c.call(
            "account.register",
            json!({"phone": "+79165550102", "virtual": true}),
        )
        .await,
    );
    assert_eq!((code_, data["field"].clone()), (2011, json!("phone")));
    let (code_, data) = code(c.call("account.register", json!({"phone": "12ab"})).await);
    assert_eq!((code_, data["field"].clone()), (-32602, json!("phone")));

    // The secret exists nowhere in clear: not in the database, not in the log.
    let db = std::fs::read(d.dir.path().join("state/posbridge.sqlite3")).unwrap();
    let wal = std::fs::read(d.dir.path().join("state/posbridge.sqlite3-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "secret stored in clear"
        );
    }
    assert!(!d.log().contains(&secret));
    assert!(!d.log().contains(&number));
}

#[tokio::test]
async fn wrong_secrets_lock_the_card_and_the_lock_survives_a_restart() {
    let mut d = Daemon::start("", PROGRAMME);
    let mut c = d.client().await;
    let number = "6035999900001111";
    c.call(
        "account.register",
        json!({"email": "ivan@example.ru", "card_number": number, "secret": "4711"}),
    )
    .await
    .unwrap();
    let mut events = d.client().await;
    events
        .call("events.subscribe", json!({"topics": ["card.locked"]}))
        .await
        .unwrap();
    for i in 0..4 {
        let (code_, data) = code(redeem(&mut c, number, "0000", &format!("w{i}")).await);
        assert_eq!(code_, 2008);
        assert_eq!(data["attempts_left"], 4 - i);
    }
    let (code_, data) = code(redeem(&mut c, number, "0000", "w4").await);
    assert_eq!(code_, 2009);
    assert!(data["until"].as_str().unwrap().ends_with('Z'));
    let ev = tokio::time::timeout(Duration::from_secs(5), events.next_notification())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev["params"]["card_masked"], "****1111");
    // Even the right secret is refused while locked.
    assert_eq!(code(redeem(&mut c, number, "4711", "r1").await).0, 2009);

    // Restart: still locked.
    d.signal(nix::sys::signal::Signal::SIGTERM);
    d.wait_exit(Duration::from_secs(20));
    d.spawn(|_| {});
    let mut c = d.client().await;
    assert_eq!(code(redeem(&mut c, number, "4711", "r2").await).0, 2009);
    // Accrual needs no secret and still works.
    let acc = c
        .call(
            "sale.commit",
            json!({"idempotency_key": "acc", "number": number, "receipt_id": "A",
            "lines": [{"sku": "1", "name": "x", "category": "g", "qty": "1", "price": "100"}]}),
        )
        .await
        .unwrap();
    assert_eq!(acc["accrued"], "5");
}

#[tokio::test]
async fn a_card_enrolled_by_a_sale_has_no_secret_to_spend_with() {
    let d = Daemon::start("", "");
    let mut c = d.client().await;
    let number = "6035777700002222";
    c.call(
        "sale.commit",
        json!({"idempotency_key": "e", "number": number, "receipt_id": "E",
        "lines": [{"sku": "1", "name": "x", "category": "g", "qty": "1", "price": "1000"}]}),
    )
    .await
    .unwrap();
    assert_eq!(code(redeem(&mut c, number, "4711", "n1").await).0, 2010);
    let (code_, _) = code(
        c.call(
            "account.register",
            json!({"phone": "+79160000001", "card_number": number}),
        )
        .await,
    );
    assert_eq!(code_, 2012, "the card number is already issued");

    // An admin gives the card its first secret; then it can spend.
    let r = c
        .call("card.secret.regenerate", json!({"number": number}))
        .await
        .unwrap();
    let secret = r["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        redeem(&mut c, number, &secret, "n2").await.unwrap()["redeemed"],
        "10"
    );
    let view = c
        .call("account.get", json!({"card_number": number}))
        .await
        .unwrap();
    assert_eq!(view["cards"][0]["has_secret"], true);
    assert_eq!(view["cards"][0]["card_masked"], "****2222");
    assert!(!view.to_string().contains(number));

    // Blocked: neither earns nor spends; unblocked: both again.
    c.call("card.block", json!({"number": number, "status": "lost"}))
        .await
        .unwrap();
    let sale = json!({"idempotency_key": "b1", "number": number, "receipt_id": "B",
        "lines": [{"sku": "1", "name": "x", "category": "g", "qty": "1", "price": "100"}]});
    assert_eq!(code(c.call("sale.commit", sale.clone()).await).0, 2002);
    c.call("card.unblock", json!({"number": number}))
        .await
        .unwrap();
    assert_eq!(c.call("sale.commit", sale).await.unwrap()["accrued"], "5");
    assert!(!d.log().contains(&secret));
}
