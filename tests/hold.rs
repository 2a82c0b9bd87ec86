//! The accrual window (issue 21 item 2, seed 004: "the number of days
//! during which cashback is accrued"): a sale's points are held
//! `hold_days` before they can be spent; the summary shows them as `held`
//! with `next_available`; a return inside the window takes them back
//! whole. The daemon runs on the wall clock, so the window's end is
//! reached by moving the held lots' `available_at` into the past in the
//! ledger's database, as the clock would.

mod common;

use common::Daemon;
use posbridge::client::{Client, ClientError};
use serde_json::{Value, json};

const CARD: &str = "6035000077778888";

/// 14 days held, as a cinema bar would set it; otherwise the default
/// programme (5 % in whole points, half a line payable, Moscow time).
const PROGRAMME: &str = "[ledger.programme]\nhold_days = 14\n";

/// Seed 004's order: 720 ₽ (a ticket and the bar).
fn order() -> Value {
    json!([
        {"sku": "T1", "name": "Билет", "category": "tickets", "qty": "1", "price": "400"},
        {"sku": "B1", "name": "Попкорн", "category": "bar", "qty": "1", "price": "320"}
    ])
}

fn code(r: Result<Value, ClientError>) -> (i64, Value) {
    match r {
        Err(ClientError::Rpc { error }) => (error["code"].as_i64().unwrap(), error["data"].clone()),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

async fn token(c: &mut Client) -> String {
    c.call("card.enter", json!({"number": CARD, "secret": "4711"}))
        .await
        .unwrap()["card_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn summary(c: &mut Client) -> Value {
    c.call("card.resolve", json!({"number": CARD}))
        .await
        .unwrap()["account"]
        .clone()
}

#[tokio::test]
async fn held_points_are_shown_not_spent_and_a_return_inside_the_window_takes_them_back() {
    let d = Daemon::start("", PROGRAMME);
    let mut c = d.client().await;
    c.call(
        "account.register",
        json!({"phone": "+79161112233", "card_number": CARD, "secret": "4711"}),
    )
    .await
    .unwrap();
    // 100 points from an operator: spendable at once (only sales are held).
    c.call(
        "ledger.adjust",
        json!({"idempotency_key": "a1", "number": CARD, "amount": "100", "reason": "goodwill"}),
    )
    .await
    .unwrap();

    // Seed 004: "Внесём 7₽ бонусами. Останется внести 713₽": 5 % of the
    // 713 paid in money is 35 whole points, held.
    let t = token(&mut c).await;
    let sale = json!({"idempotency_key": "s1", "card_token": t, "receipt_id": "R1",
                      "lines": order(), "redeem": "7"});
    let r = c.call("sale.commit", sale).await.unwrap();
    assert_eq!(r["money_paid"], "713");
    assert_eq!(r["accrued"], "35");
    assert_eq!(r["balance_before"], "100");
    assert_eq!(r["balance_after"], "93");
    assert_eq!(r["held"], "35");
    let until = r["accrued_available_at"].as_str().unwrap().to_owned();
    assert_eq!(r["next_available"], json!({"amount": "35", "at": until}));
    // Expiry counts from the end of the window: it lies after it.
    assert!(r["accrued_expires_at"].as_str().unwrap() > until.as_str());
    // The receipt's bonus block prints the held points.
    let block = r["bonus_lines"].to_string();
    assert!(block.contains("Бонусы в ожидании"), "{block}");
    assert!(block.contains("35,00"), "{block}");

    // Every summary shows them beside the spendable balance.
    let s = summary(&mut c).await;
    assert_eq!((&s["balance"], &s["held"]), (&json!("93"), &json!("35")));
    assert_eq!(s["next_available"]["at"], until.as_str());
    let entered = c
        .call("card.enter", json!({"number": CARD, "secret": "4711"}))
        .await
        .unwrap();
    assert_eq!(entered["account"]["held"], "35");

    // A quote can spend the 93, not the held 35: asking for 94 names the
    // balance as the limit.
    let t = token(&mut c).await;
    let q = c
        .call(
            "sale.quote",
            json!({"card_token": t, "lines": order(), "redeem": "93"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (&q["balance"], &q["account"]["held"]),
        (&json!("93"), &json!("35"))
    );
    assert_eq!(q["quote"]["max_redeemable"], "93");
    let t = token(&mut c).await;
    let (err, data) = code(
        c.call(
            "sale.quote",
            json!({"card_token": t, "lines": order(), "redeem": "94"}),
        )
        .await,
    );
    assert_eq!(
        (err, &data["limit"], &data["max"]),
        (2003, &json!("balance"), &json!("93"))
    );

    // Half the order returned inside the window: 17 of the held 35 come
    // back out of the held lot (no shortfall, no debt), and 3.5 of the 7
    // spent return to the balance.
    let back = c
        .call(
            "sale.refund",
            json!({"idempotency_key": "f1", "receipt_id": "R1", "amount": "360"}),
        )
        .await
        .unwrap();
    assert_eq!(back["clawback"], "17");
    assert_eq!(back["clawback_shortfall"], "0");
    assert_eq!(back["clawback_debt"], "0");
    assert_eq!(back["returned"], "3.5");
    assert_eq!(back["balance_after"], "96.5");
    let s = summary(&mut c).await;
    assert_eq!(
        (&s["balance"], &s["held"], &s["debt"]),
        (&json!("96.5"), &json!("18"), &json!("0"))
    );

    // The window ends (its lots' time moved into the past, as the clock
    // would): the 18 join the balance and can be spent.
    d.ledger_sql(
        "UPDATE lots SET available_at = '2026-01-01T00:00:00Z' WHERE available_at IS NOT NULL",
    );
    let s = summary(&mut c).await;
    assert_eq!((&s["balance"], &s["held"]), (&json!("114.5"), &json!("0")));
    assert!(s.get("next_available").is_none(), "{s}");
    let t = token(&mut c).await;
    let spend = json!({"idempotency_key": "s2", "card_token": t, "receipt_id": "R2",
                       "lines": order(), "redeem": "114.5"});
    let r = c.call("sale.commit", spend).await.unwrap();
    assert_eq!(r["balance_after"], "0");
    // 5 % of 605.50 = 30 whole points, held again.
    assert_eq!((&r["accrued"], &r["held"]), (&json!("30"), &json!("30")));
    d.verify_ledger();
}

#[tokio::test]
async fn without_hold_days_a_sale_s_points_are_spendable_at_once() {
    let d = Daemon::start("", "");
    let mut c = d.client().await;
    let r = c
        .call(
            "sale.commit",
            json!({"idempotency_key": "s1", "number": CARD, "receipt_id": "R1", "lines": order()}),
        )
        .await
        .unwrap();
    assert_eq!(
        (&r["accrued"], &r["balance_after"], &r["held"]),
        (&json!("36"), &json!("36"), &json!("0"))
    );
    assert!(r.get("accrued_available_at").is_none(), "{r}");
    assert!(!r["bonus_lines"].to_string().contains("ожидании"));
    let s = summary(&mut c).await;
    assert_eq!((&s["balance"], &s["held"]), (&json!("36"), &json!("0")));
    d.verify_ledger();
}

#[test]
fn a_window_over_a_year_is_refused_at_load_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[ledger.programme]\nhold_days = 400\n").unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["config", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(err.contains("hold_days"), "{err}");
}
