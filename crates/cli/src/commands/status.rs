//! `imgsearch status` and `imgsearch config`.

use clap::Args;
use serde_json::json;

use crate::client;
use crate::config::{all_keys, RawConfig};
use crate::GlobalArgs;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Print the status as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn run(g: &GlobalArgs, args: &StatusArgs) -> anyhow::Result<()> {
    let settings = g.settings(RawConfig::default())?;
    // The engine's status as JSON, from a running server's API or from the engine opened here,
    // so that both print through the code below.
    let mut v = match client::for_settings(&settings)? {
        Some(server) => server.status()?,
        None => serde_json::to_value(engine::Engine::open(settings.engine.clone())?.status()?)?,
    };
    let places = &settings.places;
    let data_dir = std::path::absolute(&settings.engine.data_dir)
        .unwrap_or_else(|_| settings.engine.data_dir.clone());
    if args.json {
        if let Some(o) = v.as_object_mut() {
            o.insert("data_dir".into(), json!(data_dir));
            o.insert("data_dir_from".into(), json!(places.data_dir_from));
            o.insert(
                "config_files".into(),
                json!(places
                    .config_files
                    .iter()
                    .map(|(p, found)| json!({"path": p, "found": found}))
                    .collect::<Vec<_>>()),
            );
            o.insert(
                "model_source".into(),
                json!(settings.engine.model.describe()),
            );
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let text = |key: &str| match &v[key] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    println!(
        "data dir:    {} (from {})",
        data_dir.display(),
        places.data_dir_from
    );
    for (path, found) in &places.config_files {
        let state = if *found { "read" } else { "not present" };
        println!("config file: {} ({state})", path.display());
    }
    println!("model from:  {}", settings.engine.model);
    println!("store:       {}", text("store"));
    println!("collection:  {}", text("collection"));
    println!(
        "images:      {} points, {} catalogued files",
        text("points"),
        text("files")
    );
    println!("model:       {}", text("model"));
    println!("runtime:     {}", text("runtime"));
    if let Some(m) = v["collection_model"].as_str() {
        println!(
            "WARNING:     the collection was made by model {m}; searches and indexing are refused"
        );
    }
    println!("dimension:   {}", text("dim"));
    println!("metric:      {}", v["metric"].as_str().unwrap_or("?"));
    // Through the typed spec, so that its fields print in their declared order.
    let index = serde_json::from_value::<vecdb::IndexSpec>(v["index"].clone()).map_or_else(
        |_| v["index"].to_string(),
        |spec| serde_json::to_string(&spec).unwrap_or_default(),
    );
    println!("index:       {index}");
    println!("text search: {}", text("text_search"));
    if let Some(st) = v["storage"].as_object() {
        let mib = |key: &str| {
            st.get(key).and_then(|b| b.as_u64()).unwrap_or(0) as f64 / (1024.0 * 1024.0)
        };
        println!(
            "memory:      {:.1} MiB vectors mapped (page cache), {:.1} MiB index, {:.1} MiB slot tables, {}",
            mib("vectors_mapped_bytes"),
            mib("index_bytes"),
            mib("slot_table_bytes"),
            if st.get("field_index_loaded").and_then(|b| b.as_bool()) == Some(true) {
                format!("{:.1} MiB field indexes", mib("field_index_bytes"))
            } else {
                "field indexes not loaded".to_string()
            }
        );
        println!("disk:        {:.1} MiB", mib("disk_bytes"));
    }
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
        "data_dir": e.data_dir, "store": e.store_url, "model": e.model.describe(),
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
