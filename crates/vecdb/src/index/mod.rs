//! Index structures over slot-addressed vectors: exact [`FlatIndex`] (the recall oracle),
//! [`HnswIndex`] (graph), [`IvfIndex`] (IVF-Flat with k-means) and [`LshIndex`] (random
//! projections with multi-probe), and [`QuantizedIndex`], which searches a flat, HNSW or IVF
//! index on SQ8 or RaBitQ codes and re-ranks exactly, dispatched through the [`AnyIndex`] enum.
//!
//! The index code does no IO and knows nothing about ids or metadata: it sees `u32` slots of a
//! [`VectorArena`] owned by the caller, and an `accept` predicate that hides deleted or
//! filtered-out slots. Cosine collections normalise vectors before they arrive here, so every
//! index knows only two internal distances, both "smaller is better" ([`DistanceKind`]).
//! Persistence is a raw little-endian body (`to_bytes` / `from_bytes`); the storage layer adds
//! the magic number, version and checksum.

mod codec;
pub mod flat;
pub mod hnsw;
pub mod ivf;
mod kmeans;
pub mod lsh;
pub mod quant;
mod topk;

#[cfg(test)]
mod testutil;

pub use flat::FlatIndex;
pub use hnsw::HnswIndex;
pub use ivf::IvfIndex;
pub use lsh::LshIndex;
pub use quant::{CodeKind, Codes, QuantizedIndex};

use crate::distance::{AlignedF32Vec, Kernels};
use crate::storage::vectors::VectorMap;
use serde::{Deserialize, Serialize};

/// The similarity a collection is searched by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Euclidean distance.
    L2,
    /// Inner product (larger is more similar).
    Ip,
    /// Cosine similarity; vectors are normalised before indexing.
    Cosine,
}

impl Metric {
    /// The score of `b` for the query `a`, as a search hit reports it: the euclidean distance
    /// (L2), the inner product (Ip) or the cosine similarity (Cosine; 0 when either vector is
    /// zero). Panics if the lengths differ.
    pub fn score(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Metric::L2 => crate::distance::l2_squared(a, b).max(0.0).sqrt(),
            Metric::Ip => crate::distance::dot(a, b),
            Metric::Cosine => {
                let norms = crate::distance::norm(a) * crate::distance::norm(b);
                if norms > 0.0 {
                    crate::distance::dot(a, b) / norms
                } else {
                    0.0
                }
            }
        }
    }

    /// A score turned so that larger is always more similar: the score itself, or minus the
    /// distance for L2.
    pub fn similarity(self, score: f32) -> f32 {
        match self {
            Metric::L2 => -score,
            Metric::Ip | Metric::Cosine => score,
        }
    }
}

/// HNSW's build and search parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Links per node on the upper layers (twice that on layer 0).
    pub m: usize,
    /// Candidate list size while building.
    pub ef_construction: usize,
    /// Default candidate list size per query (raised to k when smaller).
    pub ef: usize,
}

impl Default for HnswParams {
    /// M = 16, ef_construction = 200, ef = 64.
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 200,
            ef: 64,
        }
    }
}

/// IVF's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IvfParams {
    /// Number of k-means lists.
    pub nlist: usize,
    /// Default number of lists probed per query.
    pub nprobe: usize,
}

impl Default for IvfParams {
    /// nlist = 256, nprobe = 16.
    fn default() -> Self {
        IvfParams {
            nlist: 256,
            nprobe: 16,
        }
    }
}

/// LSH's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LshParams {
    /// Number of hash tables.
    pub tables: usize,
    /// Hash functions concatenated per table.
    pub bits: usize,
    /// Extra buckets probed per table and query (0 = only the query's own bucket).
    pub probes: usize,
    /// L2 only: bucket width, in units of the data's typical nearest-neighbour distance.
    pub bucket_width: f32,
}

impl Default for LshParams {
    /// See `docs/index-parameters.md` for their recall.
    fn default() -> Self {
        LshParams {
            tables: lsh::DEFAULT_TABLES,
            bits: lsh::DEFAULT_BITS,
            probes: lsh::DEFAULT_PROBES,
            bucket_width: lsh::DEFAULT_BUCKET_WIDTH,
        }
    }
}

/// How a search on SQ8 codes re-ranks its candidates with exact distances (Milvus' names).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RefineParams {
    /// Re-rank the best `ceil(k * refine_k)` candidates with exact distances.
    #[serde(default = "default_refine")]
    pub refine: bool,
    /// Default oversampling factor (at least 1).
    #[serde(default = "default_refine_k")]
    pub refine_k: f32,
}

impl Default for RefineParams {
    /// Re-ranking on, with [`quant::DEFAULT_REFINE_K`].
    fn default() -> Self {
        RefineParams {
            refine: true,
            refine_k: quant::DEFAULT_REFINE_K,
        }
    }
}

/// Which index structure a collection uses, with its build-time parameters.
/// See `docs/index-parameters.md` for what each parameter trades.
///
/// The serde form is flat: `{"kind": "hnsw_sq", "m": 16, "ef_construction": 200, "ef": 64,
/// "refine": true, "refine_k": 3.0}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum IndexSpec {
    /// Exact brute-force search.
    Flat,
    /// Hierarchical navigable small-world graph.
    Hnsw(HnswParams),
    /// Inverted file with flat lists.
    Ivf(IvfParams),
    /// Locality-sensitive hashing with multi-probe.
    Lsh(LshParams),
    /// Exact scan of SQ8 codes, re-ranked with the stored vectors.
    #[serde(rename = "flat_sq8")]
    FlatSq8(RefineParams),
    /// HNSW walked on SQ8 codes, re-ranked with the stored vectors (Milvus' `HNSW_SQ`); `ef`
    /// is raised to the number of candidates re-ranked when smaller.
    #[serde(rename = "hnsw_sq")]
    HnswSq {
        #[serde(flatten)]
        hnsw: HnswParams,
        #[serde(flatten)]
        rerank: RefineParams,
    },
    /// IVF whose lists are scanned on SQ8 codes, re-ranked with the stored vectors (Milvus'
    /// `IVF_SQ8`).
    #[serde(rename = "ivf_sq8")]
    IvfSq8 {
        #[serde(flatten)]
        ivf: IvfParams,
        #[serde(flatten)]
        rerank: RefineParams,
    },
    /// Exact scan of RaBitQ codes (one bit per dimension), re-ranked by the codes' error bound.
    #[serde(rename = "flat_rabitq")]
    FlatRabitq {
        /// Re-rank, with exact distances, every candidate the error bound does not rule out.
        #[serde(default = "default_refine")]
        refine: bool,
    },
    /// IVF whose lists are scanned on RaBitQ codes, re-ranked by the codes' error bound
    /// (Milvus' `IVF_RABITQ`).
    #[serde(rename = "ivf_rabitq")]
    IvfRabitq {
        #[serde(flatten)]
        ivf: IvfParams,
        /// As for `FlatRabitq`.
        #[serde(default = "default_refine")]
        refine: bool,
    },
    /// HNSW whose walk reads a neighbour's f32 vector only when the neighbour's RaBitQ lower
    /// bound does not already rule it out of the `ef` best; every distance it keeps is exact,
    /// so it has no `refine` or `refine_k`.
    #[serde(rename = "hnsw_rabitq")]
    HnswRabitq(HnswParams),
}

fn default_refine() -> bool {
    true
}

fn default_refine_k() -> f32 {
    quant::DEFAULT_REFINE_K
}

/// Largest accepted HNSW `m`, `ef_construction` / `ef`, IVF `nlist`, LSH `tables` and `probes`.
const MAX_M: usize = 256;
const MAX_EF: usize = 100_000;
const MAX_NLIST: usize = 1 << 20;
const MAX_TABLES: usize = 256;
const MAX_PROBES: usize = 4096;
/// Largest LSH projection matrix, in floats (tables x bits x dimension): 64 MiB. The matrix is
/// drawn at every open, so without this bound a tiny create request could cost gigabytes and
/// minutes then and at every start after.
pub const MAX_LSH_PROJECTION: usize = 1 << 24;
/// Largest IVF centre table, in floats (nlist x dimension): 512 MiB, room for nlist 65,536 at
/// dimension 2,048. k-means allocates it and touches every centre per point, so an unbounded
/// product would let one create request cost gigabytes once the collection trains.
pub const MAX_IVF_CENTRES: usize = 1 << 27;

/// A quantised kind taken apart: the structure it searches, its codes and its re-ranking.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedParts {
    /// The unquantised spec of the structure walked on codes.
    pub base: IndexSpec,
    /// The codes.
    pub codes: CodeKind,
    /// Re-rank with exact distances by default.
    pub refine: bool,
    /// Default oversampling factor; `None` for RaBitQ codes, whose candidates are re-ranked by
    /// their error bound.
    pub refine_k: Option<f32>,
}

impl IndexSpec {
    /// HNSW with the default parameters.
    pub fn default_hnsw() -> Self {
        IndexSpec::Hnsw(HnswParams::default())
    }

    /// IVF with the default parameters.
    pub fn default_ivf() -> Self {
        IndexSpec::Ivf(IvfParams::default())
    }

    /// LSH with the default parameters (see `docs/index-parameters.md` for their recall).
    pub fn default_lsh() -> Self {
        IndexSpec::Lsh(LshParams::default())
    }

    /// HNSW on SQ8 codes with the default parameters.
    pub fn default_hnsw_sq() -> Self {
        IndexSpec::HnswSq {
            hnsw: HnswParams::default(),
            rerank: RefineParams::default(),
        }
    }

    /// IVF on SQ8 codes with the default parameters.
    pub fn default_ivf_sq8() -> Self {
        IndexSpec::IvfSq8 {
            ivf: IvfParams::default(),
            rerank: RefineParams::default(),
        }
    }

    /// IVF on RaBitQ codes with the default parameters.
    pub fn default_ivf_rabitq() -> Self {
        IndexSpec::IvfRabitq {
            ivf: IvfParams::default(),
            refine: true,
        }
    }

    /// HNSW on RaBitQ bounds with the default parameters.
    pub fn default_hnsw_rabitq() -> Self {
        IndexSpec::HnswRabitq(HnswParams::default())
    }

    /// The index kind's name as used in the serde form: "flat", "hnsw", "ivf", "lsh",
    /// "flat_sq8", "hnsw_sq", "ivf_sq8", "flat_rabitq", "ivf_rabitq" or "hnsw_rabitq".
    pub fn kind_name(&self) -> &'static str {
        match self {
            IndexSpec::Flat => "flat",
            IndexSpec::Hnsw(_) => "hnsw",
            IndexSpec::Ivf(_) => "ivf",
            IndexSpec::Lsh(_) => "lsh",
            IndexSpec::FlatSq8(_) => "flat_sq8",
            IndexSpec::HnswSq { .. } => "hnsw_sq",
            IndexSpec::IvfSq8 { .. } => "ivf_sq8",
            IndexSpec::FlatRabitq { .. } => "flat_rabitq",
            IndexSpec::IvfRabitq { .. } => "ivf_rabitq",
            IndexSpec::HnswRabitq(_) => "hnsw_rabitq",
        }
    }

    /// For the quantised kinds: the unquantised spec whose structure they search on codes,
    /// the codes, and the re-ranking. `None` for the others.
    pub fn quantized_parts(&self) -> Option<QuantizedParts> {
        let (base, codes, refine, refine_k) = match *self {
            IndexSpec::FlatSq8(rerank) => (
                IndexSpec::Flat,
                CodeKind::Sq8,
                rerank.refine,
                Some(rerank.refine_k),
            ),
            IndexSpec::HnswSq { hnsw, rerank } => (
                IndexSpec::Hnsw(hnsw),
                CodeKind::Sq8,
                rerank.refine,
                Some(rerank.refine_k),
            ),
            IndexSpec::IvfSq8 { ivf, rerank } => (
                IndexSpec::Ivf(ivf),
                CodeKind::Sq8,
                rerank.refine,
                Some(rerank.refine_k),
            ),
            IndexSpec::FlatRabitq { refine } => (IndexSpec::Flat, CodeKind::Rabitq, refine, None),
            IndexSpec::IvfRabitq { ivf, refine } => {
                (IndexSpec::Ivf(ivf), CodeKind::Rabitq, refine, None)
            }
            IndexSpec::HnswRabitq(hnsw) => (IndexSpec::Hnsw(hnsw), CodeKind::Rabitq, true, None),
            _ => return None,
        };
        Some(QuantizedParts {
            base,
            codes,
            refine,
            refine_k,
        })
    }

    /// Checks every parameter; out-of-range values are rejected, never capped.
    /// The error names the parameter and the accepted range.
    pub fn validate(&self, dim: usize) -> Result<(), String> {
        if dim == 0 {
            return Err("dim must be at least 1".into());
        }
        match *self {
            IndexSpec::Flat => Ok(()),
            IndexSpec::Hnsw(HnswParams {
                m,
                ef_construction,
                ef,
            }) => {
                check_range("m", m, 2, MAX_M)?;
                check_range("ef_construction", ef_construction, m, MAX_EF)
                    .map_err(|e| format!("{e} (it must be at least m)"))?;
                check_range("ef", ef, 1, MAX_EF)
            }
            IndexSpec::Ivf(IvfParams { nlist, nprobe }) => {
                check_range("nlist", nlist, 1, MAX_NLIST)?;
                let floats = nlist.saturating_mul(dim);
                if floats > MAX_IVF_CENTRES {
                    return Err(format!(
                        "nlist x dimension is {floats}; the limit is {MAX_IVF_CENTRES}"
                    ));
                }
                check_range("nprobe", nprobe, 1, nlist)
                    .map_err(|e| format!("{e} (it cannot exceed nlist)"))
            }
            IndexSpec::Lsh(LshParams {
                tables,
                bits,
                probes,
                bucket_width,
            }) => {
                check_range("tables", tables, 1, MAX_TABLES)?;
                check_range("bits", bits, 1, 64)?;
                check_range("probes", probes, 0, MAX_PROBES)?;
                let floats = tables.saturating_mul(bits).saturating_mul(dim);
                if floats > MAX_LSH_PROJECTION {
                    return Err(format!(
                        "tables x bits x dimension is {floats}; the limit is {MAX_LSH_PROJECTION}"
                    ));
                }
                if !(bucket_width.is_finite() && bucket_width > 0.0) {
                    return Err(format!(
                        "bucket_width must be a finite number above 0, got {bucket_width}"
                    ));
                }
                Ok(())
            }
            IndexSpec::FlatSq8(_)
            | IndexSpec::HnswSq { .. }
            | IndexSpec::IvfSq8 { .. }
            | IndexSpec::FlatRabitq { .. }
            | IndexSpec::IvfRabitq { .. }
            | IndexSpec::HnswRabitq(_) => {
                let parts = self
                    .quantized_parts()
                    .expect("the quantised kinds have parts");
                parts.base.validate(dim)?;
                parts.refine_k.map_or(Ok(()), quant::check_refine_k)
            }
        }
    }
}

fn check_range(name: &str, value: usize, min: usize, max: usize) -> Result<(), String> {
    if value < min || value > max {
        Err(format!("{name} must be in {min}..={max}, got {value}"))
    } else {
        Ok(())
    }
}

/// The index's internal distance; both kinds are "smaller is better".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DistanceKind {
    /// Squared euclidean distance (for `Metric::L2`).
    L2Squared,
    /// Negated inner product (for `Metric::Ip`, and `Metric::Cosine` on normalised vectors).
    NegDot,
}

impl From<Metric> for DistanceKind {
    fn from(m: Metric) -> Self {
        match m {
            Metric::L2 => DistanceKind::L2Squared,
            Metric::Ip | Metric::Cosine => DistanceKind::NegDot,
        }
    }
}

impl DistanceKind {
    /// The distance between `a` and `b` with the given kernels.
    #[inline(always)]
    pub fn eval(self, k: &Kernels, a: &[f32], b: &[f32]) -> f32 {
        match self {
            DistanceKind::L2Squared => k.l2_squared(a, b),
            DistanceKind::NegDot => -k.dot(a, b),
        }
    }

    fn code(self) -> u8 {
        match self {
            DistanceKind::L2Squared => 0,
            DistanceKind::NegDot => 1,
        }
    }
}

/// Slot-addressed storage of vectors of one dimension. Two backings:
///
/// - owned: slot `s` holds floats `s * dim .. (s + 1) * dim` of one 64-byte aligned buffer (the
///   in-memory form used by tests, benchmarks and callers of the index layer alone);
/// - mapped: slots are read from a collection's memory-mapped vector file
///   ([`crate::storage::vectors::VectorMap`]), so the vectors stay in the page cache instead of
///   the heap. The collection writes and maps the file; the arena only reads it, which keeps the
///   index layer free of IO.
#[derive(Debug)]
pub struct VectorArena {
    dim: usize,
    data: ArenaData,
}

#[derive(Debug)]
enum ArenaData {
    Owned(AlignedF32Vec),
    Mapped {
        map: VectorMap,
        /// Slots in use (the mapping may cover more).
        len: usize,
    },
}

impl Clone for VectorArena {
    /// Clones into an owned arena (a mapped one is copied out of its file).
    fn clone(&self) -> Self {
        let mut out = VectorArena::new(self.dim);
        for s in 0..self.len() as u32 {
            out.push(self.get(s));
        }
        out
    }
}

impl VectorArena {
    /// An empty arena for vectors of `dim` floats. Panics if `dim` is 0.
    pub fn new(dim: usize) -> Self {
        assert!(dim > 0, "VectorArena dimension must be at least 1");
        VectorArena {
            dim,
            data: ArenaData::Owned(AlignedF32Vec::new()),
        }
    }

    /// An arena reading the first `len` slots of a mapped vector file. Panics if the mapping
    /// covers fewer slots.
    pub fn mapped(dim: usize, map: VectorMap, len: usize) -> Self {
        assert!(dim > 0, "VectorArena dimension must be at least 1");
        assert!(
            len <= map.slots(),
            "the mapping covers fewer slots than asked"
        );
        VectorArena {
            dim,
            data: ArenaData::Mapped { map, len },
        }
    }

    /// Mapped arenas: replaces the mapping (after the file grew) and sets the number of slots in
    /// use. Panics on an owned arena or when the mapping covers fewer than `len` slots.
    pub fn remap(&mut self, map: Option<VectorMap>, len: usize) {
        match &mut self.data {
            ArenaData::Owned(_) => panic!("remap on an owned arena"),
            ArenaData::Mapped { map: m, len: l } => {
                if let Some(new) = map {
                    *m = new;
                }
                assert!(
                    len <= m.slots(),
                    "the mapping covers fewer slots than asked"
                );
                *l = len;
            }
        }
    }

    /// Slots the backing can hold without growing: the mapping's size for a mapped arena.
    pub fn mapped_slots(&self) -> Option<usize> {
        match &self.data {
            ArenaData::Owned(_) => None,
            ArenaData::Mapped { map, .. } => Some(map.slots()),
        }
    }

    /// Appends a vector and returns its slot. Panics if the length is not `dim`, the arena
    /// already holds `u32::MAX` vectors (callers validate dimensions first), or the arena is
    /// mapped (its file is written by the collection, then the arena is [`remap`]ped).
    ///
    /// [`remap`]: VectorArena::remap
    pub fn push(&mut self, v: &[f32]) -> u32 {
        assert_eq!(v.len(), self.dim, "vector length differs from the arena's");
        let slot = u32::try_from(self.len()).expect("arena is full (u32 slots)");
        assert!(slot < u32::MAX, "arena is full (u32 slots)");
        match &mut self.data {
            ArenaData::Owned(data) => data.extend_from_slice(v),
            ArenaData::Mapped { .. } => panic!("push on a mapped arena"),
        }
        slot
    }

    /// Hints the CPU to start loading every cache line of the vector in `slot`, for a scan
    /// that will read it next. Panics if the slot does not exist.
    #[inline]
    pub fn prefetch(&self, slot: u32) {
        let v = self.get(slot);
        for line in (0..v.len()).step_by(16) {
            crate::distance::prefetch(v[line..].as_ptr());
        }
    }

    /// The vector in `slot`. Panics if the slot does not exist.
    #[inline]
    pub fn get(&self, slot: u32) -> &[f32] {
        match &self.data {
            ArenaData::Owned(data) => {
                let start = slot as usize * self.dim;
                &data.as_slice()[start..start + self.dim]
            }
            ArenaData::Mapped { map, len } => {
                assert!((slot as usize) < *len, "slot {slot} is not in use");
                map.get(slot)
            }
        }
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        match &self.data {
            ArenaData::Owned(data) => data.len() / self.dim,
            ArenaData::Mapped { len, .. } => *len,
        }
    }

    /// True when the arena holds no vector.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Dimension of every vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Reserves room for `additional` more vectors (owned arenas; a mapped one grows with its
    /// file).
    pub fn reserve(&mut self, additional: usize) {
        if let ArenaData::Owned(data) = &mut self.data {
            data.reserve(additional * self.dim);
        }
    }

    /// Drops every slot from `len` on (used when rolling back a failed batch).
    pub fn truncate(&mut self, len: usize) {
        match &mut self.data {
            ArenaData::Owned(data) => data.truncate(len * self.dim),
            ArenaData::Mapped { len: l, .. } => *l = (*l).min(len),
        }
    }

    /// Heap bytes held (0 for a mapped arena: its vectors live in the page cache).
    pub fn memory_bytes(&self) -> usize {
        match &self.data {
            ArenaData::Owned(data) => data.memory_bytes(),
            ArenaData::Mapped { .. } => 0,
        }
    }

    /// Bytes of file mapped (0 for an owned arena).
    pub fn mapped_bytes(&self) -> usize {
        match &self.data {
            ArenaData::Owned(_) => 0,
            ArenaData::Mapped { map, .. } => map.mapped_bytes(),
        }
    }
}

/// Per-query overrides of the index's default search parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QueryParams {
    /// HNSW candidate list size.
    pub ef: Option<usize>,
    /// IVF lists probed.
    pub nprobe: Option<usize>,
    /// LSH extra buckets probed per table.
    pub probes: Option<usize>,
    /// Quantised indexes: oversampling factor of the exact re-ranking.
    pub refine_k: Option<f32>,
}

/// Any index kind, dispatched by `match` (no trait objects on the hot path).
// A collection holds one index, so the size gap between variants costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum AnyIndex {
    /// Exact search.
    Flat(FlatIndex),
    /// HNSW graph.
    Hnsw(HnswIndex),
    /// IVF-Flat.
    Ivf(IvfIndex),
    /// LSH.
    Lsh(LshIndex),
    /// A flat, HNSW or IVF index searched on SQ8 or RaBitQ codes.
    Quantized(QuantizedIndex),
}

impl AnyIndex {
    /// A new empty index. Panics if `spec.validate(dim)` fails; use [`AnyIndex::try_new`] where
    /// the spec is not validated yet.
    pub fn new(spec: &IndexSpec, dim: usize, kind: DistanceKind, seed: u64) -> Self {
        Self::try_new(spec, dim, kind, seed).unwrap_or_else(|e| panic!("invalid index spec: {e}"))
    }

    /// A new empty index, or the validation error of `spec`.
    pub fn try_new(
        spec: &IndexSpec,
        dim: usize,
        kind: DistanceKind,
        seed: u64,
    ) -> Result<Self, String> {
        spec.validate(dim)?;
        if let Some(parts) = spec.quantized_parts() {
            let inner = AnyIndex::try_new(&parts.base, dim, kind, seed)?;
            return Ok(AnyIndex::Quantized(QuantizedIndex::new(
                inner,
                dim,
                kind,
                parts.codes,
                parts.refine,
                parts.refine_k,
            )));
        }
        Ok(match *spec {
            IndexSpec::Flat => AnyIndex::Flat(FlatIndex::new(dim, kind)),
            IndexSpec::Hnsw(HnswParams {
                m,
                ef_construction,
                ef,
            }) => AnyIndex::Hnsw(HnswIndex::new(dim, kind, m, ef_construction, ef, seed)),
            IndexSpec::Ivf(IvfParams { nlist, nprobe }) => {
                AnyIndex::Ivf(IvfIndex::new(dim, kind, nlist, nprobe, seed))
            }
            IndexSpec::Lsh(params) => AnyIndex::Lsh(LshIndex::new(dim, kind, params, seed)),
            IndexSpec::FlatSq8(_)
            | IndexSpec::HnswSq { .. }
            | IndexSpec::IvfSq8 { .. }
            | IndexSpec::FlatRabitq { .. }
            | IndexSpec::IvfRabitq { .. }
            | IndexSpec::HnswRabitq(_) => unreachable!("quantised specs returned above"),
        })
    }

    /// Bulk build over slots already in the arena; replaces any previous content. IVF trains
    /// its k-means here; HNSW inserts in parallel when the rayon pool has several threads.
    pub fn build(&mut self, arena: &VectorArena, slots: &[u32]) {
        match self {
            AnyIndex::Flat(i) => i.build(slots),
            AnyIndex::Hnsw(i) => i.build(arena, slots),
            AnyIndex::Ivf(i) => i.build(arena, slots),
            AnyIndex::Lsh(i) => i.build(arena, slots),
            AnyIndex::Quantized(i) => i.build(arena, slots),
        }
    }

    /// Adds one slot (already pushed to the arena); it is searchable at once.
    pub fn add(&mut self, arena: &VectorArena, slot: u32) {
        match self {
            AnyIndex::Flat(i) => i.add(slot),
            AnyIndex::Hnsw(i) => i.add(arena, slot),
            AnyIndex::Ivf(i) => {
                i.add(arena, slot);
            }
            AnyIndex::Lsh(i) => i.add(arena, slot),
            AnyIndex::Quantized(i) => i.add(arena, slot),
        }
    }

    /// [`Self::add`] in two parts, so that the costly part of an HNSW insertion can run while
    /// searches do: this one, under `&mut self`, does all of the add for the other kinds and
    /// stages the slot for HNSW; [`Self::link`] must follow when it returns true.
    pub fn stage(&mut self, arena: &VectorArena, slot: u32) -> bool {
        match self {
            AnyIndex::Hnsw(i) => i.stage(slot),
            AnyIndex::Quantized(i) => i.stage(arena, slot),
            other => {
                other.add(arena, slot);
                false
            }
        }
    }

    /// Finishes the add of a slot [`Self::stage`] staged (see [`HnswIndex::link`]).
    pub fn link(&self, arena: &VectorArena, slot: u32) {
        match self {
            AnyIndex::Hnsw(i) => i.link(arena, slot),
            AnyIndex::Quantized(i) => i.link(arena, slot),
            // `stage` finishes the add of the other kinds itself.
            _ => {}
        }
    }

    /// The `k` nearest accepted slots, ascending by internal distance. Rejected slots are never
    /// returned; HNSW still walks through them. Parameters must have passed `validate_params`.
    pub fn search(
        &self,
        arena: &VectorArena,
        query: &[f32],
        k: usize,
        params: &QueryParams,
        accept: &dyn Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        match self {
            AnyIndex::Flat(i) => i.search(arena, query, k, accept),
            AnyIndex::Hnsw(i) => i.search(arena, query, k, params.ef, accept),
            AnyIndex::Ivf(i) => i.search(arena, query, k, params.nprobe, accept),
            AnyIndex::Lsh(i) => i.search(arena, query, k, params.probes, accept),
            AnyIndex::Quantized(i) => i.search(arena, query, k, params, accept),
        }
    }

    /// `search` for many queries with the same `k`, parameters and filter. The flat index
    /// computes them as matrix products (much faster than one by one); the others loop.
    pub fn search_batch(
        &self,
        arena: &VectorArena,
        queries: &[&[f32]],
        k: usize,
        params: &QueryParams,
        accept: &dyn Fn(u32) -> bool,
    ) -> Vec<Vec<(u32, f32)>> {
        match self {
            AnyIndex::Flat(i) => i.search_batch(arena, queries, k, accept),
            _ => queries
                .iter()
                .map(|q| self.search(arena, q, k, params, accept))
                .collect(),
        }
    }

    /// Checks per-query parameters against this index (e.g. nprobe above nlist is rejected).
    /// Parameters that do not apply to this index kind are ignored.
    pub fn validate_params(&self, params: &QueryParams) -> Result<(), String> {
        match self {
            AnyIndex::Flat(_) => Ok(()),
            AnyIndex::Hnsw(_) => match params.ef {
                Some(ef) => check_range("ef", ef, 1, MAX_EF),
                None => Ok(()),
            },
            AnyIndex::Ivf(i) => match params.nprobe {
                Some(n) => check_range("nprobe", n, 1, i.nlist())
                    .map_err(|e| format!("{e} (it cannot exceed nlist)")),
                None => Ok(()),
            },
            AnyIndex::Lsh(_) => match params.probes {
                Some(p) => check_range("probes", p, 0, MAX_PROBES),
                None => Ok(()),
            },
            AnyIndex::Quantized(i) => i.validate_params(params),
        }
    }

    /// Number of slots indexed.
    pub fn len(&self) -> usize {
        match self {
            AnyIndex::Flat(i) => i.len(),
            AnyIndex::Hnsw(i) => i.len(),
            AnyIndex::Ivf(i) => i.len(),
            AnyIndex::Lsh(i) => i.len(),
            AnyIndex::Quantized(i) => i.len(),
        }
    }

    /// True when no slot is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The raw little-endian body of the index (no magic, version or checksum).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            AnyIndex::Flat(i) => i.to_bytes(),
            AnyIndex::Hnsw(i) => i.to_bytes(),
            AnyIndex::Ivf(i) => i.to_bytes(),
            AnyIndex::Lsh(i) => i.to_bytes(),
            AnyIndex::Quantized(i) => i.to_bytes(),
        }
    }

    /// Rebuilds an index from `to_bytes` output; fails if the bytes do not match `spec`,
    /// `dim` and `kind`, or are truncated or corrupt.
    pub fn from_bytes(
        spec: &IndexSpec,
        dim: usize,
        kind: DistanceKind,
        bytes: &[u8],
    ) -> Result<Self, String> {
        spec.validate(dim)?;
        if let Some(parts) = spec.quantized_parts() {
            return Ok(AnyIndex::Quantized(QuantizedIndex::from_bytes(
                dim,
                kind,
                &parts,
                bytes,
                |inner| AnyIndex::from_bytes(&parts.base, dim, kind, inner),
            )?));
        }
        Ok(match *spec {
            IndexSpec::Flat => AnyIndex::Flat(FlatIndex::from_bytes(dim, kind, bytes)?),
            IndexSpec::Hnsw(HnswParams {
                m,
                ef_construction,
                ef,
            }) => AnyIndex::Hnsw(HnswIndex::from_bytes(
                dim,
                kind,
                m,
                ef_construction,
                ef,
                bytes,
            )?),
            IndexSpec::Ivf(IvfParams { nlist, nprobe }) => {
                AnyIndex::Ivf(IvfIndex::from_bytes(dim, kind, nlist, nprobe, bytes)?)
            }
            IndexSpec::Lsh(params) => {
                AnyIndex::Lsh(LshIndex::from_bytes(dim, kind, params, bytes)?)
            }
            IndexSpec::FlatSq8(_)
            | IndexSpec::HnswSq { .. }
            | IndexSpec::IvfSq8 { .. }
            | IndexSpec::FlatRabitq { .. }
            | IndexSpec::IvfRabitq { .. }
            | IndexSpec::HnswRabitq(_) => unreachable!("quantised specs returned above"),
        })
    }

    /// Approximate bytes held by the index structure (not the arena).
    pub fn memory_bytes(&self) -> usize {
        match self {
            AnyIndex::Flat(i) => i.memory_bytes(),
            AnyIndex::Hnsw(i) => i.memory_bytes(),
            AnyIndex::Ivf(i) => i.memory_bytes(),
            AnyIndex::Lsh(i) => i.memory_bytes(),
            AnyIndex::Quantized(i) => i.memory_bytes(),
        }
    }
}

/// Writes the header shared by every index body: the distance kind and dimension, so that
/// loading a body into a collection of another shape fails instead of misbehaving.
fn write_header(w: &mut codec::Writer, dim: usize, kind: DistanceKind) {
    w.u8(kind.code());
    w.u64(dim as u64);
}

fn read_header(r: &mut codec::Reader<'_>, dim: usize, kind: DistanceKind) -> Result<(), String> {
    let code = r.u8()?;
    let got_dim = r.u64()?;
    if code != kind.code() {
        return Err(format!(
            "index body is for distance code {code}, expected {}",
            kind.code()
        ));
    }
    if got_dim != dim as u64 {
        return Err(format!(
            "index body is for dimension {got_dim}, expected {dim}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
