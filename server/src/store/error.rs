//! What can go wrong in storage: the store's errors, and which of them are outages (the
//! database's condition, which the operator fixes or a moment ends, and the client waits out)
//! rather than faults.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0} already exists")]
    Duplicate(String),
    #[error("{0} not found")]
    NotFound(String),
    /// What a write was judged against changed meanwhile; judging it again may pass.
    #[error("{0} changed meanwhile; try again")]
    Changed(String),
    /// The database lacks migrations this binary has: commands other than `migrate` and
    /// `serve` do not upgrade a database behind the operator's back.
    #[error("the database is at migration {have} but this gridsync needs {need}")]
    NotMigrated { have: i64, need: i64 },
    /// The database holds a migration this binary does not know: a newer gridsync upgraded it.
    #[error("the database has migration {0}, which this gridsync does not know")]
    Newer(i64),
    /// A sealed database that does not open with the key given: another key, or a file that is
    /// no database at all.
    #[error("{0} does not open with this key: it is sealed under another one, or damaged")]
    WrongKey(std::path::PathBuf),
    /// An operation this kind of database does its own way; the message says which.
    #[error("{0}")]
    Unsupported(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A failure that is the database's condition, not the request's fault nor a bug here: the
/// operator has something to fix (or wait for), the client may try again later, and the failed
/// transaction committed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// The disk holding the database is full.
    Full,
    /// The database refuses writes (Postgres in read-only mode or a standby, a SQLite file
    /// opened read-only).
    ReadOnly,
    /// The disk failed a read or write: SQLite's I/O errors, as from a failing disk, a file
    /// system turned read-only under a running server, or a file made immutable.
    Failing,
    /// The database cannot be reached now: down, restarting, out of connections, or locked by
    /// another process for longer than the busy timeout.
    Unavailable,
    /// Postgres ended the transaction to break a deadlock or a serialization conflict with
    /// another. Nothing of it was written, and the same request again may well succeed; ingest
    /// tries a batch again itself before it answers so.
    Contended,
}

impl StoreError {
    /// The outage this error reports, if it is one.
    pub fn outage(&self) -> Option<Outage> {
        match self {
            StoreError::Database(e) => outage_of(e),
            _ => None,
        }
    }
}

fn outage_of(e: &sqlx::Error) -> Option<Outage> {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            Some(Outage::Unavailable)
        }
        sqlx::Error::Database(db) => {
            let code = db.code()?;
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                sqlite_outage(code.parse().ok()?)
            } else {
                postgres_outage(&code)
            }
        }
        _ => None,
    }
}

/// By SQLite's primary result code (the low byte of the extended one).
fn sqlite_outage(extended: i32) -> Option<Outage> {
    match extended & 0xff {
        13 => Some(Outage::Full),         // SQLITE_FULL
        8 => Some(Outage::ReadOnly),      // SQLITE_READONLY_*
        10 | 14 => Some(Outage::Failing), // SQLITE_IOERR_*, SQLITE_CANTOPEN
        5 => Some(Outage::Unavailable),   // SQLITE_BUSY
        _ => None,
    }
}

/// By Postgres SQLSTATE.
fn postgres_outage(sqlstate: &str) -> Option<Outage> {
    match sqlstate {
        "53100" => Some(Outage::Full),     // disk_full
        "25006" => Some(Outage::ReadOnly), // read_only_sql_transaction
        "58030" => Some(Outage::Failing),  // io_error
        // admin_shutdown, crash_shutdown, cannot_connect_now; too_many_connections.
        "57P01" | "57P02" | "57P03" | "53300" => Some(Outage::Unavailable),
        // Class 08: connection exceptions.
        s if s.starts_with("08") => Some(Outage::Unavailable),
        // serialization_failure, deadlock_detected.
        "40001" | "40P01" => Some(Outage::Contended),
        _ => None,
    }
}

impl StoreError {
    /// A row a concurrent transaction inserted first. Two pushes creating the same new
    /// document both find no row to lock; the later insert fails with this, and its whole
    /// ingest can run again, this time finding the row.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

#[cfg(test)]
mod tests {
    use super::{Outage, StoreError, postgres_outage, sqlite_outage};
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    #[test]
    fn postgres_conditions_are_outages_and_other_errors_are_not() {
        for (sqlstate, outage) in [
            ("53100", Some(Outage::Full)),
            ("25006", Some(Outage::ReadOnly)),
            ("58030", Some(Outage::Failing)),
            ("57P01", Some(Outage::Unavailable)),
            ("57P03", Some(Outage::Unavailable)),
            ("53300", Some(Outage::Unavailable)),
            ("08006", Some(Outage::Unavailable)),
            ("23505", None),
            ("40001", Some(Outage::Contended)),
            ("40P01", Some(Outage::Contended)),
            ("42P01", None),
        ] {
            assert_eq!(postgres_outage(sqlstate), outage, "{sqlstate}");
        }
    }

    #[test]
    fn sqlite_conditions_are_outages_by_their_primary_code() {
        for (code, outage) in [
            (13, Some(Outage::Full)),
            (8, Some(Outage::ReadOnly)),
            (8 | (5 << 8), Some(Outage::ReadOnly)), // SQLITE_READONLY_DIRECTORY
            (10 | (3 << 8), Some(Outage::Failing)), // SQLITE_IOERR_WRITE
            (5, Some(Outage::Unavailable)),
            (11, None),            // SQLITE_CORRUPT: not for a retry to fix
            (19 | (8 << 8), None), // SQLITE_CONSTRAINT_UNIQUE
        ] {
            assert_eq!(sqlite_outage(code), outage, "{code}");
        }
        assert_eq!(
            StoreError::Database(sqlx::Error::PoolTimedOut).outage(),
            Some(Outage::Unavailable)
        );
        assert_eq!(StoreError::Corrupt("x".into()).outage(), None);
    }

    /// The real driver's errors, not only the codes: a database at its page limit is full, and
    /// a file opened read-only refuses writes.
    #[tokio::test]
    async fn the_sqlite_driver_reports_a_full_and_a_read_only_database_as_outages() {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("t.db"))
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .expect("open");
        sqlx::query("CREATE TABLE t (b BLOB)")
            .execute(&pool)
            .await
            .expect("create");
        sqlx::query("PRAGMA max_page_count = 3")
            .execute(&pool)
            .await
            .expect("limit");
        let full = sqlx::query("INSERT INTO t VALUES (zeroblob(100000))")
            .execute(&pool)
            .await
            .expect_err("over the page limit");
        assert_eq!(StoreError::from(full).outage(), Some(Outage::Full));

        let read_only = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.read_only(true))
            .await
            .expect("open read-only");
        let refused = sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&read_only)
            .await
            .expect_err("read-only");
        assert_eq!(StoreError::from(refused).outage(), Some(Outage::ReadOnly));
    }
}
