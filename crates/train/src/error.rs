//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in `train`. Each variant carries the facts needed to act on it.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A vector or matrix had the wrong number of components.
    #[error("wrong dimension: expected {expected}, got {got}")]
    WrongDimension { expected: usize, got: usize },
    /// A configuration value is out of its valid range.
    #[error("invalid configuration: {reason}")]
    InvalidConfig { reason: String },
    /// The data cannot support the requested operation (too few samples or classes).
    #[error("not enough data: {reason}")]
    NotEnoughData { reason: String },
    /// A value that must be finite was NaN or infinite (training diverged or bad input).
    #[error("non-finite value in {what}")]
    NonFinite { what: String },
    /// Reading or writing a file failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with the expected magic number.
    #[error("{path}: not a {expected} file (bad magic number)")]
    BadMagic {
        path: PathBuf,
        expected: &'static str,
    },
    /// The file's format version is not one this build reads.
    #[error("{path}: unsupported format version {found} (this build reads {supported})")]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// The stored checksum does not match the content.
    #[error("{path}: checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    ChecksumMismatch {
        path: PathBuf,
        stored: u32,
        computed: u32,
    },
    /// The file ends before its declared content does.
    #[error("{path}: truncated ({needed} more bytes needed at offset {offset})")]
    Truncated {
        path: PathBuf,
        offset: usize,
        needed: usize,
    },
    /// The file is well formed at the byte level but its content is inconsistent.
    #[error("{path}: corrupt content: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// A head or cache was made for another embedding model.
    #[error("model mismatch: file is for {file_model}, expected {expected_model}")]
    ModelMismatch {
        file_model: String,
        expected_model: String,
    },
    /// An image operation failed (for example JPEG encoding).
    #[error("image operation failed: {reason}")]
    Image { reason: String },
}

/// Shorthand used throughout the crate.
pub type Result<T> = std::result::Result<T, TrainError>;

pub(crate) fn invalid(reason: impl Into<String>) -> TrainError {
    TrainError::InvalidConfig {
        reason: reason.into(),
    }
}
