//! The money path through the socket: quote, commit, idempotency, limits,
//! concurrency and durability across a hard kill.

mod common;

use std::time::Duration;

use common::Daemon;
use posbridge::client::{Client, ClientError};
use serde_json::{Value, json};

const CARD: &str = "6035000011112222";

fn lines(total: u32) -> Value {
    json!([{"sku": "A1", "name": "Товар", "category": "general", "qty": "1", "price": total.to_string()}])
}

fn code(r: Result<Value, ClientError>) -> (i64, Value) {
    match r {
        Err(ClientError::Rpc { error }) => (error["code"].as_i64().unwrap(), error["data"].clone()),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

/// Registers the customer with the card and its secret code 4711.
async fn register(c: &mut Client) {
    c.call(
        "account.register",
        json!({"phone": "+79161234567", "name": "Мария", "card_number": CARD, "secret": "4711"}),
    )
    .await
    .unwrap();
}

async fn token(c: &mut Client) -> String {
    let r = c
        .call("card.enter", json!({"number": CARD, "secret": "4711"}))
        .await
        .unwrap();
    r["card_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_sale_accrues_once_and_redemption_respects_limits() {
    let d = Daemon::start("", "");
    let mut c = d.client().await;
    register(&mut c).await;
    c.call(
        "events.subscribe",
        json!({"topics": ["ledger.transaction"]}),
    )
    .await
    .unwrap();

    // Accrual needs only the number: 5 % of 1000, whole points.
    let sale =
        json!({"idempotency_key": "k1", "number": CARD, "receipt_id": "R1", "lines": lines(1000)});
    let r = c.call("sale.commit", sale.clone()).await.unwrap();
    assert_eq!(r["accrued"], "50");
    assert_eq!(r["balance_before"], "0");
    assert_eq!(r["balance_after"], "50");
    assert!(r["accrued_expires_at"].as_str().unwrap().ends_with('Z'));
    let ev = c.next_notification().await.unwrap();
    assert_eq!(ev["params"]["topic"], "ledger.transaction");
    assert_eq!(ev["params"]["card_masked"], "****2222");

    // The same key again: the same answer, nothing written.
    assert_eq!(c.call("sale.commit", sale).await.unwrap(), r);
    let resolved = c
        .call("card.resolve", json!({"number": CARD}))
        .await
        .unwrap();
    assert_eq!(resolved["account"]["balance"], "50");
    // The same key for another request is refused.
    let other =
        json!({"idempotency_key": "k1", "number": CARD, "receipt_id": "R2", "lines": lines(10)});
    assert_eq!(code(c.call("sale.commit", other).await).0, 2005);

    // Redeeming needs a card read with its secret.
    let bare = json!({"idempotency_key": "k2", "number": CARD, "receipt_id": "R2", "lines": lines(1000), "redeem": "10"});
    assert_eq!(code(c.call("sale.commit", bare).await).0, 2004);

    let t = token(&mut c).await;
    let q = c
        .call("sale.quote", json!({"card_token": t, "lines": lines(1000)}))
        .await
        .unwrap();
    assert_eq!(q["quote"]["max_redeemable"], "50");
    assert_eq!(q["redeem_allowed"], true);
    let over = json!({"idempotency_key": "k3", "card_token": t, "receipt_id": "R3", "lines": lines(1000), "redeem": "60"});
    let (code_, data) = code(c.call("sale.commit", over).await);
    assert_eq!(code_, 2003);
    assert_eq!(
        (data["max"].clone(), data["limit"].clone()),
        (json!("50"), json!("balance"))
    );
    // A 100 sale with a 50 % cap allows 50 even with more points.
    let ok = json!({"idempotency_key": "k4", "card_token": t, "receipt_id": "R4", "lines": lines(1000), "redeem": "30"});
    let r = c.call("sale.commit", ok).await.unwrap();
    assert_eq!(r["redeemed"], "30");
    assert_eq!(r["money_paid"], "970");
    // 5 % of the money part (970) = 48.5, floored.
    assert_eq!(r["accrued"], "48");
    assert_eq!(r["balance_after"], "68");
    let block: Vec<String> = serde_json::from_value(r["bonus_lines"].clone()).unwrap();
    assert!(
        block
            .iter()
            .any(|l| l.starts_with("Списано бонусов") && l.ends_with("30,00")),
        "{block:#?}"
    );
    assert!(
        block
            .iter()
            .any(|l| l.starts_with("Карта") && l.ends_with("****2222"))
    );

    // The read of a known card carries the account summary.
    let read = c.call("card.enter", json!({"number": CARD})).await.unwrap();
    assert_eq!(read["account"]["balance"], "68");
    assert!(!d.log().contains(CARD));
}

#[tokio::test]
async fn two_terminals_redeeming_the_same_points_one_wins() {
    let d = Daemon::start("", "");
    let mut c = d.client().await;
    register(&mut c).await;
    let seed =
        json!({"idempotency_key": "seed", "number": CARD, "receipt_id": "S", "lines": lines(2000)});
    assert_eq!(
        c.call("sale.commit", seed).await.unwrap()["balance_after"],
        "100"
    );
    let t = token(&mut c).await;
    let mut a = d.client().await;
    let mut b = d.client().await;
    let sale = |k: &str| json!({"idempotency_key": k, "card_token": t, "receipt_id": k, "lines": lines(1000), "redeem": "100"});
    let (ra, rb) = tokio::join!(
        a.call("sale.commit", sale("ta")),
        b.call("sale.commit", sale("tb"))
    );
    let results = [ra, rb];
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{results:?}");
    for r in results {
        if let Err(ClientError::Rpc { error }) = r {
            assert_eq!(error["code"], 2003);
            assert_eq!(error["data"]["limit"], "balance");
        }
    }
}

#[tokio::test]
async fn acknowledged_commits_survive_a_hard_kill() {
    let mut d = Daemon::start("", "");
    let mut c = d.client().await;
    for i in 0..20 {
        let sale = json!({"idempotency_key": format!("k{i}"), "number": CARD, "receipt_id": format!("R{i}"), "lines": lines(100)});
        c.call("sale.commit", sale).await.unwrap();
    }
    d.signal(nix::sys::signal::Signal::SIGKILL);
    d.wait_exit(Duration::from_secs(10));
    let _ = std::fs::remove_file(&d.socket);
    d.spawn(|_| {});
    let mut c = d.client().await;
    let r = c
        .call("card.resolve", json!({"number": CARD}))
        .await
        .unwrap();
    assert_eq!(r["account"]["balance"], "100", "20 sales of 5 points each");
    // Retrying an acknowledged commit after the crash changes nothing.
    let again =
        json!({"idempotency_key": "k0", "number": CARD, "receipt_id": "R0", "lines": lines(100)});
    assert_eq!(
        c.call("sale.commit", again).await.unwrap()["balance_after"],
        "5"
    );
    let r = c
        .call("card.resolve", json!({"number": CARD}))
        .await
        .unwrap();
    assert_eq!(r["account"]["balance"], "100");
    let out = std::process::Command::new(common::BIN)
        .args(["--config", d.config.to_str().unwrap(), "ledger", "verify"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn refunds_claw_back_and_return_in_proportion() {
    let d = Daemon::start("", "");
    let mut c = d.client().await;
    register(&mut c).await;
    let commit = |k: &str, total: u32, redeem: &str, t: &str| json!({"idempotency_key": k, "card_token": t, "receipt_id": k, "lines": lines(total), "redeem": redeem});
    let t = token(&mut c).await;
    c.call("sale.commit", commit("a", 1000, "0", &t))
        .await
        .unwrap(); // +50
    let b = c
        .call("sale.commit", commit("b", 1000, "30", &t))
        .await
        .unwrap();
    assert_eq!(b["balance_after"], "68"); // 50 - 30 + 48

    // Half of sale b: half its accrual back (24), half its spent points returned (15).
    let r = c
        .call(
            "sale.refund",
            json!({"idempotency_key": "r1", "receipt_id": "b", "amount": "500"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r["clawback"].clone(), r["returned"].clone()),
        (json!("24"), json!("15"))
    );
    assert_eq!(r["balance_after"], "59");
    // The rest of it, by transaction id.
    let r = c
        .call(
            "sale.refund",
            json!({"idempotency_key": "r2", "transaction": b["transaction"]}),
        )
        .await
        .unwrap();
    assert_eq!(r["balance_after"], "50");
    assert_eq!(r["refunded"], "500");
    // Nothing is left to refund.
    let (code_, _) = code(
        c.call(
            "sale.refund",
            json!({"idempotency_key": "r3", "receipt_id": "b", "amount": "1"}),
        )
        .await,
    );
    assert_eq!(code_, -32602);
    // A repeated key changes nothing.
    let again = c
        .call(
            "sale.refund",
            json!({"idempotency_key": "r2", "transaction": b["transaction"]}),
        )
        .await
        .unwrap();
    assert_eq!(again["balance_after"], "50");

    // Spend everything, then refund the sale that earned it: the clawback
    // is clamped at zero and the shortfall recorded.
    let s = c
        .call("sale.commit", commit("c", 1000, "50", &t))
        .await
        .unwrap();
    assert_eq!(s["balance_after"], "47"); // 5 % of 950
    let r = c
        .call(
            "sale.refund",
            json!({"idempotency_key": "r4", "receipt_id": "a"}),
        )
        .await
        .unwrap();
    assert_eq!(r["clawback"], "47");
    assert_eq!(r["clawback_shortfall"], "3");
    assert_eq!(r["balance_after"], "0");
    let out = std::process::Command::new(common::BIN)
        .args(["--config", d.config.to_str().unwrap(), "ledger", "verify"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn manual_adjustments_are_for_admins() {
    let tokens = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        tokens.path(),
        "cashier cashier-token-0123456789\nadmin admin-token-0123456789ab\n",
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let extra = format!(
        "token_file = \"{}\"\n[daemon.tcp]\nlisten = \"127.0.0.1:{port}\"\n",
        tokens.path().display()
    );
    let d = Daemon::start(&extra, "");
    let mut root = d.client().await;
    root.call(
        "sale.commit",
        json!({"idempotency_key": "s", "number": CARD, "receipt_id": "s", "lines": lines(200)}),
    )
    .await
    .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let mut cashier = Client::tcp(&addr).await.unwrap();
    cashier
        .call("auth.login", json!({"token": "cashier-token-0123456789"}))
        .await
        .unwrap();
    let adj =
        json!({"idempotency_key": "adj1", "number": CARD, "amount": "25", "reason": "goodwill"});
    assert_eq!(
        code(cashier.call("ledger.adjust", adj.clone()).await).0,
        1002
    );

    let mut admin = Client::tcp(&addr).await.unwrap();
    admin
        .call("auth.login", json!({"token": "admin-token-0123456789ab"}))
        .await
        .unwrap();
    let r = admin.call("ledger.adjust", adj).await.unwrap();
    assert_eq!(r["balance_after"], "35");
    let too_much =
        json!({"idempotency_key": "adj2", "number": CARD, "amount": "-36", "reason": "error"});
    let (c2, data) = code(admin.call("ledger.adjust", too_much).await);
    assert_eq!((c2, data["balance"].clone()), (2007, json!("35")));
    let ok = json!({"idempotency_key": "adj3", "number": CARD, "amount": "-35", "reason": "error"});
    assert_eq!(
        admin.call("ledger.adjust", ok).await.unwrap()["balance_after"],
        "0"
    );
}

#[tokio::test]
async fn account_history_pages_newest_first_with_entries() {
    let d = Daemon::start("", "");
    let mut c = d.client().await;
    register(&mut c).await;
    for i in 0..4 {
        let sale = json!({"idempotency_key": format!("h{i}"), "number": CARD, "receipt_id": format!("H{i}"), "lines": lines(1000)});
        c.call("sale.commit", sale).await.unwrap(); // +50 each
    }
    let t = token(&mut c).await;
    let spend = json!({"idempotency_key": "h4", "card_token": t, "receipt_id": "H4", "lines": lines(100), "redeem": "30"});
    let spend = c.call("sale.commit", spend).await.unwrap();
    let refund = c
        .call(
            "sale.refund",
            json!({"idempotency_key": "h5", "transaction": spend["transaction"]}),
        )
        .await
        .unwrap();

    let first = c
        .call("account.history", json!({"number": CARD, "limit": 2}))
        .await
        .unwrap();
    assert_eq!(first["card_masked"], "****2222");
    assert_eq!(first["balance"], "200");
    let txns = first["transactions"].as_array().unwrap();
    assert_eq!(txns.len(), 2);
    // Newest first: the refund, then the sale it refunded.
    assert_eq!(txns[0]["transaction"], refund["transaction"]);
    assert_eq!(txns[0]["kind"], "refund");
    assert_eq!(txns[0]["refund_of"], spend["transaction"]);
    assert_eq!(txns[1]["kind"], "sale");
    assert_eq!(txns[1]["receipt_id"], "H4");
    let entries = txns[1]["entries"].as_array().unwrap();
    // 30 redeemed from the oldest lot, 3 accrued on the 70 paid.
    assert_eq!(entries[0]["kind"], "redeem");
    assert_eq!(entries[0]["amount"], "-30");
    assert_eq!(entries.last().unwrap()["kind"], "accrue");
    assert_eq!(entries.last().unwrap()["amount"], "3");
    assert!(
        entries[0]["lot_expires_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let returned: Vec<&Value> = txns[0]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "refund_return")
        .collect();
    assert_eq!(returned[0]["amount"], "30");
    // The cursor is an opaque string.
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();

    // Walk the rest by account id: four sales, oldest last, then no cursor.
    let account = first["account"].clone();
    let mut seen = Vec::new();
    let mut cursor = Some(cursor);
    while let Some(cur) = cursor {
        let page = c
            .call(
                "account.history",
                json!({"account": account, "cursor": cur, "limit": 3}),
            )
            .await
            .unwrap();
        for t in page["transactions"].as_array().unwrap() {
            seen.push(t["receipt_id"].as_str().unwrap().to_owned());
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, ["H3", "H2", "H1", "H0"]);

    // The default page holds them all.
    let all = c
        .call("account.history", json!({"number": CARD}))
        .await
        .unwrap();
    assert_eq!(all["transactions"].as_array().unwrap().len(), 6);
    assert_eq!(all["next_cursor"], Value::Null);

    for (params, expected) in [
        (json!({"number": CARD, "limit": 0}), -32602),
        (json!({"number": CARD, "limit": 501}), -32602),
        (json!({"number": CARD, "cursor": "x"}), -32602),
        (json!({"number": CARD, "account": account}), -32602),
        (json!({}), -32602),
        (json!({"account": 999}), 2001),
        (json!({"number": "6035000099998888"}), 2001),
    ] {
        assert_eq!(
            code(c.call("account.history", params.clone()).await).0,
            expected,
            "{params}"
        );
    }
}
