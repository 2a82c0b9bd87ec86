//! Linux evdev adapter: a wedge reader's `/dev/input/event*` node, grabbed
//! so its keystrokes never reach the focused window, fed to a
//! [`KeyDecoder`].

use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use evdev::{Device, EventStream, EventType};

use super::{KeyDecoder, KeyMessage, WedgeConfig};

/// `ENODEV` on Linux: what reading an unplugged input device returns.
const ENODEV: i32 = 19;

/// Why a wedge reader could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum EvdevError {
    /// The device node could not be opened (absent, or no permission:
    /// check the `input` group and the udev rules).
    #[error("{}: cannot open: {source}", path.display())]
    Open {
        /// The device node.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The device could not be grabbed exclusively, usually because
    /// another process (another posbridge, a kiosk tool) holds it. Reading
    /// anyway would let the card number reach the focused window too.
    #[error("{}: cannot grab exclusively (held by another process?): {source}", path.display())]
    Grab {
        /// The device node.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The device went away (unplugged).
    #[error("input device disconnected")]
    Disconnected,
    /// Any other failure reading events.
    #[error("reading input events: {0}")]
    Io(#[source] io::Error),
}

impl EvdevError {
    fn from_read(error: io::Error) -> Self {
        if error.raw_os_error() == Some(ENODEV) {
            EvdevError::Disconnected
        } else {
            EvdevError::Io(error)
        }
    }
}

/// A grabbed keyboard-wedge reader.
///
/// Dropping it closes the device, which releases the grab.
pub struct EvdevReader {
    events: EventStream,
    decoder: KeyDecoder,
}

impl std::fmt::Debug for EvdevReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvdevReader")
            .field("device", &self.events.device().name())
            .field("decoder", &self.decoder)
            .finish()
    }
}

impl EvdevReader {
    /// Opens and grabs (`EVIOCGRAB`) the input device at `path`.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime: the event stream registers the device with
    /// the runtime's reactor.
    pub fn open(path: impl AsRef<Path>, config: WedgeConfig) -> Result<Self, EvdevError> {
        let path = path.as_ref();
        let mut device = Device::open(path).map_err(|source| EvdevError::Open {
            path: path.to_owned(),
            source,
        })?;
        device.grab().map_err(|source| EvdevError::Grab {
            path: path.to_owned(),
            source,
        })?;
        tracing::info!(path = %path.display(), name = device.name().unwrap_or("?"), "keyboard-wedge reader grabbed");
        let events = device.into_event_stream().map_err(EvdevError::Io)?;
        Ok(EvdevReader {
            events,
            decoder: KeyDecoder::new(config),
        })
    }

    /// The device's name as its driver reports it.
    pub fn name(&self) -> Option<&str> {
        self.events.device().name()
    }

    /// Waits for the next message: ended by Enter, or by the gap after the
    /// last key. Cancel-safe: dropping the future loses no events, and a
    /// message in progress stays pending for the next call.
    pub async fn next_message(&mut self) -> Result<KeyMessage, EvdevError> {
        loop {
            let event = match self.decoder.deadline() {
                None => Some(self.events.next_event().await),
                Some(deadline) => tokio::select! {
                    // Events already queued go first, so a busy runtime
                    // that wakes late does not split a message.
                    biased;
                    event = self.events.next_event() => Some(event),
                    () = tokio::time::sleep_until(deadline.into()) => None,
                },
            };
            // Events are timed on arrival: the kernel's timestamps use the
            // wall clock, which can jump, and a read burst arrives within
            // a few milliseconds of typing anyway.
            let now = Instant::now();
            let message = match event {
                None => self.decoder.flush_if_idle(now),
                Some(Ok(event)) if event.event_type() == EventType::KEY => {
                    self.decoder.key(event.code(), event.value(), now)
                }
                Some(Ok(_)) => None,
                Some(Err(error)) => return Err(EvdevError::from_read(error)),
            };
            if let Some(message) = message {
                // The length only: the text is card data.
                tracing::debug!(
                    len = message.len(),
                    overflow = message.text().is_none(),
                    "keyboard-wedge message"
                );
                return Ok(message);
            }
        }
    }
}
