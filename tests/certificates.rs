//! Gift certificates through the daemon (issue 21 item 12a): sold with a
//! code shown once, spent in part, returned, refused when mistyped,
//! expired, blocked or used up, and never spent twice when two tills
//! redeem one certificate at once. `certificates_central.rs` runs this
//! file again against the central ledger on PostgreSQL. (The seeds give
//! no figures for certificates; the amounts are a shop's usual ones.)

mod common;

use common::Daemon;
use posbridge::client::{Client, ClientError};
use serde_json::{Value, json};

fn code(r: Result<Value, ClientError>) -> (i64, Value) {
    match r {
        Err(ClientError::Rpc { error }) => (error["code"].as_i64().unwrap(), error["data"].clone()),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

async fn sell(c: &mut Client, key: &str, nominal: &str) -> (String, Value) {
    let r = c
        .call(
            "certificate.issue",
            json!({"idempotency_key": key, "nominal": nominal, "receipt_id": format!("R-{key}")}),
        )
        .await
        .unwrap();
    (r["code"].as_str().unwrap().to_owned(), r)
}

/// The code with one symbol changed (its check symbol then fails).
fn mistyped(code: &str) -> String {
    let mut b = code.as_bytes().to_vec();
    b[1] = if b[1] == b'7' { b'8' } else { b'7' };
    String::from_utf8(b).unwrap()
}

#[tokio::test]
async fn sold_paid_in_part_returned_and_refused_when_spent() {
    let d = Daemon::start("", "");
    let mut c = d.client().await;
    let (code_text, sold) = sell(&mut c, "sell-1", "3000").await;
    // Printable, grouped, and shown only as its tail afterwards.
    assert_eq!(code_text.len(), 19, "{code_text}");
    assert_eq!(code_text.matches('-').count(), 3);
    let cert = &sold["certificate"];
    assert_eq!(cert["nominal"], "3000");
    assert_eq!(cert["balance"], "3000");
    assert_eq!(cert["state"], "active");
    assert_eq!(cert["code"], format!("****{}", &code_text[15..]));
    // A repeat of the sale: the same certificate, the code not again.
    let again = c
        .call(
            "certificate.issue",
            json!({"idempotency_key": "sell-1", "nominal": "3000", "receipt_id": "R-sell-1"}),
        )
        .await
        .unwrap();
    assert_eq!(again["replayed"], true);
    assert_eq!(again["code"], Value::Null);
    assert_eq!(again["certificate"]["certificate"], cert["certificate"]);

    let got = c
        .call("certificate.get", json!({"code": code_text.to_lowercase()}))
        .await
        .unwrap();
    assert_eq!(got["balance"], "3000");

    // A purchase of 1 200,50 paid with it: 1 799,50 stays on it.
    let pay = json!({"idempotency_key": "pay-1", "code": code_text, "amount": "1200.50", "receipt_id": "R-2"});
    let paid = c.call("certificate.redeem", pay.clone()).await.unwrap();
    assert_eq!(paid["amount"], "1200.5");
    assert_eq!(paid["certificate"]["balance"], "1799.5");
    // The same key again: the same answer, nothing taken twice.
    assert_eq!(c.call("certificate.redeem", pay).await.unwrap(), paid);
    // More than is left: refused with what is left.
    let (e, data) = code(
        c.call(
            "certificate.redeem",
            json!({"idempotency_key": "pay-2", "code": code_text, "amount": "2000"}),
        )
        .await,
    );
    assert_eq!((e, data["balance"].clone()), (2074, json!("1799.5")));
    // A mistyped code never reaches the books.
    let (e, data) = code(
        c.call(
            "certificate.redeem",
            json!({"idempotency_key": "pay-3", "code": mistyped(&code_text), "amount": "1"}),
        )
        .await,
    );
    assert_eq!((e, data["field"].clone()), (-32602, json!("code")));
    // Kopecks at most.
    let (e, data) = code(
        c.call(
            "certificate.redeem",
            json!({"idempotency_key": "pay-4", "code": code_text, "amount": "1.005"}),
        )
        .await,
    );
    assert_eq!((e, data["field"].clone()), (-32602, json!("amount")));

    // Half of the first purchase comes back: its money returns to the certificate.
    let back = c
        .call(
            "certificate.refund",
            json!({"idempotency_key": "ret-1", "redemption": paid["operation"], "amount": "600.25"}),
        )
        .await
        .unwrap();
    assert_eq!(back["certificate"]["balance"], "2399.75");
    let (e, data) = code(
        c.call(
            "certificate.refund",
            json!({"idempotency_key": "ret-2", "redemption": paid["operation"], "amount": "700"}),
        )
        .await,
    );
    assert_eq!((e, data["refundable"].clone()), (2077, json!("600.25")));

    // The rest spent: used up.
    c.call(
        "certificate.redeem",
        json!({"idempotency_key": "pay-5", "code": code_text, "amount": "2399.75"}),
    )
    .await
    .unwrap();
    let (e, _) = code(
        c.call(
            "certificate.redeem",
            json!({"idempotency_key": "pay-6", "code": code_text, "amount": "1"}),
        )
        .await,
    );
    assert_eq!(e, 2073);
    let got = c
        .call("certificate.get", json!({"code": code_text}))
        .await
        .unwrap();
    assert_eq!(
        (got["balance"].clone(), got["state"].clone()),
        (json!("0"), json!("used_up"))
    );
}

#[tokio::test]
async fn expired_blocked_unknown_and_imported() {
    let d = Daemon::start("", "");
    let mut c = d.client().await;
    // A certificate that expired a second ago cannot be sold; one that
    // expires in a second soon refuses to pay.
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let soon = soon
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let r = c
        .call(
            "certificate.issue",
            json!({"idempotency_key": "s1", "nominal": "500", "expires_at": soon}),
        )
        .await
        .unwrap();
    let short = r["code"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (e, data) = code(
        c.call(
            "certificate.redeem",
            json!({"idempotency_key": "p1", "code": short, "amount": "100"}),
        )
        .await,
    );
    assert_eq!(e, 2071);
    assert!(data["expires_at"].is_string());

    // Blocked (admin), refused; unblocked, it pays again.
    let (code_text, _) = sell(&mut c, "s2", "1000").await;
    let blocked = c
        .call(
            "certificate.block",
            json!({"idempotency_key": "b1", "code": code_text}),
        )
        .await
        .unwrap();
    assert_eq!(blocked["state"], "blocked");
    let (e, _) = code(
        c.call(
            "certificate.redeem",
            json!({"idempotency_key": "p2", "code": code_text, "amount": "100"}),
        )
        .await,
    );
    assert_eq!(e, 2072);
    let id = blocked["certificate"].clone();
    c.call(
        "certificate.unblock",
        json!({"idempotency_key": "b2", "certificate": id}),
    )
    .await
    .unwrap();
    let paid = c
        .call(
            "certificate.redeem",
            json!({"idempotency_key": "p3", "code": code_text, "amount": "100"}),
        )
        .await
        .unwrap();
    assert_eq!(paid["certificate"]["balance"], "900");

    // Unknown: a well-formed code nobody sold.
    let (e, _) = code(
        c.call("certificate.get", json!({"code": "GIFT-NOT-SOLD-1"}))
            .await,
    );
    assert_eq!(e, 2070);

    // A pre-printed code imported at its sale, then spent by it.
    let imported = c
        .call(
            "certificate.issue",
            json!({"idempotency_key": "s3", "nominal": "2500", "code": "CINEMA-2026-0042", "valid_days": 180}),
        )
        .await
        .unwrap();
    assert_eq!(imported["code"], "C1NE-MA20-2600-42");
    let (e, data) = code(
        c.call(
            "certificate.issue",
            json!({"idempotency_key": "s4", "nominal": "2500", "code": "cinema 2026 0042"}),
        )
        .await,
    );
    assert_eq!((e, data["field"].clone()), (2075, json!("code")));
    let paid = c
        .call(
            "certificate.redeem",
            json!({"idempotency_key": "p4", "code": "CINEMA-2026-0042", "amount": "2500"}),
        )
        .await
        .unwrap();
    assert_eq!(paid["certificate"]["state"], "used_up");
}

/// A second till on the same books: in central mode a second daemon on
/// the same central service (terminal T2); embedded, a second connection
/// to the one till (its books are its own).
fn second_till(d: &Daemon) -> Option<Daemon> {
    let central = d.central.as_ref()?;
    let key = central.admin(&["terminal", "add", "T2", "--store", "S1"]);
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("t2.key");
    std::fs::write(&key_file, key.trim()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut rest: toml::Table = central.till_rest("").parse().unwrap();
    let c = rest["ledger"]["central"].as_table_mut().unwrap();
    c.insert("terminal".into(), "T2".into());
    c.insert("key_file".into(), key_file.display().to_string().into());
    let rest = toml::to_string(&rest).unwrap();
    let config = dir.path().join("posbridge.toml");
    std::fs::write(&config, common::config_text(dir.path(), "", &rest)).unwrap();
    let mut t2 = Daemon {
        socket: dir.path().join("posbridge.sock"),
        config,
        dir,
        child: None,
        central: None,
    };
    t2.spawn(|_| {});
    Some(t2)
}

#[tokio::test]
async fn two_tills_redeeming_one_certificate_at_once_exactly_one_wins() {
    let d = Daemon::start("", "");
    let t2 = second_till(&d);
    assert_eq!(t2.is_some(), common::central_mode());
    let mut a = d.client().await;
    let mut b = match &t2 {
        Some(t2) => t2.client().await,
        None => d.client().await,
    };
    // Several rounds: each a certificate of 1 000 that covers one
    // purchase of 700 but not two.
    for round in 0..5 {
        let (code_text, _) = sell(&mut a, &format!("sell-{round}"), "1000").await;
        // The second till sees the certificate the first one sold.
        let seen = b
            .call("certificate.get", json!({"code": code_text}))
            .await
            .unwrap();
        assert_eq!(seen["balance"], "1000");
        let pay = |till: &str| json!({"idempotency_key": format!("{till}-{round}"), "code": code_text, "amount": "700"});
        let (ra, rb) = tokio::join!(
            a.call("certificate.redeem", pay("a")),
            b.call("certificate.redeem", pay("b"))
        );
        let (won, lost) = match (ra, rb) {
            (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
            (ra, rb) => panic!("round {round}: expected one winner, got {ra:?} and {rb:?}"),
        };
        assert_eq!(won["certificate"]["balance"], "300");
        let (e, data) = code(Err(lost));
        assert_eq!(
            (e, data["balance"].clone()),
            (2074, json!("300")),
            "round {round}"
        );
        let after = a
            .call("certificate.get", json!({"code": code_text}))
            .await
            .unwrap();
        assert_eq!(after["balance"], "300");
    }
}

#[tokio::test]
async fn only_an_admin_blocks() {
    let tokens = common::TcpTokens::new();
    let _d = Daemon::start(&tokens.daemon_extra, "");
    let mut cashier = tokens.login(common::CASHIER_TOKEN).await;
    let (code_text, _) = sell(&mut cashier, "s1", "100").await;
    let (e, _) = code(
        cashier
            .call(
                "certificate.block",
                json!({"idempotency_key": "b1", "code": code_text}),
            )
            .await,
    );
    assert_eq!(e, 1002);
}
