//! Customer groups: `group.create`, `group.list`, `group.delete` and
//! `account.groups.set`. The tiers read memberships (a level may be
//! restricted to groups), so changing them is an admin's job.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use super::accounts::account_error;
use crate::api::rpc::{self, RpcError};
use crate::app::App;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateParams {
    name: String,
    description: Option<String>,
}

pub(super) async fn create(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: CreateParams = rpc::params(params)?;
    if p.description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 256)
    {
        return Err(RpcError::invalid_params(
            "description",
            "at most 256 characters",
        ));
    }
    let g = app
        .ledger
        .create_group(p.name, p.description)
        .await
        .map_err(account_error)?;
    tracing::info!(group = %g.name, "group created");
    Ok(json!(g))
}

pub(super) async fn list(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NoParams {}
    let _: NoParams = rpc::params(params)?;
    let groups = app.ledger.list_groups().await.map_err(account_error)?;
    Ok(json!({ "groups": groups }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteParams {
    name: String,
    #[serde(default)]
    force: bool,
}

pub(super) async fn delete(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: DeleteParams = rpc::params(params)?;
    let removed = app
        .ledger
        .delete_group(p.name.clone(), p.force)
        .await
        .map_err(account_error)?;
    tracing::info!(group = %p.name.trim(), members_removed = removed, "group deleted");
    Ok(json!({ "name": p.name.trim(), "members_removed": removed }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetParams {
    account: i64,
    groups: Vec<String>,
}

pub(super) async fn set(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: SetParams = rpc::params(params)?;
    let groups = app
        .ledger
        .set_groups(p.account, p.groups)
        .await
        .map_err(account_error)?;
    tracing::info!(account = p.account, "account groups set");
    Ok(json!({ "account": p.account, "groups": groups }))
}
