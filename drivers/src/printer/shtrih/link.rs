//! The session of «Стандартный нижний уровень» (spec pages 8–9) and the
//! host's recommended state diagram («Приложение 3 Рекомендуемая диаграмма
//! состояний обмена стандартного нижнего уровня со стороны ПК»):
//!
//! 1. «Посылка ENQ»: NAK – the device waits for a command; ACK – «ККТ
//!    подготавливает ответное сообщение» (an answer is pending, it follows);
//!    silence – «отсутствие связи»; retried «J<10» times.
//! 2. «Посылка» of the command frame, «Ожидание подтверждения»: ACK – go on;
//!    NAK – the frame was not taken, send it again («I<10»). Silence – «Отсутствие подтверждения в
//!    течение тайм-аута означает, что сообщение не принято» — but the ACK
//!    may be what was lost, so we ask with ENQ first and only resend on NAK:
//!    resending a command the device took would print twice.
//! 3. «Ожидание STX», length, bytes, «Ожидание КС» with the byte timeout;
//!    «КС верна?» – ACK; otherwise NAK. «Если в ответ на сообщение ККТ
//!    получен NAK, сообщение не повторяется, ККТ ждет уведомления ENQ для
//!    повторения ответа»: so after our NAK we send ENQ, the device answers
//!    ACK and sends the answer again.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, timeout_at};
use tokio_util::codec::Decoder;

use super::commands::{Command, Response, TimeoutClass};
use super::errors::{DeviceError, ProtocolError, ShtrihError, TransportError};
use super::frame::{ACK, ENQ, FrameDecoder, NAK, RawFrame, encode_frame};

/// Link timings. «тайм-аут ожидания каждого байта, равный 50 мс» is the
/// factory default; the rest are host choices («ВРЕМЯ (ТАЙМАУТ) ПОДГОТОВКИ
/// ОТВЕТА ККТ … МОЖЕТ ДОСТИГАТЬ НЕСКОЛЬКИХ МИНУТ»).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Between two bytes of a frame.
    pub byte: Duration,
    /// For the answer to ENQ. The device answers no sooner than the byte
    /// timeout («между приемом ENQ и реакцией на него равно тайм-ауту
    /// приема байта»), so keep this well above `byte`.
    pub enq: Duration,
    /// For ACK/NAK after our command frame.
    pub ack: Duration,
    /// Answer timeouts per [`TimeoutClass`].
    pub query: Duration,
    pub print: Duration,
    pub fiscal: Duration,
    pub report: Duration,
    /// For a pending answer announced by ACK to ENQ (recovery).
    pub pending: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            byte: Duration::from_millis(50),
            enq: Duration::from_millis(500),
            ack: Duration::from_millis(500),
            query: Duration::from_secs(3),
            print: Duration::from_secs(10),
            fiscal: Duration::from_secs(30),
            report: Duration::from_secs(180),
            pending: Duration::from_secs(30),
        }
    }
}

impl Timeouts {
    pub fn answer(&self, class: TimeoutClass) -> Duration {
        match class {
            TimeoutClass::Query => self.query,
            TimeoutClass::Print => self.print,
            TimeoutClass::Fiscal => self.fiscal,
            TimeoutClass::Report => self.report,
        }
    }
}

/// Retry bounds. «Количество повторов при неудачных сеансах связи …
/// настраивается при реализации программного обеспечения хоста»;
/// Приложение 3 uses 10.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retries {
    /// ENQ without any answer.
    pub enq: u32,
    /// Command frame NAKed or unacknowledged.
    pub send: u32,
    /// Answer received with a bad LRC or broken off.
    pub answer: u32,
    /// Pending (stale) answers drained before our command.
    pub pending: u32,
}

impl Default for Retries {
    fn default() -> Self {
        Self {
            enq: 10,
            send: 10,
            answer: 10,
            pending: 10,
        }
    }
}

/// Shtrih-M client over any byte stream (serial port, TCP socket, duplex).
#[derive(Debug)]
pub struct ShtrihClient<T> {
    io: T,
    password: u32,
    timeouts: Timeouts,
    retries: Retries,
    buf: BytesMut,
    decoder: FrameDecoder,
}

enum EnqAnswer {
    /// NAK: ready for a command.
    Ready,
    /// ACK: an answer follows.
    Pending,
    Silent,
}

enum FrameRead {
    Frame(RawFrame),
    /// No STX before the deadline.
    Timeout,
    /// Started but broke off (byte timeout).
    Broken,
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> ShtrihClient<T> {
    /// `password`: «Пароль оператора» (e.g. 30 for the system administrator
    /// on factory settings), sent in every command.
    pub fn new(io: T, password: u32) -> Self {
        Self::with_timeouts(io, password, Timeouts::default())
    }

    pub fn with_timeouts(io: T, password: u32, timeouts: Timeouts) -> Self {
        Self {
            io,
            password,
            timeouts,
            retries: Retries::default(),
            buf: BytesMut::with_capacity(512),
            decoder: FrameDecoder::new(),
        }
    }

    pub fn set_retries(&mut self, retries: Retries) {
        self.retries = retries;
    }

    pub fn set_password(&mut self, password: u32) {
        self.password = password;
    }

    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    pub fn get_ref(&self) -> &T {
        &self.io
    }

    pub fn get_mut(&mut self) -> &mut T {
        &mut self.io
    }

    pub fn into_inner(self) -> T {
        self.io
    }

    /// Runs one command. A non-zero «Код ошибки» becomes
    /// [`ShtrihError::Device`]; an answer to another command becomes
    /// [`ProtocolError::UnexpectedCommand`].
    pub async fn execute(&mut self, cmd: &Command) -> Result<Response, ShtrihError> {
        let frame = encode_frame(&cmd.body(self.password))?;
        let answer_timeout = self.timeouts.answer(cmd.timeout);
        tracing::debug!(command = cmd.code, "shtrih: execute");

        self.wait_ready().await?;

        // «Посылка» and «Ожидание подтверждения».
        let mut naks = 0;
        let mut silent = 0;
        loop {
            self.write_all(&frame).await?;
            match self.read_control(self.timeouts.ack).await? {
                Some(ACK) => break,
                Some(_) => {
                    naks += 1;
                    tracing::debug!(naks, "shtrih: command frame NAKed");
                }
                None => {
                    silent += 1;
                    // Did the device take it? Ask before resending.
                    match self.enq().await? {
                        EnqAnswer::Pending => break,
                        EnqAnswer::Ready => {}
                        EnqAnswer::Silent => {
                            return Err(TransportError::NoAck { attempts: silent }.into());
                        }
                    }
                }
            }
            if naks + silent >= self.retries.send {
                return Err(if naks >= silent {
                    ProtocolError::FrameRejected { attempts: naks }.into()
                } else {
                    TransportError::NoAck { attempts: silent }.into()
                });
            }
        }

        let resp = self.read_answer(answer_timeout).await?;
        if resp.command != cmd.code {
            return Err(ProtocolError::UnexpectedCommand {
                expected: cmd.code,
                got: resp.command,
            }
            .into());
        }
        if resp.error != 0 {
            return Err(DeviceError::from_code(resp.error).into());
        }
        Ok(resp)
    }

    /// After a link loss: sends ENQ; if the device answers ACK it still
    /// holds an answer, which is read, acknowledged and returned (errors
    /// inside it are not turned into `Err`: look at `Response::error`).
    /// `Ok(None)` if the device is idle (NAK).
    pub async fn recover_pending(&mut self) -> Result<Option<Response>, ShtrihError> {
        self.buf.clear();
        for _ in 0..self.retries.enq {
            match self.enq().await? {
                EnqAnswer::Ready => return Ok(None),
                EnqAnswer::Pending => {
                    return self.read_answer(self.timeouts.pending).await.map(Some);
                }
                EnqAnswer::Silent => {}
            }
        }
        Err(TransportError::NoAnswer {
            attempts: self.retries.enq,
        }
        .into())
    }

    /// «Посылка ENQ» until NAK. Pending answers are read and discarded.
    async fn wait_ready(&mut self) -> Result<(), ShtrihError> {
        // Stale input belongs to no exchange of ours.
        self.buf.clear();
        let mut silent = 0;
        let mut drained = 0;
        loop {
            match self.enq().await? {
                EnqAnswer::Ready => return Ok(()),
                EnqAnswer::Pending => {
                    drained += 1;
                    let stale = self.read_answer(self.timeouts.pending).await?;
                    tracing::warn!(
                        command = stale.command,
                        error = stale.error,
                        "shtrih: discarded a pending answer from an earlier command"
                    );
                    if drained >= self.retries.pending {
                        return Err(TransportError::NoAnswer { attempts: drained }.into());
                    }
                }
                EnqAnswer::Silent => {
                    silent += 1;
                    if silent >= self.retries.enq {
                        return Err(TransportError::NoAnswer { attempts: silent }.into());
                    }
                }
            }
        }
    }

    async fn enq(&mut self) -> Result<EnqAnswer, ShtrihError> {
        self.write_all(&[ENQ]).await?;
        Ok(match self.read_control(self.timeouts.enq).await? {
            Some(NAK) => EnqAnswer::Ready,
            Some(_) => EnqAnswer::Pending,
            None => EnqAnswer::Silent,
        })
    }

    /// Reads an answer frame, acknowledging it: ACK on a good LRC; NAK,
    /// ENQ and a fresh read otherwise.
    async fn read_answer(&mut self, first_byte: Duration) -> Result<Response, ShtrihError> {
        let mut bad = 0;
        loop {
            match self.read_frame(first_byte).await? {
                FrameRead::Frame(f) if f.lrc_ok => {
                    self.write_all(&[ACK]).await?;
                    return Ok(Response::from_body(&f.body)?);
                }
                FrameRead::Frame(f) => {
                    tracing::debug!(lrc = f.lrc, "shtrih: answer with bad LRC");
                }
                FrameRead::Broken => {
                    tracing::debug!("shtrih: answer broke off (byte timeout)");
                }
                FrameRead::Timeout => {
                    return Err(TransportError::AnswerTimeout(first_byte).into());
                }
            }
            bad += 1;
            self.buf.clear();
            self.write_all(&[NAK]).await?;
            if bad >= self.retries.answer {
                return Err(ProtocolError::BadAnswer { attempts: bad }.into());
            }
            // «ККТ ждет уведомления ENQ для повторения ответа».
            let mut silent = 0;
            loop {
                match self.enq().await? {
                    EnqAnswer::Pending => break,
                    EnqAnswer::Ready => return Err(ProtocolError::AnswerLost.into()),
                    EnqAnswer::Silent => {
                        silent += 1;
                        if silent >= self.retries.enq {
                            return Err(TransportError::NoAnswer { attempts: silent }.into());
                        }
                    }
                }
            }
        }
    }

    /// Waits for ACK or NAK, skipping anything else («не распознан»).
    async fn read_control(&mut self, wait: Duration) -> Result<Option<u8>, ShtrihError> {
        let deadline = Instant::now() + wait;
        loop {
            while !self.buf.is_empty() {
                let b = self.buf.split_to(1)[0];
                if b == ACK || b == NAK {
                    return Ok(Some(b));
                }
                tracing::trace!(byte = b, "shtrih: skipped byte while waiting for ACK/NAK");
            }
            if !self.fill(deadline).await? {
                return Ok(None);
            }
        }
    }

    async fn read_frame(&mut self, first_byte: Duration) -> Result<FrameRead, ShtrihError> {
        let deadline = Instant::now() + first_byte;
        loop {
            if let Some(f) = self
                .decoder
                .decode(&mut self.buf)
                .map_err(TransportError::Io)?
            {
                return Ok(FrameRead::Frame(f));
            }
            // The decoder keeps only bytes from STX on: a non-empty buffer
            // is a frame in progress, bound by the byte timeout.
            let started = !self.buf.is_empty();
            let until = if started {
                Instant::now() + self.timeouts.byte
            } else {
                deadline
            };
            if !self.fill(until).await? {
                return Ok(if started {
                    FrameRead::Broken
                } else {
                    FrameRead::Timeout
                });
            }
        }
    }

    /// Reads more bytes; false on timeout.
    async fn fill(&mut self, until: Instant) -> Result<bool, ShtrihError> {
        let mut chunk = [0u8; 256];
        match timeout_at(until, self.io.read(&mut chunk)).await {
            Err(_) => Ok(false),
            Ok(Err(e)) => Err(TransportError::Io(e).into()),
            Ok(Ok(0)) => Err(TransportError::Closed.into()),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> Result<(), ShtrihError> {
        self.io.write_all(bytes).await.map_err(TransportError::Io)?;
        self.io.flush().await.map_err(TransportError::Io)?;
        Ok(())
    }
}
