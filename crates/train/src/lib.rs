//! imgsearch train crate.
