//! The central ledger's wire, end to end without PostgreSQL: a small HTTP
//! server in the test serves `posbridge::ledger::wire::dispatch` over a
//! `Local` ledger on a temporary SQLite store (what `posbridge-central`
//! does over its own store), and the till's `Central` client, or the real
//! till daemon in `backend = "central"` mode, talks to it.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use posbridge::api::errors;
use posbridge::config::Config;
use posbridge::ledger::accounts::{
    AccountError, ConfirmSettings, Lookup, Registration, Settings, Update,
};
use posbridge::ledger::embedded::{AccountRef, CommitResult, LedgerError, SaleRef};
use posbridge::ledger::local::Local;
use posbridge::ledger::origin::Origin;
use posbridge::ledger::remote::{Central, Endpoint};
use posbridge::ledger::rules::{AccountOverrides, OrderTerms, Programme, SaleLine};
use posbridge::ledger::wire::{self, RemoteError};
use posbridge::ledger::{Ledger, SpendError};
use posbridge::redact::Secret;
use posbridge::store::Store;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const TERMINAL: &str = "till-1";
const KEY: &str = "k3y-of-till-1";

const PROGRAMME: &str = r#"
[ledger.programme]
default_accrual_percent = "5"
welcome_bonus = "100"
welcome_expiry_days = 30

[[ledger.programme.tiers]]
name = "Bronze"
priority = 1

[[ledger.programme.tiers]]
name = "Silver"
priority = 2
accrual_percent = "10"
min_spend = "1000"
spend_period_days = 30

[[ledger.programme.promo_codes]]
code = "Wire"
bonus = "10"
total = 1
"#;

fn programme() -> Programme {
    Config::parse(PROGRAMME, std::path::Path::new("test.toml"))
        .unwrap()
        .ledger
        .programme
}

fn code_settings() -> ConfirmSettings {
    ConfirmSettings {
        code_length: 6,
        ttl: Duration::from_secs(600),
        max_attempts: 5,
        resend_after: Duration::from_secs(0),
    }
}

/// Registration with confirmation codes and redemption by code, so every
/// method has something to do.
fn settings() -> Settings {
    Settings {
        confirm: Some(code_settings()),
        redeem_code: Some(code_settings()),
        ..Settings::default()
    }
}

/// A central ledger in miniature: HTTP/1.1 with keep-alive, Basic auth,
/// `dispatch` over `Local::with_origin`, `GET /v1/programme`. Records the
/// methods called.
struct MiniCentral {
    url: String,
    called: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

async fn mini_central(p: Programme, s: Settings) -> MiniCentral {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("central.sqlite3")).unwrap();
    let ledger = Arc::new(Local::new(store, p, s));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let called = Arc::new(Mutex::new(Vec::new()));
    let log = called.clone();
    let expected = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{TERMINAL}:{KEY}")
        )
    );
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let ledger = ledger.with_origin(Origin::new("store-1", TERMINAL));
            let (log, expected) = (log.clone(), expected.clone());
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let (verb, path) = (
                        parts.next().unwrap_or("").to_owned(),
                        parts.next().unwrap_or("").to_owned(),
                    );
                    let (mut len, mut auth) = (0usize, String::new());
                    loop {
                        let mut h = String::new();
                        r.read_line(&mut h).await.unwrap();
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        let (name, value) = h.split_once(':').unwrap();
                        match name.to_ascii_lowercase().as_str() {
                            "content-length" => len = value.trim().parse().unwrap(),
                            "authorization" => auth = value.trim().to_owned(),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).await.unwrap();
                    let (status, out) = if auth != expected {
                        let e = wire::WireError {
                            status: 401,
                            code: 1003,
                            message: "wrong credential".into(),
                            data: Value::Null,
                        };
                        (e.status, e.body())
                    } else if verb == "GET" && path == "/v1/programme" {
                        (200, wire::programme(&ledger))
                    } else {
                        let method = path.strip_prefix("/v1/").unwrap_or("").to_owned();
                        log.lock().unwrap().push(method.clone());
                        let args: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        match wire::dispatch_as(&ledger, TERMINAL, &method, args).await {
                            Ok(v) => (200, v),
                            Err(e) => (e.status, e.body()),
                        }
                    };
                    let out = serde_json::to_vec(&out).unwrap();
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        out.len()
                    );
                    if w.write_all(head.as_bytes()).await.is_err()
                        || w.write_all(&out).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    MiniCentral {
        url,
        called,
        _dir: dir,
    }
}

fn endpoint(url: &str, key: &str) -> Endpoint {
    Endpoint {
        url: url.to_owned(),
        terminal: TERMINAL.into(),
        key: Secret::new(key),
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(10),
    }
}

fn lines(total: u32) -> Vec<SaleLine> {
    vec![SaleLine {
        sku: "A1".into(),
        name: "Товар".into(),
        category: "general".into(),
        qty: Decimal::ONE,
        price: Decimal::from(total),
        discount: Decimal::ZERO,
    }]
}

fn remote_code(e: RemoteError) -> i64 {
    match e {
        RemoteError::Remote { code, .. } => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn account_code(e: AccountError) -> i64 {
    match e {
        AccountError::Remote(r) => remote_code(r),
        other => panic!("expected a remote error, got {other:?}"),
    }
}

#[tokio::test]
async fn every_method_crosses_the_wire_with_its_arguments_and_result() {
    let central = mini_central(programme(), settings()).await;
    let till = Central::new(endpoint(&central.url, KEY), programme(), settings()).unwrap();
    let l: &dyn Ledger = &till;
    assert!(till.check_programme(1).await.unwrap());

    // Registration with a confirmation code: the pending code crosses the
    // wire so the till's notifier can deliver it.
    let card = "6035000011112222";
    let mut r = l
        .register(Registration {
            phone: Some("+79161234567".into()),
            card_number: Some(card.into()),
            secret: Some(Secret::new("4711")),
            code_word: Some(Secret::new("Ромашка")),
            ..Registration::default()
        })
        .await
        .unwrap();
    assert_eq!((r.status, r.kind), ("pending", "physical"));
    let pending = r.pending.take().expect("a code to deliver");
    assert_eq!((pending.account, pending.channel), (r.account, "phone"));
    let account = r.account;
    l.code_delivered(account).await.unwrap();
    let again = l.new_code(account).await.unwrap();
    let wrong = l.activate(account, Secret::new("000000")).await;
    assert!(matches!(wrong, Err(AccountError::Remote(_))));
    let a = l.activate(account, again.code.clone()).await.unwrap();
    assert!(a.newly);
    assert_eq!(a.welcome_bonus, Some(Decimal::from(100)));

    // The money path.
    let s = l.resolve(card.into()).await.unwrap().unwrap();
    assert_eq!(s.balance, Decimal::from(100));
    let (_, q) = l
        .quote(card.into(), lines(1000), Decimal::from(10))
        .await
        .unwrap();
    assert_eq!(q.redeem, Decimal::from(10));
    l.verify_secret(card.into(), Secret::new("4711"))
        .await
        .unwrap();
    let c = l
        .commit(
            "s1".into(),
            card.into(),
            "R1".into(),
            lines(1000),
            Decimal::from(10),
            None,
        )
        .await
        .unwrap();
    assert_eq!(c.redeemed, Decimal::from(10));
    let (number, replayed) = l
        .replay_commit("s1".into(), "R1".into(), lines(1000), Decimal::from(10))
        .await
        .unwrap()
        .unwrap();
    assert!(replayed.replayed, "a replay says so across the wire");
    assert_eq!(
        (
            number.as_str(),
            &CommitResult {
                replayed: false,
                ..replayed
            }
        ),
        (card, &c)
    );
    let rf = l
        .refund(
            "rf1".into(),
            SaleRef::Receipt("R1".into()),
            Some(Decimal::from(100)),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(rf.account, account);
    // A till's offline sale and return, booked at their own time; the
    // time crosses the wire.
    let at = (OffsetDateTime::now_utc() - time::Duration::days(2))
        .replace_nanosecond(0)
        .unwrap();
    let late = l
        .commit_at(
            "s2".into(),
            card.into(),
            "R2".into(),
            lines(200),
            Decimal::ZERO,
            at,
            None,
        )
        .await
        .unwrap();
    assert_eq!(late.accrued, Decimal::from(10));
    let late_rf = l
        .refund_at(
            "rf2".into(),
            SaleRef::Receipt("R2".into()),
            None,
            at,
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(late_rf.sale_transaction, late.transaction);
    let booked = l
        .history(AccountRef::Account(account), None, 50)
        .await
        .unwrap();
    let r2 = booked
        .transactions
        .iter()
        .find(|t| t.receipt_id.as_deref() == Some("R2"))
        .unwrap();
    assert_eq!(
        r2.created_at,
        at.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    );
    let expires = OffsetDateTime::now_utc() + time::Duration::days(10);
    let adj = l
        .adjust(
            "adj1".into(),
            card.into(),
            Decimal::from(5),
            "goodwill".into(),
            "admin".into(),
            Some(expires),
        )
        .await
        .unwrap();
    assert_eq!(adj.amount, Decimal::from(5));
    // A past receipt's missed accrual: its arguments cross, the sale's
    // time among them (the expiry counts from it).
    let sold_at = (OffsetDateTime::now_utc() - time::Duration::days(1))
        .replace_nanosecond(0)
        .unwrap();
    let missed = l
        .accrue_missed(
            "miss1".into(),
            card.into(),
            "R-MISSED".into(),
            lines(200),
            sold_at,
            "the till lost its link".into(),
            "admin".into(),
            None,
        )
        .await
        .unwrap();
    assert!(missed.amount > Decimal::ZERO && missed.account == account);
    let o = l
        .set_overrides(
            Some("ov1".into()),
            account,
            AccountOverrides {
                accrual_percent: Some(Decimal::from(7)),
                ..AccountOverrides::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(o.account, account);
    let h = l
        .history(AccountRef::Account(account), None, 10)
        .await
        .unwrap();
    assert!(h.transactions.len() >= 4, "{h:?}");

    // Accounts and cards.
    let v = l.get_account(Lookup::Card(card.into())).await.unwrap();
    assert_eq!((v.account, v.has_code_word), (account, true));
    let v = l
        .update_account(
            account,
            Update {
                name: Some(Some("Анна".into())),
                email: Some(Some("anna@example.com".into())),
                ..Update::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(v.name.as_deref(), Some("Анна"));
    // `null` clears: Some(None) survives the trip.
    let v = l
        .update_account(
            account,
            Update {
                name: Some(None),
                ..Update::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(v.name, None);
    assert!(
        l.verify_code_word(account, Secret::new("ромашка"))
            .await
            .unwrap()
            .matches
    );
    let issued = l.issue_card(account, None, None).await.unwrap();
    assert_eq!(issued.kind, "virtual");
    assert!(issued.secret.is_some());
    l.set_card_status(issued.card_number.clone(), "blocked".into())
        .await
        .unwrap();
    l.set_card_status(issued.card_number.clone(), "active".into())
        .await
        .unwrap();
    let fresh = l
        .regenerate_secret(issued.card_number.clone())
        .await
        .unwrap();
    l.verify_secret(issued.card_number.clone(), Secret::new(fresh))
        .await
        .unwrap();
    let code = l.new_redeem_code(account).await.unwrap();
    l.redeem_code_delivered(account).await.unwrap();
    l.use_redeem_code(account, code.code).await.unwrap();
    let code = l.new_redeem_code(account).await.unwrap();
    // With the order's own terms, which cross the wire and are recorded.
    let own = OrderTerms {
        accrual_percent: Some(Decimal::from(10)),
        cap_percent: None,
    };
    let (number, spent) = l
        .commit_with_code(
            "bycode".into(),
            account,
            code.code,
            "R-code".into(),
            lines(100),
            Decimal::from(1),
            None,
            own.clone(),
        )
        .await
        .unwrap();
    assert_eq!((number.as_str(), spent.redeemed), (card, Decimal::from(1)));
    assert_eq!(spent.terms, Some(own));
    assert_eq!(l.booking_card(account).await.unwrap(), card);

    // The back office's look-ups.
    let found = l
        .search_accounts(card[card.len() - 4..].to_owned(), None, 10)
        .await
        .unwrap();
    assert!(found.hits.iter().any(|h| h.account == account));
    assert!(!l.lots(account).await.unwrap().is_empty());
    let sale = l.find_sale("R1".into()).await.unwrap().unwrap();
    assert_eq!((sale.account, sale.transaction), (account, c.transaction));
    assert_eq!(l.find_sale("nope".into()).await.unwrap(), None);
    let cards = l.account_cards(account).await.unwrap();
    assert!(cards.iter().any(|c| c.number == card));

    // Groups.
    let g = l
        .create_group("staff".into(), Some("Сотрудники".into()))
        .await
        .unwrap();
    assert_eq!(g.name, "staff");
    assert_eq!(
        l.set_groups(account, vec!["staff".into()]).await.unwrap(),
        ["staff"]
    );
    assert_eq!(l.list_groups().await.unwrap()[0].members, 1);
    let page = l.groups_page(None, 1).await.unwrap();
    assert_eq!(page.groups.len(), 1);
    assert_eq!(page.groups[0].members, 1);
    assert_eq!(l.delete_group("staff".into(), true).await.unwrap(), 1);

    // Tiers.
    let (n, _) = l
        .evaluate_tiers(Some(account), OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(n, 1);
    let (view, changes) = l
        .tier_history(account, 10, OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert!(view.tier.is_some());
    assert!(!changes.is_empty());

    // Reports: the query and the report cross whole; a bad period is
    // refused naming the field.
    let today = OffsetDateTime::now_utc().date();
    let q = posbridge::ledger::report::ReportQuery {
        from: (today - time::Duration::days(2)).to_string(),
        to: (today + time::Duration::days(2)).to_string(),
        granularity: posbridge::ledger::report::Granularity::Month,
        by_store: true,
        by_terminal: false,
    };
    let r = l
        .report(q.clone(), OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(r.query, q);
    assert!(!r.movements.is_empty());
    assert!(r.top_customers.iter().any(|c| c.account == account));
    let bad = posbridge::ledger::report::ReportQuery {
        to: q.from.clone(),
        ..q
    };
    match l.report(bad, OffsetDateTime::now_utc()).await {
        Err(LedgerError::Remote(RemoteError::Remote { code, data, .. })) => {
            assert_eq!((code, data["field"].as_str()), (-32602, Some("to")));
        }
        other => panic!("a period the wrong way round: {other:?}"),
    }

    // One order's own terms cross the wire, and come back recorded.
    let terms = OrderTerms {
        accrual_percent: Some(Decimal::from(10)),
        cap_percent: Some(Decimal::from(20)),
    };
    let (_, q) = l
        .quote_terms(card.into(), lines(1000), Decimal::ZERO, terms.clone())
        .await
        .unwrap();
    assert_eq!(
        (q.lines[0].rate, q.lines[0].cap),
        (Decimal::from(10), Decimal::from(200))
    );
    let c = l
        .commit_terms(
            "s-terms".into(),
            card.into(),
            "R-terms".into(),
            lines(1000),
            Decimal::ZERO,
            None,
            terms.clone(),
        )
        .await
        .unwrap();
    assert_eq!((c.accrued, c.terms), (Decimal::from(100), Some(terms)));
    // Gift certificates: sold, looked up, spent, returned, blocked; the
    // code crosses in the first answer only, refusals keep their kind.
    use posbridge::ledger::certs::{CertError, CertRef, Validity};
    let sold = l
        .cert_issue(
            "cert1".into(),
            Decimal::from(3000),
            Validity::Days(365),
            None,
            Some("R-cert".into()),
        )
        .await
        .unwrap();
    let code = sold.code.clone().expect("the code in the first answer");
    let by = || CertRef::Code(code.clone());
    assert_eq!(l.cert_get(by()).await.unwrap().balance, Decimal::from(3000));
    let paid = l
        .cert_redeem("cert2".into(), by(), Decimal::from(1200), None)
        .await
        .unwrap();
    assert_eq!(paid.certificate.balance, Decimal::from(1800));
    let back = l
        .cert_refund("cert3".into(), paid.operation, None, None)
        .await
        .unwrap();
    assert_eq!(back.certificate.balance, Decimal::from(3000));
    let blocked = l
        .cert_block(
            "cert4".into(),
            CertRef::Id(sold.certificate.certificate),
            true,
        )
        .await
        .unwrap();
    assert_eq!(blocked.state, "blocked");
    match l
        .cert_redeem("cert5".into(), by(), Decimal::ONE, None)
        .await
    {
        Err(CertError::Remote(RemoteError::Remote { code, .. })) => assert_eq!(code, 2072),
        other => panic!("a blocked certificate: {other:?}"),
    }
    // A promo code: quoted, used, and its refusal's code and reason
    // across the wire.
    let (_, q) = l
        .quote_promo(card.into(), lines(100), Decimal::ZERO, "wire".into())
        .await
        .unwrap();
    assert_eq!(q.promo.map(|p| p.code).as_deref(), Some("WIRE"));
    let c = l
        .commit_promo(
            "p1".into(),
            card.into(),
            "P1".into(),
            lines(100),
            Decimal::ZERO,
            None,
            " wire ".into(),
        )
        .await
        .unwrap();
    assert_eq!(c.promo_code.as_deref(), Some("WIRE"));
    let used = l
        .commit_promo(
            "p2".into(),
            card.into(),
            "P2".into(),
            lines(100),
            Decimal::ZERO,
            None,
            "WIRE".into(),
        )
        .await;
    match used {
        Err(LedgerError::Remote(RemoteError::Remote { code, data, .. })) => {
            assert_eq!(
                (code, data["field"].as_str(), data["reason"].as_str()),
                (2061, Some("promo_code"), Some("used_up"))
            );
        }
        other => panic!("a used-up code: {other:?}"),
    }
    assert_eq!(l.promo_uses().await.unwrap(), [("WIRE".to_owned(), 1)]);
    // The person's calls (birthdays, consents, erasure) cross whole.
    let run = l.birthday_run(OffsetDateTime::now_utc()).await.unwrap();
    assert_eq!(run.credited, 0);
    let v = l
        .set_consent(
            account,
            posbridge::ledger::people::ConsentChange {
                kind: "messages".into(),
                given: true,
                how: "sms".into(),
                operator: "Анна".into(),
            },
        )
        .await
        .unwrap();
    assert!(v.consents.messages.is_some());
    assert_eq!(v.log[0].operator, "Анна");
    assert_eq!(l.consents(account).await.unwrap(), v);
    // The burning-soon query crosses with its window and its figures.
    let now = time::OffsetDateTime::now_utc();
    let burning = l
        .burning(now, now + time::Duration::days(3660))
        .await
        .unwrap();
    assert!(
        burning
            .iter()
            .all(|b| b.amount > Decimal::ZERO && !b.expires_at.is_empty()),
        "{burning:?}"
    );
    let e = l.erase_account(account, "admin".into()).await.unwrap();
    assert!(e.newly);
    assert!(
        !l.erase_account(account, "admin".into())
            .await
            .unwrap()
            .newly
    );

    let called = central.called.lock().unwrap().clone();
    for m in wire::METHODS {
        assert!(called.iter().any(|c| c == m), "{m} was not called");
    }
}

#[tokio::test]
async fn refusals_keep_their_codes_and_pass_through_the_till_unchanged() {
    let central = mini_central(programme(), Settings::default()).await;
    let till = Central::new(
        endpoint(&central.url, KEY),
        programme(),
        Settings::default(),
    )
    .unwrap();
    let l: &dyn Ledger = &till;
    let e = l
        .refund(
            "k".into(),
            SaleRef::Receipt("nope".into()),
            None,
            None,
            None,
        )
        .await
        .unwrap_err();
    // The till's API maps it exactly as the embedded ledger's: no such sale.
    let rpc = errors::ledger_error(e);
    assert_eq!(rpc.code, 2006);
    let e = l
        .verify_secret("1234567890".into(), Secret::new("0000"))
        .await
        .unwrap_err();
    assert_eq!(account_code(e), 2001);
    let e = l
        .register(Registration {
            phone: Some("12ab".into()),
            ..Registration::default()
        })
        .await
        .unwrap_err();
    let rpc = errors::account_error(e);
    assert_eq!(
        (rpc.code, rpc.data),
        (-32602, Some(json!({ "field": "phone" })))
    );
    let e = l
        .evaluate_tiers(None, OffsetDateTime::now_utc())
        .await
        .err();
    assert!(e.is_none(), "this programme has tiers");

    // A wrong key: 401, the till's 1003.
    let stranger = Central::new(
        endpoint(&central.url, "wrong"),
        programme(),
        Settings::default(),
    )
    .unwrap();
    match stranger.resolve("1234".into()).await {
        Err(LedgerError::Remote(r)) => assert_eq!(remote_code(r), 1003),
        other => panic!("expected 1003, got {other:?}"),
    }
}

#[tokio::test]
async fn dispatch_names_bad_arguments_and_unknown_methods() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.sqlite3")).unwrap();
    let l = Local::new(store, programme(), Settings::default());
    let e = wire::dispatch(&l, "nope", json!({})).await.unwrap_err();
    assert_eq!((e.status, e.code), (404, -32601));
    let e = wire::dispatch(&l, "resolve", json!({})).await.unwrap_err();
    assert_eq!((e.status, e.code), (400, -32602));
    assert_eq!(e.data, json!({ "field": "number" }));
    let e = wire::dispatch(&l, "resolve", json!({"number": "1", "extra": 1}))
        .await
        .unwrap_err();
    assert_eq!(e.data, json!({ "field": "extra" }));
    let e = wire::dispatch(&l, "history", json!({"who": {"account": 1}, "limit": "x"}))
        .await
        .unwrap_err();
    assert_eq!(
        (e.status, e.data.clone()),
        (400, json!({ "field": "limit" }))
    );
    let e = wire::dispatch(&l, "commit", json!([1, 2]))
        .await
        .unwrap_err();
    assert_eq!(e.code, -32602);
    // Register -> commit -> history, by name.
    let r = wire::dispatch(
        &l,
        "accounts/register",
        json!({"r": {"phone": "+79161234567", "card_number": "6035000011112222"}}),
    )
    .await
    .unwrap();
    assert_eq!(r["status"], "active");
    assert!(r.get("pending").is_none());
    let c = wire::dispatch(
        &l,
        "commit",
        json!({"key": "k1", "number": "6035000011112222", "receipt_id": "R1",
               "lines": [{"sku": "A1", "name": "x", "category": "general", "qty": "1", "price": "200"}],
               "redeem": "0"}),
    )
    .await
    .unwrap();
    assert_eq!(c["accrued"], "10");
    let h = wire::dispatch(
        &l,
        "history",
        json!({"who": {"number": "6035000011112222"}, "cursor": null, "limit": 5}),
    )
    .await
    .unwrap();
    assert_eq!(h["transactions"][0]["kind"], "sale");
    // Groups list takes no arguments; `null` is as good as `{}`.
    let g = wire::dispatch(&l, "groups/list", Value::Null)
        .await
        .unwrap();
    assert_eq!(g, json!([]));
    assert_eq!(wire::programme(&l)["welcome_bonus"], "100");
    // A till's keys are its own: another terminal's replay of "k1" finds
    // nothing, the same terminal's finds its sale.
    let sale = json!({"key": "k2", "number": "6035000011112222", "receipt_id": "R2",
        "lines": [{"sku": "A1", "name": "x", "category": "general", "qty": "1", "price": "200"}],
        "redeem": "0"});
    wire::dispatch_as(&l, "till-1", "commit", sale.clone())
        .await
        .unwrap();
    let mut replay = sale.clone();
    replay.as_object_mut().unwrap().remove("number");
    let theirs = wire::dispatch_as(&l, "till-2", "replay_commit", replay.clone())
        .await
        .unwrap();
    assert_eq!(theirs, Value::Null);
    let mine = wire::dispatch_as(&l, "till-1", "replay_commit", replay)
        .await
        .unwrap();
    assert_eq!(mine[0], "6035000011112222");
}

#[tokio::test]
async fn the_lock_after_wrong_secrets_is_announced_once_through_the_wire() {
    let central = mini_central(programme(), Settings::default()).await;
    let till = Central::new(
        endpoint(&central.url, KEY),
        programme(),
        Settings::default(),
    )
    .unwrap();
    let l: &dyn Ledger = &till;
    let card = "6035000011113333";
    l.register(Registration {
        phone: Some("+79161234568".into()),
        card_number: Some(card.into()),
        secret: Some(Secret::new("4711")),
        ..Registration::default()
    })
    .await
    .unwrap();
    let mut just = Vec::new();
    for _ in 0..7 {
        match l.verify_secret(card.into(), Secret::new("0000")).await {
            Err(e) => {
                let rpc = errors::account_error(e);
                let data = rpc.data.unwrap_or_default();
                just.push((rpc.code, data["just_locked"] == true));
            }
            Ok(()) => panic!("a wrong secret passed"),
        }
    }
    let locked: Vec<_> = just.iter().filter(|(c, _)| *c == 2009).collect();
    assert_eq!(locked.len(), 3, "{just:?}");
    assert_eq!(just.iter().filter(|(_, j)| *j).count(), 1, "{just:?}");
    assert!(
        locked[0].1,
        "the first locked answer is the one that locked"
    );
}

#[tokio::test]
async fn a_closed_port_is_ledger_unreachable_quickly() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let till = Central::new(
        endpoint(&format!("http://127.0.0.1:{port}"), KEY),
        programme(),
        Settings::default(),
    )
    .unwrap();
    let t = Instant::now();
    let e = till.resolve("1234".into()).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let rpc = errors::ledger_error(e);
    assert_eq!(rpc.code, 2050);
    assert_eq!(rpc.data, Some(json!({ "retry": true })));
}

/// A server that accepts and never answers, counting connections.
async fn silent_server() -> (String, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(Mutex::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            *c.lock().unwrap() += 1;
            held.push(s);
        }
    });
    (url, count)
}

#[tokio::test]
async fn a_timed_out_write_without_a_key_is_sent_once_and_reads_are_retried() {
    let (url, count) = silent_server().await;
    let mut e = endpoint(&url, KEY);
    e.request_timeout = Duration::from_millis(300);
    let till = Central::new(e, programme(), Settings::default()).unwrap();
    let err = till
        .register(Registration {
            phone: Some("+79161234567".into()),
            ..Registration::default()
        })
        .await
        .unwrap_err();
    assert_eq!(errors::account_error(err).code, 2050);
    assert_eq!(*count.lock().unwrap(), 1);
    let err = till.resolve("1234".into()).await.unwrap_err();
    assert_eq!(errors::ledger_error(err).code, 2050);
    assert_eq!(*count.lock().unwrap(), 4, "a read is tried three times");
    // A keyed write is retried too: the key makes a repeat harmless.
    let _ = till
        .commit(
            "k".into(),
            "1234".into(),
            "R".into(),
            lines(1),
            Decimal::ZERO,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(*count.lock().unwrap(), 7);
}

#[tokio::test]
async fn a_till_in_central_mode_serves_the_pos_from_the_central_ledger() {
    let central = mini_central(programme(), Settings::default()).await;
    let keydir = tempfile::tempdir().unwrap();
    let key_file = keydir.path().join("central.key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let rest = format!(
        "[ledger]\nbackend = \"central\"\n[ledger.central]\nurl = \"{}\"\nterminal = \"{TERMINAL}\"\n\
         key_file = \"{}\"\n{PROGRAMME}",
        central.url,
        key_file.display()
    );
    let d = common::Daemon::start("", &rest);
    let mut c = d.client().await;
    let r = c
        .call(
            "account.register",
            json!({"phone": "+79161234567", "card_number": "6035000011112222", "secret": "4711"}),
        )
        .await
        .unwrap();
    assert_eq!(r["welcome_bonus"], "100");
    let s = c
        .call(
            "sale.commit",
            json!({"idempotency_key": "s1", "number": "6035000011112222", "receipt_id": "R1",
                   "lines": [{"sku": "A1", "name": "x", "category": "general", "qty": "1", "price": "1000"}]}),
        )
        .await
        .unwrap();
    assert_eq!(s["accrued"], "50");
    let resolved = c
        .call("card.resolve", json!({"number": "6035000011112222"}))
        .await
        .unwrap();
    assert_eq!(resolved["account"]["balance"], "150");
    let g = c
        .call("account.get", json!({"card_number": "6035000011112222"}))
        .await
        .unwrap();
    // The sale itself promoted: spend 1000 within 30 days.
    assert_eq!(g["tier"], "Silver");
    let called = central.called.lock().unwrap().clone();
    assert!(
        called.contains(&"accounts/register".to_owned()),
        "{called:?}"
    );
    assert!(called.contains(&"commit".to_owned()), "{called:?}");
    assert!(d.log().contains("the same programme"), "{}", d.log());
    assert!(
        d.log()
            .contains("the daily tier job runs on the central service"),
        "{}",
        d.log()
    );
}

#[tokio::test]
async fn a_till_whose_central_ledger_is_down_answers_2050() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let keydir = tempfile::tempdir().unwrap();
    let key_file = keydir.path().join("central.key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let rest = format!(
        "[ledger]\nbackend = \"central\"\n[ledger.central]\nurl = \"http://127.0.0.1:{port}\"\n\
         terminal = \"{TERMINAL}\"\nkey_file = \"{}\"\nconnect_timeout_ms = 200\n",
        key_file.display()
    );
    let d = common::Daemon::start("", &rest);
    let mut c = d.client().await;
    match c
        .call("card.resolve", json!({"number": "6035000011112222"}))
        .await
    {
        Err(posbridge::client::ClientError::Rpc { error }) => {
            assert_eq!(error["code"], 2050);
            assert_eq!(error["data"]["retry"], true);
        }
        other => panic!("expected 2050, got {other:?}"),
    }
}

/// A sale for an account spending with a one-time code, on the books
/// directly and through the wire: a wrong code is counted and refused
/// without a sale; a right code with a sale the rules refuse rolls back
/// both (the code stays usable, the try uncounted); a right code commits
/// the sale and consumes the code in one call; a repeat of the key is the
/// stored sale without a code.
#[tokio::test]
async fn a_code_is_checked_consumed_and_spent_in_the_sale_s_own_transaction() {
    let s = Settings {
        redeem_code: Some(code_settings()),
        ..Settings::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let local = Local::new(
        Store::open(&dir.path().join("l.sqlite3")).unwrap(),
        programme(),
        s.clone(),
    );
    let central = mini_central(programme(), s.clone()).await;
    let remote = Central::new(endpoint(&central.url, KEY), programme(), s).unwrap();
    for (name, l) in [("local", &local as &dyn Ledger), ("wire", &remote)] {
        let card = "6035000011113333";
        let account = l
            .register(Registration {
                phone: Some("+79161230000".into()),
                card_number: Some(card.into()),
                ..Registration::default()
            })
            .await
            .unwrap()
            .account;
        l.commit(
            "seed".into(),
            card.into(),
            "R0".into(),
            lines(1000),
            Decimal::ZERO,
            None,
        )
        .await
        .unwrap();
        let balance = l.resolve(card.into()).await.unwrap().unwrap().balance;
        let good = l.new_redeem_code(account).await.unwrap().code;
        let wrong = Secret::new(if good.expose() == "000000" {
            "111111"
        } else {
            "000000"
        });
        let spend = |code: &Secret, redeem: i64| {
            l.commit_with_code(
                "k1".into(),
                account,
                code.clone(),
                "R1".into(),
                lines(200),
                Decimal::from(redeem),
                None,
                OrderTerms::default(),
            )
        };
        let code_of = |e: SpendError| match e {
            SpendError::Account(AccountError::Remote(e)) => remote_code(e),
            SpendError::Account(e) => errors::account_error(e).code,
            SpendError::Ledger(LedgerError::Remote(e)) => remote_code(e),
            SpendError::Ledger(e) => errors::ledger_error(e).code,
        };
        // Wrong: counted, no sale.
        let e = spend(&wrong, 5).await.unwrap_err();
        assert_eq!(code_of(e), 2024, "{name}");
        assert_eq!(
            l.resolve(card.into()).await.unwrap().unwrap().balance,
            balance,
            "{name}"
        );
        // Right, but over the cap: nothing happens, not even the count.
        let e = spend(&good, 190).await.unwrap_err();
        assert_eq!(code_of(e), 2003, "{name}");
        // The second wrong try is the second counted: 3 of 5 left.
        match spend(&wrong, 5).await.unwrap_err() {
            SpendError::Account(AccountError::WrongCode { attempts_left }) => {
                assert_eq!(attempts_left, 3, "{name}")
            }
            SpendError::Ledger(LedgerError::Remote(RemoteError::Remote { code, data, .. })) => {
                assert_eq!(
                    (code, data["attempts_left"].clone()),
                    (2024, json!(3)),
                    "{name}"
                )
            }
            e => panic!("{name}: {e:?}"),
        }
        // Right: the sale under the key the refusals did not use up.
        let (number, r) = spend(&good, 5).await.unwrap();
        assert_eq!(
            (number.as_str(), r.redeemed),
            (card, Decimal::from(5)),
            "{name}"
        );
        assert_eq!(r.balance_before, balance, "{name}");
        // A repeat needs no code (any will do) and changes nothing.
        let (_, again) = spend(&wrong, 5).await.unwrap();
        assert_eq!(
            (again.transaction, again.replayed),
            (r.transaction, true),
            "{name}"
        );
        // The code paid for that sale only.
        let e = l
            .commit_with_code(
                "k2".into(),
                account,
                good.clone(),
                "R2".into(),
                lines(200),
                Decimal::from(5),
                None,
                OrderTerms::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(code_of(e), 2032, "{name}");
    }
    let called = central.called.lock().unwrap().clone();
    assert!(
        called.contains(&"commit_with_code".to_owned()),
        "{called:?}"
    );
    assert!(
        !called.contains(&"accounts/use_redeem_code".to_owned()),
        "{called:?}"
    );
}
