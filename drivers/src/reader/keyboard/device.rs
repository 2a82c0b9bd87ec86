//! Linux evdev adapter: a wedge reader's `/dev/input/event*` node, grabbed
//! so its keystrokes never reach the focused window, fed to a
//! [`KeyDecoder`].

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use evdev::{Device, EventStream, EventType, InputEvent};

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

/// Where input events come from: a grabbed `/dev/input` node, or (in
/// tests) a recording replayed with its timing.
pub trait InputSource {
    /// The next event, as the kernel delivers it (EV_KEY, EV_MSC, EV_SYN
    /// alike). Cancel-safe.
    fn next_event(&mut self) -> impl std::future::Future<Output = io::Result<InputEvent>>;
    /// The device's name, if it has one.
    fn name(&self) -> Option<&str>;
}

impl InputSource for EventStream {
    async fn next_event(&mut self) -> io::Result<InputEvent> {
        EventStream::next_event(self).await
    }

    fn name(&self) -> Option<&str> {
        self.device().name()
    }
}

/// Recorded input events replayed with their pauses: the seam that lets
/// the wedge path be tested without `/dev/input`. After the last event it
/// reports `ENODEV`, as an unplugged device does.
#[derive(Debug, Default)]
pub struct Replay {
    events: VecDeque<(Duration, InputEvent)>,
    // The pause in progress, so that a cancelled wait resumes, not restarts.
    due: Option<tokio::time::Instant>,
    // At the end, wait forever (an idle device) instead of unplugging.
    hold: bool,
}

/// Most events a recording file may hold.
pub const MAX_RECORDING: usize = 100_000;

/// Parses a recording: one event a line, `DELAY_US TYPE CODE VALUE`
/// (decimal; the pause before the event, then the kernel's fields), blank
/// lines and `#` comments ignored. The error names the line.
pub fn parse_recording(text: &str) -> Result<Vec<(Duration, InputEvent)>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if out.len() >= MAX_RECORDING {
            return Err(format!("more than {MAX_RECORDING} events"));
        }
        let bad = || format!("line {}: expected DELAY_US TYPE CODE VALUE", i + 1);
        let f: Vec<&str> = line.split_whitespace().collect();
        let [delay, kind, code, value] = f[..] else {
            return Err(bad());
        };
        let delay: u64 = delay.parse().map_err(|_| bad())?;
        let kind: u16 = kind.parse().map_err(|_| bad())?;
        let code: u16 = code.parse().map_err(|_| bad())?;
        let value: i32 = value.parse().map_err(|_| bad())?;
        out.push((
            Duration::from_micros(delay.min(60_000_000)),
            InputEvent::new(kind, code, value),
        ));
    }
    Ok(out)
}

/// An input device or a recording: what the daemon opens for a
/// `[reader.evdev]` entry. A `device` path naming a regular file replays
/// it (see [`parse_recording`]) and then stays idle, which is how the
/// wedge path is tested end to end without `/dev/input`.
pub enum Source {
    /// A grabbed `/dev/input/event*` node.
    Device(Box<EventStream>),
    /// A recording.
    Replay(Replay),
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Device(s) => write!(f, "Device({:?})", s.device().name()),
            Source::Replay(r) => write!(f, "Replay({} events left)", r.events.len()),
        }
    }
}

impl InputSource for Source {
    async fn next_event(&mut self) -> io::Result<InputEvent> {
        match self {
            Source::Device(s) => s.next_event().await,
            Source::Replay(r) => r.next_event().await,
        }
    }

    fn name(&self) -> Option<&str> {
        match self {
            Source::Device(s) => InputSource::name(s.as_ref()),
            Source::Replay(r) => r.name(),
        }
    }
}

impl EvdevReader<Source> {
    /// [`EvdevReader::open`] for a device node; a regular file is a
    /// recording, replayed.
    pub fn open_any(path: impl AsRef<Path>, config: WedgeConfig) -> Result<Self, EvdevError> {
        let path = path.as_ref();
        let open_err = |source| EvdevError::Open {
            path: path.to_owned(),
            source,
        };
        if std::fs::metadata(path).map_err(open_err)?.is_file() {
            let text = std::fs::read_to_string(path).map_err(open_err)?;
            let events = parse_recording(&text)
                .map_err(|e| open_err(io::Error::new(io::ErrorKind::InvalidData, e)))?;
            let mut replay = Replay::new(events);
            replay.hold = true;
            return Ok(EvdevReader::from_source(Source::Replay(replay), config));
        }
        let r = EvdevReader::open(path, config)?;
        Ok(EvdevReader {
            events: Source::Device(Box::new(r.events)),
            decoder: r.decoder,
            last_event: r.last_event,
        })
    }
}

impl Replay {
    /// Events, each after its pause.
    pub fn new(events: impl IntoIterator<Item = (Duration, InputEvent)>) -> Self {
        Replay {
            events: events.into_iter().collect(),
            due: None,
            hold: false,
        }
    }
}

impl InputSource for Replay {
    async fn next_event(&mut self) -> io::Result<InputEvent> {
        let Some(&(pause, event)) = self.events.front() else {
            if self.hold {
                std::future::pending::<()>().await;
            }
            return Err(io::Error::from_raw_os_error(ENODEV));
        };
        let due = *self
            .due
            .get_or_insert_with(|| tokio::time::Instant::now() + pause);
        tokio::time::sleep_until(due).await;
        self.due = None;
        self.events.pop_front();
        Ok(event)
    }

    fn name(&self) -> Option<&str> {
        Some("replay")
    }
}

/// A grabbed keyboard-wedge reader.
///
/// Dropping it closes the device, which releases the grab.
pub struct EvdevReader<S: InputSource = EventStream> {
    events: S,
    decoder: KeyDecoder,
    /// When the last event arrived: silence is measured from here.
    last_event: Instant,
}

impl<S: InputSource> std::fmt::Debug for EvdevReader<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvdevReader")
            .field("device", &self.events.name())
            .field("decoder", &self.decoder)
            .finish()
    }
}

impl EvdevReader<EventStream> {
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
        Ok(EvdevReader::from_source(events, config))
    }
}

impl<S: InputSource> EvdevReader<S> {
    /// A reader of `events` (a replay in tests).
    pub fn from_source(events: S, config: WedgeConfig) -> Self {
        EvdevReader {
            events,
            decoder: KeyDecoder::new(config),
            last_event: Instant::now(),
        }
    }

    /// The device's name as its driver reports it.
    pub fn name(&self) -> Option<&str> {
        self.events.name()
    }

    /// Waits for the next message: ended by Enter, or by the gap after the
    /// last key. Cancel-safe: dropping the future loses no events, and a
    /// message in progress stays pending for the next call.
    pub async fn next_message(&mut self) -> Result<KeyMessage, EvdevError> {
        loop {
            if let Some(message) = self.step(None).await? {
                return Ok(message);
            }
        }
    }

    /// The next message, unless no event arrives for `silence` (measured
    /// from the last event, key or not) before one is complete: `None`
    /// then. A wedge magstripe reader types each track and Enter in one
    /// burst; the swipe ends at the first real pause, however long typing
    /// a track takes.
    pub async fn next_message_unless_silent(
        &mut self,
        silence: Duration,
    ) -> Result<Option<KeyMessage>, EvdevError> {
        loop {
            let silent_at = self.last_event + silence;
            if let Some(message) = self.step(Some(silent_at)).await? {
                return Ok(Some(message));
            }
            if Instant::now() >= silent_at {
                return Ok(None);
            }
        }
    }

    /// One event (or timeout) through the decoder.
    async fn step(&mut self, until: Option<Instant>) -> Result<Option<KeyMessage>, EvdevError> {
        let deadline = match (self.decoder.deadline(), until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        {
            let event = match deadline {
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
            if matches!(event, Some(Ok(_))) {
                self.last_event = now;
            }
            let message = match event {
                None => self.decoder.flush_if_idle(now),
                Some(Ok(event)) if event.event_type() == EventType::KEY => {
                    self.decoder.key(event.code(), event.value(), now)
                }
                Some(Ok(_)) => None,
                Some(Err(error)) => return Err(EvdevError::from_read(error)),
            };
            if let Some(message) = &message {
                // The length only: the text is card data.
                tracing::debug!(
                    len = message.len(),
                    overflow = message.text().is_none(),
                    "keyboard-wedge message"
                );
            }
            Ok(message)
        }
    }
}

/// Input events as a USB keyboard-wedge reader produces them, for the
/// replay seam: per key an `EV_MSC MSC_SCAN` (the HID usage), the `EV_KEY`
/// press and an `EV_SYN` report, then the same for the release, Shift
/// around shifted characters. `per_event` is the pause before each report.
/// Characters the US layout cannot type are skipped.
pub fn recorded_typing(text: &[u8], per_event: Duration) -> Vec<(Duration, InputEvent)> {
    const EV_SYN: u16 = 0;
    const EV_KEY: u16 = 1;
    const EV_MSC: u16 = 4;
    const MSC_SCAN: u16 = 4;
    const SHIFT: u16 = evdev::KeyCode::KEY_LEFTSHIFT.0;
    let mut out = Vec::new();
    let mut report = |code: u16, value: i32| {
        out.push((
            per_event,
            InputEvent::new(EV_MSC, MSC_SCAN, 0x7_0000 + i32::from(code)),
        ));
        out.push((Duration::ZERO, InputEvent::new(EV_KEY, code, value)));
        out.push((Duration::ZERO, InputEvent::new(EV_SYN, 0, 0)));
    };
    for &c in text {
        let Some((code, shift)) = super::us_keystroke(c) else {
            continue;
        };
        if shift {
            report(SHIFT, 1);
        }
        report(code, 1);
        report(code, 0);
        if shift {
            report(SHIFT, 0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(text: &[u8], per_event: Duration) -> EvdevReader<Replay> {
        EvdevReader::from_source(
            Replay::new(recorded_typing(text, per_event)),
            WedgeConfig::default(),
        )
    }

    #[tokio::test]
    async fn a_recorded_scan_comes_out_as_typed() {
        let mut r = reader(
            b"]E04006381333931\r]Q1LOY:7012345678901234:AB12\r",
            Duration::from_micros(500),
        );
        let m = r.next_message().await.unwrap();
        assert_eq!(m.text(), Some("]E04006381333931"));
        let m = r.next_message().await.unwrap();
        assert_eq!(m.text(), Some("]Q1LOY:7012345678901234:AB12"));
        // The recording ends as an unplug does.
        assert!(matches!(
            r.next_message().await,
            Err(EvdevError::Disconnected)
        ));
    }

    /// A wedge magstripe reader typing two tracks, 4 ms per report: each
    /// track takes far longer than the join window, but there is no
    /// silence between them, so the second joins; then a pause ends it.
    #[tokio::test]
    async fn tracks_typed_slowly_join_by_silence() {
        let mut events = recorded_typing(
            b"%B6035123412341234^IVANOV/IVAN^4912101?\r;6035123412341234=49121014711?\r",
            Duration::from_millis(4),
        );
        let mut marker = recorded_typing(b";E?\r", Duration::from_millis(2));
        marker[0].0 = Duration::from_millis(300);
        events.extend(marker);
        let mut r = EvdevReader::from_source(Replay::new(events), WedgeConfig::default());
        let first = r.next_message().await.unwrap();
        assert!(first.text().unwrap().starts_with("%B6035"));
        let started = Instant::now();
        let second = r
            .next_message_unless_silent(Duration::from_millis(50))
            .await
            .unwrap()
            .expect("track 2 joins");
        assert!(second.text().unwrap().starts_with(";6035"));
        assert!(
            started.elapsed() > Duration::from_millis(50),
            "typing track 2 took longer than the window, and still joined"
        );
        // 300 ms of silence before the next message: the swipe is over.
        assert_eq!(
            r.next_message_unless_silent(Duration::from_millis(50))
                .await
                .unwrap(),
            None
        );
        assert_eq!(r.next_message().await.unwrap().text(), Some(";E?"));
    }
}
