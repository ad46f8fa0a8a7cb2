//! imgsearch's embedded vector database.
//!
//! A [`Database`] is a directory holding named [`Collection`]s. Each collection stores its points
//! durably: ids, metadata and slot numbers in its own redb file, vectors in fixed-size slots of a
//! memory-mapped vector file, read in place by one of four index kinds (flat, HNSW, IVF, LSH)
//! through a mapped [`index::VectorArena`]. The index is saved as a checksummed snapshot file, so
//! reopening maps the vectors and loads the index structure without reading any point.
//!
//! Layering: `distance` (kernels) and `index` (structures, no IO) know nothing of storage;
//! `fields` (the field indexes that answer filters) owns its file's format and reads its field
//! bodies from it lazily, by positioned reads; `storage` does all other IO; `collection`,
//! `search` and `db` tie them together and own validation, filtering and concurrency. See
//! `docs/vecdb.md` for file formats and durability contracts.

pub mod config;
pub mod db;
pub mod distance;
pub mod error;
pub mod filter;
pub mod index;
pub mod search;
pub mod storage;

mod collection;
mod fields;
mod migrate;
mod state;

pub use collection::{check_points, Collection, CollectionStats, AUTOSAVE_MIN_CHANGES};
pub use config::CollectionConfig;
pub use db::Database;
pub use error::VecDbError;
pub use filter::Filter;
pub use index::{HnswParams, IndexSpec, IvfParams, LshParams, Metric, RefineParams};
pub use search::{Hit, SearchRequest};

/// One stored point: an id chosen by the caller, a vector of the collection's dimension, and
/// metadata, a JSON object (`null` is stored as `{}`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Point {
    pub id: u64,
    pub vector: Vec<f32>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: serde_json::Value,
}

impl Point {
    /// A point with empty metadata.
    pub fn new(id: u64, vector: Vec<f32>) -> Self {
        Point {
            id,
            vector,
            metadata: serde_json::Value::Object(Default::default()),
        }
    }

    /// A point with the given metadata.
    pub fn with_metadata(id: u64, vector: Vec<f32>, metadata: serde_json::Value) -> Self {
        Point {
            id,
            vector,
            metadata,
        }
    }
}
