//! A chain on one machine, all real: a throwaway PostgreSQL from Debian's
//! package, `posbridge-central` instances and till daemons in central mode
//! talking to them over loopback HTTP.

mod support;

use std::collections::BTreeMap;

use posbridge::client::Client;
use serde_json::{Value, json};
use support::{Chain, Till, code, lines};

const CARD: &str = "6035000011112222";

async fn register(t: &Till, card: &str, phone: &str) {
    t.client()
        .await
        .call(
            "account.register",
            json!({"phone": phone, "name": "Мария", "card_number": card, "secret": "4711"}),
        )
        .await
        .unwrap();
}

async fn balance(t: &Till, card: &str) -> String {
    let r = t
        .client()
        .await
        .call("card.resolve", json!({"number": card}))
        .await
        .unwrap();
    r["account"]["balance"].as_str().unwrap().to_owned()
}

async fn token(t: &Till, card: &str) -> String {
    let r = t
        .client()
        .await
        .call("card.enter", json!({"number": card, "secret": "4711"}))
        .await
        .unwrap();
    r["card_token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registered_at_one_till_earned_at_another_and_returned_at_the_first() {
    let chain = Chain::start(1, support::PROGRAMME);
    let a = chain.till("T-A", "S1", 0);
    let b = chain.till("T-B", "S2", 0);

    register(&a, CARD, "+79161234567").await;
    // The account exists at the other store's till: no second enrolment.
    assert_eq!(balance(&b, CARD).await, "0");
    let sale =
        json!({"idempotency_key": "k1", "number": CARD, "receipt_id": "B-1", "lines": lines(1000)});
    let r = b
        .client()
        .await
        .call("sale.commit", sale.clone())
        .await
        .unwrap();
    assert_eq!(r["accrued"], "50");
    assert_eq!(balance(&a, CARD).await, "50");

    // The same key from the other till is that till's own key: a new sale,
    // not a replay of B's.
    let again = a.client().await.call("sale.commit", json!({"idempotency_key": "k1", "number": CARD, "receipt_id": "A-1", "lines": lines(200)})).await.unwrap();
    assert_eq!(again["accrued"], "10");
    // B's retry is a replay.
    let replay = b.client().await.call("sale.commit", sale).await.unwrap();
    assert_eq!(replay["transaction"], r["transaction"]);
    assert_eq!(balance(&a, CARD).await, "60");

    // The return happens at till A, in the other store.
    let refund = a
        .client()
        .await
        .call(
            "sale.refund",
            json!({"idempotency_key": "r1", "receipt_id": "B-1"}),
        )
        .await
        .unwrap();
    assert_eq!(refund["clawback"], "50", "{refund}");
    assert_eq!(balance(&b, CARD).await, "10");

    // History says where each posting happened.
    let h = b
        .client()
        .await
        .call("account.history", json!({"number": CARD}))
        .await
        .unwrap();
    let places: BTreeMap<String, (Value, Value)> = h["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                format!("{}:{}", t["kind"].as_str().unwrap(), t["receipt_id"]),
                (t["store"].clone(), t["terminal"].clone()),
            )
        })
        .collect();
    assert_eq!(places["sale:\"B-1\""], (json!("S2"), json!("T-B")), "{h}");
    assert_eq!(places["sale:\"A-1\""], (json!("S1"), json!("T-A")), "{h}");
    chain.verify();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_tills_redeeming_the_same_points_exactly_one_wins_every_round() {
    // Two instances on one database, one till on each. The contested sale
    // is paid wholly with points, so it earns nothing and the winner leaves
    // nothing behind for the loser.
    let chain = Chain::start(
        2,
        "[ledger.programme]\ndefault_accrual_percent = \"1\"\ncap_percent = \"100\"\n",
    );
    let a = chain.till("T-A", "S1", 0);
    let b = chain.till("T-B", "S2", 1);
    register(&a, CARD, "+79161234567").await;
    for round in 0..15 {
        // Points to fight over: 1 % of 10000.
        a.client()
            .await
            .call("sale.commit", json!({"idempotency_key": format!("seed{round}"), "number": CARD, "receipt_id": format!("seed{round}"), "lines": lines(10000)}))
            .await
            .unwrap();
        let all = balance(&a, CARD).await;
        assert_eq!(all, "100", "round {round}");
        let (ta, tb) = (token(&a, CARD).await, token(&b, CARD).await);
        let spend = |t: String, k: String| json!({"idempotency_key": k.clone(), "card_token": t, "receipt_id": k, "lines": lines(100), "redeem": all});
        let (mut ca, mut cb) = (a.client().await, b.client().await);
        let (ra, rb) = tokio::join!(
            ca.call("sale.commit", spend(ta, format!("a{round}"))),
            cb.call("sale.commit", spend(tb, format!("b{round}")))
        );
        let wins = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {ra:?} / {rb:?}");
        let loser = if ra.is_ok() { rb } else { ra };
        let (c, _) = code(loser);
        assert!(c == 2003 || c == 2007, "round {round}: loser got {c}");
        assert_eq!(balance(&b, CARD).await, "0", "round {round}");
    }
    chain.verify();
    // Each instance's health shows its own counters: none gave up, and
    // its pool has the connections its requests used.
    for c in &chain.centrals {
        let health: Value = reqwest::get(format!("{}/v1/health", c.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["status"], "ok", "{health}");
        assert!(health["transactions"]["retried"].is_u64(), "{health}");
        assert_eq!(health["transactions"]["gave_up"], 0, "{health}");
        assert!(health["pool"]["open"].as_u64().unwrap() >= 1, "{health}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_till_is_refused_within_the_status_ttl() {
    let chain = Chain::start(1, support::PROGRAMME);
    let a = chain.till("T-A", "S1", 0);
    let b = chain.till("T-B", "S1", 0);
    register(&a, CARD, "+79161234567").await;
    assert_eq!(balance(&b, CARD).await, "0");
    chain.centrals[0].admin(&["terminal", "revoke", "T-B"]);
    // The instance may trust the row it read for the default TTL; once
    // that has passed since the revocation, the till is refused.
    tokio::time::sleep(posbridge_central::principals::STATUS_TTL).await;
    let r = b
        .client()
        .await
        .call("card.resolve", json!({"number": CARD}))
        .await;
    let (c, _) = code(r);
    assert_eq!(c, 1002, "a revoked terminal is forbidden");
    // The other till goes on.
    assert_eq!(balance(&a, CARD).await, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_central_instance_killed_during_commits_loses_nothing_acknowledged() {
    let mut chain = Chain::start(1, support::PROGRAMME);
    // Online semantics only: a till that may sell offline would queue the
    // sales the dead instance missed (central/tests/offline.rs covers that).
    let a = chain.till_with("T-A", "S1", 0, "[ledger.offline]\nenabled = false\n");
    register(&a, CARD, "+79161234567").await;
    let n = 60;
    let sale = |i: usize| json!({"idempotency_key": format!("k{i}"), "number": CARD, "receipt_id": format!("R{i}"), "lines": lines(100)});
    // Commits in flight from several connections while the instance dies.
    let mut tasks = Vec::new();
    for w in 0..4 {
        let mut c = a.client().await;
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in (w..n).step_by(4) {
                if let Ok(r) = c.call("sale.commit", sale(i)).await {
                    acked.push((i, r["transaction"].clone()));
                }
            }
            acked
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    chain.centrals[0].kill9();
    let mut acked = BTreeMap::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    chain.centrals[0].spawn();
    // Every sale retried with its key: the acknowledged ones replay with the
    // same transaction, the others apply once.
    let mut c = a.client().await;
    for i in 0..n {
        let r = c.call("sale.commit", sale(i)).await.unwrap();
        if let Some(t) = acked.get(&i) {
            assert_eq!(&r["transaction"], t, "sale {i} was acknowledged as {t}");
        }
    }
    // 60 sales of 100 at 5 %: 5 points each, once.
    assert_eq!(balance(&a, CARD).await, "300");
    chain.verify();
}

/// Redemption by code, for both tills and both instances.
const BY_CODE: &str = "[ledger.programme]\ncap_percent = \"100\"\n\n[ledger.redemption]\n\
                       by_code = true\nmax_attempts = 3\nresend_after_seconds = 0\n";

/// The last code the till's demo notifier logged for `account`.
fn logged_code(t: &Till, account: i64) -> String {
    let log = t.log();
    let line = log
        .lines()
        .rfind(|l| l.contains("demo notifier") && l.contains(&format!("account={account} ")))
        .unwrap_or_else(|| panic!("no code for {account}:\n{log}"));
    let at = line.find("code=").expect("code field") + 5;
    line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

/// Sends a code to `account` through till `t`; the code.
async fn send_code(t: &Till, account: i64) -> String {
    t.client()
        .await
        .call("sale.redeem_code.send", json!({"account": account}))
        .await
        .unwrap();
    logged_code(t, account)
}

fn spend(account: i64, key: &str, code: &str) -> Value {
    json!({"idempotency_key": key, "account": account, "redeem_code": code,
           "receipt_id": key, "lines": lines(100), "redeem": "10"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guesses_at_one_code_from_two_instances_never_exceed_its_tries_and_a_spend_is_one_call() {
    // Two instances on one database, one till on each: the in-process
    // one-at-a-time locks do not span them, the count in the database does.
    let chain = Chain::start(2, BY_CODE);
    let a = chain.till_with("T-A", "S1", 0, BY_CODE);
    let b = chain.till_with("T-B", "S2", 1, BY_CODE);
    register(&a, CARD, "+79161234567").await;
    a.client()
        .await
        .call("sale.commit", json!({"idempotency_key": "seed", "number": CARD, "receipt_id": "seed", "lines": lines(10000)}))
        .await
        .unwrap();
    let account = a
        .client()
        .await
        .call("account.get", json!({"card_number": CARD}))
        .await
        .unwrap()["account"]
        .as_i64()
        .unwrap();
    let before = balance(&a, CARD).await;
    for round in 0..4 {
        let good = send_code(&a, account).await;
        let wrong = if good == "0000" { "1111" } else { "0000" };
        // Six wrong guesses from each till at once, each on its own
        // connection, each till on its own instance.
        let mut calls = Vec::new();
        for i in 0..12 {
            let socket = if i % 2 == 0 { &a.socket } else { &b.socket }.clone();
            let p = spend(account, &format!("g{round}-{i}"), wrong);
            calls.push(tokio::spawn(async move {
                let mut c = Client::unix(&socket).await.unwrap();
                code(c.call("sale.commit", p).await).0
            }));
        }
        let mut tally = BTreeMap::new();
        for c in calls {
            *tally.entry(c.await.unwrap()).or_insert(0) += 1;
        }
        // Two wrong answers, the third try voids the code, the rest are
        // refused unanswered: never more verdicts than tries.
        assert_eq!(tally.get(&2024), Some(&2), "round {round}: {tally:?}");
        assert_eq!(tally.get(&2026), Some(&10), "round {round}: {tally:?}");
        let late = spend(account, &format!("late{round}"), &good);
        let (c, _) = code(b.client().await.call("sale.commit", late).await);
        assert_eq!(c, 2026, "round {round}: the void code pays for nothing");
    }
    assert_eq!(balance(&b, CARD).await, before);

    // The right code from both tills at once: one sale, one code used.
    let good = send_code(&b, account).await;
    let calls_before = chain.calls();
    let (mut ca, mut cb) = (a.client().await, b.client().await);
    let (ra, rb) = tokio::join!(
        ca.call("sale.commit", spend(account, "ra", &good)),
        cb.call("sale.commit", spend(account, "rb", &good))
    );
    assert_eq!(
        [&ra, &rb].iter().filter(|r| r.is_ok()).count(),
        1,
        "{ra:?} / {rb:?}"
    );
    let (won, lost) = if ra.is_ok() { (ra, rb) } else { (rb, ra) };
    assert_eq!(code(lost).0, 2032, "the code was used by the other sale");
    assert_eq!(won.unwrap()["redeemed"], "10");
    // Each redemption was one call to the central ledger, and nothing else.
    let calls_after = chain.calls();
    let mut new: BTreeMap<String, usize> = BTreeMap::new();
    for (m, n) in &calls_after {
        let d = n - calls_before.get(m).copied().unwrap_or(0);
        if d > 0 {
            new.insert(m.clone(), d);
        }
    }
    assert_eq!(
        new,
        BTreeMap::from([("commit_with_code".to_owned(), 2)]),
        "{calls_after:?}"
    );
    chain.verify();
}
