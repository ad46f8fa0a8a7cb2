//! Distance kernels: scalar reference implementations plus SIMD versions (AVX2+FMA and AVX-512F
//! on x86_64, NEON on aarch64), one of which is chosen once per process at run time.
//!
//! The selection happens on first use and is cached in a `OnceLock`, so the hot loops pay one
//! indirect call per distance and no feature test. Index code that computes many distances
//! fetches the [`Kernels`] table once (see [`kernels`]) and calls its methods directly.
//! The environment variable `VECDB_KERNEL` (`scalar`, `avx2-fma`, `avx512`, `neon`) forces a
//! kernel when that kernel is supported, which benchmarks use to compare them.
//!
//! This module also holds the other low-level pieces the index needs and which need `unsafe`:
//! a 64-byte aligned `f32` buffer ([`AlignedF32Vec`]), a cache [`prefetch`] hint, and the
//! matrix product of many vectors with many ([`dot_matrix`], through the `matrixmultiply` GEMM,
//! for exact search with many queries at once and for k-means).

mod aligned;
mod gemm;
pub mod scalar;

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use aligned::AlignedF32Vec;
pub use gemm::dot_matrix;

use std::sync::OnceLock;

/// Signature shared by every kernel. It is `unsafe` because SIMD kernels require a CPU feature
/// and slices of equal length; [`Kernels`] checks both before calling one.
type KernelFn = unsafe fn(&[f32], &[f32]) -> f32;
/// A native inner product of floats with bytes (see [`Kernels::dot_u8`]).
type DotU8Fn = unsafe fn(&[f32], &[u8]) -> f32;
/// A native bit-plane popcount (see [`Kernels::bit_planes`]).
type BitPlanesFn = unsafe fn(&[u64], &[u64]) -> [u32; 5];

/// One consistent set of kernels (all scalar, or all from one instruction-set extension).
#[derive(Clone, Copy)]
pub struct Kernels {
    name: &'static str,
    l2: KernelFn,
    dot: KernelFn,
    /// Native float-by-byte inner product, where the set has one; otherwise the scalar loop.
    dot_u8: Option<DotU8Fn>,
    /// Native bit-plane popcounts, where the CPU has a population count instruction.
    bit_planes: Option<BitPlanesFn>,
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernels").field("name", &self.name).finish()
    }
}

impl Kernels {
    /// The scalar reference set, available everywhere.
    pub const SCALAR: Kernels = Kernels {
        name: "scalar",
        l2: scalar::l2_squared,
        dot: scalar::dot,
        dot_u8: None,
        bit_planes: None,
    };

    /// Name of this set: "avx512", "avx2-fma", "neon" or "scalar".
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Squared euclidean distance. Panics if the lengths differ.
    #[inline]
    pub fn l2_squared(&self, a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(
            a.len(),
            b.len(),
            "l2_squared on slices of different lengths"
        );
        // SAFETY: a `Kernels` value other than SCALAR is only built by `available()` after the
        // run-time feature test for its extension succeeded, and the lengths are equal.
        unsafe { (self.l2)(a, b) }
    }

    /// Inner product. Panics if the lengths differ.
    #[inline]
    pub fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "dot on slices of different lengths");
        // SAFETY: as in `l2_squared`: the CPU feature was detected and the lengths are equal.
        unsafe { (self.dot)(a, b) }
    }

    /// Inner product of floats with bytes read as the integers 0..=255 (scalar-quantised
    /// codes: the quantised indexes fold the per-dimension scale into `a`). Panics if the
    /// lengths differ.
    #[inline]
    pub fn dot_u8(&self, a: &[f32], b: &[u8]) -> f32 {
        assert_eq!(a.len(), b.len(), "dot_u8 on slices of different lengths");
        match self.dot_u8 {
            // SAFETY: as in `l2_squared`: the CPU feature was detected and the lengths are equal.
            Some(f) => unsafe { f(a, b) },
            None => scalar::dot_u8(a, b),
        }
    }

    /// Popcounts of a binary code and of its intersection with each of four bit planes (see
    /// [`scalar::bit_planes`]): the whole cost of a RaBitQ distance estimate. Panics unless
    /// `planes` holds four planes of the code's length.
    #[inline]
    pub fn bit_planes(&self, code: &[u64], planes: &[u64]) -> [u32; 5] {
        assert_eq!(planes.len(), 4 * code.len(), "bit_planes needs four planes");
        match self.bit_planes {
            // SAFETY: the CPU feature was detected when the set was made, and the planes are
            // four times the code's length (checked above).
            Some(f) => unsafe { f(code, planes) },
            None => scalar::bit_planes(code, planes),
        }
    }

    /// Every kernel set this CPU supports, fastest first; the scalar set is always last.
    pub fn available() -> Vec<Kernels> {
        let mut out = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            let popcnt: Option<BitPlanesFn> = if std::arch::is_x86_feature_detected!("popcnt") {
                Some(x86::bit_planes_popcnt)
            } else {
                None
            };
            if std::arch::is_x86_feature_detected!("avx512f") {
                let vpopcnt: Option<BitPlanesFn> =
                    if std::arch::is_x86_feature_detected!("avx512vpopcntdq") {
                        Some(x86::bit_planes_avx512)
                    } else {
                        popcnt
                    };
                out.push(Kernels {
                    name: "avx512",
                    l2: x86::l2_squared_avx512,
                    dot: x86::dot_avx512,
                    dot_u8: Some(x86::dot_u8_avx512),
                    bit_planes: vpopcnt,
                });
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                out.push(Kernels {
                    name: "avx2-fma",
                    l2: x86::l2_squared_avx2,
                    dot: x86::dot_avx2,
                    dot_u8: Some(x86::dot_u8_avx2),
                    bit_planes: popcnt,
                });
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("neon") {
                out.push(Kernels {
                    name: "neon",
                    l2: neon::l2_squared_neon,
                    dot: neon::dot_neon,
                    dot_u8: None,
                    bit_planes: None,
                });
            }
        }
        out.push(Kernels::SCALAR);
        out
    }
}

/// The kernel set chosen for this process: the fastest supported one, unless `VECDB_KERNEL`
/// names another supported set.
pub fn kernels() -> &'static Kernels {
    static SELECTED: OnceLock<Kernels> = OnceLock::new();
    SELECTED.get_or_init(|| {
        let available = Kernels::available();
        let forced = std::env::var("VECDB_KERNEL").ok();
        let chosen = forced
            .as_deref()
            .and_then(|want| available.iter().find(|k| k.name == want))
            .unwrap_or(&available[0]);
        tracing::debug!(kernel = chosen.name, "distance kernels selected");
        *chosen
    })
}

/// Name of the selected kernel set: "avx512", "avx2-fma", "neon" or "scalar".
pub fn selected_kernel_name() -> &'static str {
    kernels().name
}

/// Squared euclidean distance with the selected kernels. Panics if the lengths differ.
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    kernels().l2_squared(a, b)
}

/// Inner product with the selected kernels. Panics if the lengths differ.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    kernels().dot(a, b)
}

/// Euclidean norm with the selected kernels.
#[inline]
pub fn norm(a: &[f32]) -> f32 {
    dot(a, a).sqrt()
}

/// Hints the CPU to load the cache line at `p`; does nothing on CPUs without a known hint.
/// It never dereferences `p`, so any address (even dangling) is fine.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    x86::prefetch(p as *const u8);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests;
