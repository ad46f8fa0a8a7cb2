//! `imgsearch models [--export DIR] [--json]`: the model built into the binary and the
//! configured one, and which is in use; `--export` writes the built-in model out as a folder
//! that `--model DIR` (or a package shipping models separately) can use.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde_json::json;

use crate::config::RawConfig;
use crate::GlobalArgs;

#[derive(Args, Debug)]
pub struct ModelsArgs {
    /// Write the built-in model (manifest, ONNX file, labels, licence) into this folder
    #[arg(long, value_name = "DIR")]
    pub export: Option<PathBuf>,
    /// Print the list as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// The model compiled into this binary, if any.
fn built_in() -> Option<&'static embed::EmbeddedModel> {
    #[cfg(feature = "bundled-model")]
    return Some(&crate::bundled::MODEL);
    #[cfg(not(feature = "bundled-model"))]
    return None;
}

pub fn run(g: &GlobalArgs, args: &ModelsArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.export {
        let model = built_in().context(
            "this binary was built without a built-in model (cargo feature bundled-model)",
        )?;
        let manifest = model
            .export(dir)
            .with_context(|| format!("cannot export the built-in model to {}", dir.display()))?;
        eprintln!(
            "wrote the built-in model to {}; use it with --model {}",
            dir.display(),
            manifest.display()
        );
        return Ok(());
    }
    let in_use = g.settings(RawConfig::default())?.engine.model;
    let mut sources: Vec<(&str, embed::ModelSource)> = Vec::new();
    if let Some(m) = built_in() {
        sources.push(("built-in", embed::ModelSource::Embedded(m)));
    }
    if let embed::ModelSource::Manifest(_) = &in_use {
        sources.push(("configured", in_use.clone()));
    }
    let rows: Vec<_> = sources
        .into_iter()
        .map(|(kind, source)| {
            let (id, dimension, error) = match source.manifest().and_then(|m| {
                let id = source.model_id()?;
                Ok((id, m.dimension))
            }) {
                Ok((id, dim)) => (Some(id), Some(dim), None),
                Err(e) => (None, None, Some(e.to_string())),
            };
            json!({
                "kind": kind, "source": source.describe(), "id": id, "dimension": dimension,
                "in_use": source == in_use, "error": error,
            })
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    for r in &rows {
        let mark = if r["in_use"] == true { "*" } else { " " };
        let what = match (r["id"].as_str(), r["error"].as_str()) {
            (Some(id), _) => format!("{id}, {} dimensions", r["dimension"]),
            (None, Some(e)) => format!("unusable: {e}"),
            (None, None) => String::new(),
        };
        println!(
            "{mark} {:<10} {}  {what}",
            r["kind"].as_str().unwrap_or(""),
            r["source"].as_str().unwrap_or("")
        );
    }
    println!("(* in use)");
    Ok(())
}
