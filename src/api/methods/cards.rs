//! `card.enter`: a card typed by the cashier.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::api::rpc::{self, RpcError};
use crate::app::App;
use crate::cards::{CardRead, ReadSource};
use crate::redact::{CardNumber, Secret};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnterParams {
    number: CardNumber,
    secret: Option<Secret>,
}

pub(super) async fn enter(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: EnterParams = rpc::params(params)?;
    let number = p.number.expose().trim();
    if !(4..=32).contains(&number.len()) || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RpcError::invalid_params(
            "number",
            "a card number is 4 to 32 digits",
        ));
    }
    if let Some(s) = &p.secret {
        let s = s.expose();
        if !(1..=32).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(RpcError::invalid_params(
                "secret",
                "a secret code is 1 to 32 letters or digits",
            ));
        }
    }
    let account = app
        .ledger
        .resolve(number.to_owned())
        .await
        .map_err(crate::api::errors::ledger_error)?;
    app.cards
        .accept(
            CardRead {
                reader: "manual".into(),
                source: ReadSource::Manual,
                number: CardNumber::new(number),
                secret: p.secret,
                symbology: None,
            },
            account,
        )
        .map_err(|e| RpcError::internal("card token", e))
}
