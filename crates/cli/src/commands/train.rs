//! `imgsearch train --data DIR --loss contrastive|triplet|triplet-semi-hard|infonce|pca
//!  --head linear|mlp --out FILE [--classes ...] [--val-classes ...] [--self-supervised]`
//!
//! Trains a projection head on the cached embeddings of a folder of class sub-folders and
//! writes it as a head file for `imgsearch eval --head`. Validation (for early stopping) uses
//! `--val-classes` when given, otherwise a held-out share of every training class. With
//! `--self-supervised` the class folders are ignored for training: every image is its own class
//! and embeddings of augmented views are the positives.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use embed::decode_file;
use train::augment::{augment, view_rng, AugmentConfig, ViewDatasetBuilder};
use train::{
    fit_pca_whitening, train_head, AdamConfig, Dataset, HeadArch, Loss, Matrix, Mining, PcaConfig,
    TrainConfig, TrainReport,
};

use super::eval::{
    embed_files, embed_variant, file_key, list_corpus, open_cache, save_cache, setup, Corpus, Setup,
};
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
    /// Embedding cache file [default: DATA_DIR/embeddings.cache]
    #[arg(long, value_name = "FILE")]
    pub cache: Option<PathBuf>,
    /// Print the training report as JSON on stdout
    #[arg(long)]
    pub json: bool,
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

/// Labelled embeddings of a corpus (files that failed to embed are left out).
fn labelled(
    s: &Setup,
    cache: &mut train::EmbeddingCache,
    corpus: &Corpus,
) -> anyhow::Result<Dataset> {
    let emb = embed_files(s, cache, &corpus.paths)?;
    let (mut rows, mut labels) = (Vec::new(), Vec::new());
    for (v, &l) in emb.into_iter().zip(&corpus.labels) {
        if let Some(v) = v {
            rows.push(v);
            labels.push(l);
        }
    }
    Ok(Dataset::new(Matrix::from_rows(&rows)?, labels)?)
}

/// FNV-1a, to derive a per-image augmentation stream from its cache key.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Embedded augmented views of every training image, one class per image.
fn view_dataset(
    s: &Setup,
    cache: &mut train::EmbeddingCache,
    corpus: &Corpus,
    args: &TrainArgs,
) -> anyhow::Result<Dataset> {
    let aug = AugmentConfig::default();
    let mut builder = ViewDatasetBuilder::new(aug, args.views, args.seed)?;
    eprintln!(
        "embedding {} augmented views of {} images (cached views are reused)",
        args.views * corpus.paths.len(),
        corpus.paths.len()
    );
    for (n, path) in corpus.paths.iter().enumerate() {
        let key = file_key(path)?;
        let decoded = std::cell::OnceCell::new();
        let mut views = Vec::with_capacity(args.views);
        for v in 0..args.views {
            // Each view has its own random stream derived from the seed, the file and the view
            // number, so a cached view and a recomputed one are the same image.
            let make = || -> anyhow::Result<train::image::RgbImage> {
                let img = match decoded.get() {
                    Some(img) => img,
                    None => {
                        let d = decode_file(path, &s.limits)?;
                        decoded.get_or_init(|| d.rgb)
                    }
                };
                let mut rng = view_rng(args.seed ^ fnv1a(&key), v as u64);
                Ok(augment(img, &aug, &mut rng)?)
            };
            let variant = format!("view={}/{}", args.seed, v);
            views.push(embed_variant(s, cache, &key, &variant, &make)?);
        }
        builder.add_views(views)?;
        if (n + 1) % 50 == 0 {
            save_cache(s, cache)?;
            eprintln!("  {} / {} images", n + 1, corpus.paths.len());
        }
    }
    save_cache(s, cache)?;
    Ok(builder.finish()?)
}

pub fn run(g: &GlobalArgs, args: &TrainArgs) -> anyhow::Result<()> {
    if args.loss == LossArg::Pca && args.head == HeadArg::Mlp {
        bail!("--loss pca makes a linear head; use --head linear");
    }
    if args.loss == LossArg::Pca && args.self_supervised {
        bail!("--loss pca needs no views; drop --self-supervised");
    }
    let s = setup(g, args.cache.as_deref())?;
    let all = list_corpus(&args.data, &[])?;
    if let Some(c) = args.val_classes.iter().find(|c| args.classes.contains(c)) {
        bail!("class {c:?} is both a training and a validation class");
    }
    let train_classes: Vec<String> = if args.classes.is_empty() {
        all.classes
            .iter()
            .filter(|c| !args.val_classes.contains(c))
            .cloned()
            .collect()
    } else {
        args.classes.clone()
    };
    let train_corpus = list_corpus(&args.data, &train_classes)?;
    let mut cache = open_cache(&s);
    let labelled_train = labelled(&s, &mut cache, &train_corpus)?;
    save_cache(&s, &cache)?;
    let val = if args.val_classes.is_empty() {
        None
    } else {
        Some(labelled(
            &s,
            &mut cache,
            &list_corpus(&args.data, &args.val_classes)?,
        )?)
    };
    save_cache(&s, &cache)?;
    let model_id = s.embedder.model_id().to_string();
    let classes = train_corpus.classes.join(",");

    if args.loss == LossArg::Pca {
        let cfg = PcaConfig {
            out_dim: args.dim,
            shrinkage: args.shrinkage,
            ..PcaConfig::default()
        };
        let mut head = fit_pca_whitening(&labelled_train.x, &cfg, &model_id)?;
        head.set_description(format!("{} classes={classes}", head.description()));
        head.save(&args.out)
            .with_context(|| format!("cannot write {}", args.out.display()))?;
        write_manifest(&s, &args.out)?;
        let val_map = match &val {
            Some(v) => Some(
                train::metrics::class_retrieval(&head.apply_matrix(&v.x)?, &v.labels)?.map_at_r,
            ),
            None => None,
        };
        if args.json {
            println!(
                "{}",
                serde_json::json!({"loss": "pca", "out": args.out, "val_map_at_r": val_map})
            );
        } else {
            println!(
                "PCA-whitening head ({} -> {}) written to {}",
                head.input_dim(),
                head.output_dim(),
                args.out.display()
            );
            if let Some(m) = val_map {
                println!("validation mAP@R {m:.4}");
            }
        }
        return Ok(());
    }

    let cfg = args.config();
    let (train_set, val_set) = if args.self_supervised {
        // Training never sees the labels here; without validation classes they only serve to
        // monitor retrieval on the training images (the usual k-NN monitor of self-supervised
        // learning) and to stop early.
        let views = view_dataset(&s, &mut cache, &train_corpus, args)?;
        (views, Some(val.unwrap_or(labelled_train)))
    } else if let Some(v) = val {
        (labelled_train, Some(v))
    } else {
        let (t, v) = labelled_train.split_per_class(args.holdout, args.seed)?;
        (t, (!v.is_empty()).then_some(v))
    };
    eprintln!(
        "training {} head with {} on {} rows ({} validation)",
        match args.head {
            HeadArg::Linear => "a linear",
            HeadArg::Mlp => "an MLP",
        },
        cfg.loss.name(),
        train_set.len(),
        val_set.as_ref().map_or(0, Dataset::len)
    );
    // The same validation measured on the raw embeddings: the figure a head has to beat.
    let raw_val = match &val_set {
        Some(v) => Some(train::metrics::class_retrieval(&v.x, &v.labels)?.map_at_r),
        None => None,
    };
    let (mut head, report) = train_head(&train_set, val_set.as_ref(), &model_id, &cfg)?;
    head.set_description(format!(
        "{} classes={classes}{}",
        head.description(),
        if args.self_supervised {
            " self-supervised"
        } else {
            ""
        }
    ));
    head.save(&args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    write_manifest(&s, &args.out)?;
    if args.json {
        let mut json = report_json(&report, args);
        json["raw_val_map_at_r"] = serde_json::json!(raw_val);
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        if let Some(r) = raw_val {
            println!("validation mAP@R of the raw embeddings: {r:.4}");
        }
        print_report(&report, args);
    }
    Ok(())
}

/// Writes, beside the head, a copy of the model's manifest that names it (`H.toml` for head file
/// `H.head`), and says on stderr how to index with it.
fn write_manifest(s: &Setup, head: &Path) -> anyhow::Result<PathBuf> {
    let path = manifest_path_for(head);
    let manifest = match &s.source {
        embed::ModelSource::Manifest(_) => s.embedder.manifest().clone(),
        embed::ModelSource::Embedded(model) => on_disk_copy(model, s.embedder.model_id(), head)?,
    };
    let text = manifest.to_toml_with_head(head)?;
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!(
        "manifest naming this head written to {p}; index and search with it through \
         `imgsearch --model {p} ...` (into a new data dir or --collection: a collection keeps \
         the model and head it was made with)",
        p = path.display()
    );
    Ok(path)
}

/// A manifest written beside a head must name model files on disk: the embedded model is
/// written once into a folder beside the head (`DIR/NAME/`) and reused by later heads there.
fn on_disk_copy(
    model: &'static embed::EmbeddedModel,
    model_id: &str,
    head: &Path,
) -> anyhow::Result<embed::ModelManifest> {
    let name = model.parse()?.name;
    let dir = head
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(&name);
    let manifest = dir.join("manifest.toml");
    if !manifest.exists() {
        model.export(&dir)?;
        eprintln!("the built-in model {name} written to {}", dir.display());
    }
    let source = embed::ModelSource::Manifest(manifest.clone());
    let found = source.model_id()?;
    if found != model_id {
        bail!(
            "{} holds model {found}, not the built-in {model_id}; move it away or train with \
             --model",
            manifest.display()
        );
    }
    Ok(embed::ModelManifest::load(&manifest)?)
}

fn manifest_path_for(head: &Path) -> PathBuf {
    if head.extension().is_some_and(|e| e == "toml") {
        PathBuf::from(format!("{}.manifest.toml", head.display()))
    } else {
        head.with_extension("toml")
    }
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

    #[test]
    fn fnv1a_reference_values() {
        // Published FNV-1a 64-bit test vectors.
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
