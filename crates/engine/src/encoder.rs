//! The model plus its optional projection head: what turns an image into the vector stored.
//!
//! A manifest may name a head trained by `imgsearch train` (`head = "flowers.head"`). The head is
//! applied to every embedding at index time and at query time alike, and it is part of the
//! encoder's id, so a collection built with one head refuses vectors from the bare model or from
//! another head (see [`crate::EngineError::ModelMismatch`]).

use std::path::{Path, PathBuf};

use crate::EngineError;

pub(crate) struct Encoder {
    embedder: embed::Embedder,
    head: Option<train::Head>,
    id: String,
}

impl Encoder {
    /// Loads the model and the head its manifest references, if any.
    pub(crate) fn load(
        model: &embed::ModelSource,
        runtime: &embed::RuntimeConfig,
    ) -> Result<Encoder, EngineError> {
        let embedder = embed::Embedder::load_source(model, runtime)?;
        let Some(head_path) = embedder.manifest().head_path() else {
            let id = embedder.model_id().to_string();
            return Ok(Encoder {
                embedder,
                head: None,
                id,
            });
        };
        let bytes = std::fs::read(&head_path).map_err(|e| EngineError::io(&head_path, e))?;
        let head =
            train::Head::from_bytes(&bytes, &head_path).map_err(|e| head_error(&head_path, e))?;
        // A head trained on another model's embeddings would project noise.
        head.check_model(embedder.model_id())
            .map_err(|e| head_error(&head_path, e))?;
        if head.input_dim() != embedder.dim() {
            return Err(head_error(
                &head_path,
                train::TrainError::WrongDimension {
                    expected: embedder.dim(),
                    got: head.input_dim(),
                },
            ));
        }
        // The head's content, not its file name, identifies it: retraining into the same file
        // gives another id, and the collection then refuses to mix old and new vectors.
        let digest = blake3::hash(&bytes).to_hex();
        let id = format!("{}+head@{}", embedder.model_id(), &digest[..12]);
        tracing::info!(head = %head_path.display(), id = %id, out_dim = head.output_dim(), "projection head loaded");
        Ok(Encoder {
            embedder,
            head: Some(head),
            id,
        })
    }

    /// The model's id, extended with the head's when there is one.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Length of the stored vectors: the head's output when there is one.
    pub(crate) fn dim(&self) -> usize {
        match &self.head {
            Some(h) => h.output_dim(),
            None => self.embedder.dim(),
        }
    }

    /// The bare model (for the parallel file pipeline; pass its results through [`Self::project`]).
    pub(crate) fn embedder(&self) -> &embed::Embedder {
        &self.embedder
    }

    /// Applies the head to an embedding of the bare model (a no-op without a head).
    pub(crate) fn project(&self, mut emb: embed::Embedding) -> embed::Embedding {
        if let Some(h) = &self.head {
            // `load` checked that the head's input is the model's output dimension.
            emb.vector = h.apply(&emb.vector);
        }
        emb
    }

    /// Embeds one decoded image, head included.
    pub(crate) fn embed(&self, img: &embed::DecodedImage) -> Result<embed::Embedding, EngineError> {
        Ok(self.project(self.embedder.embed(img)?))
    }
}

fn head_error(path: &Path, e: train::TrainError) -> EngineError {
    EngineError::Head {
        path: PathBuf::from(path),
        source: e,
    }
}
