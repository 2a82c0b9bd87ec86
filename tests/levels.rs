//! Levels with their own rates and caps per category and their own burn
//! period (issue 21 item 1, seed 004's cinema: the bar and tickets priced
//! separately per level), and the receipt-level cap (item 4, seed 002's
//! pharmacy: "Оплатить можно 50% чека"), through the socket. The central
//! twin is tests/levels_central.rs.

mod common;

use common::Daemon;
use posbridge::client::{Client, ClientError};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

const CARD: &str = "6035000011112222";

const CINEMA: &str = r#"
[ledger.programme]
default_accrual_percent = "3"
cap_percent = "10"
expiry_months = 3

# A programme-wide bar rate: a level's own bar rate beats it.
[[ledger.programme.categories]]
category = "bar"
accrual_percent = "4"

[[ledger.programme.tiers]]
name = "Базовый"
priority = 1
[[ledger.programme.tiers.categories]]
category = "tickets"
cashback = false

[[ledger.programme.tiers]]
name = "Серебряный"
priority = 2
accrual_percent = "5"
min_spend = "1000"
spend_period_days = 90
expiry_days = 30
[[ledger.programme.tiers.categories]]
category = "bar"
accrual_percent = "7"
cap_percent = "20"
[[ledger.programme.tiers.categories]]
category = "tickets"
accrual_percent = "2"
cap_percent = "10"
"#;

const PHARMACY: &str = r#"
[ledger.programme]
default_accrual_percent = "5"
cap_percent = "50"
cap_basis = "receipt"
excluded_skus = ["rx"]

[[ledger.programme.categories]]
category = "essential"
accrual_percent = "1"

[[ledger.programme.categories]]
category = "baby"
cap_percent = "10"
"#;

fn line(sku: &str, category: &str, price: &str) -> Value {
    json!({"sku": sku, "name": sku, "category": category, "qty": "1", "price": price})
}

fn dec(v: &Value) -> Decimal {
    v.as_str()
        .unwrap_or_else(|| panic!("{v} is not a decimal string"))
        .parse()
        .unwrap()
}

fn code(r: Result<Value, ClientError>) -> i64 {
    match r {
        Err(ClientError::Rpc { error }) => error["code"].as_i64().unwrap(),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

/// Registers the customer with the card and its secret 4711; a token that
/// may spend.
async fn register(c: &mut Client) -> String {
    c.call(
        "account.register",
        json!({"phone": "+79161234567", "card_number": CARD, "secret": "4711"}),
    )
    .await
    .unwrap();
    token(c).await
}

async fn token(c: &mut Client) -> String {
    c.call("card.enter", json!({"number": CARD, "secret": "4711"}))
        .await
        .unwrap()["card_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn commit(c: &mut Client, key: &str, lines: Value, redeem: &str) -> Value {
    let t = token(c).await;
    c.call(
        "sale.commit",
        json!({"idempotency_key": key, "card_token": t, "receipt_id": key,
               "lines": lines, "redeem": redeem}),
    )
    .await
    .unwrap()
}

/// 00:00 Moscow time on the day after `days` days from `at`'s Moscow date.
fn burns(at: OffsetDateTime, days: i64) -> OffsetDateTime {
    let msk = UtcOffset::from_hms(3, 0, 0).unwrap();
    let day = at.to_offset(msk).date() + time::Duration::days(days + 1);
    day.midnight().assume_offset(msk).to_offset(UtcOffset::UTC)
}

fn parse(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().unwrap(), &Rfc3339).unwrap()
}

#[tokio::test]
async fn a_level_prices_the_bar_and_tickets_separately_and_dates_its_points() {
    let d = Daemon::start("", CINEMA);
    let mut c = d.client().await;
    register(&mut c).await;

    // The entry level: tickets earn nothing ("cashback" off), the bar the
    // programme's 4 %; both capped at the programme's 10 %.
    let r = commit(
        &mut c,
        "s1",
        json!([line("T", "tickets", "100"), line("B", "bar", "900")]),
        "0",
    )
    .await;
    assert_eq!(dec(&r["accrued"]), Decimal::from(36), "{r}");
    // Accrued on the entry level, which sets no days: the programme's 3
    // months.
    let expires = parse(&r["accrued_expires_at"]);
    let now = OffsetDateTime::now_utc();
    assert!(expires > now + time::Duration::days(85), "{r}");
    // 1000 spent: Silver prices the next sale.
    assert_eq!(r["tier"], "Серебряный", "{r}");

    // "на билет за 100₽ можно потратить до 10 бонусов и 90₽": Silver's 10 %
    // on tickets, its 20 % at the bar.
    let lines = json!([line("T", "tickets", "100"), line("B", "bar", "620")]);
    let t = token(&mut c).await;
    let q = c
        .call(
            "sale.quote",
            json!({"card_token": t, "lines": lines, "redeem": "7"}),
        )
        .await
        .unwrap();
    let q = &q["quote"];
    assert_eq!(dec(&q["lines"][0]["cap"]), Decimal::from(10), "{q}");
    assert_eq!(dec(&q["lines"][1]["cap"]), Decimal::from(124), "{q}");
    assert_eq!(dec(&q["lines"][0]["rate"]), Decimal::from(2), "{q}");
    assert_eq!(dec(&q["lines"][1]["rate"]), Decimal::from(7), "{q}");
    // The balance (36) is the binding limit here.
    assert_eq!(dec(&q["max_redeemable"]), Decimal::from(36), "{q}");
    assert!(q.get("receipt_cap").is_none(), "{q}");

    // "Внесём 7₽ бонусами. Останется внести 713₽": 2 % of the ticket's
    // money part and 7 % of the bar's (0.52 and 6.48 of the 7 points):
    // 1.9896 + 42.9464 -> 44.
    let before = OffsetDateTime::now_utc();
    let r = commit(&mut c, "s2", lines, "7").await;
    let after = OffsetDateTime::now_utc();
    assert_eq!(dec(&r["money_paid"]), Decimal::from(713), "{r}");
    assert_eq!(dec(&r["accrued"]), Decimal::from(44), "{r}");
    // Accrued on Silver: they burn after its 30 days, not 3 months.
    let expires = parse(&r["accrued_expires_at"]);
    assert!(
        expires == burns(before, 30) || expires == burns(after, 30),
        "{r}"
    );
    // Each lot keeps the date of its level: Silver's 44 now burn first,
    // before what is left of the entry level's 36 (3 months).
    let s = c
        .call("card.resolve", json!({"number": CARD}))
        .await
        .unwrap();
    assert_eq!(parse(&s["account"]["next_expiry"]["at"]), expires, "{s}");
    assert_eq!(
        dec(&s["account"]["next_expiry"]["amount"]),
        Decimal::from(44),
        "{s}"
    );
    assert_eq!(dec(&s["account"]["balance"]), Decimal::from(73), "{s}");
    // A manual accrual without its own date is dated by the level too.
    let a = c
        .call(
            "ledger.adjust",
            json!({"idempotency_key": "a1", "number": CARD, "amount": "5", "reason": "goodwill"}),
        )
        .await
        .unwrap();
    let now = OffsetDateTime::now_utc();
    let at = parse(&a["expires_at"]);
    assert!(at == burns(before, 30) || at == burns(now, 30), "{a}");
}

#[tokio::test]
async fn the_pharmacy_pays_up_to_half_of_the_receipt() {
    let d = Daemon::start("", PHARMACY);
    let mut c = d.client().await;
    register(&mut c).await;
    // 5 % of 10 000: 500 points to spend.
    let r = commit(&mut c, "p1", json!([line("O", "otc", "10000")]), "0").await;
    assert_eq!(dec(&r["accrued"]), Decimal::from(500), "{r}");

    // Half of the 200 ₽ receipt, within the lines' own caps: the baby food
    // keeps its category's 10 %, the other line may take the rest.
    let lines = json!([line("O", "otc", "100"), line("F", "baby", "100")]);
    let t = token(&mut c).await;
    let q = c
        .call("sale.quote", json!({"card_token": t, "lines": lines}))
        .await
        .unwrap();
    let q = &q["quote"];
    assert_eq!(dec(&q["receipt_cap"]), Decimal::from(100), "{q}");
    assert_eq!(dec(&q["max_redeemable"]), Decimal::from(100), "{q}");
    assert_eq!(dec(&q["lines"][0]["cap"]), Decimal::from(100), "{q}");
    assert_eq!(dec(&q["lines"][1]["cap"]), Decimal::from(10), "{q}");

    // One kopeck over half the receipt is refused as a cap.
    let t = token(&mut c).await;
    let over = c
        .call(
            "sale.commit",
            json!({"idempotency_key": "p2", "card_token": t, "receipt_id": "p2",
                   "lines": lines, "redeem": "100.01"}),
        )
        .await;
    assert_eq!(code(over), 2003);
    // Exactly half is paid: 90.91 and 9.09 on the lines; 5 % of 9.09 and
    // of 90.91 left in money -> 5.
    let r = commit(&mut c, "p3", lines, "100").await;
    assert_eq!(dec(&r["redeemed"]), Decimal::from(100), "{r}");
    assert_eq!(dec(&r["money_paid"]), Decimal::from(100), "{r}");
    assert_eq!(dec(&r["accrued"]), Decimal::from(5), "{r}");

    // A prescription drug (excluded) takes no points and is not part of
    // the half: 50 of the 100 ₽ that take part, none on the 300 ₽.
    let t = token(&mut c).await;
    let q = c
        .call(
            "sale.quote",
            json!({"card_token": t,
                   "lines": [line("O", "otc", "100"), line("rx", "otc", "300")]}),
        )
        .await
        .unwrap();
    assert_eq!(dec(&q["quote"]["receipt_cap"]), Decimal::from(50), "{q}");
    assert_eq!(dec(&q["quote"]["max_redeemable"]), Decimal::from(50), "{q}");
    assert_eq!(dec(&q["quote"]["lines"][1]["cap"]), Decimal::ZERO, "{q}");
}

#[test]
fn a_bad_level_category_is_refused_at_load_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let bad = CINEMA.replace(
        "category = \"tickets\"\ncashback = false",
        "category = \"tickets\"\ncashback = false\naccrual_percent = \"2\"",
    );
    assert_ne!(bad, CINEMA);
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
    assert!(err.contains("accrual_percent"), "{err}");
    assert!(err.contains("cashback = false"), "{err}");
    // The same file without the contradiction passes.
    std::fs::write(&path, common::config_text(dir.path(), "", CINEMA)).unwrap();
    let out = std::process::Command::new(common::BIN)
        .arg("config")
        .arg("check")
        .arg(&path)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
