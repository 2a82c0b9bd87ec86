//! Frame codec for «Стандартный нижний уровень»:
//!
//! ```text
//! STX(0x02) LEN CMD DATA… LRC
//! ```
//!
//! «Байт 1: длина сообщения (N) … В длину сообщения не включаются байты 0,
//! LRC и этот байт»; «байт LRC – вычисляется поразрядным сложением (XOR)
//! всех байтов сообщения (кроме байта 0)». LEN counts CMD+DATA, so a
//! two-byte command `FF xx` counts 2.
//!
//! The codec is direction-agnostic: a frame's body is CMD+DATA, for a
//! request (`CMD PASSWORD…`) as for an answer (`CMD ERR DATA…`). Both the
//! client ([`super::link`]) and the emulator use it.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::errors::ProtocolError;

/// Start of a message.
pub const STX: u8 = 0x02;
/// «уведомление»: asks the device for its state.
pub const ENQ: u8 = 0x05;
/// Positive acknowledgement.
pub const ACK: u8 = 0x06;
/// Negative acknowledgement («Служебный символ … NAK 15» — hex 0x15).
pub const NAK: u8 = 0x15;
/// The largest CMD+DATA a one-byte LEN can describe.
pub const MAX_BODY: usize = 255;

/// XOR of all bytes given (call it on LEN, CMD, DATA — everything but STX).
pub fn lrc(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |acc, b| acc ^ b)
}

/// Builds `STX LEN body LRC` for a body of CMD+DATA.
pub fn encode_frame(body: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let mut out = BytesMut::with_capacity(body.len() + 3);
    encode_into(body, &mut out)?;
    Ok(out.to_vec())
}

fn encode_into(body: &[u8], dst: &mut BytesMut) -> Result<(), ProtocolError> {
    if body.is_empty() {
        return Err(ProtocolError::EmptyFrame);
    }
    let len = u8::try_from(body.len()).map_err(|_| ProtocolError::FrameTooLong(body.len()))?;
    dst.reserve(body.len() + 3);
    dst.put_u8(STX);
    dst.put_u8(len);
    dst.put_slice(body);
    dst.put_u8(len ^ lrc(body));
    Ok(())
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// CMD+DATA (for an answer: CMD, error code, data).
    pub body: Bytes,
    /// The LRC byte received.
    pub lrc: u8,
    /// Whether `lrc` matches LEN+body. A frame with a bad LRC is still
    /// returned so the link layer can answer NAK.
    pub lrc_ok: bool,
}

impl RawFrame {
    /// The command code of the body: one byte, or two for `FF xx`.
    pub fn command(&self) -> Option<u16> {
        split_command(&self.body).map(|(c, _)| c)
    }
}

/// Splits a body into its command code (`FF xx` → 0xFFxx) and the rest.
pub fn split_command(body: &[u8]) -> Option<(u16, &[u8])> {
    match body {
        [0xFF, sub, rest @ ..] => Some((0xFF00 | u16::from(*sub), rest)),
        [0xFF] | [] => None,
        [cmd, rest @ ..] => Some((u16::from(*cmd), rest)),
    }
}

/// Appends the wire form of a command code (one byte, or `FF xx`).
pub fn put_command(code: u16, dst: &mut Vec<u8>) {
    if code > 0xFF {
        dst.extend_from_slice(&code.to_be_bytes());
    } else {
        dst.push(code as u8);
    }
}

/// tokio-util codec for frames. Decoding skips anything before STX (ENQ,
/// ACK, NAK and line noise are not frames: the link layer reads those
/// itself) and an STX followed by LEN = 0. It never fails and never panics
/// on arbitrary input. Encoding takes a body (CMD+DATA).
#[derive(Debug, Default, Clone, Copy)]
pub struct FrameDecoder {
    skipped: u64,
}

/// The same codec under the name tokio-modbus would give it.
pub type FrameCodec = FrameDecoder;

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes discarded so far while looking for STX.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

impl Decoder for FrameDecoder {
    type Item = RawFrame;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<RawFrame>, Self::Error> {
        loop {
            match src.iter().position(|&b| b == STX) {
                Some(0) => {}
                Some(n) => {
                    self.skipped += n as u64;
                    src.advance(n);
                }
                None => {
                    self.skipped += src.len() as u64;
                    src.clear();
                    return Ok(None);
                }
            }
            if src.len() < 2 {
                return Ok(None);
            }
            let len = usize::from(src[1]);
            if len == 0 {
                // «Проверка на корректность» of the length fails: not a
                // message. Drop the STX and resynchronise.
                self.skipped += 1;
                src.advance(1);
                continue;
            }
            let total = len + 3;
            if src.len() < total {
                src.reserve(total - src.len());
                return Ok(None);
            }
            let mut frame = src.split_to(total);
            let received = frame[total - 1];
            let expected = lrc(&frame[1..total - 1]);
            frame.advance(2);
            frame.truncate(len);
            return Ok(Some(RawFrame {
                body: frame.freeze(),
                lrc: received,
                lrc_ok: received == expected,
            }));
        }
    }
}

impl Encoder<&[u8]> for FrameDecoder {
    type Error = std::io::Error;

    fn encode(&mut self, body: &[u8], dst: &mut BytesMut) -> Result<(), Self::Error> {
        encode_into(body, dst).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    }
}

/// What a peer receives on the link: a one-byte control symbol or a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkItem {
    /// ENQ, ACK or NAK received between frames.
    Control(u8),
    Frame(RawFrame),
}

/// Like [`FrameDecoder`] but also yields ENQ/ACK/NAK seen between frames —
/// what a device (or the emulator) needs to follow the host. Other bytes
/// between frames are skipped.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinkDecoder {
    frames: FrameDecoder,
}

impl LinkDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes discarded so far (noise, not counting control symbols).
    pub fn skipped(&self) -> u64 {
        self.frames.skipped
    }
}

impl Decoder for LinkDecoder {
    type Item = LinkItem;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<LinkItem>, Self::Error> {
        while let Some(&b) = src.first() {
            match b {
                STX => return Ok(self.frames.decode(src)?.map(LinkItem::Frame)),
                ENQ | ACK | NAK => {
                    src.advance(1);
                    return Ok(Some(LinkItem::Control(b)));
                }
                _ => {
                    self.frames.skipped += 1;
                    src.advance(1);
                }
            }
        }
        Ok(None)
    }
}

impl Encoder<&[u8]> for LinkDecoder {
    type Error = std::io::Error;

    fn encode(&mut self, body: &[u8], dst: &mut BytesMut) -> Result<(), Self::Error> {
        self.frames.encode(body, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Vec<RawFrame> {
        let mut d = FrameDecoder::new();
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(f) = d.decode(&mut buf).unwrap() {
            out.push(f);
        }
        out
    }

    #[test]
    fn spec_vector_short_status_password_30() {
        // «Короткий запрос состояния ККТ» 10h with password 30.
        let frame = encode_frame(&[0x10, 0x1E, 0x00, 0x00, 0x00]).unwrap();
        assert_eq!(frame, [0x02, 0x05, 0x10, 0x1E, 0x00, 0x00, 0x00, 0x0B]);
        assert_eq!(lrc(&[0x05, 0x10, 0x1E, 0, 0, 0]), 0x0B);
    }

    #[test]
    fn lrc_vectors() {
        assert_eq!(lrc(&[]), 0);
        assert_eq!(lrc(&[0xAA]), 0xAA);
        assert_eq!(lrc(&[0xFF, 0xFF]), 0);
        // FF01h FN status request, password 30: LEN=6.
        let f = encode_frame(&[0xFF, 0x01, 0x1E, 0, 0, 0]).unwrap();
        assert_eq!(
            f,
            [
                0x02,
                0x06,
                0xFF,
                0x01,
                0x1E,
                0,
                0,
                0,
                0x06 ^ 0xFF ^ 0x01 ^ 0x1E
            ]
        );
    }

    #[test]
    fn encode_rejects_empty_and_long() {
        assert_eq!(encode_frame(&[]), Err(ProtocolError::EmptyFrame));
        assert_eq!(
            encode_frame(&[0; 256]),
            Err(ProtocolError::FrameTooLong(256))
        );
        assert_eq!(encode_frame(&[0; 255]).unwrap().len(), 258);
    }

    #[test]
    fn codec_encoder_matches_encode_frame() {
        let mut c = FrameCodec::new();
        let mut dst = BytesMut::new();
        c.encode(&[0x10, 0x1E, 0, 0, 0][..], &mut dst).unwrap();
        assert_eq!(&dst[..], &[0x02, 0x05, 0x10, 0x1E, 0x00, 0x00, 0x00, 0x0B]);
    }

    #[test]
    fn decodes_answer() {
        // 10h answer header: CMD, ERR=0, operator 30.
        let bytes = encode_frame(&[0x10, 0x00, 0x1E]).unwrap();
        let f = decode_all(&bytes);
        assert_eq!(f.len(), 1);
        assert!(f[0].lrc_ok);
        assert_eq!(&f[0].body[..], &[0x10, 0x00, 0x1E]);
        assert_eq!(f[0].command(), Some(0x10));
    }

    #[test]
    fn decodes_ff_answer() {
        let bytes = encode_frame(&[0xFF, 0x46, 0x00]).unwrap();
        let f = decode_all(&bytes);
        assert_eq!(f[0].command(), Some(0xFF46));
        assert_eq!(split_command(&f[0].body), Some((0xFF46, &[0u8][..])));
    }

    #[test]
    fn bad_lrc_is_reported_not_dropped() {
        let mut bytes = encode_frame(&[0x10, 0x00, 0x1E]).unwrap();
        *bytes.last_mut().unwrap() ^= 0x55;
        let f = decode_all(&bytes);
        assert_eq!(f.len(), 1);
        assert!(!f[0].lrc_ok);
    }

    #[test]
    fn skips_garbage_and_zero_len() {
        let mut bytes = vec![0x06, 0x15, 0xFF, 0x02, 0x00];
        bytes.extend(encode_frame(&[0x88, 0x00, 0x01]).unwrap());
        let mut d = FrameDecoder::new();
        let mut buf = BytesMut::from(&bytes[..]);
        let f = d.decode(&mut buf).unwrap().unwrap();
        assert_eq!(&f.body[..], &[0x88, 0x00, 0x01]);
        assert_eq!(d.skipped(), 5); // 3 noise bytes, STX with LEN 0, the 0
        assert!(buf.is_empty());
    }

    #[test]
    fn frames_split_across_reads() {
        let mut bytes = encode_frame(&[0x11, 0x00, 0x1E, 0x01, 0x02]).unwrap();
        bytes.extend(encode_frame(&[0x12, 0x00, 0x1E]).unwrap());
        for split in 0..bytes.len() {
            let mut d = FrameDecoder::new();
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for chunk in [&bytes[..split], &bytes[split..]] {
                buf.extend_from_slice(chunk);
                while let Some(f) = d.decode(&mut buf).unwrap() {
                    out.push(f);
                }
            }
            assert_eq!(out.len(), 2, "split at {split}");
            assert!(out.iter().all(|f| f.lrc_ok));
        }
        // Byte by byte.
        let mut d = FrameDecoder::new();
        let mut buf = BytesMut::new();
        let mut n = 0;
        for b in &bytes {
            buf.extend_from_slice(&[*b]);
            while d.decode(&mut buf).unwrap().is_some() {
                n += 1;
            }
        }
        assert_eq!(n, 2);
    }

    #[test]
    fn link_decoder_yields_controls_and_frames() {
        let mut bytes = vec![ENQ, 0x33];
        bytes.extend(encode_frame(&[0x10, 0x1E, 0, 0, 0]).unwrap());
        bytes.extend([ACK, NAK]);
        let mut d = LinkDecoder::new();
        let mut buf = BytesMut::from(&bytes[..]);
        let mut items = Vec::new();
        while let Some(i) = d.decode(&mut buf).unwrap() {
            items.push(i);
        }
        assert_eq!(items.len(), 4);
        assert_eq!(items[0], LinkItem::Control(ENQ));
        assert!(matches!(&items[1], LinkItem::Frame(f) if f.lrc_ok && f.command() == Some(0x10)));
        assert_eq!(items[2], LinkItem::Control(ACK));
        assert_eq!(items[3], LinkItem::Control(NAK));
        assert_eq!(d.skipped(), 1);
    }

    proptest::proptest! {
        #[test]
        fn decoder_never_panics(chunks in proptest::collection::vec(
            proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), 0..6)) {
            let mut d = FrameDecoder::new();
            let mut buf = BytesMut::new();
            for c in chunks {
                buf.extend_from_slice(&c);
                while let Some(f) = d.decode(&mut buf).unwrap() {
                    proptest::prop_assert!(!f.body.is_empty());
                    let _ = f.command();
                    let _ = super::super::commands::Response::from_body(&f.body);
                }
            }
        }

        #[test]
        fn link_decoder_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let mut d = LinkDecoder::new();
            let mut buf = BytesMut::from(&bytes[..]);
            while d.decode(&mut buf).unwrap().is_some() {}
        }

        #[test]
        fn roundtrip(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..=255)) {
            let bytes = encode_frame(&body).unwrap();
            let f = decode_all(&bytes);
            proptest::prop_assert_eq!(f.len(), 1);
            proptest::prop_assert!(f[0].lrc_ok);
            proptest::prop_assert_eq!(&f[0].body[..], &body[..]);
        }
    }
}
