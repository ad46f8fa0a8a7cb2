//! imgsearch engine: the use cases (ingest, query, dedup, thumbnails) over a vector store.
//!
//! Every surface (the CLI, the HTTP server) calls [`Engine`]; nothing here knows clap, tokio or
//! axum. The engine keeps two things per data directory: the vectors, in a [`store::VectorStore`]
//! (embedded `vecdb` by default, Milvus optionally), and a durable [`catalog`] of indexed files
//! (path, size, mtime, content hash, id, tags) that makes re-indexing incremental.

pub mod catalog;
mod collections;
mod dedup;
mod error;
mod examples;
mod files;
mod ingest;
pub mod jobs;
pub mod migrate;
mod query;
mod ranking;
pub mod store;
mod thumbs;
mod words;

use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use vecdb::{CollectionConfig, IndexSpec, Metric};

pub use collections::{CollectionInfo, Collections};
pub use common::{NoProgress, ProgressSink};
pub use dedup::{DuplicateBands, DUPLICATE_BANDS};
pub use embed::IMAGE_EXTENSIONS;
pub use error::EngineError;
pub use examples::{Example, Examples, Strategy, MAX_EXAMPLES};
pub use ranking::{Order, SearchCursor, SearchInput, SearchPage, MAX_RANKED};

use catalog::{Catalog, FileRecord};
use store::VectorStore;

/// Everything the engine needs to open; the CLI builds it from file, environment and flags.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Holds `db/` (embedded store), `catalog.redb`, `thumbnails/` and `uploads/`.
    pub data_dir: PathBuf,
    /// `None` = the embedded store in `data_dir/db`; else a URL for [`store::open_store`].
    pub store_url: Option<String>,
    /// The model: a manifest on disk, or one compiled into the program.
    pub model: embed::ModelSource,
    pub runtime: embed::RuntimeConfig,
    pub collection: String,
    /// Metric and index are used when the collection is created; an existing one keeps its own.
    pub metric: Metric,
    pub index: IndexSpec,
    pub limits: embed::DecodeLimits,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            data_dir: PathBuf::from(".imgsearch"),
            store_url: None,
            model: embed::ModelSource::Manifest(embed::default_manifest_path()),
            runtime: embed::RuntimeConfig::default(),
            collection: "images".into(),
            metric: Metric::Cosine,
            index: IndexSpec::default_hnsw(),
            limits: embed::DecodeLimits::default(),
        }
    }
}

/// Search parameters shared by every kind of query.
#[derive(Clone, Debug)]
pub struct Query {
    /// Number of hits wanted, 1..=[`MAX_K`].
    pub k: usize,
    /// Minimum score (cosine, inner product) or maximum distance (L2); for text search, the
    /// minimum tag score.
    pub threshold: Option<f32>,
    pub filter: Option<vecdb::Filter>,
    /// Best first, or newest first within the threshold.
    pub order: Order,
    /// Where the page starts: `None` for the first, else the `next` of the page before.
    pub cursor: Option<SearchCursor>,
}

/// The largest `k` a query may ask for.
pub const MAX_K: usize = 1000;

impl Default for Query {
    fn default() -> Self {
        Query {
            k: 10,
            threshold: None,
            filter: None,
            order: Order::Score,
            cursor: None,
        }
    }
}

/// One indexed image as the catalog knows it.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = CatalogRecord))]
pub struct ImageRecord {
    pub id: u64,
    /// The absolute, canonical path the image was indexed under.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub path: PathBuf,
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub mtime: i64,
    pub width: u32,
    pub height: u32,
    /// EXIF DateTimeOriginal as RFC 3339, when the file has one.
    pub taken: Option<String>,
    pub tags: Vec<Tag>,
    /// The folder holding the file.
    pub folder: String,
}

/// Where a library page ends: the last image's modification time (nanoseconds) and id. The
/// next page holds the images that sort after it (older, or as old with a smaller id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LibraryCursor {
    pub mtime_ns: i64,
    pub id: u64,
}

impl std::fmt::Display for LibraryCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.mtime_ns, self.id)
    }
}

impl std::str::FromStr for LibraryCursor {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, EngineError> {
        let bad = || EngineError::invalid(format!("library cursor {s:?} is not MTIME_NS:ID"));
        let (m, i) = s.split_once(':').ok_or_else(bad)?;
        Ok(LibraryCursor {
            mtime_ns: m.parse().map_err(|_| bad())?,
            id: i.parse().map_err(|_| bad())?,
        })
    }
}

/// One page of [`Engine::library`].
#[derive(Debug, Clone)]
pub struct LibraryPage {
    pub images: Vec<ImageRecord>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<LibraryCursor>,
    /// Images in the library.
    pub total: u64,
}

/// An auto-tag: a class the model's classifier gave the image, with its probability.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tag {
    pub name: String,
    pub score: f32,
}

/// One search result. `metadata` is the point's stored metadata (see [`point_metadata`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchHit {
    pub id: u64,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub path: PathBuf,
    /// Cosine similarity or inner product (higher is closer) or L2 distance (lower is closer),
    /// by the index's metric.
    pub score: f32,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: Value,
}

/// What an ingest run did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IndexReport {
    /// New files embedded and stored.
    pub added: u64,
    /// Files whose content changed, re-embedded under their existing id.
    pub updated: u64,
    /// Catalogued files no longer on disk, removed from the store.
    pub removed: u64,
    /// Files already indexed with the same content (not re-embedded).
    pub unchanged: u64,
    /// Files not attempted, with the reason (not an image, too large, unreadable name): each
    /// a pair `[path, reason]`.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Vec<String>>))]
    pub skipped: Vec<(PathBuf, String)>,
    /// Files that could not be read, decoded or embedded, with the reason: each a pair
    /// `[path, reason]`.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Vec<String>>))]
    pub failed: Vec<(PathBuf, String)>,
    pub seconds: f64,
}

/// What `status` reports.
#[derive(Clone, Debug, Serialize)]
pub struct EngineStatus {
    pub data_dir: PathBuf,
    pub store: &'static str,
    pub collection: String,
    /// Points in the store's collection.
    pub points: u64,
    /// Files in the catalog.
    pub files: u64,
    pub model: String,
    /// The model that made the collection's vectors, when it differs from `model`.
    pub collection_model: Option<String>,
    pub dim: usize,
    pub metric: Metric,
    pub index: IndexSpec,
    /// How `search_text` works with this model.
    pub text_search: String,
    /// The runtime that runs the model (`tract` or `ort`).
    pub runtime: String,
    /// Memory by component (mapped vectors, index, slot tables) and size on disk of the
    /// collection; `None` for stores that do not report it (Milvus).
    pub storage: Option<vecdb::CollectionStats>,
    /// The score bands that tell copies from similar shots; `None` unless the metric is cosine,
    /// where scores have a fixed meaning.
    pub duplicates: Option<DuplicateBands>,
}

/// The facade: one per data directory, `Send + Sync` (wrap it in an `Arc` to share it).
pub struct Engine {
    config: EngineConfig,
    store: Box<dyn VectorStore>,
    encoder: embed::Encoder,
    catalog: Catalog,
    collection: CollectionConfig,
    model_id: String,
    /// Set when the collection holds another model's vectors; every use then fails.
    mismatch: Option<String>,
    /// Held while the catalog and the store change (one batch's commit, an upload's, a
    /// removal, the scan's bookkeeping), so that ids are reserved and records written in
    /// sequence; never while files are hashed or embedded.
    ingest_lock: Mutex<()>,
}

impl Engine {
    /// Opens the store, loads the model and catalog, creates the collection if needed, and
    /// cleans up after an interrupted ingest.
    pub fn open(config: EngineConfig) -> Result<Engine, EngineError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| EngineError::io(&config.data_dir, e))?;
        let url = match &config.store_url {
            Some(u) => u.clone(),
            None => format!("embedded:{}", config.data_dir.join("db").display()),
        };
        let store = store::open_store(&url)?;
        let encoder = embed::Encoder::load(&config.model, &config.runtime)?;
        let catalog = Catalog::open(&config.data_dir.join("catalog.redb"), &config.collection)?;
        let model_id = encoder.id().to_string();
        let wanted = CollectionConfig {
            name: config.collection.clone(),
            dim: encoder.dim(),
            metric: config.metric,
            index: config.index.clone(),
        };
        let (collection, mismatch) =
            ingest::setup_collection(&*store, &catalog, wanted, &model_id)?;
        let engine = Engine {
            config,
            store,
            encoder,
            catalog,
            collection,
            model_id,
            mismatch,
            ingest_lock: Mutex::new(()),
        };
        if engine.mismatch.is_none() {
            engine.remove_orphans()?;
        }
        Ok(engine)
    }

    /// Fails with `ModelMismatch` when the collection belongs to another model.
    fn ready(&self) -> Result<(), EngineError> {
        match &self.mismatch {
            None => Ok(()),
            Some(other) => Err(EngineError::ModelMismatch {
                collection_model: other.clone(),
                current_model: self.model_id.clone(),
            }),
        }
    }

    /// The configuration the engine was opened with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The configuration of the collection actually in use.
    pub fn collection(&self) -> &CollectionConfig {
        &self.collection
    }

    /// The loaded model's id.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// One indexed image by id.
    pub fn image(&self, id: u64) -> Result<Option<ImageRecord>, EngineError> {
        Ok(self.catalog.by_id(id)?.map(|r| image_record(&r)))
    }

    /// A page of the library: indexed images newest first (by file modification time, then
    /// id), at most `limit`, strictly after `after` (the `LibraryPage::next` of the page
    /// before). One pass over the catalog keeping the best `limit` in a heap: O(files x
    /// log limit) per page, with no second index to keep in sync.
    pub fn library(
        &self,
        after: Option<LibraryCursor>,
        limit: usize,
    ) -> Result<LibraryPage, EngineError> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        vecdb::search::check_k("limit", limit, MAX_K).map_err(store::StoreError::from)?;
        let key = |r: &FileRecord| LibraryCursor {
            mtime_ns: r.mtime_ns,
            id: r.id,
        };
        // A min-heap of the newest `limit` records seen so far that come after the cursor.
        let mut heap: BinaryHeap<Reverse<LibraryCursor>> = BinaryHeap::new();
        let mut records = std::collections::HashMap::new();
        let mut total = 0u64;
        self.catalog.for_each(&mut |r| {
            total += 1;
            let k = key(&r);
            if after.is_some_and(|a| k >= a) {
                return;
            }
            if heap.len() < limit {
                heap.push(Reverse(k));
                records.insert(r.id, r);
            } else if heap.peek().is_some_and(|Reverse(min)| k > *min) {
                if let Some(Reverse(gone)) = heap.pop() {
                    records.remove(&gone.id);
                }
                heap.push(Reverse(k));
                records.insert(r.id, r);
            }
        })?;
        let mut page: Vec<FileRecord> = records.into_values().collect();
        page.sort_by_key(|r| Reverse(key(r)));
        let next = (page.len() == limit).then(|| key(page.last().expect("limit >= 1")));
        Ok(LibraryPage {
            images: page.iter().map(image_record).collect(),
            next,
            total,
        })
    }

    /// One indexed image by path (absolute, as indexed).
    pub fn image_by_path(&self, path: &Path) -> Result<Option<ImageRecord>, EngineError> {
        let canonical = path.canonicalize().map_err(|e| EngineError::io(path, e))?;
        let key = canonical.to_string_lossy();
        Ok(self.catalog.by_path(&key)?.map(|r| image_record(&r)))
    }

    /// One indexed image by the path it was indexed under, as stored (no file-system access:
    /// the caller has made it absolute and canonical, as the server's clients do).
    pub fn image_by_indexed_path(&self, path: &str) -> Result<Option<ImageRecord>, EngineError> {
        Ok(self.catalog.by_path(path)?.map(|r| image_record(&r)))
    }

    /// Saves what the store holds in memory (the index snapshot), so that the next open
    /// restores the index instead of rebuilding it. The server calls it when it shuts down.
    pub fn save(&self) -> Result<(), EngineError> {
        Ok(self.store.save()?)
    }

    /// Counts, model, dimension, metric, index, store kind and data directory.
    pub fn status(&self) -> Result<EngineStatus, EngineError> {
        Ok(EngineStatus {
            data_dir: self.config.data_dir.clone(),
            store: self.store.kind(),
            collection: self.collection.name.clone(),
            points: self.store.count(&self.collection.name)?,
            files: self.catalog.len()?,
            model: self.model_id.clone(),
            collection_model: self.mismatch.clone(),
            dim: self.collection.dim,
            metric: self.collection.metric,
            index: self.collection.index.clone(),
            text_search: self.text_search_kind().into(),
            runtime: self.encoder.embedder().runtime().name().into(),
            storage: self.store.storage_stats(&self.collection.name)?,
            duplicates: (self.collection.metric == Metric::Cosine).then_some(DUPLICATE_BANDS),
        })
    }
}

impl Engine {
    /// How `search_text` reads words with this model (the model has no text encoder).
    fn text_search_kind(&self) -> &'static str {
        let labels = self.encoder.embedder().labels();
        if labels.is_empty() {
            "none: this model has no classifier, so images carry no auto-tags"
        } else if words::lexicon().is_some_and(|l| l.fits(labels)) {
            "by meaning: words are mapped through WordNet to the ImageNet classes under them, and \
             images ranked by the classifier probability on those classes"
        } else {
            "by spelling: words are matched against the names of the auto-tags the model's \
             classifier gave each image, ranked by tag score"
        }
    }
}

/// Builds the public record from a catalog record.
fn image_record(r: &FileRecord) -> ImageRecord {
    let path = PathBuf::from(&r.path);
    ImageRecord {
        id: r.id,
        folder: folder_of(&path),
        size: r.size,
        mtime: r.mtime_ns.div_euclid(1_000_000_000),
        width: r.width,
        height: r.height,
        taken: r.taken.clone(),
        tags: r
            .tags
            .iter()
            .map(|(name, score)| Tag {
                name: name.clone(),
                score: *score,
            })
            .collect(),
        path,
    }
}

fn folder_of(path: &Path) -> String {
    path.parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The metadata stored with each point; filters use these field names:
/// `path`, `folder` (the parent folder), `dirs` (every ancestor folder, so an `eq` filter on
/// `dirs` selects a folder recursively), `size` (bytes), `mtime` (seconds), `mtime_ns`,
/// `width`, `height`, `taken` (RFC 3339 or null), `tags` (lower-case names), `tag_scores`
/// (name -> score), `hash` (blake3 of the bytes) and `model` (the model id).
pub fn point_metadata(r: &FileRecord, model: &str) -> Value {
    let path = Path::new(&r.path);
    let dirs: Vec<String> = path
        .ancestors()
        .skip(1)
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let tags: Vec<String> = r.tags.iter().map(|(n, _)| n.to_lowercase()).collect();
    let scores: serde_json::Map<String, Value> = r
        .tags
        .iter()
        .map(|(n, s)| (n.to_lowercase(), json!(s)))
        .collect();
    json!({
        "path": r.path,
        "folder": folder_of(path),
        "dirs": dirs,
        "size": r.size,
        "mtime": r.mtime_ns.div_euclid(1_000_000_000),
        "mtime_ns": r.mtime_ns,
        "width": r.width,
        "height": r.height,
        "taken": r.taken,
        "tags": tags,
        "tag_scores": scores,
        "hash": r.hash,
        "model": model,
    })
}
