//! Card readers end to end: a pty pair plays a serial magstripe reader or
//! scanner; what is written on the device side must arrive as `card.read`
//! on the socket.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Daemon, pty_pair};
use posbridge::client::Client;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

const NUMBER: &str = "6035123412341234";
/// Track 2: expiry 4912, service code 101, discretionary data "4711", the
/// card's secret code.
const SWIPE: &[u8] = b";6035123412341234=49121014711?\r";

fn reader(name: &str, kind: &str, port: &Path, card: &str) -> String {
    format!(
        "[[reader]]\nname = \"{name}\"\ntype = \"{kind}\"\n[reader.serial]\nport = \"{}\"\n{card}",
        port.display()
    )
}

async fn next_event(c: &mut Client, topic: &str) -> Value {
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), c.next_notification())
            .await
            .unwrap_or_else(|_| panic!("no {topic} event within 10 s"))
            .unwrap();
        if n["params"]["topic"] == topic {
            return n["params"].clone();
        }
    }
}

async fn wait_status(c: &mut Client, device: &str, status: &str) {
    loop {
        let e = next_event(c, "device.status").await;
        if e["device"] == device && e["status"] == status {
            return;
        }
    }
}

#[tokio::test]
async fn a_swipe_on_a_serial_reader_arrives_as_one_card_read() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("msr");
    let (mut device, pts) = pty_pair();
    std::os::unix::fs::symlink(&pts, &link).unwrap();
    let card =
        "[reader.card]\nsecret = \"track2_discretionary\"\nsecret_offset = 0\nsecret_len = 4\n";
    let d = Daemon::start("", &reader("msr", "msr", &link, card));
    let mut sub = d.client().await;
    sub.call(
        "events.subscribe",
        json!({"topics": ["card.*", "device.status"]}),
    )
    .await
    .unwrap();
    let devs = d
        .client()
        .await
        .call("devices.list", json!({}))
        .await
        .unwrap();
    if devs["devices"][0]["status"] != "connected" {
        wait_status(&mut sub, "msr", "connected").await;
    }

    device.write_all(SWIPE).await.unwrap();
    let e = next_event(&mut sub, "card.read").await;
    assert_eq!(e["reader"], "msr");
    assert_eq!(e["source"], "msr");
    assert_eq!(e["card_number"], NUMBER);
    assert_eq!(e["card_masked"], "****1234");
    assert_eq!(e["has_secret"], true);
    assert!(e["card_token"].as_str().unwrap().starts_with("ct_"));
    assert!(
        !e.to_string().contains("4711"),
        "the secret stays in the daemon"
    );

    // Every swipe is exactly one event: five swipes, then a bad one as a
    // marker; exactly five card.read come before the marker's error.
    // Swipes are seconds apart at a till; 100 ms keeps them apart from
    // the 30 ms window that joins the lines of one swipe.
    for _ in 0..5 {
        device.write_all(SWIPE).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    device.write_all(b"%E?;E?\r").await.unwrap();
    let mut reads = 0;
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), sub.next_notification())
            .await
            .expect("events")
            .unwrap();
        match n["params"]["topic"].as_str() {
            Some("card.read") => reads += 1,
            Some("card.read_error") => break,
            _ => {}
        }
    }
    assert_eq!(reads, 5);

    // Unplug, then plug back in (the port path points at a new pty).
    drop(device);
    wait_status(&mut sub, "msr", "disconnected").await;
    let (mut device, pts) = pty_pair();
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&pts, &link).unwrap();
    wait_status(&mut sub, "msr", "connected").await;
    device.write_all(SWIPE).await.unwrap();
    assert_eq!(
        next_event(&mut sub, "card.read").await["card_number"],
        NUMBER
    );

    // Nothing secret reached the log.
    let log = d.log();
    assert!(!log.contains(NUMBER), "full card number in the log");
    assert!(!log.contains("4711"), "secret in the log");
    assert!(!log.contains("=4912"), "track data in the log");
    assert!(log.contains("****1234"), "the masked number is logged");
}

#[tokio::test]
async fn a_scanner_reports_symbology_and_rejects_what_matches_no_rule() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("scanner");
    let (mut device, pts) = pty_pair();
    std::os::unix::fs::symlink(&pts, &link).unwrap();
    let card = "[reader.card]\npresets = [\"number_secret\", \"ean13\"]\n";
    let d = Daemon::start("", &reader("qr", "scanner", &link, card));
    let mut sub = d.client().await;
    sub.call("events.subscribe", json!({"topics": ["card.*"]}))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    device.write_all(b"]Q1777000111222;9QX4\r").await.unwrap();
    let e = next_event(&mut sub, "card.read").await;
    assert_eq!(e["card_number"], "777000111222");
    assert_eq!(e["source"], "qr");
    assert_eq!(e["symbology"], "qr");
    assert_eq!(e["has_secret"], true);

    // The shop's own EAN-13 card, in the restricted-circulation range (a
    // product's EAN-13 would be goods: tests/scans.rs).
    device.write_all(b"]E02001234567893\r").await.unwrap();
    let e = next_event(&mut sub, "card.read").await;
    assert_eq!(e["card_number"], "2001234567893");
    assert_eq!(e["source"], "barcode");

    // A wrong EAN-13 check digit and free text match no rule.
    device.write_all(b"]E02001234567894\r").await.unwrap();
    let e = next_event(&mut sub, "card.read_error").await;
    assert_eq!(e["reader"], "qr");
    assert!(!e["reason"].as_str().unwrap().contains("2001234567894"));
}

#[tokio::test]
async fn card_enter_validates_and_tokenises_a_typed_card() {
    let d = Daemon::start("", "");
    let mut c = d.client().await;
    c.call("events.subscribe", json!({"topics": ["card.read"]}))
        .await
        .unwrap();
    let r = c
        .call("card.enter", json!({"number": NUMBER, "secret": "4711"}))
        .await
        .unwrap();
    assert_eq!(r["source"], "manual");
    assert_eq!(r["has_secret"], true);
    let e = next_event(&mut c, "card.read").await;
    assert_eq!(e["card_token"], r["card_token"]);

    let err = c
        .call("card.enter", json!({"number": "12ab"}))
        .await
        .unwrap_err();
    let posbridge::client::ClientError::Rpc { error } = err else {
        panic!()
    };
    assert_eq!(error["data"]["field"], "number");
    assert!(!d.log().contains("4711"));
}

#[tokio::test]
async fn tracks_on_separate_lines_are_one_swipe() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("msr");
    let (mut device, pts) = pty_pair();
    std::os::unix::fs::symlink(&pts, &link).unwrap();
    let card = "[reader.card]\nsecret = \"track2_discretionary\"\nsecret_len = 4\n";
    let d = Daemon::start("", &reader("msr", "msr", &link, card));
    let mut sub = d.client().await;
    sub.call("events.subscribe", json!({"topics": ["card.*"]}))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Track 1, CR, track 2, CR: one swipe, one event, nothing else.
    device
        .write_all(b"%B6035123412341234^IVANOV/IVAN^4912101?\r;6035123412341234=49121014711?\r")
        .await
        .unwrap();
    let e = next_event(&mut sub, "card.read").await;
    assert_eq!(e["card_number"], NUMBER);
    assert_eq!(e["has_secret"], true);
    // A marker: exactly one event came before its error.
    device.write_all(b";E?\r").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(10), sub.next_notification())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n["params"]["topic"], "card.read_error");
}
