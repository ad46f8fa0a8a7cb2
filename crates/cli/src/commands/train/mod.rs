//! `imgsearch train --data DIR --loss contrastive|triplet|triplet-semi-hard|infonce|pca
//!  --head linear|mlp --out FILE [--classes ...] [--val-classes ...] [--self-supervised]`
//!
//! Trains a projection head on the cached embeddings of a folder of class sub-folders and
//! writes it as a head file for `imgsearch eval --head`. Validation (for early stopping) uses
//! `--val-classes` when given, otherwise a held-out share of every training class. With
//! `--self-supervised` the class folders are ignored for training: every image is its own class
//! and embeddings of augmented views are the positives.

mod args;

use anyhow::bail;
use train::learn::{Method, Plan};
use train::{PcaConfig, TrainReport};

pub use args::TrainArgs;
use args::{HeadArg, LossArg};

use crate::progress::Bar;
use crate::GlobalArgs;

pub fn run(g: &GlobalArgs, args: &TrainArgs) -> anyhow::Result<()> {
    if args.loss == LossArg::Pca && args.head == HeadArg::Mlp {
        bail!("--loss pca makes a linear head; use --head linear");
    }
    if args.loss == LossArg::Pca && args.self_supervised {
        bail!("--loss pca needs no views; drop --self-supervised");
    }
    let mut wb = super::workbench(g, &args.common)?;
    let method = if args.loss == LossArg::Pca {
        Method::Pca(PcaConfig {
            out_dim: args.dim,
            shrinkage: args.shrinkage,
            ..PcaConfig::default()
        })
    } else {
        Method::Gradient {
            config: args.config(),
            self_supervised: args.self_supervised,
            views: args.views,
        }
    };
    let plan = Plan {
        data: args.data.clone(),
        classes: args.classes.clone(),
        val_classes: args.val_classes.clone(),
        holdout: args.holdout,
        seed: args.seed,
        method,
        out: args.out.clone(),
    };
    let t = train::learn::train(&mut wb, &plan, &Bar::new(g.quiet))?;
    if let Some(dir) = &t.manifest.exported_model {
        eprintln!("the built-in model written to {}", dir.display());
    }
    eprintln!(
        "manifest naming this head written to {p}; index and search with it through \
         `imgsearch --model {p} ...` (into a new data dir or --collection: a collection keeps \
         the model and head it was made with)",
        p = t.manifest.path.display()
    );
    match (&t.report, args.common.json) {
        (None, true) => println!(
            "{}",
            serde_json::json!({"loss": "pca", "out": args.out, "val_map_at_r": t.val_map_at_r})
        ),
        (None, false) => {
            println!(
                "PCA-whitening head ({} -> {}) written to {}",
                t.head.input_dim(),
                t.head.output_dim(),
                args.out.display()
            );
            if let Some(m) = t.val_map_at_r {
                println!("validation mAP@R {m:.4}");
            }
        }
        (Some(report), true) => {
            let mut json = report_json(report, args);
            json["raw_val_map_at_r"] = serde_json::json!(t.raw_val_map_at_r);
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
        (Some(report), false) => {
            eprintln!(
                "trained {} head with {} on {} rows ({} validation)",
                match args.head {
                    HeadArg::Linear => "a linear",
                    HeadArg::Mlp => "an MLP",
                },
                args.loss().name(),
                t.train_rows,
                t.val_rows
            );
            if let Some(r) = t.raw_val_map_at_r {
                println!("validation mAP@R of the raw embeddings: {r:.4}");
            }
            print_report(report, args);
        }
    }
    Ok(())
}

fn print_report(r: &TrainReport, args: &TrainArgs) {
    let fmt = |m: Option<f64>| m.map_or("-".to_string(), |v| format!("{v:.4}"));
    println!("epoch  train loss  val mAP@R");
    println!("{:>5}  {:>10}  {:>9}", 0, "-", fmt(r.initial_val_map_at_r));
    for e in &r.epochs {
        println!(
            "{:>5}  {:>10.4}  {:>9}",
            e.epoch,
            e.train_loss,
            fmt(e.val_map_at_r)
        );
    }
    println!(
        "kept epoch {} (val mAP@R {}){}; head written to {}",
        r.best_epoch,
        fmt(r.best_val_map_at_r),
        if r.stopped_early {
            ", stopped early"
        } else {
            ""
        },
        args.out.display()
    );
}

fn report_json(r: &TrainReport, args: &TrainArgs) -> serde_json::Value {
    serde_json::json!({
        "out": args.out,
        "initial_val_map_at_r": r.initial_val_map_at_r,
        "best_epoch": r.best_epoch,
        "best_val_map_at_r": r.best_val_map_at_r,
        "stopped_early": r.stopped_early,
        "epochs": r.epochs.iter().map(|e| serde_json::json!({
            "epoch": e.epoch, "train_loss": e.train_loss, "val_map_at_r": e.val_map_at_r,
        })).collect::<Vec<_>>(),
    })
}
