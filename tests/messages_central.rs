//! `messages.rs` again, against the central ledger on PostgreSQL: the till
//! reads consent and contact from the central service and sends through
//! its own notifier. `tests/common` picks the mode from the target name.

#[path = "messages.rs"]
mod messages;
