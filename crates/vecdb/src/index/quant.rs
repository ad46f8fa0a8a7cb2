//! Quantised search: SQ8 and RaBitQ codes and the quantised index wrapper.
//!
//! [`Sq8Codes`] holds one byte per vector component: per dimension, the range `[min, max]` seen
//! in the data is split into 255 equal steps and each component is stored as the nearest step
//! (values outside the trained range are clamped). The codes are a quarter of the f32 vectors'
//! size and live in RAM, while the f32 vectors stay in the memory-mapped arena.
//!
//! Distances between an f32 query and a code are computed without decoding, as one float-by-byte
//! inner product plus per-query and per-code constants (`v_d = min_d + step_d c_d`):
//!
//! - negated inner product: `-(q.min + (q * step).c)`;
//! - squared L2, with `r = q - min`: `|r|^2 + |step * c|^2 - (2 r * step).c`, where the middle
//!   term is stored per code.
//!
//! [`RabitqCodes`] (module `rabitq`) hold one bit per dimension, 3.5 % of the f32 vectors at
//! 1,280 dimensions, with an unbiased distance estimate and an error bound; under a trained IVF
//! index each code is relative to its list's centre.
//!
//! [`QuantizedIndex`] wraps a flat, HNSW or IVF index: the flat scan, the HNSW walk (SQ8) and
//! the IVF list scans all run on codes. Then, unless `refine` is off, candidates are re-ranked with
//! exact distances from the f32 vectors, and the best `k` are returned with exact distances:
//!
//! - SQ8 codes (flat, HNSW, IVF): the best `ceil(k * refine_k)` candidates by code distance
//!   (oversampling and rescoring as Qdrant and Milvus do);
//! - RaBitQ codes (flat, IVF): every scanned code whose lower bound (the paper's error bound) is
//!   below the k-th best exact distance found so far, the paper's own rule; the number
//!   re-ranked adapts to the query, so these kinds have no `refine_k`.
//!
//! HNSW on RaBitQ codes (`hnsw_rabitq`) is not walked on estimates: measured on clustered data,
//! a walk steered by 1-bit estimates around one global centre missed points far from it (a
//! point inserted into a new cluster was not found by a search for itself at 16 and 64
//! dimensions). Instead the walk computes exact distances, and the codes only spare it the
//! vectors of neighbours whose lower bound shows they would be dropped anyway (see
//! `HnswIndex::search_bounded`). Its results are those of the unquantised walk except where a
//! bound fails; on 1,280-dimensional embeddings it reads about a third of the vectors.
//!
//! The graph and the k-means centres are built from the f32 vectors, so quantisation changes
//! only what a query reads.
//!
//! The range (SQ8) or centre (RaBitQ) is trained on the vectors present at `build`; an index
//! filled by `add` retrains (and re-encodes every code) each time its size doubles, so the
//! codes follow the data while the cost stays linear in the number of additions. RaBitQ codes
//! under a trained IVF index are relative to the index's list centres instead, and follow the
//! index: re-encoded by list when it trains, and left alone until it retrains.

mod rabitq;

pub(crate) use rabitq::RabitqBounds;
pub use rabitq::RabitqCodes;
use rabitq::RabitqQuery;

use super::codec::{Reader, Writer};
use super::topk::TopK;
use super::{AnyIndex, DistanceKind, QuantizedParts, QueryParams, VectorArena};
use crate::distance::{kernels, prefetch, Kernels};

/// Default oversampling factor: `4 * k` candidates are re-ranked exactly. At k = 10 that is 40
/// f32 vectors read from the arena per query, a few percent of the distances an HNSW walk at
/// ef = 64 or an IVF scan computes, and on the clustered and fashion-mnist data we measured it
/// brings recall back to that of the unquantised index (see `docs/index-parameters.md`).
pub const DEFAULT_REFINE_K: f32 = 4.0;
/// Largest accepted `refine_k`.
pub const MAX_REFINE_K: f32 = 1000.0;
/// Largest number of candidates (`k * refine_k`) a query may ask to re-rank; the same bound as
/// HNSW's `ef`, since an HNSW walk keeps that many candidates.
pub const MAX_REFINE_CANDIDATES: usize = 100_000;

/// Why a RaBitQ kind refuses `refine_k`, for every place that refuses it.
pub const REFINE_K_BY_BOUND: &str =
    "it re-ranks every candidate that RaBitQ's error bound does not rule out";

/// Levels per dimension of an SQ8 code.
const LEVELS: f32 = 255.0;

/// Checks a `refine_k` value (spec default or per-query override).
pub(crate) fn check_refine_k(refine_k: f32) -> Result<(), String> {
    if refine_k.is_finite() && (1.0..=MAX_REFINE_K).contains(&refine_k) {
        Ok(())
    } else {
        Err(format!(
            "refine_k must be a number in 1..={MAX_REFINE_K}, got {refine_k}"
        ))
    }
}

/// Number of candidates re-ranked for `k` hits at oversampling `refine_k`.
pub fn refine_candidates(k: usize, refine_k: f32) -> usize {
    ((k as f64 * f64::from(refine_k)).ceil() as usize).max(k)
}

/// SQ8 codes of the indexed slots, with the per-dimension range they were trained on.
#[derive(Clone, Debug)]
pub struct Sq8Codes {
    dim: usize,
    kind: DistanceKind,
    /// Per-dimension lower end of the trained range (`dim` floats; empty until trained).
    min: Vec<f32>,
    /// Per-dimension step `(max - min) / 255` (0 for a constant dimension).
    step: Vec<f32>,
    /// `dim` bytes per slot, slot-addressed; slots not encoded hold zeros.
    codes: Vec<u8>,
    /// L2 only: `|step * c|^2` per slot, the query-independent part of the distance.
    sq_norms: Vec<f32>,
    /// Which slots are encoded; `trained_on` counts those the range was last trained on.
    present: Presence,
}

/// A query prepared for code distances: `dist(c) = bias + extra(c) - w.c`.
#[derive(Debug)]
pub(crate) struct Sq8Query {
    w: Vec<f32>,
    bias: f32,
}

/// What a set of codes must do for a slot just added (see [`Presence::add`]).
pub(crate) enum Added {
    Already,
    Retrain,
    Encode,
}

/// Which slots a set of codes holds, and how many it held when it was last trained. Both kinds
/// of codes keep one flag per slot, retrain when their number has doubled since, and store the
/// three fields side by side in the snapshot.
#[derive(Clone, Debug, Default)]
pub(crate) struct Presence {
    /// Per slot: 1 when the slot is encoded.
    flags: Vec<u8>,
    count: usize,
    trained_on: usize,
}

impl Presence {
    /// Number of encoded slots.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Slots covered by the flags (encoded or not).
    pub(crate) fn slots(&self) -> usize {
        self.flags.len()
    }

    /// The encoded slots, ascending.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.flags
            .iter()
            .enumerate()
            .filter(|&(_, &p)| p != 0)
            .map(|(s, _)| s as u32)
    }

    /// Bytes held.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.flags.capacity()
    }

    /// Forgets every slot (the training count stays until the codes retrain).
    pub(crate) fn clear(&mut self) {
        self.flags.clear();
        self.count = 0;
    }

    /// Replaces the flags by `slots`, covering up to the largest.
    pub(crate) fn mark(&mut self, slots: &[u32]) {
        self.clear();
        self.flags
            .resize(slots.iter().map(|&s| s as usize + 1).max().unwrap_or(0), 0);
        for &s in slots {
            self.insert(s);
        }
    }

    /// Covers at least `slots` slots.
    pub(crate) fn grow(&mut self, slots: usize) {
        if self.flags.len() < slots {
            self.flags.resize(slots, 0);
        }
    }

    /// Marks `slot` (covered by [`Presence::grow`] first); false when it was already marked.
    pub(crate) fn insert(&mut self, slot: u32) -> bool {
        let flag = &mut self.flags[slot as usize];
        if *flag != 0 {
            return false;
        }
        *flag = 1;
        self.count += 1;
        true
    }

    /// Marks `slot` (covered by [`Presence::grow`] first) and says what the codes must do:
    /// nothing when it was marked already, retrain when they were never trained or their
    /// number has doubled since, else encode the one slot.
    pub(crate) fn add(&mut self, slot: u32) -> Added {
        if !self.insert(slot) {
            Added::Already
        } else if self.trained_on == 0 || self.count >= 2 * self.trained_on {
            Added::Retrain
        } else {
            Added::Encode
        }
    }

    /// Records a training on the slots present now (none: untrained).
    pub(crate) fn trained(&mut self) {
        self.trained_on = self.count;
    }

    /// Number of slots the codes were last trained on.
    pub(crate) fn trained_on(&self) -> usize {
        self.trained_on
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.u64(self.count as u64);
        w.u64(self.trained_on as u64);
        w.blob(&self.flags);
    }

    /// Reads what [`Presence::write`] wrote and checks the counts against the flags.
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, String> {
        let count = r.u64()? as usize;
        let trained_on = r.u64()? as usize;
        let flags = r.blob()?.to_vec();
        if flags.iter().any(|&p| p > 1)
            || flags.iter().filter(|&&p| p == 1).count() != count
            || trained_on > count
        {
            return Err("codes have an inconsistent slot count".into());
        }
        Ok(Presence {
            flags,
            count,
            trained_on,
        })
    }
}

impl Sq8Codes {
    /// No codes, untrained.
    pub fn new(dim: usize, kind: DistanceKind) -> Self {
        Sq8Codes {
            dim,
            kind,
            min: Vec::new(),
            step: Vec::new(),
            codes: Vec::new(),
            sq_norms: Vec::new(),
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

    /// Bytes held by the codes and the range.
    pub fn memory_bytes(&self) -> usize {
        self.codes.capacity()
            + self.present.memory_bytes()
            + 4 * (self.min.capacity() + self.step.capacity() + self.sq_norms.capacity())
    }

    /// The code of `slot` (zeros for a slot that is not encoded).
    #[inline(always)]
    fn row(&self, slot: u32) -> &[u8] {
        let start = slot as usize * self.dim;
        &self.codes[start..start + self.dim]
    }

    /// Replaces every code: trains the range on `slots` and encodes them.
    pub fn build(&mut self, arena: &VectorArena, slots: &[u32]) {
        self.codes.clear();
        self.sq_norms.clear();
        self.present.mark(slots);
        self.grow(self.present.slots());
        self.retrain(arena);
    }

    /// Encodes one more slot, retraining the range when the number of codes has doubled since
    /// the last training.
    pub fn add(&mut self, arena: &VectorArena, slot: u32) {
        self.grow(slot as usize + 1);
        match self.present.add(slot) {
            Added::Already => {}
            Added::Retrain => self.retrain(arena),
            Added::Encode => self.encode(slot, arena.get(slot)),
        }
    }

    fn grow(&mut self, slots: usize) {
        if self.codes.len() < slots * self.dim {
            self.present.grow(slots);
            self.codes.resize(slots * self.dim, 0);
            if self.kind == DistanceKind::L2Squared {
                self.sq_norms.resize(slots, 0.0);
            }
        }
    }

    /// Trains the per-dimension range on every encoded slot and re-encodes them all.
    fn retrain(&mut self, arena: &VectorArena) {
        let mut lo = vec![f32::INFINITY; self.dim];
        let mut hi = vec![f32::NEG_INFINITY; self.dim];
        for s in self.present.iter() {
            for ((l, h), &x) in lo.iter_mut().zip(&mut hi).zip(arena.get(s)) {
                *l = l.min(x);
                *h = h.max(x);
            }
        }
        self.present.trained();
        if self.present.is_empty() {
            self.min.clear();
            self.step.clear();
            return;
        }
        self.step = lo.iter().zip(&hi).map(|(l, h)| (h - l) / LEVELS).collect();
        self.min = lo;
        let slots: Vec<u32> = self.present.iter().collect();
        for s in slots {
            self.encode(s, arena.get(s));
        }
        tracing::debug!(codes = self.present.len(), "SQ8 range trained");
    }

    fn encode(&mut self, slot: u32, v: &[f32]) {
        let start = slot as usize * self.dim;
        let mut sq = 0.0f32;
        for (d, (c, &x)) in self.codes[start..start + self.dim]
            .iter_mut()
            .zip(v)
            .enumerate()
        {
            let step = self.step[d];
            *c = if step > 0.0 {
                // The clamp also maps values outside the trained range to its ends.
                ((x - self.min[d]) / step).round().clamp(0.0, LEVELS) as u8
            } else {
                0
            };
            let back = step * f32::from(*c);
            sq += back * back;
        }
        if self.kind == DistanceKind::L2Squared {
            self.sq_norms[slot as usize] = sq;
        }
    }

    /// Prepares `query` for [`Sq8Codes::dist`]. Only called when at least one slot is encoded
    /// (so the range is trained).
    pub(crate) fn prepare(&self, kern: &Kernels, query: &[f32]) -> Sq8Query {
        match self.kind {
            DistanceKind::NegDot => Sq8Query {
                w: query.iter().zip(&self.step).map(|(q, s)| q * s).collect(),
                bias: -kern.dot(query, &self.min),
            },
            DistanceKind::L2Squared => {
                let r: Vec<f32> = query.iter().zip(&self.min).map(|(q, m)| q - m).collect();
                Sq8Query {
                    w: r.iter().zip(&self.step).map(|(r, s)| 2.0 * r * s).collect(),
                    bias: kern.dot(&r, &r),
                }
            }
        }
    }

    /// The approximate distance from the prepared query to the code of `slot`.
    #[inline(always)]
    pub(crate) fn dist(&self, kern: &Kernels, q: &Sq8Query, slot: u32) -> f32 {
        let extra = match self.kind {
            DistanceKind::L2Squared => self.sq_norms[slot as usize],
            DistanceKind::NegDot => 0.0,
        };
        q.bias + extra - kern.dot_u8(&q.w, self.row(slot))
    }

    /// Hints the CPU to load the first cache lines of `slot`'s code.
    #[inline(always)]
    pub(crate) fn prefetch(&self, slot: u32) {
        let start = slot as usize * self.dim;
        let row = self.codes.as_ptr().wrapping_add(start);
        prefetch(row);
        if self.dim > 64 {
            prefetch(row.wrapping_add(64));
        }
    }

    /// Hints the CPU to load the rest of `slot`'s code (up to 12 lines).
    #[inline(always)]
    pub(crate) fn prefetch_rest(&self, slot: u32) {
        let start = slot as usize * self.dim;
        let row = self.codes.as_ptr().wrapping_add(start);
        for off in (128..self.dim.min(768)).step_by(64) {
            prefetch(row.wrapping_add(off));
        }
    }

    fn write(&self, w: &mut Writer) {
        w.f32s(&self.min);
        w.f32s(&self.step);
        self.present.write(w);
        w.blob(&self.codes);
        w.f32s(&self.sq_norms);
    }

    fn read(r: &mut Reader<'_>, dim: usize, kind: DistanceKind) -> Result<Self, String> {
        let min = r.f32s()?;
        let step = r.f32s()?;
        let present = Presence::read(r).map_err(|e| format!("SQ8 {e}"))?;
        let codes = r.blob()?.to_vec();
        let sq_norms = r.f32s()?;
        let trained = min.len() == dim && step.len() == dim;
        let untrained = min.is_empty() && step.is_empty();
        if !(trained || untrained) || untrained != present.is_empty() {
            return Err("SQ8 codes have an inconsistent range".into());
        }
        if step.iter().chain(&min).any(|x| !x.is_finite()) || step.iter().any(|&s| s < 0.0) {
            return Err("SQ8 codes have a range that is not finite".into());
        }
        let norms_len = match kind {
            DistanceKind::L2Squared => present.slots(),
            DistanceKind::NegDot => 0,
        };
        if Some(codes.len()) != present.slots().checked_mul(dim) || sq_norms.len() != norms_len {
            return Err("SQ8 codes do not cover their slots".into());
        }
        Ok(Sq8Codes {
            dim,
            kind,
            min,
            step,
            codes,
            sq_norms,
            present,
        })
    }
}

/// Which codes a quantised index searches on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeKind {
    /// 8-bit scalar codes ([`Sq8Codes`]).
    Sq8,
    /// 1-bit RaBitQ codes ([`RabitqCodes`]).
    Rabitq,
}

/// The codes of a quantised index.
#[derive(Clone, Debug)]
pub enum Codes {
    /// 8-bit scalar codes.
    Sq8(Sq8Codes),
    /// RaBitQ codes.
    Rabitq(RabitqCodes),
}

/// A query prepared against the codes that will answer it, so that a query can never meet
/// codes of another kind.
#[derive(Debug)]
pub(crate) enum Prepared<'a> {
    Sq8(&'a Sq8Codes, Sq8Query),
    Rabitq(&'a RabitqCodes, RabitqQuery),
}

impl Prepared<'_> {
    /// The approximate distance from the query to the code of `slot`.
    #[inline(always)]
    pub(crate) fn dist(&self, kern: &Kernels, slot: u32) -> f32 {
        match self {
            Prepared::Sq8(c, q) => c.dist(kern, q, slot),
            Prepared::Rabitq(c, q) => c.dist(kern, q, slot),
        }
    }

    /// Hints the CPU to load the first cache lines of `slot`'s code.
    #[inline(always)]
    pub(crate) fn prefetch(&self, slot: u32) {
        match self {
            Prepared::Sq8(c, _) => c.prefetch(slot),
            Prepared::Rabitq(c, _) => c.prefetch(slot),
        }
    }

    /// Hints the CPU to load the rest of `slot`'s code.
    #[inline(always)]
    pub(crate) fn prefetch_rest(&self, slot: u32) {
        match self {
            Prepared::Sq8(c, _) => c.prefetch_rest(slot),
            Prepared::Rabitq(c, _) => c.prefetch_rest(slot),
        }
    }

    /// The `k` nearest accepted slots among `slots` by code distance, ascending.
    pub(crate) fn scan(
        &self,
        slots: impl IntoIterator<Item = u32>,
        k: usize,
        accept: &dyn Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        let kern = kernels();
        let mut top = TopK::new(k);
        for s in slots {
            if accept(s) {
                top.push(self.dist(kern, s), s);
            }
        }
        top.into_sorted()
    }
}

impl Codes {
    /// No codes of `kind`, untrained.
    pub fn new(kind: CodeKind, dim: usize, distance: DistanceKind) -> Self {
        match kind {
            CodeKind::Sq8 => Codes::Sq8(Sq8Codes::new(dim, distance)),
            CodeKind::Rabitq => Codes::Rabitq(RabitqCodes::new(dim, distance)),
        }
    }

    /// Number of encoded slots.
    pub fn len(&self) -> usize {
        match self {
            Codes::Sq8(c) => c.len(),
            Codes::Rabitq(c) => c.len(),
        }
    }

    /// True when no slot is encoded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held by the codes and what they were trained on.
    pub fn memory_bytes(&self) -> usize {
        match self {
            Codes::Sq8(c) => c.memory_bytes(),
            Codes::Rabitq(c) => c.memory_bytes(),
        }
    }

    /// Replaces every code: trains on `slots` and encodes them.
    pub fn build(&mut self, arena: &VectorArena, slots: &[u32]) {
        match self {
            Codes::Sq8(c) => c.build(arena, slots),
            Codes::Rabitq(c) => c.build(arena, slots),
        }
    }

    /// Encodes one more slot (retraining when the codes have doubled).
    pub fn add(&mut self, arena: &VectorArena, slot: u32) {
        match self {
            Codes::Sq8(c) => c.add(arena, slot),
            Codes::Rabitq(c) => c.add(arena, slot),
        }
    }

    /// Number of codes the range or centre was last trained on.
    pub fn trained_on(&self) -> usize {
        match self {
            Codes::Sq8(c) => c.present.trained_on(),
            Codes::Rabitq(c) => c.trained_on(),
        }
    }

    /// Prepares `query` for code distances. Only called when at least one slot is encoded.
    pub(crate) fn prepare(&self, kern: &Kernels, query: &[f32]) -> Prepared<'_> {
        match self {
            Codes::Sq8(c) => Prepared::Sq8(c, c.prepare(kern, query)),
            Codes::Rabitq(c) => Prepared::Rabitq(c, c.prepare(kern, query)),
        }
    }

    fn write(&self, w: &mut Writer) {
        match self {
            Codes::Sq8(c) => c.write(w),
            Codes::Rabitq(c) => c.write(w),
        }
    }

    fn read(
        r: &mut Reader<'_>,
        kind: CodeKind,
        dim: usize,
        distance: DistanceKind,
    ) -> Result<Self, String> {
        Ok(match kind {
            CodeKind::Sq8 => Codes::Sq8(Sq8Codes::read(r, dim, distance)?),
            CodeKind::Rabitq => Codes::Rabitq(RabitqCodes::read(r, dim, distance)?),
        })
    }
}

/// A flat, HNSW or IVF index searched on codes, with exact re-ranking.
#[derive(Debug)]
pub struct QuantizedIndex {
    kind: DistanceKind,
    inner: Box<AnyIndex>,
    codes: Codes,
    refine: bool,
    /// `None` where candidates are re-ranked by RaBitQ's error bound instead.
    refine_k: Option<f32>,
}

impl QuantizedIndex {
    /// Wraps an empty `inner` index (flat, HNSW or IVF) with empty `codes`; parameters are
    /// assumed validated.
    pub fn new(
        inner: AnyIndex,
        dim: usize,
        kind: DistanceKind,
        codes: CodeKind,
        refine: bool,
        refine_k: Option<f32>,
    ) -> Self {
        QuantizedIndex {
            kind,
            inner: Box::new(inner),
            codes: Codes::new(codes, dim, kind),
            refine,
            refine_k,
        }
    }

    /// The index the codes serve.
    pub fn inner(&self) -> &AnyIndex {
        &self.inner
    }

    /// The codes.
    pub fn codes(&self) -> &Codes {
        &self.codes
    }

    /// Whether results are re-ranked with exact distances by default.
    pub fn refine(&self) -> bool {
        self.refine
    }

    /// The default oversampling factor; `None` where re-ranking follows RaBitQ's error bound.
    pub fn refine_k(&self) -> Option<f32> {
        self.refine_k
    }

    /// Replaces the content with `slots`: builds the inner index and trains and encodes codes.
    pub fn build(&mut self, arena: &VectorArena, slots: &[u32]) {
        self.inner.build(arena, slots);
        match (&mut self.codes, &*self.inner) {
            (Codes::Rabitq(c), AnyIndex::Ivf(ivf)) if ivf.is_trained() => {
                c.build_partitioned(arena, ivf.centres(), ivf.lists())
            }
            (codes, _) => codes.build(arena, slots),
        }
    }

    /// Adds one slot to the inner index and encodes it.
    pub fn add(&mut self, arena: &VectorArena, slot: u32) {
        let list = self.add_to_inner(arena, slot);
        self.encode_added(arena, slot, list);
    }

    /// Stages the slot in the inner index ([`AnyIndex::stage`]) and encodes it; both happen
    /// before [`QuantizedIndex::link`] makes it reachable.
    pub fn stage(&mut self, arena: &VectorArena, slot: u32) -> bool {
        if let AnyIndex::Ivf(_) = &*self.inner {
            // An IVF add is whole in one step; it is done here so its list is known.
            let list = self.add_to_inner(arena, slot);
            self.encode_added(arena, slot, list);
            return false;
        }
        let staged = self.inner.stage(arena, slot);
        self.encode_added(arena, slot, None);
        staged
    }

    /// Adds the slot to the inner index; for IVF, returns the list it joined (see
    /// `IvfIndex::add`).
    fn add_to_inner(&mut self, arena: &VectorArena, slot: u32) -> Option<usize> {
        match &mut *self.inner {
            AnyIndex::Ivf(ivf) => ivf.add(arena, slot),
            other => {
                other.add(arena, slot);
                None
            }
        }
    }

    /// Encodes a slot the inner index has just taken (`list`: the IVF list it joined, when the
    /// index already knew it). RaBitQ codes under a trained IVF index are relative to the
    /// slot's list centre; the moment the index trains (its untrained list reached the
    /// threshold), every code is re-encoded by list.
    fn encode_added(&mut self, arena: &VectorArena, slot: u32, list: Option<usize>) {
        match (&mut self.codes, &*self.inner) {
            (Codes::Rabitq(c), AnyIndex::Ivf(ivf)) if ivf.is_trained() => {
                if c.is_partitioned() && c.centre_count() == ivf.nlist() {
                    let list = list.unwrap_or_else(|| ivf.list_of(arena.get(slot)));
                    c.add_to(arena, slot, list);
                } else {
                    c.build_partitioned(arena, ivf.centres(), ivf.lists());
                }
            }
            (codes, _) => codes.add(arena, slot),
        }
    }

    /// Links a staged slot into the inner index ([`AnyIndex::link`]).
    pub fn link(&self, arena: &VectorArena, slot: u32) {
        self.inner.link(arena, slot);
    }

    /// Number of slots indexed.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// The best `want` accepted slots by code distance, ascending: the candidates re-ranking
    /// starts from.
    pub(crate) fn candidates(
        &self,
        arena: &VectorArena,
        query: &[f32],
        want: usize,
        params: &QueryParams,
        accept: &dyn Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        if want == 0 || self.codes.is_empty() {
            return Vec::new();
        }
        let kern = kernels();
        match (&*self.inner, &self.codes) {
            (AnyIndex::Ivf(i), Codes::Rabitq(c)) => {
                let mut search = c.searcher(query);
                let mut top = TopK::new(want);
                i.visit(query, params.nprobe, accept, |s| {
                    top.push(search.dist(kern, s), s)
                });
                top.into_sorted()
            }
            (AnyIndex::Flat(f), _) => {
                let q = self.codes.prepare(kern, query);
                q.scan(f.slots().iter().copied(), want, accept)
            }
            (AnyIndex::Hnsw(h), _) => {
                let q = self.codes.prepare(kern, query);
                h.search_codes(arena, query, want, params.ef, accept, &q)
            }
            (AnyIndex::Ivf(i), _) => {
                let q = self.codes.prepare(kern, query);
                let mut top = TopK::new(want);
                i.visit(query, params.nprobe, accept, |s| {
                    top.push(q.dist(kern, s), s)
                });
                top.into_sorted()
            }
            // `try_new` and `from_bytes` only wrap the three kinds above.
            (other, _) => other.search(arena, query, want, params, accept),
        }
    }

    /// The `k` nearest accepted slots: candidates on codes, then (with `refine`) exact
    /// distances for the candidates that may belong to the answer.
    pub fn search(
        &self,
        arena: &VectorArena,
        query: &[f32],
        k: usize,
        params: &QueryParams,
        accept: &dyn Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        if !self.refine {
            return self.candidates(arena, query, k, params, accept);
        }
        let Some(refine_k) = self.refine_k else {
            return self.search_bounded(arena, query, k, params, accept);
        };
        let want = refine_candidates(k, params.refine_k.unwrap_or(refine_k));
        let found = self.candidates(arena, query, want, params, accept);
        rerank(arena, self.kind, query, &found, k)
    }

    /// RaBitQ codes: in a flat or IVF scan, every scanned code whose lower bound is below the
    /// k-th best exact distance so far is re-ranked exactly; an HNSW walk reads the vectors of
    /// the neighbours whose lower bound is below the `ef`-th best.
    fn search_bounded(
        &self,
        arena: &VectorArena,
        query: &[f32],
        k: usize,
        params: &QueryParams,
        accept: &dyn Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        let Codes::Rabitq(codes) = &self.codes else {
            unreachable!("only RaBitQ codes are re-ranked by their error bound");
        };
        if k == 0 || codes.is_empty() {
            return Vec::new();
        }
        let kern = kernels();
        if let AnyIndex::Hnsw(h) = &*self.inner {
            let bounds = codes.bounds(kern, query);
            return h.search_bounded(arena, query, k, params.ef, accept, &bounds);
        }
        let mut search = codes.searcher(query);
        let mut top = TopK::new(k);
        let mut visit = |s: u32| {
            let (_, lower) = search.dist_and_lower_bound(kern, s);
            if lower < top.bound() {
                top.push(self.kind.eval(kern, query, arena.get(s)), s);
            }
        };
        match &*self.inner {
            AnyIndex::Flat(f) => f
                .slots()
                .iter()
                .copied()
                .filter(|&s| accept(s))
                .for_each(&mut visit),
            AnyIndex::Ivf(i) => i.visit(query, params.nprobe, accept, visit),
            // HNSW is searched above; `IndexSpec::quantized_parts` puts RaBitQ codes only on
            // flat, HNSW and IVF indexes.
            other => return other.search(arena, query, k, params, accept),
        }
        top.into_sorted()
    }

    /// Checks per-query parameters: `refine_k`, then the inner index's.
    pub fn validate_params(&self, params: &QueryParams) -> Result<(), String> {
        if let Some(r) = params.refine_k {
            if self.refine_k.is_none() {
                return Err(format!(
                    "refine_k does not apply to RaBitQ codes: {REFINE_K_BY_BOUND}"
                ));
            }
            check_refine_k(r)?;
        }
        self.inner.validate_params(params)
    }

    /// The body: the inner index's body, then the codes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.blob(&self.inner.to_bytes());
        self.codes.write(&mut w);
        w.buf
    }

    /// Reads a body written by `to_bytes` around an inner index read by `read_inner`; fails if
    /// the codes do not match the inner index's slot count.
    pub(crate) fn from_bytes(
        dim: usize,
        kind: DistanceKind,
        parts: &QuantizedParts,
        bytes: &[u8],
        read_inner: impl FnOnce(&[u8]) -> Result<AnyIndex, String>,
    ) -> Result<Self, String> {
        let mut r = Reader::new(bytes);
        let inner = read_inner(r.blob()?)?;
        let codes = Codes::read(&mut r, parts.codes, dim, kind)?;
        r.finish()?;
        if codes.len() != inner.len() {
            return Err(format!(
                "codes cover {} slots, the index {}",
                codes.len(),
                inner.len()
            ));
        }
        // Only an IVF index partitions RaBitQ codes by its lists; the flat scan and the HNSW
        // walk prepare the query against one centre.
        if matches!(&codes, Codes::Rabitq(c) if c.is_partitioned())
            && !matches!(inner, AnyIndex::Ivf(_))
        {
            return Err("RaBitQ codes are partitioned by lists the index does not have".into());
        }
        Ok(QuantizedIndex {
            kind,
            inner: Box::new(inner),
            codes,
            refine: parts.refine,
            refine_k: parts.refine_k,
        })
    }

    /// Bytes held by the inner index and the codes.
    pub fn memory_bytes(&self) -> usize {
        self.inner.memory_bytes() + self.codes.memory_bytes()
    }
}

/// Exact distances for `found`, ascending (ties by slot), the best `k` kept.
pub(crate) fn rerank(
    arena: &VectorArena,
    kind: DistanceKind,
    query: &[f32],
    found: &[(u32, f32)],
    k: usize,
) -> Vec<(u32, f32)> {
    let kern = kernels();
    let mut exact: Vec<(u32, f32)> = found
        .iter()
        .map(|&(s, _)| (s, kind.eval(kern, query, arena.get(s))))
        .collect();
    exact.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    exact.truncate(k);
    exact
}

#[cfg(test)]
mod tests;
