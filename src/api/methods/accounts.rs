//! Customers and cards: `account.register`, `account.activate`,
//! `account.confirmation.resend`, `account.get`, `account.update`,
//! `account.verify_code_word`, `card.issue`, `card.block`, `card.unblock`,
//! `card.secret.regenerate`.

use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

pub(super) use crate::api::errors::account_error;
use crate::api::rpc::{self, RpcError, code};
use crate::api::session::Session;
use crate::app::App;
use crate::auth::Role;
use crate::ledger::accounts::{PendingCode, Registration, Update};
use crate::notify::{Channel, Message, Purpose};
use crate::redact::{CardNumber, Secret};

fn need_admin(session: &Session, what: &str) -> Result<(), RpcError> {
    match session.role() {
        Some(Role::Admin) => Ok(()),
        role => Err(
            RpcError::new(code::FORBIDDEN, format!("{what} needs the admin role"))
                .with_data(json!({ "required": Role::Admin, "role": role })),
        ),
    }
}

/// Hands a code to the notifier. `Err` carries a description without the
/// code.
pub(super) async fn deliver(
    app: &Arc<App>,
    p: PendingCode,
    purpose: Purpose,
) -> Result<(), String> {
    let m = Message {
        account: p.account,
        purpose,
        channel: if p.channel == "phone" {
            Channel::Phone
        } else {
            Channel::Email
        },
        contact: p.contact,
        code: p.code,
    };
    match app.notifier.send(&m).await {
        Ok(()) => {
            let recorded = match purpose {
                Purpose::Registration => app.ledger.code_delivered(p.account).await,
                Purpose::Redemption => app.ledger.redeem_code_delivered(p.account).await,
            };
            if let Err(e) = recorded {
                // Delivered; only the resend limit is lost.
                tracing::error!(error = %e, account = p.account, "recording a delivered code failed");
            }
            tracing::info!(
                account = p.account,
                purpose = purpose.as_str(),
                via = app.notifier.name(),
                "code sent"
            );
            Ok(())
        }
        Err(e) => {
            tracing::warn!(
                account = p.account,
                purpose = purpose.as_str(),
                via = app.notifier.name(),
                error = %e,
                "code not delivered"
            );
            Err(e.to_string())
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterParams {
    phone: Option<String>,
    email: Option<String>,
    name: Option<String>,
    /// A physical card handed over at the till; absent: a virtual card.
    card_number: Option<String>,
    /// The physical card's secret code; absent: one is generated.
    secret: Option<Secret>,
    /// Must be true (or absent) when no card_number is given.
    #[serde(rename = "virtual")]
    is_virtual: Option<bool>,
    /// A physical card from a swipe or scan: its number and the secret
    /// the read carried, taken as they are.
    card_token: Option<String>,
    /// Groups to join (admin only).
    groups: Option<Vec<String>>,
    /// A word that identifies the customer without the card.
    code_word: Option<Secret>,
    /// `YYYY-MM-DD`, for the birthday bonus.
    birth_date: Option<String>,
    /// The inviter's card number or phone, for the referral bonus.
    referrer: Option<String>,
    /// The programme the account opens under (one this till serves);
    /// absent: the card range's, else the till's own.
    programme: Option<String>,
}

/// A `card_token` instead of `card_number` (+ `secret`): the card and the
/// secret its read carried, so a card registers with the secret printed or
/// encoded on it. The secret never travels back to the POS.
fn from_token(
    app: &App,
    token: Option<String>,
    number: &mut Option<String>,
    secret: &mut Option<Secret>,
    is_virtual: Option<bool>,
) -> Result<(), RpcError> {
    let Some(t) = token else { return Ok(()) };
    if number.is_some() || secret.is_some() || is_virtual.is_some() {
        return Err(RpcError::invalid_params(
            "card_token",
            "give card_token alone, without card_number, secret or virtual",
        ));
    }
    let entry = app.cards.resolve(&t).ok_or_else(|| {
        RpcError::new(code::CARD_TOKEN_INVALID, "card token unknown or expired")
            .with_data(json!({ "field": "card_token" }))
    })?;
    *number = Some(entry.number.expose().to_owned());
    *secret = entry.secret;
    Ok(())
}

fn check_name(name: Option<&String>) -> Result<(), RpcError> {
    if name.is_some_and(|n| n.chars().count() > 128 || n.chars().any(char::is_control)) {
        return Err(RpcError::invalid_params(
            "name",
            "at most 128 characters, no control characters",
        ));
    }
    Ok(())
}

pub(super) async fn register(
    app: &Arc<App>,
    session: &Arc<Session>,
    params: Option<Value>,
) -> Result<Value, RpcError> {
    let mut p: RegisterParams = rpc::params(params)?;
    from_token(
        app,
        p.card_token.take(),
        &mut p.card_number,
        &mut p.secret,
        p.is_virtual,
    )?;
    if p.card_number.is_none() && p.is_virtual == Some(false) {
        return Err(RpcError::invalid_params(
            "card_number",
            "give the physical card's number, or virtual: true",
        ));
    }
    if p.card_number.is_some() && p.is_virtual == Some(true) {
        return Err(RpcError::invalid_params(
            "virtual",
            "give card_number or virtual: true, not both",
        ));
    }
    check_name(p.name.as_ref())?;
    let groups = p.groups.unwrap_or_default();
    if !groups.is_empty() {
        need_admin(session, "joining groups")?;
    }
    // The programme the ledger runs, fixed at start like the rest of it.
    let mut r = app
        .ledger
        .register(Registration {
            phone: p.phone,
            email: p.email,
            name: p.name,
            card_number: p.card_number,
            secret: p.secret,
            groups,
            code_word: p.code_word,
            no_welcome: false,
            birth_date: p.birth_date,
            referrer: p.referrer,
            programme: p.programme,
        })
        .await
        .map_err(account_error)?;
    let masked = CardNumber::new(r.card_number.clone()).masked();
    tracing::info!(account = r.account, card = %masked, status = r.status, adopted = r.adopted, "account registered");
    app.bus.publish(
        "account.registered",
        json!({"account": r.account, "card_masked": masked, "kind": r.kind, "status": r.status}),
    );
    let pending = r.pending.take();
    let mut out = json!(r);
    if let Some(code) = pending {
        // The account is written whatever happens to the delivery: the
        // secret in this reply is shown only once.
        let delivered = deliver(app, code, Purpose::Registration).await;
        out["sent_via"] = json!(app.notifier.name());
        out["delivered"] = json!(delivered.is_ok());
        if let Err(e) = delivered {
            out["delivery_error"] = json!(e);
        }
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivateParams {
    account: i64,
    code: Secret,
}

pub(super) async fn activate(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: ActivateParams = rpc::params(params)?;
    if !p.code.expose().bytes().all(|b| b.is_ascii_digit()) || p.code.expose().len() > 16 {
        return Err(RpcError::invalid_params("code", "digits"));
    }
    let a = app
        .ledger
        .activate(p.account, p.code)
        .await
        .map_err(account_error)?;
    if a.newly {
        tracing::info!(account = a.account, "account activated");
        app.bus.publish(
            "account.activated",
            json!({"account": a.account, "welcome_bonus": a.welcome_bonus.map(|b| b.to_string())}),
        );
    }
    let mut out = json!(a);
    // `newly` is for the till (and the central ledger's wire), not the POS.
    if let Some(o) = out.as_object_mut() {
        o.remove("newly");
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountParams {
    account: i64,
}

pub(super) async fn resend(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: AccountParams = rpc::params(params)?;
    let code = app
        .ledger
        .new_code(p.account)
        .await
        .map_err(account_error)?;
    match deliver(app, code, Purpose::Registration).await {
        Ok(()) => {
            Ok(json!({"account": p.account, "status": "pending", "sent_via": app.notifier.name()}))
        }
        Err(e) => Err(RpcError::new(
            code::DELIVERY_FAILED,
            format!("the code was not delivered: {e}"),
        )
        .with_data(json!({"account": p.account, "sent_via": app.notifier.name()}))),
    }
}

/// `sale.redeem_code.send`: a one-time code to the customer of `account`,
/// to be given back as `sale.commit`'s `redeem_code` to spend points
/// without the card.
pub(super) async fn send_redeem_code(
    app: &Arc<App>,
    params: Option<Value>,
) -> Result<Value, RpcError> {
    let p: AccountParams = rpc::params(params)?;
    let code = app
        .ledger
        .new_redeem_code(p.account)
        .await
        .map_err(account_error)?;
    let channel = code.channel;
    match deliver(app, code, Purpose::Redemption).await {
        Ok(()) => Ok(json!({
            "account": p.account,
            "channel": channel,
            "sent_via": app.notifier.name(),
        })),
        Err(e) => Err(RpcError::new(
            code::DELIVERY_FAILED,
            format!("the code was not delivered: {e}"),
        )
        .with_data(json!({"account": p.account, "sent_via": app.notifier.name()}))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetParams {
    account: Option<i64>,
    card_number: Option<String>,
    phone: Option<String>,
    email: Option<String>,
}

pub(super) async fn get(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    use crate::ledger::accounts::Lookup;
    let p: GetParams = rpc::params(params)?;
    let by = match (p.account, p.card_number, p.phone, p.email) {
        (Some(a), None, None, None) => Lookup::Account(a),
        (None, Some(c), None, None) => Lookup::Card(c),
        (None, None, Some(ph), None) => Lookup::Phone(ph),
        (None, None, None, Some(e)) => Lookup::Email(e),
        _ => {
            return Err(RpcError::invalid_params(
                "account",
                "give exactly one of account, card_number, phone, email",
            ));
        }
    };
    let view = app.ledger.get_account(by).await.map_err(account_error)?;
    let mut out = json!(view);
    super::tiers::add_tier(app, view.account, &mut out).await?;
    Ok(out)
}

/// `Some(None)` for an explicit `null`, so a field can be cleared.
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateParams {
    account: i64,
    #[serde(default, deserialize_with = "nullable")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    email: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    code_word: Option<Option<Secret>>,
    status: Option<String>,
    /// `YYYY-MM-DD`; null clears it.
    #[serde(default, deserialize_with = "nullable")]
    birth_date: Option<Option<String>>,
}

pub(super) async fn update(
    app: &Arc<App>,
    session: &Arc<Session>,
    params: Option<Value>,
) -> Result<Value, RpcError> {
    let p: UpdateParams = rpc::params(params)?;
    check_name(p.name.as_ref().and_then(Option::as_ref))?;
    if p.status.is_some() {
        need_admin(session, "changing an account's status")?;
    }
    let view = app
        .ledger
        .update_account(
            p.account,
            Update {
                name: p.name,
                phone: p.phone,
                email: p.email,
                code_word: p.code_word,
                status: p.status,
                birth_date: p.birth_date,
            },
        )
        .await
        .map_err(account_error)?;
    tracing::info!(account = p.account, "account updated");
    app.bus.publish(
        "account.updated",
        json!({"account": p.account, "status": view.status}),
    );
    Ok(json!(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeWordParams {
    account: i64,
    code_word: Secret,
}

pub(super) async fn verify_code_word(
    app: &Arc<App>,
    params: Option<Value>,
) -> Result<Value, RpcError> {
    let p: CodeWordParams = rpc::params(params)?;
    let check = app
        .ledger
        .verify_code_word(p.account, p.code_word)
        .await
        .map_err(account_error)?;
    let mut out = json!(check);
    out["account"] = json!(p.account);
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueParams {
    account: i64,
    card_number: Option<String>,
    secret: Option<Secret>,
    #[serde(rename = "virtual")]
    is_virtual: Option<bool>,
    /// A physical card from a swipe or scan, as in `account.register`.
    card_token: Option<String>,
}

pub(super) async fn issue(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let mut p: IssueParams = rpc::params(params)?;
    from_token(
        app,
        p.card_token.take(),
        &mut p.card_number,
        &mut p.secret,
        p.is_virtual,
    )?;
    match (&p.card_number, p.is_virtual) {
        (None, Some(false)) => {
            return Err(RpcError::invalid_params(
                "card_number",
                "give the physical card's number, or virtual: true",
            ));
        }
        (Some(_), Some(true)) => {
            return Err(RpcError::invalid_params(
                "virtual",
                "give card_number or virtual: true, not both",
            ));
        }
        _ => {}
    }
    let r = app
        .ledger
        .issue_card(p.account, p.card_number, p.secret)
        .await
        .map_err(account_error)?;
    let masked = CardNumber::new(r.card_number.clone()).masked();
    tracing::info!(account = r.account, card = %masked, kind = r.kind, "card issued");
    app.bus.publish(
        "card.issued",
        json!({"account": r.account, "card_masked": masked, "kind": r.kind}),
    );
    Ok(json!(r))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CardParams {
    number: String,
    /// For `card.block`: `blocked` (default) or `lost`.
    status: Option<String>,
}

pub(super) async fn block(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: CardParams = rpc::params(params)?;
    let status = match p.status.as_deref() {
        None | Some("blocked") => "blocked",
        Some("lost") => "lost",
        Some(_) => return Err(RpcError::invalid_params("status", "blocked or lost")),
    };
    set_status(app, p.number, status).await
}

pub(super) async fn unblock(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: CardParams = rpc::params(params)?;
    if p.status.is_some() {
        return Err(RpcError::invalid_params(
            "status",
            "card.unblock takes only number",
        ));
    }
    set_status(app, p.number, "active").await
}

async fn set_status(
    app: &Arc<App>,
    number: String,
    status: &'static str,
) -> Result<Value, RpcError> {
    let masked = CardNumber::new(number.clone()).masked();
    app.ledger
        .set_card_status(number, status.to_owned())
        .await
        .map_err(account_error)?;
    tracing::info!(card = %masked, status, "card status changed");
    app.bus.publish(
        "card.status",
        json!({"card_masked": masked, "status": status}),
    );
    Ok(json!({"card_masked": masked, "status": status}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegenerateParams {
    number: String,
}

pub(super) async fn regenerate(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: RegenerateParams = rpc::params(params)?;
    let masked = CardNumber::new(p.number.clone()).masked();
    let secret = app
        .ledger
        .regenerate_secret(p.number)
        .await
        .map_err(account_error)?;
    tracing::info!(card = %masked, "card secret regenerated");
    // Shown once, here.
    Ok(json!({"card_masked": masked, "secret": secret}))
}
