//! The customer import (admins): a CSV of customers and their physical
//! cards from the system a shop leaves. A dry run (the default) lists
//! every row it would refuse and why, and counts what it would create;
//! "Import" applies the same check and then registers the rows in the
//! background (a large file takes longer than a request may), booking an
//! opening balance as a manual accrual with reason `import` under the
//! idempotency key `bo-import:{card}`. A row whose card already belongs
//! to a customer with the same contacts counts as imported, so running
//! the same file again creates nothing and books nothing.

mod parse;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Multipart, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde_json::json;

use super::customers::{LangParam, is_unknown};
use super::forms::{audit, authorise};
use super::i18n::{Lang, T, tr};
use super::operators::Role;
use super::{Backoffice, Who, lang_of, layout, page, refuse, to_login, who};
use crate::ledger::accounts::{AccountError, Lookup, Registration};
use crate::redact::CardNumber;
pub use parse::{FILE_MAX, FileError, Parsed, ROWS_MAX, Refusal, Row, parse};

/// The import route's body limit: the file and the form around it.
pub const IMPORT_BODY_LIMIT: usize = FILE_MAX + 64 * 1024;
/// Rows the result keeps when applying fails (the rest are counted).
const FAILED_KEPT: usize = 1000;

/// The last (or running) import, shown on `GET /import`.
#[derive(Debug, Clone, Default)]
struct Progress {
    running: bool,
    by: String,
    total: usize,
    created: usize,
    skipped: usize,
    failed: Vec<(usize, String)>,
    failed_count: usize,
}

static PROGRESS: Mutex<Option<Progress>> = Mutex::new(None);

fn progress() -> Option<Progress> {
    PROGRESS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

fn update(f: impl FnOnce(&mut Progress)) {
    let mut g = PROGRESS.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(Progress::default));
}

/// A refusal's words.
fn why(lang: Lang, r: &Refusal) -> String {
    match r {
        Refusal::Shape => tr(lang, T::BadRowShape).into(),
        Refusal::BadName => tr(lang, T::BadName).into(),
        Refusal::BadPhone => tr(lang, T::BadPhone).into(),
        Refusal::BadEmail => tr(lang, T::BadEmail).into(),
        Refusal::NoContact => tr(lang, T::NoContact).into(),
        Refusal::CardRequired => tr(lang, T::CardRequired).into(),
        Refusal::BadCard => tr(lang, T::BadCard).into(),
        Refusal::UnknownGroup(g) => format!("{}: {g}", tr(lang, T::UnknownGroup)),
        Refusal::BadBalance => tr(lang, T::BadBalance).into(),
        Refusal::PhoneInFile(n) => format!("{} {n}", tr(lang, T::DupPhoneInFile)),
        Refusal::EmailInFile(n) => format!("{} {n}", tr(lang, T::DupEmailInFile)),
        Refusal::CardInFile(n) => format!("{} {n}", tr(lang, T::DupCardInFile)),
        Refusal::PhoneTaken => tr(lang, T::PhoneTaken).into(),
        Refusal::EmailTaken => tr(lang, T::EmailTaken).into(),
        Refusal::CardTaken => tr(lang, T::CardTaken).into(),
        Refusal::OtherProgramme => tr(lang, T::OtherProgramme).into(),
        Refusal::Ledger(e) => e.clone(),
    }
}

/// What checking a file against the ledger found.
#[derive(Debug, Default)]
struct Plan {
    /// Rows to register.
    create: Vec<Row>,
    /// Rows already imported (their card is a customer's with the same
    /// contacts): nothing to register, the balance key repeats.
    skip: Vec<Row>,
    parsed: Parsed,
}

/// Checks the parsed rows against the ledger: groups exist, the card is
/// new (or this very customer's: already imported), the phone and e-mail
/// are nobody's.
async fn plan(st: &Backoffice, mut parsed: Parsed) -> Result<Plan, AccountError> {
    let groups: HashSet<String> = st
        .ledger
        .list_groups()
        .await?
        .into_iter()
        .map(|g| g.name)
        .collect();
    let rows = std::mem::take(&mut parsed.rows);
    let mut p = Plan {
        parsed,
        ..Plan::default()
    };
    let settings = st.ledger.account_settings();
    // As registration checks it: a configured range, or the virtual prefix.
    let in_range = |n: &str| {
        settings.card_ranges.is_empty()
            || settings
                .card_ranges
                .iter()
                .any(|r| n.starts_with(r.as_str()))
            || n.starts_with(settings.card.prefix.as_str())
    };
    for r in rows {
        if let Some(g) = r.groups.iter().find(|g| !groups.contains(*g)) {
            p.parsed.refuse(r.row, Refusal::UnknownGroup(g.clone()));
            continue;
        }
        if !in_range(&r.card) {
            p.parsed.refuse(r.row, Refusal::OtherProgramme);
            continue;
        }
        match st.ledger.get_account(Lookup::Card(r.card.clone())).await {
            Ok(a) if a.phone == r.phone && a.email == r.email => {
                p.skip.push(r);
                continue;
            }
            // A card that joined through a sale (no contact yet) is
            // adopted by registration, with its points.
            Ok(a) if a.phone.is_none() && a.email.is_none() => {}
            Ok(_) => {
                p.parsed.refuse(r.row, Refusal::CardTaken);
                continue;
            }
            Err(e) if is_unknown(&e) => {}
            Err(e) => return Err(e),
        }
        let mut taken = None;
        if let Some(ph) = &r.phone {
            match st.ledger.get_account(Lookup::Phone(ph.clone())).await {
                Ok(_) => taken = Some(Refusal::PhoneTaken),
                Err(e) if is_unknown(&e) => {}
                Err(e) => return Err(e),
            }
        }
        if let (None, Some(em)) = (&taken, &r.email) {
            match st.ledger.get_account(Lookup::Email(em.clone())).await {
                Ok(_) => taken = Some(Refusal::EmailTaken),
                Err(e) if is_unknown(&e) => {}
                Err(e) => return Err(e),
            }
        }
        match taken {
            Some(t) => p.parsed.refuse(r.row, t),
            None => p.create.push(r),
        }
    }
    p.parsed.refused.sort_by_key(|(n, _)| *n);
    Ok(p)
}

/// `GET /import`.
pub(super) async fn import_page(
    State(st): State<Arc<Backoffice>>,
    headers: HeaderMap,
    Query(p): Query<LangParam>,
) -> Response {
    let (lang, set) = lang_of(&headers, p.lang.as_deref());
    let Some(w) = who(&st, &headers).await else {
        return to_login();
    };
    if w.role() != Role::Admin {
        return refuse(StatusCode::FORBIDDEN, lang, Some(&w), T::Forbidden);
    }
    page(
        StatusCode::OK,
        set,
        layout(lang, Some(&w), tr(lang, T::Import), form(lang, &w, None)),
    )
}

/// The upload form, with an error above it, and the last import's result.
fn form(lang: Lang, w: &Who, error: Option<String>) -> Markup {
    let last = progress();
    html! {
        p { (tr(lang, T::ExplainImport)) " " (tr(lang, T::BadHeader)) }
        @if let Some(e) = error { p.err #file-error { (e) } }
        form method="post" action="/import" enctype="multipart/form-data" {
            input type="hidden" name="csrf" value=(w.session.csrf);
            label { (tr(lang, T::CsvFile)) " " input type="file" name="file" accept=".csv,text/csv" required; }
            button name="mode" value="dry" { (tr(lang, T::DryRun)) } " "
            button name="mode" value="apply" { (tr(lang, T::ApplyImport)) }
        }
        @if let Some(p) = last {
            h2 #import-state { (tr(lang, if p.running { T::ImportRunning } else { T::ImportDone })) }
            p #import-counts { (tr(lang, T::Created)) ": " (p.created) "; "
                (tr(lang, T::Skipped)) ": " (p.skipped) "; "
                (tr(lang, T::Refused)) ": " (p.failed_count) "; "
                (tr(lang, T::Rows)) ": " (p.total) " (" (p.by) ")" }
            (refusals(lang, p.failed.iter().map(|(n, e)| (*n, e.clone()))))
        }
    }
}

/// A table of refused rows.
fn refusals(lang: Lang, rows: impl Iterator<Item = (usize, String)>) -> Markup {
    html! {
        table #refused {
            tr { th { (tr(lang, T::Row)) } th { (tr(lang, T::Reason)) } }
            @for (n, e) in rows { tr.refused { td.row { (n) } td { (e) } } }
        }
    }
}

/// The multipart form: CSRF token, mode and the file (bounded).
#[derive(Default)]
struct Upload {
    csrf: String,
    apply: bool,
    file: Vec<u8>,
    too_big: bool,
}

async fn read_upload(mut m: Multipart) -> Option<Upload> {
    let mut u = Upload::default();
    while let Ok(Some(mut f)) = m.next_field().await {
        match f.name().unwrap_or("") {
            "csrf" => u.csrf = f.text().await.ok()?.chars().take(128).collect(),
            "mode" => u.apply = f.text().await.ok()? == "apply",
            "file" => loop {
                match f.chunk().await {
                    Ok(Some(c)) if u.file.len() + c.len() <= FILE_MAX => {
                        u.file.extend_from_slice(&c)
                    }
                    Ok(Some(_)) => {
                        u.too_big = true;
                        break;
                    }
                    Ok(None) => break,
                    Err(_) => return None,
                }
            },
            _ => {}
        }
    }
    Some(u)
}

/// `POST /import`: the dry run's report, or the import started.
pub(super) async fn import(
    State(st): State<Arc<Backoffice>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    m: Multipart,
) -> Response {
    let (lang, _) = lang_of(&headers, None);
    // Only an admin's session gets its (up to 5 MiB) body read.
    match who(&st, &headers).await {
        Some(w) if w.role() == Role::Admin => {}
        w => return refuse(StatusCode::FORBIDDEN, lang, w.as_ref(), T::Forbidden),
    }
    let Some(u) = read_upload(m).await else {
        return refuse(StatusCode::BAD_REQUEST, lang, None, T::BadFile);
    };
    let w = match authorise(&st, &headers, &u.csrf, Role::Admin).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let bad_file = |e: String| {
        page(
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            layout(lang, Some(&w), tr(lang, T::Import), form(lang, &w, Some(e))),
        )
    };
    if u.too_big {
        return bad_file(tr(lang, T::BadFile).into());
    }
    let parsed = match parse(&u.file) {
        Ok(p) => p,
        Err(FileError::BadHeader) => return bad_file(tr(lang, T::BadHeader).into()),
        Err(_) => return bad_file(tr(lang, T::BadFile).into()),
    };
    let plan = match plan(&st, parsed).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "back office: import check failed");
            return refuse(StatusCode::INTERNAL_SERVER_ERROR, lang, Some(&w), T::Failed);
        }
    };
    if !u.apply {
        let body = html! {
            p #would-create { (tr(lang, T::WouldCreate)) ": " strong { (plan.create.len()) } }
            p #already { (tr(lang, T::AlreadyImported)) ": " (plan.skip.len()) }
            h2 { (tr(lang, T::RefusedRows)) ": " span #refused-count { (plan.parsed.refused_count) } }
            (refusals(lang, plan.parsed.refused.iter().map(|(n, r)| (*n, why(lang, r)))))
            (form(lang, &w, None))
        };
        return page(
            StatusCode::OK,
            None,
            layout(lang, Some(&w), tr(lang, T::Import), body),
        );
    }
    {
        let mut g = PROGRESS.lock().unwrap_or_else(|e| e.into_inner());
        if g.as_ref().is_some_and(|p| p.running) {
            drop(g);
            return bad_file(tr(lang, T::ImportRunning).into());
        }
        *g = Some(Progress {
            running: true,
            by: w.op.name.clone(),
            total: plan.create.len() + plan.skip.len() + plan.parsed.refused_count,
            failed_count: plan.parsed.refused_count,
            failed: plan
                .parsed
                .refused
                .iter()
                .take(FAILED_KEPT)
                .map(|(n, r)| (*n, why(Lang::En, r)))
                .collect(),
            ..Progress::default()
        });
    }
    audit(
        &st,
        &w.op.name,
        "customer.import",
        None,
        json!({"create": plan.create.len(), "already": plan.skip.len(),
               "refused": plan.parsed.refused_count}),
        from,
    )
    .await;
    // Detached: the request's timeout must not cut an import in half
    // (though a half is safe to run again).
    tokio::spawn(apply(st.clone(), w.op.name.clone(), from, plan));
    Redirect::to("/import").into_response()
}

/// Registers the plan's rows and books their opening balances.
async fn apply(st: Arc<Backoffice>, operator: String, from: SocketAddr, plan: Plan) {
    for r in &plan.skip {
        // Booked already, or cut short before booking: the key decides.
        match book(&st, &operator, r).await {
            Ok(()) => update(|p| p.skipped += 1),
            Err(e) => fail(r.row, e),
        }
    }
    for r in plan.create {
        let reg = Registration {
            phone: r.phone.clone(),
            email: r.email.clone(),
            name: r.name.clone(),
            card_number: Some(r.card.clone()),
            secret: None,
            groups: r.groups.clone(),
            code_word: None,
            no_welcome: true,
            birth_date: None,
            referrer: None,
            programme: None,
        };
        match st.ledger.register(reg).await {
            Ok(done) => {
                audit(
                    &st,
                    &operator,
                    "customer.create",
                    Some(format!("account:{}", done.account)),
                    json!({"via": "import", "row": r.row,
                           "card": CardNumber::new(r.card.clone()).masked()}),
                    from,
                )
                .await;
                match book(&st, &operator, &r).await {
                    Ok(()) => update(|p| p.created += 1),
                    Err(e) => fail(r.row, e),
                }
            }
            Err(e) => fail(r.row, e.to_string()),
        }
    }
    let last = progress().unwrap_or_default();
    audit(
        &st,
        &operator,
        "customer.import.done",
        None,
        json!({"created": last.created, "skipped": last.skipped, "failed": last.failed_count}),
        from,
    )
    .await;
    update(|p| p.running = false);
}

/// The row's opening balance, once: a manual accrual keyed by the card.
async fn book(st: &Backoffice, operator: &str, r: &Row) -> Result<(), String> {
    let Some(amount) = r.balance else {
        return Ok(());
    };
    st.ledger
        .adjust(
            format!("bo-import:{}", r.card),
            r.card.clone(),
            amount,
            "import".into(),
            operator.to_owned(),
            None,
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn fail(row: usize, e: String) {
    update(|p| {
        p.failed_count += 1;
        if p.failed.len() < FAILED_KEPT {
            p.failed.push((row, e));
        }
    });
}
