//! The rules of ingest and pull that both stores share. Each store implements the statements
//! ([`ingest::IngestTx`], [`pull::PullReads`]) in its own SQL; the logic around them is here,
//! written once.

pub mod ingest;
pub mod pull;

/// Code of a conflict row holding concurrent values of one field.
pub const CONCURRENT_VALUES: &str = "concurrent_values";
