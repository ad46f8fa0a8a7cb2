//! Exit codes: each kind of failure has its own, so scripts can tell them apart.

use common::{Class, Classified, ErrorKind, Origin};
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
        if let Some(class) = class_of(cause) {
            return exit_of(class);
        }
        if cause.is::<std::io::Error>() {
            return IO;
        }
    }
    INTERNAL
}

/// The classification of the library errors the commands can meet (each classifies itself).
fn class_of(cause: &(dyn std::error::Error + 'static)) -> Option<Class> {
    if let Some(e) = cause.downcast_ref::<EngineError>() {
        return Some(e.class());
    }
    if let Some(e) = cause.downcast_ref::<StoreError>() {
        return Some(e.class());
    }
    if let Some(e) = cause.downcast_ref::<vecdb::VecDbError>() {
        return Some(e.class());
    }
    if let Some(e) = cause.downcast_ref::<embed::EmbedError>() {
        return Some(e.class());
    }
    cause.downcast_ref::<train::TrainError>().map(|e| e.class())
}

/// The exit code of a classification, the rows tried in order: configuration problems first,
/// then what is missing, then the model's, the caller's, the store's and the file system's.
pub(crate) fn exit_of(class: Class) -> u8 {
    match (class.kind, class.origin) {
        (_, Origin::Config) => CONFIG,
        (ErrorKind::NotFound, _) => NOT_FOUND,
        (_, Origin::Model) => MODEL,
        (ErrorKind::InvalidInput | ErrorKind::Conflict, _) => INVALID_INPUT,
        (ErrorKind::Unavailable, _) | (_, Origin::Store) => STORE,
        (_, Origin::File) => IO,
        (ErrorKind::Internal, Origin::Request) => INTERNAL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_failure_has_its_exit_code() {
        let io = |kind| std::io::Error::new(kind, "x");
        let cases: Vec<(anyhow::Error, u8)> = vec![
            (EngineError::NotFound { what: "x".into() }.into(), NOT_FOUND),
            (
                EngineError::InvalidInput { reason: "k".into() }.into(),
                INVALID_INPUT,
            ),
            (
                EngineError::ModelMismatch {
                    collection_model: "a".into(),
                    current_model: "b".into(),
                }
                .into(),
                MODEL,
            ),
            (
                StoreError::Unreachable {
                    url: "u".into(),
                    reason: "r".into(),
                }
                .into(),
                STORE,
            ),
            (
                StoreError::InvalidUrl {
                    url: "u".into(),
                    reason: "r".into(),
                }
                .into(),
                CONFIG,
            ),
            (vecdb::VecDbError::Storage("disk".into()).into(), STORE),
            (
                EngineError::Io {
                    path: "p".into(),
                    source: io(std::io::ErrorKind::PermissionDenied),
                }
                .into(),
                IO,
            ),
            (
                EngineError::Io {
                    path: "p".into(),
                    source: io(std::io::ErrorKind::NotFound),
                }
                .into(),
                NOT_FOUND,
            ),
            (
                embed::EmbedError::Decode {
                    path: "p".into(),
                    reason: "r".into(),
                }
                .into(),
                INVALID_INPUT,
            ),
            (
                embed::EmbedError::Model { reason: "r".into() }.into(),
                MODEL,
            ),
            (UsageError("u".into()).into(), USAGE),
            (anyhow::anyhow!("plain"), INTERNAL),
        ];
        for (err, code) in cases {
            assert_eq!(code_for(&err), code, "{err}");
        }
    }
}
