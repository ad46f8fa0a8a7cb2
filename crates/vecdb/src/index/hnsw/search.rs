//! Layer searches of the HNSW graph and the reusable per-search scratch space.

use super::graph::Graph;
use crate::distance::{prefetch, Kernels};
use crate::index::quant::{Prepared, RabitqBounds};
use crate::index::topk::Cand;
use crate::index::{DistanceKind, VectorArena};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Marks visited slots with a generation number, so clearing between searches is one increment
/// instead of a pass over the whole array (the array is only zeroed when the u16 wraps).
#[derive(Default)]
pub(super) struct Visited {
    tags: Vec<u16>,
    current: u16,
}

impl Visited {
    /// Starts a new search over slots `0..n`.
    pub(super) fn reset(&mut self, n: usize) {
        if self.tags.len() < n {
            self.tags.resize(n, 0);
        }
        self.current = self.current.wrapping_add(1);
        if self.current == 0 {
            self.tags.iter_mut().for_each(|t| *t = 0);
            self.current = 1;
        }
    }

    /// Marks `slot`; returns true if it was not visited yet in this search.
    #[inline(always)]
    pub(super) fn insert(&mut self, slot: u32) -> bool {
        let t = &mut self.tags[slot as usize];
        if *t == self.current {
            false
        } else {
            *t = self.current;
            true
        }
    }

    fn prefetch(&self, slot: u32) {
        prefetch(self.tags.as_ptr().wrapping_add(slot as usize));
    }

    pub(super) fn memory_bytes(&self) -> usize {
        self.tags.capacity() * 2
    }
}

/// Buffers reused from search to search (taken from a pool in the index).
#[derive(Default)]
pub(super) struct Scratch {
    pub(super) visited: Visited,
    candidates: BinaryHeap<Reverse<Cand>>,
    /// Best results found so far, worst on top.
    pub(super) top: BinaryHeap<Cand>,
    neighbours: Vec<u32>,
    fresh: Vec<u32>,
    /// Spare buffers for the insertion code.
    pub(super) sorted: Vec<Cand>,
    pub(super) selected: Vec<Cand>,
    pub(super) pruned: Vec<Cand>,
}

impl Scratch {
    pub(super) fn memory_bytes(&self) -> usize {
        self.visited.memory_bytes()
            + (self.candidates.capacity() + self.top.capacity()) * 8
            + (self.neighbours.capacity() + self.fresh.capacity()) * 4
            + (self.sorted.capacity() + self.selected.capacity() + self.pruned.capacity()) * 8
    }
}

/// What a layer search needs besides the scratch: the graph, the vectors and the distance.
pub(super) struct Ctx<'a> {
    pub(super) graph: &'a Graph,
    pub(super) arena: &'a VectorArena,
    pub(super) kern: &'a Kernels,
    pub(super) kind: DistanceKind,
    /// Read lists under their locks (during a parallel build).
    pub(super) locked: bool,
    /// Quantised searches: the query prepared against the codes. Distances to the query then
    /// come from the codes, not the arena (building always uses the arena).
    pub(super) codes: Option<&'a Prepared<'a>>,
    /// Bounded searches: lower bounds that spare reading the vectors of neighbours the walk
    /// would drop anyway (distances stay exact).
    pub(super) bounds: Option<&'a RabitqBounds<'a>>,
}

impl Ctx<'_> {
    #[inline(always)]
    pub(super) fn dist(&self, q: &[f32], slot: u32) -> f32 {
        if let Some(codes) = self.codes {
            return codes.dist(self.kern, slot);
        }
        self.kind.eval(self.kern, q, self.arena.get(slot))
    }

    #[inline(always)]
    fn read(&self, level: usize, slot: u32, out: &mut Vec<u32>) {
        if self.locked {
            self.graph.read_locked(level, slot, out);
        } else {
            self.graph.read_unlocked(level, slot, out);
        }
    }

    /// Prefetches the first lines of `slot`'s vector so the distance loop finds them in cache.
    #[inline(always)]
    fn prefetch_vector(&self, slot: u32) {
        if let Some(codes) = self.codes {
            codes.prefetch(slot);
            return;
        }
        let v = self.arena.get(slot);
        prefetch(v.as_ptr());
        if v.len() > 16 {
            prefetch(v[16..].as_ptr());
        }
    }

    /// Prefetches the rest of `slot`'s vector (from its third line) while the previous
    /// neighbour's distance is computed, since every distance reads the whole vector. Fetching
    /// only the first 192 floats, when far candidates stopped summing there, answered about a
    /// quarter fewer queries per CPU second on fashion-mnist-784 (bench/README.md).
    #[inline(always)]
    fn prefetch_rest(&self, slot: u32) {
        if let Some(codes) = self.codes {
            codes.prefetch_rest(slot);
            return;
        }
        let v = self.arena.get(slot);
        for off in (32..v.len()).step_by(16) {
            prefetch(v[off..].as_ptr());
        }
    }

    /// Greedy descent on one upper layer: moves to the closest neighbour until none is closer.
    pub(super) fn greedy(
        &self,
        q: &[f32],
        mut cur: Cand,
        level: usize,
        scratch: &mut Scratch,
    ) -> Cand {
        loop {
            let mut changed = false;
            self.read(level, cur.slot, &mut scratch.neighbours);
            for &nb in &scratch.neighbours {
                let d = self.dist(q, nb);
                if d < cur.dist {
                    cur = Cand { dist: d, slot: nb };
                    changed = true;
                }
            }
            if !changed {
                return cur;
            }
        }
    }

    /// Best-first search of one layer from `entry`, keeping the `ef` best accepted slots in
    /// `scratch.top`. Rejected slots are still expanded, so the search can pass through them;
    /// while fewer than `ef` accepted slots are found the search does not stop early.
    pub(super) fn search_layer(
        &self,
        q: &[f32],
        entry: Cand,
        ef: usize,
        level: usize,
        accept: Option<&dyn Fn(u32) -> bool>,
        scratch: &mut Scratch,
    ) {
        let Scratch {
            visited,
            candidates,
            top,
            neighbours,
            fresh,
            ..
        } = scratch;
        visited.reset(self.graph.capacity());
        candidates.clear();
        top.clear();
        visited.insert(entry.slot);
        candidates.push(Reverse(entry));
        if accept.is_none_or(|f| f(entry.slot)) {
            top.push(entry);
        }
        let mut bound = top.peek().map_or(f32::INFINITY, |c| c.dist);
        let filtering = accept.is_some();
        while let Some(Reverse(c)) = candidates.pop() {
            if c.dist > bound && (top.len() >= ef || !filtering) {
                break;
            }
            self.read(level, c.slot, neighbours);
            for &nb in neighbours.iter() {
                visited.prefetch(nb);
            }
            fresh.clear();
            // Once `ef` results are held, a neighbour is kept only if it is closer than the
            // worst of them, so one whose lower bound is not needs no vector read.
            let prune = self.bounds.filter(|_| top.len() >= ef);
            for &nb in neighbours.iter() {
                if visited.insert(nb) {
                    match prune {
                        Some(b) => b.prefetch(nb),
                        None => self.prefetch_vector(nb),
                    }
                    fresh.push(nb);
                }
            }
            if let Some(b) = prune {
                fresh.retain(|&nb| b.lower_bound(self.kern, nb) < bound);
                for &nb in fresh.iter() {
                    self.prefetch_vector(nb);
                }
            }
            for (i, &nb) in fresh.iter().enumerate() {
                if let Some(&next) = fresh.get(i + 1) {
                    self.prefetch_rest(next);
                }
                let d = self.dist(q, nb);
                if top.len() < ef || d < bound {
                    candidates.push(Reverse(Cand { dist: d, slot: nb }));
                    if accept.is_none_or(|f| f(nb)) {
                        top.push(Cand { dist: d, slot: nb });
                        if top.len() > ef {
                            top.pop();
                        }
                    }
                    bound = top.peek().map_or(f32::INFINITY, |c| c.dist);
                }
            }
        }
    }

    /// hnswlib's neighbour-selection heuristic: walking candidates from the closest, keep one
    /// only if it is closer to the base point than to every neighbour kept so far. This keeps
    /// links pointing in diverse directions, which is what makes the graph navigable on
    /// clustered data. `sorted` must be ascending by distance to the base point.
    pub(super) fn select_neighbours(
        &self,
        base: &[f32],
        sorted: &[Cand],
        m: usize,
        out: &mut Vec<Cand>,
    ) {
        out.clear();
        if sorted.len() <= m {
            out.extend_from_slice(sorted);
            return;
        }
        // Exact copies of the base point (the same photo indexed twice) say nothing about
        // directions, so they do not veto other candidates, and at most half the list goes to
        // them. Without both rules, a point with many copies links only to its copies, and a
        // search entering that clique never leaves it (13 of 200 points were not found among 60
        // copies of one). Copies are told by their vectors: under inner product no distance
        // value marks them.
        let max_copies = (m / 2).max(1);
        let mut copies = 0;
        for &c in sorted {
            if out.len() >= m {
                break;
            }
            let v = self.arena.get(c.slot);
            if v == base {
                if copies < max_copies {
                    copies += 1;
                    out.push(c);
                }
                continue;
            }
            // A kept neighbour is a copy when its vector is the base's: compared again rather
            // than remembered, so the selection allocates nothing (the first component almost
            // always differs).
            let good = out
                .iter()
                .filter(|r| self.arena.get(r.slot) != base)
                .all(|r| self.dist(v, r.slot) >= c.dist);
            if good {
                out.push(c);
            }
        }
    }
}
