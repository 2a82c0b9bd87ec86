//! `posbridge-central`: the chain's loyalty ledger.
//!
//! The same ledger core the till daemon runs over SQLite ([`posbridge::ledger`])
//! runs here over PostgreSQL, served to every till of a chain over HTTP with
//! JSON. The service keeps no state of its own between requests: any number
//! of instances can serve one database.

pub mod config;
pub mod core;
pub mod http;
pub mod import;
pub mod jobs;
pub mod pg;
pub mod principals;
pub mod schema;
