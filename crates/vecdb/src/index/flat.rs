//! Exact brute-force search: the oracle every approximate index is tested against.

use super::codec::{Reader, Writer};
use super::topk::TopK;
use super::{read_header, write_header, DistanceKind, VectorArena};
use crate::distance::kernels;

/// Scans every indexed slot and keeps the k best.
#[derive(Clone, Debug)]
pub struct FlatIndex {
    dim: usize,
    kind: DistanceKind,
    slots: Vec<u32>,
}

impl FlatIndex {
    /// An empty index.
    pub fn new(dim: usize, kind: DistanceKind) -> Self {
        FlatIndex {
            dim,
            kind,
            slots: Vec::new(),
        }
    }

    /// Replaces the content with `slots`.
    pub fn build(&mut self, slots: &[u32]) {
        self.slots = slots.to_vec();
    }

    /// Adds one slot.
    pub fn add(&mut self, slot: u32) {
        self.slots.push(slot);
    }

    /// Number of slots indexed.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The exact `k` nearest accepted slots, ascending.
    pub fn search(
        &self,
        arena: &VectorArena,
        query: &[f32],
        k: usize,
        accept: &dyn Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        exact_search(arena, self.kind, query, k, &self.slots, accept)
    }

    /// The index body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        write_header(&mut w, self.dim, self.kind);
        w.u32s(&self.slots);
        w.buf
    }

    /// Reads a body written by `to_bytes`.
    pub fn from_bytes(dim: usize, kind: DistanceKind, bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader::new(bytes);
        read_header(&mut r, dim, kind)?;
        let slots = r.u32s()?;
        r.finish()?;
        Ok(FlatIndex { dim, kind, slots })
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.slots.capacity() * 4
    }
}

/// Exact top-k over the given slots; shared by the flat index, IVF lists and LSH re-ranking.
pub(crate) fn exact_search(
    arena: &VectorArena,
    kind: DistanceKind,
    query: &[f32],
    k: usize,
    slots: &[u32],
    accept: &dyn Fn(u32) -> bool,
) -> Vec<(u32, f32)> {
    let kern = kernels();
    let mut top = TopK::new(k);
    for &s in slots {
        if accept(s) {
            top.push(kind.eval(kern, query, arena.get(s)), s);
        }
    }
    top.into_sorted()
}
