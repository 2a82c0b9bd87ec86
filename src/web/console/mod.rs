//! `/console`: the technician's console on the till's HTTP port. Every
//! device with its state, last error and the fix; printers with status,
//! queue, test print and preview; the fiscal registers' shift, ФН and OFD
//! state; a live feed of reads (masked); the configuration check; the
//! ledger's health. Russian and English.
//!
//! Access: an admin token from the token file, typed into the login form,
//! opens an in-memory session (the back office's bounded store, idle
//! expiry) named by a cookie that is HttpOnly, SameSite=Strict and
//! Path=/console, so the API (which uses no cookies) never sees it. Every
//! POST form repeats the session's CSRF token; failed logins are throttled
//! per address. The login form itself carries no CSRF token: it changes
//! nothing until a valid admin token is typed, and a foreign page's POST
//! is already refused by the origin check.

pub mod feed;
pub mod i18n;
pub mod page;
pub mod state;

use std::net::IpAddr;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use crate::api::session::{Peer, Session};
use crate::app::App;
use crate::auth::Role;
use crate::backoffice::cookie;
use crate::backoffice::session::{LoginThrottle, Session as ConsoleSession, Sessions};
use crate::redact::Secret;
use i18n::{Lang, T};

use super::ConnInfo;

/// The session cookie's name.
pub const COOKIE: &str = "posbridge_console";
const LANG_COOKIE: &str = "posbridge_console_lang";
/// The console's script, served as a file so the page's CSP forbids
/// inline scripts.
const SCRIPT_PATH: &str = "/console/console.js";

// One daemon per process: the sessions and the throttle live as long as it.
static SESSIONS: LazyLock<Sessions> = LazyLock::new(Sessions::default);
static THROTTLE: LazyLock<LoginThrottle> = LazyLock::new(LoginThrottle::default);

/// The routes.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/console", get(index))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route("/console/login", post(login))
        .route("/console/logout", post(logout))
        .route("/console/test-print", post(test_print))
        .route("/console/preview", get(preview))
        .route("/console/feed", get(feed))
        .route(SCRIPT_PATH, get(script))
}

fn session(headers: &HeaderMap) -> Option<(String, ConsoleSession)> {
    let id = cookie(headers, COOKIE)?;
    SESSIONS.get(id, Instant::now()).map(|s| (id.to_owned(), s))
}

fn lang_of(headers: &HeaderMap, query: Option<&str>) -> Lang {
    query
        .and_then(Lang::parse)
        .or_else(|| cookie(headers, LANG_COOKIE).and_then(Lang::parse))
        .unwrap_or_else(|| {
            Lang::from_accept(
                headers
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(""),
            )
        })
}

fn html(status: StatusCode, markup: maud::Markup) -> Response {
    let mut r = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response();
    // The page loads its own script and images only and is never framed.
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self'; frame-ancestors 'none'",
        ),
    );
    r.headers_mut()
        .insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

fn forbidden() -> Response {
    (StatusCode::FORBIDDEN, "log in to the console first").into_response()
}

#[derive(Deserialize)]
struct IndexQuery {
    lang: Option<String>,
    queued: Option<String>,
}

async fn index(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<IndexQuery>,
) -> Response {
    let lang = lang_of(&headers, q.lang.as_deref());
    let mut r = match session(&headers) {
        Some((_, s)) => {
            let d = state::gather(&app).await;
            html(
                StatusCode::OK,
                page::dashboard(lang, &d, &s.csrf, q.queued.as_deref()),
            )
        }
        None => html(StatusCode::OK, page::login(lang, None)),
    };
    if q.lang.as_deref().and_then(Lang::parse).is_some()
        && let Ok(v) = HeaderValue::from_str(&format!(
            "{LANG_COOKIE}={}; Path=/console; SameSite=Strict",
            lang.code()
        ))
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    lang: Option<String>,
}

async fn login(
    State(app): State<Arc<App>>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let lang = lang_of(&headers, f.lang.as_deref());
    let addr: IpAddr = conn.peer.ip();
    let now = Instant::now();
    if THROTTLE.blocked(addr, now).is_some() {
        return html(
            StatusCode::TOO_MANY_REQUESTS,
            page::login(lang, Some(T::TooMany)),
        );
    }
    let role = app.tokens().check(&Secret::new(f.token));
    let refused = match role {
        Some(Role::Admin) => None,
        Some(_) => Some((StatusCode::FORBIDDEN, T::NotAdmin)),
        None => Some((StatusCode::UNAUTHORIZED, T::BadToken)),
    };
    if let Some((status, why)) = refused {
        THROTTLE.failed(addr, now);
        tracing::info!(from = %addr, "console login refused");
        return html(status, page::login(lang, Some(why)));
    }
    THROTTLE.succeeded(addr);
    let id = match SESSIONS.open("admin", now) {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "no console session: the random source failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "no randomness").into_response();
        }
    };
    tracing::info!(from = %addr, "console login");
    let mut r = Redirect::to("/console").into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/console"
    )) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
    printer: Option<String>,
}

async fn logout(headers: HeaderMap, Form(f): Form<CsrfForm>) -> Response {
    let Some((id, s)) = session(&headers) else {
        return forbidden();
    };
    if !s.csrf_ok(&f.csrf) {
        return (StatusCode::FORBIDDEN, "bad CSRF token").into_response();
    }
    SESSIONS.close(&id);
    let mut r = Redirect::to("/console").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "posbridge_console=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0",
        ),
    );
    r
}

/// Runs a method as the console's admin, through the method table like
/// any client (validation, idempotency, counting).
async fn call(
    app: &Arc<App>,
    conn: &ConnInfo,
    method: &str,
    params: serde_json::Value,
) -> Result<serde_json::Value, crate::api::rpc::RpcError> {
    let session = Arc::new(Session::new(0, Peer::Tcp(conn.peer), Some(Role::Admin), 1));
    crate::api::methods::dispatch(app, &session, method, Some(params)).await
}

async fn test_print(
    State(app): State<Arc<App>>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let Some((_, s)) = session(&headers) else {
        return forbidden();
    };
    if !s.csrf_ok(&f.csrf) {
        return (StatusCode::FORBIDDEN, "bad CSRF token").into_response();
    }
    let printer = f.printer.unwrap_or_default();
    let job_id = match crate::random::hex::<8>(crate::random::system) {
        Ok(h) => format!("console-test-{h}"),
        Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, "no randomness").into_response(),
    };
    let doc = crate::cli::print_test::document(&printer, &job_id);
    match call(
        &app,
        &conn,
        "print.document",
        json!({"printer": printer, "job_id": job_id, "document": doc}),
    )
    .await
    {
        Ok(_) => Redirect::to(&format!("/console?queued={job_id}")).into_response(),
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, e.message).into_response(),
    }
}

#[derive(Deserialize)]
struct PreviewQuery {
    printer: String,
}

async fn preview(
    State(app): State<Arc<App>>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    Query(q): Query<PreviewQuery>,
) -> Response {
    if session(&headers).is_none() {
        return forbidden();
    }
    let doc = crate::cli::print_test::document(&q.printer, "preview");
    let r = call(
        &app,
        &conn,
        "print.preview",
        json!({"printer": q.printer, "document": doc}),
    )
    .await;
    let png = r.ok().and_then(|v| {
        base64::engine::general_purpose::STANDARD
            .decode(v["png_base64"].as_str()?)
            .ok()
    });
    match png {
        Some(png) => ([(header::CONTENT_TYPE, "image/png")], png).into_response(),
        None => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "no preview for this printer",
        )
            .into_response(),
    }
}

async fn feed(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if session(&headers).is_none() {
        return forbidden();
    }
    feed::stream(&app).into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        page::SCRIPT,
    )
        .into_response()
}
