//! Postgres: one pool whose connections write at the same time, and its migrations. Ingest locks
//! the documents it changes (in id order, so two pushes cannot deadlock) and takes the sequence
//! counter last; the counter's row lock then orders the writers' commits, so sequence numbers
//! become visible in commit order and a pull cursor never skips a committed change.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnection, PgPoolOptions};

use super::db::Db;
use super::{Result, StoreError};

pub(super) static MIGRATOR: Migrator = sqlx::migrate!("../migrations/postgres");

/// Whether the migrations table exists.
pub(super) const MIGRATIONS_TRACKED: &str = "SELECT to_regclass('_sqlx_migrations') IS NOT NULL";

/// Connections in the pool.
const MAX_CONNECTIONS: u32 = 16;
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn connect(url: &str) -> Result<Db> {
    // One plain connection first: the pool retries a refused or failed connection until its
    // acquire timeout, and then reports only the timeout, not why.
    sqlx::Connection::close(<PgConnection as sqlx::Connection>::connect(url).await?).await?;
    let pool = PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect(url)
        .await?;
    Ok(Db::Postgres(pool))
}

/// What `gridsync backup` says on Postgres, which has its own tools.
pub(super) fn backup_advice() -> StoreError {
    StoreError::Unsupported(
        "gridsync backup copies SQLite databases only; back up Postgres with its own tools: \
         pg_dump --format=custom --file=FILE 'URL' (and restore with pg_restore --clean \
         --dbname='URL' FILE)"
            .into(),
    )
}
