//! Measurements shared by the benchmark programs: recall against ground truth and the process's
//! peak resident memory.

use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;
use rayon::ThreadPool;

use crate::texmex::Matrix;

/// What one parameter point's query passes measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    /// Queries per wall-clock second, best pass.
    pub qps: f64,
    /// Queries per CPU second of this process (all threads), best pass; `None` where the
    /// per-thread CPU clocks cannot be read. On a shared machine this is the steadier figure:
    /// time spent waiting for a core that another process holds does not count.
    pub qps_cpu: Option<f64>,
    /// The result ids of the last pass, one list per query, in query order.
    pub results: Vec<Vec<u32>>,
}

/// Runs every query through `search` on `pool`'s threads (all of them busy with queries at once,
/// as a server would be), `repeats` times, and keeps the best figures with the results of the
/// last pass. Best-of-N rather than the mean, because on a shared machine the slower passes
/// measure the neighbours' load rather than the index.
pub fn timed_queries<F>(
    pool: &ThreadPool,
    queries: &Matrix<f32>,
    repeats: usize,
    search: F,
) -> Timing
where
    F: Fn(&[f32]) -> Vec<u32> + Sync,
{
    timed_batches(pool, queries, 1, repeats, |batch| {
        batch.iter().map(|q| search(q)).collect()
    })
}

/// Like [`timed_queries`], but hands `search` `batch` queries per call (0: the whole set, split
/// evenly over the pool's threads), for indexes that answer a batch faster than its queries one
/// by one. `search` returns one id list per query of its batch, in order.
pub fn timed_batches<F>(
    pool: &ThreadPool,
    queries: &Matrix<f32>,
    batch: usize,
    repeats: usize,
    search: F,
) -> Timing
where
    F: Fn(&[&[f32]]) -> Vec<Vec<u32>> + Sync,
{
    let rows: Vec<&[f32]> = (0..queries.len()).map(|i| queries.row(i)).collect();
    let chunk = match batch {
        0 => rows.len().div_ceil(pool.current_num_threads()).max(1),
        n => n,
    };
    let mut timing = Timing {
        qps: 0.0,
        qps_cpu: None,
        results: Vec::new(),
    };
    for _ in 0..repeats.max(1) {
        let cpu_start = process_cpu_seconds();
        let start = Instant::now();
        timing.results = pool.install(|| rows.par_chunks(chunk).flat_map_iter(&search).collect());
        let elapsed = start.elapsed().as_secs_f64();
        timing.qps = timing.qps.max(rows.len() as f64 / elapsed.max(1e-9));
        if let (Some(a), Some(b)) = (cpu_start, process_cpu_seconds()) {
            let qps_cpu = rows.len() as f64 / (b - a).max(1e-9);
            timing.qps_cpu = Some(timing.qps_cpu.map_or(qps_cpu, |q| q.max(qps_cpu)));
        }
    }
    timing
}

/// CPU time consumed so far by this process's live threads, in seconds, from the nanosecond
/// run-time counters in `/proc/self/task/*/schedstat` (first field). Threads that have exited
/// are not counted, which is fine for differences taken while a thread pool stays alive.
pub fn process_cpu_seconds() -> Option<f64> {
    let mut total_ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let text = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total_ns += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total_ns as f64 / 1e9)
}

/// Mean recall@k: for each query, the share of the first `k` ground-truth ids found among the
/// returned ids (only the first `k` returned ids count). This is the id-set recall that hnswlib's
/// and faiss's own benchmarks use; `scripts/peers.py` computes the same.
pub fn recall_at_k(results: &[Vec<u32>], ground_truth: &[&[i32]], k: usize) -> f64 {
    assert_eq!(results.len(), ground_truth.len(), "one result per query");
    if results.is_empty() || k == 0 {
        return 0.0;
    }
    let mut found = 0usize;
    for (got, truth) in results.iter().zip(ground_truth) {
        let truth = &truth[..k.min(truth.len())];
        found += got
            .iter()
            .take(k)
            .filter(|id| truth.contains(&(**id as i32)))
            .count();
    }
    found as f64 / (results.len() * k) as f64
}

/// Peak resident set size of this process in MiB (`VmHWM` in `/proc/self/status`), or `None`
/// where that file does not exist (not Linux).
pub fn peak_rss_mb() -> Option<f64> {
    proc_status_kib(Path::new("/proc/self/status"), "VmHWM:").map(|kib| kib as f64 / 1024.0)
}

/// Current resident set size of this process in MiB (`VmRSS`).
pub fn current_rss_mb() -> Option<f64> {
    proc_status_kib(Path::new("/proc/self/status"), "VmRSS:").map(|kib| kib as f64 / 1024.0)
}

fn proc_status_kib(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    parse_status_kib(&text, key)
}

fn parse_status_kib(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_counts_only_the_first_k_of_each_side() {
        let gt_a = [1, 2, 3, 99];
        let gt_b = [5, 6, 7, 98];
        let truth: Vec<&[i32]> = vec![&gt_a, &gt_b];
        // Query a: 2 of 3 right (99 is beyond k in the truth); query b: all 3 right, the 4th
        // returned id is beyond k and must not count.
        let results = vec![vec![1, 3, 99], vec![7, 6, 5, 98]];
        let r = recall_at_k(&results, &truth, 3);
        assert!((r - 5.0 / 6.0).abs() < 1e-12, "{r}");
        assert_eq!(recall_at_k(&[], &[], 3), 0.0);
    }

    #[test]
    fn timed_queries_returns_results_in_query_order() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let queries = Matrix {
            dim: 2,
            data: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
        };
        let timing = timed_queries(&pool, &queries, 2, |q| vec![q[1] as u32]);
        assert!(timing.qps > 0.0);
        assert_eq!(timing.results, vec![vec![1], vec![3], vec![5]]);
        if cfg!(target_os = "linux") {
            assert!(timing.qps_cpu.unwrap() > 0.0);
        }
    }

    #[test]
    fn timed_batches_keeps_query_order_for_every_batch_size() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let queries = Matrix {
            dim: 1,
            data: (0..7).map(|i| i as f32).collect(),
        };
        let expected: Vec<Vec<u32>> = (0..7).map(|i| vec![i]).collect();
        for batch in [0, 1, 3, 7, 100] {
            let timing = timed_batches(&pool, &queries, batch, 1, |qs| {
                qs.iter().map(|q| vec![q[0] as u32]).collect()
            });
            assert_eq!(timing.results, expected, "batch {batch}");
        }
    }

    #[test]
    fn cpu_clock_advances_with_work() {
        let Some(before) = process_cpu_seconds() else {
            return; // Not Linux: nothing to check.
        };
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(process_cpu_seconds().unwrap() > before, "{x}");
    }

    #[test]
    fn parses_proc_status_lines() {
        let text = "Name:\tann\nVmHWM:\t  204800 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(parse_status_kib(text, "VmHWM:"), Some(204_800));
        assert_eq!(parse_status_kib(text, "VmRSS:"), Some(1024));
        assert_eq!(parse_status_kib(text, "VmSwap:"), None);
        if cfg!(target_os = "linux") {
            assert!(peak_rss_mb().unwrap() > 0.0);
        }
    }
}
