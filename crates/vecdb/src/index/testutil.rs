//! Synthetic data and recall measurement shared by the index tests.

use super::{AnyIndex, DistanceKind, IndexSpec, QueryParams, VectorArena};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `n` points in `dim` dimensions around `clusters` centres (uniform in [-1, 1]^dim). Within
/// a cluster, points vary mostly along a shared random 20-dimensional subspace (spread `sigma`)
/// plus a little isotropic noise (`sigma / 10`): embeddings of real images have a low intrinsic
/// dimension, and isotropic noise in 48 dimensions is far harder than any real data for every
/// ANN method. The centres and the subspace depend only on `dim` and `clusters`, so base points
/// and queries drawn with different seeds come from the same distribution.
pub(crate) fn clustered(
    n: usize,
    dim: usize,
    clusters: usize,
    sigma: f32,
    seed: u64,
) -> Vec<Vec<f32>> {
    let latent = dim.min(20);
    let mut world = ChaCha8Rng::seed_from_u64(0xC0FFEE ^ (dim * 1_000 + clusters) as u64);
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| (0..dim).map(|_| world.gen_range(-1.0f32..1.0)).collect())
        .collect();
    let scale = 1.0 / (latent as f32).sqrt();
    let basis: Vec<Vec<f32>> = (0..latent)
        .map(|_| (0..dim).map(|_| gaussian(&mut world) * scale).collect())
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut v = centres[rng.gen_range(0..clusters)].clone();
            for b in &basis {
                let z = sigma * gaussian(&mut rng);
                v.iter_mut().zip(b).for_each(|(x, y)| *x += z * y);
            }
            v.iter_mut()
                .for_each(|x| *x += 0.1 * sigma * gaussian(&mut rng));
            v
        })
        .collect()
}

/// A standard normal sample (Box-Muller).
pub(crate) fn gaussian(rng: &mut impl Rng) -> f32 {
    let u1: f32 = 1.0 - rng.gen::<f32>();
    let u2: f32 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// Scales every vector to unit length (what Cosine collections do before indexing).
pub(crate) fn normalised(mut v: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
    for x in &mut v {
        let n = crate::distance::norm(x);
        x.iter_mut().for_each(|y| *y /= n);
    }
    v
}

/// `points` as an index of `kind` is given them: unit length for the inner-product kind (as
/// cosine collections store them), unchanged for L2.
pub(crate) fn for_kind(points: Vec<Vec<f32>>, kind: DistanceKind) -> Vec<Vec<f32>> {
    match kind {
        DistanceKind::L2Squared => points,
        DistanceKind::NegDot => normalised(points),
    }
}

/// An arena holding `points` in slots `0..n`.
pub(crate) fn arena_of(points: &[Vec<f32>]) -> VectorArena {
    let mut a = VectorArena::new(points[0].len());
    for p in points {
        a.push(p);
    }
    a
}

/// Builds `spec` over every slot of `arena`.
pub(crate) fn built(spec: &IndexSpec, arena: &VectorArena, kind: DistanceKind) -> AnyIndex {
    let mut idx = AnyIndex::new(spec, arena.dim(), kind, 42);
    let slots: Vec<u32> = (0..arena.len() as u32).collect();
    idx.build(arena, &slots);
    idx
}

/// [`recall`] with every point accepted, the case most tests measure.
pub(crate) fn recall10(
    index: &AnyIndex,
    arena: &VectorArena,
    kind: DistanceKind,
    queries: &[Vec<f32>],
    params: &QueryParams,
) -> f64 {
    recall(index, arena, kind, queries, params, &|_| true)
}

/// Recall@10 at default parameters, printed under `label` and returned; fails below `floor`.
pub(crate) fn assert_recall10(
    label: &str,
    index: &AnyIndex,
    arena: &VectorArena,
    kind: DistanceKind,
    queries: &[Vec<f32>],
    floor: f64,
) -> f64 {
    let r = recall10(index, arena, kind, queries, &QueryParams::default());
    eprintln!("{label} {r}");
    assert!(r >= floor, "{label} {r}");
    r
}

/// [`recall`] at default parameters, under the filter `accept`.
pub(crate) fn recall_where(
    index: &AnyIndex,
    arena: &VectorArena,
    kind: DistanceKind,
    queries: &[Vec<f32>],
    accept: &dyn Fn(u32) -> bool,
) -> f64 {
    recall(index, arena, kind, queries, &QueryParams::default(), accept)
}

/// Mean recall@10 of `index` against exact search over the same slots, both under the filter
/// `accept`; fails when a hit is rejected by the filter or the hits are out of order.
pub(crate) fn recall(
    index: &AnyIndex,
    arena: &VectorArena,
    kind: DistanceKind,
    queries: &[Vec<f32>],
    params: &QueryParams,
    accept: &dyn Fn(u32) -> bool,
) -> f64 {
    let k = 10;
    let mut flat = AnyIndex::new(&IndexSpec::Flat, arena.dim(), kind, 0);
    flat.build(arena, &(0..arena.len() as u32).collect::<Vec<_>>());
    let mut hits = 0usize;
    let mut total = 0usize;
    for q in queries {
        let truth = flat.search(arena, q, k, &QueryParams::default(), accept);
        let got = index.search(arena, q, k, params, accept);
        assert!(
            got.iter().all(|(s, _)| accept(*s)),
            "a rejected slot was returned"
        );
        assert!(
            got.windows(2).all(|w| w[0].1 <= w[1].1),
            "results not ascending"
        );
        total += truth.len();
        hits += truth
            .iter()
            .filter(|(s, _)| got.iter().any(|(g, _)| g == s))
            .count();
    }
    hits as f64 / total.max(1) as f64
}
