//! One owner per data directory: the playground and the control plane hold an exclusive lock on
//! `<dir>/infinistream.lock` for as long as they run, so a second process on the same directory
//! is refused with a clear message instead of sharing a SQLite database and a bucket directory.
//!
//! Owns the lock file and its message. Does not own the directory's contents.
//!
//! The lock is the operating system's (`flock` on Unix, through `File::try_lock`): it goes with
//! the process, so a crash never leaves a stale lock behind. The file holds the owner's pid, only
//! to name it in the message.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside a locked directory.
pub const LOCK_FILE: &str = "infinistream.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{dir} is in use by another infinistream process{}: stop it, or use another directory",
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    InUse { dir: String, holder: Option<u32> },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// An exclusive lock on a directory, released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Locks `dir` (which must exist) or says who holds it.
    pub fn acquire(dir: &Path) -> Result<Self, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::InUse {
                    dir: dir.display().to_string(),
                    holder: text.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_owner_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = DirLock::acquire(dir.path()).expect("first lock");
        let err = DirLock::acquire(dir.path()).expect_err("second lock refused");
        let text = err.to_string();
        assert!(
            text.contains("is in use by another infinistream process")
                && text.contains(&format!("(pid {})", std::process::id())),
            "{text}"
        );
        assert!(first.path().ends_with(LOCK_FILE));
        drop(first);
        DirLock::acquire(dir.path()).expect("free again once released");
    }

    #[test]
    fn a_missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = DirLock::acquire(&dir.path().join("absent")).expect_err("no directory");
        assert!(matches!(err, LockError::Io { .. }), "{err}");
    }
}
