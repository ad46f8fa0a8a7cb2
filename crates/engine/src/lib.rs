//! imgsearch engine: the use cases (ingest, query, dedup, thumbnails) over a vector store.

pub mod store;
