//! The Milvus store against a live server: the shared conformance suite, equivalence with the
//! embedded store on realistic vectors, migration both ways, filter injection attempts and
//! error reporting.
//!
//! Runs only when `IMGSEARCH_MILVUS_URL` names a server (scripts/test.d/50-milvus.sh starts
//! Milvus Lite and sets it); otherwise each test says it is skipped and passes. Collections are
//! prefixed with the process id, so parallel runs against one server do not collide.
#![cfg(feature = "milvus")]

mod store_suite;

use std::collections::HashSet;

use engine::migrate::migrate;
use engine::store::embedded::EmbeddedStore;
use engine::store::milvus::{MilvusStore, MAX_ID};
use engine::store::{StoreError, VectorStore};
use serde_json::json;
use vecdb::{CollectionConfig, Filter, Hit, IndexSpec, Metric, Point, SearchRequest};

fn server() -> Option<MilvusStore> {
    match std::env::var("IMGSEARCH_MILVUS_URL") {
        Ok(url) if !url.is_empty() => {
            Some(MilvusStore::connect(&url).unwrap_or_else(|e| panic!("connect {url}: {e}")))
        }
        _ => {
            eprintln!("skipped: set IMGSEARCH_MILVUS_URL=milvus://host:port to run against Milvus");
            None
        }
    }
}

fn prefix(test: &str) -> String {
    format!("imgsearch_t{}_{test}", std::process::id())
}

/// Drops a collection when the test ends, also when it panics.
struct Cleanup<'a>(&'a dyn VectorStore, String);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.drop_collection(&self.1);
    }
}

#[test]
fn conformance_suite_passes_on_milvus() {
    let Some(store) = server() else { return };
    store_suite::run_conformance(&store, &prefix("conf"));
}

/// Deterministic standard normals (xorshift + Box-Muller), so no `rand` is needed.
struct Normal(u64);

impl Normal {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn next(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
}

/// Embedding-like data: 1280-d, non-negative (post-ReLU pooling), in 25 clusters of uneven
/// spread, with metadata like the engine's.
fn clustered(n: usize, seed: u64) -> (Vec<Point>, Vec<Vec<f32>>) {
    const DIM: usize = 1280;
    let mut g = Normal(seed);
    let centers: Vec<Vec<f32>> = (0..25)
        .map(|_| (0..DIM).map(|_| g.next().abs()).collect())
        .collect();
    let make = |g: &mut Normal, c: usize| -> Vec<f32> {
        let spread = 0.3 + 0.05 * (c % 7) as f32;
        centers[c]
            .iter()
            .map(|&x| (x + spread * g.next()).max(0.0))
            .collect()
    };
    let points = (0..n)
        .map(|i| {
            let c = i % centers.len();
            Point::with_metadata(
                i as u64 + 1,
                make(&mut g, c),
                json!({"folder": format!("f{}", c % 5), "size": i * 37 % 1000,
                       "taken": format!("2021-{:02}-01T12:00:00+02:00", 1 + i % 12)}),
            )
        })
        .collect();
    let queries = (0..30).map(|q| make(&mut g, (q * 7) % 25)).collect();
    (points, queries)
}

fn collection(name: &str, index: IndexSpec) -> CollectionConfig {
    CollectionConfig {
        name: name.into(),
        dim: 1280,
        metric: Metric::Cosine,
        index,
    }
}

/// Same ids in the same order, except that neighbours with scores within 1e-4 may swap.
fn assert_same_top(what: &str, a: &[Hit], b: &[Hit]) {
    assert_eq!(a.len(), b.len(), "{what}: hit counts");
    let ids = |h: &[Hit]| h.iter().map(|x| x.id).collect::<HashSet<_>>();
    assert_eq!(ids(a), ids(b), "{what}: same ids");
    for (x, y) in a.iter().zip(b) {
        assert!(
            (x.score - y.score).abs() < 1e-4,
            "{what}: scores {} vs {}",
            x.score,
            y.score
        );
    }
}

#[test]
fn milvus_and_embedded_agree_on_clustered_vectors() {
    let Some(milvus) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let embedded = EmbeddedStore::open(dir.path()).unwrap();
    let (points, queries) = clustered(2000, 42);
    let filter: Filter =
        serde_json::from_value(json!({"and": [{"eq": {"field": "folder", "value": "f2"}},
            {"range": {"field": "taken", "gte": "2021-03-01", "lt": "2021-09-01"}}]}))
        .unwrap();
    for (label, index) in [
        ("flat", IndexSpec::Flat),
        ("hnsw", IndexSpec::default_hnsw()),
    ] {
        let name = format!("{}_{label}", prefix("eq"));
        let _guard = Cleanup(&milvus, name.clone());
        for store in [&milvus as &dyn VectorStore, &embedded] {
            store
                .create_collection(&collection(&name, index.clone()))
                .unwrap();
            store.upsert(&name, &points).unwrap();
            assert_eq!(store.count(&name).unwrap(), 2000);
        }
        let (mut overlap, mut total) = (0, 0);
        for (i, q) in queries.iter().enumerate() {
            let req = SearchRequest::new(10);
            let m = milvus.search(&name, q, &req).unwrap();
            let e = embedded.search(&name, q, &req).unwrap();
            if label == "flat" {
                assert_same_top(&format!("query {i}"), &m, &e);
                let req = SearchRequest {
                    filter: Some(filter.clone()),
                    ..SearchRequest::new(10)
                };
                let m = milvus.search(&name, q, &req).unwrap();
                let e = embedded.search(&name, q, &req).unwrap();
                assert!(!e.is_empty(), "the filter keeps some points");
                assert_same_top(&format!("filtered query {i}"), &m, &e);
                assert_eq!(m[0].metadata, e[0].metadata, "metadata comes back whole");
            } else {
                let want: HashSet<u64> = e.iter().map(|h| h.id).collect();
                overlap += m.iter().filter(|h| want.contains(&h.id)).count();
                total += e.len();
            }
        }
        if label == "hnsw" {
            let ratio = overlap as f64 / total as f64;
            eprintln!("hnsw top-10 overlap milvus vs embedded: {ratio:.3}");
            assert!(ratio >= 0.95, "hnsw overlap {ratio}");
        }
        embedded.drop_collection(&name).unwrap();
    }
}

#[test]
fn migrate_embedded_to_milvus_and_back() {
    let Some(milvus) = server() else { return };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = EmbeddedStore::open(a.path()).unwrap();
    let back = EmbeddedStore::open(b.path()).unwrap();
    let name = prefix("mig");
    let _guard = Cleanup(&milvus, name.clone());
    let (points, queries) = clustered(700, 7);
    let config = collection(&name, IndexSpec::Flat);
    first.create_collection(&config).unwrap();
    first.upsert(&name, &points).unwrap();
    let there = migrate(&first, &milvus, &name, &|_, _| {}).unwrap();
    assert!(there.created);
    assert_eq!((there.source_count, there.target_count), (700, 700));
    assert_eq!(milvus.collection_info(&name).unwrap(), Some(config.clone()));
    let home = migrate(&milvus, &back, &name, &|_, _| {}).unwrap();
    assert_eq!((home.copied, home.target_count), (700, 700));
    let req = SearchRequest::new(10);
    for q in &queries[..5] {
        assert_same_top(
            "after round trip",
            &first.search(&name, q, &req).unwrap(),
            &back.search(&name, q, &req).unwrap(),
        );
    }
    let ids: Vec<u64> = (1..=700).collect();
    let meta = |s: &dyn VectorStore| -> Vec<serde_json::Value> {
        s.get(&name, &ids)
            .unwrap()
            .into_iter()
            .map(|p| p.metadata)
            .collect()
    };
    assert_eq!(meta(&first), meta(&back), "metadata survives both hops");
}

#[test]
fn filter_values_cannot_inject_expressions() {
    let Some(store) = server() else { return };
    let name = prefix("inj");
    let _guard = Cleanup(&store, name.clone());
    store
        .create_collection(&CollectionConfig {
            name: name.clone(),
            dim: 2,
            metric: Metric::L2,
            index: IndexSpec::Flat,
        })
        .unwrap();
    let names = [
        "plain",
        r#"say "hi""#,
        r"back\slash",
        "it's",
        "line\nbreak",
        "é😀",
        r#"x" or id >= 0 or metadata["name"] == "y"#,
    ];
    let points: Vec<Point> = names
        .iter()
        .enumerate()
        .map(|(i, n)| Point::with_metadata(i as u64 + 1, vec![i as f32, 1.0], json!({"name": n})))
        .chain([Point::new(MAX_ID, vec![0.0, 0.0])])
        .collect();
    store.upsert(&name, &points).unwrap();
    for (i, n) in names.iter().enumerate() {
        let req = SearchRequest {
            filter: Some(Filter::eq("name", *n)),
            ..SearchRequest::new(10)
        };
        let hits = store.search(&name, &[0.0, 0.0], &req).unwrap();
        let ids: Vec<u64> = hits.iter().map(|h| h.id).collect();
        assert_eq!(ids, vec![i as u64 + 1], "exactly the point named {n:?}");
    }
    let attack = Filter::eq("name", r#"nobody" or id >= 0 or metadata["name"] == "x"#);
    let req = SearchRequest {
        filter: Some(attack),
        ..SearchRequest::new(10)
    };
    assert!(store.search(&name, &[0.0, 0.0], &req).unwrap().is_empty());
    let bad_field = Filter::eq(r#"name"] == "plain" or metadata["name"#, 1);
    let req = SearchRequest {
        filter: Some(bad_field),
        ..SearchRequest::new(10)
    };
    assert!(matches!(
        store.search(&name, &[0.0, 0.0], &req),
        Err(StoreError::VecDb(vecdb::VecDbError::InvalidFilter { .. }))
    ));
    // The largest id the store accepts works at the edge of scan; the next one is refused
    // (Milvus 2.3 would accept it and then never return it).
    let tail = store.scan(&name, Some(7), 10).unwrap();
    assert_eq!(tail.iter().map(|p| p.id).collect::<Vec<_>>(), vec![MAX_ID]);
    assert!(store.scan(&name, Some(MAX_ID), 10).unwrap().is_empty());
    assert!(matches!(
        store.upsert(&name, &[Point::new(MAX_ID + 1, vec![0.0, 0.0])]),
        Err(StoreError::VecDb(
            vecdb::VecDbError::InvalidParameter { .. }
        ))
    ));
    assert_eq!(store.count(&name).unwrap(), names.len() as u64 + 1);
}

#[test]
fn works_when_called_from_inside_an_async_runtime() {
    let Some(store) = server() else { return };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listed = rt.block_on(async { store.list_collections() });
    assert!(listed.is_ok(), "{listed:?}");
}

#[test]
fn an_unreachable_server_is_reported_with_its_url() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("milvus://admin:secret@127.0.0.1:{port}?timeout=1");
    match MilvusStore::connect(&url) {
        Err(StoreError::Unreachable { url: shown, reason }) => {
            assert!(shown.contains(&format!("127.0.0.1:{port}")), "{shown}");
            assert!(!shown.contains("secret") && !reason.contains("secret"));
        }
        Err(other) => panic!("expected Unreachable, got {other}"),
        Ok(_) => panic!("connected to a closed port"),
    }
    assert!(matches!(
        MilvusStore::connect("milvus://host:notaport"),
        Err(StoreError::InvalidUrl { .. })
    ));
}

/// The whole engine on Milvus and on the embedded store: the sample photos indexed into both
/// give the same top-10 (paths and scores) for every photo as the query, with exact search.
#[test]
fn the_engine_gives_the_same_results_on_milvus_and_embedded() {
    use engine::{Engine, EngineConfig, NoProgress, Query};
    let Some(milvus) = server() else { return };
    let url = std::env::var("IMGSEARCH_MILVUS_URL").unwrap();
    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../samples")
        .canonicalize()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let name = prefix("engine");
    let _guard = Cleanup(&milvus, name.clone());
    let open = |dir: &str, store_url: Option<String>| {
        Engine::open(EngineConfig {
            data_dir: tmp.path().join(dir),
            store_url,
            collection: name.clone(),
            index: IndexSpec::Flat,
            ..EngineConfig::default()
        })
        .unwrap()
    };
    let on_milvus = open("m", Some(url));
    let embedded = open("e", None);
    for eng in [&on_milvus, &embedded] {
        let r = eng
            .index_paths(std::slice::from_ref(&samples), &NoProgress)
            .unwrap();
        assert!(r.added >= 19, "{r:?}");
        assert!(r.failed.is_empty(), "{:?}", r.failed);
    }
    let mut photos: Vec<_> = std::fs::read_dir(&samples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x != "md"))
        .collect();
    photos.sort();
    for photo in &photos {
        let q = Query {
            k: 10,
            ..Query::default()
        };
        let m = on_milvus.search_path(photo, &q).unwrap();
        let e = embedded.search_path(photo, &q).unwrap();
        assert_eq!(m.len(), 10);
        let paths =
            |h: &[engine::SearchHit]| h.iter().map(|x| x.path.clone()).collect::<HashSet<_>>();
        assert_eq!(paths(&m), paths(&e), "query {}", photo.display());
        for (x, y) in m.iter().zip(&e) {
            assert!(
                (x.score - y.score).abs() < 1e-4,
                "{} vs {}",
                x.score,
                y.score
            );
        }
    }
}
