//! onnxruntime backend through `ort` (load-dynamic): the shared library is found at run time,
//! so building needs no native files and the default build never touches it.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;

use super::{effective_threads, input_shape, Backend, OnnxModel, RawOutputs, RuntimeConfig};
use crate::manifest::ModelManifest;
use crate::EmbedError;

/// The process-wide onnxruntime environment: ort allows one per process, and the library can
/// be loaded once, so the first backend's library path wins.
static ENVIRONMENT: OnceLock<Result<(PathBuf, ort::environment::Environment), String>> =
    OnceLock::new();

pub(crate) struct OrtBackend {
    // `Session::run` takes `&mut self`; one call already uses all intra-op threads, so a
    // mutex costs no throughput.
    session: Mutex<Session>,
    /// With several threads, one single-threaded session per thread of the embedder's pool, for
    /// many batches at once: independent batches on separate cores beat one batch at a time
    /// split over the cores (no synchronisation inside the graph), while a single image keeps
    /// the low latency of `session` with all threads. Empty with one thread.
    per_thread: Vec<Mutex<Session>>,
    m: ModelManifest,
    batch: usize,
}

fn runtime_err(reason: impl std::fmt::Display) -> EmbedError {
    EmbedError::Runtime {
        runtime: "ort",
        reason: reason.to_string(),
    }
}

/// The library to load: the config, then $ORT_DYLIB_PATH, then this repository's cache
/// (filled by scripts/fetch-onnxruntime.sh).
fn library_path(cfg: &RuntimeConfig) -> PathBuf {
    if let Some(p) = &cfg.ort_library {
        return p.clone();
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.cache/onnxruntime/libonnxruntime.so")
}

fn environment(cfg: &RuntimeConfig) -> Result<&'static ort::environment::Environment, EmbedError> {
    let wanted = library_path(cfg);
    let entry = ENVIRONMENT.get_or_init(|| {
        if !wanted.is_file() {
            return Err(format!(
                "{} not found: run scripts/fetch-onnxruntime.sh or set ORT_DYLIB_PATH",
                wanted.display()
            ));
        }
        let env = ort::init_from(&wanted)
            .map_err(|e| format!("loading {}: {e}", wanted.display()))?
            .with_name("imgsearch")
            .build()
            .map_err(|e| e.to_string())?;
        Ok((wanted.clone(), env))
    });
    match entry {
        Ok((loaded, env)) => {
            if *loaded != wanted {
                tracing::warn!(loaded = %loaded.display(), requested = %wanted.display(),
                    "onnxruntime is already loaded from another path; using it");
            }
            Ok(env)
        }
        Err(reason) => Err(runtime_err(reason)),
    }
}

#[cfg(feature = "cuda")]
fn register_cuda(builder: &mut ort::session::builder::SessionBuilder) {
    use ort::ep::ExecutionProvider;
    let available = ort::ep::CUDA::is_available().unwrap_or(false);
    let result = if available {
        ort::ep::CUDA::default()
            .register(builder)
            .map_err(|e| e.to_string())
    } else {
        Err("this onnxruntime library has no CUDA execution provider".to_string())
    };
    match result {
        Ok(()) => tracing::info!("onnxruntime CUDA execution provider registered"),
        Err(reason) => tracing::warn!(%reason, "CUDA unavailable, running on the CPU"),
    }
}

impl OrtBackend {
    pub(crate) fn load(
        m: &ModelManifest,
        onnx: OnnxModel<'_>,
        cfg: &RuntimeConfig,
    ) -> Result<OrtBackend, EmbedError> {
        let env = environment(cfg)?;
        let threads = effective_threads(cfg.threads);
        let session = Self::session(env, onnx, threads)?;
        if !session.inputs().iter().any(|i| i.name() == m.input) {
            return Err(EmbedError::model(format!(
                "the model has no input named {:?}",
                m.input
            )));
        }
        // The CUDA provider runs batches on the GPU: one session is all it needs.
        let per_thread = if threads > 1 && !cfg!(feature = "cuda") {
            (0..threads)
                .map(|_| Self::session(env, onnx, 1).map(Mutex::new))
                .collect::<Result<_, _>>()?
        } else {
            Vec::new()
        };
        let batch = if cfg.batch == 0 { 8 } else { cfg.batch };
        Ok(OrtBackend {
            session: Mutex::new(session),
            per_thread,
            m: m.clone(),
            batch,
        })
    }

    fn session(
        env: &ort::environment::Environment,
        onnx: OnnxModel<'_>,
        threads: usize,
    ) -> Result<Session, EmbedError> {
        let builder = Session::builder(env)
            .map_err(runtime_err)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(runtime_err)?
            .with_intra_threads(threads)
            .map_err(runtime_err)?
            .with_inter_threads(1)
            .map_err(runtime_err)?
            // Idle intra-op threads would otherwise spin for a while after each run, taking the
            // cores from the threads that decode and preprocess the next images.
            .with_intra_op_spinning(false)
            .map_err(runtime_err)?;
        #[allow(unused_mut)]
        let mut builder = builder;
        #[cfg(feature = "cuda")]
        register_cuda(&mut builder);
        match onnx {
            OnnxModel::File(path) => builder.commit_from_file(path),
            OnnxModel::Bytes(bytes) => builder.commit_from_memory(bytes),
        }
        .map_err(|e| EmbedError::model(format!("onnxruntime: {e}")))
    }

    fn run_on(
        &self,
        session: &Mutex<Session>,
        input: &[f32],
        n: usize,
    ) -> Result<RawOutputs, EmbedError> {
        let err = |e: ort::Error| EmbedError::model(format!("onnxruntime: {e}"));
        let tensor = TensorRef::from_array_view((input_shape(&self.m, n), input)).map_err(err)?;
        let mut session = session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session
            .run(ort::inputs![self.m.input.as_str() => tensor])
            .map_err(err)?;
        let extract = |name: &str| -> Result<Vec<f32>, EmbedError> {
            let value = outputs.get(name).ok_or_else(|| {
                EmbedError::model(format!("the model has no output named {name:?}"))
            })?;
            Ok(value.try_extract_tensor::<f32>().map_err(err)?.1.to_vec())
        };
        let embedding = extract(&self.m.outputs.embedding)?;
        let logits = self.m.outputs.logits.as_deref().map(extract).transpose()?;
        Ok(RawOutputs { embedding, logits })
    }
}

impl Backend for OrtBackend {
    fn run(&self, input: &[f32], n: usize) -> Result<RawOutputs, EmbedError> {
        self.run_on(&self.session, input, n)
    }

    fn run_in_pool(&self, input: &[f32], n: usize) -> Result<RawOutputs, EmbedError> {
        match rayon::current_thread_index() {
            // Each pool thread has its own session, so these locks are never contended.
            Some(i) if !self.per_thread.is_empty() => {
                self.run_on(&self.per_thread[i % self.per_thread.len()], input, n)
            }
            _ => self.run(input, n),
        }
    }

    fn parallel_calls(&self) -> bool {
        !self.per_thread.is_empty()
    }

    fn preferred_batch(&self) -> usize {
        self.batch
    }
}
