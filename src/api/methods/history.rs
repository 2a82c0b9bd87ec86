//! `account.history`: an account's transactions, newest first, one page at
//! a time.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use super::sale::{card, ledger_error};
use crate::api::rpc::{self, RpcError};
use crate::app::App;
use crate::ledger::AccountRef;
use crate::ledger::embedded::HISTORY_MAX_LIMIT;
use crate::redact::CardNumber;

/// Transactions per page when the client does not say.
const DEFAULT_LIMIT: u32 = 50;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryParams {
    number: Option<CardNumber>,
    account: Option<i64>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
    limit: Option<u32>,
}

/// The cursor is the last transaction id of the previous page, as a
/// string: clients must treat it as opaque so the encoding can change
/// (e.g. to a central ledger's ids) without breaking them.
fn parse_cursor(c: &str) -> Result<i64, RpcError> {
    c.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| RpcError::invalid_params("cursor", "not a cursor this daemon returned"))
}

pub(super) async fn history(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: HistoryParams = rpc::params(params)?;
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=HISTORY_MAX_LIMIT).contains(&limit) {
        return Err(RpcError::invalid_params(
            "limit",
            format!("1 to {HISTORY_MAX_LIMIT}"),
        ));
    }
    let cursor = p.cursor.as_deref().map(parse_cursor).transpose()?;
    let (who, masked) = match (p.number, p.account) {
        (Some(n), None) => {
            // Validated like every other typed card number.
            let c = card(app, None, Some(n))?;
            (
                AccountRef::Number(c.number.expose().to_owned()),
                Some(c.number.masked()),
            )
        }
        (None, Some(a)) => (AccountRef::Account(a), None),
        _ => {
            return Err(RpcError::invalid_params(
                "number",
                "give exactly one of number and account",
            ));
        }
    };
    let page = app
        .ledger
        .history(who, cursor, limit)
        .await
        .map_err(ledger_error)?;
    let mut out = json!(page);
    out["next_cursor"] = json!(page.next_cursor.map(|c| c.to_string()));
    if let Some(m) = masked {
        out["card_masked"] = json!(m);
    }
    Ok(out)
}
