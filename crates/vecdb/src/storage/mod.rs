//! Everything that touches the disk.
//!
//! - [`points`]: the redb file, the source of truth for a collection's config, its points'
//!   metadata and which slot of the vector file holds each point's vector.
//! - [`vectors`]: the vector file, fixed-size slots read through a memory mapping.
//! - [`snapshot`]: index snapshot files, derived data that only saves rebuild time.
//!
//! The index code (`crate::index`) does no IO; it hands its body to [`snapshot`], which adds the
//! magic number, version and checksums, and reads vectors through the mapping [`vectors`] makes.

pub(crate) mod points;
pub(crate) mod snapshot;
pub mod vectors;

pub use points::{CONFIG_FORMAT_VERSION, RECORD_VERSION};
pub use snapshot::{SNAPSHOT_MAGIC, SNAPSHOT_VERSION};
pub use vectors::{VECTORS_MAGIC, VECTORS_VERSION};
