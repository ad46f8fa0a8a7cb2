//! `embed_fmnist`: the fashion-mnist-1280-cosine data set, real image embeddings for the ANN
//! benchmark. Driven by `bench/prepare-fashion-mnist-1280.sh`; see `bench/README.md`.
//!
//! Reads the 60,000 training and 10,000 test images of fashion-mnist from the TEXMEX files that
//! `bench/prepare-fashion-mnist.sh` writes (raw pixels as floats), turns each 28x28 grey image
//! into an RGB image, embeds it with a model (the default one unless told otherwise) exactly as
//! `imgsearch index` would (the model's own preprocessing, unit length), and writes the vectors
//! as `base.fvecs` and `query.fvecs`, with the 100 exact nearest neighbours of every query by
//! cosine (inner product of unit vectors) as `groundtruth.ivecs`. Each part is skipped when its
//! file is already there, so an interrupted run resumes with what is left.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use clap::Parser;
use embed::{DecodedImage, Embedder, RuntimeConfig};
use image::{Rgb, RgbImage};
use imgsearch_bench::texmex::{read_fvecs, write_fvecs, write_ivecs, Matrix};
use vecdb::index::{AnyIndex, DistanceKind, IndexSpec, QueryParams, VectorArena};

/// Ground-truth neighbours per query, as ann-benchmarks stores them.
const GT_K: usize = 100;
/// Images per model call.
const BATCH: usize = 64;

#[derive(Parser, Debug)]
#[command(about = "Embeds fashion-mnist with a model into a TEXMEX data set (see bench/README.md)")]
struct Args {
    /// The fashion-mnist-784-euclidean folder (base.fvecs and query.fvecs of raw pixels)
    #[arg(long)]
    from: PathBuf,
    /// The folder to write base.fvecs, query.fvecs and groundtruth.ivecs into
    #[arg(long)]
    out: PathBuf,
    /// Model manifest [the default model]
    #[arg(long)]
    model: Option<PathBuf>,
    /// Inference threads (0: every core)
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let manifest = args.model.unwrap_or_else(embed::default_manifest_path);
    let runtime = RuntimeConfig {
        threads: args.threads,
        ..RuntimeConfig::default()
    };
    let embedder = Embedder::load(&manifest, &runtime)
        .with_context(|| format!("cannot load the model {}", manifest.display()))?;
    for part in ["base", "query"] {
        let out = args.out.join(format!("{part}.fvecs"));
        if out.exists() {
            eprintln!("{} exists, kept", out.display());
            continue;
        }
        let pixels = read_fvecs(&args.from.join(format!("{part}.fvecs")), None)?;
        ensure!(
            pixels.dim == 784,
            "expected 28x28 images, got rows of {}",
            pixels.dim
        );
        let vectors = embed_all(&embedder, &pixels, part)?;
        // Written under another name and renamed, so that a killed run leaves no partial file
        // that the next run would take as done.
        let tmp = out.with_extension("fvecs.partial");
        write_fvecs(&tmp, embedder.dim(), &vectors)?;
        std::fs::rename(&tmp, &out)?;
    }
    let gt = args.out.join("groundtruth.ivecs");
    if !gt.exists() {
        let base = read_fvecs(&args.out.join("base.fvecs"), None)?;
        let queries = read_fvecs(&args.out.join("query.fvecs"), None)?;
        let truth = ground_truth(&base, &queries);
        let tmp = gt.with_extension("ivecs.partial");
        write_ivecs(&tmp, GT_K, &truth)?;
        std::fs::rename(&tmp, &gt)?;
    }
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// Embeds every 28x28 image of `pixels`, in order, showing progress.
fn embed_all(embedder: &Embedder, pixels: &Matrix<f32>, part: &str) -> Result<Vec<f32>> {
    let n = pixels.len();
    let start = Instant::now();
    let mut out = Vec::with_capacity(n * embedder.dim());
    for first in (0..n).step_by(BATCH) {
        let images: Vec<DecodedImage> = (first..(first + BATCH).min(n))
            .map(|i| to_image(pixels.row(i), &format!("{part} {i}")))
            .collect();
        for e in embedder.embed_batch(&images)? {
            out.extend_from_slice(&e.vector);
        }
        let done = (first + BATCH).min(n);
        if done % (BATCH * 50) == 0 || done == n {
            let rate = done as f64 / start.elapsed().as_secs_f64();
            eprintln!("{part}: {done}/{n} images, {rate:.0}/s");
        }
    }
    Ok(out)
}

/// A grey 28x28 image (pixel values 0..=255 as floats) as the RGB image a decoder would give.
fn to_image(row: &[f32], source: &str) -> DecodedImage {
    let rgb = RgbImage::from_fn(28, 28, |x, y| {
        let v = row[(y * 28 + x) as usize].clamp(0.0, 255.0) as u8;
        Rgb([v, v, v])
    });
    DecodedImage {
        rgb,
        source: source.to_owned(),
        exif_taken: None,
    }
}

/// The `GT_K` nearest base rows of every query by inner product (the vectors are unit length),
/// by exact search.
fn ground_truth(base: &Matrix<f32>, queries: &Matrix<f32>) -> Vec<i32> {
    let mut arena = VectorArena::new(base.dim);
    for i in 0..base.len() {
        arena.push(base.row(i));
    }
    let mut flat = AnyIndex::new(&IndexSpec::Flat, base.dim, DistanceKind::NegDot, 0);
    flat.build(&arena, &(0..base.len() as u32).collect::<Vec<_>>());
    let rows: Vec<&[f32]> = (0..queries.len()).map(|i| queries.row(i)).collect();
    let mut out = Vec::with_capacity(rows.len() * GT_K);
    for (chunk_no, chunk) in rows.chunks(500).enumerate() {
        for hits in flat.search_batch(&arena, chunk, GT_K, &QueryParams::default(), &|_| true) {
            out.extend(hits.iter().map(|&(slot, _)| slot as i32));
        }
        eprintln!("ground truth: {}/{}", (chunk_no + 1) * 500, rows.len());
    }
    out
}
