//! Projection heads for imgsearch's image embeddings, trained with metric-learning losses
//! whose gradients are written by hand (no deep-learning framework, so builds stay light).
//!
//! - [`metrics`]: mAP@R, recall@k, precision@10; leave-one-out class retrieval and
//!   near-duplicate retrieval per edit type.
//! - [`loss`]: contrastive, triplet (batch-hard, semi-hard) and InfoNCE / NT-Xent, each with
//!   its gradient w.r.t. the normalised outputs.
//! - [`head`]: linear and MLP heads with L2-normalised output, and backprop through them; a
//!   trained head is saved as an `embed::Head`, whose file names the model it belongs to.
//! - [`trainer`]: P x K batches, Adam, validation mAP@R, early stopping; [`pca`] the
//!   gradient-free PCA-whitening baseline.
//! - [`augment`]: views for self-supervised training; [`edits`]: near-duplicate edits.
//! - [`cache`]: an embedding cache file, so repeated runs skip the model.
//! - [`learn`]: the evaluation and training use cases that `imgsearch eval` and `imgsearch
//!   train` call: a labelled corpus, its embeddings through the cache and the model's
//!   `embed::Encoder`, edited and augmented variants, fitting a head and writing the manifest
//!   that names it.
//!
//! See `docs/training.md` for the protocol and measured figures.

pub mod augment;
pub mod cache;
mod codec;
pub mod edits;
pub mod eigen;
pub mod error;
pub mod head;
pub mod learn;
pub mod loss;
pub mod matrix;
pub mod metrics;
pub mod optim;
pub mod pca;
pub mod trainer;

// Re-exported so callers (the CLI) build images and random generators of the same versions.
pub use image;
pub use rand;
pub use rand_chacha;

pub use augment::{augment, AugmentConfig, ViewDatasetBuilder};
pub use cache::EmbeddingCache;
pub use edits::{Edit, PictureSignature};
pub use error::{Result, TrainError};
pub use head::{Dense, Head, HeadArch, HeadKind};
pub use loss::{Loss, LossOutput, Mining};
pub use matrix::Matrix;
pub use metrics::{class_retrieval, near_duplicate, EditReport, RetrievalReport};
pub use optim::AdamConfig;
pub use pca::{fit_pca_whitening, PcaConfig};
pub use trainer::{train_head, Dataset, EpochStats, TrainConfig, TrainReport};
