//! The gauges read from the daemon's live state at each scrape: cheaper
//! and truer than updating them at every change, and a device removed by a
//! reload disappears from the output instead of lingering.

use crate::app::App;
use crate::config::PrinterKind;
use crate::devices::DeviceState;

use super::Metrics;

const STATES: [DeviceState; 5] = [
    DeviceState::Starting,
    DeviceState::Connected,
    DeviceState::Disconnected,
    DeviceState::Error,
    DeviceState::Stopped,
];

/// Sets the state gauges of `m` from `app`: devices, queues, the OFD
/// backlog and whether the ledger answers.
pub async fn refresh(app: &App, m: &Metrics) {
    m.device_up.clear();
    m.device_state.clear();
    m.print_queue_depth.clear();
    m.printer_paper_out.clear();
    m.fiscal_queue_depth.clear();
    m.fiscal_unsent.clear();
    m.fiscal_oldest_unsent.clear();
    let (queue, journal) = (&app.devices.queue, &app.devices.journal);
    for d in app.devices.list() {
        let name = d.name.clone();
        m.device_up
            .get_or_create(&[("device", name.clone()), ("kind", d.type_name.to_owned())])
            .set(i64::from(d.status == DeviceState::Connected));
        for s in STATES {
            m.device_state
                .get_or_create(&[("device", name.clone()), ("state", s.as_str().to_owned())])
                .set(i64::from(d.status == s));
        }
        let label = |k: &'static str| [(k, name.clone())];
        match app.devices.printer_kind(&name) {
            Some(PrinterKind::Escpos) => {
                if let Ok(n) = queue.depth(name.clone()).await {
                    m.print_queue_depth.get_or_create(&label("printer")).set(n);
                }
                let status = app.devices.printer_status(&name);
                if let Some(out) = status["paper_end"].as_bool() {
                    m.printer_paper_out
                        .get_or_create(&label("printer"))
                        .set(i64::from(out));
                }
            }
            Some(PrinterKind::Shtrih) => {
                if let Ok(n) = journal.depth(name.clone()).await {
                    m.fiscal_queue_depth
                        .get_or_create(&label("register"))
                        .set(n);
                }
                let status = app.devices.printer_status(&name);
                let ofd = &status["fn"]["ofd"];
                if let Some(n) = ofd["unsent"].as_i64() {
                    m.fiscal_unsent.get_or_create(&label("register")).set(n);
                    m.fiscal_oldest_unsent
                        .get_or_create(&label("register"))
                        .set(ofd["oldest_unsent_age_seconds"].as_i64().unwrap_or(0));
                }
            }
            None => {}
        }
    }
    m.ledger_up.set(i64::from(ledger_up(app).await));
}

/// Whether the ledger answers: in central mode the outbox's last word on
/// the central service, else the till's own store.
pub async fn ledger_up(app: &App) -> bool {
    match &app.sync {
        Some(sync) => sync.status().borrow().link == crate::ledger::offline::Link::Online,
        None => app
            .store
            .with(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))
            .await
            .is_ok(),
    }
}
