//! Embedding throughput: decode, preprocess, model and end to end, per runtime and thread count.
//!
//! cargo run -p imgsearch-embed --release --features ort --example embed_bench -- \
//!     [--dir DIR] [--limit N] [--threads 1,2] [--runtimes tract,ort] [--batch B] [--json OUT]
//!
//! --batch sets images per model call (0 = each runtime's default: tract 1, ort 8).
//!
//! DIR defaults to ../shared/data/flowers17 beside the repository. Images are listed
//! recursively, sorted, and `limit` of them taken evenly spaced (bench/embed/peer_onnxruntime.py
//! picks the same ones). Each figure is images per second over the whole set, after one
//! warm-up pass of the model.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

use embed::{
    decode_file, default_manifest_path, embed_paths, DecodeLimits, Embedder, RuntimeConfig,
    RuntimeKind,
};
use rayon::prelude::*;

struct Args {
    dir: PathBuf,
    limit: usize,
    threads: Vec<usize>,
    runtimes: Vec<RuntimeKind>,
    batch: usize,
    json: Option<PathBuf>,
}

fn parse_args() -> Result<Args, Box<dyn Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut a = Args {
        dir: root.join("../shared/data/flowers17"),
        limit: 200,
        threads: vec![1, 2],
        runtimes: vec![RuntimeKind::Tract, RuntimeKind::Ort],
        batch: 0,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => a.dir = PathBuf::from(value()?),
            "--limit" => a.limit = value()?.parse()?,
            "--threads" => {
                a.threads = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--runtimes" => {
                a.runtimes = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--batch" => a.batch = value()?.parse()?,
            "--json" => a.json = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(a)
}

/// Image files under `dir`, sorted, `limit` of them evenly spaced.
fn list_images(dir: &Path, limit: usize) -> Result<Vec<PathBuf>, Box<dyn Error>> {
    let mut all = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))? {
            let p = entry?.path();
            if p.is_dir() {
                stack.push(p);
            } else if matches!(
                p.extension()
                    .and_then(|e| e.to_str())
                    .map(str::to_ascii_lowercase)
                    .as_deref(),
                Some("jpg" | "jpeg" | "png" | "webp" | "bmp" | "gif" | "tif" | "tiff")
            ) {
                all.push(p);
            }
        }
    }
    all.sort();
    let n = all.len().min(limit);
    Ok((0..n).map(|i| all[i * all.len() / n].clone()).collect())
}

fn rate(n: usize, start: Instant) -> f64 {
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    let paths = list_images(&args.dir, args.limit)?;
    if paths.is_empty() {
        return Err(format!("no images under {}", args.dir.display()).into());
    }
    let limits = DecodeLimits::default();
    let manifest = default_manifest_path();
    println!("{} images from {}", paths.len(), args.dir.display());
    println!(
        "{:<6} {:>7} {:>10} {:>12} {:>10} {:>12}",
        "rt", "threads", "decode/s", "preprocess/s", "model/s", "end2end/s"
    );
    let mut rows = Vec::new();
    for &threads in &args.threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()?;
        let start = Instant::now();
        let imgs: Vec<_> = pool.install(|| {
            paths
                .par_iter()
                .map(|p| decode_file(p, &limits))
                .collect::<Result<_, _>>()
        })?;
        let decode = rate(imgs.len(), start);
        for &kind in &args.runtimes {
            let cfg = RuntimeConfig {
                kind,
                threads,
                batch: args.batch,
                ..RuntimeConfig::default()
            };
            let e = match Embedder::load(&manifest, &cfg) {
                Ok(e) => e,
                Err(err) => {
                    println!("{:<6} {threads:>7} skipped: {err}", kind.name());
                    continue;
                }
            };
            let pre = e.preprocessor();
            let len = pre.input_len();
            let mut input = vec![0f32; len * imgs.len()];
            let start = Instant::now();
            pool.install(|| {
                input
                    .par_chunks_mut(len)
                    .zip(imgs.par_iter())
                    .try_for_each(|(out, img)| pre.run(&img.rgb, out))
            })?;
            let preprocess = rate(imgs.len(), start);
            e.run_model(
                &input[..len * e.preferred_batch().min(imgs.len())],
                e.preferred_batch().min(imgs.len()),
            )?;
            let start = Instant::now();
            e.run_model(&input, imgs.len())?;
            let model = rate(imgs.len(), start);
            drop(input);
            let start = Instant::now();
            let mut failures = 0;
            embed_paths(&e, &paths, &limits, &mut |_, r| {
                failures += usize::from(r.is_err())
            });
            let end_to_end = rate(paths.len(), start);
            if failures > 0 {
                return Err(format!("{failures} images failed end to end").into());
            }
            println!(
                "{:<6} {threads:>7} {decode:>10.1} {preprocess:>12.1} {model:>10.1} {end_to_end:>12.1}",
                kind.name()
            );
            rows.push(format!(
                "{{\"runtime\":\"{}\",\"threads\":{threads},\"batch\":{},\"images\":{},\"decode\":{decode:.2},\"preprocess\":{preprocess:.2},\"model\":{model:.2},\"end_to_end\":{end_to_end:.2}}}",
                kind.name(),
                e.preferred_batch(),
                paths.len()
            ));
        }
    }
    if let Some(out) = args.json {
        std::fs::write(&out, format!("[{}]\n", rows.join(",\n")))?;
    }
    Ok(())
}
