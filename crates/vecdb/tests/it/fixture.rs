//! Files written by format version 1 (by `examples/make_fixture.rs`, committed under
//! `tests/fixtures/v1`) must stay readable: config format 1, point record version 1 and
//! snapshot version 1.

use std::fs;
use std::path::Path;

use serde_json::json;
use vecdb::{Database, IndexSpec, Metric, SearchRequest};

/// Expands the run-length encoding written by `make_fixture`.
fn un_rle(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let byte = data[0];
        let run = u32::from_le_bytes(data[1..5].try_into().unwrap()) as usize;
        let n = u32::from_le_bytes(data[5..9].try_into().unwrap()) as usize;
        out.resize(out.len() + run, byte);
        out.extend_from_slice(&data[9..9 + n]);
        data = &data[9 + n..];
    }
    out
}

fn unpack(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1");
    for name in ["flat_l2", "hnsw_cos"] {
        fs::create_dir_all(to.join(name)).unwrap();
        let rle = fs::read(from.join(name).join("points.redb.rle")).unwrap();
        fs::write(to.join(name).join("points.redb"), un_rle(&rle)).unwrap();
        fs::copy(
            from.join(name).join("index.snap"),
            to.join(name).join("index.snap"),
        )
        .unwrap();
    }
}

fn vector(id: u64) -> Vec<f32> {
    vec![id as f32, 1.0, (id % 3) as f32, -(id as f32) / 2.0]
}

#[test]
fn version_1_files_open_and_answer() {
    let dir = tempfile::tempdir().unwrap();
    unpack(dir.path());
    let snapshot = dir.path().join("hnsw_cos/index.snap");
    let before = fs::read(&snapshot).unwrap();
    {
        let db = Database::open(dir.path()).unwrap();
        let configs = db.list_collections().unwrap();
        assert_eq!(configs.len(), 2);
        assert_eq!(configs[1].metric, Metric::Cosine);
        assert_eq!(configs[1].index, IndexSpec::default_hnsw());
        for name in ["flat_l2", "hnsw_cos"] {
            let c = db.collection(name).unwrap();
            assert_eq!(c.count(), 18);
            let p = c.get(&[5, 3]).unwrap();
            assert_eq!(p.len(), 1);
            assert_eq!(p[0].vector, vector(5));
            assert_eq!(p[0].metadata, json!({"n": 5, "tags": ["a", "t1"]}));
            let hits = c.search(&vector(11), &SearchRequest::new(3)).unwrap();
            assert_eq!(hits[0].id, 11);
            assert!(hits.iter().all(|h| h.id != 3 && h.id != 7));
        }
    }
    // The HNSW snapshot was restored, not rebuilt: a rebuild would have dropped the two dead
    // slots and saved a different file on close.
    assert_eq!(fs::read(&snapshot).unwrap(), before);
}
