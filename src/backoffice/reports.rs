//! `GET /reports` (every role): a period's points movements per day, week
//! or month (and store, till), new customers, the liability, the points
//! burning soon and the top customers, each table with its CSV
//! (`GET /reports.csv?section=…`). Read-only: the form is a GET, so a
//! report is a link that can be bookmarked, and it changes nothing to
//! audit. The figures come from [`crate::ledger::Ledger::report`].

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use rust_decimal::Decimal;
use serde::Deserialize;
use time::{Duration, OffsetDateTime, UtcOffset};

use super::i18n::{Lang, T, tr};
use super::pages::csv_field;
use super::{Backoffice, Who, lang_of, layout, page, refuse, to_login, who};
use crate::ledger::LedgerError;
use crate::ledger::report::{self, Granularity, Report, ReportQuery};
use crate::ledger::rules::RulesError;

/// The form's fields as the query string carries them (all optional: an
/// empty form shows this month so far).
#[derive(Debug, Default, Deserialize)]
pub(super) struct Params {
    lang: Option<String>,
    from: Option<String>,
    to: Option<String>,
    granularity: Option<String>,
    by_store: Option<String>,
    by_terminal: Option<String>,
    section: Option<String>,
}

/// The form as typed, with an error per field.
#[derive(Debug)]
struct Form {
    from: String,
    to: String,
    granularity: String,
    by_store: bool,
    by_terminal: bool,
    from_err: Option<T>,
    to_err: Option<T>,
    granularity_err: Option<T>,
}

impl Form {
    /// The fields of `p`; defaults: from the 1st of this month to tomorrow
    /// (programme days), per day.
    fn of(p: &Params, offset: UtcOffset) -> Form {
        let today = OffsetDateTime::now_utc().to_offset(offset).date();
        let first = today.replace_day(1).unwrap_or(today);
        let text = |v: &Option<String>, d: time::Date| {
            v.as_deref()
                .map(|s| s.trim().chars().take(32).collect())
                .unwrap_or_else(|| d.to_string())
        };
        Form {
            from: text(&p.from, first),
            to: text(&p.to, today + Duration::days(1)),
            granularity: p.granularity.clone().unwrap_or_else(|| "day".into()),
            by_store: p.by_store.is_some(),
            by_terminal: p.by_terminal.is_some(),
            from_err: None,
            to_err: None,
            granularity_err: None,
        }
    }

    /// The query, or the form with its errors marked.
    fn check(mut self) -> Result<ReportQuery, Form> {
        let granularity = Granularity::parse(&self.granularity);
        if granularity.is_none() {
            self.granularity_err = Some(T::BadGranularity);
            self.granularity = "day".into();
        }
        let from = report::parse_date(&self.from);
        let to = report::parse_date(&self.to);
        if from.is_none() {
            self.from_err = Some(T::BadDay);
        }
        match (from, to) {
            (_, None) => self.to_err = Some(T::BadDay),
            (Some(f), Some(t)) if t <= f || (t - f).whole_days() > report::MAX_DAYS => {
                self.to_err = Some(T::BadPeriod)
            }
            _ => {}
        }
        match granularity {
            Some(g) if self.from_err.is_none() && self.to_err.is_none() => Ok(ReportQuery {
                from: self.from.clone(),
                to: self.to.clone(),
                granularity: g,
                by_store: self.by_store,
                by_terminal: self.by_terminal,
            }),
            _ => Err(self),
        }
    }

    /// The query string of this report (for the CSV links).
    fn query_string(q: &ReportQuery) -> String {
        let mut s = format!(
            "from={}&to={}&granularity={}",
            q.from,
            q.to,
            q.granularity.as_str()
        );
        if q.by_store {
            s.push_str("&by_store=1");
        }
        if q.by_terminal {
            s.push_str("&by_terminal=1");
        }
        s
    }
}

fn offset(st: &Backoffice) -> UtcOffset {
    UtcOffset::from_whole_seconds(st.ledger.programme().utc_offset_minutes.saturating_mul(60))
        .unwrap_or(UtcOffset::UTC)
}

/// Runs the report; a refusal the form can show goes back as the form.
async fn run(
    st: &Backoffice,
    q: ReportQuery,
    mut form: Form,
) -> Result<Report, Result<Form, String>> {
    match st.ledger.report(q, OffsetDateTime::now_utc()).await {
        Ok(r) => Ok(r),
        Err(LedgerError::Rules(RulesError::Invalid { field, .. })) => {
            match field.as_str() {
                "from" => form.from_err = Some(T::BadDay),
                "to" => form.to_err = Some(T::BadPeriod),
                _ => form.granularity_err = Some(T::TooManyRows),
            }
            Err(Ok(form))
        }
        Err(e) => Err(Err(e.to_string())),
    }
}

/// `GET /reports`: the form, and the report when a field was given.
async fn page_handler(st: &Arc<Backoffice>, headers: &HeaderMap, p: Params) -> Response {
    let (lang, set) = lang_of(headers, p.lang.as_deref());
    let Some(w) = who(st, headers).await else {
        return to_login();
    };
    let form = Form::of(&p, offset(st));
    // An empty form only shows itself; any field given runs the report.
    let asked = p.from.is_some() || p.to.is_some() || p.granularity.is_some();
    let (form, report) = if !asked {
        (form, None)
    } else {
        match form.check() {
            Err(form) => (form, None),
            Ok(q) => {
                let again = Form::of(&p, offset(st));
                match run(st, q, again).await {
                    Ok(r) => (Form::of(&p, offset(st)), Some(r)),
                    Err(Ok(form)) => (form, None),
                    Err(Err(e)) => return failed(lang, &w, &e),
                }
            }
        }
    };
    let status = super::form_status(
        form.from_err.is_some() || form.to_err.is_some() || form.granularity_err.is_some(),
    );
    let body = html! {
        (form_html(lang, &form))
        @if let Some(r) = &report { (tables(lang, r)) }
    };
    page(
        status,
        set,
        layout(lang, Some(&w), tr(lang, T::Reports), body),
    )
}

/// `GET /reports` (axum's handler).
pub(super) async fn show(
    State(st): State<Arc<Backoffice>>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    page_handler(&st, &headers, p).await
}

fn failed(lang: Lang, w: &Who, e: &str) -> Response {
    tracing::error!(error = %e, "back office: the report failed");
    refuse(StatusCode::INTERNAL_SERVER_ERROR, lang, Some(w), T::Failed)
}

/// The error next to the field `name` (`id="{name}-error"`).
fn err(lang: Lang, name: &str, e: Option<T>) -> Markup {
    html! { @if let Some(t) = e { " " span.err id={(name) "-error"} { (tr(lang, t)) } } }
}

fn form_html(lang: Lang, f: &Form) -> Markup {
    html! {
        form.report method="get" action="/reports" {
            label { (tr(lang, T::FirstDay)) " "
                input type="date" name="from" value=(f.from) required; (err(lang, "from", f.from_err)) }
            label { (tr(lang, T::DayAfter)) " "
                input type="date" name="to" value=(f.to) required; (err(lang, "to", f.to_err)) }
            label { (tr(lang, T::Granularity)) " "
                select name="granularity" {
                    @for (v, t) in [("day", T::Day), ("week", T::Week), ("month", T::Month)] {
                        option value=(v) selected[f.granularity == v] { (tr(lang, t)) }
                    }
                }
                (err(lang, "granularity", f.granularity_err))
            }
            label { input type="checkbox" name="by_store" value="1" checked[f.by_store]; " " (tr(lang, T::ByStore)) }
            label { input type="checkbox" name="by_terminal" value="1" checked[f.by_terminal]; " " (tr(lang, T::ByTerminal)) }
            button #run { (tr(lang, T::Run)) }
        }
    }
}

fn csv_link(lang: Lang, q: &ReportQuery, section: &str) -> Markup {
    let href = format!("/reports.csv?section={section}&{}", Form::query_string(q));
    html! { " " a.csv href=(href) { (tr(lang, T::Csv)) } }
}

fn tables(lang: Lang, r: &Report) -> Markup {
    let q = &r.query;
    html! {
        h2 { (tr(lang, T::Liability)) (csv_link(lang, q, "summary")) }
        table #summary {
            tr { th { (tr(lang, T::AsOf)) } td { (r.as_of) } }
            tr { th { (tr(lang, T::Liability)) } td.liability { (r.liability) } }
            tr { th { (tr(lang, T::BurningSoon)) } td.burning { (r.burning_soon) } }
        }
        h2 { (tr(lang, T::Movements)) (csv_link(lang, q, "movements")) }
        table #movements {
            tr {
                th { (tr(lang, T::Period)) }
                @if q.by_store { th { (tr(lang, T::Store)) } }
                @if q.by_terminal { th { (tr(lang, T::Terminal)) } }
                th { (tr(lang, T::Accrued)) } th { (tr(lang, T::Redeemed)) }
                th { (tr(lang, T::Expired)) } th { (tr(lang, T::Adjusted)) }
                th { (tr(lang, T::Returns)) }
            }
            @for m in &r.movements {
                tr.movement {
                    td { (m.period) }
                    @if q.by_store { td { (m.store.as_deref().unwrap_or("—")) } }
                    @if q.by_terminal { td { (m.terminal.as_deref().unwrap_or("—")) } }
                    td { (m.accrued) } td { (m.redeemed) } td { (m.expired) }
                    td { (m.adjusted) } td { (m.returns) }
                }
            }
            @if r.movements.is_empty() { tr { td colspan="8" { (tr(lang, T::NoRows)) } } }
        }
        h2 { (tr(lang, T::NewCustomers)) (csv_link(lang, q, "new_customers")) }
        table #new_customers {
            tr { th { (tr(lang, T::Period)) } th { (tr(lang, T::Count)) } }
            @for c in &r.new_customers { tr { td { (c.period) } td { (c.count) } } }
            @if r.new_customers.is_empty() { tr { td colspan="2" { (tr(lang, T::NoRows)) } } }
        }
        h2 { (tr(lang, T::TopCustomers)) (csv_link(lang, q, "top_customers")) }
        table #top_customers {
            tr { th { (tr(lang, T::Account)) } th { (tr(lang, T::Name)) } th { (tr(lang, T::Accrued)) } }
            @for c in &r.top_customers {
                tr {
                    td { a href={"/customers/" (c.account)} { "#" (c.account) } }
                    td { (c.name.as_deref().unwrap_or("—")) }
                    td { (c.accrued) }
                }
            }
            @if r.top_customers.is_empty() { tr { td colspan="3" { (tr(lang, T::NoRows)) } } }
        }
    }
}

/// A CSV line: text through [`csv_field`] (quoted, formulas defused);
/// amounts are our own decimals and go as they are, sign included.
fn line(out: &mut String, text: &[&str], amounts: &[Decimal]) {
    let mut fields: Vec<String> = text.iter().map(|f| csv_field(f)).collect();
    fields.extend(amounts.iter().map(Decimal::to_string));
    out.push_str(&fields.join(","));
    out.push_str("\r\n");
}

/// The CSV of one section of `r`, or `None` for an unknown section.
fn section_csv(r: &Report, section: &str) -> Option<String> {
    let mut out = String::new();
    match section {
        "summary" => {
            out.push_str("as_of,liability,burning_30_days\r\n");
            line(&mut out, &[&r.as_of], &[r.liability, r.burning_soon]);
        }
        "movements" => {
            out.push_str("period,store,terminal,accrued,redeemed,expired,adjusted,returns\r\n");
            for m in &r.movements {
                line(
                    &mut out,
                    &[
                        &m.period,
                        m.store.as_deref().unwrap_or(""),
                        m.terminal.as_deref().unwrap_or(""),
                    ],
                    &[m.accrued, m.redeemed, m.expired, m.adjusted, m.returns],
                );
            }
        }
        "new_customers" => {
            out.push_str("period,count\r\n");
            for c in &r.new_customers {
                line(&mut out, &[&c.period, &c.count.to_string()], &[]);
            }
        }
        "top_customers" => {
            out.push_str("account,name,accrued\r\n");
            for c in &r.top_customers {
                line(
                    &mut out,
                    &[&c.account.to_string(), c.name.as_deref().unwrap_or("")],
                    &[c.accrued],
                );
            }
        }
        _ => return None,
    }
    Some(out)
}

/// `GET /reports.csv?section=summary|movements|new_customers|top_customers&…`.
pub(super) async fn csv(
    State(st): State<Arc<Backoffice>>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    let (lang, _) = lang_of(&headers, None);
    let Some(w) = who(&st, &headers).await else {
        return to_login();
    };
    let section = p.section.clone().unwrap_or_default();
    if !matches!(
        section.as_str(),
        "summary" | "movements" | "new_customers" | "top_customers"
    ) {
        return refuse(StatusCode::NOT_FOUND, lang, Some(&w), T::NotFound);
    }
    let form = Form::of(&p, offset(&st));
    let q = match form.check() {
        Ok(q) => q,
        Err(_) => {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                lang,
                Some(&w),
                T::BadPeriod,
            );
        }
    };
    let r = match run(&st, q, Form::of(&p, offset(&st))).await {
        Ok(r) => r,
        Err(Ok(_)) => {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                lang,
                Some(&w),
                T::TooManyRows,
            );
        }
        Err(Err(e)) => return failed(lang, &w, &e),
    };
    let Some(body) = section_csv(&r, &section) else {
        return refuse(StatusCode::NOT_FOUND, lang, Some(&w), T::NotFound);
    };
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    let name = format!(
        "attachment; filename=\"report-{section}-{}-{}.csv\"",
        r.query.from, r.query.to
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(from: &str, to: &str, g: &str) -> Params {
        Params {
            from: Some(from.into()),
            to: Some(to.into()),
            granularity: Some(g.into()),
            ..Params::default()
        }
    }

    #[test]
    fn the_form_marks_each_bad_field() {
        let f = Form::of(&params("2026-13-01", "2026-01-01", "year"), UtcOffset::UTC);
        let f = f.check().unwrap_err();
        assert_eq!(f.from_err, Some(T::BadDay));
        assert_eq!(f.granularity_err, Some(T::BadGranularity));
        let f = Form::of(&params("2026-01-02", "2026-01-01", "day"), UtcOffset::UTC);
        assert_eq!(f.check().unwrap_err().to_err, Some(T::BadPeriod));
        let f = Form::of(&params("2026-01-01", "2027-01-03", "day"), UtcOffset::UTC);
        assert_eq!(f.check().unwrap_err().to_err, Some(T::BadPeriod));
        let q = Form::of(&params("2026-01-01", "2026-02-01", "week"), UtcOffset::UTC)
            .check()
            .unwrap();
        assert_eq!(q.granularity, Granularity::Week);
        assert_eq!(
            Form::query_string(&q),
            "from=2026-01-01&to=2026-02-01&granularity=week"
        );
    }

    #[test]
    fn csv_text_is_defused_and_amounts_keep_their_sign() {
        let mut out = String::new();
        line(&mut out, &["=cmd", "a,b"], &[Decimal::from(-5)]);
        assert_eq!(out, "'=cmd,\"a,b\",-5\r\n");
    }
}
