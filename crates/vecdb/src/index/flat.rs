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

    /// The indexed slots, in insertion order.
    pub fn slots(&self) -> &[u32] {
        &self.slots
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

    /// Exact search for many queries at once: the same neighbours as calling `search` per
    /// query, computed tile by tile (`QUERY_TILE` queries against `BASE_TILE` vectors, in 4 x 4
    /// register blocks of inner products) so each base vector is read from memory once per query
    /// tile instead of once per query, and each loaded chunk is used four times. L2 uses
    /// `|x|^2 + |q|^2 - 2 x.q` to rank, then recomputes the k distances it returns exactly.
    pub fn search_batch(
        &self,
        arena: &VectorArena,
        queries: &[&[f32]],
        k: usize,
        accept: &dyn Fn(u32) -> bool,
    ) -> Vec<Vec<(u32, f32)>> {
        let kern = kernels();
        let l2 = self.kind == DistanceKind::L2Squared;
        let slots: Vec<u32> = self.slots.iter().copied().filter(|&s| accept(s)).collect();
        let norms: Vec<f32> = if l2 {
            slots
                .iter()
                .map(|&s| kern.dot(arena.get(s), arena.get(s)))
                .collect()
        } else {
            Vec::new()
        };
        let mut out = Vec::with_capacity(queries.len());
        for qtile in queries.chunks(QUERY_TILE) {
            let mut tops: Vec<TopK> = qtile.iter().map(|_| TopK::new(k)).collect();
            let qnorms: Vec<f32> = qtile.iter().map(|q| kern.dot(q, q)).collect();
            for (t, btile) in slots.chunks(BASE_TILE).enumerate() {
                let base = t * BASE_TILE;
                for qg in (0..qtile.len()).step_by(4) {
                    // Short groups at the ends repeat their last member; extra results are dropped.
                    let qi = [0, 1, 2, 3].map(|a| (qg + a).min(qtile.len() - 1));
                    let qs = qi.map(|i| qtile[i]);
                    for bg in (0..btile.len()).step_by(4) {
                        let bi = [0, 1, 2, 3].map(|b| (bg + b).min(btile.len() - 1));
                        let dots = kern.dot_4x4(qs, bi.map(|j| arena.get(btile[j])));
                        for a in 0..(qtile.len() - qg).min(4) {
                            for b in 0..(btile.len() - bg).min(4) {
                                let d = if l2 {
                                    norms[base + bg + b] + qnorms[qg + a] - 2.0 * dots[a][b]
                                } else {
                                    -dots[a][b]
                                };
                                tops[qg + a].push(d, btile[bg + b]);
                            }
                        }
                    }
                }
            }
            for (q, top) in qtile.iter().zip(tops) {
                let mut hits = top.into_sorted();
                if l2 {
                    for h in &mut hits {
                        h.1 = kern.l2_squared(q, arena.get(h.0));
                    }
                    hits.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
                }
                out.push(hits);
            }
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
const QUERY_TILE: usize = 128;
/// Base vectors per tile (128 x 784 floats = 400 KB): with the query tile, within L2. A
/// multiple of 4, so only the last tile has a short 4-vector group.
const BASE_TILE: usize = 64;

/// The distance, or for L2 any value above `bound` as soon as the partial sum exceeds it: a
/// top-k scan rejects most vectors after their first few hundred components.
#[inline(always)]
pub(crate) fn bounded_distance(
    kind: DistanceKind,
    kern: &Kernels,
    q: &[f32],
    v: &[f32],
    bound: f32,
) -> f32 {
    match kind {
        DistanceKind::L2Squared => kern.l2_squared_bounded(q, v, bound),
        DistanceKind::NegDot => -kern.dot(q, v),
    }
}
