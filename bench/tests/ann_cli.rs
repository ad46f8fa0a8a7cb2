//! Drives the `ann` binary on a tiny generated TEXMEX dataset: the flat index must find the
//! exact neighbours, HNSW nearly all of them, and every line must carry the documented fields.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use rand::{Rng, SeedableRng};

const DIM: usize = 8;
const BASE: usize = 300;
const QUERIES: usize = 25;
const GT_K: usize = 20;

fn write_vecs(path: &Path, rows: &[Vec<[u8; 4]>]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for row in rows {
        f.write_all(&(row.len() as i32).to_le_bytes()).unwrap();
        for v in row {
            f.write_all(v).unwrap();
        }
    }
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Writes base/query/ground truth (exact, by brute force) into `dir`.
fn make_dataset(dir: &Path) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut gen = |n: usize| -> Vec<Vec<f32>> {
        (0..n)
            .map(|_| (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect())
            .collect()
    };
    let base = gen(BASE);
    let queries = gen(QUERIES);
    let to_bytes = |rows: &[Vec<f32>]| -> Vec<Vec<[u8; 4]>> {
        rows.iter()
            .map(|r| r.iter().map(|x| x.to_le_bytes()).collect())
            .collect()
    };
    let gt: Vec<Vec<[u8; 4]>> = queries
        .iter()
        .map(|q| {
            let mut ids: Vec<usize> = (0..BASE).collect();
            ids.sort_by(|&a, &b| l2(q, &base[a]).total_cmp(&l2(q, &base[b])));
            ids[..GT_K]
                .iter()
                .map(|&i| (i as i32).to_le_bytes())
                .collect()
        })
        .collect();
    write_vecs(&dir.join("base.fvecs"), &to_bytes(&base));
    write_vecs(&dir.join("query.fvecs"), &to_bytes(&queries));
    write_vecs(&dir.join("groundtruth.ivecs"), &gt);
}

fn run_ann(dir: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_ann"))
        .arg("--data")
        .arg(dir)
        .args(["--threads", "2", "--repeats", "1"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ann failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn flat_is_exact_and_hnsw_sweeps_ef() {
    let dir = tempfile::tempdir().unwrap();
    make_dataset(dir.path());

    let flat = run_ann(dir.path(), &["--index", "flat"]);
    assert_eq!(flat.len(), 1);
    let rec = &flat[0];
    assert_eq!(rec["library"], "imgsearch");
    assert_eq!(rec["index"], "flat");
    assert_eq!(rec["queries"], QUERIES);
    assert_eq!(rec["threads"], 2);
    assert_eq!(rec["recall_at_10"], 1.0);
    for field in ["qps", "build_seconds", "peak_rss_mb", "data_rss_mb"] {
        assert!(rec[field].as_f64().unwrap() >= 0.0, "{field} in {rec}");
    }
    assert!(rec["qps"].as_f64().unwrap() > 0.0);

    let batched = run_ann(dir.path(), &["--index", "flat", "--query-batch", "0"]);
    assert_eq!(batched[0]["query_batch"], "all");
    assert_eq!(batched[0]["recall_at_10"], 1.0);

    let hnsw = run_ann(
        dir.path(),
        &["--index", "hnsw", "--ef", "10,64", "--queries", "20"],
    );
    assert_eq!(hnsw.len(), 2);
    assert_eq!(hnsw[1]["params"]["ef"], 64);
    assert_eq!(hnsw[1]["queries"], 20);
    assert!(
        hnsw[1]["recall_at_10"].as_f64().unwrap() >= 0.95,
        "{}",
        hnsw[1]
    );
}

#[test]
fn collection_api_gives_the_same_exact_answers() {
    let dir = tempfile::tempdir().unwrap();
    make_dataset(dir.path());
    let lines = run_ann(dir.path(), &["--index", "flat", "--api", "collection"]);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["api"], "collection");
    assert_eq!(lines[0]["recall_at_10"], 1.0);
}

#[test]
fn bad_input_fails_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ann"))
        .arg("--data")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("query.fvecs"));

    make_dataset(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_ann"))
        .arg("--data")
        .arg(dir.path())
        .args(["--k", "30"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("fewer than k"));
}
