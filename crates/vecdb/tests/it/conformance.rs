//! One conformance suite, run against every index kind through the `Collection` API.

use serde_json::{json, Value};
use vecdb::IvfParams;
use vecdb::{Database, Filter, Metric, Point, SearchRequest, VecDbError};

use crate::common::*;

const DIM: usize = 16;
const N: usize = 1500;

/// Minimum recall@10 (against brute force) accepted for searches that go through the index.
fn min_recall(kind: &str) -> f64 {
    match kind {
        "flat" => 1.0,
        "lsh" => 0.6,
        _ => 0.9,
    }
}

fn setup(kind: &str, metric: Metric) -> (tempfile::TempDir, Database, Data) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db
        .create_collection(config("c", DIM, metric, spec(kind)))
        .unwrap();
    let vectors = clustered(N, DIM, 12, 7);
    let pts = points(&vectors, 1);
    for chunk in pts.chunks(100) {
        c.insert(chunk).unwrap();
    }
    let data = pts
        .into_iter()
        .map(|p| (p.id, p.vector, p.metadata))
        .collect();
    (dir, db, data)
}

fn queries(n: usize) -> Vec<Vec<f32>> {
    queries_for(N, n, DIM, 12, 7)
}

fn crud(kind: &str) {
    let (_dir, db, data) = setup(kind, Metric::Cosine);
    let c = db.collection("c").unwrap();
    assert_eq!(c.count(), N);
    // get returns the vectors as inserted (not normalised) and skips missing ids.
    let got = c.get(&[5, 999_999, 2]).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].id, &got[0].vector), (5, &data[4].1));
    assert_eq!(got[1].metadata, data[1].2);
    let dup = c.insert(&[Point::new(3, vec![1.0; DIM])]).unwrap_err();
    assert!(matches!(dup, VecDbError::DuplicateId { id: 3 }));

    // upsert: id 3 moves far away; a search at its new place finds it first.
    let far: Vec<f32> = (0..DIM).map(|i| if i == 0 { 5.0 } else { -0.5 }).collect();
    c.upsert(&[Point::with_metadata(3, far.clone(), json!({"moved": true}))])
        .unwrap();
    assert_eq!(c.count(), N);
    let hits = c.search(&far, &SearchRequest::new(1)).unwrap();
    assert_eq!(hits[0].id, 3);
    assert!((hits[0].score - 1.0).abs() < 1e-5);
    assert_eq!(hits[0].metadata, json!({"moved": true}));
    // An upsert with an identical vector only replaces the metadata.
    c.upsert(&[Point::with_metadata(3, far.clone(), json!({"moved": 2}))])
        .unwrap();
    let hits = c.search(&far, &SearchRequest::new(1)).unwrap();
    assert_eq!((hits[0].id, &hits[0].metadata), (3, &json!({"moved": 2})));

    // delete: returns how many existed; deleted ids never come back.
    let doomed: Vec<u64> = (1..=N as u64).filter(|id| id % 4 == 0).collect();
    assert_eq!(c.delete(&doomed).unwrap(), doomed.len());
    assert_eq!(c.delete(&doomed).unwrap(), 0);
    assert_eq!(c.count(), N - doomed.len());
    assert!(c.get(&doomed).unwrap().is_empty());
    for q in queries(20) {
        for h in c.search(&q, &SearchRequest::new(50)).unwrap() {
            assert!(h.id % 4 != 0, "deleted id {} returned", h.id);
        }
    }
    // Searching exactly at a deleted point's vector does not return it.
    let hits = c.search(&data[7].1, &SearchRequest::new(5)).unwrap();
    assert!(hits.iter().all(|h| h.id != 8));

    // scan pages through the live ids in ascending order.
    let ids: Vec<u64> = all_points(&db, "c").iter().map(|p| p.id).collect();
    let expected: Vec<u64> = (1..=N as u64).filter(|id| id % 4 != 0).collect();
    assert_eq!(ids, expected);
    assert!(c.scan(Some(u64::MAX), 10).unwrap().is_empty());
    assert_eq!(c.scan(None, 3).unwrap().len(), 3);
}

fn filters(kind: &str) {
    let (_dir, db, data) = setup(kind, Metric::L2);
    let c = db.collection("c").unwrap();
    let cases = [
        // Broad: ~80 % of the points, searched through the index with `accept`.
        json!({"in":{"field":"group","values":[0,1,2,3]}}),
        // Medium: about a third.
        json!({"or":[{"eq":{"field":"tags","value":"blue"}},{"eq":{"field":"group","value":4}}]}),
        // Selective: a date range and a tag (exact path).
        json!({"and":[{"range":{"field":"taken","gte":"2020-03-01","lt":"2020-05-01"}},{"eq":{"field":"tags","value":"red"}}]}),
        // Very selective: 15 points, then 3 (fewer than k).
        json!({"eq":{"field":"info.rare","value":true}}),
        json!({"and":[{"eq":{"field":"info.rare","value":true}},{"eq":{"field":"group","value":0}}]}),
        json!({"not":{"range":{"field":"group","lte":3}}}),
    ];
    let mut index_paths = 0;
    for f in cases {
        let filter = Filter::from_json(&f).unwrap();
        // Which path the planner takes (see `vecdb::search`): exact below this many matches.
        let matching = data
            .iter()
            .filter(|(_, _, m)| matches_filter(&f, m))
            .count();
        let exact_below = (10 * vecdb::search::EXACT_FACTOR).max(N / vecdb::search::EXACT_DIVISOR);
        index_paths += usize::from(matching >= exact_below);
        let mut total_recall = 0.0;
        let qs = queries(20);
        for q in &qs {
            let req = SearchRequest {
                k: 10,
                filter: Some(filter.clone()),
                ..Default::default()
            };
            let hits = c.search(q, &req).unwrap();
            let exact = brute_force(Metric::L2, &data, q, 10, |m| matches_filter(&f, m));
            for h in &hits {
                let meta = &data[h.id as usize - 1].2;
                assert!(
                    matches_filter(&f, meta),
                    "{f}: hit {} fails the filter",
                    h.id
                );
            }
            assert!(hits.windows(2).all(|w| w[0].score <= w[1].score));
            if exact.len() < 10 {
                // Fewer matches than k: all of them, exactly.
                let mut ids: Vec<u64> = hits.iter().map(|h| h.id).collect();
                let mut want: Vec<u64> = exact.iter().map(|e| e.0).collect();
                ids.sort_unstable();
                want.sort_unstable();
                assert_eq!(ids, want, "{f}");
            }
            total_recall += recall(&hits, &exact);
        }
        let r = total_recall / qs.len() as f64;
        assert!(r >= min_recall(kind), "{kind} {f}: recall {r}");
    }
    assert!(index_paths >= 2, "the filtered index path is not exercised");
}

/// The filter semantics restated independently for the brute-force side of the comparison.
fn matches_filter(f: &Value, m: &Value) -> bool {
    let (op, arg) = f.as_object().unwrap().iter().next().unwrap();
    let field = |arg: &Value| -> Vec<Value> {
        let mut v = m.clone();
        for part in arg["field"].as_str().unwrap().split('.') {
            v = v.get(part).cloned().unwrap_or(Value::Null);
        }
        match v {
            Value::Array(items) => items,
            Value::Null => vec![],
            other => vec![other],
        }
    };
    match op.as_str() {
        "and" => arg.as_array().unwrap().iter().all(|g| matches_filter(g, m)),
        "or" => arg.as_array().unwrap().iter().any(|g| matches_filter(g, m)),
        "not" => !matches_filter(arg, m),
        "eq" => field(arg).contains(&arg["value"]),
        "in" => field(arg)
            .iter()
            .any(|v| arg["values"].as_array().unwrap().contains(v)),
        "range" => field(arg).iter().any(|v| {
            let cmp = |b: &Value| -> Option<std::cmp::Ordering> {
                match (v, b) {
                    (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
                    // Test dates are all UTC "YYYY-MM-DD..." so string order is time order.
                    (Value::String(x), Value::String(y)) => Some(x.as_str().cmp(y.as_str())),
                    _ => None,
                }
            };
            use std::cmp::Ordering::*;
            let ok = |name: &str, good: &[std::cmp::Ordering]| match arg.get(name) {
                None => true,
                Some(b) => cmp(b).is_some_and(|o| good.contains(&o)),
            };
            ok("gt", &[Greater])
                && ok("gte", &[Greater, Equal])
                && ok("lt", &[Less])
                && ok("lte", &[Less, Equal])
        }),
        other => panic!("unknown op {other}"),
    }
}

fn threshold(kind: &str) {
    for metric in [Metric::L2, Metric::Cosine, Metric::Ip] {
        let (_dir, db, data) = setup(kind, metric);
        let c = db.collection("c").unwrap();
        for q in queries(10) {
            let exact = brute_force(metric, &data, &q, 10, |_| true);
            // Halfway between the 5th and 6th scores, so rounding cannot move either across.
            let t = (exact[4].1 + exact[5].1) / 2.0;
            let req = SearchRequest {
                k: 10,
                threshold: Some(t),
                ..Default::default()
            };
            let hits = c.search(&q, &req).unwrap();
            for h in &hits {
                let ok = match metric {
                    Metric::L2 => h.score <= t,
                    _ => h.score >= t,
                };
                assert!(
                    ok,
                    "{kind} {metric:?}: score {} beyond threshold {t}",
                    h.score
                );
                let want = score(metric, &q, &data[h.id as usize - 1].1);
                assert!((h.score - want).abs() < 1e-3, "score {} vs {want}", h.score);
            }
            if kind == "flat" {
                assert_eq!(hits.len(), 5);
            }
        }
    }
}

fn reopen(kind: &str) {
    let (dir, db, _data) = setup(kind, Metric::Cosine);
    let c = db.collection("c").unwrap();
    c.delete(&[10, 20, 30]).unwrap();
    let qs = queries(15);
    let req = SearchRequest::new(10);
    let before: Vec<_> = qs.iter().map(|q| c.search(q, &req).unwrap()).collect();
    drop(c);
    drop(db);
    assert!(
        dir.path().join("c/index.snap").exists(),
        "dropping saves the snapshot"
    );
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("c").unwrap();
    assert_eq!(c.count(), N - 3);
    let after: Vec<_> = qs.iter().map(|q| c.search(q, &req).unwrap()).collect();
    assert_eq!(before, after, "{kind}: results differ after reopen");
    assert_eq!(db.list_collections().unwrap()[0].index, spec(kind));
}

fn inserts_after_build(kind: &str) {
    let (dir, db, _data) = setup(kind, Metric::L2);
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("c").unwrap();
    let fresh = clustered(30, DIM, 3, 99);
    let pts: Vec<Point> = fresh
        .iter()
        .enumerate()
        .map(|(i, v)| Point::new(10_000 + i as u64, v.clone()))
        .collect();
    c.insert(&pts).unwrap();
    for p in &pts {
        let hits = c.search(&p.vector, &SearchRequest::new(3)).unwrap();
        assert_eq!(hits[0].id, p.id, "{kind}: new point not found at once");
        assert!(hits[0].score < 1e-5);
    }
}

fn selective_filters_return_k(kind: &str) {
    let (_dir, db, data) = setup(kind, Metric::L2);
    let c = db.collection("c").unwrap();
    // group 2 and tag green: 1/15 of the points (100), above k but tiny for an ANN index.
    let f =
        json!({"and":[{"eq":{"field":"group","value":2}},{"eq":{"field":"tags","value":"green"}}]});
    let filter = Filter::from_json(&f).unwrap();
    for q in queries(10) {
        let req = SearchRequest {
            k: 10,
            filter: Some(filter.clone()),
            ..Default::default()
        };
        let hits = c.search(&q, &req).unwrap();
        let exact = brute_force(Metric::L2, &data, &q, 10, |m| matches_filter(&f, m));
        assert_eq!(exact.len(), 10);
        let ids: Vec<u64> = hits.iter().map(|h| h.id).collect();
        let want: Vec<u64> = exact.iter().map(|e| e.0).collect();
        assert_eq!(ids, want, "{kind}: selective filter is not exact");
    }
}

fn compaction(kind: &str) {
    let (_dir, db, data) = setup(kind, Metric::L2);
    let c = db.collection("c").unwrap();
    // 1100 dead slots exceed max(1000, 400 live): the delete triggers a rebuild without them.
    let doomed: Vec<u64> = (1..=1100).collect();
    assert_eq!(c.delete(&doomed).unwrap(), 1100);
    assert_eq!(c.count(), N - 1100);
    let live: Vec<_> = data.iter().filter(|d| d.0 > 1100).cloned().collect();
    let mut total = 0.0;
    let qs = queries(20);
    for q in &qs {
        let hits = c.search(q, &SearchRequest::new(10)).unwrap();
        assert!(hits.iter().all(|h| h.id > 1100));
        total += recall(&hits, &brute_force(Metric::L2, &live, q, 10, |_| true));
    }
    let r = total / qs.len() as f64;
    assert!(r >= min_recall(kind), "{kind} after compaction: recall {r}");
    // Writes keep working on the rebuilt state.
    c.upsert(&[Point::new(1, vec![7.0; DIM])]).unwrap();
    assert_eq!(
        c.search(&[7.0; DIM], &SearchRequest::new(1)).unwrap()[0].id,
        1
    );
}

fn empty(kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db
        .create_collection(config("e", DIM, Metric::Cosine, spec(kind)))
        .unwrap();
    let q = vec![1.0; DIM];
    assert!(c.search(&q, &SearchRequest::new(5)).unwrap().is_empty());
    c.insert(&[Point::new(1, q.clone())]).unwrap();
    assert_eq!(c.search(&q, &SearchRequest::new(5)).unwrap().len(), 1);
    c.delete(&[1]).unwrap();
    assert!(c.search(&q, &SearchRequest::new(5)).unwrap().is_empty());
    let req = SearchRequest {
        k: 5,
        filter: Some(Filter::eq("x", 1)),
        ..Default::default()
    };
    assert!(c.search(&q, &req).unwrap().is_empty());
    assert!(c.scan(None, 10).unwrap().is_empty());
}

macro_rules! suite {
    ($($kind:ident),*) => {$(
        mod $kind {
            #[test] fn crud() { super::crud(stringify!($kind)) }
            #[test] fn filters() { super::filters(stringify!($kind)) }
            #[test] fn threshold() { super::threshold(stringify!($kind)) }
            #[test] fn reopen() { super::reopen(stringify!($kind)) }
            #[test] fn inserts_after_build() { super::inserts_after_build(stringify!($kind)) }
            #[test] fn selective_filters_return_k() { super::selective_filters_return_k(stringify!($kind)) }
            #[test] fn compaction() { super::compaction(stringify!($kind)) }
            #[test] fn empty() { super::empty(stringify!($kind)) }
        }
    )*};
}

suite!(
    flat,
    hnsw,
    ivf,
    lsh,
    flat_sq8,
    hnsw_sq,
    ivf_sq8,
    flat_rabitq,
    ivf_rabitq,
    hnsw_rabitq
);

/// A filter that matches half the points, all of them far from the query: IVF probing one list
/// finds no accepted candidate, and the search falls back to exact instead of returning nothing.
#[test]
fn filtered_index_search_falls_back_to_exact() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db
        .create_collection(config(
            "f",
            DIM,
            Metric::L2,
            vecdb::IndexSpec::Ivf(IvfParams {
                nlist: 16,
                nprobe: 1,
            }),
        ))
        .unwrap();
    let near = clustered(1000, DIM, 1, 41);
    let far: Vec<Vec<f32>> = clustered(1000, DIM, 1, 41)
        .into_iter()
        .map(|v| v.into_iter().map(|x| x + 20.0).collect())
        .collect();
    let mut pts = Vec::new();
    for (i, v) in near.iter().chain(&far).enumerate() {
        let side = if i < 1000 { "near" } else { "far" };
        pts.push(Point::with_metadata(
            i as u64,
            v.clone(),
            json!({ "side": side }),
        ));
    }
    c.insert(&pts).unwrap();
    let data: Data = pts
        .into_iter()
        .map(|p| (p.id, p.vector, p.metadata))
        .collect();
    let f = json!({"eq":{"field":"side","value":"far"}});
    let req = SearchRequest {
        k: 10,
        filter: Some(Filter::from_json(&f).unwrap()),
        ..Default::default()
    };
    let q = &near[0];
    let hits = c.search(q, &req).unwrap();
    let exact = brute_force(Metric::L2, &data, q, 10, |m| matches_filter(&f, m));
    let ids: Vec<u64> = hits.iter().map(|h| h.id).collect();
    let want: Vec<u64> = exact.iter().map(|e| e.0).collect();
    assert_eq!(ids, want);
}
