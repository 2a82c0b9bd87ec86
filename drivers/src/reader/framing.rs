//! Splitting the byte stream of a serial / USB-CDC magstripe reader or
//! barcode scanner into messages, and AIM symbology identifiers.
//!
//! [`FrameCodec`] is a pure [`Decoder`]: it is unit-tested on byte vectors and
//! can be plugged into `tokio_util::codec::FramedRead` when messages always
//! end with a terminator. Readers that rely on an inter-character gap (no
//! terminator, or a terminator that some symbologies omit) need a clock, which
//! a decoder does not have; [`FramedReader`] adds it.
//!
//! Bad input never ends the stream: an overlong message comes out as
//! [`FrameEvent::Overflow`] and the next message decodes normally. That is
//! deliberate. `FramedRead` (tokio-util 0.7.20, `framed_impl.rs`) turns an
//! `Err` from `decode` into one `Some(Err(_))` item followed by `None`, and
//! `while let Some(..) = stream.next().await` loops stop at that `None`
//! (polling again would resume reading, but few callers do). So errors are
//! items here, and `Err` is reserved for I/O failures.
//!
//! Message content is card data: nothing here logs it, only lengths, and
//! [`FrameEvent`]'s `Debug` output shows lengths only.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::codec::Decoder;

/// Default for [`FrameConfig::max_len`]: far above any track or barcode
/// payload, small enough to bound memory if a reader never terminates.
pub const DEFAULT_MAX_LEN: usize = 4096;

/// Bytes asked of the reader per read; scanners send bursts of a few hundred.
const READ_CHUNK: usize = 1024;

/// How a reader's messages are delimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameConfig {
    /// Bytes the reader puts before each message (STX `0x02`, or a vendor
    /// prefix). Stripped when a message starts with them; a message without
    /// them is passed on unchanged, because some readers only prefix some
    /// symbologies. Must not contain the terminator.
    pub prefix: Option<Vec<u8>>,
    /// What ends a message (stripped from it).
    pub suffix: Suffix,
    /// Silence after which pending bytes form a message even without a
    /// terminator. Required with [`Suffix::None`]; only [`FramedReader`]
    /// applies it (a decoder has no clock).
    pub inter_char_timeout: Option<Duration>,
    /// Longest message, prefix and terminator excluded; longer ones become
    /// [`FrameEvent::Overflow`]. Default [`DEFAULT_MAX_LEN`].
    pub max_len: usize,
}

impl Default for FrameConfig {
    fn default() -> Self {
        FrameConfig {
            prefix: None,
            suffix: Suffix::Cr,
            inter_char_timeout: None,
            max_len: DEFAULT_MAX_LEN,
        }
    }
}

impl FrameConfig {
    /// Checks that the settings can frame anything; [`FrameCodec::new`] calls
    /// it, so an invalid configuration fails at startup, not on first scan.
    pub fn validate(&self) -> Result<(), FrameError> {
        if self.max_len == 0 {
            return Err(FrameError::ZeroMaxLen);
        }
        if self.inter_char_timeout == Some(Duration::ZERO) {
            // A zero gap would cut every read into its own message.
            return Err(FrameError::ZeroTimeout);
        }
        match &self.suffix {
            Suffix::None if self.inter_char_timeout.is_none() => {
                return Err(FrameError::NoTerminator);
            }
            Suffix::Custom(bytes) if bytes.is_empty() => return Err(FrameError::EmptySuffix),
            _ => {}
        }
        if let Some(prefix) = &self.prefix {
            // A terminator inside the prefix would end every message at its
            // first bytes.
            let contains = match &self.suffix {
                Suffix::Cr => prefix.iter().any(|&b| b == b'\r' || b == b'\n'),
                Suffix::None => false,
                other => {
                    let needle = other.needle();
                    prefix.windows(needle.len()).any(|w| w == needle)
                }
            };
            if contains {
                return Err(FrameError::PrefixContainsSuffix);
            }
        }
        Ok(())
    }
}

/// What ends a message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Suffix {
    /// Any newline: CR, LF or CR LF. Scanners ship with either setting and
    /// installers rarely know which, so the default accepts all three. CR LF
    /// reads as a message ending in CR followed by an empty message ending in
    /// LF, and empty messages are skipped, so this holds however the bytes
    /// are split across reads. The price: payloads cannot contain CR or LF
    /// (use [`Suffix::CrLf`] or [`Suffix::Lf`] for those).
    #[default]
    Cr,
    /// LF (0x0A) only; a CR before it stays in the message.
    Lf,
    /// Exactly CR LF; a lone CR or LF stays in the message.
    CrLf,
    /// ETX (0x03), usually paired with an STX prefix.
    Etx,
    /// Any non-empty byte sequence.
    Custom(Vec<u8>),
    /// No terminator: only the inter-character timeout ends a message.
    None,
}

impl Suffix {
    /// The exact terminator bytes; `Cr` is special-cased by the callers.
    fn needle(&self) -> &[u8] {
        match self {
            Suffix::Cr => b"\r",
            Suffix::Lf => b"\n",
            Suffix::CrLf => b"\r\n",
            Suffix::Etx => b"\x03",
            Suffix::Custom(bytes) => bytes,
            Suffix::None => b"",
        }
    }
}

/// Invalid framing settings, or an I/O error under `FramedRead`.
#[derive(Debug, Error)]
pub enum FrameError {
    /// `suffix = none` without an inter-character timeout: nothing would ever
    /// end a message.
    #[error("a reader without a message terminator needs an inter-character timeout")]
    NoTerminator,
    /// A zero inter-character timeout.
    #[error("the inter-character timeout must be longer than zero")]
    ZeroTimeout,
    /// `Suffix::Custom` with no bytes.
    #[error("a custom message terminator must have at least one byte")]
    EmptySuffix,
    /// `max_len` of zero: every message would overflow.
    #[error("the maximum message length must be at least 1")]
    ZeroMaxLen,
    /// The prefix contains the terminator.
    #[error("the message prefix contains the message terminator")]
    PrefixContainsSuffix,
    /// Reading failed; only produced through [`Decoder`]'s plumbing
    /// (`FramedRead` requires `From<io::Error>`), never by decoding itself.
    #[error("reading from the reader failed")]
    Io(#[from] io::Error),
}

/// One unit of a reader's output.
#[derive(Clone, PartialEq, Eq)]
pub enum FrameEvent {
    /// A message, prefix and terminator stripped; never empty.
    Message(Vec<u8>),
    /// A message longer than `max_len` was dropped; `len` is its length
    /// (prefix and terminator excluded). Reported when the message ends, so
    /// the length is exact and does not depend on how reads were split.
    Overflow {
        /// Length of the dropped message.
        len: usize,
    },
}

impl fmt::Debug for FrameEvent {
    // Hand-written so that `{:?}` in a log line cannot leak card data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameEvent::Message(bytes) => write!(f, "Message(<{} bytes>)", bytes.len()),
            FrameEvent::Overflow { len } => f.debug_struct("Overflow").field("len", len).finish(),
        }
    }
}

/// An overlong message being dropped.
#[derive(Debug, Clone, Copy)]
struct Discard {
    /// Bytes dropped so far, prefix included.
    dropped: usize,
    /// Whether the message started with the prefix (not counted in its length).
    prefixed: bool,
}

/// Splits a reader's bytes into [`FrameEvent`]s.
///
/// As a [`Decoder`], it ends messages only at terminators; `decode` never
/// fails. At end of input (`decode_eof`, [`FramedReader`]) an unterminated
/// tail forms a final message only with [`Suffix::None`]; otherwise it is
/// dropped, because a reader unplugged mid-swipe leaves a truncated message
/// that must not pass for a complete one. An overlong message in progress is
/// still reported as [`FrameEvent::Overflow`].
#[derive(Debug, Clone)]
pub struct FrameCodec {
    config: FrameConfig,
    /// Leading bytes of the buffer known not to start a terminator, so each
    /// byte is searched once however the input is split.
    scanned: usize,
    /// Set while dropping an overlong message up to its terminator; keeps
    /// memory bounded by `max_len` whatever the reader sends.
    discard: Option<Discard>,
}

impl FrameCodec {
    /// A codec for `config`, which must pass [`FrameConfig::validate`].
    pub fn new(config: FrameConfig) -> Result<Self, FrameError> {
        config.validate()?;
        Ok(FrameCodec {
            config,
            scanned: 0,
            discard: None,
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &FrameConfig {
        &self.config
    }

    /// Whether bytes of an unfinished message are pending (in `buf`, or
    /// counted as dropped): what the inter-character timeout waits on.
    pub fn is_pending(&self, buf: &BytesMut) -> bool {
        !buf.is_empty() || self.discard.is_some()
    }

    /// Takes the next terminated message out of `buf`, if there is one.
    /// Same as [`Decoder::decode`], without the never-returned error.
    pub fn decode_event(&mut self, buf: &mut BytesMut) -> Option<FrameEvent> {
        loop {
            let from = self.scanned.min(buf.len());
            if let Some((pos, term_len)) = self.find_terminator(buf, from) {
                let line = buf.split_to(pos);
                buf.advance(term_len);
                self.scanned = 0;
                if let Some(discard) = self.discard.take() {
                    return Some(self.overflow(discard, line.len()));
                }
                match self.finish_line(&line) {
                    Some(event) => return Some(event),
                    // Bare terminator (or prefix only): nothing to report.
                    None => continue,
                }
            }

            // No terminator yet. The last `len - 1` bytes could be the start
            // of a multi-byte one; everything before them is message content.
            let certain = buf.len().saturating_sub(self.tail_keep());
            if let Some(discard) = &mut self.discard {
                buf.advance(certain);
                discard.dropped += certain;
                self.scanned = 0;
                return None;
            }
            self.scanned = certain;
            if let Some(prefixed) = self.overlong(&buf[..certain]) {
                // Logged now, reported when the message ends: if the terminator
                // is misconfigured the end may never come, and this line is
                // the only clue.
                tracing::warn!(
                    max_len = self.config.max_len,
                    "reader message exceeds max_len; dropping it up to the next terminator"
                );
                self.discard = Some(Discard {
                    dropped: 0,
                    prefixed,
                });
                continue;
            }
            return None;
        }
    }

    /// Ends the pending message without a terminator, because the reader
    /// went quiet (inter-character timeout). Terminated messages still in
    /// `buf` come first, so call it until it returns `None`. A trailing
    /// partial terminator (the CR of an unfinished CR LF) is not content.
    pub fn flush(&mut self, buf: &mut BytesMut) -> Option<FrameEvent> {
        if let Some(event) = self.decode_event(buf) {
            return Some(event);
        }
        self.scanned = 0;
        let tail = self.partial_terminator_len(buf);
        let line = buf.split();
        let content = &line[..line.len() - tail];
        if let Some(discard) = self.discard.take() {
            return Some(self.overflow(discard, content.len()));
        }
        self.finish_line(content)
    }

    /// End of input: pending bytes form a final message only with
    /// [`Suffix::None`]; otherwise an unterminated tail is dropped (see
    /// [`FrameCodec`]). Call until it returns `None`.
    pub fn finish(&mut self, buf: &mut BytesMut) -> Option<FrameEvent> {
        if self.config.suffix == Suffix::None {
            return self.flush(buf);
        }
        if let Some(event) = self.decode_event(buf) {
            return Some(event);
        }
        self.scanned = 0;
        let content_len = buf.len() - self.partial_terminator_len(buf);
        let event = match self.discard.take() {
            Some(discard) => Some(self.overflow(discard, content_len)),
            // Too long already: say so, as a terminator would have.
            None => match self.finish_line(&buf[..content_len]) {
                Some(FrameEvent::Message(partial)) => {
                    tracing::debug!(
                        len = partial.len(),
                        "reader input ended inside a message; dropping the partial message"
                    );
                    None
                }
                other => other,
            },
        };
        buf.clear();
        event
    }

    /// First terminator at or after `from`: (position, length).
    fn find_terminator(&self, buf: &[u8], from: usize) -> Option<(usize, usize)> {
        let hay = &buf[from..];
        let found = match &self.config.suffix {
            Suffix::None => None,
            Suffix::Cr => hay
                .iter()
                .position(|&b| b == b'\r' || b == b'\n')
                .map(|i| (i, 1)),
            other => {
                let needle = other.needle();
                if let [byte] = needle {
                    hay.iter().position(|b| b == byte).map(|i| (i, 1))
                } else {
                    hay.windows(needle.len())
                        .position(|w| w == needle)
                        .map(|i| (i, needle.len()))
                }
            }
        };
        found.map(|(i, len)| (from + i, len))
    }

    /// Bytes at the end of an unterminated buffer that may begin a terminator.
    fn tail_keep(&self) -> usize {
        match &self.config.suffix {
            Suffix::Cr | Suffix::None => 0,
            other => other.needle().len() - 1,
        }
    }

    /// Length of the longest proper prefix of the terminator ending `buf`.
    fn partial_terminator_len(&self, buf: &[u8]) -> usize {
        let needle = self.config.suffix.needle();
        (1..=self.tail_keep())
            .rev()
            .find(|&k| buf.ends_with(&needle[..k]))
            .unwrap_or(0)
    }

    fn prefix(&self) -> &[u8] {
        self.config.prefix.as_deref().unwrap_or_default()
    }

    /// If `content` (the certain part of an unfinished message) is already
    /// too long: whether it starts with the prefix. Decides only once the
    /// prefix question is settled, so the outcome matches [`Self::finish_line`]
    /// on the whole message however reads were split.
    fn overlong(&self, content: &[u8]) -> Option<bool> {
        let prefix = self.prefix();
        if content.len() < prefix.len() {
            return None;
        }
        let prefixed = !prefix.is_empty() && content.starts_with(prefix);
        let len = content.len() - if prefixed { prefix.len() } else { 0 };
        (len > self.config.max_len).then_some(prefixed)
    }

    /// A complete message (terminator removed) to its event; `None` if empty.
    fn finish_line(&self, line: &[u8]) -> Option<FrameEvent> {
        let prefix = self.prefix();
        let payload = if prefix.is_empty() {
            line
        } else {
            line.strip_prefix(prefix).unwrap_or(line)
        };
        if payload.is_empty() {
            None
        } else if payload.len() > self.config.max_len {
            Some(FrameEvent::Overflow { len: payload.len() })
        } else {
            Some(FrameEvent::Message(payload.to_vec()))
        }
    }

    /// The overflow report for a dropped message whose last `rest` bytes
    /// were still in the buffer.
    fn overflow(&self, discard: Discard, rest: usize) -> FrameEvent {
        let prefix_len = if discard.prefixed {
            self.prefix().len()
        } else {
            0
        };
        FrameEvent::Overflow {
            len: (discard.dropped + rest).saturating_sub(prefix_len),
        }
    }
}

impl Decoder for FrameCodec {
    type Item = FrameEvent;
    type Error = FrameError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<FrameEvent>, FrameError> {
        Ok(self.decode_event(buf))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<FrameEvent>, FrameError> {
        // The default would turn leftover bytes into an error, which ends a
        // `FramedRead`; `finish` decides what they mean instead.
        Ok(self.finish(buf))
    }
}

/// Reads [`FrameEvent`]s from a serial port (or any [`AsyncRead`]), applying
/// the inter-character timeout that [`FrameCodec`] alone cannot.
///
/// When `inter_char_timeout` is set and bytes of an unfinished message are
/// pending, a gap that long ends the message, terminator or not: with
/// [`Suffix::None`] that is the only way messages end, with a terminator it
/// rescues readers that omit it for some symbologies.
#[derive(Debug)]
pub struct FramedReader<R> {
    inner: R,
    codec: FrameCodec,
    buf: BytesMut,
    eof: bool,
    /// When the last byte arrived: silence is measured from here.
    last_byte: Instant,
}

/// What [`FramedReader::next_unless_silent`] saw.
#[derive(Debug)]
pub enum Joined {
    /// What [`FramedReader::next`] would have returned.
    Event(Option<FrameEvent>),
    /// No byte arrived for the given silence, and no message is complete.
    Silence,
}

impl<R: AsyncRead + Unpin> FramedReader<R> {
    /// Reads from `inner`, framing with `codec`.
    pub fn new(inner: R, codec: FrameCodec) -> Self {
        FramedReader {
            inner,
            codec,
            buf: BytesMut::with_capacity(READ_CHUNK),
            eof: false,
            last_byte: Instant::now(),
        }
    }

    /// The next event, unless the link falls silent for `silence` (measured
    /// from the last byte received, not from the call) before a message is
    /// complete. A magnetic stripe reader that ends each track with CR
    /// sends the next track right away; at 9600 baud a 40-character track
    /// takes ~42 ms to arrive, so timing whole lines would split a swipe,
    /// while the silence between bytes stays ~1 ms. Cancel-safe, as
    /// [`next`](Self::next).
    pub async fn next_unless_silent(&mut self, silence: Duration) -> io::Result<Joined> {
        loop {
            if let Some(event) = self.codec.decode_event(&mut self.buf) {
                return Ok(Joined::Event(Some(event)));
            }
            if self.eof {
                return Ok(Joined::Event(self.codec.finish(&mut self.buf)));
            }
            self.buf.reserve(READ_CHUNK);
            let gap = self
                .codec
                .config()
                .inter_char_timeout
                .filter(|_| self.codec.is_pending(&self.buf));
            let silent_at = self.last_byte + silence;
            let until = gap.map_or(silent_at, |g| silent_at.min(self.last_byte + g));
            match tokio::time::timeout_at(until.into(), self.inner.read_buf(&mut self.buf)).await {
                Ok(read) => {
                    if read? == 0 {
                        self.eof = true;
                    } else {
                        self.last_byte = Instant::now();
                    }
                }
                Err(_elapsed) => {
                    if gap.is_some_and(|g| Instant::now() >= self.last_byte + g)
                        && let Some(event) = self.codec.flush(&mut self.buf)
                    {
                        return Ok(Joined::Event(Some(event)));
                    }
                    if Instant::now() >= silent_at {
                        return Ok(Joined::Silence);
                    }
                }
            }
        }
    }

    /// The codec's settings.
    pub fn config(&self) -> &FrameConfig {
        self.codec.config()
    }

    /// The next event; `Ok(None)` at end of input, and on every call after.
    /// At end of input an unterminated tail is a final message only with
    /// [`Suffix::None`] (see [`FrameCodec`]).
    ///
    /// Cancel-safe (e.g. in `tokio::select!`): state lives in `self` and an
    /// interrupted read loses no bytes; only the gap timer restarts. An I/O
    /// error is returned as is; buffered bytes are kept.
    pub async fn next(&mut self) -> io::Result<Option<FrameEvent>> {
        loop {
            if let Some(event) = self.codec.decode_event(&mut self.buf) {
                return Ok(Some(event));
            }
            if self.eof {
                return Ok(self.codec.finish(&mut self.buf));
            }
            // `read_buf` reads into spare capacity only; without any it would
            // return 0, which looks like end of input.
            self.buf.reserve(READ_CHUNK);
            let gap = self.codec.config().inter_char_timeout;
            let read = match gap {
                Some(gap) if self.codec.is_pending(&self.buf) => {
                    match tokio::time::timeout(gap, self.inner.read_buf(&mut self.buf)).await {
                        Ok(read) => read?,
                        Err(_elapsed) => {
                            if let Some(event) = self.codec.flush(&mut self.buf) {
                                return Ok(Some(event));
                            }
                            continue;
                        }
                    }
                }
                _ => self.inner.read_buf(&mut self.buf).await?,
            };
            if read == 0 {
                self.eof = true;
            } else {
                self.last_byte = Instant::now();
            }
        }
    }
}

/// A barcode symbology, from an AIM identifier (ISO/IEC 15424).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Symbology {
    /// Code character (`Q` for QR Code, `C` for Code 128, ...).
    pub code: char,
    /// Modifier character: options such as check-digit or GS1 processing.
    pub modifier: char,
    /// Stable lowercase name for JSON (`"qr"`, `"ean13"`, `"code128"`, ...);
    /// `"unknown"` for code characters outside the table.
    pub name: &'static str,
}

impl Symbology {
    /// Whether the symbol carries GS1 element strings (application
    /// identifiers): FNC1 in the first position of Code 128, DataMatrix or
    /// QR, and every GS1 DataBar.
    pub fn is_gs1(&self) -> bool {
        matches!(
            (self.code, self.modifier),
            ('C', '1') | ('d', '2' | '5') | ('Q', '3') | ('e', _)
        )
    }

    /// Whether this is a 2D symbology (matrix or stacked), i.e. one that a
    /// linear laser scanner cannot be expected to read.
    pub fn is_2d(&self) -> bool {
        matches!(
            self.code,
            'D' | 'K' | 'L' | 'O' | 'Q' | 'T' | 'U' | 'd' | 'g' | 'h' | 's' | 'v' | 'z'
        )
    }
}

/// Code character and modifier to a stable name.
fn symbology_name(code: u8, modifier: u8) -> &'static str {
    match (code, modifier) {
        (b'A', _) => "code39",
        (b'B', _) => "telepen",
        // FNC1 in the first position marks GS1 application-identifier data.
        (b'C', b'1') => "gs1_128",
        (b'C', _) => "code128",
        (b'D', _) => "code_one",
        (b'E', b'0') => "ean13", // also UPC-A and UPC-E, sent as 13 digits
        (b'E', b'1' | b'2') => "ean_addon",
        (b'E', b'3') => "ean13_addon",
        (b'E', b'4') => "ean8",
        (b'E', _) => "ean_upc",
        (b'F', _) => "codabar",
        (b'G', _) => "code93",
        (b'H', _) => "code11",
        (b'I', _) => "itf",
        (b'K', _) => "code16k",
        (b'L', _) => "pdf417",
        (b'M', _) => "msi",
        (b'N', _) => "anker",
        (b'O', _) => "codablock",
        (b'P', _) => "plessey",
        // Modifier 3: FNC1 in the first position, GS1 element strings.
        (b'Q', b'3') => "gs1_qr",
        (b'Q', _) => "qr",
        (b'R', _) => "iata_2of5",
        (b'S', _) => "industrial_2of5",
        (b'T', _) => "code49",
        (b'U', _) => "maxicode",
        (b'X', _) => "other",
        // Data that came from no barcode (keyboard entry, RFID, ...).
        (b'Z', _) => "non_barcode",
        (b'c', _) => "channel_code",
        // Modifier 2: FNC1 in the first position (GS1 DataMatrix, the
        // carrier of Russian marking codes); 5 and 6 are the same with ECI.
        (b'd', b'2' | b'5') => "gs1_datamatrix",
        (b'd', _) => "datamatrix",
        (b'e', _) => "gs1_databar",
        (b'g', _) => "grid_matrix",
        (b'h', _) => "han_xin",
        (b'o', _) => "ocr",
        (b'p', _) => "posicode",
        (b's', _) => "supercode",
        (b'v', _) => "ultracode",
        (b'z', _) => "aztec",
        _ => "unknown",
    }
}

/// Splits an AIM symbology identifier (`]` + code letter + modifier) off the
/// start of a scan.
///
/// A code letter outside the table still strips the three characters and
/// reports name `"unknown"`: it is certainly an identifier, and leaving it in
/// would corrupt the payload. Input not starting with `]`, too short, or with
/// a code that is not an ASCII letter or a modifier that is not ASCII
/// alphanumeric is returned whole: such data may just begin with `]`.
pub fn strip_aim(msg: &[u8]) -> (Option<Symbology>, &[u8]) {
    match msg {
        [b']', code, modifier, rest @ ..]
            if code.is_ascii_alphabetic() && modifier.is_ascii_alphanumeric() =>
        {
            let symbology = Symbology {
                code: char::from(*code),
                modifier: char::from(*modifier),
                name: symbology_name(*code, *modifier),
            };
            (Some(symbology), rest)
        }
        _ => (None, msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tokio::io::AsyncWriteExt;

    fn codec(suffix: Suffix) -> FrameCodec {
        FrameCodec::new(FrameConfig {
            suffix,
            ..FrameConfig::default()
        })
        .unwrap()
    }

    fn msg(bytes: &[u8]) -> FrameEvent {
        FrameEvent::Message(bytes.to_vec())
    }

    /// Feeds `chunks` one after another, decoding after each, then ends input.
    fn feed(codec: &mut FrameCodec, chunks: &[&[u8]]) -> Vec<FrameEvent> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(event) = codec.decode_event(&mut buf) {
                out.push(event);
            }
        }
        while let Some(event) = codec.finish(&mut buf) {
            out.push(event);
        }
        out
    }

    fn feed_bytewise(codec: &mut FrameCodec, input: &[u8]) -> Vec<FrameEvent> {
        let chunks: Vec<&[u8]> = input.chunks(1).collect();
        feed(codec, &chunks)
    }

    #[test]
    fn suffix_cr_accepts_cr_lf_and_crlf() {
        let out = feed(&mut codec(Suffix::Cr), &[b"one\rtwo\nthree\r\nfour\r"]);
        assert_eq!(out, [msg(b"one"), msg(b"two"), msg(b"three"), msg(b"four")]);
    }

    #[test]
    fn suffix_cr_crlf_split_between_reads() {
        let out = feed(&mut codec(Suffix::Cr), &[b"abc\r", b"\ndef\r", b"\n"]);
        assert_eq!(out, [msg(b"abc"), msg(b"def")]);
    }

    #[test]
    fn suffix_lf_keeps_cr() {
        let out = feed(&mut codec(Suffix::Lf), &[b"a\rb\nc\r\n"]);
        assert_eq!(out, [msg(b"a\rb"), msg(b"c\r")]);
    }

    #[test]
    fn suffix_crlf_is_exact() {
        let out = feed(&mut codec(Suffix::CrLf), &[b"a\rb\nc\r\nd\r\n"]);
        assert_eq!(out, [msg(b"a\rb\nc"), msg(b"d")]);
    }

    #[test]
    fn suffix_crlf_split_across_reads() {
        let out = feed(
            &mut codec(Suffix::CrLf),
            &[b"abc\r", b"\n", b"x\r", b"\r\n"],
        );
        assert_eq!(out, [msg(b"abc"), msg(b"x\r")]);
    }

    #[test]
    fn suffix_etx_with_stx_prefix() {
        let mut codec = FrameCodec::new(FrameConfig {
            prefix: Some(vec![0x02]),
            suffix: Suffix::Etx,
            ..FrameConfig::default()
        })
        .unwrap();
        let out = feed(&mut codec, &[b"\x02%B4111^X^?\x03\x02;4111=?\x03"]);
        assert_eq!(out, [msg(b"%B4111^X^?"), msg(b";4111=?")]);
    }

    #[test]
    fn custom_suffix_split_anywhere() {
        let input = b"first#ENDsecond#EN#END";
        let expected = [msg(b"first"), msg(b"second#EN")];
        let suffix = Suffix::Custom(b"#END".to_vec());
        assert_eq!(feed(&mut codec(suffix.clone()), &[input]), expected);
        assert_eq!(feed_bytewise(&mut codec(suffix.clone()), input), expected);
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            assert_eq!(
                feed(&mut codec(suffix.clone()), &[a, b]),
                expected,
                "cut {cut}"
            );
        }
    }

    #[test]
    fn prefix_stripped_only_when_present() {
        let mut codec = FrameCodec::new(FrameConfig {
            prefix: Some(vec![0x02]),
            ..FrameConfig::default()
        })
        .unwrap();
        let out = feed(&mut codec, &[b"\x02abc\rdef\r\x02\r"]);
        // The bare prefix is an empty message and is skipped.
        assert_eq!(out, [msg(b"abc"), msg(b"def")]);
    }

    #[test]
    fn two_messages_in_one_read() {
        let mut codec = codec(Suffix::Cr);
        let mut buf = BytesMut::from(&b"1234\r5678\r90"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(msg(b"1234")));
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(msg(b"5678")));
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert_eq!(&buf[..], b"90");
    }

    #[test]
    fn message_split_byte_by_byte() {
        let mut codec = FrameCodec::new(FrameConfig {
            prefix: Some(b"PFX".to_vec()),
            suffix: Suffix::CrLf,
            ..FrameConfig::default()
        })
        .unwrap();
        let out = feed_bytewise(&mut codec, b"PFX;4111111111111111=2512?\r\nPFX]Q1x\r\n");
        assert_eq!(out, [msg(b";4111111111111111=2512?"), msg(b"]Q1x")]);
    }

    #[test]
    fn overflow_then_good_message() {
        let config = FrameConfig {
            max_len: 4,
            ..FrameConfig::default()
        };
        let input = b"toolong\rok\r";
        let expected = [FrameEvent::Overflow { len: 7 }, msg(b"ok")];
        let mut whole = FrameCodec::new(config.clone()).unwrap();
        assert_eq!(feed(&mut whole, &[input]), expected);
        let mut bytewise = FrameCodec::new(config).unwrap();
        assert_eq!(feed_bytewise(&mut bytewise, input), expected);
    }

    #[test]
    fn overflow_memory_is_bounded() {
        let mut codec = FrameCodec::new(FrameConfig {
            max_len: 8,
            suffix: Suffix::CrLf,
            ..FrameConfig::default()
        })
        .unwrap();
        let mut buf = BytesMut::new();
        for _ in 0..1000 {
            buf.extend_from_slice(b"xxxxxxxxxx");
            assert_eq!(codec.decode_event(&mut buf), None);
            assert!(buf.len() <= 9, "buffer grew to {}", buf.len());
        }
        buf.extend_from_slice(b"\r\nfine\r\n");
        assert_eq!(
            codec.decode_event(&mut buf),
            Some(FrameEvent::Overflow { len: 10_000 })
        );
        assert_eq!(codec.decode_event(&mut buf), Some(msg(b"fine")));
    }

    #[test]
    fn max_len_is_inclusive_and_excludes_prefix() {
        let mut codec = FrameCodec::new(FrameConfig {
            prefix: Some(vec![0x02]),
            max_len: 3,
            ..FrameConfig::default()
        })
        .unwrap();
        let out = feed_bytewise(&mut codec, b"\x02abc\r\x02abcd\rabc\rabcd\r");
        assert_eq!(
            out,
            [
                msg(b"abc"),
                FrameEvent::Overflow { len: 4 },
                msg(b"abc"),
                FrameEvent::Overflow { len: 4 },
            ]
        );
    }

    #[test]
    fn bare_suffixes_skipped() {
        let out = feed(&mut codec(Suffix::Cr), &[b"\r\n\r\r\n\nx\r\n\r\n"]);
        assert_eq!(out, [msg(b"x")]);
        let out = feed(&mut codec(Suffix::Etx), &[b"\x03\x03y\x03"]);
        assert_eq!(out, [msg(b"y")]);
    }

    #[test]
    fn validate_rejects_unusable_configs() {
        let base = FrameConfig::default();
        assert!(base.validate().is_ok());
        let cases = [
            FrameConfig {
                suffix: Suffix::None,
                ..base.clone()
            },
            FrameConfig {
                inter_char_timeout: Some(Duration::ZERO),
                ..base.clone()
            },
            FrameConfig {
                suffix: Suffix::Custom(Vec::new()),
                ..base.clone()
            },
            FrameConfig {
                max_len: 0,
                ..base.clone()
            },
            FrameConfig {
                prefix: Some(b"A\nB".to_vec()),
                ..base.clone()
            },
            FrameConfig {
                prefix: Some(b"A\r\n".to_vec()),
                suffix: Suffix::CrLf,
                ..base.clone()
            },
        ];
        let errors: Vec<_> = cases.iter().map(|c| c.validate().unwrap_err()).collect();
        assert!(matches!(errors[0], FrameError::NoTerminator));
        assert!(matches!(errors[1], FrameError::ZeroTimeout));
        assert!(matches!(errors[2], FrameError::EmptySuffix));
        assert!(matches!(errors[3], FrameError::ZeroMaxLen));
        assert!(matches!(errors[4], FrameError::PrefixContainsSuffix));
        assert!(matches!(errors[5], FrameError::PrefixContainsSuffix));
        assert!(FrameCodec::new(cases[0].clone()).is_err());

        let gap_only = FrameConfig {
            suffix: Suffix::None,
            inter_char_timeout: Some(Duration::from_millis(50)),
            ..base.clone()
        };
        assert!(gap_only.validate().is_ok());
        // A lone CR in a prefix is fine when only CR LF terminates.
        let crlf = FrameConfig {
            prefix: Some(b"A\r".to_vec()),
            suffix: Suffix::CrLf,
            ..base
        };
        assert!(crlf.validate().is_ok());
    }

    #[test]
    fn flush_ends_pending_message() {
        let mut codec = FrameCodec::new(FrameConfig {
            suffix: Suffix::None,
            inter_char_timeout: Some(Duration::from_millis(50)),
            ..FrameConfig::default()
        })
        .unwrap();
        let mut buf = BytesMut::from(&b"0123456789"[..]);
        assert_eq!(codec.decode_event(&mut buf), None);
        assert_eq!(codec.flush(&mut buf), Some(msg(b"0123456789")));
        assert_eq!(codec.flush(&mut buf), None);
        assert!(buf.is_empty());
    }

    #[test]
    fn flush_returns_terminated_messages_first_and_drops_partial_terminator() {
        let mut codec = codec(Suffix::CrLf);
        let mut buf = BytesMut::from(&b"a\r\nb\r"[..]);
        assert_eq!(codec.flush(&mut buf), Some(msg(b"a")));
        assert_eq!(codec.flush(&mut buf), Some(msg(b"b")));
        assert_eq!(codec.flush(&mut buf), None);
    }

    #[test]
    fn flush_reports_overflow_in_progress() {
        let mut codec = FrameCodec::new(FrameConfig {
            suffix: Suffix::None,
            inter_char_timeout: Some(Duration::from_millis(50)),
            max_len: 4,
            ..FrameConfig::default()
        })
        .unwrap();
        let mut buf = BytesMut::from(&b"0123456"[..]);
        assert_eq!(codec.decode_event(&mut buf), None);
        buf.extend_from_slice(b"789");
        assert_eq!(codec.decode_event(&mut buf), None);
        assert_eq!(
            codec.flush(&mut buf),
            Some(FrameEvent::Overflow { len: 10 })
        );
        buf.extend_from_slice(b"ok");
        assert_eq!(codec.flush(&mut buf), Some(msg(b"ok")));
    }

    #[test]
    fn eof_drops_partial_message_when_terminated() {
        let mut codec = codec(Suffix::Cr);
        let mut buf = BytesMut::from(&b"done\rpartial"[..]);
        assert_eq!(codec.decode_eof(&mut buf).unwrap(), Some(msg(b"done")));
        assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
        assert!(buf.is_empty());
    }

    #[test]
    fn eof_keeps_pending_message_without_terminator() {
        let mut codec = FrameCodec::new(FrameConfig {
            suffix: Suffix::None,
            inter_char_timeout: Some(Duration::from_millis(50)),
            ..FrameConfig::default()
        })
        .unwrap();
        let mut buf = BytesMut::from(&b"tail"[..]);
        assert_eq!(codec.decode_eof(&mut buf).unwrap(), Some(msg(b"tail")));
        assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
    }

    #[test]
    fn eof_reports_overflow_in_progress() {
        let mut codec = FrameCodec::new(FrameConfig {
            max_len: 2,
            ..FrameConfig::default()
        })
        .unwrap();
        assert_eq!(
            feed(&mut codec, &[b"ab\rlong", b"er"]),
            [msg(b"ab"), FrameEvent::Overflow { len: 6 }]
        );
    }

    #[test]
    fn debug_hides_message_content() {
        let shown = format!("{:?}", msg(b"4111111111111111"));
        assert_eq!(shown, "Message(<16 bytes>)");
        assert!(!shown.contains("4111"));
    }

    #[test]
    fn aim_identifiers() {
        // (input, code, modifier, name, is_2d, payload)
        type Case = (&'static [u8], char, char, &'static str, bool, &'static [u8]);
        let cases: &[Case] = &[
            (b"]Q1https://x", 'Q', '1', "qr", true, b"https://x"),
            (b"]C0ABC", 'C', '0', "code128", false, b"ABC"),
            (b"]C1010123", 'C', '1', "gs1_128", false, b"010123"),
            (
                b"]E04006381333931",
                'E',
                '0',
                "ean13",
                false,
                b"4006381333931",
            ),
            (b"]E496385074", 'E', '4', "ean8", false, b"96385074"),
            (b"]E312345", 'E', '3', "ean13_addon", false, b"12345"),
            (b"]A0CODE39", 'A', '0', "code39", false, b"CODE39"),
            (b"]F0A123B", 'F', '0', "codabar", false, b"A123B"),
            (b"]I11234", 'I', '1', "itf", false, b"1234"),
            (b"]d1data", 'd', '1', "datamatrix", true, b"data"),
            // GS1 DataMatrix is its own symbology, not plain DataMatrix.
            (b"]d2data", 'd', '2', "gs1_datamatrix", true, b"data"),
            (b"]Q3data", 'Q', '3', "gs1_qr", true, b"data"),
            (b"]L0pdf", 'L', '0', "pdf417", true, b"pdf"),
            (b"]z0az", 'z', '0', "aztec", true, b"az"),
            (b"]e0019", 'e', '0', "gs1_databar", false, b"019"),
            (b"]X0978", 'X', '0', "other", false, b"978"),
            // ISO/IEC 15424 assigns `Z` to data from no barcode.
            (b"]Z9typed", 'Z', '9', "non_barcode", false, b"typed"),
            // Reserved letters: stripped, reported as unknown.
            (b"]J9rest", 'J', '9', "unknown", false, b"rest"),
            (b"]W1", 'W', '1', "unknown", false, b""),
        ];
        for &(input, code, modifier, name, is_2d, rest) in cases {
            let (symbology, payload) = strip_aim(input);
            let symbology = symbology.unwrap_or_else(|| panic!("no AIM id in case {name}"));
            assert_eq!(
                symbology.is_gs1(),
                name.starts_with("gs1_"),
                "is_gs1 for {name}"
            );
            assert_eq!((symbology.code, symbology.modifier), (code, modifier));
            assert_eq!(symbology.name, name);
            assert_eq!(symbology.is_2d(), is_2d, "is_2d for {name}");
            assert_eq!(payload, rest);
        }
    }

    #[test]
    fn aim_absent_or_malformed() {
        for input in [
            &b"]Q"[..],
            b"]",
            b"",
            b"4006381333931",
            b"Q1]abc",
            b"]1Qabc",
            b"]Q\rabc",
            b"]\xffQabc",
        ] {
            assert_eq!(strip_aim(input), (None, input));
        }
    }

    fn gap_config(suffix: Suffix, gap_ms: u64) -> FrameCodec {
        FrameCodec::new(FrameConfig {
            suffix,
            inter_char_timeout: Some(Duration::from_millis(gap_ms)),
            ..FrameConfig::default()
        })
        .unwrap()
    }

    // tokio's `test-util` (needed for `time::pause`) is not enabled in this
    // workspace, so these use real time: the asserted gaps are lower bounds,
    // and joins use a gap far longer than the writer's pause.

    #[tokio::test]
    async fn reader_gap_ends_message_without_terminator() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut reader = FramedReader::new(rx, gap_config(Suffix::None, 50));
        tx.write_all(b"0123456789").await.unwrap();
        let start = tokio::time::Instant::now();
        assert_eq!(reader.next().await.unwrap(), Some(msg(b"0123456789")));
        assert!(start.elapsed() >= Duration::from_millis(50));
        drop(tx);
        assert_eq!(reader.next().await.unwrap(), None);
        assert_eq!(reader.next().await.unwrap(), None);
    }

    #[tokio::test]
    async fn reader_joins_bytes_within_the_gap() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut reader = FramedReader::new(rx, gap_config(Suffix::None, 400));
        let writer = tokio::spawn(async move {
            tx.write_all(b"12").await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
            tx.write_all(b"34").await.unwrap();
            tx
        });
        assert_eq!(reader.next().await.unwrap(), Some(msg(b"1234")));
        drop(writer.await.unwrap());
        assert_eq!(reader.next().await.unwrap(), None);
    }

    #[tokio::test]
    async fn reader_gap_rescues_missing_terminator() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut reader = FramedReader::new(rx, gap_config(Suffix::Cr, 50));
        tx.write_all(b"with\rwithout").await.unwrap();
        assert_eq!(reader.next().await.unwrap(), Some(msg(b"with")));
        assert_eq!(reader.next().await.unwrap(), Some(msg(b"without")));
        tx.write_all(b"next\r").await.unwrap();
        assert_eq!(reader.next().await.unwrap(), Some(msg(b"next")));
    }

    #[tokio::test]
    async fn reader_eof_drops_partial_terminated_message() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut reader = FramedReader::new(rx, codec(Suffix::Cr));
        tx.write_all(b"ok\rpartial").await.unwrap();
        drop(tx);
        assert_eq!(reader.next().await.unwrap(), Some(msg(b"ok")));
        assert_eq!(reader.next().await.unwrap(), None);
    }

    #[tokio::test]
    async fn reader_eof_emits_pending_gap_message() {
        let (mut tx, rx) = tokio::io::duplex(64);
        // A gap far beyond the test: end of input must not wait for it.
        let mut reader = FramedReader::new(rx, gap_config(Suffix::None, 60_000));
        tx.write_all(b"last").await.unwrap();
        drop(tx);
        assert_eq!(reader.next().await.unwrap(), Some(msg(b"last")));
        assert_eq!(reader.next().await.unwrap(), None);
    }

    #[tokio::test]
    async fn reader_continues_after_overflow() {
        let (mut tx, rx) = tokio::io::duplex(16);
        let codec = FrameCodec::new(FrameConfig {
            max_len: 8,
            ..FrameConfig::default()
        })
        .unwrap();
        let mut reader = FramedReader::new(rx, codec);
        let writer = tokio::spawn(async move {
            tx.write_all(&[b'x'; 100]).await.unwrap();
            tx.write_all(b"\rgood\r").await.unwrap();
        });
        assert_eq!(
            reader.next().await.unwrap(),
            Some(FrameEvent::Overflow { len: 100 })
        );
        assert_eq!(reader.next().await.unwrap(), Some(msg(b"good")));
        writer.await.unwrap();
        assert_eq!(reader.next().await.unwrap(), None);
    }

    #[tokio::test]
    async fn reader_over_pty_pair() {
        // Sandboxes without a usable /dev/pts cannot open a pair; the duplex
        // tests above cover the logic, this one the real serial plumbing.
        let Ok((mut scanner, port)) = tokio_serial::SerialStream::pair() else {
            eprintln!("skipping: no pseudo-terminal available");
            return;
        };
        let mut reader = FramedReader::new(port, gap_config(Suffix::Cr, 100));
        scanner
            .write_all(b"]Q1hello\r\n]E04006381333931")
            .await
            .unwrap();
        let Some(FrameEvent::Message(first)) = reader.next().await.unwrap() else {
            panic!("expected a message");
        };
        let (symbology, payload) = strip_aim(&first);
        assert_eq!(symbology.map(|s| s.name), Some("qr"));
        assert_eq!(payload, b"hello");
        // No terminator on the second scan: the gap ends it.
        assert_eq!(reader.next().await.unwrap(), Some(msg(b"]E04006381333931")));
    }

    // ---- property tests ----

    /// Straightforward model of the framing rules, on the whole input at once.
    fn oracle<'a>(config: &'a FrameConfig, input: &'a [u8]) -> Vec<FrameEvent> {
        let prefix = config.prefix.as_deref().unwrap_or_default();
        let mut lines: Vec<&[u8]> = Vec::new();
        let mut rest = input;
        loop {
            let found = match &config.suffix {
                Suffix::Cr => rest
                    .iter()
                    .position(|&b| b == b'\r' || b == b'\n')
                    .map(|i| (i, 1)),
                Suffix::None => None,
                other => {
                    let needle = other.needle();
                    (0..rest.len())
                        .find(|&i| rest[i..].starts_with(needle))
                        .map(|i| (i, needle.len()))
                }
            };
            let Some((pos, len)) = found else { break };
            lines.push(&rest[..pos]);
            rest = &rest[pos + len..];
        }
        let strip = |line: &'a [u8]| -> &'a [u8] {
            if !prefix.is_empty() && line.starts_with(prefix) {
                &line[prefix.len()..]
            } else {
                line
            }
        };
        let mut out = Vec::new();
        for line in lines {
            let payload = strip(line);
            if payload.len() > config.max_len {
                out.push(FrameEvent::Overflow { len: payload.len() });
            } else if !payload.is_empty() {
                out.push(FrameEvent::Message(payload.to_vec()));
            }
        }
        // End of input: the unterminated tail (minus a partial terminator)
        // is dropped, and reported only if already too long.
        let needle = config.suffix.needle();
        let partial = match config.suffix {
            Suffix::Cr => 0,
            _ => (1..needle.len())
                .rev()
                .find(|&k| rest.ends_with(&needle[..k]))
                .unwrap_or(0),
        };
        let tail = strip(&rest[..rest.len() - partial]);
        if tail.len() > config.max_len {
            out.push(FrameEvent::Overflow { len: tail.len() });
        }
        out
    }

    fn arb_config() -> impl Strategy<Value = FrameConfig> {
        let suffix = prop_oneof![
            Just(Suffix::Cr),
            Just(Suffix::Lf),
            Just(Suffix::CrLf),
            Just(Suffix::Etx),
            Just(Suffix::Custom(b"#!".to_vec())),
            // Self-overlapping: a naive restart after a failed match misses
            // "aab" in "aaab".
            Just(Suffix::Custom(b"aab".to_vec())),
        ];
        let prefix = prop_oneof![
            Just(None),
            Just(Some(vec![0x02])),
            Just(Some(b"AB".to_vec())),
        ];
        (prefix, suffix, 1usize..12).prop_map(|(prefix, suffix, max_len)| FrameConfig {
            prefix,
            suffix,
            inter_char_timeout: None,
            max_len,
        })
    }

    /// Bytes biased towards terminators and prefixes, plus anything at all.
    fn arb_input() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            4 => prop::sample::select(b"ab\r\n\x02\x03#!AB".to_vec()),
            1 => any::<u8>(),
        ];
        prop::collection::vec(byte, 0..200)
    }

    /// Cuts `input` at the given points (taken modulo its length).
    fn split<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for point in points {
            chunks.push(&input[start..point]);
            start = point;
        }
        chunks.push(&input[start..]);
        chunks
    }

    proptest! {
        #[test]
        fn splitting_never_changes_the_events(
            config in arb_config(),
            input in arb_input(),
            cuts in prop::collection::vec(any::<usize>(), 0..20),
        ) {
            let whole = feed(&mut FrameCodec::new(config.clone()).unwrap(), &[&input]);
            let chunks = split(&input, &cuts);
            let pieces = feed(&mut FrameCodec::new(config.clone()).unwrap(), &chunks);
            let bytewise = feed_bytewise(&mut FrameCodec::new(config.clone()).unwrap(), &input);
            prop_assert_eq!(&whole, &oracle(&config, &input));
            prop_assert_eq!(&pieces, &whole);
            prop_assert_eq!(&bytewise, &whole);
        }

        #[test]
        fn suffix_cr_accounts_for_every_byte(
            input in arb_input(),
            cuts in prop::collection::vec(any::<usize>(), 0..20),
            max_len in 1usize..12,
        ) {
            let config = FrameConfig { max_len, ..FrameConfig::default() };
            let mut terminated = input.clone();
            terminated.push(b'\r');
            let chunks = split(&terminated, &cuts);
            let events = feed(&mut FrameCodec::new(config).unwrap(), &chunks);
            let mut accounted = 0;
            for event in &events {
                match event {
                    FrameEvent::Message(m) => {
                        prop_assert!(!m.is_empty() && m.len() <= max_len);
                        prop_assert!(!m.contains(&b'\r') && !m.contains(&b'\n'));
                        accounted += m.len();
                    }
                    FrameEvent::Overflow { len } => {
                        prop_assert!(*len > max_len);
                        accounted += len;
                    }
                }
            }
            let content = terminated.iter().filter(|&&b| b != b'\r' && b != b'\n').count();
            prop_assert_eq!(accounted, content);
        }

        #[test]
        fn flush_and_finish_never_panic(
            config in arb_config(),
            gap_only in any::<bool>(),
            chunks in prop::collection::vec(arb_input(), 0..8),
            flush_after in prop::collection::vec(any::<bool>(), 8),
        ) {
            let config = if gap_only {
                FrameConfig {
                    suffix: Suffix::None,
                    inter_char_timeout: Some(Duration::from_millis(10)),
                    ..config
                }
            } else {
                config
            };
            let max_len = config.max_len;
            let mut codec = FrameCodec::new(config).unwrap();
            let mut buf = BytesMut::new();
            let mut events = Vec::new();
            for (chunk, flush) in chunks.iter().zip(&flush_after) {
                buf.extend_from_slice(chunk);
                while let Some(event) = codec.decode_event(&mut buf) {
                    events.push(event);
                }
                if *flush {
                    while let Some(event) = codec.flush(&mut buf) {
                        events.push(event);
                    }
                    prop_assert!(!codec.is_pending(&buf));
                }
            }
            while let Some(event) = codec.finish(&mut buf) {
                events.push(event);
            }
            prop_assert!(!codec.is_pending(&buf));
            for event in events {
                match event {
                    FrameEvent::Message(m) => prop_assert!(!m.is_empty() && m.len() <= max_len),
                    FrameEvent::Overflow { len } => prop_assert!(len > max_len),
                }
            }
        }

        #[test]
        fn strip_aim_never_panics(input in prop::collection::vec(any::<u8>(), 0..8)) {
            let (symbology, rest) = strip_aim(&input);
            match symbology {
                Some(_) => prop_assert_eq!(rest, &input[3..]),
                None => prop_assert_eq!(rest, &input[..]),
            }
        }
    }
}
