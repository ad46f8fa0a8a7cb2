//! Inner products of many vectors with many, as one matrix product.
//!
//! Exact search with many queries at once, and the assignment step of k-means, compute every
//! inner product between two sets of vectors. As a matrix product that work is compute-bound
//! rather than memory-bound: a blocked GEMM packs both operands into cache-sized panels and
//! reuses every loaded value many times from registers, which a loop over pairs cannot. The
//! product is `matrixmultiply`'s (pure Rust, run-time selection of its AVX/FMA kernels), not a
//! micro-kernel of our own.

/// `out[i * n + j] = <a_i, b_j>`, where `a` holds `m` vectors and `b` holds `n` vectors of
/// `dim` floats each, one after another. Panics unless `dim > 0`, both lengths are multiples of
/// `dim`, and `out` holds exactly `m * n` floats.
pub fn dot_matrix(a: &[f32], b: &[f32], dim: usize, out: &mut [f32]) {
    assert!(dim > 0, "dot_matrix needs a dimension of at least 1");
    assert!(
        a.len().is_multiple_of(dim) && b.len().is_multiple_of(dim),
        "dot_matrix operands must hold whole vectors"
    );
    let (m, n) = (a.len() / dim, b.len() / dim);
    assert_eq!(out.len(), m * n, "dot_matrix output must hold m x n floats");
    if m == 0 || n == 0 {
        return;
    }
    let stride = isize::try_from(dim).expect("a vector's length fits in isize");
    let row = isize::try_from(n).expect("a row's length fits in isize");
    // SAFETY: `a` is an m x dim matrix with row stride `dim` and column stride 1, and
    // `b` read as a dim x n matrix (its transpose) has row stride 1 and column stride `dim`:
    // every element either addresses lies inside its slice, whose lengths were checked above.
    // `out` is m x n with row stride n, exactly its length, and as a `&mut` it aliases neither
    // input. With beta 0 the product overwrites `out` without using its old contents.
    unsafe {
        matrixmultiply::sgemm(
            m,
            dim,
            n,
            1.0,
            a.as_ptr(),
            stride,
            1,
            b.as_ptr(),
            1,
            stride,
            0.0,
            out.as_mut_ptr(),
            row,
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::scalar;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn equals_pairwise_dots(m in 0usize..7, n in 0usize..9, dim in 1usize..40, seed in 0u64..1000) {
            let vec = |i: usize| -> Vec<f32> {
                (0..dim).map(|d| (((i * 131 + d * 17) as u64 + seed) % 23) as f32 - 11.0).collect()
            };
            let a: Vec<f32> = (0..m).flat_map(vec).collect();
            let b: Vec<f32> = (100..100 + n).flat_map(vec).collect();
            let mut out = vec![f32::NAN; m * n];
            dot_matrix(&a, &b, dim, &mut out);
            for i in 0..m {
                for j in 0..n {
                    let want = scalar::dot(&a[i * dim..(i + 1) * dim], &b[j * dim..(j + 1) * dim]);
                    // Small integers: every partial sum is exact in f32, in any order.
                    prop_assert_eq!(out[i * n + j], want, "[{}][{}]", i, j);
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "m x n")]
    fn refuses_a_short_output() {
        dot_matrix(&[1.0; 4], &[1.0; 6], 2, &mut [0.0; 5]);
    }
}
