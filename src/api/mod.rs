//! The local API: JSON-RPC 2.0, one JSON object per line, over a Unix
//! socket and optionally loopback TCP.
//!
//! `listener` accepts and assigns roles, `conn` frames lines and runs calls,
//! `methods` holds one file per method family, `rpc` the message shapes and
//! the error-code table.

pub mod amount;
pub mod conn;
pub mod errors;
pub mod fdlimit;
pub mod i18n;
pub mod listener;
pub mod login_limit;
pub mod methods;
pub mod rpc;
pub mod session;
