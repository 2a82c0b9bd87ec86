//! The example configurations in examples/ say what their programme does in
//! their comments: each test here starts the daemon with the example's own
//! `[ledger]` tables and checks those claims through the API, with the
//! seeds' figures. (That every example passes `posbridge config check` is
//! tests/docs.rs's `every_example_passes_config_check`.)

mod common;

use common::Daemon;
use posbridge::client::{Client, ClientError};
use serde_json::{Value, json};

/// The example's `[ledger]` table as TOML text, after `adjust` (a test
/// cannot place the pharmacy's phone call, say).
fn ledger_of(example: &str, adjust: impl FnOnce(&mut toml::Table)) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(example);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut all: toml::Table = text.parse().unwrap();
    let mut ledger = all
        .remove("ledger")
        .and_then(|l| l.as_table().cloned())
        .expect("the example has a [ledger] table");
    adjust(&mut ledger);
    let mut out = toml::Table::new();
    out.insert("ledger".into(), toml::Value::Table(ledger));
    toml::to_string(&out).unwrap()
}

/// A daemon on the example's programme, with this test's uid as admin.
fn start(example: &str, adjust: impl FnOnce(&mut toml::Table)) -> Daemon {
    let uid = nix::unistd::geteuid().as_raw();
    Daemon::start(
        &format!("admin_uids = [{uid}]"),
        &ledger_of(example, adjust),
    )
}

fn line(sku: &str, category: &str, price: &str) -> Value {
    json!({"sku": sku, "name": sku, "category": category, "qty": "1", "price": price})
}

async fn sale(c: &mut Client, key: &str, number: &str, lines: Value) -> Value {
    c.call(
        "sale.commit",
        json!({"idempotency_key": key, "number": number, "receipt_id": key, "lines": lines}),
    )
    .await
    .unwrap()
}

fn rpc_code(r: Result<Value, ClientError>) -> i64 {
    match r {
        Err(ClientError::Rpc { error }) => error["code"].as_i64().unwrap(),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

#[tokio::test]
async fn pharmacy_registers_by_phone_with_a_4_digit_code_and_earns_1_and_5_percent() {
    // The call service is the shop's; here the code goes to the log.
    let d = start("pharmacy.toml", |l| {
        let reg = l["registration"].as_table_mut().unwrap();
        assert_eq!(reg["notifier"].as_str(), Some("command"));
        reg.insert("notifier".into(), "log".into());
        reg.remove("command");
    });
    let mut c = d.client().await;
    // "Вводим номер телефона нового участника": by phone, confirmed later.
    let r = c
        .call("account.register", json!({"phone": "8 916 123-45-67"}))
        .await
        .unwrap();
    assert_eq!(r["status"], "pending", "{r}");
    let account = r["account"].as_i64().unwrap();
    let number = r["card_number"].as_str().unwrap().to_owned();
    // A pending customer neither earns nor spends.
    let pending = c
        .call(
            "sale.commit",
            json!({"idempotency_key": "p0", "number": number, "receipt_id": "p0",
                   "lines": [line("A", "otc", "100")]}),
        )
        .await;
    assert_eq!(rpc_code(pending), 2002);
    // "последние 4 цифры": a 4-digit code.
    let code = common::logged_code(&d, account);
    assert_eq!(code.len(), 4, "{code}");
    let a = c
        .call(
            "account.activate",
            json!({"account": account, "code": code}),
        )
        .await
        .unwrap();
    assert_eq!(a["status"], "active", "{a}");

    // ЖНВЛП 1 %, the rest 5 %: 1 + 5 on 100 ₽ each.
    let r = sale(
        &mut c,
        "p1",
        &number,
        json!([line("E", "essential", "100"), line("O", "otc", "100")]),
    )
    .await;
    assert_eq!(r["accrued"], "6", "{r}");
    // "Срок жизни бонусов 6 мес.": the accrual has an expiry date.
    assert!(r["accrued_expires_at"].is_string(), "{r}");

    // "не более 50% суммы самого чека": half of a 200 ₽ receipt.
    let q = c
        .call(
            "sale.quote",
            json!({"account": account,
                   "lines": [line("E", "essential", "100"), line("O", "otc", "100")]}),
        )
        .await
        .unwrap();
    // cap_basis = "receipt": the half is of the receipt, not of each line.
    assert_eq!(q["quote"]["receipt_cap"], "100", "{q}");

    // Spending by phone needs the call's 4-digit code.
    let s = c
        .call("sale.redeem_code.send", json!({"account": account}))
        .await
        .unwrap();
    assert_eq!(s["channel"], "phone", "{s}");
    let code = common::logged_code(&d, account);
    assert_eq!(code.len(), 4, "{code}");
    let r = c
        .call(
            "sale.commit",
            json!({"idempotency_key": "p2", "account": account, "redeem_code": code,
                   "receipt_id": "p2", "lines": [line("O", "otc", "20")], "redeem": "6"}),
        )
        .await
        .unwrap();
    assert_eq!(r["redeemed"], "6", "{r}");
}

#[tokio::test]
async fn cinema_has_levels_a_welcome_bonus_and_a_10_percent_cap() {
    let d = start("cinema-bar.toml", |_| {});
    let mut c = d.client().await;
    // The welcome bonus: 100 points, burning after 30 days.
    let r = c
        .call(
            "account.register",
            json!({"email": "anna@example.ru", "virtual": true}),
        )
        .await
        .unwrap();
    assert_eq!(r["status"], "active", "{r}");
    assert_eq!(r["welcome_bonus"], "100", "{r}");
    let expires = r["welcome_expires_at"].as_str().unwrap();
    assert!(!expires.is_empty(), "{r}");
    let number = r["card_number"].as_str().unwrap().to_owned();
    let s = c
        .call("card.resolve", json!({"number": number}))
        .await
        .unwrap();
    assert_eq!(s["account"]["tier"], "Базовый", "{s}");
    assert_eq!(s["account"]["balance"], "100", "{s}");

    // "на билет за 100₽ можно потратить до 10 бонусов и 90₽".
    let q = c
        .call(
            "sale.quote",
            json!({"number": number, "lines": [line("T1", "tickets", "100")]}),
        )
        .await
        .unwrap();
    assert_eq!(q["quote"]["max_redeemable"], "10", "{q}");

    // The entry level earns 3 %; spending 10 000 within 90 days climbs a
    // level, whose 5 % prices the next sale.
    let r = sale(
        &mut c,
        "c1",
        &number,
        json!([line("T", "tickets", "10000")]),
    )
    .await;
    assert_eq!(r["accrued"], "300", "{r}");
    assert_eq!(r["tier"], "Серебряный", "{r}");
    let r = sale(&mut c, "c2", &number, json!([line("B", "bar", "1000")])).await;
    assert_eq!(r["accrued"], "50", "{r}");
    // Silver's own rate for tickets (3 %), and its own burn period: 120
    // days instead of the entry level's 90.
    let r = sale(&mut c, "c3", &number, json!([line("T", "tickets", "1000")])).await;
    assert_eq!(r["accrued"], "30", "{r}");
    let at = |v: &Value| {
        time::OffsetDateTime::parse(
            v.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    let days = (at(&r["accrued_expires_at"]) - time::OffsetDateTime::now_utc()).whole_days();
    assert!((119..=121).contains(&days), "{r}");
}

#[tokio::test]
async fn restaurant_points_never_expire_and_the_administrator_adds_them() {
    let d = start("restaurant.toml", |_| {});
    let mut c = d.client().await;
    // The guest's wallet opens at registration.
    let r = c
        .call("account.register", json!({"phone": "+79160000003"}))
        .await
        .unwrap();
    let number = r["card_number"].as_str().unwrap().to_owned();
    // 2 % to the kopeck; alcohol and the service charge take no part.
    let r = sale(
        &mut c,
        "r1",
        &number,
        json!([
            line("D", "food", "1234.50"),
            line("W", "alcohol", "900"),
            line("SERVICE", "service", "100")
        ]),
    )
    .await;
    assert_eq!(r["accrued"], "24.69", "{r}");
    assert!(r["accrued_expires_at"].is_null(), "{r}");
    // Goodwill by hand, on a guest with a wallet.
    let a = c
        .call(
            "ledger.adjust",
            json!({"idempotency_key": "g1", "number": number, "amount": "500",
                   "reason": "жалоба гостя"}),
        )
        .await
        .unwrap();
    assert_eq!(a["balance_after"], "524.69", "{a}");
    let s = c
        .call("card.resolve", json!({"number": number}))
        .await
        .unwrap();
    assert!(s["account"]["next_expiry"].is_null(), "{s}");
    // "баллы используются как валюта": the whole food bill with points.
    let q = c
        .call(
            "sale.quote",
            json!({"number": number, "lines": [line("D", "food", "300")]}),
        )
        .await
        .unwrap();
    assert_eq!(q["quote"]["lines"][0]["cap"], "300", "{q}");
}
