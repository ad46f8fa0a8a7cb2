//! The model plus its optional projection head: what turns an image into the vector stored.
//!
//! A manifest may name a head trained by `imgsearch train` (`head = "flowers.head"`). The head is
//! applied to every embedding at index time and at query time alike, and it is part of the
//! encoder's id, so a collection built with one head refuses vectors from the bare model or from
//! another head. Evaluation uses the same encoder, so it measures what the index stores.

use std::path::{Path, PathBuf};

use crate::head::{Head, HeadError};
use crate::{DecodedImage, EmbedError, Embedder, Embedding, ModelSource, RuntimeConfig};

pub struct Encoder {
    embedder: Embedder,
    head: Option<Head>,
    id: String,
}

impl Encoder {
    /// Loads the model and the head its manifest names, if any.
    pub fn load(model: &ModelSource, runtime: &RuntimeConfig) -> Result<Encoder, EmbedError> {
        let embedder = Embedder::load_source(model, runtime)?;
        let head = embedder.manifest().head_path();
        Encoder::new(embedder, head.as_deref())
    }

    /// The model with the head in file `head` (or with none), whatever its manifest names.
    pub fn new(embedder: Embedder, head: Option<&Path>) -> Result<Encoder, EmbedError> {
        let id = embedder.model_id().to_string();
        let mut encoder = Encoder {
            embedder,
            head: None,
            id,
        };
        encoder.set_head(head)?;
        Ok(encoder)
    }

    /// Replaces the head by the one in file `head` (or by none). On an error the encoder is
    /// left as it was.
    pub fn set_head(&mut self, head: Option<&Path>) -> Result<(), EmbedError> {
        let model_id = self.embedder.model_id();
        let Some(head_path) = head else {
            self.id = model_id.to_string();
            self.head = None;
            return Ok(());
        };
        let bytes = std::fs::read(head_path).map_err(|source| EmbedError::Io {
            path: head_path.display().to_string(),
            source,
        })?;
        let fail = |problem| EmbedError::Head {
            path: PathBuf::from(head_path),
            problem,
        };
        let head = Head::from_bytes(&bytes).map_err(fail)?;
        // A head trained on another model's embeddings would project noise.
        head.check_model(model_id).map_err(fail)?;
        if head.input_dim() != self.embedder.dim() {
            return Err(fail(HeadError::WrongDimension {
                expected: head.input_dim(),
                got: self.embedder.dim(),
            }));
        }
        // The head's content, not its file name, identifies it: retraining into the same file
        // gives another id, and the collection then refuses to mix old and new vectors.
        let digest = blake3::hash(&bytes).to_hex();
        let id = format!("{model_id}+head@{}", &digest[..12]);
        tracing::info!(head = %head_path.display(), id = %id, out_dim = head.output_dim(), "projection head loaded");
        self.id = id;
        self.head = Some(head);
        Ok(())
    }

    /// The model's id, extended with the head's when there is one.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Length of the stored vectors: the head's output when there is one.
    pub fn dim(&self) -> usize {
        match &self.head {
            Some(h) => h.output_dim(),
            None => self.embedder.dim(),
        }
    }

    /// The bare model (for the parallel file pipeline and for embedding caches, which hold the
    /// bare model's embeddings; pass its results through [`Self::project`]).
    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// The head, when there is one.
    pub fn head(&self) -> Option<&Head> {
        self.head.as_ref()
    }

    /// Applies the head to an embedding of the bare model (a no-op without a head).
    pub fn project(&self, mut emb: Embedding) -> Embedding {
        if let Some(h) = &self.head {
            emb.vector = h
                .apply(&emb.vector)
                .expect("`new` checked that the head takes the model's output dimension");
        }
        emb
    }

    /// Applies the head to a vector of the bare model's dimension (a copy without a head).
    pub fn project_vector(&self, v: &[f32]) -> Result<Vec<f32>, HeadError> {
        match &self.head {
            Some(h) => h.apply(v),
            None if v.len() == self.embedder.dim() => Ok(v.to_vec()),
            None => Err(HeadError::WrongDimension {
                expected: self.embedder.dim(),
                got: v.len(),
            }),
        }
    }

    /// Embeds one decoded image, head included.
    pub fn embed(&self, img: &DecodedImage) -> Result<Embedding, EmbedError> {
        Ok(self.project(self.embedder.embed(img)?))
    }
}
