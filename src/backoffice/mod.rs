//! The back office: server-rendered pages for the programme's operators
//! (customer search, the customer card with its lots, cards and history,
//! manual points, card blocking, the audit log, reports), served on
//! `[backoffice] listen`.
//!
//! Everything it reads and changes goes through the [`Ledger`] trait, and
//! its own tables ([`operators`]) through [`Books`], so the central service
//! can serve the same pages over its PostgreSQL later. Pages are HTML from
//! maud templates with no JavaScript; every POST carries the session's
//! CSRF token, sessions are in-memory and bounded ([`session`]).

mod cards;
mod customers;
mod form_keys;
mod forms;
pub mod i18n;
pub mod import;
pub mod operators;
mod pages;
mod programme;
mod reports;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::ledger::Ledger;
use crate::ledger::db::Books;
use i18n::{Lang, T, tr};
use operators::{Operator, Operators, Role};
use session::{LoginThrottle, Session, Sessions};

/// The largest request body accepted (forms are small).
pub const BODY_LIMIT: usize = 64 * 1024;
/// The longest a request may take before it is answered 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Password checks at once: argon2 takes memory and CPU, and a flood of
/// logins must not starve the till.
const HASHES_AT_ONCE: usize = 2;
/// The session cookie's name.
const SESSION_COOKIE: &str = "bo_session";
/// The language cookie's name.
const LANG_COOKIE: &str = "bo_lang";
/// The login form's pre-session CSRF cookie.
const LOGIN_COOKIE: &str = "bo_login";
/// Connections served at once; one more is closed at once rather than
/// queued, so stalled clients cannot make the port hang for others.
pub const MAX_CONNECTIONS: usize = 128;
/// How long a client may take to send a request's headers (hyper's
/// `header_read_timeout`); a client that sends half a request and stalls
/// loses its connection then.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest one connection stays open, keep-alive included: an idle
/// connection gives its slot back eventually whatever the client does.
pub const CONNECTION_MAX: Duration = Duration::from_secs(300);
/// How long shutdown waits for the requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The back office's shared state.
pub struct Backoffice {
    ledger: Arc<dyn Ledger>,
    ops: Operators,
    sessions: Sessions,
    throttle: LoginThrottle,
    hashing: Semaphore,
}

impl Backoffice {
    /// Pages over `ledger`, with operators and the audit log in `books`.
    pub fn new(ledger: Arc<dyn Ledger>, books: Books) -> Arc<Self> {
        Arc::new(Backoffice {
            ledger,
            ops: Operators::new(books),
            sessions: Sessions::default(),
            throttle: LoginThrottle::default(),
            hashing: Semaphore::new(HASHES_AT_ONCE),
        })
    }
}

/// The routes, with the body limit, the timeout and the headers every
/// page carries.
pub fn router(state: Arc<Backoffice>) -> Router {
    Router::new()
        .route("/", get(pages::search))
        .route("/login", get(pages::login_page).post(forms::login))
        .route("/logout", post(forms::logout))
        .route("/customers/{id}", get(pages::customer))
        .route(
            "/customers/new",
            get(customers::new_page).post(customers::create),
        )
        .route("/customers/groups", post(customers::bulk_groups))
        .route(
            "/customers/{id}/edit",
            get(customers::edit_page).post(customers::edit),
        )
        .route("/customers/{id}/adjust", post(forms::adjust))
        .route("/customers/{id}/cards/{index}", post(forms::card_status))
        .route("/customers/{id}/cards/{index}/lost", post(cards::lost))
        .route("/customers/{id}/cards/{index}/found", post(cards::found))
        .route("/customers/{id}/cards/{index}/secret", post(cards::secret))
        .route(
            "/customers/{id}/cards/{index}/replace",
            get(cards::replace_page).post(cards::replace),
        )
        .route("/programme", get(programme::show))
        .route("/programme/groups", post(programme::create_group))
        .route("/programme/groups/delete", post(programme::delete_group))
        .route(
            "/import",
            get(import::import_page)
                .post(import::import)
                .layer(DefaultBodyLimit::max(import::IMPORT_BODY_LIMIT)),
        )
        .route("/audit", get(pages::audit))
        .route("/audit.csv", get(pages::audit_csv))
        .route("/reports", get(reports::show))
        .route("/reports.csv", get(reports::csv))
        .layer(axum::middleware::from_fn(guard))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Times requests out and adds the headers that keep the pages out of
/// frames, caches and foreign scripts.
async fn guard(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut r = match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "timed out").into_response(),
    };
    let h = r.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// Serves the back office on `listener` until `shutdown`: at most
/// [`MAX_CONNECTIONS`] connections (more are closed at once), each given
/// [`HEADER_TIMEOUT`] per request head and [`CONNECTION_MAX`] in all.
/// `axum::serve` has no header timeout, hence hyper's own builder here.
pub async fn serve(
    listener: TcpListener,
    state: Arc<Backoffice>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = router(state);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let conns = tokio_util::task::TaskTracker::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors, most likely: wait rather than spin.
                    tracing::warn!(error = %e, "back office: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(from = %peer, "back office: too many connections; one closed");
            drop(stream);
            continue;
        };
        let svc = hyper_util::service::TowerToHyperService::new(
            app.clone()
                .layer(axum::Extension(axum::extract::ConnectInfo(peer))),
        );
        let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
        let stop = shutdown.clone();
        conns.spawn(async move {
            let _slot = slot;
            tokio::pin!(conn);
            let end = tokio::time::sleep(CONNECTION_MAX);
            tokio::pin!(end);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, from = %peer, "back office: connection ended");
                    }
                    return;
                }
                _ = stop.cancelled() => {}
                _ = &mut end => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
        });
    }
    conns.close();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, conns.wait()).await;
    Ok(())
}

/// A cookie's value from the request's `Cookie` headers (the
/// technician's console reads its session cookie with it too).
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The page language: `?lang=` (which also sets the cookie), the cookie,
/// then `Accept-Language`.
fn lang_of(headers: &HeaderMap, query: Option<&str>) -> (Lang, Option<Lang>) {
    if let Some(l) = query.and_then(Lang::parse) {
        return (l, Some(l));
    }
    if let Some(l) = cookie(headers, LANG_COOKIE).and_then(Lang::parse) {
        return (l, None);
    }
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    (Lang::from_accept(accept), None)
}

/// A logged-in operator: the session and the operator as stored now.
#[derive(Debug, Clone)]
struct Who {
    sid: String,
    session: Session,
    op: Operator,
}

impl Who {
    fn role(&self) -> Role {
        self.op.role
    }
}

/// The session behind the request's cookie, if it is live and its
/// operator is still enabled.
async fn who(state: &Backoffice, headers: &HeaderMap) -> Option<Who> {
    let sid = cookie(headers, SESSION_COOKIE)?.to_owned();
    let session = state.sessions.get(&sid, std::time::Instant::now())?;
    match state.ops.get(session.operator.clone()).await {
        Ok(Some(op)) if !op.disabled => Some(Who { sid, session, op }),
        Ok(_) => {
            state.sessions.close(&sid);
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "back office: cannot read operators");
            None
        }
    }
}

/// The page frame.
fn layout(lang: Lang, who: Option<&Who>, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — " (tr(lang, T::Title)) }
                style { (maud::PreEscaped(CSS)) }
            }
            body {
                nav {
                    a href="/" { (tr(lang, T::Customers)) }
                    @if who.is_some() { " · " a href="/programme" { (tr(lang, T::Programme)) } }
                    @if who.is_some() { " · " a href="/reports" { (tr(lang, T::Reports)) } }
                    @if who.is_some_and(|w| w.role() == Role::Admin) {
                        " · " a href="/audit" { (tr(lang, T::Audit)) }
                    }
                    span.right {
                        a href="?lang=ru" { "RU" } " " a href="?lang=en" { "EN" }
                        @if let Some(w) = who {
                            " · " (w.op.name) " (" (w.role()) ") "
                            form.inline method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(w.session.csrf);
                                button { (tr(lang, T::LogOut)) }
                            }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

const CSS: &str = "body{font-family:sans-serif;margin:0;max-width:1300px}\
nav{background:#234;color:#fff;padding:.5em 1em}nav a{color:#fff}\
.right{float:right}main{padding:0 1em}table{border-collapse:collapse;width:100%}\
td,th{border-bottom:1px solid #ccc;padding:.25em .5em;text-align:left}\
.err{color:#b00}.ok{color:#070}form.inline{display:inline}\
label{display:block;margin:.3em 0}label.inline{display:inline}\
input,select{max-width:100%;box-sizing:border-box}\
@media (max-width:900px){table{display:block;overflow-x:auto}}";

/// A full page as a response, with the language cookie when `?lang=`
/// chose one.
fn page(status: StatusCode, set_lang: Option<Lang>, m: Markup) -> Response {
    let mut r = (status, axum::response::Html(m.into_string())).into_response();
    if let Some(l) = set_lang
        && let Ok(v) = HeaderValue::from_str(&format!(
            "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Strict; HttpOnly",
            l.code()
        ))
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// A form page's status: 422 when it shows errors next to its fields.
fn form_status(has_errors: bool) -> StatusCode {
    if has_errors {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    }
}

/// Where a visitor without a session goes.
fn to_login() -> Response {
    Redirect::to("/login").into_response()
}

/// A short error page.
fn refuse(status: StatusCode, lang: Lang, who: Option<&Who>, t: T) -> Response {
    let text = tr(lang, t);
    page(
        status,
        None,
        layout(lang, who, text, html! { p.err { (text) } }),
    )
}
