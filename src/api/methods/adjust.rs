//! `ledger.adjust`: manual points an operator books by card number or by
//! account (`account.get` masks numbers, so an operator may only know the
//! account), optionally tied to a past receipt of that account.

use std::sync::Arc;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};

use super::accounts::account_error;
use super::sale::{check_key, ledger_error, reply};
use crate::api::amount;
use crate::api::rpc::{self, RpcError, code};
use crate::app::App;
use crate::ledger::LedgerError;
use crate::ledger::accounts::{AccountError, Lookup};
use crate::redact::CardNumber;

/// Longest `receipt` (as `find_sale` takes it).
const MAX_RECEIPT: usize = 128;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdjustParams {
    idempotency_key: String,
    number: Option<CardNumber>,
    account_id: Option<i64>,
    /// Absent for a missed accrual (`lines`): the ledger computes it.
    #[serde(default, deserialize_with = "amount::signed_opt")]
    amount: Option<Decimal>,
    reason: String,
    /// RFC 3339; default: the programme's expiry.
    expires_at: Option<String>,
    /// The POS's receipt id of a past sale of this account.
    receipt: Option<String>,
    /// Books on a blocked or pending account, or a blocked or lost card.
    #[serde(default, rename = "override")]
    force: bool,
    /// A missed accrual: the lines of the past receipt `receipt`, which the
    /// ledger never saw (the till lost its link).
    lines: Option<Vec<super::sale::WireLine>>,
    /// RFC 3339: when the missed sale was made (with `lines`).
    sold_at: Option<String>,
}

/// A manual accrual or deduction, by `number` or `account_id`.
pub(super) async fn adjust(
    app: &Arc<App>,
    session: &Arc<crate::api::session::Session>,
    params: Option<Value>,
) -> Result<Value, RpcError> {
    let p: AdjustParams = rpc::params(params)?;
    check_key(&p.idempotency_key)?;
    let missed = match (p.amount, p.lines.is_some()) {
        (Some(_), true) => {
            return Err(RpcError::invalid_params(
                "amount",
                "give amount or lines (a missed accrual), not both",
            ));
        }
        (None, false) => {
            return Err(RpcError::invalid_params(
                "amount",
                "required (or lines, for a missed accrual)",
            ));
        }
        (Some(a), false)
            if a.is_zero() || a.abs() > Decimal::from(1_000_000_000) || a.scale() > 4 =>
        {
            return Err(RpcError::invalid_params(
                "amount",
                "a non-zero amount within ±1e9 with at most 4 decimal places",
            ));
        }
        (_, missed) => missed,
    };
    if !missed && p.sold_at.is_some() {
        return Err(RpcError::invalid_params(
            "sold_at",
            "only with lines (a missed accrual)",
        ));
    }
    if p.reason.trim().is_empty() || p.reason.len() > 256 {
        return Err(RpcError::invalid_params("reason", "1 to 256 characters"));
    }
    let expires_at = match &p.expires_at {
        None => None,
        Some(s) => Some(
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|e| RpcError::invalid_params("expires_at", e))?,
        ),
    };
    let receipt = match p.receipt.as_deref().map(str::trim) {
        None => None,
        Some(r) if r.is_empty() || r.chars().count() > MAX_RECEIPT => {
            return Err(RpcError::invalid_params(
                "receipt",
                format!("1 to {MAX_RECEIPT} characters"),
            ));
        }
        Some(r) => Some(r.to_owned()),
    };
    let (account, number) = target(app, p.number, p.account_id, p.force).await?;
    // Who, without the TCP source port: a retry on a new connection must
    // compare equal under the same idempotency key.
    let operator = match &session.peer {
        crate::api::session::Peer::Unix { uid } => {
            format!("unix uid {}", uid.map_or("?".into(), |u| u.to_string()))
        }
        crate::api::session::Peer::Tcp(addr) => format!("tcp {}", addr.ip()),
    };
    if missed {
        let Some(receipt) = receipt else {
            return Err(RpcError::invalid_params(
                "receipt",
                "a missed accrual names its receipt",
            ));
        };
        let sold_at = match p.sold_at.as_deref() {
            None => {
                return Err(RpcError::invalid_params(
                    "sold_at",
                    "a missed accrual says when the sale was made",
                ));
            }
            Some(s) => {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| RpcError::invalid_params("sold_at", e))?
            }
        };
        let lines = super::sale::sale_lines(p.lines.unwrap_or_default())?;
        let r = crate::metrics::timed_commit(app.ledger.accrue_missed(
            p.idempotency_key,
            number.expose().to_owned(),
            receipt.clone(),
            lines,
            sold_at,
            p.reason,
            operator,
            expires_at,
        ))
        .await
        .map_err(ledger_error)?;
        if !r.replayed {
            app.bus.publish(
                "ledger.transaction",
                json!({
                    "kind": "adjust",
                    "transaction": r.transaction,
                    "account": r.account,
                    "amount": r.amount.to_string(),
                    "receipt": receipt,
                    "balance_after": r.balance_after.to_string(),
                }),
            );
        }
        return Ok(reply(&r));
    }
    let amount = p.amount.unwrap_or_default();
    let mut reason = p.reason;
    if let Some(receipt) = receipt {
        // The back office's wording: history and export show the tie.
        let txn = tied_sale(app, &receipt, account).await?;
        reason.push_str(&format!(" (receipt {receipt}, transaction {txn})"));
    }
    let r = crate::metrics::timed_commit(app.ledger.adjust(
        p.idempotency_key,
        number.expose().to_owned(),
        amount,
        reason,
        operator,
        expires_at,
    ))
    .await
    .map_err(ledger_error)?;
    if r.replayed {
        return Ok(reply(&r));
    }
    app.bus.publish(
        "ledger.transaction",
        json!({
            "kind": "adjust",
            "transaction": r.transaction,
            "account": r.account,
            "amount": r.amount.to_string(),
            "balance_after": r.balance_after.to_string(),
        }),
    );
    Ok(reply(&r))
}

/// The account and the card to book on, its status checked: a blocked or
/// pending account, or a blocked or lost card, is refused (`2002`, as a
/// sale is) unless `force`.
async fn target(
    app: &App,
    number: Option<CardNumber>,
    account_id: Option<i64>,
    force: bool,
) -> Result<(i64, CardNumber), RpcError> {
    let inactive = |status: String| ledger_error(LedgerError::Inactive(status));
    match (number, account_id) {
        (Some(n), None) => {
            let digits = n.expose();
            if !(4..=32).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(RpcError::invalid_params(
                    "number",
                    "a card number is 4 to 32 digits",
                ));
            }
            let view = match app
                .ledger
                .get_account(Lookup::Card(digits.to_owned()))
                .await
            {
                Ok(v) => v,
                // The ledger's own "unknown card", as before, also when
                // the central ledger already mapped it.
                Err(e) => match account_error(e) {
                    e if e.code == code::UNKNOWN_CARD => {
                        return Err(ledger_error(LedgerError::UnknownCard));
                    }
                    e => return Err(e),
                },
            };
            let cards = app
                .ledger
                .account_cards(view.account)
                .await
                .map_err(account_error)?;
            let card = cards.iter().find(|c| c.number == digits);
            if !force {
                if let Some(c) = card.filter(|c| c.status != "active") {
                    return Err(inactive(c.status.clone()));
                }
                if view.status != "active" {
                    return Err(inactive(view.status));
                }
            }
            Ok((view.account, n))
        }
        (None, Some(id)) => {
            let view =
                app.ledger.get_account(Lookup::Account(id)).await.map_err(
                    |e| match account_error(e) {
                        // Also as the central ledger answers it, already mapped.
                        e if e.code == code::UNKNOWN_CARD => {
                            RpcError::new(code::UNKNOWN_CARD, "no such account")
                                .with_data(json!({ "field": "account_id" }))
                        }
                        e => e,
                    },
                )?;
            if !force && view.status != "active" {
                return Err(inactive(view.status));
            }
            // The back office's path: the account's booking card.
            match app.ledger.booking_card(id).await.map_err(account_error) {
                Ok(n) => Ok((id, CardNumber::new(n))),
                // Overridden, an account whose cards are all blocked is
                // still booked on its first card (points are the account's).
                // By code: the central ledger's answer comes already mapped.
                Err(e) if force && e.code == code::CARD_INACTIVE => {
                    let cards = app.ledger.account_cards(id).await.map_err(account_error)?;
                    match cards.into_iter().next() {
                        Some(c) => Ok((id, CardNumber::new(c.number))),
                        None => Err(inactive("without a card".into())),
                    }
                }
                Err(e) => Err(e),
            }
        }
        _ => Err(RpcError::invalid_params(
            "account_id",
            "give exactly one of number and account_id",
        )),
    }
}

/// The transaction of the sale `receipt` of `account`: `2006` with
/// `data.field` `receipt` when there is none, or it is another account's.
async fn tied_sale(app: &App, receipt: &str, account: i64) -> Result<i64, RpcError> {
    let not_his = || {
        RpcError::new(
            code::UNKNOWN_SALE,
            "no sale with this receipt on this account",
        )
        .with_data(json!({ "field": "receipt" }))
    };
    match app.ledger.find_sale(receipt.to_owned()).await {
        Ok(Some(s)) if s.account == account => Ok(s.transaction),
        Ok(_) => Err(not_his()),
        Err(AccountError::BadQuery(max)) => Err(RpcError::invalid_params(
            "receipt",
            format!("1 to {max} characters"),
        )),
        Err(e) => Err(account_error(e)),
    }
}
