//! The loyalty ledger: programme rules, accounts and the money path.

pub mod rules;
