//! The standard lower level of the protocol (device side) and the serving
//! loops on a stream, TCP connections and a pseudo-terminal.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::state::Pending;
use super::{ACK, ENQ, NAK, STX, ShtrihSim, ShtrihSimHandle, encode_frame, lrc};

enum Rx {
    Byte(u8),
    Eof,
    Timeout,
}

enum End {
    Eof,
    DropLink,
    Cancelled,
}

struct Link<'a, S> {
    io: &'a mut S,
    buf: [u8; 256],
    start: usize,
    end: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Link<'_, S> {
    /// Next byte; cancel-safe.
    async fn byte(&mut self) -> io::Result<Option<u8>> {
        if self.start == self.end {
            let n = self.io.read(&mut self.buf).await?;
            if n == 0 {
                return Ok(None);
            }
            self.start = 0;
            self.end = n;
        }
        let b = self.buf[self.start];
        self.start += 1;
        Ok(Some(b))
    }

    async fn byte_within(&mut self, t: Duration) -> io::Result<Rx> {
        match tokio::time::timeout(t, self.byte()).await {
            Err(_) => Ok(Rx::Timeout),
            Ok(Ok(Some(b))) => Ok(Rx::Byte(b)),
            Ok(Ok(None)) => Ok(Rx::Eof),
            Ok(Err(e)) => Err(e),
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.io.write_all(bytes).await?;
        self.io.flush().await
    }
}

impl ShtrihSim {
    /// Serves one stream until EOF, an I/O error, or a
    /// [`Fault::DropLinkAfterCommand`] (then the stream is dropped).
    pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(&self, mut io: S) -> io::Result<()> {
        self.serve_until(&mut io, &CancellationToken::new())
            .await
            .map(|_| ())
    }

    async fn serve_until<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: &mut S,
        stop: &CancellationToken,
    ) -> io::Result<End> {
        let mut link = Link {
            io,
            buf: [0; 256],
            start: 0,
            end: 0,
        };
        let mut next: Option<u8> = None;
        loop {
            let b = match next.take() {
                Some(b) => b,
                None => tokio::select! {
                    _ = stop.cancelled() => return Ok(End::Cancelled),
                    r = link.byte() => match r? {
                        Some(b) => b,
                        None => return Ok(End::Eof),
                    },
                },
            };
            let after = match b {
                ENQ => self.on_enq(&mut link).await?,
                STX => self.on_stx(&mut link).await?,
                _ => After::Idle, // stray byte: ignored
            };
            match after {
                After::Idle => {}
                After::Next(b) => next = Some(b),
                After::Eof => return Ok(End::Eof),
                After::DropLink => return Ok(End::DropLink),
            }
        }
    }

    async fn on_enq<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        link: &mut Link<'_, S>,
    ) -> io::Result<After> {
        let pending = self.dev().pending.clone();
        match pending {
            None => {
                link.send(&[NAK]).await?;
                Ok(After::Idle)
            }
            Some(p) => {
                link.send(&[ACK]).await?;
                self.send_answer(link, p.id).await
            }
        }
    }

    /// Sends pending answer `id` and waits for the host's confirmation.
    async fn send_answer<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        link: &mut Link<'_, S>,
        id: u64,
    ) -> io::Result<After> {
        let (frame, ack_timeout) = {
            let mut d = self.dev();
            let max = d.timing.max_answer_sends;
            let corrupt = std::mem::take(&mut d.faults.corrupt_next);
            let ack_timeout = d.timing.ack_timeout;
            let Some(p) = d.pending.as_mut().filter(|p| p.id == id) else {
                return Ok(After::Idle);
            };
            p.sends += 1;
            let mut frame = p.frame.clone();
            if p.sends >= max {
                tracing::debug!("shtrih sim: answer sent {max} times, discarded");
                d.pending = None;
            }
            if corrupt && frame.len() > 3 {
                let i = frame.len() - 2;
                frame[i] ^= 0x5A;
            }
            (frame, ack_timeout)
        };
        link.send(&frame).await?;
        let deadline = tokio::time::Instant::now() + ack_timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            return match link.byte_within(left).await? {
                Rx::Byte(ACK) => {
                    let mut d = self.dev();
                    if d.pending.as_ref().is_some_and(|p| p.id == id) {
                        d.pending = None;
                    }
                    Ok(After::Idle)
                }
                // NAK, timeout: the answer stays pending until ENQ.
                Rx::Byte(NAK) | Rx::Timeout => Ok(After::Idle),
                // An ENQ that crossed the answer on the line (shtrihm-fr
                // sends ENQ right after its command and reads the command's
                // ACK as the reply): the answer is already on its way, so
                // keep waiting for the host's ACK instead of sending it a
                // second time, which would leave a stale copy in the host's
                // input. A host that lost the answer NAKs it or lets the
                // wait run out, and then ENQ repeats it.
                Rx::Byte(ENQ) => continue,
                Rx::Byte(STX) => Ok(After::Next(STX)),
                Rx::Byte(_) => Ok(After::Idle),
                Rx::Eof => Ok(After::Eof),
            };
        }
    }

    async fn on_stx<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        link: &mut Link<'_, S>,
    ) -> io::Result<After> {
        let (byte_timeout, epoch) = {
            let d = self.dev();
            (d.timing.byte_timeout, d.power_epoch)
        };
        let len = match link.byte_within(byte_timeout).await? {
            Rx::Byte(b) => b,
            Rx::Eof => return Ok(After::Eof),
            Rx::Timeout => return Ok(After::Idle),
        };
        let mut payload = Vec::with_capacity(len as usize);
        for _ in 0..=len {
            match link.byte_within(byte_timeout).await? {
                Rx::Byte(b) => payload.push(b),
                Rx::Eof => return Ok(After::Eof),
                Rx::Timeout => {
                    tracing::debug!("shtrih sim: byte timeout, partial frame discarded");
                    return Ok(After::Idle);
                }
            }
        }
        let got_lrc = payload.pop().unwrap_or(0);
        let good = len > 0 && lrc(&payload) ^ len == got_lrc;
        let executed = {
            let mut d = self.dev();
            if d.power_epoch != epoch {
                return Ok(After::Idle); // power lost mid-frame
            }
            if !good || std::mem::take(&mut d.faults.nak_next) {
                None
            } else {
                let answer = d.execute(&payload);
                let id = d.next_pending_id;
                d.next_pending_id += 1;
                d.pending = Some(Pending {
                    id,
                    frame: encode_frame(&answer),
                    sends: 0,
                });
                let countdown = match d.faults.drop_link_after {
                    Some(n) if n <= 1 => {
                        d.faults.drop_link_after = None;
                        true
                    }
                    Some(n) => {
                        d.faults.drop_link_after = Some(n - 1);
                        false
                    }
                    None => false,
                };
                let drop_link = std::mem::take(&mut d.faults.drop_link_next) || countdown;
                Some((answer, id, drop_link, d.faults.delay))
            }
        };
        let Some((answer, id, drop_link, delay)) = executed else {
            link.send(&[NAK]).await?;
            return Ok(After::Idle);
        };
        tracing::trace!(cmd = ?&payload[..payload.len().min(2)], answer = ?&answer[..answer.len().min(3)], "shtrih sim: command");
        link.send(&[ACK]).await?;
        if drop_link {
            return Ok(After::DropLink);
        }
        if let Some(delay) = delay {
            // The answer is being prepared: ENQ gets ACK meanwhile.
            let deadline = tokio::time::Instant::now() + delay;
            loop {
                let r = tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    r = link.byte() => r?,
                };
                match r {
                    None => return Ok(After::Eof),
                    Some(ENQ) => link.send(&[ACK]).await?,
                    Some(_) => {}
                }
            }
        }
        if self.dev().power_epoch != epoch {
            return Ok(After::Idle); // answer lost with the power
        }
        self.send_answer(link, id).await
    }

    /// Serves TCP connections on `addr`, one after another (the device has a
    /// single host link). Must be called inside a Tokio runtime. Sets the
    /// "port" of `11h` to 128 (TCP socket).
    pub fn spawn_tcp(&self, addr: SocketAddr) -> io::Result<(SocketAddr, ShtrihSimHandle)> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let local = listener.local_addr()?;
        self.dev().port = 128;
        let stop = CancellationToken::new();
        let sim = self.clone();
        let token = stop.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = token.cancelled() => return,
                    r = listener.accept() => r,
                };
                match accepted {
                    Ok((mut stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        tracing::debug!(%peer, "shtrih sim: tcp host connected");
                        match sim.serve_until(&mut stream, &token).await {
                            Ok(End::Cancelled) => return,
                            Ok(_) => {}
                            Err(e) => tracing::debug!(%e, "shtrih sim: tcp link error"),
                        }
                    }
                    Err(e) => {
                        tracing::debug!(%e, "shtrih sim: accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        });
        Ok((
            local,
            ShtrihSimHandle {
                sim: self.clone(),
                _stop: Arc::new(stop.drop_guard()),
            },
        ))
    }

    /// Serves the master side of a new pseudo-terminal pair and returns the
    /// slave's path for the host to open. While no client has the slave open
    /// the master reads fail with `EIO`: the serving loop then sleeps 20 ms and
    /// polls again, until the handle is dropped, so clients may close and
    /// reopen the path at will (state and a pending answer live in the device,
    /// not in the loop). [`Fault::DropLinkAfterCommand`] on a pty
    /// just leaves the answer unsent (the master cannot be closed without
    /// losing the path). Must be called inside a Tokio runtime.
    pub fn spawn_pty(&self) -> io::Result<(PathBuf, ShtrihSimHandle)> {
        use tokio_serial::SerialPort;
        let (mut master, slave) = tokio_serial::SerialStream::pair().map_err(io::Error::other)?;
        let path = slave
            .name()
            .map(PathBuf::from)
            .ok_or_else(|| io::Error::other("pty slave has no name"))?;
        // Not kept open: a client's TIOCEXCL and flock would otherwise outlive
        // the client (they are cleared when the last descriptor closes).
        drop(slave);
        let stop = CancellationToken::new();
        let sim = self.clone();
        let token = stop.clone();
        tokio::spawn(async move {
            loop {
                match sim.serve_until(&mut master, &token).await {
                    Ok(End::Cancelled) => return,
                    Ok(End::DropLink) => {}
                    Ok(End::Eof) | Err(_) => {
                        tokio::select! {
                            _ = token.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                        }
                    }
                }
            }
        });
        Ok((
            path,
            ShtrihSimHandle {
                sim: self.clone(),
                _stop: Arc::new(stop.drop_guard()),
            },
        ))
    }
}

enum After {
    Idle,
    Next(u8),
    Eof,
    DropLink,
}
