//! The technician's console, `/healthz`, `/readyz` and `/metrics` on the
//! till's HTTP port, against the daemon binary: an ESC/POS simulator on
//! loopback TCP, a magstripe reader on a pseudo-terminal, a reader whose
//! port is missing.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{ADMIN_TOKEN, CASHIER_TOKEN, Daemon, TcpTokens, eventually, pty_pair};
use posbridge_drivers::sim::escpos::{EscPosSim, EscPosSimHandle, SimConfig};
use posbridge_drivers::sim::shtrih::ShtrihSim;
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::json;
use tokio::io::AsyncWriteExt;

const SWIPE: &[u8] = b";6035123412341234=49121014711?\r";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn printer_entry(port: u16) -> String {
    format!(
        "[[printer]]\nname = \"receipt\"\ntype = \"escpos\"\nprofile = \"epson-tm-t20\"\n\
         [printer.tcp]\nhost = \"127.0.0.1\"\nport = {port}\nconnect_timeout_ms = 500\n"
    )
}

fn reader_entry(name: &str, port: &Path) -> String {
    format!(
        "[[reader]]\nname = \"{name}\"\ntype = \"msr\"\n[reader.serial]\nport = \"{}\"\n",
        port.display()
    )
}

fn fiscal_entry(port: u16) -> String {
    format!(
        "[[printer]]\nname = \"fiscal\"\ntype = \"shtrih\"\n\
         [printer.tcp]\nhost = \"127.0.0.1\"\nport = {port}\nconnect_timeout_ms = 500\n"
    )
}

fn start_sim(port: u16) -> EscPosSimHandle {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    EscPosSim::new(SimConfig::default())
        .listen_tcp(addr)
        .unwrap()
        .1
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Logs in with `token`; the session cookie (`name=value`) when granted.
async fn login(base: &str, token: &str) -> (StatusCode, Option<String>, String) {
    let r = http()
        .post(format!("{base}/console/login"))
        .form(&[("token", token), ("lang", "en")])
        .send()
        .await
        .unwrap();
    let status = r.status();
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("posbridge_console="));
    if let Some(c) = &cookie {
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
            assert!(c.contains(attr), "{c} lacks {attr}");
        }
    }
    let cookie = cookie.map(|c| c.split(';').next().unwrap().to_owned());
    (status, cookie, r.text().await.unwrap())
}

async fn page(base: &str, cookie: &str) -> String {
    let r = http()
        .get(format!("{base}/console?lang=en"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.text().await.unwrap()
}

fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    page[at..at + 64].to_owned()
}

#[tokio::test]
async fn health_ready_and_metrics() {
    let t = TcpTokens::new();
    let port = free_port();
    let d = Daemon::start(&t.daemon_extra, &printer_entry(port));
    let base = format!("http://{}", t.addr);
    let h = http();
    let r = h.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "ok");

    // No printer listens yet: not ready, and the body says which.
    let r = h.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["ready"], false);
    assert_eq!(body["not_ready"][0]["device"], "receipt", "{body}");

    let _sim = start_sim(port);
    eventually("readyz 200 once the printer connects", || async {
        let r = h.get(format!("{base}/readyz")).send().await.ok()?;
        (r.status() == StatusCode::OK).then_some(())
    })
    .await;

    let mut c = t.login(CASHIER_TOKEN).await;
    c.call("system.ping", json!({})).await.unwrap();
    let _ = c.call("no.such.method", json!({})).await;
    let r = h.get(format!("{base}/metrics")).send().await.unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let m = r.text().await.unwrap();
    for want in [
        r#"posbridge_requests_total{method="system.ping",outcome="ok"} 1"#,
        r#"posbridge_requests_total{method="other",outcome="unknown_method"} 1"#,
        r#"posbridge_requests_total{method="auth.login",outcome="ok"} 1"#,
        r#"posbridge_request_duration_seconds_count{method="system.ping"} 1"#,
        r#"posbridge_device_up{device="receipt",kind="escpos"} 1"#,
        r#"posbridge_device_state{device="receipt",state="connected"} 1"#,
        r#"posbridge_print_queue_depth{printer="receipt"} 0"#,
        r#"posbridge_printer_paper_out{printer="receipt"} 0"#,
        "posbridge_ledger_up 1",
    ] {
        assert!(m.contains(want), "missing {want}:\n{m}");
    }
    drop(d);
}

#[tokio::test]
async fn console_login_pages_fix_test_print_csrf_and_feed() {
    let t = TcpTokens::new();
    let port = free_port();
    let sim = start_sim(port);
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("msr");
    let (mut device, pts) = pty_pair();
    std::os::unix::fs::symlink(&pts, &link).unwrap();
    let missing = dir.path().join("gone");
    let (fiscal_addr, _fiscal) = ShtrihSim::new()
        .spawn_tcp("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let rest = format!(
        "{}{}{}{}",
        printer_entry(port),
        fiscal_entry(fiscal_addr.port()),
        reader_entry("msr", &link),
        reader_entry("loose", &missing)
    );
    let d = Daemon::start(&t.daemon_extra, &rest);
    let base = format!("http://{}", t.addr);

    // Without a session: the login form, and nothing else.
    let r = http().get(format!("{base}/console")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("name=\"token\""));
    let r = http()
        .get(format!("{base}/console/feed"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let (s, cookie, body) = login(&base, "wrong-token-0000000000000").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(cookie.is_none() && body.contains("Wrong token"), "{body}");
    let (s, cookie, body) = login(&base, CASHIER_TOKEN).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(cookie.is_none() && body.contains("admin role"), "{body}");
    let (s, cookie, _) = login(&base, ADMIN_TOKEN).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let cookie = cookie.expect("a session cookie");

    let p = eventually("the dashboard with the devices connected", || async {
        let p = page(&base, &cookie).await;
        // The printer, the register and the pty reader; and the
        // register's ФН read (its OFD count shown).
        (p.matches("class=\"connected\"").count() == 3
            && p.contains("data-register=\"fiscal\"")
            && p.contains("<td class=\"unsent\">0</td>"))
        .then_some(p)
    })
    .await;
    for want in [
        "receipt",
        "msr",
        "loose",
        "Test print",
        "Configuration check",
        "the file is valid",
        "local",
    ] {
        assert!(p.contains(want), "missing {want}:\n{p}");
    }
    // The missing port's fix names it and what to do.
    assert!(
        p.contains(&format!("{} is not there", missing.display()))
            && p.contains("posbridge devices"),
        "{p}"
    );
    // The Russian page.
    let ru = http()
        .get(format!("{base}/console?lang=ru"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        ru.contains("Тестовая печать") && ru.contains("Устройства"),
        "{ru}"
    );

    // CSRF: a test print without the page's token is refused.
    let r = http()
        .post(format!("{base}/console/test-print"))
        .header("cookie", &cookie)
        .form(&[("csrf", "0".repeat(64).as_str()), ("printer", "receipt")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(sim.paper().receipts.is_empty());

    let csrf = csrf_of(&p);
    let r = http()
        .post(format!("{base}/console/test-print"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str()), ("printer", "receipt")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/console?queued=console-test-")
    );
    eventually("the test page on the simulator's paper", || async {
        let paper = sim.paper();
        paper
            .receipts
            .iter()
            .any(|r| {
                r.lines
                    .iter()
                    .any(|l| l.text.contains("posbridge test page"))
            })
            .then_some(())
    })
    .await;

    let r = http()
        .get(format!("{base}/console/preview?printer=receipt"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert!(r.bytes().await.unwrap().starts_with(b"\x89PNG"));

    // The feed: a swipe arrives masked.
    let mut feed = http()
        .get(format!("{base}/console/feed"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), StatusCode::OK);
    device.write_all(SWIPE).await.unwrap();
    let mut got = String::new();
    while !got.contains("****1234") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), feed.chunk())
            .await
            .expect("a feed event within 10 s")
            .unwrap()
            .expect("the feed open");
        got.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!got.contains("6035123412341234"), "{got}");
    let m = http()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains(r#"posbridge_reader_reads_total{reader="msr"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"posbridge_fiscal_unsent_documents{register="fiscal"} 0"#),
        "{m}"
    );
    assert!(
        m.contains(r#"posbridge_device_up{device="loose",kind="msr"} 0"#),
        "{m}"
    );
    assert!(
        m.contains(r#"posbridge_print_jobs_total{printer="receipt",outcome="done"} 1"#),
        "{m}"
    );

    // Logging out ends the session.
    let r = http()
        .post(format!("{base}/console/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = http()
        .get(format!("{base}/console/preview?printer=receipt"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    drop(d);
}
