//! Adam (Kingma & Ba 2015) with decoupled weight decay (AdamW, Loshchilov & Hutter 2019).

use crate::error::{invalid, Result};
use crate::head::{Dense, Head};
use crate::matrix::Matrix;

/// Adam's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub learning_rate: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Decoupled weight decay applied to weights (not biases), per step, times the rate.
    pub weight_decay: f32,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 1e-4,
        }
    }
}

impl AdamConfig {
    pub fn validate(&self) -> Result<()> {
        let ok = self.learning_rate.is_finite()
            && self.learning_rate > 0.0
            && (0.0..1.0).contains(&self.beta1)
            && (0.0..1.0).contains(&self.beta2)
            && self.eps > 0.0
            && self.weight_decay.is_finite()
            && self.weight_decay >= 0.0;
        if ok {
            Ok(())
        } else {
            Err(invalid(format!("invalid Adam settings {self:?}")))
        }
    }
}

/// Optimiser state for one head: first and second moments shaped like its layers.
pub struct Adam {
    cfg: AdamConfig,
    step: i32,
    m: Vec<Dense>,
    v: Vec<Dense>,
}

fn zeros_like(layers: &[Dense]) -> Vec<Dense> {
    layers
        .iter()
        .map(|l| Dense {
            weight: Matrix::zeros(l.weight.rows(), l.weight.cols()),
            bias: vec![0.0; l.bias.len()],
        })
        .collect()
}

impl Adam {
    pub fn new(head: &Head, cfg: AdamConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            cfg,
            step: 0,
            m: zeros_like(head.layers()),
            v: zeros_like(head.layers()),
        })
    }

    /// Applies one update from `grads` (one `Dense` of gradients per layer).
    pub fn step(&mut self, head: &mut Head, grads: &[Dense]) {
        self.step += 1;
        let c = self.cfg;
        let bc1 = 1.0 - c.beta1.powi(self.step);
        let bc2 = 1.0 - c.beta2.powi(self.step);
        for (l, layer) in head.layers_mut().iter_mut().enumerate() {
            let (m, v, g) = (&mut self.m[l], &mut self.v[l], &grads[l]);
            update(
                layer.weight.as_mut_slice(),
                g.weight.as_slice(),
                m.weight.as_mut_slice(),
                v.weight.as_mut_slice(),
                (bc1, bc2, c.weight_decay),
                &c,
            );
            update(
                &mut layer.bias,
                &g.bias,
                &mut m.bias,
                &mut v.bias,
                (bc1, bc2, 0.0),
                &c,
            );
        }
    }
}

/// One Adam update of a parameter slice; `(bc1, bc2, decay)` are the bias corrections of this
/// step and the weight decay for this slice.
fn update(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    (bc1, bc2, decay): (f32, f32, f32),
    c: &AdamConfig,
) {
    for i in 0..p.len() {
        m[i] = c.beta1 * m[i] + (1.0 - c.beta1) * g[i];
        v[i] = c.beta2 * v[i] + (1.0 - c.beta2) * g[i] * g[i];
        let mhat = m[i] / bc1;
        let vhat = v[i] / bc2;
        p[i] -= c.learning_rate * (mhat / (vhat.sqrt() + c.eps) + decay * p[i]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_moves_by_the_learning_rate_against_the_gradient_sign() {
        // With bias correction, step 1 has mhat = g and vhat = g^2, so the update is
        // lr * g / (|g| + eps), i.e. lr in the direction of -sign(g), whatever |g| is.
        let cfg = AdamConfig {
            learning_rate: 0.1,
            weight_decay: 0.0,
            ..AdamConfig::default()
        };
        let mut p = vec![1.0f32, 1.0, 1.0];
        let (mut m, mut v) = (vec![0.0; 3], vec![0.0; 3]);
        let bc = (1.0 - cfg.beta1, 1.0 - cfg.beta2, 0.0);
        update(&mut p, &[5.0, -0.01, 0.0], &mut m, &mut v, bc, &cfg);
        assert!((p[0] - 0.9).abs() < 1e-6);
        assert!((p[1] - 1.1).abs() < 1e-4);
        assert_eq!(p[2], 1.0);
    }

    #[test]
    fn minimises_a_quadratic() {
        let cfg = AdamConfig {
            learning_rate: 0.05,
            weight_decay: 0.0,
            ..AdamConfig::default()
        };
        let mut p = vec![0.0f32; 2];
        let (mut m, mut v) = (vec![0.0; 2], vec![0.0; 2]);
        for t in 1..=2000 {
            let g = [2.0 * (p[0] - 3.0), 2.0 * (p[1] + 1.0)];
            let bc = (1.0 - cfg.beta1.powi(t), 1.0 - cfg.beta2.powi(t), 0.0);
            update(&mut p, &g, &mut m, &mut v, bc, &cfg);
        }
        assert!(
            (p[0] - 3.0).abs() < 1e-2 && (p[1] + 1.0).abs() < 1e-2,
            "{p:?}"
        );
    }

    #[test]
    fn rejects_bad_settings() {
        let bad = AdamConfig {
            learning_rate: -1.0,
            ..AdamConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
