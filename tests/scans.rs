//! Scans end to end: a pty plays a serial scanner; goods arrive as `scan`
//! (GS1 and marking codes parsed), loyalty cards as `card.read`, and a
//! disabled reader delivers nothing.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Daemon, eventually, pty_pair};
use posbridge::client::Client;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// A Russian marking code on a medicine box, as a GS1 DataMatrix scanner
/// sends it: AIM `]d2`, GTIN (01), serial (21), GS, key id (91), GS,
/// crypto code (92).
const MARKING: &[u8] =
    b"]d20104601662000016215RNef*ex0>P5\x1d91EE06\x1d92YWCXbmK6SN8vvwoxZFk7WAY8WoJNMGGr6Cgtiuja04c=";
/// Loyalty cards on this till are QR codes `LOY:<number>:<secret>`; goods
/// barcodes match no card rule.
const CARD_RULES: &str =
    "[reader.card]\npresets = []\nregex = 'LOY:(?P<number>[0-9]{10,16}):(?P<secret>[A-Z0-9]{4})'\n";

fn reader(name: &str, kind: &str, port: &Path, rest: &str) -> String {
    format!(
        "[[reader]]\nname = \"{name}\"\ntype = \"{kind}\"\n[reader.serial]\nport = \"{}\"\n{rest}",
        port.display()
    )
}

/// The next event of any of `topics`, skipping others.
async fn next_of(c: &mut Client, topics: &[&str]) -> Value {
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), c.next_notification())
            .await
            .unwrap_or_else(|_| panic!("no {topics:?} event within 10 s"))
            .unwrap();
        let topic = n["params"]["topic"].as_str().unwrap_or_default();
        if topics.contains(&topic) {
            return n["params"].clone();
        }
    }
}

async fn connected(d: &Daemon, sub: &mut Client, name: &str) {
    let devs = d
        .client()
        .await
        .call("devices.list", json!({}))
        .await
        .unwrap();
    if devs["devices"][0]["status"] == "connected" {
        return;
    }
    loop {
        let e = next_of(sub, &["device.status"]).await;
        if e["device"] == name && e["status"] == "connected" {
            return;
        }
    }
}

async fn scanner(
    rest: &str,
) -> (
    Daemon,
    Client,
    tokio_serial::SerialStream,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("scanner");
    let (device, pts) = pty_pair();
    std::os::unix::fs::symlink(&pts, &link).unwrap();
    let d = Daemon::start("", &reader("till", "scanner", &link, rest));
    let mut sub = d.client().await;
    sub.call(
        "events.subscribe",
        json!({"topics": ["card.*", "scan", "device.status"]}),
    )
    .await
    .unwrap();
    connected(&d, &mut sub, "till").await;
    (d, sub, device, dir)
}

#[tokio::test]
async fn goods_arrive_as_scan_and_a_loyalty_card_as_card_read() {
    let (d, mut sub, mut device, _dir) = scanner(CARD_RULES).await;
    let topics = ["card.read", "card.read_error", "scan"];

    // EAN-13.
    device.write_all(b"]E04006381333931\r").await.unwrap();
    let e = next_of(&mut sub, &topics).await;
    assert_eq!(e["topic"], "scan");
    assert_eq!(e["reader"], "till");
    assert_eq!(e["symbology"], "ean13");
    assert_eq!(e["aim"], "]E0");
    assert_eq!(e["data"], "]E04006381333931");
    assert_eq!(e["label"], "4006381333931");
    assert_eq!(e["encoding"], "text");
    assert!(e["gs1"].is_null() && e["marking_code"].is_null());
    assert!(e["time"].is_string());

    // Code 128, free text.
    device.write_all(b"]C0SKU-42/A\r").await.unwrap();
    let e = next_of(&mut sub, &topics).await;
    assert_eq!(
        (e["topic"].as_str(), e["symbology"].as_str()),
        (Some("scan"), Some("code128"))
    );
    assert_eq!(e["label"], "SKU-42/A");

    // GS1-128: GTIN, expiry, batch, GS, net weight.
    device
        .write_all(b"]C1010950600013435217260200" as &[u8])
        .await
        .unwrap();
    device.write_all(b"10LOT42\x1d3103001250\r").await.unwrap();
    let e = next_of(&mut sub, &topics).await;
    assert_eq!(
        (e["topic"].as_str(), e["symbology"].as_str()),
        (Some("scan"), Some("gs1_128"))
    );
    assert_eq!(e["gs1"]["gtin"], "09506000134352");
    assert_eq!(e["gs1"]["expiry"], "2026-02-28");
    assert_eq!(e["gs1"]["batch"], "LOT42");
    assert_eq!(
        e["gs1"]["elements"][3],
        json!({"ai": "3103", "value": "001250"})
    );
    assert!(
        e["marking_code"].is_null(),
        "no crypto tail, no marking code"
    );

    // GS1 DataMatrix marking code: GS kept, crypto tail parsed.
    device.write_all(MARKING).await.unwrap();
    device.write_all(b"\r").await.unwrap();
    let e = next_of(&mut sub, &topics).await;
    assert_eq!(e["topic"], "scan");
    assert_eq!(e["symbology"], "gs1_datamatrix");
    assert_eq!(e["gs1"]["gtin"], "04601662000016");
    assert_eq!(e["gs1"]["serial"], "5RNef*ex0>P5");
    assert_eq!(e["gs1"]["crypto_key"], "EE06");
    assert_eq!(
        e["gs1"]["crypto_code"],
        "YWCXbmK6SN8vvwoxZFk7WAY8WoJNMGGr6Cgtiuja04c="
    );
    assert_eq!(
        e["marking_code"].as_str().unwrap().as_bytes(),
        &MARKING[3..],
        "the marking code exactly as scanned, without the AIM identifier"
    );
    assert!(e["gs1_error"].is_null());

    // A QR loyalty card: card.read only, then the next goods scan follows
    // directly (no scan event for the card).
    device
        .write_all(b"]Q1LOY:7012345678901234:AB12\r")
        .await
        .unwrap();
    let e = next_of(&mut sub, &topics).await;
    assert_eq!(e["topic"], "card.read");
    assert_eq!(e["card_number"], "7012345678901234");
    assert_eq!(e["has_secret"], true);
    device.write_all(b"]E04006381333931\r").await.unwrap();
    let e = next_of(&mut sub, &topics).await;
    assert_eq!(e["topic"], "scan");
    assert_eq!(e["label"], "4006381333931");

    // A GS1 code with a wrong GTIN check digit is still delivered, with
    // the reason.
    device.write_all(b"]d201046016620000171\r").await.unwrap();
    let e = next_of(&mut sub, &topics).await;
    assert_eq!(e["topic"], "scan");
    assert!(e["gs1"].is_null());
    assert!(e["gs1_error"].as_str().unwrap().contains("check digit"));

    let log = d.log();
    assert!(!log.contains("7012345678901234"), "card number in the log");
    assert!(!log.contains("AB12"), "secret in the log");
}

#[tokio::test]
async fn cards_as_goods_announces_the_card_twice_over() {
    let rest = format!("{CARD_RULES}[reader.scan]\ncards_as_goods = true\n");
    let (_d, mut sub, mut device, _dir) = scanner(&rest).await;
    device
        .write_all(b"]Q1LOY:7012345678901234:AB12\r")
        .await
        .unwrap();
    let topics = ["card.read", "card.read_error", "scan"];
    let e = next_of(&mut sub, &topics).await;
    assert_eq!(e["topic"], "card.read");
    let e = next_of(&mut sub, &topics).await;
    assert_eq!(e["topic"], "scan");
    assert_eq!(e["symbology"], "qr");
}

/// With the default card rules (the `digits` preset), a product's EAN-13 or
/// UPC-A is still goods, while a shop's own card in the restricted range
/// (prefix 2) is a card; `trade_items_as_goods = false` gives the old
/// reading back.
#[tokio::test]
async fn a_products_barcode_is_goods_under_the_digits_preset() {
    let topics = ["card.read", "card.read_error", "scan"];
    let (_d, mut sub, mut device, _dir) = scanner("").await;
    for product in [
        &b"]E04006381333931\r"[..],
        b"4601234567893\r",
        b"]E0036000291452\r",
    ] {
        device.write_all(product).await.unwrap();
        let e = next_of(&mut sub, &topics).await;
        assert_eq!(e["topic"], "scan", "{e}");
    }
    // The shop's own card (EAN-13 in the 2xx range) and a wrong check digit.
    for card in [&b"]E02001234567893\r"[..], b"4601234567892\r"] {
        device.write_all(card).await.unwrap();
        let e = next_of(&mut sub, &topics).await;
        assert_eq!(e["topic"], "card.read", "{e}");
    }

    let (_d, mut sub, mut device, _dir) =
        scanner("[reader.scan]\ntrade_items_as_goods = false\n").await;
    device.write_all(b"]E04006381333931\r").await.unwrap();
    let e = next_of(&mut sub, &topics).await;
    assert_eq!(e["topic"], "card.read", "{e}");
}

#[tokio::test]
async fn a_disabled_reader_delivers_nothing_until_enabled() {
    let (d, mut sub, mut device, _dir) = scanner(CARD_RULES).await;
    let mut c = d.client().await;
    let r = c
        .call("reader.disable", json!({"name": "till"}))
        .await
        .unwrap();
    assert_eq!(
        r,
        json!({"name": "till", "enabled": false, "was_enabled": true})
    );
    let list = c.call("devices.list", json!({})).await.unwrap();
    assert_eq!(list["devices"][0]["enabled"], false);

    device.write_all(b"]E04006381333931\r").await.unwrap();
    // The daemon says when it drops a read; wait for that before enabling.
    eventually("the dropped read in the log", || async {
        d.log()
            .contains("reader disabled: read dropped")
            .then_some(())
    })
    .await;
    c.call("reader.enable", json!({"name": "till"}))
        .await
        .unwrap();
    device.write_all(b"]C0SECOND\r").await.unwrap();
    let e = next_of(&mut sub, &["scan", "card.read", "card.read_error"]).await;
    assert_eq!(
        e["label"], "SECOND",
        "the scan made while disabled was dropped"
    );

    let err = c
        .call("reader.disable", json!({"name": "nope"}))
        .await
        .unwrap_err();
    let posbridge::client::ClientError::Rpc { error } = err else {
        panic!()
    };
    assert_eq!(error["code"], 1201);
}

#[tokio::test]
async fn a_reader_configured_disabled_starts_disabled() {
    let rest = format!("{CARD_RULES}[reader.scan]\nenabled = false\n");
    let (d, _sub, _device, _dir) = scanner(&rest).await;
    let list = d
        .client()
        .await
        .call("devices.list", json!({}))
        .await
        .unwrap();
    assert_eq!(list["devices"][0]["enabled"], false);
}

#[tokio::test]
async fn a_loyalty_secret_right_after_the_separator_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("msr");
    let (mut device, pts) = pty_pair();
    std::os::unix::fs::symlink(&pts, &link).unwrap();
    let card = "[reader.card]\nsecret = \"track2_discretionary\"\nsecret_len = 4\n";
    let d = Daemon::start("", &reader("msr", "msr", &link, card));
    let mut sub = d.client().await;
    sub.call(
        "events.subscribe",
        json!({"topics": ["card.*", "device.status"]}),
    )
    .await
    .unwrap();
    connected(&d, &mut sub, "msr").await;
    device
        .write_all(b";7012345678901234=1234?\r")
        .await
        .unwrap();
    let e = next_of(&mut sub, &["card.read", "card.read_error"]).await;
    assert_eq!(e["topic"], "card.read");
    assert_eq!(e["card_number"], "7012345678901234");
    assert_eq!(e["has_secret"], true, "the secret after '=' was kept");
}

/// Writes `bytes` at the pace of a serial line at `baud` (10 bits a byte),
/// in 1 ms ticks: what a reader that ends each track with CR sends.
async fn paced(device: &mut tokio_serial::SerialStream, bytes: &[u8], baud: u32) {
    let per_ms = (baud as usize / 10 / 1000).max(1);
    let mut tick = tokio::time::interval(Duration::from_micros(1000));
    for chunk in bytes.chunks(per_ms) {
        tick.tick().await;
        device.write_all(chunk).await.unwrap();
    }
}

async fn one_swipe_at(baud: u32) {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("msr");
    let (mut device, pts) = pty_pair();
    std::os::unix::fs::symlink(&pts, &link).unwrap();
    // The number only on track 3 (item 5: track 3 as the number's source),
    // the secret on track 2.
    let card =
        "[reader.card]\nnumber = [\"track3\"]\nsecret = \"track2_discretionary\"\nsecret_len = 4\n";
    let d = Daemon::start("", &reader("msr", "msr", &link, card));
    let mut sub = d.client().await;
    sub.call(
        "events.subscribe",
        json!({"topics": ["card.*", "device.status"]}),
    )
    .await
    .unwrap();
    connected(&d, &mut sub, "msr").await;
    // Track 1, CR, track 2, CR, track 3 (~75 characters: ~78 ms at 9600
    // baud, longer than the 50 ms swipe_gap_ms default), CR.
    let swipe = b"%B6035123412341234^IVANOV/IVAN^4912101000000?\r;6035123412341234=49121014711?\r;7012345678901234=000000000000000000000000000000000000000000000000000000000?\r";
    paced(&mut device, swipe, baud).await;
    let e = next_of(&mut sub, &["card.read", "card.read_error"]).await;
    assert_eq!(e["topic"], "card.read");
    assert_eq!(e["card_number"], "7012345678901234", "track 3 was joined");
    assert_eq!(e["has_secret"], true, "track 2 was joined");
    // A marker after a pause: exactly one event came before its error.
    tokio::time::sleep(Duration::from_millis(200)).await;
    device.write_all(b";E?\r").await.unwrap();
    let e = next_of(&mut sub, &["card.read", "card.read_error"]).await;
    assert_eq!(
        e["topic"], "card.read_error",
        "one swipe, one card.read at {baud} baud"
    );
}

#[tokio::test]
async fn tracks_paced_at_9600_baud_are_one_swipe() {
    one_swipe_at(9600).await;
}

#[tokio::test]
async fn tracks_paced_at_115200_baud_are_one_swipe() {
    one_swipe_at(115_200).await;
}

/// Replays what the daemon typed (its pass-through record) through the
/// same decoder that reads `/dev/input`, and returns the messages.
async fn typed_back(record: &Path) -> Vec<String> {
    use posbridge_drivers::reader::keyboard::{
        EvdevReader, InputEvent, KeyMessage, Replay, WedgeConfig,
    };
    let text = std::fs::read_to_string(record).unwrap_or_default();
    let events = text.lines().map(|l| {
        let n: Vec<i32> = l.split(' ').map(|x| x.parse().unwrap()).collect();
        (
            Duration::from_micros(100),
            InputEvent::new(n[0] as u16, n[1] as u16, n[2]),
        )
    });
    let mut r = EvdevReader::from_source(Replay::new(events), WedgeConfig::default());
    let mut out = Vec::new();
    while let Ok(KeyMessage::Text(t)) = r.next_message().await {
        out.push(t);
    }
    out
}

async fn passthrough_run(on: bool) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("typed");
    let link = dir.path().join("scanner");
    let (mut device, pts) = pty_pair();
    std::os::unix::fs::symlink(&pts, &link).unwrap();
    let rest =
        format!("{CARD_RULES}[reader.scan]\npassthrough = {on}\npassthrough_prefix = \"#\"\n");
    let rec = record.clone();
    let d = Daemon::start_with("", &reader("till", "scanner", &link, &rest), |c| {
        c.env("POSBRIDGE_PASSTHROUGH_RECORD", &rec);
    });
    let mut sub = d.client().await;
    sub.call(
        "events.subscribe",
        json!({"topics": ["card.*", "scan", "device.status"]}),
    )
    .await
    .unwrap();
    connected(&d, &mut sub, "till").await;
    let topics = ["card.read", "card.read_error", "scan"];
    for (bytes, topic) in [
        (b"]E04006381333931\r".as_slice(), "scan"),
        (b"]Q1LOY:7012345678901234:AB12\r", "card.read"),
        (&[MARKING, b"\r"].concat(), "scan"),
    ] {
        device.write_all(bytes).await.unwrap();
        assert_eq!(next_of(&mut sub, &topics).await["topic"], topic);
    }
    if on {
        eventually("the pass-through warning for GS", || async {
            d.log().contains("left out").then_some(())
        })
        .await;
    }
    typed_back(&record).await
}

#[tokio::test]
async fn passthrough_types_goods_but_never_a_loyalty_card() {
    let typed = passthrough_run(true).await;
    let marking: String = MARKING[3..]
        .iter()
        .filter(|&&b| b != 0x1D)
        .map(|&b| char::from(b))
        .collect();
    // Prefix, label without AIM, Enter; the GS separators cannot be typed
    // on a US layout and are left out (counted in the log).
    assert_eq!(typed, ["#4006381333931".to_owned(), format!("#{marking}")]);
}

#[tokio::test]
async fn without_passthrough_nothing_is_typed() {
    assert_eq!(passthrough_run(false).await, Vec::<String>::new());
}

/// The keyboard-wedge path end to end, through the same code that reads
/// `/dev/input`: a `[reader.evdev] device` naming a recording of input
/// events (EV_MSC scan codes, EV_KEY, EV_SYN, as a USB scanner sends them)
/// replays it into the grabbed-reader loop.
#[tokio::test]
async fn a_wedge_scanner_recording_yields_scans_and_a_card() {
    use posbridge_drivers::reader::keyboard::recorded_typing;
    let d = Daemon::start("", "");
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("wedge.rec");
    let typed = recorded_typing(
        b"]E04006381333931\r]C0SKU-42/A\r]C101095060001343521726020010LOT42\r]Q1LOY:7012345678901234:AB12\r]E04006381333931\r",
        Duration::from_micros(800),
    );
    let mut text = String::from("# DELAY_US TYPE CODE VALUE\n");
    for (delay, e) in typed {
        text.push_str(&format!(
            "{} {} {} {}\n",
            delay.as_micros(),
            e.event_type().0,
            e.code(),
            e.value()
        ));
    }
    assert!(
        text.contains(" 4 4 "),
        "the recording has EV_MSC scan codes"
    );
    std::fs::write(&recording, text).unwrap();

    let mut sub = d.client().await;
    sub.call("events.subscribe", json!({"topics": ["card.*", "scan"]}))
        .await
        .unwrap();
    let entry = format!(
        "[[reader]]\nname = \"wedge\"\ntype = \"scanner\"\n[reader.evdev]\ndevice = \"{}\"\n{CARD_RULES}",
        recording.display()
    );
    d.write_config("", &entry);
    d.client()
        .await
        .call("system.reload", json!({}))
        .await
        .unwrap();

    let topics = ["card.read", "card.read_error", "scan"];
    let e = next_of(&mut sub, &topics).await;
    assert_eq!(
        (e["topic"].as_str(), e["symbology"].as_str()),
        (Some("scan"), Some("ean13"))
    );
    assert_eq!(e["reader"], "wedge");
    assert_eq!(e["label"], "4006381333931");
    let e = next_of(&mut sub, &topics).await;
    assert_eq!(
        (e["topic"].as_str(), e["label"].as_str()),
        (Some("scan"), Some("SKU-42/A"))
    );
    let e = next_of(&mut sub, &topics).await;
    assert_eq!(e["symbology"], "gs1_128");
    assert_eq!(e["gs1"]["gtin"], "09506000134352");
    assert_eq!(e["gs1"]["batch"], "LOT42");
    let e = next_of(&mut sub, &topics).await;
    assert_eq!(e["topic"], "card.read");
    assert_eq!(e["card_number"], "7012345678901234");
    assert_eq!(e["has_secret"], true);
    let e = next_of(&mut sub, &topics).await;
    assert_eq!(
        (e["topic"].as_str(), e["label"].as_str()),
        (Some("scan"), Some("4006381333931"))
    );
}
