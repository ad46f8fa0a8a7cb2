//! Exact brute-force search: the oracle every approximate index is tested against.

use super::codec::{Reader, Writer};
use super::topk::TopK;
use super::{read_header, write_header, DistanceKind, VectorArena};
use crate::distance::{kernels, Kernels};

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

    /// Exact search for many queries at once: the same results as calling `search` per query,
    /// computed tile by tile (`QUERY_TILE` queries against `BASE_TILE` vectors) so each base
    /// vector is read from memory once per query tile instead of once per query. A one-query
    /// flat scan is limited by memory bandwidth (the whole arena per query); this is not.
    pub fn search_batch(
        &self,
        arena: &VectorArena,
        queries: &[&[f32]],
        k: usize,
        accept: &dyn Fn(u32) -> bool,
    ) -> Vec<Vec<(u32, f32)>> {
        let kern = kernels();
        let slots: Vec<u32> = self.slots.iter().copied().filter(|&s| accept(s)).collect();
        let mut out = Vec::with_capacity(queries.len());
        for qtile in queries.chunks(QUERY_TILE) {
            let mut tops: Vec<TopK> = qtile.iter().map(|_| TopK::new(k)).collect();
            for btile in slots.chunks(BASE_TILE) {
                for (q, top) in qtile.iter().zip(&mut tops) {
                    for &s in btile {
                        top.push(
                            bounded_distance(self.kind, kern, q, arena.get(s), top.bound()),
                            s,
                        );
                    }
                }
            }
            out.extend(tops.into_iter().map(TopK::into_sorted));
        }
        out
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
            top.push(
                bounded_distance(kind, kern, query, arena.get(s), top.bound()),
                s,
            );
        }
    }
    top.into_sorted()
}

/// Queries per tile of `FlatIndex::search_batch` (32 x 784 floats = 100 KB).
const QUERY_TILE: usize = 32;
/// Base vectors per tile (128 x 784 floats = 400 KB): with the query tile, within L2.
const BASE_TILE: usize = 128;

/// The distance, or for L2 any value above `bound` as soon as the partial sum exceeds it: a
/// top-k scan rejects most vectors after their first few hundred components.
#[inline(always)]
fn bounded_distance(kind: DistanceKind, kern: &Kernels, q: &[f32], v: &[f32], bound: f32) -> f32 {
    match kind {
        DistanceKind::L2Squared => kern.l2_squared_bounded(q, v, bound),
        DistanceKind::NegDot => -kern.dot(q, v),
    }
}
