//! Gridsync's central server: storage on SQLite or Postgres, ingest of pushed changes and
//! serving pulls from stored bytes.

#![forbid(unsafe_code)]

pub mod scope;
pub mod store;
pub mod sync;
