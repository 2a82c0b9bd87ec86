//! The socket API against the real daemon binary.

mod common;

use std::time::Duration;

use common::{Daemon, eventually, file_printer};
use posbridge::client::ClientError;
use serde_json::{Value, json};

fn rpc_code(e: ClientError) -> i64 {
    match e {
        ClientError::Rpc { error } => error["code"].as_i64().unwrap(),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

#[tokio::test]
async fn ping_and_info() {
    let d = Daemon::start("", "");
    let mut c = d.client().await;
    assert_eq!(
        c.call("system.ping", json!({})).await.unwrap(),
        json!("pong")
    );
    let info = c.call("system.info", json!(null)).await.unwrap();
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["config_path"], json!(d.config));
    assert_eq!(info["devices"]["total"], 0);
    assert_eq!(info["terminal_id"].as_str().unwrap().len(), 32);
}

#[tokio::test]
async fn malformed_json_is_a_parse_error_and_the_connection_survives() {
    let d = Daemon::start("", "");
    let mut c = d.raw().await;
    c.send(b"{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\n")
        .await
        .unwrap();
    let e = c.recv().await.unwrap();
    assert_eq!(e["error"]["code"], -32700);
    assert_eq!(e["id"], Value::Null);
    c.send(b"\xff\xfe not utf-8\n").await.unwrap();
    assert_eq!(c.recv().await.unwrap()["error"]["code"], -32700);
    c.send(b"{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"system.ping\"}\r\n")
        .await
        .unwrap();
    let ok = c.recv().await.unwrap();
    assert_eq!(
        (ok["id"].clone(), ok["result"].clone()),
        (json!("x"), json!("pong"))
    );
}

#[tokio::test]
async fn invalid_requests_keep_their_id() {
    let d = Daemon::start("", "");
    let mut c = d.raw().await;
    c.send(b"{\"jsonrpc\":\"1.0\",\"id\":5,\"method\":\"system.ping\"}\n")
        .await
        .unwrap();
    let e = c.recv().await.unwrap();
    assert_eq!(
        (e["id"].clone(), e["error"]["code"].clone()),
        (json!(5), json!(-32600))
    );
    c.send(b"[]\n").await.unwrap();
    assert_eq!(c.recv().await.unwrap()["error"]["code"], -32600);
    // A batch: replies for the requests, none for the notification.
    c.send(
        b"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.ping\"},\
           {\"jsonrpc\":\"2.0\",\"method\":\"system.ping\"},\
           {\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"nope\"}]\n",
    )
    .await
    .unwrap();
    let batch = c.recv().await.unwrap();
    let batch = batch.as_array().unwrap();
    assert_eq!(batch.len(), 2);
    assert_eq!(batch[0]["result"], "pong");
    assert_eq!(batch[1]["error"]["code"], -32601);
}

#[tokio::test]
async fn oversized_line_gets_an_error_and_the_connection_closes() {
    let d = Daemon::start("", "");
    let mut c = d.raw().await;
    let big = vec![b'x'; 1024 * 1024 + 10];
    // The daemon may stop reading before all of it is sent.
    let _ = c.send(&big).await;
    let e = c.recv().await.expect("an error before the close");
    assert_eq!(e["error"]["code"], -32600);
    assert_eq!(e["error"]["data"]["limit"], 1024 * 1024);
    assert!(c.recv().await.is_none(), "connection must be closed");
    // The daemon is fine.
    let mut c2 = d.client().await;
    assert_eq!(c2.call("system.ping", json!({})).await.unwrap(), "pong");
}

#[tokio::test]
async fn a_line_of_exactly_the_limit_is_accepted() {
    let d = Daemon::start("", "");
    let mut c = d.raw().await;
    let head = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.ping\",\"params\":{\"pad\":\"";
    let tail = b"\"}}";
    let mut line = head.to_vec();
    line.resize(1024 * 1024 - tail.len(), b' ');
    line.extend_from_slice(tail);
    line.push(b'\n');
    c.send(&line).await.unwrap();
    // Accepted as a request; system.ping ignores params.
    assert_eq!(c.recv().await.unwrap()["result"], "pong");
}

#[tokio::test]
async fn unknown_method_and_invalid_params() {
    let d = Daemon::start("", "");
    let mut c = d.client().await;
    let e = c.call("system.teleport", json!({})).await.unwrap_err();
    assert_eq!(rpc_code(e), -32601);

    let e = c
        .call("devices.restart", json!({"name": 5}))
        .await
        .unwrap_err();
    let ClientError::Rpc { error } = e else {
        panic!()
    };
    assert_eq!(error["code"], -32602);
    assert_eq!(error["data"]["field"], "name");
    assert!(error["message"].as_str().unwrap().contains("name"));

    let e = c
        .call(
            "events.subscribe",
            json!({"topics": ["card.read", "Not A Topic"]}),
        )
        .await
        .unwrap_err();
    let ClientError::Rpc { error } = e else {
        panic!()
    };
    assert_eq!(error["data"]["field"], "topics[1]");

    let e = c.call("events.subscribe", json!({})).await.unwrap_err();
    let ClientError::Rpc { error } = e else {
        panic!()
    };
    assert_eq!(error["data"]["field"], "topics");

    let e = c
        .call("devices.restart", json!({"name": "ghost"}))
        .await
        .unwrap_err();
    let ClientError::Rpc { error } = e else {
        panic!()
    };
    assert_eq!(error["code"], 1201);
    assert_eq!(error["data"]["name"], "ghost");
}

#[tokio::test]
async fn two_hundred_fifty_six_concurrent_clients() {
    let d = Daemon::start("", "");
    let mut clients = Vec::new();
    for _ in 0..256 {
        clients.push(d.client().await);
    }
    // All 256 connected at once, each calls concurrently.
    let calls = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| async move {
            for _ in 0..5 {
                assert_eq!(c.call("system.ping", json!({})).await.unwrap(), "pong");
            }
            let info = c.call("system.info", json!({})).await.unwrap();
            assert_eq!(info["version"], env!("CARGO_PKG_VERSION"), "client {i}");
            c
        });
    let clients = futures::future::join_all(calls).await;
    assert_eq!(clients.len(), 256);
}

#[tokio::test]
async fn clients_beyond_max_clients_are_refused_with_an_error() {
    let d = Daemon::start("max_clients = 2", "");
    // The start-up probe's connection may still hold a slot for a moment:
    // take both slots with clients that have been served.
    let served = || async {
        let mut c = d.client().await;
        c.call("system.ping", json!({})).await.ok().map(|_| c)
    };
    let a = eventually("a first slot", served).await;
    let _b = eventually("a second slot", served).await;
    let mut third = d.raw().await;
    let e = third.recv().await.expect("an error line");
    assert_eq!(e["error"]["code"], 1004);
    assert!(third.recv().await.is_none());
    drop(a);
    let mut again = eventually("a free slot", served).await;
    assert_eq!(again.call("system.ping", json!({})).await.unwrap(), "pong");
}

#[tokio::test]
async fn events_arrive_in_order_for_subscribed_topics_only() {
    let d = Daemon::start("", &file_printer("p1", std::env::temp_dir().as_path()));
    // The printer's first "connected" must not land after the subscription
    // (on a loaded machine it can): wait for it before subscribing.
    eventually("p1 connected", || async {
        let mut c = d.client().await;
        let r = c.call("devices.list", json!({})).await.unwrap();
        (r["devices"][0]["status"] == "connected").then_some(())
    })
    .await;
    let mut sub = d.client().await;
    let topics = sub
        .call("events.subscribe", json!({"topics": ["device.*"]}))
        .await
        .unwrap();
    assert_eq!(topics["topics"], json!(["device.*"]));
    let mut admin = d.client().await;
    admin
        .call("devices.restart", json!({"name": "p1"}))
        .await
        .unwrap();
    let mut seqs = Vec::new();
    let mut states = Vec::new();
    while states.last() != Some(&json!("connected")) {
        let n = tokio::time::timeout(Duration::from_secs(10), sub.next_notification())
            .await
            .expect("event")
            .unwrap();
        assert_eq!(n["method"], "event");
        assert_eq!(n["params"]["topic"], "device.status");
        assert_eq!(n["params"]["device"], "p1");
        assert!(n["params"]["time"].as_str().unwrap().ends_with('Z'));
        seqs.push(n["params"]["seq"].as_u64().unwrap());
        states.push(n["params"]["status"].clone());
    }
    assert_eq!(states, vec![json!("stopped"), json!("connected")]);
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");

    // After unsubscribing, nothing more arrives; the next reply is next.
    sub.call("events.unsubscribe", json!({})).await.unwrap();
    admin
        .call("devices.restart", json!({"name": "p1"}))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sub.call("system.ping", json!({})).await.unwrap(), "pong");
    let mut raw_check = d.client().await;
    raw_check.call("system.ping", json!({})).await.unwrap();
}

#[tokio::test]
async fn a_subscriber_that_never_reads_stalls_no_one() {
    let d = Daemon::start("", &file_printer("p1", std::env::temp_dir().as_path()));
    // The stuck client subscribes to everything and then never reads.
    let mut stuck = d.raw().await;
    stuck
        .send(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"events.subscribe\",\"params\":{\"topics\":[\"*\"]}}\n")
        .await
        .unwrap();
    assert_eq!(stuck.recv().await.unwrap()["id"], 1);

    // A healthy subscriber reads everything, without a gap, until it sees
    // the last restart's device come up.
    let mut healthy = d.client().await;
    // Everything: seq is daemon-wide, so only a subscriber to all topics
    // can check that it missed nothing.
    healthy
        .call("events.subscribe", json!({"topics": ["*"]}))
        .await
        .unwrap();
    let (last_tx, last_rx) = tokio::sync::watch::channel(u64::MAX);
    let reader = tokio::spawn(async move {
        let mut prev: Option<u64> = None;
        let mut count = 0u64;
        loop {
            let n = healthy.next_notification().await.unwrap();
            assert_eq!(n["method"], "event", "the healthy client must not lag: {n}");
            let seq = n["params"]["seq"].as_u64().unwrap();
            if let Some(p) = prev {
                assert_eq!(seq, p + 1, "the healthy client missed events");
            }
            prev = Some(seq);
            count += 1;
            if n["params"]["status"] == "connected"
                && n["params"]["instance"].as_u64() == Some(*last_rx.borrow())
            {
                return count;
            }
        }
    });

    // Generate far more events than the stuck client's socket, queue and
    // bus backlog can hold: each restart is at least two events.
    let mut admin = d.client().await;
    let mut last = 0;
    for _ in 0..3000 {
        let r = admin
            .call("devices.restart", json!({"name": "p1"}))
            .await
            .unwrap();
        last = r["instance"].as_u64().unwrap();
    }
    // Instances are numbered in order: name the next one before making it,
    // so its "connected" event cannot slip past the reader.
    last_tx.send(last + 1).unwrap();
    let r = admin
        .call("devices.restart", json!({"name": "p1"}))
        .await
        .unwrap();
    assert_eq!(r["instance"].as_u64(), Some(last + 1));
    let count = tokio::time::timeout(Duration::from_secs(120), reader)
        .await
        .expect("the healthy subscriber got every event")
        .unwrap();
    assert!(count >= 3000, "{count}");

    // The stuck client, reading at last, is told it lagged.
    let mut saw_lag = None;
    while let Some(msg) = stuck.recv().await {
        if msg["method"] == "events.lagged" {
            saw_lag = msg["params"]["dropped"].as_u64();
            break;
        }
    }
    assert!(saw_lag.unwrap_or(0) > 0, "expected an events.lagged notice");
}

#[tokio::test]
async fn root_on_the_unix_socket_is_admin() {
    let d = Daemon::start("", "");
    let mut c = d.client().await;
    // Tests run as root in CI; root is always admin.
    if nix::unistd::geteuid().is_root() {
        let info = c.call("system.info", json!({})).await.unwrap();
        assert_eq!(info["role"], "admin");
        let r = c.call("system.reload", json!({})).await.unwrap();
        assert!(r["devices"].is_object());
    }
}
