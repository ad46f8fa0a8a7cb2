//! imgsearch's embedded vector database.

pub mod distance;
pub mod index;
