//! The flags of `imgsearch train` and their mapping to the trainer's configuration.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use train::{AdamConfig, HeadArch, Loss, Mining, TrainConfig};

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
    pub common: crate::commands::LearnArgs,
    /// Seed for initialisation, batches, hold-out split and augmentations
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl TrainArgs {
    pub(super) fn loss(&self) -> Loss {
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

    pub(super) fn config(&self) -> TrainConfig {
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
