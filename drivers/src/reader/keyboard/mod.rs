//! Keyboard-wedge card readers and barcode scanners.
//!
//! Many readers pretend to be a USB keyboard and "type" what they read. The
//! desktop would translate those key presses through its own layout: on a
//! Russian layout the track-2 start sentinel `;` arrives as `ж` and `?` as
//! `,`. So here the readers' *key codes* are decoded with a fixed US table
//! (the layout every wedge reader assumes), never through the desktop.
//!
//! - [`KeyDecoder`]: Linux input events (`KEY_*` codes) into messages.
//! - [`BootKeyboardDecoder`]: HID boot-keyboard reports (e.g. from hidraw)
//!   into messages, with the same message rules as [`KeyDecoder`].
//! - [`PosScanDecoder`]: HID POS "Scanned Data Report"s (usage page 0x8C)
//!   into scans, for scanners switched out of keyboard mode.
//! - [`Typist`]: types scans back through a virtual keyboard (uinput)
//!   for keyboard-only POS software; see its layout caveat.
//! - [`EvdevReader`]: grabs a `/dev/input/event*` node so keystrokes never
//!   reach the focused window, and feeds a [`KeyDecoder`].
//!
//! Decoded text is card data: nothing here logs it, and the `Debug` output
//! of [`KeyMessage`] and [`PosScan`] shows lengths only.

mod assemble;
mod boot;
mod device;
mod keys;
mod pos;
mod table;
mod typist;

use std::fmt;
use std::time::Duration;

pub use boot::{BOOT_REPORT_LEN, BootKeyboardDecoder, BootReport, BootReportError};
pub use device::{
    EvdevError, EvdevReader, InputSource, MAX_RECORDING, Replay, Source, parse_recording,
    recorded_typing,
};
/// The input event type of the [`InputSource`] and [`KeySink`] seams.
pub use evdev::InputEvent;
pub use keys::{KEY_DOWN, KEY_REPEAT, KEY_UP, KeyDecoder};
pub use pos::{POS_SCAN_MAX_LEN, PosScan, PosScanDecoder, PosScanError, PosScanLayout};
pub use table::us_keystroke;
pub use typist::{KeySink, Recorder, Typist, keystrokes};

/// How typed characters are cut into messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WedgeConfig {
    /// Silence that ends a message not ended by Enter.
    ///
    /// Readers type a whole swipe in one burst, a few milliseconds a key,
    /// and some are configured without a terminating Enter; 50 ms is far
    /// longer than a reader's pause between keys and far shorter than the
    /// time between two swipes.
    pub gap: Duration,
    /// Longest message kept, in characters. A longer one is reported as
    /// [`KeyMessage::Overflow`] instead, so a stuck or hostile device cannot
    /// grow memory without bound. All three magnetic tracks together are
    /// under 300 characters; 1024 leaves room for 2D barcodes.
    pub max_len: usize,
}

impl Default for WedgeConfig {
    fn default() -> Self {
        WedgeConfig {
            gap: Duration::from_millis(50),
            max_len: 1024,
        }
    }
}

/// One message typed by a reader: a swipe or a scan.
///
/// `Debug` shows only the length, because the text is card data and a
/// `?message` in a log line must not leak it.
#[derive(Clone, PartialEq, Eq)]
pub enum KeyMessage {
    /// The characters typed, without the terminating Enter: printable
    /// ASCII and tab only, at most [`WedgeConfig::max_len`] of them.
    Text(String),
    /// The message was longer than [`WedgeConfig::max_len`] and was
    /// dropped; `len` is how many characters it had.
    Overflow {
        /// Characters typed in the dropped message.
        len: usize,
    },
}

impl KeyMessage {
    /// The text, unless the message overflowed.
    pub fn text(&self) -> Option<&str> {
        match self {
            KeyMessage::Text(text) => Some(text),
            KeyMessage::Overflow { .. } => None,
        }
    }

    /// Characters in the message (for an overflow, how many were typed).
    pub fn len(&self) -> usize {
        match self {
            KeyMessage::Text(text) => text.len(),
            KeyMessage::Overflow { len } => *len,
        }
    }

    /// Whether the message has no characters (never true for a message a
    /// decoder produced: empty messages are not reported).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for KeyMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyMessage::Text(text) => f.debug_struct("Text").field("len", &text.len()).finish(),
            KeyMessage::Overflow { len } => f.debug_struct("Overflow").field("len", len).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_text() {
        let m = KeyMessage::Text("4111111111111111".into());
        let shown = format!("{m:?}");
        assert!(!shown.contains("4111"), "{shown}");
        assert!(shown.contains("16"), "{shown}");
        assert_eq!(m.text(), Some("4111111111111111"));
        assert_eq!(KeyMessage::Overflow { len: 2000 }.len(), 2000);
        assert_eq!(KeyMessage::Overflow { len: 2000 }.text(), None);
    }
}
