//! Customer messages through the socket (issue 21 item 13): the balance
//! after a sale reaches an account that consented to messages through the
//! `command` notifier, with the card masked; no consent, no message; a
//! replayed sale sends nothing again.

mod common;

use std::time::Duration;

use common::Daemon;
use posbridge::client::Client;
use serde_json::{Value, json};

/// A notifier program that appends its arguments, one per line, then
/// `--`, to `calls.txt` beside itself.
struct Script {
    dir: tempfile::TempDir,
}

impl Script {
    fn new() -> Script {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("send");
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

    fn config(&self, messages: &str) -> String {
        format!(
            "[ledger.programme]\ndefault_accrual_percent = \"5\"\n\
             [ledger.registration]\nnotifier = \"command\"\n\
             [ledger.registration.command]\nprogram = \"{}\"\n\
             args = [\"{{purpose}}\", \"{{channel}}\", \"{{contact}}\", \"{{code}}\"]\n\
             [ledger.messages]\n{messages}\n",
            self.dir.path().join("send").display()
        )
    }

    fn calls(&self) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(self.dir.path().join("calls.txt")).unwrap_or_default();
        text.split("--\n")
            .filter(|c| !c.is_empty())
            .map(|c| c.lines().map(str::to_owned).collect())
            .collect()
    }

    /// Waits (up to 20 s, polling) until `n` calls were made.
    async fn wait_for(&self, n: usize) -> Vec<Vec<String>> {
        for _ in 0..200 {
            let calls = self.calls();
            if calls.len() >= n {
                return calls;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("expected {n} notifier calls, got {:?}", self.calls());
    }
}

async fn register(c: &mut Client, phone: &str, consent: bool) -> (i64, String) {
    let r = c
        .call(
            "account.register",
            json!({"phone": phone, "name": "Иван Петров", "virtual": true}),
        )
        .await
        .unwrap();
    let account = r["account"].as_i64().unwrap();
    if consent {
        c.call(
            "account.consent.set",
            json!({"account": account, "kind": "messages", "given": true, "how": "sms", "operator": "Анна"}),
        )
        .await
        .unwrap();
    }
    (account, r["card_number"].as_str().unwrap().to_owned())
}

fn sale(key: &str, card: &str, price: &str) -> Value {
    json!({
        "idempotency_key": key, "number": card, "receipt_id": key,
        "lines": [{"sku": "A1", "name": "Товар", "category": "general", "qty": "1", "price": price}],
    })
}

#[tokio::test]
async fn the_balance_after_a_sale_reaches_only_consenting_accounts_with_the_card_masked() {
    let s = Script::new();
    let d = Daemon::start("", &s.config("balance_after_sale = true"));
    let mut c = d.client().await;
    let (_silent, silent_card) = register(&mut c, "+79160000201", false).await;
    let (_ivan, card) = register(&mut c, "+79160000202", true).await;

    // No consent first: the queue is delivered in order, so once the
    // consenting customer's message is there, this one was decided.
    let r = c
        .call("sale.commit", sale("s0", &silent_card, "1000"))
        .await
        .unwrap();
    assert_eq!(r["accrued"], "50");
    let r = c
        .call("sale.commit", sale("s1", &card, "1000"))
        .await
        .unwrap();
    assert_eq!(r["balance_after"], "50");
    let calls = s.wait_for(1).await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    let masked = format!("****{}", &card[card.len() - 4..]);
    assert_eq!(
        calls[0],
        vec![
            "message".to_string(),
            "phone".into(),
            "+79160000202".into(),
            format!("Карта {masked}: начислено 50 баллов, баланс 50 баллов."),
        ]
    );
    assert!(
        !calls[0][3].contains(&card),
        "full card number in {calls:?}"
    );

    // A replay sends nothing; the next sale does.
    c.call("sale.commit", sale("s1", &card, "1000"))
        .await
        .unwrap();
    c.call("sale.commit", sale("s2", &card, "200"))
        .await
        .unwrap();
    let calls = s.wait_for(2).await;
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(
        calls[1][3],
        format!("Карта {masked}: начислено 10 баллов, баланс 60 баллов.")
    );
    assert!(!d.log().contains(&card), "the full card number was logged");
}

/// The burning-soon reminder: a run covers the day `burning_within_days`
/// ahead (programme time), so only points expiring that day are named,
/// only to a consenting customer, with their last day.
#[tokio::test]
async fn points_burning_soon_are_reminded_once_for_their_day_to_consenting_accounts() {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;
    let s = Script::new();
    let d = Daemon::start("", &s.config("burning_within_days = 3"));
    let mut c = d.client().await;
    let (_silent, silent_card) = register(&mut c, "+79160000211", false).await;
    let (_ivan, card) = register(&mut c, "+79160000212", true).await;
    c.call("sale.commit", sale("b0", &silent_card, "1000"))
        .await
        .unwrap();
    let r = c
        .call("sale.commit", sale("b1", &card, "1000"))
        .await
        .unwrap();
    let expires =
        OffsetDateTime::parse(r["accrued_expires_at"].as_str().unwrap(), &Rfc3339).unwrap();
    let moscow = time::UtcOffset::from_hms(3, 0, 0).unwrap();
    let last_day = (expires - time::Duration::SECOND).to_offset(moscow).date();

    // Three days before, in Moscow: Ivan's 50 points are named; the
    // customer without consent is not.
    let at = (expires - time::Duration::days(3) + time::Duration::hours(1))
        .format(&Rfc3339)
        .unwrap();
    let r = c
        .call("messages.burning.run", json!({ "at": at }))
        .await
        .unwrap();
    assert_eq!(r["queued"], 1, "{r}");
    let calls = s.wait_for(1).await;
    let (y, m, dd) = (last_day.year(), u8::from(last_day.month()), last_day.day());
    assert_eq!(
        calls[0],
        vec![
            "message".to_string(),
            "phone".into(),
            "+79160000212".into(),
            format!(
                "50 баллов можно потратить до {dd:02}.{m:02}.{y} включительно, потом они сгорят."
            ),
        ]
    );
    // A day later the window has moved past them: nothing more.
    let later = (expires - time::Duration::days(2) + time::Duration::hours(1))
        .format(&Rfc3339)
        .unwrap();
    let r = c
        .call("messages.burning.run", json!({ "at": later }))
        .await
        .unwrap();
    assert_eq!(r["queued"], 0, "{r}");
    assert!(!d.log().contains(&card), "the full card number was logged");
}
