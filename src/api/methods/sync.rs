//! `ledger.sync.*`: a till in central mode and its outbox of operations
//! accepted while the central ledger was out of reach; and the task that
//! publishes the outbox's changes as `ledger.sync` and its refusals as
//! `ledger.sync.failed`.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::api::rpc::{self, RpcError, code};
use crate::app::App;
use crate::ledger::offline::{Offline, OfflineError};

/// The most dead-letter items one `ledger.sync.failed` lists.
const MAX_LIST: u32 = 1000;

/// The offline side of the ledger, or the error for an embedded ledger.
fn sync(app: &Arc<App>) -> Result<&Arc<Offline>, RpcError> {
    app.sync.as_ref().ok_or_else(|| {
        RpcError::new(
            code::INVALID_REQUEST,
            "this till keeps its own ledger: there is nothing to synchronise",
        )
    })
}

fn offline_error(e: OfflineError) -> RpcError {
    match e {
        OfflineError::UnknownItem(id) => RpcError::new(
            code::UNKNOWN_SYNC_ITEM,
            format!("no failed operation {id} on the dead-letter list"),
        )
        .with_data(json!({ "id": id })),
        OfflineError::Store(e) => RpcError::internal("outbox", e),
    }
}

/// The ledger's backend and, in central mode, the outbox's status: the
/// `ledger` member of `system.info` and `devices.list`.
pub(super) fn ledger_state(app: &Arc<App>) -> Value {
    match &app.sync {
        Some(o) => json!({ "backend": "central", "sync": *o.status().borrow() }),
        None => json!({ "backend": "embedded", "sync": null }),
    }
}

/// `ledger.sync.status`.
pub(super) async fn status(app: &Arc<App>) -> Result<Value, RpcError> {
    let s = sync(app)?.status().borrow().clone();
    Ok(json!(s))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<u32>,
}

/// `ledger.sync.failed`: the dead-letter list, oldest first.
pub(super) async fn failed(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: ListParams = rpc::params(params.or(Some(json!({}))))?;
    let limit = p.limit.unwrap_or(100);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(RpcError::invalid_params(
            "limit",
            format!("1 to {MAX_LIST}"),
        ));
    }
    let items = sync(app)?.failed(limit).await.map_err(offline_error)?;
    Ok(json!({ "items": items }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemParams {
    id: i64,
}

/// `ledger.sync.retry`: a failed operation goes back in the queue.
pub(super) async fn retry(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: ItemParams = rpc::params(params)?;
    sync(app)?.retry(p.id).await.map_err(offline_error)?;
    Ok(json!({ "id": p.id, "queued": true }))
}

/// `ledger.sync.drop`: a failed operation is given up.
pub(super) async fn drop_item(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: ItemParams = rpc::params(params)?;
    let item = sync(app)?.drop_failed(p.id).await.map_err(offline_error)?;
    Ok(json!({ "dropped": item }))
}

/// Publishes the outbox's status on every change (`ledger.sync`) and each
/// refusal (`ledger.sync.failed`) until `shutdown`.
pub async fn forward(app: Arc<App>, offline: Arc<Offline>, shutdown: CancellationToken) {
    let mut status = offline.status();
    let mut refused = offline.refusals();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = status.changed() => {
                if changed.is_err() { return }
                let s = status.borrow_and_update().clone();
                app.bus.publish("ledger.sync", json!(s));
            }
            r = refused.recv() => match r {
                Ok(r) => { app.bus.publish("ledger.sync.failed", json!(r)); }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "ledger.sync.failed events were dropped");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}
