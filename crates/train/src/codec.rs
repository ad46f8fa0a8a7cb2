//! The envelope shared by this crate's files, and a bounds-checked little-endian reader.
//!
//! | offset | size | field                                              |
//! |--------|------|----------------------------------------------------|
//! | 0      | 8    | magic number (identifies the file type)            |
//! | 8      | 4    | format version, u32 LE                             |
//! | 12     | 8    | total file length in bytes, u64 LE                 |
//! | 20     | n    | body (layout owned by the file type)               |
//! | 20 + n | 4    | CRC-32 (IEEE) of every preceding byte, u32 LE      |
//!
//! Storing the length lets a short file be reported as truncated rather than as a checksum
//! mismatch; the checksum is verified before the body is parsed, so the parser only meets
//! corrupt content that happens to pass CRC-32.

use std::path::{Path, PathBuf};

use crate::error::{Result, TrainError};

const HEADER: usize = 20;

/// Wraps `body` in the envelope.
pub(crate) fn seal(magic: &[u8; 8], version: u32, body: &[u8]) -> Vec<u8> {
    let total = (HEADER + body.len() + 4) as u64;
    let mut out = Vec::with_capacity(total as usize);
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(body);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Checks the envelope and returns a reader over the body.
pub(crate) fn open<'a>(
    path: &Path,
    bytes: &'a [u8],
    magic: &[u8; 8],
    kind: &'static str,
    version: u32,
) -> Result<Reader<'a>> {
    let truncated = |needed: usize| TrainError::Truncated {
        path: path.to_path_buf(),
        offset: bytes.len(),
        needed,
    };
    if bytes.len() < 8 || &bytes[..8] != magic {
        // A prefix of the magic number is a truncated file of this type, anything else is not
        // ours at all.
        if bytes.len() < 8 && magic.starts_with(bytes) {
            return Err(truncated(HEADER + 4 - bytes.len()));
        }
        return Err(TrainError::BadMagic {
            path: path.to_path_buf(),
            expected: kind,
        });
    }
    if bytes.len() < HEADER + 4 {
        return Err(truncated(HEADER + 4 - bytes.len()));
    }
    let found = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if found != version {
        return Err(TrainError::UnsupportedVersion {
            path: path.to_path_buf(),
            found,
            supported: version,
        });
    }
    let total = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    if (bytes.len() as u64) < total {
        return Err(truncated((total - bytes.len() as u64) as usize));
    }
    if (bytes.len() as u64) > total || total < (HEADER + 4) as u64 {
        return Err(TrainError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("length field {total} but file has {} bytes", bytes.len()),
        });
    }
    let end = bytes.len() - 4;
    let stored = u32::from_le_bytes(bytes[end..].try_into().expect("4 bytes"));
    let computed = crc32fast::hash(&bytes[..end]);
    if stored != computed {
        return Err(TrainError::ChecksumMismatch {
            path: path.to_path_buf(),
            stored,
            computed,
        });
    }
    Ok(Reader {
        path: path.to_path_buf(),
        bytes: &bytes[..end],
        pos: HEADER,
    })
}

/// Appends little-endian fields to a body.
#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
    }
    pub(crate) fn f32s(&mut self, v: &[f32]) {
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }
}

/// Reads little-endian fields; running past the end is reported as corruption, since the
/// envelope already guaranteed the file has its declared length.
pub(crate) struct Reader<'a> {
    path: PathBuf,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn corrupt(&self, reason: impl Into<String>) -> TrainError {
        TrainError::Corrupt {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() - self.pos < n {
            return Err(self.corrupt(format!(
                "field of {n} bytes at offset {} runs past the end",
                self.pos
            )));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }

    pub(crate) fn str(&mut self) -> Result<String> {
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.corrupt("string is not UTF-8"))
    }

    pub(crate) fn f32s(&mut self, n: usize) -> Result<Vec<f32>> {
        let bytes = self.take(
            n.checked_mul(4)
                .ok_or_else(|| self.corrupt("size overflow"))?,
        )?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
            .collect())
    }

    pub(crate) fn finish(self) -> Result<()> {
        if self.pos != self.bytes.len() {
            return Err(self.corrupt(format!(
                "{} unexpected trailing bytes",
                self.bytes.len() - self.pos
            )));
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a crash never leaves a
/// half-written file under the final name.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })
}
