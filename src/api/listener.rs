//! Accepting connections on the Unix socket (bound here or handed over by
//! systemd) and the optional TCP port.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::conn::{self, OUT_QUEUE};
use super::fdlimit::{LogGate, Spare, out_of_descriptors};
use super::rpc::{self, RpcError, code};
use super::session::{Peer, Session};
use crate::app::App;
use crate::auth::role_for_uid;

/// Why a listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// Another daemon answers on the socket.
    #[error("{}: a running posbridge already listens here; refusing to take its socket", .0.display())]
    InUse(PathBuf),
    /// Something other than a socket sits at the path.
    #[error("{}: exists and is not a socket; refusing to delete it", .0.display())]
    NotASocket(PathBuf),
    /// The socket's group does not exist.
    #[error("socket group \"{0}\" does not exist")]
    NoSuchGroup(String),
    /// systemd handed over something that is not a Unix stream listener.
    #[error("socket activation: {0}")]
    Activation(String),
    /// Any other failure.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ListenError {
    let what = what.into();
    move |source| ListenError::Io { what, source }
}

/// Binds the Unix socket at `path` with `mode` and optional `group`.
///
/// A socket file left by a crashed run is replaced; one a live daemon
/// answers on is not.
pub fn bind_unix(path: &Path, mode: u32, group: Option<&str>) -> Result<UnixListener, ListenError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err(format!("create {}", dir.display())))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => return Err(ListenError::InUse(path.to_path_buf())),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    tracing::info!(socket = %path.display(), "removing stale socket");
                    std::fs::remove_file(path)
                        .map_err(io_err(format!("remove stale {}", path.display())))?;
                }
                Err(e) => return Err(io_err(format!("probe {}", path.display()))(e)),
            }
        }
        Ok(_) => return Err(ListenError::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(format!("stat {}", path.display()))(e)),
    }
    let listener = UnixListener::bind(path).map_err(io_err(format!("bind {}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io_err(format!("chmod {}", path.display())))?;
    if let Some(name) = group {
        let gid = nix::unistd::Group::from_name(name)
            .ok()
            .flatten()
            .ok_or_else(|| ListenError::NoSuchGroup(name.to_owned()))?
            .gid;
        std::os::unix::fs::chown(path, None, Some(gid.as_raw()))
            .map_err(io_err(format!("chown {}", path.display())))?;
    }
    Ok(listener)
}

/// The Unix listener systemd passed through `LISTEN_FDS`, if any.
pub fn from_systemd() -> Result<Option<(UnixListener, PathBuf)>, ListenError> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let fds: Vec<_> = sd_notify::listen_fds()
        .map_err(|e| ListenError::Activation(e.to_string()))?
        .collect();
    let Some(&fd) = fds.first() else {
        return Ok(None);
    };
    if fds.len() > 1 {
        tracing::warn!(
            count = fds.len(),
            "socket activation passed several sockets; using the first"
        );
    }
    // SAFETY: sd_notify::listen_fds checked LISTEN_PID and LISTEN_FDS, so
    // this descriptor was passed to this process, is open, and nothing else
    // in the process owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let std_listener = std::os::unix::net::UnixListener::from(owned);
    let addr = std_listener
        .local_addr()
        .map_err(|e| ListenError::Activation(format!("fd {fd} is not a Unix socket: {e}")))?;
    let path = addr
        .as_pathname()
        .ok_or_else(|| ListenError::Activation(format!("fd {fd} is not a path socket")))?
        .to_path_buf();
    std_listener
        .set_nonblocking(true)
        .map_err(io_err("socket activation"))?;
    let listener = UnixListener::from_std(std_listener).map_err(io_err("socket activation"))?;
    Ok(Some((listener, path)))
}

/// A bound listener.
pub enum Listener {
    /// Unix socket: role from the peer's uid.
    Unix(UnixListener),
    /// TCP: clients must log in.
    Tcp(TcpListener),
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// A daemon-wide connection number, for logs (HTTP requests and
/// WebSockets take theirs from here too).
pub(crate) fn next_conn_id() -> u64 {
    NEXT_CONN.fetch_add(1, Ordering::Relaxed)
}

/// Accepts until `shutdown` fires. Each connection runs on `conns`, and
/// holds a permit from `slots` so the total stays under `max_clients`.
pub async fn accept_loop(
    listener: Listener,
    app: Arc<App>,
    shutdown: CancellationToken,
    conns: TaskTracker,
    slots: Arc<Semaphore>,
) {
    // The TCP port also speaks HTTP (crate::web): one router for all its
    // connections; it reads the configuration per request.
    let web = matches!(listener, Listener::Tcp(_)).then(|| crate::web::router(app.clone()));
    let mut spare = Spare::new();
    let mut log_gate = LogGate::new(Duration::from_secs(10));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = accept(&listener) => a,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                let out_of_fds = out_of_descriptors(&e);
                if out_of_fds {
                    // The waiting client would hang unanswered: free the
                    // spare descriptor to take it, answer 1004, close.
                    spare.release();
                    if let Ok(Ok((stream, _))) =
                        tokio::time::timeout(Duration::from_millis(50), accept(&listener)).await
                    {
                        // Briefly: the loop accepts nothing meanwhile.
                        let _ =
                            tokio::time::timeout(Duration::from_millis(200), refuse(stream)).await;
                    }
                    spare.retake();
                }
                if let Some(suppressed) = log_gate.allow(std::time::Instant::now()) {
                    tracing::warn!(error = %e, suppressed, "accept failed");
                }
                // Back off instead of spinning (shortly when out of
                // descriptors: each round refuses one waiting client).
                let pause = if out_of_fds { 10 } else { 100 };
                tokio::time::sleep(Duration::from_millis(pause)).await;
                continue;
            }
        };
        let id = next_conn_id();
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(conn = id, "too many clients; refusing a connection");
            conns.spawn(refuse(stream));
            continue;
        };
        let role = match &peer {
            Peer::Unix { uid } => Some(role_for_uid(
                uid.unwrap_or(u32::MAX),
                &app.config().daemon.admin_uids,
            )),
            Peer::Tcp(_) => None,
        };
        tracing::debug!(conn = id, ?peer, ?role, "connected");
        let (app, shutdown, web) = (app.clone(), shutdown.clone(), web.clone());
        let tracked = conns.token();
        conns.spawn(async move {
            let session = Arc::new(Session::new(id, peer.clone(), role, OUT_QUEUE));
            match (stream, peer, web) {
                (Stream::Tcp(s), Peer::Tcp(addr), Some(web)) => match crate::web::sniff(&s).await {
                    crate::web::Proto::Http => {
                        crate::web::serve_http(s, web, addr, (permit, tracked), shutdown).await;
                    }
                    crate::web::Proto::JsonLines => {
                        let _permit = permit;
                        conn::serve(s, app, session, shutdown).await;
                    }
                },
                (Stream::Unix(s), ..) => {
                    let _permit = permit;
                    conn::serve(s, app, session, shutdown).await;
                }
                (Stream::Tcp(s), ..) => {
                    let _permit = permit;
                    conn::serve(s, app, session, shutdown).await;
                }
            }
            tracing::debug!(conn = id, "disconnected");
        });
    }
}

enum Stream {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}

async fn accept(l: &Listener) -> io::Result<(Stream, Peer)> {
    match l {
        Listener::Unix(l) => {
            let (s, _) = l.accept().await?;
            let uid = s.peer_cred().ok().map(|c| c.uid());
            Ok((Stream::Unix(s), Peer::Unix { uid }))
        }
        Listener::Tcp(l) => {
            let (s, addr) = l.accept().await?;
            let _ = s.set_nodelay(true);
            Ok((Stream::Tcp(s), Peer::Tcp(addr)))
        }
    }
}

/// Answers 1004 and closes. The client's request, if it sent one, is read
/// and dropped first (briefly): closing a TCP socket with unread input
/// resets it, and the reset can destroy the answer before it is read.
async fn refuse(stream: Stream) {
    let err = RpcError::new(code::TOO_MANY_CLIENTS, "too many clients; try again later");
    let line = format!("{}\n", rpc::failure(&serde_json::Value::Null, &err));
    async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, line: &str) {
        if tokio::time::timeout(Duration::from_secs(1), s.write_all(line.as_bytes()))
            .await
            .is_err()
        {
            return;
        }
        let _ = s.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            let mut sink = [0u8; 4096];
            while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    }
    match stream {
        Stream::Unix(s) => answer(s, &line).await,
        Stream::Tcp(s) => answer(s, &line).await,
    }
}
