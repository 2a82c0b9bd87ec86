//! The till's client of the central ledger: [`Central`] implements
//! [`Ledger`] over HTTP(S) with JSON, generated from the wire's method
//! table ([`super::wire`]).
//!
//! A call that gets no answer (connect failure, timeout, 5xx) fails with
//! [`RemoteError::Unreachable`] (the API's 2050): a till never guesses a
//! balance. Reads and calls with an idempotency key are retried a few times
//! on connect errors and timeouts; other writes are sent once, since a
//! timed-out write may have been applied.
//!
//! The programme and registration settings are the till's own
//! (`[ledger.programme]`): the API needs them synchronously (quotes,
//! tiers), so [`Central::check_programme`] compares them with the central
//! service's at start and warns on a mismatch instead of adopting it.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::accounts::{
    AccountError, AccountView, Activated, CardRow, CodeWordCheck, GroupPage, GroupView, Issued,
    Lookup, LotView, PendingCode, Registered, Registration, SaleFound, SearchPage, Settings,
    Update,
};
use super::certs::{CertError, CertIssued, CertMoved, CertRef, CertView, Validity};
use super::embedded::{
    AccountRef, AccountSummary, AdjustResult, CommitResult, HistoryPage, LedgerError,
    OverridesResult, RefundResult, SaleRef,
};
use super::people::{BirthdayRun, ConsentChange, ConsentView, Erased};
use super::programmes::{Programmes, SERVES_HEADER, header_value};
use super::report::{Report, ReportQuery};
use super::rules::lines::ReturnLine;
use super::rules::{AccountOverrides, OrderTerms, Programme, Quote, SaleLine};
use super::tiers::{TierChange, TierError, TierView};
use super::wire::{RemoteError, ledger_methods};
use super::{Ledger, LedgerFuture, SpendError};
use crate::api::rpc::code;
use crate::redact::Secret;
use rust_decimal::Decimal;
use time::OffsetDateTime;

/// The largest response body read: far above any page of history.
pub const MAX_RESPONSE: usize = 8 * 1024 * 1024;
/// Retries after the first attempt, for reads and keyed writes.
const RETRIES: u32 = 2;
/// Wait before the first retry; doubled for the next.
const BACKOFF: Duration = Duration::from_millis(100);

/// Where the central service is and how the till proves who it is.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Base URL (`http://` or `https://`), without `/v1`.
    pub url: String,
    /// This till's terminal id.
    pub terminal: String,
    /// This till's key.
    pub key: Secret,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest wait for a whole call.
    pub request_timeout: Duration,
}

/// Why the client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    /// The key file is unreadable, too big, not a regular file or empty.
    #[error("ledger.central.key_file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The terminal id or key cannot be sent in a header.
    #[error("ledger.central: the terminal id and key must be printable ASCII")]
    BadCredential,
    /// The HTTP client could not be built (TLS roots).
    #[error("ledger.central: {0}")]
    Client(String),
}

/// Reads the till's key: a regular file of at most 1 MiB, its first line
/// (surrounding spaces ignored). Warns when group or others may read it.
pub fn read_key(path: &Path) -> Result<Secret, CentralError> {
    let bad = |reason: String| CentralError::KeyFile {
        path: path.display().to_string(),
        reason,
    };
    if let Some(mode) = crate::auth::readable_by_others(path) {
        tracing::warn!(
            file = %path.display(),
            mode = format_args!("{mode:04o}"),
            "the central ledger key file is readable by group or others; chmod 600 it"
        );
    }
    let text = crate::textfile::read_text(path).map_err(|e| bad(e.to_string()))?;
    let key = text.lines().next().unwrap_or_default().trim();
    if key.is_empty() {
        return Err(bad("empty".into()));
    }
    Ok(Secret::new(key))
}

/// What the client may retry (see the module's notes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    Read,
    Keyed,
    Write,
}

/// A failed attempt, and whether another may be made.
struct Failure {
    retriable: bool,
    error: RemoteError,
}

impl Failure {
    fn unreachable(retriable: bool, why: impl Into<String>) -> Self {
        Failure {
            retriable,
            error: RemoteError::Unreachable(why.into()),
        }
    }
}

/// The error body of the wire.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorObject,
}

#[derive(Deserialize)]
struct ErrorObject {
    code: i64,
    message: String,
    #[serde(default)]
    data: Value,
}

/// The last time the central service answered (any answer but a 5xx):
/// when, on this process's monotonic clock, and the service's own time
/// then (its `Date` header, to the second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contact {
    /// When the answer came, on the monotonic clock (immune to the wall
    /// clock being set).
    pub at: Instant,
    /// The central service's clock at that moment.
    pub central_time: OffsetDateTime,
}

/// The central ledger, for a till in `[ledger] backend = "central"` mode.
#[derive(Clone)]
pub struct Central {
    http: reqwest::Client,
    base: String,
    auth: HeaderValue,
    programme: Programme,
    settings: Settings,
    contact: Arc<Mutex<Option<Contact>>>,
    /// The programmes the till serves, its own first (the rules of its
    /// quotes), named to the service on every call.
    programmes: Arc<Programmes>,
    serves: HeaderValue,
}

impl Central {
    /// A client of `endpoint`, the till running `programme` with the
    /// registration `settings`. Nothing is sent until the first call.
    pub fn new(
        endpoint: Endpoint,
        programme: Programme,
        settings: Settings,
    ) -> Result<Central, CentralError> {
        let token = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            endpoint.terminal,
            endpoint.key.expose()
        ));
        let mut auth = HeaderValue::from_str(&format!("Basic {token}"))
            .map_err(|_| CentralError::BadCredential)?;
        auth.set_sensitive(true);
        let http = reqwest::Client::builder()
            .connect_timeout(endpoint.connect_timeout)
            .timeout(endpoint.request_timeout)
            // Never follow a redirect: it would resend the credential.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| CentralError::Client(e.to_string()))?;
        Ok(Central {
            http,
            base: endpoint.url.trim_end_matches('/').to_owned(),
            auth,
            programmes: Arc::new(Programmes::single(programme.clone())),
            serves: HeaderValue::from_static(""),
            programme,
            settings,
            contact: Arc::new(Mutex::new(None)),
        })
    }

    /// The same client serving `programmes` (the till's `[ledger] serves`):
    /// the service books only accounts of the programmes named.
    pub fn serving(mut self, programmes: Programmes) -> Result<Central, CentralError> {
        let names = if programmes.all().count() == 1 {
            // One programme: the service's default, as before.
            Vec::new()
        } else {
            programmes.served_names()
        };
        self.serves = HeaderValue::from_str(&header_value(&names))
            .map_err(|_| CentralError::Client("programme names in a header".into()))?;
        self.programmes = Arc::new(programmes);
        Ok(self)
    }

    /// The last answer of the central service, if any since start.
    pub fn last_contact(&self) -> Option<Contact> {
        *self.contact.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pretends the service answered at `c` (offline tests, which have no
    /// service to ask).
    #[cfg(test)]
    pub(crate) fn set_contact(&self, c: Contact) {
        *self.contact.lock().unwrap_or_else(|p| p.into_inner()) = Some(c);
    }

    /// [`answer`], noting the contact when the service answered.
    async fn answer(&self, sent: reqwest::Result<reqwest::Response>) -> Result<Vec<u8>, Failure> {
        if let Ok(resp) = &sent {
            self.note_contact(resp);
        }
        answer(sent).await
    }

    /// Notes an answer of the service (not a 5xx: the service itself was
    /// reached but its store was not).
    fn note_contact(&self, resp: &reqwest::Response) {
        if resp.status().is_server_error() {
            return;
        }
        let central_time = resp
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .map(OffsetDateTime::from)
            // A service without a Date header: this till's clock is all
            // there is.
            .unwrap_or_else(OffsetDateTime::now_utc);
        let c = Contact {
            at: Instant::now(),
            central_time,
        };
        *self.contact.lock().unwrap_or_else(|p| p.into_inner()) = Some(c);
    }

    /// `GET /v1/programme`, once: the body or the failure.
    async fn get_programme(&self) -> Result<Vec<u8>, Failure> {
        let sent = self
            .http
            .get(format!("{}/v1/programme", self.base))
            .header(AUTHORIZATION, self.auth.clone())
            .send()
            .await;
        self.answer(sent).await
    }

    /// Asks the service for its programme, once, only to see whether it
    /// answers (the offline replayer's heartbeat). `Ok` is a contact.
    pub async fn ping(&self) -> Result<(), RemoteError> {
        self.get_programme().await.map(drop).map_err(|f| f.error)
    }

    /// Compares the till's programme with the one the central service
    /// runs (`GET /v1/programme`), retrying while it is unreachable, up to
    /// `attempts` times. A mismatch is logged as a warning: quotes shown at
    /// this till would differ from what the central ledger books.
    pub async fn check_programme(&self, attempts: u32) -> Result<bool, RemoteError> {
        let mut wait = Duration::from_secs(1);
        let mut tries = 0;
        let body = loop {
            tries += 1;
            match self.get_programme().await {
                Ok(b) => break b,
                Err(f) if f.retriable && tries < attempts => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(60));
                }
                Err(f) => return Err(f.error),
            }
        };
        let central: Programme = decode(&body)?;
        let same = central == self.programme;
        if same {
            tracing::info!("the central ledger runs the same programme as this till");
        } else {
            tracing::warn!(
                "the central ledger's programme differs from this till's [ledger.programme]: \
                 quotes here may not match what the central ledger books; align the configurations"
            );
        }
        Ok(same)
    }

    /// One call: `POST {base}/v1/{method}` with `args`, retried per `retry`.
    async fn call<A: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        retry: Retry,
        args: &A,
    ) -> Result<R, RemoteError> {
        let url = format!("{}/v1/{method}", self.base);
        let body = serde_json::to_vec(args).map_err(|e| RemoteError::Remote {
            code: code::INTERNAL_ERROR,
            message: format!("internal error: encoding {method}: {e}"),
            data: Value::Null,
        })?;
        let mut wait = BACKOFF;
        let mut attempt = 0;
        loop {
            let sent = self
                .http
                .post(&url)
                .header(AUTHORIZATION, self.auth.clone())
                .header(CONTENT_TYPE, "application/json")
                .header(SERVES_HEADER, self.serves.clone())
                .body(body.clone())
                .send()
                .await;
            match self.answer(sent).await {
                Ok(b) => return decode(&b),
                Err(f) if f.retriable && retry != Retry::Write && attempt < RETRIES => {
                    attempt += 1;
                    tracing::debug!(method, attempt, error = %f.error, "retrying the central ledger");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(f) => return Err(f.error),
            }
        }
    }
}

/// The body of a `200`, or the failure.
async fn answer(sent: reqwest::Result<reqwest::Response>) -> Result<Vec<u8>, Failure> {
    let mut resp = match sent {
        Ok(r) => r,
        Err(e) if e.is_connect() => {
            return Err(Failure::unreachable(true, format!("cannot connect: {e}")));
        }
        Err(e) if e.is_timeout() => return Err(Failure::unreachable(true, "timed out")),
        // Sent, perhaps applied, no answer: retried only like a timeout.
        Err(e) => return Err(Failure::unreachable(true, e.to_string())),
    };
    let status = resp.status();
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if body.len() + c.len() > MAX_RESPONSE {
                    return Err(Failure {
                        retriable: false,
                        error: RemoteError::Remote {
                            code: code::INTERNAL_ERROR,
                            message: format!(
                                "the central ledger's answer exceeds {MAX_RESPONSE} bytes"
                            ),
                            data: Value::Null,
                        },
                    });
                }
                body.extend_from_slice(&c);
            }
            Ok(None) => break,
            Err(e) if e.is_timeout() => return Err(Failure::unreachable(true, "timed out")),
            Err(e) => return Err(Failure::unreachable(true, e.to_string())),
        }
    }
    if status.is_success() {
        return Ok(body);
    }
    let parsed = serde_json::from_slice::<ErrorBody>(&body).ok();
    if status.is_server_error() {
        let why = match parsed {
            Some(b) => format!("HTTP {}: {}", status.as_u16(), b.error.message),
            None => format!("HTTP {}", status.as_u16()),
        };
        return Err(Failure::unreachable(true, why));
    }
    Err(Failure {
        retriable: false,
        error: match parsed {
            Some(b) => RemoteError::Remote {
                code: b.error.code,
                message: b.error.message,
                data: b.error.data,
            },
            None => RemoteError::Remote {
                code: code::INTERNAL_ERROR,
                message: format!("the central ledger answered HTTP {}", status.as_u16()),
                data: Value::Null,
            },
        },
    })
}

fn decode<R: DeserializeOwned>(body: &[u8]) -> Result<R, RemoteError> {
    serde_json::from_slice(body).map_err(|e| RemoteError::Remote {
        code: code::INTERNAL_ERROR,
        message: format!("a malformed answer from the central ledger: {e}"),
        data: Value::Null,
    })
}

macro_rules! client_methods {
    ($( $wire:literal $class:ident $method:ident (
        $( $(#[$attr:meta])* $arg:ident : $ty:ty ),* $(,)?
    ) -> $ret:ty, $err:ty; )*) => {
        $(
            fn $method(&self, $($arg: $ty),*) -> LedgerFuture<'_, $ret, $err> {
                #[derive(Serialize, Deserialize)]
                struct Args { $( $(#[$attr])* $arg: $ty, )* }
                let args = Args { $($arg),* };
                Box::pin(async move {
                    self.call::<Args, $ret>($wire, Retry::$class, &args)
                        .await
                        .map_err(<$err>::from)
                })
            }
        )*
    };
}

impl Ledger for Central {
    fn programme(&self) -> &Programme {
        self.programmes.first()
    }
    fn programmes(&self) -> Arc<Programmes> {
        self.programmes.clone()
    }
    fn account_settings(&self) -> &Settings {
        &self.settings
    }
    ledger_methods!(client_methods);
}
