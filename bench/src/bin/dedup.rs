//! `dedup`: how far `imgsearch dedup` can be trusted, on a labelled set built from real photos.
//! Driven by `bench/dedup/run.sh`; see `bench/README.md`.
//!
//! The library is every photo of a class-per-folder data set (flowers17: many photos of one kind
//! of flower, several of them shots of the same plant) plus, for a seeded pick of originals per
//! class, an exact copy and one copy per built-in edit of `train::Edit` (a JPEG re-encoding at
//! quality 15, a 70% centre crop, half size rotated 5 degrees, brightness and contrast, a mirror
//! image). Two images are duplicates when they come from the same source photo: a copy or an edit
//! of it, or another file of the data set that shows the same picture (`train::PictureSignature`:
//! the same size, and 32x32 grey thumbnails within 3 levels on average; the data set holds
//! re-encoded copies, which no model score decides here). Every other pair, other photos of the
//! same flower and near-identical shots of one plant included, is not.
//!
//! The library is indexed through the engine with its defaults (the default model, HNSW), then
//! `dedup` runs at each threshold of a sweep; every pair within a group is a predicted duplicate.
//! The report gives pair precision and recall per threshold, recall per kind of copy, and the
//! score of each copy against its original beside the best score of any non-duplicate, from
//! which the score bands are chosen.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use clap::Parser;
use engine::{Engine, EngineConfig, NoProgress, Query};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::json;
use train::{Edit, PictureSignature};

#[derive(Parser, Debug)]
#[command(about = "Labelled near-duplicate benchmark of dedup (see bench/README.md)")]
struct Args {
    /// A folder of class folders of photos (flowers17)
    #[arg(long)]
    data: PathBuf,
    /// Originals picked per class; each gets an exact copy and one copy per edit
    #[arg(long, default_value_t = 8)]
    per_class: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// An empty folder for the library and the data directory
    #[arg(long)]
    work: PathBuf,
}

/// What a library file is: which source photo it comes from and how, and its class folder.
struct Label {
    source: usize,
    kind: &'static str,
    class: usize,
}

const THRESHOLDS: [f32; 12] = [
    0.70, 0.75, 0.80, 0.83, 0.85, 0.87, 0.90, 0.92, 0.95, 0.97, 0.99, 0.995,
];

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.per_class > 0, "--per-class must be at least 1");
    let library = args.work.join("library");
    std::fs::create_dir_all(&library)?;
    let (labels, identical_sets) = build_library(&args, &library)?;
    let sources = labels
        .values()
        .map(|l| l.source)
        .collect::<HashSet<_>>()
        .len();
    eprintln!(
        "{} files from {sources} sources ({identical_sets} sets of data set photos showing one picture); indexing",
        labels.len()
    );
    let engine = Engine::open(EngineConfig {
        data_dir: args.work.join("data"),
        ..EngineConfig::default()
    })?;
    let report = engine.index_paths(std::slice::from_ref(&library), &NoProgress)?;
    ensure!(report.failed.is_empty(), "failed: {:?}", report.failed);
    let label_of = |p: &Path| {
        labels
            .get(p)
            .with_context(|| format!("unlabelled {}", p.display()))
    };

    // True pairs: every pair of files from one source.
    let mut by_source: HashMap<usize, usize> = HashMap::new();
    for l in labels.values() {
        *by_source.entry(l.source).or_default() += 1;
    }
    let true_pairs: usize = by_source.values().map(|&n| n * (n - 1) / 2).sum();

    for t in THRESHOLDS {
        let groups = engine.dedup(t)?;
        let (mut predicted, mut correct) = (0usize, 0usize);
        let mut found_kind: HashMap<&str, (usize, usize)> = HashMap::new();
        let mut grouped: HashMap<PathBuf, usize> = HashMap::new();
        for (g, group) in groups.iter().enumerate() {
            for (i, a) in group.iter().enumerate() {
                grouped.insert(a.path.clone(), g);
                for b in &group[i + 1..] {
                    predicted += 1;
                    correct += usize::from(label_of(&a.path)?.source == label_of(&b.path)?.source);
                }
            }
        }
        // Recall per kind: is each copy in the group of its original?
        let originals: HashMap<usize, &PathBuf> = labels
            .iter()
            .filter(|(_, l)| l.kind == "original")
            .map(|(p, l)| (l.source, p))
            .collect();
        for (p, l) in &labels {
            if matches!(l.kind, "original" | "photo") {
                continue;
            }
            let Some(orig) = originals.get(&l.source) else {
                continue;
            };
            let e = found_kind.entry(l.kind).or_default();
            e.1 += 1;
            e.0 += usize::from(grouped.contains_key(p) && grouped.get(p) == grouped.get(*orig));
        }
        let recall_by_kind: serde_json::Map<String, serde_json::Value> = found_kind
            .iter()
            .map(|(k, (f, n))| (k.to_string(), json!(*f as f64 / *n as f64)))
            .collect();
        println!(
            "{}",
            json!({
                "threshold": t,
                "groups": groups.len(),
                "predicted_pairs": predicted,
                "true_pairs": true_pairs,
                "precision": if predicted == 0 { 1.0 } else { correct as f64 / predicted as f64 },
                "recall": correct as f64 / true_pairs as f64,
                "recall_by_kind": recall_by_kind,
            })
        );
    }

    // Scores: each copy against its original, and each original's best non-duplicate.
    let mut scores: HashMap<&str, Vec<f32>> = HashMap::new();
    for (p, l) in labels.iter().filter(|(_, l)| l.kind == "original") {
        let id = engine.image_by_path(p)?.context("original not indexed")?.id;
        let q = Query {
            k: 64,
            ..Query::default()
        };
        let mut best_other = f32::NEG_INFINITY;
        for hit in engine.search_id(id, &q)? {
            let h = label_of(&hit.path)?;
            if h.source == l.source {
                scores.entry(h.kind).or_default().push(hit.score);
            } else {
                best_other = best_other.max(hit.score);
            }
        }
        scores
            .entry("best non-duplicate")
            .or_default()
            .push(best_other);
    }
    let mut summary = serde_json::Map::new();
    for (kind, mut s) in scores {
        s.sort_by(f32::total_cmp);
        let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
        summary.insert(
            kind.to_string(),
            json!({"n": s.len(), "min": s[0], "p05": at(0.05), "p50": at(0.5), "p95": at(0.95), "max": s[s.len() - 1]}),
        );
    }
    println!("{}", json!({ "scores_against_original": summary }));
    similar_shots(&engine, &labels)
}

/// Where "similar shot" begins. The data set labels no bursts, only the kind of flower, so the
/// band is calibrated on that: for each lower bound, of the pairs of different source photos
/// (every data set photo's 16 nearest neighbours) scoring between it and the duplicate threshold,
/// the share that shows the same kind of flower.
fn similar_shots(engine: &Engine, labels: &HashMap<PathBuf, Label>) -> Result<()> {
    let duplicate = engine::DUPLICATE_BANDS.duplicate;
    let mut pairs: HashMap<(usize, usize), (f32, bool)> = HashMap::new();
    for (p, l) in labels
        .iter()
        .filter(|(_, l)| matches!(l.kind, "original" | "photo"))
    {
        let id = engine.image_by_path(p)?.context("photo not indexed")?.id;
        let q = Query {
            k: 16,
            ..Query::default()
        };
        for hit in engine.search_id(id, &q)? {
            let h = labels
                .get(&hit.path)
                .with_context(|| format!("unlabelled {}", hit.path.display()))?;
            if h.source != l.source && matches!(h.kind, "original" | "photo") {
                let key = (l.source.min(h.source), l.source.max(h.source));
                pairs.insert(key, (hit.score, h.class == l.class));
            }
        }
    }
    for from in [
        0.60f32, 0.65, 0.70, 0.72, 0.75, 0.78, 0.80, 0.83, 0.85, 0.88,
    ] {
        let band: Vec<bool> = pairs
            .values()
            .filter(|(score, _)| (from..duplicate).contains(score))
            .map(|&(_, same)| same)
            .collect();
        let same = band.iter().filter(|&&s| s).count();
        println!(
            "{}",
            json!({
                "similar_from": from,
                "pairs": band.len(),
                "same_class": if band.is_empty() { 1.0 } else { same as f64 / band.len() as f64 },
            })
        );
    }
    Ok(())
}

/// Copies the data set into `library` and adds the copies and edits of the picked originals.
/// Returns each file's label and the number of sets of pixel-identical data set photos.
fn build_library(args: &Args, library: &Path) -> Result<(HashMap<PathBuf, Label>, usize)> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let mut labels = HashMap::new();
    // Each data set photo's grey thumbnail and source; a photo showing the same picture as one
    // seen before takes that one's source.
    let mut thumbs: Vec<(PictureSignature, usize)> = Vec::new();
    let mut identical = HashSet::new();
    let mut classes: Vec<PathBuf> = dirs_of(&args.data)?;
    classes.sort();
    for (class_no, class) in classes.into_iter().enumerate() {
        let name = class.file_name().context("class folder")?.to_owned();
        let out = library.join(&name);
        std::fs::create_dir_all(&out)?;
        let mut photos = files_of(&class)?;
        photos.sort();
        let picked: HashSet<PathBuf> = photos
            .choose_multiple(&mut rng, args.per_class)
            .cloned()
            .collect();
        for photo in photos {
            let img = image::open(&photo)
                .with_context(|| format!("decoding {}", photo.display()))?
                .to_rgb8();
            let thumb = PictureSignature::of(&img);
            let same = thumbs.iter().find(|(t, _)| t.same_picture(&thumb));
            let source = match same {
                Some(&(_, s)) => {
                    identical.insert(s);
                    s
                }
                None => thumbs.len(),
            };
            thumbs.push((thumb, source));
            let file = photo.file_name().context("photo name")?;
            let dst = out.join(file);
            std::fs::copy(&photo, &dst)?;
            let is_original = picked.contains(&photo);
            let kind = if is_original { "original" } else { "photo" };
            labels.insert(
                dst.canonicalize()?,
                Label {
                    source,
                    kind,
                    class: class_no,
                },
            );
            if !is_original {
                continue;
            }
            let stem = Path::new(file)
                .file_stem()
                .context("stem")?
                .to_string_lossy();
            let copy = out.join(format!("{stem}-copy.jpg"));
            std::fs::copy(&photo, &copy)?;
            labels.insert(
                copy.canonicalize()?,
                Label {
                    source,
                    kind: "exact copy",
                    class: class_no,
                },
            );
            for edit in Edit::ALL {
                // PNG, so that writing the edit adds no loss of its own.
                let dst = out.join(format!("{stem}-{}.png", edit.name()));
                edit.apply(&img)?.save(&dst)?;
                labels.insert(
                    dst.canonicalize()?,
                    Label {
                        source,
                        kind: edit.name(),
                        class: class_no,
                    },
                );
            }
        }
    }
    Ok((labels, identical.len()))
}

fn dirs_of(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if p.is_dir() {
            out.push(p);
        }
    }
    ensure!(!out.is_empty(), "{} holds no class folders", dir.display());
    Ok(out)
}

fn files_of(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let ext = p.extension().map(|e| e.to_string_lossy().to_lowercase());
        if matches!(ext.as_deref(), Some("jpg" | "jpeg" | "png")) {
            out.push(p);
        }
    }
    Ok(out)
}
