//! Corrupt, truncated, stale, missing or foreign snapshot files: the collection rebuilds its
//! index from the points and answers correctly; opening never fails because of a snapshot.

use std::fs;
use std::path::Path;

use vecdb::{Database, Metric, Point, SearchRequest};

use crate::common::*;

const DIM: usize = 12;

/// Creates a HNSW collection with 400 points, saves its snapshot and returns the queries'
/// exact answers.
fn prepare(dir: &Path) -> Vec<(Vec<f32>, Vec<u64>)> {
    prepare_kind(dir, "hnsw")
}

/// `prepare` with another index kind.
fn prepare_kind(dir: &Path, kind: &str) -> Vec<(Vec<f32>, Vec<u64>)> {
    let db = Database::open(dir).unwrap();
    let c = db
        .create_collection(config("s", DIM, Metric::L2, spec(kind)))
        .unwrap();
    let vectors = clustered(400, DIM, 8, 3);
    c.insert(&points(&vectors, 0)).unwrap();
    c.delete(&[1, 2, 3]).unwrap();
    c.save_index().unwrap();
    let data: Vec<_> = points(&vectors, 0)
        .into_iter()
        .filter(|p| p.id > 3 || p.id == 0)
        .map(|p| (p.id, p.vector, p.metadata))
        .collect();
    queries_for(400, 10, DIM, 8, 3)
        .into_iter()
        .map(|q| {
            let ids = brute_force(Metric::L2, &data, &q, 5, |_| true)
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            (q, ids)
        })
        .collect()
}

fn check(dir: &Path, expected: &[(Vec<f32>, Vec<u64>)], count: usize) {
    let db = Database::open(dir).unwrap();
    let c = db.collection("s").unwrap();
    assert_eq!(c.count(), count);
    let mut found = 0;
    for (q, want) in expected {
        let hits = c.search(q, &SearchRequest::new(5)).unwrap();
        found += hits.iter().filter(|h| want.contains(&h.id)).count();
        assert!(hits.iter().all(|h| !(1..=3).contains(&h.id)));
    }
    assert!(
        found as f64 >= 0.95 * (5 * expected.len()) as f64,
        "recall too low"
    );
}

fn damaged(damage: impl Fn(&Path)) {
    damaged_kind("hnsw", damage);
}

fn damaged_kind(kind: &str, damage: impl Fn(&Path)) {
    let dir = tempfile::tempdir().unwrap();
    let expected = prepare_kind(dir.path(), kind);
    let snap = dir.path().join("s/index.snap");
    damage(&snap);
    check(dir.path(), &expected, 397);
    // The rebuilt state is saved again on close and is valid on the next open.
    assert!(snap.exists());
    check(dir.path(), &expected, 397);
}

#[test]
fn valid_snapshot_is_used() {
    damaged(|_| {});
}

#[test]
fn bit_flip_in_body() {
    damaged(|p| {
        let mut b = fs::read(p).unwrap();
        let n = b.len();
        b[n / 2] ^= 0x01;
        fs::write(p, b).unwrap();
    });
}

/// The quantised kinds keep their codes in the snapshot: a valid one restores them, a damaged
/// or missing one is rebuilt (codes retrained from the vectors).
#[test]
fn quantized_codes_round_trip_or_are_rebuilt() {
    for kind in [
        "flat_sq8",
        "hnsw_sq",
        "ivf_sq8",
        "flat_rabitq",
        "ivf_rabitq",
        "hnsw_rabitq",
    ] {
        damaged_kind(kind, |_| {});
        damaged_kind(kind, |p| {
            let mut b = fs::read(p).unwrap();
            // The codes are the last part of the body.
            let n = b.len();
            b[n - 10] ^= 0x01;
            fs::write(p, b).unwrap();
        });
        damaged_kind(kind, |p| fs::remove_file(p).unwrap());
    }
}

#[test]
fn bit_flip_in_header() {
    damaged(|p| {
        let mut b = fs::read(p).unwrap();
        b[20] ^= 0x80;
        fs::write(p, b).unwrap();
    });
}

#[test]
fn truncated() {
    for keep in [0usize, 7, 47, 100] {
        damaged(|p| {
            let b = fs::read(p).unwrap();
            fs::write(p, &b[..keep.min(b.len())]).unwrap();
        });
    }
    damaged(|p| {
        let b = fs::read(p).unwrap();
        fs::write(p, &b[..b.len() - 1]).unwrap();
    });
}

#[test]
fn missing() {
    damaged(|p| fs::remove_file(p).unwrap());
}

#[test]
fn garbage_and_leftover_temporary() {
    damaged(|p| {
        fs::write(p, vec![0xAB; 5000]).unwrap();
        fs::write(p.with_file_name("index.snap.tmp"), b"half written").unwrap();
    });
}

#[test]
fn future_version_with_valid_checksums() {
    damaged(|p| {
        // The same body in a valid envelope of a version this build does not know.
        let b = fs::read(p).unwrap();
        let body = &b[common::envelope::HEADER_LEN..b.len() - 4];
        fs::write(p, common::envelope::wrap(b"IMGVSNAP", 99, body)).unwrap();
    });
}

/// A snapshot from an older point set (valid file, wrong generation) must not be used.
#[test]
fn stale_snapshot_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    let snap = dir.path().join("s/index.snap");
    let old = fs::read(&snap).unwrap();
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.collection("s").unwrap();
        c.insert(&[Point::new(5000, vec![9.0; DIM])]).unwrap();
        c.delete(&[10]).unwrap();
    }
    fs::write(&snap, old).unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("s").unwrap();
    assert_eq!(c.count(), 397);
    let hits = c.search(&[9.0; DIM], &SearchRequest::new(1)).unwrap();
    assert_eq!(hits[0].id, 5000);
    let hits = c
        .search(&clustered(1, DIM, 8, 3)[0], &SearchRequest::new(400))
        .unwrap();
    assert!(hits.iter().all(|h| h.id != 10));
}

/// A snapshot of another collection with the same spec and generation must not be used either.
#[test]
fn foreign_snapshot_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let expected = prepare(dir.path());
    let other = tempfile::tempdir().unwrap();
    {
        let db = Database::open(other.path()).unwrap();
        let c = db
            .create_collection(config("s", DIM, Metric::L2, spec("hnsw")))
            .unwrap();
        // Same number of batches (generation 2) and live points, different ids and vectors.
        let vectors = clustered(400, DIM, 8, 4);
        c.insert(&points(&vectors, 10_000)).unwrap();
        c.delete(&[10_000, 10_001, 10_002]).unwrap();
        c.save_index().unwrap();
    }
    fs::copy(
        other.path().join("s/index.snap"),
        dir.path().join("s/index.snap"),
    )
    .unwrap();
    check(dir.path(), &expected, 397);
}

/// After `AUTOSAVE_MIN_CHANGES` changed points the snapshot is written without being asked.
#[test]
fn snapshot_is_saved_after_enough_changes() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db
        .create_collection(config("a", 2, Metric::L2, spec("flat")))
        .unwrap();
    let n = vecdb::AUTOSAVE_MIN_CHANGES;
    let snap = dir.path().join("a/index.snap");
    let pts: Vec<Point> = (0..n - 1)
        .map(|i| Point::new(i, vec![i as f32, 1.0]))
        .collect();
    c.insert(&pts).unwrap();
    assert!(!snap.exists(), "saved too early");
    c.insert(&[Point::new(n, vec![0.5, 0.5])]).unwrap();
    assert!(snap.exists(), "not saved after {n} changes");
    // The collection stays usable while its handle is open; the file is a valid snapshot that
    // a fresh process would restore.
    let bytes = fs::read(&snap).unwrap();
    assert_eq!(&bytes[..8], vecdb::storage::SNAPSHOT_MAGIC.as_slice());
}
