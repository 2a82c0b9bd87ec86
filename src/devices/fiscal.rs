//! The fiscal printer side of a device actor: Shtrih-M jobs from the
//! journal, run so that one `job_id` never becomes two receipts.
//!
//! Before a document's first byte the fiscal storage's last document number
//! is written to the journal. After a link loss or a crash the actor reads
//! back a pending answer, the device mode and that number, and decides:
//! the document exists → report it; a check is still open → cancel it and
//! run the job again; nothing happened → run it again.

use std::time::Duration;

use posbridge_drivers::printer::shtrih::ffd::{self, CorrectionResult};
use posbridge_drivers::printer::shtrih::{
    CheckType, ClassicClose, ClassicCloseResult, ClassicItem, CloseCheckResult, CloseCheckV2,
    Command, FnDocument, FnShiftParams, FnStatus, FullStatus, OperationType, OperationV2,
    PrintFlags, ShortStatus, ShtrihClient, ShtrihError, is_not_supported,
};
use posbridge_drivers::transport::BoxTransport;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use super::ffd::{Tax, TaxMap, Taxation};
use super::fiscal_ffd::{self as ffd_ops, CashRequest, Cashier, CorrectionRequest};
use super::journal::{FiscalJob, Journal};
use crate::events::EventBus;

/// Operator password for fiscal commands (the administrator's by default).
pub const DEFAULT_PASSWORD: u32 = 30;
/// Status is read this often while idle (it also notices a dead link).
const IDLE_POLL: Duration = Duration::from_secs(3);
/// The ФН and OFD state is read this often (it changes slowly).
const FN_POLL: Duration = Duration::from_secs(30);

/// A receipt as `fiscal.receipt` accepts it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReceiptRequest {
    /// `sell` or `sell_return`.
    #[serde(rename = "type")]
    pub kind: ReceiptKind,
    /// Taxation system (tag 1055) by name, or its bit; default ОСН.
    #[serde(default)]
    pub taxation: Option<Taxation>,
    /// Cashier name, printed before the items.
    #[serde(default)]
    pub operator: Option<String>,
    /// Items.
    pub items: Vec<Item>,
    /// Payments.
    pub payments: Vec<Payment>,
    /// Non-fiscal lines at the top of the receipt.
    #[serde(default)]
    pub pre_text: Vec<String>,
    /// Non-fiscal lines after the items: where the bonus block goes.
    #[serde(default)]
    pub post_text: Vec<String>,
    /// The buyer's phone (`+7…`) or e-mail for the electronic receipt
    /// (tag 1008).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_contact: Option<String>,
    /// The cashier for the fiscal document (tags 1021, 1203).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cashier: Option<Cashier>,
}

/// Receipt type.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptKind {
    /// Приход.
    Sell,
    /// Возврат прихода.
    SellReturn,
}

/// A receipt item.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// Name, up to 128 bytes in Windows-1251.
    pub name: String,
    /// Unit price.
    #[serde(with = "rust_decimal::serde::str")]
    pub price: Decimal,
    /// Quantity (up to 6 decimals).
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    /// Line amount if it differs from price × quantity.
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub amount: Option<Decimal>,
    /// VAT by its 2026 legal name (`vat22`, `vat10`, …, see [`Tax`]).
    pub tax: Tax,
    /// The marking code as scanned (GS separators kept as U+001D).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marking_code: Option<String>,
    /// Tag 2108 measure of the quantity (0 pieces, 11 kg, 41 l, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measure: Option<u8>,
    /// Признак способа расчёта, 1..=7 (4 = full payment).
    #[serde(default = "default_method")]
    pub payment_method: u8,
    /// Признак предмета расчёта, 1..=19 (1 = goods).
    #[serde(default = "default_object")]
    pub payment_object: u8,
}

fn default_method() -> u8 {
    4
}
fn default_object() -> u8 {
    1
}

/// A payment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    /// `cash`, `electronically`, `points` or `prepayment`.
    #[serde(rename = "type")]
    pub kind: PaymentKind,
    /// Amount.
    #[serde(with = "rust_decimal::serde::str")]
    pub sum: Decimal,
}

/// Payment types.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PaymentKind {
    /// Наличные (type 1).
    Cash,
    /// Электронными (type 2).
    Electronically,
    /// Loyalty points: the printer's configured payment type.
    Points,
    /// «Предварительная оплата (зачёт аванса)» (tag 1215, FF45h payment
    /// type 14): what a gift certificate sold as an advance pays with.
    Prepayment,
}

/// Kopecks of a money amount; `None` if negative, finer than a kopeck or
/// too large for the 5-byte field.
pub fn kopecks(d: Decimal) -> Option<u64> {
    if d.is_sign_negative() || d.normalize().scale() > 2 {
        return None;
    }
    let k: u64 = (d * Decimal::from(100)).trunc().try_into().ok()?;
    (k < 1 << 40).then_some(k)
}

/// Millionths of a quantity.
pub fn millionths(d: Decimal) -> Option<u64> {
    if d <= Decimal::ZERO || d.normalize().scale() > 6 {
        return None;
    }
    let q: u64 = (d * Decimal::from(1_000_000)).trunc().try_into().ok()?;
    (q < 1 << 48).then_some(q)
}

/// Everything the fiscal actor needs besides its link.
pub(super) struct FiscalCtx<'a> {
    pub name: &'a str,
    pub journal: &'a Journal,
    pub wake: &'a Notify,
    pub bus: &'a EventBus,
    /// Payment type index (1..=16) used for points.
    pub points_type: u8,
    /// The last status read, for `fiscal.status`.
    pub status: &'a watch::Sender<Value>,
    /// VAT rate → register tax (`[printer.taxes]`).
    pub taxes: TaxMap,
}

/// How a job attempt ended.
enum Outcome {
    Done(Value),
    Failed(Value),
}

/// Link-level trouble ends the actor's link; device-reported errors fail
/// the job.
fn is_link(e: &ShtrihError) -> bool {
    matches!(e, ShtrihError::Transport(_) | ShtrihError::Protocol(_))
}

fn device_error(e: &ShtrihError) -> Value {
    match e {
        ShtrihError::Device(d) => {
            json!({"device_code": d.code, "meaning": d.meaning, "english": d.english().unwrap_or("unknown error")})
        }
        other => json!({ "message": other.to_string() }),
    }
}

/// A (Russian, English) pair as `{"ru", "en"}`; `null` for a mode or
/// submode number the specification does not list.
fn words(t: Option<(&str, &str)>) -> Value {
    t.map_or(Value::Null, |(ru, en)| json!({"ru": ru, "en": en}))
}

type Client = ShtrihClient<BoxTransport>;

async fn short_status(c: &mut Client) -> Result<ShortStatus, ShtrihError> {
    let r = c.execute(&Command::short_status()).await?;
    Ok(ShortStatus::parse(&r)?)
}

async fn fn_status(c: &mut Client) -> Result<FnStatus, ShtrihError> {
    let r = c.execute(&Command::fn_status()).await?;
    Ok(FnStatus::parse(&r)?)
}

async fn shift_number(c: &mut Client) -> Result<u16, ShtrihError> {
    let r = c.execute(&Command::fn_shift_params()).await?;
    Ok(FnShiftParams::parse(&r)?.shift_number)
}

async fn publish(ctx: &FiscalCtx<'_>, job: &FiscalJob, state: &str, detail: &Value) {
    crate::metrics::global().fiscal_job(ctx.name, state == "done");
    ctx.bus.publish(
        "fiscal.job",
        json!({"job_id": job.job_id, "printer": ctx.name, "kind": job.kind, "state": state, "detail": detail}),
    );
}

/// Runs fiscal jobs until the link drops; returns why.
pub(super) async fn run(ctx: FiscalCtx<'_>, t: BoxTransport) -> String {
    let mut c = ShtrihClient::new(t, DEFAULT_PASSWORD);
    // The tax table is checked once per link: a register swapped or
    // reprogrammed shows up here.
    let mut tax_table = match ffd_ops::check_taxes(&mut c, &ctx.taxes).await {
        Ok(()) => json!({"ok": true}),
        Err(e) => {
            tracing::error!(printer = ctx.name, error = %e, "fiscal tax table");
            json!({"ok": false, "error": e})
        }
    };
    let mut fn_info = Value::Null;
    let mut warnings = std::collections::BTreeSet::new();
    let mut fn_due = tokio::time::Instant::now();
    // Set once the register refuses FF46h/FF45h (an older firmware): this
    // link then uses the classic 80h…85h commands.
    let mut classic = false;
    loop {
        let job = match ctx.journal.next(ctx.name.to_owned()).await {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(printer = ctx.name, error = %e, "fiscal journal unreadable");
                None
            }
        };
        let Some(job) = job else {
            if tokio::time::Instant::now() >= fn_due {
                fn_due = tokio::time::Instant::now() + FN_POLL;
                match ffd_ops::fn_state(&mut c).await {
                    Ok((info, now)) => {
                        for w in now.difference(&warnings) {
                            tracing::warn!(printer = ctx.name, warning = w, "fiscal warning");
                            ctx.bus.publish(
                                "fiscal.warning",
                                json!({"printer": ctx.name, "warning": w, "fn": info}),
                            );
                        }
                        warnings = now;
                        fn_info = info;
                    }
                    Err(e) if is_link(&e) => return format!("fn status failed: {e}"),
                    Err(e) => fn_info = json!({"error": device_error(&e)}),
                }
            }
            match short_status(&mut c).await {
                Ok(s) => {
                    ctx.status.send_replace(json!({
                        "mode": s.mode_number(), "submode": s.submode,
                        "mode_text": words(s.mode_text()),
                        "submode_text": words(s.submode_text()),
                        "operator": s.operator, "cover_open": s.flags.cover_open(),
                        "fn": fn_info, "tax_table": tax_table,
                    }));
                }
                Err(e) if is_link(&e) => return format!("status failed: {e}"),
                Err(_) => {}
            }
            tokio::select! {
                _ = ctx.wake.notified() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
            }
            continue;
        };
        let attempt = if job.state == "sending" {
            recover(&ctx, &mut c, &job, &mut classic).await
        } else if job.kind == "receipt" && tax_table["ok"] != true {
            // Re-read: the technician may have fixed table 6 meanwhile.
            match ffd_ops::check_taxes(&mut c, &ctx.taxes).await {
                Ok(()) => {
                    tax_table = json!({"ok": true});
                    execute(&ctx, &mut c, &job, &mut classic).await
                }
                Err(e) => {
                    tax_table = json!({"ok": false, "error": e});
                    Ok(Outcome::Failed(json!({"message": e, "tax_table": false})))
                }
            }
        } else {
            execute(&ctx, &mut c, &job, &mut classic).await
        };
        // Documents change the OFD queue: read it again soon.
        fn_due = tokio::time::Instant::now();
        match attempt {
            Ok(Outcome::Done(result)) => {
                let _ = ctx
                    .journal
                    .set(&job.job_id, "done", None, Some(&result), None)
                    .await;
                publish(&ctx, &job, "done", &result).await;
                tracing::info!(printer = ctx.name, job = %job.job_id, "fiscal job done");
            }
            Ok(Outcome::Failed(error)) => {
                let _ = ctx
                    .journal
                    .set(&job.job_id, "failed", None, None, Some(&error))
                    .await;
                publish(&ctx, &job, "failed", &error).await;
                tracing::warn!(printer = ctx.name, job = %job.job_id, %error, "fiscal job failed");
            }
            // The job stays where it is; the next link picks it up.
            Err(why) => return why,
        }
    }
}

/// Finds out what became of a job that was `sending` when the link or the
/// daemon went down.
async fn recover(
    ctx: &FiscalCtx<'_>,
    c: &mut Client,
    job: &FiscalJob,
    classic: &mut bool,
) -> Result<Outcome, String> {
    let link = |e: ShtrihError| format!("recovery: {e}");
    // An answer the device still holds: the close itself, perhaps.
    let pending = c.recover_pending().await.map_err(link)?;
    if let Some(r) = pending.filter(|r| r.error == 0) {
        if r.command == 0xFF45
            && let Ok(closed) = CloseCheckResult::parse(&r)
        {
            let shift = shift_number(c).await.map_err(link)?;
            return Ok(Outcome::Done(receipt_result(
                job,
                closed.fd_number,
                closed.fiscal_sign,
                shift,
            )));
        }
        if let Ok(done) = CorrectionResult::parse(&r) {
            let shift = shift_number(c).await.map_err(link)?;
            return Ok(Outcome::Done(correction_result(
                done.fd_number,
                done.fiscal_sign,
                shift,
            )));
        }
        if matches!(job.kind.as_str(), "cash_in" | "cash_out")
            && let Ok(n) = ffd::cash_document_number(&r)
        {
            return Ok(Outcome::Done(cash_result(job, n)));
        }
    }
    if matches!(job.kind.as_str(), "cash_in" | "cash_out") {
        // Cash in/out is not an FN document: the register's own document
        // counter tells whether it was printed.
        let n = document_number(c).await.map_err(link)?;
        if i64::from(n) > job.fd_before.unwrap_or(i64::MAX) {
            return Ok(Outcome::Done(cash_result(job, n)));
        }
        let st = short_status(c).await.map_err(link)?;
        if st.mode_number() == 8 {
            c.execute(&Command::cancel_check()).await.map_err(link)?;
        }
        return execute(ctx, c, job, classic).await;
    }
    let st = short_status(c).await.map_err(link)?;
    if st.mode_number() == 8 {
        tracing::warn!(printer = ctx.name, job = %job.job_id, "recovery: cancelling the open check");
        c.execute(&Command::cancel_check()).await.map_err(link)?;
        return execute(ctx, c, job, classic).await;
    }
    let fs = fn_status(c).await.map_err(link)?;
    let before = job.fd_before.unwrap_or(i64::MAX);
    if i64::from(fs.last_fd_number) > before && job.kind == "correction" {
        let r = c
            .execute(&Command::fn_find_document(fs.last_fd_number))
            .await
            .map_err(link)?;
        let doc = FnDocument::parse(&r).map_err(|e| format!("recovery: {e}"))?;
        let shift = shift_number(c).await.map_err(link)?;
        return Ok(Outcome::Done(correction_result(
            fs.last_fd_number,
            doc.fiscal_sign.unwrap_or(0),
            shift,
        )));
    }
    if i64::from(fs.last_fd_number) > before && job.kind == "receipt" {
        let r = c
            .execute(&Command::fn_find_document(fs.last_fd_number))
            .await
            .map_err(link)?;
        let doc = FnDocument::parse(&r).map_err(|e| format!("recovery: {e}"))?;
        let shift = shift_number(c).await.map_err(link)?;
        tracing::info!(printer = ctx.name, job = %job.job_id, fd = fs.last_fd_number, "recovery: the receipt was completed");
        return Ok(Outcome::Done(receipt_result(
            job,
            fs.last_fd_number,
            doc.fiscal_sign.unwrap_or(0),
            shift,
        )));
    }
    if i64::from(fs.last_fd_number) > before {
        // A shift open or close completed.
        return Ok(Outcome::Done(
            json!({"fiscal_document_number": fs.last_fd_number}),
        ));
    }
    execute(ctx, c, job, classic).await
}

fn correction_result(fd: u32, sign: u32, shift: u16) -> Value {
    json!({"fiscal_document_number": fd, "fiscal_sign": sign, "shift_number": shift})
}

fn cash_result(job: &FiscalJob, n: u16) -> Value {
    json!({"document_number": n, "sum": job.request["sum"]})
}

/// «Сквозной номер документа» (11h), which 50h/51h advance.
async fn document_number(c: &mut Client) -> Result<u16, ShtrihError> {
    let r = c.execute(&Command::full_status()).await?;
    Ok(FullStatus::parse(&r)?.document_number)
}

fn receipt_result(job: &FiscalJob, fd: u32, sign: u32, shift: u16) -> Value {
    let total = job
        .request
        .get("items")
        .and_then(|i| serde_json::from_value::<Vec<Item>>(i.clone()).ok())
        .map(|items| {
            items
                .iter()
                .map(|i| i.amount.unwrap_or(i.price * i.quantity))
                .sum::<Decimal>()
        })
        .unwrap_or_default();
    json!({
        "fiscal_document_number": fd,
        "fiscal_sign": sign,
        "shift_number": shift,
        "total": total.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero).to_string(),
    })
}

/// Runs a job from the start.
async fn execute(
    ctx: &FiscalCtx<'_>,
    c: &mut Client,
    job: &FiscalJob,
    classic: &mut bool,
) -> Result<Outcome, String> {
    let link = |e: ShtrihError| format!("{}: {e}", job.kind);
    macro_rules! device {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) if is_link(&e) => return Err(link(e)),
                Err(e) => {
                    // Leave no half-built check behind a refused command.
                    if let Ok(s) = short_status(c).await
                        && s.mode_number() == 8
                    {
                        let _ = c.execute(&Command::cancel_check()).await;
                    }
                    return Ok(Outcome::Failed(device_error(&e)));
                }
            }
        };
    }
    // Drain an answer left from before, and a check someone left open.
    let _ = c.recover_pending().await.map_err(link)?;
    let st = device!(short_status(c).await);
    if st.mode_number() == 8 {
        device!(c.execute(&Command::cancel_check()).await);
    }
    match job.kind.as_str() {
        "shift_open" => {
            let fs = device!(fn_status(c).await);
            mark_sending(ctx, job, fs.last_fd_number).await?;
            device!(c.execute(&Command::open_shift()).await);
            let fs = device!(fn_status(c).await);
            let shift = device!(shift_number(c).await);
            Ok(Outcome::Done(
                json!({"fiscal_document_number": fs.last_fd_number, "shift_number": shift}),
            ))
        }
        "shift_close" => {
            let fs = device!(fn_status(c).await);
            let shift = device!(shift_number(c).await);
            mark_sending(ctx, job, fs.last_fd_number).await?;
            device!(c.execute(&Command::z_report()).await);
            let fs = device!(fn_status(c).await);
            Ok(Outcome::Done(
                json!({"fiscal_document_number": fs.last_fd_number, "shift_number": shift}),
            ))
        }
        "x_report" => {
            device!(c.execute(&Command::x_report()).await);
            Ok(Outcome::Done(json!({"printed": true})))
        }
        "receipt" => {
            let Ok(req) = serde_json::from_value::<ReceiptRequest>(job.request.clone()) else {
                return Ok(Outcome::Failed(
                    json!({"message": "stored request unreadable"}),
                ));
            };
            let mut bits = Vec::with_capacity(req.items.len());
            for item in &req.items {
                match ffd_ops::tax_bit(&ctx.taxes, item.tax) {
                    Ok(b) => bits.push(b),
                    Err(message) => return Ok(Outcome::Failed(json!({ "message": message }))),
                }
            }
            // A closed shift opens itself (a fiscal document of its own,
            // before this receipt's number is taken).
            if st.mode_number() == 4 {
                device!(c.execute(&Command::open_shift()).await);
            }
            // Marking codes are checked before the check opens: a code the
            // register refuses stops the receipt before anything is printed.
            let mut marks = Vec::new();
            for (i, item) in req.items.iter().enumerate() {
                if let Some(code) = &item.marking_code {
                    let m = device!(
                        ffd_ops::check_mark(c, i, code, req.kind, item.quantity, item.measure)
                            .await
                    );
                    marks.push(m);
                }
            }
            if let Some(bad) = marks.iter().find(|m| !m.accepted) {
                return Ok(Outcome::Failed(json!({
                    "message": format!("the register refused the marking code of items[{}]", bad.item),
                    "marking": marks,
                })));
            }
            let fs = device!(fn_status(c).await);
            mark_sending(ctx, job, fs.last_fd_number).await?;
            let kind = match req.kind {
                ReceiptKind::Sell => CheckType::Sale,
                ReceiptKind::SellReturn => CheckType::SaleReturn,
            };
            device!(c.execute(&Command::open_check(kind)).await);
            let flags = PrintFlags::receipt();
            for line in req.pre_text.iter().chain(req.operator.iter()) {
                device!(c.execute(&Command::print_string(flags, line)).await);
            }
            for (item, &tax_rate) in req.items.iter().zip(&bits) {
                if *classic {
                    let cmd = device!(
                        classic_item(item, req.kind, tax_rate)
                            .and_then(|i| Command::classic_item(&i))
                    );
                    device!(c.execute(&cmd).await);
                    device!(
                        ffd_ops::item_tags(c, item.marking_code.as_deref(), item.measure).await
                    );
                    continue;
                }
                let op = OperationV2 {
                    kind: match req.kind {
                        ReceiptKind::Sell => OperationType::Income,
                        ReceiptKind::SellReturn => OperationType::IncomeReturn,
                    },
                    quantity: millionths(item.quantity).unwrap_or(0),
                    price: kopecks(item.price).unwrap_or(0),
                    sum: item.amount.and_then(kopecks),
                    tax: None,
                    tax_rate,
                    department: 1,
                    payment_method: item.payment_method,
                    payment_object: item.payment_object,
                    name: item.name.clone(),
                };
                let cmd = device!(Command::operation_v2(&op));
                match c.execute(&cmd).await {
                    Err(e) if is_not_supported(&e) => {
                        tracing::info!(
                            printer = ctx.name,
                            "no FF46h on this register: classic 80h…85h from now on"
                        );
                        *classic = true;
                        let cmd = device!(
                            classic_item(item, req.kind, tax_rate)
                                .and_then(|i| Command::classic_item(&i))
                        );
                        device!(c.execute(&cmd).await);
                    }
                    r => {
                        device!(r);
                    }
                }
                device!(ffd_ops::item_tags(c, item.marking_code.as_deref(), item.measure).await);
            }
            device!(
                ffd_ops::send_tags(c, req.customer_contact.as_deref(), req.cashier.as_ref()).await
            );
            for line in &req.post_text {
                device!(c.execute(&Command::print_string(flags, line)).await);
            }
            let mut close = CloseCheckV2::cash(0, req.taxation.unwrap_or(Taxation::Osn).bit());
            for p in &req.payments {
                let idx = match p.kind {
                    PaymentKind::Cash => 0,
                    PaymentKind::Electronically => 1,
                    PaymentKind::Points => usize::from(ctx.points_type.clamp(1, 16)) - 1,
                    PaymentKind::Prepayment => 13,
                };
                close.payments[idx] += kopecks(p.sum).unwrap_or(0);
            }
            if !*classic {
                let cmd = device!(Command::close_check_v2(&close));
                match c.execute(&cmd).await {
                    Err(e) if is_not_supported(&e) => *classic = true,
                    r => {
                        let r = device!(r);
                        let closed =
                            device!(CloseCheckResult::parse(&r).map_err(ShtrihError::from));
                        let shift = device!(shift_number(c).await);
                        let mut result =
                            receipt_result(job, closed.fd_number, closed.fiscal_sign, shift);
                        if !marks.is_empty() {
                            result["marking"] = json!(marks);
                        }
                        return Ok(Outcome::Done(result));
                    }
                }
            }
            // 85h: cash and payment types 2…4; FD number and sign from the FN.
            let mut payments = [0u64; 4];
            for (i, p) in close.payments.iter().enumerate() {
                match payments.get_mut(i) {
                    Some(slot) => *slot = *p,
                    None if *p == 0 => {}
                    None => {
                        return Ok(Outcome::Failed(json!({
                            "message": format!("payment type {} does not exist on a register without FF45h (types 1…4)", i + 1)
                        })));
                    }
                }
            }
            let cmd = device!(Command::classic_close(&ClassicClose {
                payments,
                text: String::new()
            }));
            let r = device!(c.execute(&cmd).await);
            device!(ClassicCloseResult::parse(&r).map_err(ShtrihError::from));
            let fs = device!(fn_status(c).await);
            let r = device!(
                c.execute(&Command::fn_find_document(fs.last_fd_number))
                    .await
            );
            let doc = device!(FnDocument::parse(&r).map_err(ShtrihError::from));
            let closed = CloseCheckResult {
                change: 0,
                fd_number: fs.last_fd_number,
                fiscal_sign: doc.fiscal_sign.unwrap_or(0),
                date_time: None,
            };
            let shift = device!(shift_number(c).await);
            let mut result = receipt_result(job, closed.fd_number, closed.fiscal_sign, shift);
            if !marks.is_empty() {
                result["marking"] = json!(marks);
            }
            Ok(Outcome::Done(result))
        }
        "cash_in" | "cash_out" => {
            let Ok(req) = serde_json::from_value::<CashRequest>(job.request.clone()) else {
                return Ok(Outcome::Failed(
                    json!({"message": "stored request unreadable"}),
                ));
            };
            if st.mode_number() == 4 {
                device!(c.execute(&Command::open_shift()).await);
            }
            let n = device!(document_number(c).await);
            mark_sending(ctx, job, u32::from(n)).await?;
            let sum = kopecks(req.sum).unwrap_or(0);
            let cmd = device!(if job.kind == "cash_in" {
                ffd::cash_in(sum)
            } else {
                ffd::cash_out(sum)
            });
            let r = device!(c.execute(&cmd).await);
            let n = device!(ffd::cash_document_number(&r).map_err(ShtrihError::from));
            Ok(Outcome::Done(cash_result(job, n)))
        }
        "correction" => {
            let Ok(req) = serde_json::from_value::<CorrectionRequest>(job.request.clone()) else {
                return Ok(Outcome::Failed(
                    json!({"message": "stored request unreadable"}),
                ));
            };
            if st.mode_number() == 4 {
                device!(c.execute(&Command::open_shift()).await);
            }
            let fs = device!(fn_status(c).await);
            mark_sending(ctx, job, fs.last_fd_number).await?;
            match device!(ffd_ops::correction(c, &ctx.taxes, &req).await) {
                Ok(done) => {
                    let shift = device!(shift_number(c).await);
                    Ok(Outcome::Done(correction_result(
                        done.fd_number,
                        done.fiscal_sign,
                        shift,
                    )))
                }
                Err(message) => Ok(Outcome::Failed(json!({ "message": message }))),
            }
        }
        other => Ok(Outcome::Failed(
            json!({"message": format!("unknown job kind {other}")}),
        )),
    }
}

/// The point of no return is written down before it is passed.
async fn mark_sending(ctx: &FiscalCtx<'_>, job: &FiscalJob, fd: u32) -> Result<(), String> {
    ctx.journal
        .set(&job.job_id, "sending", Some(i64::from(fd)), None, None)
        .await
        .map_err(|e| format!("journal: {e}"))
}

/// An item as 80h/82h carry it: quantity in thousandths, the tax as its
/// group 1…4, no separate line amount.
fn classic_item(item: &Item, kind: ReceiptKind, mask: u8) -> Result<ClassicItem, ShtrihError> {
    let invalid = |field, reason| ShtrihError::InvalidRequest { field, reason };
    let quantity = millionths(item.quantity)
        .filter(|q| q % 1_000 == 0)
        .ok_or(invalid(
            "quantity",
            "a register without FF46h takes quantities to 3 decimals",
        ))?
        / 1_000;
    let price = kopecks(item.price).ok_or(invalid("price", "out of range"))?;
    if let Some(amount) = item.amount
        && kopecks(amount) != Some((quantity * price + 500) / 1_000)
    {
        return Err(invalid(
            "amount",
            "a register without FF46h computes the line amount as price × quantity",
        ));
    }
    let tax_group = if mask == 0 {
        0
    } else {
        mask.trailing_zeros() as u8 + 1
    };
    Ok(ClassicItem {
        sale_return: matches!(kind, ReceiptKind::SellReturn),
        quantity,
        price,
        department: 1,
        tax_group,
        name: item.name.clone(),
    })
}
