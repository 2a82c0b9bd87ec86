//! HID readers through hidraw, and vendor magnetic-stripe reports.
//!
//! - [`HidReader`]: opens a HID device by USB vendor:product (and serial)
//!   with the `hidapi` crate (its pure-Rust Linux hidraw backend, so no
//!   libudev or libusb), and reads its input reports on a dedicated thread.
//! - [`VendorMsrLayout`]: decodes a vendor-specific magstripe report (track
//!   lengths and track data at fixed offsets) into the text a serial reader
//!   would send (`%...?` / `;...?` joined by CR), so the one magstripe
//!   parser handles every kind of reader.
//!
//! Reports carry card data: nothing here logs them, and `Debug` output
//! shows lengths only.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

/// Largest input report read, in bytes. Full-speed USB interrupt reports
/// are at most 64 bytes and vendor MSR reports a few hundred; hidraw's own
/// buffer limit is 4096 on older kernels, so nothing longer can arrive.
pub const MAX_REPORT_LEN: usize = 4096;

/// Reports queued between the reading thread and the async side. A swipe
/// is one report and a scan a handful; 64 matches hidraw's own queue, so
/// a slow consumer backs up into the kernel rather than into memory.
const CHANNEL_DEPTH: usize = 64;

/// How long one blocking read waits. Short, so the thread notices within
/// this time that the [`HidReader`] was dropped and exits.
const READ_TIMEOUT_MS: i32 = 100;

/// Why a HID device could not be opened or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HidError {
    /// No HID device with this identity is present.
    #[error("no HID device {wanted} found: check that it is plugged in")]
    NotFound {
        /// The identity looked for, such as `0c2e:0b61`.
        wanted: String,
    },
    /// Several HID nodes match and nothing says which one is meant.
    #[error(
        "HID device {wanted} matches {n} nodes ({list}): add the device's serial number to \
         the configuration to pick one",
        n = .candidates.len(),
        list = .candidates.join(", ")
    )]
    Ambiguous {
        /// The identity looked for.
        wanted: String,
        /// Node paths of every match.
        candidates: Vec<String>,
    },
    /// The node exists but this process may not open it: a udev rule (or
    /// group membership) is missing.
    #[error(
        "{path}: permission denied (add a udev rule giving the daemon's group access to \
         the hidraw node)"
    )]
    PermissionDenied {
        /// The hidraw node.
        path: String,
    },
    /// Opening failed for another reason (busy, not a hidraw node...).
    #[error("opening {path}: {message}")]
    Open {
        /// The hidraw node.
        path: String,
        /// What the system said.
        message: String,
    },
    /// Listing HID devices failed.
    #[error("listing HID devices: {message}")]
    Enumerate {
        /// What hidapi said.
        message: String,
    },
    /// The device went away (unplugged, or its driver unbound).
    #[error("HID device disconnected")]
    Disconnected,
    /// Reading failed while the device seemed present.
    #[error("reading HID device: {message}")]
    Read {
        /// What the system said.
        message: String,
    },
}

/// One HID node as enumerated, the part [`select_node`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    path: String,
    vid: u16,
    pid: u16,
    serial: Option<String>,
}

/// Picks the node of the device `vid:pid` (with `serial`, when given) out
/// of `found`.
///
/// hidapi lists a node once per top-level collection, so the same path can
/// appear several times: it counts once.
fn select_node(
    found: &[Candidate],
    vid: u16,
    pid: u16,
    serial: Option<&str>,
) -> Result<String, HidError> {
    // Config files tend to produce "" for "not set".
    let serial = serial.filter(|s| !s.is_empty());
    let mut paths: Vec<String> = Vec::new();
    for c in found {
        let serial_ok = match serial {
            None => true,
            Some(want) => c.serial.as_deref() == Some(want),
        };
        if c.vid == vid && c.pid == pid && serial_ok && !paths.contains(&c.path) {
            paths.push(c.path.clone());
        }
    }
    let wanted = match serial {
        None => format!("{vid:04x}:{pid:04x}"),
        Some(s) => format!("{vid:04x}:{pid:04x} serial {s:?}"),
    };
    match paths.len() {
        0 => Err(HidError::NotFound { wanted }),
        1 => Ok(paths.remove(0)),
        _ => {
            paths.sort();
            Err(HidError::Ambiguous {
                wanted,
                candidates: paths,
            })
        }
    }
}

/// Classifies a read failure: poll hang-up and `ENODEV` mean the device is
/// gone, anything else is a read error.
fn read_error(e: hidapi::HidError) -> HidError {
    match e {
        hidapi::HidError::IoError { error }
            if matches!(error.raw_os_error(), Some(ENODEV | EIO)) =>
        {
            HidError::Disconnected
        }
        hidapi::HidError::HidApiError { message } if message.contains("disconnected") => {
            HidError::Disconnected
        }
        other => HidError::Read {
            message: other.to_string(),
        },
    }
}

/// Linux errno values a removed hidraw node gives (spelled out to avoid a
/// libc dependency for two constants).
const ENODEV: i32 = 19;
const EIO: i32 = 5;

/// A HID device whose input reports are read on a dedicated thread.
///
/// Dropping it stops the thread within [`READ_TIMEOUT_MS`] and closes the
/// device.
pub struct HidReader {
    path: String,
    reports: mpsc::Receiver<Result<Vec<u8>, HidError>>,
    /// Set on drop, so the thread stops even while it waits for reports.
    stop: Arc<AtomicBool>,
}

impl fmt::Debug for HidReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HidReader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl HidReader {
    /// Opens the HID device `vid:pid`, the one with `serial` if given.
    ///
    /// Several matching nodes without a serial (two identical readers, or
    /// one device with several HID interfaces) are an error naming them.
    /// This blocks briefly (sysfs enumeration, `open`): call it from a
    /// blocking context such as `spawn_blocking`. The reading thread starts
    /// at once.
    pub fn open(vid: u16, pid: u16, serial: Option<&str>) -> Result<HidReader, HidError> {
        let api = hidapi::HidApi::new().map_err(|e| HidError::Enumerate {
            message: e.to_string(),
        })?;
        let found: Vec<Candidate> = api
            .device_list()
            .map(|d| Candidate {
                path: d.path().to_string_lossy().into_owned(),
                vid: d.vendor_id(),
                pid: d.product_id(),
                serial: d.serial_number().map(str::to_owned),
            })
            .collect();
        let path = select_node(&found, vid, pid, serial)?;
        let cpath = std::ffi::CString::new(path.clone()).map_err(|_| HidError::Open {
            path: path.clone(),
            message: "path contains a NUL byte".into(),
        })?;
        let device = api.open_path(&cpath).map_err(|e| open_error(&path, e))?;
        Ok(HidReader::spawn(path, move |buf: &mut [u8], timeout| {
            device.read_timeout(buf, timeout)
        }))
    }

    /// Starts the reading thread over `read` (a blocking read with a
    /// timeout in milliseconds, returning 0 bytes on timeout).
    fn spawn<F>(path: String, mut read: F) -> HidReader
    where
        F: FnMut(&mut [u8], i32) -> hidapi::HidResult<usize> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let name = format!("hid {path}");
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            let mut buf = vec![0u8; MAX_REPORT_LEN];
            while !stopped.load(Ordering::Relaxed) && !tx.is_closed() {
                match read(&mut buf, READ_TIMEOUT_MS) {
                    Ok(0) => continue,
                    Ok(n) => {
                        let report = buf[..n.min(buf.len())].to_vec();
                        // Blocks while the channel is full: back-pressure.
                        // Fails only when the receiver is gone.
                        if tx.blocking_send(Ok(report)).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(read_error(e)));
                        break;
                    }
                }
            }
        });
        if let Err(e) = thread {
            // Without a thread nothing will ever be read: say so on the
            // first `next_report` rather than failing silently.
            let (tx, rx) = mpsc::channel(1);
            let _ = tx.try_send(Err(HidError::Read {
                message: format!("starting the reading thread: {e}"),
            }));
            return HidReader {
                path,
                reports: rx,
                stop,
            };
        }
        HidReader {
            path,
            reports: rx,
            stop,
        }
    }

    /// The hidraw node opened, for messages.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The next input report, as read (with the report ID byte first when
    /// the device uses report IDs). [`HidError::Disconnected`] once the
    /// device is gone; a read error ends the reader too.
    pub async fn next_report(&mut self) -> Result<Vec<u8>, HidError> {
        match self.reports.recv().await {
            Some(r) => r,
            None => Err(HidError::Disconnected),
        }
    }
}

impl Drop for HidReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Classifies an open failure. hidapi folds the `io::Error` into a string,
/// so the node is tried again with std to learn whether it is a permission
/// problem (which needs the udev hint) or something else.
fn open_error(path: &str, e: hidapi::HidError) -> HidError {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Err(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            HidError::PermissionDenied {
                path: path.to_owned(),
            }
        }
        Err(io) if io.kind() == std::io::ErrorKind::NotFound => HidError::NotFound {
            wanted: path.to_owned(),
        },
        _ => HidError::Open {
            path: path.to_owned(),
            message: e.to_string(),
        },
    }
}

// ---- vendor magstripe reports ----

/// Where one track is in a vendor MSR report. Offsets count from the first
/// byte of the report as read (the report ID, when the device uses them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackSlot {
    /// The byte holding the track's length (0: track not read).
    pub length_offset: usize,
    /// Where the track's characters start.
    pub data_offset: usize,
    /// The most characters the slot holds; a longer length byte is an
    /// error, never a read past the slot.
    pub max_len: usize,
}

/// The layout of a vendor-specific magstripe report, as found in the
/// reader's manual or its report descriptor.
///
/// Many USB magstripe readers in "HID mode" (MagTek, ID TECH and their
/// clones) send one report per swipe with each track's decoded ASCII
/// characters in a fixed slot and its length in a byte elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VendorMsrLayout {
    /// Report ID of swipe reports; others are skipped. `None` when the
    /// device sends no report IDs.
    pub report_id: Option<u8>,
    /// Tracks 1, 2 and 3; `None` for a track the report lacks.
    pub tracks: [Option<TrackSlot>; 3],
}

/// The tracks of one vendor MSR report.
///
/// `Debug` shows lengths only: the tracks are card data.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct VendorMsrSwipe {
    /// Tracks 1, 2 and 3 as sent, printable ASCII, `None` when not read.
    pub tracks: [Option<String>; 3],
}

impl fmt::Debug for VendorMsrSwipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lens = self.tracks.each_ref().map(|t| t.as_ref().map(String::len));
        f.debug_struct("VendorMsrSwipe")
            .field("track_lens", &lens)
            .finish()
    }
}

impl VendorMsrSwipe {
    /// The swipe as a serial reader sends it: track 1 as `%...?`, tracks 2
    /// and 3 as `;...?`, joined by CR. Sentinels the reader already sent
    /// are kept rather than doubled.
    pub fn to_serial_text(&self) -> String {
        let mut out = String::new();
        for (i, track) in self.tracks.iter().enumerate() {
            let Some(track) = track else { continue };
            if !out.is_empty() {
                out.push('\r');
            }
            let start = if i == 0 { '%' } else { ';' };
            if !track.starts_with(start) {
                out.push(start);
            }
            out.push_str(track);
            if !track.contains('?') {
                out.push('?');
            }
        }
        out
    }
}

/// Why a vendor MSR report was rejected. Messages name tracks, offsets
/// and lengths, never characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VendorMsrError {
    /// The report ends before a byte the layout needs.
    #[error("swipe report of {len} bytes, track {track} needs {need}")]
    Short {
        /// Track number (1–3).
        track: u8,
        /// Bytes received.
        len: usize,
        /// Bytes the track's slot needs.
        need: usize,
    },
    /// A length byte exceeds the track's slot.
    #[error("swipe report claims {declared} characters on track {track}, the slot holds {max}")]
    Length {
        /// Track number (1–3).
        track: u8,
        /// The length byte.
        declared: usize,
        /// The slot's size.
        max: usize,
    },
    /// A track holds a byte that is not printable ASCII.
    #[error("track {track} has a non-ASCII byte at position {at}")]
    NotAscii {
        /// Track number (1–3).
        track: u8,
        /// Position in the track.
        at: usize,
    },
    /// No track was read (a bad swipe).
    #[error("swipe report without track data")]
    Empty,
}

impl VendorMsrLayout {
    /// Decodes one report. `Ok(None)` for a report with another report ID
    /// (status, other collections); never panics, whatever the bytes.
    pub fn decode(&self, report: &[u8]) -> Result<Option<VendorMsrSwipe>, VendorMsrError> {
        if let Some(id) = self.report_id
            && report.first() != Some(&id)
        {
            return Ok(None);
        }
        let mut swipe = VendorMsrSwipe::default();
        for (i, slot) in self.tracks.iter().enumerate() {
            let Some(slot) = slot else { continue };
            let track = i as u8 + 1;
            let Some(&len) = report.get(slot.length_offset) else {
                return Err(VendorMsrError::Short {
                    track,
                    len: report.len(),
                    need: slot.length_offset.saturating_add(1),
                });
            };
            let len = usize::from(len);
            if len == 0 {
                continue;
            }
            if len > slot.max_len {
                return Err(VendorMsrError::Length {
                    track,
                    declared: len,
                    max: slot.max_len,
                });
            }
            let end = slot.data_offset.saturating_add(len);
            let Some(data) = report.get(slot.data_offset..end) else {
                return Err(VendorMsrError::Short {
                    track,
                    len: report.len(),
                    need: end,
                });
            };
            if let Some(at) = data.iter().position(|b| !(0x20..=0x7e).contains(b)) {
                return Err(VendorMsrError::NotAscii { track, at });
            }
            // Checked printable ASCII above, so this is one char per byte.
            swipe.tracks[i] = Some(data.iter().map(|&b| char::from(b)).collect());
        }
        if swipe.tracks.iter().all(Option::is_none) {
            return Err(VendorMsrError::Empty);
        }
        Ok(Some(swipe))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    fn cand(path: &str, vid: u16, pid: u16, serial: Option<&str>) -> Candidate {
        Candidate {
            path: path.into(),
            vid,
            pid,
            serial: serial.map(str::to_owned),
        }
    }

    #[test]
    fn select_by_id_serial_and_ambiguity() {
        let found = [
            cand("/dev/hidraw0", 0x0801, 0x0011, Some("A")),
            // Same node listed twice (two top-level collections).
            cand("/dev/hidraw0", 0x0801, 0x0011, Some("A")),
            cand("/dev/hidraw1", 0x0c2e, 0x0b61, None),
            cand("/dev/hidraw3", 0x0801, 0x0011, Some("B")),
        ];
        assert_eq!(
            select_node(&found, 0x0c2e, 0x0b61, None).unwrap(),
            "/dev/hidraw1"
        );
        assert_eq!(
            select_node(&found, 0x0801, 0x0011, Some("B")).unwrap(),
            "/dev/hidraw3"
        );
        let err = select_node(&found, 0x0801, 0x0011, Some("")).unwrap_err();
        assert_eq!(
            err,
            HidError::Ambiguous {
                wanted: "0801:0011".into(),
                candidates: vec!["/dev/hidraw0".into(), "/dev/hidraw3".into()],
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("/dev/hidraw0, /dev/hidraw3"), "{msg}");
        assert!(matches!(
            select_node(&found, 0x0801, 0x0011, Some("C")),
            Err(HidError::NotFound { .. })
        ));
        assert!(matches!(
            select_node(&[], 1, 2, None),
            Err(HidError::NotFound { .. })
        ));
    }

    #[test]
    fn permission_error_is_distinguishable() {
        let e = HidError::PermissionDenied {
            path: "/dev/hidraw0".into(),
        };
        assert!(e.to_string().contains("udev"), "{e}");
        let gone = read_error(hidapi::HidError::IoError {
            error: std::io::Error::from_raw_os_error(19),
        });
        assert_eq!(gone, HidError::Disconnected);
        let hup = read_error(hidapi::HidError::HidApiError {
            message: "unexpected poll error (device disconnected)".into(),
        });
        assert_eq!(hup, HidError::Disconnected);
        let other = read_error(hidapi::HidError::InvalidZeroSizeData);
        assert!(matches!(other, HidError::Read { .. }));
    }

    #[test]
    fn open_error_on_a_missing_node() {
        let e = open_error(
            "/nonexistent/hidraw9",
            hidapi::HidError::HidApiError {
                message: "failed".into(),
            },
        );
        assert!(matches!(e, HidError::NotFound { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn thread_delivers_reports_then_disconnect() {
        let mut script = vec![
            Ok(0), // timeout
            Ok(3),
            Ok(0),
            Ok(2),
            Err(hidapi::HidError::IoError {
                error: std::io::Error::from_raw_os_error(19),
            }),
        ]
        .into_iter();
        let mut n = 0u8;
        let mut reader = HidReader::spawn("fake".into(), move |buf: &mut [u8], _| {
            let r = script.next().unwrap_or(Ok(0));
            if let Ok(len) = r {
                for b in &mut buf[..len] {
                    n += 1;
                    *b = n;
                }
            }
            r
        });
        assert_eq!(reader.next_report().await.unwrap(), [1, 2, 3]);
        assert_eq!(reader.next_report().await.unwrap(), [4, 5]);
        assert_eq!(reader.next_report().await, Err(HidError::Disconnected));
        // The thread has ended: the channel stays closed.
        assert_eq!(reader.next_report().await, Err(HidError::Disconnected));
        assert_eq!(reader.path(), "fake");
    }

    #[tokio::test]
    async fn dropping_the_reader_stops_the_thread() {
        let reads = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&reads);
        let reader = HidReader::spawn("fake".into(), move |_: &mut [u8], timeout| {
            counted.fetch_add(1, Ordering::SeqCst);
            // Behave like a silent device: wait out the timeout.
            std::thread::sleep(Duration::from_millis(timeout as u64 / 10));
            Ok(0)
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(reader);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let after_drop = reads.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            reads.load(Ordering::SeqCst),
            after_drop,
            "thread still reading"
        );
    }

    /// A layout like MagTek's: report ID 0, lengths at 1–3, 110-byte
    /// slots from byte 4.
    fn magtek() -> VendorMsrLayout {
        let slot = |l, d| {
            Some(TrackSlot {
                length_offset: l,
                data_offset: d,
                max_len: 110,
            })
        };
        VendorMsrLayout {
            report_id: None,
            tracks: [slot(1, 4), slot(2, 114), slot(3, 224)],
        }
    }

    fn report(tracks: [&[u8]; 3]) -> Vec<u8> {
        let mut r = vec![0u8; 334];
        for (i, (t, at)) in tracks.iter().zip([4, 114, 224]).enumerate() {
            r[1 + i] = t.len() as u8;
            r[at..at + t.len()].copy_from_slice(t);
        }
        r
    }

    #[test]
    fn vendor_report_to_serial_text() {
        let r = report([
            b"B4111111111111111^DOE/J^2512101",
            b"4111111111111111=2512101",
            b"",
        ]);
        let swipe = magtek().decode(&r).unwrap().unwrap();
        assert_eq!(
            swipe.to_serial_text(),
            "%B4111111111111111^DOE/J^2512101?\r;4111111111111111=2512101?"
        );
        let dbg = format!("{swipe:?}");
        assert!(!dbg.contains("4111"), "{dbg}");
        // Sentinels already present are kept, not doubled.
        let r = report([b"", b";12345=1?", b"99"]);
        let swipe = magtek().decode(&r).unwrap().unwrap();
        assert_eq!(swipe.to_serial_text(), ";12345=1?\r;99?");
    }

    #[test]
    fn vendor_report_errors() {
        let layout = magtek();
        assert_eq!(
            layout.decode(&report([b"", b"", b""])),
            Err(VendorMsrError::Empty)
        );
        let mut r = report([b"", b"1234", b""]);
        r[2] = 111;
        assert_eq!(
            layout.decode(&r),
            Err(VendorMsrError::Length {
                track: 2,
                declared: 111,
                max: 110
            })
        );
        let mut r = report([b"", b"1234", b""]);
        r[115] = 0xd0;
        assert_eq!(
            layout.decode(&r),
            Err(VendorMsrError::NotAscii { track: 2, at: 1 })
        );
        assert!(matches!(
            layout.decode(&[0, 0, 5]),
            Err(VendorMsrError::Short { track: 2, .. })
        ));
        let with_id = VendorMsrLayout {
            report_id: Some(7),
            ..layout
        };
        assert_eq!(with_id.decode(&[8, 1, 2, 3]), Ok(None));
        assert_eq!(with_id.decode(&[]), Ok(None));
    }

    proptest! {
        #[test]
        fn vendor_decode_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..400),
            lo in any::<usize>(),
            d in 0usize..500,
            max in any::<usize>(),
        ) {
            let slot = Some(TrackSlot { length_offset: lo % 600, data_offset: d, max_len: max });
            let huge = Some(TrackSlot { length_offset: lo, data_offset: usize::MAX - 3, max_len: max });
            for tracks in [[slot, None, huge], [huge, slot, slot]] {
                let layout = VendorMsrLayout { report_id: bytes.first().copied(), tracks };
                if let Ok(Some(s)) = layout.decode(&bytes) {
                    prop_assert!(s.to_serial_text().is_ascii());
                }
            }
        }
    }
}
