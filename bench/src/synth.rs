//! The seeded, clustered synthetic data set of `bench/scale` (see `bench/README.md`).
//!
//! Real image embeddings are not uniform: photos of the same scene or subject form clusters. The
//! generator mimics that with `CLUSTERS` centres drawn from a standard normal distribution in
//! `dim` dimensions; point `i` belongs to cluster `i % CLUSTERS` and is its centre plus normal
//! noise of standard deviation `SPREAD` per component, scaled to unit length. Queries are drawn
//! the same way from a separate random stream, so they fall among the points without being
//! copies of them. Every number comes from ChaCha8 seeded with the given seed (and the scaling
//! sums in a fixed order), so a (seed, n, dim) triple always gives the same vectors on every
//! machine.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Number of cluster centres.
pub const CLUSTERS: usize = 1000;
/// Standard deviation of a point around its centre, per component (the centres have 1.0).
pub const SPREAD: f32 = 0.5;
/// Stream number of the queries (the points use stream 0, the centres stream 2).
const QUERY_STREAM: u64 = 1;
const CENTRE_STREAM: u64 = 2;

/// The generator for one (seed, dim) pair.
pub struct Synth {
    dim: usize,
    seed: u64,
    centres: Vec<f32>,
}

impl Synth {
    /// Draws the cluster centres.
    pub fn new(seed: u64, dim: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(CENTRE_STREAM);
        let centres = (0..CLUSTERS * dim).map(|_| normal(&mut rng)).collect();
        Synth { dim, seed, centres }
    }

    /// The cluster of point `i`.
    pub fn cluster_of(i: u64) -> usize {
        (i % CLUSTERS as u64) as usize
    }

    /// Points `from..to`, in order, one vector each. Point `i` depends only on (seed, dim, i), so
    /// the set can be produced in batches without holding it all.
    pub fn points(&self, from: u64, to: u64) -> Vec<Vec<f32>> {
        (from..to)
            .map(|i| {
                let mut rng =
                    ChaCha8Rng::seed_from_u64(self.seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                self.around(Self::cluster_of(i), &mut rng)
            })
            .collect()
    }

    /// `n` query vectors.
    pub fn queries(&self, n: usize) -> Vec<Vec<f32>> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(QUERY_STREAM);
        (0..n)
            .map(|_| {
                let c = rng.gen_range(0..CLUSTERS);
                self.around(c, &mut rng)
            })
            .collect()
    }

    /// A point of `cluster`, scaled to unit length in `f32` as imgsearch's model emits its
    /// embeddings (`l2_normalize = true`), so that a collection stores it as imgsearch's would.
    /// The collections are cosine, so the scaling changes no search and no recall.
    fn around(&self, cluster: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
        let centre = &self.centres[cluster * self.dim..(cluster + 1) * self.dim];
        let mut v: Vec<f32> = centre.iter().map(|&c| c + SPREAD * normal(rng)).collect();
        embed::head::l2_normalize(&mut v);
        v
    }
}

/// A standard normal number (Box-Muller; the second value is discarded for simplicity).
fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_points_in_any_batching() {
        let a = Synth::new(7, 8);
        let b = Synth::new(7, 8);
        let whole = a.points(0, 10);
        let mut parts = b.points(0, 4);
        parts.extend(b.points(4, 10));
        assert_eq!(whole, parts);
        assert_ne!(Synth::new(8, 8).points(0, 1), whole[..1]);
        assert_eq!(a.queries(3), b.queries(3));
    }
}
