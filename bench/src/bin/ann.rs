//! `ann`: recall@k, QPS, build time and peak memory of imgsearch's vector indexes on a TEXMEX
//! dataset, printed as the same JSON lines as `bench/scripts/peers.py` prints for hnswlib and
//! faiss.
//!
//! One invocation builds one index (one process per index, so that the peak RSS it reports is
//! that index's), then sweeps its search parameter (ef, nprobe or probes) and prints one line
//! per point. By default it drives the index layer directly (`VectorArena` + `AnyIndex`), which is
//! the fair comparison with hnswlib's and faiss's in-memory indexes; `--api collection` goes
//! through the durable `Collection` API instead, storage and all.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use vecdb::{HnswParams, IvfParams, LshParams, RefineParams};

use anyhow::{bail, ensure, Context, Result};
use clap::{Parser, ValueEnum};
use imgsearch_bench::measure::{
    current_rss_mb, peak_rss_mb, process_cpu_seconds, recall_at_k, timed_batches, timed_queries,
    Timing,
};
use imgsearch_bench::texmex::{for_each_row, read_fvecs, read_ivecs, Matrix};
use rayon::ThreadPool;
use serde_json::{json, Value};
use vecdb::index::{AnyIndex, DistanceKind, QueryParams, VectorArena};
use vecdb::{CollectionConfig, Database, IndexSpec, Metric, Point, SearchRequest};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum MetricArg {
    L2,
    Ip,
    Cosine,
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum IndexKind {
    Flat,
    Hnsw,
    Ivf,
    Lsh,
    /// Flat scan of SQ8 codes, exact re-ranking.
    #[value(name = "flat_sq8")]
    FlatSq8,
    /// HNSW walked on SQ8 codes, exact re-ranking (Milvus' HNSW_SQ).
    #[value(name = "hnsw_sq")]
    HnswSq,
    /// IVF lists scanned on SQ8 codes, exact re-ranking (Milvus' IVF_SQ8).
    #[value(name = "ivf_sq8")]
    IvfSq8,
    /// Flat scan of RaBitQ codes, re-ranked by the codes' error bound.
    #[value(name = "flat_rabitq")]
    FlatRabitq,
    /// IVF lists scanned on RaBitQ codes, re-ranked by the error bound (Milvus' IVF_RABITQ).
    #[value(name = "ivf_rabitq")]
    IvfRabitq,
    /// HNSW whose walk skips neighbours ruled out by RaBitQ lower bounds; exact distances.
    #[value(name = "hnsw_rabitq")]
    HnswRabitq,
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum Api {
    /// `VectorArena` + `AnyIndex`, in memory, like the peer libraries.
    Index,
    /// `Database` / `Collection` in a temporary directory: durable inserts, then searches.
    Collection,
}

/// Benchmark one imgsearch index on a TEXMEX directory (base.fvecs, query.fvecs,
/// groundtruth.ivecs).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Directory with base.fvecs, query.fvecs and groundtruth.ivecs.
    #[arg(long)]
    data: PathBuf,
    /// Name recorded in each JSON line (default: the directory's name).
    #[arg(long)]
    dataset: Option<String>,
    /// Metric the ground truth was computed with.
    #[arg(long, value_enum, default_value = "l2")]
    metric: MetricArg,
    #[arg(long, value_enum, default_value = "hnsw")]
    index: IndexKind,
    #[arg(long, value_enum, default_value = "index")]
    api: Api,
    /// HNSW links per node.
    #[arg(long, default_value_t = 16)]
    m: usize,
    /// HNSW candidate list size while building.
    #[arg(long, default_value_t = 200)]
    ef_construction: usize,
    /// HNSW candidate list sizes to sweep at search time.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10,16,24,32,48,64,96,128"
    )]
    ef: Vec<usize>,
    /// IVF lists (k-means centroids).
    #[arg(long, default_value_t = 1024)]
    nlist: usize,
    /// IVF lists probed per query, to sweep.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32,64")]
    nprobe: Vec<usize>,
    /// LSH hash tables.
    #[arg(long, default_value_t = vecdb::index::lsh::DEFAULT_TABLES)]
    lsh_tables: usize,
    /// LSH hash functions (bits) per table.
    #[arg(long, default_value_t = vecdb::index::lsh::DEFAULT_BITS)]
    lsh_bits: usize,
    /// LSH bucket width (L2), in units of the data's typical nearest-neighbour distance.
    #[arg(long, default_value_t = vecdb::index::lsh::DEFAULT_BUCKET_WIDTH)]
    lsh_bucket_width: f32,
    /// LSH extra buckets probed per table, to sweep (0 = only the query's own bucket).
    #[arg(long, value_delimiter = ',', default_value = "0,4,16,64,256")]
    lsh_probes: Vec<usize>,
    /// Use only the first N queries (default: all of them).
    #[arg(long)]
    queries: Option<usize>,
    /// Neighbours per query; recall is measured at this k.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Threads for building and for searching (a rayon pool of this size; searches run this
    /// many queries at once).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Queries per search call through `AnyIndex::search_batch` (0: all of them, split evenly
    /// over the threads); 1, the default, calls `search` once per query, as a server does.
    /// Index API only.
    #[arg(long, default_value_t = 1)]
    query_batch: usize,
    /// Passes over the queries per point; the best QPS is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Append the JSON lines to this file too (they always go to stdout).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Quantised kinds: candidates re-ranked exactly, as a multiple of k (0: no re-ranking,
    /// the codes' approximate distances are returned).
    #[arg(long, default_value_t = vecdb::index::quant::DEFAULT_REFINE_K)]
    refine_k: f32,
}

impl Args {
    fn metric(&self) -> Metric {
        match self.metric {
            MetricArg::L2 => Metric::L2,
            MetricArg::Ip => Metric::Ip,
            MetricArg::Cosine => Metric::Cosine,
        }
    }

    /// The index spec for building; its search parameter is the first of the sweep.
    fn spec(&self) -> IndexSpec {
        match self.index {
            IndexKind::Flat => IndexSpec::Flat,
            IndexKind::Hnsw => IndexSpec::Hnsw(HnswParams {
                m: self.m,
                ef_construction: self.ef_construction,
                ef: self.ef[0],
            }),
            IndexKind::Ivf => IndexSpec::Ivf(IvfParams {
                nlist: self.nlist,
                nprobe: self.nprobe[0],
            }),
            IndexKind::Lsh => IndexSpec::Lsh(LshParams {
                tables: self.lsh_tables,
                bits: self.lsh_bits,
                probes: self.lsh_probes[0],
                bucket_width: self.lsh_bucket_width,
            }),
            IndexKind::FlatSq8 => IndexSpec::FlatSq8(RefineParams {
                refine: self.refine(),
                refine_k: self.spec_refine_k(),
            }),
            IndexKind::HnswSq => IndexSpec::HnswSq {
                hnsw: HnswParams {
                    m: self.m,
                    ef_construction: self.ef_construction,
                    ef: self.ef[0],
                },
                rerank: RefineParams {
                    refine: self.refine(),
                    refine_k: self.spec_refine_k(),
                },
            },
            IndexKind::IvfSq8 => IndexSpec::IvfSq8 {
                ivf: IvfParams {
                    nlist: self.nlist,
                    nprobe: self.nprobe[0],
                },
                rerank: RefineParams {
                    refine: self.refine(),
                    refine_k: self.spec_refine_k(),
                },
            },
            IndexKind::FlatRabitq => IndexSpec::FlatRabitq {
                refine: self.refine(),
            },
            IndexKind::IvfRabitq => IndexSpec::IvfRabitq {
                ivf: IvfParams {
                    nlist: self.nlist,
                    nprobe: self.nprobe[0],
                },
                refine: self.refine(),
            },
            IndexKind::HnswRabitq => IndexSpec::HnswRabitq(HnswParams {
                m: self.m,
                ef_construction: self.ef_construction,
                ef: self.ef[0],
            }),
        }
    }

    /// `--refine-k 0` turns re-ranking off.
    fn refine(&self) -> bool {
        self.refine_k != 0.0
    }

    fn spec_refine_k(&self) -> f32 {
        if self.refine() {
            self.refine_k
        } else {
            vecdb::index::quant::DEFAULT_REFINE_K
        }
    }

    /// The `refine_k` recorded in the JSON params of quantised runs (0 when off).
    fn refine_json(&self, mut p: Value) -> Value {
        if let Value::Object(map) = &mut p {
            map.insert("quantization".to_owned(), json!("sq8"));
            map.insert("refine_k".to_owned(), json!(self.refine_k));
        }
        p
    }

    /// The JSON params of RaBitQ runs: re-ranking by the error bound, or none (`--refine-k 0`).
    fn rabitq_json(&self, mut p: Value) -> Value {
        if let Value::Object(map) = &mut p {
            map.insert("quantization".to_owned(), json!("rabitq"));
            map.insert("refine".to_owned(), json!(self.refine()));
        }
        p
    }

    /// The sweep: one entry per measured point, its JSON params and its query parameters.
    fn sweep(&self) -> Vec<(Value, QueryParams)> {
        let params = |ef, nprobe, probes| QueryParams {
            ef,
            nprobe,
            probes,
            refine_k: None,
        };
        // The structure decides what is swept; the codes only add their fields to the params.
        let points: Vec<(Value, QueryParams)> = match self.index {
            IndexKind::Flat | IndexKind::FlatSq8 | IndexKind::FlatRabitq => {
                vec![(json!({}), params(None, None, None))]
            }
            IndexKind::Hnsw | IndexKind::HnswSq | IndexKind::HnswRabitq => self
                .ef
                .iter()
                .map(|&ef| {
                    let p = json!({"m": self.m, "ef_construction": self.ef_construction, "ef": ef});
                    (p, params(Some(ef), None, None))
                })
                .collect(),
            IndexKind::Ivf | IndexKind::IvfSq8 | IndexKind::IvfRabitq => self
                .nprobe
                .iter()
                .map(|&n| {
                    let p = json!({"nlist": self.nlist, "nprobe": n});
                    (p, params(None, Some(n), None))
                })
                .collect(),
            IndexKind::Lsh => self
                .lsh_probes
                .iter()
                .map(|&n| {
                    let p = json!({"tables": self.lsh_tables, "bits": self.lsh_bits,
                        "bucket_width": self.lsh_bucket_width, "probes": n});
                    (p, params(None, None, Some(n)))
                })
                .collect(),
        };
        points
            .into_iter()
            .map(|(p, q)| {
                let p = match self.index {
                    IndexKind::FlatSq8 | IndexKind::HnswSq | IndexKind::IvfSq8 => {
                        self.refine_json(p)
                    }
                    IndexKind::FlatRabitq | IndexKind::HnswRabitq | IndexKind::IvfRabitq => {
                        self.rabitq_json(p)
                    }
                    IndexKind::Flat | IndexKind::Hnsw | IndexKind::Ivf | IndexKind::Lsh => p,
                };
                (p, q)
            })
            .collect()
    }
}

/// What one build measured, shared by every point of its sweep.
struct BuildFacts {
    build_seconds: f64,
    /// CPU seconds of all threads during the build (the Collection API's include its IO waits
    /// only as far as they burn CPU).
    build_cpu_seconds: Option<f64>,
    data_rss_mb: f64,
    index_memory_mb: Option<f64>,
}

/// Queries and their ground truth, loaded before the base so that they are part of the data
/// resident-set figure.
struct Workload {
    queries: Matrix<f32>,
    ground_truth: Matrix<i32>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        args.k > 0 && args.threads > 0,
        "--k and --threads must be positive"
    );
    ensure!(
        !args.ef.is_empty() && !args.nprobe.is_empty() && !args.lsh_probes.is_empty(),
        "sweep lists must not be empty"
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .context("building the thread pool")?;
    ensure!(
        args.query_batch == 1 || args.api == Api::Index,
        "--query-batch applies to --api index only"
    );
    let workload = load_workload(&args)?;
    match args.api {
        Api::Index => run_index_api(&args, &pool, &workload),
        Api::Collection => run_collection_api(&args, &pool, &workload),
    }
}

fn load_workload(args: &Args) -> Result<Workload> {
    let mut queries = read_fvecs(&args.data.join("query.fvecs"), args.queries)?;
    let ground_truth = read_ivecs(&args.data.join("groundtruth.ivecs"), args.queries)?;
    ensure!(!queries.is_empty(), "no queries in {}", args.data.display());
    ensure!(
        ground_truth.len() == queries.len(),
        "{} queries but {} ground-truth rows",
        queries.len(),
        ground_truth.len()
    );
    ensure!(
        ground_truth.dim >= args.k,
        "ground truth has {} neighbours per query, fewer than k = {}",
        ground_truth.dim,
        args.k
    );
    if matches!(args.metric, MetricArg::Cosine) {
        // The Collection normalises cosine vectors before they reach the index; at the index
        // layer the harness must do it, for the base and the queries alike.
        for row in queries.data.chunks_mut(queries.dim) {
            normalise(row);
        }
    }
    Ok(Workload {
        queries,
        ground_truth,
    })
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Streams base.fvecs into `push`, one decoded (and for cosine normalised) row at a time.
fn stream_base(args: &Args, mut push: impl FnMut(&[f32])) -> Result<usize> {
    let cosine = matches!(args.metric, MetricArg::Cosine);
    let mut row = Vec::new();
    let n = for_each_row(&args.data.join("base.fvecs"), None, |raw| {
        row.clear();
        row.extend(raw.iter().map(|b| f32::from_le_bytes(*b)));
        if cosine {
            normalise(&mut row);
        }
        push(&row);
    })?;
    Ok(n)
}

fn run_index_api(args: &Args, pool: &ThreadPool, work: &Workload) -> Result<()> {
    let mut arena: Option<VectorArena> = None;
    stream_base(args, |row| {
        arena
            .get_or_insert_with(|| VectorArena::new(row.len()))
            .push(row);
    })?;
    let Some(arena) = arena else {
        bail!("base.fvecs is empty");
    };
    ensure!(
        arena.dim() == work.queries.dim,
        "base dimension {} differs from query dimension {}",
        arena.dim(),
        work.queries.dim
    );
    let data_rss_mb = current_rss_mb().unwrap_or(0.0);
    let spec = args.spec();
    spec.validate(arena.dim())
        .map_err(|reason| anyhow::anyhow!("invalid index parameters: {reason}"))?;
    let slots: Vec<u32> = (0..arena.len() as u32).collect();
    let kind = DistanceKind::from(args.metric());
    eprintln!(
        "# imgsearch {:?}: building over {} vectors of dimension {}",
        args.index,
        arena.len(),
        arena.dim()
    );
    let cpu_start = process_cpu_seconds();
    let start = Instant::now();
    let index = pool.install(|| {
        let mut index = AnyIndex::new(&spec, arena.dim(), kind, args.seed);
        index.build(&arena, &slots);
        index
    });
    let facts = BuildFacts {
        build_seconds: start.elapsed().as_secs_f64(),
        build_cpu_seconds: cpu_since(cpu_start),
        data_rss_mb,
        index_memory_mb: Some(index.memory_bytes() as f64 / (1 << 20) as f64),
    };
    for (params_json, params) in args.sweep() {
        index
            .validate_params(&params)
            .map_err(|reason| anyhow::anyhow!("invalid search parameters: {reason}"))?;
        let ids = |hits: Vec<(u32, f32)>| hits.into_iter().map(|(slot, _)| slot).collect();
        let timing = if args.query_batch == 1 {
            timed_queries(pool, &work.queries, args.repeats, |q| {
                ids(index.search(&arena, q, args.k, &params, &|_| true))
            })
        } else {
            timed_batches(pool, &work.queries, args.query_batch, args.repeats, |qs| {
                let hits = index.search_batch(&arena, qs, args.k, &params, &|_| true);
                hits.into_iter().map(ids).collect()
            })
        };
        // Slots were pushed in file order, so slot i is base row i, the ground truth's id.
        emit(args, work, &facts, params_json, &timing)?;
    }
    Ok(())
}

fn run_collection_api(args: &Args, pool: &ThreadPool, work: &Workload) -> Result<()> {
    const BATCH: usize = 1000;
    let dir = tempfile::tempdir().context("creating a temporary database directory")?;
    let db = Database::open(dir.path()).context("opening the database")?;
    let dim = work.queries.dim;
    let collection = db
        .create_collection(CollectionConfig {
            name: "bench".to_owned(),
            dim,
            metric: args.metric(),
            index: args.spec(),
        })
        .context("creating the collection")?;
    eprintln!("# imgsearch {:?} through the Collection API", args.index);
    // Decode the whole base before timing, so that the build time is the database's only.
    let mut points = Vec::new();
    stream_base(args, |row| {
        points.push(Point::new(points.len() as u64, row.to_vec()))
    })?;
    let data_rss_mb = current_rss_mb().unwrap_or(0.0);
    let cpu_start = process_cpu_seconds();
    let start = Instant::now();
    pool.install(|| -> Result<()> {
        for batch in points.chunks(BATCH) {
            collection.insert(batch).context("inserting points")?;
        }
        collection.save_index().context("saving the index")?;
        Ok(())
    })?;
    drop(points);
    let facts = BuildFacts {
        build_seconds: start.elapsed().as_secs_f64(),
        build_cpu_seconds: cpu_since(cpu_start),
        data_rss_mb,
        index_memory_mb: None,
    };
    for (params_json, params) in args.sweep() {
        let request = SearchRequest {
            k: args.k,
            ef: params.ef,
            nprobe: params.nprobe,
            probes: params.probes,
            ..Default::default()
        };
        // A failed search is a bug in the database, not a measurement: stop loudly.
        let search = |q: &[f32]| -> Vec<u32> {
            let hits = collection
                .search(q, &request)
                .unwrap_or_else(|e| panic!("search failed: {e}"));
            hits.into_iter().map(|h| h.id as u32).collect()
        };
        let timing = timed_queries(pool, &work.queries, args.repeats, search);
        emit(args, work, &facts, params_json, &timing)?;
    }
    Ok(())
}

fn cpu_since(start: Option<f64>) -> Option<f64> {
    Some(process_cpu_seconds()? - start?)
}

fn index_name(kind: IndexKind) -> &'static str {
    match kind {
        IndexKind::Flat => "flat",
        IndexKind::Hnsw => "hnsw",
        IndexKind::Ivf => "ivf",
        IndexKind::Lsh => "lsh",
        IndexKind::FlatSq8 => "flat_sq8",
        IndexKind::HnswSq => "hnsw_sq",
        IndexKind::IvfSq8 => "ivf_sq8",
        IndexKind::FlatRabitq => "flat_rabitq",
        IndexKind::IvfRabitq => "ivf_rabitq",
        IndexKind::HnswRabitq => "hnsw_rabitq",
    }
}

fn dataset_name(data: &Path) -> String {
    data.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| data.display().to_string())
}

fn emit(
    args: &Args,
    work: &Workload,
    facts: &BuildFacts,
    params: Value,
    timing: &Timing,
) -> Result<()> {
    let truth: Vec<&[i32]> = (0..work.ground_truth.len())
        .map(|i| work.ground_truth.row(i))
        .collect();
    let recall = recall_at_k(&timing.results, &truth, args.k);
    let round = |x: f64, places: i32| (x * 10f64.powi(places)).round() / 10f64.powi(places);
    let mut record = json!({
        "library": "imgsearch",
        "version": env!("CARGO_PKG_VERSION"),
        "index": index_name(args.index),
        "api": match args.api { Api::Index => "index", Api::Collection => "collection" },
        "dataset": args.dataset.clone().unwrap_or_else(|| dataset_name(&args.data)),
        "metric": format!("{:?}", args.metric).to_lowercase(),
        "params": params,
        "threads": args.threads,
        "queries": work.queries.len(),
        "k": args.k,
        "qps": round(timing.qps, 1),
        "build_seconds": round(facts.build_seconds, 3),
        "peak_rss_mb": round(peak_rss_mb().unwrap_or(0.0), 1),
        "data_rss_mb": round(facts.data_rss_mb, 1),
        "kernel": vecdb::distance::selected_kernel_name(),
    });
    let obj = record.as_object_mut().expect("a JSON object");
    obj.insert(format!("recall_at_{}", args.k), json!(round(recall, 5)));
    if args.query_batch != 1 {
        let batch = match args.query_batch {
            0 => json!("all"),
            n => json!(n),
        };
        obj.insert("query_batch".to_owned(), batch);
    }
    if let Some(c) = facts.build_cpu_seconds {
        obj.insert("build_cpu_seconds".to_owned(), json!(round(c, 3)));
    }
    if let Some(q) = timing.qps_cpu {
        obj.insert("qps_cpu".to_owned(), json!(round(q, 1)));
    }
    if let Some(mb) = facts.index_memory_mb {
        obj.insert("index_memory_mb".to_owned(), json!(round(mb, 1)));
    }
    let line = serde_json::to_string(&record)?;
    println!("{line}");
    if let Some(path) = &args.out {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(f, "{line}")?;
    }
    Ok(())
}
