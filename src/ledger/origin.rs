//! Where a ledger operation comes from: the store and terminal every
//! transaction records, so a chain's history says which till did what.

use serde::{Deserialize, Serialize};

/// The store and terminal behind an operation. The embedded ledger uses
/// its own till's terminal id; the central service uses the credential the
/// till authenticated with, never what the request claims.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Origin {
    /// The store (shop) id; empty for a single till's embedded ledger.
    pub store: String,
    /// The terminal (till) id.
    pub terminal: String,
}

impl Origin {
    /// An origin of `terminal` in `store`.
    pub fn new(store: impl Into<String>, terminal: impl Into<String>) -> Self {
        Origin {
            store: store.into(),
            terminal: terminal.into(),
        }
    }
}
