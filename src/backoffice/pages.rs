//! The pages that only read: login form, customer search, the customer
//! card, the audit log and its CSV.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::i18n::{Lang, T, tr};
use super::operators::Role;
use super::{Backoffice, LOGIN_COOKIE, Who, lang_of, layout, page, refuse, to_login, who};
use crate::ledger::AccountRef;
use crate::ledger::accounts::{AccountError, Lookup};

/// Search results per page.
const SEARCH_PAGE: u32 = 20;
/// History lines per page.
const HISTORY_PAGE: u32 = 50;
/// Audit rows per page.
const AUDIT_PAGE: u32 = 50;

/// Query parameters the pages read.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Params {
    lang: Option<String>,
    q: Option<String>,
    cursor: Option<i64>,
}

/// `GET /login`.
pub(super) async fn login_page(headers: HeaderMap, Query(p): Query<Params>) -> Response {
    let (lang, set) = lang_of(&headers, p.lang.as_deref());
    login_response(StatusCode::OK, set, lang, None)
}

/// The login form with a fresh pre-session CSRF token, in the hidden
/// field and in a `Path=/login` cookie (double submit: a foreign page can
/// post the form but can neither read nor set our cookie, so its post
/// carries no matching pair). This stops login CSRF: a foreign page
/// logging the operator's browser in as someone else.
pub(super) fn login_response(
    status: StatusCode,
    set: Option<Lang>,
    lang: Lang,
    error: Option<T>,
) -> Response {
    let token = match crate::random::hex::<32>(crate::random::system) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "back office: no randomness for a login token");
            return page(
                StatusCode::INTERNAL_SERVER_ERROR,
                set,
                login_form(lang, Some(T::Failed), ""),
            );
        }
    };
    let mut r = page(status, set, login_form(lang, error, &token));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{LOGIN_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict"
    )) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// The login form, with an error above it and the CSRF token `csrf`.
pub(super) fn login_form(lang: Lang, error: Option<T>, csrf: &str) -> Markup {
    layout(
        lang,
        None,
        tr(lang, T::Login),
        html! {
            @if let Some(e) = error { p.err { (tr(lang, e)) } }
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(csrf);
                label { (tr(lang, T::Name)) " " input name="name" autocomplete="username" required; }
                label { (tr(lang, T::Password)) " "
                    input type="password" name="password" autocomplete="current-password" required; }
                button { (tr(lang, T::Login)) }
            }
        },
    )
}

/// `GET /`: the search form and, with `q`, a page of customers.
pub(super) async fn search(
    State(st): State<Arc<Backoffice>>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    let (lang, set) = lang_of(&headers, p.lang.as_deref());
    let Some(w) = who(&st, &headers).await else {
        return to_login();
    };
    let q = p.q.unwrap_or_default();
    let result = if q.trim().is_empty() {
        None
    } else {
        Some(
            st.ledger
                .search_accounts(q.clone(), p.cursor, SEARCH_PAGE)
                .await,
        )
    };
    let can_change = w.role() >= Role::Operator;
    // Bulk group assignment's controls, when there is a page to act on.
    let bulk = match &result {
        Some(Ok(page)) if can_change && !page.hits.is_empty() => {
            Some(super::customers::bulk_controls(&st, lang, &w, &q).await)
        }
        _ => None,
    };
    let body = html! {
        @if can_change { p { a #new-customer href="/customers/new" { (tr(lang, T::NewCustomer)) }
            @if w.role() == Role::Admin { " · " a #import href="/import" { (tr(lang, T::Import)) } } } }
        form method="get" action="/" {
            input name="q" value=(q) size="40" placeholder=(tr(lang, T::SearchHint));
            " " button { (tr(lang, T::Search)) }
        }
        @match &result {
            None => {}
            Some(Err(e)) => p.err { (e) },
            Some(Ok(page)) if page.hits.is_empty() => p { (tr(lang, T::NoResults)) },
            Some(Ok(page)) => {
                table {
                    tr { @if bulk.is_some() { th {} } th { "#" } th { (tr(lang, T::Name)) } th { (tr(lang, T::Phone)) }
                         th { (tr(lang, T::Email)) } th { (tr(lang, T::Cards)) }
                         th { (tr(lang, T::Status)) } }
                    @for h in &page.hits {
                        tr {
                            @if bulk.is_some() { td { input type="checkbox" form="bulk" name="id" value=(h.account); } }
                            td { a href={"/customers/" (h.account)} { (h.account) } }
                            td { a href={"/customers/" (h.account)} { (h.name.as_deref().unwrap_or("—")) } }
                            td { (h.phone.as_deref().unwrap_or("")) }
                            td { (h.email.as_deref().unwrap_or("")) }
                            td { (h.cards_masked.join(", ")) }
                            td { (h.status) }
                        }
                    }
                }
                @if let Some(b) = &bulk { (b) }
                @if let Some(c) = page.next_cursor {
                    p { a href={"/?q=" (urlencode(&q)) "&cursor=" (c)} { (tr(lang, T::Next)) " →" } }
                }
            }
        }
    };
    page(
        StatusCode::OK,
        set,
        layout(lang, Some(&w), tr(lang, T::Customers), body),
    )
}

/// Percent-encodes a query value.
pub(super) fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What the adjust form shows again after a refusal.
#[derive(Debug, Default)]
pub(super) struct AdjustForm {
    /// Field → error text.
    pub errors: HashMap<&'static str, String>,
    /// What was typed.
    pub amount: String,
    /// `accrue` or `deduct`.
    pub direction: String,
    /// The reason's key.
    pub reason: String,
    /// Free text.
    pub note: String,
    /// YYYY-MM-DD.
    pub expires: String,
    /// A past receipt the adjustment is for (optional).
    pub receipt: String,
}

/// `GET /customers/{id}`.
pub(super) async fn customer(
    State(st): State<Arc<Backoffice>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(p): Query<Params>,
) -> Response {
    let (lang, set) = lang_of(&headers, p.lang.as_deref());
    let Some(w) = who(&st, &headers).await else {
        return to_login();
    };
    customer_page(&st, lang, set, &w, id, p.cursor, None).await
}

/// The customer card; `form` refills the adjust form with its errors.
pub(super) async fn customer_page(
    st: &Backoffice,
    lang: Lang,
    set: Option<Lang>,
    w: &Who,
    id: i64,
    cursor: Option<i64>,
    form: Option<AdjustForm>,
) -> Response {
    let account = match st.ledger.get_account(Lookup::Account(id)).await {
        Ok(a) => a,
        Err(AccountError::UnknownAccount | AccountError::UnknownCard) => {
            return refuse(StatusCode::NOT_FOUND, lang, Some(w), T::NotFound);
        }
        Err(e) => return failed(lang, w, &e),
    };
    let history = match st
        .ledger
        .history(AccountRef::Account(id), cursor, HISTORY_PAGE)
        .await
    {
        Ok(h) => h,
        Err(e) => return failed(lang, w, &e),
    };
    let lots = match st.ledger.lots(id).await {
        Ok(l) => l,
        Err(e) => return failed(lang, w, &e),
    };
    let cards = match st.ledger.account_cards(id).await {
        Ok(c) => c,
        Err(e) => return failed(lang, w, &e),
    };
    // The level and the progress to the next, by the programme's tier rule
    // (no levels configured: no rows).
    let tier = st
        .ledger
        .tier_history(id, 1, time::OffsetDateTime::now_utc())
        .await
        .ok()
        .map(|(view, _)| view)
        .unwrap_or_default();
    let prog = st.ledger.programme();
    let at = |s: &str| super::programme::local_time(prog, s);
    let can_change = w.role() >= Role::Operator;
    let form = form.unwrap_or_default();
    let err = |f: &str| form.errors.get(f).cloned();
    let body = html! {
        table {
            tr { th { (tr(lang, T::Account)) } td { (account.account) } }
            tr { th { (tr(lang, T::Name)) } td { (account.name.as_deref().unwrap_or("—")) } }
            tr { th { (tr(lang, T::Phone)) } td { (account.phone.as_deref().unwrap_or("—")) } }
            tr { th { (tr(lang, T::Email)) } td { (account.email.as_deref().unwrap_or("—")) } }
            tr { th { (tr(lang, T::Status)) } td { (account.status) } }
            tr { th { (tr(lang, T::Groups)) } td #groups { (account.groups.join(", ")) } }
            tr { th { (tr(lang, T::Balance)) } td #balance { (history.balance) } }
            (super::programme::tier_rows(lang, &tier))
        }
        @if can_change { p { a #edit href={"/customers/" (id) "/edit"} { (tr(lang, T::Edit)) } } }
        h2 { (tr(lang, T::Cards)) }
        (super::cards::section(lang, w, id, &cards))
        h2 { (tr(lang, T::Lots)) }
        p.zone { (super::programme::zone_name(prog)) }
        table {
            tr { th { (tr(lang, T::When)) } th { (tr(lang, T::Amount)) }
                 th { (tr(lang, T::Remaining)) } th { (tr(lang, T::Burns)) } }
            @for l in &lots {
                tr { td { (at(&l.created_at)) } td { (l.amount) } td { (l.remaining) }
                     td.burns { @match &l.expires_at { Some(e) => (at(e)), None => (tr(lang, T::Never)) } } }
            }
        }
        @if can_change {
            h2 { (tr(lang, T::ManualPoints)) }
            @if let Some(e) = err("form") { p.err { (e) } }
            form method="post" action={"/customers/" (id) "/adjust"} {
                input type="hidden" name="csrf" value=(w.session.csrf);
                input type="hidden" name="form_key" value=(super::form_keys::new_key());
                label {
                    input type="radio" name="direction" value="accrue"
                        checked[form.direction != "deduct"]; " " (tr(lang, T::Accrue)) " "
                    input type="radio" name="direction" value="deduct"
                        checked[form.direction == "deduct"]; " " (tr(lang, T::Deduct))
                }
                label { (tr(lang, T::Amount)) " " input name="amount" value=(form.amount) required;
                    @if let Some(e) = err("amount") { " " span.err #amount-error { (e) } } }
                label { (tr(lang, T::Reason)) " " select name="reason" {
                    @for (key, t) in super::forms::REASONS {
                        option value=(key) selected[form.reason == *key] { (tr(lang, *t)) }
                    } }
                    @if let Some(e) = err("reason") { " " span.err { (e) } } }
                label { (tr(lang, T::Note)) " " input name="note" value=(form.note) size="50";
                    @if let Some(e) = err("note") { " " span.err { (e) } } }
                label { (tr(lang, T::Expires)) " " input type="date" name="expires" value=(form.expires);
                    @if let Some(e) = err("expires") { " " span.err { (e) } } }
                label { (tr(lang, T::ForReceipt)) " " input name="receipt" value=(form.receipt) maxlength="128";
                    @if let Some(e) = err("receipt") { " " span.err id="receipt-error" { (e) } } }
                button { (tr(lang, T::Submit)) }
            }
        }
        h2 { (tr(lang, T::History)) }
        table {
            tr { th { "#" } th { (tr(lang, T::Kind)) } th { (tr(lang, T::When)) }
                 th { (tr(lang, T::Where)) } th { (tr(lang, T::Amount)) }
                 th { (tr(lang, T::Reason)) } th { (tr(lang, T::CashierOperator)) } }
            @for t in &history.transactions {
                tr.txn {
                    td { (t.transaction) } td { (t.kind) } td { (at(&t.created_at)) }
                    td { (t.store.as_deref().unwrap_or("")) " " (t.terminal.as_deref().unwrap_or("")) }
                    td { (t.entries.iter().map(|e| e.amount).sum::<rust_decimal::Decimal>()) }
                    td.reason { (t.reason.as_deref().unwrap_or("")) }
                    // A sale's or return's cashier (as the POS named
                    // it), a manual posting's operator.
                    td.operator { (t.operator.as_deref().or(t.cashier.as_deref()).unwrap_or("")) }
                }
            }
        }
        @if let Some(c) = history.next_cursor {
            p { a href={"/customers/" (id) "?cursor=" (c)} { (tr(lang, T::Next)) " →" } }
        }
    };
    let status = super::form_status(!form.errors.is_empty());
    let title = account.name.clone().unwrap_or_else(|| format!("#{id}"));
    page(status, set, layout(lang, Some(w), &title, body))
}

/// The ledger failed: say so without details a customer should not see
/// in a screenshot (they are in the log).
fn failed(lang: Lang, w: &Who, e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "back office: a ledger call failed");
    refuse(StatusCode::INTERNAL_SERVER_ERROR, lang, Some(w), T::Failed)
}

/// `GET /audit` (admins).
pub(super) async fn audit(
    State(st): State<Arc<Backoffice>>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    let (lang, set) = lang_of(&headers, p.lang.as_deref());
    let Some(w) = who(&st, &headers).await else {
        return to_login();
    };
    if w.role() != Role::Admin {
        return refuse(StatusCode::FORBIDDEN, lang, Some(&w), T::Forbidden);
    }
    let (rows, next) = match st.ops.audit_page(p.cursor, AUDIT_PAGE).await {
        Ok(r) => r,
        Err(e) => return failed(lang, &w, &e),
    };
    let body = html! {
        p { a href="/audit.csv" { (tr(lang, T::ExportCsv)) } }
        table {
            tr { th { "#" } th { (tr(lang, T::When)) } th { (tr(lang, T::Operator)) }
                 th { (tr(lang, T::Action)) } th { (tr(lang, T::Target)) }
                 th { (tr(lang, T::Detail)) } th { (tr(lang, T::From)) } }
            @for r in &rows {
                tr.audit { td { (r.id) } td { (super::programme::local_time(st.ledger.programme(), &r.at)) } td { (r.operator) } td { (r.action) }
                     td { (r.target.as_deref().unwrap_or("")) } td { code { (r.detail) } }
                     td { (r.remote.as_deref().unwrap_or("")) } }
            }
        }
        @if let Some(c) = next { p { a href={"/audit?cursor=" (c)} { (tr(lang, T::Next)) " →" } } }
    };
    page(
        StatusCode::OK,
        set,
        layout(lang, Some(&w), tr(lang, T::Audit), body),
    )
}

/// `GET /audit.csv` (admins): the whole log, newest first (at most
/// [`super::operators::EXPORT_MAX`] rows).
pub(super) async fn audit_csv(State(st): State<Arc<Backoffice>>, headers: HeaderMap) -> Response {
    let (lang, _) = lang_of(&headers, None);
    let Some(w) = who(&st, &headers).await else {
        return to_login();
    };
    if w.role() != Role::Admin {
        return refuse(StatusCode::FORBIDDEN, lang, Some(&w), T::Forbidden);
    }
    let rows = match st.ops.audit_page(None, super::operators::EXPORT_MAX).await {
        Ok((rows, _)) => rows,
        Err(e) => return failed(lang, &w, &e),
    };
    let mut out = String::from("id,at,operator,action,target,detail,remote\r\n");
    for r in rows {
        let fields = [
            r.id.to_string(),
            r.at,
            r.operator,
            r.action,
            r.target.unwrap_or_default(),
            r.detail,
            r.remote.unwrap_or_default(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    let mut r = out.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"audit.csv\""),
    );
    r
}

/// One RFC 4180 field; a leading `=`, `+`, `-` or `@` is prefixed with `'`
/// so a spreadsheet does not run it as a formula.
pub(super) fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("{\"a\":1}"), "\"{\"\"a\"\":1}\"");
        assert_eq!(csv_field("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(urlencode("a b&c"), "a%20b%26c");
    }
}
