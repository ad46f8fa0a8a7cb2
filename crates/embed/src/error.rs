//! The crate's single error type.

use std::path::PathBuf;

use common::{Class, Classified, ErrorKind, Origin};

/// Everything that can go wrong between an image file and its embedding.
///
/// Errors about one input name it in `path` (a file path, or the `source` label given to
/// [`crate::decode_bytes`]) so that a batch ingest can report which file failed and go on.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The file has no bytes at all.
    #[error("{path}: empty file")]
    Empty { path: String },
    /// The file is bigger than `DecodeLimits::max_file_bytes`; it was not read.
    #[error("{path}: file is {bytes} bytes, more than the limit of {max_bytes}")]
    FileTooLarge {
        path: String,
        bytes: u64,
        max_bytes: u64,
    },
    /// The header announces more pixels than `DecodeLimits::max_pixels`; nothing was decoded.
    #[error("{path}: image is {width}x{height} pixels, more than the limit of {max_pixels}")]
    TooLarge {
        path: String,
        width: u32,
        height: u32,
        max_pixels: u64,
    },
    /// The bytes are not an image in any format this crate decodes (text, PDF, unknown magic).
    #[error("{path}: not a supported image format ({reason})")]
    Unsupported { path: String, reason: String },
    /// The format was recognised but the data is corrupt or truncated.
    #[error("{path}: cannot decode image: {reason}")]
    Decode { path: String, reason: String },
    /// The model manifest is missing, malformed or inconsistent.
    #[error("manifest {path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
    /// Loading or running the ONNX model failed.
    #[error("model: {reason}")]
    Model { reason: String },
    /// The requested runtime is not compiled in or its library could not be loaded.
    #[error("runtime {runtime}: {reason}")]
    Runtime {
        runtime: &'static str,
        reason: String,
    },
    /// The projection head a manifest names (or a head file given directly) cannot be used.
    #[error("head {path}: {problem}")]
    Head {
        path: PathBuf,
        #[source]
        problem: crate::head::HeadError,
    },
    /// A tensor (a model output, or an input buffer handed in) has an unexpected size.
    #[error("model output {output}: expected dimension {expected}, got {got}")]
    WrongDimension {
        output: String,
        expected: usize,
        got: usize,
    },
}

impl EmbedError {
    pub(crate) fn model(reason: impl std::fmt::Display) -> Self {
        EmbedError::Model {
            reason: reason.to_string(),
        }
    }

    /// The file or source label the error is about, when it is about one input.
    pub fn path(&self) -> Option<&str> {
        match self {
            EmbedError::Io { path, .. }
            | EmbedError::Empty { path }
            | EmbedError::FileTooLarge { path, .. }
            | EmbedError::TooLarge { path, .. }
            | EmbedError::Unsupported { path, .. }
            | EmbedError::Decode { path, .. } => Some(path),
            _ => None,
        }
    }
}

impl Classified for EmbedError {
    /// A file that is not a readable image is the caller's bad input; a file that cannot be
    /// read is a file-system fault; the model, its manifest and its runtime are ours.
    fn class(&self) -> Class {
        match self {
            EmbedError::Empty { .. }
            | EmbedError::FileTooLarge { .. }
            | EmbedError::TooLarge { .. }
            | EmbedError::Unsupported { .. }
            | EmbedError::Decode { .. } => {
                Class::new(ErrorKind::InvalidInput, Origin::Request, "invalid_image")
            }
            EmbedError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Class::new(ErrorKind::NotFound, Origin::File, "not_found")
            }
            EmbedError::Io { .. } => Class::internal(Origin::File),
            EmbedError::Head { problem, .. } => problem.class(),
            EmbedError::Manifest { .. }
            | EmbedError::Model { .. }
            | EmbedError::Runtime { .. }
            | EmbedError::WrongDimension { .. } => Class::internal(Origin::Model),
        }
    }
}
