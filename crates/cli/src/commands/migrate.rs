//! `imgsearch migrate --to URL [--from URL]`: copy the collection between stores.

use clap::Args;

use crate::config::{ConfigError, RawConfig};
use crate::GlobalArgs;

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// Target store: milvus://host:port[/db] (needs a build with --features milvus), or a folder
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Source store [default: the configured store, DATA_DIR/db unless `store` is set]
    #[arg(long, value_name = "URL")]
    pub from: Option<String>,
    /// Print the report as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn run(g: &GlobalArgs, args: &MigrateArgs) -> anyhow::Result<()> {
    let settings = g.settings(RawConfig::default())?;
    let e = &settings.engine;
    let from_url = match (&args.from, &e.store_url) {
        (Some(u), _) | (None, Some(u)) => u.clone(),
        (None, None) => {
            // A copy taken while a server may be writing would miss what it adds meanwhile, and
            // the server holds the directory's locks anyway: the copy is made with it stopped.
            if let Some(running) = crate::client::live_server(&e.data_dir) {
                let f = running.file();
                return Err(ConfigError(format!(
                    "imgsearch serve (pid {}, http://{}/) owns {}; stop it before migrating, so \
                     that the copy is complete",
                    f.pid,
                    f.address,
                    e.data_dir.display()
                ))
                .into());
            }
            format!("embedded:{}", e.data_dir.join("db").display())
        }
    };
    let quiet = g.quiet || args.json;
    let report =
        engine::migrate::migrate_urls(&from_url, &args.to, &e.collection, &|done, total| {
            if !quiet {
                eprint!("\r{done}/{total} points copied");
            }
        })?;
    if !quiet {
        eprintln!();
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "copied {} points of {} from {from_url} to {} in {:.1} s (target now holds {}{})",
            report.copied,
            report.collection,
            args.to,
            report.seconds,
            report.target_count,
            if report.created {
                ", collection created"
            } else {
                ""
            }
        );
        println!(
            "to use it: set store = {:?} in imgsearch.toml or IMGSEARCH_STORE",
            args.to
        );
    }
    Ok(())
}
