//! Exact brute-force search: the oracle every approximate index is tested against.

use super::codec::{Reader, Writer};
use super::topk::TopK;
use super::{read_header, write_header, DistanceKind, VectorArena};
use crate::distance::{dot_matrix, kernels};

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
    /// query, with the inner products computed as matrix products ([`dot_matrix`]) of up to
    /// `QUERY_TILE` queries by up to `BASE_TILE` base vectors, which keeps the work
    /// compute-bound. Each base tile is gathered into one contiguous block once (the slots need
    /// not be adjacent in the arena) and multiplied with every query tile. L2 ranks by `|x|^2 - 2 x.q` (the query's
    /// norm is the same for all its candidates), then recomputes the k distances it returns
    /// exactly.
    pub fn search_batch(
        &self,
        arena: &VectorArena,
        queries: &[&[f32]],
        k: usize,
        accept: &dyn Fn(u32) -> bool,
    ) -> Vec<Vec<(u32, f32)>> {
        let kern = kernels();
        let dim = self.dim;
        let l2 = self.kind == DistanceKind::L2Squared;
        assert!(
            queries.iter().all(|q| q.len() == dim),
            "search_batch queries must have the index's dimension"
        );
        let slots: Vec<u32> = self.slots.iter().copied().filter(|&s| accept(s)).collect();
        let mut tops: Vec<TopK> = queries.iter().map(|_| TopK::new(k)).collect();
        let mut packed = Vec::with_capacity(queries.len() * dim);
        for q in queries {
            packed.extend_from_slice(q);
        }
        let base_tile = base_tile(dim);
        let mut base = Vec::with_capacity(base_tile.min(slots.len()) * dim);
        let mut norms = Vec::with_capacity(base_tile);
        let mut dots = vec![0.0f32; QUERY_TILE.min(queries.len()) * base_tile.min(slots.len())];
        for btile in slots.chunks(base_tile) {
            base.clear();
            norms.clear();
            for &s in btile {
                let v = arena.get(s);
                base.extend_from_slice(v);
                if l2 {
                    norms.push(kern.dot(v, v));
                }
            }
            for (qt, qtile) in packed.chunks(QUERY_TILE * dim).enumerate() {
                let out = &mut dots[..qtile.len() / dim * btile.len()];
                dot_matrix(qtile, &base, dim, out);
                let tops = &mut tops[qt * QUERY_TILE..];
                for (top, row) in tops.iter_mut().zip(out.chunks_exact(btile.len())) {
                    // Nearly every candidate is worse than the k-th kept, so the loop compares
                    // with a copy of the bound and calls into the heap only for the few that
                    // are not.
                    let mut bound = top.bound();
                    for (j, &d) in row.iter().enumerate() {
                        let score = if l2 { norms[j] - 2.0 * d } else { -d };
                        if score < bound {
                            top.push(score, btile[j]);
                            bound = top.bound();
                        }
                    }
                }
            }
        }
        queries
            .iter()
            .zip(tops)
            .map(|(q, top)| {
                let mut hits = top.into_sorted();
                if l2 {
                    for h in &mut hits {
                        h.1 = kern.l2_squared(q, arena.get(h.0));
                    }
                    hits.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
                }
                hits
            })
            .collect()
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

/// Queries per matrix product in `FlatIndex::search_batch`. The GEMM packs both operands into
/// its own panels on every call, which costs about as much per float as 75 multiply-adds, so
/// the tiles are large to spread that cost. Measured at 784-d with 2,000 queries, 1024 x 2048
/// answered more queries per CPU second than 512 x 2048 (which packs the queries twice as
/// often); 2048 x 1024 was no better.
const QUERY_TILE: usize = 1024;
/// Base vectors per gathered tile (2048 x 784 floats = 6.4 MB at 784-d), at most.
const BASE_TILE: usize = 2048;
/// Floats a gathered base tile may hold (2048 vectors of 1280-d, 10 MiB): at high dimensions
/// the tile holds fewer vectors, so a batch's memory stays bounded whatever the dimension.
const BASE_TILE_FLOATS: usize = 2048 * 1280;

/// Base vectors per gathered tile at dimension `dim`: `BASE_TILE`, fewer where that many would
/// exceed `BASE_TILE_FLOATS`, and at least 4.
fn base_tile(dim: usize) -> usize {
    (BASE_TILE_FLOATS / dim.max(1)).clamp(4, BASE_TILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_tiles_stay_within_their_budget() {
        assert_eq!(base_tile(784), BASE_TILE);
        assert_eq!(base_tile(1280), BASE_TILE);
        for dim in [1, 2048, 65_536] {
            let tile = base_tile(dim);
            assert!((4..=BASE_TILE).contains(&tile));
            assert!(tile * dim <= BASE_TILE_FLOATS, "dim {dim}: tile {tile}");
        }
    }
}
