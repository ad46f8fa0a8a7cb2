use super::*;
use serde_json::json;
use vecdb::{HnswParams, IvfParams, LshParams, RefineParams};

fn cfg(name: &str, metric: Metric, index: IndexSpec) -> CollectionConfig {
    CollectionConfig {
        name: name.into(),
        dim: 4,
        metric,
        index,
    }
}

#[test]
fn config_round_trips_through_the_property() {
    let c = cfg(
        "images",
        Metric::Cosine,
        IndexSpec::Hnsw(HnswParams {
            m: 12,
            ef_construction: 100,
            ef: 40,
        }),
    );
    let props = HashMap::from([(CONFIG_PROPERTY.to_string(), encode_config(&c))]);
    assert_eq!(decode_config("images", &props).unwrap(), Some(c));
    assert_eq!(decode_config("x", &HashMap::new()).unwrap(), None);
    let newer = HashMap::from([(
        CONFIG_PROPERTY.to_string(),
        r#"{"format":2,"config":{}}"#.to_string(),
    )]);
    assert!(matches!(
        decode_config("x", &newer),
        Err(StoreError::Rejected { .. })
    ));
    let garbage = HashMap::from([(CONFIG_PROPERTY.to_string(), "{".to_string())]);
    assert!(decode_config("x", &garbage).is_err());
}

#[test]
fn names_milvus_cannot_hold_are_invalid_names() {
    for bad in ["my-images", "1st", "", "a b"] {
        let err = validate_config(&cfg(bad, Metric::L2, IndexSpec::Flat)).unwrap_err();
        assert!(
            matches!(err, StoreError::VecDb(VecDbError::InvalidName { .. })),
            "{bad}: {err}"
        );
    }
    assert!(validate_config(&cfg("_ok_2", Metric::L2, IndexSpec::Flat)).is_ok());
}

#[test]
fn lsh_and_oversized_ivf_are_rejected() {
    let lsh = IndexSpec::Lsh(LshParams {
        tables: 8,
        bits: 12,
        probes: 2,
        bucket_width: 1.0,
    });
    match validate_config(&cfg("a", Metric::L2, lsh)) {
        Err(StoreError::Rejected { reason }) => assert!(reason.contains("LSH"), "{reason}"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    let ivf = IndexSpec::Ivf(IvfParams {
        nlist: 100_000,
        nprobe: 8,
    });
    assert!(matches!(
        validate_config(&cfg("a", Metric::L2, ivf)),
        Err(StoreError::Rejected { .. })
    ));
}

#[test]
fn index_params_carry_milvus_names() {
    let p = index_param(&cfg(
        "a",
        Metric::Ip,
        IndexSpec::Hnsw(HnswParams {
            m: 16,
            ef_construction: 200,
            ef: 64,
        }),
    ))
    .unwrap();
    assert_eq!(p.get_index_type(), sdk::IndexType::Hnsw);
    assert_eq!(p.get_metric_type(), Some(sdk::MetricType::Ip));
    assert_eq!(p.get_extra_params()["M"], "16");
    assert_eq!(p.get_extra_params()["efConstruction"], "200");
    let p = index_param(&cfg(
        "a",
        Metric::L2,
        IndexSpec::Ivf(IvfParams {
            nlist: 64,
            nprobe: 4,
        }),
    ))
    .unwrap();
    assert_eq!(p.get_index_type(), sdk::IndexType::IvfFlat);
    assert_eq!(p.get_extra_params()["nlist"], "64");
}

#[test]
fn ivf_sq8_maps_to_milvus_and_the_other_quantised_kinds_are_refused() {
    let p = index_param(&cfg("a", Metric::L2, IndexSpec::default_ivf_sq8())).unwrap();
    assert_eq!(p.get_index_type(), sdk::IndexType::IvfSq8);
    assert_eq!(p.get_extra_params()["nlist"], "256");
    let sq8 = cfg("a", Metric::L2, IndexSpec::default_ivf_sq8());
    let q = [1.0, 0.0, 0.0, 0.0];
    assert_eq!(
        search_params(&sq8, &q, &SearchRequest::new(1)).unwrap()["nprobe"],
        "16"
    );
    let refine = SearchRequest {
        refine_k: Some(2.0),
        ..SearchRequest::new(1)
    };
    assert!(matches!(
        search_params(&sq8, &q, &refine),
        Err(StoreError::Rejected { .. })
    ));
    let flat_sq8 = IndexSpec::FlatSq8(RefineParams {
        refine: true,
        refine_k: 4.0,
    });
    for (spec, name) in [
        (IndexSpec::default_hnsw_sq(), "HNSW_SQ"),
        (flat_sq8, "FLAT_SQ8"),
        (IndexSpec::default_ivf_rabitq(), "RaBitQ"),
        (IndexSpec::FlatRabitq { refine: true }, "RaBitQ"),
        (IndexSpec::default_hnsw_rabitq(), "RaBitQ"),
    ] {
        match validate_config(&cfg("a", Metric::L2, spec)) {
            Err(StoreError::Rejected { reason }) => assert!(reason.contains(name), "{reason}"),
            other => panic!("expected Rejected, got {other:?}"),
        }
    }
}

#[test]
fn search_params_follow_vecdb_rules() {
    let hnsw = cfg(
        "a",
        Metric::L2,
        IndexSpec::Hnsw(HnswParams {
            m: 16,
            ef_construction: 200,
            ef: 64,
        }),
    );
    let q = [1.0, 0.0, 0.0, 0.0];
    let p = search_params(&hnsw, &q, &SearchRequest::new(10)).unwrap();
    assert_eq!(p["ef"], "64");
    // The default ef is raised to k, an explicit one below k is an error.
    let p = search_params(&hnsw, &q, &SearchRequest::new(100)).unwrap();
    assert_eq!(p["ef"], "100");
    let low = SearchRequest {
        ef: Some(5),
        ..SearchRequest::new(10)
    };
    assert!(matches!(
        search_params(&hnsw, &q, &low),
        Err(StoreError::VecDb(VecDbError::InvalidParameter { .. }))
    ));
    let ivf = cfg(
        "a",
        Metric::L2,
        IndexSpec::Ivf(IvfParams {
            nlist: 16,
            nprobe: 4,
        }),
    );
    assert_eq!(
        search_params(&ivf, &q, &SearchRequest::new(1)).unwrap()["nprobe"],
        "4"
    );
    let over = SearchRequest {
        nprobe: Some(17),
        ..SearchRequest::new(1)
    };
    assert!(search_params(&ivf, &q, &over).is_err());
    let flat = cfg("a", Metric::Cosine, IndexSpec::Flat);
    assert!(search_params(&flat, &q, &SearchRequest::new(1))
        .unwrap()
        .is_empty());
    for (query, k) in [
        (vec![1.0; 3], 1),
        (vec![f32::NAN, 0.0, 0.0, 0.0], 1),
        (vec![0.0; 4], 1),
        (q.to_vec(), 0),
        (q.to_vec(), MAX_TOPK + 1),
    ] {
        assert!(
            search_params(&flat, &query, &SearchRequest::new(k)).is_err(),
            "{query:?} k={k}"
        );
    }
}

#[test]
fn scores_use_vecdb_conventions() {
    assert_eq!(to_score(Metric::L2, 9.0), 3.0);
    assert_eq!(to_score(Metric::L2, -1e-7), 0.0);
    assert_eq!(to_score(Metric::Ip, -2.5), -2.5);
    assert_eq!(to_score(Metric::Cosine, 0.5), 0.5);
    assert!(within_threshold(Metric::L2, 1.0, Some(1.0)));
    assert!(!within_threshold(Metric::L2, 1.1, Some(1.0)));
    assert!(within_threshold(Metric::Cosine, 0.9, Some(0.8)));
    assert!(!within_threshold(Metric::Ip, 0.7, Some(0.8)));
    assert!(within_threshold(Metric::Ip, -5.0, None));
}

#[test]
fn bad_points_are_refused_before_sending() {
    let c = cfg("a", Metric::Cosine, IndexSpec::Flat);
    let ok = Point::new(1, vec![1.0, 0.0, 0.0, 0.0]);
    assert!(check_points(&c, std::slice::from_ref(&ok)).is_ok());
    let cases: Vec<(Vec<Point>, &str)> = vec![
        (vec![Point::new(1, vec![1.0; 3])], "dimension"),
        (
            vec![Point::new(1, vec![f32::INFINITY, 0.0, 0.0, 0.0])],
            "finite",
        ),
        (vec![Point::new(1, vec![0.0; 4])], "zero"),
        (vec![Point::new(u64::MAX, vec![1.0; 4])], "id"),
        (vec![ok.clone(), ok.clone()], "duplicate"),
        (
            vec![Point::with_metadata(1, vec![1.0; 4], json!([1]))],
            "metadata",
        ),
        (
            vec![Point::with_metadata(
                1,
                vec![1.0; 4],
                json!({"big": "x".repeat(70_000)}),
            )],
            "size",
        ),
    ];
    for (points, what) in cases {
        let err = check_points(&c, &points).unwrap_err();
        assert!(err.is_invalid_input(), "{what}: {err}");
    }
}

#[test]
fn columns_and_rows_round_trip() {
    let points = vec![
        Point::with_metadata(3, vec![1.0, 2.0], json!({"taken": "2020-01-01", "n": 1})),
        Point::new(1, vec![0.5, 0.25]),
    ];
    let cols = columns(&points);
    assert_eq!(cols.len(), 4);
    match &cols[3] {
        sdk::FieldData::Json { name, values } => {
            assert_eq!(name, INSTANTS);
            assert_eq!(values[0], json!({"taken": 1_577_836_800_000_000_000i64}));
            assert_eq!(values[1], json!({}));
        }
        other => panic!("unexpected column {other:?}"),
    }
    let back = points_from_columns(&cols[..3]).unwrap();
    assert_eq!(back, points);
    assert!(points_from_columns(&cols[1..3]).is_err(), "no id column");
}

#[test]
fn id_filters_are_plain_literals() {
    assert_eq!(id_list_filter(&[1, 22, 333]), "id in [1, 22, 333]");
    assert_eq!(id_list_filter(&[]), "id in []");
}
