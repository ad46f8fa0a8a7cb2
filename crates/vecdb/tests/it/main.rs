//! The vecdb integration tests, one binary (linking is the slow part of a build here).

mod bad_input;
mod common;
mod concurrency;
mod conformance;
mod crash;
mod fields;
mod fixture;
mod recall;
mod snapshots;
mod vectors;
