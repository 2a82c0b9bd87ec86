//! `auth.login`.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::rpc::{self, RpcError, code};
use crate::api::session::Session;
use crate::app::App;
use crate::redact::Secret;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    /// Never logged: `Secret` redacts itself.
    token: Secret,
}

pub(super) fn login(
    app: &Arc<App>,
    session: &Arc<Session>,
    params: Option<Value>,
) -> Result<Value, RpcError> {
    let p: Params = rpc::params(params)?;
    match app.tokens().check(&p.token) {
        Some(role) => {
            let role = session.login(role);
            tracing::info!(conn = session.id, ?role, "login");
            Ok(json!({ "role": role }))
        }
        None => {
            tracing::warn!(conn = session.id, peer = ?session.peer, "login with a bad token");
            Err(RpcError::new(code::BAD_TOKEN, "token not accepted"))
        }
    }
}
