//! The vector store interface the engine runs on, and its implementations.
//!
//! The trait is synchronous because engine users (the CLI, the rayon-based ingest) are not async;
//! an implementation that talks to a remote server (Milvus) runs its own small runtime inside.
//! Every implementation must pass the conformance suite in `tests/store_suite`.

pub mod embedded;
#[cfg(feature = "milvus")]
pub mod milvus;

use common::{Class, Classified, ErrorKind, Origin};
use vecdb::{CollectionConfig, Hit, Point, SearchRequest};

/// A place that keeps collections of vectors with JSON metadata and searches them.
///
/// Durability contract: a write method (`create_collection`, `drop_collection`, `upsert`,
/// `delete`) returns `Ok` only once the change is durable (embedded) or acknowledged by the server
/// (remote); on `Err` the store is unchanged for that call.
pub trait VectorStore: Send + Sync {
    /// `"embedded"` or `"milvus"`.
    fn kind(&self) -> &'static str;
    /// Creates a collection; fails if one of that name exists or the config is invalid.
    fn create_collection(&self, config: &CollectionConfig) -> Result<(), StoreError>;
    /// Every collection's configuration.
    fn list_collections(&self) -> Result<Vec<CollectionConfig>, StoreError>;
    /// One collection's configuration, `None` when it does not exist.
    fn collection_info(&self, name: &str) -> Result<Option<CollectionConfig>, StoreError>;
    /// Removes a collection and all its points.
    fn drop_collection(&self, name: &str) -> Result<(), StoreError>;
    /// Inserts or replaces points by id, all or nothing.
    fn upsert(&self, name: &str, points: &[Point]) -> Result<(), StoreError>;
    /// Deletes points by id; ids that do not exist are ignored.
    fn delete(&self, name: &str, ids: &[u64]) -> Result<(), StoreError>;
    /// The points with these ids; missing ids are skipped.
    fn get(&self, name: &str, ids: &[u64]) -> Result<Vec<Point>, StoreError>;
    /// Number of points in the collection.
    fn count(&self, name: &str) -> Result<u64, StoreError>;
    /// Nearest points to `query`, best first, under the collection's metric.
    fn search(
        &self,
        name: &str,
        query: &[f32],
        req: &SearchRequest,
    ) -> Result<Vec<Hit>, StoreError>;
    /// Up to `limit` points with ids greater than `after`, in ascending id order (for paging).
    fn scan(&self, name: &str, after: Option<u64>, limit: usize) -> Result<Vec<Point>, StoreError>;
    /// Memory by component and size on disk, where the store can tell (the embedded one).
    fn storage_stats(&self, _name: &str) -> Result<Option<vecdb::CollectionStats>, StoreError> {
        Ok(None)
    }
    /// Makes everything the store keeps in memory durable (the embedded store's index
    /// snapshots), so the next open does not rebuild; a remote store has nothing to do.
    fn save(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Everything a store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    VecDb(#[from] vecdb::VecDbError),
    #[error("collection {name} does not exist")]
    UnknownCollection { name: String },
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("store rejected request: {reason}")]
    Rejected { reason: String },
    #[error("invalid store url {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
}

impl StoreError {
    /// Whether the request itself was at fault (wrong dimension, bad filter or parameter, a
    /// missing collection), as opposed to the store failing; such a request changed nothing.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self.class().kind,
            ErrorKind::InvalidInput | ErrorKind::NotFound | ErrorKind::Conflict
        )
    }
}

impl Classified for StoreError {
    fn class(&self) -> Class {
        match self {
            StoreError::VecDb(e) => e.class(),
            StoreError::UnknownCollection { .. } => {
                Class::new(ErrorKind::NotFound, Origin::Request, "unknown_collection")
            }
            StoreError::Unreachable { .. } => {
                Class::new(ErrorKind::Unavailable, Origin::Store, "store_unavailable")
            }
            // A remote store rejects what it finds invalid in the request (bad parameters, bad
            // filter syntax): that is the caller's to fix.
            StoreError::Rejected { .. } => Class::invalid(Origin::Request),
            StoreError::InvalidUrl { .. } => Class::invalid(Origin::Config),
        }
    }
}

/// Opens a store from a URL.
///
/// Accepted forms: `embedded:/path/dir` or a plain path (the embedded database in that folder,
/// created if missing), and `milvus://host:port[/db]?user=..&password=..` (only when built with
/// the `milvus` feature).
pub fn open_store(url: &str) -> Result<Box<dyn VectorStore>, StoreError> {
    if url.trim().is_empty() {
        return Err(StoreError::InvalidUrl {
            url: url.to_string(),
            reason: "empty; give a folder path, embedded:/path or milvus://host:port".into(),
        });
    }
    if url.starts_with("milvus://") {
        return open_milvus(url);
    }
    let path = match url.strip_prefix("embedded:") {
        Some(rest) => rest,
        None => {
            // Any other scheme is a mistake, not a folder named "http:".
            if let Some((scheme, _)) = url.split_once("://") {
                return Err(StoreError::InvalidUrl {
                    url: url.to_string(),
                    reason: format!(
                        "unknown scheme {scheme:?}; use a folder path, embedded:/path or milvus://host:port"
                    ),
                });
            }
            url
        }
    };
    if path.is_empty() {
        return Err(StoreError::InvalidUrl {
            url: url.to_string(),
            reason: "embedded: needs a folder path after the colon".into(),
        });
    }
    Ok(Box::new(embedded::EmbeddedStore::open(
        std::path::Path::new(path),
    )?))
}

#[cfg(feature = "milvus")]
fn open_milvus(url: &str) -> Result<Box<dyn VectorStore>, StoreError> {
    Ok(Box::new(milvus::MilvusStore::connect(url)?))
}

#[cfg(not(feature = "milvus"))]
fn open_milvus(url: &str) -> Result<Box<dyn VectorStore>, StoreError> {
    Err(StoreError::InvalidUrl {
        url: url.to_string(),
        reason: "this build has no Milvus support; rebuild with `--features milvus`".into(),
    })
}
