//! SQLite: one file in WAL mode, a single writer connection beside a pool of read-only
//! readers, its migrations, and copying the file while the server runs. The engine is SQLCipher,
//! so a file may be sealed: encrypted and authenticated page by page under a key, without which
//! it does not open (a village office hub's database).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, SqliteConnection};

use super::db::{Db, sql};
use super::{Result, SqlStore, Store, StoreError};

/// What the write-ahead log is cut back to once a checkpoint has copied it into the database.
/// Readers holding old snapshots stop checkpoints from restarting the log, so it can grow far
/// past the checkpoint size during a busy upload; without a limit SQLite keeps the file at its
/// largest size for good. Twice the size at which the writer checkpoints, so a steady load does
/// not cut it.
pub const WAL_LIMIT_BYTES: u64 = 2 * CHECKPOINT_PAGES * 4096;

/// The log's length in pages at which the writer copies it into the database. Four times
/// SQLite's default: a page written again before the checkpoint is copied once, and during an
/// upload the indexes' pages are written again and again.
const CHECKPOINT_PAGES: u64 = 4000;

pub(super) static MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");

/// Whether the migrations table exists.
pub(super) const MIGRATIONS_TRACKED: &str =
    "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = '_sqlx_migrations')";

pub(super) async fn connect(url: &str) -> Result<Db> {
    pools(SqliteConnectOptions::from_str(url)?).await
}

/// The sealed file at `path` (created if missing), under the raw 256-bit `key`. A file that is
/// not sealed under this key is `WrongKey`.
pub(super) async fn connect_sealed(path: &Path, key: &[u8; 32]) -> Result<Db> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .pragma("key", raw_key(key));
    // The key is tried on a connection of our own, closed whatever the answer: one that a
    // failed pool drops closes later on its own thread, maybe as the process exits
    // (`Store::close` says why that crashes).
    let mut probe = options
        .connect()
        .await
        .map_err(|e| wrong_key(e.into(), path))?;
    let tried = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sqlite_master")
        .fetch_one(&mut probe)
        .await;
    probe.close().await?;
    tried.map_err(|e| wrong_key(e.into(), path))?;
    pools(options).await
}

/// Turns the plain SQLite file at `path`, if there is one, into one sealed under `key`, in
/// place: a copy is sealed beside it, then takes its name. A file sealed already, or none, is
/// left as it is. What it held is all in the copy: the log is checkpointed into the file first.
pub(super) async fn seal_in_place(path: &Path, key: &[u8; 32]) -> Result<bool> {
    if !path.exists() {
        return Ok(false);
    }
    // Creating allowed, for the attached copy (the file itself exists).
    let plain = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    // A sealed file reads as no database at all without its key; the keyed open tells a
    // sealed file from a damaged one.
    let mut conn = match plain.connect().await {
        Ok(conn) => conn,
        Err(e) if not_a_database(&e) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let sealing = path.with_extension("db.sealing");
    // Closed whatever the export's outcome: it attached a keyed database (see `connect_sealed`).
    let exported = export_sealed(&mut conn, &sealing, key).await;
    conn.close().await?;
    if !exported? {
        return Ok(false);
    }
    let io = |e: std::io::Error| StoreError::Corrupt(format!("sealing {}: {e}", path.display()));
    std::fs::File::open(&sealing)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    std::fs::rename(&sealing, path).map_err(io)?;
    for stale in ["db-wal", "db-shm"] {
        let _ = std::fs::remove_file(path.with_extension(stale));
    }
    Ok(true)
}

/// Copies the plain database open on `conn` into the new file `sealing`, sealed under `key`;
/// false, copying nothing, when the database is sealed already.
async fn export_sealed(
    conn: &mut SqliteConnection,
    sealing: &Path,
    key: &[u8; 32],
) -> Result<bool> {
    match sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sqlite_master")
        .fetch_one(&mut *conn)
        .await
    {
        Ok(_) => {}
        Err(e) if not_a_database(&e) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    let _ = std::fs::remove_file(sealing);
    let target = sealing.to_string_lossy().replace('\'', "''");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "PRAGMA wal_checkpoint(TRUNCATE); \
         ATTACH DATABASE '{target}' AS sealed KEY {}; \
         SELECT sqlcipher_export('sealed'); \
         DETACH DATABASE sealed;",
        raw_key(key)
    )))
    .execute(conn)
    .await?;
    Ok(true)
}

/// SQLCipher's form of a raw key: no key derivation, the bytes are the key.
fn raw_key(key: &[u8; 32]) -> String {
    format!("\"x'{}'\"", hex::encode_upper(key))
}

/// `e`, or `WrongKey` when it says the file is no database: what SQLCipher answers for a file
/// sealed under another key, or not sealed at all.
fn wrong_key(e: StoreError, path: &Path) -> StoreError {
    match &e {
        StoreError::Database(db) if not_a_database(db) => StoreError::WrongKey(path.to_owned()),
        _ => e,
    }
}

/// SQLITE_NOTADB.
fn not_a_database(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("26"))
}

async fn pools(options: SqliteConnectOptions) -> Result<Db> {
    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: an acknowledged change must survive power loss, not only a crash.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
        // 1 MiB of pages per reader rather than SQLite's 2 MiB: the operating system caches
        // the file anyway, and five connections' caches were a tenth of the server's memory.
        .pragma("cache_size", "-1024")
        .pragma("journal_size_limit", WAL_LIMIT_BYTES.to_string());
    // The writer's pages are the indexes every ingest inserts into: 4 MiB of them rather than
    // one saves reading them back from the file at every commit.
    let writer = options
        .clone()
        .pragma("cache_size", "-4096")
        .pragma("wal_autocheckpoint", CHECKPOINT_PAGES.to_string());
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(writer)
        .await?;
    let read = SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options.read_only(true))
        .await;
    match read {
        Ok(read) => Ok(Db::Sqlite { write, read }),
        Err(e) => {
            write.close().await;
            Err(e.into())
        }
    }
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
    let verdict = check_opened_copy(&copy, path).await;
    copy.close().await;
    verdict
}

async fn check_opened_copy(copy: &SqlStore, path: &Path) -> Result<()> {
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
