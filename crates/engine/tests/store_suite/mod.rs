//! One behaviour suite for every [`VectorStore`] implementation.
//!
//! Test code only, shared by two test files: `tests/conformance.rs` runs it on the embedded
//! store, `tests/milvus.rs` on a live Milvus server. Exact-search cases compare with a brute-force computation done here, so
//! an implementation cannot pass by agreeing with itself. The function panics (with a message
//! naming the case) on the first violation, which makes it usable from any test harness.

use serde_json::{json, Value};
use vecdb::IvfParams;
use vecdb::{CollectionConfig, Filter, IndexSpec, Metric, Point, SearchRequest};

use engine::store::{StoreError, VectorStore};

/// Runs every case on collections whose names start with `prefix` (dropped again at the end).
pub fn run_conformance(store: &dyn VectorStore, prefix: &str) {
    lifecycle(store, prefix);
    crud(store, prefix);
    for metric in [Metric::L2, Metric::Ip, Metric::Cosine] {
        exact_search(store, prefix, metric);
    }
    approximate_recall(store, prefix, IndexSpec::default_hnsw(), "hnsw");
    approximate_recall(
        store,
        prefix,
        IndexSpec::Ivf(IvfParams {
            nlist: 16,
            nprobe: 8,
        }),
        "ivf",
    );
    filters(store, prefix);
    scan_pages(store, prefix);
    bad_input(store, prefix);
}

/// A small deterministic generator so the suite needs no `rand` and is identical everywhere.
struct Gen(u64);

impl Gen {
    fn next_f32(&mut self) -> f32 {
        // xorshift64*: good enough spread for test vectors.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((v >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vector(&mut self, dim: usize) -> Vec<f32> {
        (0..dim).map(|_| self.next_f32()).collect()
    }
}

fn config(name: &str, dim: usize, metric: Metric, index: IndexSpec) -> CollectionConfig {
    CollectionConfig {
        name: name.to_string(),
        dim,
        metric,
        index,
    }
}

/// Metadata with a number, a string, an array and a date, the field kinds the engine filters on.
fn meta(i: u64) -> Value {
    json!({
        "group": i % 3,
        "name": format!("p{i}"),
        "tags": [format!("t{}", i % 4), "all"],
        "taken": format!("2020-01-{:02}T00:00:00Z", 1 + i % 28),
    })
}

fn points(gen: &mut Gen, n: u64, dim: usize) -> Vec<Point> {
    (1..=n)
        .map(|id| Point {
            id,
            vector: gen.vector(dim),
            metadata: meta(id),
        })
        .collect()
}

fn fresh(store: &dyn VectorStore, cfg: &CollectionConfig) {
    if store
        .collection_info(&cfg.name)
        .expect("collection_info")
        .is_some()
    {
        store
            .drop_collection(&cfg.name)
            .expect("drop stale collection");
    }
    store
        .create_collection(cfg)
        .unwrap_or_else(|e| panic!("create {}: {e}", cfg.name));
}

fn lifecycle(store: &dyn VectorStore, prefix: &str) {
    let name = format!("{prefix}_life");
    let cfg = config(&name, 4, Metric::Cosine, IndexSpec::Flat);
    fresh(store, &cfg);
    let listed = store.list_collections().expect("list");
    let found = listed
        .iter()
        .find(|c| c.name == name)
        .expect("listed after create");
    assert_eq!(found.dim, 4, "listed dim");
    assert_eq!(found.metric, Metric::Cosine, "listed metric");
    let info = store.collection_info(&name).expect("info").expect("exists");
    assert_eq!(info.dim, 4, "info dim");
    assert!(
        store.create_collection(&cfg).is_err(),
        "duplicate create must fail"
    );
    assert_eq!(
        store.count(&name).expect("count"),
        0,
        "new collection is empty"
    );
    store.drop_collection(&name).expect("drop");
    assert!(
        store.collection_info(&name).expect("info").is_none(),
        "gone after drop"
    );
    assert!(
        !store
            .list_collections()
            .expect("list")
            .iter()
            .any(|c| c.name == name),
        "not listed after drop"
    );
    assert!(
        store.drop_collection(&name).is_err(),
        "dropping twice must fail"
    );
}

fn crud(store: &dyn VectorStore, prefix: &str) {
    let name = format!("{prefix}_crud");
    fresh(store, &config(&name, 4, Metric::L2, IndexSpec::Flat));
    let mut gen = Gen(7);
    let pts = points(&mut gen, 3, 4);
    store.upsert(&name, &pts).expect("upsert");
    assert_eq!(store.count(&name).expect("count"), 3);
    let got = store.get(&name, &[1, 2, 99]).expect("get");
    let mut ids: Vec<u64> = got.iter().map(|p| p.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 2], "get skips missing ids");
    let p1 = got.iter().find(|p| p.id == 1).expect("id 1");
    assert_eq!(p1.metadata, pts[0].metadata, "metadata round-trips");
    for (a, b) in p1.vector.iter().zip(&pts[0].vector) {
        assert!((a - b).abs() < 1e-5, "vector round-trips");
    }
    // Upsert of an existing id replaces it.
    let replaced = Point {
        id: 1,
        vector: vec![1.0, 0.0, 0.0, 0.0],
        metadata: json!({"name": "replaced"}),
    };
    store.upsert(&name, &[replaced]).expect("upsert replace");
    assert_eq!(store.count(&name).expect("count"), 3, "replace keeps count");
    let p1 = store.get(&name, &[1]).expect("get").pop().expect("id 1");
    assert_eq!(
        p1.metadata,
        json!({"name": "replaced"}),
        "metadata replaced"
    );
    assert!((p1.vector[0] - 1.0).abs() < 1e-6, "vector replaced");
    store
        .delete(&name, &[1, 99])
        .expect("delete ignores missing ids");
    assert_eq!(store.count(&name).expect("count"), 2);
    assert!(
        store.get(&name, &[1]).expect("get").is_empty(),
        "deleted id gone"
    );
    let hits = store
        .search(&name, &[1.0, 0.0, 0.0, 0.0], &req(10))
        .expect("search");
    assert!(hits.iter().all(|h| h.id != 1), "deleted id never returned");
    store.drop_collection(&name).expect("drop");
}

fn req(k: usize) -> SearchRequest {
    SearchRequest {
        k,
        ..SearchRequest::default()
    }
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The score convention of vecdb: L2 distance (smaller first), dot product and cosine (larger first).
fn score(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Metric::L2 => l2(a, b),
        Metric::Ip => dot(a, b),
        Metric::Cosine => dot(a, b) / (dot(a, a).sqrt() * dot(b, b).sqrt()),
    }
}

/// Exact top-k by brute force, best first, over points accepted by `keep`.
fn brute_force(
    metric: Metric,
    pts: &[Point],
    q: &[f32],
    k: usize,
    keep: &dyn Fn(&Point) -> bool,
) -> Vec<(u64, f32)> {
    let mut all: Vec<(u64, f32)> = pts
        .iter()
        .filter(|p| keep(p))
        .map(|p| (p.id, score(metric, q, &p.vector)))
        .collect();
    // Best first, by vecdb's own notion of which way a score is better.
    all.sort_by(|a, b| metric.similarity(b.1).total_cmp(&metric.similarity(a.1)));
    all.truncate(k);
    all
}

fn assert_same_hits(what: &str, got: &[vecdb::Hit], want: &[(u64, f32)]) {
    let got_ids: Vec<u64> = got.iter().map(|h| h.id).collect();
    let want_ids: Vec<u64> = want.iter().map(|w| w.0).collect();
    assert_eq!(got_ids, want_ids, "{what}: exact ids in order");
    for (h, w) in got.iter().zip(want) {
        let tol = 1e-3 * w.1.abs().max(1.0);
        assert!(
            (h.score - w.1).abs() <= tol,
            "{what}: score {} vs {}",
            h.score,
            w.1
        );
    }
}

fn exact_search(store: &dyn VectorStore, prefix: &str, metric: Metric) {
    let name = format!("{prefix}_flat_{metric:?}").to_lowercase();
    let dim = 8;
    fresh(store, &config(&name, dim, metric, IndexSpec::Flat));
    let mut gen = Gen(11);
    let pts = points(&mut gen, 200, dim);
    store.upsert(&name, &pts).expect("upsert");
    for qi in 0..5 {
        let q = gen.vector(dim);
        let hits = store.search(&name, &q, &req(10)).expect("search");
        let want = brute_force(metric, &pts, &q, 10, &|_| true);
        assert_same_hits(&format!("{metric:?} query {qi}"), &hits, &want);
    }
    // Threshold: every hit within it, and none of the qualifying points missed.
    let q = gen.vector(dim);
    let all = brute_force(metric, &pts, &q, pts.len(), &|_| true);
    // Midway between two scores, so rounding differences between kernels cannot decide.
    let threshold = (all[20].1 + all[21].1) / 2.0;
    let hits = store
        .search(
            &name,
            &q,
            &SearchRequest {
                k: 200,
                threshold: Some(threshold),
                ..SearchRequest::default()
            },
        )
        .expect("search with threshold");
    let want: Vec<(u64, f32)> = all
        .into_iter()
        .filter(|(_, s)| match metric {
            Metric::L2 => *s <= threshold,
            _ => *s >= threshold,
        })
        .collect();
    assert_same_hits(&format!("{metric:?} threshold"), &hits, &want);
    store.drop_collection(&name).expect("drop");
}

fn approximate_recall(store: &dyn VectorStore, prefix: &str, index: IndexSpec, label: &str) {
    let name = format!("{prefix}_{label}");
    let dim = 16;
    fresh(store, &config(&name, dim, Metric::L2, index));
    let mut gen = Gen(23);
    let pts = points(&mut gen, 1000, dim);
    store.upsert(&name, &pts).expect("upsert");
    let (mut found, mut total) = (0usize, 0usize);
    for _ in 0..20 {
        let q = gen.vector(dim);
        let hits = store.search(&name, &q, &req(10)).expect("search");
        let want = brute_force(Metric::L2, &pts, &q, 10, &|_| true);
        found += want
            .iter()
            .filter(|w| hits.iter().any(|h| h.id == w.0))
            .count();
        total += want.len();
    }
    let recall = found as f64 / total as f64;
    assert!(recall >= 0.9, "{label}: recall@10 {recall} below 0.9");
    store.drop_collection(&name).expect("drop");
}

/// A filter case: its JSON form and the same predicate written in Rust for the brute force.
type FilterCase = (Value, Box<dyn Fn(&Point) -> bool>);

fn filter_cases() -> Vec<FilterCase> {
    let group = |p: &Point| p.metadata["group"].as_u64().unwrap_or(99);
    let day = |p: &Point| {
        p.metadata["taken"].as_str().unwrap_or("")[8..10]
            .parse::<u32>()
            .unwrap_or(0)
    };
    vec![
        (
            json!({"eq": {"field": "group", "value": 1}}),
            Box::new(move |p: &Point| group(p) == 1),
        ),
        (
            json!({"in": {"field": "name", "values": ["p3", "p10", "p77", "nobody"]}}),
            Box::new(|p: &Point| {
                ["p3", "p10", "p77"].contains(&p.metadata["name"].as_str().unwrap_or(""))
            }),
        ),
        (
            json!({"eq": {"field": "tags", "value": "t2"}}),
            Box::new(|p: &Point| p.id % 4 == 2),
        ),
        (
            json!({"range": {"field": "group", "gte": 1, "lt": 2}}),
            Box::new(move |p: &Point| group(p) == 1),
        ),
        (
            json!({"range": {"field": "taken", "gt": "2020-01-10T00:00:00Z", "lte": "2020-01-20T00:00:00Z"}}),
            Box::new(move |p: &Point| day(p) > 10 && day(p) <= 20),
        ),
        (
            json!({"and": [{"eq": {"field": "group", "value": 0}}, {"not": {"eq": {"field": "tags", "value": "t0"}}}]}),
            Box::new(move |p: &Point| group(p) == 0 && p.id % 4 != 0),
        ),
        (
            json!({"or": [{"eq": {"field": "group", "value": 2}}, {"in": {"field": "name", "values": ["p1"]}}]}),
            Box::new(move |p: &Point| group(p) == 2 || p.id == 1),
        ),
    ]
}

fn filters(store: &dyn VectorStore, prefix: &str) {
    let name = format!("{prefix}_filter");
    let dim = 8;
    fresh(store, &config(&name, dim, Metric::Cosine, IndexSpec::Flat));
    let mut gen = Gen(31);
    let pts = points(&mut gen, 120, dim);
    store.upsert(&name, &pts).expect("upsert");
    let q = gen.vector(dim);
    for (json, keep) in filter_cases() {
        let filter: Filter = serde_json::from_value(json.clone())
            .unwrap_or_else(|e| panic!("filter {json} does not parse: {e}"));
        let hits = store
            .search(
                &name,
                &q,
                &SearchRequest {
                    k: 15,
                    filter: Some(filter),
                    ..SearchRequest::default()
                },
            )
            .unwrap_or_else(|e| panic!("search with filter {json}: {e}"));
        let want = brute_force(Metric::Cosine, &pts, &q, 15, &*keep);
        assert_same_hits(&format!("filter {json}"), &hits, &want);
    }
    store.drop_collection(&name).expect("drop");
}

fn scan_pages(store: &dyn VectorStore, prefix: &str) {
    let name = format!("{prefix}_scan");
    fresh(store, &config(&name, 4, Metric::Ip, IndexSpec::Flat));
    let mut gen = Gen(41);
    let mut pts = points(&mut gen, 30, 4);
    // Ids out of order and with gaps, so ascending order is the store's doing.
    for p in &mut pts {
        p.id = p.id * 7 % 101;
    }
    store.upsert(&name, &pts).expect("upsert");
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.scan(&name, after, 7).expect("scan");
        assert!(page.len() <= 7, "page larger than limit");
        if page.is_empty() {
            break;
        }
        after = Some(page.last().expect("non-empty").id);
        seen.extend(page.iter().map(|p| p.id));
    }
    let mut want: Vec<u64> = pts.iter().map(|p| p.id).collect();
    want.sort_unstable();
    assert_eq!(seen, want, "scan pages give every id once, ascending");
    store.drop_collection(&name).expect("drop");
}

fn bad_input(store: &dyn VectorStore, prefix: &str) {
    let missing = format!("{prefix}_missing");
    assert!(
        matches!(
            store.count(&missing),
            Err(StoreError::UnknownCollection { .. })
        ),
        "count on a missing collection is UnknownCollection"
    );
    assert!(
        matches!(
            store.search(&missing, &[0.0; 4], &req(1)),
            Err(StoreError::UnknownCollection { .. })
        ),
        "search on a missing collection is UnknownCollection"
    );
    assert!(
        store.upsert(&missing, &[]).is_err()
            || store.collection_info(&missing).expect("info").is_none()
    );
    assert!(
        store
            .create_collection(&config(
                &format!("{prefix}_dim0"),
                0,
                Metric::L2,
                IndexSpec::Flat
            ))
            .is_err(),
        "dimension 0 rejected"
    );
    let name = format!("{prefix}_bad");
    fresh(store, &config(&name, 4, Metric::L2, IndexSpec::Flat));
    store
        .upsert(
            &name,
            &[Point {
                id: 1,
                vector: vec![0.5; 4],
                metadata: json!({}),
            }],
        )
        .expect("good upsert");
    let batch = [
        Point {
            id: 2,
            vector: vec![1.0; 4],
            metadata: json!({}),
        },
        Point {
            id: 3,
            vector: vec![1.0; 3],
            metadata: json!({}),
        },
    ];
    assert!(
        store.upsert(&name, &batch).is_err(),
        "wrong dimension rejected"
    );
    let nan = [Point {
        id: 4,
        vector: vec![f32::NAN, 0.0, 0.0, 0.0],
        metadata: json!({}),
    }];
    assert!(store.upsert(&name, &nan).is_err(), "NaN rejected");
    assert_eq!(
        store.count(&name).expect("count"),
        1,
        "rejected batches change nothing"
    );
    assert!(
        store.search(&name, &[1.0; 3], &req(1)).is_err(),
        "query of wrong dimension rejected"
    );
    store.drop_collection(&name).expect("drop");
}
