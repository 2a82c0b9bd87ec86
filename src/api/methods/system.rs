//! `system.*`: liveness, information, reload.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::METHODS;
use crate::api::rpc::{RpcError, code};
use crate::api::session::Session;
use crate::app::{App, ReloadError};

pub(super) fn info(app: &Arc<App>, session: &Arc<Session>) -> Result<Value, RpcError> {
    let devices = app.devices.list();
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &devices {
        *by_status.entry(d.status.as_str()).or_default() += 1;
    }
    Ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "started_at": app.started_at,
        "uptime_s": app.started.elapsed().as_secs(),
        "config_path": app.source.path(),
        "socket": app.socket_path,
        "database": app.store.path(),
        "terminal_id": app.store.terminal_id(),
        "devices": { "total": devices.len(), "by_status": by_status },
        "ledger": super::sync::ledger_state(app),
        "role": session.role(),
    }))
}

pub(super) fn methods() -> Value {
    Value::Array(
        METHODS
            .iter()
            .map(|m| json!({"name": m.name, "role": m.role, "summary": m.summary}))
            .collect(),
    )
}

pub(super) async fn reload(app: &Arc<App>) -> Result<Value, RpcError> {
    match app.reload().await {
        Ok(report) => {
            tracing::info!(?report, "configuration reloaded by API");
            Ok(json!(report))
        }
        Err(e) => {
            tracing::error!(error = %e, "reload refused; the old configuration stays in force");
            let code = match e {
                ReloadError::Config(_) | ReloadError::Tokens(_) => code::CONFIG_INVALID,
                ReloadError::Loader(_) => code::INTERNAL_ERROR,
            };
            Err(RpcError::new(code, e.to_string()).with_data(json!({ "reason": e.to_string() })))
        }
    }
}
