//! `imgsearch status` and `imgsearch config`.

use clap::Args;
use serde_json::json;

use crate::config::{all_keys, RawConfig};
use crate::GlobalArgs;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Print the status as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn run(g: &GlobalArgs, args: &StatusArgs) -> anyhow::Result<()> {
    let (engine, _) = g.open(RawConfig::default())?;
    let s = engine.status()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    println!("data dir:    {}", s.data_dir.display());
    println!("store:       {}", s.store);
    println!("collection:  {}", s.collection);
    println!(
        "images:      {} points, {} catalogued files",
        s.points, s.files
    );
    println!("model:       {}", s.model);
    if let Some(m) = &s.collection_model {
        println!(
            "WARNING:     the collection was made by model {m}; searches and indexing are refused"
        );
    }
    println!("dimension:   {}", s.dim);
    println!(
        "metric:      {}",
        serde_json::to_value(s.metric)?.as_str().unwrap_or("?")
    );
    println!("index:       {}", serde_json::to_string(&s.index)?);
    println!("text search: {}", s.text_search);
    Ok(())
}

#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// Print as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// Prints the validated configuration without opening the engine (no model load).
pub fn run_config(g: &GlobalArgs, args: &ConfigArgs) -> anyhow::Result<()> {
    let s = g.settings(RawConfig::default())?;
    let e = &s.engine;
    let effective = json!({
        "data_dir": e.data_dir, "store": e.store_url, "model": e.model_manifest,
        "collection": e.collection, "metric": e.metric, "index": e.index,
        "max_pixels": e.limits.max_pixels, "max_file_bytes": e.limits.max_file_bytes,
        "bind": s.bind.to_string(),
        // The token itself is a secret: only whether one is set.
        "token": if s.server.token.is_some() { "(set)" } else { "(none)" },
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&effective)?);
        return Ok(());
    }
    println!("effective configuration:");
    for (k, v) in effective.as_object().into_iter().flatten() {
        println!("  {k:<15} {v}");
    }
    println!("\nkeys (file imgsearch.toml, environment IMGSEARCH_<KEY>, some as --flags):");
    for (k, help) in all_keys() {
        println!("  {k:<22} {help}");
    }
    Ok(())
}
