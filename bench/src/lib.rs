//! Benchmark programs of imgsearch.
