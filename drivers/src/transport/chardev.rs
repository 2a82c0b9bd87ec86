//! Character devices (USB printer class `/dev/usb/lpN`, or any tty-like
//! node) opened non-blocking and driven by readiness, so a status read
//! with no reply times out instead of pinning a thread forever.
//!
//! `tokio::fs::File` reads on a blocking thread that cannot be cancelled: a
//! `DLE EOT` poll of a printer that never answers would leave the file busy
//! and every later write queued behind it. With `O_NONBLOCK` and
//! [`AsyncFd`], a read that would block returns `WouldBlock` and the caller's
//! timeout simply drops the future.
//!
//! Nodes that epoll cannot watch fall back to `tokio::fs::File`; the caller
//! learns this from [`CharDevice::readable`] and does not poll status.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{BoxTransport, TransportError};

/// An opened character device.
pub struct CharDevice {
    /// The stream.
    pub transport: BoxTransport,
    /// Reads are readiness-driven and may be given timeouts (status replies
    /// can be read). `false` when the node cannot be polled.
    pub readable: bool,
}

/// A non-blocking device fd registered with the reactor.
struct Polled(AsyncFd<File>);

/// Opens `path` read-write, non-blocking when the node can be polled.
pub async fn open(path: &Path) -> Result<CharDevice, TransportError> {
    let what = path.display().to_string();
    let p = path.to_owned();
    // open(2) of a device node can sleep (usblp waits for the device), so
    // it runs off the async threads.
    let file = tokio::task::spawn_blocking(move || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            // O_NOCTTY: a tty node (a pty standing in for the printer) must
            // not become the daemon's controlling terminal, whose hang-up
            // would deliver SIGHUP (reload).
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
            .open(p)
    })
    .await
    .map_err(|e| TransportError::from_io(what.clone(), io::Error::other(e.to_string())))?
    .map_err(|e| TransportError::from_io(what.clone(), e))?;
    // SAFETY: the `File` owns its descriptor and moves into the `AsyncFd`,
    // which never closes or swaps it while registered.
    match unsafe { AsyncFd::register(file) } {
        Ok(fd) => Ok(CharDevice {
            transport: Box::new(Polled(fd)),
            readable: true,
        }),
        Err(_) => {
            // Not pollable (epoll refuses regular files and some drivers):
            // write blocking on tokio's thread pool, never read.
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY)
                .open(path)
                .map_err(|e| TransportError::from_io(what, e))?;
            Ok(CharDevice {
                transport: Box::new(tokio::fs::File::from_std(file)),
                readable: false,
            })
        }
    }
}

impl AsyncRead for Polled {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|inner| inner.get_ref().read(unfilled)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for Polled {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.poll_write_ready(cx))?;
            match guard.try_io(|inner| inner.get_ref().write(buf)) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Writes go straight to the driver; there is no user-space buffer.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_pty_is_polled_and_a_silent_read_times_out() {
        let (path, sim) = crate::sim::escpos::spawn_pty();
        let mut dev = open(&path).await.expect("pty opens");
        assert!(dev.readable);
        // The simulator answers DLE EOT 1.
        dev.transport.write_all(&[0x10, 0x04, 0x01]).await.unwrap();
        let mut b = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(10), dev.transport.read_exact(&mut b))
            .await
            .expect("reply")
            .unwrap();
        assert!(crate::printer::escpos::is_status_byte(b[0]), "{b:?}");
        // Nothing more comes: the read times out and the device stays usable.
        let r = tokio::time::timeout(Duration::from_millis(50), dev.transport.read(&mut b)).await;
        assert!(r.is_err(), "no data, no EOF: {r:?}");
        dev.transport.write_all(b"hi\n\x1dV\x00").await.unwrap();
        sim.wait_receipts(1, Duration::from_secs(10))
            .await
            .expect("printed");
        assert_eq!(sim.paper().receipts[0].lines[0].text, "hi");
    }

    #[tokio::test]
    async fn a_regular_file_falls_back_to_blocking_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lp");
        std::fs::write(&path, b"").unwrap();
        let mut dev = open(&path).await.expect("opens");
        assert!(!dev.readable);
        dev.transport.write_all(b"abc").await.unwrap();
        dev.transport.flush().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
    }

    #[tokio::test]
    async fn a_missing_node_is_not_found() {
        let e = open(Path::new("/nonexistent/usb/lp9"))
            .await
            .err()
            .expect("fails");
        assert!(matches!(e, TransportError::NotFound { .. }), "{e}");
    }
}
