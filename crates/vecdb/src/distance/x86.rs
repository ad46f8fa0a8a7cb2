//! AVX2+FMA and AVX-512F kernels for x86_64.
//!
//! Every function here is `unsafe` because it is compiled with `#[target_feature]`: the caller
//! must have checked at run time that the CPU supports the feature, and must pass slices of equal
//! length (the kernels read `a.len()` elements from both). `mod.rs` does both before it hands out
//! these functions.

use std::arch::x86_64::*;

/// Sums the eight lanes of an AVX register.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn hsum256(v: __m256) -> f32 {
    let hi = _mm256_extractf128_ps(v, 1);
    let lo = _mm256_castps256_ps128(v);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0b01));
    _mm_cvtss_f32(s)
}

/// Squared L2 distance with AVX2 and FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA, and `b.len() >= a.len()`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn l2_squared_avx2(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    let pa = a.as_ptr();
    let pb = b.as_ptr();
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (j, accj) in acc.iter_mut().enumerate() {
            // SAFETY: i + 8j + 8 <= i + 32 <= n, and both slices hold at least n elements.
            let (x, y) = unsafe {
                (
                    _mm256_loadu_ps(pa.add(i + 8 * j)),
                    _mm256_loadu_ps(pb.add(i + 8 * j)),
                )
            };
            let d = _mm256_sub_ps(x, y);
            *accj = _mm256_fmadd_ps(d, d, *accj);
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: i + 8 <= n and both slices hold at least n elements.
        let (x, y) = unsafe { (_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i))) };
        let d = _mm256_sub_ps(x, y);
        acc[0] = _mm256_fmadd_ps(d, d, acc[0]);
        i += 8;
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut total = hsum256(sum);
    while i < n {
        let d = a[i] - b[i];
        total += d * d;
        i += 1;
    }
    total
}

/// [`super::scalar::bit_planes`] with the hardware population count, which the scalar
/// loop only gets when the whole build targets a CPU that has it.
///
/// # Safety
/// The CPU must support POPCNT, and `planes.len() >= 4 * code.len()`.
#[target_feature(enable = "popcnt")]
pub unsafe fn bit_planes_popcnt(code: &[u64], planes: &[u64]) -> [u32; 5] {
    let w = code.len();
    let mut out = [0u32; 5];
    for (i, &c) in code.iter().enumerate() {
        out[0] += c.count_ones();
        for j in 0..4 {
            // SAFETY: j * w + i < 4 * w <= planes.len().
            let p = unsafe { *planes.get_unchecked(j * w + i) };
            out[j + 1] += (c & p).count_ones();
        }
    }
    out
}

/// [`bit_planes_popcnt`] eight words at a time with AVX-512's vector population count: a
/// RaBitQ estimate at 1,280 dimensions is three steps instead of a hundred scalar counts.
///
/// # Safety
/// The CPU must support AVX512F and AVX512VPOPCNTDQ, and `planes.len() >= 4 * code.len()`.
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
pub unsafe fn bit_planes_avx512(code: &[u64], planes: &[u64]) -> [u32; 5] {
    let w = code.len();
    let mut acc = [_mm512_setzero_si512(); 5];
    let mut i = 0;
    while i < w {
        let mask: __mmask8 = if w - i >= 8 {
            0xff
        } else {
            (1u8 << (w - i)) - 1
        };
        // SAFETY: the mask enables only words i..min(i + 8, w), which lie inside `code`, and
        // inside each plane j * w .. (j + 1) * w of `planes`; masked-off words are not read.
        let c = unsafe { _mm512_maskz_loadu_epi64(mask, code.as_ptr().add(i).cast()) };
        acc[0] = _mm512_add_epi64(acc[0], _mm512_popcnt_epi64(c));
        for j in 0..4 {
            // SAFETY: as above, for plane j.
            let p =
                unsafe { _mm512_maskz_loadu_epi64(mask, planes.as_ptr().add(j * w + i).cast()) };
            let both = _mm512_and_si512(c, p);
            acc[j + 1] = _mm512_add_epi64(acc[j + 1], _mm512_popcnt_epi64(both));
        }
        i += 8;
    }
    acc.map(|a| _mm512_reduce_add_epi64(a) as u32)
}

/// Inner product of floats with bytes (read as 0..=255) with AVX2 and FMA: eight bytes are
/// widened to eight `i32` and converted to floats per step, four independent accumulators.
///
/// # Safety
/// The CPU must support AVX2 and FMA, and `b.len() >= a.len()`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_u8_avx2(a: &[f32], b: &[u8]) -> f32 {
    let n = a.len();
    let pa = a.as_ptr();
    let pb = b.as_ptr();
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (j, accj) in acc.iter_mut().enumerate() {
            // SAFETY: i + 8j + 8 <= i + 32 <= n and both slices hold at least n elements; the
            // 64-bit load reads exactly the eight bytes i + 8j .. i + 8j + 8.
            let (x, y) = unsafe {
                (
                    _mm256_loadu_ps(pa.add(i + 8 * j)),
                    _mm_loadl_epi64(pb.add(i + 8 * j) as *const __m128i),
                )
            };
            let y = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(y));
            *accj = _mm256_fmadd_ps(x, y, *accj);
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: i + 8 <= n and both slices hold at least n elements.
        let (x, y) = unsafe {
            (
                _mm256_loadu_ps(pa.add(i)),
                _mm_loadl_epi64(pb.add(i) as *const __m128i),
            )
        };
        let y = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(y));
        acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
        i += 8;
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut total = hsum256(sum);
    while i < n {
        total += a[i] * f32::from(b[i]);
        i += 1;
    }
    total
}

/// Inner product with AVX2 and FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA, and `b.len() >= a.len()`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    let pa = a.as_ptr();
    let pb = b.as_ptr();
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (j, accj) in acc.iter_mut().enumerate() {
            // SAFETY: i + 8j + 8 <= i + 32 <= n, and both slices hold at least n elements.
            let (x, y) = unsafe {
                (
                    _mm256_loadu_ps(pa.add(i + 8 * j)),
                    _mm256_loadu_ps(pb.add(i + 8 * j)),
                )
            };
            *accj = _mm256_fmadd_ps(x, y, *accj);
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: i + 8 <= n and both slices hold at least n elements.
        let (x, y) = unsafe { (_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i))) };
        acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
        i += 8;
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut total = hsum256(sum);
    while i < n {
        total += a[i] * b[i];
        i += 1;
    }
    total
}

/// Squared L2 distance with AVX-512F; the tail is handled by one masked load.
///
/// # Safety
/// The CPU must support AVX-512F, and `b.len() >= a.len()`.
#[target_feature(enable = "avx512f")]
pub unsafe fn l2_squared_avx512(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    let pa = a.as_ptr();
    let pb = b.as_ptr();
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 64 <= n {
        for (j, accj) in acc.iter_mut().enumerate() {
            // SAFETY: i + 16j + 16 <= i + 64 <= n, and both slices hold at least n elements.
            let (x, y) = unsafe {
                (
                    _mm512_loadu_ps(pa.add(i + 16 * j)),
                    _mm512_loadu_ps(pb.add(i + 16 * j)),
                )
            };
            let d = _mm512_sub_ps(x, y);
            *accj = _mm512_fmadd_ps(d, d, *accj);
        }
        i += 64;
    }
    while i + 16 <= n {
        // SAFETY: i + 16 <= n and both slices hold at least n elements.
        let (x, y) = unsafe { (_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i))) };
        let d = _mm512_sub_ps(x, y);
        acc[1] = _mm512_fmadd_ps(d, d, acc[1]);
        i += 16;
    }
    if i < n {
        let mask: __mmask16 = (1u32 << (n - i)) as u16 - 1;
        // SAFETY: a masked load touches only the lanes whose mask bit is set, here the n - i < 16
        // elements that remain inside both slices; masked-off lanes never fault and read as zero.
        let (x, y) = unsafe {
            (
                _mm512_maskz_loadu_ps(mask, pa.add(i)),
                _mm512_maskz_loadu_ps(mask, pb.add(i)),
            )
        };
        let d = _mm512_sub_ps(x, y);
        acc[2] = _mm512_fmadd_ps(d, d, acc[2]);
    }
    let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    _mm512_reduce_add_ps(sum)
}

/// Inner product with AVX-512F; the tail is handled by one masked load.
///
/// # Safety
/// The CPU must support AVX-512F, and `b.len() >= a.len()`.
#[target_feature(enable = "avx512f")]
pub unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    let pa = a.as_ptr();
    let pb = b.as_ptr();
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 64 <= n {
        for (j, accj) in acc.iter_mut().enumerate() {
            // SAFETY: i + 16j + 16 <= i + 64 <= n, and both slices hold at least n elements.
            let (x, y) = unsafe {
                (
                    _mm512_loadu_ps(pa.add(i + 16 * j)),
                    _mm512_loadu_ps(pb.add(i + 16 * j)),
                )
            };
            *accj = _mm512_fmadd_ps(x, y, *accj);
        }
        i += 64;
    }
    while i + 16 <= n {
        // SAFETY: i + 16 <= n and both slices hold at least n elements.
        let (x, y) = unsafe { (_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i))) };
        acc[1] = _mm512_fmadd_ps(x, y, acc[1]);
        i += 16;
    }
    if i < n {
        let mask: __mmask16 = (1u32 << (n - i)) as u16 - 1;
        // SAFETY: a masked load touches only the lanes whose mask bit is set, here the n - i < 16
        // elements that remain inside both slices; masked-off lanes never fault and read as zero.
        let (x, y) = unsafe {
            (
                _mm512_maskz_loadu_ps(mask, pa.add(i)),
                _mm512_maskz_loadu_ps(mask, pb.add(i)),
            )
        };
        acc[2] = _mm512_fmadd_ps(x, y, acc[2]);
    }
    let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    _mm512_reduce_add_ps(sum)
}

/// Inner product of floats with bytes (read as 0..=255) with AVX-512F: sixteen bytes are
/// widened to sixteen `i32` and converted to floats per step; the tail is done in scalar code.
///
/// # Safety
/// The CPU must support AVX-512F, and `b.len() >= a.len()`.
#[target_feature(enable = "avx512f")]
pub unsafe fn dot_u8_avx512(a: &[f32], b: &[u8]) -> f32 {
    let n = a.len();
    let pa = a.as_ptr();
    let pb = b.as_ptr();
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 64 <= n {
        for (j, accj) in acc.iter_mut().enumerate() {
            // SAFETY: i + 16j + 16 <= i + 64 <= n and both slices hold at least n elements; the
            // 128-bit load reads exactly the sixteen bytes i + 16j .. i + 16j + 16.
            let (x, y) = unsafe {
                (
                    _mm512_loadu_ps(pa.add(i + 16 * j)),
                    _mm_loadu_si128(pb.add(i + 16 * j) as *const __m128i),
                )
            };
            let y = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(y));
            *accj = _mm512_fmadd_ps(x, y, *accj);
        }
        i += 64;
    }
    while i + 16 <= n {
        // SAFETY: i + 16 <= n and both slices hold at least n elements.
        let (x, y) = unsafe {
            (
                _mm512_loadu_ps(pa.add(i)),
                _mm_loadu_si128(pb.add(i) as *const __m128i),
            )
        };
        let y = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(y));
        acc[1] = _mm512_fmadd_ps(x, y, acc[1]);
        i += 16;
    }
    let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    let mut total = _mm512_reduce_add_ps(sum);
    while i < n {
        total += a[i] * f32::from(b[i]);
        i += 1;
    }
    total
}

/// Asks the CPU to start loading the cache line holding `p` into all cache levels.
#[inline(always)]
pub fn prefetch(p: *const u8) {
    // SAFETY: a prefetch is only a hint: it never faults, whatever the address, and SSE is part
    // of the x86_64 baseline.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(p as *const i8) }
}
