//! imgsearch-embed: images to vectors.
//!
//! `decode` turns files into upright RGB8 (limits checked before any pixel is decoded),
//! `preprocess` makes the model's input tensor as the model's `manifest.toml` says, and a
//! runtime (tract by default, onnxruntime with the "ort" feature) runs the ONNX model;
//! `head` reads and applies the projection head a manifest may name, and [`Encoder`] is the
//! model with that head: what turns an image into the vector stored. The crate knows nothing of
//! the database.

mod decode;
mod embedder;
mod encoder;
mod error;
pub mod head;
pub mod manifest;
mod pipeline;
pub mod preprocess;
mod runtime;
mod source;
#[cfg(feature = "turbojpeg")]
mod turbo;

pub use decode::{
    decode_bytes, decode_bytes_info, decode_bytes_scaled, decode_file, decode_file_scaled,
    probe_bytes, DecodeLimits, DecodedImage, IMAGE_EXTENSIONS,
};
pub use embedder::{default_manifest_path, Embedder, Embedding, Label, TOP_LABELS};
pub use encoder::Encoder;
pub use error::EmbedError;
pub use head::{Head, HeadError, HeadKind};
pub use manifest::ModelManifest;
pub use pipeline::{embed_paths, ImageInfo};
pub use runtime::{RuntimeConfig, RuntimeKind};
pub use source::{EmbeddedModel, ModelSource};
