//! imgsearch vecdb crate.
