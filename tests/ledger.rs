//! The money path through the socket: quote, commit, idempotency, limits,
//! concurrency and durability across a hard kill.

mod common;

use std::time::Duration;

use common::{Daemon, logged_code};
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

/// The codes `sale.quote` and `sale.commit` answer for spending 10 with
/// the card read as `t`.
async fn verdicts(c: &mut Client, t: String, key: &str) -> (i64, i64) {
    let q = json!({"card_token": t, "lines": lines(1000), "redeem": "10"});
    let mut s = q.clone();
    s["idempotency_key"] = json!(key);
    s["receipt_id"] = json!(key);
    (
        code(c.call("sale.quote", q).await).0,
        code(c.call("sale.commit", s).await).0,
    )
}

/// The quote and the commit of the same request give the same verdict:
/// the quote said 2003 (balance) where the commit said 2001 (unknown card),
/// and `redeem_allowed: true` where the commit said 2010 (no secret).
#[tokio::test]
async fn quote_and_commit_refuse_a_spend_alike() {
    let d = Daemon::start("", "");
    let mut c = d.client().await;
    // A card no account holds.
    let t = token(&mut c).await;
    assert_eq!(verdicts(&mut c, t, "v1").await, (2001, 2001));
    // Enrolled by a first sale, but no secret registered.
    c.call(
        "sale.commit",
        json!({"idempotency_key": "v0", "number": CARD, "receipt_id": "v0", "lines": lines(1000)}),
    )
    .await
    .unwrap();
    let t = token(&mut c).await;
    assert_eq!(verdicts(&mut c, t, "v2").await, (2010, 2010));
    // Registered (adopted), then read with a wrong secret.
    register(&mut c).await;
    let wrong = c
        .call("card.enter", json!({"number": CARD, "secret": "0000"}))
        .await
        .unwrap()["card_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(verdicts(&mut c, wrong, "v3").await, (2008, 2008));
    // Typed without the secret.
    let typed = json!({"number": CARD, "lines": lines(1000), "redeem": "10"});
    assert_eq!(code(c.call("sale.quote", typed).await).0, 2004);
    // And with the right one, both agree to spend.
    let t = token(&mut c).await;
    let q = json!({"card_token": t, "lines": lines(1000), "redeem": "10"});
    assert_eq!(
        c.call("sale.quote", q).await.unwrap()["redeem_allowed"],
        true
    );
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
    // In central mode the books live in the service: it dies hard too.
    if let Some(central) = &d.central {
        central.kill9_and_restart();
    }
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
    d.verify_ledger();
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
    d.verify_ledger();
}

#[tokio::test]
async fn manual_adjustments_are_for_admins() {
    let tcp = common::TcpTokens::new();
    let d = Daemon::start(&tcp.daemon_extra, "");
    let mut root = d.client().await;
    root.call(
        "sale.commit",
        json!({"idempotency_key": "s", "number": CARD, "receipt_id": "s", "lines": lines(200)}),
    )
    .await
    .unwrap();
    let mut cashier = tcp.login(common::CASHIER_TOKEN).await;
    let adj =
        json!({"idempotency_key": "adj1", "number": CARD, "amount": "25", "reason": "goodwill"});
    assert_eq!(
        code(cashier.call("ledger.adjust", adj.clone()).await).0,
        1002
    );

    let mut admin = tcp.login(common::ADMIN_TOKEN).await;
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

/// Earns 50 with sale "a", spends 40 of them on an 80 sale (which earns 2),
/// then refunds sale "a" whole: 50 to claw back, 12 left.
async fn refund_after_spending(policy: &str) -> (Daemon, Client, Value) {
    let d = Daemon::start(
        "",
        &format!("[ledger.programme]\nrefund_shortfall = \"{policy}\"\n"),
    );
    let mut c = d.client().await;
    register(&mut c).await;
    let a =
        json!({"idempotency_key": "a", "number": CARD, "receipt_id": "a", "lines": lines(1000)});
    assert_eq!(
        c.call("sale.commit", a).await.unwrap()["balance_after"],
        "50"
    );
    let t = token(&mut c).await;
    let spend = json!({"idempotency_key": "b", "card_token": t, "receipt_id": "b", "lines": lines(80), "redeem": "40"});
    assert_eq!(
        c.call("sale.commit", spend).await.unwrap()["balance_after"],
        "12"
    );
    let r = c
        .call(
            "sale.refund",
            json!({"idempotency_key": "r", "receipt_id": "a"}),
        )
        .await
        .unwrap();
    (d, c, r)
}

#[tokio::test]
async fn refund_when_the_accrued_points_are_already_spent_clamp() {
    let (d, mut c, r) = refund_after_spending("clamp").await;
    assert_eq!(r["clawback"], "12");
    assert_eq!(r["clawback_shortfall"], "38");
    assert_eq!(r["clawback_debt"], "0");
    assert_eq!(r["balance_after"], "0");
    let s = c
        .call("card.resolve", json!({"number": CARD}))
        .await
        .unwrap();
    assert_eq!(
        (
            s["account"]["balance"].clone(),
            s["account"]["debt"].clone()
        ),
        (json!("0"), json!("0"))
    );
    // The next sale's accrual is spendable at once.
    let next =
        json!({"idempotency_key": "n", "number": CARD, "receipt_id": "n", "lines": lines(1000)});
    let n = c.call("sale.commit", next).await.unwrap();
    assert_eq!(
        (n["debt_repaid"].clone(), n["balance_after"].clone()),
        (json!("0"), json!("50"))
    );
    d.verify_ledger();
}

#[tokio::test]
async fn refund_when_the_accrued_points_are_already_spent_debt() {
    let (d, mut c, r) = refund_after_spending("debt").await;
    assert_eq!(r["clawback"], "50");
    assert_eq!(r["clawback_shortfall"], "0");
    assert_eq!(r["clawback_debt"], "38");
    assert_eq!(r["balance_after"], "-38");
    let s = c
        .call("card.resolve", json!({"number": CARD}))
        .await
        .unwrap();
    assert_eq!(
        (
            s["account"]["balance"].clone(),
            s["account"]["debt"].clone()
        ),
        (json!("-38"), json!("38"))
    );

    // Nothing can be redeemed while the balance is not positive.
    let t = token(&mut c).await;
    let q = c
        .call("sale.quote", json!({"card_token": t, "lines": lines(1000)}))
        .await
        .unwrap();
    assert_eq!(q["quote"]["max_redeemable"], "0");
    let spend = json!({"idempotency_key": "x", "card_token": t, "receipt_id": "x", "lines": lines(100), "redeem": "1"});
    let (code_, data) = code(c.call("sale.commit", spend).await);
    assert_eq!((code_, data["limit"].clone()), (2003, json!("balance")));

    // The next accrual pays the debt first; only the rest is spendable.
    let next =
        json!({"idempotency_key": "n", "number": CARD, "receipt_id": "n", "lines": lines(1000)});
    let n = c.call("sale.commit", next).await.unwrap();
    assert_eq!(n["accrued"], "50");
    assert_eq!(n["debt_repaid"], "38");
    assert_eq!(n["balance_after"], "12");
    let h = c
        .call("account.history", json!({"number": CARD, "limit": 2}))
        .await
        .unwrap();
    let kinds = |t: &Value| -> Vec<(String, String)> {
        t["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["kind"].as_str().unwrap().to_owned(),
                    e["amount"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let txns = h["transactions"].as_array().unwrap();
    assert_eq!(
        kinds(&txns[0]),
        [
            ("debt_repay".into(), "38".into()),
            ("accrue".into(), "12".into())
        ]
    );
    assert!(
        kinds(&txns[1]).contains(&("debt".into(), "-38".into())),
        "{txns:#?}"
    );
    d.verify_ledger();
    // The export carries the debt entries without a lot.
    let out = d.ledger_cli(&["export", "--format", "csv"]);
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(csv.lines().any(|l| l.contains(",debt,-38,")), "{csv}");
    assert!(csv.lines().any(|l| l.contains(",debt_repay,38,")), "{csv}");
}

const CARD2: &str = "6035000033334444";

#[tokio::test]
async fn per_category_caps_and_personal_overrides_at_the_cinema() {
    // The cinema: 100 ₽ tickets take up to 10 points, the bar half.
    let uid = nix::unistd::geteuid().as_raw();
    let d = Daemon::start(
        &format!("admin_uids = [{uid}]"),
        "[ledger.programme]\nname = \"Кинобар\"\ncap_percent = \"10\"\n\
         [[ledger.programme.categories]]\ncategory = \"bar\"\ncap_percent = \"50\"\n",
    );
    let mut c = d.client().await;
    register(&mut c).await;
    c.call(
        "account.register",
        json!({"phone": "+79160000002", "name": "Пётр", "card_number": CARD2, "secret": "4712"}),
    )
    .await
    .unwrap();
    let basket = json!([
        {"sku": "P1", "name": "Попкорн", "category": "bar", "qty": "1", "price": "400"},
        {"sku": "T1", "name": "Билет", "category": "tickets", "qty": "1", "price": "500"},
    ]);
    // Both customers get 1000 points.
    let mut account2 = 0;
    for (k, card) in [("s1", CARD), ("s2", CARD2)] {
        let r = c
            .call("sale.commit", json!({"idempotency_key": k, "number": card, "receipt_id": k, "lines": lines(20000)}))
            .await
            .unwrap();
        assert_eq!(r["balance_after"], "1000");
        account2 = r["account"].as_i64().unwrap();
    }
    // Petr's own: tickets 30 %, the bar 100 % and 10 % back there.
    let set = json!({"idempotency_key": "o1", "account": account2, "categories": {
        "tickets": {"cap_percent": "30"},
        "bar": {"cap_percent": "100", "accrual_percent": "10"},
    }});
    let r = c.call("account.overrides.set", set.clone()).await.unwrap();
    assert_eq!(r["overrides"]["categories"]["bar"]["cap_percent"], "100");
    assert_eq!(c.call("account.overrides.set", set).await.unwrap(), r);

    let caps = |q: &Value| -> Vec<String> {
        q["quote"]["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["cap"].as_str().unwrap().to_owned())
            .collect()
    };
    let q1 = c
        .call("sale.quote", json!({"number": CARD, "lines": basket}))
        .await
        .unwrap();
    assert_eq!(caps(&q1), ["200", "50"]);
    let q2 = c
        .call("sale.quote", json!({"number": CARD2, "lines": basket}))
        .await
        .unwrap();
    assert_eq!(caps(&q2), ["400", "150"]);

    // The commit applies the same: Petr spends 550, Maria cannot.
    let t1 = token(&mut c).await;
    let over = json!({"idempotency_key": "m", "card_token": t1, "receipt_id": "m", "lines": basket, "redeem": "550"});
    let (code_, data) = code(c.call("sale.commit", over).await);
    assert_eq!(
        (code_, data["max"].clone(), data["limit"].clone()),
        (2003, json!("250"), json!("cap"))
    );
    let t2 = c
        .call("card.enter", json!({"number": CARD2, "secret": "4712"}))
        .await
        .unwrap()["card_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let ok = json!({"idempotency_key": "p", "card_token": t2, "receipt_id": "p", "lines": basket, "redeem": "550"});
    let r = c.call("sale.commit", ok).await.unwrap();
    assert_eq!(r["redeemed"], "550");
    // Bar fully paid with points earns nothing; 350 paid for the ticket
    // at the programme's 5 %.
    assert_eq!(r["accrued"], "17");

    // Bad values name the field; unknown accounts are refused.
    let bad = json!({"account": account2, "categories": {"bar": {"cap_percent": "150"}}});
    let (code_, data) = code(c.call("account.overrides.set", bad).await);
    assert_eq!(
        (code_, data["field"].clone()),
        (-32602, json!("categories.bar.cap_percent"))
    );
    let (code_, _) = code(
        c.call(
            "account.overrides.set",
            json!({"account": 9999, "cap_percent": "5"}),
        )
        .await,
    );
    assert_eq!(code_, 2001);
    // Cleared: back to the programme's rules.
    c.call("account.overrides.set", json!({"account": account2}))
        .await
        .unwrap();
    let q2 = c
        .call("sale.quote", json!({"number": CARD2, "lines": basket}))
        .await
        .unwrap();
    assert_eq!(caps(&q2), ["200", "50"]);
}

#[tokio::test]
async fn a_retried_commit_after_the_token_is_gone_returns_the_stored_sale() {
    let mut d = Daemon::start("", "");
    let mut c = d.client().await;
    register(&mut c).await;
    let seed =
        json!({"idempotency_key": "s", "number": CARD, "receipt_id": "s", "lines": lines(1000)});
    c.call("sale.commit", seed).await.unwrap();
    let t = token(&mut c).await;
    let sale = json!({"idempotency_key": "k", "card_token": t, "receipt_id": "R", "lines": lines(100), "redeem": "20"});
    let first = c.call("sale.commit", sale.clone()).await.unwrap();
    // Tokens live in memory: a restart loses them as an expiry would.
    d.signal(nix::sys::signal::Signal::SIGKILL);
    d.wait_exit(Duration::from_secs(10));
    let _ = std::fs::remove_file(&d.socket);
    d.spawn(|_| {});
    let mut c = d.client().await;
    c.call(
        "events.subscribe",
        json!({"topics": ["ledger.transaction"]}),
    )
    .await
    .unwrap();
    assert_eq!(c.call("sale.commit", sale.clone()).await.unwrap(), first);
    // A different request under the key is still refused, and an unknown
    // key with a dead token is still a dead token.
    let mut other = sale.clone();
    other["redeem"] = json!("10");
    assert_eq!(code(c.call("sale.commit", other).await).0, 2005);
    let mut fresh = sale;
    fresh["idempotency_key"] = json!("k2");
    assert_eq!(code(c.call("sale.commit", fresh).await).0, 1301);
    // The replay published nothing: the next event is the next sale's.
    let next =
        json!({"idempotency_key": "n", "number": CARD, "receipt_id": "n", "lines": lines(100)});
    let n = c.call("sale.commit", next).await.unwrap();
    let ev = c.next_notification().await.unwrap();
    assert_eq!(ev["params"]["transaction"], n["transaction"]);
}

#[tokio::test]
async fn a_repeated_commit_returns_the_same_bonus_block_and_publishes_once() {
    let d = Daemon::start("", "");
    let mut c = d.client().await;
    c.call(
        "events.subscribe",
        json!({"topics": ["ledger.transaction"]}),
    )
    .await
    .unwrap();
    let sale =
        json!({"idempotency_key": "a", "number": CARD, "receipt_id": "a", "lines": lines(1000)});
    let first = c.call("sale.commit", sale.clone()).await.unwrap();
    let ev = c.next_notification().await.unwrap();
    assert_eq!(ev["params"]["transaction"], first["transaction"]);
    // Another sale changes the balance and the points due to expire.
    let b = c
        .call("sale.commit", json!({"idempotency_key": "b", "number": CARD, "receipt_id": "b", "lines": lines(1000)}))
        .await
        .unwrap();
    assert_eq!(b["balance_after"], "100");
    let ev = c.next_notification().await.unwrap();
    assert_eq!(ev["params"]["transaction"], b["transaction"]);
    let again = c.call("sale.commit", sale).await.unwrap();
    assert_eq!(again, first);
    let block: Vec<String> = serde_json::from_value(again["bonus_lines"].clone()).unwrap();
    assert!(
        block
            .iter()
            .any(|l| l.starts_with("Сгорит") && l.ends_with(" 50,00")),
        "{block:#?}"
    );
    // Refunds and adjustments too: a repeat publishes nothing.
    let refund = json!({"idempotency_key": "r", "receipt_id": "b", "amount": "100"});
    let r = c.call("sale.refund", refund.clone()).await.unwrap();
    let ev = c.next_notification().await.unwrap();
    assert_eq!(ev["params"]["transaction"], r["transaction"]);
    assert_eq!(c.call("sale.refund", refund).await.unwrap(), r);
    let last = c
        .call(
            "sale.commit",
            json!({"idempotency_key": "c", "number": CARD, "receipt_id": "c", "lines": lines(100)}),
        )
        .await
        .unwrap();
    let ev = c.next_notification().await.unwrap();
    assert_eq!(ev["params"]["transaction"], last["transaction"]);
}

#[tokio::test]
async fn the_bonus_block_follows_the_configured_template() {
    let d = Daemon::start(
        "",
        "[receipt]\nlanguage = \"en\"\nwidth = 24\n[receipt.bonus]\nlines = [\"accrued\", \"balance_after\"]\n\
         footer = [\"Thank you, {card}\"]\n[receipt.bonus.labels]\naccrued = \"+ earned\"\n",
    );
    let mut c = d.client().await;
    let r = c
        .call("sale.commit", json!({"idempotency_key": "a", "number": CARD, "receipt_id": "a", "lines": lines(1000)}))
        .await
        .unwrap();
    let block: Vec<String> = serde_json::from_value(r["bonus_lines"].clone()).unwrap();
    assert_eq!(
        block,
        [
            "------------------------",
            "        LOYALTY         ",
            "+ earned           50.00",
            "Balance after      50.00",
            "  Thank you, ****2222   ",
            "------------------------",
        ]
    );
}

#[test]
fn a_bad_bonus_template_is_a_config_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (text, key) in [
        (
            "[receipt.bonus]\nlines = [\"card\", \"bonus\"]\n",
            "receipt.bonus.lines #2",
        ),
        (
            "[receipt.bonus]\nfooter = [\"{card}\", \"{balance}\"]\n",
            "receipt.bonus.footer #2",
        ),
        (
            "[receipt.bonus.labels]\ncard = \"Card {\"\n",
            "receipt.bonus.labels.card",
        ),
    ] {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, common::config_text(dir.path(), "", text)).unwrap();
        let out = std::process::Command::new(common::BIN)
            .args(["config", "check"])
            .arg(&file)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{text}: {all}");
        assert!(all.contains(key), "{text}: {all}");
    }
}

#[tokio::test]
async fn the_ledgers_own_keys_are_refused_to_clients() {
    let d = Daemon::start("", "");
    let mut c = d.client().await;
    for key in ["welcome:1", "expire:1:x:1", "overrides:1", "tier:1:1"] {
        let r = c
            .call(
                "sale.commit",
                json!({"idempotency_key": key, "number": CARD, "receipt_id": "R1", "lines": lines(100)}),
            )
            .await;
        let (code, data) = code(r);
        assert_eq!(code, -32602, "{key}");
        assert_eq!(data["field"], "idempotency_key", "{data}");
    }
    // Nothing was written: the card is still unknown.
    assert_eq!(
        code(c.call("card.resolve", json!({"number": CARD})).await).0,
        2001
    );
}

#[tokio::test]
async fn a_repeated_commit_after_a_receipt_reload_returns_the_queued_bonus_job() {
    let out = tempfile::tempdir().unwrap();
    let printer = common::file_printer("slip", out.path());
    let d = Daemon::start("", &printer);
    let mut c = d.client().await;
    let commit = json!({"idempotency_key": "rl1", "number": CARD, "receipt_id": "R1",
                        "lines": lines(500), "print": {"printer": "slip"}});
    let first = c.call("sale.commit", commit.clone()).await.unwrap();
    assert_eq!(first["print_job"]["job_id"], "bonus-rl1");
    // The technician switches the receipt to English: a new layout.
    d.write_config("", &format!("{printer}[receipt]\nlanguage = \"en\"\n"));
    c.call("system.reload", json!({})).await.unwrap();
    let again = c.call("sale.commit", commit).await.unwrap();
    assert_eq!(again["transaction"], first["transaction"]);
    assert_eq!(again["print_job"]["job_id"], "bonus-rl1", "{again}");
    assert_eq!(
        again["print_job"]["created_at"],
        first["print_job"]["created_at"]
    );
}

#[tokio::test]
async fn a_customer_without_the_card_spends_with_a_one_time_code() {
    let d = Daemon::start(
        "",
        "[ledger.redemption]\nby_code = true\nmax_attempts = 2\nresend_after_seconds = 0\n",
    );
    let mut c = d.client().await;
    register(&mut c).await;
    let sale_lines = lines(1000);
    c.call(
        "sale.commit",
        json!({"idempotency_key": "a1", "number": CARD, "receipt_id": "A1", "lines": sale_lines}),
    )
    .await
    .unwrap();
    let account = c
        .call("account.get", json!({"phone": "+79161234567"}))
        .await
        .unwrap()["account"]
        .as_i64()
        .unwrap();
    // Identified by phone: the quote says points may be spent (by code).
    let q = c
        .call(
            "sale.quote",
            json!({"account": account, "lines": lines(200), "redeem": "20"}),
        )
        .await
        .unwrap();
    assert_eq!(q["redeem_allowed"], true, "{q}");
    assert_eq!(q["balance"], "50");
    let spend = |key: &str, code: Option<&str>| {
        let mut p = json!({"idempotency_key": key, "account": account, "receipt_id": key,
                           "lines": lines(200), "redeem": "20"});
        if let Some(code) = code {
            p["redeem_code"] = json!(code);
        }
        p
    };
    // No code, no spending; nothing sent yet, nothing to use.
    assert_eq!(code(c.call("sale.commit", spend("b1", None)).await).0, 2004);
    assert_eq!(
        code(c.call("sale.commit", spend("b1", Some("0000"))).await).0,
        2032
    );
    let sent = c
        .call("sale.redeem_code.send", json!({"account": account}))
        .await
        .unwrap();
    assert_eq!(
        (sent["sent_via"].clone(), sent["channel"].clone()),
        (json!("log"), json!("phone"))
    );
    let good = logged_code(&d, account);
    assert_eq!(good.len(), 4);
    assert!(d.log().contains("purpose=\"redemption\"") || d.log().contains("purpose=redemption"));
    let wrong = if good == "0000" { "1111" } else { "0000" };
    let (c1, data) = code(c.call("sale.commit", spend("b1", Some(wrong))).await);
    assert_eq!((c1, data["attempts_left"].clone()), (2024, json!(1)));
    // Over the cap: refused by the ledger before the code is used.
    let mut greedy = spend("b1", Some(&good));
    greedy["redeem"] = json!("150");
    assert_eq!(code(c.call("sale.commit", greedy).await).0, 2003);
    let r = c
        .call("sale.commit", spend("b1", Some(&good)))
        .await
        .unwrap();
    assert_eq!(r["redeemed"], "20");
    assert_eq!(r["balance_before"], "50");
    // A retry of that sale needs no new code and changes nothing.
    let again = c
        .call("sale.commit", spend("b1", Some(&good)))
        .await
        .unwrap();
    assert_eq!(again["transaction"], r["transaction"]);
    // The code paid for one sale only.
    assert_eq!(
        code(c.call("sale.commit", spend("b2", Some(&good))).await).0,
        2032
    );
    // Wrong tries use a code up.
    c.call("sale.redeem_code.send", json!({"account": account}))
        .await
        .unwrap();
    let fresh = logged_code(&d, account);
    let wrong = if fresh == "0000" { "1111" } else { "0000" };
    assert_eq!(
        code(c.call("sale.commit", spend("b3", Some(wrong))).await).0,
        2024
    );
    assert_eq!(
        code(c.call("sale.commit", spend("b3", Some(wrong))).await).0,
        2026
    );
    assert_eq!(
        code(c.call("sale.commit", spend("b3", Some(&fresh))).await).0,
        2026
    );
    // Accrual for an account needs no code at all.
    let plain = json!({"idempotency_key": "b4", "account": account, "receipt_id": "b4", "lines": lines(100)});
    assert_eq!(c.call("sale.commit", plain).await.unwrap()["redeemed"], "0");
}

#[tokio::test]
async fn without_redemption_by_code_an_account_only_accrues() {
    let d = Daemon::start("", "");
    let mut c = d.client().await;
    register(&mut c).await;
    let account = c
        .call("account.get", json!({"card_number": CARD}))
        .await
        .unwrap()["account"]
        .as_i64()
        .unwrap();
    assert_eq!(
        code(
            c.call("sale.redeem_code.send", json!({"account": account}))
                .await
        )
        .0,
        2031
    );
    let spend = json!({"idempotency_key": "x1", "account": account, "receipt_id": "x1",
                       "lines": lines(100), "redeem": "1", "redeem_code": "1234"});
    assert_eq!(code(c.call("sale.commit", spend).await).0, 2031);
    let q = c
        .call(
            "sale.quote",
            json!({"account": account, "lines": lines(100)}),
        )
        .await
        .unwrap();
    assert_eq!(q["redeem_allowed"], false);
    let both = json!({"account": account, "number": CARD, "lines": lines(100)});
    assert_eq!(code(c.call("sale.quote", both).await).0, -32602);
    let both = json!({"idempotency_key": "x2", "account": account, "number": CARD,
                      "receipt_id": "x2", "lines": lines(100)});
    assert_eq!(code(c.call("sale.commit", both).await).0, -32602);
    assert_eq!(
        code(
            c.call("sale.quote", json!({"account": 999, "lines": lines(100)}))
                .await
        )
        .0,
        2001
    );
}

/// The cashier a POS names on a sale and a return is recorded on each and
/// shown in the history; a repeat of the key with another cashier returns
/// the stored sale and keeps the first cashier; a cashier that is blank,
/// too long or holds a control character is refused naming the field.
#[tokio::test]
async fn sales_and_returns_record_their_cashier_and_a_repeat_keeps_the_first() {
    let d = Daemon::start("", "");
    let mut c = d.client().await;
    register(&mut c).await;
    let sale = |key: &str, cashier: Value| {
        let mut s = json!({"idempotency_key": key, "number": CARD, "receipt_id": key, "lines": lines(1000)});
        if !cashier.is_null() {
            s["cashier"] = cashier;
        }
        s
    };
    let first = c
        .call("sale.commit", sale("cs1", json!("Анна К. (id 17)")))
        .await
        .unwrap();
    // The same key from another cashier: the stored sale, nothing written.
    let again = c
        .call("sale.commit", sale("cs1", json!("Борис")))
        .await
        .unwrap();
    assert_eq!(again["transaction"], first["transaction"]);
    // No cashier: none recorded.
    c.call("sale.commit", sale("cs2", Value::Null))
        .await
        .unwrap();
    let refund = json!({"idempotency_key": "cr1", "transaction": first["transaction"],
                        "amount": "100", "cashier": "Olga"});
    let r = c.call("sale.refund", refund.clone()).await.unwrap();
    let mut other = refund.clone();
    other["cashier"] = json!("Pyotr");
    let r2 = c.call("sale.refund", other).await.unwrap();
    assert_eq!(r2["transaction"], r["transaction"]);

    let h = c
        .call("account.history", json!({"number": CARD}))
        .await
        .unwrap();
    let by_id = |id: &Value| {
        h["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["transaction"] == *id)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_id(&first["transaction"])["cashier"], "Анна К. (id 17)");
    assert_eq!(by_id(&r["transaction"])["cashier"], "Olga");
    let sales: Vec<&Value> = h["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "sale" && t["receipt_id"] == "cs2")
        .collect();
    assert_eq!(sales.len(), 1);
    assert!(sales[0].get("cashier").is_none(), "{}", sales[0]);

    for bad in [
        json!(""),
        json!("  "),
        json!("a\u{7}b"),
        json!("я".repeat(65)),
        json!(17),
    ] {
        let (got, data) = code(c.call("sale.commit", sale("cs3", bad.clone())).await);
        assert_eq!(got, -32602, "{bad}");
        if bad.is_string() {
            assert_eq!(data["field"], "cashier", "{bad}: {data}");
        }
        let mut r = json!({"idempotency_key": "cr3", "transaction": first["transaction"]});
        r["cashier"] = bad.clone();
        assert_eq!(code(c.call("sale.refund", r).await).0, -32602, "{bad}");
    }
    // None of the refused ones was booked.
    let h2 = c
        .call("account.history", json!({"number": CARD}))
        .await
        .unwrap();
    assert_eq!(
        h2["transactions"].as_array().unwrap().len(),
        h["transactions"].as_array().unwrap().len()
    );
}
