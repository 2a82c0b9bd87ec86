//! HID boot-keyboard reports (the 8-byte report every USB keyboard, and so
//! every wedge reader, can send) into messages.

use std::fmt;
use std::time::Instant;

use super::assemble::Assembler;
use super::table;
use super::{KeyMessage, WedgeConfig};

/// Length of a boot-keyboard input report without a report ID: modifiers,
/// a reserved byte and six key slots.
pub const BOOT_REPORT_LEN: usize = 8;

/// Key-slot values that are error codes, not keys (HID Usage Tables,
/// Keyboard page): ErrorRollOver, POSTFail, ErrorUndefined. A keyboard
/// fills every slot with one when too many keys are down to tell which.
const ERROR_USAGES: std::ops::RangeInclusive<u8> = 0x01..=0x03;

/// Why a boot-keyboard report was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootReportError {
    /// The report is not 8 bytes (9 with a report ID): the device does not
    /// send boot reports, or the report ID setting is wrong.
    #[error("boot keyboard report of {len} bytes, expected {expected}")]
    Length {
        /// Bytes received.
        len: usize,
        /// Bytes expected for the configured report ID setting.
        expected: usize,
    },
}

/// One boot-keyboard input report: the modifiers and keys held right now.
///
/// `Debug` shows how many keys are held, not which: they are card data.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct BootReport {
    /// Modifier bits: 0 left Ctrl, 1 left Shift, 2 left Alt, 3 left GUI,
    /// 4 right Ctrl, 5 right Shift, 6 right Alt, 7 right GUI.
    pub modifiers: u8,
    /// Usages (Keyboard page 0x07) of the keys held, 0 for an empty slot.
    pub keys: [u8; 6],
}

impl BootReport {
    /// Parses a report. With `report_id`, the report must be 9 bytes and
    /// start with that ID; a report with another ID belongs to another
    /// collection of the same device (media keys, say) and gives
    /// `Ok(None)`. Without, it must be exactly 8 bytes.
    pub fn parse(
        report: &[u8],
        report_id: Option<u8>,
    ) -> Result<Option<BootReport>, BootReportError> {
        let body = match report_id {
            None => report,
            Some(id) => match report.split_first() {
                Some((&first, rest)) if first == id => rest,
                Some(_) => return Ok(None),
                None => &[],
            },
        };
        let bytes: &[u8; BOOT_REPORT_LEN] =
            body.try_into().map_err(|_| BootReportError::Length {
                len: report.len(),
                expected: BOOT_REPORT_LEN + usize::from(report_id.is_some()),
            })?;
        let mut keys = [0; 6];
        keys.copy_from_slice(&bytes[2..]);
        Ok(Some(BootReport {
            modifiers: bytes[0],
            keys,
        }))
    }

    /// Whether this is an error report (key rollover and the like), which
    /// says nothing about which keys are down.
    pub fn is_error(&self) -> bool {
        self.keys.iter().any(|k| ERROR_USAGES.contains(k))
    }

    /// Usages held in this report that were not held in `prev`, in slot
    /// order: the keys pressed between the two reports. A key still held
    /// from `prev` is not pressed again.
    pub fn newly_pressed<'a>(&'a self, prev: &'a BootReport) -> impl Iterator<Item = u8> + 'a {
        self.keys
            .iter()
            .enumerate()
            .filter(move |&(i, &usage)| {
                usage != 0 && !prev.keys.contains(&usage) && !self.keys[..i].contains(&usage)
            })
            .map(|(_, &usage)| usage)
    }
}

impl fmt::Debug for BootReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootReport")
            .field("modifiers", &format_args!("{:#04x}", self.modifiers))
            .field("keys_held", &self.keys.iter().filter(|&&k| k != 0).count())
            .finish()
    }
}

/// Decodes a stream of boot-keyboard reports with the fixed US table and
/// the same message rules (Enter, gap, Caps Lock, chords, length bound) as
/// [`super::KeyDecoder`].
#[derive(Debug)]
pub struct BootKeyboardDecoder {
    assembler: Assembler,
    report_id: Option<u8>,
    /// The last report that said which keys are held; a key is pressed when
    /// it appears in a report but not in this one.
    prev: BootReport,
}

impl Default for BootKeyboardDecoder {
    fn default() -> Self {
        BootKeyboardDecoder::new(WedgeConfig::default(), None)
    }
}

impl BootKeyboardDecoder {
    /// A decoder for reports with a leading `report_id` byte, or for plain
    /// 8-byte reports with `None` (a keyboard interface in boot protocol).
    pub fn new(config: WedgeConfig, report_id: Option<u8>) -> Self {
        BootKeyboardDecoder {
            assembler: Assembler::new(config),
            report_id,
            prev: BootReport::default(),
        }
    }

    /// Feeds one report received at `at`; returns the messages it
    /// finished, usually none. (One report can finish two: the gap ends
    /// the pending message and the report's own keys end with Enter.)
    ///
    /// Error (rollover) reports are skipped, keeping the last good key
    /// state so a key held across them is not typed twice. A malformed
    /// report is an error and changes nothing.
    pub fn report(
        &mut self,
        report: &[u8],
        at: Instant,
    ) -> Result<Vec<KeyMessage>, BootReportError> {
        let Some(current) = BootReport::parse(report, self.report_id)? else {
            return Ok(Vec::new());
        };
        let mut finished: Vec<KeyMessage> = self.assembler.activity(at).into_iter().collect();
        if current.is_error() {
            return Ok(finished);
        }
        for usage in current.newly_pressed(&self.prev) {
            if let Some(key) = table::usage_key(usage) {
                // The modifiers of this report apply to its new keys:
                // readers send Shift and the key in the same report.
                finished.extend(self.assembler.press(key, current.modifiers));
            }
        }
        self.prev = current;
        Ok(finished)
    }

    /// The pending message, if the gap has passed by `now`.
    pub fn flush_if_idle(&mut self, now: Instant) -> Option<KeyMessage> {
        self.assembler.flush_if_idle(now)
    }

    /// When the pending message will end unless another report types more;
    /// `None` when nothing is pending.
    pub fn deadline(&self) -> Option<Instant> {
        self.assembler.deadline()
    }

    /// Drops the pending message and forgets held keys and Caps Lock.
    pub fn reset(&mut self) {
        self.assembler.reset();
        self.prev = BootReport::default();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    const RELEASE: [u8; 8] = [0; 8];
    const ONE: [u8; 8] = [0, 0, 0x1E, 0, 0, 0, 0, 0];
    const TWO: [u8; 8] = [0, 0, 0x1F, 0, 0, 0, 0, 0];
    const ONE_AND_TWO: [u8; 8] = [0, 0, 0x1E, 0x1F, 0, 0, 0, 0];
    const ENTER: [u8; 8] = [0, 0, 0x28, 0, 0, 0, 0, 0];
    const ROLLOVER: [u8; 8] = [0, 0, 1, 1, 1, 1, 1, 1];

    /// "12" and Enter as a reader sends it: each key's report followed by
    /// an all-zero release report.
    const TYPED_12: &[[u8; 8]] = &[ONE, RELEASE, TWO, RELEASE, ENTER, RELEASE];

    /// `%B4^` and Enter with Left Shift (bit 1) or Right Shift (bit 5) in
    /// the same report as the key, as readers send capitals.
    const SHIFTED: &[[u8; 8]] = &[
        [0x02, 0, 0x22, 0, 0, 0, 0, 0], // Shift+5 = %
        RELEASE,
        [0x20, 0, 0x05, 0, 0, 0, 0, 0], // Shift+b = B
        RELEASE,
        [0x00, 0, 0x21, 0, 0, 0, 0, 0], // 4
        RELEASE,
        [0x02, 0, 0x23, 0, 0, 0, 0, 0], // Shift+6 = ^
        [0x00, 0, 0x00, 0, 0, 0, 0, 0],
        [0x02, 0, 0x38, 0, 0, 0, 0, 0], // Shift+/ = ?
        RELEASE,
        ENTER,
        RELEASE,
    ];

    fn feed(dec: &mut BootKeyboardDecoder, reports: &[[u8; 8]]) -> Vec<KeyMessage> {
        let base = Instant::now();
        let mut out = Vec::new();
        for (i, report) in reports.iter().enumerate() {
            let at = base + Duration::from_millis(2 * i as u64);
            out.extend(dec.report(report, at).expect("valid report"));
        }
        out
    }

    fn texts(messages: &[KeyMessage]) -> Vec<Option<&str>> {
        messages.iter().map(KeyMessage::text).collect()
    }

    #[test]
    fn types_12_and_enter() {
        let mut dec = BootKeyboardDecoder::default();
        assert_eq!(texts(&feed(&mut dec, TYPED_12)), [Some("12")]);
        assert_eq!(dec.deadline(), None);
    }

    #[test]
    fn a_held_key_is_not_doubled() {
        let mut dec = BootKeyboardDecoder::default();
        // 1 held across two reports, then 2 joins it: "12", not "112".
        let out = feed(&mut dec, &[ONE, ONE, ONE_AND_TWO, TWO, RELEASE, ENTER]);
        assert_eq!(texts(&out), [Some("12")]);
    }

    #[test]
    fn rollover_report_is_ignored() {
        let mut dec = BootKeyboardDecoder::default();
        let out = feed(
            &mut dec,
            &[ONE, ROLLOVER, ONE, RELEASE, TWO, ROLLOVER, RELEASE, ENTER],
        );
        assert_eq!(texts(&out), [Some("12")]);
        let parsed = BootReport::parse(&ROLLOVER, None).unwrap().unwrap();
        assert!(parsed.is_error());
    }

    #[test]
    fn shift_bits_and_caps_lock() {
        let mut dec = BootKeyboardDecoder::default();
        assert_eq!(texts(&feed(&mut dec, SHIFTED)), [Some("%B4^?")]);
        // Caps Lock (0x39) then a, Shift+a, 1.
        let out = feed(
            &mut dec,
            &[
                [0, 0, 0x39, 0, 0, 0, 0, 0],
                RELEASE,
                [0, 0, 0x04, 0, 0, 0, 0, 0],
                [0x22, 0, 0x04, 0, 0, 0, 0, 0], // still held: not doubled
                RELEASE,
                [0x02, 0, 0x04, 0, 0, 0, 0, 0],
                RELEASE,
                ONE,
                RELEASE,
                [0, 0, 0x58, 0, 0, 0, 0, 0], // keypad Enter
            ],
        );
        assert_eq!(texts(&out), [Some("Aa1")]);
    }

    #[test]
    fn chords_drop_characters() {
        let mut dec = BootKeyboardDecoder::default();
        let out = feed(
            &mut dec,
            &[
                [0x01, 0, 0x06, 0, 0, 0, 0, 0], // left Ctrl+c
                RELEASE,
                [0x40, 0, 0x1E, 0, 0, 0, 0, 0], // right Alt+1
                RELEASE,
                [0x08, 0, 0x1E, 0, 0, 0, 0, 0], // left GUI+1
                RELEASE,
                TWO,
                ENTER,
            ],
        );
        assert_eq!(texts(&out), [Some("2")]);
    }

    #[test]
    fn keypad_and_symbols() {
        let mut dec = BootKeyboardDecoder::default();
        let mut reports = Vec::new();
        for usage in (0x54..=0x57).chain(0x59..=0x63).chain([
            0x2B, 0x2C, 0x2D, 0x2E, 0x2F, 0x30, 0x31, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38,
        ]) {
            reports.push([0, 0, usage, 0, 0, 0, 0, 0]);
            reports.push(RELEASE);
        }
        // Unknown usages: Escape, Backspace, F1, Non-US #, left Ctrl as a
        // key slot.
        for usage in [0x29, 0x2A, 0x3A, 0x32, 0xE0] {
            reports.push([0, 0, usage, 0, 0, 0, 0, 0]);
        }
        reports.push(ENTER);
        assert_eq!(
            texts(&feed(&mut dec, &reports)),
            [Some("/*-+1234567890.\t -=[]\\;'`,./")]
        );
    }

    #[test]
    fn two_keys_and_enter_in_one_report() {
        let mut dec = BootKeyboardDecoder::default();
        let out = feed(&mut dec, &[[0, 0, 0x1E, 0x1F, 0x28, 0x20, 0, 0], RELEASE]);
        // Slot order is press order: "12", Enter, then "3" pending.
        assert_eq!(texts(&out), [Some("12")]);
        let deadline = dec.deadline().expect("3 pending");
        assert_eq!(
            dec.flush_if_idle(deadline)
                .as_ref()
                .and_then(KeyMessage::text),
            Some("3")
        );
    }

    #[test]
    fn gap_ends_a_message_and_a_late_report_can_finish_two() {
        let mut dec = BootKeyboardDecoder::default();
        let base = Instant::now();
        dec.report(&ONE, base).unwrap();
        dec.report(&RELEASE, base).unwrap();
        // Nobody polled; a later report of "2"+Enter finishes both.
        let out = dec
            .report(
                &[0, 0, 0x1F, 0x28, 0, 0, 0, 0],
                base + Duration::from_secs(1),
            )
            .unwrap();
        assert_eq!(texts(&out), [Some("1"), Some("2")]);
    }

    #[test]
    fn report_id_prefix() {
        let mut dec = BootKeyboardDecoder::new(WedgeConfig::default(), Some(1));
        let base = Instant::now();
        assert!(
            dec.report(&[1, 0, 0, 0x1E, 0, 0, 0, 0, 0], base)
                .unwrap()
                .is_empty()
        );
        // Another collection's report (ID 3) is not ours: skipped.
        assert!(dec.report(&[3, 0xE9, 0], base).unwrap().is_empty());
        let out = dec.report(&[1, 0, 0, 0x28, 0, 0, 0, 0, 0], base).unwrap();
        assert_eq!(texts(&out), [Some("1")]);
        assert_eq!(
            dec.report(&[1, 0, 0, 0x28], base),
            Err(BootReportError::Length {
                len: 4,
                expected: 9
            })
        );
        assert_eq!(
            dec.report(&[], base),
            Err(BootReportError::Length {
                len: 0,
                expected: 9
            })
        );
    }

    #[test]
    fn wrong_lengths_are_errors_and_change_nothing() {
        let mut dec = BootKeyboardDecoder::default();
        let base = Instant::now();
        dec.report(&ONE, base).unwrap();
        for bad in [&[][..], &[0, 0, 0x1E], &[0, 0x1E, 0, 0, 0, 0, 0], &[0; 9]] {
            assert_eq!(
                dec.report(bad, base),
                Err(BootReportError::Length {
                    len: bad.len(),
                    expected: 8
                })
            );
        }
        // 1 is still held as far as the decoder knows.
        let out = dec.report(&ONE_AND_TWO, base).unwrap();
        assert!(out.is_empty());
        assert_eq!(texts(&dec.report(&ENTER, base).unwrap()), [Some("12")]);
    }

    #[test]
    fn debug_hides_keys() {
        let report = BootReport::parse(&ONE_AND_TWO, None).unwrap().unwrap();
        assert_eq!(
            format!("{report:?}"),
            "BootReport { modifiers: 0x00, keys_held: 2 }"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_reports_never_panic(
            reports in proptest::collection::vec(
                prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..12),
                    proptest::collection::vec(prop_oneof![Just(0u8), 0x04u8..0x40, any::<u8>()], 8),
                ],
                0..200,
            ),
            report_id in proptest::option::of(0u8..3),
        ) {
            let mut dec = BootKeyboardDecoder::new(WedgeConfig { max_len: 16, ..WedgeConfig::default() }, report_id);
            let base = Instant::now();
            let mut out = Vec::new();
            for (i, report) in reports.iter().enumerate() {
                if let Ok(messages) = dec.report(report, base + Duration::from_millis(i as u64)) {
                    out.extend(messages);
                }
            }
            out.extend(dec.flush_if_idle(base + Duration::from_secs(3600)));
            for m in out {
                if let KeyMessage::Text(text) = m {
                    prop_assert!(!text.is_empty() && text.len() <= 16);
                    prop_assert!(text.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)));
                }
            }
        }
    }
}
