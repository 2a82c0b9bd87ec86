//! Printers: the receipt document model, the ESC/POS encoder with printer
//! profiles, and the Shtrih-M fiscal register protocol.

pub mod document;
pub mod escpos;
pub mod shtrih;
