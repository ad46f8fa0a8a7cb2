//! NEON kernels for aarch64 (NEON is part of the aarch64 baseline, but the kernels are still
//! selected at run time like the x86 ones, so a single code path handles every CPU).

use std::arch::aarch64::*;

/// Squared L2 distance with NEON.
///
/// # Safety
/// The CPU must support NEON, and `b.len() >= a.len()`.
#[target_feature(enable = "neon")]
pub unsafe fn l2_squared_neon(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    let pa = a.as_ptr();
    let pb = b.as_ptr();
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut i = 0;
    while i + 16 <= n {
        for (j, accj) in acc.iter_mut().enumerate() {
            // SAFETY: i + 4j + 4 <= i + 16 <= n, and both slices hold at least n elements.
            let (x, y) = unsafe { (vld1q_f32(pa.add(i + 4 * j)), vld1q_f32(pb.add(i + 4 * j))) };
            let d = vsubq_f32(x, y);
            *accj = vfmaq_f32(*accj, d, d);
        }
        i += 16;
    }
    while i + 4 <= n {
        // SAFETY: i + 4 <= n and both slices hold at least n elements.
        let (x, y) = unsafe { (vld1q_f32(pa.add(i)), vld1q_f32(pb.add(i))) };
        let d = vsubq_f32(x, y);
        acc[0] = vfmaq_f32(acc[0], d, d);
        i += 4;
    }
    let mut total = vaddvq_f32(vaddq_f32(
        vaddq_f32(acc[0], acc[1]),
        vaddq_f32(acc[2], acc[3]),
    ));
    while i < n {
        let d = a[i] - b[i];
        total += d * d;
        i += 1;
    }
    total
}

/// Inner product with NEON.
///
/// # Safety
/// The CPU must support NEON, and `b.len() >= a.len()`.
#[target_feature(enable = "neon")]
pub unsafe fn dot_neon(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    let pa = a.as_ptr();
    let pb = b.as_ptr();
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut i = 0;
    while i + 16 <= n {
        for (j, accj) in acc.iter_mut().enumerate() {
            // SAFETY: i + 4j + 4 <= i + 16 <= n, and both slices hold at least n elements.
            let (x, y) = unsafe { (vld1q_f32(pa.add(i + 4 * j)), vld1q_f32(pb.add(i + 4 * j))) };
            *accj = vfmaq_f32(*accj, x, y);
        }
        i += 16;
    }
    while i + 4 <= n {
        // SAFETY: i + 4 <= n and both slices hold at least n elements.
        let (x, y) = unsafe { (vld1q_f32(pa.add(i)), vld1q_f32(pb.add(i))) };
        acc[0] = vfmaq_f32(acc[0], x, y);
        i += 4;
    }
    let mut total = vaddvq_f32(vaddq_f32(
        vaddq_f32(acc[0], acc[1]),
        vaddq_f32(acc[2], acc[3]),
    ));
    while i < n {
        total += a[i] * b[i];
        i += 1;
    }
    total
}
