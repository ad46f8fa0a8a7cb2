//! The evaluation and training use cases: a labelled corpus (one sub-folder per class), its
//! embeddings through a cache, edited and augmented variants, and the manifest that names a
//! trained head. `imgsearch eval` and `imgsearch train` parse, call these, and print.
//!
//! Embeddings are cached in a file keyed by path, size and mtime (and by edit or view), so a
//! second run costs seconds instead of minutes. The cache holds the bare model's embeddings; the
//! encoder's head is applied afterwards ([`Workbench::project`]), so one cache serves every head
//! of one model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::augment::{augment, view_rng, AugmentConfig, ViewDatasetBuilder};
use crate::{Dataset, Edit, EmbeddingCache, Matrix};
use embed::{decode_file, embed_paths, DecodeLimits, DecodedImage, Encoder, IMAGE_EXTENSIONS};

use crate::error::{invalid, Result, TrainError};
use common::ProgressSink;

mod fit;

pub use fit::{train, Method, Plan, Trained};

/// The cosine similarity from which a file is compared pixel by pixel with a near-duplicate
/// original (see [`Workbench::same_picture_answers`]): two files of one picture score about 1.0
/// under any usable model, and the default model's best scores between different photos of
/// flowers17 stay below 0.9 (bench/README.md), so 0.8 misses no copy and decodes few files.
pub const SAME_PICTURE_CANDIDATE: f32 = 0.8;

/// Image files under a folder of class sub-folders.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub classes: Vec<String>,
    pub paths: Vec<PathBuf>,
    pub labels: Vec<usize>,
}

/// Lists `dir`'s class sub-folders (sorted; only `only` when it is not empty) and their
/// images (sorted). A requested class that does not exist is an error, and so is a corpus of
/// fewer than two classes (retrieval by class needs another class to tell apart).
pub fn list_corpus(dir: &Path, only: &[String]) -> Result<Corpus> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    if !only.is_empty() {
        if let Some(missing) = only.iter().find(|c| !names.contains(c)) {
            return Err(TrainError::NotFound {
                what: format!("class {missing:?}: no such sub-folder of {}", dir.display()),
            });
        }
        names.retain(|n| only.contains(n));
    }
    let mut corpus = Corpus {
        classes: Vec::new(),
        paths: Vec::new(),
        labels: Vec::new(),
    };
    for name in names {
        let sub = dir.join(&name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&sub)
            .map_err(|e| io(&sub, e))?
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
        return Err(invalid(format!(
            "{} needs at least 2 class sub-folders with images, found {}",
            dir.display(),
            corpus.classes.len()
        )));
    }
    Ok(corpus)
}

/// The model (as the engine loads it: with the head its manifest names), the decode limits and
/// the embedding cache of an evaluation or training run.
pub struct Workbench {
    pub encoder: Encoder,
    /// Where the model came from (a trained head's manifest names its files).
    pub source: embed::ModelSource,
    pub limits: DecodeLimits,
    pub cache_path: PathBuf,
    pub cache: EmbeddingCache,
}

impl Workbench {
    /// Loads the model with the head its manifest names, and opens the bare model's embedding
    /// cache. A damaged cache is only derived data, so it is reported and replaced rather than
    /// fatal.
    pub fn open(
        source: &embed::ModelSource,
        runtime: &embed::RuntimeConfig,
        limits: DecodeLimits,
        cache_path: PathBuf,
    ) -> Result<Workbench> {
        let encoder = Encoder::load(source, runtime)?;
        let embedder = encoder.embedder();
        let (model, dim) = (embedder.model_id().to_string(), embedder.dim());
        let cache = EmbeddingCache::open_for(&cache_path, &model, dim).unwrap_or_else(|e| {
            tracing::warn!("ignoring embedding cache: {e}");
            EmbeddingCache::new(model, dim)
        });
        Ok(Workbench {
            encoder,
            source: source.clone(),
            limits,
            cache_path,
            cache,
        })
    }

    /// Evaluates with the head in file `head` instead of the one the manifest names.
    pub fn use_head(&mut self, head: &Path) -> Result<()> {
        Ok(self.encoder.set_head(Some(head))?)
    }

    /// The bare model's embeddings `rows` through the encoder's head (if any).
    pub fn project(&self, rows: &[Vec<f32>]) -> Result<Matrix> {
        let projected = rows
            .iter()
            .map(|r| self.encoder.project_vector(r))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Matrix::from_rows(&projected)
    }

    /// Writes the cache (and its folder) so that an interrupted run keeps what it embedded.
    pub fn save_cache(&self) -> Result<()> {
        if let Some(dir) = self
            .cache_path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        self.cache.save(&self.cache_path)
    }

    /// Embeddings of `paths` (None for files that failed, with a warning), from the cache where
    /// possible; new embeddings are added to the cache.
    pub fn embed_files(
        &mut self,
        paths: &[PathBuf],
        progress: &dyn ProgressSink,
    ) -> Result<Vec<Option<Vec<f32>>>> {
        let keys: Vec<String> = paths.iter().map(|p| file_key(p)).collect::<Result<_>>()?;
        let mut out: Vec<Option<Vec<f32>>> = keys
            .iter()
            .map(|k| self.cache.get(k).map(<[f32]>::to_vec))
            .collect();
        let todo: Vec<usize> = (0..paths.len()).filter(|&i| out[i].is_none()).collect();
        if todo.is_empty() {
            return Ok(out);
        }
        progress.start(todo.len() as u64);
        let todo_paths: Vec<PathBuf> = todo.iter().map(|&i| paths[i].clone()).collect();
        let mut failure: Option<crate::TrainError> = None;
        let cache = &mut self.cache;
        embed_paths(
            self.encoder.embedder(),
            &todo_paths,
            &self.limits,
            &mut |j, result| {
                progress.advance(1, &todo_paths[j].to_string_lossy());
                match result {
                    Ok((emb, _)) => {
                        let i = todo[j];
                        if let Err(e) = cache.insert(keys[i].clone(), emb.vector.clone()) {
                            failure.get_or_insert(e);
                        }
                        out[i] = Some(emb.vector);
                    }
                    Err(e) => tracing::warn!("skipping {}: {e}", todo_paths[j].display()),
                }
            },
        );
        progress.finish();
        match failure {
            // The model returned an embedding the cache refuses (wrong size, not finite).
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Labelled embeddings of a corpus (files that failed to embed are left out).
    pub fn labelled(&mut self, corpus: &Corpus, progress: &dyn ProgressSink) -> Result<Dataset> {
        let emb = self.embed_files(&corpus.paths, progress)?;
        let (mut rows, mut labels) = (Vec::new(), Vec::new());
        for (v, &l) in emb.into_iter().zip(&corpus.labels) {
            if let Some(v) = v {
                rows.push(v);
                labels.push(l);
            }
        }
        Dataset::new(Matrix::from_rows(&rows)?, labels)
    }

    /// Embeds an image derived from the file with cache key `key` (variant `variant`, made by
    /// `make` only when the cache lacks it).
    fn embed_variant(
        &mut self,
        key: &str,
        variant: &str,
        make: &dyn Fn() -> Result<crate::image::RgbImage>,
    ) -> Result<Vec<f32>> {
        let k = format!("{key}#{variant}");
        if let Some(v) = self.cache.get(&k) {
            return Ok(v.to_vec());
        }
        let img = DecodedImage {
            rgb: make()?,
            source: k.clone(),
            exif_taken: None,
        };
        let v = self.encoder.embedder().embed(&img)?.vector;
        self.cache.insert(k, v.clone())?;
        Ok(v)
    }

    /// Embeddings of every built-in edit of each picked file, per edit (near-duplicate queries).
    pub fn edit_queries(
        &mut self,
        paths: &[PathBuf],
        picked: &[usize],
        progress: &dyn ProgressSink,
    ) -> Result<Vec<EditQueries>> {
        let mut per_edit: HashMap<Edit, Vec<Vec<f32>>> = HashMap::new();
        progress.start(picked.len() as u64);
        for &i in picked {
            let key = file_key(&paths[i])?;
            let decoded = std::cell::OnceCell::new();
            let limits = self.limits;
            for e in Edit::ALL {
                let make = || -> Result<crate::image::RgbImage> {
                    let img = match decoded.get() {
                        Some(img) => img,
                        None => {
                            let d = decode_file(&paths[i], &limits)?;
                            decoded.get_or_init(|| d.rgb)
                        }
                    };
                    e.apply(img)
                };
                let v = self.embed_variant(&key, &format!("edit={}", e.name()), &make)?;
                per_edit.entry(e).or_default().push(v);
            }
            progress.advance(1, &paths[i].to_string_lossy());
        }
        progress.finish();
        Ok(Edit::ALL
            .iter()
            .map(|e| (e.name().to_string(), per_edit.remove(e).unwrap_or_default()))
            .collect())
    }

    /// The answers of each picked original in near-duplicate retrieval (see
    /// [`crate::near_duplicate`]): `rows[r]` is the embedding of `paths[files[r]]`, and the
    /// answers of `picked[q]` are that row itself, then every other row whose file shows the
    /// same picture ([`crate::PictureSignature`]). Decoding every file would cost what the
    /// embedding cache saves, so only rows within cosine [`SAME_PICTURE_CANDIDATE`] of the
    /// original are decoded and compared; the decision itself is made on pixels.
    pub fn same_picture_answers(
        &self,
        paths: &[PathBuf],
        files: &[usize],
        rows: &[Vec<f32>],
        picked: &[usize],
    ) -> Result<Vec<Vec<usize>>> {
        answers_by_picture(rows, picked, |row| {
            let path = &paths[files[row]];
            match decode_file(path, &self.limits) {
                Ok(d) => Some(crate::PictureSignature::of(&d.rgb)),
                Err(e) => {
                    tracing::warn!("cannot compare {} with its neighbours: {e}", path.display());
                    None
                }
            }
        })
    }

    /// Embedded augmented views of every image, one class per image (self-supervised
    /// training). The cache is saved every 50 images, so an interrupted run resumes.
    pub fn view_dataset(
        &mut self,
        corpus: &Corpus,
        views: usize,
        seed: u64,
        progress: &dyn ProgressSink,
    ) -> Result<Dataset> {
        let aug = AugmentConfig::default();
        let mut builder = ViewDatasetBuilder::new(aug, views, seed)?;
        progress.start(corpus.paths.len() as u64);
        for (n, path) in corpus.paths.iter().enumerate() {
            let key = file_key(path)?;
            let decoded = std::cell::OnceCell::new();
            let limits = self.limits;
            let mut embedded = Vec::with_capacity(views);
            for v in 0..views {
                // Each view has its own random stream derived from the seed, the file and the
                // view number, so a cached view and a recomputed one are the same image.
                let make = || -> Result<crate::image::RgbImage> {
                    let img = match decoded.get() {
                        Some(img) => img,
                        None => {
                            let d = decode_file(path, &limits)?;
                            decoded.get_or_init(|| d.rgb)
                        }
                    };
                    let mut rng = view_rng(seed ^ fnv1a(&key), v as u64);
                    augment(img, &aug, &mut rng)
                };
                embedded.push(self.embed_variant(&key, &format!("view={seed}/{v}"), &make)?);
            }
            builder.add_views(embedded)?;
            progress.advance(1, &path.to_string_lossy());
            if (n + 1) % 50 == 0 {
                self.save_cache()?;
            }
        }
        progress.finish();
        self.save_cache()?;
        builder.finish()
    }

    /// Writes, beside the head, a copy of the model's manifest that names it (`H.toml` for
    /// head file `H.head`). A built-in model is first written to disk beside the head, since a
    /// manifest names model files.
    pub fn write_manifest(&self, head: &Path) -> Result<WrittenManifest> {
        let path = manifest_path_for(head);
        let (manifest, exported) = match &self.source {
            embed::ModelSource::Manifest(_) => (self.encoder.embedder().manifest().clone(), None),
            embed::ModelSource::Embedded(model) => {
                let (m, dir) = on_disk_copy(model, self.encoder.embedder().model_id(), head)?;
                (m, dir)
            }
        };
        let text = manifest.to_toml_with_head(head)?;
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
        Ok(WrittenManifest {
            path,
            exported_model: exported,
        })
    }
}

/// One built-in edit's name and the embeddings of the edited copies, one per picked file.
pub type EditQueries = (String, Vec<Vec<f32>>);

/// What [`Workbench::write_manifest`] wrote.
#[derive(Debug, Clone)]
pub struct WrittenManifest {
    pub path: PathBuf,
    /// The folder the built-in model was written to, when this call wrote it.
    pub exported_model: Option<PathBuf>,
}

fn io(path: &Path, source: std::io::Error) -> TrainError {
    TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The cache key of a file: absolute path, size and modification time, so an edited or
/// replaced file is embedded again.
pub fn file_key(path: &Path) -> Result<String> {
    let abs = std::fs::canonicalize(path).map_err(|e| io(path, e))?;
    let meta = std::fs::metadata(&abs).map_err(|e| io(&abs, e))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(format!("{}|{}|{}", abs.display(), meta.len(), mtime))
}

/// [`Workbench::same_picture_answers`] on embeddings `rows`, with `signature` giving a row's
/// picture (`None` when its file cannot be read: then it matches nothing). Signatures are only
/// asked for the originals with a candidate and for those candidates.
fn answers_by_picture(
    rows: &[Vec<f32>],
    picked: &[usize],
    mut signature: impl FnMut(usize) -> Option<crate::PictureSignature>,
) -> Result<Vec<Vec<usize>>> {
    let all = Matrix::from_rows(rows)?;
    let originals = Matrix::from_rows(&picked.iter().map(|&r| &rows[r][..]).collect::<Vec<_>>())?;
    let sim = crate::matrix::cosine_matrix(&originals, &all);
    let mut answers = Vec::with_capacity(picked.len());
    for (q, &r) in picked.iter().enumerate() {
        let mut answer = vec![r];
        let candidates: Vec<usize> = (0..rows.len())
            .filter(|&j| j != r && sim.row(q)[j] >= SAME_PICTURE_CANDIDATE)
            .collect();
        if !candidates.is_empty() {
            if let Some(original) = signature(r) {
                for j in candidates {
                    if signature(j).is_some_and(|s| s.same_picture(&original)) {
                        answer.push(j);
                    }
                }
            }
        }
        answers.push(answer);
    }
    Ok(answers)
}

/// `n` of the indices `0..len`, chosen at random with `seed` and kept in order (all when `n`
/// is 0 or too large).
pub fn pick(len: usize, n: usize, seed: u64) -> Vec<usize> {
    use crate::rand::seq::SliceRandom;
    use crate::rand::SeedableRng;
    let all: Vec<usize> = (0..len).collect();
    if n == 0 || n >= len {
        return all;
    }
    let mut rng = crate::rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut v: Vec<usize> = all.choose_multiple(&mut rng, n).copied().collect();
    v.sort_unstable();
    v
}

/// FNV-1a, to derive a per-image augmentation stream from its cache key.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A manifest written beside a head must name model files on disk: the embedded model is
/// written once into a folder beside the head (`DIR/NAME/`) and reused by later heads there.
fn on_disk_copy(
    model: &'static embed::EmbeddedModel,
    model_id: &str,
    head: &Path,
) -> Result<(embed::ModelManifest, Option<PathBuf>)> {
    let name = model.parse()?.name;
    let dir = head
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(&name);
    let manifest = dir.join("manifest.toml");
    let exported = if manifest.exists() {
        None
    } else {
        model.export(&dir)?;
        Some(dir.clone())
    };
    let found = embed::ModelSource::Manifest(manifest.clone()).model_id()?;
    if found != model_id {
        return Err(invalid(format!(
            "{} holds model {found}, not the built-in {model_id}; move it away or train with \
             --model",
            manifest.display()
        )));
    }
    Ok((embed::ModelManifest::load(&manifest)?, exported))
}

fn manifest_path_for(head: &Path) -> PathBuf {
    if head.extension().is_some_and(|e| e == "toml") {
        PathBuf::from(format!("{}.manifest.toml", head.display()))
    } else {
        head.with_extension("toml")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_same_picture_copy_near_the_original_is_an_answer_and_nothing_else_is() {
        use crate::image::{Rgb, RgbImage};
        let card = RgbImage::from_fn(64, 48, |x, y| Rgb([(x * 4) as u8, (y * 5) as u8, 90]));
        let pictures = [
            card.clone(),                                     // 0: the original
            crate::edits::jpeg_roundtrip(&card, 90).unwrap(), // 1: re-encoded: the same picture
            crate::image::imageops::flip_horizontal(&card),   // 2: near in embedding, mirrored
            card.clone(),                                     // 3: the same picture, far embedding
            card,                                             // 4: an original with no candidate
        ];
        let rows = vec![
            vec![1.0, 0.0, 0.0],
            vec![0.99, 0.1, 0.0],
            vec![0.95, 0.2, 0.0],
            vec![0.0, 1.0, 0.0],
            vec![0.0, 0.0, 1.0],
        ];
        let mut asked = Vec::new();
        let answers = answers_by_picture(&rows, &[0, 4], |row| {
            asked.push(row);
            Some(crate::PictureSignature::of(&pictures[row]))
        })
        .unwrap();
        // Row 3 shows the picture too, but the model puts it far away: it is never decoded, the
        // price of not decoding the whole corpus.
        assert_eq!(answers, vec![vec![0, 1], vec![4]]);
        assert_eq!(
            asked,
            vec![0, 1, 2],
            "only the original with candidates and those candidates"
        );
        // A file that cannot be read matches nothing.
        let unreadable = answers_by_picture(&rows, &[0], |row| {
            (row != 1).then(|| crate::PictureSignature::of(&pictures[row]))
        })
        .unwrap();
        assert_eq!(unreadable, vec![vec![0]]);
    }

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
        assert!(matches!(
            list_corpus(dir.path(), &["zz".to_string()]),
            Err(TrainError::NotFound { .. })
        ));
        assert!(matches!(
            list_corpus(dir.path(), &["a".to_string()]),
            Err(TrainError::InvalidConfig { .. })
        ));
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

    #[test]
    fn fnv1a_reference_values() {
        // Published FNV-1a 64-bit test vectors.
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn a_head_manifest_sits_beside_the_head() {
        assert_eq!(
            manifest_path_for(Path::new("d/h.head")),
            Path::new("d/h.toml")
        );
        assert_eq!(
            manifest_path_for(Path::new("d/h.toml")),
            Path::new("d/h.toml.manifest.toml")
        );
    }
}
