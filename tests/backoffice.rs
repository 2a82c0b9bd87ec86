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

    async fn login(&mut self, name: &str, password: &str) -> reqwest::Response {
        let r = self
            .http
            .post(format!("{}/login", self.base))
            .form(&[("name", name), ("password", password)])
            .send()
            .await
            .unwrap();
        if let Some(c) = r.headers().get("set-cookie") {
            let c = c.to_str().unwrap();
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
    let mut locations = Vec::new();
    for _ in 0..2 {
        let r = olga
            .http
            .post(format!("{}/customers/new", olga.base))
            .header("cookie", &olga.cookie)
            .form(&good)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        locations.push(r.headers()["location"].to_str().unwrap().to_owned());
    }
    assert_eq!(locations[0], locations[1], "one customer for one form");
    let id: i64 = locations[0].rsplit('/').next().unwrap().parse().unwrap();
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
    // The welcome bonus (100) and the opening balance, once.
    assert_eq!(h["balance"], "220.5", "{h}");
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
