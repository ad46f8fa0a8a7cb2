//! `imgsearch index PATH...`

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use crate::client;
use crate::config::RawConfig;
use crate::progress::Bar;
use crate::GlobalArgs;

/// How many skipped files the summary lists unless `--all` is given.
const LIST_LIMIT: usize = 20;

#[derive(Args, Debug)]
pub struct IndexArgs {
    /// Folders (searched recursively; hidden entries skipped) or image files
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Print the report as JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// List every skipped file, not only the first 20
    #[arg(long)]
    pub all: bool,
}

pub fn run(g: &GlobalArgs, args: &IndexArgs) -> anyhow::Result<()> {
    let settings = g.settings(RawConfig::default())?;
    let bar = Bar::new(g.quiet || args.json);
    // With a server running on the data directory, the indexing is its job, followed here.
    let report = match client::for_settings(&settings)? {
        Some(server) => server.index(&args.paths, &bar)?,
        None => engine::Engine::open(settings.engine)?.index_paths(&args.paths, &bar)?,
    };
    print_report(&report, args)
}

fn print_report(report: &engine::IndexReport, args: &IndexArgs) -> anyhow::Result<()> {
    if args.json {
        let list = |v: &[(PathBuf, String)]| -> Vec<serde_json::Value> {
            v.iter()
                .map(|(p, r)| json!({"path": p, "reason": r}))
                .collect()
        };
        let out = json!({
            "added": report.added, "updated": report.updated, "removed": report.removed,
            "unchanged": report.unchanged, "skipped": list(&report.skipped),
            "failed": list(&report.failed), "seconds": report.seconds,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let embedded = report.added + report.updated;
    let rate = if report.seconds > 0.0 {
        embedded as f64 / report.seconds
    } else {
        0.0
    };
    println!(
        "{} added, {} updated, {} removed, {} unchanged, {} skipped, {} failed in {:.1} s ({:.1} images/s)",
        report.added,
        report.updated,
        report.removed,
        report.unchanged,
        report.skipped.len(),
        report.failed.len(),
        report.seconds,
        rate
    );
    if !report.failed.is_empty() {
        println!("failed:");
        for (p, r) in &report.failed {
            println!("  {}: {r}", p.display());
        }
    }
    if !report.skipped.is_empty() {
        println!("skipped:");
        let shown = if args.all { usize::MAX } else { LIST_LIMIT };
        for (p, r) in report.skipped.iter().take(shown) {
            println!("  {}: {r}", p.display());
        }
        if report.skipped.len() > shown {
            println!(
                "  ... and {} more (--all lists them)",
                report.skipped.len() - shown
            );
        }
    }
    Ok(())
}
