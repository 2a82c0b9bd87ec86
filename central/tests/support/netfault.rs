//! A loopback TCP proxy the test controls, put between a till daemon and
//! the central service to cut the link for real: refuse connections,
//! swallow requests, delay answers, or lose a response after the central
//! ledger committed.
//!
//! The proxy runs on its own thread with its own tokio runtime, so it works
//! the same from a current-thread or a multi-thread `#[tokio::test]` and
//! from plain `#[test]`s. Every live connection checks the mode on each
//! chunk it forwards and watches for mode changes, so a switch applies to
//! the keep-alive connections reqwest already holds, not only to new ones.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What each connection reads and forwards at a time (per direction).
const CHUNK: usize = 16 * 1024;

/// What the proxy does with the traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forwards both ways.
    Pass,
    /// Resets new connections as soon as they are accepted, and cuts the
    /// live ones: the till sees a connect or I/O error.
    Refuse,
    /// Half-open: accepts, reads and discards, never answers (the till's
    /// request timeout fires). Live connections stop forwarding; one that
    /// discarded anything never forwards again.
    Blackhole,
    /// Forwards, sleeping this long before each chunk upstream → client.
    Delay(Duration),
    /// Forwards the request and lets the upstream answer, but resets the
    /// client connection (RST) instead of delivering the response: a
    /// response lost after the central ledger committed.
    ResetAfterRequest,
}

/// What the test set, as every connection sees it.
#[derive(Clone, Copy, Debug)]
struct Control {
    mode: Mode,
    /// Bumped by [`Proxy::cut_all`]: a connection born under another value
    /// is cut.
    cuts: u64,
    /// The proxy is dropped.
    stop: bool,
}

impl Control {
    /// A connection accepted under `cuts` must go now.
    fn cuts(&self, cuts: u64) -> bool {
        self.stop || self.cuts != cuts || self.mode == Mode::Refuse
    }
}

#[derive(Default)]
struct Counters {
    connections: AtomicUsize,
    lost: AtomicUsize,
}

/// The proxy; dropping it stops it and closes every connection.
pub struct Proxy {
    addr: SocketAddr,
    control: watch::Sender<Control>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`, in
    /// [`Mode::Pass`].
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("proxy address");
        let (control, rx) = watch::channel(Control {
            mode: Mode::Pass,
            cuts: 0,
            stop: false,
        });
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let thread = std::thread::Builder::new()
            .name(format!("netfault {addr}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("proxy runtime");
                rt.block_on(accept(listener, upstream, rx, c));
                // Dropping the runtime drops every connection task.
            })
            .expect("spawn the proxy thread");
        Proxy {
            addr,
            control,
            counters,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for a till's `[ledger.central] url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switches the mode, for new and live connections alike.
    pub fn set(&self, mode: Mode) {
        self.control.send_modify(|c| c.mode = mode);
    }

    pub fn mode(&self) -> Mode {
        self.control.borrow().mode
    }

    /// Drops every live connection now (the mode stays).
    pub fn cut_all(&self) {
        self.control.send_modify(|c| c.cuts += 1);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.counters.connections.load(Ordering::SeqCst)
    }

    /// Responses swallowed by [`Mode::ResetAfterRequest`].
    pub fn lost_responses(&self) -> usize {
        self.counters.lost.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.control.send_modify(|c| c.stop = true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept(
    listener: std::net::TcpListener,
    upstream: SocketAddr,
    mut rx: watch::Receiver<Control>,
    counters: Arc<Counters>,
) {
    let listener = TcpListener::from_std(listener).expect("tokio listener");
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((client, _)) => {
                    counters.connections.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(connection(client, upstream, rx.clone(), counters.clone()));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            r = rx.changed() => if r.is_err() || rx.borrow().stop {
                return;
            },
        }
    }
}

/// Closes `s` with an RST rather than a FIN.
fn reset(s: TcpStream) {
    let _ = s.set_zero_linger();
    drop(s);
}

async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    mut rx: watch::Receiver<Control>,
    counters: Arc<Counters>,
) {
    let born = *rx.borrow_and_update();
    match born.mode {
        Mode::Refuse => return reset(client),
        Mode::Blackhole => return blackhole(client, rx, born.cuts).await,
        Mode::Pass | Mode::Delay(_) | Mode::ResetAfterRequest => {}
    }
    let Ok(up) = TcpStream::connect(upstream).await else {
        return reset(client);
    };
    let _ = client.set_nodelay(true);
    let _ = up.set_nodelay(true);
    forward(client, up, rx, born.cuts, &counters).await;
}

/// Reads and discards whatever the client sends, never answers; holds the
/// connection until the client resets it or the test cuts it.
async fn blackhole(mut client: TcpStream, mut rx: watch::Receiver<Control>, cuts: u64) {
    let mut buf = vec![0u8; CHUNK];
    let mut reading = true;
    loop {
        tokio::select! {
            r = client.read(&mut buf), if reading => match r {
                Ok(0) => reading = false, // half-closed: keep the line open, silent
                Ok(_) => {}
                Err(_) => return,
            },
            r = rx.changed() => if r.is_err() || rx.borrow().cuts(cuts) {
                return reset(client);
            },
        }
    }
}

/// Forwards both ways, one chunk at a time, under the mode of the moment.
async fn forward(
    mut client: TcpStream,
    mut up: TcpStream,
    mut rx: watch::Receiver<Control>,
    cuts: u64,
    counters: &Counters,
) {
    let (mut cbuf, mut ubuf) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let (mut client_open, mut up_open) = (true, true);
    // Once anything was discarded the byte streams are out of step: this
    // connection never forwards again.
    let mut stalled = false;
    while client_open || up_open {
        tokio::select! {
            r = client.read(&mut cbuf), if client_open => {
                let n = match r {
                    Ok(0) => {
                        client_open = false;
                        let _ = up.shutdown().await;
                        continue;
                    }
                    Ok(n) => n,
                    Err(_) => return,
                };
                let now = *rx.borrow();
                if now.cuts(cuts) {
                    return reset(client);
                }
                stalled |= now.mode == Mode::Blackhole;
                if !stalled && up.write_all(&cbuf[..n]).await.is_err() {
                    return reset(client);
                }
            }
            r = up.read(&mut ubuf), if up_open => {
                let n = match r {
                    Ok(0) => {
                        up_open = false;
                        let _ = client.shutdown().await;
                        continue;
                    }
                    Ok(n) => n,
                    Err(_) => return reset(client),
                };
                let mut now = *rx.borrow();
                if let Mode::Delay(d) = now.mode {
                    tokio::time::sleep(d).await;
                    now = *rx.borrow();
                }
                if now.cuts(cuts) {
                    return reset(client);
                }
                stalled |= now.mode == Mode::Blackhole;
                if stalled {
                    continue;
                }
                if now.mode == Mode::ResetAfterRequest {
                    counters.lost.fetch_add(1, Ordering::SeqCst);
                    return reset(client);
                }
                if client.write_all(&ubuf[..n]).await.is_err() {
                    return;
                }
            }
            r = rx.changed() => if r.is_err() || rx.borrow_and_update().cuts(cuts) {
                return reset(client);
            },
        }
    }
}
