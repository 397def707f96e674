//! One client per data folder: an exclusive lock on a file in the folder, held as long as the
//! client lives. Two clients on one folder would each write their whole copy of a report, so
//! one would silently overwrite the other's unsent edit.
//!
//! The lock is `flock`-style (`File::try_lock`): it belongs to the open file, so a second open
//! in the same process is refused like one in another process, and the kernel drops it when
//! the process dies, so a crash leaves no stale lock. The file is never deleted: a lock on a
//! file that someone deleted and recreated would guard nothing.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use crate::error::{ClientError, Result};

/// File name of the lock inside the data directory.
pub const LOCK_FILE: &str = "gridsync-field.lock";

/// The held lock; dropping it releases the folder.
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
}

impl FolderLock {
    /// Locks `dir` (creating it when missing), or answers `InUse` when a client holds it.
    pub fn acquire(dir: &Path) -> Result<FolderLock> {
        std::fs::create_dir_all(dir).map_err(|e| {
            ClientError::Storage(format!(
                "cannot create data directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| ClientError::Storage(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => Ok(FolderLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(ClientError::InUse(format!(
                "another FieldClient has {} open, in this app or another process; use that one \
                 or close it first",
                dir.display()
            ))),
            Err(TryLockError::Error(e)) => Err(ClientError::Storage(format!(
                "cannot lock {}: {e}",
                path.display()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_folder_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let held = FolderLock::acquire(dir.path()).unwrap();
        let err = FolderLock::acquire(dir.path()).unwrap_err();
        assert!(matches!(err, ClientError::InUse(_)), "{err:?}");
        drop(held);
        FolderLock::acquire(dir.path()).expect("free again");
    }
}
