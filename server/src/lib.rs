//! Gridsync's central server: the HTTP API and its authentication, storage on SQLite or
//! Postgres, ingest of pushed changes and serving pulls from stored bytes; and, in its hub role,
//! a village office PC serving phones while the server is out of reach.

#![deny(unsafe_code)]

pub mod auth;
pub mod bulletin;
pub mod catalogue;
pub mod cli;
pub mod clock;
pub mod collect;
pub mod config;
pub mod forms;
pub mod heap;
pub mod http;
pub mod hub;
pub mod ledger;
pub mod live;
pub mod metrics;
pub mod scope;
pub mod stats;
pub mod store;
pub mod sync;
pub mod tasks;
pub mod telemetry;
pub mod thumbnail;
