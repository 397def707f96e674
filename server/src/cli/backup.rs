//! `gridsync backup` and `gridsync restore` of a SQLite database. Postgres has pg_dump and
//! pg_restore, which do it better; the commands say so.

use std::fs;
use std::path::{Path, PathBuf};

use super::settings::sqlite_path;
use super::{Error, Open, Result, say, with_store};
use crate::store::StoreError;
use crate::store::sqlite;

/// Writes a consistent copy of the database to the new file `to`, also while a server writes.
pub async fn backup(db: &str, to: &Path) -> Result<()> {
    if to.exists() {
        return Err(Error::Invalid(format!(
            "{} exists already: a backup is written to a new file",
            to.display()
        )));
    }
    with_store(db, Open::AsIs, async |store| Ok(store.backup(to).await?)).await?;
    say(&format!("wrote a backup of {db} to {}", to.display()));
    Ok(())
}

/// Replaces the SQLite database of `db` with the backup `from`, after checking that the backup
/// is sound. The file is swapped in by a rename, so the database is either the old one or the
/// backup, never half of each.
pub async fn restore(db: &str, from: &Path, force: bool) -> Result<()> {
    let Some(target) = sqlite_path(db) else {
        return Err(StoreError::Unsupported(
            "gridsync restore replaces SQLite files only; restore Postgres with its own tools: \
             pg_restore --clean --dbname='URL' FILE"
                .into(),
        )
        .into());
    };
    if !from.is_file() {
        return Err(Error::Invalid(format!(
            "there is no backup at {}",
            from.display()
        )));
    }
    if target.exists() && !force {
        return Err(Error::Invalid(format!(
            "{} exists: stop the server, then run the restore again with --force to replace it",
            target.display()
        )));
    }
    sqlite::check_copy(from)
        .await
        .map_err(|source| Error::Open {
            url: from.display().to_string(),
            source,
        })?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    let staged = with_suffix(&target, ".restoring");
    fs::copy(from, &staged).map_err(io(&staged))?;
    fs::File::open(&staged)
        .and_then(|f| f.sync_all())
        .map_err(io(&staged))?;
    // The old database's write-ahead log belongs to the old file: replayed over the backup, it
    // would corrupt it.
    for suffix in ["-wal", "-shm"] {
        let side = with_suffix(&target, suffix);
        match fs::remove_file(&side) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(Error::Io { path: side, source }),
        }
    }
    fs::rename(&staged, &target).map_err(io(&target))?;
    say(&format!(
        "restored {} from {}; phones that synced after the backup was made start their next \
         sync over and offer their changes again",
        target.display(),
        from.display()
    ));
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
