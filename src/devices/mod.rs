//! Device supervision: one actor per configured reader or printer, started,
//! stopped and restarted as the configuration changes.

mod entry;
pub mod ffd;
pub mod fiscal;
pub mod fiscal_ffd;
mod journal;
mod printer;
mod queue;
mod reader;
mod reads;
mod supervisor;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use entry::{DeviceEntry, Endpoint};
pub use journal::{FiscalJob, Journal, JournalError};
pub use printer::PrinterStatus;
pub use queue::{Job, Queue, QueueError};
pub use reads::{CardRead, ReadSource, ReaderOutput, ScanRead};

use crate::events::{EventBus, now_rfc3339};

/// A device's link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Being opened for the first time.
    Starting,
    /// Open and working.
    Connected,
    /// Absent or dropped; being retried.
    Disconnected,
    /// Present but unusable (permissions, busy); being retried.
    Error,
    /// Stopped by reload or shutdown.
    Stopped,
}

impl DeviceState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Starting => "starting",
            DeviceState::Connected => "connected",
            DeviceState::Disconnected => "disconnected",
            DeviceState::Error => "error",
            DeviceState::Stopped => "stopped",
        }
    }
}

/// The live part of a device's status.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceStatus {
    /// Link state.
    pub state: DeviceState,
    /// Why, when not connected.
    pub detail: Option<String>,
    /// When the state last changed (RFC 3339).
    pub since: String,
}

/// A device as `devices.list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceInfo {
    /// Unique name.
    pub name: String,
    /// `reader` or `printer`.
    pub class: &'static str,
    /// Configured type.
    #[serde(rename = "type")]
    pub type_name: &'static str,
    /// How it is attached.
    pub attachment: String,
    /// Link state.
    pub status: DeviceState,
    /// Why, when not connected.
    pub detail: Option<String>,
    /// When the state last changed.
    pub since: String,
    /// Daemon-wide counter stamped when this actor started; it changes only
    /// when the device is (re)started, which is how a technician sees that
    /// a reload left a device alone.
    pub instance: u64,
    /// Readers: whether reads are delivered (`reader.enable` /
    /// `reader.disable`); absent for printers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// What a reconfiguration did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ApplyReport {
    /// New devices started.
    pub started: Vec<String>,
    /// Devices whose entry changed, restarted.
    pub restarted: Vec<String>,
    /// Devices no longer configured, stopped.
    pub stopped: Vec<String>,
    /// Devices left running as they were.
    pub unchanged: Vec<String>,
}

/// Why a device command failed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// No device has that name.
    #[error("no device named \"{0}\"")]
    NotFound(String),
    /// The device is not a reader.
    #[error("device \"{0}\" is not a reader")]
    NotAReader(String),
}

struct Slot {
    entry: DeviceEntry,
    instance: u64,
    cancel: CancellationToken,
    /// Fires when the actor has exited and released its port, so a
    /// replacement does not race it for the device (serial ports are opened
    /// exclusively).
    finished: CancellationToken,
    status: watch::Receiver<DeviceStatus>,
}

/// All configured devices.
pub struct Devices {
    slots: Mutex<Vec<Slot>>,
    bus: EventBus,
    /// Where reader actors send cards.
    reads: tokio::sync::mpsc::Sender<ReaderOutput>,
    /// The durable print queue.
    pub queue: Queue,
    /// The fiscal journal.
    pub journal: Journal,
    // The last status each printer reported (paper, cover, errors; a
    // register's mode), for fiscal.status and printers.list; kept by name
    // so it outlives a restart of the actor.
    printer_status:
        Mutex<std::collections::HashMap<String, tokio::sync::watch::Sender<serde_json::Value>>>,
    // One wake-up per printer name, shared by its successive actors, so a
    // job enqueued while an actor restarts is still noticed.
    wakes: Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Notify>>>,
    // Each reader's enabled switch, by name, shared with its successive
    // actors so that a reconnect keeps what the POS set.
    enabled: Mutex<std::collections::HashMap<String, std::sync::Arc<AtomicBool>>>,
    next_instance: AtomicU64,
    // Every actor is tracked so shutdown can wait for them to release
    // their ports.
    tracker: TaskTracker,
}

impl Devices {
    /// No devices yet.
    pub fn new(
        bus: EventBus,
        reads: tokio::sync::mpsc::Sender<ReaderOutput>,
        queue: Queue,
        journal: Journal,
    ) -> Self {
        Devices {
            slots: Mutex::new(Vec::new()),
            bus,
            reads,
            queue,
            journal,
            printer_status: Mutex::new(Default::default()),
            wakes: Mutex::new(Default::default()),
            enabled: Mutex::new(Default::default()),
            next_instance: AtomicU64::new(1),
            tracker: TaskTracker::new(),
        }
    }

    fn spawn(&self, entry: DeviceEntry, after: Option<CancellationToken>) -> Slot {
        let instance = self.next_instance.fetch_add(1, Ordering::Relaxed);
        let cancel = CancellationToken::new();
        let finished = CancellationToken::new();
        let (tx, rx) = watch::channel(DeviceStatus {
            state: DeviceState::Starting,
            detail: None,
            since: now_rfc3339(),
        });
        let actor = supervisor::supervise(
            entry.clone(),
            instance,
            tx,
            self.bus.clone(),
            supervisor::ReadSide {
                out: self.reads.clone(),
                enabled: self.enabled_flag(entry.name()),
            },
            supervisor::PrintSide {
                queue: self.queue.clone(),
                journal: self.journal.clone(),
                wake: self.wake(entry.name()),
                status: self.printer_status_sender(entry.name()),
            },
            cancel.clone(),
        );
        let guard = finished.clone().drop_guard();
        self.tracker.spawn(async move {
            let _guard = guard;
            if let Some(previous) = after {
                previous.cancelled().await;
            }
            actor.await;
        });
        Slot {
            entry,
            instance,
            cancel,
            finished,
            status: rx,
        }
    }

    /// Brings the running set in line with `entries`: unchanged devices
    /// keep running untouched, changed ones restart, removed ones stop.
    pub fn apply(&self, entries: Vec<DeviceEntry>) -> ApplyReport {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let mut old: Vec<Slot> = std::mem::take(&mut *slots);
        let mut report = ApplyReport::default();
        for entry in entries {
            let name = entry.name().to_owned();
            match old.iter().position(|s| s.entry.name() == name) {
                Some(i) if old[i].entry == entry => {
                    slots.push(old.swap_remove(i));
                    report.unchanged.push(name);
                }
                Some(i) => {
                    self.reset_enabled(&entry);
                    let previous = old.swap_remove(i);
                    previous.cancel.cancel();
                    slots.push(self.spawn(entry, Some(previous.finished)));
                    report.restarted.push(name);
                }
                None => {
                    self.reset_enabled(&entry);
                    slots.push(self.spawn(entry, None));
                    report.started.push(name);
                }
            }
        }
        for slot in old {
            slot.cancel.cancel();
            report.stopped.push(slot.entry.name().to_owned());
        }
        report
    }

    /// A reader's enabled switch (created enabled).
    fn enabled_flag(&self, name: &str) -> std::sync::Arc<AtomicBool> {
        self.enabled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_owned())
            .or_insert_with(|| std::sync::Arc::new(AtomicBool::new(true)))
            .clone()
    }

    /// A new or changed reader entry starts as its configuration says.
    fn reset_enabled(&self, entry: &DeviceEntry) {
        if let DeviceEntry::Reader(r) = entry {
            self.enabled_flag(entry.name())
                .store(r.scan.enabled, Ordering::Relaxed);
        }
    }

    /// Turns a reader's delivery on or off (UnifiedPOS `DeviceEnabled`):
    /// while off, everything it reads is dropped. Returns the previous
    /// state.
    pub fn set_enabled(&self, name: &str, on: bool) -> Result<bool, DeviceError> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = slots
            .iter()
            .find(|s| s.entry.name() == name)
            .ok_or_else(|| DeviceError::NotFound(name.to_owned()))?;
        if !matches!(slot.entry, DeviceEntry::Reader(_)) {
            return Err(DeviceError::NotAReader(name.to_owned()));
        }
        Ok(self.enabled_flag(name).swap(on, Ordering::Relaxed))
    }

    /// The wake-up of a printer's actor.
    pub fn wake(&self, name: &str) -> std::sync::Arc<tokio::sync::Notify> {
        self.wakes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    fn printer_status_sender(&self, name: &str) -> tokio::sync::watch::Sender<serde_json::Value> {
        self.printer_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_owned())
            .or_insert_with(|| tokio::sync::watch::channel(serde_json::Value::Null).0)
            .clone()
    }

    /// The last status a printer reported (null before the first).
    pub fn printer_status(&self, name: &str) -> serde_json::Value {
        self.printer_status_sender(name).borrow().clone()
    }

    /// The kind of the configured printer called `name`, if there is one.
    pub fn printer_kind(&self, name: &str) -> Option<crate::config::PrinterKind> {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find_map(|s| match &s.entry {
                DeviceEntry::Printer(p) if p.name.get_ref() == name => Some(p.kind),
                _ => None,
            })
    }

    /// Restarts one device (closes and reopens its link).
    pub fn restart(&self, name: &str) -> Result<u64, DeviceError> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = slots
            .iter_mut()
            .find(|s| s.entry.name() == name)
            .ok_or_else(|| DeviceError::NotFound(name.to_owned()))?;
        slot.cancel.cancel();
        let fresh = self.spawn(slot.entry.clone(), Some(slot.finished.clone()));
        let instance = fresh.instance;
        *slot = fresh;
        Ok(instance)
    }

    /// A snapshot of every device, in configuration order.
    pub fn list(&self) -> Vec<DeviceInfo> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .iter()
            .map(|s| {
                let st = s.status.borrow().clone();
                DeviceInfo {
                    name: s.entry.name().to_owned(),
                    class: s.entry.class(),
                    type_name: s.entry.type_name(),
                    attachment: s.entry.describe(),
                    status: st.state,
                    detail: st.detail,
                    since: st.since,
                    instance: s.instance,
                    enabled: matches!(s.entry, DeviceEntry::Reader(_))
                        .then(|| self.enabled_flag(s.entry.name()).load(Ordering::Relaxed)),
                }
            })
            .collect()
    }

    /// Stops every device and waits for the actors to release their links.
    pub async fn shutdown(&self) {
        self.apply(Vec::new());
        self.tracker.close();
        self.tracker.wait().await;
    }
}
