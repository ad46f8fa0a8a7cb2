//! The head file: a projection head with the id of the embedding model it was trained for.
//!
//! Envelope as in `codec` (magic `IMGSHEAD`, version 1, length, CRC-32). Body, little-endian:
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

use std::path::Path;

use crate::codec::{begin, open, read_file, seal, write_atomic};
use crate::error::{Result, TrainError};
use crate::head::{Dense, Head, HeadKind};
use crate::matrix::Matrix;

/// Magic number of head files.
pub const HEAD_MAGIC: &[u8; 8] = b"IMGSHEAD";
/// The head format version this build writes and reads.
pub const HEAD_VERSION: u32 = 1;
/// Largest layer side accepted on load, so a corrupt size cannot ask for gigabytes.
const MAX_SIDE: u32 = 1 << 16;

impl Head {
    /// Serialises the head.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = begin(HEAD_MAGIC, HEAD_VERSION);
        w.u8(self.kind().code());
        w.u8(self.layers().len() as u8);
        w.str(self.model_id());
        w.str(self.description());
        for l in self.layers() {
            w.u32(l.weight.rows() as u32);
            w.u32(l.weight.cols() as u32);
            w.f32s_exact(l.weight.as_slice());
            w.f32s_exact(&l.bias);
        }
        seal(w)
    }

    /// Parses a head; `path` only names the source in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Head> {
        let mut r = open(path, bytes, HEAD_MAGIC, "head", HEAD_VERSION)?;
        let code = r.u8()?;
        let kind = HeadKind::from_code(code)
            .ok_or_else(|| r.corrupt(format!("unknown head kind {code}")))?;
        let count = r.u8()?;
        let model_id = r.str()?;
        let description = r.str()?;
        let mut layers = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let (out, inp) = (r.u32()?, r.u32()?);
            if out == 0 || inp == 0 || out > MAX_SIDE || inp > MAX_SIDE {
                return Err(r.corrupt(format!("implausible layer shape {out} x {inp}")));
            }
            let (out, inp) = (out as usize, inp as usize);
            let weight = Matrix::from_vec(out, inp, r.f32s(out * inp)?)?;
            let bias = r.f32s(out)?;
            layers.push(Dense { weight, bias });
        }
        r.finish()?;
        Head::new(kind, model_id, description, layers).map_err(|e| TrainError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Writes the head to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_bytes())
    }

    /// Reads a head file.
    pub fn load(path: &Path) -> Result<Head> {
        Head::from_bytes(&read_file(path)?, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::HeadArch;
    use common::envelope::EnvelopeError;

    fn sample() -> Head {
        let mut h = Head::init(HeadArch::Mlp { hidden: 5, out: 3 }, 4, "model@abc", 7).unwrap();
        h.set_description("loss=infonce epochs=3");
        h
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
        assert_eq!(
            back.apply(&[1.0, 2.0, 3.0, 4.0]),
            h.apply(&[1.0, 2.0, 3.0, 4.0])
        );
    }

    #[test]
    fn every_truncation_is_a_typed_error() {
        let bytes = sample().to_bytes();
        let p = Path::new("t.head");
        for len in 0..bytes.len() {
            match Head::from_bytes(&bytes[..len], p) {
                Err(TrainError::Envelope {
                    source: EnvelopeError::Truncated { .. },
                    ..
                }) => {}
                other => panic!("length {len}: expected Truncated, got {other:?}"),
            }
        }
    }

    #[test]
    fn flipped_bits_are_detected() {
        let bytes = sample().to_bytes();
        let p = Path::new("c.head");
        for i in 20..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(
                matches!(
                    Head::from_bytes(&b, p),
                    Err(TrainError::Envelope {
                        source: EnvelopeError::ChecksumMismatch { .. },
                        ..
                    })
                ),
                "byte {i}"
            );
        }
    }

    #[test]
    fn wrong_magic_version_and_length() {
        let bytes = sample().to_bytes();
        let p = Path::new("x");
        let mut b = bytes.clone();
        b[0] = b'X';
        assert!(matches!(
            Head::from_bytes(&b, p),
            Err(TrainError::Envelope {
                source: EnvelopeError::BadMagic,
                ..
            })
        ));
        let mut b = bytes.clone();
        b[8] = 9;
        assert!(matches!(
            Head::from_bytes(&b, p),
            Err(TrainError::Envelope {
                source: EnvelopeError::UnsupportedVersion { found: 9, .. },
                ..
            })
        ));
        let mut b = bytes.clone();
        b.push(0);
        assert!(matches!(
            Head::from_bytes(&b, p),
            Err(TrainError::Envelope {
                source: EnvelopeError::BadLength { .. },
                ..
            })
        ));
        assert!(matches!(
            Head::load(Path::new("/nonexistent/dir/h.head")),
            Err(TrainError::Io { .. })
        ));
    }

    #[test]
    fn valid_checksum_over_bad_content_is_corrupt() {
        // Unknown kind code, re-sealed with a correct checksum.
        let bytes = sample().to_bytes();
        let mut body = bytes[20..bytes.len() - 4].to_vec();
        body[0] = 42;
        let b = common::envelope::wrap(HEAD_MAGIC, HEAD_VERSION, &body);
        assert!(matches!(
            Head::from_bytes(&b, Path::new("k")),
            Err(TrainError::Corrupt { .. })
        ));
    }

    /// A version-1 file written by this code when the format was fixed; it must keep loading.
    #[test]
    fn version_1_fixture_loads() {
        let layer = Dense {
            weight: Matrix::from_rows(&[[1.0, 0.0], [0.0, 2.0]]).unwrap(),
            bias: vec![0.5, -0.5],
        };
        let h = Head::new(HeadKind::Linear, "m", "d", vec![layer]).unwrap();
        let bytes = h.to_bytes();
        let fixture: &[u8] = include_bytes!("../tests/fixtures/linear_v1.head");
        assert_eq!(bytes, fixture, "the writer changed: bump HEAD_VERSION");
        assert_eq!(Head::from_bytes(fixture, Path::new("fixture")).unwrap(), h);
    }
}
