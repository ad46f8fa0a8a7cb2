//! `imgsearch dedup [--threshold T]`

use clap::Args;

use crate::client;
use crate::config::RawConfig;
use crate::GlobalArgs;

#[derive(Args, Debug)]
pub struct DedupArgs {
    /// Minimum similarity (cosine, ip) or maximum distance (l2) for two images to be duplicates.
    /// Exact copies score 1.0; edited copies of one photo mostly above 0.9 (bench/dedup)
    #[arg(long, default_value_t = engine::DUPLICATE_BANDS.duplicate)]
    pub threshold: f32,
    /// Print the groups as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn run(g: &GlobalArgs, args: &DedupArgs) -> anyhow::Result<()> {
    let settings = g.settings(RawConfig::default())?;
    let groups = match client::for_settings(&settings)? {
        Some(server) => server.dedup(args.threshold)?,
        None => engine::Engine::open(settings.engine)?.dedup(args.threshold)?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&groups)?);
        return Ok(());
    }
    if groups.is_empty() {
        println!("no near-duplicates at threshold {}", args.threshold);
        return Ok(());
    }
    for (i, group) in groups.iter().enumerate() {
        println!("group {} ({} images):", i + 1, group.len());
        for h in group {
            println!("  {:>8.4}  {:>6}  {}", h.score, h.id, h.path.display());
        }
    }
    Ok(())
}
