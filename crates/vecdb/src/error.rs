//! The crate's one error type.
//!
//! Every variant carries structured fields so callers (the engine, the HTTP layer) can map them to
//! stable error codes without parsing messages. Input errors (`WrongDimension`, `NonFinite`,
//! `ZeroVector`, `InvalidParameter`, `InvalidFilter`, `DuplicateId`, `InvalidMetadata`,
//! `InvalidName`) are always raised before anything is written, so they guarantee that nothing
//! changed.

use std::path::PathBuf;

use common::{Class, Classified, ErrorKind, Origin};

/// Errors returned by the vector database.
#[derive(Debug, thiserror::Error)]
pub enum VecDbError {
    /// A vector (point or query) has the wrong number of components.
    #[error("wrong vector dimension: expected {expected}, got {got}")]
    WrongDimension { expected: usize, got: usize },
    /// A vector component is NaN or infinite. `id` is the point id (0 for a query).
    #[error("vector of point {id} has a non-finite component at index {index}")]
    NonFinite { id: u64, index: usize },
    /// A zero vector cannot be normalised, so it is rejected under the cosine metric.
    #[error("vector of point {id} is zero, which has no direction under the cosine metric")]
    ZeroVector { id: u64 },
    /// No collection of that name exists (or it was dropped).
    #[error("unknown collection {name:?}")]
    UnknownCollection { name: String },
    /// `create_collection` was asked for a name that is already taken.
    #[error("collection {name:?} already exists")]
    CollectionExists { name: String },
    /// A collection name that cannot be used as a directory name.
    #[error("invalid collection name {:?}: {reason}", shorten(.name))]
    InvalidName { name: String, reason: String },
    /// A parameter (index spec, search parameter, k, threshold) is out of range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter { name: String, reason: String },
    /// A filter that cannot be evaluated (bad bounds, empty field path, ...).
    #[error("invalid filter: {reason}")]
    InvalidFilter { reason: String },
    /// A point's metadata is not a JSON object.
    #[error("invalid metadata for point {id}: {reason}")]
    InvalidMetadata { id: u64, reason: String },
    /// `insert` found an id that already exists (in the collection or twice in the batch).
    #[error("duplicate point id {id}")]
    DuplicateId { id: u64 },
    /// An error from the redb storage engine.
    #[error("storage error: {0}")]
    Storage(String),
    /// A file-system error, with the path it concerns.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A stored file or record could not be decoded.
    #[error("corrupt data in {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// A stored file was written by a newer, unknown format version.
    #[error("{path} has format version {found}, this build supports up to {supported}")]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
}

impl VecDbError {
    /// Builds an `Io` error for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        VecDbError::Io {
            path: path.into(),
            source,
        }
    }

    /// Builds an `InvalidParameter` error.
    pub(crate) fn param(name: &str, reason: impl Into<String>) -> Self {
        VecDbError::InvalidParameter {
            name: name.to_string(),
            reason: reason.into(),
        }
    }

    /// True for errors caused by the caller's input, which guarantee that nothing changed.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self.class().kind,
            ErrorKind::InvalidInput | ErrorKind::NotFound | ErrorKind::Conflict
        )
    }
}

impl Classified for VecDbError {
    fn class(&self) -> Class {
        use VecDbError as V;
        match self {
            V::WrongDimension { .. } => {
                Class::new(ErrorKind::InvalidInput, Origin::Request, "wrong_dimension")
            }
            V::NonFinite { .. }
            | V::ZeroVector { .. }
            | V::InvalidName { .. }
            | V::InvalidParameter { .. }
            | V::InvalidFilter { .. }
            | V::InvalidMetadata { .. } => Class::invalid(Origin::Request),
            V::UnknownCollection { .. } => {
                Class::new(ErrorKind::NotFound, Origin::Request, "unknown_collection")
            }
            V::CollectionExists { .. } => {
                Class::new(ErrorKind::Conflict, Origin::Request, "collection_exists")
            }
            V::DuplicateId { .. } => Class::new(ErrorKind::Conflict, Origin::Request, "conflict"),
            V::Storage(_) | V::Io { .. } | V::Corrupt { .. } | V::UnsupportedVersion { .. } => {
                Class::internal(Origin::Store)
            }
        }
    }
}

/// A refused name is quoted in the message; a very long one only by its start.
fn shorten(name: &str) -> String {
    match name.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &name[..cut]),
        None => name.to_string(),
    }
}

/// redb reports several error types; they all become `Storage` with their message, since callers
/// cannot act on redb's internal distinctions.
macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for VecDbError {
            fn from(e: $t) -> Self {
                VecDbError::Storage(e.to_string())
            }
        }
    )*};
}

from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
