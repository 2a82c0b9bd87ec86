//! The back office in a real browser: Debian's headless Chromium driven
//! through chromedriver (WebDriver), against the real daemon serving
//! `[backoffice] listen` on loopback. An admin logs in, finds a customer by
//! phone, adds points with a reason, sees the balance and the history line
//! with the operator's name, blocks the card and the till refuses a sale on
//! it. Screenshots of the pages: `UPDATE_SCREENSHOTS=1` writes docs/img/.

mod common;
#[path = "browser/webdriver.rs"]
mod webdriver;

use std::path::Path;

use common::{Daemon, add_operator};
use posbridge::client::ClientError;
use serde_json::json;
use webdriver::Browser;

const PROGRAMME: &str = "[ledger.programme]\nwelcome_bonus = \"100\"\nwelcome_expiry_days = 30\n";

/// Where a screenshot goes: the docs' own (docs/img) with
/// `UPDATE_SCREENSHOTS=1`, else cargo's scratch directory, so a test run
/// leaves the checkout as it was.
fn shot(name: &str) -> std::path::PathBuf {
    let dir = if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/img")
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
    };
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_finds_a_customer_adds_points_and_blocks_the_card_in_a_browser() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let d = Daemon::start(
        "",
        &format!("{PROGRAMME}[backoffice]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let mut c = d.client().await;
    let reg = c
        .call(
            "account.register",
            json!({"phone": "+79161234567", "name": "Мария Иванова", "virtual": true}),
        )
        .await
        .unwrap();
    let number = reg["card_number"].as_str().unwrap().to_owned();
    add_operator(&d, "anna", "admin", None, "correct horse battery");

    let b = Browser::start(1366, 768).await;
    let base = format!("http://127.0.0.1:{port}");
    b.open(&base).await;
    // No session yet: the login page.
    b.find("input[name=password]").await;
    b.screenshot(&shot("backoffice-login.png")).await;
    b.fill("input[name=name]", "anna").await;
    b.fill("input[name=password]", "wrong").await;
    b.submit("form[action='/login'] button").await;
    b.find("input[name=password]").await;
    b.fill("input[name=name]", "anna").await;
    b.fill("input[name=password]", "correct horse battery")
        .await;
    b.submit("form[action='/login'] button").await;
    // The office works in Russian (the browser says English).
    b.open(&format!("{base}/?lang=ru")).await;
    assert!(
        b.text("nav, header, body").await.contains("Клиенты"),
        "{}",
        b.text("body").await
    );

    // Find the customer by phone, written as a person would.
    b.fill("input[name=q]", "+7 916 123-45-67").await;
    b.submit("form[action='/'] button").await;
    let hit = b.text("table").await;
    assert!(hit.contains("Мария Иванова"), "{hit}");
    assert!(
        !hit.contains(&number),
        "a full card number on the page: {hit}"
    );
    b.screenshot(&shot("backoffice-search.png")).await;
    b.submit("table a").await;
    assert_eq!(b.text("#balance").await, "100");

    // Add points with a reason.
    b.click("input[name=direction][value=accrue]").await;
    b.fill("input[name=amount]", "25").await;
    b.script("document.querySelector('select[name=reason]').value = 'complaint';")
        .await;
    b.fill("input[name=note]", "Гость долго ждал заказ").await;
    b.submit("form[action$='/adjust'] button").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while b.text("#balance").await != "125" {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            b.text("body").await
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let row = b.text("tr.txn").await;
    assert!(
        row.contains("anna"),
        "the history line names the operator: {row}"
    );
    assert!(row.contains("Гость долго ждал заказ"), "{row}");
    b.screenshot(&shot("backoffice-customer.png")).await;

    // Block the card: the till refuses a sale on it.
    b.submit("form[action*='/cards/'] button").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !b.text("body").await.contains("blocked") {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            b.text("body").await
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let sale = c
        .call(
            "sale.commit",
            json!({"idempotency_key": "k1", "number": number, "receipt_id": "R1",
                   "lines": [{"sku": "A1", "name": "Чай", "category": "food", "qty": "1", "price": "100"}]}),
        )
        .await;
    match sale {
        Err(ClientError::Rpc { error }) => assert_eq!(error["code"], 2002, "{error}"),
        other => panic!("a sale on a blocked card: {other:?}"),
    }

    // The audit log lists what the admin did.
    b.open(&format!("{base}/audit")).await;
    let audit = b.text("body").await;
    assert!(audit.contains("anna"), "{audit}");
    b.screenshot(&shot("backoffice-audit.png")).await;
    b.quit().await;
}

/// Waits until the page's body contains `what`.
async fn body_shows(b: &Browser, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !b.text("body").await.contains(what) {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} not shown:\n{}",
            b.text("body").await
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_reports_a_card_lost_and_issues_a_replacement_in_a_browser() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let d = Daemon::start(
        "",
        &format!("{PROGRAMME}[backoffice]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let mut c = d.client().await;
    let reg = c
        .call(
            "account.register",
            json!({"phone": "+79160000042", "name": "Пётр Сидоров", "virtual": true}),
        )
        .await
        .unwrap();
    let id = reg["account"].as_i64().unwrap();
    let number = reg["card_number"].as_str().unwrap().to_owned();
    add_operator(&d, "olga", "operator", None, "olga's long password");

    let b = Browser::start(1366, 768).await;
    let base = format!("http://127.0.0.1:{port}");
    b.open(&format!("{base}/login?lang=en")).await;
    b.fill("input[name=name]", "olga").await;
    b.fill("input[name=password]", "olga's long password").await;
    b.submit("form[action='/login'] button").await;
    b.find("input[name=q]").await;
    b.open(&format!("{base}/customers/{id}")).await;

    // Report the card lost: the till refuses it.
    b.submit("form[action$='/lost'] button").await;
    body_shows(&b, "lost").await;
    let sale = c
        .call(
            "sale.commit",
            json!({"idempotency_key": "L1", "number": number, "receipt_id": "L1",
                   "lines": [{"sku": "A1", "name": "Чай", "category": "food", "qty": "1", "price": "100"}]}),
        )
        .await;
    match sale {
        Err(ClientError::Rpc { error }) => assert_eq!(error["code"], 2002, "{error}"),
        other => panic!("a sale on a lost card: {other:?}"),
    }

    // Replace it with a physical card typed by the operator.
    b.submit("a.replace").await;
    b.fill("input[name=number]", "6035 7777 0000 4444").await;
    b.submit("form[action$='/replace'] button").await;
    body_shows(&b, "****4444").await;
    assert_eq!(b.text("#new-card").await, "****4444");
    // The customer card lists the new card masked, the old one lost, and
    // the balance (it lives on the account) unchanged.
    b.open(&format!("{base}/customers/{id}")).await;
    let cards = b.text("#cards").await;
    assert!(
        cards.contains("****4444") && cards.contains("lost"),
        "{cards}"
    );
    assert!(!cards.contains("6035777700004444") && !cards.contains(&number));
    assert_eq!(b.text("#balance").await, "100");
    b.screenshot(&shot("backoffice-cards.png")).await;
    b.quit().await;
}

/// A viewer runs this month's report in the browser and downloads its
/// movements as CSV into Chromium's download directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_runs_a_report_and_downloads_its_csv_in_a_browser() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let d = Daemon::start(
        "",
        &format!("{PROGRAMME}[backoffice]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let mut c = d.client().await;
    // Welcome 100, and 5 % of a 1000 sale: 150 accrued today.
    let reg = c
        .call(
            "account.register",
            json!({"phone": "+79161234567", "name": "Мария Иванова", "virtual": true}),
        )
        .await
        .unwrap();
    let number = reg["card_number"].as_str().unwrap().to_owned();
    let sale = c
        .call(
            "sale.commit",
            json!({"idempotency_key": "k1", "number": number, "receipt_id": "R1",
                   "lines": [{"sku": "A1", "name": "Чай", "category": "food", "qty": "1", "price": "1000"}]}),
        )
        .await
        .unwrap();
    assert_eq!(sale["accrued"], "50");
    add_operator(&d, "vera", "viewer", None, "vera's long password");

    let downloads = tempfile::tempdir().unwrap();
    let b = Browser::start_with(1366, 768, Some(downloads.path())).await;
    let base = format!("http://127.0.0.1:{port}");
    b.open(&format!("{base}/login?lang=ru")).await;
    b.fill("input[name=name]", "vera").await;
    b.fill("input[name=password]", "vera's long password").await;
    b.submit("form[action='/login'] button").await;
    b.submit("nav a[href='/reports']").await;
    // The form comes filled with this month so far, per day.
    b.submit("#run").await;
    let movements = b.text("#movements").await;
    assert!(movements.contains("150"), "{movements}");
    assert!(b.text("h1").await.contains("Отчёты"));
    b.screenshot(&shot("backoffice-reports.png")).await;

    b.click("a.csv[href*='section=movements']").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let csv = loop {
        let files: Vec<std::path::PathBuf> = std::fs::read_dir(downloads.path())
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        // Chromium writes into a `.crdownload` file and renames it when
        // done; the named file may still be empty for a moment after.
        let writing = files
            .iter()
            .any(|p| p.extension().is_some_and(|x| x == "crdownload"));
        let done = files
            .iter()
            .find(|p| p.extension().is_some_and(|x| x == "csv"))
            .and_then(|p| std::fs::read_to_string(p).ok())
            .filter(|t| !writing && t.ends_with('\n'));
        if let Some(t) = done {
            break t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no CSV downloaded into {}",
            downloads.path().display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("period,store,terminal,accrued,redeemed,expired,adjusted,returns")
    );
    let accrued: u32 = lines
        .map(|l| l.split(',').nth(3).unwrap().parse::<u32>().unwrap())
        .sum();
    assert_eq!(accrued, 150, "{csv}");
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_creates_a_customer_in_a_browser_and_finds_them_by_phone() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let d = Daemon::start(
        "",
        &format!("{PROGRAMME}[backoffice]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let mut c = d.client().await;
    c.call("group.create", json!({"name": "cinema-club"}))
        .await
        .unwrap();
    add_operator(&d, "olga", "operator", Some("500"), "olga's long password");

    let b = Browser::start(1366, 768).await;
    let base = format!("http://127.0.0.1:{port}");
    b.open(&format!("{base}/login?lang=en")).await;
    b.fill("input[name=name]", "olga").await;
    b.fill("input[name=password]", "olga's long password").await;
    b.submit("form[action='/login'] button").await;
    b.find("#new-customer").await;
    b.submit("#new-customer").await;

    // A bad phone first: the error stands next to the field.
    b.find("form[action='/customers/new']").await;
    b.fill("input[name=name]", "Пётр Сидоров").await;
    b.fill("input[name=phone]", "12345").await;
    b.submit("form[action='/customers/new'] button").await;
    let err = b.text("#phone-error").await;
    assert!(!err.is_empty(), "{}", b.text("body").await);
    b.screenshot(&shot("backoffice-new-customer.png")).await;
    b.fill("input[name=phone]", "8 (903) 111-22-33").await;
    b.click("input[name=groups][value=cinema-club]").await;
    b.submit("form[action='/customers/new'] button").await;
    // The generated secret, shown this once; then on to the customer's card.
    let secret = b.text("#secret").await;
    assert!(!secret.trim().is_empty(), "{}", b.text("body").await);
    b.click("#customer-link").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // The customer's card, with the group.
    while b.text("#groups").await != "cinema-club" {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            b.text("body").await
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(b.text("#balance").await, "100");

    // Found by phone, as a person types it.
    b.open(&base).await;
    b.fill("input[name=q]", "+7 903 111 22 33").await;
    b.submit("form[action='/'] button").await;
    let hit = b.text("table").await;
    assert!(hit.contains("Пётр Сидоров"), "{hit}");
    let a = c
        .call("account.get", json!({"phone": "+79031112233"}))
        .await
        .unwrap();
    assert_eq!(a["groups"], json!(["cinema-club"]));
    b.quit().await;
}

/// On a tablet held upright (768 CSS pixels wide) every page fits its
/// width: nothing needs a sideways scroll of the whole page (wide tables
/// scroll inside their own box).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_fits_a_tablet_held_upright() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let d = Daemon::start(
        "",
        &format!("{PROGRAMME}[backoffice]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let mut c = d.client().await;
    let reg = c
        .call(
            "account.register",
            json!({"phone": "+79161234567", "name": "Мария Иванова", "email": "maria.ivanova@example.ru", "virtual": true}),
        )
        .await
        .unwrap();
    let id = reg["account"].as_i64().unwrap();
    c.call(
        "sale.commit",
        json!({"idempotency_key": "t1", "number": reg["card_number"], "receipt_id": "R-1",
            "lines": [{"sku": "1", "name": "x", "category": "g", "qty": "1", "price": "1000"}]}),
    )
    .await
    .unwrap();
    add_operator(&d, "anna", "admin", None, "correct horse battery");

    let b = Browser::start(768, 1024).await;
    let base = format!("http://127.0.0.1:{port}");
    b.open(&format!("{base}/login?lang=ru")).await;
    b.fill("input[name=name]", "anna").await;
    b.fill("input[name=password]", "correct horse battery")
        .await;
    b.submit("form[action='/login'] button").await;
    b.find("input[name=q]").await;
    for path in [
        "/?q=иванова".to_owned(),
        format!("/customers/{id}"),
        format!("/customers/{id}/edit"),
        "/customers/new".to_owned(),
        "/reports".to_owned(),
        "/programme".to_owned(),
        "/audit".to_owned(),
        "/import".to_owned(),
    ] {
        b.open(&format!("{base}{path}")).await;
        b.find("h1").await;
        let fits = b
            .script("return [document.documentElement.scrollWidth, window.innerWidth];")
            .await;
        let (page, view) = (fits[0].as_i64().unwrap(), fits[1].as_i64().unwrap());
        assert!(
            page <= view,
            "{path} is {page} px wide on a {view} px screen"
        );
    }
    b.open(&format!("{base}/customers/{id}")).await;
    b.screenshot(&shot("backoffice-tablet.png")).await;
    b.quit().await;
}

/// A swipe with the secret code 4711 in track 2's discretionary data.
const WEB_SWIPE: &[u8] =
    b"%B6035000011112222^IVANOVA/MARIA^4912101?\r;6035000011112222=49121014711?\r";

/// Polls `script` (a function body) until it returns `true`.
async fn until(b: &Browser, what: &str, script: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while b.script(script).await != serde_json::Value::Bool(true) {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within 15 s; the page shows:\n{}",
            b.text("body").await
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_pos_shows_a_swiped_customer_and_sells_with_points() {
    use tokio::io::AsyncWriteExt;
    let tcp = common::TcpTokens::new();
    let (mut msr, msr_path) = common::pty_pair();
    let printer_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (_, paper) = posbridge_drivers::sim::escpos::EscPosSim::new(Default::default())
        .listen_tcp(format!("127.0.0.1:{printer_port}").parse().unwrap())
        .unwrap();
    let d = Daemon::start(
        &tcp.daemon_extra,
        &format!(
            "{PROGRAMME}[[reader]]\nname = \"msr\"\ntype = \"msr\"\n[reader.serial]\nport = \"{msr_path}\"\n\
             [reader.card]\nsecret = \"track2_discretionary\"\nsecret_len = 4\n\
             [[printer]]\nname = \"receipt\"\ntype = \"escpos\"\npaper = \"58mm\"\n\
             [printer.tcp]\nhost = \"127.0.0.1\"\nport = {printer_port}\n"
        ),
    );
    // The customer, with the welcome bonus to spend.
    let mut c = d.client().await;
    c.call(
        "account.register",
        json!({"phone": "+79161234567", "name": "Мария Иванова",
               "card_number": "6035000011112222", "secret": "4711"}),
    )
    .await
    .unwrap();

    let b = Browser::start(1366, 900).await;
    b.open(&format!("http://{}/pos/", tcp.addr)).await;
    // English labels whatever the browser's language, for the assertions.
    b.script("sessionStorage.setItem('pb_lang', 'en');").await;
    b.open(&format!("http://{}/pos/", tcp.addr)).await;
    b.fill("#token", common::CASHIER_TOKEN).await;
    b.click("#login-form button").await;
    until(
        &b,
        "connected",
        "return !document.getElementById('pos').hidden && document.getElementById('status').className === 'open';",
    )
    .await;
    until(
        &b,
        "the printer listed",
        "return document.getElementById('printer').options.length === 1;",
    )
    .await;

    msr.write_all(WEB_SWIPE).await.unwrap();
    body_shows(&b, "****2222").await;
    let customer = b.text("#customer").await;
    assert!(customer.contains("100"), "balance shown: {customer}");
    assert!(customer.contains("secret code read"), "{customer}");

    b.fill("#line-sku", "4600000000017").await;
    b.fill("#line-name", "Tonometer").await;
    b.fill("#line-price", "1000.00").await;
    b.click("#line-form button").await;
    b.script("document.getElementById('redeem').value = '50';")
        .await;
    b.click("#quote").await;
    body_shows(&b, "Points spendable").await;
    b.click("#commit").await;
    body_shows(&b, "Sale committed").await;
    until(
        &b,
        "the receipt preview",
        "const i = document.getElementById('preview-img'); return !!i && i.complete && i.naturalWidth > 0;",
    )
    .await;
    // The ledger spent the points once: what the page shows is the
    // ledger's balance, and it fell by the 50 spent less what the sale earned.
    let acct = c
        .call("card.resolve", json!({"number": "6035000011112222"}))
        .await
        .unwrap();
    let balance = acct["account"]["balance"].as_str().unwrap().to_owned();
    assert_ne!(balance, "100", "{acct}");
    let result = b.text("#result").await;
    assert!(result.contains(&format!("100 → {balance}")), "{result}");
    // And the receipt reached the paper.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let text: String = paper
            .paper()
            .receipts
            .iter()
            .flat_map(|r| r.lines.iter().map(|l| l.text.clone()))
            .collect::<Vec<_>>()
            .join("\n");
        if text.contains("Tonometer") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no receipt on the printer simulator: {text:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    b.screenshot(&shot("web-pos.png")).await;
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_from_a_foreign_origin_is_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = common::TcpTokens::new();
    let _d = Daemon::start(
        &tcp.daemon_extra,
        "[web]\norigins = [\"http://127.0.0.1:1\"]\n",
    );
    // A page on another loopback port that tries the API both ways.
    let page = format!(
        r#"<!doctype html><div id="out">running</div>
<script src="http://{addr}/posbridge.js"></script>
<script>
const out = document.getElementById("out");
const results = [];
fetch("http://{addr}/rpc", {{method: "POST", headers: {{"Authorization": "Bearer {token}", "Content-Type": "application/json"}},
  body: '{{"jsonrpc":"2.0","id":1,"method":"system.ping"}}'}})
  .then(r => r.text()).then(t => results.push("fetch ok " + t), e => results.push("fetch refused"))
  .then(() => {{
    const pb = new PosBridge("ws://{addr}/ws", {{token: "{token}", timeoutMs: 3000}});
    return pb.call("system.ping").then(r => results.push("ws ok " + r), e => results.push("ws refused"))
      .then(() => pb.close());
  }})
  .then(() => {{ out.textContent = results.join("; "); }});
</script>"#,
        addr = tcp.addr,
        token = common::CASHIER_TOKEN
    );
    let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let foreign = server.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = server.accept().await else {
                return;
            };
            let page = page.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
            });
        }
    });
    let b = Browser::start(800, 600).await;
    b.open(&format!("http://{foreign}/")).await;
    until(
        &b,
        "both attempts done",
        "return document.getElementById('out').textContent !== 'running';",
    )
    .await;
    let out = b.text("#out").await;
    assert_eq!(out, "fetch refused; ws refused", "{out}");
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_technician_opens_the_console_sees_the_devices_and_prints_a_test_page() {
    use tokio::io::AsyncWriteExt;
    let tcp = common::TcpTokens::new();
    let (mut msr, msr_path) = common::pty_pair();
    let printer_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (_, paper) = posbridge_drivers::sim::escpos::EscPosSim::new(Default::default())
        .listen_tcp(format!("127.0.0.1:{printer_port}").parse().unwrap())
        .unwrap();
    let (fiscal_addr, _fiscal) = posbridge_drivers::sim::shtrih::ShtrihSim::new()
        .spawn_tcp("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let d = Daemon::start(
        &tcp.daemon_extra,
        &format!(
            "[[reader]]\nname = \"msr\"\ntype = \"msr\"\n[reader.serial]\nport = \"{msr_path}\"\n\
             [[reader]]\nname = \"scanner\"\ntype = \"scanner\"\n[reader.serial]\nport = \"/dev/ttyUSB7\"\n\
             [[printer]]\nname = \"receipt\"\ntype = \"escpos\"\npaper = \"58mm\"\n\
             [printer.tcp]\nhost = \"127.0.0.1\"\nport = {printer_port}\n\
             [[printer]]\nname = \"fiscal\"\ntype = \"shtrih\"\n\
             [printer.tcp]\nhost = \"127.0.0.1\"\nport = {}\n",
            fiscal_addr.port()
        ),
    );

    let b = Browser::start(1280, 1100).await;
    b.open(&format!("http://{}/console?lang=en", tcp.addr))
        .await;
    b.fill("input[name=token]", common::ADMIN_TOKEN).await;
    b.click("#login").await;
    // The page is rendered by the server: reload until the printer, the
    // register and the reader are connected and the ФН has been read.
    let url = format!("http://{}/console?lang=en", tcp.addr);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let ready = b
            .script(
                "return document.querySelectorAll('#devices td.connected').length === 3 \
                 && document.querySelector('#fiscal td.unsent')?.textContent === '0';",
            )
            .await;
        if ready == serde_json::Value::Bool(true) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the console never showed the devices connected:\n{}",
            b.text("body").await
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        b.open(&url).await;
    }
    let devices = b.text("#devices").await;
    assert!(
        devices.contains("receipt") && devices.contains("msr"),
        "{devices}"
    );
    // The scanner's port does not exist: the page says what to do.
    assert!(devices.contains("/dev/ttyUSB7 is not there"), "{devices}");

    // A swipe shows in the live feed, masked.
    until(
        &b,
        "the feed list on the page",
        "return !!document.getElementById('feed-empty');",
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    msr.write_all(WEB_SWIPE).await.unwrap();
    until(
        &b,
        "the masked read in the feed",
        "return document.getElementById('feed').textContent.includes('****2222');",
    )
    .await;
    assert!(!b.text("#feed").await.contains("6035000011112222"));

    b.click("button.preview").await;
    until(
        &b,
        "the test page's preview",
        "const i = document.getElementById('preview-receipt'); return !i.hidden && i.complete && i.naturalWidth > 0;",
    )
    .await;
    b.screenshot(&shot("console.png")).await;

    b.click("button.test-print").await;
    body_shows(&b, "Job queued").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !paper
        .paper()
        .receipts
        .iter()
        .any(|r| r.lines.iter().any(|l| l.text.contains("console-test-")))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the test page never reached the printer simulator: {:?}\n{}",
            paper
                .paper()
                .receipts
                .iter()
                .flat_map(|r| r.lines.iter().map(|l| l.text.clone()))
                .collect::<Vec<_>>(),
            d.log()
                .lines()
                .filter(|l| l.contains("job") || l.contains("console"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    b.quit().await;
    drop(d);
}
