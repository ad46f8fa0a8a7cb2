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

use std::path::Path;

use anyhow::Context;

/// The model and embedding cache of `eval` and `train`, from the usual configuration layers;
/// the cache defaults to `DATA_DIR/embeddings.cache`.
fn workbench(
    g: &crate::GlobalArgs,
    cache: Option<&Path>,
) -> anyhow::Result<engine::learn::Workbench> {
    let settings = g.settings(crate::config::RawConfig::default())?;
    let cfg = &settings.engine;
    let cache_path = match cache {
        Some(p) => p.to_path_buf(),
        None => cfg.data_dir.join("embeddings.cache"),
    };
    engine::learn::Workbench::open(&cfg.model, &cfg.runtime, cfg.limits, cache_path)
        .with_context(|| format!("cannot load model {}", cfg.model))
}
