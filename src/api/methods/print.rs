//! `print.*`, `printers.list`, `drawer.open`: receipts through the durable
//! queue.

use std::sync::Arc;

use posbridge_drivers::printer::document::Document;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::rpc::{self, RpcError, code};
use crate::app::App;
use crate::devices::QueueError;

fn queue_error(e: QueueError) -> RpcError {
    match e {
        QueueError::Conflict => RpcError::new(
            code::JOB_CONFLICT,
            "job_id already used for a different job",
        ),
        QueueError::NotFound => RpcError::new(code::JOB_NOT_FOUND, "no such job"),
        QueueError::NotCancellable(state) => RpcError::new(
            code::JOB_NOT_CANCELLABLE,
            format!("the job is {state} and can no longer be cancelled"),
        )
        .with_data(json!({ "state": state })),
        QueueError::Store(e) => RpcError::internal("print queue", e),
    }
}

fn check_job_id(id: &str) -> Result<(), RpcError> {
    if id.is_empty() || id.len() > 128 {
        return Err(RpcError::invalid_params("job_id", "1 to 128 characters"));
    }
    Ok(())
}

fn check_printer(app: &App, name: &str) -> Result<(), RpcError> {
    if app.devices.printer_kind(name) == Some(crate::config::PrinterKind::Escpos) {
        Ok(())
    } else {
        Err(RpcError::new(
            code::DEVICE_NOT_FOUND,
            format!("no receipt printer named \"{name}\""),
        )
        .with_data(json!({ "name": name })))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocumentParams {
    printer: String,
    job_id: String,
    document: Value,
}

/// Validates and enqueues; shared by `print.document`, `drawer.open` and
/// `sale.commit`'s printing.
pub(crate) async fn enqueue(
    app: &Arc<App>,
    printer: String,
    job_id: String,
    document: Value,
) -> Result<Value, RpcError> {
    check_job_id(&job_id)?;
    check_printer(app, &printer)?;
    // A bad document is refused before it is queued, naming the field.
    let doc: Document = serde_path_to_error::deserialize(document.clone()).map_err(|e| {
        let path = e.path().to_string();
        RpcError::invalid_params(&format!("document.{path}"), e.into_inner())
    })?;
    if let Err(e) = doc.validate() {
        let field = match e.block {
            Some(b) => format!("document.blocks[{b}].{}", e.field),
            None => format!("document.{}", e.field),
        };
        return Err(RpcError::invalid_params(&field, e.message));
    }
    let (job, created) = app
        .devices
        .queue
        .enqueue(job_id, printer.clone(), document)
        .await
        .map_err(queue_error)?;
    if created {
        app.bus.publish(
            "job.status",
            json!({"job_id": job.job_id, "printer": job.printer, "state": job.state}),
        );
        app.devices.wake(&printer).notify_one();
    }
    Ok(json!(job))
}

pub(super) async fn document(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: DocumentParams = rpc::params(params)?;
    enqueue(app, p.printer, p.job_id, p.document).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobParams {
    job_id: String,
}

pub(super) async fn status(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: JobParams = rpc::params(params)?;
    let job = app.devices.queue.get(p.job_id).await.map_err(queue_error)?;
    Ok(json!(job))
}

pub(super) async fn cancel(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: JobParams = rpc::params(params)?;
    let job = app
        .devices
        .queue
        .cancel(p.job_id)
        .await
        .map_err(queue_error)?;
    app.bus.publish(
        "job.status",
        json!({"job_id": job.job_id, "printer": job.printer, "state": job.state}),
    );
    Ok(json!(job))
}

pub(super) async fn printers(app: &Arc<App>) -> Result<Value, RpcError> {
    let mut out = Vec::new();
    for d in app
        .devices
        .list()
        .into_iter()
        .filter(|d| d.class == "printer")
    {
        let depth = app
            .devices
            .queue
            .depth(d.name.clone())
            .await
            .map_err(queue_error)?;
        let mut v = json!(d);
        v["queued"] = json!(depth);
        out.push(v);
    }
    Ok(json!({ "printers": out }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DrawerParams {
    printer: String,
    /// Optional: makes a retried request open the drawer once.
    job_id: Option<String>,
}

pub(super) async fn drawer(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: DrawerParams = rpc::params(params)?;
    let job_id = p
        .job_id
        .unwrap_or_else(|| format!("drawer-{}", crate::events::now_rfc3339()));
    enqueue(
        app,
        p.printer,
        job_id,
        json!({"blocks": [{"type": "drawer_kick", "pin": 0}]}),
    )
    .await
}
