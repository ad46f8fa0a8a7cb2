//! Measures what the field indexes cost a fresh process: the first filtered search (which loads
//! them) and the first write, with the metadata `bench/scale` stores per photo (the engine's
//! `point_metadata` of its synthetic records: a unique path and hash per photo, a folder per
//! thousand, one tag of a hundred, a date). Vectors are 8-d and the index flat, since the field
//! indexes do not depend on them; `bench/scale/run.sh` measures the whole engine.
//!
//! ```sh
//! cargo run --release -p imgsearch-vecdb --example fields_scale -- build /tmp/fs 300000
//! cargo run --release -p imgsearch-vecdb --example fields_scale -- search /tmp/fs   # fresh process
//! cargo run --release -p imgsearch-vecdb --example fields_scale -- insert /tmp/fs   # fresh process
//! ```
//!
//! `search` and `insert` each print one JSON line: wall milliseconds of the first filtered
//! search (a tag, 1 % of the points) or of a one-point insert, the process's anonymous resident
//! memory after opening and after the operation (`RssAnon`), and the field index's heap estimate.

use std::path::Path;
use std::time::Instant;

use serde_json::{json, Value};
use vecdb::{CollectionConfig, Database, Filter, IndexSpec, Metric, Point, SearchRequest};

const DIM: usize = 8;
const BATCH: u64 = 5_000;
const TAGS: u64 = 100;

/// The metadata `bench/scale` stores for synthetic photo `i` (see `engine::point_metadata`).
fn metadata(i: u64) -> Value {
    let folder = format!("/photos/{:04}", i / 1000);
    let tag = format!("t{}", i % TAGS);
    let mtime_ns = 1_600_000_000_000_000_000i64 + i as i64 * 1_000_000_000;
    json!({
        "path": format!("{folder}/img{i:08}.jpg"),
        "folder": folder,
        "dirs": [folder, "/photos", "/"],
        "size": 2_000_000 + (i % 1000) * 1000,
        "mtime": mtime_ns.div_euclid(1_000_000_000),
        "mtime_ns": mtime_ns,
        "width": 4000,
        "height": 3000,
        "taken": format!("2020-{:02}-{:02}T12:00:00Z", 1 + i % 12, 1 + i % 28),
        "tags": [tag],
        "tag_scores": {tag.clone(): 0.9},
        "hash": format!("{:064x}", u128::from(i) * 0x9E37_79B9_7F4A_7C15),
        "model": "efficientnet-lite0",
    })
}

fn vector(i: u64) -> Vec<f32> {
    (0..DIM as u64)
        .map(|d| ((i * 31 + d * 17) % 1000) as f32 / 1000.0)
        .collect()
}

/// A `/proc/self/status` field in MiB.
fn status_mb(key: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some((kb / 1024.0 * 10.0).round() / 10.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: fields_scale build DIR POINTS | search DIR | insert DIR";
    let (mode, dir) = match (args.get(1), args.get(2)) {
        (Some(m), Some(d)) => (m.as_str(), Path::new(d)),
        _ => return Err(usage.into()),
    };
    match mode {
        "build" => {
            let n: u64 = args.get(3).ok_or(usage)?.parse()?;
            let db = Database::open(dir)?;
            let c = db.create_collection(CollectionConfig {
                name: "images".into(),
                dim: DIM,
                metric: Metric::L2,
                index: IndexSpec::Flat,
            })?;
            let t = Instant::now();
            let mut from = 0;
            while from < n {
                let to = (from + BATCH).min(n);
                let points: Vec<Point> = (from..to)
                    .map(|i| Point::with_metadata(i + 1, vector(i), metadata(i)))
                    .collect();
                c.insert(&points)?;
                from = to;
            }
            c.save_index()?;
            eprintln!("built {n} points in {:.1} s", t.elapsed().as_secs_f64());
        }
        "search" | "insert" => {
            let t = Instant::now();
            let db = Database::open(dir)?;
            let c = db.collection("images")?;
            let open_ms = t.elapsed().as_secs_f64() * 1e3;
            let open_anon = status_mb("RssAnon:");
            let t = Instant::now();
            if mode == "search" {
                let req = SearchRequest {
                    filter: Some(Filter::from_json(
                        &json!({"eq": {"field": "tags", "value": "t7"}}),
                    )?),
                    ..SearchRequest::new(10)
                };
                let hits = c.search(&vector(7), &req)?;
                if hits.is_empty() {
                    return Err("the filtered search found nothing".into());
                }
            } else {
                // A new id each run, past every point `build` wrote.
                let id = 1_000_000_000 + std::process::id() as u64;
                c.insert(&[Point::with_metadata(id, vector(id), metadata(id))])?;
            }
            let op_ms = t.elapsed().as_secs_f64() * 1e3;
            let stats = c.stats()?;
            println!(
                "{}",
                json!({
                    "mode": mode,
                    "points": stats.points,
                    "open_ms": (open_ms * 10.0).round() / 10.0,
                    "first_ms": (op_ms * 10.0).round() / 10.0,
                    "open_anon_rss_mb": open_anon,
                    "anon_rss_mb": status_mb("RssAnon:"),
                    "peak_rss_mb": status_mb("VmHWM:"),
                    "field_index_mb": (stats.field_index_bytes as f64 / 1048576.0 * 10.0).round() / 10.0,
                    "fields_snap_mb": std::fs::metadata(dir.join("images/fields.snap"))
                        .map(|m| (m.len() as f64 / 1048576.0 * 10.0).round() / 10.0)
                        .ok(),
                })
            );
        }
        _ => return Err(usage.into()),
    }
    Ok(())
}
