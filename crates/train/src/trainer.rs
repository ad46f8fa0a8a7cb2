//! Training a head: P-classes x K-samples mini-batches, a loss, Adam, per-epoch validation
//! mAP@R and early stopping on it. Deterministic for a given seed.
//!
//! Self-supervised training uses the same loop: each source image is a "class" whose rows are
//! embeddings of augmented views (see [`crate::augment::view_dataset`]), and a batch of `P`
//! images with `K = 2` views under InfoNCE is exactly SimCLR's NT-Xent objective.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{invalid, Result, TrainError};
use crate::head::{Head, HeadArch};
use crate::loss::Loss;
use crate::matrix::Matrix;
use crate::metrics::class_retrieval;
use crate::optim::{Adam, AdamConfig};

/// Labelled embeddings: row `i` of `x` has label `labels[i]`.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub x: Matrix,
    pub labels: Vec<usize>,
}

impl Dataset {
    pub fn new(x: Matrix, labels: Vec<usize>) -> Result<Self> {
        if x.rows() != labels.len() {
            return Err(TrainError::WrongDimension {
                expected: x.rows(),
                got: labels.len(),
            });
        }
        if !x.is_finite() {
            return Err(TrainError::NonFinite {
                what: "dataset embeddings".into(),
            });
        }
        Ok(Self { x, labels })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn dim(&self) -> usize {
        self.x.cols()
    }

    /// Row indices per label, labels in ascending order.
    pub fn by_class(&self) -> BTreeMap<usize, Vec<usize>> {
        let mut m: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, &l) in self.labels.iter().enumerate() {
            m.entry(l).or_default().push(i);
        }
        m
    }

    /// The given rows as a new dataset.
    pub fn subset(&self, rows: &[usize]) -> Dataset {
        Dataset {
            x: self.x.select_rows(rows),
            labels: rows.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// Splits every class, holding out `fraction` of its rows (at least one when it has two or
    /// more) for validation. Deterministic for a seed.
    pub fn split_per_class(&self, fraction: f64, seed: u64) -> Result<(Dataset, Dataset)> {
        if !(0.0..1.0).contains(&fraction) {
            return Err(invalid(format!(
                "holdout fraction must be in [0, 1), got {fraction}"
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (mut tr, mut va) = (Vec::new(), Vec::new());
        for (_, mut rows) in self.by_class() {
            rows.shuffle(&mut rng);
            let mut k = (rows.len() as f64 * fraction).round() as usize;
            if fraction > 0.0 && rows.len() >= 2 {
                k = k.clamp(1, rows.len() - 1);
            }
            va.extend_from_slice(&rows[..k]);
            tr.extend_from_slice(&rows[k..]);
        }
        tr.sort_unstable();
        va.sort_unstable();
        Ok((self.subset(&tr), self.subset(&va)))
    }
}

/// Everything that controls a training run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainConfig {
    pub arch: HeadArch,
    pub loss: Loss,
    pub adam: AdamConfig,
    /// Upper bound on epochs.
    pub epochs: usize,
    /// `P`: classes drawn per batch (capped at the number of classes with two or more rows).
    pub classes_per_batch: usize,
    /// `K`: rows drawn per class (fewer when a class is smaller).
    pub samples_per_class: usize,
    /// Batches per epoch; `None` means about one pass over the data.
    pub batches_per_epoch: Option<usize>,
    /// Stop after this many epochs without a better validation mAP@R (0 disables stopping).
    pub patience: usize,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            arch: HeadArch::Linear { out: 256 },
            loss: Loss::InfoNce { temperature: 0.1 },
            adam: AdamConfig::default(),
            epochs: 30,
            classes_per_batch: 8,
            samples_per_class: 4,
            batches_per_epoch: None,
            patience: 5,
            seed: 0,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        self.loss.validate()?;
        self.adam.validate()?;
        if self.epochs == 0 || self.classes_per_batch < 2 || self.samples_per_class < 2 {
            return Err(invalid(
                "epochs must be >= 1, classes per batch >= 2 and samples per class >= 2",
            ));
        }
        if self.batches_per_epoch == Some(0) {
            return Err(invalid("batches per epoch must be >= 1"));
        }
        Ok(())
    }
}

/// One epoch's figures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochStats {
    pub epoch: usize,
    pub train_loss: f32,
    pub val_map_at_r: Option<f64>,
}

/// What happened during training.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainReport {
    /// Validation mAP@R of the head before any update.
    pub initial_val_map_at_r: Option<f64>,
    pub epochs: Vec<EpochStats>,
    /// Epoch whose weights were returned (0 = the initial head).
    pub best_epoch: usize,
    pub best_val_map_at_r: Option<f64>,
    pub stopped_early: bool,
}

/// Draws P x K batches.
struct Sampler {
    classes: Vec<Vec<usize>>,
    p: usize,
    k: usize,
    rng: ChaCha8Rng,
}

impl Sampler {
    fn new(data: &Dataset, cfg: &TrainConfig, rng: ChaCha8Rng) -> Result<Self> {
        let classes: Vec<Vec<usize>> = data
            .by_class()
            .into_values()
            .filter(|rows| rows.len() >= 2)
            .collect();
        if classes.len() < 2 {
            return Err(TrainError::NotEnoughData {
                reason: format!(
                    "training needs at least 2 classes with 2 or more rows, found {}",
                    classes.len()
                ),
            });
        }
        Ok(Self {
            p: cfg.classes_per_batch.min(classes.len()),
            k: cfg.samples_per_class,
            classes,
            rng,
        })
    }

    fn batch(&mut self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.classes.len()).collect();
        order.shuffle(&mut self.rng);
        let mut rows = Vec::with_capacity(self.p * self.k);
        for &c in &order[..self.p] {
            let members = &mut self.classes[c];
            members.shuffle(&mut self.rng);
            rows.extend_from_slice(&members[..self.k.min(members.len())]);
        }
        rows
    }
}

/// Mean of the L2-normalised rows.
fn normalised_mean(data: &Dataset) -> Vec<f32> {
    let mut mean = vec![0.0f32; data.dim()];
    let mut row = vec![0.0f32; data.dim()];
    for r in 0..data.len() {
        row.copy_from_slice(data.x.row(r));
        crate::matrix::l2_normalize(&mut row);
        crate::matrix::axpy(1.0 / data.len() as f32, &row, &mut mean);
    }
    mean
}

/// The inference form of a head during training: input offset and hidden-layer batch means
/// moved into the biases (hidden means taken over the whole training set).
fn fold(head: &Head, mu: &[f32], train: &Dataset) -> Head {
    let h = head.fold_offset(mu);
    if h.layers().len() > 1 {
        h.fold_hidden_means(&train.x)
    } else {
        h
    }
}

/// Validation mAP@R of a head (None without validation data).
pub fn validation_map(head: &Head, val: Option<&Dataset>) -> Result<Option<f64>> {
    match val {
        Some(v) if !v.is_empty() => Ok(Some(
            class_retrieval(&head.apply_matrix(&v.x)?, &v.labels)?.map_at_r,
        )),
        _ => Ok(None),
    }
}

/// Trains a head on `train`, validating on `val` after every epoch. With validation data the
/// head of the best epoch is returned (early stopping); without, the last one.
pub fn train_head(
    train: &Dataset,
    val: Option<&Dataset>,
    model_id: &str,
    cfg: &TrainConfig,
) -> Result<(Head, TrainReport)> {
    cfg.validate()?;
    if let Some(v) = val {
        if v.dim() != train.dim() {
            return Err(TrainError::WrongDimension {
                expected: train.dim(),
                got: v.dim(),
            });
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut sampler = Sampler::new(train, cfg, ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5eed))?;
    let mut head = Head::init(cfg.arch, train.dim(), model_id, rand::Rng::gen(&mut rng))?;
    // Training sees centred inputs and the last layer has no trainable bias. The embeddings
    // share a large common component that says nothing about identity; centring removes it,
    // and without a free output bias the head cannot collapse every input onto one direction
    // (a collapse batch-hard triplet mining otherwise falls into when raw features are weak).
    let mu = normalised_mean(train);
    let last = head.layers().len() - 1;
    let mut adam = Adam::new(&head, cfg.adam)?;
    let batches = cfg
        .batches_per_epoch
        .unwrap_or_else(|| train.len().div_ceil(sampler.p * sampler.k).max(1));
    let initial = validation_map(&fold(&head, &mu, train), val)?;
    let mut report = TrainReport {
        initial_val_map_at_r: initial,
        epochs: Vec::new(),
        best_epoch: 0,
        best_val_map_at_r: initial,
        stopped_early: false,
    };
    let mut best = fold(&head, &mu, train);
    for epoch in 1..=cfg.epochs {
        let mut total = 0.0f64;
        for _ in 0..batches {
            let rows = sampler.batch();
            let x = train.x.select_rows(&rows);
            let labels: Vec<usize> = rows.iter().map(|&r| train.labels[r]).collect();
            let cache = head.forward_centred(&x, Some(&mu), true);
            let out = cfg.loss.compute(&cache.output, &labels)?;
            let mut grads = head.backward(&cache, &out.grad);
            grads[last].bias.iter_mut().for_each(|g| *g = 0.0);
            adam.step(&mut head, &grads);
            total += f64::from(out.loss);
        }
        let train_loss = (total / batches as f64) as f32;
        if !train_loss.is_finite() || head.layers().iter().any(|l| !l.weight.is_finite()) {
            return Err(TrainError::NonFinite {
                what: format!("head weights after epoch {epoch} (lower the learning rate)"),
            });
        }
        let folded = fold(&head, &mu, train);
        let val_map = validation_map(&folded, val)?;
        tracing::info!(epoch, train_loss, val_map_at_r = ?val_map, "epoch done");
        report.epochs.push(EpochStats {
            epoch,
            train_loss,
            val_map_at_r: val_map,
        });
        match (val_map, report.best_val_map_at_r) {
            (Some(v), Some(b)) if v <= b => {
                if cfg.patience > 0 && epoch - report.best_epoch >= cfg.patience {
                    report.stopped_early = true;
                    break;
                }
            }
            (Some(v), _) => {
                report.best_val_map_at_r = Some(v);
                report.best_epoch = epoch;
                best = folded;
            }
            (None, _) => {
                report.best_epoch = epoch;
                best = folded;
            }
        }
    }
    best.set_description(format!(
        "loss={} arch={:?} epochs={} best_epoch={} seed={}",
        cfg.loss.name(),
        cfg.arch,
        report.epochs.len(),
        report.best_epoch,
        cfg.seed
    ));
    Ok((best, report))
}
