//! One module per subcommand; each has an `Args` struct and a `run` function.

pub mod dedup;
pub mod docs;
pub mod eval;
pub mod filters;
pub mod index;
pub mod migrate;
pub mod models;
pub mod search;
pub mod serve;
pub mod status;
pub mod train;

use std::path::PathBuf;

use anyhow::Context;

/// The flags `eval` and `train` share.
#[derive(clap::Args, Debug)]
pub struct LearnArgs {
    /// Embedding cache file [default: DATA_DIR/embeddings.cache]
    #[arg(long, value_name = "FILE")]
    pub cache: Option<PathBuf>,
    /// Print the results as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// The model and embedding cache of `eval` and `train`, from the usual configuration layers.
fn workbench(g: &crate::GlobalArgs, args: &LearnArgs) -> anyhow::Result<::train::learn::Workbench> {
    let settings = g.settings(crate::config::RawConfig::default())?;
    let cfg = &settings.engine;
    let cache_path = match &args.cache {
        Some(p) => p.clone(),
        None => cfg.data_dir.join("embeddings.cache"),
    };
    ::train::learn::Workbench::open(&cfg.model, &cfg.runtime, cfg.limits, cache_path)
        .with_context(|| format!("cannot load model {}", cfg.model))
}
