//! imgsearch server crate.
