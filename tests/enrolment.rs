//! Joining the programme without the till's keyboard: a web shop's server
//! enrolling an online customer over `POST /rpc` (issue 21, item 9), and a
//! physical card registered with the secret its swipe carried (item 6).

mod common;

use std::time::Duration;

use common::{CASHIER_TOKEN, Daemon, TcpTokens};
use posbridge::client::{Client, ClientError};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// One JSON-RPC call over `POST /rpc` with the Bearer token, as a web
/// shop's server makes it.
async fn rpc(tcp: &TcpTokens, id: u64, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let r = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
        .post(format!("http://{}/rpc", tcp.addr))
        .bearer_auth(CASHIER_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_web_shop_enrols_an_online_customer_over_http() {
    let tcp = TcpTokens::new();
    let d = Daemon::start(
        &tcp.daemon_extra,
        "[ledger.programme]\nwelcome_bonus = \"100\"\nwelcome_expiry_days = 30\n",
    );

    // The order's customer: phone and e-mail, a virtual card.
    let params = json!({"phone": "+7 916 555-01-02", "email": "olga@example.ru",
                        "name": "Ольга", "virtual": true});
    let r = rpc(&tcp, 1, "account.register", params.clone()).await;
    let res = &r["result"];
    assert_eq!(res["kind"], "virtual", "{r}");
    assert_eq!(res["status"], "active", "{r}");
    assert_eq!(res["welcome_bonus"], "100", "{r}");
    let account = res["account"].as_i64().unwrap();
    let number = res["card_number"].as_str().unwrap().to_owned();
    let secret = res["secret"].as_str().unwrap().to_owned();
    assert!(number.starts_with("2990") && number.len() == 16, "{r}");
    assert_eq!(secret.len(), 6, "{r}");

    // The same customer again (a second order, or a retry after a lost
    // answer): refused with the field, nothing new is written ...
    let again = rpc(&tcp, 2, "account.register", params).await;
    assert_eq!(again["error"]["code"], 2011, "{again}");
    assert_eq!(again["error"]["data"]["field"], "phone", "{again}");
    // ... and the shop finds the existing account and its card by phone.
    let got = rpc(&tcp, 3, "account.get", json!({"phone": "89165550102"})).await;
    assert_eq!(got["result"]["account"], account, "{got}");
    let cards = got["result"]["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 1, "{got}");
    assert_eq!(
        cards[0]["card_masked"],
        format!("****{}", &number[12..]),
        "{got}"
    );

    // The virtual card works at the till: with its secret it spends the
    // welcome bonus (within the cap) and earns.
    let mut c = d.client().await;
    let t = c
        .call("card.enter", json!({"number": number, "secret": secret}))
        .await
        .unwrap();
    assert_eq!(t["account"]["balance"], "100", "{t}");
    let sale = c
        .call(
            "sale.commit",
            json!({"idempotency_key": "w1", "card_token": t["card_token"], "receipt_id": "w1",
                   "redeem": "50",
                   "lines": [{"sku": "1", "name": "x", "category": "c", "qty": "1", "price": "200"}]}),
        )
        .await
        .unwrap();
    assert_eq!(sale["redeemed"], "50", "{sale}");
    assert_eq!(sale["account"], account, "{sale}");
}

/// The next event of `topic`.
async fn next_event(c: &mut Client, topic: &str) -> Value {
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), c.next_notification())
            .await
            .unwrap_or_else(|_| panic!("no {topic} event within 10 s"))
            .unwrap();
        if n["params"]["topic"] == topic {
            return n["params"].clone();
        }
        assert_ne!(n["params"]["topic"], "card.read_error", "{n}");
    }
}

fn rpc_error(r: Result<Value, ClientError>) -> Value {
    match r {
        Err(ClientError::Rpc { error }) => error,
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

/// Track 2 with the card's 4-character secret after expiry and service
/// code.
fn swipe(number: &str, secret: &str) -> Vec<u8> {
    format!(";{number}=4912101{secret}?\r").into_bytes()
}

#[tokio::test]
async fn a_swiped_card_registers_and_is_issued_with_the_secret_on_its_stripe() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("msr");
    let (mut device, pts) = common::pty_pair();
    std::os::unix::fs::symlink(&pts, &link).unwrap();
    let uid = nix::unistd::geteuid().as_raw();
    let d = Daemon::start(
        &format!("admin_uids = [{uid}]"),
        &format!(
            "[ledger.programme]\nwelcome_bonus = \"100\"\n\
             [[reader]]\nname = \"msr\"\ntype = \"msr\"\n[reader.serial]\nport = \"{}\"\n\
             [reader.card]\nsecret = \"track2_discretionary\"\nsecret_offset = 0\nsecret_len = 4\n",
            link.display()
        ),
    );
    let mut sub = d.client().await;
    sub.call(
        "events.subscribe",
        json!({"topics": ["card.*", "device.status"]}),
    )
    .await
    .unwrap();
    let mut c = d.client().await;
    // The reader opens the pseudo-terminal shortly after start.
    loop {
        let devs = c.call("devices.list", json!({})).await.unwrap();
        if devs["devices"][0]["status"] == "connected" {
            break;
        }
        let e = next_event(&mut sub, "device.status").await;
        if e["device"] == "msr" && e["status"] == "connected" {
            break;
        }
    }

    // A new card swiped at the till: its token registers the customer.
    const FIRST: &str = "6035000055556666";
    device.write_all(&swipe(FIRST, "8137")).await.unwrap();
    let read = next_event(&mut sub, "card.read").await;
    assert_eq!(read["has_secret"], true, "{read}");
    assert!(read["account"].is_null(), "{read}");
    let r = c
        .call(
            "account.register",
            json!({"phone": "+79160000066", "card_token": read["card_token"]}),
        )
        .await
        .unwrap();
    assert_eq!(r["kind"], "physical", "{r}");
    assert_eq!(r["card_number"], FIRST, "{r}");
    assert_eq!(r["welcome_bonus"], "100", "{r}");
    // The secret is the stripe's, so none is generated or sent back.
    assert!(r["secret"].is_null(), "{r}");
    assert!(!r.to_string().contains("8137"), "{r}");
    let account = r["account"].as_i64().unwrap();

    // The next swipe resolves to the account and may spend: the stored
    // secret is the one on the stripe.
    device.write_all(&swipe(FIRST, "8137")).await.unwrap();
    let read = next_event(&mut sub, "card.read").await;
    assert_eq!(read["account"]["account"], account, "{read}");
    let sale = json!({"idempotency_key": "s1", "card_token": read["card_token"],
                      "receipt_id": "s1", "redeem": "40",
                      "lines": [{"sku": "1", "name": "x", "category": "c", "qty": "1", "price": "100"}]});
    let s = c.call("sale.commit", sale).await.unwrap();
    assert_eq!(s["redeemed"], "40", "{s}");

    // A second card for the same customer, issued from its swipe.
    const SECOND: &str = "6035000077778888";
    device.write_all(&swipe(SECOND, "5902")).await.unwrap();
    let read = next_event(&mut sub, "card.read").await;
    let i = c
        .call(
            "card.issue",
            json!({"account": account, "card_token": read["card_token"]}),
        )
        .await
        .unwrap();
    assert_eq!(i["card_number"], SECOND, "{i}");
    assert!(i["secret"].is_null(), "{i}");
    device.write_all(&swipe(SECOND, "5902")).await.unwrap();
    let read = next_event(&mut sub, "card.read").await;
    assert_eq!(read["account"]["account"], account, "{read}");
    let sale = json!({"idempotency_key": "s2", "card_token": read["card_token"],
                      "receipt_id": "s2", "redeem": "10",
                      "lines": [{"sku": "1", "name": "x", "category": "c", "qty": "1", "price": "100"}]});
    let s = c.call("sale.commit", sale).await.unwrap();
    assert_eq!(s["redeemed"], "10", "{s}");
    // A wrong secret typed for the same card is refused: the secret
    // checked is the stripe's.
    let t = c
        .call("card.enter", json!({"number": SECOND, "secret": "0000"}))
        .await
        .unwrap();
    let sale = json!({"idempotency_key": "s3", "card_token": t["card_token"],
                      "receipt_id": "s3", "redeem": "10",
                      "lines": [{"sku": "1", "name": "x", "category": "c", "qty": "1", "price": "100"}]});
    let e = rpc_error(c.call("sale.commit", sale).await);
    assert_eq!(e["code"], 2008, "{e}");

    // A token with a number, or an unknown token, is refused.
    let e = rpc_error(
        c.call(
            "account.register",
            json!({"phone": "+79160000067", "card_token": t["card_token"], "card_number": SECOND}),
        )
        .await,
    );
    assert_eq!(e["code"], -32602, "{e}");
    assert_eq!(e["data"]["field"], "card_token", "{e}");
    let e = rpc_error(
        c.call(
            "card.issue",
            json!({"account": account, "card_token": "ct_00000000000000000000000000000000"}),
        )
        .await,
    );
    assert_eq!(e["code"], 1301, "{e}");
}
