//! The programme's switches (issue 21 item 3, seed 004's programme
//! settings): enabled and the active window, the customer agreement's link,
//! "return spent points when goods or tickets are returned", "accrue when
//! the order is partly paid with points"; and seed 001's per-order accrual
//! percentage and cap set by the cashier within the admin's limits. Run
//! against the embedded ledger here and the central one in
//! `switches_central.rs`.

mod common;

use std::time::Duration;

use common::Daemon;
use posbridge::client::{Client, ClientError};
use serde_json::{Value, json};

const CARD: &str = "6035000044445555";

fn lines(total: u32) -> Value {
    json!([{"sku": "T1", "name": "Билет", "category": "tickets", "qty": "1", "price": total.to_string()}])
}

fn err(r: Result<Value, ClientError>) -> (i64, Value) {
    match r {
        Err(ClientError::Rpc { error }) => (error["code"].as_i64().unwrap(), error["data"].clone()),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

async fn register(c: &mut Client) -> i64 {
    c.call(
        "account.register",
        json!({"phone": "+79161112233", "card_number": CARD, "secret": "4711"}),
    )
    .await
    .unwrap()["account"]
        .as_i64()
        .unwrap()
}

/// A read of the card with its secret: what spending points needs.
async fn token(c: &mut Client) -> String {
    c.call("card.enter", json!({"number": CARD, "secret": "4711"}))
        .await
        .unwrap()["card_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn balance(c: &mut Client) -> Value {
    c.call("card.resolve", json!({"number": CARD}))
        .await
        .unwrap()["account"]["balance"]
        .clone()
}

/// Stops the daemon and starts it on `rest` (the programme is read at
/// start; in central mode the service restarts on it too).
async fn restart(d: &mut Daemon, rest: &str) -> Client {
    d.write_config("", rest);
    d.signal(nix::sys::signal::Signal::SIGTERM);
    d.wait_exit(Duration::from_secs(20));
    let _ = std::fs::remove_file(&d.socket);
    d.spawn(|_| {});
    d.client().await
}

const AGREEMENT: &str = "https://kino.example/loyalty/agreement";

#[tokio::test]
async fn an_ended_programme_refuses_sales_while_balance_history_and_returns_still_work() {
    let rest = format!("[ledger.programme]\nagreement_url = \"{AGREEMENT}\"\n");
    let mut d = Daemon::start("", &rest);
    let mut c = d.client().await;
    let id = register(&mut c).await;
    let first =
        json!({"idempotency_key": "s1", "number": CARD, "receipt_id": "R-1", "lines": lines(1000)});
    assert_eq!(
        c.call("sale.commit", first.clone()).await.unwrap()["accrued"],
        "50"
    );
    let t = token(&mut c).await;
    let second = c
        .call(
            "sale.commit",
            json!({"idempotency_key": "s2", "card_token": t, "receipt_id": "R-2", "lines": lines(1000), "redeem": "20"}),
        )
        .await
        .unwrap();
    // 5 % of the 980 paid with money.
    assert_eq!(
        (&second["redeemed"], &second["accrued"]),
        (&json!("20"), &json!("49"))
    );
    assert_eq!(balance(&mut c).await, "79");

    // The programme ended on the last day of 2020 (programme time).
    let ended = format!(
        "[ledger.programme]\nagreement_url = \"{AGREEMENT}\"\nactive_until = \"2020-12-31\"\n"
    );
    let mut c = restart(&mut d, &ended).await;
    let info = c.call("programme.info", json!({})).await.unwrap();
    assert_eq!(
        (
            &info["active"],
            &info["inactive_reason"],
            &info["active_until"]
        ),
        (&json!(false), &json!("ended"), &json!("2020-12-31"))
    );
    let (code, data) = err(c
        .call("sale.quote", json!({"number": CARD, "lines": lines(500)}))
        .await);
    assert_eq!((code, &data["reason"]), (2060, &json!("ended")));
    assert!(
        data["message_ru"]
            .as_str()
            .unwrap()
            .contains("не действует"),
        "{data}"
    );
    let t = token(&mut c).await;
    let (code, _) = err(
        c.call(
            "sale.commit",
            json!({"idempotency_key": "s3", "card_token": t, "receipt_id": "R-3", "lines": lines(500), "redeem": "10"}),
        )
        .await,
    );
    assert_eq!(code, 2060);
    // A retry of a sale booked while the programme ran gets its answer.
    assert_eq!(c.call("sale.commit", first).await.unwrap()["accrued"], "50");

    // The card still resolves, with the agreement; the history still reads.
    let r = c
        .call("card.resolve", json!({"number": CARD}))
        .await
        .unwrap();
    assert_eq!(
        (&r["account"]["balance"], &r["agreement_url"]),
        (&json!("79"), &json!(AGREEMENT))
    );
    let h = c
        .call("account.history", json!({"account": id}))
        .await
        .unwrap();
    assert_eq!(h["transactions"].as_array().unwrap().len(), 2, "{h}");

    // A return is never refused because the programme ended: the accrual
    // comes back off the account and the spent points go back on it.
    let r = c
        .call(
            "sale.refund",
            json!({"idempotency_key": "r2", "receipt_id": "R-2"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (&r["clawback"], &r["returned"]),
        (&json!("49"), &json!("20"))
    );
    assert_eq!(balance(&mut c).await, "50");
    d.verify_ledger();
}

#[tokio::test]
async fn a_disabled_or_not_yet_started_programme_quotes_and_commits_nothing() {
    let mut d = Daemon::start("", "[ledger.programme]\nenabled = false\n");
    let mut c = d.client().await;
    register(&mut c).await;
    let (code, data) = err(c
        .call("sale.quote", json!({"number": CARD, "lines": lines(500)}))
        .await);
    assert_eq!((code, &data["reason"]), (2060, &json!("disabled")));
    let (code, data) = err(
        c.call(
            "sale.commit",
            json!({"idempotency_key": "d1", "number": CARD, "receipt_id": "R-1", "lines": lines(500)}),
        )
        .await,
    );
    assert_eq!((code, &data["reason"]), (2060, &json!("disabled")));
    let info = c.call("programme.info", json!({})).await.unwrap();
    assert_eq!(
        (&info["enabled"], &info["active"]),
        (&json!(false), &json!(false))
    );

    // Starting in 2999, programme time: not started yet.
    let mut c = restart(
        &mut d,
        "[ledger.programme]\nactive_from = \"2999-01-01T10:00\"\n",
    )
    .await;
    let (code, data) = err(
        c.call(
            "sale.commit",
            json!({"idempotency_key": "d1", "number": CARD, "receipt_id": "R-1", "lines": lines(500)}),
        )
        .await,
    );
    assert_eq!((code, &data["reason"]), (2060, &json!("not_started")));
    // Nothing was booked by the refusals: the same key books now that the
    // window is open.
    let mut c = restart(&mut d, "[ledger.programme]\nactive_from = \"2020-01-01\"\n").await;
    let r = c
        .call(
            "sale.commit",
            json!({"idempotency_key": "d1", "number": CARD, "receipt_id": "R-1", "lines": lines(500)}),
        )
        .await
        .unwrap();
    assert_eq!(r["accrued"], "25");
    assert_eq!(balance(&mut c).await, "25");
    d.verify_ledger();
}

/// Accrues 50 on a 1000 sale, spends 50 of them on a 200 sale (its cap is
/// half: 100) which accrues 5 % of the 150 paid with money, and returns
/// that sale whole.
async fn spend_and_return(c: &mut Client) -> Value {
    register(c).await;
    c.call(
        "sale.commit",
        json!({"idempotency_key": "s1", "number": CARD, "receipt_id": "R-1", "lines": lines(1000)}),
    )
    .await
    .unwrap();
    let t = token(c).await;
    let s = c
        .call(
            "sale.commit",
            json!({"idempotency_key": "s2", "card_token": t, "receipt_id": "R-2", "lines": lines(200), "redeem": "50"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (&s["accrued"], &s["balance_after"]),
        (&json!("7"), &json!("7"))
    );
    c.call(
        "sale.refund",
        json!({"idempotency_key": "r2", "receipt_id": "R-2"}),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_return_gives_spent_points_back_only_while_the_switch_is_on() {
    // Seed 004: "so that the points spent on a purchase come back to the
    // customer when the goods or the ticket are returned, tick this box".
    let d = Daemon::start("", "");
    let mut c = d.client().await;
    let r = spend_and_return(&mut c).await;
    assert_eq!(
        (&r["clawback"], &r["returned"]),
        (&json!("7"), &json!("50"))
    );
    assert_eq!(balance(&mut c).await, "50");
    d.verify_ledger();
    drop(c);
    drop(d);

    let d = Daemon::start(
        "",
        "[ledger.programme]\nreturn_spent_points_on_refund = false\n",
    );
    let mut c = d.client().await;
    let r = spend_and_return(&mut c).await;
    assert_eq!((&r["clawback"], &r["returned"]), (&json!("7"), &json!("0")));
    assert_eq!(balance(&mut c).await, "0");
    let info = c.call("programme.info", json!({})).await.unwrap();
    assert_eq!(info["return_spent_points_on_refund"], false);
    d.verify_ledger();
}

#[tokio::test]
async fn an_order_partly_paid_with_points_earns_nothing_when_the_switch_is_off() {
    // Seed 004: points are earned "on partial payment with points, on the
    // part paid in roubles"; with the box unticked such an order earns none.
    let d = Daemon::start(
        "",
        "[ledger.programme]\naccrue_on_points_part = \"nothing\"\n",
    );
    let mut c = d.client().await;
    register(&mut c).await;
    c.call(
        "sale.commit",
        json!({"idempotency_key": "s1", "number": CARD, "receipt_id": "R-1", "lines": lines(1000)}),
    )
    .await
    .unwrap();
    let t = token(&mut c).await;
    let q = c
        .call(
            "sale.quote",
            json!({"card_token": t, "lines": lines(1000), "redeem": "10"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (&q["quote"]["accrual"], &q["quote"]["eligible_total"]),
        (&json!("0"), &json!("0"))
    );
    let s = c
        .call(
            "sale.commit",
            json!({"idempotency_key": "s2", "card_token": t, "receipt_id": "R-2", "lines": lines(1000), "redeem": "10"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (&s["accrued"], &s["balance_after"]),
        (&json!("0"), &json!("40"))
    );
    // Without points spent the order earns as usual.
    let q = c
        .call("sale.quote", json!({"number": CARD, "lines": lines(1000)}))
        .await
        .unwrap();
    assert_eq!(q["quote"]["accrual"], "50");
    let info = c.call("programme.info", json!({})).await.unwrap();
    assert_eq!(info["accrue_on_points_part"], "nothing");
    d.verify_ledger();
}

#[tokio::test]
async fn the_agreement_link_prints_on_the_bonus_block() {
    let rest = format!(
        "[ledger.programme]\nagreement_url = \"{AGREEMENT}\"\n\n[receipt]\nwidth = 48\n\n[receipt.bonus]\nfooter = [\"{{agreement_url}}\"]\n"
    );
    let d = Daemon::start("", &rest);
    let mut c = d.client().await;
    register(&mut c).await;
    let info = c.call("programme.info", json!({})).await.unwrap();
    assert_eq!(
        (&info["agreement_url"], &info["active"]),
        (&json!(AGREEMENT), &json!(true))
    );
    let r = c
        .call(
            "sale.commit",
            json!({"idempotency_key": "s1", "number": CARD, "receipt_id": "R-1", "lines": lines(1000)}),
        )
        .await
        .unwrap();
    let block = r["bonus_lines"].as_array().unwrap();
    assert!(
        block
            .iter()
            .any(|l| l.as_str().unwrap().trim() == AGREEMENT),
        "{block:?}"
    );
}

#[tokio::test]
async fn the_cashier_sets_one_orders_accrual_and_cap_within_the_admins_limits() {
    let tcp = common::TcpTokens::new();
    let d = Daemon::start(
        &tcp.daemon_extra,
        "[ledger.programme]\ncap_percent = \"20\"\n\n[ledger.programme.cashier_limits]\nmax_accrual_percent = \"10\"\nmax_cap_percent = \"50\"\n",
    );
    let mut admin = d.client().await;
    let id = register(&mut admin).await;
    admin
        .call(
            "ledger.adjust",
            json!({"idempotency_key": "a1", "account_id": id, "amount": "7000", "reason": "test"}),
        )
        .await
        .unwrap();
    let mut cashier = tcp.login(common::CASHIER_TOKEN).await;
    let t = token(&mut cashier).await;
    // Seed 001: an order of 12000 roubles with a 50 % limit on points can
    // be paid with at most 6000 of them; the programme's own 20 % gives 2400.
    let quote = |extra: Value| {
        let mut q = json!({"card_token": t, "lines": lines(12000)});
        q.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        q
    };
    let q = cashier.call("sale.quote", quote(json!({}))).await.unwrap();
    assert_eq!(q["quote"]["max_redeemable"], "2400");
    let q = cashier
        .call("sale.quote", quote(json!({"cap_percent": "50"})))
        .await
        .unwrap();
    assert_eq!(q["quote"]["max_redeemable"], "6000");
    // Past the admin's limits: refused, naming the field.
    for (field, v) in [("cap_percent", "60"), ("accrual_percent", "10.5")] {
        let (code, data) = err(cashier.call("sale.quote", quote(json!({field: v}))).await);
        assert_eq!((code, &data["field"]), (-32602, &json!(field)), "{data}");
    }

    let sale = json!({"idempotency_key": "s1", "card_token": t, "receipt_id": "R-1",
        "lines": lines(12000), "redeem": "6000", "accrual_percent": "10", "cap_percent": "50"});
    let r = cashier.call("sale.commit", sale.clone()).await.unwrap();
    // 10 % of the 6000 paid with money.
    assert_eq!(
        (&r["redeemed"], &r["accrued"]),
        (&json!("6000"), &json!("600"))
    );
    assert_eq!(r["balance_after"], "1600");
    // The same key with other terms is another request.
    let mut other = sale.clone();
    other["accrual_percent"] = json!("8");
    assert_eq!(err(cashier.call("sale.commit", other).await).0, 2005);
    assert_eq!(
        cashier.call("sale.commit", sale).await.unwrap()["accrued"],
        "600"
    );

    // The order's own values are recorded with the sale.
    let h = admin
        .call("account.history", json!({"account": id, "limit": 1}))
        .await
        .unwrap();
    assert_eq!(
        h["transactions"][0]["detail"],
        json!({"accrual_percent": "10", "cap_percent": "50"})
    );

    // An admin connection may go past the cashier's limits.
    let r = admin
        .call(
            "sale.commit",
            json!({"idempotency_key": "s2", "number": CARD, "receipt_id": "R-2",
                   "lines": lines(1000), "accrual_percent": "15"}),
        )
        .await
        .unwrap();
    assert_eq!(r["accrued"], "150");
    d.verify_ledger();
}
