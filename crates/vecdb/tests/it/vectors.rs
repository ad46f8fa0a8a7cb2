//! The vector file: slots freed by compaction are reused, the file does not grow while free
//! slots remain, and a damaged vector is reported, not returned.

use std::fs;

use vecdb::{Database, Metric, Point, SearchRequest};

use crate::common::*;

const DIM: usize = 8;

#[test]
fn freed_slots_are_reused_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let vectors = clustered(2_400, DIM, 6, 11);
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db
            .create_collection(config("v", DIM, Metric::L2, spec("hnsw")))
            .unwrap();
        c.insert(&points(&vectors[..1_200], 0)).unwrap();
        // A few deletes leave dead slots, which searches must skip.
        c.delete(&(0..50).collect::<Vec<u64>>()).unwrap();
        assert_eq!(c.stats().unwrap().dead_slots, 50);
        assert_no_hit(&c, &vectors, 0..50);
        // 1,100 dead slots > max(1000, 100 live): compaction frees them.
        c.delete(&(50..1_100).collect::<Vec<u64>>()).unwrap();
        let s = c.stats().unwrap();
        assert_eq!((s.points, s.slots, s.dead_slots), (100, 1_200, 0));
        assert_eq!(s.free_slots, 1_100);
        // New points take the free slots: the slot table does not grow.
        c.insert(&points(&vectors[1_200..2_200], 1_200)).unwrap();
        let s = c.stats().unwrap();
        assert_eq!((s.points, s.slots, s.free_slots), (1_100, 1_200, 100));
        for (i, v) in vectors[1_200..2_200].iter().enumerate().step_by(97) {
            let id = 1_200 + i as u64;
            assert_eq!(c.get(&[id]).unwrap()[0].vector, *v);
            assert_eq!(c.search(v, &SearchRequest::new(1)).unwrap()[0].id, id);
        }
        c.delete(&[1_101, 1_102, 1_103]).unwrap();
        assert_eq!(c.stats().unwrap().dead_slots, 3);
    }
    // Reopened from the snapshot (its dead slots still dead), and rebuilt from redb's slot table
    // without it (dead slots become free).
    for (remove_snapshot, dead) in [(false, 3), (true, 0)] {
        if remove_snapshot {
            fs::remove_file(dir.path().join("v/index.snap")).unwrap();
        }
        let db = Database::open(dir.path()).unwrap();
        let c = db.collection("v").unwrap();
        assert_eq!(c.count(), 1_097);
        assert_eq!(c.stats().unwrap().dead_slots, dead);
        assert_no_hit(&c, &vectors, 1_101..1_104);
        for id in (1_100..2_200u64).step_by(89) {
            let v = &vectors[id as usize];
            assert_eq!(c.get(&[id]).unwrap()[0].vector, *v);
            assert_eq!(c.search(v, &SearchRequest::new(1)).unwrap()[0].id, id);
        }
        assert!(c.get(&[5]).unwrap().is_empty());
    }
}

/// No search for the vector of a deleted point returns it, nor any other deleted point.
fn assert_no_hit(c: &vecdb::Collection, vectors: &[Vec<f32>], deleted: std::ops::Range<u64>) {
    for id in deleted.clone() {
        let hits = c
            .search(&vectors[id as usize], &SearchRequest::new(10))
            .unwrap();
        assert_eq!(hits.len(), 10);
        assert!(hits.iter().all(|h| !deleted.contains(&h.id)), "{hits:?}");
    }
}

#[test]
fn a_damaged_vector_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db
            .create_collection(config("d", 4, Metric::L2, spec("flat")))
            .unwrap();
        c.insert(&[
            Point::new(1, vec![1.0, 2.0, 3.0, 4.0]),
            Point::new(2, vec![5.0, 6.0, 7.0, 8.0]),
        ])
        .unwrap();
    }
    // Flip a bit of slot 1's first float (header 4096 bytes, 16 bytes per slot).
    let path = dir.path().join("d/vectors.bin");
    let mut bytes = fs::read(&path).unwrap();
    bytes[4096 + 16] ^= 0x40;
    fs::write(&path, &bytes).unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("d").unwrap();
    assert_eq!(c.get(&[1]).unwrap()[0].vector, vec![1.0, 2.0, 3.0, 4.0]);
    let err = c.get(&[2]).unwrap_err();
    assert!(matches!(err, vecdb::VecDbError::Corrupt { .. }), "{err}");
    // Without a snapshot, the rebuild checks every vector and refuses to open.
    drop((c, db));
    fs::remove_file(dir.path().join("d/index.snap")).unwrap();
    let db = Database::open(dir.path()).unwrap();
    assert!(matches!(
        db.collection("d"),
        Err(vecdb::VecDbError::Corrupt { .. })
    ));
}
