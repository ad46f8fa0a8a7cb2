//! Benchmark support of imgsearch: TEXMEX file readers, recall and memory measurement, and the
//! JSON-line records that `ann` (ours) and `scripts/peers.py` (hnswlib, faiss) both print, so that
//! one plot and one summary can read them side by side.

pub mod measure;
pub mod synth;
pub mod texmex;

use std::path::PathBuf;

/// Errors of the benchmark library: only file access and file format problems.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid TEXMEX file: {reason}")]
    Format { path: PathBuf, reason: String },
}
