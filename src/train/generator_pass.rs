//! The generator's pass of a training step, stored or recomputed (`TrainConfig::recompute`).

use crate::error::Result;
use crate::model::State;
use crate::nn::generator::Generator;
use crate::nn::layers::BnMode;
use crate::nn::precision::Precision;
use crate::nn::recompute::Sketch;
use crate::train::canvas_penalty::{canvas_penalty, canvas_penalty_gradient};
use tch::Tensor;

/// The generator's pass of a training step: recorded by autograd (the stored pass), or
/// sketched and recomputed step by step in its backward pass (`TrainConfig::recompute`).
pub(crate) enum GeneratorPass {
    /// The images and, with a canvas penalty, the penalty (recorded).
    Stored(Tensor, Option<Tensor>),
    /// The sketch, its image as a leaf that records the discriminator's pass over it, and, with
    /// a canvas penalty, the penalty's gradient with respect to the summed canvas.
    Recomputed(Sketch, Tensor, Option<Tensor>),
}

impl GeneratorPass {
    /// Draws the step's images from `z` (of classes `labels` for a conditional generator),
    /// updating the generator's running statistics. `canvas_weight` > 0: the generator's loss
    /// gains the canvas penalty of that weight (crate::train::canvas_penalty).
    pub(crate) fn forward(
        gen: &Generator,
        z: &Tensor,
        labels: Option<&Tensor>,
        precision: Precision,
        recompute: bool,
        canvas_weight: f64,
    ) -> Result<Self> {
        let keep_sum = canvas_weight > 0.0;
        if recompute {
            let mut sketch = gen.sketch(z, labels, BnMode::Train, precision, keep_sum)?;
            let leaf = sketch.image.f_detach()?.f_set_requires_grad(true)?;
            // The sum is needed only for this gradient: taken, not kept until the backward pass.
            let grad_sum = sketch.sum.take().map(|s| canvas_penalty_gradient(&s, canvas_weight)).transpose()?;
            return Ok(GeneratorPass::Recomputed(sketch, leaf, grad_sum));
        }
        let (image, sum) = precision.run(z.device(), || gen.forward_training(z, labels, keep_sum))?;
        let penalty = sum.map(|s| canvas_penalty(&s, canvas_weight)).transpose()?;
        Ok(GeneratorPass::Stored(image, penalty))
    }

    /// The images, for the discriminator.
    pub(crate) fn image(&self) -> &Tensor {
        match self {
            GeneratorPass::Stored(image, _) | GeneratorPass::Recomputed(_, image, _) => image,
        }
    }

    /// The generator's gradients of `loss`, a function of [`GeneratorPass::image`], plus the
    /// canvas penalty when the pass has one.
    pub(crate) fn gradients(&self, st: &State, loss: &Tensor, precision: Precision) -> Result<Vec<Tensor>> {
        match self {
            GeneratorPass::Stored(_, None) => st.opt_g.gradients(loss),
            GeneratorPass::Stored(_, Some(penalty)) => st.opt_g.gradients(&loss.f_add(penalty)?),
            GeneratorPass::Recomputed(sketch, leaf, grad_sum) => {
                let grad_image = Tensor::f_run_backward(&[loss], &[leaf], false, false)?.remove(0);
                let params: Vec<&Tensor> = st.g_params.iter().map(|n| &n.tensor).collect();
                st.gen.recomputed_gradients(sketch, &grad_image, grad_sum.as_ref(), &params, precision)
            }
        }
    }
}
