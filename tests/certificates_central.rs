//! `certificates.rs` again, against the central ledger on PostgreSQL:
//! `tests/common` picks the mode from this target's name (`*_central`).
//! Its two-till test runs a second till (terminal T2) on the same central
//! service, so the concurrent redemptions meet in PostgreSQL.

#[path = "certificates.rs"]
mod certificates;
