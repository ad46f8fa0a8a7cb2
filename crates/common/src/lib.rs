//! What every imgsearch crate shares, so that each thing is said once:
//!
//! - [`ErrorKind`] and [`Classified`]: the one vocabulary of failure. Every crate's error type
//!   classifies each of its variants where the variant is defined; the HTTP layer and the CLI map
//!   the classification to statuses and exit codes by table, never by inspecting messages.
//! - [`envelope`]: the one container of every derived file (magic, version, length, CRC-32).
//! - [`le`]: the one little-endian codec used inside those files.
//! - [`fsio::write_atomic_with`] (and [`fsio::write_atomic`] on it): the one way a derived file
//!   reaches the disk.
//! - [`background`]: how bulk work steps aside for requests (the `unsafe` calls here).
//! - [`ProgressSink`]: how long work reports its progress.

pub mod background;
pub mod envelope;
pub mod error;
pub mod fsio;
pub mod le;
pub mod progress;

pub use error::{Class, Classified, ErrorKind, Origin};
pub use progress::{NoProgress, ProgressSink};
