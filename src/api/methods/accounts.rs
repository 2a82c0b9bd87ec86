//! `account.register`: a customer, a card with its secret code, and the
//! welcome bonus.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::rpc::{self, RpcError, code};
use crate::app::App;
use crate::ledger::accounts::{AccountError, Registration};
use crate::redact::Secret;

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
}

pub(super) async fn register(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: RegisterParams = rpc::params(params)?;
    if p.card_number.is_none() && p.is_virtual == Some(false) {
        return Err(RpcError::invalid_params(
            "card_number",
            "give the physical card's number, or virtual: true",
        ));
    }
    if p.name.as_ref().is_some_and(|n| n.chars().count() > 128) {
        return Err(RpcError::invalid_params("name", "at most 128 characters"));
    }
    // The programme the ledger runs, fixed at start like the rest of it.
    let r = app
        .accounts
        .register(
            app.ledger.programme(),
            Registration {
                phone: p.phone,
                email: p.email,
                name: p.name,
                card_number: p.card_number,
                secret: p.secret,
            },
        )
        .await;
    let r = match r {
        Ok(r) => r,
        Err(AccountError::BadPhone) => {
            return Err(RpcError::invalid_params(
                "phone",
                "not a phone number (E.164)",
            ));
        }
        Err(AccountError::BadEmail) => {
            return Err(RpcError::invalid_params("email", "not an e-mail address"));
        }
        Err(AccountError::NoContact) => {
            return Err(RpcError::invalid_params("phone", "give phone or email"));
        }
        Err(AccountError::BadCardNumber) => {
            return Err(RpcError::invalid_params("card_number", "4 to 32 digits"));
        }
        Err(AccountError::BadSecret) => {
            return Err(RpcError::invalid_params(
                "secret",
                "4 to 32 letters or digits",
            ));
        }
        Err(AccountError::Duplicate(field)) => {
            return Err(RpcError::new(
                code::ACCOUNT_EXISTS,
                format!("an account with this {field} exists"),
            )
            .with_data(json!({ "field": field })));
        }
        Err(AccountError::CardTaken) => {
            return Err(RpcError::new(
                code::CARD_TAKEN,
                "the card number is already issued",
            ));
        }
        Err(e) => return Err(RpcError::internal("accounts", e)),
    };
    let masked = crate::redact::CardNumber::new(r.card_number.clone()).masked();
    tracing::info!(account = r.account, card = %masked, "account registered");
    app.bus.publish(
        "account.registered",
        json!({"account": r.account, "card_masked": masked, "kind": r.kind}),
    );
    Ok(json!(r))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetParams {
    account: Option<i64>,
    card_number: Option<String>,
    phone: Option<String>,
    email: Option<String>,
}

fn account_error(e: AccountError) -> RpcError {
    match e {
        AccountError::UnknownCard => RpcError::new(code::UNKNOWN_CARD, "no such account or card"),
        AccountError::BadPhone => RpcError::invalid_params("phone", "not a phone number (E.164)"),
        e => RpcError::internal("accounts", e),
    }
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
    let view = app.accounts.get(by).await.map_err(account_error)?;
    Ok(json!(view))
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
    let masked = crate::redact::CardNumber::new(number.clone()).masked();
    app.accounts
        .set_card_status(number, status)
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
    let masked = crate::redact::CardNumber::new(p.number.clone()).masked();
    let secret = app
        .accounts
        .regenerate_secret(p.number)
        .await
        .map_err(account_error)?;
    tracing::info!(card = %masked, "card secret regenerated");
    // Shown once, here.
    Ok(json!({"card_masked": masked, "secret": secret}))
}
