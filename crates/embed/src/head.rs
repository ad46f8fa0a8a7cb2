//! Projection heads as a model manifest names them (`head = "flowers.head"`): the file format and
//! inference. A head is a stack of dense layers with ReLU between them and L2 normalisation at
//! both ends. The input is normalised first because embedding models give vectors whose norm
//! carries little meaning for retrieval and varies between images; the output is normalised so
//! cosine similarity and inner product agree in the vector database.
//!
//! The train crate fits heads and writes them through [`Head::save`]; everything that only
//! applies a head (the engine, evaluation) needs this module and not the trainer.
//!
//! The file uses the shared envelope (`common::envelope`: magic `IMGSHEAD`, version 1, length,
//! CRC-32). Body, little-endian:
//!
//! | field              | type                                   |
//! |--------------------|----------------------------------------|
//! | kind               | u8: 1 linear, 2 mlp, 3 pca-whitening   |
//! | layer count        | u8                                     |
//! | model id           | u32 length + UTF-8                     |
//! | description        | u32 length + UTF-8                     |
//! | per layer: out, in | u32, u32                               |
//! | per layer: weight  | out * in f32, row-major (`out x in`)   |
//! | per layer: bias    | out f32                                |

use std::path::{Path, PathBuf};

use common::envelope::{self, EnvelopeError};
use common::{Class, Classified, ErrorKind, Origin};

use crate::EmbedError;

/// Magic number of head files.
pub const HEAD_MAGIC: &[u8; 8] = b"IMGSHEAD";
/// The head format version this build writes and reads.
pub const HEAD_VERSION: u32 = 1;
/// Largest layer side accepted on load, so a corrupt size cannot ask for gigabytes.
const MAX_SIDE: u32 = 1 << 16;

/// Why a head cannot be built, read or applied.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// The file's envelope is not that of a head file this build reads.
    #[error("not a valid head file: {0}")]
    Envelope(#[from] EnvelopeError),
    /// The file passed its checksum but its content is inconsistent.
    #[error("corrupt content: {reason}")]
    Corrupt { reason: String },
    /// The layers do not make a head of the kind named (shapes that do not chain, values that
    /// are not finite).
    #[error("inconsistent head: {reason}")]
    Invalid { reason: String },
    /// The head was made for another embedding model.
    #[error("model mismatch: the head is for {file_model}, expected {expected_model}")]
    ModelMismatch {
        file_model: String,
        expected_model: String,
    },
    /// A vector of the wrong length was given to the head.
    #[error("wrong dimension: the head takes {expected}, got {got}")]
    WrongDimension { expected: usize, got: usize },
}

impl Classified for HeadError {
    /// A head that does not fit the model it is used with conflicts with that model; a head
    /// file that cannot be read as one is a fault of the model files.
    fn class(&self) -> Class {
        match self {
            HeadError::ModelMismatch { .. } | HeadError::WrongDimension { .. } => {
                Class::new(ErrorKind::Conflict, Origin::Model, "conflict")
            }
            HeadError::Envelope(_) | HeadError::Corrupt { .. } | HeadError::Invalid { .. } => {
                Class::internal(Origin::Model)
            }
        }
    }
}

fn invalid(reason: impl Into<String>) -> HeadError {
    HeadError::Invalid {
        reason: reason.into(),
    }
}

/// What produced a head; stored in the head file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HeadKind {
    Linear,
    Mlp,
    PcaWhitening,
}

impl HeadKind {
    /// Stable short name.
    pub fn name(self) -> &'static str {
        match self {
            HeadKind::Linear => "linear",
            HeadKind::Mlp => "mlp",
            HeadKind::PcaWhitening => "pca",
        }
    }

    fn code(self) -> u8 {
        match self {
            HeadKind::Linear => 1,
            HeadKind::Mlp => 2,
            HeadKind::PcaWhitening => 3,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(HeadKind::Linear),
            2 => Some(HeadKind::Mlp),
            3 => Some(HeadKind::PcaWhitening),
            _ => None,
        }
    }

    /// Dense layers a head of this kind has.
    pub fn layer_count(self) -> usize {
        match self {
            HeadKind::Linear | HeadKind::PcaWhitening => 1,
            HeadKind::Mlp => 2,
        }
    }
}

/// One dense layer, `y = W x + b`, with `W` stored row-major as `rows` (outputs) x `cols`
/// (inputs).
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    pub rows: usize,
    pub cols: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

impl Dense {
    /// The weights of output `o`.
    pub fn row(&self, o: usize) -> &[f32] {
        &self.weight[o * self.cols..(o + 1) * self.cols]
    }
}

/// A projection head for the embeddings of one model.
#[derive(Clone, Debug, PartialEq)]
pub struct Head {
    kind: HeadKind,
    model_id: String,
    description: String,
    layers: Vec<Dense>,
}

impl Head {
    /// Builds a head from its layers, checking that their shapes chain, match the kind, and
    /// hold finite values.
    pub fn new(
        kind: HeadKind,
        model_id: impl Into<String>,
        description: impl Into<String>,
        layers: Vec<Dense>,
    ) -> Result<Self, HeadError> {
        if layers.len() != kind.layer_count() {
            return Err(invalid(format!(
                "a {} head has {} layer(s), got {}",
                kind.name(),
                kind.layer_count(),
                layers.len()
            )));
        }
        for (i, l) in layers.iter().enumerate() {
            if l.rows == 0 || l.cols == 0 {
                return Err(invalid(format!("layer {i} has an empty weight matrix")));
            }
            if l.weight.len() != l.rows * l.cols {
                return Err(invalid(format!(
                    "layer {i} is {} x {} but holds {} weights",
                    l.rows,
                    l.cols,
                    l.weight.len()
                )));
            }
            if l.bias.len() != l.rows {
                return Err(invalid(format!(
                    "layer {i} has {} outputs but {} biases",
                    l.rows,
                    l.bias.len()
                )));
            }
            if let Some(next) = layers.get(i + 1) {
                if next.cols != l.rows {
                    return Err(invalid(format!(
                        "layer {i} gives {} values, layer {} takes {}",
                        l.rows,
                        i + 1,
                        next.cols
                    )));
                }
            }
            if l.weight.iter().chain(&l.bias).any(|v| !v.is_finite()) {
                return Err(invalid(format!(
                    "layer {i} holds a value that is not finite"
                )));
            }
        }
        Ok(Self {
            kind,
            model_id: model_id.into(),
            description: description.into(),
            layers,
        })
    }

    pub fn kind(&self) -> HeadKind {
        self.kind
    }

    /// The embedding model this head was made for (see `Embedder::model_id`).
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Free text describing how the head was made (loss, epochs, data).
    pub fn description(&self) -> &str {
        &self.description
    }

    pub fn layers(&self) -> &[Dense] {
        &self.layers
    }

    pub fn input_dim(&self) -> usize {
        self.layers[0].cols
    }

    pub fn output_dim(&self) -> usize {
        self.layers[self.layers.len() - 1].rows
    }

    /// Fails unless the head was made for `model_id`.
    pub fn check_model(&self, model_id: &str) -> Result<(), HeadError> {
        if self.model_id != model_id {
            return Err(HeadError::ModelMismatch {
                file_model: self.model_id.clone(),
                expected_model: model_id.to_string(),
            });
        }
        Ok(())
    }

    /// Projects one embedding, or reports a dimension mismatch.
    pub fn apply(&self, x: &[f32]) -> Result<Vec<f32>, HeadError> {
        if x.len() != self.input_dim() {
            return Err(HeadError::WrongDimension {
                expected: self.input_dim(),
                got: x.len(),
            });
        }
        let mut cur = x.to_vec();
        l2_normalize(&mut cur);
        for (i, layer) in self.layers.iter().enumerate() {
            let mut next: Vec<f32> = (0..layer.rows)
                .map(|o| dot(layer.row(o), &cur) + layer.bias[o])
                .collect();
            if i + 1 < self.layers.len() {
                next.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            cur = next;
        }
        l2_normalize(&mut cur);
        Ok(cur)
    }

    /// Serialises the head.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = envelope::begin(HEAD_MAGIC, HEAD_VERSION, 0);
        w.u8(self.kind.code());
        w.u8(self.layers.len() as u8);
        w.str(&self.model_id);
        w.str(&self.description);
        for l in &self.layers {
            w.u32(l.rows as u32);
            w.u32(l.cols as u32);
            w.f32s_exact(&l.weight);
            w.f32s_exact(&l.bias);
        }
        envelope::seal(w)
    }

    /// Parses a head file's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Head, HeadError> {
        let opened = envelope::open(bytes, HEAD_MAGIC, HEAD_VERSION, HEAD_VERSION)?;
        let mut r = common::le::Reader::new(opened.body);
        let corrupt = |e: common::le::DecodeError| HeadError::Corrupt {
            reason: e.to_string(),
        };
        let code = r.u8().map_err(corrupt)?;
        let kind = HeadKind::from_code(code).ok_or_else(|| HeadError::Corrupt {
            reason: format!("unknown head kind {code}"),
        })?;
        let count = r.u8().map_err(corrupt)?;
        let model_id = r.str().map_err(corrupt)?;
        let description = r.str().map_err(corrupt)?;
        let mut layers = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let (rows, cols) = (r.u32().map_err(corrupt)?, r.u32().map_err(corrupt)?);
            if rows == 0 || cols == 0 || rows > MAX_SIDE || cols > MAX_SIDE {
                return Err(HeadError::Corrupt {
                    reason: format!("implausible layer shape {rows} x {cols}"),
                });
            }
            let (rows, cols) = (rows as usize, cols as usize);
            let weight = r.f32s_exact(rows * cols).map_err(corrupt)?;
            let bias = r.f32s_exact(rows).map_err(corrupt)?;
            layers.push(Dense {
                rows,
                cols,
                weight,
                bias,
            });
        }
        r.finish().map_err(corrupt)?;
        Head::new(kind, model_id, description, layers).map_err(|e| HeadError::Corrupt {
            reason: e.to_string(),
        })
    }

    /// Writes the head to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), EmbedError> {
        common::fsio::write_atomic(path, &self.to_bytes()).map_err(|(path, source)| {
            EmbedError::Io {
                path: path.display().to_string(),
                source,
            }
        })
    }

    /// Reads a head file.
    pub fn load(path: &Path) -> Result<Head, EmbedError> {
        let bytes = std::fs::read(path).map_err(|source| EmbedError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Head::from_bytes(&bytes).map_err(|problem| EmbedError::Head {
            path: PathBuf::from(path),
            problem,
        })
    }
}

/// Dot product with eight independent accumulators so the compiler can vectorise it. Training
/// (`train::matrix`) uses this same function, so a head computes alike there and here.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Scales `v` to unit length and returns its original norm. A zero vector is left unchanged,
/// because there is no direction to keep.
pub fn l2_normalize(v: &mut [f32]) -> f32 {
    let n = dot(v, v).sqrt();
    if n > 0.0 {
        let inv = 1.0 / n;
        v.iter_mut().for_each(|x| *x *= inv);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A two-layer head with small, distinct weights.
    fn sample() -> Head {
        let l1 = Dense {
            rows: 3,
            cols: 4,
            weight: (0..12).map(|i| (i as f32 - 5.0) / 7.0).collect(),
            bias: vec![0.1, -0.2, 0.3],
        };
        let l2 = Dense {
            rows: 2,
            cols: 3,
            weight: vec![0.5, -1.0, 0.25, 1.5, 0.75, -0.5],
            bias: vec![0.0, 0.05],
        };
        Head::new(
            HeadKind::Mlp,
            "model@abc",
            "loss=infonce epochs=3",
            vec![l1, l2],
        )
        .unwrap()
    }

    #[test]
    fn round_trip_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.head");
        let h = sample();
        h.save(&path).unwrap();
        let back = Head::load(&path).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.model_id(), "model@abc");
        let x = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(back.apply(&x).unwrap(), h.apply(&x).unwrap());
        assert!(matches!(
            Head::load(Path::new("/nonexistent/dir/h.head")),
            Err(EmbedError::Io { .. })
        ));
    }

    #[test]
    fn apply_normalises_both_ends_and_passes_relu() {
        let h = sample();
        let x = [1.0, 2.0, 3.0, 4.0];
        let scaled: Vec<f32> = x.iter().map(|v| v * 7.0).collect();
        let (a, b) = (h.apply(&x).unwrap(), h.apply(&scaled).unwrap());
        assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-6));
        assert!((dot(&a, &a) - 1.0).abs() < 1e-5);
        // By hand: normalise, layer 1, ReLU, layer 2, normalise.
        let n = dot(&x, &x).sqrt();
        let xn: Vec<f32> = x.iter().map(|v| v / n).collect();
        let l = h.layers();
        let hidden: Vec<f32> = (0..3)
            .map(|o| (dot(l[0].row(o), &xn) + l[0].bias[o]).max(0.0))
            .collect();
        let mut out: Vec<f32> = (0..2)
            .map(|o| dot(l[1].row(o), &hidden) + l[1].bias[o])
            .collect();
        l2_normalize(&mut out);
        assert!(a.iter().zip(&out).all(|(p, q)| (p - q).abs() < 1e-6));
    }

    #[test]
    fn wrong_dimension_and_model_are_conflicts() {
        let h = sample();
        let e = h.apply(&[1.0; 5]).unwrap_err();
        assert!(matches!(
            e,
            HeadError::WrongDimension {
                expected: 4,
                got: 5
            }
        ));
        assert_eq!(e.class().kind, ErrorKind::Conflict);
        assert!(h.check_model("other").is_err());
        assert!(h.check_model("model@abc").is_ok());
    }

    #[test]
    fn new_rejects_inconsistent_layers() {
        let dense = |rows: usize, cols: usize, biases: usize| Dense {
            rows,
            cols,
            weight: vec![0.0; rows * cols],
            bias: vec![0.0; biases],
        };
        let new = |kind, layers| Head::new(kind, "m", "", layers);
        assert!(new(HeadKind::Mlp, vec![dense(3, 4, 3), dense(2, 5, 2)]).is_err());
        assert!(new(HeadKind::Linear, vec![dense(3, 4, 3), dense(3, 4, 3)]).is_err());
        assert!(new(HeadKind::Linear, vec![dense(3, 4, 2)]).is_err());
        assert!(new(HeadKind::Linear, vec![dense(0, 4, 0)]).is_err());
        let mut short = dense(3, 4, 3);
        short.weight.pop();
        assert!(new(HeadKind::Linear, vec![short]).is_err());
        let mut nan = dense(3, 4, 3);
        nan.bias[1] = f32::NAN;
        assert!(new(HeadKind::Linear, vec![nan]).is_err());
        assert!(new(HeadKind::Linear, vec![dense(3, 4, 3)]).is_ok());
    }

    #[test]
    fn every_truncation_is_a_typed_error() {
        let bytes = sample().to_bytes();
        for len in 0..bytes.len() {
            match Head::from_bytes(&bytes[..len]) {
                Err(HeadError::Envelope(EnvelopeError::Truncated { .. })) => {}
                other => panic!("length {len}: expected Truncated, got {other:?}"),
            }
        }
    }

    #[test]
    fn flipped_bits_are_detected() {
        let bytes = sample().to_bytes();
        for i in 20..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(
                matches!(
                    Head::from_bytes(&b),
                    Err(HeadError::Envelope(EnvelopeError::ChecksumMismatch { .. }))
                ),
                "byte {i}"
            );
        }
    }

    #[test]
    fn wrong_magic_version_and_length() {
        let bytes = sample().to_bytes();
        let mut b = bytes.clone();
        b[0] = b'X';
        assert!(matches!(
            Head::from_bytes(&b),
            Err(HeadError::Envelope(EnvelopeError::BadMagic))
        ));
        let mut b = bytes.clone();
        b[8] = 9;
        assert!(matches!(
            Head::from_bytes(&b),
            Err(HeadError::Envelope(EnvelopeError::UnsupportedVersion {
                found: 9,
                ..
            }))
        ));
        let mut b = bytes.clone();
        b.push(0);
        assert!(matches!(
            Head::from_bytes(&b),
            Err(HeadError::Envelope(EnvelopeError::BadLength { .. }))
        ));
    }

    #[test]
    fn valid_checksum_over_bad_content_is_corrupt() {
        // Unknown kind code, re-sealed with a correct checksum.
        let bytes = sample().to_bytes();
        let mut body = bytes[20..bytes.len() - 4].to_vec();
        body[0] = 42;
        let b = envelope::wrap(HEAD_MAGIC, HEAD_VERSION, &body);
        assert!(matches!(
            Head::from_bytes(&b),
            Err(HeadError::Corrupt { .. })
        ));
    }

    /// A version-1 file written when the format was fixed; it must keep loading.
    #[test]
    fn version_1_fixture_loads() {
        let layer = Dense {
            rows: 2,
            cols: 2,
            weight: vec![1.0, 0.0, 0.0, 2.0],
            bias: vec![0.5, -0.5],
        };
        let h = Head::new(HeadKind::Linear, "m", "d", vec![layer]).unwrap();
        let fixture: &[u8] = include_bytes!("../tests/fixtures/linear_v1.head");
        assert_eq!(
            h.to_bytes(),
            fixture,
            "the writer changed: bump HEAD_VERSION"
        );
        assert_eq!(Head::from_bytes(fixture).unwrap(), h);
    }
}
