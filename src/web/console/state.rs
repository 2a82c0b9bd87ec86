//! What the console shows, gathered from the daemon's live state: the
//! devices with the fix for each one that is not connected, the printers
//! and fiscal registers with their status, the configuration check of the
//! file in force and the ledger's health.

use serde_json::Value;

use crate::app::App;
use crate::config::{PrinterKind, ReaderAttachment};
use crate::devices::{DeviceEntry, DeviceInfo, DeviceState, Endpoint};
use posbridge_drivers::transport::TransportSpec;

/// A device row.
pub struct DeviceRow {
    /// What `devices.list` says.
    pub info: DeviceInfo,
    /// What to do about it, when it is not connected.
    pub fix: Option<String>,
}

/// A receipt printer's panel.
pub struct PrinterRow {
    /// Its name.
    pub name: String,
    /// The last status it reported (`null` before the first).
    pub status: Value,
    /// Unfinished jobs.
    pub queue: i64,
}

/// A fiscal register's panel.
pub struct FiscalRow {
    /// Its name.
    pub name: String,
    /// Its status as `fiscal.status` reads it (mode, `fn`).
    pub status: Value,
    /// Unfinished fiscal jobs.
    pub queue: i64,
}

/// The ledger's health.
pub struct LedgerRow {
    /// `local` (this till's database) or `central`.
    pub backend: &'static str,
    /// Whether it answers.
    pub up: bool,
    /// Central mode: operations waiting and refused.
    pub queued: Option<(u64, u64)>,
}

/// Everything the page shows.
pub struct Dashboard {
    /// Every configured device.
    pub devices: Vec<DeviceRow>,
    /// ESC/POS printers.
    pub printers: Vec<PrinterRow>,
    /// Shtrih registers.
    pub fiscal: Vec<FiscalRow>,
    /// `Ok(path)` or the error `posbridge config check` would print.
    pub config: Result<String, String>,
    /// The ledger.
    pub ledger: LedgerRow,
}

/// Gathers the page's data.
pub async fn gather(app: &App) -> Dashboard {
    let entries = DeviceEntry::from_config(&app.config());
    let mut devices = Vec::new();
    let mut printers = Vec::new();
    let mut fiscal = Vec::new();
    for info in app.devices.list() {
        let fix = if info.status == DeviceState::Connected {
            None
        } else {
            let entry = entries.iter().find(|e| e.name() == info.name);
            let (node, usb) = entry.map(where_is).unwrap_or_default();
            let detail = info.detail.clone().unwrap_or_default();
            // Probing opens the node: off the async threads.
            tokio::task::spawn_blocking(move || {
                crate::cli::devices::fix(node.as_deref(), usb, &detail)
            })
            .await
            .ok()
            .flatten()
        };
        match app.devices.printer_kind(&info.name) {
            Some(PrinterKind::Escpos) => printers.push(PrinterRow {
                name: info.name.clone(),
                status: app.devices.printer_status(&info.name),
                queue: app
                    .devices
                    .queue
                    .depth(info.name.clone())
                    .await
                    .unwrap_or(-1),
            }),
            Some(PrinterKind::Shtrih) => fiscal.push(FiscalRow {
                name: info.name.clone(),
                status: app.devices.printer_status(&info.name),
                queue: app
                    .devices
                    .journal
                    .depth(info.name.clone())
                    .await
                    .unwrap_or(-1),
            }),
            None => {}
        }
        devices.push(DeviceRow { info, fix });
    }
    let source = app.source.clone();
    let config = tokio::task::spawn_blocking(move || {
        let c = source.load().map_err(|e| e.to_string())?;
        crate::cli::config::files(&c)?;
        Ok(source
            .path()
            .map_or_else(|| "(built-in defaults)".into(), |p| p.display().to_string()))
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    let ledger = LedgerRow {
        backend: if app.sync.is_some() {
            "central"
        } else {
            "local"
        },
        up: crate::metrics::refresh::ledger_up(app).await,
        queued: app.sync.as_ref().map(|s| {
            let st = s.status().borrow().clone();
            (st.queued, st.failed)
        }),
    };
    Dashboard {
        devices,
        printers,
        fiscal,
        config,
        ledger,
    }
}

/// The node a device opens, when it is a path, and its USB id, when the
/// configuration names one: what the fix is worked out from.
pub(crate) fn where_is(entry: &DeviceEntry) -> (Option<std::path::PathBuf>, Option<(u16, u16)>) {
    match entry.endpoint() {
        Some(Endpoint::Transport(TransportSpec::Serial(s))) => (Some(s.path), None),
        Some(Endpoint::Transport(TransportSpec::CharDevice { path })) => (Some(path), None),
        Some(Endpoint::Input(ReaderAttachment::Evdev { device, usb })) => {
            (device, usb.map(|u| (u.vid, u.pid)))
        }
        Some(Endpoint::Input(ReaderAttachment::Hid(u))) => (None, Some((u.vid, u.pid))),
        _ => (None, None),
    }
}
