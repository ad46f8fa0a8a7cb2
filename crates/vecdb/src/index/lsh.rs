//! Locality-sensitive hashing with multi-probe and exact re-ranking.
//!
//! - `NegDot` (inner product, cosine): random-hyperplane hashing (SimHash). Each table hashes a
//!   vector to `bits` sign bits of projections on gaussian directions; vectors at a small angle
//!   share most bits. For raw inner product (unnormalised vectors) this only approximates the
//!   angle, so recall is lower than on cosine data.
//! - `L2Squared`: p-stable hashing (E2LSH). Each of the `bits` functions is
//!   `floor(a.x / w + b)` with gaussian `a` and uniform `b`, so close points fall in the same or
//!   a neighbouring interval. `w` is `bucket_width` times the data's typical nearest-neighbour
//!   distance, estimated from a sample of the first points, so the default width works whatever
//!   the scale of the data. Until that many points exist (`CALIBRATION_POINTS`) slots wait in a
//!   pending list that is scanned exactly.
//!
//! Multi-probe (Lv et al., 2007): besides the query's own bucket, each table probes the
//! `probes` buckets whose perturbations are least unlikely: sign bits whose projection is
//! nearest zero are flipped first (SimHash), and intervals whose boundary is nearest are stepped
//! over first (E2LSH), enumerated in order of total score with the shift/expand heap.
//! Candidates from all tables are de-duplicated and re-ranked by exact distance.

use super::codec::{Reader, Writer};
use super::topk::TopK;
use super::{read_header, write_header, DistanceKind, VectorArena};
use crate::distance::{kernels, Kernels};
use crate::index::LshParams;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Default number of tables.
pub const DEFAULT_TABLES: usize = 16;
/// Default hash functions per table.
pub const DEFAULT_BITS: usize = 12;
/// Default extra buckets probed per table.
pub const DEFAULT_PROBES: usize = 2;
/// Default E2LSH bucket width, in typical nearest-neighbour distances.
pub const DEFAULT_BUCKET_WIDTH: f32 = 4.0;

/// Points needed (L2 only) before the bucket width is calibrated and hashing starts.
pub const CALIBRATION_POINTS: usize = 256;

/// The LSH index. See the module documentation.
#[derive(Clone, Debug)]
pub struct LshIndex {
    dim: usize,
    kind: DistanceKind,
    params: LshParams,
    /// `tables * bits * dim` gaussian components.
    proj: Vec<f32>,
    /// `tables * bits` offsets in [0, 1) (E2LSH only).
    offsets: Vec<f32>,
    /// Absolute E2LSH bucket width; 0 until calibrated (always 0 for SimHash).
    width: f32,
    buckets: Vec<HashMap<u64, Vec<u32>>>,
    pending: Vec<u32>,
    count: usize,
}

/// One possible change of one hash function's value, with how unlikely it is.
#[derive(Clone, Copy)]
struct Atom {
    score: f32,
    func: usize,
    delta: i32,
}

impl LshIndex {
    /// An empty index with projections drawn from `seed`; parameters are assumed validated.
    pub fn new(dim: usize, kind: DistanceKind, params: LshParams, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let nfun = params.tables * params.bits;
        let proj = (0..nfun * dim).map(|_| gaussian(&mut rng)).collect();
        let offsets = (0..nfun).map(|_| rng.gen::<f32>()).collect();
        LshIndex {
            dim,
            kind,
            params,
            proj,
            offsets,
            width: 0.0,
            buckets: vec![HashMap::new(); params.tables],
            pending: Vec::new(),
            count: 0,
        }
    }

    /// Number of slots indexed.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn ready(&self) -> bool {
        self.kind == DistanceKind::NegDot || self.width > 0.0
    }

    /// Replaces the content with `slots`.
    pub fn build(&mut self, arena: &VectorArena, slots: &[u32]) {
        self.buckets = vec![HashMap::new(); self.params.tables];
        self.pending.clear();
        self.width = 0.0;
        self.count = 0;
        for &s in slots {
            self.add(arena, s);
        }
    }

    /// Adds one slot; with L2 before calibration it waits in the exactly-scanned pending list.
    pub fn add(&mut self, arena: &VectorArena, slot: u32) {
        self.count += 1;
        if self.ready() {
            self.hash_in(arena, slot);
            return;
        }
        self.pending.push(slot);
        if self.pending.len() >= CALIBRATION_POINTS {
            self.calibrate(arena);
            for s in std::mem::take(&mut self.pending) {
                self.hash_in(arena, s);
            }
        }
    }

    /// Sets the E2LSH width from the median nearest-neighbour distance within the pending
    /// points (an over-estimate for the full data set, which multi-probe makes up for).
    fn calibrate(&mut self, arena: &VectorArena) {
        let kern = kernels();
        let sample = &self.pending[..self.pending.len().min(CALIBRATION_POINTS)];
        let mut nn: Vec<f32> = sample
            .iter()
            .map(|&a| {
                sample
                    .iter()
                    .filter(|&&b| b != a)
                    .map(|&b| kern.l2_squared(arena.get(a), arena.get(b)))
                    .fold(f32::INFINITY, f32::min)
                    .sqrt()
            })
            .filter(|d| d.is_finite() && *d > 0.0)
            .collect();
        nn.sort_unstable_by(f32::total_cmp);
        let scale = nn.get(nn.len() / 2).copied().unwrap_or(1.0);
        self.width = self.params.bucket_width * scale;
        tracing::debug!(width = self.width, "LSH bucket width calibrated");
    }

    fn hash_in(&mut self, arena: &VectorArena, slot: u32) {
        let kern = kernels();
        let mut vals = Vec::with_capacity(self.params.bits);
        for t in 0..self.params.tables {
            self.project(kern, t, arena.get(slot), &mut vals);
            let key = self.key(t, &vals, &[]);
            self.buckets[t].entry(key).or_default().push(slot);
        }
    }

    /// The raw projections of `v` for table `t` (E2LSH: already divided by the width and
    /// shifted by the offsets, so the hash value is the floor).
    fn project(&self, kern: &Kernels, t: usize, v: &[f32], out: &mut Vec<f32>) {
        out.clear();
        let bits = self.params.bits;
        for j in 0..bits {
            let f = t * bits + j;
            let p = kern.dot(&self.proj[f * self.dim..(f + 1) * self.dim], v);
            out.push(match self.kind {
                DistanceKind::NegDot => p,
                DistanceKind::L2Squared => p / self.width + self.offsets[f],
            });
        }
    }

    /// The bucket key of projections `vals` changed by the atoms in `perturb`.
    fn key(&self, t: usize, vals: &[f32], perturb: &[Atom]) -> u64 {
        match self.kind {
            DistanceKind::NegDot => {
                let mut key = vals
                    .iter()
                    .enumerate()
                    .fold(0u64, |k, (j, &p)| k | (u64::from(p >= 0.0) << j));
                for a in perturb {
                    key ^= 1 << a.func;
                }
                key
            }
            DistanceKind::L2Squared => {
                let mut h = 0xcbf2_9ce4_8422_2325u64 ^ t as u64;
                for (j, &p) in vals.iter().enumerate() {
                    let delta: i32 = perturb
                        .iter()
                        .filter(|a| a.func == j)
                        .map(|a| a.delta)
                        .sum();
                    let v = (p.floor() as i64 as i32).wrapping_add(delta);
                    h = (h ^ v as u32 as u64).wrapping_mul(0x0000_0100_0000_01b3);
                }
                h ^ (h >> 29)
            }
        }
    }

    /// The possible single-function changes for projections `vals`, least unlikely first.
    fn atoms(&self, vals: &[f32]) -> Vec<Atom> {
        let mut atoms = Vec::with_capacity(vals.len() * 2);
        for (j, &p) in vals.iter().enumerate() {
            match self.kind {
                DistanceKind::NegDot => atoms.push(Atom {
                    score: p * p,
                    func: j,
                    delta: 0,
                }),
                DistanceKind::L2Squared => {
                    let frac = p - p.floor();
                    atoms.push(Atom {
                        score: frac * frac,
                        func: j,
                        delta: -1,
                    });
                    atoms.push(Atom {
                        score: (1.0 - frac) * (1.0 - frac),
                        func: j,
                        delta: 1,
                    });
                }
            }
        }
        atoms.sort_unstable_by(|a, b| a.score.total_cmp(&b.score));
        atoms
    }

    /// The `k` nearest accepted slots among the candidates of the probed buckets (and the
    /// pending list), ranked exactly.
    pub fn search(
        &self,
        arena: &VectorArena,
        query: &[f32],
        k: usize,
        probes: Option<usize>,
        accept: &dyn Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        let kern = kernels();
        let probes = probes.unwrap_or(self.params.probes);
        let mut cands: Vec<u32> = self.pending.clone();
        if self.ready() {
            let mut vals = Vec::with_capacity(self.params.bits);
            for t in 0..self.params.tables {
                self.project(kern, t, query, &mut vals);
                let atoms = self.atoms(&vals);
                let mut visit = |perturb: &[Atom]| {
                    let key = self.key(t, &vals, perturb);
                    if let Some(b) = self.buckets[t].get(&key) {
                        cands.extend_from_slice(b);
                    }
                };
                visit(&[]);
                probe_sequence(&atoms, probes, &mut visit);
            }
        }
        cands.sort_unstable();
        cands.dedup();
        let mut top = TopK::new(k);
        for s in cands {
            if accept(s) {
                top.push(self.kind.eval(kern, query, arena.get(s)), s);
            }
        }
        top.into_sorted()
    }

    /// The index body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        write_header(&mut w, self.dim, self.kind);
        w.u64(self.params.tables as u64);
        w.u64(self.params.bits as u64);
        w.f32(self.width);
        w.u64(self.count as u64);
        w.f32s(&self.proj);
        w.f32s(&self.offsets);
        w.u32s(&self.pending);
        for table in &self.buckets {
            // Sorted keys make the body deterministic for a given content.
            let mut keys: Vec<&u64> = table.keys().collect();
            keys.sort_unstable();
            w.u64(keys.len() as u64);
            for key in keys {
                w.u64(*key);
                w.u32s(&table[key]);
            }
        }
        w.buf
    }

    /// Reads a body written by `to_bytes`, checking it against the spec's parameters.
    pub fn from_bytes(
        dim: usize,
        kind: DistanceKind,
        params: LshParams,
        bytes: &[u8],
    ) -> Result<Self, String> {
        let mut r = Reader::new(bytes);
        read_header(&mut r, dim, kind)?;
        let (tables, bits) = (r.u64()?, r.u64()?);
        if tables != params.tables as u64 || bits != params.bits as u64 {
            return Err(format!(
                "LSH body has {tables} tables of {bits} bits, spec says {} of {}",
                params.tables, params.bits
            ));
        }
        let width = r.f32()?;
        let count = r.u64()? as usize;
        let proj = r.f32s()?;
        let offsets = r.f32s()?;
        let pending = r.u32s()?;
        let nfun = params.tables * params.bits;
        if proj.len() != nfun * dim || offsets.len() != nfun || !width.is_finite() {
            return Err("LSH body has inconsistent projections".into());
        }
        let mut buckets = Vec::with_capacity(params.tables);
        for _ in 0..params.tables {
            let n = r.len(16)?;
            let mut table = HashMap::with_capacity(n);
            for _ in 0..n {
                let key = r.u64()?;
                table.insert(key, r.u32s()?);
            }
            buckets.push(table);
        }
        r.finish()?;
        Ok(LshIndex {
            dim,
            kind,
            params,
            proj,
            offsets,
            width,
            buckets,
            pending,
            count,
        })
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        let tables: usize = self
            .buckets
            .iter()
            .map(|t| t.capacity() * 40 + t.values().map(|v| v.capacity() * 4).sum::<usize>())
            .sum();
        (self.proj.capacity() + self.offsets.capacity() + self.pending.capacity()) * 4 + tables
    }
}

/// Calls `visit` with up to `probes` valid perturbation sets, in increasing total score, using
/// the shift/expand enumeration of Lv et al. A set that changes one function twice is invalid
/// and skipped (its children are still explored).
fn probe_sequence(atoms: &[Atom], probes: usize, visit: &mut impl FnMut(&[Atom])) {
    if probes == 0 || atoms.is_empty() {
        return;
    }
    // Heap entries: (score, positions into `atoms`, the last one the largest).
    let mut heap: BinaryHeap<Reverse<(OrdF32, Vec<usize>)>> = BinaryHeap::new();
    heap.push(Reverse((OrdF32(atoms[0].score), vec![0])));
    let mut done = 0;
    let mut set = Vec::new();
    // Bounds the work when many generated sets are invalid.
    let mut budget = probes * 8 + 64;
    while let Some(Reverse((OrdF32(score), pos))) = heap.pop() {
        budget -= 1;
        let last = *pos.last().expect("sets are never empty");
        if last + 1 < atoms.len() {
            let mut shifted = pos.clone();
            *shifted.last_mut().expect("non-empty") = last + 1;
            let s = score - atoms[last].score + atoms[last + 1].score;
            heap.push(Reverse((OrdF32(s), shifted)));
            let mut expanded = pos.clone();
            expanded.push(last + 1);
            heap.push(Reverse((OrdF32(score + atoms[last + 1].score), expanded)));
        }
        set.clear();
        set.extend(pos.iter().map(|&p| atoms[p]));
        let valid = set
            .iter()
            .enumerate()
            .all(|(i, a)| set[..i].iter().all(|b| b.func != a.func));
        if valid {
            visit(&set);
            done += 1;
        }
        if done >= probes || budget == 0 {
            break;
        }
    }
}

/// An `f32` with a total order, for the probe heap.
#[derive(Clone, Copy, PartialEq)]
struct OrdF32(f32);

impl Eq for OrdF32 {}

impl PartialOrd for OrdF32 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrdF32 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// A standard normal sample (Box-Muller).
fn gaussian(rng: &mut impl Rng) -> f32 {
    let u1: f32 = 1.0 - rng.gen::<f32>();
    let u2: f32 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests;
