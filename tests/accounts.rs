//! Customers and card secrets: registration, the welcome bonus, secrets
//! kept only as hashes, and the lock after too many wrong secrets; updates,
//! more cards, groups, adoption of sale-enrolled cards, and confirmation
//! codes through the log, command and http notifiers.

mod common;

use std::time::Duration;

use common::Daemon;
use posbridge::client::{Client, ClientError};
use serde_json::{Value, json};

const PROGRAMME: &str = "[ledger.programme]\nwelcome_bonus = \"100\"\nwelcome_expiry_days = 30\n";

fn code(r: Result<Value, ClientError>) -> (i64, Value) {
    match r {
        Err(ClientError::Rpc { error }) => (error["code"].as_i64().unwrap(), error["data"].clone()),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

async fn redeem(
    c: &mut Client,
    number: &str,
    secret: &str,
    key: &str,
) -> Result<Value, ClientError> {
    let t = c
        .call("card.enter", json!({"number": number, "secret": secret}))
        .await
        .unwrap();
    c.call(
        "sale.commit",
        json!({"idempotency_key": key, "card_token": t["card_token"], "receipt_id": key,
               "lines": [{"sku": "1", "name": "x", "category": "g", "qty": "1", "price": "1000"}],
               "redeem": "10"}),
    )
    .await
}

#[tokio::test]
async fn a_virtual_card_gets_a_secret_shown_once_and_the_welcome_bonus() {
    let d = Daemon::start("", PROGRAMME);
    let mut c = d.client().await;
    let r = c
        .call(
            "account.register",
            json!({"phone": "8 (916) 555-01-02", "name": "Анна", "virtual": true}),
        )
        .await
        .unwrap();
    let number = r["card_number"].as_str().unwrap().to_owned();
    let secret = r["secret"].as_str().unwrap().to_owned();
    assert!(number.starts_with("2990") && number.len() == 16);
    assert_eq!(secret.len(), 6);
    assert_eq!(r["kind"], "virtual");
    assert_eq!(r["welcome_bonus"], "100");
    let resolved = c
        .call("card.resolve", json!({"number": number}))
        .await
        .unwrap();
    assert_eq!(resolved["account"]["balance"], "100");

    // The right secret spends points.
    let ok = redeem(&mut c, &number, &secret, "s1").await.unwrap();
    assert_eq!(ok["redeemed"], "10");

    // The same phone again is refused; nothing is written twice.
    let (code_, data) = code(
        c.call(
            "account.register",
            json!({"phone": "+79165550102", "virtual": true}),
        )
        .await,
    );
    assert_eq!((code_, data["field"].clone()), (2011, json!("phone")));
    let (code_, data) = code(c.call("account.register", json!({"phone": "12ab"})).await);
    assert_eq!((code_, data["field"].clone()), (-32602, json!("phone")));

    // The secret exists nowhere in clear: not in the database, not in the log.
    for bytes in &d.ledger_bytes() {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "secret stored in clear"
        );
    }
    assert!(!d.log().contains(&secret));
    assert!(!d.log().contains(&number));
}

#[tokio::test]
async fn wrong_secrets_lock_the_card_and_the_lock_survives_a_restart() {
    let mut d = Daemon::start("", PROGRAMME);
    let mut c = d.client().await;
    let number = "6035999900001111";
    c.call(
        "account.register",
        json!({"email": "ivan@example.ru", "card_number": number, "secret": "4711"}),
    )
    .await
    .unwrap();
    let mut events = d.client().await;
    events
        .call("events.subscribe", json!({"topics": ["card.locked"]}))
        .await
        .unwrap();
    for i in 0..4 {
        let (code_, data) = code(redeem(&mut c, number, "0000", &format!("w{i}")).await);
        assert_eq!(code_, 2008);
        assert_eq!(data["attempts_left"], 4 - i);
    }
    let (code_, data) = code(redeem(&mut c, number, "0000", "w4").await);
    assert_eq!(code_, 2009);
    assert!(data["until"].as_str().unwrap().ends_with('Z'));
    let ev = tokio::time::timeout(Duration::from_secs(5), events.next_notification())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev["params"]["card_masked"], "****1111");
    // Even the right secret is refused while locked.
    assert_eq!(code(redeem(&mut c, number, "4711", "r1").await).0, 2009);

    // Restart: still locked. In central mode the lock lives in the
    // service: it restarts too.
    d.signal(nix::sys::signal::Signal::SIGTERM);
    d.wait_exit(Duration::from_secs(20));
    if let Some(central) = &d.central {
        central.kill9_and_restart();
    }
    d.spawn(|_| {});
    let mut c = d.client().await;
    assert_eq!(code(redeem(&mut c, number, "4711", "r2").await).0, 2009);
    // Accrual needs no secret and still works.
    let acc = c
        .call(
            "sale.commit",
            json!({"idempotency_key": "acc", "number": number, "receipt_id": "A",
            "lines": [{"sku": "1", "name": "x", "category": "g", "qty": "1", "price": "100"}]}),
        )
        .await
        .unwrap();
    assert_eq!(acc["accrued"], "5");
}

#[tokio::test]
async fn a_card_enrolled_by_a_sale_has_no_secret_to_spend_with() {
    let d = Daemon::start("", "");
    let mut c = d.client().await;
    let number = "6035777700002222";
    c.call(
        "sale.commit",
        json!({"idempotency_key": "e", "number": number, "receipt_id": "E",
        "lines": [{"sku": "1", "name": "x", "category": "g", "qty": "1", "price": "1000"}]}),
    )
    .await
    .unwrap();
    assert_eq!(code(redeem(&mut c, number, "4711", "n1").await).0, 2010);

    // An admin gives the card its first secret; then it can spend.
    let r = c
        .call("card.secret.regenerate", json!({"number": number}))
        .await
        .unwrap();
    let secret = r["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        redeem(&mut c, number, &secret, "n2").await.unwrap()["redeemed"],
        "10"
    );
    let view = c
        .call("account.get", json!({"card_number": number}))
        .await
        .unwrap();
    assert_eq!(view["cards"][0]["has_secret"], true);
    assert_eq!(view["cards"][0]["card_masked"], "****2222");
    assert!(!view.to_string().contains(number));

    // Blocked: neither earns nor spends; unblocked: both again.
    c.call("card.block", json!({"number": number, "status": "lost"}))
        .await
        .unwrap();
    let sale = json!({"idempotency_key": "b1", "number": number, "receipt_id": "B",
        "lines": [{"sku": "1", "name": "x", "category": "g", "qty": "1", "price": "100"}]});
    assert_eq!(code(c.call("sale.commit", sale.clone()).await).0, 2002);
    c.call("card.unblock", json!({"number": number}))
        .await
        .unwrap();
    assert_eq!(c.call("sale.commit", sale).await.unwrap()["accrued"], "5");
    assert!(!d.log().contains(&secret));
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

async fn balance(c: &mut Client, number: &str) -> Value {
    c.call("card.resolve", json!({"number": number}))
        .await
        .unwrap()["account"]["balance"]
        .clone()
}

#[tokio::test]
async fn update_changes_details_all_or_nothing_and_refuses_a_taken_phone() {
    let d = Daemon::start("", PROGRAMME);
    let mut c = d.client().await;
    let a = c
        .call(
            "account.register",
            json!({"phone": "+79160000011", "name": "Аня", "virtual": true}),
        )
        .await
        .unwrap();
    let b = c
        .call("account.register", json!({"phone": "+79160000022"}))
        .await
        .unwrap();
    let id = a["account"].as_i64().unwrap();

    // B's phone: refused with the field named, and the name in the same
    // call is not written either.
    let (code_, data) = code(
        c.call(
            "account.update",
            json!({"account": id, "phone": "8 916 000 00 22", "name": "Другая"}),
        )
        .await,
    );
    assert_eq!((code_, data["field"].clone()), (2011, json!("phone")));
    let view = c.call("account.get", json!({"account": id})).await.unwrap();
    assert_eq!(view["name"], "Аня");
    assert_eq!(view["phone"], "+79160000011");

    let (code_, data) = code(
        c.call(
            "account.update",
            json!({"account": id, "email": "not-an-address"}),
        )
        .await,
    );
    assert_eq!((code_, data["field"].clone()), (-32602, json!("email")));

    let view = c
        .call(
            "account.update",
            json!({"account": id, "name": "Анна", "email": "Anna@Example.RU",
                   "phone": "9160000033", "code_word": "Ромашка"}),
        )
        .await
        .unwrap();
    assert_eq!(view["name"], "Анна");
    assert_eq!(view["email"], "anna@example.ru");
    assert_eq!(view["phone"], "+79160000033");
    assert_eq!(view["has_code_word"], true);
    assert!(!view.to_string().contains("омашка"));
    // The old phone is free again.
    c.call(
        "account.update",
        json!({"account": b["account"], "phone": "+79160000011"}),
    )
    .await
    .unwrap();

    let r = c
        .call(
            "account.verify_code_word",
            json!({"account": id, "code_word": " ромашка"}),
        )
        .await
        .unwrap();
    assert_eq!(r["matches"], true);
    let r = c
        .call(
            "account.verify_code_word",
            json!({"account": id, "code_word": "лютик"}),
        )
        .await
        .unwrap();
    assert_eq!(r["matches"], false);
    assert_eq!(r["attempts_left"], 4);
    // Guessing is limited like card secrets: four more wrong words lock the
    // code word, and then even the right one is refused until the lock ends.
    for left in [3, 2, 1] {
        let r = c
            .call(
                "account.verify_code_word",
                json!({"account": id, "code_word": "лютик"}),
            )
            .await
            .unwrap();
        assert_eq!(r["attempts_left"], left);
    }
    let wrong = json!({"account": id, "code_word": "лютик"});
    let (c5, data) = code(c.call("account.verify_code_word", wrong).await);
    assert_eq!(c5, 2030);
    assert!(data["until"].is_string(), "{data}");
    let right = json!({"account": id, "code_word": "ромашка"});
    assert_eq!(
        code(c.call("account.verify_code_word", right).await).0,
        2030
    );

    // The last contact cannot go.
    c.call("account.update", json!({"account": id, "phone": null}))
        .await
        .unwrap();
    let (code_, _) = code(
        c.call("account.update", json!({"account": id, "email": null}))
            .await,
    );
    assert_eq!(code_, -32602);

    // Blocked: the card neither earns nor spends; active again: it does.
    let number = a["card_number"].as_str().unwrap();
    c.call(
        "account.update",
        json!({"account": id, "status": "blocked"}),
    )
    .await
    .unwrap();
    let sale = json!({"idempotency_key": "u1", "number": number, "receipt_id": "U",
        "lines": [{"sku": "1", "name": "x", "category": "g", "qty": "1", "price": "100"}]});
    assert_eq!(code(c.call("sale.commit", sale.clone()).await).0, 2002);
    // Nor does a blocked customer get a new card to spend with.
    let (code_, data) = code(
        c.call("card.issue", json!({"account": id, "virtual": true}))
            .await,
    );
    assert_eq!((code_, data["status"].clone()), (2002, json!("blocked")));
    let (code_, data) = code(
        c.call(
            "account.update",
            json!({"account": id, "status": "pending"}),
        )
        .await,
    );
    assert_eq!((code_, data["field"].clone()), (-32602, json!("status")));
    c.call("account.update", json!({"account": id, "status": "active"}))
        .await
        .unwrap();
    assert_eq!(c.call("sale.commit", sale).await.unwrap()["accrued"], "5");
    assert_eq!(
        code(
            c.call("account.update", json!({"account": 999, "name": "x"}))
                .await
        )
        .0,
        2001
    );
    let db = d.ledger_bytes();
    assert!(
        db.iter()
            .all(|b| !contains(b, "Ромашка") && !contains(b, "ромашка"))
    );
}

fn ean13_ok(n: &str) -> bool {
    let d: Vec<u32> = n.bytes().map(|b| u32::from(b - b'0')).collect();
    let sum: u32 = d[..12]
        .iter()
        .enumerate()
        .map(|(i, x)| if i % 2 == 0 { *x } else { x * 3 })
        .sum();
    (10 - sum % 10) % 10 == d[12]
}

#[tokio::test]
async fn card_issue_adds_virtual_and_physical_cards_in_the_programme_format() {
    let registration = "[ledger.registration]\ncard_prefix = \"277\"\ncard_length = 13\n\
        card_check = \"ean13\"\nsecret_length = 8\nsecret_alphabet = \"ABCDEFGH\"\n";
    let d = Daemon::start("", &format!("{PROGRAMME}{registration}"));
    let mut c = d.client().await;
    let a = c
        .call("account.register", json!({"email": "k@example.ru"}))
        .await
        .unwrap();
    let id = a["account"].as_i64().unwrap();
    let first = a["card_number"].as_str().unwrap().to_owned();
    let mut numbers = vec![first.clone()];
    for _ in 0..5 {
        let r = c
            .call("card.issue", json!({"account": id, "virtual": true}))
            .await
            .unwrap();
        assert_eq!(r["kind"], "virtual");
        let secret = r["secret"].as_str().unwrap();
        assert_eq!(secret.len(), 8);
        assert!(secret.bytes().all(|b| b"ABCDEFGH".contains(&b)));
        numbers.push(r["card_number"].as_str().unwrap().to_owned());
    }
    for n in &numbers {
        assert_eq!(n.len(), 13, "{n}");
        assert!(n.starts_with("277"), "{n}");
        assert!(ean13_ok(n), "EAN-13 check digit of {n}");
    }

    let physical = c
        .call(
            "card.issue",
            json!({"account": id, "card_number": "6035000099990001", "secret": "4711"}),
        )
        .await
        .unwrap();
    assert_eq!(physical["kind"], "physical");
    assert_eq!(physical["secret"], Value::Null);
    // One balance behind every card: the new card spends the welcome bonus.
    assert_eq!(balance(&mut c, "6035000099990001").await, "100");
    assert_eq!(
        redeem(&mut c, "6035000099990001", "4711", "i1")
            .await
            .unwrap()["redeemed"],
        "10"
    );
    // 100 - 10 redeemed + 49 accrued on the 990 paid in money.
    assert_eq!(balance(&mut c, &first).await, "139");

    assert_eq!(
        code(
            c.call(
                "card.issue",
                json!({"account": id, "card_number": "6035000099990001"}),
            )
            .await
        )
        .0,
        2012
    );
    assert_eq!(
        code(c.call("card.issue", json!({"account": 4242})).await).0,
        2001
    );
    assert_eq!(
        code(
            c.call("card.issue", json!({"account": id, "card_number": "60-35"}),)
                .await
        )
        .0,
        -32602
    );
    // The lost card is blocked; the account goes on with the others.
    c.call(
        "card.block",
        json!({"number": "6035000099990001", "status": "lost"}),
    )
    .await
    .unwrap();
    let view = c.call("account.get", json!({"account": id})).await.unwrap();
    let cards = view["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 7);
    assert_eq!(cards[6]["status"], "lost");
    assert_eq!(cards[6]["kind"], "physical");
    assert!(!d.log().contains("6035000099990001"));
}

#[tokio::test]
async fn a_card_enrolled_by_a_sale_is_adopted_at_registration_with_its_points() {
    let d = Daemon::start("", PROGRAMME);
    let mut c = d.client().await;
    let number = "6035777700003333";
    c.call(
        "sale.commit",
        json!({"idempotency_key": "e", "number": number, "receipt_id": "E",
        "lines": [{"sku": "1", "name": "x", "category": "g", "qty": "1", "price": "1000"}]}),
    )
    .await
    .unwrap();
    assert_eq!(balance(&mut c, number).await, "50");
    let before = c
        .call("account.get", json!({"card_number": number}))
        .await
        .unwrap();

    let r = c
        .call(
            "account.register",
            json!({"phone": "+79160000044", "name": "Пётр", "card_number": number}),
        )
        .await
        .unwrap();
    assert_eq!(r["adopted"], true);
    assert_eq!(r["account"], before["account"]);
    assert_eq!(r["welcome_bonus"], "100");
    let secret = r["secret"].as_str().unwrap().to_owned();
    assert_eq!(balance(&mut c, number).await, "150");
    assert_eq!(
        redeem(&mut c, number, &secret, "a1").await.unwrap()["redeemed"],
        "10"
    );
    let view = c
        .call("account.get", json!({"phone": "+79160000044"}))
        .await
        .unwrap();
    assert_eq!(view["name"], "Пётр");
    assert_eq!(view["cards"].as_array().unwrap().len(), 1);

    // Now it has a customer: a second registration of the card is refused,
    // and the refused phone is not written anywhere.
    let (code_, _) = code(
        c.call(
            "account.register",
            json!({"phone": "+79160000055", "card_number": number}),
        )
        .await,
    );
    assert_eq!(code_, 2012, "the card number is already issued");
    c.call(
        "account.register",
        json!({"phone": "+79160000055", "virtual": true}),
    )
    .await
    .unwrap();

    // A blocked sale-enrolled account is not unblocked by registering it.
    let other = "6035777700004444";
    let sale = json!({"idempotency_key": "e2", "number": other, "receipt_id": "E2",
        "lines": [{"sku": "1", "name": "x", "category": "g", "qty": "1", "price": "100"}]});
    let enrolled = c.call("sale.commit", sale).await.unwrap();
    c.call(
        "account.update",
        json!({"account": enrolled["account"], "status": "blocked"}),
    )
    .await
    .unwrap();
    let (code_, data) = code(
        c.call(
            "account.register",
            json!({"phone": "+79160000056", "card_number": other}),
        )
        .await,
    );
    assert_eq!((code_, data["status"].clone()), (2002, json!("blocked")));
    let view = c
        .call("account.get", json!({"card_number": other}))
        .await
        .unwrap();
    assert_eq!(
        (view["status"].clone(), view["phone"].clone()),
        (json!("blocked"), Value::Null)
    );
}

#[tokio::test]
async fn groups_are_created_listed_joined_and_deleted() {
    let d = Daemon::start("", PROGRAMME);
    let mut c = d.client().await;
    c.call(
        "group.create",
        json!({"name": "vip", "description": "Постоянные гости"}),
    )
    .await
    .unwrap();
    c.call("group.create", json!({"name": "staff"}))
        .await
        .unwrap();
    assert_eq!(
        code(c.call("group.create", json!({"name": " vip "})).await).0,
        2020
    );
    assert_eq!(
        code(c.call("group.create", json!({"name": ""})).await).0,
        -32602
    );

    // An unknown group refuses the whole registration.
    let (code_, data) = code(
        c.call(
            "account.register",
            json!({"phone": "+79160000066", "groups": ["vip", "nope"]}),
        )
        .await,
    );
    assert_eq!((code_, data["group"].clone()), (2021, json!("nope")));
    let r = c
        .call(
            "account.register",
            json!({"phone": "+79160000066", "groups": ["vip"]}),
        )
        .await
        .unwrap();
    assert_eq!(r["groups"], json!(["vip"]));
    let id = r["account"].as_i64().unwrap();
    let view = c.call("account.get", json!({"account": id})).await.unwrap();
    assert_eq!(view["groups"], json!(["vip"]));

    let set = c
        .call(
            "account.groups.set",
            json!({"account": id, "groups": ["staff", "vip", "staff"]}),
        )
        .await
        .unwrap();
    assert_eq!(set["groups"], json!(["staff", "vip"]));
    let list = c.call("group.list", json!({})).await.unwrap();
    assert_eq!(list["groups"][0]["name"], "staff");
    assert_eq!(list["groups"][1]["name"], "vip");
    assert_eq!(list["groups"][1]["description"], "Постоянные гости");
    assert_eq!(list["groups"][1]["members"], 1);

    let (code_, data) = code(c.call("group.delete", json!({"name": "vip"})).await);
    assert_eq!((code_, data["members"].clone()), (2022, json!(1)));
    let del = c
        .call("group.delete", json!({"name": "vip", "force": true}))
        .await
        .unwrap();
    assert_eq!(del["members_removed"], 1);
    assert_eq!(
        code(c.call("group.delete", json!({"name": "vip"})).await).0,
        2021
    );
    let view = c.call("account.get", json!({"account": id})).await.unwrap();
    assert_eq!(view["groups"], json!(["staff"]));
    c.call("account.groups.set", json!({"account": id, "groups": []}))
        .await
        .unwrap();
    c.call("group.delete", json!({"name": "staff"}))
        .await
        .unwrap();
    let list = c.call("group.list", json!({})).await.unwrap();
    assert_eq!(list["groups"], json!([]));
}

/// A notifier program written by the test: it appends its arguments, one
/// per line, then `--`, to `calls.txt` beside itself.
struct Script {
    dir: tempfile::TempDir,
}

impl Script {
    fn new() -> Script {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("send-code");
        std::fs::write(
            &path,
            "#!/bin/sh\nout=\"$(dirname \"$0\")/calls.txt\"\n\
             for a in \"$@\"; do printf '%s\\n' \"$a\" >> \"$out\"; done\n\
             printf -- '--\\n' >> \"$out\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Script { dir }
    }

    fn config(&self, extra: &str) -> String {
        format!(
            "{PROGRAMME}[ledger.registration]\nconfirmation = \"code\"\nnotifier = \"command\"\n{extra}\n\
             [ledger.registration.command]\nprogram = \"{}\"\n\
             args = [\"--code\", \"{{code}}\", \"--to\", \"to: {{contact}}\", \"{{channel}}\"]\n",
            self.dir.path().join("send-code").display()
        )
    }

    /// Each call's arguments.
    fn calls(&self) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(self.dir.path().join("calls.txt")).unwrap_or_default();
        text.split("--\n")
            .filter(|c| !c.is_empty())
            .map(|c| c.lines().map(str::to_owned).collect())
            .collect()
    }

    /// The code of the last call.
    fn last_code(&self) -> String {
        let calls = self.calls();
        let last = calls.last().expect("a code was sent");
        assert_eq!(last[0], "--code");
        last[1].clone()
    }
}

#[tokio::test]
async fn a_command_notifier_gets_code_and_contact_as_arguments_and_codes_expire() {
    let script = Script::new();
    let mut d = Daemon::start(
        "",
        &script.config("code_ttl_seconds = 1\nresend_after_seconds = 0"),
    );
    let mut c = d.client().await;
    // Semicolons, `$(...)` and quotes would do things in a shell.
    let email = "a;b$(touch${ifs}hacked)'x'@example.ru";
    let r = c
        .call("account.register", json!({"email": email, "virtual": true}))
        .await
        .unwrap();
    assert_eq!(r["status"], "pending");
    assert_eq!(r["sent_via"], "command");
    assert_eq!(r["delivered"], true);
    assert_eq!(r["welcome_bonus"], Value::Null);
    let id = r["account"].as_i64().unwrap();
    let number = r["card_number"].as_str().unwrap().to_owned();
    let secret = r["secret"].as_str().unwrap().to_owned();
    let calls = script.calls();
    assert_eq!(calls.len(), 1);
    let first = script.last_code();
    assert_eq!(first.len(), 6);
    assert!(first.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(
        calls[0],
        vec![
            "--code".to_string(),
            first.clone(),
            "--to".into(),
            format!("to: {email}"),
            "email".into()
        ]
    );
    assert!(!script.dir.path().join("hacked").exists());
    assert!(!std::path::Path::new("hacked").exists());

    // Pending: no accrual, no redemption.
    let sale = json!({"idempotency_key": "p1", "number": number, "receipt_id": "P",
        "lines": [{"sku": "1", "name": "x", "category": "g", "qty": "1", "price": "100"}]});
    assert_eq!(code(c.call("sale.commit", sale.clone()).await).0, 2002);
    let view = c.call("account.get", json!({"account": id})).await.unwrap();
    assert_eq!(view["status"], "pending");

    // The code lives at least 1 s and at most 2 s.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        code(
            c.call("account.activate", json!({"account": id, "code": first}))
                .await
        )
        .0,
        2025
    );
    // A restart with a longer lifetime, so the next code cannot expire
    // while the test runs; the account is still pending after it.
    d.signal(nix::sys::signal::Signal::SIGTERM);
    d.wait_exit(Duration::from_secs(20));
    d.write_config("", &script.config("resend_after_seconds = 0"));
    d.spawn(|_| {});
    let mut c = d.client().await;
    assert_eq!(
        code(c.call("sale.commit", sale.clone()).await).0,
        2002,
        "still pending"
    );
    let resent = c
        .call("account.confirmation.resend", json!({"account": id}))
        .await
        .unwrap();
    assert_eq!(resent["sent_via"], "command");
    let second = script.last_code();
    let a = c
        .call("account.activate", json!({"account": id, "code": second}))
        .await
        .unwrap();
    assert_eq!(
        (a["status"].clone(), a["welcome_bonus"].clone()),
        (json!("active"), json!("100"))
    );
    assert_eq!(c.call("sale.commit", sale).await.unwrap()["accrued"], "5");
    assert_eq!(balance(&mut c, &number).await, "105");

    // Neither secret nor code in clear in the database or the log.
    for bytes in d.ledger_bytes() {
        for s in [&secret, &first, &second] {
            assert!(!contains(&bytes, s), "stored in clear");
        }
    }
    let log = d.log();
    assert!(!log.contains(&secret) && !log.contains(&first) && !log.contains(&second));
    assert!(!log.contains(&number));
}

#[tokio::test]
async fn wrong_codes_void_the_code_and_resends_are_rate_limited() {
    let script = Script::new();
    let d = Daemon::start("", &script.config("max_attempts = 3"));
    let mut c = d.client().await;
    let r = c
        .call("account.register", json!({"phone": "+79160000077"}))
        .await
        .unwrap();
    let id = r["account"].as_i64().unwrap();
    let right = script.last_code();
    assert_eq!(script.calls()[0][3], "to: +79160000077");
    assert_eq!(script.calls()[0][4], "phone");
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for left in [2, 1] {
        let (code_, data) = code(
            c.call("account.activate", json!({"account": id, "code": wrong}))
                .await,
        );
        assert_eq!((code_, data["attempts_left"].clone()), (2024, json!(left)));
    }
    let bad = json!({"account": id, "code": wrong});
    assert_eq!(code(c.call("account.activate", bad).await).0, 2026);
    // Void: the right code is refused too.
    let good = json!({"account": id, "code": right});
    assert_eq!(code(c.call("account.activate", good).await).0, 2026);
    // A code went out just now: a new one must wait.
    let (code_, data) = code(
        c.call("account.confirmation.resend", json!({"account": id}))
            .await,
    );
    assert_eq!(code_, 2027);
    assert!(data["retry_after_s"].as_u64().unwrap() > 0);
    assert_eq!(script.calls().len(), 1);
    assert_eq!(
        code(
            c.call("account.activate", json!({"account": id, "code": "12ab"}))
                .await
        )
        .0,
        -32602
    );
    assert_eq!(
        code(
            c.call("account.activate", json!({"account": 999, "code": "1234"}))
                .await
        )
        .0,
        2001
    );
}

use common::logged_code;

#[tokio::test]
async fn the_welcome_bonus_lands_once_however_activation_is_retried_or_raced() {
    let d = Daemon::start(
        "",
        &format!("{PROGRAMME}[ledger.registration]\nconfirmation = \"code\"\ncode_length = 4\n"),
    );
    let mut c = d.client().await;
    let mut events = d.client().await;
    events
        .call("events.subscribe", json!({"topics": ["account.activated"]}))
        .await
        .unwrap();
    let mut accounts = Vec::new();
    for phone in ["+79160000088", "+79160000099"] {
        let r = c
            .call("account.register", json!({"phone": phone}))
            .await
            .unwrap();
        assert_eq!(r["sent_via"], "log");
        let id = r["account"].as_i64().unwrap();
        let code = logged_code(&d, id);
        assert_eq!(code.len(), 4);
        accounts.push((id, r["card_number"].as_str().unwrap().to_owned(), code));
    }

    // Retried: the same answer, one bonus.
    let (id, number, code1) = &accounts[0];
    let p = json!({"account": id, "code": code1});
    let a = c.call("account.activate", p.clone()).await.unwrap();
    let b = c.call("account.activate", p).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(a["welcome_bonus"], "100");
    assert_eq!(balance(&mut c, number).await, "100");

    // Raced on two connections: both succeed, one bonus.
    let (id2, number2, code2) = &accounts[1];
    let mut c1 = d.client().await;
    let mut c2 = d.client().await;
    let p = json!({"account": id2, "code": code2});
    let (x, y) = tokio::join!(
        c1.call("account.activate", p.clone()),
        c2.call("account.activate", p.clone())
    );
    assert_eq!(x.unwrap(), y.unwrap());
    assert_eq!(balance(&mut c, number2).await, "100");
    for (id, _, _) in &accounts {
        let h = c
            .call("account.history", json!({"account": id}))
            .await
            .unwrap();
        let welcomes = h["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["kind"] == "welcome")
            .count();
        assert_eq!(welcomes, 1, "{h}");
    }
    // One account.activated per account.
    let mut seen = Vec::new();
    for _ in 0..2 {
        let ev = tokio::time::timeout(Duration::from_secs(5), events.next_notification())
            .await
            .unwrap()
            .unwrap();
        seen.push(ev["params"]["account"].as_i64().unwrap());
    }
    seen.sort();
    assert_eq!(seen, vec![accounts[0].0, accounts[1].0]);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), events.next_notification())
            .await
            .is_err(),
        "a second account.activated"
    );
    assert!(d.log().contains("demo notifier"));
}

/// A tiny HTTP server on 127.0.0.1: the first `silent` connections get no
/// answer at all; later ones get `204` and their body is passed on.
async fn http_server(silent: usize) -> (String, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/codes", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        for n in 0.. {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            if n < silent {
                held.push(s);
                continue;
            }
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let body = loop {
                    let Ok(k) = s.read(&mut chunk).await else {
                        return;
                    };
                    if k == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..k]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break buf[end + 4..end + 4 + len].to_vec();
                        }
                    }
                };
                let _ = s
                    .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                    .await;
                let _ = tx.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
            });
        }
    });
    (url, rx)
}

#[tokio::test]
async fn an_http_notifier_posts_json_and_a_silent_server_leaves_the_account_pending() {
    // Two silent connections: the registration's two attempts time out.
    let (url, mut posted) = http_server(2).await;
    let d = Daemon::start(
        "",
        &format!(
            "{PROGRAMME}[ledger.registration]\nconfirmation = \"code\"\nnotifier = \"http\"\n\
             [ledger.registration.http]\nurl = \"{url}\"\ntimeout_ms = 300\nretries = 1\n"
        ),
    );
    let mut c = d.client().await;
    let r = c
        .call(
            "account.register",
            json!({"email": "olga@example.ru", "virtual": true}),
        )
        .await
        .unwrap();
    assert_eq!(r["status"], "pending");
    assert_eq!(r["sent_via"], "http");
    assert_eq!(r["delivered"], false);
    let why = r["delivery_error"].as_str().unwrap();
    assert!(why.contains("2 attempt"), "{why}");
    assert!(
        r["secret"].as_str().is_some(),
        "the secret is still shown once"
    );
    let id = r["account"].as_i64().unwrap();
    let view = c.call("account.get", json!({"account": id})).await.unwrap();
    assert_eq!(view["status"], "pending");

    // Nothing was delivered, so a resend may go at once; the server answers now.
    let resent = c
        .call("account.confirmation.resend", json!({"account": id}))
        .await
        .unwrap();
    assert_eq!(resent["sent_via"], "http");
    let body = tokio::time::timeout(Duration::from_secs(5), posted.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body["account"], id);
    assert_eq!(body["channel"], "email");
    assert_eq!(body["contact"], "olga@example.ru");
    let code_ = body["code"].as_str().unwrap().to_owned();
    assert_eq!(code_.len(), 6);
    // Delivered: the next resend must wait.
    assert_eq!(
        code(
            c.call("account.confirmation.resend", json!({"account": id}))
                .await
        )
        .0,
        2027
    );
    let a = c
        .call("account.activate", json!({"account": id, "code": code_}))
        .await
        .unwrap();
    assert_eq!(a["welcome_bonus"], "100");
    let log = d.log();
    assert!(!log.contains(&code_));
    assert!(log.contains("code not delivered"));
}

#[tokio::test]
async fn an_http_notifier_that_never_answers_fails_a_resend_clearly() {
    let (url, _posted) = http_server(usize::MAX).await;
    let d = Daemon::start(
        "",
        &format!(
            "[ledger.registration]\nconfirmation = \"code\"\nnotifier = \"http\"\n\
             [ledger.registration.http]\nurl = \"{url}\"\ntimeout_ms = 200\nretries = 0\n"
        ),
    );
    let mut c = d.client().await;
    let r = c
        .call("account.register", json!({"phone": "+79160000010"}))
        .await
        .unwrap();
    assert_eq!(r["delivered"], false);
    let id = r["account"].as_i64().unwrap();
    let (code_, data) = code(
        c.call("account.confirmation.resend", json!({"account": id}))
            .await,
    );
    assert_eq!((code_, data["account"].clone()), (2028, json!(id)));
    assert_eq!(data["sent_via"], "http");
}

#[tokio::test]
async fn registration_settings_are_checked_when_the_file_loads() {
    for (bad, key) in [
        ("code_length = 7", "code_length"),
        ("notifier = \"command\"", "command"),
        ("card_prefix = \"2990000000000\"", "card_prefix"),
        ("secret_alphabet = \"AA\"", "secret_alphabet"),
        ("card_ranges = [\"60x5\"]", "card_ranges[0]"),
        ("bogus = 1", "bogus"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.toml");
        std::fs::write(&file, format!("[ledger.registration]\n{bad}\n")).unwrap();
        let out = std::process::Command::new(common::BIN)
            .args(["config", "check"])
            .arg(&file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad} accepted");
        assert!(err.contains(key), "{bad}: {err}");
    }
}

#[tokio::test]
async fn a_card_of_another_programme_is_refused_and_nothing_is_written() {
    let d = Daemon::start(
        "",
        &format!("{PROGRAMME}[ledger.registration]\ncard_ranges = [\"6035\", \"7711\"]\n"),
    );
    let mut c = d.client().await;
    let r = c
        .call(
            "account.register",
            json!({"phone": "+79160000001", "card_number": "4000123412341234", "secret": "4711"}),
        )
        .await;
    assert_eq!(code(r).0, 2029);
    // The phone is still free: nothing of the refused registration stayed.
    let ok = c
        .call(
            "account.register",
            json!({"phone": "+79160000001", "card_number": "6035123412341234", "secret": "4711"}),
        )
        .await
        .unwrap();
    let id = ok["account"].as_i64().unwrap();
    assert_eq!(
        code(
            c.call(
                "card.issue",
                json!({"account": id, "card_number": "5555000011112222"})
            )
            .await
        )
        .0,
        2029
    );
    // The other range and the programme's own virtual cards are welcome.
    c.call(
        "card.issue",
        json!({"account": id, "card_number": "7711000011112222"}),
    )
    .await
    .unwrap();
    let v = c
        .call("card.issue", json!({"account": id, "virtual": true}))
        .await
        .unwrap();
    assert!(v["card_number"].as_str().unwrap().starts_with("2990"));
    let g = c.call("account.get", json!({"account": id})).await.unwrap();
    assert_eq!(g["cards"].as_array().unwrap().len(), 3, "{g}");
}

#[tokio::test]
async fn a_cashier_cannot_issue_cards_block_them_or_manage_groups() {
    let tcp = common::TcpTokens::new();
    let d = Daemon::start(&tcp.daemon_extra, PROGRAMME);
    let mut cashier = tcp.login(common::CASHIER_TOKEN).await;
    // What a cashier may do: register a customer and look them up.
    let r = cashier
        .call(
            "account.register",
            json!({"phone": "+79160000002", "card_number": "6035000022223333", "secret": "4711"}),
        )
        .await
        .unwrap();
    let id = r["account"].as_i64().unwrap();
    cashier
        .call("account.get", json!({"account": id}))
        .await
        .unwrap();
    for (method, params) in [
        ("card.issue", json!({"account": id, "virtual": true})),
        ("card.block", json!({"number": "6035000022223333"})),
        (
            "card.secret.regenerate",
            json!({"number": "6035000022223333"}),
        ),
        ("group.create", json!({"name": "staff"})),
        ("account.groups.set", json!({"account": id, "groups": []})),
        (
            "account.update",
            json!({"account": id, "status": "blocked"}),
        ),
        ("tiers.evaluate", json!({})),
        (
            "account.overrides.set",
            json!({"account": id, "cap_percent": "90"}),
        ),
    ] {
        assert_eq!(code(cashier.call(method, params).await).0, 1002, "{method}");
    }
    // Nothing changed: the card still works and has one card.
    let mut root = d.client().await;
    let g = root
        .call("account.get", json!({"account": id}))
        .await
        .unwrap();
    assert_eq!(g["status"], "active");
    assert_eq!(g["cards"].as_array().unwrap().len(), 1, "{g}");
    assert_eq!(g["cards"][0]["status"], "active", "{g}");
    assert!(g["groups"].as_array().unwrap().is_empty(), "{g}");
}
