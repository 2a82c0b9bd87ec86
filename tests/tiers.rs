//! Loyalty tiers through the socket: promotion exactly at the threshold by
//! `sale.commit` (and the new rate on the next sale), demotion after
//! inactivity by `tiers.evaluate`, a group-restricted level, and the
//! `account.tier_changed` event.

mod common;

use std::time::Duration;

use common::Daemon;
use posbridge::client::{Client, ClientError};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const TIERS: &str = r#"
[ledger.programme]
default_accrual_percent = "5"

[[ledger.programme.tiers]]
name = "Bronze"
priority = 1

[[ledger.programme.tiers]]
name = "Silver"
priority = 2
accrual_percent = "10"
min_spend = "1000"
spend_period_days = 30

[[ledger.programme.tiers]]
name = "Staff"
priority = 3
accrual_percent = "20"
min_spend = "1500"
spend_period_days = 30
groups = ["staff"]
"#;

fn sale(key: &str, card: &str, total: u32) -> Value {
    json!({
        "idempotency_key": key, "number": card, "receipt_id": key,
        "lines": [{"sku": "A1", "name": "Товар", "category": "general", "qty": "1", "price": total.to_string()}],
    })
}

fn code(r: Result<Value, ClientError>) -> i64 {
    match r {
        Err(ClientError::Rpc { error }) => error["code"].as_i64().unwrap(),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

async fn event(c: &mut Client) -> Value {
    let n = tokio::time::timeout(Duration::from_secs(10), c.next_notification())
        .await
        .expect("an event within 10 s")
        .unwrap();
    n["params"].clone()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

#[tokio::test]
async fn promotion_exactly_at_the_threshold_prices_the_next_sale() {
    let d = Daemon::start("", TIERS);
    let mut sub = d.client().await;
    sub.call(
        "events.subscribe",
        json!({"topics": ["account.tier_changed"]}),
    )
    .await
    .unwrap();
    let mut c = d.client().await;
    const CARD: &str = "6035000011112222";

    // 999 of 1000: still Bronze at 5 %, one rouble to go.
    let r = c.call("sale.commit", sale("s1", CARD, 999)).await.unwrap();
    assert_eq!(r["accrued"], "49");
    assert!(r.get("tier_change").is_none(), "{r}");
    let s = c
        .call("card.resolve", json!({"number": CARD}))
        .await
        .unwrap();
    assert_eq!(s["account"]["tier"], "Bronze");
    let progress = &s["account"]["tier_progress"];
    assert_eq!(progress["next_tier"], "Silver");
    assert_eq!(progress["spend_needed"], "1");
    assert_eq!(progress["spend_period_days"], 30);

    // Exactly 1000: promoted by this sale, which still earns at 5 %.
    let r = c.call("sale.commit", sale("s2", CARD, 1)).await.unwrap();
    assert_eq!(r["accrued"], "0");
    assert_eq!(r["tier_change"]["from"], "Bronze");
    assert_eq!(r["tier_change"]["to"], "Silver");
    assert_eq!(r["tier_change"]["reason"], "promoted");
    assert_eq!(r["tier"], "Silver");
    let account = r["account"].as_i64().unwrap();
    let ev = event(&mut sub).await;
    assert_eq!(ev["topic"], "account.tier_changed");
    assert_eq!(ev["account"], account);
    assert_eq!(ev["from"], "Bronze");
    assert_eq!(ev["to"], "Silver");
    assert_eq!(ev["reason"], "promoted");
    assert_eq!(ev["trigger"], "sale");

    // The next sale earns Silver's 10 %; the quote says so too.
    let q = c
        .call(
            "sale.quote",
            json!({"number": CARD, "lines": sale("q", CARD, 100)["lines"]}),
        )
        .await
        .unwrap();
    assert_eq!(q["quote"]["accrual"], "10");
    let r = c.call("sale.commit", sale("s3", CARD, 100)).await.unwrap();
    assert_eq!(r["accrued"], "10");
    assert!(r.get("tier_change").is_none());

    // Silver is as high as this customer can go (Staff is for staff).
    let s = c
        .call("card.resolve", json!({"number": CARD}))
        .await
        .unwrap();
    assert_eq!(s["account"]["tier"], "Silver");
    assert!(s["account"].get("tier_progress").is_none(), "{s}");
    let h = c
        .call("account.tier_history", json!({"account": account}))
        .await
        .unwrap();
    assert_eq!(h["tier"], "Silver");
    assert!(h.get("tier_progress").is_none());
    assert_eq!(h["changes"].as_array().unwrap().len(), 1);
    assert_eq!(h["changes"][0]["to"], "Silver");
    // The change is in the account's history too, between its sales.
    let hist = c
        .call("account.history", json!({"account": account}))
        .await
        .unwrap();
    let kinds: Vec<&str> = hist["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["sale", "tier", "sale", "sale"], "{hist}");
    let t = &hist["transactions"][1];
    assert_eq!(t["detail"]["from"], "Bronze");
    assert_eq!(t["detail"]["to"], "Silver");
    assert_eq!(t["detail"]["trigger"], "sale");
    assert!(t["entries"].as_array().unwrap().is_empty());
    let g = c
        .call("account.get", json!({"account": account}))
        .await
        .unwrap();
    assert_eq!(g["tier"], "Silver", "{g}");
}

#[tokio::test]
async fn demotion_after_inactivity_is_one_level_at_a_time() {
    let d = Daemon::start("", TIERS);
    let mut sub = d.client().await;
    sub.call(
        "events.subscribe",
        json!({"topics": ["account.tier_changed"]}),
    )
    .await
    .unwrap();
    let mut c = d.client().await;
    const CARD: &str = "6035000033334444";
    let r = c.call("sale.commit", sale("s1", CARD, 1200)).await.unwrap();
    assert_eq!(r["tier_change"]["to"], "Silver");
    let account = r["account"].as_i64().unwrap();
    assert_eq!(event(&mut sub).await["to"], "Silver");

    // Twenty days on, the sale is still in the 30-day window.
    let now = OffsetDateTime::now_utc();
    let later = rfc3339(now + time::Duration::days(20));
    let r = c
        .call("tiers.evaluate", json!({"account": account, "at": later}))
        .await
        .unwrap();
    assert_eq!(r["evaluated"], 1);
    assert_eq!(r["changes"], json!([]));

    // Thirty-one days on, with no sale since: back to Bronze.
    let later = rfc3339(now + time::Duration::days(31));
    let r = c
        .call("tiers.evaluate", json!({"at": later}))
        .await
        .unwrap();
    assert_eq!(r["evaluated"], 1);
    assert_eq!(r["changes"][0]["from"], "Silver");
    assert_eq!(r["changes"][0]["to"], "Bronze");
    assert_eq!(r["changes"][0]["reason"], "demoted");
    assert_eq!(r["changes"][0]["trigger"], "admin");
    let ev = event(&mut sub).await;
    assert_eq!(
        (ev["from"].clone(), ev["to"].clone()),
        (json!("Silver"), json!("Bronze"))
    );
    let s = c
        .call("card.resolve", json!({"number": CARD}))
        .await
        .unwrap();
    assert_eq!(s["account"]["tier"], "Bronze");
    let h = c
        .call("account.tier_history", json!({"account": account}))
        .await
        .unwrap();
    let to: Vec<&str> = h["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["to"].as_str().unwrap())
        .collect();
    assert_eq!(to, ["Bronze", "Silver"]);
    assert_eq!(h["tier_progress"]["next_tier"], "Silver");

    // An unknown account and a bad time are named.
    assert_eq!(
        code(c.call("tiers.evaluate", json!({"account": 999})).await),
        2001
    );
    assert_eq!(
        code(c.call("tiers.evaluate", json!({"at": "yesterday"})).await),
        -32602
    );
}

#[tokio::test]
async fn a_group_restricted_level_is_for_its_group_only() {
    let d = Daemon::start("", TIERS);
    let mut c = d.client().await;
    const OUTSIDER: &str = "6035000055556666";
    const INSIDER: &str = "6035000077778888";
    let a = c
        .call("sale.commit", sale("o1", OUTSIDER, 100))
        .await
        .unwrap()["account"]
        .as_i64()
        .unwrap();
    let b = c
        .call("sale.commit", sale("i1", INSIDER, 100))
        .await
        .unwrap()["account"]
        .as_i64()
        .unwrap();
    // Groups are written straight into the database: this test is about
    // the tiers reading them, not about how they are managed.
    d.ledger_sql(&format!(
        "INSERT INTO groups (name, created_at) VALUES ('staff', '2026-01-01T00:00:00Z');\n\
         INSERT INTO account_groups (account_id, group_name) VALUES ({b}, 'staff');"
    ));

    // Both spend 1600 in all: over Staff's 1500.
    let r = c
        .call("sale.commit", sale("o2", OUTSIDER, 1500))
        .await
        .unwrap();
    assert_eq!(r["account"], a);
    assert_eq!(r["tier_change"]["to"], "Silver");
    let r = c
        .call("sale.commit", sale("i2", INSIDER, 1500))
        .await
        .unwrap();
    assert_eq!(r["tier_change"]["to"], "Staff", "{r}");
    // Staff's 20 % for the insider, Silver's 10 % for the outsider.
    let r = c
        .call("sale.commit", sale("o3", OUTSIDER, 100))
        .await
        .unwrap();
    assert_eq!(r["accrued"], "10");
    let r = c
        .call("sale.commit", sale("i3", INSIDER, 100))
        .await
        .unwrap();
    assert_eq!(r["accrued"], "20");
    // A re-evaluation keeps both where they are.
    let r = c.call("tiers.evaluate", json!({})).await.unwrap();
    assert_eq!(r["evaluated"], 2);
    assert_eq!(r["changes"], json!([]));
}

#[tokio::test]
async fn without_tiers_nothing_shows_and_evaluate_is_refused() {
    let d = Daemon::start("", "");
    let mut c = d.client().await;
    const CARD: &str = "6035000099990000";
    let r = c.call("sale.commit", sale("s1", CARD, 5000)).await.unwrap();
    assert!(r.get("tier_change").is_none());
    let s = c
        .call("card.resolve", json!({"number": CARD}))
        .await
        .unwrap();
    assert!(s["account"].get("tier").is_none(), "{s}");
    assert!(s["account"].get("tier_progress").is_none());
    assert_eq!(code(c.call("tiers.evaluate", json!({})).await), 2040);
}

#[test]
fn a_sub_threshold_above_the_total_is_refused_at_load_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let bad = TIERS.replace(
        "spend_period_days = 30\n\n[[ledger.programme.tiers]]\nname = \"Staff\"",
        "spend_period_days = 30\ncategory_min_spend = { bar = \"600\", tickets = \"500\" }\n\n[[ledger.programme.tiers]]\nname = \"Staff\"",
    );
    assert_ne!(bad, TIERS);
    std::fs::write(&path, common::config_text(dir.path(), "", &bad)).unwrap();
    let out = std::process::Command::new(common::BIN)
        .arg("config")
        .arg("check")
        .arg(&path)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("programme.tiers #2, category_min_spend"),
        "{err}"
    );
}

#[tokio::test]
async fn a_refund_that_takes_the_spend_below_the_threshold_demotes() {
    let d = Daemon::start("", TIERS);
    let mut sub = d.client().await;
    sub.call(
        "events.subscribe",
        json!({"topics": ["account.tier_changed"]}),
    )
    .await
    .unwrap();
    let mut c = d.client().await;
    const CARD: &str = "6035000055556666";
    let r = c.call("sale.commit", sale("b1", CARD, 1200)).await.unwrap();
    assert_eq!(r["tier_change"]["to"], "Silver");
    assert_eq!(event(&mut sub).await["to"], "Silver");
    // Half the goods come back: 600 of 1000 spent, no longer Silver.
    let refund = json!({"idempotency_key": "rf1", "receipt_id": "b1", "amount": "600"});
    let r = c.call("sale.refund", refund.clone()).await.unwrap();
    assert_eq!(r["tier_change"]["from"], "Silver", "{r}");
    assert_eq!(r["tier_change"]["to"], "Bronze");
    assert_eq!(r["tier_change"]["trigger"], "refund");
    let ev = event(&mut sub).await;
    assert_eq!(
        (ev["to"].clone(), ev["trigger"].clone()),
        (json!("Bronze"), json!("refund"))
    );
    // A repeat of the refund changes and announces nothing more.
    let again = c.call("sale.refund", refund).await.unwrap();
    assert_eq!(again["transaction"], r["transaction"]);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), sub.next_notification())
            .await
            .is_err()
    );
    let s = c
        .call("card.resolve", json!({"number": CARD}))
        .await
        .unwrap();
    assert_eq!(s["account"]["tier"], "Bronze");
}
