//! `programme.info`: the programme's switches as the POS shows them (is it
//! running, its window, the customer agreement's link, what a cashier may
//! set on one order).

use std::sync::Arc;

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::api::rpc::RpcError;
use crate::app::App;
use crate::ledger::rules::{RulesError, switches};

/// The programme this till runs (in central mode the till's copy, which
/// start-up compares with the central ledger's), and whether it earns and
/// spends now.
pub(super) fn info(app: &Arc<App>) -> Result<Value, RpcError> {
    let p = app.ledger.programme();
    let reason = match switches::check_active(p, OffsetDateTime::now_utc()) {
        Ok(()) => None,
        Err(RulesError::ProgrammeInactive { reason }) => Some(reason),
        Err(e) => return Err(RpcError::internal("programme", e)),
    };
    let pct = |v: Option<rust_decimal::Decimal>| v.map(|v| v.to_string());
    Ok(json!({
        "name": p.name,
        "enabled": p.enabled,
        "active_from": p.active_from,
        "active_until": p.active_until,
        "active": reason.is_none(),
        "inactive_reason": reason,
        "agreement_url": p.agreement_url,
        "accrue_on_points_part": p.accrue_on_points_part,
        "return_spent_points_on_refund": p.return_spent_points_on_refund,
        "cashier_limits": {
            "max_accrual_percent": pct(p.cashier_limits.max_accrual_percent),
            "max_cap_percent": pct(p.cashier_limits.max_cap_percent),
        },
    }))
}
