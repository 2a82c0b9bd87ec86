//! Byte-stream transports to devices: serial ports (and USB-CDC), TCP
//! sockets, character device files (USB printer class `/dev/usb/lpN`), HID
//! reports (printers that speak ESC/POS over HID) and plain files for
//! debugging.
//!
//! Every transport is opened into a [`BoxTransport`], so protocol code is
//! written once over `AsyncRead + AsyncWrite` (the tokio-modbus pattern).

pub mod chardev;
mod file;
pub mod hid;
mod serial;
mod tcp;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

pub use serial::{FlowControl, Parity, SerialSettings};

/// A bidirectional byte stream to a device.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

/// An opened transport, type-erased so device actors need not be generic.
pub type BoxTransport = Box<dyn Transport>;

/// Where a device is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportSpec {
    /// A serial port or USB-CDC ACM device (`/dev/ttyUSB0`, `/dev/ttyACM0`, a pty).
    Serial(SerialSettings),
    /// A TCP peer, typically a network printer on port 9100.
    Tcp {
        /// Host name or address.
        host: String,
        /// TCP port.
        port: u16,
        /// How long a connection attempt may take before it is abandoned.
        connect_timeout: Duration,
    },
    /// A character device opened read-write, such as the USB printer class
    /// node `/dev/usb/lp0`.
    CharDevice {
        /// Device node path.
        path: PathBuf,
    },
    /// A regular file opened for appending: output-only, for debugging.
    File {
        /// File path; created if missing.
        path: PathBuf,
    },
    /// A HID device carrying the byte stream in reports.
    Hid {
        /// Which device.
        target: hid::HidTarget,
        /// How bytes are cut into reports.
        framing: hid::HidFraming,
    },
}

impl TransportSpec {
    /// A short human description, such as `serial /dev/ttyACM0 @ 9600`.
    pub fn describe(&self) -> String {
        match self {
            TransportSpec::Serial(s) => format!("serial {} @ {}", s.path.display(), s.baud),
            TransportSpec::Tcp { host, port, .. } => format!("tcp {host}:{port}"),
            TransportSpec::CharDevice { path } => format!("device {}", path.display()),
            TransportSpec::File { path } => format!("file {}", path.display()),
            TransportSpec::Hid { target, .. } => target.to_string(),
        }
    }

    /// Opens the transport.
    pub async fn open(&self) -> Result<BoxTransport, TransportError> {
        match self {
            TransportSpec::Serial(s) => serial::open(s),
            TransportSpec::Tcp {
                host,
                port,
                connect_timeout,
            } => tcp::connect(host, *port, *connect_timeout).await,
            TransportSpec::CharDevice { path } => Ok(chardev::open(path).await?.transport),
            TransportSpec::File { path } => file::open_append(path).await,
            TransportSpec::Hid { target, framing } => {
                // hidapi enumerates sysfs and opens blocking.
                let (target, framing) = (target.clone(), *framing);
                let what = target.to_string();
                let t = tokio::task::spawn_blocking(move || hid::open(&target, framing))
                    .await
                    .map_err(|e| TransportError::Io {
                        what,
                        source: io::Error::other(e.to_string()),
                    })??;
                Ok(Box::new(t))
            }
        }
    }
}

/// Why a transport could not be opened or used.
///
/// Permission problems are kept apart from absence so that a technician sees
/// "add the service user to group dialout" rather than "not found".
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The device node or file does not exist (unplugged, wrong path).
    #[error("{what}: not found")]
    NotFound {
        /// What was being opened.
        what: String,
    },
    /// The process lacks permission to open the device.
    #[error("{what}: permission denied (check the device's group and the udev rules)")]
    PermissionDenied {
        /// What was being opened.
        what: String,
    },
    /// The device exists but is held by another process.
    #[error("{what}: busy (held by another process)")]
    Busy {
        /// What was being opened.
        what: String,
    },
    /// A connection attempt did not finish in time.
    #[error("{what}: timed out after {after:?}")]
    Timeout {
        /// What was being opened.
        what: String,
        /// The time allowed.
        after: Duration,
    },
    /// Any other I/O failure.
    #[error("{what}: {source}")]
    Io {
        /// What was being opened.
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl TransportError {
    /// Classifies an I/O error from opening `what`.
    pub fn from_io(what: impl Into<String>, source: io::Error) -> Self {
        let what = what.into();
        match source.kind() {
            io::ErrorKind::NotFound => TransportError::NotFound { what },
            io::ErrorKind::PermissionDenied => TransportError::PermissionDenied { what },
            io::ErrorKind::ResourceBusy => TransportError::Busy { what },
            io::ErrorKind::TimedOut => TransportError::Timeout {
                what,
                after: Duration::ZERO,
            },
            _ => TransportError::Io { what, source },
        }
    }
}
