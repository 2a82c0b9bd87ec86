//! `devices.*`.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::rpc::{self, RpcError, code};
use crate::app::App;
use crate::devices::DeviceError;

pub(super) fn list(app: &Arc<App>) -> Result<Value, RpcError> {
    Ok(json!({ "devices": app.devices.list() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestartParams {
    name: String,
}

pub(super) fn restart(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: RestartParams = rpc::params(params)?;
    match app.devices.restart(&p.name) {
        Ok(instance) => Ok(json!({ "name": p.name, "instance": instance })),
        Err(e @ DeviceError::NotFound(_)) => {
            Err(RpcError::new(code::DEVICE_NOT_FOUND, e.to_string())
                .with_data(json!({ "name": p.name })))
        }
    }
}
