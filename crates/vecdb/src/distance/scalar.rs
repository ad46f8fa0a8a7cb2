//! Scalar reference kernels.
//!
//! These are the definitions the SIMD kernels are tested against: plain sequential loops with no
//! reordering tricks, so their result is easy to reason about. They are also the fallback on CPUs
//! without any supported vector extension.

/// Squared euclidean distance. Panics if the lengths differ.
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(
        a.len(),
        b.len(),
        "l2_squared on slices of different lengths"
    );
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = x - y;
            d * d
        })
        .sum()
}

/// Inner product. Panics if the lengths differ.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot on slices of different lengths");
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Inner product of floats with bytes read as the integers 0..=255. Panics if the lengths
/// differ.
pub fn dot_u8(a: &[f32], b: &[u8]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot_u8 on slices of different lengths");
    a.iter().zip(b).map(|(x, &y)| x * f32::from(y)).sum()
}

/// Popcounts of a binary code and of its intersection with four bit planes (RaBitQ's
/// query planes, plane `j` at `planes[j * code.len()..]`): `[|code|, |code & plane_0|, ...]`.
/// Panics unless `planes` holds four planes of the code's length.
pub fn bit_planes(code: &[u64], planes: &[u64]) -> [u32; 5] {
    let w = code.len();
    assert_eq!(planes.len(), 4 * w, "bit_planes needs four planes");
    let mut out = [0u32; 5];
    for (i, &c) in code.iter().enumerate() {
        out[0] += c.count_ones();
        for j in 0..4 {
            out[j + 1] += (c & planes[j * w + i]).count_ones();
        }
    }
    out
}

/// Euclidean norm.
pub fn norm(a: &[f32]) -> f32 {
    dot(a, a).sqrt()
}
