//! The rules of ingest and pull, above the store: they decide what to write and what to send,
//! and call down into the store's transactions and statements (`store::statements`).

pub mod budget;
pub mod ingest;
pub mod pull;

pub use budget::Budget;
pub use ingest::Ingest;

/// Code of a conflict row holding concurrent values of one field.
pub const CONCURRENT_VALUES: &str = "concurrent_values";
