//! Index snapshot files: derived data saved beside the redb file so that reopening a collection
//! does not have to rebuild its index.
//!
//! A snapshot is only ever a cache. Reading one checks everything (magic, version, checksum,
//! exact length, and, in the collection, the generation and point set it was built for); any
//! mismatch makes the caller rebuild from the points, never fail.
//!
//! Version 3 (written now) is the shared envelope (`common::envelope`: magic `IMGVSNAP`, version,
//! total length, CRC-32 of everything before it) around this body, in the `common::le` codec:
//! `u64` redb generation the snapshot was built for; `u64` number of live points; `u64` uid of
//! the collection (see `points`); `u32` length + index spec as JSON; `u32` dim; `u64` slot count
//! `n`; `n` x `u64` per slot: the point id, `u64::MAX` for a dead slot (deleted, but the index
//! still routes through its vector) or `u64::MAX - 1` for a free slot (in no index, reusable);
//! `u64` length + the index body from `AnyIndex::to_bytes`. Vectors are not in the snapshot: they
//! stay in the vector file, dead ones included, so loading reads `8 x n` bytes plus the index.
//!
//! Versions 1 and 2 had a 48-byte header of their own: magic, `u32` version, 4 reserved bytes,
//! `u64` generation, `u64` live count, `u64` body length, CRC-32 of the body, CRC-32 of bytes
//! 0..44. Version 2's body is version 3's from the uid on, so a version-2 snapshot still restores
//! a collection without a rebuild (the next save writes version 3). Version 1 (format 1
//! collections) had no uid and no free slots and, after the slot ids, `dim` x `f32` for each dead
//! slot in slot order (live vectors came from redb); it is decoded only to migrate.
//!
//! Writes are atomic: the file is written to `<name>.tmp`, fsynced, renamed over the old one, and
//! the directory is fsynced, so a crash leaves either the old or the new snapshot (or a stray
//! temporary file, which is ignored and overwritten).

use std::path::Path;

use common::fsio::AtomicWriteError;
use common::le::Reader;

use crate::error::VecDbError;

/// Magic number at the start of every snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"IMGVSNAP";
/// Current snapshot format version.
pub const SNAPSHOT_VERSION: u32 = 3;
/// The oldest version a collection restores from without a rebuild (same content as the current).
pub const SNAPSHOT_RESTORABLE: u32 = 2;
/// Slot id marking a deleted slot that the index still holds.
pub const DEAD_SLOT: u64 = u64::MAX;
/// Slot id marking a slot no point and no index uses (reusable).
pub const FREE_SLOT: u64 = u64::MAX - 1;
/// Header length of versions 1 and 2.
const LEGACY_HEADER_LEN: usize = 48;

/// The decoded content of a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Snapshot {
    /// Format version the snapshot was read in (written snapshots are always the current one).
    pub version: u32,
    /// The collection's uid (0 when read from version 1).
    pub uid: u64,
    pub generation: u64,
    pub live_count: u64,
    pub spec_json: String,
    pub dim: usize,
    /// Point id per slot, `DEAD_SLOT` for deleted slots, `FREE_SLOT` for free ones.
    pub slot_ids: Vec<u64>,
    /// Version 1 only: vectors of the deleted slots, in slot order, `dim` floats each.
    pub dead_vectors: Vec<f32>,
    pub index: Vec<u8>,
}

impl Snapshot {
    /// Serialises the snapshot into the current file format.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let cap = 64 + self.spec_json.len() + self.slot_ids.len() * 8 + self.index.len();
        let mut w = common::envelope::begin(&SNAPSHOT_MAGIC, SNAPSHOT_VERSION, cap);
        w.u64(self.generation);
        w.u64(self.live_count);
        w.u64(self.uid);
        w.str(&self.spec_json);
        w.u32(self.dim as u32);
        w.u64(self.slot_ids.len() as u64);
        w.u64s_exact(&self.slot_ids);
        w.blob(&self.index);
        common::envelope::seal(w)
    }

    /// Parses and checks a snapshot file's bytes (any version this build reads); the error says
    /// what is wrong.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Snapshot, String> {
        // Every version starts with the magic number and a `u32` version.
        if bytes.len() >= 12 && bytes[..8] == SNAPSHOT_MAGIC {
            let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4"));
            if version < SNAPSHOT_VERSION {
                return Snapshot::decode_legacy(bytes);
            }
        }
        let opened =
            common::envelope::open(bytes, &SNAPSHOT_MAGIC, SNAPSHOT_VERSION, SNAPSHOT_VERSION)
                .map_err(|e| e.to_string())?;
        let mut r = Reader::new(opened.body);
        let generation = r.u64()?;
        let live_count = r.u64()?;
        let uid = r.u64()?;
        let spec_json = r.str()?;
        let dim = r.u32()? as usize;
        let slots = r.len(8)?;
        let slot_ids = r.u64s_exact(slots)?;
        let index = r.blob()?.to_vec();
        r.finish()?;
        Ok(Snapshot {
            version: opened.version,
            uid,
            generation,
            live_count,
            spec_json,
            dim,
            slot_ids,
            dead_vectors: Vec::new(),
            index,
        })
    }

    /// Parses and checks a version 1 or 2 file's bytes.
    fn decode_legacy(bytes: &[u8]) -> Result<Snapshot, String> {
        if bytes.len() < LEGACY_HEADER_LEN {
            return Err(format!(
                "file is {} bytes, shorter than the header",
                bytes.len()
            ));
        }
        let (header, body) = bytes.split_at(LEGACY_HEADER_LEN);
        if header[..8] != SNAPSHOT_MAGIC {
            return Err("bad magic number".into());
        }
        let u32_at = |o: usize| u32::from_le_bytes(header[o..o + 4].try_into().expect("4"));
        let u64_at = |o: usize| u64::from_le_bytes(header[o..o + 8].try_into().expect("8"));
        if crc32fast::hash(&header[..44]) != u32_at(44) {
            return Err("header checksum mismatch".into());
        }
        let version = u32_at(8);
        if version != 1 && version != 2 {
            return Err(format!("format version {version}, expected 1 or 2"));
        }
        if u64_at(32) != body.len() as u64 {
            return Err(format!(
                "body is {} bytes, header says {} (truncated or extended file)",
                body.len(),
                u64_at(32)
            ));
        }
        if crc32fast::hash(body) != u32_at(40) {
            return Err("body checksum mismatch".into());
        }
        let mut r = Reader::new(body);
        let uid = if version == 1 { 0 } else { r.u64()? };
        let spec_len = r.u32()? as usize;
        let spec_json = String::from_utf8(r.take(spec_len)?.to_vec())
            .map_err(|_| "index spec is not UTF-8".to_string())?;
        let dim = r.u32()? as usize;
        let slots = r.u64()? as usize;
        if slots > body.len() / 8 {
            return Err("slot count exceeds the file size".into());
        }
        let raw_ids = r.take(slots * 8)?;
        let slot_ids: Vec<u64> = raw_ids
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8")))
            .collect();
        let dead_vectors = if version == 1 {
            let dead = slot_ids.iter().filter(|&&id| id == DEAD_SLOT).count();
            let dead_floats = dead.checked_mul(dim).ok_or("dead vector size overflows")?;
            let raw = r.take(
                dead_floats
                    .checked_mul(4)
                    .ok_or("dead vector size overflows")?,
            )?;
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
                .collect()
        } else {
            Vec::new()
        };
        let index_len = r.u64()? as usize;
        let index = r.take(index_len)?.to_vec();
        if r.remaining() != 0 {
            return Err("trailing bytes after the index body".into());
        }
        Ok(Snapshot {
            version,
            uid,
            generation: u64_at(16),
            live_count: u64_at(24),
            spec_json,
            dim,
            slot_ids,
            dead_vectors,
            index,
        })
    }
}

/// Writes `bytes` to `path` atomically (see `common::fsio::write_atomic`).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), VecDbError> {
    common::fsio::write_atomic(path, bytes).map_err(|(p, e)| VecDbError::io(p, e))
}

/// Writes a file atomically, its content streamed by `fill` (see
/// `common::fsio::write_atomic_with`); returns what `fill` returns. `fill`'s error is the reason
/// the content could not be produced; it becomes `Corrupt` on `path`, and the temporary file is
/// removed.
pub(crate) fn write_atomic_with<T>(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<T, String>,
) -> Result<T, VecDbError> {
    common::fsio::write_atomic_with(path, fill).map_err(|e| match e {
        AtomicWriteError::Io(p, e) => VecDbError::io(p, e),
        AtomicWriteError::Fill(reason) => VecDbError::Corrupt {
            path: path.to_path_buf(),
            reason,
        },
    })
}

/// Fsyncs a directory so that renames and creations inside it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), VecDbError> {
    common::fsio::sync_dir(dir).map_err(|e| VecDbError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            uid: 77,
            generation: 42,
            live_count: 2,
            spec_json: "{\"kind\":\"flat\"}".into(),
            dim: 2,
            slot_ids: vec![5, DEAD_SLOT, 9, FREE_SLOT],
            dead_vectors: Vec::new(),
            index: vec![1, 2, 3],
        }
    }

    #[test]
    fn write_atomic_with_streams_and_leaves_the_old_file_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.bin");
        use std::io::Write;
        write_atomic_with(&p, |out| out.write_all(b"one").map_err(|e| e.to_string())).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        let e = write_atomic_with(&p, |out| {
            out.write_all(b"half").unwrap();
            Err::<(), String>("no content".into())
        })
        .unwrap_err();
        assert!(matches!(e, VecDbError::Corrupt { .. }), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn round_trip() {
        let s = sample();
        assert_eq!(Snapshot::decode(&s.encode()).unwrap(), s);
    }

    /// How version 2 was written (its own 48-byte header), to check it is still read.
    fn encode_v2(s: &Snapshot) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&s.uid.to_le_bytes());
        body.extend_from_slice(&(s.spec_json.len() as u32).to_le_bytes());
        body.extend_from_slice(s.spec_json.as_bytes());
        body.extend_from_slice(&(s.dim as u32).to_le_bytes());
        body.extend_from_slice(&(s.slot_ids.len() as u64).to_le_bytes());
        for id in &s.slot_ids {
            body.extend_from_slice(&id.to_le_bytes());
        }
        body.extend_from_slice(&(s.index.len() as u64).to_le_bytes());
        body.extend_from_slice(&s.index);
        let mut out = Vec::new();
        out.extend_from_slice(&SNAPSHOT_MAGIC);
        out.extend_from_slice(&2u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&s.generation.to_le_bytes());
        out.extend_from_slice(&s.live_count.to_le_bytes());
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        let header_crc = crc32fast::hash(&out);
        out.extend_from_slice(&header_crc.to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn version_2_is_still_read_and_a_newer_version_is_refused() {
        let s = sample();
        let v2 = encode_v2(&s);
        let read = Snapshot::decode(&v2).unwrap();
        assert_eq!(read.version, 2);
        assert_eq!(
            Snapshot {
                version: SNAPSHOT_VERSION,
                ..read
            },
            s,
            "same content"
        );
        let mut bad = v2.clone();
        bad[60] ^= 1;
        assert!(Snapshot::decode(&bad).is_err());
        let body = &s.encode()[common::envelope::HEADER_LEN..s.encode().len() - 4];
        let future = common::envelope::wrap(&SNAPSHOT_MAGIC, SNAPSHOT_VERSION + 1, body);
        let err = Snapshot::decode(&future).unwrap_err();
        assert!(err.contains("format version 4"), "{err}");
    }

    #[test]
    fn every_truncation_and_every_bit_flip_is_detected() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(
                Snapshot::decode(&bytes[..len]).is_err(),
                "truncated to {len}"
            );
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(Snapshot::decode(&b).is_err(), "flip in byte {i}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Snapshot::decode(&longer).is_err());
    }
}
