//! The crate's one error type.

use std::path::PathBuf;

use common::{Class, Classified, ErrorKind, Origin};

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
    /// The file's envelope (magic number, version, length, checksum) is not that of a valid
    /// `kind` file this build reads.
    #[error("{path}: not a valid {kind} file: {source}")]
    Envelope {
        path: PathBuf,
        kind: &'static str,
        #[source]
        source: common::envelope::EnvelopeError,
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
    /// A requested input does not exist (a class sub-folder of a corpus).
    #[error("not found: {what}")]
    NotFound { what: String },
    /// The model, an image or a head file failed (see `embed::EmbedError`).
    #[error(transparent)]
    Embed(#[from] embed::EmbedError),
    /// A head is inconsistent or does not fit the model (see `embed::HeadError`).
    #[error(transparent)]
    Head(#[from] embed::HeadError),
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

impl Classified for TrainError {
    /// Bad settings and too little data are the caller's to fix; unreadable or damaged files
    /// and a head made for another model are faults of the model files.
    fn class(&self) -> Class {
        match self {
            TrainError::WrongDimension { .. }
            | TrainError::InvalidConfig { .. }
            | TrainError::NotEnoughData { .. } => Class::invalid(Origin::Request),
            TrainError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Class::new(ErrorKind::NotFound, Origin::File, "not_found")
            }
            TrainError::Io { .. } => Class::internal(Origin::File),
            TrainError::NotFound { .. } => {
                Class::new(ErrorKind::NotFound, Origin::Request, "not_found")
            }
            TrainError::Embed(e) => e.class(),
            TrainError::Head(e) => e.class(),
            TrainError::ModelMismatch { .. } => {
                Class::new(ErrorKind::Conflict, Origin::Model, "conflict")
            }
            TrainError::NonFinite { .. }
            | TrainError::Envelope { .. }
            | TrainError::Corrupt { .. }
            | TrainError::Image { .. } => Class::internal(Origin::Model),
        }
    }
}
