//! A chain on one machine, all real: a throwaway PostgreSQL from Debian's
//! package, `posbridge-central` instances and till daemons in central mode
//! talking to them over loopback HTTP.

mod support;

use std::collections::BTreeMap;

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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_till_is_refused_at_once() {
    let chain = Chain::start(1, support::PROGRAMME);
    let a = chain.till("T-A", "S1", 0);
    let b = chain.till("T-B", "S1", 0);
    register(&a, CARD, "+79161234567").await;
    assert_eq!(balance(&b, CARD).await, "0");
    chain.centrals[0].admin(&["terminal", "revoke", "T-B"]);
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
    let a = chain.till("T-A", "S1", 0);
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
