//! `imgsearch`: index your pictures, then search them by image or by words, from the command
//! line or a web page. Clap arguments become one validated configuration, then engine calls.

mod commands;
mod config;
mod exit;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use config::{RawConfig, Settings};

/// Search your own pictures by image or by words, with an embedded vector database.
#[derive(Parser)]
#[command(name = "imgsearch", version, after_help = exit::HELP)]
#[command(
    long_about = "Search your own pictures by image or by words, with an embedded vector \
database.\n\nConfiguration comes from a file (imgsearch.toml in the data directory, or --config), \
then IMGSEARCH_* environment variables, then flags; `imgsearch config` lists every key. Logs go to \
stderr; set RUST_LOG (e.g. RUST_LOG=info) for more."
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every command accepts.
#[derive(Args, Clone, Debug)]
pub struct GlobalArgs {
    /// Folder for the database, catalog, thumbnails and uploads [default: .imgsearch]
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration file [default: DATA_DIR/imgsearch.toml when it exists]
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Vector store: a folder, embedded:/path or milvus://host:port [default: DATA_DIR/db]
    #[arg(long, global = true, value_name = "URL")]
    store: Option<String>,
    /// Model manifest (manifest.toml beside the ONNX file)
    #[arg(long, global = true, value_name = "FILE")]
    model: Option<PathBuf>,
    /// Collection name [default: images]
    #[arg(long, global = true)]
    collection: Option<String>,
    /// Inference runtime: tract or ort [default: tract]
    #[arg(long, global = true)]
    runtime: Option<String>,
    /// Inference threads
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// No progress bar
    #[arg(long, short, global = true)]
    quiet: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Index images under folders (or single files); re-running only embeds what changed
    Index(commands::index::IndexArgs),
    /// Find images similar to an image file, an indexed image, or words
    Search(commands::search::SearchArgs),
    /// List groups of near-duplicate images
    Dedup(commands::dedup::DedupArgs),
    /// Serve the search page and the HTTP API
    Serve(commands::serve::ServeArgs),
    /// Show what is indexed: counts, model, metric, index, store
    Status(commands::status::StatusArgs),
    /// Show the effective configuration and every configuration key
    Config(commands::status::ConfigArgs),
    /// Copy the collection to another store (e.g. the embedded one to Milvus)
    Migrate(commands::migrate::MigrateArgs),
    /// Measure retrieval quality on a labelled folder of images
    Eval(commands::eval::EvalArgs),
    /// Train a projection head on a labelled folder and report its retrieval quality
    Train(commands::train::TrainArgs),
}

impl GlobalArgs {
    /// The configuration layers merged and validated; `extra` holds command-specific flags.
    pub fn settings(&self, extra: RawConfig) -> anyhow::Result<Settings> {
        let env = RawConfig::from_env(&|k| std::env::var(k).ok())?;
        let flags = RawConfig {
            data_dir: self.data_dir.clone(),
            store: self.store.clone(),
            model: self.model.clone(),
            collection: self.collection.clone(),
            runtime: self.runtime.clone(),
            threads: self.threads,
            ..RawConfig::default()
        }
        .merge(extra);
        let file = match &self.config {
            Some(p) => RawConfig::from_file(p, true)?,
            None => {
                let dir = flags
                    .data_dir
                    .clone()
                    .or_else(|| env.data_dir.clone())
                    .unwrap_or_else(|| engine::EngineConfig::default().data_dir);
                RawConfig::from_file(&dir.join("imgsearch.toml"), false)?
            }
        };
        Ok(file.merge(env).merge(flags).validate()?)
    }

    /// Opens the engine with the validated configuration.
    pub fn open(&self, extra: RawConfig) -> anyhow::Result<(engine::Engine, Settings)> {
        let settings = self.settings(extra)?;
        let engine = engine::Engine::open(settings.engine.clone())?;
        Ok((engine, settings))
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // Clap prints help/version on stdout with success, usage errors on stderr with 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    init_tracing();
    let g = &cli.global;
    let result = match &cli.command {
        Command::Index(a) => commands::index::run(g, a),
        Command::Search(a) => commands::search::run(g, a),
        Command::Dedup(a) => commands::dedup::run(g, a),
        Command::Serve(a) => commands::serve::run(g, a),
        Command::Status(a) => commands::status::run(g, a),
        Command::Config(a) => commands::status::run_config(g, a),
        Command::Migrate(a) => commands::migrate::run(g, a),
        Command::Eval(a) => commands::eval::run(g, a),
        Command::Train(a) => commands::train::run(g, a),
    };
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::code_for(&e))
        }
    }
}

/// Logs to stderr, filtered by RUST_LOG (warnings and errors by default).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
