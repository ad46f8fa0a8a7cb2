//! `imgsearch serve [--bind ADDR]`

use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::config::RawConfig;
use crate::GlobalArgs;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
}

pub fn run(g: &GlobalArgs, args: &ServeArgs) -> anyhow::Result<()> {
    let extra = RawConfig {
        bind: args.bind.clone(),
        ..RawConfig::default()
    };
    let (engine, settings) = g.open(extra)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    println!("serving on http://{}/ (Ctrl-C to stop)", settings.bind);
    runtime
        .block_on(server::serve(Arc::new(engine), settings.bind))
        .with_context(|| format!("serving on {}", settings.bind))?;
    Ok(())
}
