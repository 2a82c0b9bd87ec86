//! The reader side of a device actor: frames from the link, decoded into
//! swipes or scans, cards extracted by the entry's rules, handed to the
//! card service.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use posbridge_drivers::reader::extract::{
    self, ExtractError, Extracted, ScanRules, SwipeFields, SwipeRule,
};
use posbridge_drivers::reader::keyboard::{InputEvent, KeySink, Typist};
use posbridge_drivers::reader::{framing, gs1, msr};
use tokio::sync::mpsc;

use super::reads::{CardRead, ReadSource, ReaderOutput, ScanRead};
use crate::config::{ReaderConfig, ReaderKind, RuleError, rules};
use crate::redact::{CardNumber, Secret};

/// A reader's decoding setup, built once per actor from its entry.
pub(super) struct Decoder {
    name: String,
    kind: ReaderKind,
    swipe: SwipeRule,
    scan: ScanRules,
    cards_as_goods: bool,
    trade_items_as_goods: bool,
    lrc: msr::Lrc,
    passthrough: Option<Passthrough>,
    /// `reader.enable` / `reader.disable`; shared with `Devices`, so it
    /// outlives a reconnect.
    enabled: Arc<AtomicBool>,
    out: mpsc::Sender<ReaderOutput>,
}

impl Decoder {
    pub(super) fn new(
        entry: &ReaderConfig,
        enabled: Arc<AtomicBool>,
        out: mpsc::Sender<ReaderOutput>,
    ) -> Result<Decoder, RuleError> {
        let (swipe, scan) = rules(&entry.card)?;
        Ok(Decoder {
            name: entry.name.get_ref().clone(),
            kind: entry.kind,
            swipe,
            scan,
            cards_as_goods: entry.scan.cards_as_goods,
            trade_items_as_goods: entry.scan.trade_items_as_goods,
            passthrough: (entry.scan.passthrough && entry.kind == ReaderKind::Scanner).then(|| {
                Passthrough {
                    prefix: entry.scan.passthrough_prefix.clone().into_bytes(),
                    suffix: entry.scan.passthrough_suffix.clone().into_bytes(),
                    typist: std::sync::Mutex::new(None),
                }
            }),
            lrc: match entry.framing.lrc {
                crate::config::LrcConfig::Auto => msr::Lrc::Auto,
                crate::config::LrcConfig::Sent => msr::Lrc::Sent,
                crate::config::LrcConfig::NotSent => msr::Lrc::NotSent,
            },
            enabled,
            out,
        })
    }

    /// Handles one complete message from the reader.
    pub(super) async fn message(&self, bytes: &[u8]) {
        if !self.enabled.load(Ordering::Relaxed) {
            // UnifiedPOS DeviceEnabled = false: the device delivers nothing.
            tracing::debug!(reader = %self.name, len = bytes.len(), "reader disabled: read dropped");
            return;
        }
        let outs = match self.kind {
            ReaderKind::Msr => vec![self.swipe(bytes).map_or_else(
                |reason| ReaderOutput::Error {
                    reader: self.name.clone(),
                    reason,
                },
                ReaderOutput::Card,
            )],
            ReaderKind::Scanner => self.scan(bytes),
        };
        for out in outs {
            if let (ReaderOutput::Scan(scan), Some(p)) = (&out, &self.passthrough) {
                p.type_scan(&self.name, scan.label());
            }
            // The card service only stops at shutdown; a read then is moot.
            let _ = self.out.send(out).await;
        }
    }

    /// Reports a message that could not even be framed.
    pub(super) async fn error(&self, reason: String) {
        let _ = self
            .out
            .send(ReaderOutput::Error {
                reader: self.name.clone(),
                reason,
            })
            .await;
    }

    fn swipe(&self, bytes: &[u8]) -> Result<CardRead, String> {
        let swipe =
            msr::parse_with(bytes, self.lrc).map_err(|e| format!("swipe not readable: {e}"))?;
        let fields = SwipeFields {
            track1_account: swipe.track1.as_ref().map(|t| t.account.as_str()),
            track2_account: swipe.track2.as_ref().map(|t| t.account.as_str()),
            track2_discretionary: swipe.track2.as_ref().map(|t| t.discretionary.as_str()),
            track3_data: swipe.track3.as_ref().map(|t| t.data.as_str()),
        };
        let got = extract::extract_swipe(&self.swipe, &fields)
            .map_err(|e| format!("no card in the swipe: {e}"))?;
        Ok(self.card(got, ReadSource::Msr, None))
    }

    /// A scan: a loyalty card when the card rules find one, else goods.
    /// GS1 data (by its AIM identifier, or a leading FNC1) is always goods,
    /// and so is a product's EAN/UPC (`trade_items_as_goods`).
    /// A scan a rule recognised but that failed its check is a
    /// `card.read_error` and nothing else: it may hold a secret.
    fn scan(&self, bytes: &[u8]) -> Vec<ReaderOutput> {
        let (symbology, payload) = framing::strip_aim(bytes);
        let goods = ScanRead {
            reader: self.name.clone(),
            data: bytes.to_vec(),
            aim_len: bytes.len() - payload.len(),
            symbology: symbology.map(|s| s.name.to_owned()),
            gs1_symbology: symbology.is_some_and(|s| s.is_gs1())
                || payload.first() == Some(&gs1::GS),
        };
        if goods.gs1_symbology {
            return vec![ReaderOutput::Scan(goods)];
        }
        let Ok(text) = std::str::from_utf8(payload) else {
            return vec![ReaderOutput::Scan(goods)];
        };
        // A product's EAN/UPC is goods before any card rule sees it; a 2-D
        // code is left to the rules (a QR card may hold any digits).
        let linear =
            symbology.is_none_or(|s| matches!(s.name, "ean13" | "ean8" | "ean_upc" | "itf"));
        if self.trade_items_as_goods && linear && gs1::is_trade_item_number(text.trim()) {
            return vec![ReaderOutput::Scan(goods)];
        }
        match extract::extract_scan(&self.scan, text.trim()) {
            Ok(got) => {
                let source = match &symbology {
                    Some(s) if s.is_2d() => ReadSource::Qr,
                    Some(_) => ReadSource::Barcode,
                    // Without an AIM prefix, a plain digit run is a barcode.
                    None if text.trim().bytes().all(|b| b.is_ascii_digit()) => ReadSource::Barcode,
                    None => ReadSource::Qr,
                };
                let card = ReaderOutput::Card(self.card(
                    got,
                    source,
                    symbology.map(|s| s.name.to_owned()),
                ));
                if self.cards_as_goods {
                    vec![card, ReaderOutput::Scan(goods)]
                } else {
                    vec![card]
                }
            }
            Err(ExtractError::NoRuleMatched { .. }) => vec![ReaderOutput::Scan(goods)],
            Err(e) => vec![ReaderOutput::Error {
                reader: self.name.clone(),
                reason: format!("no card in the scan: {e}"),
            }],
        }
    }

    fn card(&self, got: Extracted, source: ReadSource, symbology: Option<String>) -> CardRead {
        CardRead {
            reader: self.name.clone(),
            source,
            number: CardNumber::new(got.number),
            secret: got.secret.map(|s| Secret::new(s.expose())),
            symbology,
        }
    }
}

/// Where passed-through scans are typed. `POSBRIDGE_PASSTHROUGH_RECORD`
/// names a file that receives the key events as `type code value` lines
/// instead of a virtual keyboard: how the tests (and a technician without
/// a desktop) see exactly what would be typed.
type Sink = Box<dyn KeySink + Send>;

/// `[reader.scan] passthrough`: the virtual keyboard, opened on first use
/// (and again after a failure), so a till without uinput still reads.
struct Passthrough {
    prefix: Vec<u8>,
    suffix: Vec<u8>,
    typist: std::sync::Mutex<Option<Typist<Sink>>>,
}

impl Passthrough {
    fn type_scan(&self, reader: &str, label: &[u8]) {
        let mut typist = self.typist.lock().unwrap_or_else(|p| p.into_inner());
        if typist.is_none() {
            match open_sink() {
                Ok(sink) => *typist = Some(Typist::new(sink)),
                Err(e) => {
                    tracing::error!(reader, error = %e, "pass-through: cannot open the virtual keyboard (/dev/uinput)");
                    return;
                }
            }
        }
        let Some(t) = typist.as_mut() else { return };
        let text = [self.prefix.as_slice(), label, self.suffix.as_slice()].concat();
        match t.type_text(&text) {
            Ok(0) => tracing::debug!(reader, len = text.len(), "pass-through: typed"),
            Ok(skipped) => tracing::warn!(
                reader,
                skipped,
                "pass-through: characters a US layout cannot type were left out"
            ),
            Err(e) => {
                tracing::error!(reader, error = %e, "pass-through: typing failed");
                *typist = None;
            }
        }
    }
}

fn open_sink() -> std::io::Result<Sink> {
    match std::env::var_os("POSBRIDGE_PASSTHROUGH_RECORD") {
        Some(path) => Ok(Box::new(FileSink(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        ))),
        None => {
            let t = Typist::open("posbridge pass-through keyboard")?;
            Ok(Box::new(t.into_sink()))
        }
    }
}

/// Key events as text lines (see [`Sink`]).
struct FileSink(std::fs::File);

impl KeySink for FileSink {
    fn emit(&mut self, events: &[InputEvent]) -> std::io::Result<()> {
        use std::io::Write;
        let mut out = String::new();
        for e in events {
            out.push_str(&format!(
                "{} {} {}\n",
                e.event_type().0,
                e.code(),
                e.value()
            ));
        }
        out.push_str("0 0 0\n");
        self.0.write_all(out.as_bytes())
    }
}
