//! SIMD kernels against the scalar reference, on odd lengths and unaligned slices.

use super::*;
use proptest::prelude::*;

/// Relative tolerance: the SIMD kernels sum in a different order and fuse multiply-adds, so
/// results differ from the sequential scalar sum by rounding only.
const REL_TOL: f32 = 1e-4;

/// Builds two slices of `len` floats starting `offset` floats into their buffers, so that the
/// kernels see addresses that are not 16-, 32- or 64-byte aligned.
fn arb_case() -> impl Strategy<Value = (Vec<f32>, Vec<f32>, usize, usize)> {
    (1usize..1030, 0usize..4, 0usize..4).prop_flat_map(|(len, off_a, off_b)| {
        (
            prop::collection::vec(-100.0f32..100.0, len + off_a),
            prop::collection::vec(-100.0f32..100.0, len + off_b),
            Just(off_a),
            Just(off_b),
        )
    })
}

fn close(got: f32, want: f32, scale: f32) -> bool {
    (got - want).abs() <= REL_TOL * scale.max(1e-6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn simd_l2_matches_scalar((a, b, oa, ob) in arb_case()) {
        let n = (a.len() - oa).min(b.len() - ob);
        let (x, y) = (&a[oa..oa + n], &b[ob..ob + n]);
        let want = scalar::l2_squared(x, y);
        for k in Kernels::available() {
            let got = k.l2_squared(x, y);
            prop_assert!(close(got, want, want), "{}: {} vs {}", k.name(), got, want);
        }
    }

    #[test]
    fn simd_dot_matches_scalar((a, b, oa, ob) in arb_case()) {
        let n = (a.len() - oa).min(b.len() - ob);
        let (x, y) = (&a[oa..oa + n], &b[ob..ob + n]);
        let want = scalar::dot(x, y);
        // Dot products cancel, so the error bound scales with the sum of |x_i y_i|.
        let scale: f32 = x.iter().zip(y).map(|(p, q)| (p * q).abs()).sum();
        for k in Kernels::available() {
            let got = k.dot(x, y);
            prop_assert!(close(got, want, scale), "{}: {} vs {}", k.name(), got, want);
        }
    }

    #[test]
    fn simd_dot_u8_matches_scalar((a, _, oa, _) in arb_case(), seed in 0u64..1000) {
        let x = &a[oa..];
        // Every byte value appears, the extremes included, at offsets that vary with the case.
        let y: Vec<u8> = (0..x.len()).map(|i| (i as u64 * 37 + seed) as u8).collect();
        let want = scalar::dot_u8(x, &y);
        let scale: f32 = x.iter().zip(&y).map(|(p, &q)| (p * f32::from(q)).abs()).sum();
        for k in Kernels::available() {
            let got = k.dot_u8(x, &y);
            prop_assert!(close(got, want, scale), "{}: {} vs {}", k.name(), got, want);
        }
    }
}

proptest! {
    #[test]
    fn bit_planes_match_a_bit_by_bit_count(words in prop::collection::vec(any::<u64>(), 0..120)) {
        let w = words.len() / 5;
        let (code, planes) = (&words[..w], &words[w..5 * w]);
        let mut want = [0u32; 5];
        for bit in 0..64 * w {
            let (i, m) = (bit / 64, 1u64 << (bit % 64));
            if code[i] & m != 0 {
                want[0] += 1;
                for j in 0..4 {
                    want[j + 1] += u32::from(planes[j * w + i] & m != 0);
                }
            }
        }
        for k in Kernels::available() {
            prop_assert_eq!(k.bit_planes(code, planes), want, "{}", k.name());
        }
    }
}

#[test]
fn exact_small_values() {
    let a = [1.0, 2.0, 3.0];
    let b = [4.0, 6.0, 3.0];
    for k in Kernels::available() {
        assert_eq!(k.l2_squared(&a, &b), 25.0, "{}", k.name());
        assert_eq!(k.dot(&a, &b), 25.0, "{}", k.name());
    }
    assert_eq!(norm(&[3.0, 4.0]), 5.0);
    assert_eq!(l2_squared(&[], &[]), 0.0);
}

#[test]
#[should_panic(expected = "different lengths")]
fn different_lengths_panic() {
    l2_squared(&[1.0, 2.0], &[1.0]);
}

#[test]
fn selected_is_fastest_available() {
    let name = selected_kernel_name();
    assert!(["avx512", "avx2-fma", "neon", "scalar"].contains(&name));
    if std::env::var("VECDB_KERNEL").is_err() {
        assert_eq!(name, Kernels::available()[0].name());
    }
}

#[test]
fn aligned_vec_is_aligned_and_grows() {
    let mut v = AlignedF32Vec::new();
    for i in 0..100 {
        v.extend_from_slice(&[i as f32; 7]);
    }
    assert_eq!(v.len(), 700);
    assert_eq!(v.as_slice().as_ptr() as usize % 64, 0);
    assert_eq!(v.as_slice()[699], 99.0);
    v.truncate(10);
    assert_eq!(
        v.as_slice(),
        &[0.0; 7]
            .iter()
            .chain(&[1.0; 3])
            .copied()
            .collect::<Vec<_>>()[..]
    );
}
