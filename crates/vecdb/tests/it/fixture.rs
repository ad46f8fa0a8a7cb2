//! Files written by format version 1 (by `examples/make_fixture.rs` at that version, committed
//! under `tests/fixtures/v1`) must stay readable: config format 1, point record version 1 and
//! snapshot version 1 are converted once to format 2 (vectors in `vectors.bin`), keeping the
//! index when its snapshot is current; a format newer than the build knows is refused.

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

/// Live and dead slots of a snapshot as written now (its version, then the counts).
fn snapshot_slots(bytes: &[u8]) -> (u32, usize, usize) {
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    // Version 3: the envelope's 20-byte header, then generation u64, live count u64, uid u64,
    // spec length u32 + spec, dim u32, slot count u64, slot ids.
    let body = &bytes[common::envelope::HEADER_LEN..];
    let spec_len = u32::from_le_bytes(body[24..28].try_into().unwrap()) as usize;
    let at = 28 + spec_len + 4;
    let n = u64::from_le_bytes(body[at..at + 8].try_into().unwrap()) as usize;
    let ids: Vec<u64> = body[at + 8..at + 8 + 8 * n]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let dead = ids.iter().filter(|&&id| id == u64::MAX).count();
    (version, ids.len() - dead, dead)
}

fn check_answers(db: &Database) {
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

#[test]
fn version_1_files_are_converted_once_and_answer() {
    let dir = tempfile::tempdir().unwrap();
    unpack(dir.path());
    let snapshot = dir.path().join("hnsw_cos/index.snap");
    {
        let db = Database::open(dir.path()).unwrap();
        check_answers(&db);
    }
    for name in ["flat_l2", "hnsw_cos"] {
        assert!(dir.path().join(name).join("vectors.bin").is_file());
    }
    // The HNSW index was carried over, not rebuilt: a rebuild would have freed the two dead
    // slots (deleted points the graph still routes through).
    let converted = fs::read(&snapshot).unwrap();
    assert_eq!(snapshot_slots(&converted), (3, 18, 2));
    // The second open finds format 2 and restores the snapshot as it is.
    {
        let db = Database::open(dir.path()).unwrap();
        check_answers(&db);
        let c = db.collection("hnsw_cos").unwrap();
        c.insert(&[vecdb::Point::new(100, vec![1.0, 2.0, 3.0, 4.0])])
            .unwrap();
        assert_eq!(
            c.search(&[1.0, 2.0, 3.0, 4.0], &SearchRequest::new(1))
                .unwrap()[0]
                .id,
            100
        );
    }
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(db.collection("hnsw_cos").unwrap().count(), 19);
}

#[test]
fn a_newer_format_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path()).unwrap();
        db.create_collection(vecdb::CollectionConfig::new("c", 4, Metric::L2))
            .unwrap();
    }
    let path = dir.path().join("c/points.redb");
    {
        let file = redb::Database::open(&path).unwrap();
        let tx = file.begin_write().unwrap();
        {
            let def: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
            let mut meta = tx.open_table(def).unwrap();
            let cfg = json!({"format_version": 3, "config": {"name": "c", "dim": 4, "metric": "l2", "index": {"kind": "flat"}}});
            meta.insert("config", serde_json::to_vec(&cfg).unwrap().as_slice())
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let db = Database::open(dir.path()).unwrap();
    let err = db.collection("c").unwrap_err();
    assert!(
        matches!(
            err,
            vecdb::VecDbError::UnsupportedVersion {
                found: 3,
                supported: 2,
                ..
            }
        ),
        "{err}"
    );
}
