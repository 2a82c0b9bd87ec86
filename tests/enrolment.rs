//! Joining the programme without the till's keyboard: a web shop's server
//! enrolling an online customer over `POST /rpc` (issue 21, item 9).

mod common;

use std::time::Duration;

use common::{CASHIER_TOKEN, Daemon, TcpTokens};
use serde_json::{Value, json};

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
