//! `imgsearch`: index your pictures, then search them by image or by words, from the command
//! line or a web page. Clap arguments become one validated configuration, then engine calls.

#[cfg(feature = "bundled-model")]
mod bundled;
mod client;
mod commands;
mod config;
mod exit;
mod progress;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

use config::{ConfigError, Places, RawConfig, Settings};

/// Search your own pictures by image or by words, with an embedded vector database.
#[derive(Parser)]
#[command(name = "imgsearch", version, after_help = exit::HELP)]
#[command(
    long_about = "Search your own pictures by image or by words, with an embedded vector \
database.\n\nThe index lives in the platform's data directory (on Linux $XDG_DATA_HOME/imgsearch, \
else ~/.local/share/imgsearch) unless --data-dir or IMGSEARCH_DATA_DIR says otherwise; \
`imgsearch status` prints where everything is. Configuration comes from files (imgsearch.toml in \
the platform's configuration directory, then in the data directory; or --config), then \
IMGSEARCH_* environment variables, then flags; `imgsearch config` lists every key. Logs go to \
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
    /// Folder for the database, catalog, thumbnails and uploads [default: the platform's data
    /// directory, e.g. ~/.local/share/imgsearch]
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration file [default: imgsearch.toml in the platform's configuration directory and
    /// in DATA_DIR, when they exist]
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Vector store: a folder, embedded:/path or milvus://host:port [default: DATA_DIR/db]
    #[arg(long, global = true, value_name = "URL")]
    store: Option<String>,
    /// Model manifest (manifest.toml beside the ONNX file), or its folder [default: the model
    /// built into the binary]
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
    /// List the built-in and configured models, or write the built-in one out
    Models(commands::models::ModelsArgs),
    /// Print a shell completion script on stdout (e.g. `imgsearch completions bash`)
    Completions(commands::docs::CompletionsArgs),
    /// Print the manual page (roff) on stdout, or write one page per command into a folder
    Man(commands::docs::ManArgs),
}

impl GlobalArgs {
    /// The configuration layers merged and validated; `extra` holds command-specific flags.
    ///
    /// Files come first (the platform's configuration directory, then the data directory; or
    /// only `--config`), then the environment, then flags. The data directory itself comes from
    /// a flag, the environment or the first file; else a `./.imgsearch` left in the working
    /// directory by older versions (with a notice, so that nobody's index seems to vanish); else
    /// the platform's data directory.
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
        let mut places = Places::default();
        let mut file = RawConfig::default();
        let read = |path: PathBuf, places: &mut Places| -> Result<RawConfig, ConfigError> {
            let found = path.is_file();
            places.config_files.push((path.clone(), found));
            if found {
                RawConfig::from_file(&path, true)
            } else {
                Ok(RawConfig::default())
            }
        };
        match &self.config {
            Some(p) => {
                file = RawConfig::from_file(p, true)?;
                places.config_files.push((p.clone(), true));
            }
            None => {
                if let Some(dir) = dirs::config_dir() {
                    file = read(dir.join("imgsearch").join("imgsearch.toml"), &mut places)?;
                }
            }
        }
        let (data_dir, from) = if let Some(d) = &flags.data_dir {
            (d.clone(), "--data-dir")
        } else if let Some(d) = &env.data_dir {
            (d.clone(), "IMGSEARCH_DATA_DIR")
        } else if let Some(d) = &file.data_dir {
            (d.clone(), "configuration file")
        } else if Path::new(LEGACY_DATA_DIR).is_dir() {
            eprintln!(
                "note: using ./{LEGACY_DATA_DIR} in the working directory (where older versions \
                 kept the index); move it to {} or pass --data-dir to choose",
                platform_data_dir().map_or("the platform data directory".into(), |d| d
                    .display()
                    .to_string())
            );
            (
                PathBuf::from(LEGACY_DATA_DIR),
                "./.imgsearch in the working directory",
            )
        } else {
            let dir = platform_data_dir().ok_or_else(|| {
                ConfigError(
                    "no platform data directory (is HOME set?); pass --data-dir or set \
                     IMGSEARCH_DATA_DIR"
                        .into(),
                )
            })?;
            (dir, "the platform's data directory")
        };
        if self.config.is_none() {
            file = file.merge(read(data_dir.join("imgsearch.toml"), &mut places)?);
        }
        places.data_dir_from = from;
        let mut raw = file.merge(env).merge(flags);
        raw.data_dir = Some(data_dir);
        let mut settings = raw.validate()?;
        settings.places = places;
        Ok(settings)
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
        Command::Models(a) => commands::models::run(g, a),
        Command::Completions(a) => commands::docs::completions(Cli::command(), a),
        Command::Man(a) => commands::docs::man(Cli::command(), a),
    };
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::code_for(&e))
        }
    }
}

/// Where older versions kept the index: relative to the working directory.
const LEGACY_DATA_DIR: &str = ".imgsearch";

/// The default data directory: `imgsearch` in the platform's data directory.
fn platform_data_dir() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("imgsearch"))
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
