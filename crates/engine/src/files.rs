//! Durable, race-free file writes, shared by uploads and thumbnails.
//!
//! A file is written under a temporary name no other writer uses (process id and a counter),
//! flushed to disk, then moved into place, and its folder is flushed so the new name survives a
//! crash too. Both callers name files by their content (a hash), so when another writer puts the
//! same name in place first, its file holds the same bytes and the race is a success.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

fn temp_path(dest: &Path) -> PathBuf {
    let n = NEXT_TEMP.fetch_add(1, Ordering::Relaxed);
    let stem = dest
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{stem}.{}.{n}.tmp", std::process::id()))
}

/// Writes `bytes` to `dest` durably (see the module documentation). An existing `dest` is kept:
/// it holds the same content.
pub(crate) fn write_durable(dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(dest);
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // A hard link creates `dest` only if it does not exist, atomically; file systems without
    // hard links fall back to a rename, which replaces a concurrent writer's identical file.
    let placed = match std::fs::hard_link(&tmp, dest) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(_) => match std::fs::rename(&tmp, dest) {
            Ok(()) => Ok(()),
            Err(_) if dest.exists() => Ok(()),
            Err(e) => Err(e),
        },
    };
    let _ = std::fs::remove_file(&tmp);
    placed?;
    if let Some(dir) = dest.parent() {
        sync_dir(dir);
    }
    Ok(())
}

/// Flushes a folder's entries (its new and removed names). Best effort: some platforms and file
/// systems cannot open a folder for this, and the file's own data is already on disk.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_writers_of_one_name_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("same.bin");
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| write_durable(&dest, b"same bytes").unwrap());
            }
        });
        assert_eq!(std::fs::read(&dest).unwrap(), b"same bytes");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
    }
}
