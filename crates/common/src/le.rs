//! The little-endian codec of every binary file imgsearch writes.
//!
//! Every read is bounds-checked and returns a [`DecodeError`] instead of panicking, because the
//! bytes come from disk and may be truncated or corrupt; lengths read from the data are checked
//! against the bytes that remain before anything is allocated, so a corrupt length cannot make
//! a reader allocate more than the file holds.

use std::fmt;

/// A read ran past the end or met a value it cannot accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Offset in the decoded bytes where the read started.
    pub offset: usize,
    pub reason: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.reason, self.offset)
    }
}

impl std::error::Error for DecodeError {}

impl From<DecodeError> for String {
    fn from(e: DecodeError) -> String {
        e.to_string()
    }
}

/// Appends little-endian values to a byte vector.
#[derive(Debug, Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn with_capacity(n: usize) -> Writer {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f32(&mut self, v: f32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// Raw bytes, no length.
    pub fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    /// A `u64` byte length, then the bytes.
    pub fn blob(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.bytes(v);
    }
    /// A `u32` byte length, then the UTF-8 bytes.
    pub fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.bytes(s.as_bytes());
    }
    /// A `u64` element count, then the values.
    pub fn u32s(&mut self, v: &[u32]) {
        self.u64(v.len() as u64);
        self.buf.reserve(v.len() * 4);
        for x in v {
            self.u32(*x);
        }
    }
    /// A `u64` element count, then the values.
    pub fn f32s(&mut self, v: &[f32]) {
        self.u64(v.len() as u64);
        self.f32s_exact(v);
    }
    /// The values only: the reader knows how many there are.
    pub fn f32s_exact(&mut self, v: &[f32]) {
        self.buf.reserve(v.len() * 4);
        for x in v {
            self.f32(*x);
        }
    }
    /// The values only: the reader knows how many there are.
    pub fn u64s_exact(&mut self, v: &[u64]) {
        self.buf.reserve(v.len() * 8);
        for x in v {
            self.u64(*x);
        }
    }
}

/// Reads little-endian values, failing cleanly on truncated input.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// An error at the current position.
    pub fn error(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            offset: self.pos,
            reason: reason.into(),
        }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(self.error(format!(
                "truncated: {n} bytes needed, {} left",
                self.remaining()
            )));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("take returned N bytes"))
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn f32(&mut self) -> Result<f32, DecodeError> {
        Ok(f32::from_le_bytes(self.array()?))
    }

    /// A string written by [`Writer::str`].
    pub fn str(&mut self) -> Result<String, DecodeError> {
        let start = self.pos;
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError {
            offset: start,
            reason: "string is not UTF-8".into(),
        })
    }

    /// Bytes written by [`Writer::blob`], borrowed from the input.
    pub fn blob(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.len(1)?;
        self.take(n)
    }

    /// A `u64` element count, rejected unless that many elements of `elem_bytes` bytes each fit
    /// in the remaining bytes (so a corrupt count cannot cause a huge allocation).
    pub fn len(&mut self, elem_bytes: usize) -> Result<usize, DecodeError> {
        let start = self.pos;
        let n = self.u64()?;
        if n.saturating_mul(elem_bytes.max(1) as u64) > self.remaining() as u64 {
            return Err(DecodeError {
                offset: start,
                reason: format!("declares {n} elements but is too short"),
            });
        }
        Ok(n as usize)
    }

    fn exact<T, const N: usize>(
        &mut self,
        n: usize,
        f: fn([u8; N]) -> T,
    ) -> Result<Vec<T>, DecodeError> {
        let bytes = n
            .checked_mul(N)
            .ok_or_else(|| self.error("element count overflows"))?;
        Ok(self
            .take(bytes)?
            .chunks_exact(N)
            .map(|c| f(c.try_into().expect("chunks of N bytes")))
            .collect())
    }

    /// Values written by [`Writer::u32s`].
    pub fn u32s(&mut self) -> Result<Vec<u32>, DecodeError> {
        let n = self.len(4)?;
        self.exact(n, u32::from_le_bytes)
    }
    /// Values written by [`Writer::f32s`].
    pub fn f32s(&mut self) -> Result<Vec<f32>, DecodeError> {
        let n = self.len(4)?;
        self.f32s_exact(n)
    }
    /// `n` values written by [`Writer::f32s_exact`].
    pub fn f32s_exact(&mut self, n: usize) -> Result<Vec<f32>, DecodeError> {
        self.exact(n, f32::from_le_bytes)
    }
    /// `n` values written by [`Writer::u64s_exact`].
    pub fn u64s_exact(&mut self, n: usize) -> Result<Vec<u64>, DecodeError> {
        self.exact(n, u64::from_le_bytes)
    }

    /// Fails unless every byte was consumed, so trailing garbage is reported as corruption.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(self.error(format!("{} unexpected trailing bytes", self.remaining())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_truncation_fails() {
        let mut w = Writer::default();
        w.u8(7);
        w.u32(0xdead_beef);
        w.u64(u64::MAX - 3);
        w.f32(-1.5);
        w.str("héllo");
        w.u32s(&[1, 2, 3]);
        w.f32s(&[0.25, 4.0]);
        w.f32s_exact(&[9.0]);
        w.u64s_exact(&[11, 12]);
        w.blob(b"xyz");
        let read = |b: &[u8]| -> Result<(), DecodeError> {
            let mut r = Reader::new(b);
            assert_eq!(r.u8()?, 7);
            assert_eq!(r.u32()?, 0xdead_beef);
            assert_eq!(r.u64()?, u64::MAX - 3);
            assert_eq!(r.f32()?, -1.5);
            assert_eq!(r.str()?, "héllo");
            assert_eq!(r.u32s()?, vec![1, 2, 3]);
            assert_eq!(r.f32s()?, vec![0.25, 4.0]);
            assert_eq!(r.f32s_exact(1)?, vec![9.0]);
            assert_eq!(r.u64s_exact(2)?, vec![11, 12]);
            assert_eq!(r.blob()?, b"xyz");
            r.finish()
        };
        read(&w.buf).unwrap();
        for cut in 0..w.buf.len() {
            assert!(read(&w.buf[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = w.buf.clone();
        longer.push(0);
        assert!(read(&longer).unwrap_err().reason.contains("trailing"));
    }

    #[test]
    fn a_corrupt_count_is_refused_before_allocating() {
        let mut w = Writer::default();
        w.u64(u64::MAX / 2);
        let err = Reader::new(&w.buf).f32s().unwrap_err();
        assert!(err.reason.contains("too short"), "{err}");
        assert!(Reader::new(&w.buf).f32s_exact(usize::MAX).is_err());
    }
}
