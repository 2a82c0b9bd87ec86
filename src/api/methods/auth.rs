//! `auth.login`, with back-off per connection and per address
//! ([`crate::api::login_limit`]).

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::login_limit::AddrLimiter;
use crate::api::rpc::{self, RpcError, code};
use crate::api::session::{Peer, Session};
use crate::app::App;
use crate::redact::Secret;

/// Failures by client address, daemon-wide.
static BY_ADDR: LazyLock<AddrLimiter> = LazyLock::new(AddrLimiter::default);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    /// Never logged: `Secret` redacts itself.
    token: Secret,
}

/// Milliseconds, rounded up so a client never retries a moment too early.
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_micros().div_ceil(1000)).unwrap_or(u64::MAX)
}

fn throttled(wait: Duration) -> RpcError {
    RpcError::new(
        code::LOGIN_THROTTLED,
        format!("too many wrong tokens; retry in {} ms", ms(wait)),
    )
    .with_data(json!({ "retry_after_ms": ms(wait) }))
}

pub(super) fn login(
    app: &Arc<App>,
    session: &Arc<Session>,
    params: Option<Value>,
) -> Result<Value, RpcError> {
    let p: Params = rpc::params(params)?;
    let now = Instant::now();
    let addr = match &session.peer {
        Peer::Tcp(a) => Some(a.ip()),
        Peer::Unix { .. } => None,
    };
    // While waiting, the token is not even looked at.
    let conn_wait = session.login_backoff(|b| b.check(now)).err();
    let addr_wait = addr.and_then(|ip| BY_ADDR.check(ip, now).err());
    if let Some(wait) = conn_wait.max(addr_wait) {
        return Err(throttled(wait));
    }
    match app.tokens().check(&p.token) {
        Some(role) => {
            let role = session.login(role);
            tracing::info!(conn = session.id, ?role, "login");
            Ok(json!({ "role": role }))
        }
        None => {
            let wait = session
                .login_backoff(|b| b.fail(now))
                .max(addr.map_or(Duration::ZERO, |ip| BY_ADDR.fail(ip, now)));
            tracing::warn!(conn = session.id, peer = ?session.peer, "login with a bad token");
            let err = RpcError::new(code::BAD_TOKEN, "token not accepted");
            Err(if wait.is_zero() {
                err
            } else {
                err.with_data(json!({ "retry_after_ms": ms(wait) }))
            })
        }
    }
}
