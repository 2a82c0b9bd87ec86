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

use super::entry::{DeviceEntry, Endpoint};
use super::{DeviceState, DeviceStatus};
use crate::config::ReaderAttachment;
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
                    r = run_link(&entry, link) => r,
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

/// An open device.
enum Link {
    /// A byte stream (serial, TCP, character device, file).
    Stream(BoxTransport, LinkWatch),
    /// An input node read through evdev or hidraw.
    Input(tokio::fs::File),
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
}

async fn open(entry: &DeviceEntry) -> Result<Link, TransportError> {
    match entry.endpoint() {
        Some(Endpoint::Transport(spec)) => {
            let watch = match spec {
                TransportSpec::Serial(_) | TransportSpec::Tcp { .. } => LinkWatch::Read,
                TransportSpec::CharDevice { .. } | TransportSpec::File { .. } => LinkWatch::Hold,
            };
            Ok(Link::Stream(spec.open().await?, watch))
        }
        Some(Endpoint::Input(attachment)) => {
            let path = input_path(&attachment)?;
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| TransportError::from_io(path.display().to_string(), e))?;
            Ok(Link::Input(file))
        }
        None => Err(TransportError::NotFound {
            what: "device entry without an attachment".into(),
        }),
    }
}

/// The device node of an evdev or HID reader, looked up through sysfs when
/// the entry names a USB id.
fn input_path(a: &ReaderAttachment) -> Result<PathBuf, TransportError> {
    use posbridge_drivers::discover;
    let (usb, hid) = match a {
        ReaderAttachment::Evdev {
            device: Some(d), ..
        } => return Ok(d.clone()),
        ReaderAttachment::Evdev { usb: Some(u), .. } => (u, false),
        ReaderAttachment::Hid(u) => (u, true),
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
    let found = if hid {
        discover::find_hidraw_system(&id)
    } else {
        discover::find_input_system(&id)
    };
    found.map_err(|e| TransportError::NotFound {
        what: e.to_string(),
    })
}

/// Drives an open link until it drops; returns why it ended.
///
/// Card decoding (issue 3) and print jobs (issue 4) plug in here. Until a
/// reader's decoder exists its bytes are counted and discarded: they are
/// track data and must not be logged.
async fn run_link(entry: &DeviceEntry, link: Link) -> String {
    let mut buf = vec![0u8; 4096];
    match link {
        Link::Stream(_transport, LinkWatch::Hold) => std::future::pending().await,
        Link::Stream(mut t, LinkWatch::Read) => loop {
            match t.read(&mut buf).await {
                Ok(0) => return "closed by the device".into(),
                Ok(n) => tracing::debug!(device = entry.name(), bytes = n, "device data"),
                Err(e) => return format!("read failed: {e}"),
            }
        },
        Link::Input(mut f) => loop {
            match f.read(&mut buf).await {
                Ok(0) => return "input device closed".into(),
                Ok(n) => tracing::debug!(device = entry.name(), bytes = n, "input events"),
                Err(e) => return format!("read failed: {e}"),
            }
        },
    }
}
