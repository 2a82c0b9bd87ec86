//! The programme page (`/programme`): the rules as the ledger runs them,
//! each with the configuration key that sets it, and the groups (admins
//! create and delete them). Also the programme's clock for every page
//! ([`local_time`]) and the tier progress on the customer card
//! ([`tier_rows`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use super::forms::{audit, authorise};
use super::i18n::{Lang, T, tr};
use super::operators::Role;
use super::{Backoffice, Who, lang_of, layout, page, refuse, to_login, who};
use crate::ledger::accounts::AccountError;
use crate::ledger::rules::Programme;
use crate::ledger::rules::tiers::{Combine, Progress};
use crate::ledger::tiers::TierView;

/// The longest group description.
const DESCRIPTION_MAX: usize = 200;

/// The programme's clock (`[ledger.programme] utc_offset_minutes`), the
/// one expiry days and tier windows are counted in.
pub(super) fn offset(p: &Programme) -> UtcOffset {
    UtcOffset::from_whole_seconds(p.utc_offset_minutes.saturating_mul(60)).unwrap_or(UtcOffset::UTC)
}

/// An RFC 3339 time from the ledger as `YYYY-MM-DD HH:MM` on the
/// programme's clock; text that is not such a time is shown as it is.
pub(super) fn local_time(p: &Programme, s: &str) -> String {
    let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) else {
        return s.to_owned();
    };
    let t = t.to_offset(offset(p));
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    t.format(&fmt).unwrap_or_else(|_| s.to_owned())
}

/// The programme's clock as `UTC+03:00`, for page headings.
pub(super) fn zone_name(p: &Programme) -> String {
    let o = offset(p);
    let (h, m, _) = o.as_hms();
    let sign = if o.is_negative() { '-' } else { '+' };
    format!("UTC{sign}{:02}:{:02}", h.unsigned_abs(), m.unsigned_abs())
}

/// The customer card's tier rows: the level and what the next one needs.
pub(super) fn tier_rows(lang: Lang, view: &TierView) -> Markup {
    html! {
        @if let Some(t) = &view.tier {
            tr { th { (tr(lang, T::Tier)) } td #tier { (t) } }
            tr { th { (tr(lang, T::NextTier)) } td #tier-progress {
                @match &view.progress {
                    None => (tr(lang, T::TopTier)),
                    Some(p) => (progress_text(lang, p)),
                }
            } }
        }
    }
}

/// "Gold: spend 500 more within 90 days or 3 more visit days within 30".
fn progress_text(lang: Lang, p: &Progress) -> String {
    let mut parts = Vec::new();
    if let Some(s) = p.spend_needed {
        let days = p.spend_period_days.unwrap_or(0);
        parts.push(format!(
            "{} {s} ({} {days} {})",
            tr(lang, T::SpendNeeded),
            tr(lang, T::Within),
            tr(lang, T::Days)
        ));
    }
    for (cat, need) in &p.category_spend_needed {
        parts.push(format!("{cat}: {} {need}", tr(lang, T::SpendNeeded)));
    }
    if let Some(v) = p.visits_needed {
        let days = p.visits_period_days.unwrap_or(0);
        parts.push(format!(
            "{} {v} ({} {days} {})",
            tr(lang, T::VisitsNeeded),
            tr(lang, T::Within),
            tr(lang, T::Days)
        ));
    }
    let join = match p.combine {
        Combine::Any => tr(lang, T::Or),
        Combine::All => tr(lang, T::And),
    };
    format!("{}: {}", p.next_tier, parts.join(&format!(" {join} ")))
}

/// Query parameters of `/programme`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Params {
    lang: Option<String>,
    /// The groups' page: those after this name.
    groups_after: Option<String>,
}

/// Groups per page of the programme page.
const GROUPS_PER_PAGE: u32 = 50;

/// A setting's value as written in the configuration file.
fn word(v: &impl serde::Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// Where a `[ledger.programme]` key is set.
fn key(k: &str) -> Markup {
    html! { code { "[ledger.programme] " (k) } }
}

/// `GET /programme` (viewers and up).
pub(super) async fn show(
    State(st): State<Arc<Backoffice>>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    let (lang, set) = lang_of(&headers, p.lang.as_deref());
    let Some(w) = who(&st, &headers).await else {
        return to_login();
    };
    let after = p
        .groups_after
        .filter(|a| !a.is_empty() && a.chars().count() <= 64);
    programme_page(&st, lang, set, &w, GroupForm::default(), after).await
}

/// What the group form shows again after a refusal.
#[derive(Debug, Default)]
pub(super) struct GroupForm {
    errors: HashMap<&'static str, String>,
    name: String,
    description: String,
}

async fn programme_page(
    st: &Backoffice,
    lang: Lang,
    set: Option<Lang>,
    w: &Who,
    form: GroupForm,
    after: Option<String>,
) -> Response {
    let p = st.ledger.programme();
    let s = st.ledger.account_settings();
    let groups = match st.ledger.groups_page(after, GROUPS_PER_PAGE).await {
        Ok(g) => g,
        Err(e) => {
            tracing::error!(error = %e, "back office: cannot list groups");
            return refuse(StatusCode::INTERNAL_SERVER_ERROR, lang, Some(w), T::Failed);
        }
    };
    let admin = w.role() == Role::Admin;
    let none = tr(lang, T::Never);
    let err = |f: &str| form.errors.get(f).cloned();
    let body = html! {
        p { (tr(lang, T::WhereSetHelp)) }
        table #rules {
            tr { th { (tr(lang, T::Setting)) } th { (tr(lang, T::Value)) } th { (tr(lang, T::WhereSet)) } }
            tr { td { (tr(lang, T::Name)) } td { (p.name) } td { (key("name")) } }
            tr { td { (tr(lang, T::AccrualPercent)) } td { (p.default_accrual_percent) " %" }
                 td { (key("default_accrual_percent")) } }
            tr { td { (tr(lang, T::CapPercent)) } td #cap { (p.cap_percent) " % (" (word(&p.cap_basis)) ")" }
                 td { (key("cap_percent")) ", " (key("cap_basis")) } }
            tr { td { (tr(lang, T::Precision)) } td { (p.precision) } td { (key("precision")) } }
            tr { td { (tr(lang, T::Rounding)) } td { (word(&p.accrual_rounding)) }
                 td { (key("accrual_rounding")) } }
            tr { td { (tr(lang, T::OnDiscounted)) } td { (p.accrue_on_discounted) }
                 td { (key("accrue_on_discounted")) } }
            tr { td { (tr(lang, T::OnPointsPart)) } td { (p.accrue_on_points_part) }
                 td { (key("accrue_on_points_part")) } }
            tr { td { (tr(lang, T::Expiry)) }
                 td #expiry { @match p.expiry_months { Some(m) => { (m) " " (tr(lang, T::Months)) }, None => (none) } }
                 td { (key("expiry_months")) } }
            tr { td { (tr(lang, T::TimeZone)) } td #zone { (zone_name(p)) } td { (key("utc_offset_minutes")) } }
            tr { td { (tr(lang, T::WelcomeBonus)) }
                 td { @match p.welcome_bonus { Some(b) => (b), None => "—" } }
                 td { (key("welcome_bonus")) } }
            tr { td { (tr(lang, T::WelcomeExpiry)) }
                 td { @match p.welcome_expiry_days { Some(d) => { (d) " " (tr(lang, T::Days)) }, None => (none) } }
                 td { (key("welcome_expiry_days")) } }
            tr { td { (tr(lang, T::Shortfall)) } td { (word(&p.refund_shortfall)) }
                 td { (key("refund_shortfall")) } }
            tr { td { (tr(lang, T::ExcludedSkus)) } td { (p.excluded_skus.join(", ")) }
                 td { (key("excluded_skus")) } }
            tr { td { (tr(lang, T::CardRanges)) } td { (s.card_ranges.join(", ")) }
                 td { code { "[ledger.registration]" } } }
            tr { td { (tr(lang, T::VirtualCards)) } td { (s.card.prefix) "… (" (s.card.length) ")" }
                 td { code { "[ledger.registration]" } } }
            tr { td { (tr(lang, T::RedeemByCode)) } td { (s.redeem_code.is_some()) }
                 td { code { "[ledger.redemption] by_code" } } }
        }
        h2 { (tr(lang, T::Categories)) }
        table #categories {
            tr { th { (tr(lang, T::Category)) } th { (tr(lang, T::AccrualPercent)) }
                 th { (tr(lang, T::CapPercent)) } th { (tr(lang, T::Excluded)) } }
            @for c in &p.categories {
                tr { td { (c.category) }
                     td { @if let Some(a) = c.accrual_percent { (a) " %" } }
                     td { @if let Some(a) = c.cap_percent { (a) " %" } }
                     td { (c.excluded) } }
            }
        }
        p { code { "[[ledger.programme.categories]]" } }
        h2 { (tr(lang, T::Tiers)) }
        table #tiers {
            tr { th { "#" } th { (tr(lang, T::Name)) } th { (tr(lang, T::AccrualPercent)) }
                 th { (tr(lang, T::CapPercent)) } th { (tr(lang, T::SpendNeeded)) }
                 th { (tr(lang, T::VisitsNeeded)) } th { (tr(lang, T::Groups)) } th { (tr(lang, T::Expiry)) } }
            @for t in &p.tiers {
                tr { td { (t.priority) } td { (t.name) }
                     // The level's own per-category settings under its flat ones.
                     td { @if let Some(a) = t.accrual_percent { (a) " %" }
                          @for c in &t.categories {
                              @if !c.cashback { br; (c.category) ": 0 %" }
                              @else if let Some(a) = c.accrual_percent { br; (c.category) ": " (a) " %" } } }
                     td { @if let Some(a) = t.cap_percent { (a) " %" }
                          @for c in &t.categories {
                              @if let Some(a) = c.cap_percent { br; (c.category) ": " (a) " %" } } }
                     td { @if let Some(m) = t.min_spend { (m) " / " (t.spend_period_days.unwrap_or(0)) " " (tr(lang, T::Days)) }
                          @for (c, m) in &t.category_min_spend { br; (c) ": " (m) } }
                     td { @if let Some(v) = t.min_visits { (v) " / " (t.visits_period_days.unwrap_or(0)) " " (tr(lang, T::Days)) } }
                     td { (t.groups.join(", ")) }
                     td { @match t.expiry_days { Some(0) => (none), Some(d) => { (d) " " (tr(lang, T::Days)) }, None => "—" } } }
            }
        }
        p { code { "[[ledger.programme.tiers]]" } }
        h2 { (tr(lang, T::Groups)) }
        @if let Some(e) = err("form") { p.err { (e) } }
        table #groups {
            tr { th { (tr(lang, T::Name)) } th { (tr(lang, T::Description)) } th { (tr(lang, T::Members)) } th {} }
            @for g in &groups.groups {
                tr { td { (g.name) } td { (g.description.as_deref().unwrap_or("")) } td { (g.members) }
                     td { @if admin {
                        form.inline method="post" action="/programme/groups/delete" {
                            input type="hidden" name="csrf" value=(w.session.csrf);
                            input type="hidden" name="name" value=(g.name);
                            @if g.members > 0 {
                                label.inline { input type="checkbox" name="force" value="yes";
                                    " " (tr(lang, T::ForceDelete)) }
                            }
                            " " button { (tr(lang, T::DeleteGroup)) }
                        }
                     } } }
            }
        }
        @if let Some(next) = &groups.next_after {
            p { a #groups-next href={"/programme?groups_after=" (super::pages::urlencode(next))} { (tr(lang, T::Next)) " →" } }
        }
        @if admin {
            h3 { (tr(lang, T::CreateGroup)) }
            form method="post" action="/programme/groups" {
                input type="hidden" name="csrf" value=(w.session.csrf);
                label { (tr(lang, T::Name)) " " input name="name" value=(form.name) maxlength="64";
                    @if let Some(e) = err("name") { " " span.err #name-error { (e) } } }
                label { (tr(lang, T::Description)) " " input name="description" value=(form.description) size="50";
                    @if let Some(e) = err("description") { " " span.err #description-error { (e) } } }
                button { (tr(lang, T::CreateGroup)) }
            }
            p { (tr(lang, T::GroupOverridesHelp)) }
        }
    };
    let status = super::form_status(!form.errors.is_empty());
    page(
        status,
        set,
        layout(lang, Some(w), tr(lang, T::Programme), body),
    )
}

/// `POST /programme/groups`.
#[derive(Deserialize)]
pub(super) struct NewGroup {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

/// Creates a group (admins). A repeat of the same form finds the group
/// there and says so next to the name: creating is idempotent by name.
pub(super) async fn create_group(
    State(st): State<Arc<Backoffice>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<NewGroup>,
) -> Response {
    let w = match authorise(&st, &headers, &f.csrf, Role::Admin).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (lang, _) = lang_of(&headers, None);
    let mut form = GroupForm {
        name: f.name.chars().take(100).collect(),
        description: f.description.chars().take(DESCRIPTION_MAX + 1).collect(),
        ..GroupForm::default()
    };
    let name = f.name.trim().to_owned();
    let description = f.description.trim().to_owned();
    if description.chars().count() > DESCRIPTION_MAX || description.chars().any(char::is_control) {
        form.errors
            .insert("description", format!("≤ {DESCRIPTION_MAX}"));
    }
    if name.is_empty() {
        form.errors
            .insert("name", tr(lang, T::BadGroupName).to_owned());
    }
    if !form.errors.is_empty() {
        return programme_page(&st, lang, None, &w, form, None).await;
    }
    let desc = (!description.is_empty()).then_some(description.clone());
    match st
        .ledger
        .create_group(name.clone(), desc)
        .await
        .map_err(typed)
    {
        Ok(g) => {
            audit(
                &st,
                &w.op.name,
                "group.create",
                Some(format!("group:{}", g.name)),
                json!({"description": g.description}),
                from,
            )
            .await;
            Redirect::to("/programme").into_response()
        }
        Err(e) => {
            let (field, text) = match e {
                AccountError::BadGroupName => ("name", tr(lang, T::BadGroupName).to_owned()),
                AccountError::GroupExists => ("name", tr(lang, T::GroupExists).to_owned()),
                other => {
                    tracing::error!(error = %other, "back office: group creation failed");
                    ("form", tr(lang, T::Failed).to_owned())
                }
            };
            form.errors.insert(field, text);
            programme_page(&st, lang, None, &w, form, None).await
        }
    }
}

/// `POST /programme/groups/delete`.
#[derive(Deserialize)]
pub(super) struct DeleteGroup {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    force: String,
}

/// A central ledger's refusal of a group change (its JSON-RPC code) as the
/// embedded ledger's own error, so both are shown next to the same field.
fn typed(e: AccountError) -> AccountError {
    use crate::api::rpc::code;
    use crate::ledger::RemoteError;
    let AccountError::Remote(RemoteError::Remote { code: c, data, .. }) = &e else {
        return e;
    };
    let field = data.get("field").and_then(|f| f.as_str());
    match (*c, field) {
        (code::GROUP_EXISTS, _) => AccountError::GroupExists,
        (code::INVALID_PARAMS, Some("name")) => AccountError::BadGroupName,
        (code::UNKNOWN_GROUP, _) => AccountError::UnknownGroup(
            data.get("group")
                .and_then(|g| g.as_str())
                .unwrap_or_default()
                .to_owned(),
        ),
        (code::GROUP_IN_USE, _) => AccountError::GroupInUse {
            members: data
                .get("members")
                .and_then(|m| m.as_i64())
                .unwrap_or_default(),
        },
        _ => e,
    }
}

/// Deletes a group (admins); one with members only with `force` ticked.
/// A repeat finds it gone and returns to the page.
pub(super) async fn delete_group(
    State(st): State<Arc<Backoffice>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<DeleteGroup>,
) -> Response {
    let w = match authorise(&st, &headers, &f.csrf, Role::Admin).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (lang, _) = lang_of(&headers, None);
    let force = f.force == "yes";
    match st
        .ledger
        .delete_group(f.name.clone(), force)
        .await
        .map_err(typed)
    {
        Ok(removed) => {
            audit(
                &st,
                &w.op.name,
                "group.delete",
                Some(format!("group:{}", f.name)),
                json!({"members_removed": removed, "force": force}),
                from,
            )
            .await;
            Redirect::to("/programme").into_response()
        }
        // Already gone: the first submission did it.
        Err(AccountError::UnknownGroup(_)) => Redirect::to("/programme").into_response(),
        Err(e) => {
            let text = match e {
                AccountError::GroupInUse { members } => {
                    format!("{} ({members})", tr(lang, T::GroupInUse))
                }
                other => {
                    tracing::error!(error = %other, "back office: group deletion failed");
                    tr(lang, T::Failed).to_owned()
                }
            };
            let mut form = GroupForm::default();
            form.errors.insert("form", format!("{}: {text}", f.name));
            programme_page(&st, lang, None, &w, form, None).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_on_the_programme_clock() {
        let p = Programme::default();
        assert_eq!(p.utc_offset_minutes, 180);
        assert_eq!(local_time(&p, "2027-06-06T21:00:00Z"), "2027-06-07 00:00");
        assert_eq!(local_time(&p, "not a time"), "not a time");
        assert_eq!(zone_name(&p), "UTC+03:00");
        let west = Programme {
            utc_offset_minutes: -330,
            ..Programme::default()
        };
        assert_eq!(zone_name(&west), "UTC-05:30");
    }
}
