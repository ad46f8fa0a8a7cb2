//! The training use case: pick the training and validation classes, embed them, fit a head
//! (PCA-whitening or a gradient-trained head, supervised or on augmented views), write it and
//! the manifest that names it.

use std::path::PathBuf;

use crate::{fit_pca_whitening, train_head, Dataset, PcaConfig, TrainConfig, TrainReport};

use super::{list_corpus, Workbench, WrittenManifest};
use crate::error::{invalid, Result};
use common::ProgressSink;

/// How to fit the head.
#[derive(Debug, Clone)]
pub enum Method {
    /// PCA-whitening of the training embeddings (a linear head, no gradient training).
    Pca(PcaConfig),
    /// Gradient training. With `self_supervised`, every image is its own class and `views`
    /// augmented views of it are the positives; otherwise the class folders are the labels.
    Gradient {
        config: TrainConfig,
        self_supervised: bool,
        views: usize,
    },
}

/// What to train on and where to write the result.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Folder with one sub-folder of images per class.
    pub data: PathBuf,
    /// Training classes; empty means every class but the validation ones.
    pub classes: Vec<String>,
    /// Validation classes; empty means a held-out share (`holdout`) of each training class.
    pub val_classes: Vec<String>,
    pub holdout: f64,
    pub seed: u64,
    pub method: Method,
    /// The head file to write.
    pub out: PathBuf,
}

/// What training produced.
#[derive(Debug)]
pub struct Trained {
    pub head: crate::Head,
    /// The epochs of gradient training (None for PCA-whitening).
    pub report: Option<TrainReport>,
    /// Rows trained on and rows validated on.
    pub train_rows: usize,
    pub val_rows: usize,
    /// Validation mAP@R of the raw embeddings, the figure a head has to beat.
    pub raw_val_map_at_r: Option<f64>,
    /// Validation mAP@R of a PCA-whitening head (gradient training reports it per epoch).
    pub val_map_at_r: Option<f64>,
    pub manifest: WrittenManifest,
}

/// Trains a head as `plan` says, writes it to `plan.out` and its manifest beside it.
pub fn train(wb: &mut Workbench, plan: &Plan, progress: &dyn ProgressSink) -> Result<Trained> {
    if let Some(c) = plan.val_classes.iter().find(|c| plan.classes.contains(c)) {
        return Err(invalid(format!(
            "class {c:?} is both a training and a validation class"
        )));
    }
    let train_classes: Vec<String> = if plan.classes.is_empty() {
        list_corpus(&plan.data, &[])?
            .classes
            .into_iter()
            .filter(|c| !plan.val_classes.contains(c))
            .collect()
    } else {
        plan.classes.clone()
    };
    let corpus = list_corpus(&plan.data, &train_classes)?;
    let labelled = wb.labelled(&corpus, progress)?;
    wb.save_cache()?;
    let val = if plan.val_classes.is_empty() {
        None
    } else {
        Some(wb.labelled(&list_corpus(&plan.data, &plan.val_classes)?, progress)?)
    };
    wb.save_cache()?;
    let model_id = wb.encoder.embedder().model_id().to_string();
    let classes = corpus.classes.join(",");

    let (head, report, train_rows, val_set) = match &plan.method {
        Method::Pca(cfg) => {
            let mut head = fit_pca_whitening(&labelled.x, cfg, &model_id)?;
            head.set_description(format!("{} classes={classes}", head.description()));
            (head, None, labelled.len(), val)
        }
        Method::Gradient {
            config,
            self_supervised,
            views,
        } => {
            let (train_set, val_set) = if *self_supervised {
                // Training never sees the labels here; without validation classes they only
                // serve to monitor retrieval on the training images (the usual k-NN monitor
                // of self-supervised learning) and to stop early.
                let views = wb.view_dataset(&corpus, *views, plan.seed, progress)?;
                (views, Some(val.unwrap_or(labelled)))
            } else if let Some(v) = val {
                (labelled, Some(v))
            } else {
                let (t, v) = labelled.split_per_class(plan.holdout, plan.seed)?;
                (t, (!v.is_empty()).then_some(v))
            };
            tracing::info!(
                loss = config.loss.name(),
                rows = train_set.len(),
                validation = val_set.as_ref().map_or(0, Dataset::len),
                "training a head"
            );
            let (mut head, report) = train_head(&train_set, val_set.as_ref(), &model_id, config)?;
            let ssl = if *self_supervised {
                " self-supervised"
            } else {
                ""
            };
            head.set_description(format!("{} classes={classes}{ssl}", head.description()));
            (head, Some(report), train_set.len(), val_set)
        }
    };
    let retrieval = |x: &crate::Matrix, v: &Dataset| -> Result<f64> {
        Ok(crate::metrics::class_retrieval(x, &v.labels)?.map_at_r)
    };
    // Gradient training's report carries its own "before" figure; the raw one is only needed
    // for PCA-whitening's comparison, and costs one retrieval either way.
    let raw_val_map_at_r = val_set.as_ref().map(|v| retrieval(&v.x, v)).transpose()?;
    let val_map_at_r = match (&plan.method, &val_set) {
        (Method::Pca(_), Some(v)) => Some(retrieval(&head.apply_matrix(&v.x)?, v)?),
        _ => None,
    };
    head.save(&plan.out)?;
    let manifest = wb.write_manifest(&plan.out)?;
    Ok(Trained {
        head,
        report,
        train_rows,
        val_rows: val_set.as_ref().map_or(0, Dataset::len),
        raw_val_map_at_r,
        val_map_at_r,
        manifest,
    })
}
