//! The central ledger's wire: one table of methods (`ledger_methods!`)
//! from which the till's client ([`super::remote::Central`]) and the
//! server's [`dispatch`] are both generated, so the two cannot disagree on
//! a name, an argument or a type.
//!
//! `POST {base}/v1/{method}` carries a JSON object of the method's named
//! arguments (the Rust parameter names of the [`Ledger`] method); `200`
//! carries the result's JSON. An error is `{"error": {"code", "message",
//! "data"}}` with the till's own JSON-RPC code (`crate::api::errors`), so a
//! till passes it on unchanged.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use super::RemoteError;
use super::accounts::AccountError;
use super::certs::CertError;
use super::embedded::LedgerError;
use super::tiers::TierError;
use super::{Ledger, SpendError};
use crate::api::errors;
use crate::api::rpc::{RpcError, code};

// The types the table names, for its expansion here.
use super::accounts::{
    AccountView, Activated, CardRow, CodeWordCheck, GroupPage, GroupView, Issued, Lookup, LotView,
    PendingCode, Registered, Registration, SaleFound, SearchPage, Update,
};
use super::certs::{CertIssued, CertMoved, CertRef, CertView, Validity};
use super::embedded::{
    AccountRef, AccountSummary, AdjustResult, CommitResult, HistoryPage, OverridesResult,
    RefundResult, SaleRef,
};
use super::people::{BirthdayRun, ConsentChange, ConsentView, Erased};
use super::report::{Report, ReportQuery};
use super::rules::lines::ReturnLine;
use super::rules::{AccountOverrides, OrderTerms, Quote, SaleLine};
use super::tiers::{TierChange, TierView};
use crate::redact::Secret;
use rust_decimal::Decimal;
use time::OffsetDateTime;

/// The wire's methods, handed to `$gen` as one list of
/// `"wire/name" Class trait_method(args) -> Result, Error;`. `Class` says
/// what a client may retry: `Read` and `Keyed` (an idempotency key makes a
/// repeat harmless) on connect errors and timeouts, `Write` never.
/// Attributes on an argument are its serde attributes on both sides
/// (secrets are written only through `crate::redact::expose`).
macro_rules! ledger_methods {
    ($gen:ident) => {
        $gen! {
            "resolve" Read resolve(number: String) -> Option<AccountSummary>, LedgerError;
            "quote" Read quote(number: String, lines: Vec<SaleLine>, redeem: Decimal)
                -> (Option<AccountSummary>, Quote), LedgerError;
            "commit" Keyed commit(
                key: String, number: String, receipt_id: String, lines: Vec<SaleLine>,
                redeem: Decimal,
                #[serde(default, skip_serializing_if = "Option::is_none")] cashier: Option<String>
            ) -> CommitResult, LedgerError;
            "quote_terms" Read quote_terms(
                number: String, lines: Vec<SaleLine>, redeem: Decimal, terms: OrderTerms
            ) -> (Option<AccountSummary>, Quote), LedgerError;
            "commit_terms" Keyed commit_terms(
                key: String, number: String, receipt_id: String, lines: Vec<SaleLine>,
                redeem: Decimal,
                #[serde(default, skip_serializing_if = "Option::is_none")] cashier: Option<String>,
                terms: OrderTerms
            ) -> CommitResult, LedgerError;
            "replay_commit" Read replay_commit(
                key: String, receipt_id: String, lines: Vec<SaleLine>, redeem: Decimal
            ) -> Option<(String, CommitResult)>, LedgerError;
            "refund" Keyed refund(
                key: String, sale: SaleRef, amount: Option<Decimal>,
                #[serde(default, skip_serializing_if = "Option::is_none")] cashier: Option<String>,
                #[serde(default, skip_serializing_if = "Option::is_none")]
                lines: Option<Vec<ReturnLine>>
            ) -> RefundResult, LedgerError;
            "offline/commit" Keyed commit_at(
                key: String, number: String, receipt_id: String, lines: Vec<SaleLine>,
                redeem: Decimal,
                #[serde(with = "time::serde::rfc3339")] at: OffsetDateTime,
                #[serde(default, skip_serializing_if = "Option::is_none")] cashier: Option<String>
            ) -> CommitResult, LedgerError;
            "offline/refund" Keyed refund_at(
                key: String, sale: SaleRef, amount: Option<Decimal>,
                #[serde(with = "time::serde::rfc3339")] at: OffsetDateTime,
                #[serde(default, skip_serializing_if = "Option::is_none")] cashier: Option<String>,
                #[serde(default, skip_serializing_if = "Option::is_none")]
                lines: Option<Vec<ReturnLine>>
            ) -> RefundResult, LedgerError;
            "adjust" Keyed adjust(
                key: String, number: String, amount: Decimal, reason: String, operator: String,
                #[serde(default, with = "time::serde::rfc3339::option")]
                expires_at: Option<OffsetDateTime>
            ) -> AdjustResult, LedgerError;
            "accrue_missed" Keyed accrue_missed(
                key: String, number: String, receipt: String, lines: Vec<SaleLine>,
                #[serde(with = "time::serde::rfc3339")] sold_at: OffsetDateTime,
                reason: String, operator: String,
                #[serde(default, with = "time::serde::rfc3339::option")]
                expires_at: Option<OffsetDateTime>
            ) -> AdjustResult, LedgerError;
            "history" Read history(who: AccountRef, cursor: Option<i64>, limit: u32)
                -> HistoryPage, LedgerError;
            "set_overrides" Write set_overrides(
                key: Option<String>, account: i64, overrides: AccountOverrides
            ) -> OverridesResult, LedgerError;
            "accounts/register" Write register(r: Registration) -> Registered, AccountError;
            "accounts/activate" Write activate(
                account: i64,
                #[serde(serialize_with = "crate::redact::expose")] code: Secret
            ) -> Activated, AccountError;
            "accounts/new_code" Write new_code(account: i64) -> PendingCode, AccountError;
            "accounts/code_delivered" Write code_delivered(account: i64) -> (), AccountError;
            "accounts/update" Write update_account(account: i64, u: Update)
                -> AccountView, AccountError;
            "accounts/verify_code_word" Write verify_code_word(
                account: i64,
                #[serde(serialize_with = "crate::redact::expose")] word: Secret
            ) -> CodeWordCheck, AccountError;
            "accounts/issue_card" Write issue_card(
                account: i64, card_number: Option<String>,
                #[serde(default, serialize_with = "crate::redact::expose")] secret: Option<Secret>
            ) -> Issued, AccountError;
            "accounts/get" Read get_account(by: Lookup) -> AccountView, AccountError;
            "accounts/search" Read search_accounts(query: String, cursor: Option<i64>, limit: u32)
                -> SearchPage, AccountError;
            "accounts/lots" Read lots(account: i64) -> Vec<LotView>, AccountError;
            "accounts/sale" Read find_sale(receipt_id: String) -> Option<SaleFound>, AccountError;
            "accounts/cards" Read account_cards(account: i64) -> Vec<CardRow>, AccountError;
            "accounts/set_card_status" Write set_card_status(number: String, status: String)
                -> (), AccountError;
            "accounts/regenerate_secret" Write regenerate_secret(number: String)
                -> String, AccountError;
            "accounts/verify_secret" Write verify_secret(
                number: String,
                #[serde(serialize_with = "crate::redact::expose")] presented: Secret
            ) -> (), AccountError;
            "accounts/new_redeem_code" Write new_redeem_code(account: i64)
                -> PendingCode, AccountError;
            "accounts/redeem_code_delivered" Write redeem_code_delivered(account: i64)
                -> (), AccountError;
            "accounts/use_redeem_code" Write use_redeem_code(
                account: i64,
                #[serde(serialize_with = "crate::redact::expose")] code: Secret
            ) -> (), AccountError;
            "commit_with_code" Keyed commit_with_code(
                key: String, account: i64,
                #[serde(serialize_with = "crate::redact::expose")] code: Secret,
                receipt_id: String, lines: Vec<SaleLine>, redeem: Decimal,
                #[serde(default, skip_serializing_if = "Option::is_none")] cashier: Option<String>,
                #[serde(default, skip_serializing_if = "OrderTerms::is_empty")] terms: OrderTerms
            ) -> (String, CommitResult), SpendError;
            "accounts/booking_card" Read booking_card(account: i64) -> String, AccountError;
            "groups/create" Write create_group(name: String, description: Option<String>)
                -> GroupView, AccountError;
            "groups/list" Read list_groups() -> Vec<GroupView>, AccountError;
            "groups/page" Read groups_page(after: Option<String>, limit: u32)
                -> GroupPage, AccountError;
            "groups/delete" Write delete_group(name: String, #[serde(default)] force: bool)
                -> i64, AccountError;
            "groups/set" Write set_groups(account: i64, groups: Vec<String>)
                -> Vec<String>, AccountError;
            "tiers/evaluate" Write evaluate_tiers(
                account: Option<i64>,
                #[serde(with = "time::serde::rfc3339")] now: OffsetDateTime
            ) -> (usize, Vec<TierChange>), TierError;
            "tiers/history" Read tier_history(
                account: i64, limit: u32,
                #[serde(with = "time::serde::rfc3339")] now: OffsetDateTime
            ) -> (TierView, Vec<TierChange>), TierError;
            "reports/run" Read report(
                q: ReportQuery,
                #[serde(with = "time::serde::rfc3339")] now: OffsetDateTime
            ) -> Report, LedgerError;
            // Never retried by the client: a repeat of the key cannot show
            // the code again (the books keep its digest only).
            "certificates/issue" Write cert_issue(
                key: String, nominal: Decimal, validity: Validity,
                #[serde(default, serialize_with = "crate::redact::expose")] code: Option<Secret>,
                receipt_id: Option<String>
            ) -> CertIssued, CertError;
            "certificates/get" Read cert_get(by: CertRef) -> CertView, CertError;
            "certificates/redeem" Keyed cert_redeem(
                key: String, by: CertRef, amount: Decimal, receipt_id: Option<String>
            ) -> CertMoved, CertError;
            "certificates/refund" Keyed cert_refund(
                key: String, redemption: i64, amount: Option<Decimal>, receipt_id: Option<String>
            ) -> CertMoved, CertError;
            "certificates/block" Keyed cert_block(key: String, by: CertRef, blocked: bool)
                -> CertView, CertError;
            "promo/quote" Read quote_promo(
                number: String, lines: Vec<SaleLine>, redeem: Decimal, promo_code: String
            ) -> (Option<AccountSummary>, Quote), LedgerError;
            "promo/commit" Keyed commit_promo(
                key: String, number: String, receipt_id: String, lines: Vec<SaleLine>,
                redeem: Decimal,
                #[serde(default, skip_serializing_if = "Option::is_none")] cashier: Option<String>,
                promo_code: String
            ) -> CommitResult, LedgerError;
            "promo/uses" Read promo_uses() -> Vec<(String, i64)>, LedgerError;
            "people/birthday_run" Write birthday_run(
                #[serde(with = "time::serde::rfc3339")] now: OffsetDateTime
            ) -> BirthdayRun, LedgerError;
            "people/consent" Write set_consent(account: i64, change: ConsentChange)
                -> ConsentView, AccountError;
            "people/consents" Read consents(account: i64) -> ConsentView, AccountError;
            "people/erase" Write erase_account(account: i64, operator: String)
                -> Erased, AccountError;
            "messages/burning" Read burning(
                #[serde(with = "time::serde::rfc3339")] from: OffsetDateTime,
                #[serde(with = "time::serde::rfc3339")] until: OffsetDateTime
            ) -> Vec<crate::ledger::people::Burning>, LedgerError;
        }
    };
}
pub(crate) use ledger_methods;

/// An error answer of the central service: the HTTP status and the body's
/// `error` object. Plain data; the service turns it into a response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireError {
    /// HTTP status.
    pub status: u16,
    /// The till's JSON-RPC error code.
    pub code: i64,
    /// For humans.
    pub message: String,
    /// For programs (`null` when none).
    pub data: Value,
}

impl WireError {
    /// The response body: `{"error": {"code", "message", "data"}}`.
    pub fn body(&self) -> Value {
        json!({ "error": { "code": self.code, "message": self.message, "data": self.data } })
    }

    /// Bad arguments, naming the field.
    pub fn bad_args(field: &str, message: impl std::fmt::Display) -> Self {
        RpcError::invalid_params(field, message).into()
    }
}

impl From<RpcError> for WireError {
    fn from(e: RpcError) -> Self {
        let status = match e.code {
            code::PARSE_ERROR | code::INVALID_REQUEST | code::INVALID_PARAMS => 400,
            code::BAD_TOKEN | code::LOGIN_REQUIRED => 401,
            code::FORBIDDEN => 403,
            code::METHOD_NOT_FOUND => 404,
            code::IDEMPOTENCY_CONFLICT => 409,
            code::BUSY => 429,
            code::INTERNAL_ERROR => 500,
            code::LEDGER_UNREACHABLE => 503,
            // The programme's refusals (unknown card, balance, codes...).
            _ => 422,
        };
        WireError {
            status,
            code: e.code,
            message: e.message,
            data: e.data.unwrap_or(Value::Null),
        }
    }
}

/// A core error as the till's JSON-RPC error.
trait ToRpc {
    fn to_rpc(self) -> RpcError;
}

impl ToRpc for LedgerError {
    fn to_rpc(self) -> RpcError {
        errors::ledger_error(self)
    }
}

impl ToRpc for AccountError {
    fn to_rpc(self) -> RpcError {
        // The till publishes `card.locked` once, for the attempt that
        // locked the card: that fact travels in `data.just_locked`, which
        // the till takes out again before it answers the POS.
        let just = matches!(
            self,
            AccountError::Locked {
                just_locked: true,
                ..
            }
        );
        let mut e = errors::account_error(self);
        if just && let Some(Value::Object(data)) = e.data.as_mut() {
            data.insert("just_locked".into(), Value::Bool(true));
        }
        e
    }
}

impl ToRpc for SpendError {
    fn to_rpc(self) -> RpcError {
        match self {
            SpendError::Account(e) => e.to_rpc(),
            SpendError::Ledger(e) => e.to_rpc(),
        }
    }
}

impl ToRpc for CertError {
    fn to_rpc(self) -> RpcError {
        errors::cert_error(self)
    }
}

impl ToRpc for TierError {
    fn to_rpc(self) -> RpcError {
        errors::tier_error(self)
    }
}

/// The named arguments of a call; a field that is missing, unknown or of
/// the wrong type is named.
fn parse_args<T: DeserializeOwned>(args: Value) -> Result<T, WireError> {
    let args = if args.is_null() { json!({}) } else { args };
    if !args.is_object() {
        return Err(WireError::bad_args("", "a JSON object of named arguments"));
    }
    serde_path_to_error::deserialize(args).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // A missing or unknown field has no path; serde names it in `...`.
        let field = if path == "." {
            inner.split('`').nth(1).unwrap_or_default().to_owned()
        } else {
            path
        };
        WireError::bad_args(&field, inner)
    })
}

fn to_result<T: Serialize>(r: &T) -> Result<Value, WireError> {
    serde_json::to_value(r).map_err(|e| RpcError::internal("wire", e).into())
}

macro_rules! dispatch_table {
    ($( $wire:literal $class:ident $method:ident (
        $( $(#[$attr:meta])* $arg:ident : $ty:ty ),* $(,)?
    ) -> $ret:ty, $err:ty; )*) => {
        /// Every method the wire serves, by its name.
        pub const METHODS: &[&str] = &[$($wire),*];

        async fn dispatch_table(
            ledger: &dyn Ledger,
            method: &str,
            args: Value,
        ) -> Result<Value, WireError> {
            match method {
                $( $wire => {
                    #[derive(Serialize, Deserialize)]
                    #[serde(deny_unknown_fields)]
                    struct Args { $( $(#[$attr])* $arg: $ty, )* }
                    #[allow(unused_variables)]
                    let a: Args = parse_args(args)?;
                    let r: $ret = ledger
                        .$method($(a.$arg),*)
                        .await
                        .map_err(|e| WireError::from(ToRpc::to_rpc(e)))?;
                    to_result(&r)
                } )*
                _ => Err(RpcError::new(
                    code::METHOD_NOT_FOUND,
                    format!("no method {method:?}"),
                )
                .into()),
            }
        }
    };
}

ledger_methods!(dispatch_table);

/// Runs one wire call against `ledger` (the central service's [`Ledger`]
/// for the authenticated till): `method` is the path after `/v1/`, `args`
/// the request body. Unknown method: 404 (-32601); bad arguments: 400
/// (-32602) naming the field; the ledger's refusals with their codes.
/// Arguments are never logged: some are secrets.
pub async fn dispatch(ledger: &dyn Ledger, method: &str, args: Value) -> Result<Value, WireError> {
    dispatch_table(ledger, method, args).await
}

/// [`dispatch`] for the authenticated till `terminal`: its idempotency key
/// (the `key` argument) becomes `"{terminal}:{key}"`, so a till can replay
/// only its own operations and never meet another till's keys (nor the
/// ledger's own, such as `welcome:`). The central service calls this one.
pub async fn dispatch_as(
    ledger: &dyn Ledger,
    terminal: &str,
    method: &str,
    mut args: Value,
) -> Result<Value, WireError> {
    if let Some(Value::String(k)) = args.get_mut("key") {
        *k = format!("{terminal}:{k}");
    }
    dispatch(ledger, method, args).await
}

/// The body of `GET /v1/programme`: the programme `ledger` runs, so a
/// till can check it agrees.
pub fn programme(ledger: &dyn Ledger) -> Value {
    serde_json::to_value(ledger.programme()).unwrap_or(Value::Null)
}
