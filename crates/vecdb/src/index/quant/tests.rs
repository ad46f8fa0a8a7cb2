//! SQ8 and RaBitQ codes and the quantised index: distance accuracy, recall floors on clustered
//! data, re-rank exactness, round trips and parameter checks.

use super::*;
use crate::index::testutil::*;
use crate::index::{HnswParams, IvfParams, RefineParams};
use crate::index::{IndexSpec, QuantizedParts};

const DIM: usize = 32;
/// RaBitQ's one bit per dimension needs more dimensions than SQ8's byte for the same accuracy
/// (its error shrinks as `1 / sqrt(D)`); the collections it is meant for have hundreds.
const RABITQ_DIM: usize = 128;

fn rabitq_specs() -> Vec<IndexSpec> {
    vec![
        IndexSpec::FlatRabitq { refine: true },
        IndexSpec::IvfRabitq {
            ivf: IvfParams {
                nlist: 16,
                nprobe: 4,
            },
            refine: true,
        },
        IndexSpec::HnswRabitq(HnswParams {
            m: 12,
            ef_construction: 100,
            ef: 48,
        }),
    ]
}

/// Every quantised kind, with the dimension its tests use.
fn all_specs() -> Vec<(IndexSpec, usize)> {
    let sq8 = specs().into_iter().map(|s| (s, DIM));
    sq8.chain(rabitq_specs().into_iter().map(|s| (s, RABITQ_DIM)))
        .collect()
}

fn specs() -> Vec<IndexSpec> {
    vec![
        IndexSpec::FlatSq8(RefineParams {
            refine: true,
            refine_k: DEFAULT_REFINE_K,
        }),
        IndexSpec::HnswSq {
            hnsw: HnswParams {
                m: 12,
                ef_construction: 100,
                ef: 48,
            },
            rerank: RefineParams {
                refine: true,
                refine_k: DEFAULT_REFINE_K,
            },
        },
        IndexSpec::IvfSq8 {
            ivf: IvfParams {
                nlist: 16,
                nprobe: 4,
            },
            rerank: RefineParams {
                refine: true,
                refine_k: DEFAULT_REFINE_K,
            },
        },
    ]
}

/// The data for `kind` at `DIM`.
fn data(n: usize, seed: u64, kind: DistanceKind) -> Vec<Vec<f32>> {
    data_in(DIM, n, seed, kind)
}

/// The data for `kind`: clustered points, unit length for the inner-product kind.
fn data_in(dim: usize, n: usize, seed: u64, kind: DistanceKind) -> Vec<Vec<f32>> {
    for_kind(clustered(n, dim, 20, 0.25, seed), kind)
}

fn quantized(idx: &AnyIndex) -> &QuantizedIndex {
    match idx {
        AnyIndex::Quantized(q) => q,
        other => panic!("not quantised: {other:?}"),
    }
}

#[test]
fn code_distances_track_exact_distances() {
    for kind in [DistanceKind::L2Squared, DistanceKind::NegDot] {
        let pts = data(500, 1, kind);
        let arena = arena_of(&pts);
        let mut codes = Sq8Codes::new(DIM, kind);
        codes.build(&arena, &(0..500).collect::<Vec<_>>());
        let kern = kernels();
        for q in data(20, 2, kind) {
            let pq = codes.prepare(kern, &q);
            for s in (0..500).step_by(7) {
                let exact = kind.eval(kern, &q, arena.get(s));
                let approx = codes.dist(kern, &pq, s);
                // Each component is off by at most half a step (range / 510); summed over 32
                // dimensions of data spanning a few units this stays well under 0.1.
                assert!(
                    (exact - approx).abs() < 0.1 * exact.abs().max(1.0),
                    "{kind:?} slot {s}: exact {exact}, codes {approx}"
                );
            }
        }
    }
}

#[test]
fn recall_floors_on_clustered_data() {
    for kind in [DistanceKind::L2Squared, DistanceKind::NegDot] {
        for (spec, dim) in all_specs() {
            let pts = data_in(dim, 3_000, 3, kind);
            let arena = arena_of(&pts);
            let queries = data_in(dim, 100, 4, kind);
            let idx = built(&spec, &arena, kind);
            let r = recall10(&idx, &arena, kind, &queries, &QueryParams::default());
            eprintln!("{} {kind:?}: recall@10 {r}", spec.kind_name());
            assert!(r >= 0.9, "{} {kind:?}: recall@10 {r}", spec.kind_name());
            // Filters apply to the code search as well.
            let odd = |s: u32| s % 2 == 1;
            let r = recall_where(&idx, &arena, kind, &queries, &odd);
            assert!(r >= 0.85, "{} {kind:?} filtered: {r}", spec.kind_name());
        }
    }
}

#[test]
fn rerank_equals_exact_search_over_the_candidates() {
    let kind = DistanceKind::L2Squared;
    let kern = kernels();
    let oversampled = all_specs()
        .into_iter()
        .filter(|(s, _)| s.quantized_parts().unwrap().refine_k.is_some());
    for (spec, dim) in oversampled {
        let pts = data_in(dim, 2_000, 5, kind);
        let arena = arena_of(&pts);
        let idx = built(&spec, &arena, kind);
        let q = quantized(&idx);
        for (i, query) in data_in(dim, 20, 6, kind).iter().enumerate() {
            let params = QueryParams {
                refine_k: Some(1.0 + i as f32 / 4.0),
                ..QueryParams::default()
            };
            let want = refine_candidates(10, params.refine_k.unwrap());
            let cands = q.candidates(&arena, query, want, &params, &|_| true);
            assert_eq!(cands.len(), want);
            let mut exact: Vec<(u32, f32)> = cands
                .iter()
                .map(|&(s, _)| (s, kind.eval(kern, query, arena.get(s))))
                .collect();
            exact.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            exact.truncate(10);
            assert_eq!(idx.search(&arena, query, 10, &params, &|_| true), exact);
        }
    }
    // A flat scan whose candidates cover every point is exact search.
    let pts = data(2_000, 5, kind);
    let arena = arena_of(&pts);
    let flat_sq8 = built(
        &IndexSpec::FlatSq8(RefineParams {
            refine: true,
            refine_k: 200.0,
        }),
        &arena,
        kind,
    );
    let flat = built(&IndexSpec::Flat, &arena, kind);
    for query in data(10, 7, kind) {
        let p = QueryParams::default();
        assert_eq!(
            flat_sq8.search(&arena, &query, 10, &p, &|_| true),
            flat.search(&arena, &query, 10, &p, &|_| true)
        );
    }
}

/// RaBitQ's flat and IVF scans re-rank by the error bound: the hits carry exact distances, and
/// a flat scan finds what exact search finds (the bound rules out only points that cannot be
/// among the k best, except with the bound's small failure probability).
#[test]
fn bound_reranking_is_exact_search() {
    let kern = kernels();
    for kind in [DistanceKind::L2Squared, DistanceKind::NegDot] {
        let pts = data_in(RABITQ_DIM, 2_000, 14, kind);
        let arena = arena_of(&pts);
        let flat = built(&IndexSpec::Flat, &arena, kind);
        let idx = built(&IndexSpec::FlatRabitq { refine: true }, &arena, kind);
        let (mut same, mut total) = (0, 0);
        for query in data_in(RABITQ_DIM, 30, 15, kind) {
            let p = QueryParams::default();
            let hits = idx.search(&arena, &query, 10, &p, &|_| true);
            for &(s, d) in &hits {
                assert_eq!(d, kind.eval(kern, &query, arena.get(s)));
            }
            let truth = flat.search(&arena, &query, 10, &p, &|_| true);
            same += hits.iter().filter(|h| truth.contains(h)).count();
            total += truth.len();
        }
        assert!(
            same as f64 >= 0.99 * total as f64,
            "{kind:?}: {same}/{total}"
        );
    }
}

/// An HNSW walk pruned by RaBitQ lower bounds computes exact distances and, on the same graph,
/// finds what the unquantised walk finds: the bounds only skip neighbours the walk would drop,
/// except where one fails (each does with a probability of a few percent at `WALK_EPSILON`).
#[test]
fn bounded_walk_finds_what_the_exact_walk_finds() {
    let kern = kernels();
    let hnsw = HnswParams {
        m: 12,
        ef_construction: 100,
        ef: 32,
    };
    for kind in [DistanceKind::L2Squared, DistanceKind::NegDot] {
        let pts = data_in(RABITQ_DIM, 2_000, 18, kind);
        let arena = arena_of(&pts);
        // Added one by one with the same seed, the two graphs are the same.
        let grow = |spec: &IndexSpec| {
            let mut idx = AnyIndex::new(spec, RABITQ_DIM, kind, 7);
            for s in 0..2_000 {
                idx.add(&arena, s);
            }
            idx
        };
        let exact = grow(&IndexSpec::Hnsw(hnsw));
        let bounded = grow(&IndexSpec::HnswRabitq(hnsw));
        let (mut same, mut total) = (0, 0);
        for query in data_in(RABITQ_DIM, 40, 19, kind) {
            let p = QueryParams::default();
            let hits = bounded.search(&arena, &query, 10, &p, &|_| true);
            for &(s, d) in &hits {
                assert_eq!(d, kind.eval(kern, &query, arena.get(s)));
            }
            let truth = exact.search(&arena, &query, 10, &p, &|_| true);
            same += hits.iter().filter(|h| truth.contains(h)).count();
            total += truth.len();
        }
        eprintln!("{kind:?}: {same}/{total} hits of the exact walk");
        assert!(
            same as f64 >= 0.98 * total as f64,
            "{kind:?}: {same}/{total}"
        );
    }
}

/// Under a trained IVF index, RaBitQ codes are relative to their list's centre (the paper's
/// IVF-RaBitQ): built so, kept so by adds, switched to it when adds make the index train, and
/// their estimates are closer to the truth than around one global centre.
#[test]
fn ivf_rabitq_codes_use_the_list_centres() {
    let kind = DistanceKind::L2Squared;
    let spec = IndexSpec::IvfRabitq {
        ivf: IvfParams {
            nlist: 16,
            nprobe: 4,
        },
        refine: true,
    };
    let pts = data_in(RABITQ_DIM, 2_000, 16, kind);
    let arena = arena_of(&pts);
    let rabitq = |idx: &AnyIndex| match quantized(idx).codes() {
        Codes::Rabitq(c) => c.clone(),
        other => panic!("not RaBitQ: {other:?}"),
    };
    let built_idx = built(&spec, &arena, kind);
    let codes = rabitq(&built_idx);
    assert!(codes.is_partitioned());
    assert_eq!(codes.centre_count(), 16);
    // Filled one by one: untrained (one centre) until 16 x 39 points, then by list.
    let mut grown = AnyIndex::new(&spec, RABITQ_DIM, kind, 42);
    for s in 0..600 {
        grown.add(&arena, s);
    }
    assert!(!rabitq(&grown).is_partitioned());
    for s in 600..2_000 {
        grown.add(&arena, s);
    }
    let codes = rabitq(&grown);
    assert!(codes.is_partitioned());
    assert_eq!((codes.centre_count(), codes.len()), (16, 2_000));
    // Mean absolute error of the estimates for each query's 50 nearest points (the ones a
    // search must rank), by list centres and around the global mean.
    let mut global = RabitqCodes::new(RABITQ_DIM, kind);
    global.build(&arena, &(0..2_000).collect::<Vec<_>>());
    let kern = kernels();
    let flat = built(&IndexSpec::Flat, &arena, kind);
    let (mut by_list, mut by_mean) = (0.0f64, 0.0f64);
    for query in data_in(RABITQ_DIM, 20, 17, kind) {
        let (mut a, mut b) = (codes.searcher(&query), global.searcher(&query));
        for (s, exact) in flat.search(&arena, &query, 50, &QueryParams::default(), &|_| true) {
            by_list += f64::from((a.dist(kern, s) - exact).abs());
            by_mean += f64::from((b.dist(kern, s) - exact).abs());
        }
    }
    eprintln!("mean |error|: list centres {by_list}, global mean {by_mean}");
    assert!(by_list < 0.7 * by_mean, "{by_list} vs {by_mean}");
}

/// Without re-ranking, every kind returns the codes' distances: the flat scan, the HNSW walk and
/// the IVF scans really run on the codes.
#[test]
fn without_refine_results_are_code_distances() {
    let kind = DistanceKind::L2Squared;
    for (spec, dim) in all_specs() {
        let pts = data_in(dim, 1_000, 8, kind);
        let arena = arena_of(&pts);
        let parts = spec.quantized_parts().unwrap();
        let mut idx = AnyIndex::Quantized(QuantizedIndex::new(
            AnyIndex::new(&parts.base, dim, kind, 42),
            dim,
            kind,
            parts.codes,
            false,
            parts.refine_k,
        ));
        idx.build(&arena, &(0..1_000).collect::<Vec<_>>());
        let q = quantized(&idx);
        let query = &data_in(dim, 1, 9, kind)[0];
        let code_dist = |s: u32| match q.codes() {
            Codes::Rabitq(c) => c.searcher(query).dist(kernels(), s),
            codes => codes.prepare(kernels(), query).dist(kernels(), s),
        };
        let hits = idx.search(&arena, query, 10, &QueryParams::default(), &|_| true);
        assert_eq!(hits.len(), 10, "{}", spec.kind_name());
        for (s, d) in hits {
            assert_eq!(d, code_dist(s), "{}", spec.kind_name());
            assert_ne!(
                d,
                kind.eval(kernels(), query, arena.get(s)),
                "{}",
                spec.kind_name()
            );
        }
    }
}

#[test]
fn incremental_adds_retrain_and_keep_recall() {
    let kind = DistanceKind::L2Squared;
    for (spec, dim) in all_specs() {
        let pts = data_in(dim, 2_000, 10, kind);
        let arena = arena_of(&pts);
        let queries = data_in(dim, 50, 11, kind);
        let mut idx = AnyIndex::new(&spec, dim, kind, 1);
        for s in 0..2_000 {
            idx.add(&arena, s);
        }
        let q = quantized(&idx);
        assert_eq!(q.codes().len(), 2_000);
        // Retrained at 1, 2, 4, ... 1024 codes: the last training covers more than half the
        // data. RaBitQ codes under IVF follow the index instead: encoded by list when it
        // trained, at 16 x 39 points, and relative to those fixed centres since.
        let trained_on = match q.codes() {
            Codes::Rabitq(c) if c.is_partitioned() => 16 * 39,
            _ => 1_024,
        };
        assert_eq!(q.codes().trained_on(), trained_on);
        let r = recall10(&idx, &arena, kind, &queries, &QueryParams::default());
        assert!(r >= 0.9, "{} built by adds: recall {r}", spec.kind_name());
    }
}

#[test]
fn codes_round_trip_and_corruption_is_refused() {
    let kind = DistanceKind::NegDot;
    for (spec, dim) in all_specs() {
        let pts = data_in(dim, 1_500, 12, kind);
        let arena = arena_of(&pts);
        let queries = data_in(dim, 10, 13, kind);
        let mut idx = built(&spec, &arena, kind);
        // A slot added after the build is encoded with the trained range.
        let mut arena2 = arena_of(&pts);
        let extra = arena2.push(&queries[0]);
        idx.add(&arena2, extra);
        let bytes = idx.to_bytes();
        let back = AnyIndex::from_bytes(&spec, dim, kind, &bytes).unwrap();
        assert_eq!(back.to_bytes(), bytes);
        assert_eq!(back.len(), 1_501);
        for q in &queries {
            let p = QueryParams::default();
            assert_eq!(
                back.search(&arena2, q, 10, &p, &|_| true),
                idx.search(&arena2, q, 10, &p, &|_| true)
            );
        }
        // Truncated bodies, a body for another shape and codes that disagree with the inner
        // index are refused (the collection then rebuilds).
        for cut in [0, 8, bytes.len() / 2, bytes.len() - 1] {
            assert!(AnyIndex::from_bytes(&spec, dim, kind, &bytes[..cut]).is_err());
        }
        assert!(AnyIndex::from_bytes(&spec, dim + 1, kind, &bytes).is_err());
        let other = built(&spec, &arena_of(&pts[..100]), kind);
        let mut w = Writer::default();
        w.blob(&idx.to_bytes()[8..8 + inner_len(&bytes)]);
        quantized(&other).codes.write(&mut w);
        assert!(AnyIndex::from_bytes(&spec, dim, kind, &w.buf).is_err());
        // SQ8 codes where RaBitQ codes belong, and the reverse, are refused.
        if let Some(other) = other_codes(&spec) {
            let swapped = built(&other, &arena, kind).to_bytes();
            assert!(AnyIndex::from_bytes(&spec, dim, kind, &swapped).is_err());
        }
    }
}

/// RaBitQ codes partitioned by IVF lists, stored around a flat or HNSW index of the same slots,
/// are refused: those indexes prepare the query against one centre.
#[test]
fn partitioned_codes_outside_ivf_are_refused() {
    let kind = DistanceKind::L2Squared;
    let pts = data_in(RABITQ_DIM, 1_000, 20, kind);
    let arena = arena_of(&pts);
    let ivf = built(&rabitq_specs()[1], &arena, kind);
    assert!(matches!(quantized(&ivf).codes(), Codes::Rabitq(c) if c.is_partitioned()));
    for spec in [rabitq_specs()[0].clone(), rabitq_specs()[2].clone()] {
        let own = built(&spec, &arena, kind);
        assert!(AnyIndex::from_bytes(&spec, RABITQ_DIM, kind, &own.to_bytes()).is_ok());
        let mut w = Writer::default();
        w.blob(&quantized(&own).inner().to_bytes());
        quantized(&ivf).codes.write(&mut w);
        let err = AnyIndex::from_bytes(&spec, RABITQ_DIM, kind, &w.buf).unwrap_err();
        assert!(err.contains("partitioned"), "{}: {err}", spec.kind_name());
    }
}

fn parts_of(spec: &IndexSpec) -> QuantizedParts {
    spec.quantized_parts().unwrap()
}

/// The same structure on the other kind of codes, where there is one.
fn other_codes(spec: &IndexSpec) -> Option<IndexSpec> {
    let QuantizedParts { base, codes, .. } = parts_of(spec);
    Some(match (base, codes) {
        (IndexSpec::Flat, CodeKind::Sq8) => IndexSpec::FlatRabitq { refine: true },
        (IndexSpec::Flat, CodeKind::Rabitq) => IndexSpec::FlatSq8(RefineParams {
            refine: true,
            refine_k: DEFAULT_REFINE_K,
        }),
        (IndexSpec::Ivf(IvfParams { nlist, nprobe }), CodeKind::Sq8) => IndexSpec::IvfRabitq {
            ivf: IvfParams { nlist, nprobe },
            refine: true,
        },
        (IndexSpec::Ivf(IvfParams { nlist, nprobe }), CodeKind::Rabitq) => IndexSpec::IvfSq8 {
            ivf: IvfParams { nlist, nprobe },
            rerank: RefineParams {
                refine: true,
                refine_k: DEFAULT_REFINE_K,
            },
        },
        (IndexSpec::Hnsw(hnsw), CodeKind::Sq8) => IndexSpec::HnswRabitq(hnsw),
        (IndexSpec::Hnsw(hnsw), CodeKind::Rabitq) => IndexSpec::HnswSq {
            hnsw,
            rerank: RefineParams::default(),
        },
        _ => return None,
    })
}

/// Length of the inner body at the start of a quantised body.
fn inner_len(bytes: &[u8]) -> usize {
    u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize
}

#[test]
fn bad_parameters_are_refused() {
    for bad in [0.5, 0.0, -1.0, f32::NAN, f32::INFINITY, MAX_REFINE_K * 2.0] {
        let spec = IndexSpec::HnswSq {
            hnsw: HnswParams {
                m: 16,
                ef_construction: 100,
                ef: 10,
            },
            rerank: RefineParams {
                refine: true,
                refine_k: bad,
            },
        };
        let err = spec.validate(DIM).unwrap_err();
        assert!(err.contains("refine_k"), "{err}");
        let idx = AnyIndex::new(
            &IndexSpec::default_ivf_sq8(),
            DIM,
            DistanceKind::L2Squared,
            0,
        );
        let err = idx
            .validate_params(&QueryParams {
                refine_k: Some(bad),
                ..QueryParams::default()
            })
            .unwrap_err();
        assert!(err.contains("refine_k"), "{err}");
    }
    // The structure's own parameters are still checked.
    let spec = IndexSpec::IvfSq8 {
        ivf: IvfParams {
            nlist: 4,
            nprobe: 5,
        },
        rerank: RefineParams::default(),
    };
    assert!(spec.validate(DIM).unwrap_err().contains("nprobe"));
    let spec = IndexSpec::IvfRabitq {
        ivf: IvfParams {
            nlist: 4,
            nprobe: 5,
        },
        refine: true,
    };
    assert!(spec.validate(DIM).unwrap_err().contains("nprobe"));
    // The RaBitQ kinds are re-ranked by the error bound: they have no refine_k to override.
    for spec in [
        IndexSpec::FlatRabitq { refine: true },
        IndexSpec::default_ivf_rabitq(),
        IndexSpec::default_hnsw_rabitq(),
    ] {
        let idx = AnyIndex::new(&spec, DIM, DistanceKind::L2Squared, 0);
        let err = idx
            .validate_params(&QueryParams {
                refine_k: Some(2.0),
                ..QueryParams::default()
            })
            .unwrap_err();
        assert!(err.contains("error bound"), "{err}");
    }
    let idx = AnyIndex::new(
        &IndexSpec::default_ivf_sq8(),
        DIM,
        DistanceKind::L2Squared,
        0,
    );
    assert!(idx
        .validate_params(&QueryParams {
            nprobe: Some(100_000),
            ..QueryParams::default()
        })
        .is_err());
}

#[test]
fn spec_serde_uses_defaults() {
    let spec: IndexSpec =
        serde_json::from_str(r#"{"kind":"hnsw_sq","m":16,"ef_construction":200,"ef":64}"#).unwrap();
    assert_eq!(spec, IndexSpec::default_hnsw_sq());
    let json = serde_json::to_string(&IndexSpec::default_ivf_sq8()).unwrap();
    assert_eq!(
        json,
        r#"{"kind":"ivf_sq8","nlist":256,"nprobe":16,"refine":true,"refine_k":4.0}"#
    );
    assert_eq!(
        serde_json::from_str::<IndexSpec>(&json).unwrap(),
        IndexSpec::default_ivf_sq8()
    );
    let json = serde_json::to_string(&IndexSpec::default_ivf_rabitq()).unwrap();
    assert_eq!(
        json,
        r#"{"kind":"ivf_rabitq","nlist":256,"nprobe":16,"refine":true}"#
    );
    assert_eq!(
        serde_json::from_str::<IndexSpec>(&json).unwrap(),
        IndexSpec::default_ivf_rabitq()
    );
    assert_eq!(
        serde_json::from_str::<IndexSpec>(r#"{"kind":"flat_rabitq"}"#).unwrap(),
        IndexSpec::FlatRabitq { refine: true }
    );
}
