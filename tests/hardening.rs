//! Issue #14, items 1–2 against the real daemon: memory stays bounded
//! however many secret checks clients start (argon2 runs behind one gate,
//! the rest wait or are answered busy), and a lockout is a lockout however
//! guesses arrive (pipelined on one connection, concurrent over many, Unix
//! socket and TCP) for card secrets, code words, redemption and
//! confirmation codes.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use common::{CASHIER_TOKEN, Daemon, TcpTokens, logged_code};
use posbridge::client::{Client, ClientError};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const PROGRAMME: &str = "[ledger.programme]\nwelcome_bonus = \"100\"\n";

/// Sends `lines` in one write on a fresh Unix connection (so the daemon
/// reads them as one pipelined burst) and returns the replies by id.
async fn pipeline(socket: &Path, lines: &[String]) -> HashMap<i64, Value> {
    let s = tokio::net::UnixStream::connect(socket).await.unwrap();
    let (rd, mut wr) = tokio::io::split(s);
    let mut burst = lines.join("\n");
    burst.push('\n');
    wr.write_all(burst.as_bytes()).await.unwrap();
    let mut rd = BufReader::new(rd);
    let mut out = HashMap::new();
    while out.len() < lines.len() {
        let mut line = String::new();
        // Generous: a call waits at most the queue timeout (5 s) plus one
        // hash; a missing reply is a failure, not a hang.
        let n = tokio::time::timeout(Duration::from_secs(60), rd.read_line(&mut line))
            .await
            .expect("a reply within 60 s")
            .unwrap();
        assert!(n > 0, "connection closed with {} replies", out.len());
        let v: Value = serde_json::from_str(&line).unwrap();
        let id = v["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("reply without id: {v}"));
        assert!(out.insert(id, v).is_none(), "two replies for {id}");
    }
    out
}

/// `"ok"` or the error code of a reply.
fn outcome(reply: &Value) -> String {
    match reply.get("error") {
        Some(e) => e["code"].as_i64().unwrap().to_string(),
        None => "ok".into(),
    }
}

fn code_of(r: Result<Value, ClientError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(ClientError::Rpc { error }) => error["code"].as_i64().unwrap().to_string(),
        Err(e) => panic!("{e}"),
    }
}

fn tally<'a>(outcomes: impl IntoIterator<Item = &'a str>) -> HashMap<String, usize> {
    let mut t = HashMap::new();
    for o in outcomes {
        *t.entry(o.to_owned()).or_insert(0) += 1;
    }
    t
}

fn tally_replies(replies: &HashMap<i64, Value>) -> HashMap<String, usize> {
    let outcomes: Vec<String> = replies.values().map(outcome).collect();
    tally(outcomes.iter().map(String::as_str))
}

fn commit_line(id: usize, token: &Value) -> String {
    let key = format!("k{id}");
    json!({"jsonrpc": "2.0", "id": id, "method": "sale.commit", "params": {
        "idempotency_key": key, "card_token": token, "receipt_id": key,
        "lines": [{"sku": "1", "name": "x", "category": "g", "qty": "1", "price": "1000"}],
        "redeem": "1"}})
    .to_string()
}

async fn register(c: &mut Client, i: usize, number: &str) {
    c.call(
        "account.register",
        json!({"email": format!("c{i}@example.ru"), "card_number": number, "secret": "4711"}),
    )
    .await
    .unwrap();
}

async fn token(c: &mut Client, number: &str, secret: &str) -> Value {
    c.call("card.enter", json!({"number": number, "secret": secret}))
        .await
        .unwrap()["card_token"]
        .clone()
}

/// How many guesses the daemon really evaluated (argon2 checks; it logs
/// each at debug level), once the log has settled.
async fn checks(d: &Daemon) -> usize {
    let mut last = usize::MAX;
    loop {
        let n = d.log().matches("argon2 check of a guess").count();
        if n == last {
            return n;
        }
        last = n;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The daemon's peak resident memory so far, in KiB.
fn vm_hwm_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Counts `card.locked` events until none comes for a second.
async fn locked_events(events: &mut Client) -> usize {
    let mut n = 0;
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_secs(1), events.next_notification()).await
    {
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_redemptions_stay_under_150_mb_and_all_get_answers() {
    // Default gate: 2 argon2 runs at once, 5 s queue timeout.
    let d = Daemon::start("", PROGRAMME);
    let mut c = d.client().await;
    // Twenty cards: ten redeemed with the right secret, ten guessed at.
    let mut tokens = Vec::new();
    for i in 0..20 {
        let number = format!("60351000{i:08}");
        register(&mut c, i, &number).await;
        let secret = if i < 10 { "4711" } else { "0000" };
        tokens.push(token(&mut c, &number, secret).await);
    }
    // 40 connections × 25 pipelined commits = 1,000 calls in flight.
    let mut conns = Vec::new();
    for conn in 0..40 {
        let lines: Vec<String> = (0..25)
            .map(|j| {
                let id = conn * 25 + j;
                commit_line(id, &tokens[id % 20])
            })
            .collect();
        let socket = d.socket.clone();
        conns.push(tokio::spawn(async move { pipeline(&socket, &lines).await }));
    }
    let mut replies = HashMap::new();
    for c in conns {
        replies.extend(c.await.unwrap());
    }
    assert_eq!(replies.len(), 1000, "every call answered");
    let t = tally_replies(&replies);
    // Success, wrong secret, locked, busy, or over the balance (100
    // points at 1 a sale); nothing else, no internal errors.
    for k in t.keys() {
        assert!(
            ["ok", "2008", "2009", "1006", "2003"].contains(&k.as_str()),
            "unexpected outcome {k}: {t:?}"
        );
    }
    // The guessed cards lock: 5 checked each, at most.
    assert!(t.get("2008").copied().unwrap_or(0) <= 10 * 4, "{t:?}");
    let hwm = vm_hwm_kib(d.pid());
    eprintln!("1,000 redemptions: {t:?}; daemon VmHWM {} KiB", hwm);
    assert!(hwm < 150 * 1024, "peak RSS {hwm} KiB");
}

#[tokio::test]
async fn a_full_gate_answers_busy_and_counts_nothing() {
    // One run at a time and a 10 ms wait: concurrent checks must queue
    // past it (an argon2id run takes longer than that).
    let d = Daemon::start(
        "",
        &format!("[ledger]\nhash_concurrency = 1\nhash_queue_timeout_ms = 10\n{PROGRAMME}"),
    );
    let mut c = d.client().await;
    let mut lines = Vec::new();
    for i in 0..8 {
        let number = format!("60352000{i:08}");
        register(&mut c, i, &number).await;
        let t = token(&mut c, &number, "0000").await;
        lines.push(commit_line(i, &t));
    }
    let replies = pipeline(&d.socket, &lines).await;
    let t = tally_replies(&replies);
    assert!(t.get("1006").copied().unwrap_or(0) >= 1, "{t:?}");
    let busy = replies.values().find(|r| outcome(r) == "1006").unwrap();
    assert_eq!(busy["error"]["data"]["retry"], true);
    // A busy answer counted no guess: that card still has 4 tries left
    // after one wrong secret checked now.
    let id = busy["id"].as_i64().unwrap();
    let number = format!("60352000{id:08}");
    let t = token(&mut c, &number, "0000").await;
    let mut again = None;
    for _ in 0..100 {
        let r = pipeline(&d.socket, &[commit_line(100, &t)]).await;
        let r = r[&100].clone();
        if outcome(&r) != "1006" {
            again = Some(r);
            break;
        }
    }
    let r = again.expect("a check got its turn");
    assert_eq!(outcome(&r), "2008", "{r}");
    assert_eq!(r["error"]["data"]["attempts_left"], 4);
}

#[tokio::test]
async fn pipelined_wrong_secrets_get_five_checks_and_the_right_one_is_refused() {
    let d = Daemon::start("", PROGRAMME);
    let mut c = d.client().await;
    let number = "6035300000000001";
    register(&mut c, 0, number).await;
    let mut events = d.client().await;
    events
        .call("events.subscribe", json!({"topics": ["card.locked"]}))
        .await
        .unwrap();
    let wrong = token(&mut c, number, "0000").await;
    let right = token(&mut c, number, "4711").await;
    let mut lines: Vec<String> = (0..100).map(|i| commit_line(i, &wrong)).collect();
    lines.push(commit_line(100, &right));
    let replies = pipeline(&d.socket, &lines).await;
    let t = tally_replies(&replies);
    eprintln!("pipelined 100 wrong + 1 right: {t:?}");
    // Four wrong answers, the fifth locks; everything after, the right
    // secret included, is refused unchecked.
    assert_eq!(t.get("2008"), Some(&4), "{t:?}");
    assert_eq!(t.get("2009"), Some(&97), "{t:?}");
    assert_eq!(outcome(&replies[&100]), "2009");
    assert_eq!(locked_events(&mut events).await, 1);
    assert_eq!(checks(&d).await, 5, "evaluated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_guesses_over_many_unix_and_tcp_connections_get_five_checks() {
    let tcp = TcpTokens::new();
    let d = Daemon::start(&tcp.daemon_extra, PROGRAMME);
    let mut c = d.client().await;
    let number = "6035400000000001";
    register(&mut c, 0, number).await;
    let mut events = d.client().await;
    events
        .call("events.subscribe", json!({"topics": ["card.locked"]}))
        .await
        .unwrap();
    let wrong = token(&mut c, number, "0000").await;
    let right = token(&mut c, number, "4711").await;
    // 101 connections, half over TCP, each sending one guess at once.
    let mut clients = Vec::new();
    for i in 0..101 {
        clients.push(if i % 2 == 0 {
            tcp.login(CASHIER_TOKEN).await
        } else {
            d.client().await
        });
    }
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(101));
    let mut calls = Vec::new();
    for (i, mut client) in clients.into_iter().enumerate() {
        let t = if i == 100 {
            right.clone()
        } else {
            wrong.clone()
        };
        let start = start.clone();
        calls.push(tokio::spawn(async move {
            start.wait().await;
            let key = format!("m{i}");
            code_of(
                client
                    .call(
                        "sale.commit",
                        json!({"idempotency_key": key, "card_token": t, "receipt_id": key,
                        "lines": [{"sku": "1", "name": "x", "category": "g", "qty": "1", "price": "1000"}],
                        "redeem": "1"}),
                    )
                    .await,
            )
        }));
    }
    let mut outcomes = Vec::new();
    for c in calls {
        outcomes.push(c.await.unwrap());
    }
    let right_outcome = outcomes[100].clone();
    let t = tally(outcomes.iter().map(String::as_str));
    eprintln!("concurrent 100 wrong + 1 right over 101 connections: {t:?}");
    assert_eq!(locked_events(&mut events).await, 1, "{t:?}");
    let wrong_checked = t.get("2008").copied().unwrap_or(0);
    if right_outcome == "ok" {
        // The right secret came among the first five checked and reset the
        // count; five more wrong ones locked the card.
        assert!((4..=8).contains(&wrong_checked), "{t:?}");
    } else {
        assert_eq!(right_outcome, "2009");
        assert_eq!(wrong_checked, 4, "{t:?}");
    }
    assert_eq!(
        t.len(),
        t.keys()
            .filter(|k| ["ok", "2008", "2009"].contains(&k.as_str()))
            .count(),
        "{t:?}"
    );
    // Locked now: the right secret is refused.
    let right = token(&mut c, number, "4711").await;
    let r = pipeline(&d.socket, &[commit_line(500, &right)]).await;
    assert_eq!(outcome(&r[&500]), "2009");
    let right_checked = usize::from(right_outcome == "ok");
    assert_eq!(
        checks(&d).await,
        wrong_checked + 1 + right_checked,
        "evaluated"
    );
}

#[tokio::test]
async fn code_words_lock_after_five_however_they_are_pipelined() {
    let d = Daemon::start("", PROGRAMME);
    let mut c = d.client().await;
    let r = c
        .call(
            "account.register",
            json!({"email": "w@example.ru", "virtual": true, "code_word": "ромашка"}),
        )
        .await
        .unwrap();
    let account = r["account"].as_i64().unwrap();
    let line = |id: usize, word: &str| {
        json!({"jsonrpc": "2.0", "id": id, "method": "account.verify_code_word",
               "params": {"account": account, "code_word": word}})
        .to_string()
    };
    let mut lines: Vec<String> = (0..100).map(|i| line(i, "лютик")).collect();
    lines.push(line(100, "ромашка"));
    let replies = pipeline(&d.socket, &lines).await;
    let t = tally_replies(&replies);
    eprintln!("code words, pipelined 100 wrong + 1 right: {t:?}");
    assert_eq!(t.get("ok"), Some(&4), "four wrong words answered: {t:?}");
    assert!(replies.values().all(|r| r["result"]["matches"] != true));
    assert_eq!(t.get("2030"), Some(&97), "{t:?}");
    assert_eq!(outcome(&replies[&100]), "2030");
    assert_eq!(checks(&d).await, 5, "evaluated");
}

#[tokio::test]
async fn redemption_codes_void_after_the_limit_however_they_are_pipelined() {
    let d = Daemon::start(
        "",
        &format!("{PROGRAMME}[ledger.redemption]\nby_code = true\nmax_attempts = 5\n"),
    );
    let mut c = d.client().await;
    let r = c
        .call(
            "account.register",
            json!({"phone": "+79160000101", "virtual": true}),
        )
        .await
        .unwrap();
    let account = r["account"].as_i64().unwrap();
    c.call("sale.redeem_code.send", json!({"account": account}))
        .await
        .unwrap();
    let good = logged_code(&d, account);
    let wrong = if good == "0000" { "1111" } else { "0000" };
    let line = |id: usize, code: &str| {
        let key = format!("r{id}");
        json!({"jsonrpc": "2.0", "id": id, "method": "sale.commit", "params": {
            "idempotency_key": key, "account": account, "redeem_code": code, "receipt_id": key,
            "lines": [{"sku": "1", "name": "x", "category": "g", "qty": "1", "price": "1000"}],
            "redeem": "1"}})
        .to_string()
    };
    let mut lines: Vec<String> = (0..100).map(|i| line(i, wrong)).collect();
    lines.push(line(100, &good));
    let replies = pipeline(&d.socket, &lines).await;
    let t = tally_replies(&replies);
    eprintln!("redemption codes, pipelined 100 wrong + 1 right: {t:?}");
    // Four wrong answers; the fifth voids the code; the rest and the right
    // code are refused.
    assert_eq!(t.get("2024"), Some(&4), "{t:?}");
    assert_eq!(t.get("2026"), Some(&97), "{t:?}");
    assert_eq!(outcome(&replies[&100]), "2026");
    assert_eq!(checks(&d).await, 5, "evaluated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn confirmation_codes_void_after_the_limit_under_concurrent_guesses() {
    let d = Daemon::start(
        "",
        &format!("{PROGRAMME}[ledger.registration]\nconfirmation = \"code\"\nmax_attempts = 5\n"),
    );
    let mut c = d.client().await;
    let r = c
        .call("account.register", json!({"phone": "+79160000102"}))
        .await
        .unwrap();
    let account = r["account"].as_i64().unwrap();
    let good = logged_code(&d, account);
    let wrong = if good == "000000" { "111111" } else { "000000" };
    assert_eq!(r["status"], "pending", "{r}");
    // One wrong code first, checked alone: four tries are left.
    let first = c
        .call(
            "account.activate",
            json!({"account": account, "code": wrong}),
        )
        .await;
    assert_eq!(code_of(first), "2024");
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(101));
    let mut calls = Vec::new();
    for i in 0..101 {
        let mut client = d.client().await;
        let code = if i == 100 {
            good.clone()
        } else {
            wrong.to_owned()
        };
        let start = start.clone();
        calls.push(tokio::spawn(async move {
            start.wait().await;
            code_of(
                client
                    .call(
                        "account.activate",
                        json!({"account": account, "code": code}),
                    )
                    .await,
            )
        }));
    }
    let mut outcomes = Vec::new();
    for c in calls {
        outcomes.push(c.await.unwrap());
    }
    let t = tally(outcomes.iter().map(String::as_str));
    eprintln!("confirmation codes, concurrent 100 wrong + 1 right: {t:?}");
    let wrong_checked = t.get("2024").copied().unwrap_or(0);
    if outcomes[100] == "ok" {
        // Right among the four tries left: activated; later guesses find
        // the account active (the same answer as the activation).
        assert!(wrong_checked <= 3, "{t:?}");
        assert_eq!(checks(&d).await, 1 + wrong_checked + 1, "evaluated");
    } else {
        // Three more wrong answers, the fourth voids the code; the rest,
        // the right code included, are refused unchecked.
        assert_eq!(outcomes[100], "2026");
        assert_eq!(wrong_checked, 3, "{t:?}");
        assert_eq!(t.get("2026"), Some(&98), "{t:?}");
        assert_eq!(checks(&d).await, 1 + 4, "evaluated");
    }
}
