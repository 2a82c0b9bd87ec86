//! Transports, decoders, encoders, protocol clients and simulators for
//! point-of-sale devices.
//!
//! This crate knows nothing of the posbridge daemon: no configuration files,
//! no ledger, no JSON-RPC. Everything here works on `AsyncRead + AsyncWrite`
//! byte streams so any POS program can reuse it.

pub mod discover;
#[doc(hidden)]
pub mod fuzzing;
pub mod printer;
pub mod reader;
pub mod sim;
pub mod transport;
