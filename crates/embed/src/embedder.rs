//! The `Embedder`: a loaded model with its preprocessing, labels and thread pool.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::decode::DecodedImage;
use crate::manifest::ModelManifest;
use crate::preprocess::Preprocessor;
use crate::runtime::{self, Backend, OnnxModel, RawOutputs, RuntimeConfig, RuntimeKind};
use crate::source::{model_id, ModelFiles, ModelSource};
use crate::EmbedError;

/// How many labels `Embedding::labels` holds when the model has logits.
pub const TOP_LABELS: usize = 5;

/// A class label with its softmax probability.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub name: String,
    pub score: f32,
}

/// One image's vector, plus its top labels when the model classifies.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// `dim()` values, unit length when the manifest says `l2_normalize = true`.
    pub vector: Vec<f32>,
    /// Best `TOP_LABELS` classes, highest score first; empty without logits.
    pub labels: Vec<Label>,
}

/// A model ready to embed images; `Send + Sync`, share it behind an `Arc`.
pub struct Embedder {
    manifest: ModelManifest,
    backend: Box<dyn Backend>,
    pre: Preprocessor,
    labels: Vec<String>,
    model_id: String,
    runtime: RuntimeKind,
    pub(crate) pool: rayon::ThreadPool,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model_id", &self.model_id)
            .field("runtime", &self.runtime)
            .finish()
    }
}

/// `$IMGSEARCH_MODEL` (a manifest file, or a folder holding `manifest.toml`), else the default
/// model of the source tree this was built from, else the first
/// `models/efficientnet-lite0/manifest.toml` found in the current directory, the executable's
/// folder, or one of their parents (a binary copied elsewhere, or a source tree that moved since
/// the build: the build-time path is baked in and may be gone).
pub fn default_manifest_path() -> PathBuf {
    const DEFAULT: &str = "models/efficientnet-lite0/manifest.toml";
    if let Some(p) = std::env::var_os("IMGSEARCH_MODEL") {
        let p = PathBuf::from(p);
        return if p.is_dir() {
            p.join("manifest.toml")
        } else {
            p
        };
    }
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(DEFAULT);
    if built.is_file() {
        return built;
    }
    let starts = [
        std::env::current_dir().ok(),
        std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf)),
    ];
    starts
        .iter()
        .flatten()
        .flat_map(|start| start.ancestors().map(|dir| dir.join(DEFAULT)))
        .find(|candidate| candidate.is_file())
        .unwrap_or(built)
}

impl Embedder {
    /// Loads the manifest and its model, optimises it for the runtime, and checks with one
    /// blank image that the outputs have the sizes the manifest and labels announce.
    pub fn load(manifest_path: &Path, runtime: &RuntimeConfig) -> Result<Embedder, EmbedError> {
        Self::load_source(&ModelSource::Manifest(manifest_path.to_path_buf()), runtime)
    }

    /// Like [`Self::load`], for a model on disk or held in memory.
    pub fn load_source(
        source: &ModelSource,
        runtime: &RuntimeConfig,
    ) -> Result<Embedder, EmbedError> {
        let ModelFiles {
            manifest,
            onnx,
            onnx_path,
            labels,
        } = source.read()?;
        let model_id = model_id(&manifest.name, &onnx);
        let labels = labels
            .as_deref()
            .map(|text| text.lines().map(|l| l.trim().to_string()).collect())
            .unwrap_or_default();
        let threads = runtime::effective_threads(runtime.threads);
        let background = runtime.background;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("embed-{i}"))
            .start_handler(move |i| {
                if background && !common::background::lower_current_thread() {
                    tracing::debug!(thread = i, "the pool thread keeps its CPU priority");
                }
            })
            .build()
            .map_err(|e| EmbedError::model(format!("thread pool: {e}")))?;
        let backend = match onnx_path {
            Some(path) => {
                // A file on disk was read only for its id: the runtime reads it by path, which
                // also finds weights stored beside it.
                drop(onnx);
                runtime::load(&manifest, OnnxModel::File(&path), runtime)?
            }
            None => runtime::load(&manifest, OnnxModel::Bytes(&onnx), runtime)?,
        };
        let pre = Preprocessor::new(&manifest);
        let embedder = Embedder {
            manifest,
            backend,
            pre,
            labels,
            model_id,
            runtime: runtime.kind,
            pool,
        };
        embedder.check_outputs()?;
        tracing::info!(model = %embedder.model_id, runtime = runtime.kind.name(), threads, "model loaded");
        Ok(embedder)
    }

    fn check_outputs(&self) -> Result<(), EmbedError> {
        let out = self.backend.run(&vec![0.0; self.pre.input_len()], 1)?;
        if out.embedding.len() != self.manifest.dimension {
            return Err(EmbedError::WrongDimension {
                output: self.manifest.outputs.embedding.clone(),
                expected: self.manifest.dimension,
                got: out.embedding.len(),
            });
        }
        if let (Some(logits), Some(name)) = (&out.logits, &self.manifest.outputs.logits) {
            if !self.labels.is_empty() && logits.len() != self.labels.len() {
                return Err(EmbedError::WrongDimension {
                    output: name.clone(),
                    expected: self.labels.len(),
                    got: logits.len(),
                });
            }
        }
        Ok(())
    }

    pub fn manifest(&self) -> &ModelManifest {
        &self.manifest
    }

    pub fn dim(&self) -> usize {
        self.manifest.dimension
    }

    /// The classifier's class names in class order; empty when the model has no labels.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// `name@` + the first 12 hex digits of the ONNX file's SHA-256: changes whenever the
    /// weights do, so stored vectors can be matched to the model that made them.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Images per model call that run fastest on this runtime.
    pub fn preferred_batch(&self) -> usize {
        self.backend.preferred_batch()
    }

    pub fn runtime(&self) -> RuntimeKind {
        self.runtime
    }

    /// The preprocessing this model uses (exposed for benchmarks and tools).
    pub fn preprocessor(&self) -> &Preprocessor {
        &self.pre
    }

    pub fn embed(&self, img: &DecodedImage) -> Result<Embedding, EmbedError> {
        Ok(self.embed_batch(std::slice::from_ref(img))?.remove(0))
    }

    /// Embeds several images, preprocessing in parallel and running the model in batches.
    pub fn embed_batch(&self, imgs: &[DecodedImage]) -> Result<Vec<Embedding>, EmbedError> {
        let len = self.pre.input_len();
        let mut input = vec![0f32; len * imgs.len()];
        if let [img] = imgs {
            // One image (a search) is prepared on the caller's thread, as the model then runs
            // on it too: the pool may be busy with an ingest's round of decodes, and a search
            // must not queue behind it.
            self.pre
                .run(&img.rgb, &mut input)
                .map_err(|e| with_source(e, &img.source))?;
        } else {
            self.pool.install(|| {
                input
                    .par_chunks_mut(len)
                    .zip(imgs.par_iter())
                    .try_for_each(|(out, img)| {
                        self.pre
                            .run(&img.rgb, out)
                            .map_err(|e| with_source(e, &img.source))
                    })
            })?;
        }
        self.run_model(&input, imgs.len())
    }

    /// Runs the model on `n` preprocessed images and turns the outputs into embeddings.
    pub fn run_model(&self, input: &[f32], n: usize) -> Result<Vec<Embedding>, EmbedError> {
        let len = self.pre.input_len();
        if input.len() != n * len {
            return Err(EmbedError::WrongDimension {
                output: "input".into(),
                expected: n * len,
                got: input.len(),
            });
        }
        let batch = self.backend.preferred_batch().max(1);
        let chunks: Vec<&[f32]> = input.chunks(batch * len).collect();
        let outputs: Vec<RawOutputs> = if self.backend.parallel_calls() && chunks.len() > 1 {
            self.pool.install(|| {
                chunks
                    .par_iter()
                    .map(|c| self.backend.run_in_pool(c, c.len() / len))
                    .collect::<Result<Vec<_>, _>>()
            })?
        } else {
            chunks
                .iter()
                .map(|c| self.backend.run(c, c.len() / len))
                .collect::<Result<_, _>>()?
        };
        let mut result = Vec::with_capacity(n);
        for out in outputs {
            let rows = out.embedding.len() / self.dim();
            for r in 0..rows {
                let logits = out.logits.as_ref().map(|l| {
                    let per = l.len() / rows;
                    &l[r * per..(r + 1) * per]
                });
                result.push(
                    self.finish(&out.embedding[r * self.dim()..(r + 1) * self.dim()], logits),
                );
            }
        }
        if result.len() != n {
            return Err(EmbedError::WrongDimension {
                output: self.manifest.outputs.embedding.clone(),
                expected: n * self.dim(),
                got: result.len() * self.dim(),
            });
        }
        Ok(result)
    }

    fn finish(&self, embedding: &[f32], logits: Option<&[f32]>) -> Embedding {
        let mut vector = embedding.to_vec();
        if self.manifest.l2_normalize {
            let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                vector.iter_mut().for_each(|v| *v /= norm);
            }
        }
        let labels = match logits {
            Some(l) if !self.labels.is_empty() => top_labels(l, &self.labels, TOP_LABELS),
            _ => Vec::new(),
        };
        Embedding { vector, labels }
    }
}

/// Puts the image's name into an error raised without one (the preprocessor knows no paths).
pub(crate) fn with_source(e: EmbedError, source: &str) -> EmbedError {
    match e {
        EmbedError::Decode { path, reason } if path.is_empty() => EmbedError::Decode {
            path: source.into(),
            reason,
        },
        other => other,
    }
}

/// Softmax over all logits, then the `k` best classes.
fn top_labels(logits: &[f32], names: &[String], k: usize) -> Vec<Label> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_unstable_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    order
        .into_iter()
        .take(k)
        .map(|i| Label {
            name: names
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("class {i}")),
            score: exps[i] / sum,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_labels_are_sorted_softmax_scores() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let labels = top_labels(&[0.0, 2.0, 1.0], &names, 2);
        assert_eq!(
            labels.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
            ["b", "c"]
        );
        let total: f32 = [0.0f32, 2.0, 1.0].iter().map(|v| v.exp()).sum();
        assert!((labels[0].score - 2f32.exp() / total).abs() < 1e-6);
    }
}
