//! Gridsync's central server: the HTTP API and its authentication, storage on SQLite or
//! Postgres, ingest of pushed changes and serving pulls from stored bytes.

#![forbid(unsafe_code)]

pub mod auth;
pub mod clock;
pub mod config;
pub mod http;
pub mod ledger;
pub mod scope;
pub mod stats;
pub mod store;
pub mod sync;
