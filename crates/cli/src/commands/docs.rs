//! `imgsearch completions SHELL` and `imgsearch man [--out DIR]`: shell completions and manual
//! pages generated from the clap definitions, so they always match the commands and flags.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write imgsearch.1 and one page per command (imgsearch-index.1, ...) into this folder
    /// instead of printing imgsearch.1 on stdout
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Prints the completion script for `args.shell` on stdout.
pub fn completions(mut cmd: clap::Command, args: &CompletionsArgs) -> anyhow::Result<()> {
    clap_complete::generate(args.shell, &mut cmd, "imgsearch", &mut std::io::stdout());
    Ok(())
}

/// Prints the main manual page, or writes every page into `--out`.
pub fn man(cmd: clap::Command, args: &ManArgs) -> anyhow::Result<()> {
    match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("cannot write the manual pages into {}", dir.display()))?;
            eprintln!("manual pages written to {}", dir.display());
        }
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .context("cannot write the manual page")?;
        }
    }
    Ok(())
}
