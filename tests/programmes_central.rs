//! `programmes.rs` again, against the central ledger on PostgreSQL:
//! `tests/common` picks the mode from this target's name (`*_central`).

#[path = "programmes.rs"]
mod programmes;
