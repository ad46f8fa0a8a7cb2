//! HNSW on a TEXMEX-layout data set (default: fashion-mnist-784-euclidean as prepared by
//! `bench/prepare-fashion-mnist.sh`): build time, then recall@10 and single-thread QPS per ef.
//! This is the quick loop for tuning the index; `bench/run-ann.sh` is the side-by-side
//! comparison with the peer libraries.
//!
//! `cargo bench -p imgsearch-vecdb --bench hnsw_fmnist -- [DATA_DIR] [QUERIES] [EF,EF,...]`
//! Build threads follow rayon (`RAYON_NUM_THREADS`); queries always run on one thread.
//! Without the data directory it prints a note and exits successfully (CI has no data).

use std::path::{Path, PathBuf};
use std::time::Instant;
use vecdb::index::{AnyIndex, DistanceKind, IndexSpec, QueryParams, VectorArena};
use vecdb::HnswParams;

fn read_vecs(path: &Path, elem_is_float: bool) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let d = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        pos += 4;
        let v = bytes[pos..pos + 4 * d]
            .chunks_exact(4)
            .map(|c| {
                let raw: [u8; 4] = c.try_into().unwrap();
                if elem_is_float {
                    f32::from_le_bytes(raw)
                } else {
                    i32::from_le_bytes(raw) as f32
                }
            })
            .collect();
        out.push(v);
        pos += 4 * d;
    }
    out
}

/// CPU time of this thread so far (Linux `/proc/thread-self/schedstat`, in ns), or NaN when not
/// available. On a loaded machine, queries per CPU-second are far steadier than wall-clock QPS.
fn thread_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns / 1e9)
}

/// CPU time of the whole process (user + system, from `/proc/self/stat`), or NaN.
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 11 and 12 after the name.
    let tick = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok());
    tick(11)
        .zip(tick(12))
        .map_or(f64::NAN, |(u, s)| (u + s) / 100.0)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let dir = PathBuf::from(args.first().cloned().unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../bench/data/fashion-mnist-784-euclidean"
        )
        .into()
    }));
    if !dir.join("base.fvecs").exists() {
        eprintln!(
            "no data at {} (run bench/prepare-fashion-mnist.sh)",
            dir.display()
        );
        return;
    }
    let nq: usize = args
        .get(1)
        .map_or(2000, |s| s.parse().expect("query count"));
    let efs: Vec<usize> = args
        .get(2)
        .map_or("10,16,24,32,48,64".into(), |s| s.clone())
        .split(',')
        .map(|s| s.parse().expect("ef"))
        .collect();
    let base = read_vecs(&dir.join("base.fvecs"), true);
    let queries = read_vecs(&dir.join("query.fvecs"), true);
    let gt = read_vecs(&dir.join("groundtruth.ivecs"), false);
    let dim = base[0].len();
    let mut arena = VectorArena::new(dim);
    for v in &base {
        arena.push(v);
    }
    let spec = IndexSpec::Hnsw(HnswParams {
        m: 16,
        ef_construction: 200,
        ef: 64,
    });
    // HNSW_CACHE=path reuses a saved graph, to iterate on search speed without rebuilding.
    let cache = std::env::var_os("HNSW_CACHE").map(PathBuf::from);
    let t = Instant::now();
    let cpu = process_cpu_seconds();
    let index = match cache.as_ref().filter(|p| p.exists()) {
        Some(p) => {
            let bytes = std::fs::read(p).expect("read cache");
            AnyIndex::from_bytes(&spec, dim, DistanceKind::L2Squared, &bytes).expect("cache")
        }
        None => {
            let mut index = AnyIndex::new(&spec, dim, DistanceKind::L2Squared, 42);
            let slots: Vec<u32> = (0..base.len() as u32).collect();
            index.build(&arena, &slots);
            if let Some(p) = &cache {
                std::fs::write(p, index.to_bytes()).expect("write cache");
            }
            index
        }
    };
    println!(
        "kernel {} | build {} points x {dim}: {:.2} s ({:.2} CPU-s) with {} rayon threads | index {:.1} MB",
        vecdb::distance::selected_kernel_name(),
        base.len(),
        t.elapsed().as_secs_f64(),
        process_cpu_seconds() - cpu,
        rayon::current_num_threads(),
        index.memory_bytes() as f64 / 1e6
    );
    let nq = nq.min(queries.len());
    if std::env::var_os("FLAT").is_some() {
        flat(&arena, &queries[..nq], &gt);
    }
    for ef in efs {
        let params = QueryParams {
            ef: Some(ef),
            ..Default::default()
        };
        let mut best = f64::INFINITY;
        let mut best_cpu = f64::INFINITY;
        let mut hits = 0usize;
        for _ in 0..3 {
            hits = 0;
            let cpu = thread_cpu_seconds();
            let t = Instant::now();
            for (q, truth) in queries[..nq].iter().zip(&gt) {
                let got = index.search(&arena, q, 10, &params, &|_| true);
                hits += got
                    .iter()
                    .filter(|(s, _)| truth[..10].contains(&(*s as f32)))
                    .count();
            }
            best = best.min(t.elapsed().as_secs_f64());
            best_cpu = best_cpu.min(thread_cpu_seconds() - cpu);
        }
        println!(
            "ef {ef:4}: recall@10 {:.4}  QPS {:.0}  QPS per CPU-second {:.0}",
            hits as f64 / (10 * nq) as f64,
            nq as f64 / best,
            nq as f64 / best_cpu
        );
    }
}

/// Exact search one query at a time and in one batch, with recall (1.0 unless broken).
fn flat(arena: &VectorArena, queries: &[Vec<f32>], gt: &[Vec<f32>]) {
    let mut index = AnyIndex::new(&IndexSpec::Flat, arena.dim(), DistanceKind::L2Squared, 0);
    index.build(arena, &(0..arena.len() as u32).collect::<Vec<_>>());
    let p = QueryParams::default();
    let recall = |res: &[Vec<(u32, f32)>]| {
        let hits: usize = res
            .iter()
            .zip(gt)
            .map(|(r, t)| {
                r.iter()
                    .filter(|(s, _)| t[..10].contains(&(*s as f32)))
                    .count()
            })
            .sum();
        hits as f64 / (10 * res.len()) as f64
    };
    let single_n = queries.len().min(200);
    let cpu = thread_cpu_seconds();
    let t = Instant::now();
    let res: Vec<_> = queries[..single_n]
        .iter()
        .map(|q| index.search(arena, q, 10, &p, &|_| true))
        .collect();
    println!(
        "flat one by one ({single_n} queries): recall {:.4}  QPS {:.0}  QPS per CPU-second {:.0}",
        recall(&res),
        single_n as f64 / t.elapsed().as_secs_f64(),
        single_n as f64 / (thread_cpu_seconds() - cpu)
    );
    let refs: Vec<&[f32]> = queries.iter().map(Vec::as_slice).collect();
    let cpu = thread_cpu_seconds();
    let t = Instant::now();
    let res = index.search_batch(arena, &refs, 10, &p, &|_| true);
    println!(
        "flat batch ({} queries): recall {:.4}  QPS {:.0}  QPS per CPU-second {:.0}",
        refs.len(),
        recall(&res),
        refs.len() as f64 / t.elapsed().as_secs_f64(),
        refs.len() as f64 / (thread_cpu_seconds() - cpu)
    );
}
