//! What posbridge prints on receipts: the bonus block.

pub mod bonus;
