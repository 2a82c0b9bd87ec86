//! HID POS barcode scanners (usage page 0x8C, "Bar Code Scanner"): the
//! "Scanned Data Report" into scans.
//!
//! The HID Point of Sale Usage Tables define the report's *usages*
//! (Scanned Data Report 0x12, Symbology Identifier 1–3 0xFB–0xFD, Decoded
//! Data 0xFE, Decoded Data Continued 0xFF) but not byte offsets: those come
//! from each device's report descriptor. The default layout is the one
//! scanners in HID POS mode commonly send, a 64-byte input report:
//!
//! | byte  | content                                                   |
//! |-------|-----------------------------------------------------------|
//! | 0     | report ID, 0x02                                           |
//! | 1     | number of data bytes in this report (not counting the AIM) |
//! | 2..5  | AIM symbology identifier, e.g. `]Q1`                      |
//! | 5..61 | data, up to 56 bytes, zero padded                         |
//! | 61    | vendor symbology code                                     |
//! | 62    | reserved                                                  |
//! | 63    | bit 0: data continued (another report of this scan follows) |
//!
//! Sources: the Access-IS ATR110/LSR116/LSR118 product manuals, appendix
//! "HID reports – Receive data", give this table with a worked two-report
//! example (56 bytes with byte 63 = 0x01, then the rest with 0x00); the
//! `@point-of-sale/webhid-barcode-scanner` library (Niels Leenheer) reads
//! Honeywell HID POS scanners at the same offsets (length, AIM, data from
//! byte 5, vendor code at 61, "more" at 63). One difference: that library
//! takes `length - 1` data bytes where the Access-IS examples count
//! `length` (0x38 for a full 56-byte report, 0x04 for four bytes); this
//! module follows the manuals. Vendors differ (some descriptors pack the
//! continued bit right after the 56 data bytes, at byte 61), hence
//! [`PosScanLayout`].

use std::fmt;

/// Largest scan kept by default, in bytes. A QR code holds at most 2953
/// bytes; anything longer is a fault or an attack.
pub const POS_SCAN_MAX_LEN: usize = 4096;

/// Where the fields of a Scanned Data Report are. Offsets count from the
/// first byte of the report as read (from hidraw: the report ID, when the
/// device uses report IDs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PosScanLayout {
    /// The report ID of scanned-data reports; reports with another first
    /// byte (status, attributes) are skipped. `None` when the device sends
    /// no report IDs.
    pub report_id: Option<u8>,
    /// The byte holding how many data bytes this report carries.
    pub length_offset: usize,
    /// Where the 3-byte AIM symbology identifier is, if the report has one.
    pub symbology_offset: Option<usize>,
    /// Where the data starts.
    pub data_offset: usize,
    /// The byte and bit mask of "decoded data continued": when set, the
    /// next report carries more of the same scan. `None`: one report per
    /// scan.
    pub continuation: Option<(usize, u8)>,
}

impl Default for PosScanLayout {
    /// The common 64-byte layout described in the module documentation.
    fn default() -> Self {
        PosScanLayout {
            report_id: Some(0x02),
            length_offset: 1,
            symbology_offset: Some(2),
            data_offset: 5,
            continuation: Some((63, 0x01)),
        }
    }
}

/// One complete scan.
///
/// `Debug` shows the AIM identifier and the length only: the data can be a
/// card number or a payment token.
#[derive(Clone, PartialEq, Eq)]
pub struct PosScan {
    /// The decoded data, all reports of the scan joined, AIM excluded.
    pub data: Vec<u8>,
    /// The AIM symbology identifier (`]` then two characters, e.g. `]Q1`
    /// for a QR code), if the scanner sent one.
    pub aim: Option<[u8; 3]>,
}

impl fmt::Debug for PosScan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let aim = self
            .aim
            .map(|aim| String::from_utf8_lossy(&aim).into_owned());
        f.debug_struct("PosScan")
            .field("len", &self.data.len())
            .field("aim", &aim)
            .finish()
    }
}

/// Why a scanned-data report or scan was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PosScanError {
    /// The report ends before a field the layout puts in it.
    #[error("scanner report of {len} bytes, the layout needs {need}")]
    Short {
        /// Bytes received.
        len: usize,
        /// Bytes the layout needs.
        need: usize,
    },
    /// The length byte claims more data than the report has room for.
    #[error("scanner report claims {declared} data bytes, room for {room}")]
    Length {
        /// The length byte's value.
        declared: usize,
        /// Data bytes the report can hold.
        room: usize,
    },
    /// The scan was longer than the bound and was dropped.
    #[error("scan of {len} bytes dropped: over the limit")]
    Overflow {
        /// Bytes the scan had.
        len: usize,
    },
}

#[derive(Debug)]
enum State {
    Idle,
    Collecting {
        data: Vec<u8>,
        aim: Option<[u8; 3]>,
    },
    /// The rest of a scan that is already lost: skipped up to its last
    /// report, which reports the overflow (if that was the cause) so the
    /// tail is never taken for a new scan.
    Discarding {
        overflow: Option<usize>,
    },
}

/// Joins Scanned Data Reports into scans.
pub struct PosScanDecoder {
    layout: PosScanLayout,
    max_len: usize,
    state: State,
}

/// Shows the layout and whether a scan is pending, not the data.
impl fmt::Debug for PosScanDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PosScanDecoder")
            .field("layout", &self.layout)
            .field("max_len", &self.max_len)
            .field("pending", &self.is_pending())
            .finish()
    }
}

impl Default for PosScanDecoder {
    fn default() -> Self {
        PosScanDecoder::new(PosScanLayout::default())
    }
}

impl PosScanDecoder {
    /// A decoder for `layout`, keeping scans up to [`POS_SCAN_MAX_LEN`].
    pub fn new(layout: PosScanLayout) -> Self {
        PosScanDecoder::with_max_len(layout, POS_SCAN_MAX_LEN)
    }

    /// A decoder keeping scans up to `max_len` bytes.
    pub fn with_max_len(layout: PosScanLayout, max_len: usize) -> Self {
        PosScanDecoder {
            layout,
            max_len,
            state: State::Idle,
        }
    }

    /// Feeds one input report. Returns the scan it completed, `Ok(None)`
    /// when the scan continues (or the report is not a scanned-data report,
    /// or the scan is empty), and an error for a malformed report or an
    /// over-long scan. After an error the rest of the broken scan, if the
    /// report said more follows, is skipped.
    pub fn report(&mut self, report: &[u8]) -> Result<Option<PosScan>, PosScanError> {
        if let Some(id) = self.layout.report_id {
            match report.first() {
                Some(&first) if first == id => {}
                Some(_) => return Ok(None),
                None => return self.fail(PosScanError::Short { len: 0, need: 1 }, false),
            }
        }
        // Read first, so that even a malformed report says whether its
        // scan goes on.
        let more = match self.layout.continuation {
            None => false,
            Some((at, mask)) => match report.get(at) {
                Some(&flags) => flags & mask != 0,
                None => {
                    let need = at.saturating_add(1);
                    return self.fail(
                        PosScanError::Short {
                            len: report.len(),
                            need,
                        },
                        false,
                    );
                }
            },
        };
        let (chunk, aim) = match self.fields(report) {
            Ok(fields) => fields,
            Err(e) => return self.fail(e, more),
        };

        let state = match std::mem::replace(&mut self.state, State::Idle) {
            State::Idle => State::Collecting {
                data: Vec::new(),
                aim,
            },
            // Continuations usually repeat the AIM; the first one counts.
            State::Collecting { data, aim: first } => State::Collecting {
                data,
                aim: first.or(aim),
            },
            discarding @ State::Discarding { .. } => discarding,
        };
        let state = match state {
            State::Collecting { mut data, aim } => {
                let total = data.len().saturating_add(chunk.len());
                if total > self.max_len {
                    State::Discarding {
                        overflow: Some(total),
                    }
                } else {
                    data.extend_from_slice(chunk);
                    State::Collecting { data, aim }
                }
            }
            State::Discarding { overflow } => State::Discarding {
                overflow: overflow.map(|len| len.saturating_add(chunk.len())),
            },
            State::Idle => State::Idle,
        };
        if more {
            self.state = state;
            return Ok(None);
        }
        match state {
            State::Collecting { data, aim } if !data.is_empty() => {
                tracing::debug!(len = data.len(), "HID POS scan");
                Ok(Some(PosScan { data, aim }))
            }
            State::Discarding {
                overflow: Some(len),
            } => {
                tracing::warn!(
                    len,
                    max = self.max_len,
                    "HID POS scan over the limit, dropped"
                );
                Err(PosScanError::Overflow { len })
            }
            _ => Ok(None),
        }
    }

    /// Whether part of a scan has been received and the rest is awaited.
    pub fn is_pending(&self) -> bool {
        !matches!(self.state, State::Idle)
    }

    /// Drops a partly received scan, e.g. after the device was reopened:
    /// its last report may never come.
    pub fn reset(&mut self) {
        self.state = State::Idle;
    }

    /// Records a malformed report: the scan it belonged to is lost, and if
    /// more of it follows, that is skipped too.
    fn fail(&mut self, error: PosScanError, more: bool) -> Result<Option<PosScan>, PosScanError> {
        tracing::debug!(%error, "HID POS report rejected");
        self.state = if more {
            State::Discarding { overflow: None }
        } else {
            State::Idle
        };
        Err(error)
    }

    /// The data bytes and AIM identifier of one report.
    fn fields<'r>(&self, report: &'r [u8]) -> Result<(&'r [u8], Option<[u8; 3]>), PosScanError> {
        let len = report.len();
        let short = |need: usize| PosScanError::Short { len, need };
        let at = self.layout.length_offset;
        let declared = usize::from(*report.get(at).ok_or_else(|| short(at.saturating_add(1)))?);
        let aim = match self.layout.symbology_offset {
            None => None,
            Some(at) => {
                let end = at.saturating_add(3);
                let bytes: [u8; 3] = report
                    .get(at..end)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| short(end))?;
                // An AIM identifier always starts with `]`; zeros mean the
                // scanner was set not to send one.
                (bytes[0] == b']').then_some(bytes)
            }
        };
        let start = self.layout.data_offset;
        // The data may not run into the continuation byte.
        let limit = match self.layout.continuation {
            Some((at, _)) if at >= start => at.min(len),
            _ => len,
        };
        if start > limit {
            return Err(short(start));
        }
        let room = limit - start;
        if declared > room {
            return Err(PosScanError::Length { declared, room });
        }
        let data = report
            .get(start..start + declared)
            .ok_or(PosScanError::Length { declared, room })?;
        Ok((data, aim))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Builds a report in the default 64-byte layout.
    const fn report(data: &[u8], aim: &[u8; 3], more: bool) -> [u8; 64] {
        let mut r = [0u8; 64];
        r[0] = 0x02;
        r[1] = data.len() as u8;
        r[2] = aim[0];
        r[3] = aim[1];
        r[4] = aim[2];
        let mut i = 0;
        while i < data.len() {
            r[5 + i] = data[i];
            i += 1;
        }
        r[61] = b's'; // Honeywell's code for QR, as a scanner fills it.
        r[63] = more as u8;
        r
    }

    /// An EAN-13 in one report, AIM `]E0`.
    const EAN13: [u8; 64] = report(b"4607001234565", b"]E0", false);

    /// A Russian payment QR code (ST00012), 64 bytes: 56 in the first
    /// report (continued), 8 in the second.
    const QR_TEXT: &[u8] = b"ST00012|Name=OOO Romashka|PersonalAcc=40702810900000000001|Sum=1";
    const QR_FIRST: [u8; 64] = report(QR_TEXT.split_at(56).0, b"]Q1", true);
    const QR_LAST: [u8; 64] = report(QR_TEXT.split_at(56).1, b"]Q1", false);

    #[test]
    fn single_report_scan() {
        let mut dec = PosScanDecoder::default();
        let scan = dec.report(&EAN13).unwrap().expect("complete");
        assert_eq!(scan.data, b"4607001234565");
        assert_eq!(scan.aim, Some(*b"]E0"));
        assert!(!dec.is_pending());
    }

    #[test]
    fn continued_scan_with_aim() {
        assert!(QR_TEXT.len() > 56);
        let mut dec = PosScanDecoder::default();
        assert_eq!(dec.report(&QR_FIRST), Ok(None));
        assert!(dec.is_pending());
        let scan = dec.report(&QR_LAST).unwrap().expect("complete");
        assert_eq!(scan.data, QR_TEXT);
        assert_eq!(scan.aim, Some(*b"]Q1"));
        assert!(!dec.is_pending());
        // The decoder is ready for the next scan.
        assert_eq!(
            dec.report(&EAN13).unwrap().map(|s| s.data),
            Some(b"4607001234565".to_vec())
        );
    }

    #[test]
    fn debug_hides_data() {
        let scan = PosScanDecoder::default().report(&EAN13).unwrap().unwrap();
        assert_eq!(
            format!("{scan:?}"),
            "PosScan { len: 13, aim: Some(\"]E0\") }"
        );
    }

    #[test]
    fn no_aim_and_other_reports() {
        let mut dec = PosScanDecoder::default();
        let no_aim = report(b"123", &[0, 0, 0], false);
        assert_eq!(dec.report(&no_aim).unwrap().map(|s| s.aim), Some(None));
        // Another report ID (a status report) is skipped.
        let mut status = EAN13;
        status[0] = 0x04;
        assert_eq!(dec.report(&status), Ok(None));
        // An empty scan is not a scan.
        assert_eq!(dec.report(&report(b"", b"]E0", false)), Ok(None));
    }

    #[test]
    fn malformed_reports_are_errors() {
        let mut dec = PosScanDecoder::default();
        assert_eq!(
            dec.report(&[]),
            Err(PosScanError::Short { len: 0, need: 1 })
        );
        assert_eq!(
            dec.report(&EAN13[..20]),
            Err(PosScanError::Short { len: 20, need: 64 })
        );
        let mut long = EAN13;
        long[1] = 59;
        assert_eq!(
            dec.report(&long),
            Err(PosScanError::Length {
                declared: 59,
                room: 58
            })
        );
        assert!(!dec.is_pending());
    }

    #[test]
    fn a_broken_first_part_skips_the_rest_of_its_scan() {
        let mut dec = PosScanDecoder::default();
        let mut broken = QR_FIRST;
        broken[1] = 0xFF;
        assert!(matches!(
            dec.report(&broken),
            Err(PosScanError::Length { .. })
        ));
        // The tail is not mistaken for a scan of its own.
        assert_eq!(dec.report(&QR_LAST), Ok(None));
        assert_eq!(dec.report(&EAN13).unwrap().map(|s| s.data.len()), Some(13));
    }

    #[test]
    fn overflow_is_reported_at_the_end_of_the_scan() {
        let mut dec = PosScanDecoder::with_max_len(PosScanLayout::default(), 60);
        assert_eq!(dec.report(&QR_FIRST), Ok(None));
        assert_eq!(dec.report(&QR_FIRST), Ok(None));
        assert_eq!(
            dec.report(&QR_LAST),
            Err(PosScanError::Overflow { len: 56 * 2 + 8 })
        );
        assert!(!dec.is_pending());
        assert_eq!(dec.report(&EAN13).unwrap().map(|s| s.data.len()), Some(13));
    }

    #[test]
    fn default_bound_is_4096() {
        let mut dec = PosScanDecoder::default();
        let full = report(&[b'x'; 56], b"]Q1", true);
        for _ in 0..(4096 / 56) {
            assert_eq!(dec.report(&full), Ok(None));
        }
        assert_eq!(
            dec.report(&report(&[b'x'; 56], b"]Q1", false)),
            Err(PosScanError::Overflow {
                len: 56 * (4096 / 56 + 1)
            })
        );
    }

    #[test]
    fn reset_drops_a_partial_scan() {
        let mut dec = PosScanDecoder::default();
        dec.report(&QR_FIRST).unwrap();
        dec.reset();
        assert_eq!(
            dec.report(&QR_LAST).unwrap().map(|s| s.data.len()),
            Some(QR_TEXT.len() - 56)
        );
    }

    #[test]
    fn vendor_layout_without_report_id() {
        // A 62-byte descriptor: count, AIM, 56 data bytes, then the
        // continued bit in the very next byte; no report ID.
        let layout = PosScanLayout {
            report_id: None,
            length_offset: 0,
            symbology_offset: Some(1),
            data_offset: 4,
            continuation: Some((60, 0x01)),
        };
        let mut dec = PosScanDecoder::new(layout);
        let mut r = [0u8; 61];
        r[0] = 3;
        r[1..4].copy_from_slice(b"]C0");
        r[4..7].copy_from_slice(b"abc");
        r[60] = 1;
        assert_eq!(dec.report(&r), Ok(None));
        r[4..7].copy_from_slice(b"def");
        r[60] = 0;
        let scan = dec.report(&r).unwrap().unwrap();
        assert_eq!(scan.data, b"abcdef");
        assert_eq!(scan.aim, Some(*b"]C0"));
        // Offsets past the end are errors, not panics (found by proptest:
        // a zero length byte with the data offset past the end).
        let mut dec = PosScanDecoder::new(PosScanLayout {
            data_offset: 62,
            continuation: None,
            ..layout
        });
        r[0] = 0;
        assert_eq!(
            dec.report(&r),
            Err(PosScanError::Short { len: 61, need: 62 })
        );
        let mut dec = PosScanDecoder::new(PosScanLayout {
            symbology_offset: Some(usize::MAX),
            continuation: None,
            ..layout
        });
        assert_eq!(
            dec.report(&r),
            Err(PosScanError::Short {
                len: 61,
                need: usize::MAX
            })
        );
    }

    proptest! {
        #[test]
        fn arbitrary_reports_never_panic(
            reports in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..70), 0..100),
            report_id in proptest::option::of(0u8..3),
            length_offset in 0usize..70,
            symbology_offset in proptest::option::of(0usize..70),
            data_offset in 0usize..70,
            continuation in proptest::option::of((0usize..70, any::<u8>())),
            max_len in 0usize..300,
        ) {
            let layout = PosScanLayout { report_id, length_offset, symbology_offset, data_offset, continuation };
            let mut dec = PosScanDecoder::with_max_len(layout, max_len);
            for report in &reports {
                match dec.report(report) {
                    Ok(Some(scan)) => {
                        prop_assert!(!scan.data.is_empty() && scan.data.len() <= max_len);
                        if let Some(aim) = scan.aim {
                            prop_assert_eq!(aim[0], b']');
                        }
                    }
                    Err(PosScanError::Overflow { len }) => prop_assert!(len > max_len),
                    _ => {}
                }
            }
            // The default layout too.
            let mut dec = PosScanDecoder::default();
            for report in &reports {
                let _ = dec.report(report);
            }
        }
    }
}
