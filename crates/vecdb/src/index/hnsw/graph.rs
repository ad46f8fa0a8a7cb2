//! Link storage of the HNSW graph.
//!
//! Layer-0 links of all nodes live in one contiguous array with a fixed stride of `m0 + 1`
//! words per slot (a count, then up to `m0` neighbour slots), as in hnswlib, so a node's list is
//! one or two cache lines found by a multiplication. Upper layers (about 1 node in `m`) get a
//! small boxed array each. Words are `AtomicU32` so that the parallel build can write lists
//! behind per-node locks while other threads read them; relaxed loads compile to plain loads,
//! so queries pay nothing for it.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// Level marker of a slot that is not in the graph.
pub(super) const ABSENT: u8 = u8::MAX;

pub(super) struct Graph {
    pub(super) m: usize,
    pub(super) m0: usize,
    /// Top layer of each slot, or `ABSENT`.
    pub(super) levels: Vec<u8>,
    links0: Vec<AtomicU32>,
    upper: Vec<Box<[AtomicU32]>>,
    /// One lock per slot, taken while a list is rewritten (and read, during the build).
    locks: Vec<Mutex<()>>,
}

impl Graph {
    pub(super) fn new(m: usize) -> Self {
        Graph {
            m,
            m0: 2 * m,
            levels: Vec::new(),
            links0: Vec::new(),
            upper: Vec::new(),
            locks: Vec::new(),
        }
    }

    /// Number of slot positions allocated (not all of them need be in the graph).
    pub(super) fn capacity(&self) -> usize {
        self.levels.len()
    }

    /// Makes room for slots `0..n`.
    pub(super) fn grow(&mut self, n: usize) {
        if n <= self.levels.len() {
            return;
        }
        self.levels.resize(n, ABSENT);
        self.links0
            .resize_with(n * (self.m0 + 1), || AtomicU32::new(0));
        self.upper.resize_with(n, || Box::new([]));
        self.locks.resize_with(n, || Mutex::new(()));
    }

    /// Records `slot`'s top layer and allocates its upper-layer lists (all empty).
    pub(super) fn set_level(&mut self, slot: u32, level: u8) {
        let s = slot as usize;
        self.grow(s + 1);
        self.levels[s] = level;
        let words = level as usize * (self.m + 1);
        self.upper[s] = (0..words).map(|_| AtomicU32::new(0)).collect();
        let base = s * (self.m0 + 1);
        self.links0[base].store(0, Relaxed);
    }

    #[inline(always)]
    fn words(&self, level: usize, slot: u32) -> &[AtomicU32] {
        if level == 0 {
            let base = slot as usize * (self.m0 + 1);
            &self.links0[base..base + self.m0 + 1]
        } else {
            let stride = self.m + 1;
            &self.upper[slot as usize][(level - 1) * stride..level * stride]
        }
    }

    /// Copies `slot`'s neighbours on `level` into `out` without locking: for queries, which
    /// never run concurrently with writers (`add` needs `&mut`).
    #[inline(always)]
    pub(super) fn read_unlocked(&self, level: usize, slot: u32, out: &mut Vec<u32>) {
        out.clear();
        let w = self.words(level, slot);
        let n = (w[0].load(Relaxed) as usize).min(w.len() - 1);
        out.extend(w[1..=n].iter().map(|x| x.load(Relaxed)));
    }

    /// Copies `slot`'s neighbours on `level` into `out` under the slot's lock, so a list being
    /// rewritten by another thread is never seen half-written.
    pub(super) fn read_locked(&self, level: usize, slot: u32, out: &mut Vec<u32>) {
        let _guard = self.locks[slot as usize].lock();
        self.read_unlocked(level, slot, out);
    }

    /// The lock of `slot`'s lists.
    pub(super) fn lock(&self, slot: u32) -> parking_lot::MutexGuard<'_, ()> {
        self.locks[slot as usize].lock()
    }

    /// Replaces `slot`'s list on `level`. The caller holds `slot`'s lock (or `&mut self`).
    pub(super) fn write(&self, level: usize, slot: u32, ids: &[u32]) {
        let w = self.words(level, slot);
        assert!(
            ids.len() < w.len(),
            "neighbour list longer than its layer allows"
        );
        for (dst, &id) in w[1..].iter().zip(ids) {
            dst.store(id, Relaxed);
        }
        w[0].store(ids.len() as u32, Relaxed);
    }

    /// The whole level-0 array as plain words (for serialisation).
    pub(super) fn links0_words(&self) -> impl Iterator<Item = u32> + '_ {
        self.links0.iter().map(|x| x.load(Relaxed))
    }

    /// `slot`'s upper-layer words (for serialisation).
    pub(super) fn upper_words(&self, slot: usize) -> impl Iterator<Item = u32> + '_ {
        self.upper[slot].iter().map(|x| x.load(Relaxed))
    }

    /// Rebuilds a graph from serialised parts, checking every size and neighbour id.
    pub(super) fn from_parts(
        m: usize,
        levels: Vec<u8>,
        links0: Vec<u32>,
        upper: Vec<Vec<u32>>,
    ) -> Result<Self, String> {
        let n = levels.len();
        let m0 = 2 * m;
        if links0.len() != n * (m0 + 1) || upper.len() != n {
            return Err("HNSW body has inconsistent list sizes".into());
        }
        let mut g = Graph::new(m);
        g.grow(n);
        g.levels = levels;
        for (dst, src) in g.links0.iter().zip(&links0) {
            dst.store(*src, Relaxed);
        }
        for (s, words) in upper.into_iter().enumerate() {
            let lvl = g.levels[s];
            let want = if lvl == ABSENT {
                0
            } else {
                lvl as usize * (m + 1)
            };
            if words.len() != want {
                return Err(format!("HNSW body: slot {s} has a wrong upper list size"));
            }
            g.upper[s] = words.into_iter().map(AtomicU32::new).collect();
        }
        g.check_links()?;
        Ok(g)
    }

    /// Every count within bounds and every neighbour a slot that is in the graph at that layer.
    fn check_links(&self) -> Result<(), String> {
        let mut buf = Vec::new();
        for s in 0..self.capacity() {
            let lvl = self.levels[s];
            if lvl == ABSENT {
                continue;
            }
            for level in 0..=lvl as usize {
                let w = self.words(level, s as u32);
                if w[0].load(Relaxed) as usize >= w.len() {
                    return Err(format!("HNSW body: slot {s} has a corrupt link count"));
                }
                self.read_unlocked(level, s as u32, &mut buf);
                for &nb in &buf {
                    let ok = self
                        .levels
                        .get(nb as usize)
                        .is_some_and(|&l| l != ABSENT && l as usize >= level);
                    if !ok {
                        return Err(format!("HNSW body: slot {s} links to invalid slot {nb}"));
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) fn memory_bytes(&self) -> usize {
        self.levels.capacity()
            + self.links0.capacity() * 4
            + self.upper.capacity() * std::mem::size_of::<Box<[AtomicU32]>>()
            + self.upper.iter().map(|b| b.len() * 4).sum::<usize>()
            + self.locks.capacity() * std::mem::size_of::<Mutex<()>>()
    }
}
