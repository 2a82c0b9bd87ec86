//! `linereturn.rs` again, against the central ledger on PostgreSQL: the
//! partial returns are taken at a second till of the chain.

#[path = "linereturn.rs"]
mod linereturn;
