//! LSH recall at the documented default settings, multi-probe and the round trip.

use crate::index::testutil::*;
use crate::index::{AnyIndex, DistanceKind, IndexSpec, QueryParams};

#[test]
fn default_recall_l2() {
    let pts = clustered(10_000, 32, 40, 0.25, 21);
    let arena = arena_of(&pts);
    let idx = built(&IndexSpec::default_lsh(), &arena, DistanceKind::L2Squared);
    let queries = clustered(200, 32, 40, 0.25, 22);
    let p0 = QueryParams {
        probes: Some(0),
        ..Default::default()
    };
    let r0 = recall10(&idx, &arena, DistanceKind::L2Squared, &queries, &p0);
    let r = recall10(
        &idx,
        &arena,
        DistanceKind::L2Squared,
        &queries,
        &QueryParams::default(),
    );
    eprintln!("LSH L2 recall@10: probes 0 {r0}, default {r}");
    assert!(r >= 0.9, "LSH L2 recall {r}");
    assert!(r >= r0, "multi-probe must not lower recall");
}

#[test]
fn default_recall_cosine() {
    let pts = normalised(clustered(10_000, 32, 40, 0.25, 23));
    let arena = arena_of(&pts);
    let idx = built(&IndexSpec::default_lsh(), &arena, DistanceKind::NegDot);
    let queries = normalised(clustered(200, 32, 40, 0.25, 24));
    let p0 = QueryParams {
        probes: Some(0),
        ..Default::default()
    };
    let r0 = recall10(&idx, &arena, DistanceKind::NegDot, &queries, &p0);
    let r = recall10(
        &idx,
        &arena,
        DistanceKind::NegDot,
        &queries,
        &QueryParams::default(),
    );
    eprintln!("LSH cosine recall@10: probes 0 {r0}, default {r}");
    assert!(r >= 0.9, "LSH cosine recall {r}");
    assert!(r >= r0);
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
