//! Where a model comes from: a `manifest.toml` on disk beside its files, or a model whose
//! manifest and files are held in memory (compiled into a program with `include_bytes!`, so that
//! a binary copied anywhere needs nothing beside it).
//!
//! Both load through the same manifest parser and the same embedder, and the model id is computed
//! from the ONNX bytes in both cases, so a collection made with the files on disk and one made
//! with the same files compiled in carry the same id.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::manifest::ModelManifest;
use crate::EmbedError;

/// A model folder held in memory: the manifest text plus every file it names (the ONNX file,
/// the labels) and any other file of the folder worth shipping with it (licence, notice).
#[derive(Debug, PartialEq, Eq)]
pub struct EmbeddedModel {
    /// The text of `manifest.toml`.
    pub manifest: &'static str,
    /// The folder's other files by their name inside the folder, as the manifest names them.
    pub files: &'static [(&'static str, &'static [u8])],
}

/// The model to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A `manifest.toml` on disk; relative paths in it are relative to its folder.
    Manifest(PathBuf),
    /// A model held in memory.
    Embedded(&'static EmbeddedModel),
}

/// A model's manifest and the bytes it needs, read from either source.
pub(crate) struct ModelFiles {
    pub manifest: ModelManifest,
    /// The ONNX file, borrowed when embedded, read when on disk.
    pub onnx: Cow<'static, [u8]>,
    /// The ONNX file's path when it is on disk (runtimes then load it by path, which also finds
    /// external weight files beside it).
    pub onnx_path: Option<PathBuf>,
    /// One class name per line, when the manifest names a labels file.
    pub labels: Option<String>,
}

impl EmbeddedModel {
    /// Name used for this model in messages and errors: `embedded:NAME`.
    pub fn label(&self) -> String {
        match self.parse() {
            Ok(m) => format!("embedded:{}", m.name),
            Err(_) => "embedded:(invalid manifest)".into(),
        }
    }

    /// The parsed manifest; its relative paths name entries of [`Self::files`].
    pub fn parse(&self) -> Result<ModelManifest, EmbedError> {
        ModelManifest::parse(self.manifest, Path::new("")).map_err(|reason| EmbedError::Manifest {
            path: PathBuf::from("embedded:manifest.toml"),
            reason,
        })
    }

    /// The file named `name` in the manifest (a path relative to the model folder).
    pub fn file(&self, name: &Path) -> Option<&'static [u8]> {
        self.files
            .iter()
            .find(|(n, _)| Path::new(n) == name)
            .map(|(_, bytes)| *bytes)
    }

    /// Writes `manifest.toml` and every file into `dir` (created if needed) and returns the
    /// manifest's path, ready for `--model`. Existing files are never overwritten: a folder that
    /// already holds any of them is refused, so nothing of the user's is lost.
    pub fn export(&self, dir: &Path) -> Result<PathBuf, EmbedError> {
        let io = |path: &Path, source: std::io::Error| EmbedError::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let entries: Vec<(&str, &[u8])> =
            std::iter::once(("manifest.toml", self.manifest.as_bytes()))
                .chain(self.files.iter().copied())
                .collect();
        // Checked before writing anything, so that a refused export leaves no partial copy.
        if let Some((name, _)) = entries.iter().find(|(n, _)| dir.join(n).exists()) {
            let path = dir.join(name);
            return Err(io(
                &path,
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "already exists; export into an empty or new folder",
                ),
            ));
        }
        for (name, bytes) in entries {
            let path = dir.join(name);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| io(&path, e))?;
            std::io::Write::write_all(&mut file, bytes).map_err(|e| io(&path, e))?;
        }
        Ok(dir.join("manifest.toml"))
    }
}

impl ModelSource {
    /// The path of a manifest on disk, or `embedded:NAME`.
    pub fn describe(&self) -> String {
        match self {
            ModelSource::Manifest(p) => p.display().to_string(),
            ModelSource::Embedded(m) => m.label(),
        }
    }

    /// The parsed manifest, without reading the model's files.
    pub fn manifest(&self) -> Result<ModelManifest, EmbedError> {
        match self {
            ModelSource::Manifest(path) => ModelManifest::load(path),
            ModelSource::Embedded(model) => model.parse(),
        }
    }

    /// Reads the manifest and the files the model needs, without loading it into a runtime.
    pub(crate) fn read(&self) -> Result<ModelFiles, EmbedError> {
        match self {
            ModelSource::Manifest(path) => {
                let manifest = ModelManifest::load(path)?;
                let fail = |reason: String| EmbedError::Manifest {
                    path: path.clone(),
                    reason,
                };
                let onnx_path = manifest.onnx_path();
                let onnx = std::fs::read(&onnx_path)
                    .map_err(|e| fail(format!("model file {}: {e}", onnx_path.display())))?;
                let labels = match manifest.labels_path() {
                    Some(p) => Some(
                        std::fs::read_to_string(&p)
                            .map_err(|e| fail(format!("labels file {}: {e}", p.display())))?,
                    ),
                    None => None,
                };
                Ok(ModelFiles {
                    manifest,
                    onnx: Cow::Owned(onnx),
                    onnx_path: Some(onnx_path),
                    labels,
                })
            }
            ModelSource::Embedded(model) => {
                let manifest = model.parse()?;
                let fail = |reason: String| EmbedError::Manifest {
                    path: PathBuf::from("embedded:manifest.toml"),
                    reason,
                };
                let missing = |p: &Path| fail(format!("no embedded file {}", p.display()));
                let onnx = model
                    .file(&manifest.onnx)
                    .ok_or_else(|| missing(&manifest.onnx))?;
                let labels = match &manifest.labels {
                    Some(p) => {
                        let bytes = model.file(p).ok_or_else(|| missing(p))?;
                        Some(String::from_utf8(bytes.to_vec()).map_err(|_| {
                            fail(format!("labels file {} is not UTF-8", p.display()))
                        })?)
                    }
                    None => None,
                };
                Ok(ModelFiles {
                    manifest,
                    onnx: Cow::Borrowed(onnx),
                    onnx_path: None,
                    labels,
                })
            }
        }
    }

    /// The id stored with every vector this model makes (see [`crate::Embedder::model_id`]),
    /// computed without loading the model into a runtime.
    pub fn model_id(&self) -> Result<String, EmbedError> {
        let files = self.read()?;
        Ok(model_id(&files.manifest.name, &files.onnx))
    }
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// `name@` + the first 12 hex digits of the ONNX bytes' SHA-256.
pub(crate) fn model_id(name: &str, onnx: &[u8]) -> String {
    format!("{name}@{}", hex_prefix(&Sha256::digest(onnx), 12))
}

fn hex_prefix(bytes: &[u8], n: usize) -> String {
    bytes
        .iter()
        .flat_map(|b| [b >> 4, b & 15])
        .take(n)
        .map(|d| char::from_digit(u32::from(d), 16).unwrap())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_prefix_is_lowercase_nibbles() {
        assert_eq!(hex_prefix(&[0xab, 0x01, 0xff], 5), "ab01f");
    }

    const MANIFEST: &str = r#"
name = "tiny"
onnx = "model.onnx"
input = "input"
input_size = 4
dimension = 2
labels = "labels.txt"
[preprocess]
resize = "squash"
interpolation = "bilinear"
mean = [0.0, 0.0, 0.0]
std = [1.0, 1.0, 1.0]
[outputs]
embedding = "e"
logits = "l"
"#;

    static TINY: EmbeddedModel = EmbeddedModel {
        manifest: MANIFEST,
        files: &[
            ("model.onnx", b"not really onnx"),
            ("labels.txt", b"a\nb\n"),
            ("LICENSE", b"licence text"),
        ],
    };

    /// The exported folder loads from disk with the same id as the embedded model, and an
    /// export over existing files is refused without touching them.
    #[test]
    fn export_round_trips_with_the_same_id_and_never_overwrites() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tiny");
        let manifest = TINY.export(&dir).unwrap();
        let embedded = ModelSource::Embedded(&TINY);
        let on_disk = ModelSource::Manifest(manifest.clone());
        assert_eq!(embedded.model_id().unwrap(), on_disk.model_id().unwrap());
        assert!(embedded.model_id().unwrap().starts_with("tiny@"));
        assert_eq!(std::fs::read(dir.join("LICENSE")).unwrap(), b"licence text");
        assert_eq!(on_disk.read().unwrap().labels.as_deref(), Some("a\nb\n"));
        assert_eq!(embedded.describe(), "embedded:tiny");

        std::fs::write(&manifest, "mine").unwrap();
        assert!(TINY.export(&dir).is_err());
        assert_eq!(std::fs::read_to_string(&manifest).unwrap(), "mine");
    }

    #[test]
    fn a_missing_embedded_file_is_named() {
        static BROKEN: EmbeddedModel = EmbeddedModel {
            manifest: MANIFEST,
            files: &[("model.onnx", b"x")],
        };
        let err = ModelSource::Embedded(&BROKEN).read().err().unwrap();
        assert!(err.to_string().contains("labels.txt"), "{err}");
    }
}
