//! The ESC/POS printer side of a device actor: poll status, take the next
//! job from the durable queue, encode it for the printer's profile, write
//! it, record the outcome.

use std::time::Duration;

use posbridge_drivers::printer::document::{Document, PaperWidth};
use posbridge_drivers::printer::escpos::{self, Profile, decode_status, status_request};
use posbridge_drivers::transport::BoxTransport;
use serde::Serialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use super::queue::{Job, Queue};
use crate::events::EventBus;

/// How long a status reply may take.
const STATUS_TIMEOUT: Duration = Duration::from_millis(500);
/// Status is polled this often while idle, and while a job is held.
const IDLE_POLL: Duration = Duration::from_secs(2);
/// A write that makes no progress for this long means the link is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the printer says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PrinterStatus {
    /// `ok`, `unknown` (no reply), or `not_reported` (the profile or the
    /// transport cannot answer).
    pub state: &'static str,
    /// Printer online.
    pub online: Option<bool>,
    /// Cover open.
    pub cover_open: Option<bool>,
    /// Out of paper.
    pub paper_end: Option<bool>,
    /// Paper running low.
    pub paper_near_end: Option<bool>,
    /// Autocutter error.
    pub cutter_error: Option<bool>,
    /// Unrecoverable error.
    pub unrecoverable_error: Option<bool>,
    /// Cash drawer open.
    pub drawer_open: Option<bool>,
}

impl PrinterStatus {
    /// Why jobs must wait, if they must.
    fn blocking(&self) -> Option<&'static str> {
        if self.state == "unknown" {
            return Some("no status reply (offline?)");
        }
        if self.paper_end == Some(true) {
            Some("paper end")
        } else if self.cover_open == Some(true) {
            Some("cover open")
        } else if self.unrecoverable_error == Some(true) || self.cutter_error == Some(true) {
            // Before "offline": an error takes the printer offline too, and
            // the cause is what the technician needs.
            Some("printer error")
        } else if self.online == Some(false) {
            Some("offline")
        } else {
            None
        }
    }
}

/// Everything a printer actor needs besides its link.
pub(super) struct PrinterCtx<'a> {
    pub name: &'a str,
    pub profile: &'a Profile,
    pub paper: PaperWidth,
    /// False for printers that never answer and for file transports.
    pub answers: bool,
    pub queue: &'a Queue,
    pub wake: &'a Notify,
    pub bus: &'a EventBus,
    /// The last status, for `printers.list`.
    pub status: &'a tokio::sync::watch::Sender<serde_json::Value>,
}

/// Asks `DLE EOT 1, 2, 4` and reads one byte each, and `DLE EOT 3` (the
/// error's cause: cutter, unrecoverable) only when 2 reports an error, so
/// a healthy printer costs three round trips. `Err` means the link failed;
/// no reply is `unknown`, never assumed fine.
async fn poll(t: &mut BoxTransport) -> std::io::Result<PrinterStatus> {
    let mut st = PrinterStatus {
        state: "ok",
        ..PrinterStatus::default()
    };
    let mut asks = vec![1u8, 2, 4];
    let mut i = 0;
    while let Some(&n) = asks.get(i) {
        i += 1;
        t.write_all(&status_request(n)).await?;
        t.flush().await?;
        let mut b = [0u8; 1];
        let byte = loop {
            match tokio::time::timeout(STATUS_TIMEOUT, t.read(&mut b)).await {
                Err(_) => {
                    st.state = "unknown";
                    return Ok(st);
                }
                Ok(Ok(0)) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "printer closed the link",
                    ));
                }
                Ok(Ok(_)) if escpos::is_status_byte(b[0]) => break b[0],
                // Stray bytes (an earlier late reply) are skipped.
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => return Err(e),
            }
        };
        let bits = decode_status(n, byte);
        if n == 2 && bits.error == Some(true) {
            asks.insert(i, 3);
        }
        st.online = st.online.or(bits.online);
        st.drawer_open = st.drawer_open.or(bits.drawer_open);
        st.cover_open = st.cover_open.or(bits.cover_open);
        st.paper_end = match (st.paper_end, bits.paper_end) {
            (Some(a), Some(b)) => Some(a || b),
            (a, b) => a.or(b),
        };
        st.paper_near_end = st.paper_near_end.or(bits.paper_near_end);
        st.cutter_error = st.cutter_error.or(bits.cutter_error);
        st.unrecoverable_error = st.unrecoverable_error.or(bits.unrecoverable_error);
    }
    Ok(st)
}

fn publish_job(bus: &EventBus, job: &Job) {
    // Counts final states only; every job reaches one through here once.
    crate::metrics::global().print_job(&job.printer, &job.state);
    bus.publish(
        "job.status",
        json!({
            "job_id": job.job_id,
            "printer": job.printer,
            "state": job.state,
            "detail": job.detail,
            "unrepresentable": job.unrepresentable,
        }),
    );
}

/// Prints until the link drops; returns why.
pub(super) async fn run(ctx: PrinterCtx<'_>, mut t: BoxTransport) -> String {
    let mut last: Option<PrinterStatus> = None;
    let mut answers = ctx.answers;
    loop {
        let status = if answers {
            match poll(&mut t).await {
                Ok(s) => s,
                // usblp refuses reads (EINVAL) from a printer attached
                // unidirectionally: print blind rather than reconnect forever.
                Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                    tracing::warn!(printer = ctx.name, error = %e, "status cannot be read on this link; printing without status");
                    answers = false;
                    continue;
                }
                Err(e) => return format!("status poll failed: {e}"),
            }
        } else {
            PrinterStatus {
                state: "not_reported",
                ..PrinterStatus::default()
            }
        };
        if last.as_ref() != Some(&status) {
            ctx.bus.publish(
                "printer.status",
                json!({ "printer": ctx.name, "status": status }),
            );
            ctx.status.send_replace(json!(status));
            last = Some(status.clone());
        }
        let next = match ctx.queue.next(ctx.name.to_owned()).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(printer = ctx.name, error = %e, "print queue unreadable");
                None
            }
        };
        let Some((job, document)) = next else {
            tokio::select! {
                _ = ctx.wake.notified() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
            }
            continue;
        };
        if let Some(reason) = status.blocking() {
            if (job.state != "held" || job.detail.as_deref() != Some(reason))
                && let Ok(j) = ctx
                    .queue
                    .set_state(job.job_id.clone(), "held", Some(reason.into()), None)
                    .await
            {
                publish_job(ctx.bus, &j);
            }
            tokio::select! {
                _ = ctx.wake.notified() => {}
                _ = tokio::time::sleep(IDLE_POLL / 4) => {}
            }
            continue;
        }
        let encoded = serde_json::from_str::<Document>(&document)
            .map_err(|e| e.to_string())
            .and_then(|d| escpos::encode(&d, ctx.profile, ctx.paper).map_err(|e| e.to_string()));
        let encoded = match encoded {
            Ok(e) => e,
            Err(reason) => {
                if let Ok(j) = ctx
                    .queue
                    .set_state(job.job_id.clone(), "failed", Some(reason), None)
                    .await
                {
                    publish_job(ctx.bus, &j);
                }
                continue;
            }
        };
        if let Ok(j) = ctx
            .queue
            .set_state(job.job_id.clone(), "printing", None, None)
            .await
        {
            publish_job(ctx.bus, &j);
        }
        let write = async {
            t.write_all(&encoded.bytes).await?;
            t.flush().await
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(Ok(())) => {
                let unrep = i64::try_from(encoded.unrepresentable).unwrap_or(i64::MAX);
                // The characters that printed as `?`, by name, in the job's
                // result (print.status, job.status).
                let detail = (!encoded.missing.is_empty()).then(|| {
                    let chars: Vec<String> = encoded
                        .missing
                        .iter()
                        .map(|c| format!("{c} (U+{:04X})", u32::from(*c)))
                        .collect();
                    format!(
                        "printed as ? (not in the printer's code page): {}",
                        chars.join(", ")
                    )
                });
                if let Ok(j) = ctx
                    .queue
                    .set_state(job.job_id.clone(), "done", detail, Some(unrep))
                    .await
                {
                    publish_job(ctx.bus, &j);
                }
                tracing::info!(printer = ctx.name, job = %job.job_id, bytes = encoded.bytes.len(), "printed");
            }
            Ok(Err(e)) => {
                hold_disconnected(&ctx, &job).await;
                return format!("write failed: {e}");
            }
            Err(_) => {
                hold_disconnected(&ctx, &job).await;
                return "write timed out".into();
            }
        }
    }
}

async fn hold_disconnected(ctx: &PrinterCtx<'_>, job: &Job) {
    if let Ok(j) = ctx
        .queue
        .set_state(
            job.job_id.clone(),
            "held",
            Some("disconnected".into()),
            None,
        )
        .await
    {
        publish_job(ctx.bus, &j);
    }
}
