//! Conversion of a format 1 collection (vectors inside the redb records) to format 2 (vectors
//! in the memory-mapped vector file), run once by the first open of a build that knows format 2.
//!
//! Steps, each safe to interrupt:
//! 1. read every format 1 point, and the format 1 snapshot if it is current (its slot layout
//!    and index are then kept, so a large HNSW collection is not rebuilt);
//! 2. write `vectors.bin.tmp`, fsync it, rename it to `vectors.bin`, fsync the directory;
//! 3. in one durable redb transaction, rewrite every record in format 2 (slot, CRC, metadata,
//!    and the vector as inserted under cosine) and the config with `format_version: 2`;
//! 4. write the format 2 snapshot (or remove the format 1 one when the index must be rebuilt).
//!
//! Until step 3 commits the config still says format 1, so a crash anywhere before it makes the
//! next open start over (overwriting the vector file); after it, the collection is format 2 and
//! a missing or stale snapshot only costs a rebuild.

use std::collections::HashMap;
use std::path::Path;

use crate::collection::{
    load_snapshot, prepare_vector, raw_if_changed, SNAPSHOT_FILE, VECTORS_FILE,
};
use crate::config::CollectionConfig;
use crate::error::VecDbError;
use crate::storage::points::{Change, PointStore};
use crate::storage::snapshot::{self, Snapshot, DEAD_SLOT, SNAPSHOT_VERSION};
use crate::storage::vectors::{vector_crc, VectorFile};
use crate::Point;

/// Slots written to the vector file per call.
const WRITE_CHUNK: usize = 4096;

pub(crate) fn v1_to_v2(
    dir: &Path,
    store: &PointStore,
    config: &CollectionConfig,
) -> Result<(), VecDbError> {
    tracing::info!(
        name = %config.name,
        "converting collection from format 1 to format 2 (vectors move to vectors.bin); this happens once"
    );
    let mut points: Vec<Point> = Vec::new();
    let generation = store.for_each_v1(|p| {
        points.push(p);
        Ok(())
    })?;
    let by_id: HashMap<u64, usize> = points.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
    let snap_path = dir.join(SNAPSHOT_FILE);
    let kept = load_snapshot(&snap_path)
        .and_then(|s| usable_v1(config, s, generation, &by_id))
        .map_err(|reason| tracing::info!(%reason, "format 1 snapshot not reused; the index will be rebuilt"))
        .ok();

    // The slot layout and each slot's vector (as the index sees it).
    let (slot_ids, index_body, dead_vectors) = match kept {
        Some(s) => (s.slot_ids, Some(s.index), s.dead_vectors),
        None => (points.iter().map(|p| p.id).collect(), None, Vec::new()),
    };
    let dim = config.dim;
    let tmp = dir.join(format!("{VECTORS_FILE}.tmp"));
    let mut file = VectorFile::create(&tmp, dim)?;
    let mut crcs = Vec::with_capacity(slot_ids.len());
    // Per slot: whether its record must keep the vector as inserted (normalising changed it).
    let mut keep_raw = Vec::with_capacity(slot_ids.len());
    let mut dead = dead_vectors.chunks_exact(dim);
    for (chunk_no, chunk) in slot_ids.chunks(WRITE_CHUNK).enumerate() {
        let mut buf = Vec::with_capacity(chunk.len() * dim);
        for &id in chunk {
            let v = if id == DEAD_SLOT {
                keep_raw.push(false);
                dead.next()
                    .ok_or_else(|| VecDbError::Corrupt {
                        path: snap_path.clone(),
                        reason: "fewer dead vectors than dead slots".into(),
                    })?
                    .to_vec()
            } else {
                let inserted = &points[by_id[&id]].vector;
                let v = prepare_vector(config, inserted);
                keep_raw.push(raw_if_changed(inserted, &v).is_some());
                v
            };
            crcs.push(vector_crc(&v));
            buf.extend_from_slice(&v);
        }
        file.write((chunk_no * WRITE_CHUNK) as u32, &buf)?;
    }
    file.sync()?;
    drop(file);
    let final_path = dir.join(VECTORS_FILE);
    std::fs::rename(&tmp, &final_path).map_err(|e| VecDbError::io(&final_path, e))?;
    snapshot::sync_dir(dir)?;

    let changes: Vec<Change<'_>> = slot_ids
        .iter()
        .enumerate()
        .filter(|(_, &id)| id != DEAD_SLOT)
        .map(|(slot, id)| {
            let p = &points[by_id[id]];
            Change::Put {
                id: p.id,
                slot: slot as u32,
                crc: crcs[slot],
                raw: keep_raw[slot].then_some(p.vector.as_slice()),
                metadata: &p.metadata,
            }
        })
        .collect();
    let new_generation = store.rewrite_all(config, &changes)?;
    drop(changes);

    match index_body {
        Some(index) => {
            let snap = Snapshot {
                version: SNAPSHOT_VERSION,
                uid: store.uid()?,
                generation: new_generation,
                live_count: points.len() as u64,
                spec_json: serde_json::to_string(&config.index).expect("spec serialises"),
                dim,
                slot_ids,
                dead_vectors: Vec::new(),
                index,
            };
            if let Err(e) = snapshot::write_atomic(&snap_path, &snap.encode()) {
                tracing::warn!(error = %e, "could not save the converted index snapshot");
            }
        }
        None => {
            if let Err(e) = std::fs::remove_file(&snap_path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(error = %e, "could not remove the format 1 snapshot");
                }
            }
        }
    }
    tracing::info!(points = points.len(), "collection converted to format 2");
    Ok(())
}

/// The format 1 snapshot, when it was built for exactly these points and this config.
fn usable_v1(
    config: &CollectionConfig,
    snap: Snapshot,
    generation: u64,
    by_id: &HashMap<u64, usize>,
) -> Result<Snapshot, String> {
    if snap.version != 1 {
        return Err(format!("snapshot format version {}", snap.version));
    }
    if snap.generation != generation || snap.live_count != by_id.len() as u64 {
        return Err("snapshot is stale".into());
    }
    let spec_json = serde_json::to_string(&config.index).expect("spec serialises");
    if snap.spec_json != spec_json || snap.dim != config.dim {
        return Err("snapshot was built for another index spec or dimension".into());
    }
    let mut seen = std::collections::HashSet::with_capacity(by_id.len());
    for &id in &snap.slot_ids {
        if id != DEAD_SLOT && (!by_id.contains_key(&id) || !seen.insert(id)) {
            return Err(format!("snapshot slot holds id {id}, absent or repeated"));
        }
    }
    if seen.len() != by_id.len() {
        return Err("snapshot slots do not cover the stored points".into());
    }
    let dead = snap.slot_ids.iter().filter(|&&id| id == DEAD_SLOT).count();
    if snap.dead_vectors.len() != dead * config.dim {
        return Err("dead vectors do not match the dead slots".into());
    }
    crate::index::AnyIndex::from_bytes(
        &config.index,
        config.dim,
        crate::state::distance_kind(config),
        &snap.index,
    )?;
    Ok(snap)
}
