//! The search path: request validation, filter planning, score conversion.
//!
//! Score convention: L2 collections return the euclidean distance (hits ascending; `threshold`
//! is a maximum distance). Ip returns the dot product and Cosine the cosine similarity (hits
//! descending; `threshold` is a minimum score). Ties keep the index's order.
//!
//! Filter planning: the filter is first evaluated on the field indexes ([`crate::fields`]; the
//! bodies of the fields it names are loaded first, once per process) to get the set of matching
//! live slots (a bitset), without reading the metadata of points it does not match. If that set is small, fewer than
//! `max(k * EXACT_FACTOR, live / EXACT_DIVISOR)` slots, the search is exact over just those slots
//! (cheap, and approximate indexes lose recall when most candidates are rejected); otherwise the
//! index searches with the bitset as its `accept` predicate, so the filter applies during the
//! search and not after it. Should the index return fewer than `min(k, matches)` hits (its
//! candidates ran out of accepted points), the search falls back to exact over the matching set.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::collection::{check_vector, prepare_vector, Collection};
use crate::config::CollectionConfig;
use crate::error::VecDbError;
use crate::fields::ReadSlots;
use crate::filter::{CompiledFilter, Filter};
use crate::index::quant::{check_refine_k, refine_candidates, MAX_REFINE_CANDIDATES};
use crate::index::{AnyIndex, DistanceKind, IndexSpec, QueryParams, VectorArena};
use crate::state::{distance_kind, State};

/// A filtered set is searched exactly when it has fewer than `k * EXACT_FACTOR` slots ...
pub const EXACT_FACTOR: usize = 50;
/// ... or fewer than `live / EXACT_DIVISOR` (5 %) slots.
pub const EXACT_DIVISOR: usize = 20;

/// A search request. `k` must be at least 1; the optional overrides apply to the index kind that
/// knows them (`ef` HNSW, `nprobe` IVF, `probes` LSH, `refine_k` the quantised kinds) and are
/// validated, never capped.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchRequest {
    pub k: usize,
    #[serde(default)]
    pub filter: Option<Filter>,
    #[serde(default)]
    pub threshold: Option<f32>,
    #[serde(default)]
    pub ef: Option<usize>,
    #[serde(default)]
    pub nprobe: Option<usize>,
    #[serde(default)]
    pub probes: Option<usize>,
    /// Quantised indexes: re-rank the best `ceil(k * refine_k)` candidates exactly.
    #[serde(default)]
    pub refine_k: Option<f32>,
}

/// Checks a requested number of hits (`name` is the parameter's name in the caller's API):
/// at least 1 and at most `max`. Out-of-range values are refused, never silently capped.
pub fn check_k(name: &str, k: usize, max: usize) -> Result<usize, VecDbError> {
    if k == 0 || k > max {
        return Err(VecDbError::param(
            name,
            format!("must be between 1 and {max}, got {k}"),
        ));
    }
    Ok(k)
}

/// Checks that a score threshold, when given, is a finite number.
pub fn check_threshold(threshold: Option<f32>) -> Result<Option<f32>, VecDbError> {
    match threshold {
        Some(t) if !t.is_finite() => Err(VecDbError::param("threshold", "must be a finite number")),
        other => Ok(other),
    }
}

impl SearchRequest {
    /// A request for the `k` best hits with default parameters.
    pub fn new(k: usize) -> Self {
        SearchRequest {
            k,
            ..Default::default()
        }
    }
}

/// One search result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = VectorHit))]
pub struct Hit {
    pub id: u64,
    /// Cosine similarity or inner product (higher is closer) or L2 distance (lower is closer),
    /// by the collection's metric.
    pub score: f32,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: Value,
}

/// A set of slots.
struct Bitset(Vec<u64>);

impl Bitset {
    fn get(&self, slot: u32) -> bool {
        let s = slot as usize;
        self.0.get(s / 64).is_some_and(|w| w >> (s % 64) & 1 == 1)
    }
}

impl Collection {
    /// The `req.k` nearest points to `query` that pass the filter and threshold.
    pub fn search(&self, query: &[f32], req: &SearchRequest) -> Result<Vec<Hit>, VecDbError> {
        self.check_open()?;
        let config = &self.inner.config;
        check_query(config, query)?;
        check_k("k", req.k, usize::MAX)?;
        check_threshold(req.threshold)?;
        if let (Some(ef), IndexSpec::Hnsw(_) | IndexSpec::HnswSq { .. }) = (req.ef, &config.index) {
            if ef < req.k {
                return Err(VecDbError::param(
                    "ef",
                    format!("must be at least k ({}), got {ef}", req.k),
                ));
            }
        }
        if let (Some(r), Some(parts)) = (req.refine_k, config.index.quantized_parts()) {
            if parts.refine_k.is_none() {
                return Err(VecDbError::param(
                    "refine_k",
                    format!(
                        "does not apply to {}: {}",
                        config.index.kind_name(),
                        crate::index::quant::REFINE_K_BY_BOUND
                    ),
                ));
            }
            check_refine_k(r).map_err(|reason| VecDbError::param("refine_k", reason))?;
            if refine_candidates(req.k, r) > MAX_REFINE_CANDIDATES {
                return Err(VecDbError::param(
                    "refine_k",
                    format!(
                        "k x refine_k must be at most {MAX_REFINE_CANDIDATES}, got {} x {r}",
                        req.k
                    ),
                ));
            }
        }
        let filter = req.filter.as_ref().map(Filter::compile).transpose()?;
        let params = QueryParams {
            ef: req.ef,
            nprobe: req.nprobe,
            probes: req.probes,
            refine_k: req.refine_k,
        };
        let q = prepare_vector(config, query);
        let kind = distance_kind(config);
        let _span = tracing::debug_span!("search", collection = %config.name, k = req.k).entered();
        if let Some(f) = &filter {
            self.ensure_fields(f)?;
        }
        // A hit whose record is gone was deleted by a write that is committed but not yet
        // applied to memory; searching again once it is applied gives a full answer. The
        // writer lock is held from the commit until the write is applied, so taking it once
        // waits for exactly that (a yield alone left short answers on a loaded machine).
        for attempt in 0..3 {
            let st = self.inner.state.read();
            validate_params(&st.index, &params)?;
            // Free slots are never in the index, so with no dead slot every slot it holds is
            // live and the per-candidate check (a random read of the slot table) is skipped.
            let all = |_: u32| true;
            let live = |s: u32| st.is_live(s);
            let accept: &dyn Fn(u32) -> bool = if st.dead_count() == 0 { &all } else { &live };
            let found = match &filter {
                None => st.index.search(&st.arena, &q, req.k, &params, accept),
                Some(f) => filtered_search(
                    &st,
                    f,
                    &mut |slots| self.slot_metadata(&st, slots),
                    (&q, req.k, &params, kind),
                )?,
            };
            let mut kept = Vec::with_capacity(found.len());
            for (slot, dist) in found {
                let score = to_score(kind, dist);
                if let Some(t) = req.threshold {
                    let ok = match kind {
                        DistanceKind::L2Squared => score <= t,
                        DistanceKind::NegDot => score >= t,
                    };
                    if !ok {
                        continue;
                    }
                }
                kept.push((slot, st.slot_ids[slot as usize], score));
            }
            let ids: Vec<u64> = kept.iter().map(|&(_, id, _)| id).collect();
            let metadata = self.hit_metadata(&ids)?;
            if metadata.iter().any(Option::is_none) && attempt < 2 {
                drop(st);
                drop(self.inner.writer.lock());
                continue;
            }
            return Ok(kept
                .into_iter()
                .zip(metadata)
                .filter_map(|((_, id, score), m)| {
                    m.map(|metadata| Hit {
                        id,
                        score,
                        metadata,
                    })
                })
                .collect());
        }
        unreachable!("the last attempt returns")
    }
}

/// Checks a query vector against a collection's config: its dimension, finite components, and
/// a direction under cosine. Every store (this database, Milvus) refuses queries by this rule.
pub fn check_query(config: &CollectionConfig, query: &[f32]) -> Result<(), VecDbError> {
    check_vector(config, 0, query).map_err(|e| match e {
        VecDbError::WrongDimension { .. } => e,
        other => VecDbError::param("query", query_reason(&other)),
    })
}

fn query_reason(e: &VecDbError) -> String {
    match e {
        VecDbError::NonFinite { index, .. } => format!("component {index} is not finite"),
        VecDbError::ZeroVector { .. } => "a zero vector has no direction under cosine".into(),
        other => other.to_string(),
    }
}

/// Checks each override on its own, so the error names the parameter at fault.
fn validate_params(index: &AnyIndex, params: &QueryParams) -> Result<(), VecDbError> {
    let single = [
        (
            "ef",
            QueryParams {
                ef: params.ef,
                ..QueryParams::default()
            },
        ),
        (
            "nprobe",
            QueryParams {
                nprobe: params.nprobe,
                ..QueryParams::default()
            },
        ),
        (
            "probes",
            QueryParams {
                probes: params.probes,
                ..QueryParams::default()
            },
        ),
        (
            "refine_k",
            QueryParams {
                refine_k: params.refine_k,
                ..QueryParams::default()
            },
        ),
    ];
    for (name, p) in single {
        if p != QueryParams::default() {
            index
                .validate_params(&p)
                .map_err(|reason| VecDbError::param(name, reason))?;
        }
    }
    Ok(())
}

/// Internal distance (smaller is better) to the public score.
fn to_score(kind: DistanceKind, dist: f32) -> f32 {
    match kind {
        DistanceKind::L2Squared => dist.max(0.0).sqrt(),
        DistanceKind::NegDot => -dist,
    }
}

fn filtered_search(
    st: &State,
    filter: &CompiledFilter,
    read: &mut ReadSlots<'_>,
    (q, k, params, kind): (&[f32], usize, &QueryParams, DistanceKind),
) -> Result<Vec<(u32, f32)>, VecDbError> {
    let n = st.slot_ids.len();
    let Some(fields) = &st.fields else {
        unreachable!("filtered searches load the field indexes first")
    };
    let mut bits = Bitset(vec![0u64; n.div_ceil(64)]);
    let mut matched = Vec::new();
    for slot in fields.matching(filter, read)? {
        if (slot as usize) < n && st.is_live(slot) {
            bits.0[slot as usize / 64] |= 1 << (slot % 64);
            matched.push(slot);
        }
    }
    let exact_below = (k.saturating_mul(EXACT_FACTOR)).max(st.live_count() / EXACT_DIVISOR);
    if matched.len() < exact_below {
        return Ok(exact_over(&st.arena, &matched, q, k, kind));
    }
    let found = st.index.search(&st.arena, q, k, params, &|s| bits.get(s));
    if found.len() < k.min(matched.len()) {
        // The index ran out of accepted candidates (a filter that is selective in the region of
        // the query): fall back to exact search rather than return fewer than k hits.
        return Ok(exact_over(&st.arena, &matched, q, k, kind));
    }
    Ok(found)
}

/// Exact k-nearest over the given slots, ascending internal distance.
fn exact_over(
    arena: &VectorArena,
    slots: &[u32],
    q: &[f32],
    k: usize,
    kind: DistanceKind,
) -> Vec<(u32, f32)> {
    let mut all: Vec<(u32, f32)> = slots
        .iter()
        .map(|&s| {
            let v = arena.get(s);
            let d = match kind {
                DistanceKind::L2Squared => crate::distance::l2_squared(q, v),
                DistanceKind::NegDot => -crate::distance::dot(q, v),
            };
            (s, d)
        })
        .collect();
    let cmp = |a: &(u32, f32), b: &(u32, f32)| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0));
    if all.len() > k {
        all.select_nth_unstable_by(k - 1, cmp);
        all.truncate(k);
    }
    all.sort_by(cmp);
    all
}
