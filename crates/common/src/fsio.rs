//! Writing derived files so that a crash never leaves half of one under its final name.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Why [`write_atomic_with`] failed.
#[derive(Debug)]
pub enum AtomicWriteError<E> {
    /// A file-system step failed: creating, flushing or fsyncing the temporary file (the path is
    /// the temporary one), renaming it (the final path) or fsyncing the directory (its path).
    Io(PathBuf, std::io::Error),
    /// The closure that writes the content failed; the old file is untouched.
    Fill(E),
}

/// Buffer of [`write_atomic_with`]: large enough that a big file is written in few system
/// calls.
const BUFFER: usize = 1 << 20;

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsynced, renamed over the
/// old one, and the directory fsynced, so a crash leaves either the old or the new file (or a
/// stray `.tmp`, which the next write overwrites). The error names the path that failed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), (PathBuf, std::io::Error)> {
    write_atomic_with(path, |out| out.write_all(bytes)).map_err(|e| match e {
        AtomicWriteError::Io(p, e) => (p, e),
        // Writing into the buffer failed, so the temporary file is what could not be written.
        AtomicWriteError::Fill(e) => (tmp_path(path), e),
    })
}

/// Writes a file atomically like [`write_atomic`], its content written by `fill` through a
/// buffer, so that a large file need not be held in memory whole; returns what `fill` returns.
/// When `fill` or any step before the rename fails, the temporary file is removed (it can be
/// large) and the old file at `path` stays as it was.
pub fn write_atomic_with<T, E>(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<fs::File>) -> Result<T, E>,
) -> Result<T, AtomicWriteError<E>> {
    let tmp = tmp_path(path);
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| AtomicWriteError::Io(p, e)
    };
    let file = fs::File::create(&tmp).map_err(io(&tmp))?;
    let mut out = BufWriter::with_capacity(BUFFER, file);
    let written = match fill(&mut out) {
        Ok(filled) => flush_and_sync(out).map(|()| filled).map_err(io(&tmp)),
        Err(e) => Err(AtomicWriteError::Fill(e)),
    };
    let filled = written.inspect_err(|_| {
        // Only a leftover: the next write would overwrite it, but it can be large.
        let _ = fs::remove_file(&tmp);
    })?;
    fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        sync_dir(dir).map_err(io(dir))?;
    }
    Ok(filled)
}

/// Flushes the buffer and fsyncs the file, so that its content is on disk before the rename
/// makes it the file at the final path.
fn flush_and_sync(out: BufWriter<fs::File>) -> std::io::Result<()> {
    out.into_inner().map_err(|e| e.into_error())?.sync_all()
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

    #[test]
    fn streams_the_content_and_returns_what_the_closure_returns() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.bin");
        let big = vec![7u8; 3 * BUFFER + 5];
        let n = write_atomic_with(&p, |out| {
            out.write_all(b"head")?;
            out.write_all(&big)?;
            Ok::<_, std::io::Error>(42)
        })
        .unwrap();
        assert_eq!(n, 42);
        let read = fs::read(&p).unwrap();
        assert_eq!(read.len(), 4 + big.len());
        assert!(read.starts_with(b"head") && read[4..] == big[..]);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failing_closure_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.bin");
        write_atomic(&p, b"old").unwrap();
        let e = write_atomic_with(&p, |out| {
            // More than the buffer holds, so part of it has reached the temporary file.
            out.write_all(&vec![1u8; 2 * BUFFER])?;
            Err::<(), _>(std::io::Error::other("no content"))
        })
        .unwrap_err();
        assert!(
            matches!(&e, AtomicWriteError::Fill(e) if e.to_string() == "no content"),
            "{e:?}"
        );
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failing_step_names_its_path() {
        let dir = tempfile::tempdir().unwrap();
        // A directory at the final path: everything up to the rename works, the rename fails.
        let p = dir.path().join("taken");
        fs::create_dir(&p).unwrap();
        fs::write(p.join("inside"), b"x").unwrap();
        let e = write_atomic_with(&p, |out| out.write_all(b"new")).unwrap_err();
        assert!(
            matches!(&e, AtomicWriteError::Io(at, _) if at == &p),
            "{e:?}"
        );
        let missing = dir.path().join("no/such/dir/f.bin");
        let e = write_atomic_with(&missing, |out| out.write_all(b"x")).unwrap_err();
        assert!(
            matches!(&e, AtomicWriteError::Io(at, _) if at.ends_with("f.bin.tmp")),
            "{e:?}"
        );
    }
}
