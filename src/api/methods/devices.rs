//! `devices.*`.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::rpc::{self, RpcError, code};
use crate::app::App;
use crate::devices::DeviceError;

pub(super) fn list(app: &Arc<App>) -> Result<Value, RpcError> {
    // The ledger is not a device, but a technician reading this list wants
    // to see the link to the chain's ledger beside the readers and printers.
    Ok(json!({ "devices": app.devices.list(), "ledger": super::sync::ledger_state(app) }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
/// `{name}`: one device.
struct RestartParams {
    name: String,
}

pub(super) fn restart(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: RestartParams = rpc::params(params)?;
    match app.devices.restart(&p.name) {
        Ok(instance) => Ok(json!({ "name": p.name, "instance": instance })),
        Err(e) => Err(device_error(e, &p.name)),
    }
}

fn device_error(e: DeviceError, name: &str) -> RpcError {
    match e {
        DeviceError::NotFound(_) => {
            RpcError::new(code::DEVICE_NOT_FOUND, e.to_string()).with_data(json!({ "name": name }))
        }
        DeviceError::NotAReader(_) => RpcError::invalid_params("name", e),
    }
}

/// `reader.enable` / `reader.disable` `{name}`: whether the reader's reads
/// are delivered. Replies with the state before and after.
pub(super) fn set_enabled(
    app: &Arc<App>,
    params: Option<Value>,
    on: bool,
) -> Result<Value, RpcError> {
    let p: RestartParams = rpc::params(params)?;
    match app.devices.set_enabled(&p.name, on) {
        Ok(was) => {
            tracing::info!(reader = %p.name, enabled = on, "reader switched");
            Ok(json!({ "name": p.name, "enabled": on, "was_enabled": was }))
        }
        Err(e) => Err(device_error(e, &p.name)),
    }
}
