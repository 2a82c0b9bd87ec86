//! `fiscal.*`: receipts and shift operations on a fiscal register, each
//! journaled before the device hears of it and idempotent on `job_id`.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::rpc::{self, RpcError, code};
use crate::app::App;
use crate::devices::JournalError;
use crate::devices::ffd::{contact_valid, inn_valid, marking_code_valid};
use crate::devices::fiscal::{ReceiptRequest, kopecks, millionths};
use crate::devices::fiscal_ffd::{CashRequest, Cashier, CorrectionRequest, basis_date_valid};

/// How long a call waits for the device before answering "in progress".
const WAIT: Duration = Duration::from_secs(120);

fn journal_error(e: JournalError) -> RpcError {
    match e {
        JournalError::Conflict => RpcError::new(
            code::JOB_CONFLICT,
            "job_id already used for a different request",
        ),
        JournalError::NotFound => RpcError::new(code::JOB_NOT_FOUND, "no such fiscal job"),
        JournalError::Store(e) => RpcError::internal("fiscal journal", e),
    }
}

fn check_printer(app: &App, name: &str) -> Result<(), RpcError> {
    if app.devices.printer_kind(name) == Some(crate::config::PrinterKind::Shtrih) {
        return Ok(());
    }
    Err(RpcError::new(
        code::DEVICE_NOT_FOUND,
        format!("no fiscal printer named \"{name}\""),
    )
    .with_data(json!({ "name": name })))
}

/// Journals a job, wakes the printer and waits for the outcome.
async fn run(
    app: &Arc<App>,
    printer: String,
    job_id: String,
    kind: &'static str,
    request: Value,
) -> Result<Value, RpcError> {
    if job_id.is_empty() || job_id.len() > 128 {
        return Err(RpcError::invalid_params("job_id", "1 to 128 characters"));
    }
    check_printer(app, &printer)?;
    // Subscribe first: the outcome may come before the journal call returns.
    let mut events = app.bus.subscribe();
    let (job, _) = app
        .devices
        .journal
        .accept(job_id.clone(), printer.clone(), kind, request)
        .await
        .map_err(journal_error)?;
    app.devices.wake(&printer).notify_one();
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut job = job;
    loop {
        match job.state.as_str() {
            "done" => return Ok(job.result.unwrap_or(Value::Null)),
            "failed" => {
                let err = job.error.unwrap_or(Value::Null);
                return Err(RpcError::new(
                    code::FISCAL_DEVICE_ERROR,
                    format!(
                        "the fiscal printer refused: {}",
                        // English here; the Russian `meaning` goes in
                        // `message_ru` (api::i18n).
                        err["english"]
                            .as_str()
                            .or(err["meaning"].as_str())
                            .or(err["message"].as_str())
                            .unwrap_or("error")
                    ),
                )
                .with_data(err));
            }
            _ => {}
        }
        // Wait for this job's event, then read the journal (the truth).
        let wait = async {
            loop {
                match events.recv().await {
                    Ok(e)
                        if e.topic == "fiscal.job"
                            && e.line.contains(&format!("\"job_id\":{}", json!(job_id))) =>
                    {
                        return;
                    }
                    Ok(_) => {}
                    // Missed events: re-read the journal.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                    Err(_) => std::future::pending::<()>().await,
                }
            }
        };
        if tokio::time::timeout_at(deadline, wait).await.is_err() {
            return Err(RpcError::new(
                code::FISCAL_IN_PROGRESS,
                "the fiscal printer has not finished; call again with the same job_id",
            )
            .with_data(json!({"job_id": job_id, "state": job.state})));
        }
        job = app
            .devices
            .journal
            .get(job_id.clone())
            .await
            .map_err(journal_error)?;
    }
}

// No deny_unknown_fields here: serde does not combine it with flatten;
// the flattened part is checked strictly as a ReceiptRequest.
#[derive(Deserialize)]
struct ReceiptParams {
    printer: String,
    job_id: String,
    #[serde(flatten)]
    receipt: Value,
}

/// Kopecks: the decimals of a fiscal money amount.
const MONEY_DECIMALS: u32 = 2;

/// Holds the amounts of a fiscal request to the same shape as the ledger's
/// (`api::amount`: digits and one point, no sign, no blanks or exponent,
/// at most `decimals` places), before serde's lenient decimal reader sees
/// them; `"+5"` or `" 5"` would otherwise pass. `top` are fields of the
/// request itself, `lists` fields of each element of a list; a field that
/// is absent or not a string is left to serde, which names it.
fn strict_amounts(
    v: &Value,
    top: &[(&str, u32)],
    lists: &[(&str, &[(&str, u32)])],
) -> Result<(), RpcError> {
    let check = |field: String, value: Option<&Value>, decimals: u32| match value {
        Some(Value::String(s)) => crate::api::amount::parse(s, false, decimals)
            .map(drop)
            .map_err(|m| RpcError::invalid_params(&field, &m)),
        _ => Ok(()),
    };
    for &(name, decimals) in top {
        check(name.to_owned(), v.get(name), decimals)?;
    }
    for &(list, fields) in lists {
        let Some(Value::Array(elements)) = v.get(list) else {
            continue;
        };
        for (i, e) in elements.iter().enumerate() {
            for &(name, decimals) in fields {
                check(format!("{list}[{i}].{name}"), e.get(name), decimals)?;
            }
        }
    }
    Ok(())
}

const PAYMENT_AMOUNTS: (&str, &[(&str, u32)]) = ("payments", &[("sum", MONEY_DECIMALS)]);

fn validate(r: &ReceiptRequest) -> Result<(), RpcError> {
    if r.items.is_empty() || r.items.len() > 500 {
        return Err(RpcError::invalid_params("items", "1 to 500 items"));
    }
    let mut total = rust_decimal::Decimal::ZERO;
    for (i, it) in r.items.iter().enumerate() {
        if it.name.trim().is_empty() || it.name.chars().count() > 128 {
            return Err(RpcError::invalid_params(
                &format!("items[{i}].name"),
                "1 to 128 characters",
            ));
        }
        if kopecks(it.price).is_none() {
            return Err(RpcError::invalid_params(
                &format!("items[{i}].price"),
                "a non-negative amount in kopecks",
            ));
        }
        if millionths(it.quantity).is_none() {
            return Err(RpcError::invalid_params(
                &format!("items[{i}].quantity"),
                "a positive quantity with at most 6 decimals",
            ));
        }
        if let Some(a) = it.amount
            && kopecks(a).is_none()
        {
            return Err(RpcError::invalid_params(
                &format!("items[{i}].amount"),
                "a non-negative amount in kopecks",
            ));
        }
        if !(1..=7).contains(&it.payment_method) {
            return Err(RpcError::invalid_params(
                &format!("items[{i}].payment_method"),
                "1 to 7",
            ));
        }
        if !(1..=19).contains(&it.payment_object) {
            return Err(RpcError::invalid_params(
                &format!("items[{i}].payment_object"),
                "1 to 19",
            ));
        }
        if let Some(code) = &it.marking_code
            && !marking_code_valid(code)
        {
            return Err(RpcError::invalid_params(
                &format!("items[{i}].marking_code"),
                "the code as scanned: 1 to 255 printable ASCII characters, GS as \\u001d",
            ));
        }
        if let Some(m) = it.measure
            && !MEASURES.contains(&m)
        {
            return Err(RpcError::invalid_params(
                &format!("items[{i}].measure"),
                "a tag 2108 measure code (0, 10-12, 20-22, 30-32, 40-42, 50-51, 70-73, 80-83, 255)",
            ));
        }
        if it.quantity.fract() != rust_decimal::Decimal::ZERO && it.measure.unwrap_or(0) == 0 {
            return Err(RpcError::invalid_params(
                &format!("items[{i}].measure"),
                "a fractional quantity needs its measure (FFD 1.2 tag 2108), e.g. 11 for kg",
            ));
        }
        total += it.amount.unwrap_or(it.price * it.quantity);
    }
    let mut paid = rust_decimal::Decimal::ZERO;
    for (i, p) in r.payments.iter().enumerate() {
        if kopecks(p.sum).is_none() {
            return Err(RpcError::invalid_params(
                &format!("payments[{i}].sum"),
                "a non-negative amount in kopecks",
            ));
        }
        paid += p.sum;
    }
    if paid < total.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
    {
        return Err(RpcError::invalid_params(
            "payments",
            format!("payments of {paid} do not cover the total of {total}"),
        ));
    }
    if let Some(c) = &r.customer_contact
        && !contact_valid(c)
    {
        return Err(RpcError::invalid_params(
            "customer_contact",
            "a phone as +7 and 10 digits, or an e-mail address",
        ));
    }
    validate_cashier(r.cashier.as_ref())?;
    for (field, lines) in [("pre_text", &r.pre_text), ("post_text", &r.post_text)] {
        if lines.len() > 100 || lines.iter().any(|l| l.chars().count() > 200) {
            return Err(RpcError::invalid_params(
                field,
                "at most 100 lines of 200 characters",
            ));
        }
    }
    Ok(())
}

/// Tag 2108 «мера количества» codes.
const MEASURES: [u8; 24] = [
    0, 10, 11, 12, 20, 21, 22, 30, 31, 32, 40, 41, 42, 50, 51, 70, 71, 72, 73, 80, 81, 82, 83, 255,
];

fn validate_cashier(c: Option<&Cashier>) -> Result<(), RpcError> {
    let Some(c) = c else { return Ok(()) };
    if c.name.trim().is_empty() || c.name.chars().count() > 64 {
        return Err(RpcError::invalid_params(
            "cashier.name",
            "1 to 64 characters",
        ));
    }
    if let Some(inn) = &c.inn
        && (inn.len() != 12 || !inn_valid(inn))
    {
        return Err(RpcError::invalid_params(
            "cashier.inn",
            "a person's 12-digit INN with valid check digits",
        ));
    }
    Ok(())
}

pub(super) async fn receipt(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: ReceiptParams = rpc::params(params)?;
    let item_amounts: &[(&str, u32)] = &[
        ("price", MONEY_DECIMALS),
        ("amount", MONEY_DECIMALS),
        ("quantity", crate::api::amount::QTY_DECIMALS),
    ];
    strict_amounts(&p.receipt, &[], &[("items", item_amounts), PAYMENT_AMOUNTS])?;
    let r: ReceiptRequest = rpc::params(Some(p.receipt.clone()))?;
    validate(&r)?;
    // The canonical form is what the journal compares on a repeat.
    let canonical = serde_json::to_value(&r).map_err(|e| RpcError::internal("fiscal", e))?;
    run(app, p.printer, p.job_id, "receipt", canonical).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShiftParams {
    printer: String,
    job_id: String,
}

pub(super) async fn shift_open(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: ShiftParams = rpc::params(params)?;
    run(app, p.printer, p.job_id, "shift_open", json!({})).await
}

pub(super) async fn shift_close(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: ShiftParams = rpc::params(params)?;
    run(app, p.printer, p.job_id, "shift_close", json!({})).await
}

pub(super) async fn x_report(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: ShiftParams = rpc::params(params)?;
    run(app, p.printer, p.job_id, "x_report", json!({})).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusParams {
    printer: String,
    job_id: Option<String>,
}

pub(super) async fn status(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: StatusParams = rpc::params(params)?;
    check_printer(app, &p.printer)?;
    let job = match p.job_id {
        Some(id) => Some(app.devices.journal.get(id).await.map_err(journal_error)?),
        None => None,
    };
    Ok(json!({"printer": p.printer, "status": app.devices.printer_status(&p.printer), "job": job}))
}

#[derive(Deserialize)]
struct CashParams {
    printer: String,
    job_id: String,
    #[serde(flatten)]
    body: Value,
}

/// `fiscal.cash_in` / `fiscal.cash_out`: 50h/51h, journaled like receipts.
pub(super) async fn cash(
    app: &Arc<App>,
    params: Option<Value>,
    kind: &'static str,
) -> Result<Value, RpcError> {
    let p: CashParams = rpc::params(params)?;
    strict_amounts(&p.body, &[("sum", MONEY_DECIMALS)], &[])?;
    let r: CashRequest = rpc::params(Some(p.body))?;
    if kopecks(r.sum).is_none_or(|k| k == 0) {
        return Err(RpcError::invalid_params(
            "sum",
            "a positive amount in kopecks",
        ));
    }
    let canonical = serde_json::to_value(&r).map_err(|e| RpcError::internal("fiscal", e))?;
    run(app, p.printer, p.job_id, kind, canonical).await
}

/// `fiscal.correction`: FF4Ah with its basis, journaled like receipts.
pub(super) async fn correction(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: CashParams = rpc::params(params)?;
    strict_amounts(
        &p.body,
        &[("sum", MONEY_DECIMALS)],
        &[PAYMENT_AMOUNTS, ("taxes", &[("sum", MONEY_DECIMALS)])],
    )?;
    let r: CorrectionRequest = rpc::params(Some(p.body))?;
    if kopecks(r.sum).is_none_or(|k| k == 0) {
        return Err(RpcError::invalid_params(
            "sum",
            "a positive amount in kopecks",
        ));
    }
    if !basis_date_valid(&r.basis.date) {
        return Err(RpcError::invalid_params(
            "basis.date",
            "a date as YYYY-MM-DD",
        ));
    }
    if r.basis.number.trim().is_empty() || r.basis.number.chars().count() > 32 {
        return Err(RpcError::invalid_params(
            "basis.number",
            "1 to 32 characters",
        ));
    }
    let mut paid = rust_decimal::Decimal::ZERO;
    for (i, pay) in r.payments.iter().enumerate() {
        if kopecks(pay.sum).is_none() {
            return Err(RpcError::invalid_params(
                &format!("payments[{i}].sum"),
                "a non-negative amount in kopecks",
            ));
        }
        paid += pay.sum;
    }
    if paid != r.sum {
        return Err(RpcError::invalid_params(
            "payments",
            format!("payments of {paid} must equal the sum of {}", r.sum),
        ));
    }
    for (i, t) in r.taxes.iter().enumerate() {
        if kopecks(t.sum).is_none() || t.sum > r.sum {
            return Err(RpcError::invalid_params(
                &format!("taxes[{i}].sum"),
                "a non-negative amount in kopecks, at most the sum",
            ));
        }
    }
    validate_cashier(r.cashier.as_ref())?;
    let canonical = serde_json::to_value(&r).map_err(|e| RpcError::internal("fiscal", e))?;
    run(app, p.printer, p.job_id, "correction", canonical).await
}
