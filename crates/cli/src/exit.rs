//! Exit codes: each kind of failure has its own, so scripts can tell them apart.

use engine::store::StoreError;
use engine::EngineError;

use crate::config::ConfigError;

pub const OK: u8 = 0;
pub const INTERNAL: u8 = 1;
pub const USAGE: u8 = 2;
pub const CONFIG: u8 = 3;
pub const NOT_FOUND: u8 = 4;
pub const INVALID_INPUT: u8 = 5;
pub const MODEL: u8 = 6;
pub const STORE: u8 = 7;
pub const IO: u8 = 8;

/// Shown at the end of `--help` and in the README.
pub const HELP: &str = "\
Exit codes:
  0  success (an `index` run that skipped or failed some files still succeeds; see its summary)
  1  internal error
  2  bad command line (unknown flag, missing or conflicting arguments)
  3  invalid configuration (file, IMGSEARCH_* environment or flag value)
  4  not found (a path, image id or collection)
  5  invalid input (an unreadable image, a bad filter or parameter)
  6  model problem (cannot load the model, or the collection was made by another model)
  7  vector store or catalog error (unreachable, corrupt, rejected)
  8  file-system error";

/// A command-line problem found after parsing (exit code 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The exit code for an error: the first typed error found in its chain decides.
pub fn code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<ConfigError>() {
            return CONFIG;
        }
        if cause.is::<UsageError>() {
            return USAGE;
        }
        if let Some(e) = cause.downcast_ref::<crate::client::ApiError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<EngineError>() {
            return engine_code(e);
        }
        if let Some(e) = cause.downcast_ref::<StoreError>() {
            return store_code(e);
        }
        if cause.is::<std::io::Error>() {
            return IO;
        }
    }
    INTERNAL
}

fn engine_code(e: &EngineError) -> u8 {
    match e {
        EngineError::Store(s) => store_code(s),
        EngineError::Catalog { .. } => STORE,
        EngineError::NotFound { .. } => NOT_FOUND,
        EngineError::InvalidInput { .. } => INVALID_INPUT,
        EngineError::ModelMismatch { .. } | EngineError::Head { .. } => MODEL,
        EngineError::Io { .. } => IO,
        EngineError::Embed(_) => match e.code() {
            "model_error" => MODEL,
            "io_error" => IO,
            _ => INVALID_INPUT,
        },
    }
}

fn store_code(e: &StoreError) -> u8 {
    match e {
        StoreError::UnknownCollection { .. } => NOT_FOUND,
        StoreError::InvalidUrl { .. } => CONFIG,
        _ if e.is_invalid_input() => INVALID_INPUT,
        _ => STORE,
    }
}
