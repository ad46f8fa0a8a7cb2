//! LSH recall at the documented default settings, multi-probe and the round trip.

use crate::index::testutil::*;
use crate::index::{AnyIndex, DistanceKind, IndexSpec, QueryParams};

#[test]
fn default_recall_l2() {
    default_recall(DistanceKind::L2Squared, 21, "LSH L2 recall@10");
}

#[test]
fn default_recall_cosine() {
    default_recall(DistanceKind::NegDot, 23, "LSH cosine recall@10");
}

/// Recall@10 of the default LSH index of `kind` over clustered points: at least 0.9 at the
/// default probes, and no lower than when probing the query's own buckets only.
fn default_recall(kind: DistanceKind, seed: u64, label: &str) {
    let pts = for_kind(clustered(10_000, 32, 40, 0.25, seed), kind);
    let arena = arena_of(&pts);
    let idx = built(&IndexSpec::default_lsh(), &arena, kind);
    let queries = for_kind(clustered(200, 32, 40, 0.25, seed + 1), kind);
    let p0 = QueryParams {
        probes: Some(0),
        ..Default::default()
    };
    let r0 = recall10(&idx, &arena, kind, &queries, &p0);
    eprintln!("{label} with probes 0: {r0}");
    let r = assert_recall10(label, &idx, &arena, kind, &queries, 0.9);
    assert!(r >= r0, "multi-probe must not lower recall");
}

#[test]
fn pending_points_are_found_and_round_trip() {
    let pts = clustered(1_000, 16, 10, 0.3, 25);
    let arena = arena_of(&pts);
    let spec = IndexSpec::default_lsh();
    let mut idx = AnyIndex::new(&spec, 16, DistanceKind::L2Squared, 3);
    // Fewer points than the calibration needs: exact.
    for s in 0..100 {
        idx.add(&arena, s);
    }
    let got = idx.search(&arena, arena.get(5), 1, &QueryParams::default(), &|_| true);
    assert_eq!(got[0].0, 5);
    for s in 100..1_000 {
        idx.add(&arena, s);
    }
    let bytes = idx.to_bytes();
    let back = AnyIndex::from_bytes(&spec, 16, DistanceKind::L2Squared, &bytes).unwrap();
    assert_eq!(back.to_bytes(), bytes);
    for s in (0..1_000).step_by(97) {
        let q = arena.get(s);
        let p = QueryParams::default();
        assert_eq!(
            idx.search(&arena, q, 5, &p, &|_| true),
            back.search(&arena, q, 5, &p, &|_| true)
        );
    }
    assert!(AnyIndex::from_bytes(&spec, 16, DistanceKind::L2Squared, &bytes[..10]).is_err());
}
