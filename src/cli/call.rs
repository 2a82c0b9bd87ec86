//! `posbridge call` and `posbridge events`: a shell client for technicians.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};

use crate::client::{Client, ClientError};
use crate::config::{default_socket_path, locate};

/// Where to connect.
#[derive(Debug, Args)]
pub struct Target {
    /// Unix socket (default: from the configuration, else the runtime dir).
    #[arg(long, env = "POSBRIDGE_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Connect over TCP instead, such as 127.0.0.1:7450.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "socket")]
    pub tcp: Option<String>,
    /// Token for auth.login (needed over TCP; elevates on the Unix socket).
    #[arg(long, env = "POSBRIDGE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// `posbridge call METHOD [PARAMS]`.
#[derive(Debug, Args)]
pub struct CallArgs {
    #[command(flatten)]
    target: Target,
    /// Method name, such as system.info.
    method: String,
    /// Params as a JSON object, such as '{"name":"printer"}'.
    params: Option<String>,
}

/// `posbridge events [TOPIC...]`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    target: Target,
    /// Topics or families (device.*); default all.
    topics: Vec<String>,
    /// One compact JSON line per event instead of pretty output.
    #[arg(long)]
    raw: bool,
}

/// Connects as `posbridge call` does; `print-test` shares it so both find
/// the same daemon.
pub(crate) async fn connect(t: &Target, config_flag: Option<&std::path::Path>) -> Result<Client> {
    let mut client = match &t.tcp {
        Some(addr) => Client::tcp(addr).await?,
        None => {
            let path = t.socket.clone().unwrap_or_else(|| {
                locate(config_flag)
                    .load()
                    .map(|c| c.socket_path())
                    .unwrap_or_else(|_| default_socket_path())
            });
            Client::unix(&path)
                .await
                .with_context(|| "is the daemon running? (posbridge run)".to_string())?
        }
    };
    if let Some(token) = &t.token {
        client.call("auth.login", json!({ "token": token })).await?;
    }
    Ok(client)
}

/// Runs one call; prints the result on stdout, or the error on stderr and
/// fails.
pub async fn call(args: CallArgs, config_flag: Option<&std::path::Path>) -> Result<()> {
    let params: Value = match &args.params {
        Some(p) => serde_json::from_str(p).context("PARAMS must be a JSON object")?,
        None => json!({}),
    };
    let mut client = connect(&args.target, config_flag).await?;
    match client.call(&args.method, params).await {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        Err(ClientError::Rpc { error }) => {
            eprintln!("{}", serde_json::to_string_pretty(&error)?);
            bail!(
                "{} failed: {}",
                args.method,
                error["message"].as_str().unwrap_or("error")
            )
        }
        Err(e) => Err(e.into()),
    }
}

/// Subscribes and prints events until the daemon goes away or Ctrl-C.
pub async fn events(args: EventsArgs, config_flag: Option<&std::path::Path>) -> Result<()> {
    let topics = if args.topics.is_empty() {
        vec!["*".to_string()]
    } else {
        args.topics.clone()
    };
    let mut client = connect(&args.target, config_flag).await?;
    client
        .call("events.subscribe", json!({ "topics": topics }))
        .await?;
    loop {
        let n = tokio::select! {
            n = client.next_notification() => n?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        if args.raw {
            println!("{n}");
        } else {
            let params = &n["params"];
            println!(
                "{} {} {}",
                params["time"].as_str().unwrap_or("-"),
                params["topic"]
                    .as_str()
                    .unwrap_or(n["method"].as_str().unwrap_or("?")),
                serde_json::to_string_pretty(params)?
            );
        }
    }
}
