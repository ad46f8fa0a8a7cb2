//! The engine's one error type.

use std::path::PathBuf;

use common::{Class, Classified, ErrorKind, Origin};

use crate::store::StoreError;

/// Everything an engine operation can fail with. Variants carry structured fields so that the CLI
/// (exit codes) and the HTTP layer (status codes) can map them without parsing messages.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Decoding an image or running the model failed.
    #[error(transparent)]
    Embed(#[from] embed::EmbedError),
    /// The vector store failed or rejected a request.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The durable catalog of indexed files could not be read or written.
    #[error("catalog {path}: {reason}")]
    Catalog { path: PathBuf, reason: String },
    /// An id, path or collection that does not exist.
    #[error("not found: {what}")]
    NotFound { what: String },
    /// No indexed image has this id.
    #[error("no indexed image has id {id}")]
    ImageNotFound { id: u64 },
    /// A request that cannot be carried out as given (bad parameter, bad filter, empty text).
    #[error("invalid input: {reason}")]
    InvalidInput { reason: String },
    /// The collection holds vectors of another model; mixing them would make scores meaningless.
    #[error(
        "the collection's vectors were made by model {collection_model}, but the loaded model is \
         {current_model}; use the same model, another --collection, or another data dir"
    )]
    ModelMismatch {
        collection_model: String,
        current_model: String,
    },
    /// The collection holds the image index: the raw vector API may read it, not write it.
    #[error("collection {name} holds the image index and is read-only through the vector API")]
    ReadOnlyCollection { name: String },
    /// A file-system error, with the path it concerns.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl EngineError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EngineError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        EngineError::InvalidInput {
            reason: reason.into(),
        }
    }
}

impl Classified for EngineError {
    fn class(&self) -> Class {
        match self {
            EngineError::Embed(e) => e.class(),
            EngineError::Store(e) => e.class(),
            EngineError::Catalog { .. } => Class::internal(Origin::Store),
            EngineError::NotFound { .. } => {
                Class::new(ErrorKind::NotFound, Origin::Request, "not_found")
            }
            EngineError::ImageNotFound { .. } => {
                Class::new(ErrorKind::NotFound, Origin::Request, "image_not_found")
            }
            EngineError::InvalidInput { .. } => Class::invalid(Origin::Request),
            // The index was built by another model than the one loaded now: the request is fine,
            // the state is not.
            EngineError::ModelMismatch { .. } => {
                Class::new(ErrorKind::Conflict, Origin::Model, "conflict")
            }
            EngineError::ReadOnlyCollection { .. } => {
                Class::new(ErrorKind::Conflict, Origin::Request, "read_only_collection")
            }
            EngineError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Class::new(ErrorKind::NotFound, Origin::File, "not_found")
            }
            EngineError::Io { .. } => Class::internal(Origin::File),
        }
    }
}
