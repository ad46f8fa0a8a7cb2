//! The envelope of every derived file imgsearch writes (index snapshots, projection heads,
//! embedding caches).
//!
//! | offset | size | field                                              |
//! |--------|------|----------------------------------------------------|
//! | 0      | 8    | magic number (identifies the file type)            |
//! | 8      | 4    | format version, u32 LE                             |
//! | 12     | 8    | total file length in bytes, u64 LE                 |
//! | 20     | n    | body (layout owned by the file type)               |
//! | 20 + n | 4    | CRC-32 (IEEE) of every preceding byte, u32 LE      |
//!
//! Storing the length lets a short file be reported as truncated rather than as a checksum
//! mismatch; the checksum is verified before the body is handed out, so a body parser only
//! meets corrupt content that happens to pass CRC-32. A version outside the range the reader
//! names is refused with both numbers, so an old build meeting a newer file says so plainly.

use std::fmt;

use crate::le::Writer;

/// Bytes of the header before the body.
pub const HEADER_LEN: usize = 20;
/// Bytes the envelope adds to a body.
pub const OVERHEAD: usize = HEADER_LEN + 4;

/// Why an envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeError {
    /// The file does not start with the expected magic number: it is not this kind of file.
    BadMagic,
    /// The file ends `needed` bytes before its declared length (a prefix of the magic number
    /// counts as a truncated file of this kind).
    Truncated { len: usize, needed: usize },
    /// The format version is outside `oldest..=newest`.
    UnsupportedVersion {
        found: u32,
        oldest: u32,
        newest: u32,
    },
    /// The length field disagrees with the file in a way truncation does not explain.
    BadLength { declared: u64, actual: usize },
    /// The stored checksum does not match the content.
    ChecksumMismatch { stored: u32, computed: u32 },
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvelopeError::BadMagic => f.write_str("bad magic number"),
            EnvelopeError::Truncated { len, needed } => {
                write!(f, "truncated: {len} bytes, {needed} more needed")
            }
            EnvelopeError::UnsupportedVersion {
                found,
                oldest,
                newest,
            } if oldest == newest => write!(
                f,
                "format version {found}, this build reads version {newest}"
            ),
            EnvelopeError::UnsupportedVersion {
                found,
                oldest,
                newest,
            } => write!(
                f,
                "format version {found}, this build reads versions {oldest} to {newest}"
            ),
            EnvelopeError::BadLength { declared, actual } => {
                write!(
                    f,
                    "length field says {declared} bytes, the file has {actual}"
                )
            }
            EnvelopeError::ChecksumMismatch { stored, computed } => write!(
                f,
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
        }
    }
}

impl std::error::Error for EnvelopeError {}

/// A writer whose buffer already holds the header; write the body into it, then [`seal`] it.
pub fn begin(magic: &[u8; 8], version: u32, body_capacity: usize) -> Writer {
    let mut w = Writer::with_capacity(OVERHEAD + body_capacity);
    w.bytes(magic);
    w.u32(version);
    w.u64(0);
    w
}

/// Fills in the length and appends the checksum of a writer made by [`begin`].
pub fn seal(w: Writer) -> Vec<u8> {
    let mut out = w.buf;
    let total = (out.len() + 4) as u64;
    out[12..20].copy_from_slice(&total.to_le_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Wraps a finished body in the envelope.
pub fn wrap(magic: &[u8; 8], version: u32, body: &[u8]) -> Vec<u8> {
    let mut w = begin(magic, version, body.len());
    w.bytes(body);
    seal(w)
}

/// A checked envelope: the version it was written in and its body.
#[derive(Debug, Clone, Copy)]
pub struct Opened<'a> {
    pub version: u32,
    pub body: &'a [u8],
}

/// Checks magic, version (within `oldest..=newest`), length and checksum, and returns the body.
pub fn open<'a>(
    bytes: &'a [u8],
    magic: &[u8; 8],
    oldest: u32,
    newest: u32,
) -> Result<Opened<'a>, EnvelopeError> {
    let truncated = |needed: usize| EnvelopeError::Truncated {
        len: bytes.len(),
        needed,
    };
    if bytes.len() < 8 || &bytes[..8] != magic {
        if bytes.len() < 8 && magic.starts_with(bytes) {
            return Err(truncated(OVERHEAD - bytes.len()));
        }
        return Err(EnvelopeError::BadMagic);
    }
    if bytes.len() < OVERHEAD {
        return Err(truncated(OVERHEAD - bytes.len()));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version < oldest || version > newest {
        return Err(EnvelopeError::UnsupportedVersion {
            found: version,
            oldest,
            newest,
        });
    }
    let declared = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    if (bytes.len() as u64) < declared {
        return Err(truncated((declared - bytes.len() as u64) as usize));
    }
    if (bytes.len() as u64) > declared || declared < OVERHEAD as u64 {
        return Err(EnvelopeError::BadLength {
            declared,
            actual: bytes.len(),
        });
    }
    let end = bytes.len() - 4;
    let stored = u32::from_le_bytes(bytes[end..].try_into().expect("4 bytes"));
    let computed = crc32fast::hash(&bytes[..end]);
    if stored != computed {
        return Err(EnvelopeError::ChecksumMismatch { stored, computed });
    }
    Ok(Opened {
        version,
        body: &bytes[HEADER_LEN..end],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: &[u8; 8] = b"IMGSTEST";

    #[test]
    fn round_trip_and_every_truncation_and_bit_flip_is_refused() {
        let bytes = wrap(MAGIC, 3, b"some body");
        let o = open(&bytes, MAGIC, 2, 3).unwrap();
        assert_eq!((o.version, o.body), (3, &b"some body"[..]));
        for len in 0..bytes.len() {
            let e = open(&bytes[..len], MAGIC, 2, 3).unwrap_err();
            assert!(matches!(e, EnvelopeError::Truncated { .. }), "{len}: {e}");
        }
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(open(&b, MAGIC, 2, 3).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn versions_outside_the_range_and_other_files_are_named() {
        let bytes = wrap(MAGIC, 4, b"");
        let e = open(&bytes, MAGIC, 2, 3).unwrap_err();
        assert_eq!(
            e.to_string(),
            "format version 4, this build reads versions 2 to 3"
        );
        assert_eq!(
            open(b"PK\x03\x04 zip file", MAGIC, 1, 1).unwrap_err(),
            EnvelopeError::BadMagic
        );
        let mut longer = wrap(MAGIC, 1, b"x");
        longer.push(0);
        assert!(matches!(
            open(&longer, MAGIC, 1, 1).unwrap_err(),
            EnvelopeError::BadLength { .. }
        ));
    }
}
