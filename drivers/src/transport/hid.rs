//! ESC/POS over HID reports: some USB receipt printers expose no printer
//! class interface, only a HID one, and carry the byte stream in output
//! reports (report id, optionally a length byte, then payload padded to the
//! report size); replies (`DLE EOT` status) come back in input reports.
//!
//! [`HidFraming`] is the codec (pure, tested on byte vectors);
//! [`HidTransport`] is an `AsyncRead + AsyncWrite` stream over a hidapi
//! device driven by a dedicated thread, as the HID readers are
//! (`crate::reader::hid`): hidapi is blocking.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::PollSender;

use super::TransportError;

/// Largest report size accepted, in bytes (hidraw's own limit).
pub const MAX_REPORT_SIZE: usize = 4096;
/// How long one blocking read waits before the thread looks for writes.
/// Short, since it delays a write by at most this much.
const READ_TIMEOUT_MS: i32 = 10;
/// Commands (writes, flushes) queued for the device thread.
const COMMAND_DEPTH: usize = 16;
/// Input reports queued for the async side; more are dropped while nobody
/// reads (a printer actor reads only when it asks for status).
const INPUT_DEPTH: usize = 64;
/// Most bytes taken by one `poll_write`.
const MAX_WRITE: usize = 64 * 1024;

/// How the byte stream is cut into reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HidFraming {
    /// Bytes in one report after the report id (length byte included).
    pub report_size: usize,
    /// The report id written first; 0 for a device without numbered
    /// reports (hidapi then sends the report without it).
    pub report_id: u8,
    /// The first byte after the report id counts the payload bytes that
    /// follow; without it every report is full of data (zero padded).
    pub length_prefix: bool,
}

impl Default for HidFraming {
    fn default() -> Self {
        HidFraming {
            report_size: 64,
            report_id: 0,
            length_prefix: true,
        }
    }
}

impl HidFraming {
    /// Checks the sizes; the error names the setting.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let min = if self.length_prefix { 2 } else { 1 };
        if self.report_size < min || self.report_size > MAX_REPORT_SIZE {
            return Err((
                "report_size",
                format!("must be {min} to {MAX_REPORT_SIZE} bytes"),
            ));
        }
        if self.length_prefix && self.report_size > 256 {
            return Err((
                "report_size",
                "a one-byte length prefix counts at most 255 bytes: at most 256 with \
                 length_prefix"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Payload bytes one report carries.
    pub fn payload(&self) -> usize {
        self.report_size
            .saturating_sub(usize::from(self.length_prefix))
            .max(1)
    }

    /// Output reports carrying `data`, each `1 + report_size` bytes as
    /// hidapi's `write` takes them (report id first).
    pub fn chunk(&self, data: &[u8]) -> Vec<Vec<u8>> {
        data.chunks(self.payload())
            .map(|piece| {
                let mut report = Vec::with_capacity(1 + self.report_size);
                report.push(self.report_id);
                if self.length_prefix {
                    report.push(piece.len() as u8);
                }
                report.extend_from_slice(piece);
                report.resize(1 + self.report_size, 0);
                report
            })
            .collect()
    }

    /// The data in one input report as read (starting with the report id
    /// when the device numbers its reports). A report with another id
    /// carries nothing for us; a length byte larger than the report is cut
    /// to what is there.
    pub fn dechunk<'a>(&self, report: &'a [u8]) -> &'a [u8] {
        let body = if self.report_id != 0 {
            match report.split_first() {
                Some((&id, rest)) if id == self.report_id => rest,
                _ => return &[],
            }
        } else {
            report
        };
        if self.length_prefix {
            match body.split_first() {
                Some((&n, rest)) => &rest[..usize::from(n).min(rest.len())],
                None => &[],
            }
        } else {
            body
        }
    }
}

/// Which HID device.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HidTarget {
    /// By USB id, and serial number when several are attached.
    Usb {
        /// Vendor id.
        vid: u16,
        /// Product id.
        pid: u16,
        /// Serial number.
        serial: Option<String>,
    },
    /// A hidraw node.
    Path(PathBuf),
}

impl std::fmt::Display for HidTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HidTarget::Usb { vid, pid, serial } => {
                write!(f, "hid {vid:04x}:{pid:04x}")?;
                if let Some(s) = serial {
                    write!(f, ":{s}")?;
                }
                Ok(())
            }
            HidTarget::Path(p) => write!(f, "hid {}", p.display()),
        }
    }
}

/// A device the thread drives: blocking report I/O.
pub trait HidIo: Send + 'static {
    /// Writes one output report (report id first).
    fn write_report(&mut self, report: &[u8]) -> io::Result<()>;
    /// Reads one input report, waiting at most `timeout_ms`; 0 bytes on
    /// timeout.
    fn read_report(&mut self, buf: &mut [u8], timeout_ms: i32) -> io::Result<usize>;
}

impl HidIo for hidapi::HidDevice {
    fn write_report(&mut self, report: &[u8]) -> io::Result<()> {
        let n = self.write(report).map_err(io::Error::other)?;
        // hidraw drops an unnumbered report's leading 0 from the count.
        if n + 1 < report.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("HID report written short: {n} of {} bytes", report.len()),
            ));
        }
        Ok(())
    }

    fn read_report(&mut self, buf: &mut [u8], timeout_ms: i32) -> io::Result<usize> {
        self.read_timeout(buf, timeout_ms).map_err(io::Error::other)
    }
}

enum Command {
    Write(Vec<u8>),
    Flush(oneshot::Sender<io::Result<()>>),
}

/// An ESC/POS byte stream over HID reports.
pub struct HidTransport {
    commands: PollSender<Command>,
    input: mpsc::Receiver<io::Result<Vec<u8>>>,
    pending: Vec<u8>,
    pending_at: usize,
    flushing: Option<oneshot::Receiver<io::Result<()>>>,
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "HID device disconnected")
}

impl HidTransport {
    /// Starts the device thread over `dev`.
    pub fn spawn<D: HidIo>(name: String, mut dev: D, framing: HidFraming) -> io::Result<Self> {
        let (cmd_tx, mut cmd_rx) = mpsc::channel::<Command>(COMMAND_DEPTH);
        let (in_tx, in_rx) = mpsc::channel(INPUT_DEPTH);
        std::thread::Builder::new().name(name).spawn(move || {
            let mut buf = vec![0u8; MAX_REPORT_SIZE];
            let mut failed: Option<io::Error> = None;
            loop {
                // Writes first, in order; a flush answers after them.
                loop {
                    match cmd_rx.try_recv() {
                        Ok(Command::Write(data)) => {
                            if failed.is_none() {
                                for report in framing.chunk(&data) {
                                    if let Err(e) = dev.write_report(&report) {
                                        failed = Some(e);
                                        break;
                                    }
                                }
                            }
                        }
                        Ok(Command::Flush(ack)) => {
                            let r = match &failed {
                                Some(e) => Err(io::Error::new(e.kind(), e.to_string())),
                                None => Ok(()),
                            };
                            let _ = ack.send(r);
                        }
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => return,
                    }
                }
                if failed.is_some() {
                    // The device is gone: keep answering flushes with the
                    // error until the transport is dropped.
                    match cmd_rx.blocking_recv() {
                        Some(Command::Flush(ack)) => {
                            let _ = ack.send(Err(gone()));
                        }
                        Some(Command::Write(_)) => {}
                        None => return,
                    }
                    continue;
                }
                match dev.read_report(&mut buf, READ_TIMEOUT_MS) {
                    Ok(0) => {}
                    Ok(n) => {
                        let data = framing.dechunk(&buf[..n.min(buf.len())]);
                        if !data.is_empty() {
                            let _ = in_tx.try_send(Ok(data.to_vec()));
                        }
                    }
                    Err(e) => {
                        let _ = in_tx.try_send(Err(io::Error::new(e.kind(), e.to_string())));
                        failed = Some(e);
                    }
                }
            }
        })?;
        Ok(HidTransport {
            commands: PollSender::new(cmd_tx),
            input: in_rx,
            pending: Vec::new(),
            pending_at: 0,
            flushing: None,
        })
    }
}

/// Opens the device (blocking: enumerates sysfs) and starts its thread.
pub fn open(target: &HidTarget, framing: HidFraming) -> Result<HidTransport, TransportError> {
    let what = target.to_string();
    let io_err = |e: io::Error| TransportError::Io {
        what: what.clone(),
        source: e,
    };
    let api = hidapi::HidApi::new().map_err(|e| io_err(io::Error::other(e)))?;
    let path = match target {
        HidTarget::Path(p) => p.to_string_lossy().into_owned(),
        HidTarget::Usb { vid, pid, serial } => {
            let mut paths: Vec<String> = api
                .device_list()
                .filter(|d| d.vendor_id() == *vid && d.product_id() == *pid)
                .filter(|d| serial.is_none() || d.serial_number() == serial.as_deref())
                .map(|d| d.path().to_string_lossy().into_owned())
                .collect();
            paths.sort();
            paths.dedup();
            match paths.len() {
                0 => return Err(TransportError::NotFound { what }),
                1 => paths.remove(0),
                _ => {
                    return Err(TransportError::Busy {
                        what: format!(
                            "{what} matches {} ({}): add the serial number",
                            paths.len(),
                            paths.join(", ")
                        ),
                    });
                }
            }
        }
    };
    let cpath = std::ffi::CString::new(path.clone())
        .map_err(|_| io_err(io::Error::other("path contains a NUL byte")))?;
    let dev = api.open_path(&cpath).map_err(|e| {
        // hidapi's message loses the errno: ask the node itself.
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
        {
            Err(io) => TransportError::from_io(path.clone(), io),
            Ok(_) => io_err(io::Error::other(e)),
        }
    })?;
    HidTransport::spawn(format!("hid {path}"), dev, framing).map_err(io_err)
}

impl AsyncRead for HidTransport {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pending_at >= this.pending.len() {
            match ready!(this.input.poll_recv(cx)) {
                Some(Ok(data)) => {
                    this.pending = data;
                    this.pending_at = 0;
                }
                Some(Err(e)) => return Poll::Ready(Err(e)),
                // The thread ended: end of stream.
                None => return Poll::Ready(Ok(())),
            }
        }
        let rest = &this.pending[this.pending_at..];
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        this.pending_at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for HidTransport {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if ready!(this.commands.poll_reserve(cx)).is_err() {
            return Poll::Ready(Err(gone()));
        }
        let n = buf.len().min(MAX_WRITE);
        if this
            .commands
            .send_item(Command::Write(buf[..n].to_vec()))
            .is_err()
        {
            return Poll::Ready(Err(gone()));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.flushing.is_none() {
            if ready!(this.commands.poll_reserve(cx)).is_err() {
                return Poll::Ready(Err(gone()));
            }
            let (tx, rx) = oneshot::channel();
            if this.commands.send_item(Command::Flush(tx)).is_err() {
                return Poll::Ready(Err(gone()));
            }
            this.flushing = Some(rx);
        }
        let Some(rx) = this.flushing.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let r = ready!(Pin::new(rx).poll(cx));
        this.flushing = None;
        Poll::Ready(r.unwrap_or_else(|_| Err(gone())))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn chunks_carry_id_length_and_padding() {
        let f = HidFraming {
            report_size: 8,
            report_id: 2,
            length_prefix: true,
        };
        let reports = f.chunk(b"ABCDEFGHIJ");
        assert_eq!(
            reports,
            vec![
                vec![2, 7, b'A', b'B', b'C', b'D', b'E', b'F', b'G'],
                vec![2, 3, b'H', b'I', b'J', 0, 0, 0, 0],
            ]
        );
        let raw = HidFraming {
            report_size: 4,
            report_id: 0,
            length_prefix: false,
        };
        assert_eq!(
            raw.chunk(b"xyzuv"),
            vec![vec![0, b'x', b'y', b'z', b'u'], vec![0, b'v', 0, 0, 0]]
        );
        assert!(f.chunk(b"").is_empty());
    }

    #[test]
    fn dechunk_inverts_chunk_and_refuses_other_reports() {
        let f = HidFraming {
            report_size: 8,
            report_id: 2,
            length_prefix: true,
        };
        let data: Vec<u8> = (0..=40).collect();
        let back: Vec<u8> = f
            .chunk(&data)
            .iter()
            .flat_map(|r| f.dechunk(r).to_vec())
            .collect();
        assert_eq!(back, data);
        assert_eq!(f.dechunk(&[3, 1, 0x12]), b"", "another report id");
        assert_eq!(
            f.dechunk(&[2, 200, 0x12, 0x14]),
            &[0x12, 0x14],
            "length cut"
        );
        assert_eq!(f.dechunk(&[2]), b"");
        assert_eq!(f.dechunk(&[]), b"");
        let unnumbered = HidFraming {
            report_size: 4,
            report_id: 0,
            length_prefix: true,
        };
        assert_eq!(unnumbered.dechunk(&[1, 0x12, 0, 0]), &[0x12]);
    }

    #[test]
    fn framing_validation_names_the_setting() {
        let ok = HidFraming::default();
        assert!(ok.validate().is_ok());
        for bad in [
            HidFraming {
                report_size: 1,
                ..ok
            },
            HidFraming {
                report_size: 300,
                ..ok
            },
            HidFraming {
                report_size: 5000,
                length_prefix: false,
                ..ok
            },
        ] {
            let (field, _) = bad.validate().expect_err("refused");
            assert_eq!(field, "report_size");
        }
        assert!(
            HidFraming {
                report_size: 1,
                length_prefix: false,
                ..ok
            }
            .validate()
            .is_ok()
        );
    }

    /// A fake printer: records output reports, answers `DLE EOT n` with a
    /// status report.
    struct Fake {
        framing: HidFraming,
        written: Arc<Mutex<Vec<Vec<u8>>>>,
        replies: Vec<Vec<u8>>,
        fail_writes: bool,
    }

    impl HidIo for Fake {
        fn write_report(&mut self, report: &[u8]) -> io::Result<()> {
            if self.fail_writes {
                return Err(io::Error::other("unplugged"));
            }
            let data = self.framing.dechunk(report).to_vec();
            if data.windows(2).any(|w| w == [0x10, 0x04]) {
                self.replies.extend(self.framing.chunk(&[0x12]));
            }
            self.written.lock().unwrap().push(report.to_vec());
            Ok(())
        }

        fn read_report(&mut self, buf: &mut [u8], timeout_ms: i32) -> io::Result<usize> {
            if self.replies.is_empty() {
                std::thread::sleep(Duration::from_millis(timeout_ms as u64));
                return Ok(0);
            }
            let r = self.replies.remove(0);
            buf[..r.len()].copy_from_slice(&r);
            Ok(r.len())
        }
    }

    #[tokio::test]
    async fn bytes_go_out_as_reports_and_replies_come_back() {
        let framing = HidFraming {
            report_size: 8,
            report_id: 1,
            length_prefix: true,
        };
        let written = Arc::new(Mutex::new(Vec::new()));
        let fake = Fake {
            framing,
            written: Arc::clone(&written),
            replies: Vec::new(),
            fail_writes: false,
        };
        let mut t = HidTransport::spawn("test".into(), fake, framing).unwrap();
        t.write_all(b"Hello, printer\n").await.unwrap();
        t.flush().await.unwrap();
        let sent: Vec<u8> = written
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| framing.dechunk(r).to_vec())
            .collect();
        assert_eq!(sent, b"Hello, printer\n");
        assert_eq!(written.lock().unwrap().len(), 3, "7 + 7 + 1 bytes");
        t.write_all(&[0x10, 0x04, 0x01]).await.unwrap();
        t.flush().await.unwrap();
        let mut b = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(10), t.read_exact(&mut b))
            .await
            .expect("reply")
            .unwrap();
        assert_eq!(b[0], 0x12);
        // Nothing more: a read times out, it does not end the stream.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), t.read(&mut b))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_failed_report_write_fails_the_flush() {
        let framing = HidFraming::default();
        let fake = Fake {
            framing,
            written: Arc::default(),
            replies: Vec::new(),
            fail_writes: true,
        };
        let mut t = HidTransport::spawn("test".into(), fake, framing).unwrap();
        t.write_all(b"x").await.unwrap();
        let e = t.flush().await.expect_err("write failed");
        assert!(e.to_string().contains("unplugged"), "{e}");
        assert!(t.flush().await.is_err(), "stays failed");
    }
}
