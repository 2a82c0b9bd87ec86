//! What reader actors hand to the card service.

use serde::Serialize;

use crate::redact::{CardNumber, Secret};

/// How the card reached the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadSource {
    /// Magnetic stripe.
    Msr,
    /// A 2-D code (QR, Data Matrix, ...).
    Qr,
    /// A linear barcode.
    Barcode,
    /// Typed by the cashier.
    Manual,
}

/// A card as a reader (or the cashier) delivered it.
#[derive(Debug, Clone)]
pub struct CardRead {
    /// Reader name, or `manual`.
    pub reader: String,
    /// How it was read.
    pub source: ReadSource,
    /// The number.
    pub number: CardNumber,
    /// The secret code, when the card carries one.
    pub secret: Option<Secret>,
    /// Barcode symbology (`qr`, `ean13`, ...), when the scanner reported one.
    pub symbology: Option<String>,
}

/// Anything a scanner read, as read (UnifiedPOS ScanData, ScanDataLabel,
/// ScanDataType). Goods, marking codes, and cards when so configured.
#[derive(Clone)]
pub struct ScanRead {
    /// Reader name.
    pub reader: String,
    /// The message exactly as the reader sent it, AIM identifier included.
    pub data: Vec<u8>,
    /// Length of the AIM identifier at the start of `data` (0 or 3).
    pub aim_len: usize,
    /// Symbology name from the AIM identifier.
    pub symbology: Option<String>,
    /// Whether the AIM identifier says the symbol holds GS1 element strings.
    pub gs1_symbology: bool,
}

impl ScanRead {
    /// The label: `data` without the AIM identifier.
    pub fn label(&self) -> &[u8] {
        self.data.get(self.aim_len..).unwrap_or_default()
    }
}

impl std::fmt::Debug for ScanRead {
    // A scan may be a card read as goods: lengths only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanRead")
            .field("reader", &self.reader)
            .field("len", &self.data.len())
            .field("symbology", &self.symbology)
            .finish()
    }
}

/// A reader's output.
#[derive(Debug, Clone)]
pub enum ReaderOutput {
    /// A card was read.
    Card(CardRead),
    /// Something was scanned (goods, a marking code, any label).
    Scan(ScanRead),
    /// Something was read but it is not a card; `reason` holds no card data.
    Error {
        /// Reader name.
        reader: String,
        /// Why.
        reason: String,
    },
}
