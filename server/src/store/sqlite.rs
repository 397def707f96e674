//! SQLite: one file in WAL mode, a single writer connection beside a pool of read-only
//! readers, its migrations, and copying the file while the server runs.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqliteConnection;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::db::{Db, sql};
use super::{Result, SqlStore, Store, StoreError};

/// What the write-ahead log is cut back to once a checkpoint has copied it into the database.
/// Readers holding old snapshots stop checkpoints from restarting the log, and during a busy
/// upload it grew to 34 MB; without a limit SQLite keeps the file at its largest size for good.
/// Twice the size at which SQLite checkpoints (1,000 pages), so a steady load does not cut it.
pub const WAL_LIMIT_BYTES: u64 = 8 * 1024 * 1024;

pub(super) static MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");

/// Whether the migrations table exists.
pub(super) const MIGRATIONS_TRACKED: &str =
    "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = '_sqlx_migrations')";

pub(super) async fn connect(url: &str) -> Result<Db> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: an acknowledged change must survive power loss, not only a crash.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
        // 1 MiB of pages per connection rather than SQLite's 2 MiB: the operating system caches
        // the file anyway, and five connections' caches were a tenth of the server's memory.
        .pragma("cache_size", "-1024")
        .pragma("journal_size_limit", WAL_LIMIT_BYTES.to_string());
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .before_acquire(|conn, _| Box::pin(std::future::ready(Ok(reusable(conn)))))
        .connect_with(options.clone())
        .await?;
    let read = SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options.read_only(true))
        .await?;
    Ok(Db::Sqlite { write, read })
}

/// Checks that the file at `path` is a sound SQLite database with no migration unknown to this
/// binary (fewer is fine: serving it migrates it), without writing to it.
pub async fn check_copy(path: &Path) -> Result<()> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .create_if_missing(false);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    let copy = SqlStore::new(Db::Sqlite {
        write: pool.clone(),
        read: pool,
    });
    let verdict: String = sql("PRAGMA integrity_check")
        .fetch_value(copy.db().read())
        .await?;
    if verdict != "ok" {
        return Err(StoreError::Corrupt(format!(
            "{}: {verdict}",
            path.display()
        )));
    }
    match copy.check_migrations().await {
        Ok(()) | Err(StoreError::NotMigrated { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes a consistent copy of the database to the new file `to`.
pub(super) async fn backup(db: &Db, to: &Path) -> Result<()> {
    let to = to
        .to_str()
        .ok_or_else(|| StoreError::Unsupported(format!("{} is not UTF-8", to.display())))?;
    // VACUUM INTO reads one snapshot, so the copy is consistent while the server writes.
    sql("VACUUM INTO $1").bind(to).execute(db.read()).await?;
    Ok(())
}

/// Whether a connection taken from the pool (after the pool's ping, so any rollback queued on
/// its release has run) may be used: not when sqlx still counts it inside a transaction. When
/// a COMMIT fails for a full disk, SQLite rolls the transaction back by itself, sqlx's own
/// ROLLBACK then fails and its count stays at one, so every later BEGIN on the connection
/// would fail and the writer stay stuck, even once space returns. Dropped, it is opened anew.
fn reusable(conn: &SqliteConnection) -> bool {
    use sqlx::Connection;
    if conn.is_in_transaction() {
        tracing::warn!("closing a database connection left inside a failed transaction");
        return false;
    }
    true
}
