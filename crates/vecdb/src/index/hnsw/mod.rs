//! HNSW (hierarchical navigable small world) graph index, after Malkov & Yashunin and the ideas
//! of hnswlib's `hnswalg.h`:
//!
//! - each node gets a random top layer `floor(-ln(U) / ln(M))`, so layer sizes shrink by `M`;
//! - upper layers keep up to `M` links per node, layer 0 up to `M0 = 2M`;
//! - links are chosen with the diversity heuristic (see `search::Ctx::select_neighbours`), and
//!   a full list is re-pruned with the same heuristic when a new back-link arrives;
//! - layer-0 links sit in one contiguous array; visited marks use a generation counter; search
//!   scratch buffers come from a pool, so a query allocates nothing once warm;
//! - neighbours' vectors are prefetched before their distances are computed.
//!
//! `build` inserts in parallel on the rayon pool when it has more than one thread: lists are
//! written under per-node locks (read under them too while building), and a new top layer is
//! installed under a global lock, as in hnswlib. Searches navigate through slots that `accept`
//! rejects but never return them.

mod graph;
mod search;

use super::codec::{Reader, Writer};
use super::quant::{Prepared, RabitqBounds};
use super::topk::Cand;
use super::{read_header, write_header, DistanceKind, VectorArena};
use crate::distance::kernels;
use graph::{Graph, ABSENT};
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use search::{Ctx, Scratch};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Highest layer a node may get (the expected top layer for a billion nodes at M = 16 is 7).
const MAX_LEVEL: u8 = 30;
/// Builds smaller than this run on one thread: the parallel start-up would cost more.
const PARALLEL_MIN: usize = 2_000;
/// Packed "no entry point" value of `HnswIndex::entry`.
const NO_ENTRY: u64 = u64::MAX;

/// The HNSW index. See the module documentation.
pub struct HnswIndex {
    dim: usize,
    kind: DistanceKind,
    m: usize,
    ef_construction: usize,
    ef: usize,
    seed: u64,
    rng: ChaCha8Rng,
    graph: Graph,
    /// Entry point and top layer packed as `(level << 32) | slot`, or `NO_ENTRY`.
    entry: AtomicU64,
    /// Serialises insertions that raise the top layer.
    promote: Mutex<()>,
    count: AtomicUsize,
    pool: Mutex<Vec<Scratch>>,
}

impl std::fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswIndex")
            .field("m", &self.m)
            .field("ef_construction", &self.ef_construction)
            .field("ef", &self.ef)
            .field("len", &self.len())
            .finish()
    }
}

impl HnswIndex {
    /// An empty index; parameters are assumed validated (`IndexSpec::validate`).
    pub fn new(
        dim: usize,
        kind: DistanceKind,
        m: usize,
        ef_construction: usize,
        ef: usize,
        seed: u64,
    ) -> Self {
        HnswIndex {
            dim,
            kind,
            m,
            ef_construction,
            ef,
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
            graph: Graph::new(m),
            entry: AtomicU64::new(NO_ENTRY),
            promote: Mutex::new(()),
            count: AtomicUsize::new(0),
            pool: Mutex::new(Vec::new()),
        }
    }

    /// Number of slots in the graph.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The default per-query candidate list size.
    pub fn ef(&self) -> usize {
        self.ef
    }

    fn random_level(&mut self) -> u8 {
        let mult = 1.0 / (self.m as f64).ln();
        // 1 - U lies in (0, 1], so the logarithm is finite.
        let u: f64 = 1.0 - self.rng.gen::<f64>();
        ((-u.ln() * mult).floor() as u64).min(MAX_LEVEL as u64) as u8
    }

    /// Replaces the content with `slots`, inserting in parallel when rayon has several threads.
    pub fn build(&mut self, arena: &VectorArena, slots: &[u32]) {
        self.graph = Graph::new(self.m);
        self.entry.store(NO_ENTRY, Ordering::Relaxed);
        self.count.store(0, Ordering::Relaxed);
        self.rng = ChaCha8Rng::seed_from_u64(self.seed);
        let cap = slots.iter().map(|&s| s as usize + 1).max().unwrap_or(0);
        self.graph.grow(cap);
        let mut fresh = Vec::with_capacity(slots.len());
        for &s in slots {
            // A slot listed twice is indexed once.
            if self.graph.levels[s as usize] == ABSENT {
                let level = self.random_level();
                self.graph.set_level(s, level);
                fresh.push(s);
            }
        }
        let this = &*self;
        if rayon::current_num_threads() > 1 && fresh.len() >= PARALLEL_MIN {
            // The first node alone, so the parallel phase always starts from an entry point.
            this.insert(arena, fresh[0], &mut Scratch::default());
            fresh[1..]
                .par_iter()
                .for_each_init(Scratch::default, |scratch, &s| {
                    this.insert(arena, s, scratch)
                });
        } else {
            let mut scratch = Scratch::default();
            for &s in &fresh {
                this.insert(arena, s, &mut scratch);
            }
        }
        tracing::debug!(nodes = fresh.len(), "HNSW build finished");
    }

    /// Adds one slot; it is searchable at once. Adding a slot already present does nothing.
    pub fn add(&mut self, arena: &VectorArena, slot: u32) {
        if self.stage(slot) {
            self.link(arena, slot);
        }
    }

    /// The part of [`Self::add`] that needs `&mut self`: room for the slot and its layer.
    /// Returns whether [`Self::link`] must follow (false when the slot is present already).
    /// Between the two the slot is in no list and is not the entry point, so no search can
    /// reach it.
    pub fn stage(&mut self, slot: u32) -> bool {
        self.graph.grow(slot as usize + 1);
        if self.graph.levels[slot as usize] != ABSENT {
            return false;
        }
        let level = self.random_level();
        self.graph.set_level(slot, level);
        true
    }

    /// Links a slot staged by [`Self::stage`] into the graph. It takes `&self`, as the parallel
    /// build does, so it may run while searches do (a collection links under its read lock,
    /// which keeps searches answered while an ingest inserts). Searches read lists without
    /// locks: they may see a list being rewritten as a mix of its old and new neighbours, every
    /// one a node of the graph, and they reach the new node only once its own lists are written.
    /// At most one thread may link at a time outside `build`, as the collection's writer lock
    /// ensures.
    pub fn link(&self, arena: &VectorArena, slot: u32) {
        let mut scratch = self.pool.lock().pop().unwrap_or_default();
        self.insert(arena, slot, &mut scratch);
        self.pool.lock().push(scratch);
    }

    fn ctx<'a>(&'a self, arena: &'a VectorArena, locked: bool) -> Ctx<'a> {
        Ctx {
            graph: &self.graph,
            arena,
            kern: kernels(),
            kind: self.kind,
            locked,
            codes: None,
            bounds: None,
        }
    }

    /// Links `slot` (its level already set) into the graph. Callable from several threads.
    fn insert(&self, arena: &VectorArena, slot: u32, scratch: &mut Scratch) {
        let level = self.graph.levels[slot as usize] as usize;
        let mut packed = self.entry.load(Ordering::Acquire);
        // A node that may become the new top holds the promotion lock for its whole insertion,
        // so two such nodes never race to install themselves (hnswlib does the same).
        let _promotion = if packed == NO_ENTRY || level > (packed >> 32) as usize {
            let guard = self.promote.lock();
            packed = self.entry.load(Ordering::Acquire);
            Some(guard)
        } else {
            None
        };
        self.count.fetch_add(1, Ordering::Relaxed);
        if packed == NO_ENTRY {
            self.entry
                .store(((level as u64) << 32) | slot as u64, Ordering::Release);
            return;
        }
        let (entry, top) = (packed as u32, (packed >> 32) as usize);
        let ctx = self.ctx(arena, true);
        let q = arena.get(slot);
        let mut cur = Cand {
            dist: ctx.dist(q, entry),
            slot: entry,
        };
        for lev in (level + 1..=top).rev() {
            cur = ctx.greedy(q, cur, lev, scratch);
        }
        // Two phases, so that no thread can reach this node before all of its own lists are
        // written: first choose and write the node's links on every layer (nothing points to it
        // yet), then add the back-links that make it reachable. Writing its own list after
        // another thread had already linked back into it would erase that back-link (and could
        // leave the other node unreachable); hnswlib avoids the same race by holding the node's
        // lock for its whole insertion.
        let mut chosen: Vec<(usize, Vec<u32>)> = Vec::with_capacity(level.min(top) + 1);
        for lev in (0..=level.min(top)).rev() {
            ctx.search_layer(q, cur, self.ef_construction, lev, None, scratch);
            let (next, ids) = self.select_and_write(&ctx, slot, lev, scratch);
            chosen.push((lev, ids));
            if let Some(next) = next {
                cur = next;
            }
        }
        for (lev, ids) in &chosen {
            self.link_back(&ctx, slot, *lev, ids, scratch);
        }
        if level > top {
            self.entry
                .store(((level as u64) << 32) | slot as u64, Ordering::Release);
        }
    }

    /// Picks `slot`'s neighbours on `level` from the layer search result in `scratch.top` and
    /// writes them. Returns the closest candidate (the entry point for the layer below, None if
    /// the layer search found nothing) and the chosen neighbours.
    fn select_and_write(
        &self,
        ctx: &Ctx<'_>,
        slot: u32,
        level: usize,
        scratch: &mut Scratch,
    ) -> (Option<Cand>, Vec<u32>) {
        let mut sorted = std::mem::take(&mut scratch.sorted);
        let mut selected = std::mem::take(&mut scratch.selected);
        sorted.clear();
        sorted.extend(scratch.top.drain().filter(|c| c.slot != slot));
        sorted.sort_unstable();
        ctx.select_neighbours(ctx.arena.get(slot), &sorted, self.m, &mut selected);
        let ids: Vec<u32> = selected.iter().map(|c| c.slot).collect();
        {
            let _g = self.graph.lock(slot);
            self.graph.write(level, slot, &ids);
        }
        let next = sorted.first().copied();
        scratch.sorted = sorted;
        scratch.selected = selected;
        (next, ids)
    }

    /// Adds `slot` to the `level` list of each of `ids`, re-pruning full lists with the
    /// selection heuristic. Each list is read and rewritten under its node's lock.
    fn link_back(
        &self,
        ctx: &Ctx<'_>,
        slot: u32,
        level: usize,
        ids: &[u32],
        scratch: &mut Scratch,
    ) {
        let mut pruned = std::mem::take(&mut scratch.pruned);
        let cap = if level == 0 { self.graph.m0 } else { self.m };
        let mut list = Vec::with_capacity(cap + 1);
        let mut keep = Vec::with_capacity(cap);
        for &nb in ids {
            let _g = self.graph.lock(nb);
            self.graph.read_unlocked(level, nb, &mut list);
            if list.contains(&slot) {
                continue;
            }
            if list.len() < cap {
                list.push(slot);
            } else {
                pruned.clear();
                let base = ctx.arena.get(nb);
                pruned.extend(list.iter().chain(std::iter::once(&slot)).map(|&s| Cand {
                    dist: ctx.kind.eval(ctx.kern, base, ctx.arena.get(s)),
                    slot: s,
                }));
                pruned.sort_unstable();
                ctx.select_neighbours(base, &pruned, cap, &mut keep);
                list.clear();
                list.extend(keep.iter().map(|c| c.slot));
            }
            self.graph.write(level, nb, &list);
        }
        scratch.pruned = pruned;
    }

    /// The `k` nearest accepted slots, ascending; `ef` defaults to the index's and is raised to
    /// `k` when smaller.
    pub fn search(
        &self,
        arena: &VectorArena,
        query: &[f32],
        k: usize,
        ef: Option<usize>,
        accept: &dyn Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        self.search_inner(arena, query, k, ef, accept, None, None)
    }

    /// `search` with every distance to the query taken from codes (approximate distances).
    pub(crate) fn search_codes(
        &self,
        arena: &VectorArena,
        query: &[f32],
        k: usize,
        ef: Option<usize>,
        accept: &dyn Fn(u32) -> bool,
        codes: &Prepared<'_>,
    ) -> Vec<(u32, f32)> {
        self.search_inner(arena, query, k, ef, accept, Some(codes), None)
    }

    /// `search` that skips, once `ef` results are held, every neighbour whose RaBitQ lower
    /// bound is no closer than the worst of them, without reading its vector. The distances
    /// computed are exact, so the walk and its results are those of `search` except where a
    /// bound fails (at `WALK_EPSILON` it fails for a few percent of pairs, and a failure only
    /// matters for a neighbour the exact walk would have kept).
    pub(crate) fn search_bounded(
        &self,
        arena: &VectorArena,
        query: &[f32],
        k: usize,
        ef: Option<usize>,
        accept: &dyn Fn(u32) -> bool,
        bounds: &RabitqBounds<'_>,
    ) -> Vec<(u32, f32)> {
        self.search_inner(arena, query, k, ef, accept, None, Some(bounds))
    }

    #[allow(clippy::too_many_arguments)]
    fn search_inner(
        &self,
        arena: &VectorArena,
        query: &[f32],
        k: usize,
        ef: Option<usize>,
        accept: &dyn Fn(u32) -> bool,
        codes: Option<&Prepared<'_>>,
        bounds: Option<&RabitqBounds<'_>>,
    ) -> Vec<(u32, f32)> {
        let packed = self.entry.load(Ordering::Acquire);
        if k == 0 || packed == NO_ENTRY {
            return Vec::new();
        }
        let ef = ef.unwrap_or(self.ef).max(k);
        let mut scratch = self.pool.lock().pop().unwrap_or_default();
        let ctx = Ctx {
            codes,
            bounds,
            ..self.ctx(arena, false)
        };
        let (entry, top) = (packed as u32, (packed >> 32) as usize);
        let mut cur = Cand {
            dist: ctx.dist(query, entry),
            slot: entry,
        };
        for lev in (1..=top).rev() {
            cur = ctx.greedy(query, cur, lev, &mut scratch);
        }
        ctx.search_layer(query, cur, ef, 0, Some(accept), &mut scratch);
        let mut out: Vec<Cand> = scratch.top.drain().collect();
        out.sort_unstable();
        out.truncate(k);
        self.pool.lock().push(scratch);
        out.into_iter().map(|c| (c.slot, c.dist)).collect()
    }

    /// The index body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        write_header(&mut w, self.dim, self.kind);
        w.u64(self.m as u64);
        w.u64(self.seed);
        w.u64(self.len() as u64);
        w.u64(self.entry.load(Ordering::Acquire));
        let n = self.graph.capacity();
        w.u64(n as u64);
        w.buf.extend_from_slice(&self.graph.levels);
        let links0: Vec<u32> = self.graph.links0_words().collect();
        w.u32s(&links0);
        for s in 0..n {
            let words: Vec<u32> = self.graph.upper_words(s).collect();
            w.u32s(&words);
        }
        w.buf
    }

    /// Reads a body written by `to_bytes`, checking it against the spec's parameters.
    pub fn from_bytes(
        dim: usize,
        kind: DistanceKind,
        m: usize,
        ef_construction: usize,
        ef: usize,
        bytes: &[u8],
    ) -> Result<Self, String> {
        let mut r = Reader::new(bytes);
        read_header(&mut r, dim, kind)?;
        let body_m = r.u64()?;
        if body_m != m as u64 {
            return Err(format!(
                "HNSW body was built with m = {body_m}, spec says {m}"
            ));
        }
        let seed = r.u64()?;
        let count = r.u64()? as usize;
        let entry = r.u64()?;
        let n = r.len(1)?;
        let levels: Vec<u8> = (0..n).map(|_| r.u8()).collect::<Result<_, _>>()?;
        let links0 = r.u32s()?;
        let upper = (0..n).map(|_| r.u32s()).collect::<Result<Vec<_>, _>>()?;
        r.finish()?;
        let graph = Graph::from_parts(m, levels, links0, upper)?;
        let present = graph.levels.iter().filter(|&&l| l != ABSENT).count();
        if present != count {
            return Err(format!(
                "HNSW body counts {count} nodes but holds {present}"
            ));
        }
        if entry == NO_ENTRY {
            if count != 0 {
                return Err("HNSW body has nodes but no entry point".into());
            }
        } else {
            let (slot, level) = (entry as u32 as usize, entry >> 32);
            if graph.levels.get(slot).is_none_or(|&l| l as u64 != level) {
                return Err("HNSW body has an invalid entry point".into());
            }
        }
        let mut index = HnswIndex::new(dim, kind, m, ef_construction, ef, seed);
        // Continue the level sequence deterministically without storing the generator state.
        index.rng = ChaCha8Rng::seed_from_u64(seed ^ (count as u64).wrapping_mul(0x9E37_79B9));
        index.graph = graph;
        index.entry = AtomicU64::new(entry);
        index.count = AtomicUsize::new(count);
        Ok(index)
    }

    /// Number of nodes that a walk over layer-0 links from the entry point does not reach.
    #[cfg(test)]
    fn unreachable_on_layer0(&self) -> usize {
        let packed = self.entry.load(Ordering::Acquire);
        if packed == NO_ENTRY {
            return 0;
        }
        let mut seen = vec![false; self.graph.capacity()];
        let mut stack = vec![packed as u32];
        seen[packed as u32 as usize] = true;
        let mut buf = Vec::new();
        let mut reached = 0;
        while let Some(s) = stack.pop() {
            reached += 1;
            self.graph.read_unlocked(0, s, &mut buf);
            for &nb in &buf {
                if !std::mem::replace(&mut seen[nb as usize], true) {
                    stack.push(nb);
                }
            }
        }
        self.len() - reached
    }

    /// Bytes held by the graph and the pooled scratch buffers.
    pub fn memory_bytes(&self) -> usize {
        self.graph.memory_bytes()
            + self
                .pool
                .lock()
                .iter()
                .map(Scratch::memory_bytes)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests;
