//! Searches in several threads while another thread writes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vecdb::{Collection, Database, Metric, Point, SearchRequest};

use crate::common::*;

const DIM: usize = 16;

#[test]
fn collection_and_database_are_send_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Collection>();
    assert_send_sync::<Database>();
}

#[test]
fn searches_run_while_a_writer_inserts() {
    for kind in ["hnsw", "ivf"] {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        let c = db
            .create_collection(config("c", DIM, Metric::L2, spec(kind)))
            .unwrap();
        let vectors = clustered(1200, DIM, 10, 11);
        c.insert(&points(&vectors[..400], 0)).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|t| {
                let c = c.clone();
                let done = done.clone();
                let qs = queries_for(1200 + 20 * t as usize, 20, DIM, 10, 11);
                std::thread::spawn(move || {
                    let mut searches = 0;
                    while !done.load(Ordering::Acquire) || searches < 20 {
                        let q = &qs[searches % qs.len()];
                        let hits = c.search(q, &SearchRequest::new(10)).unwrap();
                        assert_eq!(hits.len(), 10);
                        assert!(hits.windows(2).all(|w| w[0].score <= w[1].score));
                        assert!(hits.iter().all(|h| h.id < 1200));
                        searches += 1;
                    }
                    searches
                })
            })
            .collect();
        let writer = {
            let c = c.clone();
            let vectors = vectors.clone();
            std::thread::spawn(move || {
                for (i, chunk) in vectors[400..].chunks(50).enumerate() {
                    c.insert(&points(chunk, 400 + 50 * i as u64)).unwrap();
                    c.delete(&[(i * 7) as u64]).unwrap();
                }
            })
        };
        writer.join().unwrap();
        done.store(true, Ordering::Release);
        for r in readers {
            assert!(r.join().unwrap() >= 20);
        }
        assert_eq!(c.count(), 1200 - 16);
        // Everything the writer inserted is searchable.
        for (i, v) in vectors.iter().enumerate().skip(400).step_by(37) {
            let hits = c.search(v, &SearchRequest::new(1)).unwrap();
            assert_eq!(hits[0].id, i as u64);
        }
        let p: Vec<Point> = c.get(&[0, 7, 8]).unwrap();
        assert_eq!(p.iter().map(|p| p.id).collect::<Vec<_>>(), vec![8]);
    }
}
