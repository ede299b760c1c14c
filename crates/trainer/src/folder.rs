//! Folders Lopper owns. A marker file says Lopper made a folder, and Lopper deletes nothing that
//! lacks it; an advisory lock (`flock`, through the standard library's `File::try_lock`), held for
//! a run's or a sweep's whole life, keeps a second process out of a folder, and names the first.
//!
//! The kernel drops the lock when its holder exits, however it exits (SIGKILL included), so a
//! stale lock never blocks a resume.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The marker file in every folder Lopper creates.
pub const MARKER: &str = ".lopper";
/// The lock file.
pub const LOCK: &str = ".lock";

/// Why a folder cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    /// Another process holds the folder's lock.
    #[error(
        "{} is in use by another Lopper process{}; wait for it to finish or stop it first",
        dir.display(),
        pid.map_or(String::new(), |p| format!(" (pid {p})"))
    )]
    Busy {
        /// The folder.
        dir: PathBuf,
        /// The holder's process id, as it wrote it into the lock file.
        pid: Option<u32>,
    },
    /// The folder was not made by Lopper, so Lopper will not delete or reuse it.
    #[error(
        "{} exists and was not made by Lopper (no {MARKER} file in it); choose another folder or remove it yourself",
        dir.display()
    )]
    NotOurs {
        /// The folder.
        dir: PathBuf,
    },
    /// A file operation failed.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
    },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> FolderError + '_ {
    move |cause| FolderError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

/// Marks `dir` as made by Lopper.
pub fn mark(dir: &Path) -> Result<(), FolderError> {
    let path = dir.join(MARKER);
    std::fs::write(
        &path,
        "This folder was made by Lopper; Lopper may delete what is in it.\n",
    )
    .map_err(io(&path))
}

/// Whether Lopper made `dir`.
pub fn is_ours(dir: &Path) -> bool {
    dir.join(MARKER).is_file()
}

/// Deletes `dir` and everything in it, only if Lopper made it and no process holds it.
pub fn remove_ours(dir: &Path) -> Result<(), FolderError> {
    if !is_ours(dir) {
        return Err(FolderError::NotOurs {
            dir: dir.to_path_buf(),
        });
    }
    if let Some(pid) = holder(dir) {
        return Err(FolderError::Busy {
            dir: dir.to_path_buf(),
            pid: Some(pid),
        });
    }
    std::fs::remove_dir_all(dir).map_err(io(dir))
}

/// The advisory lock on a folder; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
}

impl FolderLock {
    /// Takes `dir`'s lock, or says which process holds it.
    pub fn acquire(dir: &Path) -> Result<FolderLock, FolderError> {
        let path = dir.join(LOCK);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(FolderError::Busy {
                    dir: dir.to_path_buf(),
                    pid: read_pid(&mut file),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
        file.set_len(0).map_err(io(&path))?;
        file.seek(SeekFrom::Start(0)).map_err(io(&path))?;
        writeln!(file, "{}", std::process::id()).map_err(io(&path))?;
        file.flush().map_err(io(&path))?;
        Ok(FolderLock { _file: file })
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// The process holding `dir`'s lock now, if any.
pub fn holder(dir: &Path) -> Option<u32> {
    let mut file = File::open(dir.join(LOCK)).ok()?;
    match file.try_lock() {
        Ok(()) => None,
        Err(_) => read_pid(&mut file).or(Some(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_names_its_holder_and_frees_on_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let first = FolderLock::acquire(tmp.path()).unwrap();
        assert_eq!(holder(tmp.path()), Some(std::process::id()));
        match FolderLock::acquire(tmp.path()) {
            Err(FolderError::Busy { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected Busy, got {other:?}"),
        }
        drop(first);
        assert_eq!(holder(tmp.path()), None);
        FolderLock::acquire(tmp.path()).unwrap();
    }

    #[test]
    fn only_marked_idle_folders_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let theirs = tmp.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::write(theirs.join("thesis.tex"), "x").unwrap();
        assert!(matches!(
            remove_ours(&theirs),
            Err(FolderError::NotOurs { .. })
        ));
        assert!(theirs.join("thesis.tex").is_file());

        let ours = tmp.path().join("ours");
        std::fs::create_dir(&ours).unwrap();
        mark(&ours).unwrap();
        let lock = FolderLock::acquire(&ours).unwrap();
        assert!(matches!(remove_ours(&ours), Err(FolderError::Busy { .. })));
        drop(lock);
        remove_ours(&ours).unwrap();
        assert!(!ours.exists());
    }
}
