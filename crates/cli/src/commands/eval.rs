//! `imgsearch eval --data DIR [--classes ...] [--edits] [--head FILE] [--json] [--seed N]`
//!
//! Measures retrieval quality on a labelled folder (one sub-folder per class): leave-one-out
//! class retrieval (every image queries all the others; same folder = relevant), and with
//! `--edits` near-duplicate retrieval, where edited copies of some images query the originals.
//! Embeddings are cached in a file (keyed by path, size and mtime, and by edit), so a second
//! run costs seconds instead of minutes. The helpers here are shared with `imgsearch train`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use embed::{decode_file, embed_paths, DecodeLimits, DecodedImage, Embedder};
use train::edits::Edit;
use train::metrics::{class_retrieval, near_duplicate, EditReport, RetrievalReport};
use train::{EmbeddingCache, Head, Matrix};

use crate::config::RawConfig;
use crate::GlobalArgs;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Folder with one sub-folder of images per class
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Only these classes (sub-folder names, comma separated) [default: all]
    #[arg(long, value_delimiter = ',', value_name = "C1,C2,...")]
    pub classes: Vec<String>,
    /// Also measure near-duplicate retrieval with the built-in edits
    #[arg(long)]
    pub edits: bool,
    /// Images used as near-duplicate originals, picked at random with --seed (0 = all)
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub edit_images: usize,
    /// Project every embedding with this head file first (made by `imgsearch train`)
    #[arg(long, value_name = "FILE")]
    pub head: Option<PathBuf>,
    /// Embedding cache file [default: DATA_DIR/embeddings.cache]
    #[arg(long, value_name = "FILE")]
    pub cache: Option<PathBuf>,
    /// Print the results as JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// Seed for picking the near-duplicate originals
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Image files under a folder of class sub-folders.
pub(crate) struct Corpus {
    pub classes: Vec<String>,
    pub paths: Vec<PathBuf>,
    pub labels: Vec<usize>,
}

const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"];

/// Lists `dir`'s class sub-folders (sorted; only `only` when it is not empty) and their
/// images (sorted). A requested class that does not exist is an error.
pub(crate) fn list_corpus(dir: &Path, only: &[String]) -> anyhow::Result<Corpus> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read data folder {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    if !only.is_empty() {
        if let Some(missing) = only.iter().find(|c| !names.contains(c)) {
            bail!("class {missing:?} is not a sub-folder of {}", dir.display());
        }
        names.retain(|n| only.contains(n));
    }
    let mut corpus = Corpus {
        classes: Vec::new(),
        paths: Vec::new(),
        labels: Vec::new(),
    };
    for name in names {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(&name))
            .with_context(|| format!("cannot read {}", dir.join(&name).display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            continue;
        }
        let label = corpus.classes.len();
        corpus.classes.push(name);
        corpus
            .labels
            .extend(std::iter::repeat_n(label, files.len()));
        corpus.paths.extend(files);
    }
    if corpus.classes.len() < 2 {
        bail!(
            "{} needs at least 2 class sub-folders with images, found {}",
            dir.display(),
            corpus.classes.len()
        );
    }
    Ok(corpus)
}

/// The model, decode limits and cache location from the usual configuration layers.
pub(crate) struct Setup {
    pub embedder: Embedder,
    /// Where the model came from (`train` writes a manifest naming its files).
    pub source: embed::ModelSource,
    pub limits: DecodeLimits,
    pub cache_path: PathBuf,
}

pub(crate) fn setup(g: &GlobalArgs, cache: Option<&Path>) -> anyhow::Result<Setup> {
    let settings = g.settings(RawConfig::default())?;
    let cfg = &settings.engine;
    let embedder = Embedder::load_source(&cfg.model, &cfg.runtime)
        .with_context(|| format!("cannot load model {}", cfg.model))?;
    let cache_path = match cache {
        Some(p) => p.to_path_buf(),
        None => cfg.data_dir.join("embeddings.cache"),
    };
    Ok(Setup {
        embedder,
        source: cfg.model.clone(),
        limits: cfg.limits,
        cache_path,
    })
}

/// Opens the embedding cache for the loaded model. A damaged cache is only derived data, so it
/// is reported and replaced rather than fatal.
pub(crate) fn open_cache(s: &Setup) -> EmbeddingCache {
    let (model, dim) = (s.embedder.model_id(), s.embedder.dim());
    match EmbeddingCache::open_for(&s.cache_path, model, dim) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("ignoring embedding cache: {e}");
            EmbeddingCache::new(model, dim)
        }
    }
}

pub(crate) fn save_cache(s: &Setup, cache: &EmbeddingCache) -> anyhow::Result<()> {
    if let Some(dir) = s.cache_path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
    }
    cache
        .save(&s.cache_path)
        .context("cannot save the embedding cache")
}

/// The cache key of a file: absolute path, size and modification time, so an edited or
/// replaced file is embedded again.
pub(crate) fn file_key(path: &Path) -> anyhow::Result<String> {
    let abs =
        std::fs::canonicalize(path).with_context(|| format!("cannot open {}", path.display()))?;
    let meta = std::fs::metadata(&abs)?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(format!("{}|{}|{}", abs.display(), meta.len(), mtime))
}

/// Embeddings of `paths` (None for files that failed, with a warning), from the cache where
/// possible; new embeddings are added to the cache.
pub(crate) fn embed_files(
    s: &Setup,
    cache: &mut EmbeddingCache,
    paths: &[PathBuf],
) -> anyhow::Result<Vec<Option<Vec<f32>>>> {
    let keys: Vec<String> = paths
        .iter()
        .map(|p| file_key(p))
        .collect::<anyhow::Result<_>>()?;
    let mut out: Vec<Option<Vec<f32>>> = keys
        .iter()
        .map(|k| cache.get(k).map(<[f32]>::to_vec))
        .collect();
    let todo: Vec<usize> = (0..paths.len()).filter(|&i| out[i].is_none()).collect();
    if !todo.is_empty() {
        eprintln!(
            "embedding {} images ({} cached)",
            todo.len(),
            paths.len() - todo.len()
        );
        let todo_paths: Vec<PathBuf> = todo.iter().map(|&i| paths[i].clone()).collect();
        let mut failure: Option<anyhow::Error> = None;
        embed_paths(
            &s.embedder,
            &todo_paths,
            &s.limits,
            &mut |j, result| match result {
                Ok((emb, _)) => {
                    let i = todo[j];
                    if let Err(e) = cache.insert(keys[i].clone(), emb.vector.clone()) {
                        failure.get_or_insert(e.into());
                    }
                    out[i] = Some(emb.vector);
                }
                Err(e) => tracing::warn!("skipping {}: {e}", todo_paths[j].display()),
            },
        );
        if let Some(e) = failure {
            return Err(e.context("the model returned an unusable embedding"));
        }
    }
    Ok(out)
}

/// Embeds `img` (derived from the file with cache key `key`, variant `variant`) via the cache.
pub(crate) fn embed_variant(
    s: &Setup,
    cache: &mut EmbeddingCache,
    key: &str,
    variant: &str,
    make: &dyn Fn() -> anyhow::Result<train::image::RgbImage>,
) -> anyhow::Result<Vec<f32>> {
    let k = format!("{key}#{variant}");
    if let Some(v) = cache.get(&k) {
        return Ok(v.to_vec());
    }
    let img = DecodedImage {
        rgb: make()?,
        source: k.clone(),
        exif_taken: None,
    };
    let v = s.embedder.embed(&img)?.vector;
    cache.insert(k, v.clone())?;
    Ok(v)
}

/// Applies `head` (if any) to each row.
pub(crate) fn project(rows: &[Vec<f32>], head: Option<&Head>) -> anyhow::Result<Matrix> {
    match head {
        Some(h) => Ok(Matrix::from_rows(
            &rows
                .iter()
                .map(|r| h.try_apply(r))
                .collect::<Result<Vec<_>, _>>()?,
        )?),
        None => Ok(Matrix::from_rows(rows)?),
    }
}

/// Everything `eval` measured.
struct Results {
    images: usize,
    classes: usize,
    head: Option<String>,
    retrieval: RetrievalReport,
    edits: Vec<EditReport>,
}

pub fn run(g: &GlobalArgs, args: &EvalArgs) -> anyhow::Result<()> {
    let s = setup(g, args.cache.as_deref())?;
    let corpus = list_corpus(&args.data, &args.classes)?;
    let head = match &args.head {
        Some(p) => {
            let h = Head::load(p).with_context(|| format!("cannot load head {}", p.display()))?;
            h.check_model(s.embedder.model_id())?;
            Some(h)
        }
        None => None,
    };
    let mut cache = open_cache(&s);
    let embedded = embed_files(&s, &mut cache, &corpus.paths)?;
    save_cache(&s, &cache)?;
    let ok: Vec<usize> = (0..embedded.len())
        .filter(|&i| embedded[i].is_some())
        .collect();
    let rows: Vec<Vec<f32>> = ok
        .iter()
        .map(|&i| embedded[i].clone().expect("filtered"))
        .collect();
    let labels: Vec<usize> = ok.iter().map(|&i| corpus.labels[i]).collect();
    let retrieval = class_retrieval(&project(&rows, head.as_ref())?, &labels)?;
    let edits = if args.edits {
        // Positions in `rows` of the picked originals, and their file indices.
        let picked_rows = pick(rows.len(), args.edit_images, args.seed);
        let picked: Vec<usize> = picked_rows.iter().map(|&r| ok[r]).collect();
        let result = edit_queries(&s, &mut cache, &corpus.paths, &picked);
        save_cache(&s, &cache)?;
        let queries = result?;
        let projected: Vec<(String, Matrix)> = queries
            .into_iter()
            .map(|(name, rows)| Ok((name, project(&rows, head.as_ref())?)))
            .collect::<anyhow::Result<_>>()?;
        near_duplicate(&project(&rows, head.as_ref())?, &projected, &picked_rows)?
    } else {
        Vec::new()
    };
    let results = Results {
        images: rows.len(),
        classes: corpus.classes.len(),
        head: head
            .as_ref()
            .map(|h| format!("{} ({})", h.kind().name(), h.description())),
        retrieval,
        edits,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&results))?);
    } else {
        print_table(&results);
    }
    Ok(())
}

/// `n` of the indices `0..len`, chosen at random with `seed` and kept in order (all when `n`
/// is 0 or too large).
fn pick(len: usize, n: usize, seed: u64) -> Vec<usize> {
    use train::rand::seq::SliceRandom;
    use train::rand::SeedableRng;
    let all: Vec<usize> = (0..len).collect();
    if n == 0 || n >= len {
        return all;
    }
    let mut rng = train::rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut v: Vec<usize> = all.choose_multiple(&mut rng, n).copied().collect();
    v.sort_unstable();
    v
}

/// Embeddings of every edit of every picked image, per edit.
fn edit_queries(
    s: &Setup,
    cache: &mut EmbeddingCache,
    paths: &[PathBuf],
    picked: &[usize],
) -> anyhow::Result<Vec<(String, Vec<Vec<f32>>)>> {
    let mut per_edit: HashMap<Edit, Vec<Vec<f32>>> = HashMap::new();
    let missing = picked
        .iter()
        .filter(|&&i| {
            file_key(&paths[i]).map_or(true, |k| {
                Edit::ALL
                    .iter()
                    .any(|e| cache.get(&format!("{k}#edit={}", e.name())).is_none())
            })
        })
        .count();
    if missing > 0 {
        eprintln!("embedding near-duplicate edits of {missing} images");
    }
    for &i in picked {
        let key = file_key(&paths[i])?;
        let decoded = std::cell::OnceCell::new();
        for e in Edit::ALL {
            let make = || -> anyhow::Result<train::image::RgbImage> {
                let img = match decoded.get() {
                    Some(img) => img,
                    None => {
                        let d = decode_file(&paths[i], &s.limits)?;
                        decoded.get_or_init(|| d.rgb)
                    }
                };
                Ok(e.apply(img)?)
            };
            let v = embed_variant(s, cache, &key, &format!("edit={}", e.name()), &make)?;
            per_edit.entry(e).or_default().push(v);
        }
    }
    Ok(Edit::ALL
        .iter()
        .map(|e| (e.name().to_string(), per_edit.remove(e).unwrap_or_default()))
        .collect())
}

fn print_table(r: &Results) {
    println!(
        "{} images, {} classes{}",
        r.images,
        r.classes,
        r.head
            .as_ref()
            .map_or(String::new(), |h| format!(", head: {h}"))
    );
    let q = &r.retrieval;
    println!("class retrieval (leave-one-out, {} queries)", q.queries);
    println!("  mAP@R    mAP      R@1      R@5      R@10     P@10");
    println!(
        "  {:<8.4} {:<8.4} {:<8.4} {:<8.4} {:<8.4} {:<8.4}",
        q.map_at_r, q.map, q.recall_at_1, q.recall_at_5, q.recall_at_10, q.precision_at_10
    );
    if !r.edits.is_empty() {
        println!(
            "near-duplicate retrieval ({} edited queries per edit, all {} images as database)",
            r.edits[0].queries, r.images
        );
        println!("  {:<16} {:<8} {:<8}", "edit", "R@1", "mAP");
        for e in &r.edits {
            println!("  {:<16} {:<8.4} {:<8.4}", e.edit, e.recall_at_1, e.map);
        }
    }
}

fn to_json(r: &Results) -> serde_json::Value {
    let q = &r.retrieval;
    serde_json::json!({
        "images": r.images,
        "classes": r.classes,
        "head": r.head,
        "class_retrieval": {
            "queries": q.queries, "map_at_r": q.map_at_r, "map": q.map,
            "recall_at_1": q.recall_at_1, "recall_at_5": q.recall_at_5,
            "recall_at_10": q.recall_at_10, "precision_at_10": q.precision_at_10,
        },
        "near_duplicate": r.edits.iter().map(|e| serde_json::json!({
            "edit": e.edit, "queries": e.queries, "recall_at_1": e.recall_at_1, "map": e.map,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_lists_class_folders_and_images_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for (class, files) in [
            ("b", &["2.jpg", "1.PNG", "notes.txt"][..]),
            ("a", &["x.jpeg"][..]),
        ] {
            std::fs::create_dir(dir.path().join(class)).unwrap();
            for f in files {
                std::fs::write(dir.path().join(class).join(f), b"").unwrap();
            }
        }
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        let c = list_corpus(dir.path(), &[]).unwrap();
        assert_eq!(c.classes, vec!["a", "b"]);
        assert_eq!(c.labels, vec![0, 1, 1]);
        let names: Vec<_> = c
            .paths
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, vec!["x.jpeg", "1.PNG", "2.jpg"]);
        // Asking for a class that is not there, or leaving fewer than two, is an error.
        assert!(list_corpus(dir.path(), &["zz".to_string()]).is_err());
        assert!(list_corpus(dir.path(), &["a".to_string()]).is_err());
    }

    #[test]
    fn pick_is_seeded_sorted_and_bounded() {
        let a = pick(50, 10, 1);
        assert_eq!(a.len(), 10);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(a, pick(50, 10, 1));
        assert_ne!(a, pick(50, 10, 2));
        assert_eq!(pick(5, 0, 1), vec![0, 1, 2, 3, 4]);
        assert_eq!(pick(5, 9, 1).len(), 5);
    }

    #[test]
    fn file_key_changes_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("i.jpg");
        std::fs::write(&p, b"abc").unwrap();
        let k1 = file_key(&p).unwrap();
        std::fs::write(&p, b"abcd").unwrap();
        assert_ne!(k1, file_key(&p).unwrap());
        assert!(file_key(&dir.path().join("missing.jpg")).is_err());
    }
}
