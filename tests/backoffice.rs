//! The back office end to end over real HTTP on loopback: the real daemon
//! binary serving `[backoffice] listen`, operators created with the real
//! CLI, cookies and forms handled by hand as a browser would.

mod common;

use std::process::Command;

use common::{BIN, Daemon, add_operator, eventually};
use posbridge::client::ClientError;
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};

const PROGRAMME: &str = "[ledger.programme]\nwelcome_bonus = \"100\"\nwelcome_expiry_days = 30\n";

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A browser's view of one operator: the base address and the session
/// cookie once logged in.
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

    /// Opens the login page (its token and cookie), then posts the form.
    async fn login(&mut self, name: &str, password: &str) -> reqwest::Response {
        let (pre, token) = login_token(&self.http, &self.base).await;
        let r = self
            .http
            .post(format!("{}/login", self.base))
            .header("cookie", pre)
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
            assert!(
                c.contains("HttpOnly") && c.contains("SameSite=Strict"),
                "{c}"
            );
            self.cookie = c.split(';').next().unwrap().to_owned();
        }
        r
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

/// The login page's pre-session cookie (`bo_login=…`) and its form's
/// token.
async fn login_token(http: &reqwest::Client, base: &str) -> (String, String) {
    let r = http.get(format!("{base}/login")).send().await.unwrap();
    let c = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("bo_login="))
        .expect("the login page sets its token cookie");
    assert!(
        c.contains("HttpOnly") && c.contains("SameSite=Strict"),
        "{c}"
    );
    let page = r.text().await.unwrap();
    (
        c.split(';').next().unwrap().to_owned(),
        field(&page, "csrf"),
    )
}

/// The value of the first `name="…" value="…"` input in a page.
fn field(page: &str, name: &str) -> String {
    let at = page
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no {name} field in:\n{page}"));
    let rest = &page[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_owned()
}

fn rpc_code(r: Result<Value, ClientError>) -> i64 {
    match r {
        Err(ClientError::Rpc { error }) => error["code"].as_i64().unwrap(),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

#[tokio::test]
async fn operators_find_a_customer_adjust_points_block_a_card_and_are_audited() {
    let port = free_port();
    let d = Daemon::start(
        "",
        &format!("{PROGRAMME}[backoffice]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let mut c = d.client().await;
    let reg = c
        .call(
            "account.register",
            json!({"phone": "+79161234567", "name": "Ivan Petrov", "virtual": true}),
        )
        .await
        .unwrap();
    let id = reg["account"].as_i64().unwrap();
    let number = reg["card_number"].as_str().unwrap().to_owned();
    add_operator(&d, "root", "admin", None, "correct horse battery");
    add_operator(&d, "olga", "operator", Some("50"), "olga's long password");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&d.config)
        .args(["backoffice", "operator", "list"])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(list.contains("root\tadmin\t-\tfalse"), "{list}");
    assert!(list.contains("olga\toperator\t50\tfalse"), "{list}");
    assert!(!list.contains("argon2"));

    let mut admin = Browser::new(port);
    // No session: to the login page.
    let (status, _) = admin.get("/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        admin.login("root", "wrong password").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        admin.login("root", "correct horse battery").await.status(),
        StatusCode::SEE_OTHER
    );

    // Search by phone and by the card's last four digits.
    let (status, page) = admin.get("/?q=%2B7%20916%20123-45-67").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(&format!("/customers/{id}")), "{page}");
    let last4 = &number[number.len() - 4..];
    let (_, page) = admin.get(&format!("/?q={last4}")).await;
    assert!(page.contains("Ivan Petrov"), "{page}");
    assert!(!page.contains(&number), "a full card number on a page");

    // The customer card.
    let (status, page) = admin.get(&format!("/customers/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<td id=\"balance\">100</td>"), "{page}");
    assert!(!page.contains(&number));
    let csrf = field(&page, "csrf");
    let form_key = field(&page, "form_key");
    let adjust = format!("/customers/{id}/adjust");

    // Without the CSRF token: refused, nothing booked.
    let (status, _) = admin
        .post(
            &adjust,
            &[
                ("form_key", &form_key),
                ("direction", "accrue"),
                ("amount", "25"),
                ("reason", "complaint"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A strict amount: an error next to the field.
    let (status, page) = admin
        .post(
            &adjust,
            &[
                ("csrf", &csrf),
                ("form_key", &form_key),
                ("direction", "accrue"),
                ("amount", "1e3"),
                ("reason", "complaint"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("id=\"amount-error\""), "{page}");

    // Accrue 25 with a reason; the same form twice books once.
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
    assert!(page.contains("<td id=\"balance\">125</td>"), "{page}");
    assert!(page.contains("complaint: late delivery"), "{page}");
    assert!(page.contains("<td class=\"operator\">root</td>"), "{page}");
    // The till's own history says the same.
    let h = c
        .call("account.history", json!({"account": id}))
        .await
        .unwrap();
    assert_eq!(h["transactions"][0]["operator"], "root");
    assert_eq!(h["transactions"][0]["reason"], "complaint: late delivery");

    // Block the card: a sale on it is refused at the till.
    let (status, _) = admin
        .post(
            &format!("/customers/{id}/cards/0"),
            &[("csrf", &csrf), ("status", "blocked")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let sale = json!({"idempotency_key": "bo-1", "number": number, "receipt_id": "R1",
        "lines": [{"sku": "1", "name": "x", "category": "g", "qty": "1", "price": "100"}]});
    assert_eq!(rpc_code(c.call("sale.commit", sale.clone()).await), 2002);
    let (_, page) = admin.get(&format!("/customers/{id}")).await;
    assert!(page.contains(">blocked<"), "{page}");
    // Unblocked again, it earns (5 points on this sale).
    let (status, _) = admin
        .post(
            &format!("/customers/{id}/cards/0"),
            &[("csrf", &csrf), ("status", "active")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    c.call("sale.commit", sale).await.unwrap();

    // An operator is held to the limit; within it, fine. No audit page.
    let mut olga = Browser::new(port);
    assert_eq!(
        olga.login("olga", "olga's long password").await.status(),
        StatusCode::SEE_OTHER
    );
    let (_, page) = olga.get(&format!("/customers/{id}")).await;
    let (ocsrf, okey) = (field(&page, "csrf"), field(&page, "form_key"));
    let over = [
        ("csrf", ocsrf.as_str()),
        ("form_key", okey.as_str()),
        ("direction", "deduct"),
        ("amount", "50.0001"),
        ("reason", "correction"),
    ];
    let (status, page) = olga.post(&adjust, &over).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("id=\"amount-error\""), "{page}");
    let within = [
        ("csrf", ocsrf.as_str()),
        ("form_key", okey.as_str()),
        ("direction", "deduct"),
        ("amount", "50"),
        ("reason", "correction"),
    ];
    let (status, page) = olga.post(&adjust, &within).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let (_, page) = olga.get(&format!("/customers/{id}")).await;
    assert!(page.contains("<td id=\"balance\">80</td>"), "{page}");
    assert_eq!(olga.get("/audit").await.0, StatusCode::FORBIDDEN);

    // A viewer reads (in Russian, as its browser asks) but changes nothing.
    add_operator(&d, "vera", "viewer", None, "vera's long password");
    let mut vera = Browser::new(port);
    vera.login("vera", "vera's long password").await;
    let r = vera
        .http
        .get(format!("{}/customers/{id}", vera.base))
        .header("cookie", &vera.cookie)
        .header("accept-language", "ru-RU,ru;q=0.9,en;q=0.8")
        .send()
        .await
        .unwrap();
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Баланс") && !page.contains("form_key"),
        "{page}"
    );
    let vcsrf = field(&page, "csrf");
    let (status, _) = vera
        .post(
            &adjust,
            &[
                ("csrf", vcsrf.as_str()),
                ("form_key", "0123456789abcdef0123456789abcdef"),
                ("direction", "accrue"),
                ("amount", "1"),
                ("reason", "goodwill"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Disabled, its session ends at the next request.
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&d.config)
        .args(["backoffice", "operator", "disable", "vera"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(vera.get("/").await.0, StatusCode::SEE_OTHER);

    // The audit log lists every change, with who and from where; the CSV too.
    let (status, page) = admin.get("/audit").await;
    assert_eq!(status, StatusCode::OK);
    for what in ["login", "points.adjust", "card.block", "olga", "127.0.0.1"] {
        assert!(page.contains(what), "{what} missing from\n{page}");
    }
    let r = admin
        .http
        .get(format!("{}/audit.csv", admin.base))
        .header("cookie", &admin.cookie)
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = r.text().await.unwrap();
    assert!(csv.starts_with("id,at,operator,action,target,detail,remote"));
    assert!(csv.contains("card.block"));
    assert!(!csv.contains(&number));

    // Logins from one address wait after five failures, right password or not.
    let mut guess = Browser::new(port);
    for _ in 0..5 {
        assert_eq!(
            guess.login("root", "not it at all").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        guess.login("root", "correct horse battery").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[test]
fn a_remote_listen_address_needs_allow_remote() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, "[backoffice]\nlisten = \"0.0.0.0:7460\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["config", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("backoffice.listen"), "{err}");
    std::fs::write(
        &path,
        "[backoffice]\nlisten = \"0.0.0.0:7460\"\nallow_remote = true\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["config", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Programme with two levels, for the tier progress on the customer card.
const TIERED: &str = "[ledger.programme]\nwelcome_bonus = \"100\"\n\n\
[[ledger.programme.tiers]]\nname = \"Bronze\"\npriority = 1\n\n\
[[ledger.programme.tiers]]\nname = \"Silver\"\npriority = 2\nmin_spend = \"1000\"\nspend_period_days = 30\n";

/// The text of the element with `id` (`<tag id="id">text<`).
fn by_id(page: &str, id: &str) -> String {
    let at = page
        .find(&format!("id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no #{id} in:\n{page}"));
    let rest = &page[at + id.len() + 6..];
    rest[..rest.find('<').unwrap()].to_owned()
}

fn sale(key: &str, number: &str) -> Value {
    json!({"idempotency_key": key, "number": number, "receipt_id": key,
        "lines": [{"sku": "1", "name": "x", "category": "g", "qty": "1", "price": "100"}]})
}

#[tokio::test]
async fn cards_are_reported_lost_replaced_and_get_a_new_secret_shown_once() {
    let port = free_port();
    let d = Daemon::start(
        "",
        &format!("{TIERED}[backoffice]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let mut c = d.client().await;
    let reg = c
        .call(
            "account.register",
            json!({"phone": "+79161230000", "name": "Anna Lost", "virtual": true}),
        )
        .await
        .unwrap();
    let id = reg["account"].as_i64().unwrap();
    let number = reg["card_number"].as_str().unwrap().to_owned();
    add_operator(&d, "root", "admin", None, "correct horse battery");
    add_operator(&d, "vera", "viewer", None, "vera's long password");
    let mut admin = Browser::new(port);
    admin.login("root", "correct horse battery").await;
    let (_, page) = admin.get(&format!("/customers/{id}")).await;
    let csrf = field(&page, "csrf");
    // Tier and progress to the next by the programme's rule.
    assert_eq!(by_id(&page, "tier"), "Bronze");
    assert!(
        by_id(&page, "tier-progress").starts_with("Silver: spend 1000 (within 30 days)"),
        "{page}"
    );

    // Reported lost (the same form twice: one change, one audit row).
    let k1 = "11111111111111111111111111111111";
    for _ in 0..2 {
        let (status, _) = admin
            .post(
                &format!("/customers/{id}/cards/0/lost"),
                &[("csrf", &csrf), ("form_key", k1)],
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
    }
    assert_eq!(
        rpc_code(c.call("sale.commit", sale("s0", &number)).await),
        2002
    );
    // Unblock does not bring a lost card back, nor does "found" unconfirmed.
    let (status, _) = admin
        .post(
            &format!("/customers/{id}/cards/0"),
            &[("csrf", &csrf), ("status", "active")],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let found = format!("/customers/{id}/cards/0/found");
    let k2 = "22222222222222222222222222222222";
    let (status, _) = admin
        .post(&found, &[("csrf", &csrf), ("form_key", k2)])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, page) = admin.get(&format!("/customers/{id}")).await;
    assert!(page.contains("<td class=\"status\">lost</td>"), "{page}");
    // Confirmed, it earns again.
    let (status, _) = admin
        .post(
            &found,
            &[("csrf", &csrf), ("form_key", k2), ("confirm", "yes")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    c.call("sale.commit", sale("s1", &number)).await.unwrap();

    // A replacement: a malformed number is refused next to the field.
    let replace = format!("/customers/{id}/cards/0/replace");
    let (status, page) = admin.get(&replace).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("name=\"number\""), "{page}");
    let k3 = "33333333333333333333333333333333";
    let (status, page) = admin
        .post(
            &replace,
            &[("csrf", &csrf), ("form_key", k3), ("number", "12ab")],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("id=\"number-error\""), "{page}");
    // A physical card typed with spaces; the same form twice issues once.
    let physical = "6035777700003333";
    for _ in 0..2 {
        let (status, page) = admin
            .post(
                &replace,
                &[
                    ("csrf", &csrf),
                    ("form_key", k3),
                    ("number", "6035 7777 0000 3333"),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(by_id(&page, "new-card"), "****3333");
        assert!(!page.contains(physical));
    }
    let view = c.call("account.get", json!({"account": id})).await.unwrap();
    assert_eq!(view["cards"].as_array().unwrap().len(), 2, "{view}");
    assert_eq!(view["cards"][0]["status"], "lost");
    assert_eq!(view["cards"][1]["status"], "active");
    // The old card is refused; the new one earns on the same account.
    assert_eq!(
        rpc_code(c.call("sale.commit", sale("s2", &number)).await),
        2002
    );
    let r = c.call("sale.commit", sale("s3", physical)).await.unwrap();
    assert_eq!(r["account"].as_i64(), Some(id), "{r}");
    let (_, page) = admin.get(&format!("/customers/{id}")).await;
    assert!(page.contains("<td id=\"balance\">110</td>"), "{page}");
    assert!(
        by_id(&page, "tier-progress").starts_with("Silver: spend 800"),
        "{page}"
    );
    // Burn dates are on the programme's clock (Moscow by default), not UTC.
    assert!(page.contains("UTC+03:00"), "{page}");
    assert!(
        !page.contains("T00:00:00Z") && !page.contains(":00Z<"),
        "{page}"
    );

    // A new secret for the new card, shown once; a repeat shows nothing.
    let k4 = "44444444444444444444444444444444";
    let secret_url = format!("/customers/{id}/cards/1/secret");
    let (status, page) = admin
        .post(&secret_url, &[("csrf", &csrf), ("form_key", k4)])
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let secret = by_id(&page, "secret");
    assert_eq!(secret.len(), 6);
    let (status, page) = admin
        .post(&secret_url, &[("csrf", &csrf), ("form_key", k4)])
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(!page.contains(&secret) && !page.contains("id=\"secret\""));
    // It spends at the till.
    let t = c
        .call("card.enter", json!({"number": physical, "secret": secret}))
        .await
        .unwrap();
    let spent = c
        .call(
            "sale.commit",
            json!({"idempotency_key": "s4", "card_token": t["card_token"], "receipt_id": "s4",
                   "lines": [{"sku": "1", "name": "x", "category": "g", "qty": "1", "price": "100"}],
                   "redeem": "10"}),
        )
        .await
        .unwrap();
    assert_eq!(spent["redeemed"], "10");

    // A viewer sees no card actions and may not take them.
    let mut vera = Browser::new(port);
    vera.login("vera", "vera's long password").await;
    let (_, page) = vera.get(&format!("/customers/{id}")).await;
    assert!(
        !page.contains("/lost\"") && !page.contains("/replace\""),
        "{page}"
    );
    let vcsrf = field(&page, "csrf");
    let (status, _) = vera
        .post(
            &format!("/customers/{id}/cards/1/lost"),
            &[
                ("csrf", &vcsrf),
                ("form_key", "55555555555555555555555555555555"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Audited once each, masked, and the secret nowhere.
    let (_, audit) = admin.get("/audit").await;
    assert_eq!(audit.matches(">card.lost<").count(), 1, "{audit}");
    assert_eq!(audit.matches(">card.replace<").count(), 1, "{audit}");
    assert_eq!(audit.matches(">card.secret<").count(), 1, "{audit}");
    assert!(audit.contains(">card.found<"), "{audit}");
    assert!(audit.contains("****3333"), "{audit}");
    let r = admin
        .http
        .get(format!("{}/audit.csv", admin.base))
        .header("cookie", &admin.cookie)
        .send()
        .await
        .unwrap();
    let csv = r.text().await.unwrap();
    for hidden in [secret.as_str(), physical, number.as_str()] {
        assert!(!csv.contains(hidden), "{hidden} in the audit log:\n{csv}");
        assert!(!audit.contains(hidden), "{hidden} on the audit page");
        assert!(!d.log().contains(hidden), "{hidden} in the daemon's log");
    }
}

#[tokio::test]
async fn the_programme_page_shows_the_rules_and_admins_manage_groups() {
    let port = free_port();
    let d = Daemon::start(
        "",
        &format!("{TIERED}[backoffice]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    add_operator(&d, "root", "admin", None, "correct horse battery");
    add_operator(&d, "olga", "operator", None, "olga's long password");
    let mut admin = Browser::new(port);
    admin.login("root", "correct horse battery").await;
    let (status, page) = admin.get("/programme").await;
    assert_eq!(status, StatusCode::OK);
    for what in [
        "[ledger.programme] expiry_months",
        "[ledger.programme] utc_offset_minutes",
        "[ledger.programme] cap_basis",
        "% (line)",
        "UTC+03:00",
        "Silver",
        "[[ledger.programme.tiers]]",
        "central.toml",
    ] {
        assert!(page.contains(what), "{what} missing from\n{page}");
    }
    let csrf = field(&page, "csrf");
    let create = |name: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("name", name.to_owned()),
            ("description", "shop staff".to_owned()),
        ]
    };
    let form = create("staff");
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _) = admin.post("/programme/groups", &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // Again: the error is next to the name.
    let (status, page) = admin.post("/programme/groups", &form).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // (A POST's page is in the default language, Russian.)
    assert!(
        page.contains("id=\"name-error\">Такая группа уже есть"),
        "{page}"
    );
    let (status, page) = admin
        .post("/programme/groups", &[("csrf", &csrf), ("name", "   ")])
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("id=\"name-error\""), "{page}");
    let (_, page) = admin.get("/programme").await;
    assert!(page.contains("<td>staff</td><td>shop staff</td>"), "{page}");

    // An operator reads the page but cannot change groups.
    let mut olga = Browser::new(port);
    olga.login("olga", "olga's long password").await;
    let (status, page) = olga.get("/programme").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains("/programme/groups"), "{page}");
    let ocsrf = field(&page, "csrf");
    let (status, _) = olga
        .post(
            "/programme/groups/delete",
            &[("csrf", &ocsrf), ("name", "staff")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The admin deletes it (twice: the second finds it gone).
    for _ in 0..2 {
        let (status, _) = admin
            .post(
                "/programme/groups/delete",
                &[("csrf", &csrf), ("name", "staff")],
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
    }
    let (_, page) = admin.get("/programme").await;
    assert!(!page.contains("<td>staff</td>"), "{page}");
    let (_, audit) = admin.get("/audit").await;
    assert!(audit.contains(">group.create<") && audit.contains(">group.delete<"));
}

#[tokio::test]
async fn cyrillic_names_are_found_whatever_their_case() {
    let port = free_port();
    let d = Daemon::start(
        "",
        &format!("{PROGRAMME}[backoffice]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let mut c = d.client().await;
    let reg = c
        .call(
            "account.register",
            json!({"phone": "+79161110000", "name": "Иван Иванов", "virtual": true}),
        )
        .await
        .unwrap();
    let id = reg["account"].as_i64().unwrap();
    add_operator(&d, "vera", "viewer", None, "vera's long password");
    let mut vera = Browser::new(port);
    vera.login("vera", "vera's long password").await;
    for q in ["иванов", "ИВАН", "Иванов"] {
        let (status, page) = vera.get(&format!("/?q={q}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains(&format!("/customers/{id}")), "{q}: {page}");
    }
    let (_, page) = vera.get("/?q=петров").await;
    assert!(!page.contains(&format!("/customers/{id}")), "{page}");
}

/// Login CSRF (bo-central): a login post needs the token its login page
/// set, in both the cookie and the form; a foreign page can send neither.
#[tokio::test]
async fn a_login_needs_the_token_of_its_login_page() {
    let port = free_port();
    let d = Daemon::start(
        "",
        &format!("{PROGRAMME}[backoffice]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    add_operator(&d, "root", "admin", None, "correct horse battery");
    let b = Browser::new(port);
    let post = |cookie: Option<String>, csrf: Option<String>| {
        let mut r = b.http.post(format!("{}/login", b.base));
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        let mut form = vec![
            ("name", "root".to_owned()),
            ("password", "correct horse battery".to_owned()),
        ];
        if let Some(t) = csrf {
            form.push(("csrf", t));
        }
        r.header("accept-language", "en").form(&form).send()
    };
    // No token at all, as a foreign page's form would post.
    let r = post(None, None).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("login form expired"));
    // The form's token without the cookie, and a cookie of another page.
    let (c1, t1) = login_token(&b.http, &b.base).await;
    let (c2, t2) = login_token(&b.http, &b.base).await;
    assert_ne!(t1, t2, "each login page has its own token");
    assert_eq!(
        post(None, Some(t1.clone())).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(Some(c2.clone()), Some(t1.clone()))
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(Some("bo_login=".into()), Some(String::new()))
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    // The matching pair logs in.
    let r = post(Some(c1), Some(t1)).await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        r.headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("bo_session="))
    );
    assert!(d.log().contains("a login without its form's token"));
}

/// Slow clients (bo-central): more stalled half-requests than the port
/// serves at once do not keep a normal request out for long: the extra
/// connections are closed at once, the stalled ones after the header
/// timeout (10 s), and the normal request is answered.
#[tokio::test]
async fn stalled_clients_do_not_keep_the_pages_from_others() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port = free_port();
    let d = Daemon::start(
        "",
        &format!("{PROGRAMME}[backoffice]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let addr = format!("127.0.0.1:{port}");
    let limit = posbridge::backoffice::MAX_CONNECTIONS;
    let mut stalled = Vec::new();
    for _ in 0..limit + 8 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        // Half a request head, then nothing.
        let _ = s.write_all(b"GET /login HTTP/1.1\r\nHost: x\r\n").await;
        stalled.push(s);
    }
    let started = std::time::Instant::now();
    let bound = posbridge::backoffice::HEADER_TIMEOUT + std::time::Duration::from_secs(15);
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()
        .unwrap();
    let mut refused = 0;
    loop {
        match http.get(format!("http://{addr}/login")).send().await {
            Ok(r) => {
                assert_eq!(r.status(), StatusCode::OK);
                break;
            }
            Err(e) => {
                refused += 1;
                assert!(
                    started.elapsed() < bound,
                    "the page did not answer within {bound:?} behind stalled clients: {e}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
    assert!(
        refused > 0,
        "with every slot stalled, a request must wait or be refused"
    );
    // The stalled connections were closed by the server, not left open.
    let mut buf = [0u8; 256];
    for s in stalled.iter_mut().take(limit) {
        let n = tokio::time::timeout(std::time::Duration::from_secs(15), s.read(&mut buf))
            .await
            .expect("a stalled connection was left open");
        // Closed (0 bytes or reset) or answered 408 before closing.
        if let Ok(n) = n
            && n > 0
        {
            assert!(String::from_utf8_lossy(&buf[..n]).contains("408"), "{n}");
        }
    }
    assert!(d.log().contains("too many connections"), "{}", d.log());
}

/// The movements CSV summed over its rows: accrued, redeemed, expired,
/// adjusted, returns.
fn movement_totals(csv: &str) -> [rust_decimal::Decimal; 5] {
    let mut sums = [rust_decimal::Decimal::ZERO; 5];
    for row in csv.lines().skip(1) {
        let cols: Vec<&str> = row.split(',').collect();
        assert_eq!(cols.len(), 8, "{row}");
        for (i, s) in sums.iter_mut().enumerate() {
            *s += cols[3 + i].parse::<rust_decimal::Decimal>().unwrap();
        }
    }
    sums
}

#[tokio::test]
async fn reports_show_sales_adjustments_and_burns_and_export_them() {
    use rust_decimal::Decimal;
    let port = free_port();
    let d = Daemon::start(
        "",
        &format!("{PROGRAMME}[backoffice]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let mut c = d.client().await;
    const CARD: &str = "6035000011112222";
    let lines = |total: u32| json!([{"sku": "A1", "name": "x", "category": "general", "qty": "1", "price": total.to_string()}]);
    // A name a spreadsheet would run: the CSV must defuse it.
    let reg = c
        .call(
            "account.register",
            json!({"phone": "+79161234567", "name": "=Maria", "card_number": CARD, "secret": "4711"}),
        )
        .await
        .unwrap();
    let id = reg["account"].as_i64().unwrap();
    // Welcome 100, then a sale, then a sale that spends 30.
    let s1 = c
        .call(
            "sale.commit",
            json!({"idempotency_key": "r1", "number": CARD, "receipt_id": "R1", "lines": lines(1000)}),
        )
        .await
        .unwrap();
    let t = c
        .call("card.enter", json!({"number": CARD, "secret": "4711"}))
        .await
        .unwrap()["card_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let s2 = c
        .call(
            "sale.commit",
            json!({"idempotency_key": "r2", "card_token": t, "receipt_id": "R2", "lines": lines(1000), "redeem": "30"}),
        )
        .await
        .unwrap();
    assert_eq!(s2["redeemed"], "30");
    let dec = |v: &Value| v.as_str().unwrap().parse::<Decimal>().unwrap();
    let sales_accrued = dec(&s1["accrued"]) + dec(&s2["accrued"]);
    // A deduction of 3 (from the soonest lot: the welcome bonus), then 7
    // points that burn in two seconds.
    c.call(
        "ledger.adjust",
        json!({"idempotency_key": "j1", "number": CARD, "amount": "-3", "reason": "correction"}),
    )
    .await
    .unwrap();
    let burns = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let burns_text = burns
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    c.call(
        "ledger.adjust",
        json!({"idempotency_key": "j2", "number": CARD, "amount": "7", "reason": "goodwill", "expires_at": burns_text}),
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    let balance = dec(&c
        .call("card.resolve", json!({"number": CARD}))
        .await
        .unwrap()["account"]["balance"]);
    assert_eq!(
        balance,
        Decimal::from(100) + sales_accrued - Decimal::from(30 + 3)
    );

    add_operator(&d, "vera", "viewer", None, "vera's long password");
    let mut viewer = Browser::new(port);
    // Not logged in: to the login page, for the CSV too.
    assert_eq!(
        viewer.get("/reports.csv?section=movements").await.0,
        StatusCode::SEE_OTHER
    );
    viewer.login("vera", "vera's long password").await;
    let (status, page) = viewer.get("/reports").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("href=\"/reports\""), "no nav link: {page}");
    assert!(page.contains("name=\"from\""), "{page}");
    assert!(!page.contains("id=\"movements\""), "ran without asking");

    // Around today in programme time (Moscow): yesterday to the day after
    // tomorrow, so the test holds across midnight.
    let today = time::OffsetDateTime::now_utc()
        .to_offset(time::UtcOffset::from_hms(3, 0, 0).unwrap())
        .date();
    let from = (today - time::Duration::days(1)).to_string();
    let to = (today + time::Duration::days(2)).to_string();
    let q = format!("from={from}&to={to}&granularity=day&by_store=1&by_terminal=1");
    let (status, page) = viewer.get(&format!("/reports?{q}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("id=\"movements\""), "{page}");
    assert!(
        page.contains(&format!(
            "/reports.csv?section=movements&amp;{}",
            q.replace('&', "&amp;")
        )),
        "{page}"
    );
    assert!(
        page.contains(&format!("<td class=\"liability\">{balance}</td>")),
        "{page}"
    );
    assert!(page.contains(&format!("/customers/{id}")), "{page}");

    let csv = |section: &str| {
        let http = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}/reports.csv?section={section}&{q}");
        let cookie = viewer.cookie.clone();
        async move {
            let r = http.get(url).header("cookie", cookie).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
            assert!(
                r.headers()["content-disposition"]
                    .to_str()
                    .unwrap()
                    .starts_with("attachment; filename=\"report-"),
            );
            r.text().await.unwrap()
        }
    };
    let movements = csv("movements").await;
    assert!(
        movements
            .starts_with("period,store,terminal,accrued,redeemed,expired,adjusted,returns\r\n"),
        "{movements}"
    );
    assert_eq!(
        movement_totals(&movements),
        [
            Decimal::from(100) + sales_accrued,
            Decimal::from(30),
            Decimal::from(7),
            Decimal::from(4),
            Decimal::ZERO
        ],
        "{movements}"
    );
    // The burn is on the day the lot expired, not on the day it was read.
    let burn_day = burns
        .to_offset(time::UtcOffset::from_hms(3, 0, 0).unwrap())
        .date()
        .to_string();
    assert!(
        movements
            .lines()
            .any(|l| l.starts_with(&burn_day) && l.split(',').nth(5) == Some("7")),
        "{movements}"
    );
    let summary = csv("summary").await;
    let row: Vec<&str> = summary.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(row[1].parse::<Decimal>().unwrap(), balance, "{summary}");
    assert!(row[2].parse::<Decimal>().unwrap() <= balance, "{summary}");
    let top = csv("top_customers").await;
    assert_eq!(
        top,
        format!("account,name,accrued\r\n{id},'=Maria,{sales_accrued}\r\n")
    );
    let new = csv("new_customers").await;
    assert_eq!(new.lines().count(), 2, "{new}");
    assert!(new.lines().nth(1).unwrap().ends_with(",1"), "{new}");

    // Week and month fold the same figures.
    for g in ["week", "month"] {
        let q = format!("from={from}&to={to}&granularity={g}");
        let (status, page) = viewer.get(&format!("/reports?{q}")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
    }

    // Bad fields: errors next to them, nothing run.
    let (status, page) = viewer
        .get("/reports?from=2026-13-01&to=2026-01-01&granularity=day")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("id=\"from-error\""), "{page}");
    assert!(!page.contains("id=\"movements\""), "{page}");
    let (status, page) = viewer
        .get("/reports?from=2026-01-01&to=2027-06-01&granularity=day")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("id=\"to-error\""), "{page}");
    let (status, _) = viewer.get(&format!("/reports.csv?section=nope&{q}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Logs `name` in and returns the browser with the page's CSRF token.
async fn logged_in(port: u16, name: &str, password: &str) -> (Browser, String) {
    let mut b = Browser::new(port);
    assert_eq!(
        b.login(name, password).await.status(),
        StatusCode::SEE_OTHER
    );
    let (_, page) = b.get("/?q=zzzz").await;
    let csrf = field(&page, "csrf");
    (b, csrf)
}

#[tokio::test]
async fn operators_create_and_edit_customers_and_assign_groups_in_bulk() {
    let port = free_port();
    let d = Daemon::start(
        "",
        &format!("{PROGRAMME}[backoffice]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let mut c = d.client().await;
    for g in ["vip", "staff"] {
        c.call("group.create", json!({"name": g})).await.unwrap();
    }
    c.call(
        "account.register",
        json!({"phone": "+79160000001", "name": "Taken", "virtual": true}),
    )
    .await
    .unwrap();
    add_operator(&d, "olga", "operator", Some("50"), "olga's long password");
    add_operator(&d, "vera", "viewer", None, "vera's long password");
    let (olga, csrf) = logged_in(port, "olga", "olga's long password").await;

    // The form: every bad field gets its error next to it, nothing is made.
    let (status, page) = olga.get("/customers/new").await;
    assert_eq!(status, StatusCode::OK);
    let key = field(&page, "form_key");
    let (status, page) = olga
        .post(
            "/customers/new",
            &[
                ("csrf", &csrf),
                ("form_key", &key),
                ("name", "Anna"),
                ("phone", "12345"),
                ("email", "anna@nowhere"),
                ("code_word", "x"),
                ("card", "12ab"),
                ("groups", "nosuch"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    for id in [
        "phone-error",
        "email-error",
        "code_word-error",
        "card-error",
        "groups-error",
    ] {
        assert!(page.contains(&format!("id=\"{id}\"")), "{id} in\n{page}");
    }
    assert!(
        !page.contains("value=\"x\""),
        "the code word is not shown back"
    );
    // A phone someone has: named next to the phone field.
    let (status, page) = olga
        .post(
            "/customers/new",
            &[
                ("csrf", &csrf),
                ("form_key", &key),
                ("name", "Anna"),
                ("phone", "8 (916) 000-00-01"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.contains("id=\"phone-error\">Клиент с этим телефоном уже есть"),
        "{page}"
    );

    // A good form, twice (a double click): one customer, with a physical card.
    let good = [
        ("csrf", csrf.as_str()),
        ("form_key", key.as_str()),
        ("name", "Anna Sidorova"),
        ("phone", "8 (916) 555-44-33"),
        ("email", "Anna@Example.ru"),
        ("code_word", "Ромашка"),
        ("card", "7700 1234 5678"),
        ("groups", "vip"),
    ];
    let post = || {
        olga.http
            .post(format!("{}/customers/new", olga.base))
            .header("cookie", &olga.cookie)
            .form(&good)
            .send()
    };
    // The first shows the card's generated secret once, beside the card
    // masked and a link to the customer.
    let r = post().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let shown = r.text().await.unwrap();
    let secret = by_id(&shown, "secret");
    assert!(!secret.is_empty(), "{shown}");
    assert_eq!(by_id(&shown, "new-card"), "****5678");
    let link = shown.split("id=\"customer-link\"").nth(1).unwrap();
    let link = link.split("href=\"/customers/").nth(1).unwrap();
    let id: i64 = link[..link.find('"').unwrap()].parse().unwrap();
    // The second (a double click) goes to that customer, showing no secret.
    let r = post().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("/customers/{id}"),
        "one customer for one form"
    );
    let (_, card_page) = olga.get(&format!("/customers/{id}")).await;
    assert!(!card_page.contains(&secret), "the secret is shown once");
    // The secret works at the till: the card is entered with it.
    c.call(
        "card.enter",
        json!({"number": "770012345678", "secret": secret}),
    )
    .await
    .unwrap();
    // The till finds them, normalised as its own API does.
    let a = c
        .call("account.get", json!({"phone": "+79165554433"}))
        .await
        .unwrap();
    assert_eq!(a["account"], id);
    assert_eq!(a["email"], "anna@example.ru");
    assert_eq!(a["groups"], json!(["vip"]));
    assert_eq!(a["has_code_word"], true);
    let check = c
        .call(
            "account.verify_code_word",
            json!({"account": id, "code_word": "ромашка"}),
        )
        .await
        .unwrap();
    assert_eq!(check["matches"], true);
    let a = c
        .call("account.get", json!({"card_number": "770012345678"}))
        .await
        .unwrap();
    assert_eq!(a["account"], id);
    let (_, page) = olga.get(&format!("/customers/{id}")).await;
    assert!(page.contains("<td id=\"groups\">vip</td>"), "{page}");
    assert!(!page.contains("770012345678"));

    // Edit: a new e-mail, the code word cleared, groups replaced.
    let (status, page) = olga.get(&format!("/customers/{id}/edit")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"code-word-state\">set<"), "{page}");
    assert!(!page.to_lowercase().contains("ромашка"));
    let ekey = field(&page, "form_key");
    let edit = format!("/customers/{id}/edit");
    let (status, page) = olga
        .post(
            &edit,
            &[
                ("csrf", &csrf),
                ("form_key", &ekey),
                ("name", "Anna Sidorova"),
                ("phone", "+7 916 000 00 01"),
                ("email", "anna@example.ru"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("id=\"phone-error\""), "{page}");
    let (status, page) = olga
        .post(
            &edit,
            &[
                ("csrf", &csrf),
                ("form_key", &ekey),
                ("name", "Anna S."),
                ("phone", "+7 916 555 44 33"),
                ("email", "anna.s@example.ru"),
                ("clear_code_word", "1"),
                ("groups", "staff"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let a = c.call("account.get", json!({"account": id})).await.unwrap();
    assert_eq!(a["name"], "Anna S.");
    assert_eq!(a["email"], "anna.s@example.ru");
    assert_eq!(a["has_code_word"], false);
    assert_eq!(a["groups"], json!(["staff"]));

    // A viewer sees no form and is refused one.
    let (vera, vcsrf) = logged_in(port, "vera", "vera's long password").await;
    assert_eq!(vera.get("/customers/new").await.0, StatusCode::FORBIDDEN);
    let (_, page) = vera.get("/?q=7916").await;
    assert!(!page.contains("name=\"id\""), "{page}");
    let (status, _) = vera
        .post(
            "/customers/groups",
            &[
                ("csrf", &vcsrf),
                ("group", "vip"),
                ("op", "add"),
                ("id", "1"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Bulk: both customers found by "7916" go into vip, twice changes once.
    let (_, page) = olga.get("/?q=7916").await;
    assert_eq!(page.matches("name=\"id\"").count(), 2, "{page}");
    let taken = c
        .call("account.get", json!({"phone": "+79160000001"}))
        .await
        .unwrap()["account"]
        .as_i64()
        .unwrap();
    let (ids, taken_s) = (id.to_string(), taken.to_string());
    let bulk = [
        ("csrf", csrf.as_str()),
        ("q", "7916"),
        ("group", "vip"),
        ("op", "add"),
        ("id", ids.as_str()),
        ("id", taken_s.as_str()),
    ];
    let (status, page) = olga.post("/customers/groups", &bulk).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("2 / 2"), "{page}");
    let (_, page) = olga.post("/customers/groups", &bulk).await;
    assert!(page.contains("0 / 2"), "{page}");
    for who in [id, taken] {
        let a = c
            .call("account.get", json!({"account": who}))
            .await
            .unwrap();
        assert!(
            a["groups"].as_array().unwrap().contains(&json!("vip")),
            "{a}"
        );
    }
    let remove = [
        ("csrf", csrf.as_str()),
        ("group", "vip"),
        ("op", "remove"),
        ("id", taken_s.as_str()),
    ];
    let (_, page) = olga.post("/customers/groups", &remove).await;
    assert!(page.contains("1 / 1"), "{page}");
    let a = c
        .call("account.get", json!({"account": taken}))
        .await
        .unwrap();
    assert_eq!(a["groups"], json!([]));
    // More than a page at once: refused, nothing changed.
    let many: Vec<String> = (1..=101).map(|i| i.to_string()).collect();
    let mut over = vec![("csrf", csrf.as_str()), ("group", "vip"), ("op", "add")];
    over.extend(many.iter().map(|i| ("id", i.as_str())));
    assert_eq!(
        olga.post("/customers/groups", &over).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // The audit log has each change.
    add_operator(&d, "root", "admin", None, "correct horse battery");
    let (root, _) = logged_in(port, "root", "correct horse battery").await;
    let (_, page) = root.get("/audit").await;
    for what in [
        "customer.create",
        "customer.edit",
        "group.add",
        "group.remove",
    ] {
        assert!(page.contains(what), "{what} missing from\n{page}");
    }
    assert!(!page.contains("770012345678"));
}

/// A `multipart/form-data` body as a browser sends the import form.
fn multipart(csrf: &str, mode: &str, file: &str) -> (String, Vec<u8>) {
    let b = "----posbridgeboundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, value) in [("csrf", csrf), ("mode", mode)] {
        body.extend_from_slice(
            format!("--{b}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.csv\"\r\n\
             Content-Type: text/csv\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file.as_bytes());
    body.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={b}"), body)
}

async fn upload(b: &Browser, csrf: &str, mode: &str, file: &str) -> (StatusCode, String) {
    let (ct, body) = multipart(csrf, mode, file);
    let r = b
        .http
        .post(format!("{}/import", b.base))
        .header("cookie", &b.cookie)
        .header("accept-language", "en")
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

/// The refused rows of an import page: `(row, reason)`.
fn refused_rows(page: &str) -> Vec<(usize, String)> {
    page.split("<tr class=\"refused\"><td class=\"row\">")
        .skip(1)
        .map(|s| {
            let (n, rest) = s.split_once("</td><td>").unwrap();
            (
                n.parse().unwrap(),
                rest[..rest.find("</td>").unwrap()].to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_admin_imports_customers_from_csv_after_a_dry_run_once() {
    let port = free_port();
    let d = Daemon::start(
        "",
        &format!(
            "{PROGRAMME}[ledger.registration]\ncard_ranges = [\"77\"]\n\
             [backoffice]\nlisten = \"127.0.0.1:{port}\"\n"
        ),
    );
    let mut c = d.client().await;
    c.call("group.create", json!({"name": "vip"}))
        .await
        .unwrap();
    let taken = c
        .call(
            "account.register",
            json!({"phone": "+79160000001", "name": "Here", "card_number": "7700000099"}),
        )
        .await
        .unwrap();
    add_operator(&d, "root", "admin", None, "correct horse battery");
    add_operator(&d, "olga", "operator", None, "olga's long password");
    let (root, csrf) = logged_in(port, "root", "correct horse battery").await;
    let (olga, ocsrf) = logged_in(port, "olga", "olga's long password").await;

    // A BOM, semicolons, a quoted field with the separator, a decimal comma.
    let file = "\u{feff}name;phone;email;card;groups;balance\r\n\
        Анна Петрова;8 (916) 555-44-33;;7700 0000 01;vip;120,50\r\n\
        \"Bob; Jr\";;bob@example.ru;7700000002;;\r\n\
        Bad Phone;12345;;7700000003;;\r\n\
        Dup Phone;+7 916 555 44 33;;7700000004;;\r\n\
        Card Elsewhere;+79160000005;;7700000099;;\r\n\
        Phone Elsewhere;+7 916 000-00-01;;7700000006;;\r\n\
        No Group;+79160000007;;7700000007;nosuch;\r\n\
        Bad Balance;+79160000008;;7700000008;;12.3.4\r\n\
        No Contact;;;7700000009;;\r\n\
        Short;+79160000010\r\n\
        Other Programme;+79160000012;;6000000001;;\r\n";
    let expect_refused = [4, 5, 6, 7, 8, 9, 10, 11, 12];

    // An operator may not import, or even see the page.
    assert_eq!(olga.get("/import").await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        upload(&olga, &ocsrf, "dry", file).await.0,
        StatusCode::FORBIDDEN
    );

    // The dry run names exactly the bad rows, and why; creates nothing.
    let (status, page) = upload(&root, &csrf, "dry", file).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let refused = refused_rows(&page);
    assert_eq!(
        refused.iter().map(|r| r.0).collect::<Vec<_>>(),
        expect_refused,
        "{page}"
    );
    let reason = |n: usize| refused.iter().find(|r| r.0 == n).unwrap().1.clone();
    assert!(reason(4).starts_with("Not a phone number"), "{refused:?}");
    assert_eq!(reason(5), "The phone repeats in the file, row 2");
    assert_eq!(reason(6), "This card is already on another account");
    assert_eq!(reason(7), "A customer with this phone exists");
    assert_eq!(reason(8), "No such group: nosuch");
    assert!(reason(9).starts_with("Balance"), "{refused:?}");
    assert_eq!(reason(10), "Give a phone or an e-mail");
    assert!(
        reason(11).starts_with("Wrong number of fields"),
        "{refused:?}"
    );
    assert!(
        page.contains("<p id=\"would-create\">Customers it would create: <strong>2</strong>"),
        "{page}"
    );
    assert_eq!(
        rpc_code(
            c.call("account.get", json!({"card_number": "7700000001"}))
                .await
        ),
        rpc_code(
            c.call("account.get", json!({"card_number": "1111222233"}))
                .await
        )
    );

    // Import: two customers, the opening balance booked once with its reason.
    for round in 0..2 {
        let (status, page) = upload(&root, &csrf, "apply", file).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
        let page = eventually("the import to finish", || async {
            let (_, page) = root.get("/import").await;
            page.contains("id=\"import-state\">The import finished")
                .then_some(page)
        })
        .await;
        let counts = if round == 0 {
            "Created: 2; Skipped: 0; Refused: 9; Rows in the file: 11"
        } else {
            "Created: 0; Skipped: 2; Refused: 9; Rows in the file: 11"
        };
        assert!(page.contains(counts), "round {round}: {page}");
    }
    let anna = c
        .call("account.get", json!({"card_number": "7700000001"}))
        .await
        .unwrap();
    assert_eq!(anna["phone"], "+79165554433");
    assert_eq!(anna["name"], "Анна Петрова");
    assert_eq!(anna["groups"], json!(["vip"]));
    let h = c
        .call("account.history", json!({"account": anna["account"]}))
        .await
        .unwrap();
    // The opening balance, once, and no welcome bonus: the customer is
    // not new, and brings a balance of their own.
    assert_eq!(h["balance"], "120.5", "{h}");
    assert!(
        !h["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["kind"] == "welcome"),
        "{h}"
    );
    let imports: Vec<&Value> = h["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["reason"] == "import")
        .collect();
    assert_eq!(imports.len(), 1, "{h}");
    let bob = c
        .call("account.get", json!({"email": "bob@example.ru"}))
        .await
        .unwrap();
    assert_eq!(bob["name"], "Bob; Jr");
    // The customer who had the card already is untouched.
    let here = c
        .call("account.get", json!({"account": taken["account"]}))
        .await
        .unwrap();
    assert_eq!(here["name"], "Here");

    // A file past the forms' 64 KiB limit is read on this route.
    let mut big = String::from("name,phone,email,card\n");
    for i in 0..3000 {
        big.push_str(&format!("Someone {i},bad,,{:010}\n", 8_000_000_000u64 + i));
    }
    assert!(big.len() > 64 * 1024);
    let (status, page) = upload(&root, &csrf, "dry", &big).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("<span id=\"refused-count\">3000</span>"),
        "{page}"
    );
    // A bad header is named.
    let (status, page) = upload(&root, &csrf, "dry", "name,phone\nA,B\n").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("id=\"file-error\">Header:"), "{page}");

    let (_, page) = root.get("/audit").await;
    for what in ["customer.import", "customer.import.done", "customer.create"] {
        assert!(page.contains(what), "{what} missing from\n{page}");
    }
}

/// Manual points tied to a past receipt (seed 003: points the guest did
/// not get): only a sale of this very customer is accepted, and the
/// history's reason names the receipt and its transaction.
#[tokio::test]
async fn manual_points_can_be_tied_to_a_past_receipt_of_the_customer() {
    let port = free_port();
    let d = Daemon::start(
        "",
        &format!("{PROGRAMME}[backoffice]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let mut c = d.client().await;
    let mut ids = Vec::new();
    for (phone, receipt) in [("+79161110001", "R-100"), ("+79161110002", "R-200")] {
        let reg = c
            .call("account.register", json!({"phone": phone, "virtual": true}))
            .await
            .unwrap();
        let sale = json!({"idempotency_key": receipt, "number": reg["card_number"],
            "receipt_id": receipt,
            "lines": [{"sku": "1", "name": "x", "category": "g", "qty": "1", "price": "100"}]});
        let r = c.call("sale.commit", sale).await.unwrap();
        ids.push((
            reg["account"].as_i64().unwrap(),
            r["transaction"].as_i64().unwrap(),
        ));
    }
    let (id, txn) = ids[0];
    add_operator(&d, "olga", "operator", Some("500"), "olga's long password");
    let mut b = Browser::new(port);
    b.login("olga", "olga's long password").await;
    let (_, page) = b.get(&format!("/customers/{id}")).await;
    let (csrf, key) = (field(&page, "csrf"), field(&page, "form_key"));
    let post = |receipt: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("form_key", key.clone()),
            ("direction", "accrue".to_owned()),
            ("amount", "5".to_owned()),
            ("reason", "complaint".to_owned()),
            ("note", "no points at the till".to_owned()),
            ("receipt", receipt.to_owned()),
        ]
    };
    // Another customer's receipt, and one that never was: refused at the field.
    for receipt in ["R-200", "R-999"] {
        let form = post(receipt);
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, page) = b.post(&format!("/customers/{id}/adjust"), &form).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{receipt}");
        assert!(page.contains("id=\"receipt-error\""), "{page}");
    }
    let form = post("R-100");
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, page) = b.post(&format!("/customers/{id}/adjust"), &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let h = c
        .call("account.history", json!({"account": id}))
        .await
        .unwrap();
    let reasons: Vec<&str> = h["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["reason"].as_str())
        .collect();
    assert_eq!(
        reasons,
        [format!(
            "complaint: no points at the till (receipt R-100, transaction {txn})"
        )],
        "{h}"
    );
}

/// The history column "Cashier / operator" names the cashier the POS sent
/// with a sale and a return, and the operator of a manual posting.
#[tokio::test]
async fn the_history_names_the_cashier_of_a_sale_and_a_return() {
    let port = free_port();
    let d = Daemon::start(
        "",
        &format!("{PROGRAMME}[backoffice]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let mut c = d.client().await;
    let reg = c
        .call(
            "account.register",
            json!({"phone": "+79161239999", "name": "Ivan Cash", "virtual": true}),
        )
        .await
        .unwrap();
    let id = reg["account"].as_i64().unwrap();
    let number = reg["card_number"].as_str().unwrap().to_owned();
    let mut s = sale("cash-1", &number);
    s["cashier"] = json!("Anna K. #17");
    let sold = c.call("sale.commit", s).await.unwrap();
    c.call(
        "sale.refund",
        json!({"idempotency_key": "cash-r1", "transaction": sold["transaction"],
               "amount": "10", "cashier": "Олег"}),
    )
    .await
    .unwrap();
    add_operator(&d, "root", "admin", None, "correct horse battery");
    let (b, _) = logged_in(port, "root", "correct horse battery").await;
    let (status, page) = b.get(&format!("/customers/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Cashier / operator"), "{page}");
    assert!(!page.contains("cashier not recorded"), "{page}");
    let cells: Vec<&str> = page
        .split("<td class=\"operator\">")
        .skip(1)
        .map(|r| &r[..r.find('<').unwrap()])
        .collect();
    // Newest first: the return, then the sale (then the welcome bonus).
    assert_eq!(cells[..2], ["Олег", "Anna K. #17"], "{page}");
}

/// The programme page lists the groups 50 a page, by name, with a link to
/// the next page; the pages together hold each group once.
#[tokio::test]
async fn the_programme_page_pages_the_groups() {
    let port = free_port();
    let d = Daemon::start(
        "",
        &format!("{PROGRAMME}[backoffice]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let mut c = d.client().await;
    let mut names: Vec<String> = (0..57).map(|i| format!("g{i:02}")).collect();
    // Bytewise: capitals before small letters, Cyrillic after both.
    names.extend(["Zeta".to_owned(), "ёлка".to_owned()]);
    for n in &names {
        c.call("group.create", json!({"name": n})).await.unwrap();
    }
    names.sort();
    add_operator(&d, "vera", "viewer", None, "vera's long password");
    let (b, _) = logged_in(port, "vera", "vera's long password").await;
    let mut seen = Vec::new();
    let mut path = "/programme".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = b.get(&path).await;
        assert_eq!(status, StatusCode::OK);
        pages += 1;
        let table = &page[page.find("id=\"groups\"").unwrap()..];
        let table = &table[..table.find("</table>").unwrap()];
        let rows: Vec<String> = table
            .split("<tr><td>")
            .skip(1)
            .map(|r| r[..r.find('<').unwrap()].to_owned())
            .collect();
        assert!(rows.len() <= 50, "{}", rows.len());
        seen.extend(rows);
        match page.find("id=\"groups-next\" href=\"") {
            Some(at) => {
                let rest = &page[at + 23..];
                path = rest[..rest.find('"').unwrap()].replace("&amp;", "&");
            }
            None => break,
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(seen, names);
}
