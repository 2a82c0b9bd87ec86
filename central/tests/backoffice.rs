//! The chain's back office, served by `posbridge-central` over its
//! PostgreSQL ledger: real instances, a real till daemon in central mode,
//! operators made with the real admin command, forms posted over HTTP as
//! a browser would.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use posbridge::backoffice::operators::{AuditEntry, Operators};
use posbridge::ledger::db::Books;
use posbridge_central::pg::{PgBooks, PgConfig};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::json;
use support::{CENTRAL, Central, PROGRAMME, Till, code, free_port, key_of};

const CARD: &str = "6035000011112222";

/// One operator's browser: the base address and its session cookie.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

impl Browser {
    fn new(port: u16) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            base: format!("http://127.0.0.1:{port}"),
            cookie: String::new(),
        }
    }

    /// Opens the login page for its token and cookie, then logs in.
    async fn login(&mut self, name: &str, password: &str) -> StatusCode {
        let r = self
            .http
            .get(format!("{}/login", self.base))
            .send()
            .await
            .unwrap();
        let pre = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|c| c.to_str().unwrap().to_owned())
            .find(|c| c.starts_with("bo_login="))
            .expect("the login page's token cookie");
        let token = field(&r.text().await.unwrap(), "csrf");
        let r = self
            .http
            .post(format!("{}/login", self.base))
            .header("cookie", pre.split(';').next().unwrap())
            .form(&[("name", name), ("password", password), ("csrf", &token)])
            .send()
            .await
            .unwrap();
        if let Some(c) = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|c| c.to_str().unwrap())
            .find(|c| c.starts_with("bo_session="))
        {
            self.cookie = c.split(';').next().unwrap().to_owned();
        }
        r.status()
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("accept-language", "en")
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .form(form)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }
}

/// The value of the first `name="…" value="…"` input in a page.
fn field(page: &str, name: &str) -> String {
    let at = page
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no {name} field in:\n{page}"));
    let rest = &page[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// `posbridge-central operator add` with the password on stdin.
fn add_operator(c: &Central, name: &str, role: &str, password: &str) {
    let mut child = Command::new(CENTRAL)
        .arg("--config")
        .arg(&c.config)
        .args(["operator", "add", name, "--role", role])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_chain_back_office_finds_a_till_customer_adjusts_blocks_and_audits() {
    let pg = posbridge_pgtest::Cluster::start().expect("start PostgreSQL");
    let dir = tempfile::tempdir().unwrap();
    let (p0, p1) = (free_port(), free_port());
    let with_office =
        |port: u16| format!("{PROGRAMME}\n[backoffice]\nlisten = \"127.0.0.1:{port}\"\n");
    let c0 = Central::start(dir.path(), "central0", &pg.url(), &with_office(p0));
    let c1 = Central::start(dir.path(), "central1", &pg.url(), &with_office(p1));
    c0.admin(&["store", "add", "S1", "--name", "Store 1"]);
    let key = key_of(&c0.admin(&["terminal", "add", "T-1", "--store", "S1"]));
    let till = Till::start(&c0.url, "T-1", &key);
    let mut tc = till.client().await;
    let reg = tc
        .call(
            "account.register",
            json!({"phone": "+79161234567", "name": "Ivan Petrov", "card_number": CARD, "secret": "4711"}),
        )
        .await
        .unwrap();
    let id = reg["account"].as_i64().unwrap();

    add_operator(&c0, "root", "admin", "correct horse battery");
    add_operator(&c1, "vera", "viewer", "vera's long password");
    let list = c0.admin(&["operator", "list"]);
    assert!(list.contains("root\tadmin\t-\tfalse"), "{list}");
    assert!(list.contains("vera\tviewer\t-\tfalse"), "{list}");
    assert!(!list.contains("argon2"), "{list}");

    // Instance 0: log in, find the till's customer by phone.
    let mut admin = Browser::new(p0);
    assert_eq!(admin.get("/").await.0, StatusCode::SEE_OTHER);
    assert_eq!(
        admin.login("root", "wrong password").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        admin.login("root", "correct horse battery").await,
        StatusCode::SEE_OTHER
    );
    let (status, page) = admin.get("/?q=%2B7%20916%20123-45-67").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(&format!("/customers/{id}")), "{page}");
    let (status, page) = admin.get(&format!("/customers/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<td id=\"balance\">0</td>"), "{page}");
    assert!(!page.contains(CARD), "a full card number on a page");

    // Points with a reason, booked once for a form posted twice.
    let (csrf, form_key) = (field(&page, "csrf"), field(&page, "form_key"));
    let adjust = format!("/customers/{id}/adjust");
    let good = [
        ("csrf", csrf.as_str()),
        ("form_key", form_key.as_str()),
        ("direction", "accrue"),
        ("amount", "25"),
        ("reason", "complaint"),
        ("note", "late delivery"),
        ("expires", ""),
    ];
    for _ in 0..2 {
        let (status, page) = admin.post(&adjust, &good).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    }
    let (_, page) = admin.get(&format!("/customers/{id}")).await;
    assert!(page.contains("<td id=\"balance\">25</td>"), "{page}");
    assert!(page.contains("complaint: late delivery"), "{page}");
    assert!(page.contains("<td class=\"operator\">root</td>"), "{page}");
    // The till sees the same balance through the central ledger.
    let r = tc
        .call("card.resolve", json!({"number": CARD}))
        .await
        .unwrap();
    assert_eq!(r["account"]["balance"], "25");

    // Block the card: the till's sale on it is refused.
    let (status, _) = admin
        .post(
            &format!("/customers/{id}/cards/0"),
            &[("csrf", &csrf), ("status", "blocked")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let sale = json!({"idempotency_key": "bo-1", "number": CARD, "receipt_id": "R1",
        "lines": support::lines(100)});
    assert_eq!(code(tc.call("sale.commit", sale).await).0, 2002);

    // Sessions live in one instance: instance 1 does not know this
    // cookie (a load balancer needs sticky sessions) ...
    let mut elsewhere = Browser::new(p1);
    elsewhere.cookie = admin.cookie.clone();
    assert_eq!(elsewhere.get("/").await.0, StatusCode::SEE_OTHER);
    // ... but operators and the audit log are the chain's: a login there
    // works and reads what instance 0 wrote.
    assert_eq!(
        elsewhere.login("root", "correct horse battery").await,
        StatusCode::SEE_OTHER
    );
    let (status, audit) = elsewhere.get("/audit").await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    for what in [
        "login",
        "points.adjust",
        "card.block",
        &format!("account:{id}"),
    ] {
        assert!(audit.contains(what), "{what} not in:\n{audit}");
    }
    // A viewer added on instance 1 logs in on instance 0, cannot adjust.
    let mut vera = Browser::new(p0);
    assert_eq!(
        vera.login("vera", "vera's long password").await,
        StatusCode::SEE_OTHER
    );
    let (_, page) = vera.get(&format!("/customers/{id}")).await;
    assert!(!page.contains("form_key"), "a viewer got the adjust form");
    // Disabled from the command line: the next request ends the session.
    c1.admin(&["operator", "disable", "vera"]);
    assert_eq!(vera.get("/").await.0, StatusCode::SEE_OTHER);
    assert_eq!(
        vera.login("vera", "vera's long password").await,
        StatusCode::UNAUTHORIZED
    );
    c0.admin(&["verify"]);
}

/// Audit ids are MAX(id)+1 inside the writing transaction; two instances
/// (two pools on one database) appending at once must each land every row
/// with distinct, gapless ids: SERIALIZABLE makes one of two colliding
/// writers run again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_append_to_the_audit_log_at_once_without_losing_a_row() {
    let pg = posbridge_pgtest::Cluster::start().expect("start PostgreSQL");
    let url = pg.url();
    let open = |url: String| {
        tokio::task::spawn_blocking(move || {
            let mut c = PgConfig::new(url);
            c.pool_size = 8;
            Arc::new(PgBooks::connect(&c).unwrap())
        })
    };
    let (a, b) = (open(url.clone()).await.unwrap(), open(url).await.unwrap());
    let ops = [
        Operators::new(Books::new(a.clone())),
        Operators::new(Books::new(b.clone())),
    ];
    const EACH: usize = 40;
    let mut tasks = Vec::new();
    for (n, o) in ops.iter().enumerate() {
        for i in 0..EACH {
            let o = o.clone();
            tasks.push(tokio::spawn(async move {
                o.audit(AuditEntry {
                    operator: "root",
                    action: "points.adjust",
                    target: Some(format!("account:{n}-{i}")),
                    detail: json!({"i": i}),
                    remote: None,
                })
                .await
            }));
        }
    }
    for t in tasks {
        t.await.unwrap().expect("an audit row was lost");
    }
    let (rows, next) = ops[0].audit_page(None, 1000).await.unwrap();
    assert_eq!(next, None);
    let mut ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=(2 * EACH) as i64).collect::<Vec<_>>());
    let mut targets: Vec<_> = rows.iter().filter_map(|r| r.target.clone()).collect();
    targets.sort();
    targets.dedup();
    assert_eq!(targets.len(), 2 * EACH);
    // They did collide, and were run again rather than failed.
    let retried = a.retry_stats().retried + b.retry_stats().retried;
    assert!(retried > 0, "no conflicts: the test did not race");
}

/// A till in central mode still serves its own `[backoffice]`: the same
/// pages over the central ledger (its `Central` client), with the till's
/// own operators. What it changes, the chain sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_till_in_central_mode_serves_its_own_pages_over_the_chain() {
    let chain = support::Chain::start(1, PROGRAMME);
    let port = free_port();
    let till = chain.till_with(
        "T-1",
        "S1",
        0,
        &format!("[backoffice]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let other = chain.till("T-2", "S2", 0);
    let reg = other
        .client()
        .await
        .call(
            "account.register",
            json!({"phone": "+79160000001", "name": "Anna", "card_number": CARD, "secret": "4711"}),
        )
        .await
        .unwrap();
    let id = reg["account"].as_i64().unwrap();
    // The till's own operator, on the till's own store.
    let mut child = Command::new(support::till_bin())
        .arg("--config")
        .arg(&till.config)
        .args(["backoffice", "operator", "add", "root", "--role", "admin"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "correct horse battery").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut b = Browser::new(port);
    assert_eq!(
        b.login("root", "correct horse battery").await,
        StatusCode::SEE_OTHER
    );
    let (status, page) = b.get("/?q=%2B79160000001").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains(&format!("/customers/{id}")), "{page}");
    let (_, page) = b.get(&format!("/customers/{id}")).await;
    let good = [
        ("csrf", field(&page, "csrf")),
        ("form_key", field(&page, "form_key")),
        ("direction", "accrue".into()),
        ("amount", "7".into()),
        ("reason", "goodwill".into()),
        ("note", String::new()),
        ("expires", String::new()),
    ];
    let form: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, page) = b.post(&format!("/customers/{id}/adjust"), &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    // The other store's till sees the points: they are the chain's.
    let r = other
        .client()
        .await
        .call("card.resolve", json!({"number": CARD}))
        .await
        .unwrap();
    assert_eq!(r["account"]["balance"], "7");
    chain.verify();
}
