//! The generator's pass of a training step, stored or recomputed (`TrainConfig::recompute`).

use crate::error::Result;
use crate::model::State;
use crate::nn::generator::Generator;
use crate::nn::layers::BnMode;
use crate::nn::precision::Precision;
use crate::nn::recompute::Sketch;
use tch::Tensor;

/// The generator's pass of a training step: recorded by autograd (the stored pass), or
/// sketched and recomputed step by step in its backward pass (`TrainConfig::recompute`).
pub(crate) enum GeneratorPass {
    Stored(Tensor),
    /// The sketch, and its image as a leaf that records the discriminator's pass over it.
    Recomputed(Sketch, Tensor),
}

impl GeneratorPass {
    /// Draws the step's images from `z` (of classes `labels` for a conditional generator), updating the generator's running statistics.
    pub(crate) fn forward(
        gen: &Generator,
        z: &Tensor,
        labels: Option<&Tensor>,
        precision: Precision,
        recompute: bool,
    ) -> Result<Self> {
        if recompute {
            let sketch = gen.sketch(z, labels, BnMode::Train, precision)?;
            let leaf = sketch.image.f_detach()?.f_set_requires_grad(true)?;
            return Ok(GeneratorPass::Recomputed(sketch, leaf));
        }
        Ok(GeneratorPass::Stored(
            precision.run(z.device(), || Ok(gen.forward_with(z, labels, BnMode::Train, false)?.image))?,
        ))
    }

    /// The images, for the discriminator.
    pub(crate) fn image(&self) -> &Tensor {
        match self {
            GeneratorPass::Stored(image) | GeneratorPass::Recomputed(_, image) => image,
        }
    }

    /// The generator's gradients of `loss`, a function of [`GeneratorPass::image`].
    pub(crate) fn gradients(&self, st: &State, loss: &Tensor, precision: Precision) -> Result<Vec<Tensor>> {
        match self {
            GeneratorPass::Stored(_) => st.opt_g.gradients(loss),
            GeneratorPass::Recomputed(sketch, leaf) => {
                let grad_image = Tensor::f_run_backward(&[loss], &[leaf], false, false)?.remove(0);
                let params: Vec<&Tensor> = st.g_params.iter().map(|n| &n.tensor).collect();
                st.gen.recomputed_gradients(sketch, &grad_image, &params, precision)
            }
        }
    }
}
