//! One line for the operator per failure of a command: what went wrong and what to do, without
//! a backtrace or a chain of library messages.

use std::io::ErrorKind;

use super::Error;
use super::settings::sqlite_path;
use crate::store::StoreError;

/// What to print for `e`.
pub fn explain(e: &Error) -> String {
    match e {
        Error::Open { url, source } => explain_open(&redact(url), url, source),
        Error::Store(source) => explain_store(source),
        Error::Listen { addr, source } => match source.kind() {
            ErrorKind::AddrInUse => format!(
                "{addr} is already in use (another gridsync?): stop that program, or choose \
                 another address with --bind or GRIDSYNC_BIND"
            ),
            ErrorKind::PermissionDenied => format!(
                "not allowed to listen on {addr}: ports below 1024 need privileges; use a higher \
                 port behind a reverse proxy"
            ),
            ErrorKind::AddrNotAvailable => format!(
                "{} is not an address of this machine: check --bind or GRIDSYNC_BIND",
                addr.ip()
            ),
            _ => format!("could not listen on {addr}: {source}"),
        },
        Error::Io { path, source } => match source.kind() {
            ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => format!(
                "{}: permission denied: check that this user may read and write it",
                path.display()
            ),
            ErrorKind::NotFound => format!("{} does not exist", path.display()),
            _ => format!("{}: {source}", path.display()),
        },
        other => other.to_string(),
    }
}

fn explain_open(shown: &str, url: &str, e: &StoreError) -> String {
    match e {
        StoreError::UnsupportedUrl(_) => format!(
            "`{shown}` is not a database URL: use --db sqlite://PATH or --db \
             postgres://USER@HOST/DB (or GRIDSYNC_DB)"
        ),
        StoreError::NotMigrated { have, need } => format!(
            "the database {shown} is at migration {have} but this gridsync needs {need}: run \
             `gridsync migrate` first (after a backup)"
        ),
        StoreError::Newer(version)
        | StoreError::Migrate(sqlx::migrate::MigrateError::VersionMissing(version)) => format!(
            "the database {shown} has migration {version}, which this gridsync does not know: a \
             newer gridsync upgraded it; run that version, or restore a backup made before"
        ),
        StoreError::Database(db) => explain_database(shown, url, db),
        other => format!("{shown}: {other}"),
    }
}

fn explain_database(shown: &str, url: &str, e: &sqlx::Error) -> String {
    let file = sqlite_path(url);
    match (e, &file) {
        (sqlx::Error::Configuration(why), _) => {
            format!("the database URL `{shown}` is malformed ({why}): check --db or GRIDSYNC_DB")
        }
        (sqlx::Error::Io(io), _) if io.kind() == ErrorKind::ConnectionRefused => format!(
            "nothing answers at {shown} (connection refused): is the database server running, \
             and is the host and port in --db right?"
        ),
        (sqlx::Error::Io(io), _) => {
            format!("cannot reach the database at {shown} ({io}): check the host in --db")
        }
        (sqlx::Error::PoolTimedOut, _) => format!(
            "the database at {shown} did not answer in time: check that it runs and that the \
             network lets this machine reach it"
        ),
        (sqlx::Error::Database(db), Some(path)) => match db.code().as_deref() {
            // SQLITE_READONLY and SQLITE_CANTOPEN, with their extended codes.
            Some(code) if code == "8" || code.parse::<i32>().is_ok_and(|c| c & 0xff == 8) => {
                format!(
                    "{} is read-only: gridsync writes the database and, beside it, its -wal and \
                     -shm files; make the file and its directory writable by this user",
                    path.display()
                )
            }
            Some(code) if code == "14" || code.parse::<i32>().is_ok_and(|c| c & 0xff == 14) => {
                format!(
                    "cannot open or create {}: its directory must exist and be writable by this \
                     user (gridsync writes -wal and -shm files beside the database)",
                    path.display()
                )
            }
            _ => format!("{}: {}", path.display(), db.message()),
        },
        (sqlx::Error::Database(db), None) => match db.code().as_deref() {
            Some("3D000") => format!(
                "the database named in {shown} does not exist: create it (createdb NAME) or \
                 fix --db"
            ),
            Some("28P01" | "28000") => format!(
                "the database at {shown} refused the login: check the user and password in --db"
            ),
            _ => format!("{shown}: {}", db.message()),
        },
        _ => format!("{shown}: {e}"),
    }
}

fn explain_store(e: &StoreError) -> String {
    match e {
        StoreError::Database(sqlx::Error::Database(db)) => {
            format!("the database refused: {}", db.message())
        }
        other => other.to_string(),
    }
}

/// `url` without its password, for messages that may end up in a log or a ticket.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_database_urls_are_not_repeated() {
        assert_eq!(
            redact("postgres://gs:secret@db:5432/gridsync"),
            "postgres://gs:***@db:5432/gridsync"
        );
        assert_eq!(redact("postgres://gs@db/g"), "postgres://gs@db/g");
        assert_eq!(redact("sqlite://a.db"), "sqlite://a.db");
    }
}
