//! RaBitQ codes (Gao and Long, "RaBitQ: Quantizing High-Dimensional Vectors with a Theoretical
//! Error Bound for Approximate Nearest Neighbor Search", SIGMOD 2024).
//!
//! Each vector `v` is stored relative to a centre `c` (the mean of the encoded vectors, or under
//! a trained IVF index the centre of its list, as in the paper's IVF-RaBitQ) as its residual's
//! length `|v - c|` and one bit per dimension of the unit residual
//! `o = (v - c) / |v - c|` after a random rotation `P`: bit `i` is set when `(P o)_i > 0`. The
//! bits stand for the unit vector `ō` whose entries are `±1/sqrt(D)`. The paper's estimator of
//! `<o, q>` for a unit query `q` is `<ō, P q> / <ō, P o>`: unbiased, and with high probability
//! within `EPSILON0 * sqrt(1 - <ō, Po>^2) / <ō, Po> / sqrt(D - 1)` of the truth. Each code keeps
//! `<ō, P o>` (as its inverse) and that bound.
//!
//! Distances follow from `<o, q>`: with `r = v - c` and `s = x - c` for a query `x`,
//! `|v - x|^2 = |r|^2 + |s|^2 - 2 |r| |s| <o, ŝ>` and `<v, x> = |r| |s| <o, ŝ> + <r, c> + <c, x>`;
//! `<r, c>` is stored per code for the inner-product kind.
//!
//! As in the paper, the rotated query is quantised to four bits per dimension, so that
//! `<bits, Pq>` becomes four population counts of the code against the query's bit planes
//! ([`crate::distance::Kernels::bit_planes`]); at 1,280 dimensions a code is 160 bytes plus 16 of
//! factors and 4 of centre number, 3.5 % of the f32 vector.
//!
//! The rotation is a product of four rounds of random sign flips, a normalised fast Hadamard
//! transform over a power-of-two block and a 45-degree rotation of the two halves into each
//! other (the structure of the RaBitQ library's FHT-Kac rotator): orthogonal, `O(D log D)` per
//! vector, and defined by a seed, so a snapshot stores the seed rather than a `D x D` matrix.
//! Dimensions are padded with zeros to a multiple of 64, one code word.

use super::super::codec::{Reader, Writer};
use super::super::{DistanceKind, VectorArena};
use super::{Added, Presence};
use crate::distance::{prefetch, Kernels};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The paper's confidence constant of the error bound. The estimate's error is close to normal
/// with standard deviation `bound / EPSILON0`, so 1.9 is a two-sided 94 % interval; a true
/// neighbour is lost only when its error on the pessimistic side also exceeds its margin over
/// the k-th best, which the paper measured (and `bound_reranking_is_exact_search` checks) to
/// cost no measurable recall.
pub const EPSILON0: f32 = 1.9;
/// The confidence constant of the lower bounds that prune an HNSW walk ([`RabitqBounds`]). A
/// bound that fails there only drops a neighbour from the walk, and the walk keeps `ef` others,
/// so a narrower interval than [`EPSILON0`] pays: on fashion-mnist-1280-cosine and -784,
/// 1.14 (0.6 x 1.9) gave the recall@10 of 1.9 within 0.001 at ef 12-48 while reading 16-22 %
/// fewer vectors, and 0.57 began to lose recall (bench/README.md).
pub const WALK_EPSILON: f32 = 1.14;
/// Rounds of sign flips, Hadamard transform and half mixing in the rotation.
const ROUNDS: usize = 4;
/// Largest value of a four-bit query component.
const QUERY_LEVELS: f32 = 15.0;
/// Floats kept per code: `|r|`, `1 / <ō, Po>`, the error bound of `<o, q>`, and `<r, c>`.
const FACTORS: usize = 4;
/// Seed of the rotation of a new collection's codes. Fixed, so that a rebuilt index encodes as
/// before; stored with the codes, so that it could change without breaking old snapshots.
const DEFAULT_SEED: u64 = 0x5241_4269_7451_0001;

/// The random orthogonal rotation, over `pdim` (the dimension padded to a multiple of 64).
#[derive(Clone, Debug)]
struct Rotation {
    seed: u64,
    pdim: usize,
    /// `ROUNDS * pdim` random signs, one round after another.
    signs: Vec<f32>,
}

impl Rotation {
    fn new(dim: usize, seed: u64) -> Self {
        let pdim = dim.div_ceil(64).max(1) * 64;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let signs = (0..ROUNDS * pdim)
            .map(|_| if rng.gen::<bool>() { 1.0 } else { -1.0 })
            .collect();
        Rotation { seed, pdim, signs }
    }

    /// Rotates `x` (`pdim` floats) in place.
    fn apply(&self, x: &mut [f32]) {
        let n = self.pdim;
        let block = 1usize << n.ilog2();
        let half = n / 2;
        let mix = std::f32::consts::FRAC_1_SQRT_2;
        for (round, signs) in self.signs.chunks_exact(n).enumerate() {
            for (v, s) in x.iter_mut().zip(signs) {
                *v *= s;
            }
            // Alternate the block between the head and the tail, so that when `pdim` is not a
            // power of two every coordinate is mixed by some transform.
            if round % 2 == 0 {
                hadamard(&mut x[..block]);
            } else {
                hadamard(&mut x[n - block..]);
            }
            let (lo, hi) = x.split_at_mut(half);
            for (a, b) in lo.iter_mut().zip(hi) {
                let (p, q) = (*a, *b);
                *a = (p + q) * mix;
                *b = (p - q) * mix;
            }
        }
    }
}

/// The normalised (orthogonal) fast Walsh-Hadamard transform of a power-of-two length slice.
fn hadamard(x: &mut [f32]) {
    let n = x.len();
    let mut h = 1;
    if n >= 8 {
        // The first three levels within each run of eight, in registers: the general loop
        // below only vectorises once its halves are at least eight floats long.
        for c in x.chunks_exact_mut(8) {
            let a: [f32; 8] = [
                c[0] + c[1],
                c[0] - c[1],
                c[2] + c[3],
                c[2] - c[3],
                c[4] + c[5],
                c[4] - c[5],
                c[6] + c[7],
                c[6] - c[7],
            ];
            let b: [f32; 8] = [
                a[0] + a[2],
                a[1] + a[3],
                a[0] - a[2],
                a[1] - a[3],
                a[4] + a[6],
                a[5] + a[7],
                a[4] - a[6],
                a[5] - a[7],
            ];
            c.copy_from_slice(&[
                b[0] + b[4],
                b[1] + b[5],
                b[2] + b[6],
                b[3] + b[7],
                b[0] - b[4],
                b[1] - b[5],
                b[2] - b[6],
                b[3] - b[7],
            ]);
        }
        h = 8;
    }
    while h < n {
        for chunk in x.chunks_exact_mut(2 * h) {
            let (a, b) = chunk.split_at_mut(h);
            for (p, q) in a.iter_mut().zip(b) {
                let (u, v) = (*p, *q);
                *p = u + v;
                *q = u - v;
            }
        }
        h *= 2;
    }
    let scale = 1.0 / (n as f32).sqrt();
    for v in x {
        *v *= scale;
    }
}

/// RaBitQ codes of the indexed slots, with the centres they are relative to.
#[derive(Clone, Debug)]
pub struct RabitqCodes {
    dim: usize,
    kind: DistanceKind,
    rot: Rotation,
    /// Code words per slot (`pdim / 64`).
    words: usize,
    /// The centres, `dim` floats each: none until trained; one, the mean of the encoded
    /// vectors, for a flat scan or an IVF index before it trains; the IVF's list centres once
    /// it has (`partitioned`), as in the paper's IVF-RaBitQ, so that residuals are short.
    centres: Vec<f32>,
    /// Each centre padded and rotated (`pdim` floats each): since the rotation is linear,
    /// `P(x - c) = Px - Pc`, and a query is rotated once whatever lists it visits.
    rotated_centres: Vec<f32>,
    /// True when the centres are an IVF index's lists, which only that index retrains.
    partitioned: bool,
    /// Per slot: the centre its code is relative to.
    centre_of: Vec<u32>,
    /// `words` per slot, slot-addressed; slots not encoded hold zeros.
    bits: Vec<u64>,
    /// `FACTORS` per slot.
    factors: Vec<f32>,
    /// Which slots are encoded; `trained_on` counts those the centres were last computed from.
    present: Presence,
}

/// A query prepared for code distances relative to one centre.
#[derive(Debug)]
pub(crate) struct RabitqQuery {
    /// Four bit planes of the quantised rotated unit query, `words` each.
    planes: Vec<u64>,
    /// The quantised query's components are `low + delta * level`.
    low: f32,
    delta: f32,
    /// Sum of the quantised components over the padded dimension.
    sum: f32,
    /// `|x - c|`.
    norm: f32,
    /// L2: `|x - c|^2`; inner product: `<c, x>`.
    shift: f32,
}

/// A query rotated once, prepared against each centre its slots need as the scan reaches them
/// (a scan visits a list's slots together, so each probed centre is prepared about once, and
/// the preparation reuses this search's buffers).
pub(crate) struct RabitqSearch<'a> {
    codes: &'a RabitqCodes,
    query: &'a [f32],
    /// `P` applied to the zero-padded query.
    rotated: Vec<f32>,
    /// The centre `prepared` was made for.
    current: Option<u32>,
    prepared: RabitqQuery,
    /// Scratch: the unit residual of the current centre.
    unit: Vec<f32>,
}

impl RabitqSearch<'_> {
    fn prepared(&mut self, kern: &Kernels, slot: u32) -> &RabitqQuery {
        let centre = self.codes.centre_of[slot as usize];
        if self.current != Some(centre) {
            self.codes.prepare_into(
                kern,
                self.query,
                &self.rotated,
                centre,
                &mut self.unit,
                &mut self.prepared,
            );
            self.current = Some(centre);
        }
        &self.prepared
    }

    /// The estimated distance to `slot`'s code.
    pub(crate) fn dist(&mut self, kern: &Kernels, slot: u32) -> f32 {
        let codes = self.codes;
        let q = self.prepared(kern, slot);
        codes.dist(kern, q, slot)
    }

    /// The estimated distance to `slot`'s code and the lower bound of the true distance.
    pub(crate) fn dist_and_lower_bound(&mut self, kern: &Kernels, slot: u32) -> (f32, f32) {
        let codes = self.codes;
        let q = self.prepared(kern, slot);
        codes.dist_and_lower_bound(kern, q, slot)
    }
}

/// A query prepared against codes relative to one centre, for lower bounds of true distances
/// (the pruning of an HNSW walk), together with the codes it was prepared for.
pub(crate) struct RabitqBounds<'a> {
    codes: &'a RabitqCodes,
    query: RabitqQuery,
}

impl RabitqBounds<'_> {
    /// A lower bound of the true distance from the query to `slot`'s vector: the paper's, with
    /// the walk's confidence constant [`WALK_EPSILON`] in place of [`EPSILON0`].
    #[inline(always)]
    pub(crate) fn lower_bound(&self, kern: &Kernels, slot: u32) -> f32 {
        let (ip, err, f) = self.codes.estimate(kern, &self.query, slot);
        let err = err * (WALK_EPSILON / EPSILON0);
        self.codes.distance(&self.query, (ip + err).min(1.0), f)
    }

    /// Hints the CPU to load `slot`'s whole code and its factors.
    #[inline(always)]
    pub(crate) fn prefetch(&self, slot: u32) {
        self.codes.prefetch(slot);
        self.codes.prefetch_rest(slot);
    }
}

impl RabitqCodes {
    /// No codes, untrained.
    pub fn new(dim: usize, kind: DistanceKind) -> Self {
        Self::with_seed(dim, kind, DEFAULT_SEED)
    }

    fn with_seed(dim: usize, kind: DistanceKind, seed: u64) -> Self {
        let rot = Rotation::new(dim, seed);
        RabitqCodes {
            dim,
            kind,
            words: rot.pdim / 64,
            rot,
            centres: Vec::new(),
            rotated_centres: Vec::new(),
            partitioned: false,
            centre_of: Vec::new(),
            bits: Vec::new(),
            factors: Vec::new(),
            present: Presence::default(),
        }
    }

    /// Number of encoded slots.
    pub fn len(&self) -> usize {
        self.present.len()
    }

    /// True when no slot is encoded.
    pub fn is_empty(&self) -> bool {
        self.present.is_empty()
    }

    /// True when the codes are relative to an IVF index's list centres.
    pub fn is_partitioned(&self) -> bool {
        self.partitioned
    }

    /// Number of centres.
    pub fn centre_count(&self) -> usize {
        self.centres.len() / self.dim
    }

    /// Bytes held by the codes, their factors, the centres and the rotation.
    pub fn memory_bytes(&self) -> usize {
        8 * self.bits.capacity()
            + self.present.memory_bytes()
            + 4 * (self.factors.capacity()
                + self.centre_of.capacity()
                + self.centres.capacity()
                + self.rotated_centres.capacity()
                + self.rot.signs.capacity())
    }

    #[inline(always)]
    fn row(&self, slot: u32) -> &[u64] {
        let start = slot as usize * self.words;
        &self.bits[start..start + self.words]
    }

    #[inline(always)]
    fn factors_of(&self, slot: u32) -> &[f32] {
        let start = slot as usize * FACTORS;
        &self.factors[start..start + FACTORS]
    }

    fn centre(&self, i: u32) -> &[f32] {
        let start = i as usize * self.dim;
        &self.centres[start..start + self.dim]
    }

    /// Replaces the centres and derives their rotations.
    fn set_centres(&mut self, centres: Vec<f32>) {
        let pdim = self.rot.pdim;
        self.rotated_centres = vec![0.0; centres.len() / self.dim * pdim];
        for (c, out) in centres
            .chunks_exact(self.dim)
            .zip(self.rotated_centres.chunks_exact_mut(pdim))
        {
            out[..self.dim].copy_from_slice(c);
            self.rot.apply(out);
        }
        self.centres = centres;
    }

    fn clear(&mut self) {
        self.bits.clear();
        self.factors.clear();
        self.present.clear();
        self.centre_of.clear();
    }

    /// Replaces every code: computes the centre of `slots` and encodes them.
    pub fn build(&mut self, arena: &VectorArena, slots: &[u32]) {
        self.clear();
        self.present.mark(slots);
        self.grow(self.present.slots());
        self.retrain(arena);
    }

    /// Replaces every code with codes relative to an IVF index's lists: `centres` holds one
    /// centre per list (`dim` floats each) and `lists` each list's slots.
    pub fn build_partitioned(&mut self, arena: &VectorArena, centres: &[f32], lists: &[Vec<u32>]) {
        self.clear();
        let all: Vec<u32> = lists.iter().flatten().copied().collect();
        self.present.mark(&all);
        self.grow(self.present.slots());
        self.set_centres(centres.to_vec());
        self.partitioned = true;
        let mut scratch = vec![0.0; self.rot.pdim];
        for (list, slots) in lists.iter().enumerate() {
            for &s in slots {
                self.encode(s, arena.get(s), list as u32, &mut scratch);
            }
        }
        self.present.trained();
        tracing::debug!(
            codes = self.present.len(),
            centres = lists.len(),
            "RaBitQ codes encoded per IVF list"
        );
    }

    /// Encodes one more slot relative to centre `centre` of a partitioned set.
    pub fn add_to(&mut self, arena: &VectorArena, slot: u32, centre: usize) {
        self.grow(slot as usize + 1);
        if !self.present.insert(slot) {
            return;
        }
        let mut scratch = vec![0.0; self.rot.pdim];
        self.encode(slot, arena.get(slot), centre as u32, &mut scratch);
    }

    /// Encodes one more slot. With one centre, the centre (and every code) is recomputed when
    /// the number of codes has doubled since the last training, as the SQ8 codes retrain their
    /// range; partitioned codes use the nearest list centre (the IVF index passes its own
    /// choice through [`RabitqCodes::add_to`] instead).
    pub fn add(&mut self, arena: &VectorArena, slot: u32) {
        if self.partitioned {
            let v = arena.get(slot);
            let nearest = (0..self.centre_count() as u32)
                .map(|c| (crate::distance::l2_squared(v, self.centre(c)), c))
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .map_or(0, |(_, c)| c as usize);
            return self.add_to(arena, slot, nearest);
        }
        self.grow(slot as usize + 1);
        match self.present.add(slot) {
            Added::Already => {}
            Added::Retrain => self.retrain(arena),
            Added::Encode => {
                let mut scratch = vec![0.0; self.rot.pdim];
                self.encode(slot, arena.get(slot), 0, &mut scratch);
            }
        }
    }

    fn grow(&mut self, slots: usize) {
        if self.centre_of.len() < slots {
            self.present.grow(slots);
            self.centre_of.resize(slots, 0);
            self.bits.resize(slots * self.words, 0);
            self.factors.resize(slots * FACTORS, 0.0);
        }
    }

    /// Computes the one centre of every encoded slot and re-encodes them all.
    fn retrain(&mut self, arena: &VectorArena) {
        self.partitioned = false;
        self.present.trained();
        if self.present.is_empty() {
            self.set_centres(Vec::new());
            return;
        }
        let mut sum = vec![0.0f64; self.dim];
        for s in self.present.iter() {
            for (a, &x) in sum.iter_mut().zip(arena.get(s)) {
                *a += f64::from(x);
            }
        }
        let count = self.present.len() as f64;
        self.set_centres(sum.iter().map(|a| (a / count) as f32).collect());
        let mut scratch = vec![0.0; self.rot.pdim];
        let slots: Vec<u32> = self.present.iter().collect();
        for s in slots {
            self.encode(s, arena.get(s), 0, &mut scratch);
        }
        tracing::debug!(codes = self.present.len(), "RaBitQ centre trained");
    }

    /// Writes `rotate((v - c) / |v - c|)` into `out` (`pdim` floats) and returns `|v - c|`.
    fn rotated_unit_residual(&self, v: &[f32], centre: u32, out: &mut [f32]) -> f32 {
        out.fill(0.0);
        let mut sq = 0.0f32;
        for ((o, &x), &c) in out.iter_mut().zip(v).zip(self.centre(centre)) {
            *o = x - c;
            sq += *o * *o;
        }
        let norm = sq.sqrt();
        if norm > 0.0 {
            for o in &mut out[..self.dim] {
                *o /= norm;
            }
            self.rot.apply(out);
        }
        norm
    }

    fn encode(&mut self, slot: u32, v: &[f32], centre: u32, scratch: &mut [f32]) {
        let norm = self.rotated_unit_residual(v, centre, scratch);
        let pdim = self.rot.pdim as f32;
        let start = slot as usize * self.words;
        let row = &mut self.bits[start..start + self.words];
        row.fill(0);
        let mut abs_sum = 0.0f32;
        for (i, &x) in scratch.iter().enumerate() {
            if x > 0.0 {
                row[i / 64] |= 1 << (i % 64);
            }
            abs_sum += x.abs();
        }
        // `<ō, Po>` is the mean absolute rotated component times sqrt(D); a vector equal to its
        // centre has no direction, and its distances do not depend on its bits (norm 0).
        let ip = if norm > 0.0 {
            (abs_sum / pdim.sqrt()).clamp(1e-6, 1.0)
        } else {
            1.0
        };
        let bound = EPSILON0 * (1.0 - ip * ip).max(0.0).sqrt() / ip / (pdim - 1.0).max(1.0).sqrt();
        let centre_dot = match self.kind {
            DistanceKind::NegDot => v
                .iter()
                .zip(self.centre(centre))
                .map(|(x, c)| (x - c) * c)
                .sum(),
            DistanceKind::L2Squared => 0.0,
        };
        self.centre_of[slot as usize] = centre;
        let f = &mut self.factors[slot as usize * FACTORS..(slot as usize + 1) * FACTORS];
        f.copy_from_slice(&[norm, 1.0 / ip, bound, centre_dot]);
    }

    /// `query` padded and rotated.
    fn rotate_query(&self, query: &[f32]) -> Vec<f32> {
        let mut rotated = vec![0.0; self.rot.pdim];
        rotated[..self.dim].copy_from_slice(query);
        self.rot.apply(&mut rotated);
        rotated
    }

    /// A search of codes relative to any of the centres. Only called when at least one slot
    /// is encoded (so the centres are known).
    pub(crate) fn searcher<'a>(&'a self, query: &'a [f32]) -> RabitqSearch<'a> {
        RabitqSearch {
            codes: self,
            query,
            rotated: self.rotate_query(query),
            current: None,
            prepared: self.empty_query(),
            unit: vec![0.0; self.rot.pdim],
        }
    }

    fn empty_query(&self) -> RabitqQuery {
        RabitqQuery {
            planes: vec![0; 4 * self.words],
            low: 0.0,
            delta: 0.0,
            sum: 0.0,
            norm: 0.0,
            shift: 0.0,
        }
    }

    /// Prepares `query` for [`RabitqCodes::dist`] on codes relative to the first centre (the
    /// only one unless the codes are partitioned; partitioned codes are searched through
    /// [`RabitqCodes::searcher`]). Only called when at least one slot is encoded.
    pub(crate) fn prepare(&self, kern: &Kernels, query: &[f32]) -> RabitqQuery {
        let mut out = self.empty_query();
        let mut unit = vec![0.0; self.rot.pdim];
        self.prepare_into(
            kern,
            query,
            &self.rotate_query(query),
            0,
            &mut unit,
            &mut out,
        );
        out
    }

    /// Prepares `query` for lower bounds ([`RabitqBounds`]). The codes must be relative to
    /// one centre (HNSW's codes are; only IVF partitions them) and hold at least one slot.
    pub(crate) fn bounds(&self, kern: &Kernels, query: &[f32]) -> RabitqBounds<'_> {
        debug_assert!(
            !self.partitioned,
            "bounds need codes relative to one centre"
        );
        RabitqBounds {
            codes: self,
            query: self.prepare(kern, query),
        }
    }

    /// Prepares the query, given rotated, against centre `centre`, into `out` (`unit` is
    /// scratch of `pdim` floats). Run once per probed list, so it allocates nothing.
    fn prepare_into(
        &self,
        kern: &Kernels,
        query: &[f32],
        rotated_query: &[f32],
        centre: u32,
        unit: &mut [f32],
        out: &mut RabitqQuery,
    ) {
        let pdim = self.rot.pdim;
        let pc = &self.rotated_centres[centre as usize * pdim..(centre as usize + 1) * pdim];
        for ((u, q), c) in unit.iter_mut().zip(rotated_query).zip(pc) {
            *u = q - c;
        }
        let norm = kern.dot(unit, unit).sqrt();
        let (mut lo, mut hi) = (0.0f32, 0.0f32);
        if norm > 0.0 {
            let inv = 1.0 / norm;
            for u in unit.iter_mut() {
                *u *= inv;
            }
            // Eight running extremes, so that the loop vectorises (`f32::min` on one
            // accumulator is a serial chain).
            let (mut los, mut his) = ([f32::INFINITY; 8], [f32::NEG_INFINITY; 8]);
            for c in unit.chunks_exact(8) {
                for i in 0..8 {
                    los[i] = if c[i] < los[i] { c[i] } else { los[i] };
                    his[i] = if c[i] > his[i] { c[i] } else { his[i] };
                }
            }
            lo = los.into_iter().fold(f32::INFINITY, f32::min);
            hi = his.into_iter().fold(f32::NEG_INFINITY, f32::max);
        }
        let delta = (hi - lo) / QUERY_LEVELS;
        let scale = if delta > 0.0 { 1.0 / delta } else { 0.0 };
        let words = self.words;
        let (p0, rest) = out.planes.split_at_mut(words);
        let (p1, rest) = rest.split_at_mut(words);
        let (p2, p3) = rest.split_at_mut(words);
        let mut level_sum = 0u32;
        for (w, block) in unit.chunks_exact(64).enumerate() {
            // Levels first, then the planes, in separate loops that the compiler vectorises.
            let mut levels = [0u8; 64];
            for (l, &u) in levels.iter_mut().zip(block) {
                // Rounded to the nearest of the 16 levels; the clamp only catches rounding at
                // the ends.
                *l = ((u - lo) * scale + 0.5).clamp(0.0, QUERY_LEVELS) as u8;
            }
            level_sum += levels.iter().map(|&l| u32::from(l)).sum::<u32>();
            let plane = |bit: u8| {
                levels
                    .iter()
                    .enumerate()
                    .fold(0u64, |acc, (i, &l)| acc | u64::from(l >> bit & 1) << i)
            };
            (p0[w], p1[w], p2[w], p3[w]) = (plane(0), plane(1), plane(2), plane(3));
        }
        out.low = lo;
        out.delta = delta;
        out.sum = lo * pdim as f32 + delta * level_sum as f32;
        out.norm = norm;
        out.shift = match self.kind {
            DistanceKind::L2Squared => norm * norm,
            DistanceKind::NegDot => kern.dot(self.centre(centre), query),
        };
    }

    /// The estimate of `<o, q̂>` for `slot` and its error bound.
    #[inline(always)]
    fn estimate(&self, kern: &Kernels, q: &RabitqQuery, slot: u32) -> (f32, f32, &[f32]) {
        let [ones, p0, p1, p2, p3] = kern.bit_planes(self.row(slot), &q.planes);
        let levels = p0 + 2 * p1 + 4 * p2 + 8 * p3;
        // <bits, q̄> for the quantised query q̄ = low + delta * level, then
        // <ō, q̄> = (2 <bits, q̄> - sum q̄) / sqrt(D).
        let bits_dot = q.low * ones as f32 + q.delta * levels as f32;
        let ob_q = (2.0 * bits_dot - q.sum) / (self.rot.pdim as f32).sqrt();
        let f = self.factors_of(slot);
        (ob_q * f[1], f[2], f)
    }

    /// The distance for an estimate `ip` of `<o, q̂>`.
    #[inline(always)]
    fn distance(&self, q: &RabitqQuery, ip: f32, f: &[f32]) -> f32 {
        let scaled = f[0] * q.norm * ip;
        match self.kind {
            DistanceKind::L2Squared => f[0] * f[0] + q.shift - 2.0 * scaled,
            DistanceKind::NegDot => -(scaled + f[3] + q.shift),
        }
    }

    /// The estimated distance from the prepared query to the code of `slot` (the query must be
    /// prepared against the slot's centre).
    #[inline(always)]
    pub(crate) fn dist(&self, kern: &Kernels, q: &RabitqQuery, slot: u32) -> f32 {
        let (ip, _, f) = self.estimate(kern, q, slot);
        self.distance(q, ip, f)
    }

    /// The estimated distance and the paper's lower bound of the true distance (the estimate
    /// of `<o, q̂>` raised by its error bound, and never above 1).
    #[inline(always)]
    pub(crate) fn dist_and_lower_bound(
        &self,
        kern: &Kernels,
        q: &RabitqQuery,
        slot: u32,
    ) -> (f32, f32) {
        let (ip, err, f) = self.estimate(kern, q, slot);
        (
            self.distance(q, ip, f),
            self.distance(q, (ip + err).min(1.0), f),
        )
    }

    /// Hints the CPU to load `slot`'s code and factors.
    #[inline(always)]
    pub(crate) fn prefetch(&self, slot: u32) {
        let row = self.bits.as_ptr().wrapping_add(slot as usize * self.words);
        prefetch(row);
        if self.words > 8 {
            prefetch(row.wrapping_add(8));
        }
        prefetch(self.factors.as_ptr().wrapping_add(slot as usize * FACTORS));
    }

    /// Hints the CPU to load the rest of `slot`'s code (up to 12 lines).
    #[inline(always)]
    pub(crate) fn prefetch_rest(&self, slot: u32) {
        let row = self.bits.as_ptr().wrapping_add(slot as usize * self.words);
        for off in (16..self.words.min(96)).step_by(8) {
            prefetch(row.wrapping_add(off));
        }
        // A row is not aligned to a line, so its last word may start one more.
        prefetch(row.wrapping_add(self.words - 1));
    }

    /// Number of codes the centres were last computed from.
    pub(super) fn trained_on(&self) -> usize {
        self.present.trained_on()
    }

    pub(super) fn write(&self, w: &mut Writer) {
        w.u64(self.rot.seed);
        w.u8(u8::from(self.partitioned));
        w.f32s(&self.centres);
        self.present.write(w);
        w.u32s(&self.centre_of);
        w.u64(self.bits.len() as u64);
        w.u64s_exact(&self.bits);
        w.f32s(&self.factors);
    }

    pub(super) fn read(r: &mut Reader<'_>, dim: usize, kind: DistanceKind) -> Result<Self, String> {
        let seed = r.u64()?;
        let mut codes = RabitqCodes::with_seed(dim, kind, seed);
        let partitioned = match r.u8()? {
            0 => false,
            1 => true,
            other => return Err(format!("RaBitQ codes have a bad partition flag {other}")),
        };
        let centres = r.f32s()?;
        let present = Presence::read(r).map_err(|e| format!("RaBitQ {e}"))?;
        let centre_of = r.u32s()?;
        let n = r.len(8)?;
        let bits = r.u64s_exact(n)?;
        let factors = r.f32s()?;
        let ncentres = centres.len() / dim;
        if centres.len() % dim != 0
            || (ncentres == 0) != present.is_empty()
            || (!partitioned && ncentres > 1)
        {
            return Err("RaBitQ codes have inconsistent centres".into());
        }
        if centres.iter().chain(&factors).any(|x| !x.is_finite()) {
            return Err("RaBitQ codes hold a value that is not finite".into());
        }
        if Some(bits.len()) != present.slots().checked_mul(codes.words)
            || Some(factors.len()) != present.slots().checked_mul(FACTORS)
            || centre_of.len() != present.slots()
        {
            return Err("RaBitQ codes do not cover their slots".into());
        }
        if present
            .iter()
            .any(|s| centre_of[s as usize] as usize >= ncentres)
        {
            return Err("RaBitQ codes name a centre they do not have".into());
        }
        codes.set_centres(centres);
        codes.partitioned = partitioned;
        codes.centre_of = centre_of;
        codes.bits = bits;
        codes.factors = factors;
        codes.present = present;
        Ok(codes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::kernels;
    use crate::index::testutil::{arena_of, clustered, normalised};

    /// The estimator against the truth, on clustered data at 256 dimensions: unbiased (the
    /// mean signed error is a small fraction of the mean absolute error), and the true
    /// distance is at least the lower bound for at least 94 % of pairs. The estimate's error
    /// is about normal with the bound's scale divided by EPSILON0, so the two-sided bound
    /// fails with probability about P(|N(0,1)| > 1.9) = 5.7 %, less for pairs with a large
    /// `<o, q>`, and the lower bound only fails on one side. (Measured: 97.3 % for L2.)
    #[test]
    fn estimates_are_unbiased_and_bounded() {
        let dim = 256;
        for kind in [DistanceKind::L2Squared, DistanceKind::NegDot] {
            let prep = |v: Vec<Vec<f32>>| match kind {
                DistanceKind::L2Squared => v,
                DistanceKind::NegDot => normalised(v),
            };
            let pts = prep(clustered(2_000, dim, 10, 0.5, 1));
            let arena = arena_of(&pts);
            let mut codes = RabitqCodes::new(dim, kind);
            codes.build(&arena, &(0..2_000).collect::<Vec<_>>());
            let kern = kernels();
            let (mut signed, mut abs, mut below, mut pairs) = (0.0f64, 0.0f64, 0usize, 0usize);
            for q in prep(clustered(30, dim, 10, 0.5, 2)) {
                let pq = codes.prepare(kern, &q);
                for s in 0..2_000u32 {
                    let exact = kind.eval(kern, &q, arena.get(s));
                    let (est, lower) = codes.dist_and_lower_bound(kern, &pq, s);
                    assert!(lower <= est, "{kind:?}: the bound is above the estimate");
                    signed += f64::from(est - exact);
                    abs += f64::from((est - exact).abs());
                    below += usize::from(lower <= exact + 1e-4 * exact.abs().max(1.0));
                    pairs += 1;
                }
            }
            let (mean, mean_abs) = (signed / pairs as f64, abs / pairs as f64);
            eprintln!(
                "{kind:?}: mean error {mean}, mean |error| {mean_abs}, bound held {below}/{pairs}"
            );
            assert!(
                mean.abs() < 0.2 * mean_abs,
                "{kind:?}: biased, {mean} vs {mean_abs}"
            );
            assert!(
                below as f64 >= 0.94 * pairs as f64,
                "{kind:?}: {below}/{pairs}"
            );
        }
    }

    /// A vector equal to the centre and a query equal to the centre have exact distances.
    #[test]
    fn the_centre_is_handled_exactly() {
        let pts = vec![vec![1.0, 0.0, 2.0], vec![-1.0, 0.0, 0.0]];
        let arena = arena_of(&pts);
        let mut codes = RabitqCodes::new(3, DistanceKind::L2Squared);
        codes.build(&arena, &[0, 1]);
        let kern = kernels();
        let centre = [0.0, 0.0, 1.0];
        let pq = codes.prepare(kern, &centre);
        for s in 0..2 {
            let exact = DistanceKind::L2Squared.eval(kern, &centre, arena.get(s));
            assert!((codes.dist(kern, &pq, s) - exact).abs() < 1e-5);
        }
    }

    #[test]
    fn the_rotation_is_orthogonal() {
        for dim in [1, 7, 64, 100, 1280] {
            let rot = Rotation::new(dim, 3);
            let mut rng = ChaCha8Rng::seed_from_u64(dim as u64);
            let a: Vec<f32> = (0..rot.pdim).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let b: Vec<f32> = (0..rot.pdim).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
            let (mut ra, mut rb) = (a.clone(), b.clone());
            rot.apply(&mut ra);
            rot.apply(&mut rb);
            // Lengths and inner products are kept, up to rounding.
            assert!(
                (dot(&ra, &ra) - dot(&a, &a)).abs() < 1e-3 * dot(&a, &a),
                "{dim}"
            );
            assert!(
                (dot(&ra, &rb) - dot(&a, &b)).abs() < 1e-3 * dot(&a, &a),
                "{dim}"
            );
            assert_ne!(ra, a, "{dim}: the rotation moved nothing");
        }
    }

    #[test]
    fn the_rotation_is_fixed_by_its_seed() {
        let (a, b) = (Rotation::new(100, 9), Rotation::new(100, 9));
        assert_eq!(a.signs, b.signs);
        assert_ne!(a.signs, Rotation::new(100, 10).signs);
    }
}
