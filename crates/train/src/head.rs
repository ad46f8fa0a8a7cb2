//! Projection heads being trained: the same stack of dense layers as `embed::Head` (ReLU
//! between them, L2 normalisation at both ends), held as matrices with the batched forward and
//! backward passes that training needs. A trained head becomes an `embed::Head` ([`Head::save`],
//! [`Head::to_inference`]), the form a manifest names and the engine applies.
//!
//! A linear head and a PCA-whitening head are one dense layer; the MLP is two.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{invalid, Result, TrainError};
use crate::matrix::{axpy, dot, l2_normalize, matmul_nt, Matrix};

pub use embed::HeadKind;

/// The shape of a trainable head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadArch {
    /// `in -> out`.
    Linear { out: usize },
    /// `in -> hidden -> ReLU -> out`.
    Mlp { hidden: usize, out: usize },
}

/// One dense layer, `y = W x + b` with `W` stored `out x in`.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    pub weight: Matrix,
    pub bias: Vec<f32>,
}

/// A projection head for the embeddings of one model.
#[derive(Clone, Debug, PartialEq)]
pub struct Head {
    kind: HeadKind,
    model_id: String,
    description: String,
    layers: Vec<Dense>,
}

/// Intermediate values of a forward pass, kept for the backward pass.
pub(crate) struct ForwardCache {
    /// Input of each layer (the first is the normalised input, the others are ReLU outputs,
    /// batch-centred when the pass centres hidden layers).
    inputs: Vec<Matrix>,
    /// Uncentred ReLU output of each hidden layer: where it is positive the ReLU passes the
    /// gradient.
    relu: Vec<Matrix>,
    /// Whether hidden layers were centred on the batch mean.
    centred: bool,
    /// Last layer's pre-normalisation output norms.
    norms: Vec<f32>,
    /// The normalised output.
    pub(crate) output: Matrix,
}

impl Head {
    /// Builds a head from its layers, checking (as `embed::Head::new` does) that their shapes
    /// chain, match the kind, and hold finite values.
    pub fn new(
        kind: HeadKind,
        model_id: impl Into<String>,
        description: impl Into<String>,
        layers: Vec<Dense>,
    ) -> Result<Self> {
        let head = Self {
            kind,
            model_id: model_id.into(),
            description: description.into(),
            layers,
        };
        head.to_inference()?;
        Ok(head)
    }

    /// The head in the form a manifest names and the engine applies.
    pub fn to_inference(&self) -> Result<embed::Head> {
        let layers = self
            .layers
            .iter()
            .map(|l| embed::head::Dense {
                rows: l.weight.rows(),
                cols: l.weight.cols(),
                weight: l.weight.as_slice().to_vec(),
                bias: l.bias.clone(),
            })
            .collect();
        Ok(embed::Head::new(
            self.kind,
            self.model_id.clone(),
            self.description.clone(),
            layers,
        )?)
    }

    /// Writes the head file (`embed::Head`'s format) to `path` atomically.
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        Ok(self.to_inference()?.save(path)?)
    }

    /// A randomly initialised trainable head. Weights are uniform in `+-sqrt(3 / fan_in)`
    /// (variance `1/fan_in`: a random projection that roughly preserves cosines at the start),
    /// scaled by `sqrt(2)` before a ReLU; biases start at zero. A square linear head
    /// (`out == in_dim`) starts as the identity instead, so training starts from the raw
    /// embeddings' geometry and early stopping can fall back to it.
    pub fn init(arch: HeadArch, in_dim: usize, model_id: &str, seed: u64) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (kind, dims) = match arch {
            HeadArch::Linear { out } => (HeadKind::Linear, vec![in_dim, out]),
            HeadArch::Mlp { hidden, out } => (HeadKind::Mlp, vec![in_dim, hidden, out]),
        };
        if dims.contains(&0) {
            return Err(invalid(format!(
                "head dimensions must be positive: {dims:?}"
            )));
        }
        if kind == HeadKind::Linear && dims[0] == dims[1] {
            let mut w = Matrix::zeros(in_dim, in_dim);
            for i in 0..in_dim {
                w.row_mut(i)[i] = 1.0;
            }
            let layer = Dense {
                weight: w,
                bias: vec![0.0; in_dim],
            };
            return Self::new(kind, model_id, "", vec![layer]);
        }
        let last = dims.len() - 2;
        let layers = (0..dims.len() - 1)
            .map(|i| {
                let (fan_in, fan_out) = (dims[i], dims[i + 1]);
                let gain = if i < last { 2.0f32.sqrt() } else { 1.0 };
                let a = gain * (3.0 / fan_in as f32).sqrt();
                let w = (0..fan_in * fan_out)
                    .map(|_| rng.gen_range(-a..a))
                    .collect();
                Dense {
                    weight: Matrix::from_vec(fan_out, fan_in, w).expect("sized above"),
                    bias: vec![0.0; fan_out],
                }
            })
            .collect();
        Self::new(kind, model_id, "", layers)
    }

    /// Free text describing how the head was made (loss, epochs, data).
    pub fn description(&self) -> &str {
        &self.description
    }

    pub fn set_description(&mut self, description: impl Into<String>) {
        self.description = description.into();
    }

    pub fn layers(&self) -> &[Dense] {
        &self.layers
    }

    pub(crate) fn layers_mut(&mut self) -> &mut [Dense] {
        &mut self.layers
    }

    pub fn input_dim(&self) -> usize {
        self.layers[0].weight.cols()
    }

    pub fn output_dim(&self) -> usize {
        self.layers[self.layers.len() - 1].weight.rows()
    }

    /// Projects every row of `x`.
    pub fn apply_matrix(&self, x: &Matrix) -> Result<Matrix> {
        if x.cols() != self.input_dim() {
            return Err(TrainError::WrongDimension {
                expected: self.input_dim(),
                got: x.cols(),
            });
        }
        Ok(self.forward(x).output)
    }

    /// Batched forward pass that keeps what the backward pass needs.
    pub(crate) fn forward(&self, x: &Matrix) -> ForwardCache {
        self.forward_centred(x, None, false)
    }

    /// Forward pass where `offset` is subtracted from every normalised input row. Training
    /// uses it to work on centred inputs; [`Head::fold_offset`] then moves the offset into the
    /// first bias so the saved head needs no extra field. With `centre_hidden`, every hidden
    /// layer's output is centred on its batch mean (mean-only batch normalisation, Salimans &
    /// Kingma 2016), which keeps the non-negative ReLU outputs from carrying a common component
    /// the next layer could use to collapse all outputs together.
    pub(crate) fn forward_centred(
        &self,
        x: &Matrix,
        offset: Option<&[f32]>,
        centre_hidden: bool,
    ) -> ForwardCache {
        let mut cur = x.clone();
        cur.normalize_rows();
        if let Some(mu) = offset {
            for r in 0..cur.rows() {
                axpy(-1.0, mu, cur.row_mut(r));
            }
        }
        let mut inputs = Vec::with_capacity(self.layers.len());
        let mut relu = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let mut y = matmul_nt(&cur, &layer.weight);
            for r in 0..y.rows() {
                axpy(1.0, &layer.bias, y.row_mut(r));
            }
            if i + 1 < self.layers.len() {
                y.as_mut_slice().iter_mut().for_each(|v| *v = v.max(0.0));
                relu.push(y.clone());
                if centre_hidden {
                    subtract_column_means(&mut y);
                }
            }
            inputs.push(std::mem::replace(&mut cur, y));
        }
        let norms = (0..cur.rows())
            .map(|r| l2_normalize(cur.row_mut(r)))
            .collect();
        ForwardCache {
            inputs,
            relu,
            centred: centre_hidden,
            norms,
            output: cur,
        }
    }

    /// The head that computes `self` on inputs centred by `offset`: `W (x - mu) + b` equals
    /// `W x + (b - W mu)`.
    pub(crate) fn fold_offset(&self, offset: &[f32]) -> Head {
        let mut out = self.clone();
        let layer = &mut out.layers[0];
        for o in 0..layer.bias.len() {
            layer.bias[o] -= dot(layer.weight.row(o), offset);
        }
        out
    }

    /// Replaces batch centring of hidden layers by centring on their mean over `x` (with the
    /// first layer already folded), moving each mean into the next layer's bias. This is the
    /// inference form of a head trained with `centre_hidden`.
    pub(crate) fn fold_hidden_means(&self, x: &Matrix) -> Head {
        let mut out = self.clone();
        for l in 1..out.layers.len() {
            let cache = out.forward(x);
            let input = &cache.inputs[l];
            let mut mean = vec![0.0f32; input.cols()];
            for r in 0..input.rows() {
                axpy(1.0 / input.rows() as f32, input.row(r), &mut mean);
            }
            let layer = &mut out.layers[l];
            for o in 0..layer.bias.len() {
                layer.bias[o] -= dot(layer.weight.row(o), &mean);
            }
        }
        out
    }

    /// Back-propagates `dz` (gradient w.r.t. the normalised output) to every layer's weights
    /// and biases. Returns one `Dense` of gradients per layer.
    pub(crate) fn backward(&self, cache: &ForwardCache, dz: &Matrix) -> Vec<Dense> {
        let z = &cache.output;
        // Through z = y / |y|: dy = (dz - z (z . dz)) / |y|.
        let mut dy = Matrix::zeros(z.rows(), z.cols());
        for r in 0..z.rows() {
            let (zr, dzr) = (z.row(r), dz.row(r));
            let proj = dot(zr, dzr);
            let inv = if cache.norms[r] > 0.0 {
                1.0 / cache.norms[r]
            } else {
                0.0
            };
            for ((o, &zi), &gi) in dy.row_mut(r).iter_mut().zip(zr).zip(dzr) {
                *o = (gi - zi * proj) * inv;
            }
        }
        let mut grads: Vec<Dense> = Vec::with_capacity(self.layers.len());
        for (l, layer) in self.layers.iter().enumerate().rev() {
            let input = &cache.inputs[l];
            let mut gw = Matrix::zeros(layer.weight.rows(), layer.weight.cols());
            let mut gb = vec![0.0f32; layer.weight.rows()];
            for r in 0..dy.rows() {
                for (o, &g) in dy.row(r).iter().enumerate() {
                    if g != 0.0 {
                        axpy(g, input.row(r), gw.row_mut(o));
                        gb[o] += g;
                    }
                }
            }
            if l > 0 {
                // dx = dy W, then back through the batch centring (subtract the column means of
                // the gradient) and the ReLU (open where its output was positive).
                let mut dx = Matrix::zeros(dy.rows(), layer.weight.cols());
                for r in 0..dy.rows() {
                    for (o, &g) in dy.row(r).iter().enumerate() {
                        if g != 0.0 {
                            axpy(g, layer.weight.row(o), dx.row_mut(r));
                        }
                    }
                }
                if cache.centred {
                    subtract_column_means(&mut dx);
                }
                for r in 0..dx.rows() {
                    for (d, &a) in dx.row_mut(r).iter_mut().zip(cache.relu[l - 1].row(r)) {
                        if a <= 0.0 {
                            *d = 0.0;
                        }
                    }
                }
                dy = dx;
            }
            grads.push(Dense {
                weight: gw,
                bias: gb,
            });
        }
        grads.reverse();
        grads
    }
}

/// Subtracts from every column its mean over the rows.
fn subtract_column_means(m: &mut Matrix) {
    if m.rows() == 0 {
        return;
    }
    let mut mean = vec![0.0f32; m.cols()];
    for r in 0..m.rows() {
        axpy(1.0 / m.rows() as f32, m.row(r), &mut mean);
    }
    for r in 0..m.rows() {
        axpy(-1.0, &mean, m.row_mut(r));
    }
}

#[cfg(test)]
#[path = "head_tests.rs"]
mod tests;
