//! JSON-RPC 2.0 messages: parsing requests, building responses, and the one
//! table of error codes.

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Stable error codes. `docs/protocol.md` lists the same table; the codes
/// never change meaning once released.
pub mod code {
    /// The line is not JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// JSON, but not a valid request object (or the line is too long).
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Params do not fit the method; `data.field` names the offending one.
    pub const INVALID_PARAMS: i64 = -32602;
    /// A bug or an unexpected failure inside the daemon.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// A TCP client called something before `auth.login`.
    pub const LOGIN_REQUIRED: i64 = 1001;
    /// The caller's role may not call this method.
    pub const FORBIDDEN: i64 = 1002;
    /// `auth.login` with a token that is not in the token file.
    pub const BAD_TOKEN: i64 = 1003;
    /// The daemon already serves `daemon.max_clients` connections.
    pub const TOO_MANY_CLIENTS: i64 = 1004;
    /// The daemon is shutting down and takes no new work.
    pub const SHUTTING_DOWN: i64 = 1005;
    /// Every turn to check a secret or code stayed taken for
    /// `ledger.hash_queue_timeout_ms`: nothing was checked or counted;
    /// retry the same call shortly.
    pub const BUSY: i64 = 1006;
    /// `auth.login` refused unchecked: too many wrong tokens from this
    /// connection or address; `data.retry_after_ms`.
    pub const LOGIN_THROTTLED: i64 = 1007;
    /// A reload was refused: the configuration file is invalid.
    pub const CONFIG_INVALID: i64 = 1101;
    /// No device has that name.
    pub const DEVICE_NOT_FOUND: i64 = 1201;
    /// The print job id was used for a different job.
    pub const JOB_CONFLICT: i64 = 1202;
    /// No print job with that id.
    pub const JOB_NOT_FOUND: i64 = 1203;
    /// The job is printing or finished; `data.state` says which.
    pub const JOB_NOT_CANCELLABLE: i64 = 1204;
    /// The fiscal printer refused the job; `data` has `device_code` and the
    /// specification's `meaning`.
    pub const FISCAL_DEVICE_ERROR: i64 = 1205;
    /// The fiscal job is still running; repeat the call with the same
    /// `job_id` to get its result.
    pub const FISCAL_IN_PROGRESS: i64 = 1206;
    /// The card token is unknown or expired (they live 5 minutes).
    pub const CARD_TOKEN_INVALID: i64 = 1301;
    /// No account holds the card.
    pub const UNKNOWN_CARD: i64 = 2001;
    /// The card or its account is blocked or lost.
    pub const CARD_INACTIVE: i64 = 2002;
    /// Redemption over the cap or the balance; `data` has `max` and `limit`.
    pub const REDEEM_TOO_HIGH: i64 = 2003;
    /// Redemption without a card read that carried the secret.
    pub const CARD_NOT_PRESENT: i64 = 2004;
    /// The idempotency key was used for a different request.
    pub const IDEMPOTENCY_CONFLICT: i64 = 2005;
    /// The sale to refund does not exist.
    pub const UNKNOWN_SALE: i64 = 2006;
    /// A deduction larger than the balance; `data.balance` says what there is.
    pub const INSUFFICIENT_BALANCE: i64 = 2007;
    /// The secret code does not match; `data.attempts_left`.
    pub const WRONG_SECRET: i64 = 2008;
    /// Too many wrong secrets: the card is locked; `data.until`.
    pub const CARD_LOCKED: i64 = 2009;
    /// The card has no secret code registered, so points cannot be spent.
    pub const NO_SECRET: i64 = 2010;
    /// An account with this phone or e-mail exists; `data.field`.
    pub const ACCOUNT_EXISTS: i64 = 2011;
    /// The card number is already issued.
    pub const CARD_TAKEN: i64 = 2012;
    /// A group with this name exists.
    pub const GROUP_EXISTS: i64 = 2020;
    /// No such group; `data.group`.
    pub const UNKNOWN_GROUP: i64 = 2021;
    /// The group has members and `force` was not given; `data.members`.
    pub const GROUP_IN_USE: i64 = 2022;
    /// The account is not waiting for confirmation; `data.status`.
    pub const NOT_PENDING: i64 = 2023;
    /// Wrong confirmation code; `data.attempts_left`.
    pub const WRONG_CODE: i64 = 2024;
    /// The confirmation code expired: send a new one.
    pub const CODE_EXPIRED: i64 = 2025;
    /// Too many wrong codes: the code is void, send a new one.
    pub const CODE_EXHAUSTED: i64 = 2026;
    /// A code was sent too recently; `data.retry_after_s`.
    pub const RESEND_TOO_SOON: i64 = 2027;
    /// The notifier could not deliver the code; the account stays pending;
    /// `data.account`, `data.sent_via`.
    pub const DELIVERY_FAILED: i64 = 2028;
    /// A physical card number outside the programme's `card_ranges`.
    pub const CARD_OTHER_PROGRAMME: i64 = 2029;
    /// `account.verify_code_word` after too many wrong words; `data.until`.
    pub const CODE_WORD_LOCKED: i64 = 2030;
    /// `sale.redeem_code.send`, or `sale.commit` redeeming for an
    /// `account`, while `[ledger.redemption] by_code` is off.
    pub const REDEEM_BY_CODE_OFF: i64 = 2031;
    /// `sale.commit` with a `redeem_code` while none is outstanding (never
    /// sent, or already used by a sale).
    pub const NO_REDEEM_CODE: i64 = 2032;
    /// `tiers.evaluate` on a programme without levels.
    pub const TIERS_NOT_CONFIGURED: i64 = 2040;
    /// A till in central mode could not reach the central ledger (connect
    /// failure, timeout, 5xx): nothing is known about the balance, so
    /// nothing is guessed. `data.retry` is `true`; retry with the same
    /// idempotency key.
    pub const LEDGER_UNREACHABLE: i64 = 2050;
    /// A till in central mode that cannot reach the central ledger refused
    /// to spend points: its offline policy allows none, or not this many,
    /// or the last contact is too old, or its clock jumped. `data.reason`
    /// says which; a sale without redemption is still accepted.
    pub const OFFLINE_REDEEM_REFUSED: i64 = 2051;
    /// The central ledger refused to book a till's late (offline) sale or
    /// return at its time: ahead of the ledger's clock, or older than 30
    /// days. `data.at` and `data.reason` say which.
    pub const SALE_TIME_REFUSED: i64 = 2052;
    /// `ledger.sync.retry` or `ledger.sync.drop` named no item on the
    /// dead-letter list.
    pub const UNKNOWN_SYNC_ITEM: i64 = 2053;
    /// The loyalty programme is switched off or outside its active window
    /// (`ledger.programme.enabled`, `active_from`, `active_until`): no sale
    /// is quoted or committed; returns, balances and history still work.
    pub const PROGRAMME_INACTIVE: i64 = 2060;
    /// No gift certificate has this code (or id).
    pub const UNKNOWN_CERTIFICATE: i64 = 2070;
    /// The gift certificate has expired; `data.expires_at`.
    pub const CERTIFICATE_EXPIRED: i64 = 2071;
    /// The gift certificate is blocked.
    pub const CERTIFICATE_BLOCKED: i64 = 2072;
    /// Nothing is left on the gift certificate.
    pub const CERTIFICATE_USED_UP: i64 = 2073;
    /// Less is left on the gift certificate than asked; `data.balance`.
    pub const CERTIFICATE_INSUFFICIENT: i64 = 2074;
    /// `certificate.issue` with an imported `code` already in the books.
    pub const CERTIFICATE_CODE_TAKEN: i64 = 2075;
    /// `certificate.refund` names no redemption.
    pub const UNKNOWN_REDEMPTION: i64 = 2076;
    /// `certificate.refund` asks back more than is left of the
    /// redemption; `data.refundable`.
    pub const REFUND_TOO_HIGH: i64 = 2077;
    /// The promo code typed on a sale is refused: `data.field` is
    /// `promo_code`, `data.reason` one of `unknown`, `disabled`, `not_yet`,
    /// `expired`, `used_up`, `customer_limit`.
    pub const PROMO_REFUSED: i64 = 2061;
}

/// The longest request line accepted, newline excluded.
pub const MAX_LINE: usize = 1024 * 1024;

/// An error answer.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// One of [`code`].
    pub code: i64,
    /// For humans.
    pub message: String,
    /// For programs: the details a client needs to react.
    pub data: Option<Value>,
}

impl RpcError {
    /// An error with no data.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// Adds a `data` object.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// Invalid params naming the field.
    pub fn invalid_params(field: &str, message: impl std::fmt::Display) -> Self {
        let message = if field.is_empty() {
            format!("invalid params: {message}")
        } else {
            format!("invalid params: {field}: {message}")
        };
        RpcError::new(code::INVALID_PARAMS, message).with_data(json!({ "field": field }))
    }

    /// An internal failure; the details go to the log, not the client.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "{context}");
        RpcError::new(code::INTERNAL_ERROR, format!("internal error: {context}"))
    }
}

/// A request id: string, number or null.
pub type Id = Value;

/// A well-formed request.
#[derive(Debug)]
pub struct Request {
    /// `None` for a notification (no reply is sent).
    pub id: Option<Id>,
    /// Method name.
    pub method: String,
    /// Params, if given.
    pub params: Option<Value>,
}

/// Validates one request object. On error returns the id (when it could be
/// read) with the error, so the reply can still be matched.
pub fn parse_request(v: Value) -> Result<Request, (Id, RpcError)> {
    let Value::Object(mut obj) = v else {
        return Err((
            Value::Null,
            RpcError::new(code::INVALID_REQUEST, "a request must be a JSON object"),
        ));
    };
    let id = match obj.remove("id") {
        None => None,
        Some(id @ (Value::String(_) | Value::Number(_) | Value::Null)) => Some(id),
        Some(_) => {
            return Err((
                Value::Null,
                RpcError::new(code::INVALID_REQUEST, "id must be a string, number or null"),
            ));
        }
    };
    let reply_id = id.clone().unwrap_or(Value::Null);
    let invalid = |m: &str| (reply_id.clone(), RpcError::new(code::INVALID_REQUEST, m));
    match obj.remove("jsonrpc") {
        Some(Value::String(v)) if v == "2.0" => {}
        _ => return Err(invalid("jsonrpc must be \"2.0\"")),
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) => m,
        _ => return Err(invalid("method must be a string")),
    };
    let params = match obj.remove("params") {
        // Strictly, params is an object or array when present; many
        // client libraries send null for "none", so read it as absent.
        None | Some(Value::Null) => None,
        Some(p @ (Value::Object(_) | Value::Array(_))) => Some(p),
        Some(_) => return Err(invalid("params must be an object or an array")),
    };
    if let Some(extra) = obj.keys().next() {
        return Err(invalid(&format!("unknown member \"{extra}\"")));
    }
    Ok(Request { id, method, params })
}

/// Deserializes params into `T`, naming the offending field on error.
/// Absent params read as `{}`.
pub fn params<T: DeserializeOwned>(params: Option<Value>) -> Result<T, RpcError> {
    let v = params.unwrap_or_else(|| Value::Object(Default::default()));
    if v.is_array() {
        return Err(RpcError::invalid_params("", "params must be an object"));
    }
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let inner = e.into_inner().to_string();
        // serde names a missing field in the message, not in the path (an
        // unknown field is already the last path segment).
        let field = match inner.strip_prefix("missing field `") {
            Some(rest) => {
                let name = rest.split('`').next().unwrap_or_default();
                if path.is_empty() {
                    name.to_owned()
                } else {
                    format!("{path}.{name}")
                }
            }
            None => path,
        };
        RpcError::invalid_params(&field, inner)
    })
}

/// A success reply line. `id` is a [`Value`] or, to echo it exactly, the
/// id's raw text ([`serde_json::value::RawValue`]).
pub fn success<I: serde::Serialize + ?Sized>(id: &I, result: Value) -> String {
    // Fields in the order a Value map would print them.
    #[derive(serde::Serialize)]
    struct Ok<'a, I: ?Sized> {
        id: &'a I,
        jsonrpc: &'static str,
        result: Value,
    }
    let reply = Ok {
        id,
        jsonrpc: "2.0",
        result,
    };
    serde_json::to_string(&reply).unwrap_or_else(internal_reply)
}

/// An error reply line; `id` as for [`success`].
pub fn failure<I: serde::Serialize + ?Sized>(id: &I, err: &RpcError) -> String {
    #[derive(serde::Serialize)]
    struct Failed<'a, I: ?Sized> {
        error: Value,
        id: &'a I,
        jsonrpc: &'static str,
    }
    let mut e = json!({"code": err.code, "message": err.message});
    if let Some(d) = &err.data {
        e["data"] = d.clone();
    }
    let reply = Failed {
        error: e,
        id,
        jsonrpc: "2.0",
    };
    serde_json::to_string(&reply).unwrap_or_else(internal_reply)
}

/// Serialising a reply cannot fail for Values and raw ids; if it ever did,
/// the client still gets a line.
fn internal_reply(e: serde_json::Error) -> String {
    tracing::error!(error = %e, "reply not serialisable");
    json!({"jsonrpc": "2.0", "id": null, "error": {"code": code::INTERNAL_ERROR, "message": "internal error: reply"}}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests_and_notifications() {
        let r = parse_request(json!({"jsonrpc":"2.0","id":7,"method":"system.ping"})).unwrap();
        assert_eq!(r.id, Some(json!(7)));
        assert_eq!(r.method, "system.ping");
        let n = parse_request(json!({"jsonrpc":"2.0","method":"x","params":{}})).unwrap();
        assert_eq!(n.id, None);
    }

    #[test]
    fn rejects_malformed_requests_keeping_the_id() {
        let cases = [
            (json!([1]), Value::Null),
            (json!({"jsonrpc":"1.0","id":"a","method":"m"}), json!("a")),
            (json!({"jsonrpc":"2.0","id":1,"method":5}), json!(1)),
            (
                json!({"jsonrpc":"2.0","id":2,"method":"m","params":3}),
                json!(2),
            ),
            (json!({"jsonrpc":"2.0","id":{},"method":"m"}), Value::Null),
            (
                json!({"jsonrpc":"2.0","id":3,"method":"m","extra":1}),
                json!(3),
            ),
        ];
        for (v, id) in cases {
            let (got, e) = parse_request(v.clone()).unwrap_err();
            assert_eq!(got, id, "{v}");
            assert_eq!(e.code, code::INVALID_REQUEST, "{v}");
        }
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct P {
        name: String,
        inner: Option<Inner>,
    }
    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        n: u8,
    }

    #[test]
    fn params_errors_name_the_field() {
        let e = params::<P>(Some(json!({"name": 1}))).unwrap_err();
        assert_eq!(e.data, Some(json!({"field": "name"})));
        let e = params::<P>(Some(json!({}))).unwrap_err();
        assert_eq!(e.data, Some(json!({"field": "name"})));
        let e = params::<P>(Some(json!({"name": "a", "inner": {"n": 300}}))).unwrap_err();
        assert_eq!(e.data, Some(json!({"field": "inner.n"})));
        let e = params::<P>(Some(json!({"name": "a", "inner": {}}))).unwrap_err();
        assert_eq!(e.data, Some(json!({"field": "inner.n"})));
        let e = params::<P>(Some(json!({"name": "a", "zzz": 1}))).unwrap_err();
        assert!(e.message.contains("zzz"), "{}", e.message);
        assert_eq!(e.data, Some(json!({"field": "zzz"})));
        assert_eq!(e.code, code::INVALID_PARAMS);
        assert!(params::<P>(Some(json!(["a"]))).is_err());
    }
}
