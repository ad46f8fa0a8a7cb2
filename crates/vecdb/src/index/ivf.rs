//! IVF-Flat: k-means partitions the vectors into `nlist` lists; a query scans the `nprobe`
//! lists whose centres are nearest to it, exactly.
//!
//! Training needs enough points to be meaningful: until the index holds `train_threshold()`
//! points (39 per list, faiss's minimum) every slot sits in one untrained list that is scanned
//! exactly, so small collections get exact results. `build` trains when it has enough points;
//! `add` trains automatically the moment the untrained list reaches the threshold. Points added
//! after training go to the list of their nearest centre; centres are not retrained.
//!
//! Each trained list keeps a copy of its vectors back to back, as faiss' inverted lists do,
//! made the first time a search scans the list and extended by later adds. Read where they lie
//! in the vector file, a list's vectors are scattered over it, and each one costs a cache and
//! address-translation miss: about 3x faiss' time per scanned vector (bench/README.md). The
//! copies are a cache: they are not in the snapshot, so opening reads no vector, and they cost
//! the scanned lists' share of the vectors' size in memory, counted in `memory_bytes`. They stay
//! true because a slot is rewritten only once no index refers to it (a compaction rebuilds the
//! index first).

use std::sync::OnceLock;

use super::codec::{Reader, Writer};
use super::flat::exact_search;
use super::kmeans;
use super::topk::TopK;
use super::{read_header, write_header, DistanceKind, VectorArena};
use crate::distance::kernels;

/// Points per list needed before training.
const MIN_POINTS_PER_LIST: usize = 39;

/// The IVF-Flat index. See the module documentation.
#[derive(Clone, Debug)]
pub struct IvfIndex {
    dim: usize,
    kind: DistanceKind,
    nlist: usize,
    nprobe: usize,
    seed: u64,
    /// `nlist * dim` floats once trained, empty before.
    centres: Vec<f32>,
    lists: Vec<Vec<u32>>,
    /// Per list, its slots' vectors in list order, once a search has scanned it (see the
    /// module documentation).
    copies: Vec<OnceLock<Vec<f32>>>,
    untrained: Vec<u32>,
}

impl IvfIndex {
    /// An empty, untrained index; parameters are assumed validated.
    pub fn new(dim: usize, kind: DistanceKind, nlist: usize, nprobe: usize, seed: u64) -> Self {
        IvfIndex {
            dim,
            kind,
            nlist,
            nprobe,
            seed,
            centres: Vec::new(),
            lists: Vec::new(),
            copies: Vec::new(),
            untrained: Vec::new(),
        }
    }

    /// Number of lists.
    pub fn nlist(&self) -> usize {
        self.nlist
    }

    /// True once k-means has run.
    pub fn is_trained(&self) -> bool {
        !self.centres.is_empty()
    }

    /// The list centres, `dim` floats each (empty before training).
    pub fn centres(&self) -> &[f32] {
        &self.centres
    }

    /// The slots of each list (empty before training).
    pub fn lists(&self) -> &[Vec<u32>] {
        &self.lists
    }

    /// The list a vector belongs to: its nearest centre. Only called once trained.
    pub fn list_of(&self, v: &[f32]) -> usize {
        kmeans::nearest(kernels(), self.kind, &self.centres, self.dim, v).0
    }

    /// Points needed before training: 39 per list.
    pub fn train_threshold(&self) -> usize {
        self.nlist * MIN_POINTS_PER_LIST
    }

    /// Number of slots indexed.
    pub fn len(&self) -> usize {
        self.untrained.len() + self.lists.iter().map(Vec::len).sum::<usize>()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replaces the content with `slots`, training k-means when there are enough of them.
    pub fn build(&mut self, arena: &VectorArena, slots: &[u32]) {
        self.centres.clear();
        self.lists.clear();
        self.copies.clear();
        self.untrained = slots.to_vec();
        if slots.len() >= self.train_threshold() {
            self.train(arena);
        }
    }

    /// Trains on the untrained list and distributes it into the lists.
    fn train(&mut self, arena: &VectorArena) {
        let points = std::mem::take(&mut self.untrained);
        self.centres = kmeans::train(arena, &points, self.nlist, self.kind, self.seed);
        self.lists = vec![Vec::new(); self.nlist];
        let assigned = kmeans::assign_all(arena, &points, &self.centres, self.kind);
        for (s, c) in points.into_iter().zip(assigned) {
            self.lists[c].push(s);
        }
        self.copies = empty_copies(self.nlist);
        tracing::debug!(nlist = self.nlist, points = self.len(), "IVF trained");
    }

    /// Adds one slot: into its nearest list when trained, else into the untrained list (which
    /// triggers training once it is large enough).
    ///
    /// Returns the list the slot joined when the index was already trained (`None` while it
    /// is not, including the add that trains it), so that codes relative to list centres need
    /// not search the centres again.
    pub fn add(&mut self, arena: &VectorArena, slot: u32) -> Option<usize> {
        if self.is_trained() {
            let v = arena.get(slot);
            let c = self.list_of(v);
            self.lists[c].push(slot);
            if let Some(copy) = self.copies[c].get_mut() {
                copy.extend_from_slice(v);
            }
            Some(c)
        } else {
            self.untrained.push(slot);
            if self.untrained.len() >= self.train_threshold() {
                self.train(arena);
            }
            None
        }
    }

    /// The `k` nearest accepted slots among the `nprobe` nearest lists (default: the index's).
    pub fn search(
        &self,
        arena: &VectorArena,
        query: &[f32],
        k: usize,
        nprobe: Option<usize>,
        accept: &dyn Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        if !self.is_trained() {
            return exact_search(arena, self.kind, query, k, &self.untrained, accept);
        }
        let kern = kernels();
        let mut top = TopK::new(k);
        for list in self.probe(query, nprobe) {
            let slots = &self.lists[list as usize];
            let vectors = self.copies[list as usize].get_or_init(|| {
                let mut copy = Vec::with_capacity(slots.len() * self.dim);
                for (i, &s) in slots.iter().enumerate() {
                    // Scattered vectors each start with a wait on memory; fetching the next
                    // one while this one is copied hides part of it.
                    if let Some(&next) = slots.get(i + 1) {
                        arena.prefetch(next);
                    }
                    copy.extend_from_slice(arena.get(s));
                }
                copy
            });
            for (&s, v) in slots.iter().zip(vectors.chunks_exact(self.dim)) {
                if accept(s) {
                    top.push(self.kind.eval(kern, query, v), s);
                }
            }
        }
        top.into_sorted()
    }

    /// Calls `f` with every accepted slot of the `nprobe` lists nearest to `query` (every
    /// accepted slot while untrained): the scan both exact and quantised searches run.
    pub(crate) fn visit(
        &self,
        query: &[f32],
        nprobe: Option<usize>,
        accept: &dyn Fn(u32) -> bool,
        mut f: impl FnMut(u32),
    ) {
        if !self.is_trained() {
            self.untrained
                .iter()
                .copied()
                .filter(|&s| accept(s))
                .for_each(f);
            return;
        }
        for list in self.probe(query, nprobe) {
            for &s in &self.lists[list as usize] {
                if accept(s) {
                    f(s);
                }
            }
        }
    }

    /// The `nprobe` lists (default: the index's) whose centres are nearest to `query`, nearest
    /// first. Only called once trained.
    fn probe(&self, query: &[f32], nprobe: Option<usize>) -> Vec<u32> {
        let kern = kernels();
        let nprobe = nprobe.unwrap_or(self.nprobe).clamp(1, self.nlist);
        let mut probe = TopK::new(nprobe);
        for (i, c) in self.centres.chunks_exact(self.dim).enumerate() {
            probe.push(self.kind.eval(kern, query, c), i as u32);
        }
        probe
            .into_sorted()
            .into_iter()
            .map(|(list, _)| list)
            .collect()
    }

    /// The index body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        write_header(&mut w, self.dim, self.kind);
        w.u64(self.nlist as u64);
        w.u64(self.seed);
        w.f32s(&self.centres);
        w.u32s(&self.untrained);
        w.u64(self.lists.len() as u64);
        for l in &self.lists {
            w.u32s(l);
        }
        w.buf
    }

    /// Reads a body written by `to_bytes`.
    pub fn from_bytes(
        dim: usize,
        kind: DistanceKind,
        nlist: usize,
        nprobe: usize,
        bytes: &[u8],
    ) -> Result<Self, String> {
        let mut r = Reader::new(bytes);
        read_header(&mut r, dim, kind)?;
        let body_nlist = r.u64()?;
        if body_nlist != nlist as u64 {
            return Err(format!(
                "IVF body has nlist = {body_nlist}, spec says {nlist}"
            ));
        }
        let seed = r.u64()?;
        let centres = r.f32s()?;
        let untrained = r.u32s()?;
        let n_lists = r.len(8)?;
        let lists = (0..n_lists)
            .map(|_| r.u32s())
            .collect::<Result<Vec<_>, _>>()?;
        r.finish()?;
        let trained_ok = centres.len() == nlist * dim && lists.len() == nlist;
        let untrained_ok = centres.is_empty() && lists.is_empty();
        if !(trained_ok || untrained_ok) {
            return Err("IVF body has inconsistent centre or list counts".into());
        }
        Ok(IvfIndex {
            dim,
            kind,
            nlist,
            nprobe,
            seed,
            centres,
            copies: empty_copies(lists.len()),
            lists,
            untrained,
        })
    }

    /// Bytes held, the list copies made so far included.
    pub fn memory_bytes(&self) -> usize {
        self.centres.capacity() * 4
            + self.untrained.capacity() * 4
            + self
                .lists
                .iter()
                .map(|l| l.capacity() * 4 + 24)
                .sum::<usize>()
            + self
                .copies
                .iter()
                .map(|c| c.get().map_or(0, |v| v.capacity() * 4) + 32)
                .sum::<usize>()
    }
}

/// One not yet made copy per list.
fn empty_copies(nlist: usize) -> Vec<OnceLock<Vec<f32>>> {
    (0..nlist).map(|_| OnceLock::new()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::testutil::*;
    use crate::index::{AnyIndex, IndexSpec, IvfParams, QueryParams};

    #[test]
    fn recall_at_default_settings_l2() {
        let pts = clustered(10_000, 32, 40, 0.25, 1);
        let arena = arena_of(&pts);
        // The defaults (nlist 256, nprobe 16): 10,000 points are just enough to train.
        let idx = built(&IndexSpec::default_ivf(), &arena, DistanceKind::L2Squared);
        let AnyIndex::Ivf(ivf) = &idx else {
            unreachable!()
        };
        assert!(ivf.is_trained());
        let queries = clustered(200, 32, 40, 0.25, 1_001);
        let label = "IVF recall at nlist 256, nprobe 16:";
        assert_recall10(label, &idx, &arena, DistanceKind::L2Squared, &queries, 0.90);
        let all = QueryParams {
            nprobe: Some(256),
            ..Default::default()
        };
        let r = recall10(&idx, &arena, DistanceKind::L2Squared, &queries, &all);
        assert_eq!(r, 1.0, "probing every list is exact");
    }

    #[test]
    fn untrained_is_exact_and_add_trains() {
        let pts = clustered(3_000, 16, 10, 0.3, 2);
        let arena = arena_of(&pts);
        let mut idx = AnyIndex::new(
            &IndexSpec::Ivf(IvfParams {
                nlist: 64,
                nprobe: 2,
            }),
            16,
            DistanceKind::L2Squared,
            7,
        );
        let threshold = 64 * MIN_POINTS_PER_LIST;
        for s in 0..threshold as u32 - 1 {
            idx.add(&arena, s);
        }
        let queries = clustered(50, 16, 10, 0.3, 3);
        let r = recall_where(&idx, &arena, DistanceKind::L2Squared, &queries, &|s| {
            s < threshold as u32 - 1
        });
        assert_eq!(r, 1.0);
        for s in threshold as u32 - 1..3_000 {
            idx.add(&arena, s);
        }
        let AnyIndex::Ivf(ivf) = &idx else {
            unreachable!()
        };
        assert!(ivf.is_trained());
        assert_eq!(ivf.len(), 3_000);
    }

    #[test]
    fn list_copies_answer_as_the_vectors_in_place_do_after_adds_and_reloads() {
        let pts = clustered(3_000, 16, 12, 0.3, 6);
        let arena = arena_of(&pts);
        let queries = clustered(40, 16, 12, 0.3, 7);
        let odd = |s: u32| s % 2 == 1;
        // A reloaded index has no copies until it searches, so its first search of each list
        // reads every vector in place: the reference for the index whose copies are older.
        let reloaded = |ivf: &IvfIndex| {
            IvfIndex::from_bytes(16, DistanceKind::L2Squared, 16, 3, &ivf.to_bytes()).unwrap()
        };
        let mut ivf = IvfIndex::new(16, DistanceKind::L2Squared, 16, 3, 8);
        ivf.build(&arena, &(0..2_000).collect::<Vec<u32>>());
        let before = ivf.memory_bytes();
        let reference = reloaded(&ivf);
        for q in &queries {
            let got = ivf.search(&arena, q, 10, None, &odd);
            assert_eq!(got, reference.search(&arena, q, 10, None, &odd));
        }
        assert!(
            ivf.memory_bytes() >= before + 16 * 4 * 500,
            "the scanned lists were copied and counted"
        );
        // Adds extend the copies the searches made (and skip the lists not copied yet).
        for s in 2_000..3_000 {
            ivf.add(&arena, s);
        }
        for nprobe in [None, Some(16)] {
            let reference = reloaded(&ivf);
            for q in &queries {
                let got = ivf.search(&arena, q, 10, nprobe, &odd);
                assert_eq!(got, reference.search(&arena, q, 10, nprobe, &odd));
                assert!(got.iter().all(|&(s, _)| odd(s)));
            }
        }
        for s in (2_000..3_000).step_by(41) {
            assert_eq!(
                ivf.search(&arena, arena.get(s), 1, Some(16), &|_| true)[0].0,
                s
            );
        }
    }

    #[test]
    fn add_reports_the_list_it_joined_once_trained() {
        let pts = clustered(2_000, 8, 6, 0.3, 4);
        let arena = arena_of(&pts);
        let mut ivf = IvfIndex::new(8, DistanceKind::L2Squared, 8, 2, 5);
        let threshold = ivf.train_threshold() as u32;
        for s in 0..threshold - 1 {
            assert_eq!(ivf.add(&arena, s), None, "untrained");
        }
        assert_eq!(ivf.add(&arena, threshold - 1), None, "the add that trains");
        assert!(ivf.is_trained());
        for s in threshold..2_000 {
            let list = ivf.add(&arena, s).expect("trained");
            assert_eq!(list, ivf.list_of(arena.get(s)));
            assert_eq!(ivf.lists()[list].last(), Some(&s));
        }
    }
}
