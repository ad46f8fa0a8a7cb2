//! `imgsearch serve [--bind ADDR] [--token TOKEN | --token-file FILE] [--allow-host NAME]...
//! [--cors-origin ORIGIN]... [--insecure-no-auth]`

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::config::{ConfigError, RawConfig};
use crate::GlobalArgs;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Require `Authorization: Bearer TOKEN` on every API request (also IMGSEARCH_TOKEN or
    /// `token` in the config file; prefer those or --token-file: flags show in `ps`)
    #[arg(long, value_name = "TOKEN", conflicts_with = "token_file")]
    pub token: Option<String>,
    /// Read the token from the first line of FILE
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Accept this host name in the Host header (the name a reverse proxy or the LAN uses;
    /// NAME or NAME:PORT); addresses and localhost are always accepted. Repeatable
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allow_host: Vec<String>,
    /// Let pages of this origin (https://app.example) call the API, with CORS headers.
    /// Repeatable
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origin: Vec<String>,
    /// Keep this folder in sync: watch it, rescan it at start and every `rescan_secs`, and
    /// index what is added, changed, renamed or removed (besides `libraries` in the
    /// configuration). Repeatable
    #[arg(long = "watch", value_name = "DIR")]
    pub watch: Vec<PathBuf>,
    /// Serve beyond loopback without a token: anyone who can reach the address can read,
    /// add and delete images
    #[arg(long)]
    pub insecure_no_auth: bool,
}

pub fn run(g: &GlobalArgs, args: &ServeArgs) -> anyhow::Result<()> {
    let token = match &args.token_file {
        Some(path) => Some(read_token_file(path)?),
        None => args.token.clone(),
    };
    let extra = RawConfig {
        bind: args.bind.clone(),
        token,
        allow_host: (!args.allow_host.is_empty()).then(|| args.allow_host.clone()),
        cors_origin: (!args.cors_origin.is_empty()).then(|| args.cors_origin.clone()),
        ..RawConfig::default()
    };
    let watch = args
        .watch
        .iter()
        .map(|dir| {
            std::path::absolute(dir)
                .map_err(|e| ConfigError(format!("--watch {}: {e}", dir.display())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Checked before the engine opens (which loads the model), so a refused start is quick.
    let mut settings = g.settings(extra)?;
    check_exposure(&settings, args.insecure_no_auth)?;
    if let Some(running) = crate::client::live_server(&settings.engine.data_dir) {
        let f = running.file();
        return Err(ConfigError(format!(
            "imgsearch serve (pid {}, http://{}/) already owns {}; stop it first",
            f.pid,
            f.address,
            settings.engine.data_dir.display()
        ))
        .into());
    }
    // In a server the decoding pool serves only indexing jobs (an upload or a search embeds its
    // image on the request's thread). It leaves one core to requests and runs at bulk priority
    // (see `common::background` for the measurements behind both), unless `threads` is set.
    settings.engine.runtime.background = true;
    if settings.engine.runtime.threads == 0 {
        settings.engine.runtime.threads = common::background::bulk_threads();
    }
    let engine = engine::Engine::open(settings.engine.clone())?;
    settings.server.libraries.extend(watch);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let auth = if settings.server.token.is_some() {
        "; API requests need the token"
    } else {
        ""
    };
    println!(
        "serving on http://{}/ (Ctrl-C to stop{auth})",
        settings.bind
    );
    runtime
        .block_on(server::serve_with_config(
            Arc::new(engine),
            settings.bind,
            settings.server.clone(),
        ))
        .with_context(|| format!("serving on {}", settings.bind))?;
    Ok(())
}

/// Beyond loopback, anyone on the network could drive the API, so a token is required unless
/// the user says otherwise in so many words.
fn check_exposure(settings: &crate::config::Settings, insecure: bool) -> Result<(), ConfigError> {
    if settings.bind.ip().is_loopback() || settings.server.token.is_some() || insecure {
        return Ok(());
    }
    Err(ConfigError(format!(
        "refusing to serve on {} without a token: anyone who can reach it could read, add and \
         delete your images. Set one with --token-file FILE, IMGSEARCH_TOKEN or `token` in the \
         config file, bind 127.0.0.1, or pass --insecure-no-auth if the network is trusted",
        settings.bind
    )))
}

fn read_token_file(path: &std::path::Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read token file {}: {e}", path.display())))?;
    let token = text.lines().next().unwrap_or_default().trim().to_string();
    if token.is_empty() {
        return Err(ConfigError(format!(
            "token file {} is empty",
            path.display()
        )));
    }
    Ok(token)
}
