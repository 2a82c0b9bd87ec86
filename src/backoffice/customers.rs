//! Customers made and changed in the office: the "new customer" form, the
//! customer's "edit" form (contacts, code word, groups) and the bulk group
//! assignment on the search results. Everything goes through the
//! [`Ledger`](crate::ledger::Ledger)'s own account methods (register,
//! update_account, set_groups), so phone and e-mail are checked and
//! normalised exactly as the till's API does; each change is audited.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Form;
use axum::extract::{ConnectInfo, Path, Query, State};
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
use crate::api::rpc::code;
use crate::ledger::RemoteError;
use crate::ledger::accounts::{
    AccountError, GroupView, Lookup, Registration, Update, normalise_email, normalise_phone,
};
use crate::redact::{CardNumber, Secret};

/// The longest name, in characters.
pub(super) const NAME_MAX: usize = 100;
/// The most customers one bulk change touches (one page of results).
pub const BULK_MAX: usize = 100;
/// Form key → the account its "create" made, for a repeat (a double
/// click, a reload). After a restart a repeat is still refused by the
/// ledger as a duplicate phone or e-mail.
static CREATED: Memory<i64> = Memory::new();

/// A name as stored: trimmed; empty is none.
pub(super) fn name_of(raw: &str) -> Result<Option<String>, T> {
    let n = raw.trim();
    if n.chars().count() > NAME_MAX || n.chars().any(char::is_control) {
        return Err(T::BadName);
    }
    Ok((!n.is_empty()).then(|| n.to_owned()))
}

/// The field a ledger refusal belongs next to, and its text.
fn field_of(e: &AccountError) -> (&'static str, Option<T>) {
    match e {
        AccountError::BadPhone => ("phone", Some(T::BadPhone)),
        AccountError::BadEmail => ("email", Some(T::BadEmail)),
        AccountError::NoContact => ("phone", Some(T::NoContact)),
        AccountError::Duplicate("phone") => ("phone", Some(T::PhoneTaken)),
        AccountError::Duplicate(_) => ("email", Some(T::EmailTaken)),
        AccountError::CardTaken | AccountError::CardInactive(_) => ("card", Some(T::CardTaken)),
        AccountError::BadCardNumber => ("card", Some(T::BadCard)),
        AccountError::OtherProgramme => ("card", Some(T::OtherProgramme)),
        AccountError::BadCodeWord => ("code_word", Some(T::BadCodeWord)),
        AccountError::UnknownGroup(_) | AccountError::BadGroupName => {
            ("groups", Some(T::UnknownGroup))
        }
        AccountError::Remote(RemoteError::Remote { code, data, .. }) => remote_field(*code, data),
        _ => ("form", None),
    }
}

/// A central ledger's refusal (its JSON-RPC code and data) next to its
/// field, as [`field_of`] places the embedded ledger's.
fn remote_field(c: i64, data: &serde_json::Value) -> (&'static str, Option<T>) {
    let field = data.get("field").and_then(|f| f.as_str()).unwrap_or("");
    match (c, field) {
        (code::ACCOUNT_EXISTS, "phone") => ("phone", Some(T::PhoneTaken)),
        (code::ACCOUNT_EXISTS, _) => ("email", Some(T::EmailTaken)),
        (code::CARD_TAKEN | code::CARD_INACTIVE, _) => ("card", Some(T::CardTaken)),
        (code::CARD_OTHER_PROGRAMME, _) => ("card", Some(T::OtherProgramme)),
        (code::UNKNOWN_GROUP, _) => ("groups", Some(T::UnknownGroup)),
        (code::INVALID_PARAMS, "phone") => ("phone", Some(T::BadPhone)),
        (code::INVALID_PARAMS, "email") => ("email", Some(T::BadEmail)),
        (code::INVALID_PARAMS, "card_number") => ("card", Some(T::BadCard)),
        (code::INVALID_PARAMS, "code_word") => ("code_word", Some(T::BadCodeWord)),
        _ => ("form", None),
    }
}

/// Whether the ledger said "no such account or card" (either ledger).
pub(super) fn is_unknown(e: &AccountError) -> bool {
    match e {
        AccountError::UnknownAccount | AccountError::UnknownCard => true,
        AccountError::Remote(RemoteError::Remote { code, .. }) => *code == code::UNKNOWN_CARD,
        _ => false,
    }
}

/// What a customer form shows again: what was typed (never the code
/// word) and the error next to each field.
#[derive(Debug, Default)]
struct Typed {
    name: String,
    phone: String,
    email: String,
    card: String,
    groups: Vec<String>,
    errors: HashMap<&'static str, String>,
}

impl Typed {
    /// Reads the repeated-key form body (checkboxes repeat `groups`).
    fn from_pairs(pairs: &[(String, String)]) -> (Typed, Fields) {
        let mut t = Typed::default();
        let mut f = Fields::default();
        for (k, v) in pairs {
            match k.as_str() {
                "name" => t.name = v.clone(),
                "phone" => t.phone = v.clone(),
                "email" => t.email = v.clone(),
                "card" => t.card = v.clone(),
                "groups" if t.groups.len() < 64 => t.groups.push(v.clone()),
                "csrf" => f.csrf = v.clone(),
                "form_key" => f.form_key = v.clone(),
                "code_word" => f.code_word = v.clone(),
                "clear_code_word" => f.clear_code_word = true,
                _ => {}
            }
        }
        (t, f)
    }

    fn err(&mut self, field: &'static str, lang: Lang, t: T) {
        self.errors
            .entry(field)
            .or_insert_with(|| tr(lang, t).into());
    }
}

/// The parts of a customer form that are not shown again.
#[derive(Debug, Default)]
struct Fields {
    csrf: String,
    form_key: String,
    code_word: String,
    clear_code_word: bool,
}

/// Checked contacts: name, phone (E.164), e-mail (lower case).
type Contacts = (Option<String>, Option<String>, Option<String>);

/// Checks name, phone and e-mail, noting errors next to their fields.
fn check_contacts(t: &mut Typed, lang: Lang) -> Option<Contacts> {
    let name = name_of(&t.name).map_err(|e| t.err("name", lang, e)).ok();
    let phone = match t.phone.trim() {
        "" => Some(None),
        p => match normalise_phone(p) {
            Some(p) => Some(Some(p)),
            None => {
                t.err("phone", lang, T::BadPhone);
                None
            }
        },
    };
    let email = match t.email.trim() {
        "" => Some(None),
        e => match normalise_email(e) {
            Some(e) => Some(Some(e)),
            None => {
                t.err("email", lang, T::BadEmail);
                None
            }
        },
    };
    if let (Some(None), Some(None)) = (&phone, &email) {
        t.err("phone", lang, T::NoContact);
    }
    Some((name?, phone?, email?))
}

/// A code word, if one was typed: 2 to 64 characters.
fn check_code_word(t: &mut Typed, lang: Lang, word: &str) -> Option<Option<Secret>> {
    let w = word.trim();
    if w.is_empty() {
        return Some(None);
    }
    let n = w.chars().count();
    if !(2..=64).contains(&n) || w.chars().any(char::is_control) {
        t.err("code_word", lang, T::BadCodeWord);
        return None;
    }
    Some(Some(Secret::new(w.to_owned())))
}

/// The selected groups, each one that exists.
fn check_groups(t: &mut Typed, lang: Lang, known: &[GroupView]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for g in &t.groups {
        if known.iter().any(|k| k.name == *g) {
            out.push(g.clone());
        } else {
            t.errors
                .entry("groups")
                .or_insert_with(|| tr(lang, T::UnknownGroup).into());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// `?lang=`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct LangParam {
    pub(super) lang: Option<String>,
}

/// The fields shared by the new and the edit form.
fn contact_fields(lang: Lang, t: &Typed, groups: &[GroupView]) -> Markup {
    let err = |f: &str| t.errors.get(f).cloned();
    html! {
        label { (tr(lang, T::Name)) " " input name="name" value=(t.name) size="40" maxlength="100";
            @if let Some(e) = err("name") { " " span.err #name-error { (e) } } }
        label { (tr(lang, T::Phone)) " " input name="phone" type="tel" value=(t.phone) size="20";
            @if let Some(e) = err("phone") { " " span.err #phone-error { (e) } } }
        label { (tr(lang, T::Email)) " " input name="email" type="email" value=(t.email) size="30";
            @if let Some(e) = err("email") { " " span.err #email-error { (e) } } }
        fieldset {
            legend { (tr(lang, T::Groups)) }
            @for g in groups {
                label style="display:inline-block;margin-right:1em" { input type="checkbox" name="groups" value=(g.name)
                    checked[t.groups.contains(&g.name)]; " " (g.name) }
            }
            @if let Some(e) = err("groups") { span.err #groups-error { (e) } }
        }
    }
}

/// `GET /customers/new` (operators and admins).
pub(super) async fn new_page(
    State(st): State<Arc<Backoffice>>,
    headers: HeaderMap,
    Query(p): Query<LangParam>,
) -> Response {
    let (lang, set) = lang_of(&headers, p.lang.as_deref());
    let Some(w) = who(&st, &headers).await else {
        return to_login();
    };
    if w.role() < Role::Operator {
        return refuse(StatusCode::FORBIDDEN, lang, Some(&w), T::Forbidden);
    }
    new_form(&st, lang, set, &w, Typed::default()).await
}

async fn new_form(st: &Backoffice, lang: Lang, set: Option<Lang>, w: &Who, t: Typed) -> Response {
    let groups = st.ledger.list_groups().await.unwrap_or_default();
    let err = |f: &str| t.errors.get(f).cloned();
    let body = html! {
        @if let Some(e) = err("form") { p.err #form-error { (e) } }
        form method="post" action="/customers/new" {
            input type="hidden" name="csrf" value=(w.session.csrf);
            input type="hidden" name="form_key" value=(new_form_key());
            (contact_fields(lang, &t, &groups))
            label { (tr(lang, T::CodeWord)) " "
                input name="code_word" type="password" autocomplete="off" size="20";
                @if let Some(e) = err("code_word") { " " span.err #code_word-error { (e) } } }
            label { (tr(lang, T::CardToAttach)) " "
                input name="card" value=(t.card) size="24" inputmode="numeric" autocomplete="off";
                @if let Some(e) = err("card") { " " span.err #card-error { (e) } } }
            button { (tr(lang, T::Create)) }
        }
    };
    let status = super::form_status(!t.errors.is_empty());
    page(
        status,
        set,
        layout(lang, Some(w), tr(lang, T::NewCustomer), body),
    )
}

/// `POST /customers/new`: registers the customer with a physical card (the
/// number typed) or a virtual one, then shows their card page. The form
/// key makes a repeat show the customer it created instead of a second one.
pub(super) async fn create(
    State(st): State<Arc<Backoffice>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let (mut t, f) = Typed::from_pairs(&pairs);
    let w = match authorise(&st, &headers, &f.csrf, Role::Operator).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (lang, _) = lang_of(&headers, None);
    if !key_ok(&f.form_key) {
        t.err("form", lang, T::Failed);
        return new_form(&st, lang, None, &w, t).await;
    }
    if let Some(id) = CREATED.get(&f.form_key) {
        return Redirect::to(&format!("/customers/{id}")).into_response();
    }
    let known = st.ledger.list_groups().await.unwrap_or_default();
    let contacts = check_contacts(&mut t, lang);
    let word = check_code_word(&mut t, lang, &f.code_word);
    let groups = check_groups(&mut t, lang, &known);
    let card = t.card.split_whitespace().collect::<String>();
    let card_shape = (4..=32).contains(&card.len()) && card.bytes().all(|b| b.is_ascii_digit());
    if !card.is_empty() && !card_shape {
        t.err("card", lang, T::BadCard);
    }
    let (Some((name, phone, email)), Some(word)) = (contacts, word) else {
        return new_form(&st, lang, None, &w, t).await;
    };
    if !t.errors.is_empty() {
        return new_form(&st, lang, None, &w, t).await;
    }
    let masked = (!card.is_empty()).then(|| CardNumber::new(card.clone()).masked());
    let r = Registration {
        phone,
        email,
        name,
        card_number: (!card.is_empty()).then_some(card),
        secret: None,
        groups: groups.clone(),
        code_word: word,
        no_welcome: false,
        birth_date: None,
        referrer: None,
        programme: None,
    };
    match st.ledger.register(r).await {
        Ok(reg) => {
            CREATED.set(&f.form_key, reg.account);
            audit(
                &st,
                &w.op.name,
                "customer.create",
                Some(format!("account:{}", reg.account)),
                json!({
                    "key": f.form_key, "card": CardNumber::new(reg.card_number.clone()).masked(),
                    "kind": reg.kind.to_string(), "groups": groups, "status": reg.status.to_string(),
                }),
                from,
            )
            .await;
            // A generated secret (a virtual card) is shown here once, as
            // "New secret" does: not in the audit or the log, and a repeat
            // of the form goes to the customer's page instead.
            match reg.secret {
                Some(s) => super::cards::shown_once(
                    lang,
                    &w,
                    reg.account,
                    &CardNumber::new(reg.card_number).masked(),
                    Some(&Secret::new(s)),
                    T::NewCustomer,
                ),
                None => Redirect::to(&format!("/customers/{}", reg.account)).into_response(),
            }
        }
        Err(e) => {
            let (field, text) = field_of(&e);
            match text {
                Some(x) => t.err(field, lang, x),
                None => {
                    tracing::error!(error = %e, card = ?masked, "back office: registration failed");
                    t.err("form", lang, T::Failed);
                }
            }
            new_form(&st, lang, None, &w, t).await
        }
    }
}

/// `GET /customers/{id}/edit` (operators and admins).
pub(super) async fn edit_page(
    State(st): State<Arc<Backoffice>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(p): Query<LangParam>,
) -> Response {
    let (lang, set) = lang_of(&headers, p.lang.as_deref());
    let Some(w) = who(&st, &headers).await else {
        return to_login();
    };
    if w.role() < Role::Operator {
        return refuse(StatusCode::FORBIDDEN, lang, Some(&w), T::Forbidden);
    }
    edit_form(&st, lang, set, &w, id, None).await
}

async fn edit_form(
    st: &Backoffice,
    lang: Lang,
    set: Option<Lang>,
    w: &Who,
    id: i64,
    typed: Option<Typed>,
) -> Response {
    let account = match st.ledger.get_account(Lookup::Account(id)).await {
        Ok(a) => a,
        Err(e) if is_unknown(&e) => {
            return refuse(StatusCode::NOT_FOUND, lang, Some(w), T::NotFound);
        }
        Err(e) => {
            tracing::error!(error = %e, "back office: cannot read an account");
            return refuse(StatusCode::INTERNAL_SERVER_ERROR, lang, Some(w), T::Failed);
        }
    };
    let groups = st.ledger.list_groups().await.unwrap_or_default();
    let t = typed.unwrap_or_else(|| Typed {
        name: account.name.clone().unwrap_or_default(),
        phone: account.phone.clone().unwrap_or_default(),
        email: account.email.clone().unwrap_or_default(),
        groups: account.groups.clone(),
        ..Typed::default()
    });
    let err = |f: &str| t.errors.get(f).cloned();
    let word_state = if account.has_code_word {
        T::CodeWordSet
    } else {
        T::CodeWordUnset
    };
    let body = html! {
        @if let Some(e) = err("form") { p.err #form-error { (e) } }
        form method="post" action={"/customers/" (id) "/edit"} {
            input type="hidden" name="csrf" value=(w.session.csrf);
            input type="hidden" name="form_key" value=(new_form_key());
            (contact_fields(lang, &t, &groups))
            label { (tr(lang, T::CodeWord)) " (" span #code-word-state { (tr(lang, word_state)) } "; "
                (tr(lang, T::CodeWordKeep)) ") "
                input name="code_word" type="password" autocomplete="off" size="20";
                @if let Some(e) = err("code_word") { " " span.err #code_word-error { (e) } } }
            label { input type="checkbox" name="clear_code_word" value="1"; " " (tr(lang, T::ClearCodeWord)) }
            button { (tr(lang, T::Save)) }
        }
        p { a href={"/customers/" (id)} { "← " (account.name.as_deref().unwrap_or("#")) } }
    };
    let status = super::form_status(!t.errors.is_empty());
    page(
        status,
        set,
        layout(lang, Some(w), tr(lang, T::EditCustomer), body),
    )
}

/// `POST /customers/{id}/edit`: replaces the contacts and groups with what
/// the form holds, sets or clears the code word. Idempotent by nature
/// (the same form twice leaves the same state), so its key only refuses a
/// form that was not rendered here.
pub(super) async fn edit(
    State(st): State<Arc<Backoffice>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let (mut t, f) = Typed::from_pairs(&pairs);
    let w = match authorise(&st, &headers, &f.csrf, Role::Operator).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (lang, _) = lang_of(&headers, None);
    if !key_ok(&f.form_key) {
        t.err("form", lang, T::Failed);
    }
    let known = st.ledger.list_groups().await.unwrap_or_default();
    let contacts = check_contacts(&mut t, lang);
    let word = check_code_word(&mut t, lang, &f.code_word);
    let groups = check_groups(&mut t, lang, &known);
    let (Some((name, phone, email)), Some(word)) = (contacts, word) else {
        return edit_form(&st, lang, None, &w, id, Some(t)).await;
    };
    if !t.errors.is_empty() {
        return edit_form(&st, lang, None, &w, id, Some(t)).await;
    }
    let code_word = match (word, f.clear_code_word) {
        (Some(w), _) => Some(Some(w)),
        (None, true) => Some(None),
        (None, false) => None,
    };
    let word_change = match &code_word {
        Some(Some(_)) => "set",
        Some(None) => "cleared",
        None => "unchanged",
    };
    let u = Update {
        name: Some(name),
        phone: Some(phone),
        email: Some(email),
        code_word,
        status: None,
        birth_date: None,
    };
    let before = st.ledger.get_account(Lookup::Account(id)).await.ok();
    if let Err(e) = st.ledger.update_account(id, u).await {
        return match e {
            e if is_unknown(&e) => refuse(StatusCode::NOT_FOUND, lang, Some(&w), T::NotFound),
            e => {
                let (field, text) = field_of(&e);
                match text {
                    Some(x) => t.err(field, lang, x),
                    None => {
                        tracing::error!(error = %e, "back office: account update failed");
                        t.err("form", lang, T::Failed);
                    }
                }
                edit_form(&st, lang, None, &w, id, Some(t)).await
            }
        };
    }
    if let Err(e) = st.ledger.set_groups(id, groups.clone()).await {
        let (field, text) = field_of(&e);
        t.err(field, lang, text.unwrap_or(T::Failed));
        return edit_form(&st, lang, None, &w, id, Some(t)).await;
    }
    // Which fields changed, not their values: the log is read by more
    // people than the customer's card.
    let mut changed: Vec<&str> = Vec::new();
    if let Some(b) = &before {
        let after = st.ledger.get_account(Lookup::Account(id)).await.ok();
        if let Some(a) = after {
            for (f, x, y) in [
                ("name", &b.name, &a.name),
                ("phone", &b.phone, &a.phone),
                ("email", &b.email, &a.email),
            ] {
                if x != y {
                    changed.push(f);
                }
            }
        }
    }
    audit(
        &st,
        &w.op.name,
        "customer.edit",
        Some(format!("account:{id}")),
        json!({"changed": changed, "code_word": word_change, "groups": groups, "key": f.form_key}),
        from,
    )
    .await;
    Redirect::to(&format!("/customers/{id}")).into_response()
}

/// `POST /customers/groups`: adds the selected customers (one page of
/// search results, at most [`BULK_MAX`]) to a group or removes them from
/// it. Idempotent by nature: adding twice or removing twice leaves the
/// same groups. One audit row per customer changed.
pub(super) async fn bulk_groups(
    State(st): State<Arc<Backoffice>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let mut csrf = String::new();
    let (mut group, mut op, mut back) = (String::new(), String::new(), String::new());
    let mut ids: Vec<i64> = Vec::new();
    let mut too_many = false;
    for (k, v) in &pairs {
        match k.as_str() {
            "csrf" => csrf = v.clone(),
            "group" => group = v.clone(),
            "op" => op = v.clone(),
            "q" => back = v.chars().take(200).collect(),
            "id" => match v.parse() {
                Ok(id) if ids.len() < BULK_MAX => ids.push(id),
                Ok(_) => too_many = true,
                Err(_) => {}
            },
            _ => {}
        }
    }
    let w = match authorise(&st, &headers, &csrf, Role::Operator).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (lang, _) = lang_of(&headers, None);
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() || too_many {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            lang,
            Some(&w),
            T::NothingSelected,
        );
    }
    let add = match op.as_str() {
        "add" => true,
        "remove" => false,
        _ => return refuse(StatusCode::BAD_REQUEST, lang, Some(&w), T::Failed),
    };
    let known = st.ledger.list_groups().await.unwrap_or_default();
    if !known.iter().any(|g| g.name == group) {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            lang,
            Some(&w),
            T::UnknownGroup,
        );
    }
    let mut changed: Vec<i64> = Vec::new();
    for id in &ids {
        let Ok(a) = st.ledger.get_account(Lookup::Account(*id)).await else {
            continue;
        };
        let has = a.groups.contains(&group);
        if has == add {
            continue;
        }
        let mut gs = a.groups;
        if add {
            gs.push(group.clone());
        } else {
            gs.retain(|g| *g != group);
        }
        match st.ledger.set_groups(*id, gs).await {
            Ok(_) => {
                changed.push(*id);
                audit(
                    &st,
                    &w.op.name,
                    if add { "group.add" } else { "group.remove" },
                    Some(format!("account:{id}")),
                    json!({"group": group}),
                    from,
                )
                .await;
            }
            Err(e) => tracing::error!(error = %e, account = id, "back office: group change failed"),
        }
    }
    let body = html! {
        p.ok #bulk-result { (tr(lang, T::GroupsChanged)) " " (changed.len()) " / " (ids.len()) }
        ul { @for id in &changed { li { a href={"/customers/" (id)} { "#" (id) } } } }
        @if !back.is_empty() {
            p { a href={"/?q=" (super::pages::urlencode(&back))} { "← " (tr(lang, T::Customers)) } }
        }
    };
    page(
        StatusCode::OK,
        None,
        layout(lang, Some(&w), tr(lang, T::Groups), body),
    )
}

/// The bulk form's controls under a page of search results; its
/// checkboxes (one per row, `form="bulk"`) are in the results table.
pub(super) async fn bulk_controls(st: &Backoffice, lang: Lang, w: &Who, q: &str) -> Markup {
    let groups = st.ledger.list_groups().await.unwrap_or_default();
    html! {
        form #bulk method="post" action="/customers/groups" {
            input type="hidden" name="csrf" value=(w.session.csrf);
            input type="hidden" name="q" value=(q);
            (tr(lang, T::Groups)) ": "
            select name="group" { @for g in &groups { option value=(g.name) { (g.name) } } }
            " " button name="op" value="add" { (tr(lang, T::AddToGroup)) }
            " " button name="op" value="remove" { (tr(lang, T::RemoveFromGroup)) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bounded_and_form_keys_remembered() {
        assert_eq!(name_of("  Ivan  "), Ok(Some("Ivan".into())));
        assert_eq!(name_of(" "), Ok(None));
        assert_eq!(name_of(&"я".repeat(101)), Err(T::BadName));
        assert_eq!(name_of("a\u{7}b"), Err(T::BadName));
        assert!(key_ok(&new_form_key()));
        assert!(!key_ok("x"));
        CREATED.set("k1", 7);
        assert_eq!(CREATED.get("k1"), Some(7));
        for i in 0..super::super::form_keys::KEPT {
            CREATED.set(&format!("f{i}"), 1);
        }
        assert_eq!(CREATED.get("k1"), None, "the oldest key is forgotten");
    }

    #[test]
    fn refusals_land_next_to_their_field() {
        assert_eq!(field_of(&AccountError::Duplicate("phone")).0, "phone");
        assert_eq!(field_of(&AccountError::Duplicate("email")).0, "email");
        assert_eq!(field_of(&AccountError::CardTaken).0, "card");
        assert_eq!(field_of(&AccountError::Busy).0, "form");
        let central = |c: i64, data| {
            field_of(&AccountError::Remote(RemoteError::Remote {
                code: c,
                message: String::new(),
                data,
            }))
        };
        assert_eq!(
            central(code::ACCOUNT_EXISTS, json!({"field": "phone"})),
            ("phone", Some(T::PhoneTaken))
        );
        assert_eq!(central(code::CARD_TAKEN, json!(null)).0, "card");
        assert!(is_unknown(&AccountError::Remote(RemoteError::Remote {
            code: code::UNKNOWN_CARD,
            message: String::new(),
            data: json!(null),
        })));
    }
}
