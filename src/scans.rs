//! The `scan` event: everything a scanner read that is not (only) a loyalty
//! card, in the spirit of UnifiedPOS `ScanData` / `ScanDataLabel` /
//! `ScanDataType`, with GS1 element strings split out and the marking code
//! ready for `fiscal.receipt`.

use base64::Engine;
use posbridge_drivers::reader::gs1;
use serde_json::{Value, json};

use crate::devices::ScanRead;
use crate::events::EventBus;

/// Longest marking code the register takes: FF61h carries its length in
/// one byte.
pub const MAX_MARKING_CODE: usize = 255;

/// Publishes `scan` for `read`; returns the payload.
pub fn publish(bus: &EventBus, read: &ScanRead) -> Value {
    let payload = payload(read);
    // Lengths only: a scan can be anything, a card read as goods included.
    tracing::info!(
        reader = %read.reader,
        symbology = read.symbology.as_deref().unwrap_or("-"),
        len = read.data.len(),
        gs1 = !payload["gs1"].is_null(),
        "scan"
    );
    bus.publish("scan", payload.clone());
    payload
}

/// The event's fields. See `docs/protocol.md`, `scan`.
pub fn payload(read: &ScanRead) -> Value {
    let label = read.label();
    let (encoding, data, label_out) =
        match (std::str::from_utf8(&read.data), std::str::from_utf8(label)) {
            (Ok(d), Ok(l)) => ("text", d.to_owned(), l.to_owned()),
            _ => {
                let b = base64::engine::general_purpose::STANDARD;
                ("base64", b.encode(&read.data), b.encode(label))
            }
        };
    let (gs1, gs1_error, marking_code) = if read.gs1_symbology {
        match gs1::parse(label) {
            Ok(g) => {
                let marking = (g.is_marking_code() && label.len() <= MAX_MARKING_CODE)
                    .then(|| marking_code(label));
                (gs1_json(&g), Value::Null, marking)
            }
            Err(e) => (Value::Null, json!(e.to_string()), None),
        }
    } else {
        (Value::Null, Value::Null, None)
    };
    json!({
        "reader": read.reader,
        "data": data,
        "label": label_out,
        "encoding": encoding,
        "symbology": read.symbology,
        "aim": (read.aim_len > 0).then(|| String::from_utf8_lossy(&read.data[..read.aim_len]).into_owned()),
        "gs1": gs1,
        "gs1_error": gs1_error,
        "marking_code": marking_code,
    })
}

/// The marking code as the register wants it: as the scanner read it,
/// without the AIM identifier, GS separators kept, a leading FNC1 (GS) that
/// some scanners send dropped.
fn marking_code(label: &[u8]) -> String {
    let code = label.strip_prefix(&[gs1::GS]).unwrap_or(label);
    code.iter().map(|&b| char::from(b)).collect()
}

fn gs1_json(g: &gs1::Gs1) -> Value {
    let elements: Vec<Value> = g
        .elements
        .iter()
        .map(|e| json!({"ai": e.ai, "value": e.value}))
        .collect();
    json!({
        "elements": elements,
        "gtin": g.get("01"),
        "serial": g.get("21"),
        "batch": g.get("10"),
        "expiry": g.get("17").and_then(iso_date),
        "crypto_key": g.get("91"),
        "crypto_code": g.get("92").or(g.get("93")),
    })
}

/// `YYMMDD` as `20YY-MM-DD`; day 00 (end of month) is the month's last day.
fn iso_date(v: &str) -> Option<String> {
    let d = v.as_bytes();
    if d.len() != 6 || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = |i: usize| u32::from(d[i] - b'0') * 10 + u32::from(d[i + 1] - b'0');
    let (y, m, mut day) = (2000 + n(0), n(2), n(4));
    if day == 0 {
        day = match m {
            2 if y % 4 == 0 => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
    }
    Some(format!("{y:04}-{m:02}-{day:02}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(data: &[u8], aim_len: usize, symbology: &str, gs1: bool) -> ScanRead {
        ScanRead {
            reader: "s".into(),
            data: data.to_vec(),
            aim_len,
            symbology: Some(symbology.into()),
            gs1_symbology: gs1,
        }
    }

    #[test]
    fn a_marking_code_keeps_its_separators() {
        let p = payload(&read(
            b"]d2\x1d0104601662000016215RNef*ex0>P5\x1d91EE06\x1d92YWCXbmK6SN8vvwoxZFk7WAY8WoJNMGGr6Cgtiuja04c=",
            3,
            "gs1_datamatrix",
            true,
        ));
        assert_eq!(p["aim"], "]d2");
        assert_eq!(p["encoding"], "text");
        assert_eq!(p["gs1"]["gtin"], "04601662000016");
        assert_eq!(p["gs1"]["serial"], "5RNef*ex0>P5");
        assert_eq!(p["gs1"]["crypto_key"], "EE06");
        let mc = p["marking_code"].as_str().unwrap();
        assert!(mc.starts_with("0104601662000016"), "{mc}");
        assert_eq!(mc.matches('\u{1d}').count(), 2);
        assert_eq!(p["label"].as_str().unwrap().len(), mc.len() + 1);
    }

    #[test]
    fn dates_binary_and_bad_gs1() {
        let p = payload(&read(b"]C1010950600013435217260200", 3, "gs1_128", true));
        assert_eq!(p["gs1"]["expiry"], "2026-02-28");
        assert!(p["marking_code"].is_null());
        let p = payload(&read(b"]C10109506000134353", 3, "gs1_128", true));
        assert!(p["gs1"].is_null());
        assert!(p["gs1_error"].as_str().unwrap().contains("check digit"));
        let p = payload(&read(b"]Q1\xff\x00", 3, "qr", false));
        assert_eq!(p["encoding"], "base64");
        assert_eq!(p["label"], "/wA=");
        assert_eq!(p["data"], "XVEx/wA=");
    }
}
