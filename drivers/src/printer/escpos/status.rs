//! Real-time status: `DLE EOT n` requests and their one-byte replies, per
//! the Epson ESC/POS reference.

/// `DLE EOT n`: ask for status `n` (1 printer, 2 offline cause, 3 error
/// cause, 4 roll paper sensor). The printer answers one byte, even while
/// busy or offline (printers whose profile says `status_reply = false`
/// never answer).
pub fn status_request(n: u8) -> [u8; 3] {
    [0x10, 0x04, n]
}

/// A status byte has bits 1 and 4 set and bits 0 and 7 clear.
pub fn is_status_byte(byte: u8) -> bool {
    byte & 0b1001_0011 == 0b0001_0010
}

/// What one `DLE EOT n` reply says. Fields not covered by that `n` are
/// `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusBits {
    /// The byte has the fixed bits of a status reply (see [`is_status_byte`]).
    pub well_formed: bool,
    /// n=1 bit 3 clear.
    pub online: Option<bool>,
    /// n=1 bit 2: drawer kick-out connector pin 3 HIGH. For the common
    /// drawers this means the drawer is open; some drawers invert it.
    pub drawer_open: Option<bool>,
    /// n=1 bit 5: waiting for online recovery.
    pub waiting_online_recovery: Option<bool>,
    /// n=1 bit 6 (and n=2 bit 3: paper being fed by the button).
    pub feed_button_pressed: Option<bool>,
    /// n=2 bit 2.
    pub cover_open: Option<bool>,
    /// n=2 bit 5: printing stopped on paper end; n=4 bits 5–6: roll paper
    /// sensor reports no paper.
    pub paper_end: Option<bool>,
    /// n=2 bit 6: an error occurred.
    pub error: Option<bool>,
    /// n=3 bit 3: autocutter error.
    pub cutter_error: Option<bool>,
    /// n=3 bit 5: unrecoverable error.
    pub unrecoverable_error: Option<bool>,
    /// n=3 bit 6: automatically recoverable error (head overheating...).
    pub auto_recoverable_error: Option<bool>,
    /// n=4 bits 2–3: roll paper near-end sensor.
    pub paper_near_end: Option<bool>,
}

/// Decode the reply to `DLE EOT n`. Unknown `n` yields all `None`.
pub fn decode_status(n: u8, byte: u8) -> StatusBits {
    let bit = |b: u8| Some(byte & (1 << b) != 0);
    let mut s = StatusBits {
        well_formed: is_status_byte(byte),
        ..StatusBits::default()
    };
    match n {
        1 => {
            s.drawer_open = bit(2);
            s.online = Some(byte & 0x08 == 0);
            s.waiting_online_recovery = bit(5);
            s.feed_button_pressed = bit(6);
        }
        2 => {
            s.cover_open = bit(2);
            s.feed_button_pressed = bit(3);
            s.paper_end = bit(5);
            s.error = bit(6);
        }
        3 => {
            s.cutter_error = bit(3);
            s.unrecoverable_error = bit(5);
            s.auto_recoverable_error = bit(6);
        }
        4 => {
            s.paper_near_end = Some(byte & 0x0c != 0);
            s.paper_end = Some(byte & 0x60 != 0);
        }
        _ => s.well_formed = false,
    }
    s
}
