//! Shtrih-M fiscal register protocol (ККТ «Штрих-М», protocol v1.17).
//!
//! Layered like slowtec/tokio-modbus: [`frame`] is a tokio-util codec for
//! `STX LEN CMD DATA LRC`, [`link`] runs the ENQ/ACK/NAK session of
//! «Стандартный нижний уровень» over any `AsyncRead + AsyncWrite` (serial
//! port or TCP), [`commands`] builds typed requests and parses answers, and
//! [`errors`] separates transport, protocol and device-reported failures.
//!
//! ```no_run
//! # async fn demo(port: tokio::net::TcpStream) -> Result<(), posbridge_drivers::printer::shtrih::ShtrihError> {
//! use posbridge_drivers::printer::shtrih::{Command, ShortStatus, ShtrihClient};
//! let mut kkt = ShtrihClient::new(port, 30);
//! let status = ShortStatus::parse(&kkt.execute(&Command::short_status()).await?)?;
//! println!("mode {}", status.mode_number());
//! # Ok(()) }
//! ```

pub mod classic;
pub mod commands;
pub mod errors;
pub mod ffd;
pub mod frame;
pub mod link;

#[cfg(test)]
mod link_tests;

pub use classic::{ClassicClose, ClassicCloseResult, ClassicItem, is_not_supported};
pub use commands::{
    CheckType, CloseCheckResult, CloseCheckV2, Command, FnDocument, FnShiftParams, FnStatus,
    FullStatus, KktFlags, OperationType, OperationV2, PrintFlags, Response, ShortStatus,
    TimeoutClass, mode_text, submode_text,
};
pub use errors::{DeviceError, ProtocolError, ShtrihError, TransportError};
pub use frame::{FrameCodec, FrameDecoder, LinkDecoder, LinkItem, RawFrame, encode_frame, lrc};
pub use link::{Retries, ShtrihClient, Timeouts};
