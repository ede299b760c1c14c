//! Every file of a run folder is written whole or not at all: to a temporary name in the same
//! folder, flushed to the disk, then renamed over the final name. A full disk or a kill leaves
//! the previous file (or none), never a truncated one, and a failed write removes its temporary.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The temporary name `path` is written under: hidden, in the same folder (a rename never
/// crosses file systems), with the extension kept (plotters picks the image format from it).
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".tmp-{}-{name}", std::process::id()))
}

/// Writes `bytes` to `path` atomically.
pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> std::io::Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes.as_ref())?;
        f.sync_all()?;
        Ok(())
    })();
    finish(&tmp, path, result)
}

/// Renames the temporary `tmp` (written by someone else, say a plotting library) over `path`
/// once `result` says it is complete; removes it otherwise.
pub fn finish(tmp: &Path, path: &Path, result: std::io::Result<()>) -> std::io::Result<()> {
    let result = result.and_then(|()| {
        File::open(tmp)?.sync_all()?;
        std::fs::rename(tmp, path)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_file_whole_and_leaves_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("summary.json");
        write(&p, "old").unwrap();
        write(&p, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        // A failed write (the folder is gone) reports the error and leaves nothing behind.
        let gone = tmp.path().join("gone/summary.json");
        assert!(write(&gone, "x").is_err());
    }
}
