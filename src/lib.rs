//! posbridge: the hardware bridge daemon for Linux point-of-sale terminals.
//!
//! Floors, each importing only from those below: `main`/`cli` (wiring),
//! `api` (JSON-RPC), `devices`, `store`/`events`/`config`, and the
//! `posbridge-drivers` crate at the bottom. See `docs/architecture.md`.

pub mod api;
pub mod app;
pub mod auth;
pub mod backoffice;
pub mod cards;
pub mod cli;
pub mod client;
pub mod config;
pub mod daemon;
pub mod devices;
pub mod events;
#[doc(hidden)]
pub mod fuzzing;
pub mod ledger;
pub mod metrics;
pub mod notify;
pub mod random;
pub mod receipt;
pub mod redact;
pub mod scans;
pub mod store;
pub mod textfile;
pub mod web;
