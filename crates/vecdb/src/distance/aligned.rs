//! A growable `f32` buffer whose first element sits on a 64-byte boundary.
//!
//! Vectors whose dimension is a multiple of 16 then all start on a cache-line boundary, so a
//! 64-byte SIMD load never straddles two lines; that is measurable on 784-d data.

/// One cache line of floats. `repr(C)` with a 16-element array: size 64, no padding.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// Growable, 64-byte aligned `f32` storage.
#[derive(Clone, Default)]
pub struct AlignedF32Vec {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedF32Vec {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of floats stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no float is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reserves room for `additional` more floats.
    pub fn reserve(&mut self, additional: usize) {
        let need = (self.len + additional).div_ceil(16);
        self.lines.reserve(need.saturating_sub(self.lines.len()));
    }

    /// Appends the given floats.
    pub fn extend_from_slice(&mut self, values: &[f32]) {
        let start = self.len;
        let end = start + values.len();
        self.lines.resize(end.div_ceil(16), Line([0.0; 16]));
        self.whole_lines_mut()[start..end].copy_from_slice(values);
        self.len = end;
    }

    /// Shortens the buffer to `len` floats (no effect if already shorter).
    pub fn truncate(&mut self, len: usize) {
        if len < self.len {
            self.len = len;
            self.lines.truncate(len.div_ceil(16));
        }
    }

    /// The stored floats.
    pub fn as_slice(&self) -> &[f32] {
        // SAFETY: `lines` is a contiguous array of `Line`, each exactly 16 initialised f32 with
        // no padding (repr(C), size 64), so its memory is `lines.len() * 16` valid, suitably
        // aligned f32 values, and `len <= lines.len() * 16` always holds.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr() as *const f32, self.len) }
    }

    /// Bytes held by the buffer.
    pub fn memory_bytes(&self) -> usize {
        self.lines.capacity() * std::mem::size_of::<Line>()
    }

    fn whole_lines_mut(&mut self) -> &mut [f32] {
        let n = self.lines.len() * 16;
        // SAFETY: as in `as_slice`, the lines are `n` initialised f32; the exclusive borrow of
        // `self` guarantees no other reference to them exists while the slice lives.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr() as *mut f32, n) }
    }
}

impl std::fmt::Debug for AlignedF32Vec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedF32Vec")
            .field("len", &self.len)
            .finish()
    }
}
