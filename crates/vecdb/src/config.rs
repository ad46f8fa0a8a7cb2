//! Collection configuration and its validation.
//!
//! The config is fixed when a collection is created and stored in its redb file (wrapped with a
//! format version, see `storage::points`). Names double as directory names, so they are limited
//! to a portable character set.

use serde::{Deserialize, Serialize};

use crate::error::VecDbError;
use crate::index::{IndexSpec, Metric};

/// Largest accepted vector dimension; far above any embedding in use, it only guards against
/// absurd allocations from a typo.
pub const MAX_DIM: usize = 65_536;
/// Longest accepted collection name.
pub const MAX_NAME_LEN: usize = 64;

/// What a collection is: its name, vector dimension, metric and index kind with parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CollectionConfig {
    pub name: String,
    pub dim: usize,
    pub metric: Metric,
    pub index: IndexSpec,
}

impl CollectionConfig {
    /// A config with the default HNSW index.
    pub fn new(name: &str, dim: usize, metric: Metric) -> Self {
        CollectionConfig {
            name: name.to_string(),
            dim,
            metric,
            index: IndexSpec::default_hnsw(),
        }
    }

    /// Checks the name, the dimension and the index parameters.
    pub fn validate(&self) -> Result<(), VecDbError> {
        validate_name(&self.name)?;
        if self.dim == 0 || self.dim > MAX_DIM {
            return Err(VecDbError::param(
                "dim",
                format!("must be between 1 and {MAX_DIM}, got {}", self.dim),
            ));
        }
        self.index
            .validate(self.dim)
            .map_err(|reason| VecDbError::param("index", reason))
    }
}

/// Collection names: 1 to 64 characters from `[A-Za-z0-9_-]`, so they are safe directory names on
/// every platform and never collide with the database's hidden work directories (which start
/// with a dot).
pub fn validate_name(name: &str) -> Result<(), VecDbError> {
    let reason = if name.is_empty() {
        Some("must not be empty".to_string())
    } else if name.len() > MAX_NAME_LEN {
        Some(format!("must be at most {MAX_NAME_LEN} characters"))
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Some("may contain only ASCII letters, digits, '_' and '-'".to_string())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(VecDbError::InvalidName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}
