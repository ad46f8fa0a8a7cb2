//! Shared helpers: deterministic clustered data, brute-force references, small specs per kind.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use vecdb::{CollectionConfig, Database, Hit, IndexSpec, Metric, Point};
use vecdb::{IvfParams, RefineParams};

/// Index specs sized for test data of a few hundred to a few thousand points.
pub fn spec(kind: &str) -> IndexSpec {
    match kind {
        "flat" => IndexSpec::Flat,
        "hnsw" => IndexSpec::default_hnsw(),
        "ivf" => IndexSpec::Ivf(IvfParams {
            nlist: 16,
            nprobe: 8,
        }),
        "lsh" => IndexSpec::default_lsh(),
        "flat_sq8" => IndexSpec::FlatSq8(RefineParams {
            refine: true,
            refine_k: 4.0,
        }),
        "hnsw_sq" => IndexSpec::default_hnsw_sq(),
        "ivf_sq8" => IndexSpec::IvfSq8 {
            ivf: IvfParams {
                nlist: 16,
                nprobe: 8,
            },
            rerank: RefineParams {
                refine: true,
                refine_k: 4.0,
            },
        },
        "flat_rabitq" => IndexSpec::FlatRabitq { refine: true },
        "ivf_rabitq" => IndexSpec::IvfRabitq {
            ivf: IvfParams {
                nlist: 16,
                nprobe: 8,
            },
            refine: true,
        },
        "hnsw_rabitq" => IndexSpec::default_hnsw_rabitq(),
        other => panic!("unknown kind {other}"),
    }
}

pub fn config(name: &str, dim: usize, metric: Metric, index: IndexSpec) -> CollectionConfig {
    CollectionConfig {
        name: name.to_string(),
        dim,
        metric,
        index,
    }
}

/// `n` vectors around `clusters` random centres, with Gaussian-ish noise.
pub fn clustered(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<Vec<f32>> {
    clustered_with(n, dim, clusters, seed, 0.1)
}

/// Like [`clustered`], with noise of about `spread` standard deviation per component (the
/// centres' components are uniform in -1..1, so 0.3 and above makes clusters overlap).
pub fn clustered_with(
    n: usize,
    dim: usize,
    clusters: usize,
    seed: u64,
    spread: f32,
) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect())
        .collect();
    (0..n)
        .map(|_| {
            let c = &centres[rng.gen_range(0..clusters)];
            c.iter()
                .map(|x| {
                    let noise: f32 = (0..3).map(|_| rng.gen_range(-spread..spread)).sum();
                    x + noise
                })
                .collect()
        })
        .collect()
}

/// `nq` queries from the same distribution as `clustered(n, dim, clusters, seed)` (the same
/// centres): the points that would follow the data set's last point.
pub fn queries_for(n: usize, nq: usize, dim: usize, clusters: usize, seed: u64) -> Vec<Vec<f32>> {
    clustered(n + nq, dim, clusters, seed).split_off(n)
}

/// Metadata used by filter tests: a group number, tags and a date.
pub fn metadata(id: u64) -> Value {
    let tags: Vec<&str> = ["red", "green", "blue"]
        .iter()
        .enumerate()
        .filter(|(i, _)| matches!(id % (*i as u64 + 2), 0))
        .map(|(_, t)| *t)
        .collect();
    let day = 1 + (id % 28);
    let month = 1 + (id % 12);
    json!({
        "group": id % 5,
        "tags": tags,
        "taken": format!("2020-{month:02}-{day:02}T12:00:00Z"),
        "info": {"rare": matches!(id % 97, 0)},
    })
}

pub fn points(vectors: &[Vec<f32>], first_id: u64) -> Vec<Point> {
    vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let id = first_id + i as u64;
            Point::with_metadata(id, v.clone(), metadata(id))
        })
        .collect()
}

/// The score a collection reports for a stored vector, computed the slow obvious way.
pub fn score(metric: Metric, q: &[f32], v: &[f32]) -> f32 {
    let dot: f64 = q
        .iter()
        .zip(v)
        .map(|(a, b)| f64::from(*a) * f64::from(*b))
        .sum();
    match metric {
        Metric::L2 => q
            .iter()
            .zip(v)
            .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
            .sum::<f64>()
            .sqrt() as f32,
        Metric::Ip => dot as f32,
        Metric::Cosine => {
            let nq: f64 = q.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
            let nv: f64 = v.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
            (dot / (nq * nv)) as f32
        }
    }
}

/// Reference copies of stored points: id, vector, metadata.
pub type Data = Vec<(u64, Vec<f32>, Value)>;

/// Exact top-k ids over `(id, vector, metadata)` passing `keep`, best first.
pub fn brute_force(
    metric: Metric,
    data: &[(u64, Vec<f32>, Value)],
    q: &[f32],
    k: usize,
    keep: impl Fn(&Value) -> bool,
) -> Vec<(u64, f32)> {
    let mut all: Vec<(u64, f32)> = data
        .iter()
        .filter(|(_, _, m)| keep(m))
        .map(|(id, v, _)| (*id, score(metric, q, v)))
        .collect();
    // Best first, by vecdb's own notion of which way a score is better.
    all.sort_by(|a, b| metric.similarity(b.1).total_cmp(&metric.similarity(a.1)));
    all.truncate(k);
    all
}

/// Fraction of the exact ids found in the hits.
pub fn recall(hits: &[Hit], exact: &[(u64, f32)]) -> f64 {
    if exact.is_empty() {
        return 1.0;
    }
    let found = exact
        .iter()
        .filter(|(id, _)| hits.iter().any(|h| h.id == *id))
        .count();
    found as f64 / exact.len() as f64
}

/// Every stored point, read through `scan` in pages.
pub fn all_points(db: &Database, name: &str) -> Vec<Point> {
    let c = db.collection(name).unwrap();
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = c.scan(after, 97).unwrap();
        if page.is_empty() {
            return out;
        }
        after = Some(page.last().unwrap().id);
        out.extend(page);
    }
}
