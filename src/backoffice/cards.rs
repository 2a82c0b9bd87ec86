//! Card actions on the customer card: report a card lost, reactivate a
//! lost card that turned up (an explicit, confirmed action: the Unblock
//! button never does it), issue a replacement, and regenerate a card's
//! secret (shown once on the result page, never logged or audited).
//!
//! The ledger's card statuses are `active`, `blocked` and `lost`; a card
//! that is not `active` neither earns nor spends. A replaced card becomes
//! `lost`: the points stay on the account, which the new card shares.
//!
//! The ledger's card calls carry no idempotency key, so each form's random
//! key is remembered here (a [`Memory`]): a repeated form answers with the
//! first outcome and changes nothing. The memory lives as long as the
//! daemon, which is as long as the session whose CSRF token the form
//! carries, so no form can outlive it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Form;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::form_keys::{Memory, key_ok, new_key as new_form_key};
use super::forms::{audit, authorise};
use super::i18n::{Lang, T, tr};
use super::operators::Role;
use super::{Backoffice, Who, lang_of, layout, page, refuse, to_login, who};
use crate::ledger::accounts::{AccountError, CardRow};
use crate::redact::{CardNumber, Secret};

/// What a form's first submission did.
#[derive(Debug, Clone)]
enum Outcome {
    /// Still running (a double click): the repeat waits for nothing and
    /// says it is done.
    Pending,
    /// Done; where to go (or what to show) on a repeat.
    Done(String),
}

/// The card forms' keys already used.
static SEEN: Memory<Outcome> = Memory::new();

/// Claims `key`: `None` when it is new (now pending), else its outcome.
fn claim(key: &str) -> Option<Outcome> {
    SEEN.claim(key, Outcome::Pending)
}

/// Records `key`'s outcome.
fn finish(key: &str, outcome: String) {
    SEEN.set(key, Outcome::Done(outcome));
}

/// Forgets `key` (the action failed; the form may be sent again).
fn release(key: &str) {
    SEEN.forget(key);
}

/// The cards table of the customer card, with the actions `w` may take.
pub(super) fn section(lang: Lang, w: &Who, id: i64, cards: &[CardRow]) -> Markup {
    let can_change = w.role() >= Role::Operator;
    html! {
        table #cards {
            @for (i, c) in cards.iter().enumerate() {
                tr {
                    td.card { (CardNumber::new(c.number.clone()).masked()) }
                    td { (c.kind) } td.status { (c.status) }
                    td { @if can_change {
                        @if c.status == "lost" {
                            form.inline method="post" action={"/customers/" (id) "/cards/" (i) "/found"} {
                                input type="hidden" name="csrf" value=(w.session.csrf);
                                input type="hidden" name="form_key" value=(new_form_key());
                                label.inline { input type="checkbox" name="confirm" value="yes" required;
                                    " " (tr(lang, T::ConfirmFound)) }
                                " " button { (tr(lang, T::Reactivate)) }
                            }
                        } @else {
                            form.inline method="post" action={"/customers/" (id) "/cards/" (i)} {
                                input type="hidden" name="csrf" value=(w.session.csrf);
                                @if c.status == "active" {
                                    input type="hidden" name="status" value="blocked";
                                    button { (tr(lang, T::Block)) }
                                } @else {
                                    input type="hidden" name="status" value="active";
                                    button { (tr(lang, T::Unblock)) }
                                }
                            }
                            " "
                            form.inline method="post" action={"/customers/" (id) "/cards/" (i) "/lost"} {
                                input type="hidden" name="csrf" value=(w.session.csrf);
                                input type="hidden" name="form_key" value=(new_form_key());
                                button { (tr(lang, T::ReportLost)) }
                            }
                            " "
                            form.inline method="post" action={"/customers/" (id) "/cards/" (i) "/secret"} {
                                input type="hidden" name="csrf" value=(w.session.csrf);
                                input type="hidden" name="form_key" value=(new_form_key());
                                button { (tr(lang, T::RegenerateSecret)) }
                            }
                        }
                        " " a.replace href={"/customers/" (id) "/cards/" (i) "/replace"} { (tr(lang, T::Replace)) }
                    } }
                }
            }
        }
    }
}

/// The account's `index`-th card (issue order), or the refusal.
async fn card_at(
    st: &Backoffice,
    lang: Lang,
    w: &Who,
    id: i64,
    index: usize,
) -> Result<CardRow, Response> {
    match st.ledger.account_cards(id).await {
        Ok(cards) => cards
            .into_iter()
            .nth(index)
            .ok_or_else(|| refuse(StatusCode::NOT_FOUND, lang, Some(w), T::NotFound)),
        Err(_) => Err(refuse(StatusCode::NOT_FOUND, lang, Some(w), T::NotFound)),
    }
}

/// A form with a key: lost, found and secret.
#[derive(Deserialize)]
pub(super) struct Keyed {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    form_key: String,
    #[serde(default)]
    confirm: String,
}

/// `POST /customers/{id}/cards/{index}/lost`: the card is lost; it stops
/// earning and spending and only an explicit reactivation brings it back.
pub(super) async fn lost(
    st: State<Arc<Backoffice>>,
    from: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    path: Path<(i64, usize)>,
    Form(f): Form<Keyed>,
) -> Response {
    change_status(st, from, headers, path, f, "lost").await
}

/// `POST /customers/{id}/cards/{index}/found`: a lost card is active
/// again, only with the confirmation box ticked.
pub(super) async fn found(
    st: State<Arc<Backoffice>>,
    from: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    path: Path<(i64, usize)>,
    Form(f): Form<Keyed>,
) -> Response {
    change_status(st, from, headers, path, f, "active").await
}

async fn change_status(
    State(st): State<Arc<Backoffice>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((id, index)): Path<(i64, usize)>,
    f: Keyed,
    to: &'static str,
) -> Response {
    let w = match authorise(&st, &headers, &f.csrf, Role::Operator).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (lang, _) = lang_of(&headers, None);
    if !key_ok(&f.form_key) {
        return refuse(StatusCode::BAD_REQUEST, lang, Some(&w), T::Failed);
    }
    let back = format!("/customers/{id}");
    let key = format!("status:{}", f.form_key);
    if claim(&key).is_some() {
        return Redirect::to(&back).into_response();
    }
    let card = match card_at(&st, lang, &w, id, index).await {
        Ok(c) => c,
        Err(r) => {
            release(&key);
            return r;
        }
    };
    // Reactivation is only for a lost card, and only when confirmed.
    if to == "active" && (card.status != "lost" || f.confirm != "yes") {
        release(&key);
        return refuse(StatusCode::BAD_REQUEST, lang, Some(&w), T::ConfirmFound);
    }
    let masked = CardNumber::new(card.number.clone()).masked();
    if let Err(e) = st.ledger.set_card_status(card.number, to.into()).await {
        release(&key);
        tracing::error!(error = %e, card = %masked, "back office: card status change failed");
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, lang, Some(&w), T::Failed);
    }
    let action = if to == "lost" {
        "card.lost"
    } else {
        "card.found"
    };
    audit(
        &st,
        &w.op.name,
        action,
        Some(format!("account:{id}")),
        json!({"card": masked, "from": card.status, "to": to, "key": f.form_key}),
        from,
    )
    .await;
    finish(&key, back.clone());
    Redirect::to(&back).into_response()
}

/// `POST /customers/{id}/cards/{index}/secret`: a new secret, shown once.
pub(super) async fn secret(
    State(st): State<Arc<Backoffice>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((id, index)): Path<(i64, usize)>,
    Form(f): Form<Keyed>,
) -> Response {
    let w = match authorise(&st, &headers, &f.csrf, Role::Operator).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (lang, _) = lang_of(&headers, None);
    if !key_ok(&f.form_key) {
        return refuse(StatusCode::BAD_REQUEST, lang, Some(&w), T::Failed);
    }
    let key = format!("secret:{}", f.form_key);
    if claim(&key).is_some() {
        // The secret was shown once; a repeat does not make or show another.
        return refuse(StatusCode::CONFLICT, lang, Some(&w), T::SecretAgain);
    }
    let card = match card_at(&st, lang, &w, id, index).await {
        Ok(c) => c,
        Err(r) => {
            release(&key);
            return r;
        }
    };
    let masked = CardNumber::new(card.number.clone()).masked();
    let secret = match st.ledger.regenerate_secret(card.number).await {
        Ok(s) => Secret::new(s),
        Err(e) => {
            release(&key);
            tracing::error!(error = %e, card = %masked, "back office: secret regeneration failed");
            return refuse(StatusCode::INTERNAL_SERVER_ERROR, lang, Some(&w), T::Failed);
        }
    };
    audit(
        &st,
        &w.op.name,
        "card.secret",
        Some(format!("account:{id}")),
        json!({"card": masked, "key": f.form_key}),
        from,
    )
    .await;
    finish(&key, String::new());
    shown_once(lang, &w, id, &masked, Some(&secret), T::RegenerateSecret)
}

/// The result page that shows a new secret once (a new card's, a new
/// customer's generated one).
pub(super) fn shown_once(
    lang: Lang,
    w: &Who,
    id: i64,
    masked: &str,
    secret: Option<&Secret>,
    title: T,
) -> Response {
    let body = html! {
        p { (tr(lang, T::Cards)) ": " span #new-card { (masked) } }
        @if let Some(s) = secret {
            p { (tr(lang, T::SecretOnce)) }
            p { code #secret { (s.expose()) } }
        }
        p { a #customer-link href={"/customers/" (id)} { "← " (tr(lang, T::Account)) " " (id) } }
    };
    page(
        StatusCode::OK,
        None,
        layout(lang, Some(w), tr(lang, title), body),
    )
}

/// `GET /customers/{id}/cards/{index}/replace`: the replacement form.
pub(super) async fn replace_page(
    State(st): State<Arc<Backoffice>>,
    headers: HeaderMap,
    Path((id, index)): Path<(i64, usize)>,
) -> Response {
    let (lang, _) = lang_of(&headers, None);
    let Some(w) = who(&st, &headers).await else {
        return to_login();
    };
    if w.role() < Role::Operator {
        return refuse(StatusCode::FORBIDDEN, lang, Some(&w), T::Forbidden);
    }
    let card = match card_at(&st, lang, &w, id, index).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    replace_form(lang, &w, id, index, &card, "", None)
}

fn replace_form(
    lang: Lang,
    w: &Who,
    id: i64,
    index: usize,
    card: &CardRow,
    number: &str,
    error: Option<String>,
) -> Response {
    let masked = CardNumber::new(card.number.clone()).masked();
    let body = html! {
        p { (tr(lang, T::ReplaceHelp)) }
        form method="post" action={"/customers/" (id) "/cards/" (index) "/replace"} {
            input type="hidden" name="csrf" value=(w.session.csrf);
            input type="hidden" name="form_key" value=(new_form_key());
            label { (tr(lang, T::NewCardNumber)) " "
                input name="number" value=(number) inputmode="numeric" autocomplete="off" size="24";
                @if let Some(e) = &error { " " span.err #number-error { (e) } } }
            button { (tr(lang, T::Replace)) " " (masked) }
        }
        p { a #customer-link href={"/customers/" (id)} { "← " (tr(lang, T::Account)) " " (id) } }
    };
    let status = super::form_status(error.is_some());
    page(
        status,
        None,
        layout(lang, Some(w), tr(lang, T::Replace), body),
    )
}

/// `POST /customers/{id}/cards/{index}/replace`.
#[derive(Deserialize)]
pub(super) struct Replace {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    form_key: String,
    #[serde(default)]
    number: String,
}

/// Issues a new card (the typed physical number, or a generated virtual
/// one) on the same account, then marks the old one lost.
pub(super) async fn replace(
    State(st): State<Arc<Backoffice>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((id, index)): Path<(i64, usize)>,
    Form(f): Form<Replace>,
) -> Response {
    let w = match authorise(&st, &headers, &f.csrf, Role::Operator).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (lang, _) = lang_of(&headers, None);
    let card = match card_at(&st, lang, &w, id, index).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    // Spaces and dashes as printed on cards are allowed; the rest is the
    // ledger's rule (4 to 32 digits, in the programme's range).
    let number: String = f
        .number
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .take(64)
        .collect();
    let shown: String = f.number.chars().take(64).collect();
    let bad_length = !number.is_empty() && !(4..=32).contains(&number.len());
    if bad_length || !number.bytes().all(|b| b.is_ascii_digit()) {
        let e = tr(lang, T::BadCardNumber).to_owned();
        return replace_form(lang, &w, id, index, &card, &shown, Some(e));
    }
    if !key_ok(&f.form_key) {
        return refuse(StatusCode::BAD_REQUEST, lang, Some(&w), T::Failed);
    }
    let key = format!("replace:{}", f.form_key);
    match claim(&key) {
        None => {}
        Some(Outcome::Done(masked)) => return shown_once(lang, &w, id, &masked, None, T::Replace),
        Some(Outcome::Pending) => return Redirect::to(&format!("/customers/{id}")).into_response(),
    }
    let old = CardNumber::new(card.number.clone()).masked();
    let typed = (!number.is_empty()).then_some(number);
    let issued = match st.ledger.issue_card(id, typed, None).await {
        Ok(i) => i,
        Err(e) => {
            release(&key);
            let text = match &e {
                AccountError::BadCardNumber => tr(lang, T::BadCardNumber).to_owned(),
                AccountError::CardTaken => tr(lang, T::CardTaken).to_owned(),
                AccountError::OtherProgramme => tr(lang, T::OtherProgramme).to_owned(),
                AccountError::CardInactive(_) => tr(lang, T::AccountBlocked).to_owned(),
                _ => {
                    tracing::error!(error = %e, card = %old, "back office: card replacement failed");
                    tr(lang, T::Failed).to_owned()
                }
            };
            return replace_form(lang, &w, id, index, &card, &shown, Some(text));
        }
    };
    let new = CardNumber::new(issued.card_number.clone()).masked();
    if card.status != "lost"
        && let Err(e) = st
            .ledger
            .set_card_status(card.number.clone(), "lost".into())
            .await
    {
        // The new card exists; the old one stays as it was, and the
        // operator sees the failure (and may report it lost by hand).
        tracing::error!(error = %e, card = %old, "back office: the replaced card stayed as it was");
    }
    audit(
        &st,
        &w.op.name,
        "card.replace",
        Some(format!("account:{id}")),
        json!({"card": old, "from": card.status, "new_card": new, "kind": issued.kind,
               "key": f.form_key}),
        from,
    )
    .await;
    finish(&key, new.clone());
    let secret = issued.secret.map(Secret::new);
    shown_once(lang, &w, id, &new, secret.as_ref(), T::Replace)
}
