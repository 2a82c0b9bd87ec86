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
                .map_err(|e| unix_connect_error(&path, e))?
        }
    };
    if let Some(token) = &t.token {
        client.call("auth.login", json!({ "token": token })).await?;
    }
    Ok(client)
}

/// What a failed connection to the Unix socket means for the person at the
/// shell: a socket they may not open is not a daemon that is down.
fn unix_connect_error(path: &std::path::Path, e: ClientError) -> anyhow::Error {
    let ClientError::Io(io) = &e else {
        return e.into();
    };
    match io.kind() {
        std::io::ErrorKind::PermissionDenied => {
            let group = socket_group_name(path).unwrap_or_else(|| "posbridge".into());
            anyhow::anyhow!(
                "{}: permission denied. The socket is open to the group \"{group}\" only: \
                 add yourself with `sudo usermod -aG {group} $USER`, then log in again \
                 (or run `newgrp {group}` in this shell)",
                path.display()
            )
        }
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => anyhow::anyhow!(
            "{e}: is the daemon running? (`systemctl status posbridge`, or `posbridge run`)"
        ),
        _ => e.into(),
    }
}

/// The name of the group that owns the socket file (or its directory, when
/// the directory is what refused us).
fn socket_group_name(path: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)
        .ok()
        .or_else(|| std::fs::metadata(path.parent()?).ok())?;
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(meta.gid()))
        .ok()
        .flatten()
        .map(|g| g.name)
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
            print_line(&serde_json::to_string_pretty(&v)?)?;
            Ok(())
        }
        Err(ClientError::Rpc { error }) => {
            eprintln!("{}", serde_json::to_string_pretty(&error)?);
            // The technician's locale picks the text, whatever the
            // daemon's configured language put in `message`.
            let key = if crate::api::i18n::locale_is_russian() {
                "message_ru"
            } else {
                "message_en"
            };
            let message = error["data"][key]
                .as_str()
                .or(error["message"].as_str())
                .unwrap_or("error");
            if key == "message_ru" {
                bail!("{}: ошибка: {message}", args.method)
            }
            bail!("{} failed: {message}", args.method)
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes one line on stdout; `false` when the reader has closed the pipe,
/// which ends the output quietly rather than with a panic (as `println!`
/// does on a broken pipe).
fn print_line(text: &str) -> Result<bool> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
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
        let text = if args.raw {
            n.to_string()
        } else {
            let params = &n["params"];
            format!(
                "{} {} {}",
                params["time"].as_str().unwrap_or("-"),
                params["topic"]
                    .as_str()
                    .unwrap_or(n["method"].as_str().unwrap_or("?")),
                serde_json::to_string_pretty(params)?
            )
        };
        if !print_line(&text)? {
            // The reader went away (`posbridge events | head`): done.
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_we_may_not_open_names_the_group_and_the_fix_once() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("posbridge.sock");
        std::fs::write(&sock, b"").unwrap();
        let io = std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{}: Permission denied (os error 13)", sock.display()),
        );
        let text = format!("{:#}", unix_connect_error(&sock, ClientError::Io(io)));
        // The file's group is ours (root here, or the test user's group).
        let group = socket_group_name(&sock).unwrap();
        assert!(
            text.contains(&format!("usermod -aG {group} $USER")),
            "{text}"
        );
        assert!(!text.contains("daemon running"), "{text}");
        assert_eq!(text.matches("ermission denied").count(), 1, "{text}");
    }

    #[test]
    fn a_missing_socket_asks_whether_the_daemon_runs_and_says_the_cause_once() {
        let io = std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "/run/posbridge/posbridge.sock: No such file or directory (os error 2)",
        );
        let e = unix_connect_error(
            std::path::Path::new("/run/posbridge/posbridge.sock"),
            ClientError::Io(io),
        );
        let text = format!("{e:#}");
        assert!(text.contains("is the daemon running?"), "{text}");
        assert_eq!(text.matches("No such file").count(), 1, "{text}");
    }
}
