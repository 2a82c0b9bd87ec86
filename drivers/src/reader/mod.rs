//! Card readers: turning what magnetic-stripe readers and QR/barcode
//! scanners send into swipes and scans, and cards out of those.
//!
//! - [`msr`]: ISO/IEC 7811/7813 track data (tracks 1, 2, 3, LRC, error markers).
//! - [`keyboard`]: keyboard-wedge input (Linux key codes, HID boot-keyboard
//!   reports) decoded with a fixed US table, whatever the desktop layout.
//! - [`hid`]: HID readers through hidraw, and vendor magstripe reports.
//! - [`framing`]: byte streams from serial scanners split into messages, and
//!   AIM symbology identifiers.
//! - [`extract`]: rules that find the card number and secret in a swipe or scan.
//! - [`gs1`]: GS1 element strings (GTIN, expiry, batch, marking codes) checked.

pub mod extract;
pub mod framing;
pub mod gs1;
pub mod hid;
pub mod keyboard;
pub mod msr;
