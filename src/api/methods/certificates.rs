//! `certificate.*`: gift certificates, a balance in money sold at a till
//! and spent as payment (`crate::ledger::certs`). A code is checked here
//! first (shape and check symbol), so a mistyped one is refused without a
//! call to the books, central or not.

use std::sync::Arc;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::sale::{check_key, reply};
use crate::api::amount;
use crate::api::errors::cert_error;
use crate::api::rpc::{self, RpcError};
use crate::app::App;
use crate::ledger::certs::{CertRef, MAX_DAYS, Validity, code};
use crate::redact::Secret;

/// Validity of a certificate sold without `valid_days` or `expires_at`.
pub const DEFAULT_DAYS: u32 = 365;
/// Longest `receipt_id`.
const MAX_RECEIPT: usize = 128;

fn checked_code(raw: &Secret) -> Result<Secret, RpcError> {
    code::normalise(raw.expose())
        .map(Secret::new)
        .map_err(|e| RpcError::invalid_params("code", e))
}

fn receipt(r: Option<String>) -> Result<Option<String>, RpcError> {
    match r {
        Some(r) if r.trim().is_empty() || r.chars().count() > MAX_RECEIPT => Err(
            RpcError::invalid_params("receipt_id", format!("1 to {MAX_RECEIPT} characters")),
        ),
        r => Ok(r),
    }
}

/// Exactly one of `code` and `certificate` (id).
fn target(code: Option<Secret>, id: Option<i64>) -> Result<CertRef, RpcError> {
    match (code, id) {
        (Some(c), None) => Ok(CertRef::Code(checked_code(&c)?)),
        (None, Some(id)) => Ok(CertRef::Id(id)),
        _ => Err(RpcError::invalid_params(
            "code",
            "give exactly one of code and certificate",
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueParams {
    idempotency_key: String,
    #[serde(deserialize_with = "amount::unsigned")]
    nominal: Decimal,
    valid_days: Option<u32>,
    expires_at: Option<String>,
    /// A pre-printed code to import instead of minting one.
    code: Option<Secret>,
    receipt_id: Option<String>,
}

/// `certificate.issue`: sells a certificate; the code is in this answer
/// only.
pub(super) async fn issue(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: IssueParams = rpc::params(params)?;
    check_key(&p.idempotency_key)?;
    let validity = match (p.valid_days, &p.expires_at) {
        (Some(_), Some(_)) => {
            return Err(RpcError::invalid_params(
                "expires_at",
                "give at most one of valid_days and expires_at",
            ));
        }
        (Some(d), None) if !(1..=MAX_DAYS).contains(&d) => {
            return Err(RpcError::invalid_params(
                "valid_days",
                format!("1 to {MAX_DAYS}"),
            ));
        }
        (Some(d), None) => Validity::Days(d),
        (None, Some(s)) => {
            Validity::Until(OffsetDateTime::parse(s, &Rfc3339).map_err(|e| {
                RpcError::invalid_params("expires_at", format!("not RFC 3339: {e}"))
            })?)
        }
        (None, None) => Validity::Days(DEFAULT_DAYS),
    };
    let code = p.code.as_ref().map(checked_code).transpose()?;
    let receipt_id = receipt(p.receipt_id)?;
    let r = app
        .ledger
        .cert_issue(p.idempotency_key, p.nominal, validity, code, receipt_id)
        .await
        .map_err(cert_error)?;
    if !r.replayed {
        app.bus.publish(
            "certificate.changed",
            json!({"kind": "issue", "certificate": r.certificate}),
        );
    }
    let mut v = reply(&r);
    // A repeat cannot show the code again: say so rather than leave a
    // POS to print a null.
    if r.replayed {
        v["replayed"] = json!(true);
    }
    Ok(v)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetParams {
    code: Option<Secret>,
    certificate: Option<i64>,
}

/// `certificate.get`: balance and state by code (or id).
pub(super) async fn get(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: GetParams = rpc::params(params)?;
    let by = target(p.code, p.certificate)?;
    let v = app.ledger.cert_get(by).await.map_err(cert_error)?;
    Ok(json!(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedeemParams {
    idempotency_key: String,
    code: Secret,
    #[serde(deserialize_with = "amount::unsigned")]
    amount: Decimal,
    receipt_id: Option<String>,
}

/// `certificate.redeem`: pays `amount` with a certificate.
pub(super) async fn redeem(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: RedeemParams = rpc::params(params)?;
    check_key(&p.idempotency_key)?;
    let by = CertRef::Code(checked_code(&p.code)?);
    let receipt_id = receipt(p.receipt_id)?;
    let r = crate::metrics::timed_commit(app.ledger.cert_redeem(
        p.idempotency_key,
        by,
        p.amount,
        receipt_id,
    ))
    .await
    .map_err(cert_error)?;
    if !r.replayed {
        app.bus.publish(
            "certificate.changed",
            json!({"kind": "redeem", "operation": r.operation, "amount": r.amount.to_string(), "certificate": r.certificate}),
        );
    }
    Ok(reply(&r))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundParams {
    idempotency_key: String,
    redemption: i64,
    #[serde(default, deserialize_with = "amount::unsigned_opt")]
    amount: Option<Decimal>,
    receipt_id: Option<String>,
}

/// `certificate.refund`: a return gives a redemption's money back to its
/// certificate.
pub(super) async fn refund(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: RefundParams = rpc::params(params)?;
    check_key(&p.idempotency_key)?;
    let receipt_id = receipt(p.receipt_id)?;
    let r = app
        .ledger
        .cert_refund(p.idempotency_key, p.redemption, p.amount, receipt_id)
        .await
        .map_err(cert_error)?;
    if !r.replayed {
        app.bus.publish(
            "certificate.changed",
            json!({"kind": "refund", "operation": r.operation, "amount": r.amount.to_string(), "certificate": r.certificate}),
        );
    }
    Ok(reply(&r))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockParams {
    idempotency_key: String,
    code: Option<Secret>,
    certificate: Option<i64>,
}

/// `certificate.block` and `certificate.unblock`.
pub(super) async fn block(
    app: &Arc<App>,
    params: Option<Value>,
    blocked: bool,
) -> Result<Value, RpcError> {
    let p: BlockParams = rpc::params(params)?;
    check_key(&p.idempotency_key)?;
    let by = target(p.code, p.certificate)?;
    let v = app
        .ledger
        .cert_block(p.idempotency_key, by, blocked)
        .await
        .map_err(cert_error)?;
    app.bus.publish(
        "certificate.changed",
        json!({"kind": if blocked { "block" } else { "unblock" }, "certificate": v}),
    );
    Ok(json!(v))
}
