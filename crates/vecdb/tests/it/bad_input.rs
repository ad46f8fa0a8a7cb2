//! Every kind of bad input gets its typed error and changes nothing.

use serde_json::json;
use vecdb::{
    Collection, CollectionConfig, Database, Filter, IndexSpec, Metric, Point, SearchRequest,
    VecDbError,
};
use vecdb::{HnswParams, IvfParams, RefineParams};

use crate::common::*;

const DIM: usize = 8;

/// Everything observable about a collection, to compare before and after a failed call.
fn observe(c: &Collection) -> (usize, Vec<Point>, Vec<Vec<u64>>) {
    let pts = c.scan(None, usize::MAX).unwrap();
    let searches = clustered(5, DIM, 2, 5)
        .iter()
        .map(|q| {
            c.search(q, &SearchRequest::new(5))
                .unwrap()
                .iter()
                .map(|h| h.id)
                .collect()
        })
        .collect();
    (c.count(), pts, searches)
}

fn open(kind: IndexSpec, metric: Metric) -> (tempfile::TempDir, Database, Collection) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db
        .create_collection(config("bad", DIM, metric, kind))
        .unwrap();
    c.insert(&points(&clustered(200, DIM, 4, 1), 1)).unwrap();
    (dir, db, c)
}

fn good(id: u64) -> Point {
    Point::new(id, vec![0.5; DIM])
}

#[test]
fn bad_writes_change_nothing() {
    let (_dir, _db, c) = open(IndexSpec::default_hnsw(), Metric::Cosine);
    let before = observe(&c);
    let mut nan = vec![0.1; DIM];
    nan[3] = f32::NAN;
    let mut inf = vec![0.1; DIM];
    inf[7] = f32::INFINITY;
    type Check = fn(&VecDbError) -> bool;
    let cases: Vec<(Vec<Point>, Check)> = vec![
        (
            vec![good(1000), Point::new(1001, vec![0.5; DIM + 1])],
            |e| matches!(e, VecDbError::WrongDimension { expected: DIM, got } if *got == DIM + 1),
        ),
        (vec![good(1000), Point::new(1001, vec![])], |e| {
            matches!(e, VecDbError::WrongDimension { got: 0, .. })
        }),
        (vec![good(1000), Point::new(1001, nan)], |e| {
            matches!(e, VecDbError::NonFinite { id: 1001, index: 3 })
        }),
        (vec![Point::new(1002, inf), good(1000)], |e| {
            matches!(e, VecDbError::NonFinite { id: 1002, index: 7 })
        }),
        (vec![good(1000), Point::new(1003, vec![0.0; DIM])], |e| {
            matches!(e, VecDbError::ZeroVector { id: 1003 })
        }),
        (vec![good(1000), good(1000)], |e| {
            matches!(e, VecDbError::DuplicateId { id: 1000 })
        }),
        // Several faults: the first point at fault is named, whatever its rule (the vectors
        // are checked in parallel, the rules in order).
        (
            vec![good(1000), good(1000), Point::new(1005, vec![0.0; DIM])],
            |e| matches!(e, VecDbError::DuplicateId { id: 1000 }),
        ),
        (
            vec![
                good(1000),
                Point::new(1006, vec![0.0; DIM]),
                good(1000),
                Point::new(1007, vec![f32::NAN; DIM]),
            ],
            |e| matches!(e, VecDbError::ZeroVector { id: 1006 }),
        ),
        (
            vec![
                good(1000),
                Point::with_metadata(1004, vec![0.5; DIM], json!([1])),
            ],
            |e| matches!(e, VecDbError::InvalidMetadata { id: 1004, .. }),
        ),
    ];
    for (batch, check) in &cases {
        for upsert in [false, true] {
            let r = if upsert {
                c.upsert(batch)
            } else {
                c.insert(batch)
            };
            let e = r.unwrap_err();
            assert!(check(&e), "unexpected error {e:?}");
            assert!(e.is_input_error());
            assert_eq!(observe(&c), before);
        }
    }
    // An existing id in an insert batch: nothing of the batch is written.
    let e = c.insert(&[good(1000), good(5)]).unwrap_err();
    assert!(matches!(e, VecDbError::DuplicateId { id: 5 }));
    assert_eq!(observe(&c), before);
}

#[test]
fn bad_searches_are_rejected() {
    let (_dir, _db, c) = open(IndexSpec::default_hnsw(), Metric::Cosine);
    let q = vec![0.3; DIM];
    let param = |e: VecDbError, want: &str| match e {
        VecDbError::InvalidParameter { name, .. } => assert_eq!(name, want),
        other => panic!("expected InvalidParameter {want}, got {other:?}"),
    };
    let e = c.search(&q[..4], &SearchRequest::new(5)).unwrap_err();
    assert!(matches!(
        e,
        VecDbError::WrongDimension {
            expected: DIM,
            got: 4
        }
    ));
    param(
        c.search(&[f32::NAN; DIM], &SearchRequest::new(5))
            .unwrap_err(),
        "query",
    );
    param(
        c.search(&[0.0; DIM], &SearchRequest::new(5)).unwrap_err(),
        "query",
    );
    param(c.search(&q, &SearchRequest::new(0)).unwrap_err(), "k");
    let req = |f: fn(&mut SearchRequest)| {
        let mut r = SearchRequest::new(10);
        f(&mut r);
        r
    };
    param(c.search(&q, &req(|r| r.ef = Some(5))).unwrap_err(), "ef");
    param(
        c.search(&q, &req(|r| r.ef = Some(10_000_000))).unwrap_err(),
        "ef",
    );
    param(
        c.search(&q, &req(|r| r.threshold = Some(f32::NAN)))
            .unwrap_err(),
        "threshold",
    );
    assert_eq!(c.search(&q, &req(|r| r.ef = Some(10))).unwrap().len(), 10);

    let (_d2, _db2, ivf) = open(
        IndexSpec::Ivf(IvfParams {
            nlist: 8,
            nprobe: 2,
        }),
        Metric::L2,
    );
    param(
        ivf.search(&q, &req(|r| r.nprobe = Some(9))).unwrap_err(),
        "nprobe",
    );
    param(
        ivf.search(&q, &req(|r| r.nprobe = Some(0))).unwrap_err(),
        "nprobe",
    );
    assert_eq!(
        ivf.search(&q, &req(|r| r.nprobe = Some(8))).unwrap().len(),
        10
    );
    let (_d3, _db3, lsh) = open(IndexSpec::default_lsh(), Metric::L2);
    param(
        lsh.search(&q, &req(|r| r.probes = Some(1 << 20)))
            .unwrap_err(),
        "probes",
    );
    let (_d4, _db4, sq) = open(IndexSpec::default_hnsw_sq(), Metric::L2);
    for bad in [0.5, f32::NAN, 1e6] {
        let mut r = SearchRequest::new(10);
        r.refine_k = Some(bad);
        param(sq.search(&q, &r).unwrap_err(), "refine_k");
    }
    // k x refine_k is bounded like ef.
    let mut wide = SearchRequest::new(1_000);
    wide.refine_k = Some(500.0);
    param(sq.search(&q, &wide).unwrap_err(), "refine_k");
    param(sq.search(&q, &req(|r| r.ef = Some(5))).unwrap_err(), "ef");
    assert_eq!(
        sq.search(&q, &req(|r| r.refine_k = Some(1.0)))
            .unwrap()
            .len(),
        10
    );
}

#[test]
fn malformed_filters_are_rejected_before_searching() {
    let (_dir, _db, c) = open(IndexSpec::Flat, Metric::L2);
    let bad = Filter::Range {
        field: "group".into(),
        gt: Some(json!("not a date")),
        gte: None,
        lt: None,
        lte: None,
    };
    let req = SearchRequest {
        k: 3,
        filter: Some(Filter::And(vec![Filter::eq("group", 1), bad])),
        ..Default::default()
    };
    let e = c.search(&[0.1; DIM], &req).unwrap_err();
    assert!(matches!(e, VecDbError::InvalidFilter { .. }), "{e:?}");
    let e = Filter::from_json(&json!({"between":{"field":"a"}})).unwrap_err();
    assert!(matches!(e, VecDbError::InvalidFilter { .. }));
}

#[test]
fn bad_collection_calls() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let ok = config("ok", DIM, Metric::L2, IndexSpec::Flat);
    let c = db.create_collection(ok.clone()).unwrap();
    c.insert(&[good(1)]).unwrap();
    assert!(matches!(
        db.create_collection(ok.clone()).unwrap_err(),
        VecDbError::CollectionExists { .. }
    ));
    let invalid: Vec<CollectionConfig> = vec![
        config("", DIM, Metric::L2, IndexSpec::Flat),
        config("has space", DIM, Metric::L2, IndexSpec::Flat),
        config("../up", DIM, Metric::L2, IndexSpec::Flat),
        config(".hidden", DIM, Metric::L2, IndexSpec::Flat),
        config(&"x".repeat(65), DIM, Metric::L2, IndexSpec::Flat),
    ];
    for cfg in invalid {
        let e = db.create_collection(cfg).unwrap_err();
        assert!(matches!(e, VecDbError::InvalidName { .. }), "{e:?}");
    }
    let bad_params = vec![
        config("a", 0, Metric::L2, IndexSpec::Flat),
        config(
            "a",
            DIM,
            Metric::L2,
            IndexSpec::Hnsw(HnswParams {
                m: 0,
                ef_construction: 10,
                ef: 10,
            }),
        ),
        config(
            "a",
            DIM,
            Metric::L2,
            IndexSpec::Ivf(IvfParams {
                nlist: 4,
                nprobe: 5,
            }),
        ),
        config(
            "a",
            DIM,
            Metric::L2,
            IndexSpec::FlatSq8(RefineParams {
                refine: true,
                refine_k: 0.0,
            }),
        ),
        config(
            "a",
            DIM,
            Metric::L2,
            IndexSpec::IvfSq8 {
                ivf: IvfParams {
                    nlist: 4,
                    nprobe: 5,
                },
                rerank: RefineParams::default(),
            },
        ),
    ];
    for cfg in bad_params {
        let e = db.create_collection(cfg).unwrap_err();
        assert!(matches!(e, VecDbError::InvalidParameter { .. }), "{e:?}");
    }
    let names: Vec<String> = db
        .list_collections()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, vec!["ok"]);
    for name in ["nope", "../ok", ""] {
        assert!(matches!(
            db.collection(name).unwrap_err(),
            VecDbError::UnknownCollection { .. }
        ));
        assert!(matches!(
            db.drop_collection(name).unwrap_err(),
            VecDbError::UnknownCollection { .. }
        ));
    }
    // After a drop, the name is free again and old handles fail cleanly.
    db.drop_collection("ok").unwrap();
    assert!(matches!(
        c.insert(&[good(2)]).unwrap_err(),
        VecDbError::UnknownCollection { .. }
    ));
    assert!(matches!(
        c.search(&[0.1; DIM], &SearchRequest::new(1)).unwrap_err(),
        VecDbError::UnknownCollection { .. }
    ));
    assert!(db.list_collections().unwrap().is_empty());
    let again = db.create_collection(ok).unwrap();
    assert_eq!(again.count(), 0);
    drop(c);
    assert_eq!(again.count(), 0);
}
