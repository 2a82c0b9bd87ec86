//! Issue #14, items 4-7: what the daemon refuses at its edges (amounts,
//! sizes, ids), private files, connection limits and TCP logins.

mod common;

use std::time::Duration;

use common::Daemon;
use posbridge::client::{Client, ClientError};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const CARD: &str = "6035000011112222";

fn line(price: &str) -> Value {
    json!({"sku": "A1", "name": "Товар", "category": "general", "qty": "1", "price": price})
}

/// The error of a call that must fail: (code, data.field).
fn refused(r: Result<Value, ClientError>) -> (i64, Value) {
    match r {
        Err(ClientError::Rpc { error }) => (
            error["code"].as_i64().unwrap(),
            error["data"]["field"].clone(),
        ),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

async fn register(c: &mut Client) {
    c.call(
        "account.register",
        json!({"phone": "+79161234567", "name": "Мария", "card_number": CARD, "secret": "4711"}),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn lenient_amounts_empty_sales_and_huge_names_are_refused_naming_the_field() {
    let d = Daemon::start("", "");
    let mut c = d.client().await;
    register(&mut c).await;
    let sale = |key: &str, lines: Value, redeem: Option<Value>| {
        let mut s =
            json!({"idempotency_key": key, "number": CARD, "receipt_id": key, "lines": lines});
        if let Some(r) = redeem {
            s["redeem"] = r;
        }
        s
    };
    let huge = "x".repeat(800 * 1024);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "sale.commit",
            sale("a", json!([line("100")]), Some(json!(""))),
            "redeem",
        ),
        (
            "sale.commit",
            sale("b", json!([line("100")]), Some(json!("+5"))),
            "redeem",
        ),
        (
            "sale.commit",
            sale("c", json!([line("100")]), Some(json!("-5"))),
            "redeem",
        ),
        (
            "sale.commit",
            sale("d", json!([line("100")]), Some(json!(5))),
            "redeem",
        ),
        (
            "sale.quote",
            sale("e", json!([line("100")]), Some(json!(" 5"))),
            "redeem",
        ),
        (
            "sale.commit",
            sale("f", json!([line("1.00001")]), None),
            "lines[0].price",
        ),
        // Within the boundary's 4 places but over the programme's 2.
        (
            "sale.commit",
            sale("g", json!([line("1.005")]), None),
            "lines[0].price",
        ),
        (
            "sale.commit",
            sale("h", json!([line("1e2")]), None),
            "lines[0].price",
        ),
        (
            "sale.commit",
            sale("i", json!([line("+1")]), None),
            "lines[0].price",
        ),
        ("sale.commit", sale("j", json!([line("10.5")]), None), ""),
        ("sale.commit", sale("k", json!([]), None), "lines"),
        ("sale.quote", sale("l", json!([]), None), "lines"),
        (
            "sale.commit",
            sale(
                "m",
                json!([{"sku": "A1", "name": huge, "category": "general", "qty": "1", "price": "1"}]),
                None,
            ),
            "lines[0].name",
        ),
        (
            "sale.commit",
            sale(
                "n",
                json!([{"sku": "A1", "name": "n", "category": "general", "qty": 1.5, "price": "1"}]),
                None,
            ),
            "lines[0].qty",
        ),
        (
            "sale.refund",
            json!({"idempotency_key": "r", "transaction": 1, "amount": "+1"}),
            "amount",
        ),
        (
            "sale.refund",
            json!({"idempotency_key": "r", "transaction": 1, "amount": ""}),
            "amount",
        ),
        (
            "ledger.adjust",
            json!({"idempotency_key": "q", "number": CARD, "amount": "+5", "reason": "x"}),
            "amount",
        ),
        (
            "ledger.adjust",
            json!({"idempotency_key": "q", "number": CARD, "amount": "-5.00001", "reason": "x"}),
            "amount",
        ),
    ];
    for (method, mut params, field) in cases {
        if method == "sale.quote" {
            let o = params.as_object_mut().unwrap();
            o.remove("idempotency_key");
            o.remove("receipt_id");
        }
        if field.is_empty() {
            // The control: a plain sale goes through.
            c.call(method, params).await.unwrap();
            continue;
        }
        let (code, got) = refused(c.call(method, params.clone()).await);
        assert_eq!(code, -32602, "{method} {field}");
        assert_eq!(got, json!(field), "{method} {field}");
    }
    // A refund of the control sale: money beyond kopecks is refused, not
    // rounded.
    let (code, got) = refused(
        c.call(
            "sale.refund",
            json!({"idempotency_key": "r2", "receipt_id": "j", "amount": "1.005"}),
        )
        .await,
    );
    assert_eq!((code, got), (-32602, json!("amount")));
    c.call(
        "sale.refund",
        json!({"idempotency_key": "r3", "receipt_id": "j", "amount": "1.50"}),
    )
    .await
    .unwrap();
    // A signed amount stays possible where the field allows it.
    c.call(
        "ledger.adjust",
        json!({"idempotency_key": "q1", "number": CARD, "amount": "2.5", "reason": "x"}),
    )
    .await
    .unwrap();
    c.call(
        "ledger.adjust",
        json!({"idempotency_key": "q2", "number": CARD, "amount": "-0.5", "reason": "x"}),
    )
    .await
    .unwrap();
    // Nothing but the control sale was committed.
    let h = c
        .call("account.history", json!({"number": CARD}))
        .await
        .unwrap();
    let kinds: Vec<&str> = h["transactions"]
        .as_array()
        .unwrap_or_else(|| panic!("history: {h}"))
        .iter()
        .filter_map(|t| t["kind"].as_str())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "sale").count(), 1, "{h}");
}

/// Sends `text` as one line on a fresh connection and returns the reply
/// line exactly as written.
async fn raw_reply(d: &Daemon, text: &str) -> String {
    let s = tokio::net::UnixStream::connect(&d.socket).await.unwrap();
    let (r, mut w) = tokio::io::split(s);
    w.write_all(format!("{text}\n").as_bytes()).await.unwrap();
    let mut rd = BufReader::new(r);
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(10), rd.read_line(&mut reply))
        .await
        .expect("no reply within 10 s")
        .unwrap();
    reply.trim_end().to_owned()
}

#[tokio::test]
async fn ids_are_echoed_exactly_as_sent() {
    let d = Daemon::start("", "");
    for id in [
        "1180591620717411303424",
        "1.5e300",
        "-0.0",
        "12345678901234567890123",
        r#""a\u00e9\"b""#,
        "7",
    ] {
        let reply = raw_reply(
            &d,
            &format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"system.ping"}}"#),
        )
        .await;
        assert_eq!(
            reply,
            format!(r#"{{"id":{id},"jsonrpc":"2.0","result":"pong"}}"#)
        );
        let reply = raw_reply(
            &d,
            &format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"nope"}}"#),
        )
        .await;
        assert!(reply.contains(&format!(r#""id":{id},"#)), "{reply}");
    }
    let reply = raw_reply(
        &d,
        r#"[{"jsonrpc":"2.0","id":1180591620717411303424,"method":"system.ping"},{"jsonrpc":"2.0","id":2,"method":"system.ping"}]"#,
    )
    .await;
    assert_eq!(
        reply,
        r#"[{"id":1180591620717411303424,"jsonrpc":"2.0","result":"pong"},{"id":2,"jsonrpc":"2.0","result":"pong"}]"#
    );
}

/// Writes `lines` in one go on a fresh TCP connection and reads `n` replies.
async fn tcp_pipeline(addr: &str, lines: &str, n: usize) -> Vec<Value> {
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (r, mut w) = tokio::io::split(s);
    w.write_all(lines.as_bytes()).await.unwrap();
    let mut rd = BufReader::new(r);
    let mut out = Vec::new();
    for _ in 0..n {
        let mut reply = String::new();
        tokio::time::timeout(Duration::from_secs(10), rd.read_line(&mut reply))
            .await
            .expect("no reply within 10 s")
            .unwrap();
        out.push(serde_json::from_str(&reply).unwrap());
    }
    out
}

#[tokio::test]
async fn a_login_pipelined_with_the_next_call_is_honoured_first() {
    let t = common::TcpTokens::new();
    let d = Daemon::start(&t.daemon_extra, "");
    let text = format!(
        "{}\n{}\n{}\n",
        json!({"jsonrpc": "2.0", "id": 1, "method": "auth.login", "params": {"token": common::ADMIN_TOKEN}}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "system.ping"}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "devices.list"}),
    );
    for round in 0..30 {
        let replies = tcp_pipeline(&t.addr, &text, 3).await;
        for r in &replies {
            assert!(r.get("result").is_some(), "round {round}: {replies:?}");
        }
    }
    drop(d);
}

fn login_line(id: u32, token: &str) -> String {
    format!(
        "{}\n",
        json!({"jsonrpc": "2.0", "id": id, "method": "auth.login", "params": {"token": token}})
    )
}

#[tokio::test]
async fn wrong_tokens_back_off_per_connection_and_per_address() {
    use posbridge::api::login_limit::{FREE_PER_ADDR, FREE_PER_CONN};
    let t = common::TcpTokens::new();
    let d = Daemon::start(&t.daemon_extra, "");
    let bad = "wrong-token-000000000";

    // One connection: the free failures, then a wait; during the wait even
    // the right token is refused unchecked.
    let s = tokio::net::TcpStream::connect(&t.addr).await.unwrap();
    let (r, mut w) = tokio::io::split(s);
    let mut rd = BufReader::new(r);
    let mut call = async |text: String| -> Value {
        w.write_all(text.as_bytes()).await.unwrap();
        let mut reply = String::new();
        tokio::time::timeout(Duration::from_secs(10), rd.read_line(&mut reply))
            .await
            .expect("no reply within 10 s")
            .unwrap();
        serde_json::from_str(&reply).unwrap()
    };
    for i in 0..FREE_PER_CONN {
        let r = call(login_line(i, bad)).await;
        assert_eq!(r["error"]["code"], 1003, "{r}");
        assert!(r["error"].get("data").is_none(), "{r}");
    }
    let r = call(login_line(100, bad)).await;
    assert_eq!(r["error"]["code"], 1003, "{r}");
    let wait = r["error"]["data"]["retry_after_ms"]
        .as_u64()
        .expect("retry_after_ms");
    assert!(wait > 0, "{r}");
    let r = call(login_line(101, common::ADMIN_TOKEN)).await;
    assert_eq!(r["error"]["code"], 1007, "{r}");
    assert!(
        r["error"]["data"]["retry_after_ms"].as_u64().unwrap() > 0,
        "{r}"
    );
    // After the wait the right token works.
    tokio::time::sleep(Duration::from_millis(wait + 50)).await;
    let r = call(login_line(102, common::ADMIN_TOKEN)).await;
    assert_eq!(r["result"]["role"], "admin", "{r}");

    // The address: fresh connections share its record. FREE_PER_CONN + 1
    // failures are counted so far; spend the rest of the free ones.
    let mut spent = FREE_PER_CONN + 1;
    while spent < FREE_PER_ADDR {
        let r = &tcp_pipeline(&t.addr, &login_line(1, bad), 1).await[0];
        assert_eq!(r["error"]["code"], 1003, "{r}");
        spent += 1;
    }
    let r = &tcp_pipeline(&t.addr, &login_line(1, bad), 1).await[0];
    assert_eq!(r["error"]["code"], 1003, "{r}");
    assert!(
        r["error"]["data"]["retry_after_ms"].as_u64().unwrap() > 0,
        "{r}"
    );
    // A brand-new connection from the same address now waits too.
    let r = &tcp_pipeline(&t.addr, &login_line(1, common::CASHIER_TOKEN), 1).await[0];
    assert_eq!(r["error"]["code"], 1007, "{r}");
    // The Unix socket is not an address: it is not held up.
    let mut c = d.client().await;
    c.call("system.ping", json!({})).await.unwrap();
}

fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn the_state_dir_and_database_files_are_private_whatever_the_umask() {
    use std::os::unix::process::CommandExt;
    let d = Daemon::start_with("", "", |cmd| {
        // SAFETY: umask is async-signal-safe and touches nothing else.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::stat::umask(nix::sys::stat::Mode::empty());
                Ok(())
            });
        }
    });
    // A write, so the WAL and shared-memory files exist.
    let mut c = d.client().await;
    register(&mut c).await;
    let state = d.dir.path().join("state");
    assert_eq!(mode(&state), 0o700);
    let db = state.join("posbridge.sqlite3");
    for f in [
        db.clone(),
        state.join("posbridge.sqlite3-wal"),
        state.join("posbridge.sqlite3-shm"),
    ] {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
}

/// `posbridge config check` on `config`: (exit code, stdout + stderr).
fn config_check(config: &std::path::Path) -> (Option<i32>, String) {
    let out = std::process::Command::new(common::BIN)
        .args(["config", "check"])
        .arg(config)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn config_check_refuses_what_run_would_fail_on_and_warns_of_a_readable_token_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    let tokens = dir.path().join("tokens");
    let write = |daemon_extra: &str| {
        std::fs::write(&cfg, common::config_text(dir.path(), daemon_extra, "")).unwrap();
    };
    let tcp = format!(
        "token_file = \"{}\"\n[daemon.tcp]\nlisten = \"127.0.0.1:7450\"\n",
        tokens.display()
    );

    // A missing token file.
    write(&tcp);
    let (code, text) = config_check(&cfg);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("daemon.token_file"), "{text}");

    // Present but readable by everyone: valid, with a warning.
    std::fs::write(&tokens, format!("cashier {}\n", common::CASHIER_TOKEN)).unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, text) = config_check(&cfg);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("readable by group or others"), "{text}");
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, text) = config_check(&cfg);
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("readable by group or others"), "{text}");

    // A state dir that cannot be created: its parent is a file. (The
    // config helper puts it at <dir>/state.)
    std::fs::write(dir.path().join("state"), "not a directory").unwrap();
    let (code, text) = config_check(&cfg);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("daemon.state_dir"), "{text}");
    // check creates nothing.
    assert!(!dir.path().join("state").is_dir());
}

/// Starts the daemon with RLIMIT_NOFILE `soft`/`hard`.
fn daemon_with_nofile(soft: u64, hard: u64) -> Daemon {
    use std::os::unix::process::CommandExt;
    Daemon::start_with("", "", move |cmd| {
        // SAFETY: setrlimit is a plain system call, safe after fork.
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::resource::setrlimit(
                    nix::sys::resource::Resource::RLIMIT_NOFILE,
                    soft,
                    hard,
                )
                .map_err(std::io::Error::from)
            });
        }
    })
}

/// The number after `key=` on the last log line holding `what`.
/// The line can reach the log just after the socket answers: wait for it.
fn logged_number(d: &Daemon, what: &str, key: &str) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut log = d.log();
    while !log.lines().any(|l| l.contains(what)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        log = d.log();
    }
    let line = log
        .lines()
        .rfind(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no {what:?} line in:\n{log}"));
    let at = line.find(&format!("{key}=")).expect(key) + key.len() + 1;
    line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn at_the_descriptor_limit_every_extra_client_gets_1004_and_none_hangs() {
    // The soft limit is raised to the hard one; max_clients (1024 by
    // default) is cut to fit under it.
    let d = daemon_with_nofile(48, 96);
    assert_eq!(logged_number(&d, "client limit", "nofile"), 96);
    let fit = logged_number(&d, "client limit", "max_clients") as usize;
    assert!(
        d.log().contains("daemon.max_clients does not fit"),
        "{}",
        d.log()
    );
    assert!((1..96).contains(&fit), "{fit}");

    // Twice as many clients as the hard limit, all held open.
    let total = 192;
    let mut held = Vec::new();
    let (mut served, mut refused) = (0, 0);
    for i in 0..total {
        let s = tokio::net::UnixStream::connect(&d.socket).await.unwrap();
        let (r, mut w) = tokio::io::split(s);
        let mut rd = BufReader::new(r);
        let ping = format!(
            "{}\n",
            json!({"jsonrpc": "2.0", "id": i, "method": "system.ping"})
        );
        // A refused client may already be closed: writing can fail.
        let _ = w.write_all(ping.as_bytes()).await;
        let mut reply = String::new();
        tokio::time::timeout(Duration::from_secs(10), rd.read_line(&mut reply))
            .await
            .unwrap_or_else(|_| panic!("client {i} hung; log:\n{}", d.log()))
            .unwrap();
        let v: Value =
            serde_json::from_str(&reply).unwrap_or_else(|e| panic!("client {i}: {reply:?}: {e}"));
        if v["result"] == "pong" {
            served += 1;
            held.push((rd, w));
        } else {
            assert_eq!(v["error"]["code"], 1004, "client {i}: {v}");
            assert_eq!(v["id"], Value::Null);
            // Then the connection is closed.
            let mut rest = String::new();
            let n = tokio::time::timeout(Duration::from_secs(10), rd.read_line(&mut rest))
                .await
                .expect("refused connection not closed")
                .unwrap_or(0);
            assert_eq!(n, 0, "{rest}");
            refused += 1;
        }
    }
    assert_eq!(served, fit, "served");
    assert_eq!(refused, total - fit, "refused");
    // The daemon still works, and serves again once clients leave.
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = d.client().await;
    assert_eq!(c.call("system.ping", json!({})).await.unwrap(), "pong");
    assert!(!d.log().contains("Too many open files"), "{}", d.log());
}

#[tokio::test]
async fn a_flood_of_clients_at_the_descriptor_limit_is_answered_in_full() {
    let d = daemon_with_nofile(96, 96);
    let fit = logged_number(&d, "client limit", "max_clients") as usize;
    // All connect and write before any reads: refusals pile up.
    let total = 400;
    let mut conns = Vec::new();
    for i in 0..total {
        let s = tokio::net::UnixStream::connect(&d.socket)
            .await
            .unwrap_or_else(|e| panic!("client {i}: {e}"));
        let (r, mut w) = tokio::io::split(s);
        let ping = format!(
            "{}\n",
            json!({"jsonrpc": "2.0", "id": i, "method": "system.ping"})
        );
        let _ = w.write_all(ping.as_bytes()).await;
        conns.push((BufReader::new(r), w));
    }
    let (mut served, mut refused) = (0, 0);
    for (i, (rd, _w)) in conns.iter_mut().enumerate() {
        let mut reply = String::new();
        tokio::time::timeout(Duration::from_secs(10), rd.read_line(&mut reply))
            .await
            .unwrap_or_else(|_| panic!("client {i} hung; log:\n{}", d.log()))
            .unwrap();
        let v: Value =
            serde_json::from_str(&reply).unwrap_or_else(|e| panic!("client {i}: {reply:?}: {e}"));
        match v["error"]["code"].as_i64() {
            None => {
                assert_eq!(v["result"], "pong", "client {i}: {v}");
                served += 1;
            }
            Some(code) => {
                assert_eq!(code, 1004, "client {i}: {v}");
                refused += 1;
            }
        }
    }
    assert_eq!(served, fit, "served");
    assert_eq!(refused, total - fit, "refused");
    eprintln!(
        "accept failures logged: {}",
        d.log().matches("accept failed").count()
    );
}

#[tokio::test]
async fn a_token_file_readable_by_others_is_warned_about_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("cashier {}\n", common::CASHIER_TOKEN)).unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o640)).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = Daemon::start(
        &format!(
            "token_file = \"{}\"\n[daemon.tcp]\nlisten = \"127.0.0.1:{port}\"\n",
            tokens.display()
        ),
        "",
    );
    // The log writer is not synchronous with the socket answering: wait for the line.
    let log = common::eventually("the token-file warning", || async {
        let log = d.log();
        log.contains("readable by group or others").then_some(log)
    })
    .await;
    assert!(log.contains("mode=0640"), "{log}");
}
