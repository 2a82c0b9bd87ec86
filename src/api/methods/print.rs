//! `print.*`, `printers.list`, `drawer.open`: receipts through the durable
//! queue.

use std::sync::Arc;

use posbridge_drivers::printer::document::{Document, PaperWidth};
use posbridge_drivers::printer::escpos::{EncodeError, Profile};
use posbridge_drivers::sim::render::preview_document;
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
    parse_document(document.clone())?;
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

/// Parses and validates a document, naming the bad field.
fn parse_document(document: Value) -> Result<Document, RpcError> {
    let doc: Document = serde_path_to_error::deserialize(document).map_err(|e| {
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
    Ok(doc)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewParams {
    printer: Option<String>,
    profile: Option<String>,
    paper: Option<PaperWidth>,
    document: Value,
}

/// `print.preview`: the document drawn as the printer (or a built-in
/// profile) would print it, as a base64 PNG. Nothing is queued or printed.
pub(super) async fn preview(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: PreviewParams = rpc::params(params)?;
    let (profile, paper) = match (&p.printer, &p.profile) {
        (Some(_), Some(_)) => {
            return Err(RpcError::invalid_params(
                "profile",
                "give printer or profile, not both",
            ));
        }
        (Some(name), None) => {
            check_printer(app, name)?;
            let config = app.config();
            let entry = config
                .printers
                .iter()
                .find(|e| e.name.get_ref() == name)
                .ok_or_else(|| {
                    RpcError::new(
                        code::DEVICE_NOT_FOUND,
                        format!("no receipt printer named \"{name}\""),
                    )
                })?;
            let profile = entry
                .load_profile()
                .map_err(|e| RpcError::internal("printer profile", e))?;
            (profile, entry.paper)
        }
        (None, name) => {
            let name = name.as_deref().unwrap_or("generic-80");
            let profile = Profile::builtin(name).ok_or_else(|| {
                RpcError::invalid_params(
                    "profile",
                    format!(
                        "unknown profile \"{name}\"; built in: {}",
                        Profile::builtin_names().collect::<Vec<_>>().join(", ")
                    ),
                )
            })?;
            (profile, PaperWidth::Mm80)
        }
    };
    let paper = p.paper.unwrap_or(paper);
    let doc = parse_document(p.document)?;
    // Rendering is CPU work (dithering, QR, glyphs): off the async threads.
    let rendered = tokio::task::spawn_blocking(move || {
        preview_document(&doc, &profile, paper).map(|pv| (pv, profile.name))
    })
    .await
    .map_err(|e| RpcError::internal("print preview", e))?;
    let (pv, profile) = rendered.map_err(|e| match e {
        EncodeError::Qr { block, message } | EncodeError::Image { block, message } => {
            RpcError::invalid_params(&format!("document.blocks[{block}]"), message)
        }
        EncodeError::Invalid(e) => RpcError::invalid_params("document", e),
    })?;
    Ok(json!({
        "profile": profile,
        "paper": paper,
        "width": pv.canvas.width,
        "height": pv.canvas.height,
        "truncated": pv.truncated,
        "unrepresentable": pv.unrepresentable,
        "notes": pv.notes,
        "png_base64": base64(&pv.png()),
    }))
}

/// Standard base64 with padding (RFC 4648).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
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
    crate::metrics::global().print_job(&job.printer, &job.state);
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
        v["printer_status"] = app.devices.printer_status(&d.name);
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

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), enc);
        }
    }
}
