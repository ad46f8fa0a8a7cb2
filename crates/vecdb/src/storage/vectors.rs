//! The vector file: every vector the index sees, in fixed-size slots, memory-mapped.
//!
//! Layout (little endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `IMGVVECS` |
//! | 8 | 4 | format version, `u32` (currently 1) |
//! | 12 | 4 | `dim`, `u32` |
//! | 16 | 4 | slot size in bytes, `u32` (= 4 x dim) |
//! | 20 | 4 | CRC-32 (IEEE) of bytes 0..20 |
//! | 24 | 4072 | zero |
//! | 4096 + s x slot size | slot size | slot `s`: `dim` x `f32` |
//!
//! The header fills one page so that slots start page-aligned (and 64-byte aligned whenever the
//! slot size is a multiple of 64, which keeps SIMD loads within cache lines). The file only
//! grows, in steps, and the tail beyond the last used slot is sparse until written.
//!
//! Which slots are in use, and by which point, is not recorded here: redb is the source of
//! truth (each point record names its slot and the CRC-32 of its vector), and the index
//! snapshot caches the slot table. See `docs/vecdb.md` for the write protocol that keeps the two
//! consistent across crashes: a slot's bytes are written and fsynced before the redb commit
//! that makes the slot live, and a slot is never rewritten while a live point or the index
//! refers to it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::VecDbError;

/// Magic number at the start of every vector file.
pub const VECTORS_MAGIC: [u8; 8] = *b"IMGVVECS";
/// Current vector file format version.
pub const VECTORS_VERSION: u32 = 1;
/// Bytes before slot 0.
pub const VECTORS_HEADER_LEN: usize = 4096;
/// Slots added at least when the file grows.
const MIN_GROWTH_SLOTS: usize = 1024;

/// The open vector file of a collection (the write side; reads go through [`VectorMap`]).
pub(crate) struct VectorFile {
    file: File,
    path: PathBuf,
    dim: usize,
    /// Slots the file's current length holds.
    capacity: usize,
}

impl VectorFile {
    /// Creates an empty vector file (header only) and fsyncs it; the caller fsyncs the
    /// directory.
    pub(crate) fn create(path: &Path, dim: usize) -> Result<VectorFile, VecDbError> {
        check_endian(path)?;
        let io = |e| VecDbError::io(path, e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(io)?;
        file.write_all(&header(dim)).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(VectorFile {
            file,
            path: path.to_path_buf(),
            dim,
            capacity: 0,
        })
    }

    /// Opens an existing vector file and checks its header (it reads the header only).
    pub(crate) fn open(path: &Path, dim: usize) -> Result<VectorFile, VecDbError> {
        check_endian(path)?;
        let io = |e| VecDbError::io(path, e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io)?;
        let corrupt = |reason: String| VecDbError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let mut head = vec![0u8; VECTORS_HEADER_LEN];
        file.read_exact(&mut head)
            .map_err(|e| corrupt(format!("cannot read the header: {e}")))?;
        if head[..8] != VECTORS_MAGIC {
            return Err(corrupt("bad magic number (not a vector file)".into()));
        }
        let u32_at = |o: usize| u32::from_le_bytes(head[o..o + 4].try_into().expect("4 bytes"));
        if crc32fast::hash(&head[..20]) != u32_at(20) {
            return Err(corrupt("header checksum mismatch".into()));
        }
        let version = u32_at(8);
        if version > VECTORS_VERSION {
            return Err(VecDbError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: version,
                supported: VECTORS_VERSION,
            });
        }
        if u32_at(12) as usize != dim || u32_at(16) as usize != dim * 4 {
            return Err(corrupt(format!(
                "vector file is for dimension {}, the collection has {dim}",
                u32_at(12)
            )));
        }
        let len = file.metadata().map_err(io)?.len() as usize;
        Ok(VectorFile {
            file,
            path: path.to_path_buf(),
            dim,
            capacity: len.saturating_sub(VECTORS_HEADER_LEN) / (dim * 4),
        })
    }

    /// Writes `vectors` (whole vectors, back to back) into consecutive slots from `first`,
    /// growing the file as needed. Not durable until [`VectorFile::sync`].
    pub(crate) fn write(&mut self, first: u32, vectors: &[f32]) -> Result<(), VecDbError> {
        debug_assert_eq!(vectors.len() % self.dim, 0);
        let end = first as usize + vectors.len() / self.dim;
        if end > self.capacity {
            let grown = end
                .max(self.capacity + self.capacity / 2)
                .max(MIN_GROWTH_SLOTS);
            let len = VECTORS_HEADER_LEN as u64 + (grown * self.dim * 4) as u64;
            self.file
                .set_len(len)
                .map_err(|e| VecDbError::io(&self.path, e))?;
            self.capacity = grown;
        }
        let mut bytes = Vec::with_capacity(vectors.len() * 4);
        for x in vectors {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        let offset = VECTORS_HEADER_LEN as u64 + first as u64 * (self.dim * 4) as u64;
        let io = |e| VecDbError::io(&self.path, e);
        self.file.seek(SeekFrom::Start(offset)).map_err(io)?;
        self.file.write_all(&bytes).map_err(io)
    }

    /// Makes every write so far durable (data and the file length).
    pub(crate) fn sync(&self) -> Result<(), VecDbError> {
        self.file
            .sync_data()
            .map_err(|e| VecDbError::io(&self.path, e))
    }

    /// Maps the whole file read-only.
    pub(crate) fn map(&self) -> Result<VectorMap, VecDbError> {
        // SAFETY: the mapping is read-only and private to this collection: the database
        // directory belongs to one process (redb locks the points file beside it), and within
        // the process this file is only ever extended, never truncated, so the mapped range
        // stays backed for the mapping's whole life. Slots are only rewritten while neither a
        // live point nor the index refers to them (see the write protocol), and `VectorMap`
        // hands out slices of single slots that are referred to, so no reference ever covers
        // bytes that change under it.
        let map = unsafe { Mmap::map(&self.file) }.map_err(|e| VecDbError::io(&self.path, e))?;
        if map.len() < VECTORS_HEADER_LEN {
            return Err(VecDbError::Corrupt {
                path: self.path.clone(),
                reason: "file is shorter than its header".into(),
            });
        }
        // No `madvise(MADV_RANDOM)`: it would also switch off the kernel's fault-around, which
        // maps up to 16 cached pages per fault; a fresh process searching a warm file then takes
        // one page fault per 4 KiB instead of one per 64 KiB.
        let slots = (map.len() - VECTORS_HEADER_LEN) / (self.dim * 4);
        Ok(VectorMap {
            map,
            dim: self.dim,
            slots,
        })
    }
}

/// A read-only mapping of a vector file: slot `s` is `get(s)`.
pub struct VectorMap {
    map: Mmap,
    dim: usize,
    slots: usize,
}

impl std::fmt::Debug for VectorMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorMap")
            .field("dim", &self.dim)
            .field("slots", &self.slots)
            .finish()
    }
}

impl VectorMap {
    /// Slots the mapping covers.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Bytes mapped (the page cache holds them, not the process heap).
    pub fn mapped_bytes(&self) -> usize {
        self.map.len()
    }

    /// The vector in `slot`. Panics if the mapping does not cover it.
    #[inline]
    pub fn get(&self, slot: u32) -> &[f32] {
        assert!(
            (slot as usize) < self.slots,
            "slot {slot} is beyond the mapping"
        );
        let offset = VECTORS_HEADER_LEN + slot as usize * self.dim * 4;
        // SAFETY: the range `offset .. offset + 4 * dim` lies inside the mapping (checked
        // above); the mapping starts on a page boundary and the header and slot sizes are
        // multiples of 4, so the pointer is aligned for `f32`; any bit pattern is a valid `f32`;
        // and the file is little endian, which `check_endian` made sure this machine is. The
        // slice borrows `self`, so the mapping outlives it, and the slot is not rewritten while
        // it is referred to (see `VectorFile::map`).
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(offset).cast::<f32>(), self.dim) }
    }
}

fn header(dim: usize) -> Vec<u8> {
    let mut h = vec![0u8; VECTORS_HEADER_LEN];
    h[..8].copy_from_slice(&VECTORS_MAGIC);
    h[8..12].copy_from_slice(&VECTORS_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(dim as u32).to_le_bytes());
    h[16..20].copy_from_slice(&((dim * 4) as u32).to_le_bytes());
    let crc = crc32fast::hash(&h[..20]);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The file stores `f32` little endian and is read in place, so a big-endian machine cannot
/// use it; say so instead of returning wrong numbers.
fn check_endian(path: &Path) -> Result<(), VecDbError> {
    if cfg!(target_endian = "big") {
        return Err(VecDbError::Corrupt {
            path: path.to_path_buf(),
            reason: "vector files are little endian; this machine is big endian".into(),
        });
    }
    Ok(())
}

/// CRC-32 of a vector's bytes as stored (little endian), recorded in its point record.
pub(crate) fn vector_crc(v: &[f32]) -> u32 {
    // Hashed a kilobyte at a time: fed four bytes per call, the hasher never reaches its
    // carry-less multiplication path and takes several times as long.
    let mut h = crc32fast::Hasher::new();
    let mut buf = [0u8; 1024];
    for chunk in v.chunks(buf.len() / 4) {
        for (b, x) in buf.chunks_exact_mut(4).zip(chunk) {
            b.copy_from_slice(&x.to_le_bytes());
        }
        h.update(&buf[..chunk.len() * 4]);
    }
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_crc_is_the_crc_of_the_little_endian_bytes() {
        for n in [0, 1, 255, 256, 257, 1280] {
            let v: Vec<f32> = (0..n).map(|i| i as f32 * 0.37 - 11.0).collect();
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            assert_eq!(vector_crc(&v), crc32fast::hash(&bytes), "{n} floats");
        }
    }

    #[test]
    fn write_map_reopen_and_bad_headers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vectors.bin");
        let mut f = VectorFile::create(&p, 3).unwrap();
        f.write(0, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        f.write(5, &[7.0, 8.0, 9.0]).unwrap();
        f.sync().unwrap();
        let m = f.map().unwrap();
        assert!(m.slots() >= 6);
        assert_eq!(m.get(1), &[4.0, 5.0, 6.0]);
        assert_eq!(m.get(5), &[7.0, 8.0, 9.0]);
        drop((m, f));
        let f = VectorFile::open(&p, 3).unwrap();
        assert_eq!(f.map().unwrap().get(0), &[1.0, 2.0, 3.0]);
        assert!(matches!(
            VectorFile::open(&p, 4),
            Err(VecDbError::Corrupt { .. })
        ));
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[13] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        assert!(matches!(
            VectorFile::open(&p, 3),
            Err(VecDbError::Corrupt { .. })
        ));
        // A newer version (with a valid checksum) is refused as such.
        bytes[13] ^= 1;
        bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
        let crc = crc32fast::hash(&bytes[..20]);
        bytes[20..24].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&p, &bytes).unwrap();
        assert!(matches!(
            VectorFile::open(&p, 3),
            Err(VecDbError::UnsupportedVersion { .. })
        ));
    }
}
