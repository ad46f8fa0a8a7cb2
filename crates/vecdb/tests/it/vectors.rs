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
        // 1,100 dead slots > max(1000, 100 live): compaction frees them.
        c.delete(&(0..1_100).collect::<Vec<u64>>()).unwrap();
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
    }
    // Reopened from the snapshot, and rebuilt from redb's slot table without it.
    for remove_snapshot in [false, true] {
        if remove_snapshot {
            fs::remove_file(dir.path().join("v/index.snap")).unwrap();
        }
        let db = Database::open(dir.path()).unwrap();
        let c = db.collection("v").unwrap();
        assert_eq!(c.count(), 1_100);
        for id in (1_100..2_200u64).step_by(89) {
            let v = &vectors[id as usize];
            assert_eq!(c.get(&[id]).unwrap()[0].vector, *v);
            assert_eq!(c.search(v, &SearchRequest::new(1)).unwrap()[0].id, id);
        }
        assert!(c.get(&[5]).unwrap().is_empty());
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
