//! A collection: validation, the write path, loading and snapshot saving.
//!
//! Storage: vectors live in the collection's memory-mapped vector file (`vectors.bin`), points'
//! slots and metadata in redb (`points.redb`), the index in its snapshot (`index.snap`), the field
//! indexes that answer filters in theirs (`fields.snap`, [`crate::fields`]). Write
//! protocol, per batch: plan slots (free ones first, then the end of the file), write the
//! vectors there and fsync the vector file, map it if it grew, then commit the redb transaction
//! that makes the slots live (one fsync), then apply to memory. A crash before the commit leaves
//! bytes in slots nothing refers to; after it, every referred slot holds its whole vector. A slot
//! is rewritten only while free: no live point and no index refers to it.
//!
//! Concurrency: the in-memory [`State`] sits behind a `RwLock`. Searches take the read lock and
//! run in parallel. Writers are serialised by a mutex; each validates its whole batch, commits it
//! to redb (durable), and only then applies it to memory under the write lock, in chunks of
//! at most [`APPLY_CHUNK`] points and [`APPLY_SLICE`] of time, so that a large batch does not
//! stall searches for its whole duration; the costly part of an HNSW insertion, its neighbour
//! searches, runs under the read lock, beside searches ([`crate::index::AnyIndex::link`])
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
use crate::fields::{FieldIndex, FieldsFile};
use crate::filter::CompiledFilter;
use crate::index::{IndexSpec, Metric, VectorArena};
use crate::state::State;
use crate::storage::points::{Change, PointStore, Stored, CONFIG_FORMAT_VERSION};
use crate::storage::snapshot::{self, Snapshot, FREE_SLOT};
use crate::storage::vectors::{vector_crc, VectorFile};
use crate::Point;

/// A validated point ready to be written: vector already normalised under cosine, metadata
/// borrowed from the caller's point (an empty object for null).
pub(crate) struct Prepared<'a> {
    pub id: u64,
    pub vector: Vec<f32>,
    pub metadata: &'a Value,
}

/// The metadata a point given with `null` is stored with.
static EMPTY_METADATA: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| Value::Object(Default::default()));

/// Most points applied to memory per write-lock acquisition.
pub const APPLY_CHUNK: usize = 64;
/// Longest a write holds the state's write lock before letting waiting searches in. The HNSW
/// neighbour searches of the points run afterwards, under the read lock; what remains under
/// the write lock is cheap, but a batch of thousands still adds up.
pub const APPLY_SLICE: std::time::Duration = std::time::Duration::from_millis(1);
/// Minimum number of changed points that triggers an automatic snapshot save.
pub const AUTOSAVE_MIN_CHANGES: u64 = 10_000;
/// Minimum number of dead slots before compaction is considered.
pub const COMPACT_MIN_DEAD: usize = 1_000;
/// Minimum collection size before IVF retrains on growth.
pub const IVF_RETRAIN_MIN: usize = 1_024;

pub(crate) const POINTS_FILE: &str = "points.redb";
pub(crate) const SNAPSHOT_FILE: &str = "index.snap";
pub(crate) const VECTORS_FILE: &str = "vectors.bin";
pub(crate) const FIELDS_FILE: &str = "fields.snap";

/// Memory and disk use of a collection, by component ([`Collection::stats`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CollectionStats {
    /// Live points.
    pub points: usize,
    /// Slots of the vector file in use, dead or free.
    pub slots: usize,
    /// Slots of deleted points the index still routes through.
    pub dead_slots: usize,
    /// Slots waiting to be reused.
    pub free_slots: usize,
    /// Bytes of the vector file mapped: page cache, not heap; resident as far as searches
    /// touched them and memory allows.
    pub vectors_mapped_bytes: u64,
    /// Heap bytes of the index structure (graph links, lists, tables; not the vectors).
    pub index_bytes: u64,
    /// Heap bytes of the id <-> slot tables.
    pub slot_table_bytes: u64,
    /// Whether a filtered search or a write opened the field indexes (read the head of their
    /// file, or rebuilt them); the body of each field is loaded only when a filter names it.
    pub field_index_loaded: bool,
    /// Heap bytes of the field indexes: the head, the loaded fields and the updates waiting
    /// for bodies still on disk (an estimate; 0 while not opened).
    pub field_index_bytes: u64,
    /// Bytes the collection's files take on disk (allocated blocks).
    pub disk_bytes: u64,
}

/// Bytes a file takes on disk: allocated blocks where the platform says, else its length.
fn allocated_bytes(m: &std::fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        m.blocks() * 512
    }
    #[cfg(not(unix))]
    {
        m.len()
    }
}

/// A handle to one collection. Cheap to clone; all clones share the same state.
#[derive(Clone)]
pub struct Collection {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: CollectionConfig,
    pub(crate) dir: PathBuf,
    store: PointStore,
    /// The vector file's write side; only the writer (holding `writer`) uses it.
    vectors: Mutex<VectorFile>,
    pub(crate) state: RwLock<State>,
    /// The collection's uid, stamped into its snapshots.
    uid: u64,
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
    /// Opens the collection stored in `dir`: maps the vector file and restores the index from
    /// the snapshot if it is valid and current (reading no point), or rebuilds it from the slot
    /// table in redb. A format 1 collection is converted to format 2 first, once.
    pub(crate) fn open(dir: &Path) -> Result<Collection, VecDbError> {
        let (store, config, version) = PointStore::open(&dir.join(POINTS_FILE))?;
        let _span = tracing::info_span!("open_collection", name = %config.name).entered();
        if version < CONFIG_FORMAT_VERSION {
            crate::migrate::v1_to_v2(dir, &store, &config)?;
        }
        let vectors_path = dir.join(VECTORS_FILE);
        if !vectors_path.is_file() {
            return Err(VecDbError::Corrupt {
                path: vectors_path,
                reason: "the vector file of this format 2 collection is missing".into(),
            });
        }
        let vectors = VectorFile::open(&vectors_path, config.dim)?;
        let generation = store.generation()?;
        let points = store.len()?;
        let uid = store.uid()?;
        let arena = VectorArena::mapped(config.dim, vectors.map()?, 0);
        let (state, current) = match load_snapshot(&dir.join(SNAPSHOT_FILE)) {
            Ok(snap) => match State::restore(&config, snap, arena, (uid, generation, points)) {
                Ok(state) => {
                    tracing::info!(points = state.live_count(), "index restored from snapshot");
                    (state, true)
                }
                Err(reason) => {
                    tracing::warn!(%reason, "index snapshot is stale or invalid; rebuilding");
                    (rebuild_from_store(&config, &store, &vectors)?, false)
                }
            },
            Err(reason) => {
                tracing::info!(%reason, "no usable index snapshot; rebuilding");
                (rebuild_from_store(&config, &store, &vectors)?, false)
            }
        };
        Ok(Collection {
            inner: Arc::new(Inner {
                config,
                dir: dir.to_path_buf(),
                store,
                vectors: Mutex::new(vectors),
                state: RwLock::new(state),
                uid,
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
        // Opened (the head only) so that the field index file saved with the next snapshot
        // stays current.
        self.inner.load_fields_locked()?;
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
            parking_lot::RwLockWriteGuard::unlock_fair(st);
        }
        self.inner.state.write().generation = generation;
        self.after_write(existing.len());
        Ok(existing.len())
    }

    /// The stored points with these ids (original vectors, as inserted), missing ids skipped.
    pub fn get(&self, ids: &[u64]) -> Result<Vec<Point>, VecDbError> {
        self.check_open()?;
        // The read lock keeps the slots the records name from being reused while they are read.
        let st = self.inner.state.read();
        let records = self.inner.store.get(ids)?;
        records.into_iter().map(|r| self.point_of(&st, r)).collect()
    }

    /// A stored record as a point: the vector as inserted comes from the record when it holds
    /// one (cosine), else from the record's slot, checked against the record's CRC.
    fn point_of(&self, st: &State, r: Stored) -> Result<Point, VecDbError> {
        let vector = match r.raw {
            Some(v) => v,
            None => {
                let corrupt = |reason: String| VecDbError::Corrupt {
                    path: self.inner.dir.join(VECTORS_FILE),
                    reason,
                };
                if r.slot as usize >= st.arena.len() {
                    return Err(corrupt(format!(
                        "point {} names slot {}, beyond the file",
                        r.id, r.slot
                    )));
                }
                let v = st.arena.get(r.slot);
                if vector_crc(v) != r.crc {
                    return Err(corrupt(format!(
                        "the vector of point {} (slot {}) does not match its checksum",
                        r.id, r.slot
                    )));
                }
                v.to_vec()
            }
        };
        Ok(Point {
            id: r.id,
            vector,
            metadata: r.metadata,
        })
    }

    /// Memory and disk use by component (what `status` reports).
    pub fn stats(&self) -> Result<CollectionStats, VecDbError> {
        self.check_open()?;
        let (mut stats, dir) = {
            let st = self.inner.state.read();
            let dead = st.dead_count();
            (
                CollectionStats {
                    points: st.live_count(),
                    slots: st.slot_ids.len(),
                    dead_slots: dead,
                    free_slots: st.free.len(),
                    vectors_mapped_bytes: st.arena.mapped_bytes() as u64,
                    index_bytes: st.index.memory_bytes() as u64,
                    slot_table_bytes: st.slot_table_bytes() as u64,
                    field_index_loaded: st.fields.is_some(),
                    field_index_bytes: st.fields.as_ref().map_or(0, |f| f.heap_bytes() as u64),
                    disk_bytes: 0,
                },
                self.inner.dir.clone(),
            )
        };
        let mut disk = 0;
        for entry in std::fs::read_dir(&dir).map_err(|e| VecDbError::io(&dir, e))? {
            let entry = entry.map_err(|e| VecDbError::io(&dir, e))?;
            disk += allocated_bytes(
                &entry
                    .metadata()
                    .map_err(|e| VecDbError::io(entry.path(), e))?,
            );
        }
        stats.disk_bytes = disk;
        Ok(stats)
    }

    /// Number of points.
    pub fn count(&self) -> usize {
        self.inner.state.read().live_count()
    }

    /// Up to `limit` points with ids above `after`, in ascending id order (for paging).
    pub fn scan(&self, after: Option<u64>, limit: usize) -> Result<Vec<Point>, VecDbError> {
        self.check_open()?;
        let st = self.inner.state.read();
        let records = self.inner.store.scan(after, limit)?;
        records.into_iter().map(|r| self.point_of(&st, r)).collect()
    }

    /// The metadata of the given points, for search hits, from redb. `None` for a point whose
    /// record is gone (deleted by a write that is committed but not applied to memory yet).
    pub(crate) fn hit_metadata(&self, ids: &[u64]) -> Result<Vec<Option<Value>>, VecDbError> {
        self.inner.store.get_metadata(ids)
    }

    /// The metadata of the given slots (live ones; others are skipped), for the filter leaves
    /// the field indexes answer from JSON.
    pub(crate) fn slot_metadata(
        &self,
        st: &State,
        slots: &roaring::RoaringBitmap,
    ) -> Result<Vec<(u32, Value)>, VecDbError> {
        let live: Vec<(u32, u64)> = slots
            .iter()
            .filter(|&s| (s as usize) < st.slot_ids.len() && st.is_live(s))
            .map(|s| (s, st.slot_ids[s as usize]))
            .collect();
        let ids: Vec<u64> = live.iter().map(|&(_, id)| id).collect();
        let metadata = self.inner.store.get_metadata(&ids)?;
        Ok(live
            .into_iter()
            .zip(metadata)
            .filter_map(|((s, _), m)| m.map(|m| (s, m)))
            .collect())
    }

    /// Makes the field indexes ready to evaluate `filter`: opens them once, and loads the
    /// bodies of the fields it names that are still on disk; writes keep them current
    /// afterwards, and a loaded field stays loaded.
    pub(crate) fn ensure_fields(&self, filter: &CompiledFilter) -> Result<(), VecDbError> {
        let ready = |st: &State| {
            st.fields
                .as_ref()
                .is_some_and(|f| f.unloaded(filter).is_empty())
        };
        if ready(&self.inner.state.read()) {
            return Ok(());
        }
        // Under the writer lock no write changes the slots, or the pending updates of a field,
        // while the records or the bodies are read.
        let _w = self.inner.writer.lock();
        self.check_open()?;
        self.inner.load_fields_locked()?;
        self.inner.load_bodies_locked(filter)
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
        self.inner.load_fields_locked()?;
        // Which points keep their slot (an upsert with a bit-identical vector) and which slots
        // the others get. Only writers change the state, so this plan stays true until applied.
        let (keep, new_slots) = {
            let st = self.inner.state.read();
            if mode == Mode::Insert {
                if let Some(p) = prepared.iter().find(|p| st.id_slot.contains_key(&p.id)) {
                    return Err(VecDbError::DuplicateId { id: p.id });
                }
            }
            let keep: Vec<Option<u32>> = prepared
                .iter()
                .map(|p| {
                    st.id_slot
                        .get(&p.id)
                        .copied()
                        .filter(|&s| st.arena.get(s) == p.vector.as_slice())
                })
                .collect();
            let fresh = keep.iter().filter(|k| k.is_none()).count();
            if st.slot_ids.len() + fresh > u32::MAX as usize - 2 {
                return Err(VecDbError::param("points", "collection slot space is full"));
            }
            (keep, st.plan_slots(fresh))
        };
        // A point keeping its slot replaces its metadata: the field indexes must unindex the
        // old values, which only redb knows (read before the commit overwrites them).
        let kept_ids: Vec<u64> = prepared
            .iter()
            .zip(&keep)
            .filter(|(_, k)| k.is_some())
            .map(|(p, _)| p.id)
            .collect();
        let mut old_metadata = self
            .inner
            .store
            .get_metadata(&kept_ids)?
            .into_iter()
            .map(|m| m.unwrap_or(Value::Null));
        let mut slots = Vec::with_capacity(prepared.len());
        let mut planned = new_slots.iter();
        for k in &keep {
            slots.push(match k {
                Some(s) => *s,
                None => *planned.next().expect("one planned slot per new vector"),
            });
        }
        // 1. The vectors, durable before anything refers to them.
        let new_map = {
            let mut vf = self.inner.vectors.lock();
            let mut fresh: Vec<(u32, &[f32])> = keep
                .iter()
                .zip(&slots)
                .zip(&prepared)
                .filter(|((k, _), _)| k.is_none())
                .map(|((_, &s), p)| (s, p.vector.as_slice()))
                .collect();
            fresh.sort_unstable_by_key(|&(s, _)| s);
            let mut run: Vec<f32> = Vec::new();
            let mut run_start = 0u32;
            let mut run_len = 0u32;
            for (s, v) in fresh {
                if run_len > 0 && s != run_start + run_len {
                    vf.write(run_start, &run)?;
                    run.clear();
                    run_len = 0;
                }
                if run_len == 0 {
                    run_start = s;
                }
                run.extend_from_slice(v);
                run_len += 1;
            }
            if run_len > 0 {
                vf.write(run_start, &run)?;
                vf.sync()?;
            }
            // Mapped before the commit: after it, an error could no longer be returned.
            let covered = self.inner.state.read().arena.mapped_slots().unwrap_or(0);
            let need = new_slots.iter().max().map_or(0, |&s| s as usize + 1);
            if need > covered {
                Some(vf.map()?)
            } else {
                None
            }
        };
        // 2. The commit that makes the slots live.
        let changes: Vec<Change<'_>> = points
            .iter()
            .zip(&prepared)
            .zip(&slots)
            .map(|((p, prep), &slot)| Change::Put {
                id: p.id,
                slot,
                crc: vector_crc(&prep.vector),
                raw: raw_if_changed(&p.vector, &prep.vector),
                metadata: prep.metadata,
            })
            .collect();
        let generation = self.inner.store.write(&changes)?;
        drop(changes);
        // 3. Memory.
        let n = prepared.len();
        if let Some(map) = new_map {
            let mut st = self.inner.state.write();
            let len = st.arena.len();
            st.arena.remap(Some(map), len);
        }
        let mut it = prepared
            .into_iter()
            .zip(keep)
            .zip(slots)
            .map(|((p, k), s)| (p, k, s))
            .peekable();
        let mut staged = Vec::with_capacity(APPLY_CHUNK);
        while it.peek().is_some() {
            let mut st = self.inner.state.write();
            let held = std::time::Instant::now();
            for (p, k, slot) in it.by_ref().take(APPLY_CHUNK) {
                match k {
                    Some(s) => {
                        let old = old_metadata.next().expect("one old record per kept point");
                        st.set_metadata(s, &old, p.metadata);
                    }
                    None => {
                        if st.stage(p.id, slot, p.metadata) {
                            staged.push(slot);
                        }
                    }
                }
                if held.elapsed() >= APPLY_SLICE {
                    break;
                }
            }
            // The costly part of an HNSW insertion (its neighbour searches) runs under the read
            // lock, beside searches. Downgrading keeps any other writer out in between (the
            // writer mutex does too), so the staged slots are linked into the graph they were
            // staged in.
            let st = parking_lot::RwLockWriteGuard::downgrade(st);
            for slot in staged.drain(..) {
                st.index.link(&st.arena, slot);
            }
            // A fair unlock hands the lock to the writer waiting for it, if any, in turn; a plain
            // one would usually let this loop take it straight back.
            parking_lot::RwLockReadGuard::unlock_fair(st);
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
            // Rebuilding the index over the live slots frees the dead ones for reuse. The
            // snapshot is saved at once, so no snapshot that still routes through a slot can be
            // current once that slot is rewritten.
            tracing::info!(live, dead, "compacting collection");
            let index = inner.state.read().build_index(&inner.config);
            inner.state.write().install_rebuilt(index);
            if let Err(e) = inner.save_locked() {
                tracing::warn!(error = %e, "index snapshot after compaction failed");
                let _ = std::fs::remove_file(inner.dir.join(SNAPSHOT_FILE));
            }
            return;
        } else if matches!(
            inner.config.index,
            IndexSpec::Ivf(_) | IndexSpec::IvfSq8 { .. } | IndexSpec::IvfRabitq { .. }
        ) && live >= IVF_RETRAIN_MIN
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
        let (bytes, fields) = {
            let st = self.state.read();
            (
                st.to_snapshot(&self.config, self.uid).encode(),
                st.fields.as_ref().map(|f| f.plan(self.uid, st.generation)),
            )
        };
        let path = self.dir.join(FIELDS_FILE);
        // Written outside the state lock: the plan owns what it copies (handles to the old
        // file), and the writer lock keeps the fields from changing meanwhile.
        match fields.map(|plan| snapshot::write_atomic_with(&path, |out| plan.write_to(out))) {
            None => {}
            Some(Ok(directory)) => {
                // The fields still on disk now read the new file, which holds their pending
                // updates: the updates are not kept twice, and the old file's space is released
                // once nothing reads it. Should the reopen fail, they keep reading the old file
                // with their updates, which is still right.
                match FieldsFile::open(&path) {
                    Ok(file) => {
                        if let Some(f) = &mut self.state.write().fields {
                            f.rebase(&file, &directory);
                        }
                    }
                    Err(reason) => {
                        tracing::warn!(%reason, "could not reopen the saved field index file");
                    }
                }
            }
            Some(Err(e @ VecDbError::Corrupt { .. })) => {
                // A body on disk could not be read or decoded. The old file stays in place: it
                // is either stamped with an older generation than the points, so the next
                // process rebuilds the field indexes rather than use it, or (no write since)
                // still describes them, its damaged body found again when that field loads.
                tracing::warn!(error = %e, "could not save the field indexes");
            }
            Some(Err(e)) => return Err(e),
        }
        snapshot::write_atomic(&self.dir.join(SNAPSHOT_FILE), &bytes)?;
        self.changes_since_save.store(0, Ordering::Release);
        self.snapshot_current.store(true, Ordering::Release);
        tracing::debug!(bytes = bytes.len(), "index snapshot saved");
        Ok(())
    }

    /// Opens the field indexes if they are not open: the head of `fields.snap` when it belongs
    /// to this point set (every field's body stays on disk), else rebuilt from every record's
    /// metadata. The caller holds the writer lock, so the slots do not change meanwhile.
    fn load_fields_locked(&self) -> Result<(), VecDbError> {
        if self.state.read().fields.is_some() {
            return Ok(());
        }
        let path = self.dir.join(FIELDS_FILE);
        let opened = {
            let st = self.state.read();
            match FieldIndex::open(&path) {
                Ok((f, uid, generation)) if uid == self.uid && generation == st.generation => {
                    adopt_fields(&st, f)
                }
                Ok((_, uid, generation)) => Err(if uid == self.uid {
                    format!(
                        "it is for generation {generation}, the points are at {}",
                        st.generation
                    )
                } else {
                    "it belongs to another collection (uid differs)".into()
                }),
                Err(reason) => Err(reason),
            }
        };
        match opened {
            Ok(f) => {
                tracing::debug!(bytes = f.heap_bytes(), "field index file opened");
                self.state.write().fields = Some(f);
                Ok(())
            }
            Err(reason) => self.rebuild_fields_locked(&reason),
        }
    }

    /// Loads the bodies of the fields `filter` names that are still on disk. A body that cannot
    /// be read, fails its checksum or does not decode makes the whole field index be rebuilt
    /// from the points, rather than answer from a wrong or missing field. The bodies are read
    /// and decoded under the read lock, beside searches; the caller holds the writer lock, so
    /// nothing changes the fields until they are installed.
    fn load_bodies_locked(&self, filter: &CompiledFilter) -> Result<(), VecDbError> {
        let started = std::time::Instant::now();
        let (paths, read) = {
            let st = self.state.read();
            let fields = st
                .fields
                .as_ref()
                .expect("the field indexes are opened before their bodies load");
            let paths = fields.unloaded(filter);
            if paths.is_empty() {
                return Ok(());
            }
            let read = fields.read_bodies(&paths);
            (paths, read)
        };
        match read {
            Ok(bodies) => {
                if let Some(f) = &mut self.state.write().fields {
                    f.install(bodies);
                }
                tracing::debug!(fields = ?paths, elapsed = ?started.elapsed(), "field bodies loaded");
                Ok(())
            }
            Err(reason) => {
                tracing::warn!(%reason, "a field body is unreadable or corrupt");
                self.rebuild_fields_locked(&reason)
            }
        }
    }

    /// Rebuilds the field indexes from every record's metadata, all of them loaded, and saves
    /// them, so the next process need not. The caller holds the writer lock.
    fn rebuild_fields_locked(&self, reason: &str) -> Result<(), VecDbError> {
        tracing::info!(%reason, "field index file not usable; rebuilding from the points");
        let path = self.dir.join(FIELDS_FILE);
        let started = std::time::Instant::now();
        let f = {
            let st = self.state.read();
            let mut f = FieldIndex::default();
            self.store.for_each_metadata(|id, m| {
                if let Some(&s) = st.id_slot.get(&id) {
                    f.add(s, &m);
                }
                Ok(())
            })?;
            f
        };
        // Every field is loaded, so planning reads nothing from disk; a failure to save only
        // costs a rebuild in the next process.
        let plan = f.plan(self.uid, self.state.read().generation);
        match snapshot::write_atomic_with(&path, |out| plan.write_to(out)) {
            Ok(_) => tracing::info!(elapsed = ?started.elapsed(), "field indexes rebuilt"),
            Err(e) => tracing::warn!(error = %e, "could not save the field indexes"),
        }
        self.state.write().fields = Some(f);
        Ok(())
    }
}

/// Checks a field index file against the state it is loaded into (same uid and generation):
/// every live slot is indexed, and slots no longer live are dropped from it, since a rebuilt
/// state may have freed them for reuse.
fn adopt_fields(st: &State, mut f: FieldIndex) -> Result<FieldIndex, String> {
    let (live, gone): (Vec<u32>, Vec<u32>) = f
        .indexed()
        .iter()
        .partition(|&s| (s as usize) < st.slot_ids.len() && st.is_live(s));
    if live.len() != st.live_count() {
        return Err(format!(
            "it indexes {} of the {} live points",
            live.len(),
            st.live_count()
        ));
    }
    f.purge(&gone.into_iter().collect());
    Ok(f)
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

pub(crate) fn load_snapshot(path: &Path) -> Result<Snapshot, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Snapshot::decode(&bytes)
}

/// Rebuilds the state from redb's slot table: every record names its slot; slots no record
/// names are free. Each live slot's vector is checked against its record's CRC (the index
/// build reads them all anyway).
fn rebuild_from_store(
    config: &CollectionConfig,
    store: &PointStore,
    vectors: &VectorFile,
) -> Result<State, VecDbError> {
    let map = vectors.map()?;
    let corrupt = |reason: String| VecDbError::Corrupt {
        path: store.path().with_file_name(VECTORS_FILE),
        reason,
    };
    let mut slot_ids: Vec<u64> = Vec::new();
    let generation = store.for_each(|r| {
        let s = r.slot as usize;
        if s >= map.slots() {
            return Err(corrupt(format!(
                "point {} names slot {s}, beyond the file's {} slots",
                r.id,
                map.slots()
            )));
        }
        if vector_crc(map.get(r.slot)) != r.crc {
            return Err(corrupt(format!(
                "the vector of point {} (slot {s}) does not match its checksum",
                r.id
            )));
        }
        if s >= slot_ids.len() {
            slot_ids.resize(s + 1, FREE_SLOT);
        }
        if slot_ids[s] != FREE_SLOT {
            return Err(corrupt(format!(
                "points {} and {} name the same slot {s}",
                slot_ids[s], r.id
            )));
        }
        slot_ids[s] = r.id;
        Ok(())
    })?;
    let arena = VectorArena::mapped(config.dim, map, slot_ids.len());
    Ok(State::build(config, arena, slot_ids, generation))
}

/// How far from 1 the norm of a vector may be for cosine to take it as already of unit length.
/// Embedding models normalise in `f32`, which leaves norms within about 1e-6 of 1 (at most
/// 9e-7 over the 60,000 fashion-mnist images at 1280-d); dividing such a vector by its norm again
/// would change about seven in eight of them by a rounding step, and the collection would then
/// have to keep the vector as inserted beside it. Keeping the vector as given instead moves a
/// cosine distance by at most this much.
pub(crate) const UNIT_NORM_TOLERANCE: f64 = 1e-5;

/// The vector as the index sees it: L2-normalised under cosine (a vector already of unit length,
/// within [`UNIT_NORM_TOLERANCE`], as given), unchanged otherwise.
pub(crate) fn prepare_vector(config: &CollectionConfig, v: &[f32]) -> Vec<f32> {
    scaled(v, (config.metric == Metric::Cosine).then(|| norm64(v)))
}

/// `v` divided by `norm` (its norm under cosine, `None` otherwise) unless that is 0 or already
/// 1 within [`UNIT_NORM_TOLERANCE`].
fn scaled(v: &[f32], norm: Option<f64>) -> Vec<f32> {
    match norm {
        Some(n) if n > 0.0 && (n - 1.0).abs() > UNIT_NORM_TOLERANCE => {
            v.iter().map(|&x| (f64::from(x) / n) as f32).collect()
        }
        _ => v.to_vec(),
    }
}

/// The vector as inserted, for the record to keep when the slot's copy differs from it (a cosine
/// vector that normalising changed); `None` when the slot holds it bit for bit.
pub(crate) fn raw_if_changed<'a>(inserted: &'a [f32], prepared: &[f32]) -> Option<&'a [f32]> {
    let same = inserted.len() == prepared.len()
        && inserted
            .iter()
            .zip(prepared)
            .all(|(a, b)| a.to_bits() == b.to_bits());
    (!same).then_some(inserted)
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
    checked_norm(config, id, v).map(|_| ())
}

/// [`check_vector`], then [`prepare_vector`], with a cosine vector's norm computed once.
fn checked_prepared_vector(
    config: &CollectionConfig,
    id: u64,
    v: &[f32],
) -> Result<Vec<f32>, VecDbError> {
    checked_norm(config, id, v).map(|norm| scaled(v, norm))
}

/// [`check_vector`]'s rules; under cosine, returns the norm they computed.
fn checked_norm(config: &CollectionConfig, id: u64, v: &[f32]) -> Result<Option<f64>, VecDbError> {
    if v.len() != config.dim {
        return Err(VecDbError::WrongDimension {
            expected: config.dim,
            got: v.len(),
        });
    }
    if let Some(index) = v.iter().position(|x| !x.is_finite()) {
        return Err(VecDbError::NonFinite { id, index });
    }
    if config.metric != Metric::Cosine {
        return Ok(None);
    }
    match norm64(v) {
        0.0 => Err(VecDbError::ZeroVector { id }),
        n => Ok(Some(n)),
    }
}

/// Checks a batch of points against a collection's config: ids (not the reserved `u64::MAX`,
/// each once), vectors ([`check_vector`]) and metadata (a JSON object or null). Every store
/// (this database, Milvus) refuses batches by this rule before writing anything.
pub fn check_points(config: &CollectionConfig, points: &[Point]) -> Result<(), VecDbError> {
    check_points_by(points, |_, p| check_vector(config, p.id, &p.vector))
}

/// [`check_points`] with the vector rule given as `vector_ok(index, point)`, called in order
/// like the other rules, so the error always names the first point at fault.
fn check_points_by(
    points: &[Point],
    mut vector_ok: impl FnMut(usize, &Point) -> Result<(), VecDbError>,
) -> Result<(), VecDbError> {
    let mut seen = std::collections::HashSet::with_capacity(points.len());
    for (i, p) in points.iter().enumerate() {
        if p.id == crate::storage::snapshot::DEAD_SLOT {
            return Err(VecDbError::param(
                "id",
                format!("{} is reserved (it marks free slots)", p.id),
            ));
        }
        vector_ok(i, p)?;
        if !seen.insert(p.id) {
            return Err(VecDbError::DuplicateId { id: p.id });
        }
        if !matches!(p.metadata, Value::Null | Value::Object(_)) {
            return Err(VecDbError::InvalidMetadata {
                id: p.id,
                reason: format!("must be a JSON object or null, got {}", p.metadata),
            });
        }
    }
    Ok(())
}

/// Validates a whole batch before anything is written; returns the prepared points in order.
fn validate_batch<'a>(
    config: &CollectionConfig,
    points: &'a [Point],
) -> Result<Vec<Prepared<'a>>, VecDbError> {
    use rayon::prelude::*;
    // The vectors, the costly part at high dimension, are checked and normalised in parallel;
    // the rules are then applied in order.
    let mut vectors: Vec<Result<Vec<f32>, VecDbError>> = points
        .par_iter()
        .map(|p| checked_prepared_vector(config, p.id, &p.vector))
        .collect();
    check_points_by(points, |i, _| match &mut vectors[i] {
        Ok(_) => Ok(()),
        // Moved out: the check stops at this first error, so the placeholder is never read.
        Err(e) => Err(std::mem::replace(e, VecDbError::ZeroVector { id: 0 })),
    })?;
    Ok(points
        .iter()
        .zip(vectors)
        .map(|(p, v)| Prepared {
            id: p.id,
            vector: v.expect("every vector passed its check"),
            metadata: match &p.metadata {
                Value::Null => &EMPTY_METADATA,
                other => other,
            },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::filter::Filter;
    use crate::{CollectionConfig, Database, Metric, Point, SearchRequest};

    fn point(id: u64) -> Point {
        Point::with_metadata(
            id,
            vec![id as f32, 1.0],
            json!({"g": id % 5, "name": format!("p{id}"), "tags": [format!("t{}", id % 3)]}),
        )
    }

    /// The ids a filtered search on `g` finds, sorted.
    fn in_group(c: &super::Collection, g: u64) -> Vec<u64> {
        let req = SearchRequest {
            filter: Some(Filter::from_json(&json!({"eq":{"field":"g","value":g}})).unwrap()),
            ..SearchRequest::new(1000)
        };
        let mut ids: Vec<u64> = c
            .search(&[0.0, 1.0], &req)
            .unwrap()
            .into_iter()
            .map(|h| h.id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Fields loaded and the index open, from the collection's state.
    fn loaded(c: &super::Collection) -> Option<usize> {
        c.inner
            .state
            .read()
            .fields
            .as_ref()
            .map(|f| f.loaded_count())
    }

    #[test]
    fn a_fresh_process_loads_only_the_fields_a_filter_names_and_writes_load_none() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::open(dir.path()).unwrap();
            let c = db
                .create_collection(CollectionConfig::new("c", 2, Metric::L2))
                .unwrap();
            c.insert(&(0..100).map(point).collect::<Vec<_>>()).unwrap();
            assert_eq!(
                in_group(&c, 2),
                (0..100).filter(|i| i % 5 == 2).collect::<Vec<_>>()
            );
        }
        {
            let db = Database::open(dir.path()).unwrap();
            let c = db.collection("c").unwrap();
            assert_eq!(loaded(&c), None, "opened with the collection");
            assert_eq!(
                in_group(&c, 2),
                (0..100).filter(|i| i % 5 == 2).collect::<Vec<_>>()
            );
            assert_eq!(loaded(&c), Some(1), "a filter on g loaded more than g");
        }
        {
            let db = Database::open(dir.path()).unwrap();
            let c = db.collection("c").unwrap();
            c.insert(&(100..110).map(point).collect::<Vec<_>>())
                .unwrap();
            c.delete(&[7]).unwrap();
            assert_eq!(loaded(&c), Some(0), "a write loaded a body");
            let want: Vec<u64> = (0..110).filter(|&i| i % 5 == 2 && i != 7).collect();
            assert_eq!(in_group(&c, 2), want);
            assert_eq!(loaded(&c), Some(1));
            // Dropped with unsaved changes: saved, the pending updates of the fields still on
            // disk included, and read back by the next process.
        }
        let db = Database::open(dir.path()).unwrap();
        let c = db.collection("c").unwrap();
        let want: Vec<u64> = (0..110).filter(|&i| i % 5 == 2 && i != 7).collect();
        assert_eq!(in_group(&c, 2), want);
        let req = SearchRequest {
            filter: Some(
                Filter::from_json(&json!({"eq":{"field":"name","value":"p105"}})).unwrap(),
            ),
            ..SearchRequest::new(10)
        };
        let hits: Vec<u64> = c
            .search(&[0.0, 1.0], &req)
            .unwrap()
            .into_iter()
            .map(|h| h.id)
            .collect();
        assert_eq!(hits, vec![105]);
        assert_eq!(loaded(&c), Some(2));
    }

    #[test]
    fn a_unit_vector_is_stored_once_and_others_keep_their_form_as_inserted() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        let c = db
            .create_collection(CollectionConfig::new("c", 3, Metric::Cosine))
            .unwrap();
        // Normalised in f32, as an embedding model does: a norm a rounding step away from 1.
        let mut unit = vec![1.0f32, 2.0, 3.0];
        let n = unit.iter().map(|x| x * x).sum::<f32>().sqrt();
        unit.iter_mut().for_each(|x| *x /= n);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let n64 = super::norm64(&unit);
        let renormed: Vec<f32> = unit.iter().map(|&x| (f64::from(x) / n64) as f32).collect();
        assert_ne!(
            bits(&renormed),
            bits(&unit),
            "dividing again would change it"
        );
        let long = vec![3.0f32, 4.0, -12.0];
        c.insert(&[Point::new(1, unit.clone()), Point::new(2, long.clone())])
            .unwrap();
        let raws: Vec<bool> = c
            .inner
            .store
            .get(&[1, 2])
            .unwrap()
            .into_iter()
            .map(|r| r.raw.is_some())
            .collect();
        assert_eq!(raws, [false, true], "which records repeat their vector");
        for (id, want) in [(1, &unit), (2, &long)] {
            let got = c.get(&[id]).unwrap().remove(0).vector;
            assert_eq!(bits(&got), bits(want), "point {id} as inserted");
            let hit = c.search(want, &SearchRequest::new(1)).unwrap().remove(0);
            assert_eq!(hit.id, id);
            assert!((hit.score - 1.0).abs() < 1e-5, "score {}", hit.score);
        }
        // The long vector's slot holds it normalised; the unit one's holds it as given.
        let st = c.inner.state.read();
        let slot_of = |id: u64| st.id_slot[&id];
        assert_eq!(bits(st.arena.get(slot_of(1))), bits(&unit));
        let norm = st.arena.get(slot_of(2)).iter().map(|x| x * x).sum::<f32>();
        assert!((norm - 1.0).abs() < 1e-6, "squared norm {norm}");
    }
}
