//! imgsearch embed crate.
