//! The field indexes through a collection's life: updates, deletes, slot reuse after compaction,
//! and their file (`fields.snap`) used when current, rebuilt when stale, foreign or damaged.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde_json::json;
use vecdb::{Collection, Database, Filter, Metric, Point, SearchRequest};

use crate::common::*;

const DIM: usize = 4;

fn vector(id: u64) -> Vec<f32> {
    vec![id as f32, (id % 7) as f32, 1.0, -(id as f32)]
}

fn point(id: u64, group: u64) -> Point {
    Point::with_metadata(
        id,
        vector(id),
        json!({"g": group, "name": format!("p{id}"), "tags": [format!("t{}", group % 3)]}),
    )
}

/// The ids matching `filter`, found through a filtered search asking for every point.
fn matching(c: &Collection, filter: serde_json::Value) -> Vec<u64> {
    let req = SearchRequest {
        k: 10_000,
        filter: Some(Filter::from_json(&filter).unwrap()),
        ..Default::default()
    };
    let mut ids: Vec<u64> = c
        .search(&[0.0; DIM], &req)
        .unwrap()
        .into_iter()
        .map(|h| h.id)
        .collect();
    ids.sort_unstable();
    ids
}

/// Checks every group's and tag's members against the model (id -> group).
fn check(c: &Collection, model: &BTreeMap<u64, u64>) {
    for g in [0u64, 1, 4, 9, 100, 101] {
        let want: Vec<u64> = model
            .iter()
            .filter(|(_, &v)| v == g)
            .map(|(&id, _)| id)
            .collect();
        assert_eq!(
            matching(c, json!({"eq":{"field":"g","value":g}})),
            want,
            "g = {g}"
        );
    }
    let want: Vec<u64> = model
        .iter()
        .filter(|(_, &v)| v % 3 != 1)
        .map(|(&id, _)| id)
        .collect();
    assert_eq!(
        matching(c, json!({"not":{"eq":{"field":"tags","value":"t1"}}})),
        want
    );
    for id in [0u64, 1999, 2500] {
        let want: Vec<u64> = model.contains_key(&id).then_some(id).into_iter().collect();
        assert_eq!(
            matching(c, json!({"eq":{"field":"name","value":format!("p{id}")}})),
            want
        );
    }
}

#[test]
fn filters_follow_updates_deletes_and_reused_slots() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = BTreeMap::new();
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db
            .create_collection(config("f", DIM, Metric::L2, spec("flat")))
            .unwrap();
        c.insert(&(0..2000).map(|i| point(i, i % 10)).collect::<Vec<_>>())
            .unwrap();
        model.extend((0..2000).map(|i| (i, i % 10)));
        check(&c, &model);
        // A metadata-only upsert (same vector) moves points between groups.
        c.upsert(&(0..50).map(|i| point(i, 100)).collect::<Vec<_>>())
            .unwrap();
        model.extend((0..50).map(|i| (i, 100)));
        // An upsert with a new vector takes a new slot.
        let moved: Vec<Point> = (50..60)
            .map(|i| Point::with_metadata(i, vec![0.5; DIM], json!({"g": 101, "tags": ["t2"]})))
            .collect();
        c.upsert(&moved).unwrap();
        model.extend((50..60).map(|i| (i, 101)));
        check(&c, &model);
        // Enough deletes to compact: the freed slots are reused by the next inserts, whose
        // metadata must not inherit the deleted points' entries.
        let doomed: Vec<u64> = (600..2000).collect();
        assert_eq!(c.delete(&doomed).unwrap(), doomed.len());
        for id in &doomed {
            model.remove(id);
        }
        assert!(c.stats().unwrap().free_slots > 0, "compaction did not run");
        c.insert(
            &(2000..2600)
                .map(|i| point(i, 9 - i % 10))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        model.extend((2000..2600).map(|i| (i, 9 - i % 10)));
        check(&c, &model);
        let stats = c.stats().unwrap();
        assert!(stats.field_index_loaded && stats.field_index_bytes > 0);
    }
    // Saved on close, loaded (not rebuilt) by the next process.
    let file = dir.path().join("f/fields.snap");
    let saved = fs::read(&file).unwrap();
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.collection("f").unwrap();
        assert!(!c.stats().unwrap().field_index_loaded, "loaded at open");
        check(&c, &model);
    }
    assert_eq!(
        fs::read(&file).unwrap(),
        saved,
        "a current file was rebuilt"
    );
}

fn reopen_and_check(dir: &Path, model: &BTreeMap<u64, u64>) {
    let db = Database::open(dir).unwrap();
    let c = db.collection("f").unwrap();
    check(&c, model);
}

#[test]
fn a_stale_foreign_or_damaged_file_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let mut model: BTreeMap<u64, u64> = (0..300).map(|i| (i, i % 10)).collect();
    for d in [dir.path(), other.path()] {
        let db = Database::open(d).unwrap();
        let c = db
            .create_collection(config("f", DIM, Metric::L2, spec("hnsw")))
            .unwrap();
        c.insert(&(0..300).map(|i| point(i, i % 10)).collect::<Vec<_>>())
            .unwrap();
    }
    let file = dir.path().join("f/fields.snap");
    let old = fs::read(&file).unwrap();
    // The same writes in both, so the files are of the same generation, but other content.
    for (d, group) in [(dir.path(), 4), (other.path(), 7)] {
        let db = Database::open(d).unwrap();
        let c = db.collection("f").unwrap();
        c.upsert(&[point(1, group)]).unwrap();
        c.delete(&[2]).unwrap();
    }
    model.insert(1, 4);
    model.remove(&2);
    // Stale: a valid file of an older generation.
    fs::write(&file, &old).unwrap();
    reopen_and_check(dir.path(), &model);
    // Foreign: another collection's file of the same generation.
    fs::copy(other.path().join("f/fields.snap"), &file).unwrap();
    reopen_and_check(dir.path(), &model);
    // A damaged field body, the head intact: found when that field loads, and rebuilt.
    let mut bytes = fs::read(&file).unwrap();
    let head = u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize;
    let at = head + (bytes.len() - head) / 2;
    bytes[at] ^= 1;
    fs::write(&file, &bytes).unwrap();
    reopen_and_check(dir.path(), &model);
    assert_ne!(fs::read(&file).unwrap(), bytes, "not rebuilt");
    // Another version: a version 1 file (not migrated: derived data) and a newer one.
    for version in [1u32, 3] {
        fs::write(
            &file,
            ::common::envelope::wrap(b"IMGVFLDS", version, &[0; 100]),
        )
        .unwrap();
        reopen_and_check(dir.path(), &model);
        assert_eq!(fs::read(&file).unwrap()[8..12], 2u32.to_le_bytes());
    }
    // Damaged: a bit flipped, then truncated, then missing.
    let mut bytes = fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    fs::write(&file, &bytes).unwrap();
    reopen_and_check(dir.path(), &model);
    let bytes = fs::read(&file).unwrap();
    fs::write(&file, &bytes[..bytes.len() / 3]).unwrap();
    reopen_and_check(dir.path(), &model);
    fs::remove_file(&file).unwrap();
    reopen_and_check(dir.path(), &model);
    assert!(file.exists());
}
