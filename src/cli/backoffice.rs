//! `posbridge backoffice operator ...`: the back office's operators, on
//! the till's own store (the daemon need not run).

use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::api::amount::{self, POINT_DECIMALS};
use crate::backoffice::operators::{Operators, PASSWORD_MAX, Role};
use crate::config::locate;
use crate::ledger::db::Books;
use crate::store::Store;

/// `posbridge backoffice ...`.
#[derive(Debug, Subcommand)]
pub enum BackofficeCommand {
    /// Manage back office operators.
    #[command(subcommand)]
    Operator(OperatorCommand),
}

/// `posbridge backoffice operator ...`.
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Add an operator; the password is read from stdin (one line), e.g.
    /// `printf '%s\n' 'pass phrase' | posbridge backoffice operator add anna --role admin`.
    Add {
        /// Login name: letters, digits, '.', '_' or '-'.
        name: String,
        /// viewer, operator or admin.
        #[arg(long, value_parser = ["viewer", "operator", "admin"])]
        role: String,
        /// Most points one adjustment may move (role operator; admins are
        /// unlimited and viewers cannot adjust).
        #[arg(long)]
        limit: Option<String>,
    },
    /// List operators (never their password hashes).
    List,
    /// Disable an operator: no more logins, open sessions end.
    Disable {
        /// Login name.
        name: String,
    },
}

/// Runs a `backoffice` command against the configured store.
pub async fn run(config_flag: Option<&Path>, cmd: BackofficeCommand) -> anyhow::Result<()> {
    let config = locate(config_flag).load()?;
    let ops = Operators::new(Books::sqlite(Store::open(&config.database_path())?));
    let BackofficeCommand::Operator(cmd) = cmd;
    operator(&ops, cmd).await
}

/// Runs an `operator` command on `ops`: the till's store here, the chain's
/// PostgreSQL for `posbridge-central operator ...`.
pub async fn operator(ops: &Operators, cmd: OperatorCommand) -> anyhow::Result<()> {
    match cmd {
        OperatorCommand::Add { name, role, limit } => {
            let role = Role::parse(&role).context("role: viewer, operator or admin")?;
            let limit = match limit {
                Some(l) => {
                    if role != Role::Operator {
                        bail!("--limit applies to role operator only");
                    }
                    Some(
                        amount::parse(&l, false, POINT_DECIMALS)
                            .map_err(|e| anyhow::anyhow!("--limit: {e}"))?,
                    )
                }
                None => None,
            };
            let password = read_password()?;
            ops.add(name.clone(), role, password, limit).await?;
            println!("operator {name} added ({role})");
        }
        OperatorCommand::List => {
            println!("name\trole\tlimit\tdisabled\tcreated_at");
            for o in ops.list().await? {
                let limit = o.limit.map(|l| l.to_string()).unwrap_or_else(|| "-".into());
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    o.name, o.role, limit, o.disabled, o.created_at
                );
            }
        }
        OperatorCommand::Disable { name } => {
            ops.disable(name.clone()).await?;
            println!("operator {name} disabled");
        }
    }
    Ok(())
}

/// The first line of stdin, without its line end; bounded so a pipe of
/// garbage cannot fill memory.
fn read_password() -> anyhow::Result<String> {
    let mut buf = Vec::new();
    std::io::stdin()
        .take((PASSWORD_MAX * 4 + 2) as u64)
        .read_to_end(&mut buf)
        .context("reading the password from stdin")?;
    let text = String::from_utf8(buf).context("the password is not UTF-8")?;
    let line = text.lines().next().unwrap_or("");
    Ok(line.to_owned())
}
