//! Crash test: a child process writes batches forever and prints each acknowledged batch; the
//! parent kills it with SIGKILL at random moments, then checks that every acknowledged write is
//! there with the right vector, that no batch is half applied, and that the collection opens,
//! finds every point through its index and through the field indexes (the child saves the index
//! snapshot and the field index file along the way, so kills land in those writes too).
//!
//! The child is this same test binary re-executed with `VECDB_CRASH_CHILD` set, running the
//! `crash_child` test, which does nothing in a normal run.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vecdb::HnswParams;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vecdb::{CollectionConfig, Database, Filter, IndexSpec, Metric, Point, SearchRequest};

const DIM: usize = 8;
const BATCH: u64 = 10;
const ENV_DIR: &str = "VECDB_CRASH_CHILD";
const ENV_RUN: &str = "VECDB_CRASH_RUN";

/// The vector every writer uses for `id`, so the parent can check it bit for bit: pseudo-random
/// (SplitMix64) components in -1..1, distinct for every id, since an HNSW graph over many exact
/// duplicates would make the search check below flaky.
fn vector_for(id: u64) -> Vec<f32> {
    (0..DIM as u64)
        .map(|i| {
            let mut z = id
                .wrapping_mul(DIM as u64)
                .wrapping_add(i)
                .wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn config() -> CollectionConfig {
    CollectionConfig {
        name: "crash".into(),
        dim: DIM,
        metric: Metric::L2,
        index: IndexSpec::Hnsw(HnswParams {
            m: 8,
            ef_construction: 32,
            ef: 32,
        }),
    }
}

/// The child: writes until killed. Run `r` uses ids `r * 1_000_000 + ...`. Every batch inserts
/// `BATCH` points; every third batch also deletes the first point of the previous batch; every
/// seventh batch saves the index snapshot, so kills also land inside snapshot writes.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(ENV_DIR) else {
        return;
    };
    let run: u64 = std::env::var(ENV_RUN).unwrap().parse().unwrap();
    let db = Database::open(dir.as_ref()).unwrap();
    let c = match db.collection("crash") {
        Ok(c) => c,
        Err(_) => db.create_collection(config()).unwrap(),
    };
    println!("READY");
    for batch in 0u64.. {
        let first = run * 1_000_000 + batch * BATCH;
        let pts: Vec<Point> = (first..first + BATCH)
            .map(|id| {
                let meta = serde_json::json!({ "id": id, "batch": first });
                Point::with_metadata(id, vector_for(id), meta)
            })
            .collect();
        println!("BEGIN {first}");
        c.insert(&pts).unwrap();
        println!("ACK INSERT {first}");
        if batch % 3 == 2 {
            let victim = first - BATCH;
            println!("BEGIN DELETE {victim}");
            c.delete(&[victim]).unwrap();
            println!("ACK DELETE {victim}");
        }
        if batch % 7 == 6 {
            c.save_index().unwrap();
        }
    }
}

#[derive(Default)]
struct Model {
    /// Batches acknowledged: all their points must exist (unless deleted after).
    inserted: BTreeSet<u64>,
    deleted: BTreeSet<u64>,
    /// Operations begun but not acknowledged: either outcome is allowed.
    maybe_batch: Vec<u64>,
    maybe_deleted: Vec<u64>,
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    if std::env::var(ENV_DIR).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let mut model = Model::default();
    let started = Instant::now();
    let mut runs = 0;
    while runs < 25 && started.elapsed() < Duration::from_secs(60) {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash::crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV_DIR, dir.path())
            .env(ENV_RUN, runs.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        // Random moments: sometimes during open, mostly while writing.
        std::thread::sleep(Duration::from_millis(rng.gen_range(20..400)));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        apply_log(&mut model, &lines);
        runs += 1;
    }
    println!(
        "{runs} kills in {:?}: {} acknowledged batches, {} acknowledged deletes, {} in flight",
        started.elapsed(),
        model.inserted.len(),
        model.deleted.len(),
        model.maybe_batch.len() + model.maybe_deleted.len()
    );
    assert!(runs >= 10, "only {runs} runs in the time limit");
    assert!(model.inserted.len() >= 20, "too few acknowledged batches");
    verify(dir.path(), &model);
}

fn apply_log(model: &mut Model, lines: &[String]) {
    let mut pending_batch = None;
    let mut pending_delete = None;
    for line in lines {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["BEGIN", first] => pending_batch = Some(first.parse::<u64>().unwrap()),
            ["ACK", "INSERT", first] => {
                model.inserted.insert(first.parse().unwrap());
                pending_batch = None;
            }
            ["BEGIN", "DELETE", id] => pending_delete = Some(id.parse::<u64>().unwrap()),
            ["ACK", "DELETE", id] => {
                model.deleted.insert(id.parse().unwrap());
                pending_delete = None;
            }
            _ => {}
        }
    }
    model.maybe_batch.extend(pending_batch);
    model.maybe_deleted.extend(pending_delete);
}

fn verify(dir: &std::path::Path, model: &Model) {
    let db = Database::open(dir).unwrap();
    let c = db.collection("crash").unwrap();
    let mut expected = 0;
    for &first in &model.inserted {
        let ids: Vec<u64> = (first..first + BATCH).collect();
        let got = c.get(&ids).unwrap();
        for id in ids {
            let p = got.iter().find(|p| p.id == id);
            if model.deleted.contains(&id) {
                assert!(p.is_none(), "acknowledged delete of {id} lost");
            } else if model.maybe_deleted.contains(&id) {
                expected += usize::from(p.is_some());
            } else {
                let p = p.unwrap_or_else(|| panic!("acknowledged point {id} lost"));
                assert_eq!(p.vector, vector_for(id));
                expected += 1;
            }
        }
    }
    // An unacknowledged batch is all there or not at all.
    for &first in &model.maybe_batch {
        let n = c
            .get(&(first..first + BATCH).collect::<Vec<_>>())
            .unwrap()
            .len();
        assert!(
            n == 0 || n == BATCH as usize,
            "batch at {first} half applied ({n})"
        );
        expected += n;
    }
    assert_eq!(c.count(), expected);
    // The in-memory state agrees with the points: an exact search restricted to each point by
    // a filter (the exact path) finds it at distance 0, so its slot, vector and metadata are right.
    let mut misses = 0;
    for &first in &model.inserted {
        let id = first + 1;
        if model.deleted.contains(&id) || model.maybe_deleted.contains(&id) {
            continue;
        }
        let only = SearchRequest {
            k: 1,
            filter: Some(Filter::eq("id", id)),
            ..Default::default()
        };
        let hits = c.search(&vector_for(id), &only).unwrap();
        assert_eq!(
            (hits[0].id, hits[0].score),
            (id, 0.0),
            "point {id} wrong in memory"
        );
        // The graph finds it too: every reopen rebuilds the HNSW graph (in parallel when the
        // pool has several threads), and no acknowledged point may be left unreachable.
        let wide = SearchRequest {
            k: 1,
            ef: Some(200),
            ..Default::default()
        };
        misses += usize::from(c.search(&vector_for(id), &wide).unwrap()[0].id != id);
    }
    assert_eq!(
        misses,
        0,
        "{misses} of {} points not found through the index",
        model.inserted.len()
    );
    // The field indexes (rebuilt or loaded, whatever the kill left) agree with the points: a
    // filter on each acknowledged batch finds exactly its surviving points.
    for &first in &model.inserted {
        let req = SearchRequest {
            k: 2 * BATCH as usize,
            filter: Some(Filter::eq("batch", first)),
            ..Default::default()
        };
        let mut got: Vec<u64> = c
            .search(&vector_for(first), &req)
            .unwrap()
            .into_iter()
            .map(|h| h.id)
            .collect();
        got.sort_unstable();
        let stored: Vec<u64> = c
            .get(&(first..first + BATCH).collect::<Vec<_>>())
            .unwrap()
            .into_iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(got, stored, "batch {first} through its filter");
    }
}
