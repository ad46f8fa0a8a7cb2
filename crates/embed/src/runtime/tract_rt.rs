//! tract-onnx backend: the model is typed and optimised once at load for a fixed batch size.

use std::sync::Arc;

use tract_onnx::prelude::*;

use super::{input_shape, Backend, OnnxModel, RawOutputs, RuntimeConfig};
use crate::manifest::ModelManifest;
use crate::EmbedError;

pub(crate) struct TractBackend {
    plan: Arc<TypedRunnableModel>,
    batch: usize,
    shape: [usize; 4],
    per_image: usize,
    has_logits: bool,
}

impl TractBackend {
    pub(crate) fn load(
        m: &ModelManifest,
        onnx: OnnxModel<'_>,
        cfg: &RuntimeConfig,
    ) -> Result<TractBackend, EmbedError> {
        // A fixed batch lets tract pick its kernels for known shapes; batch 1 measured fastest
        // per image on this network (see bench/embed), so it is the default.
        let batch = if cfg.batch == 0 { 1 } else { cfg.batch };
        let err = |e: TractError| EmbedError::model(format!("tract: {e:#}"));
        let mut model = match onnx {
            OnnxModel::File(path) => tract_onnx::onnx().model_for_path(path),
            OnnxModel::Bytes(mut bytes) => tract_onnx::onnx().model_for_read(&mut bytes),
        }
        .map_err(err)?;
        let inputs = model.input_outlets().map_err(err)?.to_vec();
        let index = inputs
            .iter()
            .position(|o| model.node(o.node).name == m.input)
            .ok_or_else(|| {
                EmbedError::model(format!("the model has no input named {:?}", m.input))
            })?;
        let shape = input_shape(m, batch);
        model
            .set_input_fact(index, f32::fact(shape).into())
            .map_err(err)?;
        let mut outputs = vec![m.outputs.embedding.as_str()];
        outputs.extend(m.outputs.logits.as_deref());
        model.select_outputs_by_name(&outputs).map_err(err)?;
        let plan = model
            .into_optimized()
            .map_err(err)?
            .into_runnable()
            .map_err(err)?;
        Ok(TractBackend {
            plan,
            batch,
            shape,
            per_image: shape[1..].iter().product(),
            has_logits: m.outputs.logits.is_some(),
        })
    }

    /// Runs exactly `self.batch` images.
    fn run_fixed(&self, input: &[f32]) -> Result<RawOutputs, EmbedError> {
        let err = |e: TractError| EmbedError::model(format!("tract: {e:#}"));
        let tensor = Tensor::from_shape(&self.shape, input).map_err(err)?;
        let out = self.plan.run(tvec![tensor.into()]).map_err(err)?;
        let embedding = out[0]
            .to_plain_array_view::<f32>()
            .map_err(err)?
            .iter()
            .copied()
            .collect();
        let logits = if self.has_logits {
            Some(
                out[1]
                    .to_plain_array_view::<f32>()
                    .map_err(err)?
                    .iter()
                    .copied()
                    .collect(),
            )
        } else {
            None
        };
        Ok(RawOutputs { embedding, logits })
    }
}

impl Backend for TractBackend {
    fn run(&self, input: &[f32], n: usize) -> Result<RawOutputs, EmbedError> {
        let mut all = RawOutputs {
            embedding: Vec::new(),
            logits: self.has_logits.then(Vec::new),
        };
        for start in (0..n).step_by(self.batch) {
            let count = self.batch.min(n - start);
            let slice = &input[start * self.per_image..(start + count) * self.per_image];
            // A short last batch is padded with zeros, and the padding's outputs dropped.
            let part = if count == self.batch {
                self.run_fixed(slice)?
            } else {
                let mut padded = slice.to_vec();
                padded.resize(self.batch * self.per_image, 0.0);
                self.run_fixed(&padded)?
            };
            let keep = |v: Vec<f32>| {
                let per = v.len() / self.batch;
                v[..count * per].to_vec()
            };
            all.embedding.extend(keep(part.embedding));
            if let (Some(dst), Some(src)) = (all.logits.as_mut(), part.logits) {
                dst.extend(keep(src));
            }
        }
        Ok(all)
    }

    fn parallel_calls(&self) -> bool {
        true
    }

    fn preferred_batch(&self) -> usize {
        self.batch
    }
}
