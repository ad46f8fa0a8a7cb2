//! The model manifest: a TOML file beside each ONNX model that says how to feed it.
//!
//! Every fact the preprocessing and the runtimes need lives here, so that adding an image
//! encoder is a matter of writing a manifest, not code (see `models/README.md`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::EmbedError;

/// How an image becomes the model's square input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizePolicy {
    /// Resize so the shorter side is `shorter_side` (aspect kept, longer side truncated like
    /// torchvision), then take the centred `input_size` square (offset floored).
    ShorterSideCrop,
    /// Resize both sides to `input_size`, ignoring the aspect ratio.
    Squash,
}

/// The resampling filter; all are antialiased (the filter widens when shrinking), like Pillow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    Nearest,
    Bilinear,
    Bicubic,
    Lanczos3,
}

/// Memory layout of the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum Layout {
    #[default]
    #[serde(rename = "NCHW")]
    Nchw,
    #[serde(rename = "NHWC")]
    Nhwc,
}

/// Order of the colour channels in the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum ChannelOrder {
    #[default]
    #[serde(rename = "RGB")]
    Rgb,
    #[serde(rename = "BGR")]
    Bgr,
}

/// Resizing and value normalisation: `value = (pixel / pixel_divisor - mean[c]) / std[c]`
/// where `pixel` is 0..=255.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    pub resize: ResizePolicy,
    /// Target of the shorter side for `shorter_side_crop`; ignored by `squash`.
    pub shorter_side: Option<u32>,
    pub interpolation: Interpolation,
    /// 1.0 when mean/std are in 0..=255 units, 255.0 when they are in 0..=1 units.
    #[serde(default = "one")]
    pub pixel_divisor: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

fn one() -> f32 {
    1.0
}

/// Names of the model's outputs.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Outputs {
    /// The image embedding, shape [N, dimension] (or [N, dimension, 1, 1]).
    pub embedding: String,
    /// Optional class logits [N, classes]; with `labels` they give the auto-tags.
    pub logits: Option<String>,
}

/// A parsed and validated `manifest.toml`. Relative paths are resolved against [`Self::dir`].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelManifest {
    /// Short model name, the first half of `Embedder::model_id`.
    pub name: String,
    /// The ONNX file.
    pub onnx: PathBuf,
    /// Name of the image input.
    pub input: String,
    /// Side of the square input image in pixels.
    pub input_size: u32,
    #[serde(default)]
    pub layout: Layout,
    #[serde(default)]
    pub channel_order: ChannelOrder,
    pub preprocess: Preprocess,
    pub outputs: Outputs,
    /// Length of the embedding vector.
    pub dimension: usize,
    /// One class name per line, in logit order.
    pub labels: Option<PathBuf>,
    /// Whether embeddings are scaled to unit length (cosine = inner product).
    #[serde(default)]
    pub l2_normalize: bool,
    /// A trained projection head applied after the model by the train crate; kept, not applied here.
    pub head: Option<PathBuf>,
    /// The folder holding the manifest.
    #[serde(skip)]
    pub dir: PathBuf,
}

impl ModelManifest {
    /// Reads, parses and validates a manifest file.
    pub fn load(path: &Path) -> Result<ModelManifest, EmbedError> {
        let text = std::fs::read_to_string(path).map_err(|e| EmbedError::Manifest {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, &dir).map_err(|reason| EmbedError::Manifest {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Parses manifest text whose relative paths are relative to `dir`.
    pub fn parse(text: &str, dir: &Path) -> Result<ModelManifest, String> {
        let mut m: ModelManifest = toml::from_str(text).map_err(|e| e.to_string())?;
        m.dir = dir.to_path_buf();
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("name is empty".into());
        }
        if self.input_size == 0 || self.input_size > 4096 {
            return Err(format!("input_size {} is not in 1..=4096", self.input_size));
        }
        if self.dimension == 0 {
            return Err("dimension must be positive".into());
        }
        let p = &self.preprocess;
        if p.resize == ResizePolicy::ShorterSideCrop {
            match p.shorter_side {
                Some(s) if s >= self.input_size => {}
                Some(s) => {
                    return Err(format!(
                        "shorter_side {s} is smaller than input_size {}",
                        self.input_size
                    ))
                }
                None => return Err("resize = \"shorter_side_crop\" needs shorter_side".into()),
            }
        }
        if !(p.pixel_divisor.is_finite() && p.pixel_divisor > 0.0) {
            return Err("pixel_divisor must be a positive number".into());
        }
        if p.std.iter().any(|s| !(s.is_finite() && *s != 0.0))
            || p.mean.iter().any(|m| !m.is_finite())
        {
            return Err("mean must be finite and std finite and non-zero".into());
        }
        if self.labels.is_some() && self.outputs.logits.is_none() {
            return Err("labels given without outputs.logits".into());
        }
        Ok(())
    }

    /// The ONNX file's full path.
    pub fn onnx_path(&self) -> PathBuf {
        self.dir.join(&self.onnx)
    }

    /// The labels file's full path, if the model has one.
    pub fn labels_path(&self) -> Option<PathBuf> {
        self.labels.as_ref().map(|l| self.dir.join(l))
    }

    /// The projection head's full path, if the manifest names one.
    pub fn head_path(&self) -> Option<PathBuf> {
        self.head.as_ref().map(|h| self.dir.join(h))
    }

    /// This manifest as TOML naming `head` as its projection head, with every path absolute so
    /// that the text works from any folder (what `imgsearch train` writes beside a head).
    pub fn to_toml_with_head(&self, head: &Path) -> Result<String, EmbedError> {
        let absolute = |p: PathBuf| {
            p.canonicalize()
                .or_else(|_| std::path::absolute(&p))
                .unwrap_or(p)
        };
        let mut m = self.clone();
        m.onnx = absolute(self.onnx_path());
        m.labels = self.labels_path().map(absolute);
        m.head = Some(absolute(head.to_path_buf()));
        toml::to_string(&m).map_err(|e| EmbedError::Manifest {
            path: self.dir.clone(),
            reason: format!("cannot write the manifest as TOML: {e}"),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn manifest_with_head_round_trips_with_absolute_paths() {
        let m = ModelManifest::parse(GOOD, Path::new("/models/m")).unwrap();
        let text = m
            .to_toml_with_head(Path::new("/heads/flowers.head"))
            .unwrap();
        let back = ModelManifest::parse(&text, Path::new("/elsewhere")).unwrap();
        assert_eq!(back.onnx_path(), Path::new("/models/m/model.onnx"));
        assert_eq!(
            back.labels_path().unwrap(),
            Path::new("/models/m/labels.txt")
        );
        assert_eq!(back.head_path().unwrap(), Path::new("/heads/flowers.head"));
        assert_eq!(back.preprocess, m.preprocess);
        assert_eq!(back.outputs, m.outputs);
        assert_eq!(
            (back.dimension, back.l2_normalize),
            (m.dimension, m.l2_normalize)
        );
    }

    /// A complete manifest, which other modules' tests adjust after parsing.
    pub(crate) const GOOD: &str = r#"
name = "m"
onnx = "model.onnx"
input = "input"
input_size = 224
dimension = 1280
labels = "labels.txt"
l2_normalize = true
head = "head.bin"
[preprocess]
resize = "shorter_side_crop"
shorter_side = 256
interpolation = "bilinear"
mean = [127.0, 127.0, 127.0]
std = [128.0, 128.0, 128.0]
[outputs]
embedding = "embedding"
logits = "logits"
"#;

    #[test]
    fn parses_and_resolves_paths() {
        let m = ModelManifest::parse(GOOD, Path::new("/m")).unwrap();
        assert_eq!(m.onnx_path(), Path::new("/m/model.onnx"));
        assert_eq!(m.head_path().unwrap(), Path::new("/m/head.bin"));
        assert_eq!(m.layout, Layout::Nchw);
        assert_eq!(m.preprocess.pixel_divisor, 1.0);
    }

    #[test]
    fn rejects_bad_manifests() {
        let cases = [
            GOOD.replace("shorter_side = 256", "shorter_side = 100"),
            GOOD.replace("shorter_side = 256\n", ""),
            GOOD.replace("std = [128.0, 128.0, 128.0]", "std = [128.0, 0.0, 128.0]"),
            GOOD.replace("l2_normalize", "l2_normalise"),
            GOOD.replace("logits = \"logits\"", ""),
            GOOD.replace("\"bilinear\"", "\"cubic\""),
            GOOD.replace("dimension = 1280", "dimension = 0"),
        ];
        for text in cases {
            assert!(
                ModelManifest::parse(&text, Path::new(".")).is_err(),
                "accepted:\n{text}"
            );
        }
    }

    #[test]
    fn load_names_the_missing_file() {
        let err = ModelManifest::load(Path::new("/nonexistent/manifest.toml")).unwrap_err();
        assert!(matches!(err, EmbedError::Manifest { .. }), "{err}");
    }
}
