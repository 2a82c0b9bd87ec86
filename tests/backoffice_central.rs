//! `backoffice.rs` again, with the till on the central ledger (a real
//! `posbridge-central` on PostgreSQL): the pages, forms, reports and the
//! import over the `Central` client. `tests/common` picks the mode from
//! this target's name (`*_central`).

#[path = "backoffice.rs"]
mod backoffice;
