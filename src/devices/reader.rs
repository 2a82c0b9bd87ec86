//! The reader side of a device actor: frames from the link, decoded into
//! swipes or scans, cards extracted by the entry's rules, handed to the
//! card service.

use posbridge_drivers::reader::extract::{self, Extracted, ScanRules, SwipeFields, SwipeRule};
use posbridge_drivers::reader::{framing, msr};
use tokio::sync::mpsc;

use super::reads::{CardRead, ReadSource, ReaderOutput};
use crate::config::{ReaderConfig, ReaderKind, RuleError, rules};
use crate::redact::{CardNumber, Secret};

/// A reader's decoding setup, built once per actor from its entry.
pub(super) struct Decoder {
    name: String,
    kind: ReaderKind,
    swipe: SwipeRule,
    scan: ScanRules,
    out: mpsc::Sender<ReaderOutput>,
}

impl Decoder {
    pub(super) fn new(
        entry: &ReaderConfig,
        out: mpsc::Sender<ReaderOutput>,
    ) -> Result<Decoder, RuleError> {
        let (swipe, scan) = rules(&entry.card)?;
        Ok(Decoder {
            name: entry.name.get_ref().clone(),
            kind: entry.kind,
            swipe,
            scan,
            out,
        })
    }

    /// Handles one complete message from the reader.
    pub(super) async fn message(&self, bytes: &[u8]) {
        let result = match self.kind {
            ReaderKind::Msr => self.swipe(bytes),
            ReaderKind::Scanner => self.scan(bytes),
        };
        let out = match result {
            Ok(read) => ReaderOutput::Card(read),
            Err(reason) => ReaderOutput::Error {
                reader: self.name.clone(),
                reason,
            },
        };
        // The card service only stops at shutdown; a read then is moot.
        let _ = self.out.send(out).await;
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
        let swipe = msr::parse(bytes).map_err(|e| format!("swipe not readable: {e}"))?;
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

    fn scan(&self, bytes: &[u8]) -> Result<CardRead, String> {
        let (symbology, payload) = framing::strip_aim(bytes);
        let text = std::str::from_utf8(payload)
            .map_err(|e| format!("scan is not UTF-8 at byte {}", e.valid_up_to()))?;
        let got = extract::extract_scan(&self.scan, text.trim())
            .map_err(|e| format!("no card in the scan: {e}"))?;
        let source = match &symbology {
            Some(s) if s.is_2d() => ReadSource::Qr,
            Some(_) => ReadSource::Barcode,
            // Without an AIM prefix, a plain digit run is a barcode.
            None if text.trim().bytes().all(|b| b.is_ascii_digit()) => ReadSource::Barcode,
            None => ReadSource::Qr,
        };
        Ok(self.card(got, source, symbology.map(|s| s.name.to_owned())))
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
