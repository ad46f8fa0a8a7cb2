//! Tests of the shared types: spec validation and serde forms, query parameter checks, the
//! arena, and properties every index kind must have (filters, round trips).

use super::testutil::*;
use super::*;

#[test]
fn spec_serde_forms() {
    let json = serde_json::to_string(&IndexSpec::default_hnsw()).unwrap();
    assert_eq!(
        json,
        r#"{"kind":"hnsw","m":16,"ef_construction":200,"ef":64}"#
    );
    let ivf: IndexSpec = serde_json::from_str(r#"{"kind":"ivf","nlist":100,"nprobe":10}"#).unwrap();
    assert_eq!(
        ivf,
        IndexSpec::Ivf(IvfParams {
            nlist: 100,
            nprobe: 10
        })
    );
    let flat: IndexSpec = serde_json::from_str(r#"{"kind":"flat"}"#).unwrap();
    assert_eq!(flat, IndexSpec::Flat);
    let lsh = serde_json::to_string(&IndexSpec::default_lsh()).unwrap();
    assert_eq!(
        serde_json::from_str::<IndexSpec>(&lsh).unwrap(),
        IndexSpec::default_lsh()
    );
    assert_eq!(
        serde_json::to_string(&Metric::Cosine).unwrap(),
        r#""cosine""#
    );
    assert_eq!(
        serde_json::from_str::<Metric>(r#""ip""#).unwrap(),
        Metric::Ip
    );
    assert!(serde_json::from_str::<IndexSpec>(r#"{"kind":"annoy"}"#).is_err());
}

/// The parameter groups are flattened: the serde form (stored in every collection's config and
/// in each snapshot's stamp) is the same flat object it was before the groups existed.
#[test]
fn quantised_spec_serde_forms_are_flat() {
    let cases = [
        (
            IndexSpec::default_hnsw_sq(),
            r#"{"kind":"hnsw_sq","m":16,"ef_construction":200,"ef":64,"refine":true,"refine_k":4.0}"#,
        ),
        (
            IndexSpec::default_ivf_sq8(),
            r#"{"kind":"ivf_sq8","nlist":256,"nprobe":16,"refine":true,"refine_k":4.0}"#,
        ),
        (
            IndexSpec::default_ivf_rabitq(),
            r#"{"kind":"ivf_rabitq","nlist":256,"nprobe":16,"refine":true}"#,
        ),
        (
            IndexSpec::default_hnsw_rabitq(),
            r#"{"kind":"hnsw_rabitq","m":16,"ef_construction":200,"ef":64}"#,
        ),
        (
            IndexSpec::FlatSq8(RefineParams::default()),
            r#"{"kind":"flat_sq8","refine":true,"refine_k":4.0}"#,
        ),
    ];
    for (spec, json) in cases {
        assert_eq!(serde_json::to_string(&spec).unwrap(), json);
        assert_eq!(serde_json::from_str::<IndexSpec>(json).unwrap(), spec);
    }
    // Left out, the re-ranking takes its defaults; a missing structural parameter is an error.
    let short: IndexSpec =
        serde_json::from_str(r#"{"kind":"ivf_sq8","nlist":8,"nprobe":2}"#).unwrap();
    assert_eq!(
        short,
        IndexSpec::IvfSq8 {
            ivf: IvfParams {
                nlist: 8,
                nprobe: 2
            },
            rerank: RefineParams::default(),
        }
    );
    assert!(serde_json::from_str::<IndexSpec>(r#"{"kind":"hnsw_sq","m":16,"ef":64}"#).is_err());
}

#[test]
fn invalid_specs_are_rejected() {
    let bad = [
        IndexSpec::Hnsw(HnswParams {
            m: 1,
            ef_construction: 200,
            ef: 64,
        }),
        IndexSpec::Hnsw(HnswParams {
            m: 16,
            ef_construction: 8,
            ef: 64,
        }),
        IndexSpec::Hnsw(HnswParams {
            m: 16,
            ef_construction: 200,
            ef: 0,
        }),
        IndexSpec::Hnsw(HnswParams {
            m: 100_000,
            ef_construction: 200_000,
            ef: 64,
        }),
        IndexSpec::Ivf(IvfParams {
            nlist: 0,
            nprobe: 1,
        }),
        IndexSpec::Ivf(IvfParams {
            nlist: 16,
            nprobe: 17,
        }),
        IndexSpec::Ivf(IvfParams {
            nlist: 16,
            nprobe: 0,
        }),
        IndexSpec::Lsh(LshParams {
            tables: 0,
            bits: 8,
            probes: 2,
            bucket_width: 4.0,
        }),
        IndexSpec::Lsh(LshParams {
            tables: 4,
            bits: 65,
            probes: 2,
            bucket_width: 4.0,
        }),
        IndexSpec::Lsh(LshParams {
            tables: 4,
            bits: 8,
            probes: 2,
            bucket_width: 0.0,
        }),
        IndexSpec::Lsh(LshParams {
            tables: 4,
            bits: 8,
            probes: 2,
            bucket_width: f32::NAN,
        }),
    ];
    for spec in &bad {
        assert!(spec.validate(8).is_err(), "{spec:?} accepted");
        assert!(AnyIndex::try_new(spec, 8, DistanceKind::L2Squared, 0).is_err());
    }
    let err = IndexSpec::Ivf(IvfParams {
        nlist: 16,
        nprobe: 17,
    })
    .validate(8)
    .unwrap_err();
    assert!(err.contains("nprobe"), "{err}");
    assert!(IndexSpec::Flat.validate(0).is_err());
    // A centre table of nlist x dimension floats is bounded: a legal nlist at the largest
    // dimension is refused, the same nlist at a common dimension is fine.
    let big = IndexSpec::Ivf(IvfParams {
        nlist: 65_536,
        nprobe: 16,
    });
    let err = big.validate(65_536).unwrap_err();
    assert!(err.contains("nlist x dimension"), "{err}");
    big.validate(1_280).unwrap();
    for good in [
        IndexSpec::Flat,
        IndexSpec::default_hnsw(),
        IndexSpec::default_ivf(),
        IndexSpec::default_lsh(),
    ] {
        good.validate(8).unwrap();
    }
}

#[test]
fn query_params_are_checked() {
    let ivf = AnyIndex::new(
        &IndexSpec::Ivf(IvfParams {
            nlist: 8,
            nprobe: 2,
        }),
        4,
        DistanceKind::L2Squared,
        0,
    );
    assert!(ivf
        .validate_params(&QueryParams {
            nprobe: Some(9),
            ..Default::default()
        })
        .is_err());
    assert!(ivf
        .validate_params(&QueryParams {
            nprobe: Some(0),
            ..Default::default()
        })
        .is_err());
    assert!(ivf
        .validate_params(&QueryParams {
            nprobe: Some(8),
            ..Default::default()
        })
        .is_ok());
    let hnsw = AnyIndex::new(&IndexSpec::default_hnsw(), 4, DistanceKind::L2Squared, 0);
    assert!(hnsw
        .validate_params(&QueryParams {
            ef: Some(0),
            ..Default::default()
        })
        .is_err());
    assert!(hnsw
        .validate_params(&QueryParams {
            ef: Some(10),
            ..Default::default()
        })
        .is_ok());
    let lsh = AnyIndex::new(&IndexSpec::default_lsh(), 4, DistanceKind::L2Squared, 0);
    assert!(lsh
        .validate_params(&QueryParams {
            probes: Some(1_000_000),
            ..Default::default()
        })
        .is_err());
}

#[test]
fn arena_slots() {
    let mut a = VectorArena::new(3);
    assert!(a.is_empty());
    assert_eq!(a.push(&[1.0, 2.0, 3.0]), 0);
    assert_eq!(a.push(&[4.0, 5.0, 6.0]), 1);
    assert_eq!(a.get(1), &[4.0, 5.0, 6.0]);
    assert_eq!((a.len(), a.dim()), (2, 3));
    a.truncate(1);
    assert_eq!(a.len(), 1);
}

#[test]
#[should_panic(expected = "vector length")]
fn arena_rejects_wrong_length() {
    VectorArena::new(3).push(&[1.0]);
}

fn all_specs() -> Vec<IndexSpec> {
    vec![
        IndexSpec::Flat,
        IndexSpec::Hnsw(HnswParams {
            m: 8,
            ef_construction: 64,
            ef: 32,
        }),
        IndexSpec::Ivf(IvfParams {
            nlist: 16,
            nprobe: 4,
        }),
        IndexSpec::default_lsh(),
    ]
}

#[test]
fn every_kind_respects_filters_and_round_trips() {
    let pts = clustered(2_000, 24, 12, 0.3, 31);
    let arena = arena_of(&pts);
    let queries = clustered(30, 24, 12, 0.3, 32);
    for kind in [DistanceKind::L2Squared, DistanceKind::NegDot] {
        for spec in all_specs() {
            let idx = built(&spec, &arena, kind);
            assert_eq!(idx.len(), 2_000);
            let accept = |s: u32| !s.is_multiple_of(3);
            for q in &queries {
                let got = idx.search(&arena, q, 10, &QueryParams::default(), &accept);
                assert!(
                    got.iter().all(|(s, _)| accept(*s)),
                    "{spec:?} returned a rejected slot"
                );
                assert!(got.len() <= 10);
            }
            let bytes = idx.to_bytes();
            let back = AnyIndex::from_bytes(&spec, 24, kind, &bytes).unwrap();
            assert_eq!(back.len(), idx.len());
            for q in &queries {
                let p = QueryParams::default();
                assert_eq!(
                    idx.search(&arena, q, 10, &p, &accept),
                    back.search(&arena, q, 10, &p, &accept)
                );
            }
            assert!(AnyIndex::from_bytes(&spec, 25, kind, &bytes).is_err());
            assert!(AnyIndex::from_bytes(&spec, 24, kind, &bytes[..bytes.len() / 2]).is_err());
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(AnyIndex::from_bytes(&spec, 24, kind, &longer).is_err());
            assert!(idx.memory_bytes() > 0);
        }
    }
}

#[test]
fn flat_is_exact_with_filter() {
    let pts = clustered(500, 8, 4, 0.3, 33);
    let arena = arena_of(&pts);
    let idx = built(&IndexSpec::Flat, &arena, DistanceKind::L2Squared);
    let q = &pts[10];
    let got = idx.search(&arena, q, 5, &QueryParams::default(), &|s| s != 10);
    let mut want: Vec<(u32, f32)> = (0..500u32)
        .filter(|&s| s != 10)
        .map(|s| (s, crate::distance::scalar::l2_squared(q, arena.get(s))))
        .collect();
    want.sort_by(|a, b| a.1.total_cmp(&b.1));
    let got_slots: Vec<u32> = got.iter().map(|g| g.0).collect();
    let want_slots: Vec<u32> = want[..5].iter().map(|w| w.0).collect();
    assert_eq!(got_slots, want_slots);
    assert!(idx
        .search(&arena, q, 0, &QueryParams::default(), &|_| true)
        .is_empty());
}

#[test]
fn batch_search_equals_single_searches() {
    let pts = clustered(1_000, 40, 6, 0.3, 34);
    let arena = arena_of(&pts);
    let queries = clustered(70, 40, 6, 0.3, 35);
    let refs: Vec<&[f32]> = queries.iter().map(Vec::as_slice).collect();
    let accept = |s: u32| s % 7 != 3;
    for kind in [DistanceKind::L2Squared, DistanceKind::NegDot] {
        for spec in [
            IndexSpec::Flat,
            IndexSpec::Hnsw(HnswParams {
                m: 8,
                ef_construction: 32,
                ef: 16,
            }),
        ] {
            let idx = built(&spec, &arena, kind);
            let p = QueryParams::default();
            let batch = idx.search_batch(&arena, &refs, 10, &p, &accept);
            assert_eq!(batch.len(), refs.len());
            for (q, got) in refs.iter().zip(&batch) {
                let single = idx.search(&arena, q, 10, &p, &accept);
                let ids = |v: &[(u32, f32)]| v.iter().map(|x| x.0).collect::<Vec<_>>();
                assert_eq!(ids(got), ids(&single), "{spec:?} {kind:?}");
            }
        }
    }
}

#[test]
fn batch_flat_search_spans_several_tiles() {
    // More base vectors and queries than one tile of each holds (2048 and 1024), with tiles
    // left short at both ends, so every tile boundary of the matrix products is crossed.
    let pts = clustered(4_500, 8, 12, 0.3, 36);
    let arena = arena_of(&pts);
    let queries = clustered(1_100, 8, 12, 0.3, 37);
    let refs: Vec<&[f32]> = queries.iter().map(Vec::as_slice).collect();
    let accept = |s: u32| s % 5 != 1;
    for kind in [DistanceKind::L2Squared, DistanceKind::NegDot] {
        let idx = built(&IndexSpec::Flat, &arena, kind);
        let p = QueryParams::default();
        let batch = idx.search_batch(&arena, &refs, 5, &p, &accept);
        assert_eq!(batch.len(), refs.len());
        let mut differ = 0;
        for (q, got) in refs.iter().zip(&batch) {
            let single = idx.search(&arena, q, 5, &p, &accept);
            assert_eq!(got.len(), single.len());
            if got.iter().map(|h| h.0).ne(single.iter().map(|h| h.0)) {
                // Ranking by |x|^2 - 2 x.q may swap near-ties; the distances returned are
                // exact, so a swapped pair shows as equal distances.
                differ += 1;
                for (a, b) in got.iter().zip(&single) {
                    assert!((a.1 - b.1).abs() <= 1e-4 * b.1.abs().max(1.0), "{kind:?}");
                }
            }
        }
        assert!(
            differ <= refs.len() / 100,
            "{kind:?}: {differ} queries differ"
        );
    }
}
