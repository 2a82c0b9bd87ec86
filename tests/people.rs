//! The customer as a person through the socket (issue 21 items 12c and
//! 13): a birth date on the account, the birthday bonus credited once a
//! year inside its window by `bonuses.birthday.run` (the daily job's run,
//! here as of a given time), 29 February in common and leap years;
//! consents recorded and withdrawn with how and by whom; erasure of the
//! personal data on request with the books kept and verified.

mod common;

use common::Daemon;
use posbridge::client::{Client, ClientError};
use serde_json::{Value, json};

const PROGRAMME: &str = r#"
[ledger.programme]
default_accrual_percent = "5"
birthday_bonus = "500"
birthday_expiry_days = 7
birthday_days_before = 3
"#;

fn code(r: Result<Value, ClientError>) -> (i64, Value) {
    match r {
        Err(ClientError::Rpc { error }) => (error["code"].as_i64().unwrap(), error["data"].clone()),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

async fn register(c: &mut Client, phone: &str, birth: Option<&str>) -> (i64, String) {
    let mut p = json!({"phone": phone, "name": "Иван Петров", "virtual": true});
    if let Some(b) = birth {
        p["birth_date"] = json!(b);
    }
    let r = c.call("account.register", p).await.unwrap();
    (
        r["account"].as_i64().unwrap(),
        r["card_number"].as_str().unwrap().to_owned(),
    )
}

async fn run(c: &mut Client, at: &str) -> Value {
    c.call("bonuses.birthday.run", json!({"at": at}))
        .await
        .unwrap()
}

async fn balance(c: &mut Client, card: &str) -> String {
    let r = c
        .call("card.resolve", json!({"number": card}))
        .await
        .unwrap();
    r["account"]["balance"].as_str().unwrap().to_owned()
}

fn credited(r: &Value) -> Vec<i64> {
    r["credits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["account"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn the_birthday_bonus_lands_once_a_year_inside_its_window() {
    let d = Daemon::start("", PROGRAMME);
    let mut c = d.client().await;
    let (ann, ann_card) = register(&mut c, "+79160000001", Some("1990-05-14")).await;
    let (leap, leap_card) = register(&mut c, "+79160000002", Some("2000-02-29")).await;
    let (_none, none_card) = register(&mut c, "+79160000003", None).await;

    // The year is never shown back: the day and month are enough to greet.
    let g = c
        .call("account.get", json!({"account": ann}))
        .await
        .unwrap();
    assert_eq!(g["birthday"], "05-14", "{g}");
    assert!(!g.to_string().contains("1990"), "{g}");

    // Four days before: outside the window of 3.
    let r = run(&mut c, "2027-05-10T12:00:00+03:00").await;
    assert_eq!(r["credited"], 0, "{r}");
    // Three days before, just after local midnight: in, 500 points for 7
    // days counted from the day of credit (last day 18 May, gone at 00:00
    // Moscow time on the 19th).
    let r = run(&mut c, "2027-05-11T00:10:00+03:00").await;
    assert_eq!(credited(&r), [ann], "{r}");
    assert_eq!(r["credits"][0]["amount"], "500");
    assert_eq!(r["credits"][0]["year"], 2027);
    assert_eq!(r["credits"][0]["expires_at"], "2027-05-18T21:00:00Z");
    assert_eq!(balance(&mut c, &ann_card).await, "500");
    // The day itself, and the run repeated: nothing more this year.
    for at in ["2027-05-14T09:00:00+03:00", "2027-05-11T00:10:00+03:00"] {
        let r = run(&mut c, at).await;
        assert_eq!(r["credited"], 0, "{at}: {r}");
    }
    assert_eq!(balance(&mut c, &ann_card).await, "500");
    // The next year, again once.
    let r = run(&mut c, "2028-05-14T09:00:00+03:00").await;
    assert_eq!(credited(&r), [ann], "{r}");
    assert_eq!(balance(&mut c, &ann_card).await, "1000");

    // 29 February in a common year is celebrated on the 28th: the window
    // of 2027 (25–28 February) credits it, once.
    let r = run(&mut c, "2027-02-25T12:00:00+03:00").await;
    assert_eq!(credited(&r), [leap], "{r}");
    let r = run(&mut c, "2027-02-28T12:00:00+03:00").await;
    assert_eq!(r["credited"], 0, "{r}");
    // In a leap year the day is the 29th: the 25th is too early ...
    let r = run(&mut c, "2028-02-25T12:00:00+03:00").await;
    assert_eq!(r["credited"], 0, "{r}");
    // ... the 26th is three days before.
    let r = run(&mut c, "2028-02-26T12:00:00+03:00").await;
    assert_eq!(credited(&r), [leap], "{r}");
    assert_eq!(balance(&mut c, &leap_card).await, "1000");
    assert_eq!(balance(&mut c, &none_card).await, "0");

    // The bonus is a transaction of its own in the history.
    let h = c
        .call("account.history", json!({"account": ann}))
        .await
        .unwrap();
    let kinds: Vec<&str> = h["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["birthday", "birthday"], "{h}");

    // Bad dates are refused naming the field; null clears the date.
    for bad in ["1990-02-30", "14.05.1990", "2999-01-01"] {
        let (code_, data) = code(
            c.call("account.update", json!({"account": ann, "birth_date": bad}))
                .await,
        );
        assert_eq!(
            (code_, &data["field"]),
            (-32602, &json!("birth_date")),
            "{bad}"
        );
        let (code_, data) = code(
            c.call(
                "account.register",
                json!({"phone": "+79160000009", "virtual": true, "birth_date": bad}),
            )
            .await,
        );
        assert_eq!(
            (code_, &data["field"]),
            (-32602, &json!("birth_date")),
            "{bad}"
        );
    }
    let g = c
        .call(
            "account.update",
            json!({"account": ann, "birth_date": null}),
        )
        .await
        .unwrap();
    assert!(g["birthday"].is_null(), "{g}");
    let r = run(&mut c, "2029-05-14T09:00:00+03:00").await;
    assert_eq!(r["credited"], 0, "{r}");
    d.verify_ledger();
}

#[tokio::test]
async fn consents_are_recorded_and_erasure_keeps_the_books_without_the_person() {
    let d = Daemon::start("", PROGRAMME);
    let mut c = d.client().await;
    let r = c
        .call(
            "account.register",
            json!({"phone": "+79161234567", "email": "ivan.petrov@example.ru",
                   "name": "Иван Петров", "virtual": true, "birth_date": "1985-03-08",
                   "code_word": "сирень"}),
        )
        .await
        .unwrap();
    let account = r["account"].as_i64().unwrap();
    let card = r["card_number"].as_str().unwrap().to_owned();

    let set = |kind: &str, given: bool, how: &str| json!({"account": account, "kind": kind, "given": given, "how": how, "operator": "Анна"});
    let v = c
        .call("account.consent.set", set("personal_data", true, "paper"))
        .await
        .unwrap();
    let data_since = v["consents"]["personal_data"].as_str().unwrap().to_owned();
    assert!(v["consents"]["messages"].is_null(), "{v}");
    c.call("account.consent.set", set("messages", true, "sms"))
        .await
        .unwrap();
    // Given again: the first time stays.
    let v = c
        .call("account.consent.set", set("personal_data", true, "paper"))
        .await
        .unwrap();
    assert_eq!(v["consents"]["personal_data"], data_since.as_str());
    let v = c
        .call("account.consent.set", set("messages", false, "phone call"))
        .await
        .unwrap();
    assert!(v["consents"]["messages"].is_null(), "{v}");
    let log = v["log"].as_array().unwrap();
    let seen: Vec<(&str, bool, &str)> = log
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["given"].as_bool().unwrap(),
                e["how"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("messages", false, "phone call"),
            ("personal_data", true, "paper"),
            ("messages", true, "sms"),
            ("personal_data", true, "paper"),
        ]
    );
    assert!(log.iter().all(|e| e["operator"] == "Анна"), "{v}");
    let g = c
        .call("account.get", json!({"account": account}))
        .await
        .unwrap();
    assert_eq!(g["consents"]["personal_data"], data_since.as_str(), "{g}");
    assert_eq!(
        c.call("account.consents", json!({"account": account}))
            .await
            .unwrap()["log"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    // Unknown kinds and empty operators are refused naming the field.
    let (code_, data) = code(
        c.call("account.consent.set", set("marketing", true, "paper"))
            .await,
    );
    assert_eq!((code_, &data["field"]), (-32602, &json!("kind")));
    let mut p = set("messages", true, "sms");
    p["operator"] = json!("  ");
    let (code_, data) = code(c.call("account.consent.set", p).await);
    assert_eq!((code_, &data["field"]), (-32602, &json!("operator")));

    // Some history to keep.
    let sale = json!({
        "idempotency_key": "s1", "number": card, "receipt_id": "R1",
        "lines": [{"sku": "A1", "name": "Товар", "category": "general", "qty": "1", "price": "1000"}],
    });
    let s = c.call("sale.commit", sale).await.unwrap();
    assert_eq!(s["accrued"], "50");

    let e = c
        .call(
            "account.erase",
            json!({"account": account, "operator": "admin"}),
        )
        .await
        .unwrap();
    assert_eq!(e["newly"], true, "{e}");
    let again = c
        .call(
            "account.erase",
            json!({"account": account, "operator": "admin"}),
        )
        .await
        .unwrap();
    assert_eq!(again["newly"], false);
    assert_eq!(again["erased_at"], e["erased_at"]);

    let g = c
        .call("account.get", json!({"account": account}))
        .await
        .unwrap();
    for field in ["name", "phone", "email", "birthday"] {
        assert!(g[field].is_null(), "{field}: {g}");
    }
    assert_eq!(g["has_code_word"], false);
    assert!(g["consents"]["personal_data"].is_null(), "{g}");
    assert!(g["consents"]["messages"].is_null(), "{g}");
    assert_eq!(g["erased_at"], e["erased_at"]);
    // Nobody finds the customer by contact any more; the card keeps its
    // points as an anonymous card.
    let (code_, _) = code(
        c.call("account.get", json!({"phone": "+79161234567"}))
            .await,
    );
    assert_eq!(code_, 2001);
    assert_eq!(balance(&mut c, &card).await, "50");
    // A consent cannot be given to an erased account; the log shows the
    // erasure and who made it.
    let (code_, _) = code(
        c.call("account.consent.set", set("messages", true, "sms"))
            .await,
    );
    assert_eq!(code_, -32602);
    let v = c
        .call("account.consents", json!({"account": account}))
        .await
        .unwrap();
    assert_eq!(v["log"][0]["kind"], "erasure");
    assert_eq!(v["log"][0]["operator"], "admin");

    // The books still balance and the export names nobody.
    d.verify_ledger();
    for format in ["json", "csv"] {
        let out = d.ledger_cli(&["export", "--format", format]);
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("R1"), "{text}");
        for pii in ["Петров", "79161234567", "ivan.petrov", "1985"] {
            assert!(!text.contains(pii), "{pii} in the {format} export");
        }
    }
    let (code_, _) = code(
        c.call(
            "account.erase",
            json!({"account": 999_999, "operator": "admin"}),
        )
        .await,
    );
    assert_eq!(code_, 2001);
}

const REFERRAL: &str = r#"
[ledger.programme]
default_accrual_percent = "5"
referral_bonus_inviter = "300"
referral_bonus_invited = "200"
referral_expiry_days = 30
referral_max_per_inviter = 1
"#;

fn sale(key: &str, card: &str, price: &str) -> Value {
    json!({
        "idempotency_key": key, "number": card, "receipt_id": key,
        "lines": [{"sku": "A1", "name": "Товар", "category": "general", "qty": "1", "price": price}],
    })
}

#[tokio::test]
async fn a_referral_pays_both_on_the_invited_customers_first_purchase_once() {
    let d = Daemon::start("", REFERRAL);
    let mut c = d.client().await;
    let (_ann, ann_card) = register(&mut c, "+79160000101", None).await;
    // Invited by phone, in any notation.
    let r = c
        .call(
            "account.register",
            json!({"phone": "+79160000102", "virtual": true, "referrer": "8 (916) 000-01-01"}),
        )
        .await
        .unwrap();
    let bob_card = r["card_number"].as_str().unwrap().to_owned();
    // Registering pays nothing yet.
    assert_eq!(balance(&mut c, &ann_card).await, "0");
    assert_eq!(balance(&mut c, &bob_card).await, "0");
    // The first purchase: 5 % of 1000 for the sale, 200 for being invited,
    // 300 for the inviter.
    let s = c
        .call("sale.commit", sale("b1", &bob_card, "1000"))
        .await
        .unwrap();
    assert_eq!(s["accrued"], "50");
    assert_eq!(balance(&mut c, &bob_card).await, "250");
    assert_eq!(balance(&mut c, &ann_card).await, "300");
    // The sale repeated and a second purchase pay no more.
    c.call("sale.commit", sale("b1", &bob_card, "1000"))
        .await
        .unwrap();
    c.call("sale.commit", sale("b2", &bob_card, "100"))
        .await
        .unwrap();
    assert_eq!(balance(&mut c, &bob_card).await, "255");
    assert_eq!(balance(&mut c, &ann_card).await, "300");

    // Invited by card: the invited customer is paid, the inviter (at the
    // limit of one paid invitation) not.
    let r = c
        .call(
            "account.register",
            json!({"phone": "+79160000103", "virtual": true, "referrer": ann_card}),
        )
        .await
        .unwrap();
    let cid_card = r["card_number"].as_str().unwrap().to_owned();
    c.call("sale.commit", sale("c1", &cid_card, "100"))
        .await
        .unwrap();
    assert_eq!(balance(&mut c, &cid_card).await, "205");
    assert_eq!(balance(&mut c, &ann_card).await, "300");

    // Nobody behind the referrer, or the customer themselves: refused.
    let (code_, data) = code(
        c.call(
            "account.register",
            json!({"phone": "+79160000104", "virtual": true, "referrer": "+79169999999"}),
        )
        .await,
    );
    assert_eq!((code_, &data["field"]), (-32602, &json!("referrer")));
    // A card that joined through a sale, registered naming itself.
    c.call("sale.commit", sale("z1", "6035000099990000", "100"))
        .await
        .unwrap();
    let (code_, data) = code(
        c.call(
            "account.register",
            json!({"phone": "+79160000105", "card_number": "6035000099990000",
                   "referrer": "6035000099990000"}),
        )
        .await,
    );
    assert_eq!((code_, &data["field"]), (-32602, &json!("referrer")));
    // Referral keys are the ledger's own.
    let (code_, _) = code(
        c.call("sale.commit", sale("referral:1:invited", &bob_card, "1"))
            .await,
    );
    assert_eq!(code_, -32602);
    let h = c
        .call("account.history", json!({"number": ann_card}))
        .await
        .unwrap();
    assert_eq!(h["transactions"][0]["kind"], "referral", "{h}");
    d.verify_ledger();
}
