//! This crate's files in the shared envelope (`common::envelope`) and codec (`common::le`):
//! the only addition here is that every failure names the file it concerns.

use std::path::{Path, PathBuf};

use common::envelope;
use common::le::DecodeError;
pub(crate) use common::le::Writer;

use crate::error::{Result, TrainError};

/// Starts a body in the envelope of `magic` / `version`; finish it with [`seal`].
pub(crate) fn begin(magic: &[u8; 8], version: u32) -> Writer {
    envelope::begin(magic, version, 0)
}

pub(crate) use common::envelope::seal;

/// Checks the envelope (exactly `version`) and returns a reader over the body.
pub(crate) fn open<'a>(
    path: &Path,
    bytes: &'a [u8],
    magic: &[u8; 8],
    kind: &'static str,
    version: u32,
) -> Result<Reader<'a>> {
    let opened =
        envelope::open(bytes, magic, version, version).map_err(|source| TrainError::Envelope {
            path: path.to_path_buf(),
            kind,
            source,
        })?;
    Ok(Reader {
        path: path.to_path_buf(),
        inner: common::le::Reader::new(opened.body),
    })
}

/// `common::le::Reader` whose errors name the file.
pub(crate) struct Reader<'a> {
    path: PathBuf,
    inner: common::le::Reader<'a>,
}

impl<'a> Reader<'a> {
    pub(crate) fn corrupt(&self, reason: impl Into<String>) -> TrainError {
        TrainError::Corrupt {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn map<T>(&self, r: std::result::Result<T, DecodeError>) -> Result<T> {
        r.map_err(|e| self.corrupt(e.to_string()))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        let r = self.inner.u32();
        self.map(r)
    }

    pub(crate) fn str(&mut self) -> Result<String> {
        let r = self.inner.str();
        self.map(r)
    }

    pub(crate) fn f32s(&mut self, n: usize) -> Result<Vec<f32>> {
        let r = self.inner.f32s_exact(n);
        self.map(r)
    }

    pub(crate) fn finish(self) -> Result<()> {
        let path = self.path;
        self.inner.finish().map_err(|e| TrainError::Corrupt {
            path,
            reason: e.to_string(),
        })
    }
}

/// Writes `bytes` to `path` atomically (see `common::fsio::write_atomic`).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    common::fsio::write_atomic(path, bytes)
        .map_err(|(path, source)| TrainError::Io { path, source })
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })
}
