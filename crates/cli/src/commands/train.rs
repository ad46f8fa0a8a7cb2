//! `imgsearch train --data DIR --loss contrastive|triplet|triplet-semi-hard|infonce|pca
//!  --head linear|mlp --out FILE [--classes ...] [--val-classes ...] [--self-supervised]`
//!
//! Trains a projection head on the cached embeddings of a folder of class sub-folders and
//! writes it as a head file for `imgsearch eval --head`. Validation (for early stopping) uses
//! `--val-classes` when given, otherwise a held-out share of every training class. With
//! `--self-supervised` the class folders are ignored for training: every image is its own class
//! and embeddings of augmented views are the positives.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, ValueEnum};
use engine::learn::{Method, Plan};
use train::{AdamConfig, HeadArch, Loss, Mining, PcaConfig, TrainConfig, TrainReport};

use crate::progress::Bar;
use crate::GlobalArgs;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LossArg {
    Contrastive,
    /// Triplet with batch-hard mining
    Triplet,
    /// Triplet with semi-hard mining
    TripletSemiHard,
    Infonce,
    /// PCA-whitening (no gradient training)
    Pca,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HeadArg {
    Linear,
    Mlp,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Folder with one sub-folder of images per class
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Training loss
    #[arg(long, value_enum)]
    pub loss: LossArg,
    /// Head shape (pca always makes a linear head)
    #[arg(long, value_enum, default_value = "linear")]
    pub head: HeadArg,
    /// Where to write the head file
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Training classes (sub-folder names, comma separated) [default: all but --val-classes]
    #[arg(long, value_delimiter = ',', value_name = "C1,C2,...")]
    pub classes: Vec<String>,
    /// Validation classes for early stopping [default: a held-out share of each training class]
    #[arg(long, value_delimiter = ',', value_name = "C1,C2,...")]
    pub val_classes: Vec<String>,
    /// Share of each training class held out for validation when --val-classes is not given
    #[arg(long, default_value_t = 0.2)]
    pub holdout: f64,
    /// Ignore the class folders for training: augmented views of one image are the positives
    #[arg(long)]
    pub self_supervised: bool,
    /// Augmented views embedded per image in self-supervised mode
    #[arg(long, default_value_t = 4)]
    pub views: usize,
    /// Maximum number of epochs
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    /// Stop after this many epochs without a better validation mAP@R (0 = never)
    #[arg(long, default_value_t = 5)]
    pub patience: usize,
    /// Output dimension of the head
    #[arg(long, default_value_t = 256)]
    pub dim: usize,
    /// Hidden width of the MLP head
    #[arg(long, default_value_t = 512)]
    pub hidden: usize,
    /// Adam learning rate
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// Margin for contrastive (Euclidean distance) and triplet (squared distance) losses
    /// [default: 1.0 contrastive, 0.2 triplet]
    #[arg(long)]
    pub margin: Option<f32>,
    /// InfoNCE temperature
    #[arg(long, default_value_t = 0.1)]
    pub temperature: f32,
    /// Classes per batch (P); images per batch in self-supervised mode
    #[arg(long, default_value_t = 8)]
    pub batch_classes: usize,
    /// Samples per class in a batch (K); 2 views in self-supervised mode
    #[arg(long, default_value_t = 4)]
    pub batch_samples: usize,
    /// PCA-whitening: shrinkage added to the eigenvalues, as a share of their mean
    #[arg(long, default_value_t = 0.1)]
    pub shrinkage: f64,
    #[command(flatten)]
    pub common: super::LearnArgs,
    /// Seed for initialisation, batches, hold-out split and augmentations
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl TrainArgs {
    fn loss(&self) -> Loss {
        match self.loss {
            LossArg::Contrastive => Loss::Contrastive {
                margin: self.margin.unwrap_or(1.0),
            },
            LossArg::Triplet | LossArg::TripletSemiHard => Loss::Triplet {
                margin: self.margin.unwrap_or(0.2),
                mining: if self.loss == LossArg::Triplet {
                    Mining::BatchHard
                } else {
                    Mining::SemiHard
                },
            },
            LossArg::Infonce | LossArg::Pca => Loss::InfoNce {
                temperature: self.temperature,
            },
        }
    }

    fn config(&self) -> TrainConfig {
        TrainConfig {
            arch: match self.head {
                HeadArg::Linear => HeadArch::Linear { out: self.dim },
                HeadArg::Mlp => HeadArch::Mlp {
                    hidden: self.hidden,
                    out: self.dim,
                },
            },
            loss: self.loss(),
            adam: AdamConfig {
                learning_rate: self.lr,
                ..AdamConfig::default()
            },
            epochs: self.epochs,
            classes_per_batch: self.batch_classes,
            samples_per_class: if self.self_supervised {
                2
            } else {
                self.batch_samples
            },
            batches_per_epoch: None,
            patience: self.patience,
            seed: self.seed,
        }
    }
}

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
    let t = engine::learn::train(&mut wb, &plan, &Bar::new(g.quiet))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: TrainArgs,
    }

    fn parse(extra: &[&str]) -> TrainArgs {
        let mut argv = vec!["t", "--data", "d", "--out", "o.head"];
        argv.extend_from_slice(extra);
        Wrapper::try_parse_from(argv).unwrap().args
    }

    #[test]
    fn flags_map_to_losses_and_heads() {
        let a = parse(&["--loss", "triplet-semi-hard"]);
        assert_eq!(
            a.config().loss,
            Loss::Triplet {
                margin: 0.2,
                mining: Mining::SemiHard
            }
        );
        let a = parse(&[
            "--loss",
            "contrastive",
            "--margin",
            "0.5",
            "--head",
            "mlp",
            "--dim",
            "64",
        ]);
        let cfg = a.config();
        assert_eq!(cfg.loss, Loss::Contrastive { margin: 0.5 });
        assert_eq!(
            cfg.arch,
            HeadArch::Mlp {
                hidden: 512,
                out: 64
            }
        );
        let a = parse(&[
            "--loss",
            "infonce",
            "--self-supervised",
            "--batch-samples",
            "6",
        ]);
        assert_eq!(a.config().samples_per_class, 2);
        assert!(
            Wrapper::try_parse_from(["t", "--data", "d", "--out", "o", "--loss", "nope"]).is_err()
        );
    }
}
