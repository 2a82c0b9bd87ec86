//! Per-connection state.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::login_limit::{Backoff, FREE_PER_CONN};
use crate::auth::Role;
use crate::events::Topics;

/// A line queued for a client.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A reply, built for this client.
    Owned(String),
    /// An event line shared by every subscriber.
    Shared(Arc<str>),
}

impl Outbound {
    /// The text, without the newline.
    pub fn as_str(&self) -> &str {
        match self {
            Outbound::Owned(s) => s,
            Outbound::Shared(s) => s,
        }
    }
}

/// Who is on the other end.
#[derive(Debug, Clone)]
pub enum Peer {
    /// Unix socket, with the peer's uid from SO_PEERCRED.
    Unix {
        /// Peer uid, when the kernel told us.
        uid: Option<u32>,
    },
    /// TCP, with the peer's address.
    Tcp(SocketAddr),
}

/// One client connection.
pub struct Session {
    /// Who is connected.
    pub peer: Peer,
    /// Daemon-wide connection number, for logs.
    pub id: u64,
    // Role changes on auth.login; read on every call.
    role: Mutex<Option<Role>>,
    /// Topics this client subscribed to.
    pub topics: Arc<Mutex<Topics>>,
    /// Where replies and events for this client are queued.
    pub out: mpsc::Sender<Outbound>,
    /// Cancelled when the connection ends; stops its event forwarder.
    pub closed: CancellationToken,
    /// Whether the event forwarder runs (started on the first subscribe).
    pub forwarding: Mutex<bool>,
    // The queue's receiving end, until the writer task takes it.
    receiver: Mutex<Option<mpsc::Receiver<Outbound>>>,
    // Wrong tokens sent on this connection, and the wait they impose.
    login_backoff: Mutex<Backoff>,
}

impl Session {
    /// A new session. `role` is `None` until a TCP client logs in.
    pub fn new(id: u64, peer: Peer, role: Option<Role>, queue: usize) -> Self {
        let (out, rx) = mpsc::channel(queue);
        Session {
            receiver: Mutex::new(Some(rx)),
            peer,
            id,
            role: Mutex::new(role),
            topics: Arc::new(Mutex::new(Topics::default())),
            out,
            closed: CancellationToken::new(),
            forwarding: Mutex::new(false),
            login_backoff: Mutex::new(Backoff::new(FREE_PER_CONN, Instant::now())),
        }
    }

    /// Runs `f` on this connection's login back-off record.
    pub fn login_backoff<T>(&self, f: impl FnOnce(&mut Backoff) -> T) -> T {
        f(&mut self.login_backoff.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Takes the receiving end of the outbound queue (once).
    pub fn take_receiver(&self) -> Option<mpsc::Receiver<Outbound>> {
        self.receiver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// The current role; `None` before a TCP client has logged in.
    pub fn role(&self) -> Option<Role> {
        *self.role.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the role after a successful login. A login never lowers the
    /// role a Unix peer already has from its uid.
    pub fn login(&self, role: Role) -> Role {
        let mut r = self.role.lock().unwrap_or_else(|p| p.into_inner());
        let new = r.map_or(role, |old| old.max(role));
        *r = Some(new);
        new
    }
}
