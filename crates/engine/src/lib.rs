//! imgsearch engine crate.
