//! k-means for the IVF coarse quantiser: random initial centres from a fixed seed, a bounded
//! number of Lloyd iterations, training on a random sample when there are many points.
//!
//! Under `NegDot` the assignment uses the inner product and centres are re-normalised after
//! each update (spherical k-means), which is what cosine data needs; under `L2Squared` it is
//! plain Lloyd.

use super::{DistanceKind, VectorArena};
use crate::distance::{dot_matrix, kernels, Kernels};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Lloyd iterations at most: faiss' IVF training runs 10 (`cp.niter`), and the lists' quality
/// changes little after that.
pub(crate) const MAX_ITERS: usize = 10;
/// Training sample size per centre (faiss warns below 39 and samples above 256).
pub(crate) const SAMPLE_PER_CENTRE: usize = 128;

/// Index of the centre nearest to `v` and its distance. `centres` holds `len / dim` centres.
#[inline]
pub(crate) fn nearest(
    kern: &Kernels,
    kind: DistanceKind,
    centres: &[f32],
    dim: usize,
    v: &[f32],
) -> (usize, f32) {
    let mut best = (0, f32::INFINITY);
    for (i, c) in centres.chunks_exact(dim).enumerate() {
        let d = kind.eval(kern, v, c);
        if d < best.1 {
            best = (i, d);
        }
    }
    best
}

/// Trains `k` centres on (a sample of) `slots`; requires `slots.len() >= k >= 1`.
/// Returns `k * dim` floats.
pub(crate) fn train(
    arena: &VectorArena,
    slots: &[u32],
    k: usize,
    kind: DistanceKind,
    seed: u64,
) -> Vec<f32> {
    assert!(
        k >= 1 && slots.len() >= k,
        "k-means needs at least k points"
    );
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sample = slots.to_vec();
    sample.shuffle(&mut rng);
    sample.truncate(k.saturating_mul(SAMPLE_PER_CENTRE).max(k));
    let mut centres: Vec<f32> = sample[..k]
        .iter()
        .flat_map(|&s| arena.get(s).iter().copied())
        .collect();
    let mut assign = vec![usize::MAX; sample.len()];
    for iter in 0..MAX_ITERS {
        let new_assign = assign_all(arena, &sample, &centres, kind);
        let changed = new_assign
            .iter()
            .zip(&assign)
            .filter(|(a, b)| a != b)
            .count();
        assign = new_assign;
        update(arena, &sample, &assign, &mut centres, k, kind, &mut rng);
        tracing::trace!(iter, changed, "k-means iteration");
        if changed == 0 {
            break;
        }
    }
    centres
}

/// Points per matrix product in [`assign_all`], at most. Every product packs all the centres
/// again, so the tile is large enough to spread that cost (at 256 packing took a quarter of the
/// product's time at 1024 centres of 784-d), and small enough that the tiles still spread over
/// the threads.
const ASSIGN_TILE: usize = 1024;
/// Floats a tile's points, or its block of products, may hold (16 MiB): with many centres
/// (`nlist` may reach 2^20) or a high dimension a tile holds fewer points, so k-means' memory
/// per thread stays bounded.
const ASSIGN_TILE_FLOATS: usize = 1 << 22;

/// Points per tile of [`assign_all`] for `k` centres of `dim` floats.
fn assign_tile(k: usize, dim: usize) -> usize {
    (ASSIGN_TILE_FLOATS / k.max(dim).max(1)).clamp(1, ASSIGN_TILE)
}

/// The nearest centre of each of `points`. The inner products of a tile of points with every
/// centre are one matrix product ([`dot_matrix`]); L2 then ranks by `|c|^2 - 2 x.c`, the
/// point's own norm being the same for all centres. Tiles run in parallel.
pub(crate) fn assign_all(
    arena: &VectorArena,
    points: &[u32],
    centres: &[f32],
    kind: DistanceKind,
) -> Vec<usize> {
    let dim = arena.dim();
    let kern = kernels();
    let k = centres.len() / dim;
    let norms: Vec<f32> = match kind {
        DistanceKind::L2Squared => centres.chunks_exact(dim).map(|c| kern.dot(c, c)).collect(),
        DistanceKind::NegDot => vec![0.0; k],
    };
    let scale = match kind {
        DistanceKind::L2Squared => -2.0,
        DistanceKind::NegDot => -1.0,
    };
    points
        .par_chunks(assign_tile(k, dim))
        .flat_map_iter(|tile| {
            // Whole vectors at a time: a float-by-float gather took a sixteenth of the build.
            let mut block = Vec::with_capacity(tile.len() * dim);
            for &s in tile {
                block.extend_from_slice(arena.get(s));
            }
            let mut dots = vec![0.0f32; tile.len() * k];
            dot_matrix(&block, centres, dim, &mut dots);
            dots.chunks_exact(k)
                .map(|row| {
                    let mut best = (0, f32::INFINITY);
                    for (c, (&d, &norm)) in row.iter().zip(&norms).enumerate() {
                        let score = norm + scale * d;
                        if score < best.1 {
                            best = (c, score);
                        }
                    }
                    best.0
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Moves each centre to the mean of its points; an empty centre is re-seeded on a random
/// sample point so that no list stays empty forever.
fn update(
    arena: &VectorArena,
    sample: &[u32],
    assign: &[usize],
    centres: &mut [f32],
    k: usize,
    kind: DistanceKind,
    rng: &mut ChaCha8Rng,
) {
    let dim = arena.dim();
    let mut sums = vec![0.0f64; k * dim];
    let mut counts = vec![0usize; k];
    for (&s, &c) in sample.iter().zip(assign) {
        counts[c] += 1;
        for (acc, &x) in sums[c * dim..(c + 1) * dim].iter_mut().zip(arena.get(s)) {
            *acc += x as f64;
        }
    }
    for c in 0..k {
        let centre = &mut centres[c * dim..(c + 1) * dim];
        if counts[c] == 0 {
            let s = sample[rng.gen_range(0..sample.len())];
            centre.copy_from_slice(arena.get(s));
            continue;
        }
        let n = counts[c] as f64;
        for (dst, &acc) in centre.iter_mut().zip(&sums[c * dim..(c + 1) * dim]) {
            *dst = (acc / n) as f32;
        }
        if kind == DistanceKind::NegDot {
            let norm = crate::distance::norm(centre);
            if norm > 0.0 {
                centre.iter_mut().for_each(|x| *x /= norm);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_tiles_stay_within_their_budget() {
        assert_eq!(assign_tile(1024, 784), ASSIGN_TILE);
        for (k, dim) in [(1 << 20, 128), (4096, 65_536), (1 << 20, 1), (1, 1)] {
            let tile = assign_tile(k, dim);
            assert!(tile >= 1);
            assert!(
                tile * k <= ASSIGN_TILE_FLOATS.max(k) && tile * dim <= ASSIGN_TILE_FLOATS.max(dim),
                "k {k} dim {dim}: tile {tile}"
            );
        }
    }
}
