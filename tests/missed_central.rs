//! `missed.rs` again, against the central ledger on PostgreSQL.

#[path = "missed.rs"]
mod missed;
