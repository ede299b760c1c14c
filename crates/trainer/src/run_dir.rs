//! Run folders: `runs/<config stem>-<hash of the resolved config>/`. The hash makes the name
//! stable for a config; an existing folder is never overwritten (a numbered sibling is used).

use std::path::{Path, PathBuf};

/// A short stable hash (FNV-1a, 64 bits, first 8 hex digits) of `text`.
pub fn short_hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")[..8].to_string()
}

/// Creates the run folder, marked as Lopper's ([`crate::folder::MARKER`]). With `out`, exactly
/// that folder, which must not exist or be empty; otherwise `root/<stem>-<hash>`, or `…-2`,
/// `…-3`, … if taken.
pub fn create_run_dir(
    root: &Path,
    stem: &str,
    resolved: &str,
    out: Option<&Path>,
) -> std::io::Result<PathBuf> {
    if let Some(out) = out {
        if out.exists() && std::fs::read_dir(out)?.next().is_some() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "--out {} exists and is not empty; choose another folder or remove it",
                    out.display()
                ),
            ));
        }
        std::fs::create_dir_all(out)?;
        mark(out)?;
        return Ok(out.to_path_buf());
    }
    std::fs::create_dir_all(root)?;
    let base = format!("{stem}-{}", short_hash(resolved));
    for k in 1.. {
        let name = if k == 1 {
            base.clone()
        } else {
            format!("{base}-{k}")
        };
        let dir = root.join(name);
        // create_dir (not _all) fails if the folder exists, so two runs cannot share one.
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                mark(&dir)?;
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns")
}

fn mark(dir: &Path) -> std::io::Result<()> {
    crate::folder::mark(dir).map_err(|e| std::io::Error::other(e.to_string()))
}

/// Whether `dir` holds a finished run.
pub fn finished(dir: &Path) -> bool {
    report::load::<report::Summary>(&dir.join("summary.json")).is_ok_and(|s| s.finished().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_and_folders_are_never_reused() {
        assert_eq!(short_hash("abc"), "e71fa219");
        let tmp = tempfile::tempdir().unwrap();
        let a = create_run_dir(tmp.path(), "xor", "x", None).unwrap();
        let b = create_run_dir(tmp.path(), "xor", "x", None).unwrap();
        assert_ne!(a, b);
        assert!(b.to_string_lossy().ends_with("-2"));
        std::fs::write(a.join("f"), "1").unwrap();
        assert!(create_run_dir(tmp.path(), "xor", "x", Some(&a)).is_err());
    }
}
