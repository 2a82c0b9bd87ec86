//! The real `posbridge-central` binary: admin commands, then HTTP calls.
//!
//! These exercise the HTTP layer and the admin commands on the trial
//! store (`url = "sqlite:…"`); the same service on PostgreSQL, with tills
//! in front of it, is `chain.rs`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_posbridge-central");

struct Central {
    _dir: tempfile::TempDir,
    config: PathBuf,
    child: Option<Child>,
    base: String,
    http: reqwest::Client,
}

impl Drop for Central {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn admin(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run posbridge-central");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Central {
    /// A configured service with store `s1`, not yet serving.
    fn new() -> Central {
        Central::with(|_| String::new())
    }

    /// The same, with `extra(dir)` appended to the `[server]` table.
    fn with(extra: impl FnOnce(&Path) -> String) -> Central {
        let dir = tempfile::tempdir().unwrap();
        let extra = extra(dir.path());
        let config = dir.path().join("central.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = 4096\n{extra}\
                 [database]\nurl = \"sqlite:{}\"\n\
                 [ledger.programme]\nname = \"Chain\"\ndefault_accrual_percent = \"10\"\n",
                dir.path().join("ledger.sqlite3").display()
            ),
        )
        .unwrap();
        let (ok, _, err) = admin(&config, &["store", "add", "s1", "--name", "Main street"]);
        assert!(ok, "{err}");
        Central {
            _dir: dir,
            config,
            child: None,
            base: String::new(),
            http: reqwest::Client::new(),
        }
    }

    fn terminal(&self, id: &str) -> String {
        let (ok, out, err) = admin(&self.config, &["terminal", "add", id, "--store", "s1"]);
        assert!(ok, "{err}");
        let key = out.trim().to_owned();
        assert_eq!(key.len(), 43, "32 bytes in base64url: {key}");
        key
    }

    fn serve(mut self) -> Central {
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            assert!(Instant::now() < deadline, "no listening line");
            let line = lines.next().expect("serve exited").unwrap();
            if let Some(rest) = line
                .split("addr=")
                .nth(1)
                .filter(|_| line.contains("listening"))
            {
                let addr = rest.split_whitespace().next().unwrap();
                break if line.contains("https") {
                    format!("https:{addr}")
                } else {
                    addr.to_owned()
                };
            }
        };
        // Keep draining the log so the service never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.base = if line_is_https(&addr) {
            format!("https://localhost:{}", addr.rsplit(':').next().unwrap())
        } else {
            format!("http://{addr}")
        };
        self.child = Some(child);
        self
    }

    async fn post(&self, auth: Option<(&str, &str)>, method: &str, body: Value) -> (u16, Value) {
        let mut r = self
            .http
            .post(format!("{}/v1/{method}", self.base))
            .json(&body);
        if let Some((t, k)) = auth {
            r = r.basic_auth(t, Some(k));
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

fn line_is_https(addr: &str) -> bool {
    addr.starts_with("https:")
}

fn sale(key: &str, number: &str) -> Value {
    json!({
        "key": key, "number": number, "receipt_id": "R1", "redeem": "0",
        "lines": [{"sku": "A", "name": "Tea", "category": "food", "qty": "1", "price": "100.00"}],
    })
}

#[tokio::test]
async fn an_authorised_till_calls_and_bad_credentials_are_refused() {
    let c = Central::new();
    let key = c.terminal("t1");
    let c = c.serve();

    let (s, v) = c
        .post(Some(("t1", &key)), "commit", sale("k1", "7001"))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["accrued"], "10", "{v}");
    let (s, v) = c
        .post(Some(("t1", &key)), "resolve", json!({"number": "7001"}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["balance"], "10", "{v}");

    // The same key again is a replay, not a second sale.
    let (s, v) = c
        .post(Some(("t1", &key)), "commit", sale("k1", "7001"))
        .await;
    assert_eq!((s, &v["accrued"]), (200, &json!("10")), "{v}");
    let (_, v) = c
        .post(Some(("t1", &key)), "resolve", json!({"number": "7001"}))
        .await;
    assert_eq!(v["balance"], "10", "{v}");

    let (s, v) = c
        .post(Some(("t1", "wrong")), "resolve", json!({"number": "7001"}))
        .await;
    assert_eq!((s, &v["error"]["code"]), (401, &json!(1003)), "{v}");
    let (s, v) = c
        .post(Some(("nobody", &key)), "resolve", json!({"number": "7001"}))
        .await;
    assert_eq!((s, &v["error"]["code"]), (401, &json!(1003)), "{v}");
    let (s, v) = c.post(None, "resolve", json!({"number": "7001"})).await;
    assert_eq!((s, &v["error"]["code"]), (401, &json!(1003)), "{v}");

    let r = c
        .http
        .get(format!("{}/v1/programme", c.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = c
        .http
        .get(format!("{}/v1/programme", c.base))
        .basic_auth("t1", Some(&key))
        .send()
        .await
        .unwrap();
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["name"], "Chain");
}

#[tokio::test]
async fn a_revoked_till_is_refused_at_once() {
    // Terminal rows read on every request.
    let c = Central::with(|_| "terminal_status_ttl_ms = 0\n".into());
    let key = c.terminal("t1");
    let c = c.serve();
    // Verified once, so the key is in the cache: revocation must still bite.
    let (s, _) = c
        .post(Some(("t1", &key)), "resolve", json!({"number": "1"}))
        .await;
    assert_eq!(s, 200);
    let (ok, out, err) = admin(&c.config, &["terminal", "revoke", "t1"]);
    assert!(ok, "{err}");
    assert!(out.contains("revoked"));
    let (s, v) = c
        .post(Some(("t1", &key)), "resolve", json!({"number": "1"}))
        .await;
    assert_eq!((s, &v["error"]["code"]), (403, &json!(1002)), "{v}");
    let (_, out, _) = admin(&c.config, &["terminal", "list"]);
    assert!(out.starts_with("t1\ts1\trevoked\t"), "{out}");
    assert!(!out.contains(&key));
}

#[tokio::test]
async fn a_revoked_till_is_refused_within_the_status_ttl() {
    let ttl = Duration::from_millis(1500);
    let c = Central::with(|_| format!("terminal_status_ttl_ms = {}\n", ttl.as_millis()));
    let key = c.terminal("t1");
    let c = c.serve();
    // The row is read (and trusted for the TTL) by this call.
    let (s, _) = c
        .post(Some(("t1", &key)), "resolve", json!({"number": "1"}))
        .await;
    assert_eq!(s, 200);
    let (ok, _, err) = admin(&c.config, &["terminal", "revoke", "t1"]);
    assert!(ok, "{err}");
    // Whatever the instance holds was read before the revocation ended:
    // one TTL later it must refuse.
    tokio::time::sleep(ttl).await;
    let (s, v) = c
        .post(Some(("t1", &key)), "resolve", json!({"number": "1"}))
        .await;
    assert_eq!((s, &v["error"]["code"]), (403, &json!(1002)), "{v}");
}

#[tokio::test]
async fn idempotency_keys_are_per_terminal() {
    let c = Central::new();
    let (k1, k2) = (c.terminal("t1"), c.terminal("t2"));
    let c = c.serve();
    // Both tills use key "same" for different sales: without the prefix the
    // second would be refused as a reused key (2005).
    let (s, v) = c
        .post(Some(("t1", &k1)), "commit", sale("same", "8001"))
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = c
        .post(Some(("t2", &k2)), "commit", sale("same", "8002"))
        .await;
    assert_eq!(s, 200, "{v}");
    for n in ["8001", "8002"] {
        let (_, v) = c
            .post(Some(("t1", &k1)), "resolve", json!({"number": n}))
            .await;
        assert_eq!(v["balance"], "10", "{n}: {v}");
    }
    // A till's own key reused for another sale is still refused.
    let (s, v) = c
        .post(Some(("t1", &k1)), "commit", sale("same", "8002"))
        .await;
    assert_eq!((s, &v["error"]["code"]), (409, &json!(2005)), "{v}");
}

#[tokio::test]
async fn limits_malformed_bodies_and_health() {
    let c = Central::new();
    let key = c.terminal("t1");
    let c = c.serve();

    let r = c
        .http
        .get(format!("{}/v1/health", c.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let health = r.json::<Value>().await.unwrap();
    assert_eq!(health["status"], "ok");
    // The SQLite stand-in has no PostgreSQL counters to show (the chain
    // tests check them on PostgreSQL).
    assert!(health.get("transactions").is_none(), "{health}");

    let big = json!({"number": "1", "pad": "x".repeat(5000)});
    let (s, v) = c.post(Some(("t1", &key)), "resolve", big).await;
    assert_eq!(s, 413, "{v}");
    assert_eq!(v["error"]["data"]["max_body_bytes"], 4096);

    let r = c
        .http
        .post(format!("{}/v1/resolve", c.base))
        .basic_auth("t1", Some(&key))
        .body("{\"number\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32700, "{v}");
    assert_eq!(v["error"]["data"]["offset"], 10, "{v}");

    let (s, v) = c
        .post(Some(("t1", &key)), "resolve", json!({"numbr": "1"}))
        .await;
    assert_eq!((s, &v["error"]["code"]), (400, &json!(-32602)), "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("numbr"),
        "{v}"
    );
    let (s, v) = c.post(Some(("t1", &key)), "no/such", json!({})).await;
    assert_eq!((s, &v["error"]["code"]), (404, &json!(-32601)), "{v}");
}

#[test]
fn admin_commands_refuse_bad_input_and_verify_is_clean() {
    let c = Central::new();
    let (ok, _, err) = admin(&c.config, &["terminal", "add", "t1", "--store", "nope"]);
    assert!(!ok && err.contains("no store \"nope\""), "{err}");
    let (ok, _, err) = admin(&c.config, &["terminal", "add", "a:b", "--store", "s1"]);
    assert!(!ok && err.contains("terminal: 1 to 64"), "{err}");
    c.terminal("t1");
    let (ok, _, err) = admin(&c.config, &["terminal", "add", "t1", "--store", "s1"]);
    assert!(!ok && err.contains("exists"), "{err}");
    let (ok, _, err) = admin(&c.config, &["store", "add", "s1", "--name", "x"]);
    assert!(!ok && err.contains("exists"), "{err}");
    let (ok, _, err) = admin(&c.config, &["terminal", "revoke", "t9"]);
    assert!(!ok && err.contains("no terminal"), "{err}");
    let (ok, out, err) = admin(&c.config, &["verify"]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = admin(&c.config, &["export", "--format", "csv"]);
    assert!(ok && out.starts_with("txn_id,"), "{out}{err}");
    let (ok, out, _) = admin(&c.config, &["migrate"]);
    assert!(ok && out.contains("up to date"));
}

#[test]
fn a_bad_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.toml");
    std::fs::write(
        &f,
        "[database]\nurl = \"x\"\n[server]\nmax_concurent_requests = 5\n",
    )
    .unwrap();
    let (ok, _, err) = admin(&f, &["migrate"]);
    assert!(!ok);
    assert!(
        err.contains("c.toml:4:1") && err.contains("max_concurent_requests"),
        "{err}"
    );
}

#[test]
fn sigterm_stops_the_service() {
    let c = Central::new().serve();
    let mut c = c;
    let mut child = c.child.take().unwrap();
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "{st}");
            break;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn tls_is_terminated_with_rustls() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let pem = cert.cert.pem();
    let c = Central::with(|dir| {
        std::fs::write(dir.join("c.pem"), &pem).unwrap();
        std::fs::write(dir.join("k.pem"), cert.signing_key.serialize_pem()).unwrap();
        format!(
            "[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            dir.join("c.pem").display(),
            dir.join("k.pem").display()
        )
    });
    let key = c.terminal("t1");
    let mut c = c.serve();
    assert!(c.base.starts_with("https://localhost:"), "{}", c.base);
    c.http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let (s, v) = c
        .post(Some(("t1", &key)), "commit", sale("k1", "9001"))
        .await;
    assert_eq!(s, 200, "{v}");
    let r = c
        .http
        .get(format!("{}/v1/health", c.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn verify_lists_violations_and_exits_1_and_export_has_the_sale() {
    let c = Central::new();
    let key = c.terminal("t1");
    let c = c.serve();
    let (s, v) = c
        .post(Some(("t1", &key)), "commit", sale("k1", "7001"))
        .await;
    assert_eq!(s, 200, "{v}");
    let (ok, out, err) = admin(&c.config, &["export", "--format", "json"]);
    assert!(ok, "{err}");
    let row: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(row["kind"], "sale", "{out}");
    assert_eq!(row["receipt_id"], "R1", "{out}");

    // Break the books behind the core's back.
    let db = c._dir.path().join("ledger.sqlite3");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute("UPDATE lots SET remaining = remaining - 1", [])
        .unwrap();
    drop(conn);
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&c.config)
        .arg("verify")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("account 1"), "{text}");
}
