//! Writing derived files so that a crash never leaves half of one under its final name.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsynced, renamed over the
/// old one, and the directory fsynced, so a crash leaves either the old or the new file (or a
/// stray `.tmp`, which the next write overwrites). The error names the path that failed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), (PathBuf, std::io::Error)> {
    let tmp = tmp_path(path);
    let with = |p: &Path| {
        let p = p.to_path_buf();
        move |e| (p, e)
    };
    let mut file = fs::File::create(&tmp).map_err(with(&tmp))?;
    file.write_all(bytes).map_err(with(&tmp))?;
    file.sync_all().map_err(with(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(with(path))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        sync_dir(dir).map_err(with(dir))?;
    }
    Ok(())
}

/// Fsyncs a directory so that renames and creations inside it are durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.bin");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        let missing = dir.path().join("no/such/dir/f.bin");
        let (path, _) = write_atomic(&missing, b"x").unwrap_err();
        assert!(path.ends_with("f.bin.tmp"), "{path:?}");
    }
}
