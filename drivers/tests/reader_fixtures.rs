//! Recorded reader sequences (`tests/fixtures/`) decoded through the public
//! decoders, then the magstripe parser or AIM stripping, as the daemon does.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use posbridge_drivers::reader::framing::strip_aim;
use posbridge_drivers::reader::hid::{TrackSlot, VendorMsrLayout};
use posbridge_drivers::reader::keyboard::{
    BootKeyboardDecoder, KeyDecoder, KeyMessage, PosScanDecoder, PosScanLayout, WedgeConfig,
};
use posbridge_drivers::reader::msr::{self, Swipe};

/// The test card in the magstripe fixtures.
const PAN: &str = "4111111111111111";

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Non-comment, non-blank lines.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// One hex report per line (bytes separated by spaces).
fn hex_lines(text: &str) -> Vec<Vec<u8>> {
    lines(text)
        .map(|l| {
            l.split_whitespace()
                .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
                .collect()
        })
        .collect()
}

fn text(m: KeyMessage) -> String {
    m.text().expect("a message, not an overflow").to_owned()
}

/// What every magstripe fixture holds.
fn assert_test_card(swipe: &Swipe) {
    assert!(swipe.errors.is_empty(), "{:?}", swipe.errors);
    assert_eq!(swipe.account(), Some(PAN));
    let t1 = swipe.track1.as_ref().expect("track 1");
    assert_eq!(t1.account, PAN);
    assert_eq!(t1.name.as_ref().map(|n| n.surname.as_str()), Some("DOE"));
    let t2 = swipe.track2.as_ref().expect("track 2");
    assert_eq!(t2.account, PAN);
    let expiry = t2.expiry.expect("expiry");
    assert_eq!((expiry.year, expiry.month), (25, 12));
    assert_eq!(t2.service_code.as_deref(), Some("101"));
    assert!(swipe.track3.is_none());
}

#[test]
fn keyboard_wedge_swipe_from_evdev_events() {
    let mut dec = KeyDecoder::new(WedgeConfig::default());
    let start = Instant::now();
    let mut messages = Vec::new();
    for (i, line) in lines(&fixture("wedge_msr_swipe.keys")).enumerate() {
        let (code, value) = line.split_once(',').expect("code,value");
        // A reader types a key every couple of milliseconds.
        let at = start + Duration::from_millis(2 * i as u64);
        messages.extend(dec.key(code.parse().unwrap(), value.parse().unwrap(), at));
    }
    assert_eq!(messages.len(), 2, "one message per track: {messages:?}");
    // Joined by CR, as the daemon joins a wedge reader's tracks.
    let swipe_text = messages
        .into_iter()
        .map(text)
        .collect::<Vec<_>>()
        .join("\r");
    assert!(swipe_text.starts_with("%B") && swipe_text.contains("\r;"));
    assert_test_card(&msr::parse(swipe_text.as_bytes()).unwrap());
}

#[test]
fn boot_keyboard_scan_with_aim_prefix() {
    let mut dec = BootKeyboardDecoder::new(WedgeConfig::default(), None);
    let start = Instant::now();
    let mut messages = Vec::new();
    for (i, report) in hex_lines(&fixture("boot_keyboard_scan.hex"))
        .iter()
        .enumerate()
    {
        let at = start + Duration::from_millis(2 * i as u64);
        messages.extend(dec.report(report, at).unwrap());
    }
    assert_eq!(messages.len(), 1, "{messages:?}");
    let scanned = text(messages.remove(0));
    let (symbology, payload) = strip_aim(scanned.as_bytes());
    let symbology = symbology.expect("AIM prefix");
    assert_eq!((symbology.code, symbology.modifier), ('E', '0'));
    assert!(!symbology.is_2d());
    assert_eq!(payload, b"4006381333931");
}

#[test]
fn hid_pos_scanner_report_pair() {
    let reports = hex_lines(&fixture("pos_scanner_qr.hex"));
    assert_eq!(reports.len(), 2);
    assert!(reports.iter().all(|r| r.len() == 64));
    let mut dec = PosScanDecoder::new(PosScanLayout::default());
    assert_eq!(dec.report(&reports[0]).unwrap(), None, "continued");
    assert!(dec.is_pending());
    let scan = dec.report(&reports[1]).unwrap().expect("complete scan");
    // AIM then data, as the daemon hands a HID scan to the scan rules.
    let mut bytes = scan.aim.expect("AIM").to_vec();
    bytes.extend_from_slice(&scan.data);
    let (symbology, payload) = strip_aim(&bytes);
    assert!(symbology.expect("AIM").is_2d());
    assert_eq!(
        std::str::from_utf8(payload).unwrap(),
        "https://club.example/c?card=6035123412345678&code=4711AB&v=2"
    );
}

#[test]
fn vendor_msr_report_as_serial_text() {
    let report: Vec<u8> = hex_lines(&fixture("vendor_msr_report.hex")).concat();
    assert_eq!(report.len(), 334);
    let slot = |length_offset, data_offset| {
        Some(TrackSlot {
            length_offset,
            data_offset,
            max_len: 110,
        })
    };
    let layout = VendorMsrLayout {
        report_id: None,
        tracks: [slot(1, 4), slot(2, 114), slot(3, 224)],
    };
    let swipe = layout.decode(&report).unwrap().expect("a swipe report");
    assert!(swipe.tracks[2].is_none());
    let serial = swipe.to_serial_text();
    assert!(serial.starts_with("%B") && serial.contains("?\r;"));
    assert_test_card(&msr::parse(serial.as_bytes()).unwrap());
    // Debug output of a decoded swipe never shows the card.
    let dbg = format!("{swipe:?}");
    assert!(!dbg.contains(PAN), "{dbg}");
}
