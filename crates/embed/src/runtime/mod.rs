//! ONNX runtimes behind one small trait: tract (pure Rust, always built) and onnxruntime
//! through `ort` (cargo feature "ort").

use std::path::{Path, PathBuf};

use crate::manifest::{Layout, ModelManifest};
use crate::EmbedError;

#[cfg(feature = "ort")]
mod ort_rt;
mod tract_rt;

/// Which engine runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuntimeKind {
    /// tract-onnx, pure Rust, no native library; the default.
    #[default]
    Tract,
    /// onnxruntime via `ort`, loaded at run time; only with the cargo feature "ort".
    Ort,
}

impl RuntimeKind {
    pub fn name(self) -> &'static str {
        match self {
            RuntimeKind::Tract => "tract",
            RuntimeKind::Ort => "ort",
        }
    }
}

impl std::str::FromStr for RuntimeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tract" => Ok(RuntimeKind::Tract),
            "ort" | "onnxruntime" => Ok(RuntimeKind::Ort),
            other => Err(format!("unknown runtime {other:?} (expected tract or ort)")),
        }
    }
}

/// How to run the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    pub kind: RuntimeKind,
    /// Threads for decoding, preprocessing and the model; 0 means all cores.
    pub threads: usize,
    /// libonnxruntime.so for `RuntimeKind::Ort`; falls back to $ORT_DYLIB_PATH, then to
    /// `.cache/onnxruntime/libonnxruntime.so` of this repository.
    pub ort_library: Option<PathBuf>,
    /// Images per model call; 0 picks the runtime's best (tract 1, ort 8).
    pub batch: usize,
    /// Run the thread pool at bulk priority ([`common::background`]): set by a server, whose
    /// pool serves background indexing while searches embed their one image on the request's
    /// own thread, at normal priority.
    pub background: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            kind: RuntimeKind::Tract,
            threads: 0,
            ort_library: None,
            batch: 0,
            background: false,
        }
    }
}

/// Model outputs for a batch, row-major.
pub(crate) struct RawOutputs {
    pub embedding: Vec<f32>,
    pub logits: Option<Vec<f32>>,
}

/// A loaded model. `run` may be called from several threads at once.
pub(crate) trait Backend: Send + Sync {
    /// Runs `n` images whose input tensors are concatenated in `input`.
    fn run(&self, input: &[f32], n: usize) -> Result<RawOutputs, EmbedError>;
    /// Like `run`, called from a thread of the embedder's pool while the other pool threads run
    /// other batches (only when `parallel_calls` is true).
    fn run_in_pool(&self, input: &[f32], n: usize) -> Result<RawOutputs, EmbedError> {
        self.run(input, n)
    }
    /// Whether concurrent `run` calls from several threads add throughput (true when one call
    /// uses one core), or the runtime already spreads one call over all its threads.
    fn parallel_calls(&self) -> bool;
    /// Images per call that run fastest.
    fn preferred_batch(&self) -> usize;
}

/// Shape of `n` input images for the manifest's layout.
pub(crate) fn input_shape(m: &ModelManifest, n: usize) -> [usize; 4] {
    let s = m.input_size as usize;
    match m.layout {
        Layout::Nchw => [n, 3, s, s],
        Layout::Nhwc => [n, s, s, 3],
    }
}

/// Number of threads `threads` stands for (0 = all cores).
pub(crate) fn effective_threads(threads: usize) -> usize {
    if threads > 0 {
        threads
    } else {
        common::background::cores()
    }
}

/// The ONNX model a runtime loads: a file, or bytes held in memory.
#[derive(Clone, Copy)]
pub(crate) enum OnnxModel<'a> {
    File(&'a Path),
    Bytes(&'a [u8]),
}

pub(crate) fn load(
    m: &ModelManifest,
    onnx: OnnxModel<'_>,
    cfg: &RuntimeConfig,
) -> Result<Box<dyn Backend>, EmbedError> {
    match cfg.kind {
        RuntimeKind::Tract => Ok(Box::new(tract_rt::TractBackend::load(m, onnx, cfg)?)),
        #[cfg(feature = "ort")]
        RuntimeKind::Ort => Ok(Box::new(ort_rt::OrtBackend::load(m, onnx, cfg)?)),
        #[cfg(not(feature = "ort"))]
        RuntimeKind::Ort => Err(EmbedError::Runtime {
            runtime: "ort",
            reason: "this build has no onnxruntime support (cargo feature \"ort\")".into(),
        }),
    }
}
