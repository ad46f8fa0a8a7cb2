//! One module per subcommand; each has an `Args` struct and a `run` function.

pub mod dedup;
pub mod docs;
pub mod eval;
pub mod index;
pub mod migrate;
pub mod models;
pub mod search;
pub mod serve;
pub mod status;
pub mod train;
