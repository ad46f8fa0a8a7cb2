//! Everything that touches the disk.
//!
//! - [`points`]: the redb file, the source of truth for a collection's config and points.
//! - [`snapshot`]: index snapshot files, derived data that only saves rebuild time.
//!
//! The index code (`crate::index`) does no IO; it hands its body to [`snapshot`], which adds the
//! magic number, version and checksums.

pub(crate) mod points;
pub(crate) mod snapshot;

pub use points::{CONFIG_FORMAT_VERSION, RECORD_VERSION};
pub use snapshot::{SNAPSHOT_MAGIC, SNAPSHOT_VERSION};
