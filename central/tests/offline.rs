//! Offline tills, all real: till daemons in central mode, `posbridge-central`
//! instances and a throwaway PostgreSQL, with the link cut by a loopback
//! proxy the test controls ([`support::netfault`]) or by killing the
//! service. After each cut: every sale's points are earned exactly once, no
//! point is spent twice, `verify` is clean.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::netfault::{Mode, Proxy};
use support::{Chain, Till, code, lines};

const CARD: &str = "6035000011112222";
const OTHER: &str = "6035000033334444";

/// Short timeouts so a cut is noticed at once, a quick replay once it
/// heals; `extra` is more of `[ledger.offline]`.
fn offline(extra: &str) -> String {
    format!(
        "connect_timeout_ms = 300\nrequest_timeout_ms = 1000\n\n[ledger.offline]\n\
         heartbeat_secs = 5\nretry_max_ms = 300\n{extra}\n"
    )
}

fn upstream(chain: &Chain) -> std::net::SocketAddr {
    chain.centrals[0]
        .url
        .trim_start_matches("http://")
        .parse()
        .unwrap()
}

async fn call(t: &Till, method: &str, params: Value) -> Value {
    let mut c = t.client().await;
    c.call(method, params)
        .await
        .unwrap_or_else(|e| panic!("{method}: {e:?}\n{}", t.log()))
}

async fn register(t: &Till, card: &str, phone: &str) -> i64 {
    let r = call(
        t,
        "account.register",
        json!({"phone": phone, "name": "Мария", "card_number": card, "secret": "4711"}),
    )
    .await;
    // The till keeps a copy of what it resolved, for offline use.
    call(t, "card.resolve", json!({"number": card})).await;
    r["account"].as_i64().unwrap()
}

/// A card token from the card and its secret: what spending needs. Online
/// the till keeps the secret's hash for offline checks.
async fn token(t: &Till, card: &str, secret: &str) -> Result<String, (i64, Value)> {
    let r = t
        .client()
        .await
        .call("card.enter", json!({"number": card, "secret": secret}))
        .await;
    match r {
        Ok(v) => Ok(v["card_token"].as_str().unwrap().to_owned()),
        Err(_) => Err(code(r)),
    }
}

fn spend(key: &str, token: &str, receipt: &str, total: u32, redeem: &str) -> Value {
    json!({"idempotency_key": key, "card_token": token, "receipt_id": receipt,
           "lines": lines(total), "redeem": redeem})
}

async fn balance(t: &Till, card: &str) -> String {
    let r = call(t, "card.resolve", json!({"number": card})).await;
    r["account"]["balance"].as_str().unwrap().to_owned()
}

fn sale(key: &str, card: &str, receipt: &str, total: u32, redeem: &str) -> Value {
    json!({"idempotency_key": key, "number": card, "receipt_id": receipt,
           "lines": lines(total), "redeem": redeem})
}

async fn status(t: &Till) -> Value {
    call(t, "ledger.sync.status", json!({})).await
}

/// Waits until the till's outbox holds nothing waiting.
async fn drained(t: &Till) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(t).await;
        if s["queued"] == 0 && s["link"] == "online" {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "outbox not drained: {s}\n{}",
            t.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `posbridge ledger verify` on the till's own file (its books and its
/// outbox), while it runs.
fn verify_till(t: &Till) {
    let out = std::process::Command::new(support::till_bin())
        .arg("--config")
        .arg(&t.config)
        .args(["ledger", "verify"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "till verify failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The kinds of an account's transactions at the central ledger, with
/// their receipts, oldest first.
async fn history(t: &Till, card: &str) -> Vec<(String, Value, String)> {
    let h = call(t, "account.history", json!({"number": card, "limit": 500})).await;
    let mut v: Vec<_> = h["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["kind"].as_str().unwrap().to_owned(),
                x["receipt_id"].clone(),
                x["created_at"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    v.reverse();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sales_and_returns_during_an_outage_are_booked_once_at_their_own_time() {
    let chain = Chain::start(1, support::PROGRAMME);
    let proxy = Proxy::start(upstream(&chain));
    let t = chain.till_via("T-A", "S1", &proxy.url(), &offline(""));
    register(&t, CARD, "+79161234567").await;
    call(&t, "sale.commit", sale("k0", CARD, "R0", 1000, "0")).await;
    assert_eq!(balance(&t, CARD).await, "50");
    // Spending online: the central ledger checks the secret, the till
    // keeps its hash. 1 of 100 spent, 99 paid: 4 points.
    let tok = token(&t, CARD, "4711").await.unwrap();
    call(&t, "sale.commit", spend("k0b", &tok, "R0b", 100, "1")).await;

    proxy.set(Mode::Refuse);
    let mut events = t.client().await;
    events
        .call(
            "events.subscribe",
            json!({"topics": ["ledger.sync", "ledger.transaction"]}),
        )
        .await
        .unwrap();
    let r1 = call(&t, "sale.commit", sale("k1", CARD, "R1", 1000, "0")).await;
    let pending = r1["pending"].clone();
    assert!(pending["at"].is_string(), "{r1}");
    assert_eq!(r1["accrued"], "50");
    assert_eq!(r1["transaction"], 0);
    // The receipt says the points will come, and no balance after.
    let lines_text = r1["bonus_lines"].to_string();
    assert!(lines_text.contains("Начисление будет зачислено"), "{r1}");
    assert!(!lines_text.contains("Баланс после"), "{r1}");
    // The balance as of the last contact.
    let seen = call(&t, "card.resolve", json!({"number": CARD})).await;
    assert_eq!(seen["account"]["balance"], "53");
    assert!(seen["account"]["as_of"].is_string(), "{seen}");
    // A retry of the key while offline is the same answer, queued once.
    let again = call(&t, "sale.commit", sale("k1", CARD, "R1", 1000, "0")).await;
    assert_eq!(again["pending"], pending);
    call(&t, "sale.commit", sale("k2", CARD, "R2", 400, "0")).await;
    // A return of a sale made during the outage, and one of before.
    let back = call(
        &t,
        "sale.refund",
        json!({"idempotency_key": "f1", "receipt_id": "R2"}),
    )
    .await;
    assert!(back["pending"].is_object(), "{back}");
    call(
        &t,
        "sale.refund",
        json!({"idempotency_key": "f0", "receipt_id": "R0", "amount": "500"}),
    )
    .await;
    // The secret is checked offline against the one the central ledger
    // accepted before; a wrong one is refused.
    let wrong = token(&t, CARD, "0000").await.unwrap();
    let (c, data) = code(
        t.client()
            .await
            .call("sale.commit", spend("k4", &wrong, "R4", 100, "10"))
            .await,
    );
    assert_eq!(c, 2008, "{data}");
    // Spending offline: refused by default, with its own code.
    let (c, data) = code(
        t.client()
            .await
            .call("sale.commit", spend("k3", &tok, "R3", 100, "10"))
            .await,
    );
    assert_eq!(c, 2051, "{data}");
    let s = status(&t).await;
    assert_eq!(
        (s["link"].clone(), s["queued"].clone()),
        (json!("offline"), json!(4)),
        "{s}"
    );

    // The POS saw the outbox grow.
    let mut saw_depth = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !saw_depth && Instant::now() < deadline {
        if let Ok(Ok(ev)) =
            tokio::time::timeout(Duration::from_secs(5), events.next_notification()).await
        {
            saw_depth |= ev["params"]["topic"] == "ledger.sync" && ev["params"]["queued"] == 4;
        }
    }
    assert!(saw_depth, "no ledger.sync event with the queue's depth");

    // Sold at least a second before the link is back: the booking keeps
    // the sale's time, not the replay's.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    proxy.set(Mode::Pass);
    let s = drained(&t).await;
    assert!(s["last_success"].is_string(), "{s}");
    // 50 + 3 (R0b) + 50 (R1) + 20 (R2) - 20 (R2 back) - 25 (half of R0
    // back).
    assert_eq!(balance(&t, CARD).await, "78");
    let h = history(&t, CARD).await;
    let sales: Vec<_> = h.iter().filter(|x| x.0 == "sale").collect();
    assert_eq!(sales.len(), 4, "{h:?}");
    let r1_booked = h.iter().find(|x| x.1 == "R1").unwrap();
    assert_eq!(json!(r1_booked.2), pending["at"], "{h:?}");
    // After the replay a retry of the key gets the central ledger's own
    // booking.
    let after = call(&t, "sale.commit", sale("k1", CARD, "R1", 1000, "0")).await;
    assert!(after["transaction"].as_i64().unwrap() > 0, "{after}");
    assert!(after.get("pending").is_none(), "{after}");
    chain.verify();
    verify_till(&t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_half_open_link_and_a_lost_answer_earn_exactly_once() {
    let chain = Chain::start(1, support::PROGRAMME);
    let proxy = Proxy::start(upstream(&chain));
    let t = chain.till_via("T-A", "S1", &proxy.url(), &offline(""));
    register(&t, CARD, "+79161234567").await;

    // The central ledger books the sale, the answer never arrives (each
    // retry too): the till queues it; the replay finds the key booked.
    proxy.set(Mode::ResetAfterRequest);
    let r = call(&t, "sale.commit", sale("k1", CARD, "R1", 1000, "0")).await;
    assert!(r["pending"].is_object(), "{r}");
    assert!(proxy.lost_responses() >= 1);
    // Half-open: the request is swallowed; the till's timeout decides.
    proxy.set(Mode::Blackhole);
    proxy.cut_all();
    let r = call(&t, "sale.commit", sale("k2", CARD, "R2", 200, "0")).await;
    assert!(r["pending"].is_object(), "{r}");
    // Slow but answering: online again.
    proxy.set(Mode::Delay(Duration::from_millis(50)));
    proxy.cut_all();
    drained(&t).await;
    // 1000 and 200 at 5 %: 50 + 10, once each.
    assert_eq!(balance(&t, CARD).await, "60");
    let sales = history(&t, CARD)
        .await
        .into_iter()
        .filter(|x| x.0 == "sale")
        .count();
    assert_eq!(sales, 2);
    chain.verify();
    verify_till(&t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_till_killed_with_a_full_outbox_and_a_service_killed_mid_replay_lose_nothing() {
    let mut chain = Chain::start(1, support::PROGRAMME);
    let proxy = Proxy::start(upstream(&chain));
    let mut t = chain.till_via("T-A", "S1", &proxy.url(), &offline(""));
    register(&t, CARD, "+79161234567").await;
    proxy.set(Mode::Refuse);
    let n = 40;
    let mut c = t.client().await;
    for i in 0..n {
        let r = c
            .call(
                "sale.commit",
                sale(&format!("k{i}"), CARD, &format!("R{i}"), 100, "0"),
            )
            .await
            .unwrap();
        assert!(r["pending"].is_object());
    }
    drop(c);
    // Every answered sale was on disk: kill -9 loses none.
    t.kill9();
    t.restart();
    assert_eq!(status(&t).await["queued"], n);

    // The link heals and the service dies during the replay.
    proxy.set(Mode::Delay(Duration::from_millis(20)));
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(&t).await["queued"].as_u64().unwrap() >= n as u64 - 2 {
        assert!(
            Instant::now() < deadline,
            "replay did not start\n{}",
            t.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    chain.centrals[0].kill9();
    let left = status(&t).await["queued"].as_u64().unwrap();
    assert!(
        left > 0,
        "the replay finished before the kill; slow it down"
    );
    chain.centrals[0].spawn();
    proxy.set(Mode::Pass);
    drained(&t).await;
    // 40 sales of 100 at 5 %: 5 each, once.
    assert_eq!(balance(&t, CARD).await, "200");
    chain.verify();
    verify_till(&t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refusals_go_to_the_dead_letter_list_and_do_not_block_the_queue() {
    let chain = Chain::start(1, support::PROGRAMME);
    let proxy = Proxy::start(upstream(&chain));
    let t = chain.till_via("T-A", "S1", &proxy.url(), &offline(""));
    let admin = chain.till("T-B", "S2", 0);
    register(&t, CARD, "+79161234567").await;
    register(&t, OTHER, "+79161234568").await;
    proxy.set(Mode::Refuse);
    call(&t, "sale.commit", sale("k1", CARD, "R1", 1000, "0")).await;
    // A return of a sale the central ledger never saw.
    call(
        &t,
        "sale.refund",
        json!({"idempotency_key": "f9", "receipt_id": "NO-SUCH"}),
    )
    .await;
    call(&t, "sale.commit", sale("k2", OTHER, "R2", 1000, "0")).await;
    // Meanwhile the card is blocked at another store.
    call(&admin, "card.block", json!({"number": CARD})).await;

    let mut events = t.client().await;
    events
        .call(
            "events.subscribe",
            json!({"topics": ["ledger.sync.failed"]}),
        )
        .await
        .unwrap();
    proxy.set(Mode::Pass);
    let s = drained(&t).await;
    assert_eq!(s["failed"], 2, "{s}");
    let ev = tokio::time::timeout(Duration::from_secs(10), events.next_notification())
        .await
        .expect("a ledger.sync.failed event")
        .unwrap();
    assert_eq!(ev["params"]["topic"], "ledger.sync.failed", "{ev}");
    // The queue went on: the other card's sale is booked.
    assert_eq!(balance(&admin, OTHER).await, "50");
    let failed = call(&t, "ledger.sync.failed", json!({})).await;
    let items = failed["items"].as_array().unwrap();
    let codes: Vec<_> = items.iter().map(|i| i["code"].as_i64().unwrap()).collect();
    assert_eq!(codes, [2002, 2006], "{failed}");
    // The card is unblocked: the operator retries; the bogus return is
    // dropped.
    call(&admin, "card.unblock", json!({"number": CARD})).await;
    call(&t, "ledger.sync.retry", json!({"id": items[0]["id"]})).await;
    call(&t, "ledger.sync.drop", json!({"id": items[1]["id"]})).await;
    let (c, _) = code(
        t.client()
            .await
            .call("ledger.sync.drop", json!({"id": items[1]["id"]}))
            .await,
    );
    assert_eq!(c, 2053);
    let s = drained(&t).await;
    assert_eq!(s["failed"], 0, "{s}");
    assert_eq!(balance(&admin, CARD).await, "50");
    chain.verify();
    verify_till(&t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spending_offline_within_the_limit_and_the_hour_is_never_booked_twice() {
    let chain = Chain::start(1, support::PROGRAMME);
    let pa = Proxy::start(upstream(&chain));
    let pb = Proxy::start(upstream(&chain));
    let limit = offline("redeem_limit = \"40\"\nmax_offline_secs = 3\n");
    let a = chain.till_via("T-A", "S1", &pa.url(), &limit);
    let b = chain.till_via("T-B", "S2", &pb.url(), &limit);
    register(&a, CARD, "+79161234567").await;
    call(&a, "sale.commit", sale("k0", CARD, "R0", 1000, "0")).await;
    // Both tills spend online once (the central ledger checks the secret,
    // each till keeps its hash): 1 of 100 spent, 99 paid, 4 earned.
    let ta = token(&a, CARD, "4711").await.unwrap();
    let tb = token(&b, CARD, "4711").await.unwrap();
    call(&a, "sale.commit", spend("ka0", &ta, "A0", 100, "1")).await;
    call(&b, "sale.commit", spend("kb0", &tb, "B0", 100, "1")).await;
    assert_eq!(balance(&b, CARD).await, "56");
    pa.set(Mode::Refuse);
    pb.set(Mode::Refuse);
    // Each till alone lets the card spend 40 of the same 56 points (half
    // of an 80 sale; 40 paid earns 2).
    let ra = call(&a, "sale.commit", spend("ka", &ta, "A1", 80, "40")).await;
    let rb = call(&b, "sale.commit", spend("kb", &tb, "B1", 80, "40")).await;
    assert_eq!(
        (ra["redeemed"].clone(), rb["redeemed"].clone()),
        (json!("40"), json!("40"))
    );
    // Beyond the card's limit at one till.
    let (c, _) = code(
        a.client()
            .await
            .call("sale.commit", spend("ka2", &ta, "A2", 100, "1"))
            .await,
    );
    assert_eq!(c, 2051);
    // Three seconds after the last answer nothing is spent offline.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let (c, data) = code(
        b.client()
            .await
            .call("sale.commit", spend("kb2", &tb, "B2", 100, "1"))
            .await,
    );
    assert_eq!(c, 2051, "{data}");

    pa.set(Mode::Pass);
    drained(&a).await;
    pb.set(Mode::Pass);
    let s = drained(&b).await;
    // The second spend of the same points is refused by the central ledger
    // and put aside: the points were spent once. The operator decides.
    assert_eq!(s["failed"], 1, "{s}");
    let failed = call(&b, "ledger.sync.failed", json!({})).await;
    // "cannot redeem 40: at most 18 (balance)".
    assert_eq!(failed["items"][0]["code"], 2003, "{failed}");
    // 56 - 40 + 2 (A1).
    assert_eq!(balance(&a, CARD).await, "18");
    chain.verify();
    verify_till(&a);
    verify_till(&b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_service_at_all_the_till_sells_and_catches_up_when_it_is_back() {
    let mut chain = Chain::start(1, support::PROGRAMME);
    let t = chain.till_with("T-A", "S1", 0, &offline(""));
    register(&t, CARD, "+79161234567").await;
    chain.centrals[0].kill9();
    let r = call(&t, "sale.commit", sale("k1", CARD, "R1", 1000, "0")).await;
    assert!(r["pending"].is_object(), "{r}");
    // A card no till has seen earns offline; the central ledger enrols it
    // when the sale is booked.
    let new = call(&t, "sale.commit", sale("k2", OTHER, "R2", 200, "0")).await;
    assert_eq!(
        (new["account"].clone(), new["accrued"].clone()),
        (json!(0), json!("10"))
    );
    let info = call(&t, "system.info", json!({})).await;
    assert_eq!(info["ledger"]["sync"]["queued"], 2, "{info}");
    assert_eq!(info["ledger"]["backend"], "central", "{info}");
    let devices = call(&t, "devices.list", json!({})).await;
    assert_eq!(devices["ledger"]["sync"]["link"], "offline", "{devices}");
    chain.centrals[0].spawn();
    drained(&t).await;
    assert_eq!(balance(&t, CARD).await, "50");
    assert_eq!(balance(&t, OTHER).await, "10");
    chain.verify();
    verify_till(&t);
}
