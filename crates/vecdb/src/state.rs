//! A collection's in-memory state: the mapped vectors, the index and the slot tables.
//!
//! Points live in slots (`u32`, the index's addressing) of the vector file. A point that is
//! deleted, or upserted with a new vector, leaves a dead slot behind: its vector stays in the
//! file because graph indexes still route through it, but `accept` rejects it, so it is never
//! returned. When the index is rebuilt over the live slots (compaction, or opening without a
//! usable snapshot), dead slots become free, and new vectors are written into free slots before
//! the file is extended.
//!
//! No metadata is held here: hits read theirs from redb, and filters are answered by the field
//! indexes (`fields`), opened by the first filtered search or write (the head of their file; each
//! field's body loads when a filter names it) and kept up to date from then on (see
//! [`crate::fields`]).
//!
//! This module also converts between the state and an index snapshot ([`Snapshot`]).

use std::collections::HashMap;

use serde_json::Value;

use crate::config::CollectionConfig;
use crate::fields::FieldIndex;
use crate::index::{AnyIndex, DistanceKind, VectorArena};
use crate::storage::snapshot::{
    Snapshot, DEAD_SLOT, FREE_SLOT, SNAPSHOT_RESTORABLE, SNAPSHOT_VERSION,
};

pub(crate) struct State {
    /// The vector file's mapping; `len()` is the number of slots in use or free.
    pub arena: VectorArena,
    pub index: AnyIndex,
    /// Point id per slot; `DEAD_SLOT` for dead slots, `FREE_SLOT` for free ones.
    pub slot_ids: Vec<u64>,
    pub id_slot: HashMap<u64, u32>,
    /// Free slots, reused before the file grows (popped from the end).
    pub free: Vec<u32>,
    /// Number of dead slots, kept with `slot_ids`: while it is 0 every slot the index holds is
    /// live, and searches skip the per-candidate liveness check.
    dead: usize,
    /// The field indexes, once a filtered search or a write opened them.
    pub fields: Option<FieldIndex>,
    /// The redb generation this state reflects.
    pub generation: u64,
    /// Live points when the index was last bulk-built (drives IVF retraining).
    pub built_live: usize,
}

/// A fixed seed per collection name, so index builds are reproducible.
pub(crate) fn seed_for(name: &str) -> u64 {
    // FNV-1a: tiny, stable across Rust versions (unlike `DefaultHasher`).
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

pub(crate) fn distance_kind(config: &CollectionConfig) -> DistanceKind {
    DistanceKind::from(config.metric)
}

fn new_index(config: &CollectionConfig) -> AnyIndex {
    AnyIndex::new(
        &config.index,
        config.dim,
        distance_kind(config),
        seed_for(&config.name),
    )
}

impl State {
    /// Builds the state from the slot table (`slot_ids[s]` = the id living in slot `s`, or
    /// `FREE_SLOT`) and a fresh index over the live slots; every non-live slot is free.
    pub(crate) fn build(
        config: &CollectionConfig,
        arena: VectorArena,
        slot_ids: Vec<u64>,
        generation: u64,
    ) -> Self {
        let mut id_slot = HashMap::with_capacity(slot_ids.len());
        let mut free = Vec::new();
        let mut live = Vec::with_capacity(slot_ids.len());
        for (s, &id) in slot_ids.iter().enumerate() {
            if id == FREE_SLOT || id == DEAD_SLOT {
                free.push(s as u32);
            } else {
                id_slot.insert(id, s as u32);
                live.push(s as u32);
            }
        }
        // Lowest slots first, so the file fills from the front.
        free.reverse();
        let slot_ids = slot_ids
            .into_iter()
            .map(|id| if id == DEAD_SLOT { FREE_SLOT } else { id })
            .collect();
        let mut index = new_index(config);
        index.build(&arena, &live);
        State {
            arena,
            index,
            built_live: live.len(),
            slot_ids,
            id_slot,
            free,
            dead: 0,
            fields: None,
            generation,
        }
    }

    /// Builds a fresh index over the live slots (compaction and IVF retraining).
    pub(crate) fn build_index(&self, config: &CollectionConfig) -> AnyIndex {
        let slots: Vec<u32> = (0..self.slot_ids.len() as u32)
            .filter(|&s| self.is_live(s))
            .collect();
        let mut index = new_index(config);
        index.build(&self.arena, &slots);
        index
    }

    /// Installs an index built by [`State::build_index`] over exactly the live slots: dead slots
    /// are no longer referred to, so they become free.
    pub(crate) fn install_rebuilt(&mut self, index: AnyIndex) {
        self.index = index;
        self.built_live = self.live_count();
        let mut freed = roaring::RoaringBitmap::new();
        for (s, id) in self.slot_ids.iter_mut().enumerate() {
            if *id == DEAD_SLOT {
                *id = FREE_SLOT;
                self.free.push(s as u32);
                freed.insert(s as u32);
            }
        }
        self.dead = 0;
        self.free.sort_unstable_by(|a, b| b.cmp(a));
        // A freed slot's entries name metadata that is gone; purged before the slot is reused.
        if let Some(f) = &mut self.fields {
            f.purge(&freed);
        }
    }

    pub(crate) fn is_live(&self, slot: u32) -> bool {
        let id = self.slot_ids[slot as usize];
        id != DEAD_SLOT && id != FREE_SLOT
    }

    pub(crate) fn live_count(&self) -> usize {
        self.id_slot.len()
    }

    pub(crate) fn dead_count(&self) -> usize {
        self.dead
    }

    /// The slots a batch of new vectors will take: free ones first, then new ones at the end
    /// of the file. Does not change the state (the writer applies them after the commit).
    pub(crate) fn plan_slots(&self, n: usize) -> Vec<u32> {
        let mut out: Vec<u32> = self.free.iter().rev().take(n).copied().collect();
        let mut next = self.slot_ids.len() as u32;
        while out.len() < n {
            out.push(next);
            next += 1;
        }
        out
    }

    /// Makes `slot` (planned by [`State::plan_slots`], its vector already in the file and
    /// mapped) live for `id`, killing the point's previous slot if it had one, and stages it in
    /// the index. Returns whether the caller must then run the index's [`AnyIndex::link`] for
    /// the slot (it needs only `&self`, so it can run under the read lock).
    pub(crate) fn stage(&mut self, id: u64, slot: u32, metadata: &Value) -> bool {
        if let Some(&old) = self.id_slot.get(&id) {
            self.kill(old);
        }
        let s = slot as usize;
        if s >= self.slot_ids.len() {
            // Planned slots extend the table one by one; should one ever skip ahead, the slots
            // in between stay free.
            for f in self.slot_ids.len()..s {
                self.free.push(f as u32);
            }
            self.slot_ids.resize(s + 1, FREE_SLOT);
            self.arena.remap(None, s + 1);
        } else if let Some(pos) = self.free.iter().rposition(|&f| f == slot) {
            self.free.remove(pos);
        }
        self.slot_ids[s] = id;
        if let Some(f) = &mut self.fields {
            f.add(slot, metadata);
        }
        self.id_slot.insert(id, slot);
        self.index.stage(&self.arena, slot)
    }

    /// Replaces a live point's metadata `old` by `new` (an upsert with a bit-identical vector).
    pub(crate) fn set_metadata(&mut self, slot: u32, old: &Value, new: &Value) {
        if let Some(f) = &mut self.fields {
            f.remove(slot, old);
            f.add(slot, new);
        }
    }

    /// Deletes a point; returns whether it existed.
    pub(crate) fn delete(&mut self, id: u64) -> bool {
        match self.id_slot.remove(&id) {
            Some(slot) => {
                self.kill(slot);
                true
            }
            None => false,
        }
    }

    /// Marks a slot dead. Its field entries stay until the slot is freed: searches accept live
    /// slots only, and forgetting them now would need the metadata it held.
    fn kill(&mut self, slot: u32) {
        self.slot_ids[slot as usize] = DEAD_SLOT;
        self.dead += 1;
    }

    /// Heap bytes of the slot tables (ids per slot, id -> slot map, free list).
    pub(crate) fn slot_table_bytes(&self) -> usize {
        self.slot_ids.capacity() * 8
            + self.id_slot.capacity() * (8 + 4 + 1)
            + self.free.capacity() * 4
    }

    /// Captures the state as a snapshot of the collection with this uid.
    pub(crate) fn to_snapshot(&self, config: &CollectionConfig, uid: u64) -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            uid,
            generation: self.generation,
            live_count: self.live_count() as u64,
            spec_json: serde_json::to_string(&config.index).expect("spec serialises"),
            dim: config.dim,
            slot_ids: self.slot_ids.clone(),
            dead_vectors: Vec::new(),
            index: self.index.to_bytes(),
        }
    }

    /// Restores a state from a version-2 or later snapshot and the mapped vector file, given what redb
    /// says now (its generation and number of points). Reads no point: the generation stamp
    /// ties the snapshot to exactly one point set. Fails, with the reason, when the snapshot
    /// does not belong to this point set, config or file.
    pub(crate) fn restore(
        config: &CollectionConfig,
        snap: Snapshot,
        arena: VectorArena,
        (uid, generation, points): (u64, u64, u64),
    ) -> Result<State, String> {
        if snap.version < SNAPSHOT_RESTORABLE {
            return Err(format!("snapshot format version {}", snap.version));
        }
        if snap.uid != uid {
            return Err("snapshot belongs to another collection (uid differs)".into());
        }
        if snap.generation != generation {
            return Err(format!(
                "snapshot is for generation {}, the points are at {generation}",
                snap.generation
            ));
        }
        if snap.live_count != points {
            return Err(format!(
                "snapshot has {} live points, the store has {points}",
                snap.live_count
            ));
        }
        let spec_json = serde_json::to_string(&config.index).expect("spec serialises");
        if snap.spec_json != spec_json || snap.dim != config.dim {
            return Err("snapshot was built for another index spec or dimension".into());
        }
        if snap.slot_ids.len() > u32::MAX as usize {
            return Err("too many slots".into());
        }
        if snap.slot_ids.len() > arena.mapped_slots().unwrap_or(0) {
            return Err(format!(
                "snapshot has {} slots, the vector file only {}",
                snap.slot_ids.len(),
                arena.mapped_slots().unwrap_or(0)
            ));
        }
        let mut arena = arena;
        arena.remap(None, snap.slot_ids.len());
        let mut id_slot = HashMap::with_capacity(points as usize);
        let mut free = Vec::new();
        let mut dead = 0;
        for (slot, &id) in snap.slot_ids.iter().enumerate() {
            match id {
                DEAD_SLOT => dead += 1,
                FREE_SLOT => free.push(slot as u32),
                _ => {
                    if id_slot.insert(id, slot as u32).is_some() {
                        return Err(format!("id {id} holds two slots"));
                    }
                }
            }
        }
        if id_slot.len() as u64 != points {
            return Err("snapshot slots do not cover the stored points".into());
        }
        free.reverse();
        let index = AnyIndex::from_bytes(
            &config.index,
            config.dim,
            distance_kind(config),
            &snap.index,
        )?;
        if index.len() > arena.len() {
            return Err(format!(
                "index holds {} slots, the snapshot only {}",
                index.len(),
                arena.len()
            ));
        }
        Ok(State {
            arena,
            index,
            built_live: id_slot.len(),
            slot_ids: snap.slot_ids,
            id_slot,
            free,
            dead,
            fields: None,
            generation,
        })
    }
}
