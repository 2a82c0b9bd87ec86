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

/// A reader's output.
#[derive(Debug, Clone)]
pub enum ReaderOutput {
    /// A card was read.
    Card(CardRead),
    /// Something was read but it is not a card; `reason` holds no card data.
    Error {
        /// Reader name.
        reader: String,
        /// Why.
        reason: String,
    },
}
