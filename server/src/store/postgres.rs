//! Postgres: one pool whose connections write at the same time, and its migrations. Ingest locks
//! the documents it changes (in id order, so two pushes cannot deadlock over them) and takes
//! sequence numbers from a sequence, so pushes commit side by side and numbers may become
//! visible out of order; a pull waits for the ingests in flight before it passes a number
//! (`Db::begin_pull`), so its cursor never skips a committed change.

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
