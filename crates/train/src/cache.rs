//! A file of embeddings keyed by string (for example a path with its size and mtime), so
//! repeated evaluation and training runs do not embed the same images again.
//!
//! Envelope as in `codec` (magic `IMGSECAC`, version 1, length, CRC-32). Body, little-endian:
//! model id (u32 length + UTF-8), dim u32, count u32, then per entry key (u32 length + UTF-8)
//! and `dim` f32. Entries are written in key order so equal caches give equal files.

use std::collections::BTreeMap;
use std::path::Path;

use crate::codec::{begin, open, read_file, seal, write_atomic};
use crate::error::{Result, TrainError};

pub const CACHE_MAGIC: &[u8; 8] = b"IMGSECAC";
pub const CACHE_VERSION: u32 = 1;

/// Embeddings of one model, by key.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingCache {
    model_id: String,
    dim: usize,
    entries: BTreeMap<String, Vec<f32>>,
}

impl EmbeddingCache {
    pub fn new(model_id: impl Into<String>, dim: usize) -> Self {
        Self {
            model_id: model_id.into(),
            dim,
            entries: BTreeMap::new(),
        }
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&[f32]> {
        self.entries.get(key).map(Vec::as_slice)
    }

    /// Stores a vector; rejects one of the wrong length or with non-finite values.
    pub fn insert(&mut self, key: impl Into<String>, vector: Vec<f32>) -> Result<()> {
        if vector.len() != self.dim {
            return Err(TrainError::WrongDimension {
                expected: self.dim,
                got: vector.len(),
            });
        }
        if vector.iter().any(|v| !v.is_finite()) {
            return Err(TrainError::NonFinite {
                what: "cached embedding".into(),
            });
        }
        self.entries.insert(key.into(), vector);
        Ok(())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = begin(CACHE_MAGIC, CACHE_VERSION);
        w.str(&self.model_id);
        w.u32(self.dim as u32);
        w.u32(self.entries.len() as u32);
        for (k, v) in &self.entries {
            w.str(k);
            w.f32s_exact(v);
        }
        seal(w)
    }

    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let mut r = open(path, bytes, CACHE_MAGIC, "embedding cache", CACHE_VERSION)?;
        let model_id = r.str()?;
        let dim = r.u32()? as usize;
        let count = r.u32()?;
        let mut cache = Self::new(model_id, dim);
        for _ in 0..count {
            let key = r.str()?;
            let v = r.f32s(dim)?;
            cache.insert(key, v).map_err(|e| r.corrupt(e.to_string()))?;
        }
        r.finish()?;
        Ok(cache)
    }

    /// Writes the cache atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_bytes())
    }

    /// Reads a cache file.
    pub fn load(path: &Path) -> Result<Self> {
        Self::from_bytes(&read_file(path)?, path)
    }

    /// The cache at `path` when it exists and belongs to `model_id`; otherwise an empty cache
    /// for it. A missing file or one for another model is normal (first run, model changed);
    /// a damaged file is an error so it is noticed rather than silently rebuilt.
    pub fn open_for(path: &Path, model_id: &str, dim: usize) -> Result<Self> {
        if !path.exists() {
            return Ok(Self::new(model_id, dim));
        }
        let c = Self::load(path)?;
        if c.model_id != model_id || c.dim != dim {
            tracing::warn!(
                path = %path.display(),
                file_model = %c.model_id,
                model_id,
                "embedding cache is for another model; starting a new one"
            );
            return Ok(Self::new(model_id, dim));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::envelope::EnvelopeError;

    #[test]
    fn round_trip_and_model_switch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.cache");
        let mut c = EmbeddingCache::new("m1", 3);
        c.insert("b", vec![1.0, 2.0, 3.0]).unwrap();
        c.insert("a", vec![0.5, 0.0, -1.0]).unwrap();
        c.save(&path).unwrap();
        let back = EmbeddingCache::open_for(&path, "m1", 3).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.get("a"), Some(&[0.5, 0.0, -1.0][..]));
        assert!(EmbeddingCache::open_for(&path, "m2", 3).unwrap().is_empty());
        assert!(EmbeddingCache::open_for(&dir.path().join("none"), "m1", 3)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn bad_vectors_and_damaged_files_are_errors() {
        let mut c = EmbeddingCache::new("m", 2);
        assert!(c.insert("x", vec![1.0]).is_err());
        assert!(c.insert("x", vec![f32::NAN, 0.0]).is_err());
        c.insert("x", vec![1.0, 2.0]).unwrap();
        let bytes = c.to_bytes();
        let p = Path::new("c");
        assert!(matches!(
            EmbeddingCache::from_bytes(&bytes[..bytes.len() - 1], p),
            Err(TrainError::Envelope {
                source: EnvelopeError::Truncated { .. },
                ..
            })
        ));
        let mut b = bytes.clone();
        b[30] ^= 1;
        assert!(matches!(
            EmbeddingCache::from_bytes(&b, p),
            Err(TrainError::Envelope {
                source: EnvelopeError::ChecksumMismatch { .. },
                ..
            })
        ));
    }
}
