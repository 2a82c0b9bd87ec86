//! The `command` notifier: runs a configured program with the code and the
//! contact as arguments.
//!
//! The program is started directly (`execve`), never through a shell, so a
//! contact such as `a b; rm -rf /` is one argument and nothing more. Its
//! output is discarded (it might echo the code into our log); only the exit
//! status counts.

use std::process::Stdio;
use std::time::Duration;

use futures::future::BoxFuture;

use super::messages::CustomerMessage;
use super::{Message, Notifier, NotifyError, expand, expand_message};
use crate::config::CommandNotifierConfig;

/// Runs `program args…` per code.
#[derive(Debug, Clone)]
pub struct CommandNotifier {
    program: std::path::PathBuf,
    args: Vec<String>,
    timeout_ms: u64,
}

impl CommandNotifier {
    /// From `[ledger.registration.command]`.
    pub fn new(c: &CommandNotifierConfig) -> Self {
        CommandNotifier {
            program: c.program.clone(),
            args: c.args.clone(),
            timeout_ms: c.timeout_ms,
        }
    }
}

impl Notifier for CommandNotifier {
    fn name(&self) -> &'static str {
        "command"
    }

    fn send<'a>(&'a self, m: &'a Message) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(self.run(expand(&self.args, m)))
    }

    fn deliver<'a>(&'a self, m: &'a CustomerMessage) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(self.run(expand_message(&self.args, m)))
    }
}

impl CommandNotifier {
    /// Runs the program with `args`; only the exit status counts.
    async fn run(&self, args: Vec<String>) -> Result<(), NotifyError> {
        let program = self.program.display().to_string();
        let mut child = tokio::process::Command::new(&self.program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // A program that hangs is killed, not left behind.
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| NotifyError::Spawn {
                program: program.clone(),
                source,
            })?;
        let limit = Duration::from_millis(self.timeout_ms);
        match tokio::time::timeout(limit, child.wait()).await {
            Err(_) => {
                let _ = child.kill().await;
                Err(NotifyError::Timeout {
                    ms: self.timeout_ms,
                })
            }
            Ok(Err(source)) => Err(NotifyError::Spawn { program, source }),
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(NotifyError::Failed {
                program,
                status: status.to_string(),
            }),
        }
    }
}
