//! The pages that change something: login, logout, manual points and card
//! blocking. Every change checks the session's CSRF token and the role,
//! and is written to the audit log after the ledger accepted it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Form;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use super::i18n::{T, tr};
use super::operators::{AuditEntry, Role};
use super::pages::{AdjustForm, customer_page, login_response};
use super::{Backoffice, LOGIN_COOKIE, SESSION_COOKIE, Who, cookie, lang_of, refuse, who};
use crate::api::amount::{self, POINT_DECIMALS};
use crate::ledger::LedgerError;
use crate::ledger::accounts::AccountError;
use crate::redact::CardNumber;

/// The reasons an adjustment may give, by the key stored in the ledger.
pub(super) const REASONS: &[(&str, T)] = &[
    ("goodwill", T::ReasonGoodwill),
    ("complaint", T::ReasonComplaint),
    ("correction", T::ReasonCorrection),
    ("promotion", T::ReasonPromotion),
    ("other", T::ReasonOther),
];
/// The longest free text with a reason.
const NOTE_MAX: usize = 200;

/// `POST /login`.
#[derive(Deserialize)]
pub(super) struct Login {
    name: String,
    password: String,
    /// The login page's token ([`super::pages::login_response`]).
    #[serde(default)]
    csrf: String,
}

/// `POST /login`: a session cookie, or the form again.
pub(super) async fn login(
    State(st): State<Arc<Backoffice>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<Login>,
) -> Response {
    let (lang, _) = lang_of(&headers, None);
    let ip = from.ip();
    let paired = cookie(&headers, LOGIN_COOKIE).is_some_and(|c| {
        !c.is_empty() && crate::redact::constant_time_eq(c.as_bytes(), f.csrf.as_bytes())
    });
    if !paired {
        tracing::warn!(from = %ip, "back office: a login without its form's token");
        return login_response(StatusCode::FORBIDDEN, None, lang, Some(T::LoginExpired));
    }
    if st.throttle.blocked(ip, Instant::now()).is_some() {
        return login_response(StatusCode::TOO_MANY_REQUESTS, None, lang, Some(T::TooMany));
    }
    let checked = {
        let Ok(_turn) = st.hashing.acquire().await else {
            return refuse(StatusCode::SERVICE_UNAVAILABLE, lang, None, T::Failed);
        };
        st.ops.check_password(f.name.clone(), f.password).await
    };
    let op = match checked {
        Ok(Some(op)) => op,
        Ok(None) => {
            st.throttle.failed(ip, Instant::now());
            tracing::info!(from = %ip, "back office: a login was refused");
            return login_response(StatusCode::UNAUTHORIZED, None, lang, Some(T::BadLogin));
        }
        Err(e) => {
            tracing::error!(error = %e, "back office: login failed");
            return refuse(StatusCode::INTERNAL_SERVER_ERROR, lang, None, T::Failed);
        }
    };
    st.throttle.succeeded(ip);
    let sid = match st.sessions.open(&op.name, Instant::now()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "back office: no randomness for a session");
            return refuse(StatusCode::INTERNAL_SERVER_ERROR, lang, None, T::Failed);
        }
    };
    audit(&st, &op.name, "login", None, json!({}), from).await;
    let mut r = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={sid}; Path=/; HttpOnly; SameSite=Strict"
    )) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// A form that only carries the CSRF token.
#[derive(Deserialize)]
pub(super) struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`.
pub(super) async fn logout(
    State(st): State<Arc<Backoffice>>,
    headers: HeaderMap,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if let Some(w) = who(&st, &headers).await
        && w.session.csrf_ok(&f.csrf)
    {
        st.sessions.close(&w.sid);
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("bo_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"),
    );
    r
}

/// The session, its CSRF token checked and its role at least `least`;
/// else the response that refuses.
pub(super) async fn authorise(
    st: &Backoffice,
    headers: &HeaderMap,
    csrf: &str,
    least: Role,
) -> Result<Who, Response> {
    let (lang, _) = lang_of(headers, None);
    let Some(w) = who(st, headers).await else {
        return Err(refuse(StatusCode::FORBIDDEN, lang, None, T::Forbidden));
    };
    if !w.session.csrf_ok(csrf) {
        tracing::warn!(operator = %w.op.name, "back office: a form without its CSRF token");
        return Err(refuse(StatusCode::FORBIDDEN, lang, Some(&w), T::Forbidden));
    }
    if w.role() < least {
        return Err(refuse(StatusCode::FORBIDDEN, lang, Some(&w), T::Forbidden));
    }
    Ok(w)
}

/// Writes an audit row; a failure is logged (the change itself stands).
pub(super) async fn audit(
    st: &Backoffice,
    operator: &str,
    action: &str,
    target: Option<String>,
    detail: serde_json::Value,
    from: SocketAddr,
) {
    let e = AuditEntry {
        operator,
        action,
        target,
        detail,
        remote: Some(from.ip().to_string()),
    };
    if let Err(e) = st.ops.audit(e).await {
        tracing::error!(error = %e, action, "back office: cannot write the audit log");
    }
}

/// `POST /customers/{id}/cards/{index}`.
#[derive(Deserialize)]
pub(super) struct CardStatus {
    #[serde(default)]
    csrf: String,
    status: String,
}

/// Blocks or unblocks the account's `index`-th card (issue order).
pub(super) async fn card_status(
    State(st): State<Arc<Backoffice>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((id, index)): Path<(i64, usize)>,
    Form(f): Form<CardStatus>,
) -> Response {
    let w = match authorise(&st, &headers, &f.csrf, Role::Operator).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (lang, _) = lang_of(&headers, None);
    let status = match f.status.as_str() {
        "blocked" => "blocked",
        "active" => "active",
        _ => return refuse(StatusCode::BAD_REQUEST, lang, Some(&w), T::Failed),
    };
    let card = match st.ledger.account_cards(id).await {
        Ok(cards) => match cards.into_iter().nth(index) {
            Some(c) => c,
            None => return refuse(StatusCode::NOT_FOUND, lang, Some(&w), T::NotFound),
        },
        Err(_) => return refuse(StatusCode::NOT_FOUND, lang, Some(&w), T::NotFound),
    };
    // A lost card comes back only through its own confirmed action
    // (`cards::found`), never by an Unblock click.
    if card.status == "lost" {
        return refuse(StatusCode::CONFLICT, lang, Some(&w), T::ConfirmFound);
    }
    let masked = CardNumber::new(card.number.clone()).masked();
    if let Err(e) = st.ledger.set_card_status(card.number, status.into()).await {
        tracing::error!(error = %e, card = %masked, "back office: card status change failed");
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, lang, Some(&w), T::Failed);
    }
    let action = if status == "active" {
        "card.unblock"
    } else {
        "card.block"
    };
    audit(
        &st,
        &w.op.name,
        action,
        Some(format!("account:{id}")),
        json!({"card": masked, "from": card.status, "to": status}),
        from,
    )
    .await;
    Redirect::to(&format!("/customers/{id}")).into_response()
}

/// `POST /customers/{id}/adjust`.
#[derive(Deserialize)]
pub(super) struct Adjust {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    form_key: String,
    #[serde(default)]
    direction: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    expires: String,
    #[serde(default)]
    receipt: String,
}

/// A manual accrual or deduction on the account's booking card.
pub(super) async fn adjust(
    State(st): State<Arc<Backoffice>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<Adjust>,
) -> Response {
    let w = match authorise(&st, &headers, &f.csrf, Role::Operator).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (lang, _) = lang_of(&headers, None);
    let mut form = AdjustForm {
        amount: f.amount.clone(),
        direction: f.direction.clone(),
        reason: f.reason.clone(),
        note: f.note.clone(),
        expires: f.expires.clone(),
        receipt: f.receipt.clone(),
        ..AdjustForm::default()
    };
    let amount = match amount::parse(f.amount.trim(), false, POINT_DECIMALS) {
        Ok(a) if a > Decimal::ZERO => Some(a),
        Ok(_) => {
            form.errors.insert("amount", "> 0".into());
            None
        }
        Err(e) => {
            form.errors.insert("amount", e);
            None
        }
    };
    if let Some(a) = amount
        && w.role() == Role::Operator
        && w.op.limit.is_some_and(|l| a > l)
    {
        let limit = w.op.limit.unwrap_or_default();
        form.errors
            .insert("amount", format!("{} ({limit})", tr(lang, T::OverLimit)));
    }
    let deduct = match f.direction.as_str() {
        "accrue" => false,
        "deduct" => true,
        _ => {
            form.errors.insert("form", tr(lang, T::Failed).into());
            false
        }
    };
    if !REASONS.iter().any(|(k, _)| *k == f.reason) {
        form.errors.insert("reason", tr(lang, T::Reason).into());
    }
    let note = f.note.trim();
    if note.chars().count() > NOTE_MAX || note.chars().any(char::is_control) {
        form.errors
            .insert("note", format!("≤ {NOTE_MAX}, {}", tr(lang, T::Failed)));
    }
    let zone = super::programme::offset(st.ledger.programme());
    let expires = match parse_expiry(f.expires.trim(), OffsetDateTime::now_utc(), zone) {
        Ok(e) if e.is_some() && deduct => {
            form.errors.insert("expires", tr(lang, T::BadDate).into());
            None
        }
        Ok(e) => e,
        Err(()) => {
            form.errors.insert("expires", tr(lang, T::BadDate).into());
            None
        }
    };
    // Tied to a past receipt: a sale of this very customer, named in the
    // recorded reason with its transaction (history and export show it).
    let receipt = f.receipt.trim();
    let mut tied = None;
    if !receipt.is_empty() {
        match st.ledger.find_sale(receipt.to_owned()).await {
            Ok(Some(sale)) if sale.account == id => tied = Some(sale.transaction),
            Ok(_) | Err(AccountError::BadQuery(_)) => {
                form.errors
                    .insert("receipt", tr(lang, T::NoSuchReceipt).into());
            }
            Err(e) => {
                tracing::error!(error = %e, "back office: cannot look up a receipt");
                form.errors.insert("receipt", tr(lang, T::Failed).into());
            }
        }
    }
    if !super::form_keys::key_ok(&f.form_key) {
        form.errors.insert("form", tr(lang, T::Failed).into());
    }
    let Some(amount) = amount.filter(|_| form.errors.is_empty()) else {
        return customer_page(&st, lang, None, &w, id, None, Some(form)).await;
    };
    let number = match st.ledger.booking_card(id).await {
        Ok(n) => n,
        Err(e) => {
            form.errors.insert("form", e.to_string());
            return customer_page(&st, lang, None, &w, id, None, Some(form)).await;
        }
    };
    let mut reason = if note.is_empty() {
        f.reason.clone()
    } else {
        format!("{}: {note}", f.reason)
    };
    if let Some(txn) = tied {
        reason.push_str(&format!(" (receipt {receipt}, transaction {txn})"));
    }
    let signed = if deduct { -amount } else { amount };
    let key = format!("bo:{}", f.form_key);
    match st
        .ledger
        .adjust(
            key,
            number,
            signed,
            reason.clone(),
            w.op.name.clone(),
            expires,
        )
        .await
    {
        Ok(r) => {
            audit(
                &st,
                &w.op.name,
                "points.adjust",
                Some(format!("account:{id}")),
                // A repeated form is answered from the ledger's stored
                // result and audited again; the key and transaction tell
                // the two rows for one booking.
                json!({
                    "amount": signed.to_string(), "reason": reason, "key": f.form_key,
                    "transaction": r.transaction, "balance_after": r.balance_after.to_string(),
                }),
                from,
            )
            .await;
            Redirect::to(&format!("/customers/{id}")).into_response()
        }
        Err(e) => {
            let field = match &e {
                LedgerError::InsufficientBalance { .. } => "amount",
                _ => "form",
            };
            form.errors.insert(field, e.to_string());
            customer_page(&st, lang, None, &w, id, None, Some(form)).await
        }
    }
}

/// An optional `YYYY-MM-DD` expiry: the end of that day on the
/// programme's clock `zone` (the one the pages show times in), which must
/// be in the future.
fn parse_expiry(
    s: &str,
    now: OffsetDateTime,
    zone: time::UtcOffset,
) -> Result<Option<OffsetDateTime>, ()> {
    if s.is_empty() {
        return Ok(None);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(s, &fmt).map_err(|_| ())?;
    let at = date
        .with_hms(23, 59, 59)
        .map_err(|_| ())?
        .assume_offset(zone);
    if at <= now {
        return Err(());
    }
    Ok(Some(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_dates_are_strict_and_in_the_future() {
        let now = time::macros::datetime!(2026-12-07 12:00 UTC);
        let utc = time::UtcOffset::UTC;
        assert_eq!(parse_expiry("", now, utc), Ok(None));
        assert_eq!(
            parse_expiry("2027-01-31", now, utc),
            Ok(Some(time::macros::datetime!(2027-01-31 23:59:59 UTC)))
        );
        // On Moscow's clock the day ends three hours earlier in UTC.
        let moscow = time::macros::offset!(+3);
        assert_eq!(
            parse_expiry("2027-01-31", now, moscow),
            Ok(Some(time::macros::datetime!(2027-01-31 20:59:59 UTC)))
        );
        assert!(parse_expiry("2026-12-06", now, utc).is_err());
        assert!(parse_expiry("31.01.2027", now, utc).is_err());
        assert!(parse_expiry("2027-02-30", now, utc).is_err());
    }
}
