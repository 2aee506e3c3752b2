//! Per-step recomputation (`TrainConfig::recompute`): the generator's training pass with memory
//! flat in the number of drawing steps T.
//!
//! The stored pass (`Generator::forward` under autograd) keeps every drawing step's activations
//! until the backward pass, so its memory grows linearly with T. Here the forward pass records
//! nothing and keeps only what one step hands the next: h_z and the code h_c entering each step
//! ([`Sketch`], T small vectors per image). The backward pass goes through the steps in reverse,
//! recomputes each one from its saved input with recording on, and back-propagates into it two
//! gradients: the image's (the image is sigmoid of the sum of the steps' outputs, so every step
//! receives the same gradient from it) and the one that flowed back from the later steps into
//! the h_c it produced. Only one step's activations are alive at a time.
//!
//! Batch norm: the recomputation normalises with batch statistics, like the forward pass, and
//! the same input gives the same statistics; it leaves the running statistics alone (the
//! forward pass updated them, once per step slot, as the stored pass does).

use crate::error::Result;
use crate::nn::generator::Generator;
use crate::nn::layers::BnMode;
use crate::nn::precision::Precision;
use tch::{Kind, Tensor};

/// What the recording-free forward pass keeps for the backward pass.
pub(crate) struct Sketch {
    z: Tensor,
    labels: Option<Tensor>,
    hz: Tensor,
    /// The code h_c entering each step (zeros for the first), T tensors of [N, hidden].
    hc: Vec<Tensor>,
    /// sigmoid(sum of the steps): [N, C, H, W], float32, recorded by nothing.
    pub(crate) image: Tensor,
    /// When asked for: the sum of the steps itself (for the canvas penalty).
    pub(crate) sum: Option<Tensor>,
}

impl Generator {
    /// The forward pass of a training step, recording nothing: draws from latents `z` with
    /// batch norm in `mode` (`BnMode::Train` updates the running statistics here) and in
    /// `precision`, keeping what [`Generator::recomputed_gradients`] needs, and with
    /// `keep_sum` the summed canvas.
    pub(crate) fn sketch(
        &self,
        z: &Tensor,
        labels: Option<&Tensor>,
        mode: BnMode,
        precision: Precision,
        keep_sum: bool,
    ) -> Result<Sketch> {
        tch::no_grad(|| {
            precision.run(z.device(), || {
                let n = z.size()[0];
                let hz = self.latent_code(z, labels, mode)?;
                let mut hc = Tensor::f_zeros([n, self.hidden], (z.kind(), z.device()))?;
                let mut inputs = Vec::with_capacity(self.drawing_steps);
                let mut sum: Option<Tensor> = None;
                for t in 0..self.drawing_steps {
                    let dc = self.decode(&hz, &hc, mode, t)?;
                    let next = if t + 1 < self.drawing_steps { self.encode(&dc, mode, t)? } else { Tensor::new() };
                    inputs.push(std::mem::replace(&mut hc, next));
                    // As the stored pass: the canvas accumulates in float32.
                    sum = Some(match sum {
                        None => dc.f_to_kind(Kind::Float)?,
                        Some(prev) => prev.f_add(&dc)?,
                    });
                }
                let sum = sum.expect("steps >= 1");
                let (image, sum) = match keep_sum {
                    true => (sum.f_sigmoid()?, Some(sum)),
                    false => (sum.shallow_clone().f_sigmoid_()?, None),
                };
                let (z, labels) = (z.shallow_clone(), labels.map(Tensor::shallow_clone));
                Ok(Sketch { z, labels, hz, hc: inputs, image, sum })
            })
        })
    }

    /// The gradients of a loss with respect to `params` (the generator's parameters, in the
    /// optimizer's order), given `grad_image`, the loss's gradient with respect to
    /// `sketch.image`, and `grad_sum`, the gradient of any further term of the loss with
    /// respect to the summed canvas (`sketch.sum`). As `Adam::gradients` returns them: undefined
    /// for a parameter the loss does not depend on (the encoder when T = 1). Equal to the stored
    /// pass's to float tolerance (only the order in which the steps' contributions are summed
    /// differs).
    pub(crate) fn recomputed_gradients(
        &self,
        sketch: &Sketch,
        grad_image: &Tensor,
        grad_sum: Option<&Tensor>,
        params: &[&Tensor],
        precision: Precision,
    ) -> Result<Vec<Tensor>> {
        let mode = BnMode::TrainFrozenStats;
        let device = sketch.z.device();
        // d loss / d (sum of the steps' outputs), which every step's output receives.
        let through_image = Tensor::f_sigmoid_backward(grad_image, &sketch.image)?;
        let grad_sum = match grad_sum {
            Some(g) => through_image.f_add(g)?,
            None => through_image,
        };
        let mut total: Vec<Option<Tensor>> = params.iter().map(|_| None).collect();
        let hz = sketch.hz.f_detach()?.f_set_requires_grad(true)?;
        let mut grad_hz: Option<Tensor> = None;
        // The gradient flowing into the h_c that step t produced (none for the last step).
        let mut grad_hc: Option<Tensor> = None;
        for t in (0..self.drawing_steps).rev() {
            let hc = match t {
                0 => sketch.hc[0].shallow_clone(),
                _ => sketch.hc[t].f_detach()?.f_set_requires_grad(true)?,
            };
            let (dc, hc_out) = precision.run(device, || {
                let dc = self.decode(&hz, &hc, mode, t)?;
                let hc_out = match grad_hc {
                    Some(_) => Some(self.encode(&dc, mode, t)?),
                    None => None,
                };
                Ok((dc, hc_out))
            })?;
            // Scalars whose gradients with respect to dc and h_c_out are grad_sum and grad_hc.
            let mut roots = vec![dc.f_to_kind(Kind::Float)?.f_mul(&grad_sum)?.f_sum(Kind::Float)?];
            if let (Some(out), Some(g)) = (&hc_out, &grad_hc) {
                roots.push(out.f_mul(g)?.f_sum(Kind::Float)?);
            }
            let mut inputs: Vec<&Tensor> = params.to_vec();
            inputs.push(&hz);
            if t > 0 {
                inputs.push(&hc);
            }
            let mut grads = Tensor::f_run_backward(&roots, &inputs, false, false)?;
            grad_hc = if t > 0 { grads.pop() } else { None };
            accumulate(&mut grad_hz, grads.pop().expect("pushed"))?;
            for (sum, g) in total.iter_mut().zip(grads) {
                accumulate(sum, g)?;
            }
        }
        if let Some(g) = grad_hz {
            let hz = precision.run(device, || self.latent_code(&sketch.z, sketch.labels.as_ref(), mode))?;
            let root = hz.f_mul(&g)?.f_sum(Kind::Float)?;
            for (sum, g) in total.iter_mut().zip(Tensor::f_run_backward(&[root], params, false, false)?) {
                accumulate(sum, g)?;
            }
        }
        Ok(total.into_iter().map(|g| g.unwrap_or_else(Tensor::new)).collect())
    }
}

/// Adds `g` to `sum` (nothing when `g` is undefined: the step does not depend on it).
fn accumulate(sum: &mut Option<Tensor>, g: Tensor) -> Result<()> {
    if g.defined() {
        match sum {
            Some(s) => {
                let _ = s.f_add_(&g)?;
            }
            None => *sum = Some(g),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::ModelConfig;
    use crate::device::DeviceSpec;
    use crate::model::Model;
    use crate::nn::layers::BnMode;
    use crate::nn::precision::Precision;
    use tch::{Kind, Tensor};

    fn config(steps: u32, classes: u32) -> ModelConfig {
        ModelConfig {
            drawing_steps: steps,
            width_scale: 0.125,
            device: DeviceSpec::Cpu,
            seed: 5,
            classes,
            ..Default::default()
        }
    }

    /// The gradients of a fixed loss of the image, running statistics after, and the image: by
    /// the stored pass, or by recomputation. `canvas`: `Some(w)` makes the canvas saturate and,
    /// for w > 0, adds the canvas penalty of weight w to the loss.
    fn gradients(
        steps: u32,
        classes: u32,
        precision: Precision,
        recompute: bool,
        canvas: Option<f64>,
    ) -> (Vec<Tensor>, Vec<Tensor>, Tensor) {
        let model = Model::new(&config(steps, classes)).unwrap();
        let st = model.write();
        if canvas.is_some() {
            // A canvas well beyond the penalty's limit: the decoder's last convolution 40 times
            // stronger.
            let last = st.g_params.iter().filter(|n| n.name.starts_with("g.dec.conv")).map(|n| &n.name).max().unwrap();
            let last = last.split('.').take(3).collect::<Vec<_>>().join(".");
            tch::no_grad(|| {
                for n in st.g_params.iter().filter(|n| n.name.starts_with(&last)) {
                    let _ = n.tensor.shallow_clone().f_mul_scalar_(40.0).unwrap();
                }
            });
        }
        // From the crate's counter-based generator, not libtorch's global one (tests run in
        // parallel threads).
        let normal = |purpose: u64, shape: &[i64]| {
            let s = crate::rng::Stream::new(u64::from(steps), purpose);
            let v: Vec<f32> = (0..shape.iter().product::<i64>() as u64).map(|i| s.normal(i)).collect();
            Tensor::from_slice(&v).view(shape)
        };
        let z = normal(1, &[12, 100]);
        let labels =
            (classes > 0).then(|| Tensor::arange(12, (Kind::Int64, tch::Device::Cpu)).remainder(classes as i64));
        let labels = labels.as_ref();
        // A loss that weighs every pixel differently, as a discriminator's does.
        let weight = normal(2, &[12, 1, 28, 28]);
        let loss = |image: &Tensor| (image * &weight).square().mean(Kind::Float);
        let params: Vec<&Tensor> = st.g_params.iter().map(|n| &n.tensor).collect();
        let canvas = canvas.unwrap_or(0.0);
        let penalty = |sum: &Tensor| crate::train::canvas_penalty::canvas_penalty(sum, canvas).unwrap();
        let (grads, image) = if recompute {
            let sketch = st.gen.sketch(&z, labels, BnMode::Train, precision, canvas > 0.0).unwrap();
            let leaf = sketch.image.detach().set_requires_grad(true);
            let grad_image = Tensor::run_backward(&[loss(&leaf)], &[&leaf], false, false).remove(0);
            let grad_sum =
                sketch.sum.as_ref().map(|s| crate::train::canvas_penalty::canvas_penalty_gradient(s, canvas).unwrap());
            let grads = st.gen.recomputed_gradients(&sketch, &grad_image, grad_sum.as_ref(), &params, precision);
            (grads.unwrap(), sketch.image.copy())
        } else {
            let (image, sum) = precision.run(z.device(), || st.gen.forward_training(&z, labels, canvas > 0.0)).unwrap();
            let total = match &sum {
                Some(sum) => {
                    let p = penalty(sum);
                    assert!(p.double_value(&[]) > 0.1, "the canvas lies beyond the limit: penalty {p}");
                    loss(&image) + p
                }
                None => loss(&image),
            };
            (Tensor::run_backward(&[total], &params, false, false), image.detach())
        };
        let stats = st.g_buffers.iter().map(|n| n.tensor.copy()).collect();
        (grads, stats, image)
    }

    /// Largest difference relative to the largest magnitude.
    fn relative(a: &Tensor, b: &Tensor) -> f64 {
        let scale = a.abs().max().double_value(&[]).max(1e-30);
        (a - b).abs().max().double_value(&[]) / scale
    }

    fn check(steps: u32, classes: u32, precision: Precision, tolerance: f64) {
        check_with(steps, classes, precision, tolerance, None);
    }

    fn check_with(steps: u32, classes: u32, precision: Precision, tolerance: f64, canvas: Option<f64>) {
        let (stored, stored_stats, stored_image) = gradients(steps, classes, precision, false, canvas);
        let (recomputed, stats, image) = gradients(steps, classes, precision, true, canvas);
        // In bfloat16 the kernels may differ with recording (oneDNN's inference and training
        // forms): the same image to bfloat16's precision; in float32 the same bits.
        match precision {
            Precision::Fp32 => {
                assert!(image.equal(&stored_image), "T = {steps}: the sketch draws the stored pass's image")
            }
            Precision::Bf16 => assert!(relative(&stored_image, &image) < 1e-2, "T = {steps}: the sketch's image"),
        }
        for (a, b) in stored_stats.iter().zip(&stats) {
            let same = match precision {
                Precision::Fp32 => a.equal(b),
                Precision::Bf16 => relative(a, b) < 1e-2,
            };
            assert!(same, "T = {steps}: running statistics are updated once, as by the stored pass");
        }
        assert_eq!(stored.len(), recomputed.len());
        let mut defined = 0;
        for (i, (a, b)) in stored.iter().zip(&recomputed).enumerate() {
            assert_eq!(a.defined(), b.defined(), "T = {steps}, parameter {i}");
            if a.defined() {
                defined += 1;
                assert!(a.abs().max().double_value(&[]) > 0.0, "T = {steps}, parameter {i}: a zero gradient");
                let r = relative(a, b);
                assert!(r < tolerance, "T = {steps}, parameter {i}: relative difference {r:e}");
            }
        }
        // T = 1 never runs the encoder: its parameters get no gradient either way.
        let encoder = stored.len() - defined;
        assert_eq!(encoder == 0, steps > 1, "T = {steps}: {encoder} parameters without a gradient");
    }

    #[test]
    fn recomputed_gradients_equal_the_stored_pass() {
        for steps in [1, 3, 8] {
            check(steps, 0, Precision::Fp32, 1e-5);
        }
    }

    #[test]
    fn recomputation_of_a_conditional_generator_reaches_its_embedding() {
        // The embedding's gradient comes through h_z's part of the code, as the latent layer's.
        check(3, 10, Precision::Fp32, 1e-5);
    }

    #[test]
    fn recomputation_adds_the_canvas_penalty_as_the_stored_pass() {
        check_with(3, 0, Precision::Fp32, 1e-5, Some(1.0));
        // ... which changes the gradients (the saturated canvas passes back little else).
        let (plain, _, _) = gradients(3, 0, Precision::Fp32, false, Some(0.0));
        let (penalised, _, _) = gradients(3, 0, Precision::Fp32, false, Some(1.0));
        let (a, b) = (&plain[0], &penalised[0]);
        assert!(relative(b, a) > 0.5, "the penalty's gradient dominates: {}", relative(b, a));
    }

    #[test]
    fn recomputation_in_bfloat16_follows_the_stored_pass() {
        check(3, 0, Precision::Bf16, 2e-2);
    }
}
