//! The ledger's errors as JSON-RPC errors: one mapping, used by the till's
//! API and by the central service (`crate::ledger::wire`), so a till in
//! central mode answers the same codes as an embedded one. An error the
//! central service already mapped ([`RemoteError::Remote`]) passes through
//! unchanged.

use serde_json::json;

use crate::api::rpc::{RpcError, code};
use crate::ledger::LedgerError;
use crate::ledger::accounts::AccountError;
use crate::ledger::certs::{CertError, code::CodeError};
use crate::ledger::programmes::ProgrammeError;
use crate::ledger::rules::RulesError;
use crate::ledger::tiers::TierError;
use crate::ledger::wire::RemoteError;

/// A central ledger's answer or its absence: the central service's own
/// code passes through; unreachable is [`code::LEDGER_UNREACHABLE`].
pub fn remote_error(e: RemoteError) -> RpcError {
    match e {
        RemoteError::Unreachable(why) => RpcError::new(
            code::LEDGER_UNREACHABLE,
            format!("the central ledger is unreachable: {why}"),
        )
        .with_data(json!({ "retry": true })),
        RemoteError::Remote {
            code,
            message,
            data,
        } => RpcError {
            code,
            message,
            data: (!data.is_null()).then_some(data),
        },
    }
}

/// Every ledger error as its stable code.
pub fn ledger_error(e: LedgerError) -> RpcError {
    match e {
        LedgerError::Rules(RulesError::Invalid { field, reason }) => {
            RpcError::invalid_params(&field, reason)
        }
        LedgerError::Rules(RulesError::RedeemTooHigh {
            requested,
            max,
            limit,
        }) => RpcError::new(
            code::REDEEM_TOO_HIGH,
            format!("cannot redeem {requested}: at most {max} ({limit})"),
        )
        .with_data(json!({
            "requested": requested.to_string(),
            "max": max.to_string(),
            "limit": limit,
        })),
        LedgerError::Rules(RulesError::ProgrammeInactive { reason }) => RpcError::new(
            code::PROGRAMME_INACTIVE,
            format!("the loyalty programme is not active ({reason})"),
        )
        .with_data(json!({ "reason": reason })),
        LedgerError::Rules(e) => RpcError::new(code::INVALID_PARAMS, e.to_string()),
        LedgerError::UnknownCard => RpcError::new(code::UNKNOWN_CARD, "unknown card"),
        LedgerError::Inactive(status) => {
            RpcError::new(code::CARD_INACTIVE, format!("the card is {status}"))
                .with_data(json!({ "status": status }))
        }
        LedgerError::KeyReused => RpcError::new(
            code::IDEMPOTENCY_CONFLICT,
            "idempotency key already used for a different request",
        ),
        LedgerError::UnknownSale => RpcError::new(code::UNKNOWN_SALE, "no such sale"),
        // The same code as an unknown card: either way no account answers
        // to what the client named.
        LedgerError::UnknownAccount => RpcError::new(code::UNKNOWN_CARD, "no such account")
            .with_data(json!({ "field": "account" })),
        LedgerError::InsufficientBalance { balance } => RpcError::new(
            code::INSUFFICIENT_BALANCE,
            format!("insufficient balance: {balance} available"),
        )
        .with_data(json!({ "balance": balance.to_string() })),
        LedgerError::Store(e) => RpcError::internal("ledger", e),
        LedgerError::Db(e) => db_error("ledger", e),
        LedgerError::Remote(e) => remote_error(e),
        LedgerError::SaleTime { at, reason } => RpcError::new(
            code::SALE_TIME_REFUSED,
            format!("the operation's time {at} is refused: {reason}"),
        )
        .with_data(json!({ "at": at, "reason": reason })),
        LedgerError::OfflineRedeem(reason) => RpcError::new(
            code::OFFLINE_REDEEM_REFUSED,
            format!("points cannot be spent offline: {reason}"),
        )
        .with_data(json!({ "reason": reason })),
        LedgerError::Promo(r) => RpcError::new(code::PROMO_REFUSED, format!("promo_code: {r}"))
            .with_data(json!({ "field": "promo_code", "reason": r.reason() })),
        LedgerError::Programme(e) => programme_error(e),
    }
}

/// Every gift certificate error as its stable code. A malformed or
/// mistyped code is `-32602` naming `code`: it never reached the books.
pub fn cert_error(e: CertError) -> RpcError {
    match e {
        CertError::Code(c @ (CodeError::Shape | CodeError::Check)) => {
            RpcError::invalid_params("code", c)
        }
        CertError::Unknown => RpcError::new(code::UNKNOWN_CERTIFICATE, "no such certificate"),
        CertError::Expired { expires_at } => RpcError::new(
            code::CERTIFICATE_EXPIRED,
            format!("the certificate expired at {expires_at}"),
        )
        .with_data(json!({ "expires_at": expires_at })),
        CertError::Blocked => {
            RpcError::new(code::CERTIFICATE_BLOCKED, "the certificate is blocked")
        }
        CertError::UsedUp => RpcError::new(code::CERTIFICATE_USED_UP, "the certificate is used up"),
        CertError::Insufficient { balance } => RpcError::new(
            code::CERTIFICATE_INSUFFICIENT,
            format!("the certificate holds only {balance}"),
        )
        .with_data(json!({ "balance": balance.to_string() })),
        CertError::CodeTaken => RpcError::new(
            code::CERTIFICATE_CODE_TAKEN,
            "a certificate with this code exists",
        )
        .with_data(json!({ "field": "code" })),
        CertError::UnknownRedemption => {
            RpcError::new(code::UNKNOWN_REDEMPTION, "no such redemption")
                .with_data(json!({ "field": "redemption" }))
        }
        CertError::RefundTooHigh { refundable } => RpcError::new(
            code::REFUND_TOO_HIGH,
            format!("at most {refundable} of this redemption can be returned"),
        )
        .with_data(json!({ "refundable": refundable.to_string() })),
        CertError::Invalid { field, reason } => RpcError::invalid_params(field, reason),
        CertError::KeyReused => RpcError::new(
            code::IDEMPOTENCY_CONFLICT,
            "idempotency key already used for a different request",
        ),
        CertError::Random(e) => RpcError::internal("certificate", e),
        CertError::Db(e) => db_error("certificate", e),
        CertError::Remote(e) => remote_error(e),
    }
}

/// A programme this till does not serve is the card of another programme
/// (2029, naming it); a name no programme has is a bad `programme`.
pub fn programme_error(e: ProgrammeError) -> RpcError {
    match e {
        ProgrammeError::NotServed(p) => RpcError::new(
            code::CARD_OTHER_PROGRAMME,
            format!("the account belongs to programme \"{p}\", which this till does not serve"),
        )
        .with_data(json!({ "programme": p })),
        e @ ProgrammeError::Unknown(_) => RpcError::invalid_params("programme", e.to_string()),
        e => RpcError::new(code::INVALID_PARAMS, e.to_string()),
    }
}

/// Every account error as its stable code.
pub fn account_error(e: AccountError) -> RpcError {
    match e {
        AccountError::BadPhone => RpcError::invalid_params("phone", "not a phone number (E.164)"),
        AccountError::BadEmail => RpcError::invalid_params("email", "not an e-mail address"),
        AccountError::NoContact => RpcError::invalid_params("phone", "give phone or email"),
        AccountError::BadCardNumber => RpcError::invalid_params("card_number", "4 to 32 digits"),
        AccountError::BadSecret => RpcError::invalid_params("secret", "4 to 32 letters or digits"),
        AccountError::BadCodeWord => RpcError::invalid_params("code_word", "2 to 64 characters"),
        AccountError::BadQuery(max) => {
            RpcError::invalid_params("query", format!("1 to {max} characters"))
        }
        AccountError::BadGroupName => {
            RpcError::invalid_params("name", "1 to 64 printable characters")
        }
        AccountError::BadStatus(why) => RpcError::invalid_params("status", why),
        AccountError::Duplicate(field) => RpcError::new(
            code::ACCOUNT_EXISTS,
            format!("an account with this {field} exists"),
        )
        .with_data(json!({ "field": field })),
        AccountError::CardTaken => {
            RpcError::new(code::CARD_TAKEN, "the card number is already issued")
        }
        AccountError::CodeWordLocked { until } => RpcError::new(
            code::CODE_WORD_LOCKED,
            format!("too many wrong code words; locked until {until}"),
        )
        .with_data(json!({ "until": until })),
        AccountError::OtherProgramme => RpcError::new(
            code::CARD_OTHER_PROGRAMME,
            "the card belongs to another programme (ledger.registration.card_ranges)",
        ),
        AccountError::UnknownCard | AccountError::UnknownAccount => {
            RpcError::new(code::UNKNOWN_CARD, "no such account or card")
        }
        AccountError::CardInactive(status) => {
            RpcError::new(code::CARD_INACTIVE, format!("the card is {status}"))
                .with_data(json!({ "status": status }))
        }
        AccountError::UnknownGroup(g) => {
            RpcError::new(code::UNKNOWN_GROUP, format!("unknown group \"{g}\""))
                .with_data(json!({ "group": g }))
        }
        AccountError::GroupExists => RpcError::new(code::GROUP_EXISTS, "the group exists"),
        AccountError::GroupInUse { members } => RpcError::new(
            code::GROUP_IN_USE,
            format!("the group has {members} member(s); give force: true to remove them too"),
        )
        .with_data(json!({ "members": members })),
        AccountError::NotPending(status) => RpcError::new(
            code::NOT_PENDING,
            format!("the account is {status}, not pending"),
        )
        .with_data(json!({ "status": status })),
        AccountError::WrongCode { attempts_left } => RpcError::new(
            code::WRONG_CODE,
            format!("wrong code; {attempts_left} attempts left"),
        )
        .with_data(json!({ "attempts_left": attempts_left })),
        AccountError::CodeExpired => RpcError::new(
            code::CODE_EXPIRED,
            "the code expired; send a new one (account.confirmation.resend or sale.redeem_code.send)",
        ),
        AccountError::CodeExhausted => RpcError::new(
            code::CODE_EXHAUSTED,
            "too many wrong codes; send a new one (account.confirmation.resend or sale.redeem_code.send)",
        ),
        AccountError::TooSoon { retry_after_s } => RpcError::new(
            code::RESEND_TOO_SOON,
            format!("a code was sent recently; try again in {retry_after_s} s"),
        )
        .with_data(json!({ "retry_after_s": retry_after_s })),
        AccountError::RedeemByCodeOff => RpcError::new(
            code::REDEEM_BY_CODE_OFF,
            "this programme spends points only with the card's secret ([ledger.redemption] by_code)",
        ),
        AccountError::NoRedeemCode => RpcError::new(
            code::NO_REDEEM_CODE,
            "no redemption code outstanding for this account; send one with sale.redeem_code.send",
        ),
        AccountError::WrongSecret { attempts_left } => RpcError::new(
            code::WRONG_SECRET,
            format!("wrong secret code; {attempts_left} attempts left"),
        )
        .with_data(json!({ "attempts_left": attempts_left })),
        AccountError::Locked { until, .. } => RpcError::new(
            code::CARD_LOCKED,
            format!("the card is locked until {until}"),
        )
        .with_data(json!({ "until": until })),
        AccountError::NoSecret => RpcError::new(
            code::NO_SECRET,
            "the card has no secret code registered; register it to spend points",
        ),
        AccountError::Remote(e) => remote_error(e),
        AccountError::Busy => RpcError::new(code::BUSY, "busy checking secrets; retry in a moment")
            .with_data(json!({ "retry": true })),
        AccountError::Db(e) => db_error("accounts", e),
        AccountError::Rules(RulesError::Invalid { field, reason }) => {
            RpcError::invalid_params(&field, reason)
        }
        AccountError::Programme(e) => programme_error(e),
        e => RpcError::internal("accounts", e),
    }
}

/// Every tier error as its stable code.
pub fn tier_error(e: TierError) -> RpcError {
    match e {
        TierError::NotConfigured => RpcError::new(
            code::TIERS_NOT_CONFIGURED,
            "the programme has no tiers ([[ledger.programme.tiers]])",
        ),
        TierError::UnknownAccount => RpcError::new(code::UNKNOWN_CARD, "no such account")
            .with_data(json!({ "field": "account" })),
        TierError::Store(e) => RpcError::internal("tiers", e),
        TierError::Db(e) => db_error("tiers", e),
        TierError::Remote(e) => remote_error(e),
        TierError::Programme(e) => programme_error(e),
    }
}

/// A failure of the books: a conflict that outlived its retries is worth
/// retrying (1006 with `retry`); anything else is internal.
pub fn db_error(context: &str, e: crate::ledger::db::DbError) -> RpcError {
    match e {
        crate::ledger::db::DbError::Conflict(_) => RpcError::new(
            code::BUSY,
            "the ledger is busy with concurrent updates; retry",
        )
        .with_data(json!({ "retry": true })),
        e => RpcError::internal(context, e),
    }
}
