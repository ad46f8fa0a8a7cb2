//! A collection: validation, the write path, loading and snapshot saving.
//!
//! Concurrency: the in-memory [`State`] sits behind a `RwLock`. Searches take the read lock and
//! run in parallel. Writers are serialised by a mutex; each validates its whole batch, commits it
//! to redb (durable), and only then applies it to memory under the write lock, in chunks of
//! [`APPLY_CHUNK`] points so that a large batch does not stall searches for its whole duration
//! (a concurrent search may therefore see part of a batch that is being applied; the batch itself
//! is atomic on disk).
//!
//! Snapshot rule: the index snapshot is saved by [`Collection::save_index`], when the last handle
//! to a collection is dropped with unsaved changes, and after a write once at least
//! `max(AUTOSAVE_MIN_CHANGES, live points / 4)` points changed since the last save.
//!
//! Maintenance rules, run after writes: a collection whose dead slots exceed
//! `max(COMPACT_MIN_DEAD, live points)` is rebuilt from its points (dropping dead slots); an IVF
//! collection retrains its index when it has grown to at least `IVF_RETRAIN_MIN` points and to
//! twice the size it was trained on.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde_json::Value;

use crate::config::CollectionConfig;
use crate::error::VecDbError;
use crate::index::{IndexSpec, Metric};
use crate::state::{Prepared, State};
use crate::storage::points::{Change, PointStore};
use crate::storage::snapshot::{self, Snapshot};
use crate::Point;

/// Points applied to memory per write-lock acquisition.
pub const APPLY_CHUNK: usize = 64;
/// Minimum number of changed points that triggers an automatic snapshot save.
pub const AUTOSAVE_MIN_CHANGES: u64 = 10_000;
/// Minimum number of dead slots before compaction is considered.
pub const COMPACT_MIN_DEAD: usize = 1_000;
/// Minimum collection size before IVF retrains on growth.
pub const IVF_RETRAIN_MIN: usize = 1_024;

pub(crate) const POINTS_FILE: &str = "points.redb";
pub(crate) const SNAPSHOT_FILE: &str = "index.snap";

/// A handle to one collection. Cheap to clone; all clones share the same state.
#[derive(Clone)]
pub struct Collection {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: CollectionConfig,
    pub(crate) dir: PathBuf,
    store: PointStore,
    pub(crate) state: RwLock<State>,
    /// Serialises writers (and snapshot saves) so that disk and memory change in the same order.
    pub(crate) writer: Mutex<()>,
    /// Set when the collection is dropped from the database; every call then fails.
    pub(crate) dropped: AtomicBool,
    changes_since_save: AtomicU64,
    snapshot_current: AtomicBool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Insert,
    Upsert,
}

impl std::fmt::Debug for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection")
            .field("config", &self.inner.config)
            .field("count", &self.count())
            .finish()
    }
}

impl Collection {
    /// Opens the collection stored in `dir`: reads every point from redb, then restores the index
    /// from the snapshot if it is valid and current, or rebuilds it.
    pub(crate) fn open(dir: &Path) -> Result<Collection, VecDbError> {
        let (store, config) = PointStore::open(&dir.join(POINTS_FILE))?;
        let mut points = Vec::new();
        let generation = store.for_each(|p| {
            let vector = prepare_vector(&config, &p.vector);
            points.push(Prepared {
                id: p.id,
                vector,
                metadata: p.metadata,
            });
            Ok(())
        })?;
        let snap_path = dir.join(SNAPSHOT_FILE);
        let _span = tracing::info_span!("open_collection", name = %config.name).entered();
        let (state, current) = match load_snapshot(&snap_path) {
            Ok(snap) => match State::restore(&config, snap, points, generation) {
                Ok(state) => {
                    tracing::info!(points = state.live_count(), "index restored from snapshot");
                    (state, true)
                }
                Err(reason) => {
                    tracing::warn!(%reason, "index snapshot is stale or invalid; rebuilding");
                    // `restore` consumed the points, so read them again.
                    (rebuild_from_store(&config, &store)?, false)
                }
            },
            Err(reason) => {
                tracing::info!(%reason, "no usable index snapshot; rebuilding");
                (State::build(&config, points, generation), false)
            }
        };
        Ok(Collection {
            inner: Arc::new(Inner {
                config,
                dir: dir.to_path_buf(),
                store,
                state: RwLock::new(state),
                writer: Mutex::new(()),
                dropped: AtomicBool::new(false),
                changes_since_save: AtomicU64::new(0),
                snapshot_current: AtomicBool::new(current),
            }),
        })
    }

    /// The collection's configuration.
    pub fn config(&self) -> &CollectionConfig {
        &self.inner.config
    }

    pub(crate) fn check_open(&self) -> Result<(), VecDbError> {
        if self.inner.dropped.load(Ordering::Acquire) {
            return Err(VecDbError::UnknownCollection {
                name: self.inner.config.name.clone(),
            });
        }
        Ok(())
    }

    /// Inserts new points. Fails with `DuplicateId` if any id exists already or appears twice in
    /// the batch. All-or-nothing; durable when it returns `Ok`.
    pub fn insert(&self, points: &[Point]) -> Result<(), VecDbError> {
        self.write_points(points, Mode::Insert)
    }

    /// Inserts or replaces points. An id may appear only once per batch (`DuplicateId`).
    /// All-or-nothing; durable when it returns `Ok`.
    pub fn upsert(&self, points: &[Point]) -> Result<(), VecDbError> {
        self.write_points(points, Mode::Upsert)
    }

    /// Deletes points by id and returns how many existed. Durable when it returns `Ok`.
    pub fn delete(&self, ids: &[u64]) -> Result<usize, VecDbError> {
        self.check_open()?;
        let _w = self.inner.writer.lock();
        self.check_open()?;
        let mut existing: Vec<u64> = {
            let st = self.inner.state.read();
            ids.iter()
                .copied()
                .filter(|id| st.id_slot.contains_key(id))
                .collect()
        };
        existing.sort_unstable();
        existing.dedup();
        if existing.is_empty() {
            return Ok(0);
        }
        let changes: Vec<Change<'_>> = existing.iter().map(|&id| Change::Delete(id)).collect();
        let generation = self.inner.store.write(&changes)?;
        for chunk in existing.chunks(APPLY_CHUNK) {
            let mut st = self.inner.state.write();
            for &id in chunk {
                st.delete(id);
            }
        }
        self.inner.state.write().generation = generation;
        self.after_write(existing.len());
        Ok(existing.len())
    }

    /// The stored points with these ids (original vectors, as inserted), missing ids skipped.
    pub fn get(&self, ids: &[u64]) -> Result<Vec<Point>, VecDbError> {
        self.check_open()?;
        self.inner.store.get(ids)
    }

    /// Number of points.
    pub fn count(&self) -> usize {
        self.inner.state.read().live_count()
    }

    /// Up to `limit` points with ids above `after`, in ascending id order (for paging).
    pub fn scan(&self, after: Option<u64>, limit: usize) -> Result<Vec<Point>, VecDbError> {
        self.check_open()?;
        self.inner.store.scan(after, limit)
    }

    /// Writes the index snapshot now (atomically). Durable when it returns `Ok`.
    pub fn save_index(&self) -> Result<(), VecDbError> {
        self.check_open()?;
        let _w = self.inner.writer.lock();
        self.inner.save_locked()
    }

    fn write_points(&self, points: &[Point], mode: Mode) -> Result<(), VecDbError> {
        self.check_open()?;
        let prepared = validate_batch(&self.inner.config, points)?;
        if prepared.is_empty() {
            return Ok(());
        }
        let _w = self.inner.writer.lock();
        self.check_open()?;
        {
            let st = self.inner.state.read();
            if mode == Mode::Insert {
                if let Some(p) = prepared.iter().find(|p| st.id_slot.contains_key(&p.id)) {
                    return Err(VecDbError::DuplicateId { id: p.id });
                }
            }
            if st.slot_ids.len() + prepared.len() > u32::MAX as usize {
                return Err(VecDbError::param("points", "collection slot space is full"));
            }
        }
        let changes: Vec<Change<'_>> = points
            .iter()
            .zip(&prepared)
            .map(|(p, prep)| Change::Put {
                id: p.id,
                vector: &p.vector,
                metadata: &prep.metadata,
            })
            .collect();
        let generation = self.inner.store.write(&changes)?;
        let n = prepared.len();
        let mut it = prepared.into_iter().peekable();
        while it.peek().is_some() {
            let mut st = self.inner.state.write();
            for p in it.by_ref().take(APPLY_CHUNK) {
                st.put(p);
            }
        }
        self.inner.state.write().generation = generation;
        self.after_write(n);
        Ok(())
    }

    /// Bookkeeping after a committed write (writer lock held): maintenance and autosave. The
    /// write is already durable, so failures here are logged, not returned: an `Err` from
    /// `insert` must mean that nothing was stored.
    fn after_write(&self, changed: usize) {
        let inner = &self.inner;
        inner.snapshot_current.store(false, Ordering::Release);
        let total = inner
            .changes_since_save
            .fetch_add(changed as u64, Ordering::AcqRel)
            + changed as u64;
        let (live, dead, built) = {
            let st = inner.state.read();
            (st.live_count(), st.dead_count(), st.built_live)
        };
        if dead > COMPACT_MIN_DEAD.max(live) {
            tracing::info!(live, dead, "compacting collection");
            match rebuild_from_store(&inner.config, &inner.store) {
                Ok(fresh) => *inner.state.write() = fresh,
                Err(e) => tracing::warn!(error = %e, "compaction failed; will retry later"),
            }
        } else if matches!(inner.config.index, IndexSpec::Ivf { .. })
            && live >= IVF_RETRAIN_MIN
            && live >= 2 * built
        {
            tracing::info!(live, trained_on = built, "retraining IVF index");
            let index = inner.state.read().build_index(&inner.config);
            let mut st = inner.state.write();
            st.index = index;
            st.built_live = live;
        }
        if total >= AUTOSAVE_MIN_CHANGES.max(live as u64 / 4) {
            if let Err(e) = inner.save_locked() {
                tracing::warn!(error = %e, "automatic index snapshot failed");
            }
        }
    }
}

impl Inner {
    /// Saves the snapshot; the caller holds the writer lock, so no write is half-applied.
    fn save_locked(&self) -> Result<(), VecDbError> {
        let bytes = self.state.read().to_snapshot(&self.config).encode();
        snapshot::write_atomic(&self.dir.join(SNAPSHOT_FILE), &bytes)?;
        self.changes_since_save.store(0, Ordering::Release);
        self.snapshot_current.store(true, Ordering::Release);
        tracing::debug!(bytes = bytes.len(), "index snapshot saved");
        Ok(())
    }
}

impl Drop for Inner {
    /// Saves the snapshot when the last handle goes away with unsaved changes, so the next open
    /// does not have to rebuild. Failure only costs a rebuild later, so it is logged, not raised.
    fn drop(&mut self) {
        if self.dropped.load(Ordering::Acquire) || self.snapshot_current.load(Ordering::Acquire) {
            return;
        }
        let _w = self.writer.lock();
        if let Err(e) = self.save_locked() {
            tracing::warn!(error = %e, name = %self.config.name, "could not save index snapshot");
        }
    }
}

fn load_snapshot(path: &Path) -> Result<Snapshot, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Snapshot::decode(&bytes)
}

fn rebuild_from_store(config: &CollectionConfig, store: &PointStore) -> Result<State, VecDbError> {
    let mut points = Vec::new();
    let generation = store.for_each(|p| {
        points.push(Prepared {
            id: p.id,
            vector: prepare_vector(config, &p.vector),
            metadata: p.metadata,
        });
        Ok(())
    })?;
    Ok(State::build(config, points, generation))
}

/// The vector as the index sees it: L2-normalised under cosine, unchanged otherwise.
pub(crate) fn prepare_vector(config: &CollectionConfig, v: &[f32]) -> Vec<f32> {
    if config.metric != Metric::Cosine {
        return v.to_vec();
    }
    let n = norm64(v);
    if n > 0.0 {
        v.iter().map(|&x| (f64::from(x) / n) as f32).collect()
    } else {
        v.to_vec()
    }
}

/// The norm in f64, so that large finite components cannot overflow it and normalisation is
/// the same on every CPU (the SIMD kernels may sum in a different order).
fn norm64(v: &[f32]) -> f64 {
    v.iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
}

/// Checks one vector: dimension, finiteness, and non-zero under cosine.
pub(crate) fn check_vector(
    config: &CollectionConfig,
    id: u64,
    v: &[f32],
) -> Result<(), VecDbError> {
    if v.len() != config.dim {
        return Err(VecDbError::WrongDimension {
            expected: config.dim,
            got: v.len(),
        });
    }
    if let Some(index) = v.iter().position(|x| !x.is_finite()) {
        return Err(VecDbError::NonFinite { id, index });
    }
    if config.metric == Metric::Cosine && norm64(v) == 0.0 {
        return Err(VecDbError::ZeroVector { id });
    }
    Ok(())
}

/// Validates a whole batch before anything is written; returns the prepared points in order.
fn validate_batch(
    config: &CollectionConfig,
    points: &[Point],
) -> Result<Vec<Prepared>, VecDbError> {
    let mut seen = std::collections::HashSet::with_capacity(points.len());
    let mut out = Vec::with_capacity(points.len());
    for p in points {
        if p.id == crate::storage::snapshot::DEAD_SLOT {
            return Err(VecDbError::param(
                "id",
                format!("{} is reserved (it marks free slots)", p.id),
            ));
        }
        check_vector(config, p.id, &p.vector)?;
        if !seen.insert(p.id) {
            return Err(VecDbError::DuplicateId { id: p.id });
        }
        let metadata = match &p.metadata {
            Value::Null => Value::Object(Default::default()),
            Value::Object(_) => p.metadata.clone(),
            other => {
                return Err(VecDbError::InvalidMetadata {
                    id: p.id,
                    reason: format!("must be a JSON object or null, got {other}"),
                })
            }
        };
        out.push(Prepared {
            id: p.id,
            vector: prepare_vector(config, &p.vector),
            metadata,
        });
    }
    Ok(out)
}
