//! `posbridge reload`: asks the running daemon to re-read its configuration
//! and fails when the file is refused, so `systemctl reload` (ExecReload=)
//! reports a bad file instead of a signal that always "succeeds".

use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};

use super::call::{Target, connect};
use crate::client::ClientError;

/// How long the daemon may take to validate and apply the file. Device
/// restarts are asynchronous, so this bounds a stuck daemon, not a slow one.
const REPLY_LIMIT: Duration = Duration::from_secs(60);

/// `posbridge reload`.
#[derive(Debug, Args)]
pub struct ReloadArgs {
    #[command(flatten)]
    target: Target,
}

/// Calls `system.reload` (an admin method: root and `daemon.admin_uids` on
/// the Unix socket, or an admin token); prints what changed, or the
/// daemon's reason for refusing the file and fails.
pub async fn run(args: ReloadArgs, config_flag: Option<&std::path::Path>) -> Result<()> {
    let mut client = connect(&args.target, config_flag).await?;
    let reply = tokio::time::timeout(REPLY_LIMIT, client.call("system.reload", json!({})))
        .await
        .context("the daemon did not answer system.reload within 60 s")?;
    match reply {
        Ok(report) => {
            println!("{}", summary(&report));
            Ok(())
        }
        Err(ClientError::Rpc { error }) => {
            let reason = error["message"].as_str().unwrap_or("error");
            bail!("reload refused, the running configuration stays in force: {reason}")
        }
        Err(e) => Err(e).context("system.reload"),
    }
}

/// One line per kind of change, for the journal of `systemctl reload`.
fn summary(report: &Value) -> String {
    let names = |v: &Value| -> String {
        let list: Vec<&str> = v
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if list.is_empty() {
            "-".into()
        } else {
            list.join(", ")
        }
    };
    let d = &report["devices"];
    let mut text = format!(
        "reloaded: started {}; restarted {}; stopped {}; unchanged {}",
        names(&d["started"]),
        names(&d["restarted"]),
        names(&d["stopped"]),
        names(&d["unchanged"]),
    );
    if report["restart_required"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
    {
        text.push_str(&format!(
            "\nchanged but waiting for a restart (systemctl restart posbridge): {}",
            names(&report["restart_required"])
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_every_change_and_what_needs_a_restart() {
        let text = summary(&json!({
            "devices": {"started": ["p2"], "restarted": [], "stopped": ["p3", "p4"], "unchanged": ["p1"]},
            "restart_required": ["daemon.tcp"],
        }));
        assert_eq!(
            text,
            "reloaded: started p2; restarted -; stopped p3, p4; unchanged p1\n\
             changed but waiting for a restart (systemctl restart posbridge): daemon.tcp"
        );
    }
}
