//! Metric-learning losses with hand-written gradients with respect to the head's outputs.
//!
//! Every loss takes a batch `z` (one row per sample, normally L2-normalised by the head) and a
//! label per row; rows with equal labels are positives of each other. It returns the loss and
//! `dL/dz`. The head then back-propagates through its normalisation. Distances and similarities
//! are computed from `z` as given, so the gradients are exact for any input, which is what the
//! finite-difference tests check.
//!
//! - Contrastive (Hadsell et al. 2006), balanced: the mean of `d^2` over positive pairs plus the
//!   mean of `max(0, margin - d)^2` over negative pairs, with `d` the Euclidean distance. The two
//!   means are taken separately because a batch holds many more negative pairs than positive.
//! - Triplet (Schroff et al. 2015) on squared distances `D`: `max(0, D(a,p) - D(a,n) + margin)`.
//!   Batch-hard: per anchor, its farthest positive and nearest negative. Semi-hard: per
//!   anchor-positive pair, the nearest negative farther than the positive; when there is none,
//!   the farthest negative (as TensorFlow Addons does), which usually contributes nothing.
//! - InfoNCE / NT-Xent (Oord et al. 2018; Chen et al. 2020) generalised to several positives per
//!   anchor as in supervised contrastive learning (Khosla et al. 2020):
//!   `L_i = -(1/|P(i)|) sum_{p in P(i)} log softmax_{j != i}(z_i.z_j / t)[p]`. With exactly two
//!   views per label it is NT-Xent.

use crate::error::{invalid, Result, TrainError};
use crate::matrix::{dot, Matrix};

/// How triplets are chosen inside a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mining {
    BatchHard,
    SemiHard,
}

/// A loss and its hyper-parameter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Loss {
    Contrastive { margin: f32 },
    Triplet { margin: f32, mining: Mining },
    InfoNce { temperature: f32 },
}

/// The result of one loss evaluation.
#[derive(Clone, Debug)]
pub struct LossOutput {
    pub loss: f32,
    /// `dL/dz`, the same shape as `z`.
    pub grad: Matrix,
    /// Pairs, triplets or anchors that contributed a non-zero term (a training diagnostic).
    pub active: usize,
}

impl Loss {
    /// A short stable name, used in head files and reports.
    pub fn name(&self) -> &'static str {
        match self {
            Loss::Contrastive { .. } => "contrastive",
            Loss::Triplet {
                mining: Mining::BatchHard,
                ..
            } => "triplet-batch-hard",
            Loss::Triplet {
                mining: Mining::SemiHard,
                ..
            } => "triplet-semi-hard",
            Loss::InfoNce { .. } => "infonce",
        }
    }

    /// Rejects non-positive or non-finite hyper-parameters.
    pub fn validate(&self) -> Result<()> {
        let (what, v) = match *self {
            Loss::Contrastive { margin } | Loss::Triplet { margin, .. } => ("margin", margin),
            Loss::InfoNce { temperature } => ("temperature", temperature),
        };
        if !(v.is_finite() && v > 0.0) {
            return Err(invalid(format!(
                "{what} must be positive and finite, got {v}"
            )));
        }
        Ok(())
    }

    /// Evaluates the loss and its gradient on a batch.
    pub fn compute(&self, z: &Matrix, labels: &[usize]) -> Result<LossOutput> {
        self.validate()?;
        if z.rows() != labels.len() {
            return Err(TrainError::WrongDimension {
                expected: z.rows(),
                got: labels.len(),
            });
        }
        if !z.is_finite() {
            return Err(TrainError::NonFinite {
                what: "loss input".into(),
            });
        }
        Ok(match *self {
            Loss::Contrastive { margin } => contrastive(z, labels, margin),
            Loss::Triplet { margin, mining } => triplet(z, labels, margin, mining),
            Loss::InfoNce { temperature } => info_nce(z, labels, temperature),
        })
    }
}

/// Squared Euclidean distance in f64.
fn sq_dist(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = f64::from(*x) - f64::from(*y);
            d * d
        })
        .sum()
}

/// Adds `c * (z_i - z_j)` to `g_i` and subtracts it from `g_j`: the gradient of any function
/// of `z_i - z_j`.
fn add_pair_grad(g: &mut [f64], cols: usize, z: &Matrix, i: usize, j: usize, c: f64) {
    for k in 0..cols {
        let diff = c * (f64::from(z.row(i)[k]) - f64::from(z.row(j)[k]));
        g[i * cols + k] += diff;
        g[j * cols + k] -= diff;
    }
}

fn to_output(loss: f64, g: Vec<f64>, rows: usize, cols: usize, active: usize) -> LossOutput {
    let grad = Matrix::from_vec(rows, cols, g.into_iter().map(|v| v as f32).collect())
        .expect("gradient buffer has rows * cols values");
    LossOutput {
        loss: loss as f32,
        grad,
        active,
    }
}

fn contrastive(z: &Matrix, labels: &[usize], margin: f32) -> LossOutput {
    let (n, c) = (z.rows(), z.cols());
    let m = f64::from(margin);
    let mut pos = Vec::new();
    let mut neg = Vec::new();
    for i in 0..n {
        for j in i + 1..n {
            if labels[i] == labels[j] {
                pos.push((i, j));
            } else {
                neg.push((i, j));
            }
        }
    }
    let mut g = vec![0.0f64; n * c];
    let (mut loss, mut active) = (0.0f64, 0usize);
    if !pos.is_empty() {
        let w = 1.0 / pos.len() as f64;
        for &(i, j) in &pos {
            let d2 = sq_dist(z.row(i), z.row(j));
            loss += w * d2;
            active += usize::from(d2 > 0.0);
            add_pair_grad(&mut g, c, z, i, j, 2.0 * w);
        }
    }
    if !neg.is_empty() {
        let w = 1.0 / neg.len() as f64;
        for &(i, j) in &neg {
            let d = sq_dist(z.row(i), z.row(j)).sqrt();
            if d < m {
                loss += w * (m - d) * (m - d);
                active += 1;
                // d(m - d)^2 / dz_i = -2 (m - d) (z_i - z_j) / d; at d = 0 the direction is
                // undefined and the difference vector is zero, so nothing is added.
                if d > 0.0 {
                    add_pair_grad(&mut g, c, z, i, j, -2.0 * w * (m - d) / d);
                }
            }
        }
    }
    to_output(loss, g, n, c, active)
}

/// Squared distances between all rows, in f64.
fn distance_matrix(z: &Matrix) -> Vec<f64> {
    let n = z.rows();
    let mut d = vec![0.0f64; n * n];
    for i in 0..n {
        for j in i + 1..n {
            let v = sq_dist(z.row(i), z.row(j));
            d[i * n + j] = v;
            d[j * n + i] = v;
        }
    }
    d
}

/// Chooses `(anchor, positive, negative)` triplets; returns them with the number of
/// anchor-positive units the loss is averaged over.
fn mine(dist: &[f64], labels: &[usize], mining: Mining) -> (Vec<[usize; 3]>, usize) {
    let n = labels.len();
    let negatives = |a: usize| (0..n).filter(move |&j| labels[j] != labels[a]);
    let mut out = Vec::new();
    let mut units = 0;
    for a in 0..n {
        let positives: Vec<usize> = (0..n)
            .filter(|&j| j != a && labels[j] == labels[a])
            .collect();
        // Ties choose the lowest index so mining is deterministic.
        let pick = |it: &mut dyn Iterator<Item = usize>, better: &dyn Fn(f64, f64) -> bool| {
            let mut best: Option<usize> = None;
            for j in it {
                if best.is_none_or(|b| better(dist[a * n + j], dist[a * n + b])) {
                    best = Some(j);
                }
            }
            best
        };
        if positives.is_empty() || negatives(a).next().is_none() {
            continue;
        }
        match mining {
            Mining::BatchHard => {
                let p = pick(&mut positives.iter().copied(), &|x, y| x > y).expect("non-empty");
                let q = pick(&mut negatives(a), &|x, y| x < y).expect("non-empty");
                units += 1;
                out.push([a, p, q]);
            }
            Mining::SemiHard => {
                for &p in &positives {
                    let dap = dist[a * n + p];
                    let mut farther = negatives(a).filter(|&j| dist[a * n + j] > dap);
                    let q = pick(&mut farther, &|x, y| x < y)
                        .or_else(|| pick(&mut negatives(a), &|x, y| x > y))
                        .expect("non-empty");
                    units += 1;
                    out.push([a, p, q]);
                }
            }
        }
    }
    (out, units)
}

fn triplet(z: &Matrix, labels: &[usize], margin: f32, mining: Mining) -> LossOutput {
    let (n, c) = (z.rows(), z.cols());
    let m = f64::from(margin);
    let dist = distance_matrix(z);
    let (triplets, units) = mine(&dist, labels, mining);
    let mut g = vec![0.0f64; n * c];
    let (mut loss, mut active) = (0.0f64, 0usize);
    if units > 0 {
        let w = 1.0 / units as f64;
        for [a, p, q] in triplets {
            let l = dist[a * n + p] - dist[a * n + q] + m;
            if l > 0.0 {
                loss += w * l;
                active += 1;
                // D(a,p) = |z_a - z_p|^2 contributes +2w(z_a - z_p) to a, the negative term
                // -D(a,q) contributes -2w(z_a - z_q).
                add_pair_grad(&mut g, c, z, a, p, 2.0 * w);
                add_pair_grad(&mut g, c, z, a, q, -2.0 * w);
            }
        }
    }
    to_output(loss, g, n, c, active)
}

fn info_nce(z: &Matrix, labels: &[usize], temperature: f32) -> LossOutput {
    let (n, c) = (z.rows(), z.cols());
    let t = f64::from(temperature);
    let mut gs = vec![0.0f64; n * n]; // dL/ds_ij before symmetrisation
    let anchors: Vec<usize> = (0..n)
        .filter(|&i| (0..n).any(|j| j != i && labels[j] == labels[i]))
        .collect();
    let mut loss = 0.0f64;
    if !anchors.is_empty() {
        let w = 1.0 / anchors.len() as f64;
        let mut logits = vec![0.0f64; n];
        for &i in &anchors {
            for (j, l) in logits.iter_mut().enumerate() {
                *l = f64::from(dot(z.row(i), z.row(j))) / t;
            }
            let max = (0..n)
                .filter(|&j| j != i)
                .map(|j| logits[j])
                .fold(f64::NEG_INFINITY, f64::max);
            let sum_exp: f64 = (0..n)
                .filter(|&j| j != i)
                .map(|j| (logits[j] - max).exp())
                .sum();
            let lse = max + sum_exp.ln();
            let positives: Vec<usize> = (0..n)
                .filter(|&j| j != i && labels[j] == labels[i])
                .collect();
            let np = positives.len() as f64;
            loss += w * positives.iter().map(|&p| lse - logits[p]).sum::<f64>() / np;
            for j in (0..n).filter(|&j| j != i) {
                let softmax = (logits[j] - max).exp() / sum_exp;
                let target = if labels[j] == labels[i] {
                    1.0 / np
                } else {
                    0.0
                };
                gs[i * n + j] = w * (softmax - target) / t;
            }
        }
    }
    // s_ij = z_i . z_j, so dL/dz_i = sum_j (G_ij + G_ji) z_j.
    let mut g = vec![0.0f64; n * c];
    for i in 0..n {
        for j in 0..n {
            let coef = gs[i * n + j] + gs[j * n + i];
            if coef != 0.0 {
                for k in 0..c {
                    g[i * c + k] += coef * f64::from(z.row(j)[k]);
                }
            }
        }
    }
    to_output(loss, g, n, c, anchors.len())
}

#[cfg(test)]
#[path = "loss_tests.rs"]
mod tests;
