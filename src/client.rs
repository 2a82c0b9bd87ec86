//! A small JSON-RPC client for the daemon's socket, used by `posbridge call`,
//! `posbridge events`, the demo and the tests.

use std::path::Path;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixStream};

/// Client errors.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not connect or the connection broke.
    // Transparent: the io error's text is this error's text, so a chain
    // printed with `{:#}` does not say the cause twice.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The daemon sent something that is not a JSON-RPC message.
    #[error("bad message from the daemon: {0}")]
    Protocol(String),
    /// The daemon closed the connection.
    #[error("the daemon closed the connection")]
    Closed,
    /// The call failed; `error` is the JSON-RPC error object.
    #[error("{}", error["message"].as_str().unwrap_or("error"))]
    Rpc {
        /// The error object (`code`, `message`, `data`).
        error: Value,
    },
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection to the daemon.
pub struct Client {
    io: BufReader<Box<dyn Io>>,
    next_id: u64,
    /// Notifications that arrived while waiting for a reply.
    pending: std::collections::VecDeque<Value>,
}

impl Client {
    /// Connects to the Unix socket at `path`.
    pub async fn unix(path: &Path) -> Result<Client, ClientError> {
        let s = UnixStream::connect(path)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(Self::from_io(Box::new(s)))
    }

    /// Connects to a TCP listener (call `auth.login` next).
    pub async fn tcp(addr: &str) -> Result<Client, ClientError> {
        let s = TcpStream::connect(addr)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("{addr}: {e}")))?;
        Ok(Self::from_io(Box::new(s)))
    }

    fn from_io(io: Box<dyn Io>) -> Client {
        Client {
            io: BufReader::new(io),
            next_id: 1,
            pending: Default::default(),
        }
    }

    /// Calls `method` and waits for its reply; notifications arriving
    /// meanwhile are kept for [`Client::next_notification`].
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let req = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_line(&req.to_string()).await?;
        loop {
            let msg = self.read_message().await?;
            if msg.get("id") == Some(&json!(id)) {
                if let Some(err) = msg.get("error") {
                    return Err(ClientError::Rpc { error: err.clone() });
                }
                return msg
                    .get("result")
                    .cloned()
                    .ok_or_else(|| ClientError::Protocol("reply without result".into()));
            }
            if msg.get("method").is_some() {
                self.pending.push_back(msg);
            } else {
                return Err(ClientError::Protocol(format!("unexpected message: {msg}")));
            }
        }
    }

    /// Writes one raw line (a newline is added).
    pub async fn send_line(&mut self, line: &str) -> Result<(), ClientError> {
        let w = self.io.get_mut();
        w.write_all(line.as_bytes()).await?;
        w.write_all(b"\n").await?;
        w.flush().await?;
        Ok(())
    }

    /// Reads the next message of any kind.
    pub async fn read_message(&mut self) -> Result<Value, ClientError> {
        let mut line = String::new();
        // The daemon's lines are bounded by what it sends; a client that
        // talks to something else still stops at 16 MiB.
        let n = (&mut self.io)
            .take(16 * 1024 * 1024)
            .read_line(&mut line)
            .await?;
        if n == 0 {
            return Err(ClientError::Closed);
        }
        serde_json::from_str(&line).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// The next notification (event), waiting if none is queued.
    pub async fn next_notification(&mut self) -> Result<Value, ClientError> {
        if let Some(n) = self.pending.pop_front() {
            return Ok(n);
        }
        loop {
            let msg = self.read_message().await?;
            if msg.get("method").is_some() && msg.get("id").is_none() {
                return Ok(msg);
            }
        }
    }
}

use tokio::io::AsyncReadExt as _;
