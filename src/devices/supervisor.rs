//! One task per device: open it, watch the link, reopen with backoff.
//!
//! The supervisor owns the transport. Its state goes out on a `watch` (for
//! `devices.list`) and as `device.status` events when it changes. The
//! protocol work on an open link (decoding swipes, printing) is done by
//! the device's driver loop in [`run_link`].

use std::path::PathBuf;
use std::time::Duration;

use posbridge_drivers::transport::{BoxTransport, TransportError, TransportSpec};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use std::time::Instant;

use posbridge_drivers::reader::framing;
use posbridge_drivers::reader::hid::{HidError, HidReader};
use posbridge_drivers::reader::keyboard::{
    BootKeyboardDecoder, EvdevError, EvdevReader, KeyMessage, PosScanDecoder, PosScanLayout,
    WedgeConfig,
};
use tokio::sync::mpsc;

use super::entry::{DeviceEntry, Endpoint};
use super::reader::Decoder;
use super::reads::ReaderOutput;
use super::{DeviceState, DeviceStatus};
use crate::config::frame_codec;
use crate::config::{HidConfig, HidReport, ReaderAttachment};
use crate::events::{EventBus, now_rfc3339};

/// First wait before reopening a device that failed.
const BACKOFF_START: Duration = Duration::from_millis(250);
/// Longest wait between reopen attempts: a technician plugging a cable back
/// in should not wait longer than this.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Runs until `cancel` fires.
pub(super) async fn supervise(
    entry: DeviceEntry,
    instance: u64,
    status: watch::Sender<DeviceStatus>,
    bus: EventBus,
    reads: ReadSide,
    print: PrintSide,
    cancel: CancellationToken,
) {
    let report = |state: DeviceState, detail: Option<String>| {
        let changed = status.send_if_modified(|s| {
            if s.state == state && s.detail == detail {
                return false;
            }
            s.state = state;
            s.detail = detail.clone();
            s.since = now_rfc3339();
            true
        });
        if changed {
            match state {
                DeviceState::Error | DeviceState::Disconnected => tracing::warn!(
                    device = entry.name(),
                    status = state.as_str(),
                    detail = detail.as_deref().unwrap_or(""),
                    "device status"
                ),
                _ => tracing::info!(
                    device = entry.name(),
                    status = state.as_str(),
                    "device status"
                ),
            }
            bus.publish(
                "device.status",
                json!({
                    "device": entry.name(),
                    "class": entry.class(),
                    "type": entry.type_name(),
                    "status": state,
                    "detail": detail,
                    "instance": instance,
                }),
            );
        }
    };

    // Rules are validated with the configuration; a failure here means the
    // entry cannot work at all, which is reported and retried like a link.
    let decoder = match &entry {
        DeviceEntry::Reader(r) => match Decoder::new(r, reads.enabled, reads.out) {
            Ok(d) => Some(d),
            Err(e) => {
                report(DeviceState::Error, Some(e.to_string()));
                cancel.cancelled().await;
                report(DeviceState::Stopped, None);
                return;
            }
        },
        DeviceEntry::Printer(_) => None,
    };

    let mut backoff = BACKOFF_START;
    loop {
        let opened = tokio::select! {
            _ = cancel.cancelled() => break,
            r = open(&entry) => r,
        };
        match opened {
            Ok(link) => {
                report(DeviceState::Connected, None);
                backoff = BACKOFF_START;
                let ended = tokio::select! {
                    _ = cancel.cancelled() => break,
                    r = run_link(&entry, decoder.as_ref(), &print, &bus, link) => r,
                };
                report(DeviceState::Disconnected, Some(ended));
            }
            Err(e) => {
                let state = match e {
                    TransportError::NotFound { .. } | TransportError::Timeout { .. } => {
                        DeviceState::Disconnected
                    }
                    _ => DeviceState::Error,
                };
                report(state, Some(e.to_string()));
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
    report(DeviceState::Stopped, None);
}

/// What a reader actor is given: where its reads go, and its switch.
pub(super) struct ReadSide {
    /// Where reads go.
    pub out: mpsc::Sender<ReaderOutput>,
    /// The reader's enabled switch, kept by `Devices` across restarts.
    pub enabled: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// What a printer actor shares with the API.
pub(super) struct PrintSide {
    /// The durable queue.
    pub queue: super::queue::Queue,
    /// The fiscal journal.
    pub journal: super::journal::Journal,
    /// Rung when a job is enqueued.
    pub wake: std::sync::Arc<tokio::sync::Notify>,
    /// Where the printer's last status goes.
    pub status: tokio::sync::watch::Sender<serde_json::Value>,
}

/// An open device.
enum Link {
    /// A byte stream (serial, TCP, character device, file).
    Stream(BoxTransport, LinkWatch),
    /// A keyboard-wedge reader, grabbed.
    Evdev(Box<EvdevReader<posbridge_drivers::reader::keyboard::Source>>),
    /// A HID device, its reports read on hidapi's thread.
    Hid(HidReader),
}

/// How a dropped link shows itself.
#[derive(Clone, Copy)]
enum LinkWatch {
    /// Reading returns end-of-file or an error when the peer goes away
    /// (serial hang-up, TCP close).
    Read,
    /// Files and printer device nodes give no such signal: a read says
    /// nothing, so the link is held until the driver's next write fails.
    Hold,
    /// A device node opened non-blocking (`/dev/usb/lpN`): held like
    /// `Hold`, but reads can be timed out, so status replies are read.
    Polled,
}

async fn open(entry: &DeviceEntry) -> Result<Link, TransportError> {
    match entry.endpoint() {
        Some(Endpoint::Transport(spec)) => {
            let watch = match spec {
                TransportSpec::Serial(_) | TransportSpec::Tcp { .. } => LinkWatch::Read,
                TransportSpec::CharDevice { path } => {
                    let dev = posbridge_drivers::transport::chardev::open(&path).await?;
                    let watch = if dev.readable {
                        LinkWatch::Polled
                    } else {
                        LinkWatch::Hold
                    };
                    return Ok(Link::Stream(dev.transport, watch));
                }
                TransportSpec::File { .. } => LinkWatch::Hold,
                // Reads are served by the HID thread and can be timed out;
                // an unplug ends the stream.
                TransportSpec::Hid { .. } => LinkWatch::Polled,
            };
            Ok(Link::Stream(spec.open().await?, watch))
        }
        Some(Endpoint::Input(ReaderAttachment::Hid(usb))) => {
            // hidapi enumerates sysfs and opens the node: brief, but
            // blocking, so off the async threads.
            let what = usb.to_string();
            let opened = tokio::task::spawn_blocking(move || {
                HidReader::open(usb.vid, usb.pid, usb.serial.as_deref())
            })
            .await
            .map_err(|e| TransportError::Io {
                what: what.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
            opened.map(Link::Hid).map_err(|e| match e {
                HidError::NotFound { .. } | HidError::Ambiguous { .. } => {
                    TransportError::NotFound {
                        what: e.to_string(),
                    }
                }
                HidError::PermissionDenied { path } => TransportError::PermissionDenied {
                    what: format!("{what} ({path})"),
                },
                e => TransportError::Io {
                    what,
                    source: std::io::Error::other(e.to_string()),
                },
            })
        }
        Some(Endpoint::Input(attachment)) => {
            let path = input_path(&attachment)?;
            let what = path.display().to_string();
            match (&attachment, entry) {
                (ReaderAttachment::Evdev { .. }, DeviceEntry::Reader(r)) => {
                    let gap = r.evdev.as_ref().map_or(50, |e| e.gap_ms);
                    let config = WedgeConfig {
                        gap: Duration::from_millis(gap),
                        ..WedgeConfig::default()
                    };
                    match EvdevReader::open_any(&path, config) {
                        Ok(reader) => Ok(Link::Evdev(Box::new(reader))),
                        Err(EvdevError::Open { source, .. }) => {
                            Err(TransportError::from_io(what, source))
                        }
                        Err(e) => Err(TransportError::Busy {
                            what: format!("{what}: {e}"),
                        }),
                    }
                }
                _ => Err(TransportError::NotFound {
                    what: format!("{what}: not a keyboard-wedge reader entry"),
                }),
            }
        }
        None => Err(TransportError::NotFound {
            what: "device entry without an attachment".into(),
        }),
    }
}

/// The device node of a keyboard-wedge reader, looked up through sysfs when
/// the entry names a USB id.
fn input_path(a: &ReaderAttachment) -> Result<PathBuf, TransportError> {
    use posbridge_drivers::discover;
    // HID readers are opened through hidapi by their USB id; only
    // keyboard-wedge readers come here.
    let usb = match a {
        ReaderAttachment::Evdev {
            device: Some(d), ..
        } => return Ok(d.clone()),
        ReaderAttachment::Evdev { usb: Some(u), .. } => u,
        _ => {
            return Err(TransportError::NotFound {
                what: "evdev reader without device or usb".into(),
            });
        }
    };
    let id = discover::UsbIdentity {
        vid: usb.vid,
        pid: usb.pid,
        serial: usb.serial.clone(),
    };
    discover::find_input_system(&id).map_err(|e| TransportError::NotFound {
        what: e.to_string(),
    })
}

/// Drives an open link until it drops; returns why it ended.
///
/// Readers decode what arrives into cards. Printers hold the link (print
/// jobs plug in here): a printer's stray bytes are counted and dropped.
async fn run_link(
    entry: &DeviceEntry,
    decoder: Option<&Decoder>,
    print: &PrintSide,
    bus: &EventBus,
    link: Link,
) -> String {
    let mut buf = vec![0u8; 4096];
    match (link, decoder, entry) {
        (Link::Stream(t, watch), _, DeviceEntry::Printer(p))
            if p.kind == crate::config::PrinterKind::Escpos =>
        {
            let profile = match p.load_profile() {
                Ok(profile) => profile,
                Err(e) => return e,
            };
            let ctx = super::printer::PrinterCtx {
                name: p.name.get_ref(),
                profile: &profile,
                paper: p.paper,
                // Not a file, an unpollable node, or a printer whose profile
                // says it never answers.
                answers: profile.status_reply
                    && matches!(watch, LinkWatch::Read | LinkWatch::Polled),
                queue: &print.queue,
                wake: &print.wake,
                bus,
                status: &print.status,
            };
            super::printer::run(ctx, t).await
        }
        (Link::Stream(t, _), _, DeviceEntry::Printer(p)) => {
            let ctx = super::fiscal::FiscalCtx {
                name: p.name.get_ref(),
                journal: &print.journal,
                wake: &print.wake,
                bus,
                points_type: p.points_payment_type,
                status: &print.status,
                // Checked when the configuration was loaded.
                taxes: p.tax_map().unwrap_or_default(),
            };
            super::fiscal::run(ctx, t).await
        }
        (Link::Stream(t, _), Some(decoder), DeviceEntry::Reader(r)) => {
            let codec = match frame_codec(&r.framing) {
                Ok(c) => c,
                Err(e) => return e.to_string(),
            };
            let mut frames = framing::FramedReader::new(t, codec);
            let join = swipe_gap(r);
            loop {
                let mut msg = match frames.next().await {
                    Ok(Some(framing::FrameEvent::Message(m))) => m,
                    Ok(Some(framing::FrameEvent::Overflow { len })) => {
                        decoder
                            .error(format!(
                                "message of {len} bytes exceeds reader.framing.max_len"
                            ))
                            .await;
                        continue;
                    }
                    Ok(None) => return "closed by the device".into(),
                    Err(e) => return format!("read failed: {e}"),
                };
                // Readers that end every track with CR: the next track
                // follows without a pause, so the swipe ends at the first
                // silence of `join` after the last byte (however long a
                // track takes to arrive at a slow baud rate).
                let mut ended = None;
                while let Some(gap) = join {
                    match frames.next_unless_silent(gap).await {
                        Ok(framing::Joined::Event(Some(framing::FrameEvent::Message(more))))
                            if msg.len() + more.len() < MAX_SWIPE =>
                        {
                            msg.push(b'\r');
                            msg.extend_from_slice(&more);
                        }
                        Ok(framing::Joined::Event(Some(_))) => break,
                        Ok(framing::Joined::Event(None)) => {
                            ended = Some("closed by the device".to_string());
                            break;
                        }
                        Err(e) => {
                            ended = Some(format!("read failed: {e}"));
                            break;
                        }
                        Ok(framing::Joined::Silence) => break,
                    }
                }
                decoder.message(&msg).await;
                if let Some(why) = ended {
                    return why;
                }
            }
        }
        (Link::Stream(_transport, LinkWatch::Hold | LinkWatch::Polled), _, _) => {
            std::future::pending().await
        }
        (Link::Stream(mut t, LinkWatch::Read), _, _) => loop {
            match t.read(&mut buf).await {
                Ok(0) => return "closed by the device".into(),
                Ok(n) => tracing::debug!(device = entry.name(), bytes = n, "device data"),
                Err(e) => return format!("read failed: {e}"),
            }
        },
        (Link::Evdev(mut reader), Some(decoder), DeviceEntry::Reader(r)) => {
            let join = swipe_gap(r);
            loop {
                let mut msg = match reader.next_message().await {
                    Ok(KeyMessage::Text(t)) => t,
                    Ok(KeyMessage::Overflow { len }) => {
                        decoder
                            .error(format!("{len} keystrokes without an end exceed the limit"))
                            .await;
                        continue;
                    }
                    Err(EvdevError::Disconnected) => return "input device unplugged".into(),
                    Err(e) => return e.to_string(),
                };
                // Wedge readers press Enter after each track.
                let mut ended = None;
                // As on serial: the swipe ends at the first silence.
                while let Some(gap) = join {
                    match reader.next_message_unless_silent(gap).await {
                        Ok(Some(KeyMessage::Text(more))) if msg.len() + more.len() < MAX_SWIPE => {
                            msg.push('\r');
                            msg.push_str(&more);
                        }
                        Ok(Some(_)) => break,
                        Err(e) => {
                            ended = Some(e.to_string());
                            break;
                        }
                        Ok(None) => break,
                    }
                }
                decoder.message(msg.as_bytes()).await;
                if let Some(why) = ended {
                    return why;
                }
            }
        }
        (Link::Hid(f), Some(decoder), DeviceEntry::Reader(r)) => {
            let Some(hid) = &r.hid else {
                return "hid reader without [reader.hid]".into();
            };
            run_hid(f, hid, decoder).await
        }
        (Link::Evdev(_) | Link::Hid(_), None, _)
        | (Link::Evdev(_) | Link::Hid(_), _, DeviceEntry::Printer(_)) => {
            "input link without a reader".into()
        }
    }
}

/// Longest joined swipe: the magstripe parser refuses more anyway.
const MAX_SWIPE: usize = 512;

/// How long a magstripe reader's next line may take to count as part of
/// the same swipe; `None` for scanners and when turned off.
fn swipe_gap(r: &crate::config::ReaderConfig) -> Option<Duration> {
    (r.kind == crate::config::ReaderKind::Msr && r.framing.swipe_gap_ms > 0)
        .then(|| Duration::from_millis(r.framing.swipe_gap_ms))
}

/// Reads HID reports from hidapi's thread and decodes them by the entry's
/// report format.
async fn run_hid(mut reader: HidReader, hid: &HidConfig, decoder: &Decoder) -> String {
    let wedge = WedgeConfig {
        gap: Duration::from_millis(hid.gap_ms),
        ..WedgeConfig::default()
    };
    let mut boot = BootKeyboardDecoder::new(wedge, hid.report_id);
    let layout = PosScanLayout {
        report_id: hid.report_id.or(PosScanLayout::default().report_id),
        ..PosScanLayout::default()
    };
    let mut pos = PosScanDecoder::new(layout);
    // Checked at config load; absent only for other report formats.
    let vendor = hid.vendor_msr_layout();
    loop {
        // Boot-keyboard messages may end by silence rather than Enter.
        let deadline = boot.deadline();
        let read = tokio::select! {
            r = reader.next_report() => r,
            _ = sleep_until_opt(deadline) => {
                if let Some(KeyMessage::Text(t)) = boot.flush_if_idle(Instant::now()) {
                    decoder.message(t.as_bytes()).await;
                }
                continue;
            }
        };
        let report = match read {
            Ok(r) => r,
            Err(HidError::Disconnected) => return "hid device unplugged".into(),
            Err(e) => return e.to_string(),
        };
        let report = report.as_slice();
        match hid.report {
            HidReport::BootKeyboard => match boot.report(report, Instant::now()) {
                Ok(messages) => {
                    for m in messages {
                        match m {
                            KeyMessage::Text(t) => decoder.message(t.as_bytes()).await,
                            KeyMessage::Overflow { len } => {
                                decoder
                                    .error(format!("{len} keystrokes exceed the limit"))
                                    .await
                            }
                        }
                    }
                }
                Err(e) => decoder.error(format!("bad keyboard report: {e}")).await,
            },
            HidReport::PosScanner => match pos.report(report) {
                Ok(Some(scan)) => {
                    let mut bytes = Vec::with_capacity(scan.data.len() + 3);
                    if let Some(aim) = scan.aim {
                        bytes.extend_from_slice(&aim);
                    }
                    bytes.extend_from_slice(&scan.data);
                    decoder.message(&bytes).await;
                }
                Ok(None) => {}
                Err(e) => decoder.error(format!("bad scanner report: {e}")).await,
            },
            HidReport::VendorMsr => match vendor.as_ref().map(|v| v.decode(report)) {
                // The same text a serial reader sends, for the one parser.
                Some(Ok(Some(swipe))) => decoder.message(swipe.to_serial_text().as_bytes()).await,
                Some(Ok(None)) => {}
                Some(Err(e)) => decoder.error(format!("bad swipe report: {e}")).await,
                None => return "vendor_msr reader without a track layout".into(),
            },
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
