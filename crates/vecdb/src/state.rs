//! A collection's in-memory state: vectors, index, slot maps and metadata.
//!
//! Points live in slots (`u32`, the index's addressing). A point that is deleted, or upserted with
//! a new vector, leaves a dead slot behind: its vector stays in the arena because graph indexes
//! still route through it, but `accept` rejects it, so it is never returned. Dead slots are
//! dropped when the state is rebuilt from the points (on open without a usable snapshot, or by
//! compaction).
//!
//! This module also converts between the state and an index snapshot ([`Snapshot`]).

use std::collections::HashMap;

use serde_json::Value;

use crate::config::CollectionConfig;
use crate::index::{AnyIndex, DistanceKind, VectorArena};
use crate::storage::snapshot::{Snapshot, DEAD_SLOT};

/// A point ready to enter the state: vector already normalised under cosine.
pub(crate) struct Prepared {
    pub id: u64,
    pub vector: Vec<f32>,
    pub metadata: Value,
}

pub(crate) struct State {
    pub arena: VectorArena,
    pub index: AnyIndex,
    /// Point id per slot; `DEAD_SLOT` for dead slots.
    pub slot_ids: Vec<u64>,
    pub id_slot: HashMap<u64, u32>,
    /// Metadata per slot; `Null` for dead slots.
    pub metadata: Vec<Value>,
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

impl State {
    /// Builds a fresh state and index over `points` (ascending ids, slots assigned in order).
    pub(crate) fn build(config: &CollectionConfig, points: Vec<Prepared>, generation: u64) -> Self {
        let mut arena = VectorArena::new(config.dim);
        let mut slot_ids = Vec::with_capacity(points.len());
        let mut id_slot = HashMap::with_capacity(points.len());
        let mut metadata = Vec::with_capacity(points.len());
        for p in points {
            let slot = arena.push(&p.vector);
            slot_ids.push(p.id);
            id_slot.insert(p.id, slot);
            metadata.push(p.metadata);
        }
        let slots: Vec<u32> = (0..slot_ids.len() as u32).collect();
        let mut index = AnyIndex::new(
            &config.index,
            config.dim,
            distance_kind(config),
            seed_for(&config.name),
        );
        index.build(&arena, &slots);
        State {
            arena,
            index,
            built_live: slot_ids.len(),
            slot_ids,
            id_slot,
            metadata,
            generation,
        }
    }

    /// Rebuilds only the index over the live slots (used to retrain IVF as the collection grows).
    pub(crate) fn build_index(&self, config: &CollectionConfig) -> AnyIndex {
        let slots: Vec<u32> = (0..self.slot_ids.len() as u32)
            .filter(|&s| self.is_live(s))
            .collect();
        let mut index = AnyIndex::new(
            &config.index,
            config.dim,
            distance_kind(config),
            seed_for(&config.name),
        );
        index.build(&self.arena, &slots);
        index
    }

    pub(crate) fn is_live(&self, slot: u32) -> bool {
        self.slot_ids[slot as usize] != DEAD_SLOT
    }

    pub(crate) fn live_count(&self) -> usize {
        self.id_slot.len()
    }

    pub(crate) fn dead_count(&self) -> usize {
        self.slot_ids.len() - self.id_slot.len()
    }

    /// Inserts or replaces a point. A replacement with a bit-identical vector keeps its slot and
    /// only swaps the metadata; otherwise the old slot dies and the point gets a new one.
    pub(crate) fn put(&mut self, p: Prepared) {
        if let Some(&slot) = self.id_slot.get(&p.id) {
            if self.arena.get(slot) == p.vector.as_slice() {
                self.metadata[slot as usize] = p.metadata;
                return;
            }
            self.kill(slot);
        }
        let slot = self.arena.push(&p.vector);
        self.slot_ids.push(p.id);
        self.metadata.push(p.metadata);
        self.id_slot.insert(p.id, slot);
        self.index.add(&self.arena, slot);
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

    fn kill(&mut self, slot: u32) {
        self.slot_ids[slot as usize] = DEAD_SLOT;
        self.metadata[slot as usize] = Value::Null;
    }

    /// Captures the state as a snapshot.
    pub(crate) fn to_snapshot(&self, config: &CollectionConfig) -> Snapshot {
        let mut dead_vectors = Vec::with_capacity(self.dead_count() * config.dim);
        for (slot, &id) in self.slot_ids.iter().enumerate() {
            if id == DEAD_SLOT {
                dead_vectors.extend_from_slice(self.arena.get(slot as u32));
            }
        }
        Snapshot {
            generation: self.generation,
            live_count: self.live_count() as u64,
            spec_json: serde_json::to_string(&config.index).expect("spec serialises"),
            dim: config.dim,
            slot_ids: self.slot_ids.clone(),
            dead_vectors,
            index: self.index.to_bytes(),
        }
    }

    /// Restores a state from a snapshot and the current points (ascending ids, as read from
    /// redb at `generation`). Fails, with the reason, when the snapshot does not belong to exactly
    /// this point set and config.
    pub(crate) fn restore(
        config: &CollectionConfig,
        snap: Snapshot,
        points: Vec<Prepared>,
        generation: u64,
    ) -> Result<State, String> {
        if snap.generation != generation {
            return Err(format!(
                "snapshot is for generation {}, the points are at {generation}",
                snap.generation
            ));
        }
        if snap.live_count != points.len() as u64 {
            return Err(format!(
                "snapshot has {} live points, the store has {}",
                snap.live_count,
                points.len()
            ));
        }
        let spec_json = serde_json::to_string(&config.index).expect("spec serialises");
        if snap.spec_json != spec_json || snap.dim != config.dim {
            return Err("snapshot was built for another index spec or dimension".into());
        }
        if snap.slot_ids.len() > u32::MAX as usize {
            return Err("too many slots".into());
        }
        let mut by_id: HashMap<u64, Prepared> = points.into_iter().map(|p| (p.id, p)).collect();
        let mut arena = VectorArena::new(config.dim);
        let mut metadata = Vec::with_capacity(snap.slot_ids.len());
        let mut id_slot = HashMap::with_capacity(by_id.len());
        let mut dead = snap.dead_vectors.chunks_exact(config.dim.max(1));
        for (slot, &id) in snap.slot_ids.iter().enumerate() {
            if id == DEAD_SLOT {
                let v = dead.next().ok_or("fewer dead vectors than dead slots")?;
                arena.push(v);
                metadata.push(Value::Null);
                continue;
            }
            let p = by_id
                .remove(&id)
                .ok_or_else(|| format!("snapshot slot {slot} holds id {id}, absent or repeated"))?;
            arena.push(&p.vector);
            metadata.push(p.metadata);
            id_slot.insert(id, slot as u32);
        }
        if !by_id.is_empty() || dead.next().is_some() {
            return Err("snapshot slots do not cover the stored points exactly".into());
        }
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
            metadata,
            generation,
        })
    }
}
