//! Returns line by line (issue 21 item 5, seeds 002 and 004): `sale.refund`
//! with `lines` gives back each returned line's own accrual and spent
//! points, cumulatively over partial returns (weighed goods by fractional
//! quantity), never more than a line's quantity; the same SKU on two lines
//! is named by its index; the amount form keeps working, and a sale is
//! returned one way only. In central mode the partial returns are taken at
//! a second till (another store's terminal) of the same chain.

mod common;

use common::Daemon;
use posbridge::client::{Client, ClientError};
use serde_json::{Value, json};

const CARD: &str = "6035000012120001";

/// Seed 002 (pharmacy): essential medicines (ЖНВЛС) 1 %, the rest 5 %, up
/// to 50 % of the receipt payable with points; accrued to the kopeck.
const PHARMACY: &str = r#"
[ledger.programme]
accrual_rounding = "down_to_cents"
default_accrual_percent = "5"
cap_percent = "50"

[[ledger.programme.categories]]
category = "essential"
accrual_percent = "1"
"#;

/// Seed 004 (cinema bar): tickets payable with points up to 10 % ("на
/// билет за 100₽ можно потратить до 10 бонусов и 90₽"), the bar up to half.
const CINEMA: &str = r#"
[ledger.programme]
default_accrual_percent = "5"
cap_percent = "50"

[[ledger.programme.categories]]
category = "tickets"
cap_percent = "10"
"#;

fn code(r: Result<Value, ClientError>) -> (i64, Value) {
    match r {
        Err(ClientError::Rpc { error }) => (error["code"].as_i64().unwrap(), error["data"].clone()),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

/// A registered customer with `points` on the balance, and a card token
/// that may spend them.
async fn customer_with(c: &mut Client, points: &str) -> String {
    c.call(
        "account.register",
        json!({"phone": "+79161112233", "card_number": CARD, "secret": "4711"}),
    )
    .await
    .unwrap();
    c.call(
        "ledger.adjust",
        json!({"idempotency_key": "seed", "number": CARD, "amount": points, "reason": "start"}),
    )
    .await
    .unwrap();
    c.call("card.enter", json!({"number": CARD, "secret": "4711"}))
        .await
        .unwrap()["card_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn line(sku: &str, category: &str, qty: &str, price: &str) -> Value {
    json!({"sku": sku, "name": sku, "category": category, "qty": qty, "price": price})
}

async fn balance(c: &mut Client) -> Value {
    c.call("card.resolve", json!({"number": CARD}))
        .await
        .unwrap()["account"]["balance"]
        .clone()
}

/// The (sku, qty, amount, clawback, return_points) of a result's lines.
fn figures(r: &Value) -> Vec<(String, String, String, String, String)> {
    r["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let s = |k: &str| l[k].as_str().unwrap().to_owned();
            (
                s("sku"),
                s("qty"),
                s("amount"),
                s("clawback"),
                s("return_points"),
            )
        })
        .collect()
}

fn f(
    sku: &str,
    qty: &str,
    amount: &str,
    claw: &str,
    back: &str,
) -> (String, String, String, String, String) {
    (
        sku.into(),
        qty.into(),
        amount.into(),
        claw.into(),
        back.into(),
    )
}

/// In central mode, a second till of the chain (terminal T2 of store S2)
/// on the same central ledger; otherwise none (one till holds the books).
fn other_till(d: &Daemon, rest: &str) -> Option<Daemon> {
    let side = d.central.as_ref()?;
    side.admin(&["store", "add", "S2", "--name", "Store 2"]);
    let key = side.admin(&["terminal", "add", "T2", "--store", "S2"]);
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("t2.key");
    std::fs::write(&key_file, key.trim()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut table: toml::Table = side.till_rest(rest).parse().unwrap();
    let central = table["ledger"]["central"].as_table().unwrap().clone();
    let mut central = central;
    central.insert("terminal".into(), "T2".into());
    central.insert("key_file".into(), key_file.display().to_string().into());
    table["ledger"]
        .as_table_mut()
        .unwrap()
        .insert("central".into(), central.into());
    let rest = toml::to_string(&table).unwrap();
    let mut t2 = Daemon {
        socket: dir.path().join("posbridge.sock"),
        config: dir.path().join("posbridge.toml"),
        child: None,
        central: None,
        dir,
    };
    t2.write_config("", &rest);
    t2.spawn(|_| {});
    Some(t2)
}

#[tokio::test]
async fn pharmacy_lines_come_back_with_their_own_points() {
    let d = Daemon::start("", PHARMACY);
    let mut c = d.client().await;
    let token = customer_with(&mut c, "100").await;
    // Two packs of an essential medicine, vitamins, and 0.350 kg of herbal
    // tea sold by weight; 100 points spent.
    let sale = json!({
        "idempotency_key": "s1", "card_token": token, "receipt_id": "P-1", "redeem": "100",
        "lines": [
            line("ESS1", "essential", "2", "150"),
            line("VIT", "general", "1", "500"),
            line("TEA", "general", "0.350", "1200"),
        ],
    });
    let s = c.call("sale.commit", sale).await.unwrap();
    // Spent points spread by the caps (150, 250, 210): 24.59, 40.98, 34.43;
    // accrued on the money part: 1 % of 275.41 + 5 % of 459.02 + 5 % of
    // 385.57 = 44.9836, to the kopeck 44.98 (per line 2.75, 22.95, 19.28).
    assert_eq!(
        (&s["total"], &s["redeemed"], &s["accrued"]),
        (&json!("1220.00"), &json!("100"), &json!("44.98"))
    );
    assert_eq!(balance(&mut c).await, "44.98");
    let sale_txn = s["transaction"].as_i64().unwrap();

    // One of the two packs comes back: half that line's points.
    let r1 = json!({"idempotency_key": "r1", "receipt_id": "P-1", "lines": [{"sku": "ESS1", "qty": "1"}]});
    let back = c.call("sale.refund", r1.clone()).await.unwrap();
    assert_eq!(figures(&back), vec![f("ESS1", "1", "150", "1.37", "12.29")]);
    assert_eq!(
        (
            &back["refunded"],
            &back["clawback"],
            &back["returned"],
            &back["balance_after"]
        ),
        (
            &json!("150"),
            &json!("1.37"),
            &json!("12.29"),
            &json!("55.9")
        )
    );
    // The same key again: the same answer, nothing booked twice; the same
    // key for other lines is refused.
    assert_eq!(c.call("sale.refund", r1).await.unwrap(), back);
    let other = json!({"idempotency_key": "r1", "receipt_id": "P-1", "lines": [{"sku": "VIT", "qty": "1"}]});
    assert_eq!(code(c.call("sale.refund", other).await).0, 2005);
    // More than is left of the line is refused, naming the field.
    let over = json!({"idempotency_key": "r2", "transaction": sale_txn, "lines": [{"sku": "ESS1", "qty": "2"}]});
    let (e, data) = code(c.call("sale.refund", over).await);
    assert_eq!((e, &data["field"]), (-32602, &json!("lines[0].qty")));
    // An SKU not on the sale, and amount with lines.
    let none = json!({"idempotency_key": "r2", "transaction": sale_txn, "lines": [{"sku": "NOPE", "qty": "1"}]});
    assert_eq!(
        code(c.call("sale.refund", none).await).1["field"],
        "lines[0].sku"
    );
    let both = json!({"idempotency_key": "r2", "transaction": sale_txn, "amount": "10", "lines": [{"sku": "VIT", "qty": "1"}]});
    assert_eq!(code(c.call("sale.refund", both).await).1["field"], "lines");

    // The tea comes back in two weighings, at another till of the chain in
    // central mode: 0.200 kg, then the last 0.150 kg gives exactly the
    // rest of the line's figures.
    let t2 = other_till(&d, PHARMACY);
    let mut c2 = match &t2 {
        Some(t2) => t2.client().await,
        None => d.client().await,
    };
    let tea = |key: &str, qty: &str| json!({"idempotency_key": key, "receipt_id": "P-1", "lines": [{"sku": "TEA", "qty": qty}]});
    let w1 = c2.call("sale.refund", tea("r3", "0.200")).await.unwrap();
    assert_eq!(figures(&w1), vec![f("TEA", "0.2", "240", "11.01", "19.67")]);
    let w2 = c2.call("sale.refund", tea("r4", "0.150")).await.unwrap();
    assert_eq!(figures(&w2), vec![f("TEA", "0.15", "180", "8.27", "14.76")]);
    let (e, data) = code(c2.call("sale.refund", tea("r5", "0.001")).await);
    assert_eq!((e, &data["field"]), (-32602, &json!("lines[0].qty")));
    // Returned by lines, the sale takes no return by amount.
    let by_amount = json!({"idempotency_key": "r5", "receipt_id": "P-1", "amount": "10"});
    assert_eq!(
        code(c2.call("sale.refund", by_amount).await).1["field"],
        "amount"
    );

    // Without amount or lines: whatever of each line is left.
    let rest = c
        .call(
            "sale.refund",
            json!({"idempotency_key": "r6", "receipt_id": "P-1"}),
        )
        .await
        .unwrap();
    assert_eq!(
        figures(&rest),
        vec![
            f("ESS1", "1", "150", "1.38", "12.3"),
            f("VIT", "1", "500", "22.95", "40.98")
        ]
    );
    // All the returns together give back exactly the sale's figures, and
    // the balance is the 100 points the customer had before it.
    let sum = |k: &str| -> rust_decimal::Decimal {
        [&back, &w1, &w2, &rest]
            .iter()
            .map(|r| {
                r[k].as_str()
                    .unwrap()
                    .parse::<rust_decimal::Decimal>()
                    .unwrap()
            })
            .sum()
    };
    let dec = |s: &str| s.parse::<rust_decimal::Decimal>().unwrap();
    assert_eq!(
        (sum("refunded"), sum("clawback"), sum("returned")),
        (dec("1220"), dec("44.98"), dec("100"))
    );
    assert_eq!(balance(&mut c).await, "100");
    // Nothing left: an empty return.
    let empty = c
        .call(
            "sale.refund",
            json!({"idempotency_key": "r7", "receipt_id": "P-1"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (&empty["refunded"], &empty["clawback"]),
        (&json!("0"), &json!("0"))
    );
    // History shows each return with its sale.
    let h = c
        .call("account.history", json!({"number": CARD, "limit": 20}))
        .await
        .unwrap();
    let refunds = h["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "refund" && t["refund_of"] == sale_txn)
        .count();
    assert_eq!(refunds, 5);
}

#[tokio::test]
async fn cinema_two_ticket_lines_are_named_by_index_and_amount_returns_stay() {
    let d = Daemon::start("", CINEMA);
    let mut c = d.client().await;
    let token = customer_with(&mut c, "7").await;
    // Seed 004's order: 7 points spent, 713 paid in money, on two tickets
    // of 100 and 520 at the bar.
    let sale = json!({
        "idempotency_key": "s1", "card_token": token, "receipt_id": "C-1", "redeem": "7",
        "lines": [
            line("TICKET", "tickets", "1", "100"),
            line("BAR", "bar", "1", "520"),
            line("TICKET", "tickets", "1", "100"),
        ],
    });
    let s = c.call("sale.commit", sale).await.unwrap();
    // 0.25 + 6.50 + 0.25 spent; 5 % of 99.75 + 513.50 + 99.75 = 35.65,
    // whole points 35: per line 5, 25, 5.
    assert_eq!(
        (&s["money_paid"], &s["accrued"]),
        (&json!("713"), &json!("35"))
    );

    // TICKET is on lines 0 and 2: the return must say which.
    let vague = json!({"idempotency_key": "r1", "receipt_id": "C-1", "lines": [{"sku": "TICKET", "qty": "1"}]});
    let (e, data) = code(c.call("sale.refund", vague).await);
    assert_eq!((e, &data["field"]), (-32602, &json!("lines[0].line")));
    let named = json!({"idempotency_key": "r1", "receipt_id": "C-1", "lines": [{"sku": "TICKET", "qty": "1", "line": 2}]});
    let r = c.call("sale.refund", named).await.unwrap();
    assert_eq!(figures(&r), vec![f("TICKET", "1", "100", "5", "0.25")]);
    assert_eq!(r["lines"][0]["line"], 2);
    assert_eq!(r["balance_after"], "30.25");
    // The wrong SKU for an index, and one line named twice.
    let wrong = json!({"idempotency_key": "r2", "receipt_id": "C-1", "lines": [{"sku": "TICKET", "qty": "1", "line": 1}]});
    assert_eq!(
        code(c.call("sale.refund", wrong).await).1["field"],
        "lines[0].sku"
    );
    let twice = json!({"idempotency_key": "r2", "receipt_id": "C-1", "lines": [
        {"sku": "BAR", "qty": "0.5"}, {"sku": "BAR", "qty": "0.5", "line": 1}]});
    assert_eq!(
        code(c.call("sale.refund", twice).await).1["field"],
        "lines[1]"
    );

    // A second order returned by amount as before; then lines are refused.
    let token = c
        .call("card.enter", json!({"number": CARD, "secret": "4711"}))
        .await
        .unwrap()["card_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let s2 = json!({"idempotency_key": "s2", "card_token": token, "receipt_id": "C-2",
        "lines": [line("BAR", "bar", "1", "200")]});
    assert_eq!(c.call("sale.commit", s2).await.unwrap()["accrued"], "10");
    let half = c
        .call(
            "sale.refund",
            json!({"idempotency_key": "r3", "receipt_id": "C-2", "amount": "100"}),
        )
        .await
        .unwrap();
    assert_eq!((&half["clawback"], half.get("lines")), (&json!("5"), None));
    let lines_now = json!({"idempotency_key": "r4", "receipt_id": "C-2", "lines": [{"sku": "BAR", "qty": "1"}]});
    assert_eq!(
        code(c.call("sale.refund", lines_now).await).1["field"],
        "lines"
    );
}
