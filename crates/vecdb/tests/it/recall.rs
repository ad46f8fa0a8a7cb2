//! Recall@10 through the Collection API on clustered data, against brute force.

use vecdb::IvfParams;
use vecdb::{Database, IndexSpec, Metric, SearchRequest};

use crate::common::*;

const DIM: usize = 32;
const N: usize = 4000;
/// Overlapping clusters: easy data would give every index a recall of 1 and test nothing.
const SPREAD: f32 = 1.0;

fn recall_of(index: IndexSpec, metric: Metric) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db
        .create_collection(config("r", DIM, metric, index))
        .unwrap();
    let vectors = clustered_with(N, DIM, 30, 21, SPREAD);
    let pts = points(&vectors, 0);
    for chunk in pts.chunks(500) {
        c.insert(chunk).unwrap();
    }
    let data: Vec<_> = pts
        .into_iter()
        .map(|p| (p.id, p.vector, p.metadata))
        .collect();
    let qs = clustered_with(N + 100, DIM, 30, 21, SPREAD).split_off(N);
    let total: f64 = qs
        .iter()
        .map(|q| {
            let hits = c.search(q, &SearchRequest::new(10)).unwrap();
            recall(&hits, &brute_force(metric, &data, q, 10, |_| true))
        })
        .sum();
    total / qs.len() as f64
}

#[test]
fn hnsw_default_ef_reaches_095() {
    for metric in [Metric::L2, Metric::Cosine] {
        let r = recall_of(IndexSpec::default_hnsw(), metric);
        println!("hnsw {metric:?} recall@10 = {r:.3}");
        assert!(r >= 0.95, "HNSW recall@10 {r} at default ef");
    }
}

#[test]
fn flat_is_exact() {
    assert_eq!(recall_of(IndexSpec::Flat, Metric::Ip), 1.0);
}

#[test]
fn ivf_and_lsh_defaults() {
    let ivf = recall_of(
        IndexSpec::Ivf(IvfParams {
            nlist: 32,
            nprobe: 8,
        }),
        Metric::L2,
    );
    let lsh = recall_of(IndexSpec::default_lsh(), Metric::L2);
    println!("ivf nlist 32 nprobe 8 recall@10 = {ivf:.3}; lsh default recall@10 = {lsh:.3}");
    assert!(ivf >= 0.8, "IVF recall {ivf}");
    assert!(lsh >= 0.5, "LSH recall {lsh}");
}
