//! The building blocks of both networks: linear layers, 5x5 stride-2 (transposed) convolutions,
//! nearest-neighbour upsampling with a 5x5 convolution, and batch norm, as plain tensors with
//! names, initialised from gran's counter-based RNG.
//!
//! Every trainable tensor and every buffer is registered in a [`Builder`] under a stable name,
//! which is what checkpoints and the optimizer iterate over.

use crate::error::Result;
use crate::rng::Stream;
use tch::{Device, Kind, Tensor};

/// A tensor with its checkpoint name. `decay` marks the weights that D weight decay applies to.
pub struct Named {
    pub name: String,
    pub tensor: Tensor,
    pub(crate) decay: bool,
}

/// How batch norm behaves in one forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BnMode {
    /// Batch statistics; running statistics updated.
    Train,
    /// Batch statistics; running statistics left alone.
    TrainFrozenStats,
    /// Running statistics (sampling, scoring): each image independent of its batch.
    Eval,
    /// Batch statistics, folded into the running statistics as the k-th of a cumulative
    /// average (momentum 1/k: the first batch replaces them). Standing statistics (crate::nn::ema).
    Accumulate(u32),
}

const BN_MOMENTUM: f64 = 0.1;
const BN_EPS: f64 = 1e-5;
/// DCGAN initialisation: N(0, 0.02) for weights, N(1, 0.02) for batch-norm scales.
pub(crate) const INIT_STD: f64 = 0.02;

pub(crate) struct Linear {
    pub(crate) w: Tensor,
    pub(crate) b: Option<Tensor>,
}

impl Linear {
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_linear(&self.w, self.b.as_ref())?)
    }
}

/// A learned vector per class: row y of `w` ([classes, dim]) is class y's.
pub(crate) struct Embedding {
    pub(crate) w: Tensor,
}

impl Embedding {
    /// The rows of `labels` (int64 [N], each in 0..classes, checked by the caller): [N, dim].
    pub(crate) fn forward(&self, labels: &Tensor) -> Result<Tensor> {
        Ok(self.w.f_index_select(0, labels)?)
    }
}

/// What a convolution does to the size of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConvKind {
    /// 5x5, stride 2, padding 2: halves it (the discriminator, the generator's encoder).
    Down,
    /// 5x5 transposed, stride 2, padding 2, output padding 1: doubles it.
    Transposed,
    /// Nearest-neighbour upsampling by 2, then a 5x5 convolution of stride 1 and padding 2:
    /// doubles it (crate::config::Upsampling::Resize). Computed as the transposed convolution
    /// it equals ([`resize_as_transposed`]).
    Resize,
}

/// A convolution: `w` is [out, in, k, k], or [in, out, k, k] when transposed.
pub(crate) struct Conv {
    pub(crate) w: Tensor,
    pub(crate) b: Option<Tensor>,
    pub(crate) kind: ConvKind,
}

/// The (forward) convolutions' stride and padding.
pub(crate) const CONV_STRIDE: i64 = 2;
pub(crate) const CONV_PADDING: i64 = 2;

/// The transposed convolutions' geometry.
pub(crate) const TRANSPOSED: crate::sys::torch_ext::Transposed =
    crate::sys::torch_ext::Transposed { stride: 2, padding: 2, output_padding: 1 };

/// The kernel size k of the convolution after a nearest-neighbour upsampling (odd; padding
/// (k - 1) / 2, so the size stays doubled): 5, the paper's transposed kernel's size, so that
/// each layer sees as much of its input (docs/RESULTS.md, section 19).
pub(crate) const RESIZE_KERNEL: i64 = gran_common::upsampling::RESIZE_KERNEL as i64;

/// The geometry of the one transposed convolution (kernel k + 1) that a resizing layer equals.
pub(crate) const RESIZE_AS_TRANSPOSED: crate::sys::torch_ext::Transposed =
    crate::sys::torch_ext::Transposed { stride: 2, padding: (RESIZE_KERNEL - 1) / 2, output_padding: 0 };

/// A resizing layer's weight `w` ([out, in, k, k]) as the weight ([in, out, k + 1, k + 1]) of
/// the transposed convolution of geometry [`RESIZE_AS_TRANSPOSED`] that computes the same
/// function.
///
/// Along one axis, output pixel o of "upsample by 2, then convolve with taps w_0 .. w_{k-1}
/// (padding p = (k - 1) / 2)" reads input (o + j - p) / 2 (rounded down) through tap j: two
/// neighbouring taps read the same input pixel. A transposed convolution of stride 2, padding p
/// and kernel [w_{k-1}, w_{k-2} + w_{k-1}, ..., w_0 + w_1, w_0] does exactly that, with
/// (k + 1)^2 products per input pixel and channel pair in 2-D where upsampling then convolving
/// takes 4 k^2 (36 against 100 for k = 5; the transposed generator's 5x5 kernel takes 25). The
/// weights summed are a linear map of `w`, so autograd trains `w` through it.
pub(crate) fn resize_as_transposed(w: &Tensor) -> Result<Tensor> {
    let axis = |w: &Tensor, d: i64| -> Result<Tensor> {
        let k = w.size()[d as usize];
        let tap = |j: i64| w.f_narrow(d, j, 1);
        let mut taps = vec![tap(k - 1)?];
        for j in 1..k {
            taps.push(tap(k - 1 - j)?.f_add(&tap(k - j)?)?);
        }
        taps.push(tap(0)?);
        Ok(Tensor::f_cat(&taps, d)?)
    };
    Ok(axis(&axis(w, 2)?, 3)?.f_transpose(0, 1)?)
}

impl Conv {
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let transposed = |w: &Tensor, g: crate::sys::torch_ext::Transposed| {
            x.f_conv_transpose2d(w, self.b.as_ref(), [g.stride; 2], [g.padding; 2], [g.output_padding; 2], 1, [1, 1])
        };
        Ok(match self.kind {
            ConvKind::Down => x.f_conv2d(&self.w, self.b.as_ref(), [CONV_STRIDE; 2], [CONV_PADDING; 2], [1, 1], 1)?,
            ConvKind::Transposed => transposed(&self.w, TRANSPOSED)?,
            ConvKind::Resize => transposed(&resize_as_transposed(&self.w)?, RESIZE_AS_TRANSPOSED)?,
        })
    }
}

/// Batch norm with one set of running statistics per *slot*. The generator's layers run once per
/// drawing step with different input statistics at each step, so each step keeps its own running
/// mean and variance (the affine scale and shift are shared): sampling in eval mode then sees the
/// statistics that training saw at that step.
pub(crate) struct BatchNorm {
    pub(crate) gamma: Tensor,
    pub(crate) beta: Tensor,
    pub(crate) running_mean: Vec<Tensor>,
    pub(crate) running_var: Vec<Tensor>,
}

impl BatchNorm {
    pub(crate) fn forward(&self, x: &Tensor, mode: BnMode, slot: usize) -> Result<Tensor> {
        let (rm, rv, training, momentum) = match mode {
            BnMode::Train => (Some(&self.running_mean[slot]), Some(&self.running_var[slot]), true, BN_MOMENTUM),
            BnMode::TrainFrozenStats => (None, None, true, BN_MOMENTUM),
            BnMode::Eval => (Some(&self.running_mean[slot]), Some(&self.running_var[slot]), false, BN_MOMENTUM),
            BnMode::Accumulate(k) => {
                (Some(&self.running_mean[slot]), Some(&self.running_var[slot]), true, 1.0 / f64::from(k.max(1)))
            }
        };
        Ok(x.f_batch_norm(Some(&self.gamma), Some(&self.beta), rm, rv, training, momentum, BN_EPS, true)?)
    }

    /// Eval mode at `slot` as one affine map per channel, with the preceding layer's `bias`
    /// (if any) taken in: `bn(x + bias) = x * scale + shift`. Returns `(scale, shift)`, each
    /// `[channels]`, float32, not recording gradients.
    pub(crate) fn folded(&self, slot: usize, bias: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let _no_grad = tch::no_grad_guard();
        let scale = self.gamma.f_div(&self.running_var[slot].f_add_scalar(BN_EPS)?.f_sqrt()?)?;
        let centre = match bias {
            Some(b) => b.f_sub(&self.running_mean[slot])?,
            None => self.running_mean[slot].f_neg()?,
        };
        let shift = self.beta.f_addcmul(&centre, &scale)?;
        Ok((scale, shift))
    }
}

/// What a [`Builder`] puts in the tensors it makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fill {
    /// DCGAN initialisation from the seed (a new model).
    Init,
    /// Allocated, not initialised (a model about to be loaded from a checkpoint).
    Uninit,
    /// Nothing allocated: every tensor is one zero broadcast to its shape, for reading the
    /// names and shapes a configuration implies (checking a checkpoint before building).
    ShapeOnly,
}

/// Creates layers, initialises them deterministically from a seed and records every tensor.
pub(crate) struct Builder {
    stream: Stream,
    device: Device,
    fill: Fill,
    pub(crate) params: Vec<Named>,
    pub(crate) buffers: Vec<Named>,
}

/// A stable 64-bit id of a parameter name (FNV-1a), so each tensor's initial values depend only
/// on (seed, name), not on the order layers are built in.
fn name_id(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

impl Builder {
    pub(crate) fn new(seed: u64, device: Device) -> Self {
        Self::with_fill(seed, device, Fill::Init)
    }

    pub(crate) fn with_fill(seed: u64, device: Device, fill: Fill) -> Self {
        Builder {
            stream: Stream::new(seed, crate::rng::stream::INIT),
            device,
            fill,
            params: Vec::new(),
            buffers: Vec::new(),
        }
    }

    /// A tensor of `shape` as the fill mode says, `value` everywhere for `Init`.
    fn filled(&self, shape: &[i64], value: f64) -> Result<Tensor> {
        Ok(match self.fill {
            Fill::Init => Tensor::f_full(shape, value, (Kind::Float, self.device))?,
            Fill::Uninit => Tensor::f_empty(shape, (Kind::Float, self.device))?,
            Fill::ShapeOnly => Tensor::f_zeros([1], (Kind::Float, Device::Cpu))?.f_expand(shape, false)?,
        })
    }

    fn param_normal(&mut self, name: String, shape: &[i64], mean: f32, std: f32, decay: bool) -> Result<Tensor> {
        let t = if self.fill == Fill::Init {
            let n = crate::limits::product(
                &shape.iter().map(|&d| d as usize).collect::<Vec<_>>(),
                &format!("parameter {name}"),
            )?;
            let s = self.stream.sub(name_id(&name));
            let mut values = crate::limits::vec_with_capacity::<f32>(n, &format!("the initial values of {name}"))?;
            values.extend((0..n as u64).map(|i| mean + std * s.normal(i)));
            Tensor::f_from_slice(&values)?.f_reshape(shape)?.f_to_device(self.device)?
        } else {
            self.filled(shape, 0.0)?
        };
        self.param(name, t, decay)
    }

    fn param(&mut self, name: String, t: Tensor, decay: bool) -> Result<Tensor> {
        let t = if self.fill == Fill::ShapeOnly { t } else { t.f_set_requires_grad(true)? };
        self.params.push(Named { name, tensor: t.shallow_clone(), decay });
        Ok(t)
    }

    fn param_fill(&mut self, name: String, shape: &[i64], value: f64) -> Result<Tensor> {
        let t = self.filled(shape, value)?;
        self.param(name, t, false)
    }

    fn buffer_fill(&mut self, name: String, shape: &[i64], value: f64) -> Result<Tensor> {
        let t = self.filled(shape, value)?;
        self.buffers.push(Named { name, tensor: t.shallow_clone(), decay: false });
        Ok(t)
    }

    pub(crate) fn linear(&mut self, name: &str, inp: i64, out: i64, bias: bool, decay: bool) -> Result<Linear> {
        let w = self.param_normal(format!("{name}.weight"), &[out, inp], 0.0, INIT_STD as f32, decay)?;
        let b = if bias { Some(self.param_fill(format!("{name}.bias"), &[out], 0.0)?) } else { None };
        Ok(Linear { w, b })
    }

    /// A class embedding [classes, dim] with N(0, `std`) entries.
    pub(crate) fn embedding(&mut self, name: &str, classes: i64, dim: i64, std: f32, decay: bool) -> Result<Embedding> {
        Ok(Embedding { w: self.param_normal(format!("{name}.weight"), &[classes, dim], 0.0, std, decay)? })
    }

    pub(crate) fn conv(&mut self, name: &str, inp: i64, out: i64, kind: ConvKind, bias: bool) -> Result<Conv> {
        // conv2d weights are [out, in, k, k]; conv_transpose2d weights are [in, out, k, k].
        let shape = match kind {
            ConvKind::Down => [out, inp, 5, 5],
            ConvKind::Transposed => [inp, out, 5, 5],
            ConvKind::Resize => [out, inp, RESIZE_KERNEL, RESIZE_KERNEL],
        };
        let w = self.param_normal(format!("{name}.weight"), &shape, 0.0, INIT_STD as f32, false)?;
        let b = if bias { Some(self.param_fill(format!("{name}.bias"), &[out], 0.0)?) } else { None };
        Ok(Conv { w, b, kind })
    }

    pub(crate) fn batch_norm(&mut self, name: &str, channels: i64, slots: usize) -> Result<BatchNorm> {
        let gamma = self.param_normal(format!("{name}.weight"), &[channels], 1.0, INIT_STD as f32, false)?;
        let beta = self.param_fill(format!("{name}.bias"), &[channels], 0.0)?;
        let mut running_mean = Vec::with_capacity(slots);
        let mut running_var = Vec::with_capacity(slots);
        for s in 0..slots {
            running_mean.push(self.buffer_fill(format!("{name}.running_mean.{s}"), &[channels], 0.0)?);
            running_var.push(self.buffer_fill(format!("{name}.running_var.{s}"), &[channels], 1.0)?);
        }
        Ok(BatchNorm { gamma, beta, running_mean, running_var })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition: nearest-neighbour upsampling by 2, then the k x k convolution.
    fn upsample_then_convolve(x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
        let (h, wd, k) = (x.size()[2], x.size()[3], w.size()[2]);
        x.upsample_nearest2d([2 * h, 2 * wd], None, None).conv2d(w, Some(b), [1, 1], [(k - 1) / 2; 2], [1, 1], 1)
    }

    #[test]
    fn a_resizing_layer_trains_as_the_definition_in_float32() {
        tch::manual_seed(4);
        for (n, cin, cout, h) in [(64, 16, 8, 8), (64, 8, 3, 16), (5, 32, 16, 4)] {
            let x = Tensor::randn([n, cin, h, h], (Kind::Float, Device::Cpu)).set_requires_grad(true);
            let w = (Tensor::randn([cout, cin, 5, 5], (Kind::Float, Device::Cpu)) * 0.02).set_requires_grad(true);
            let b = Tensor::randn([cout], (Kind::Float, Device::Cpu));
            let conv = Conv { w: w.shallow_clone(), b: Some(b.shallow_clone()), kind: ConvKind::Resize };
            let up = Tensor::randn([n, cout, 2 * h, 2 * h], (Kind::Float, Device::Cpu));
            let got = conv.forward(&x).unwrap();
            let want = upsample_then_convolve(&x, &w, &b);
            let rel = |a: &Tensor, b: &Tensor| {
                f64::try_from((a - b).abs().max()).unwrap() / f64::try_from(b.abs().max()).unwrap()
            };
            assert!(rel(&got, &want) < 1e-5, "forward {}", rel(&got, &want));
            let g1 = Tensor::run_backward(&[(&got * &up).sum(Kind::Float)], &[&w, &x], false, false);
            let g2 = Tensor::run_backward(&[(&want * &up).sum(Kind::Float)], &[&w, &x], false, false);
            assert!(rel(&g1[0], &g2[0]) < 1e-4, "weight gradient {}", rel(&g1[0], &g2[0]));
            assert!(rel(&g1[1], &g2[1]) < 1e-4, "input gradient {}", rel(&g1[1], &g2[1]));
        }
    }

    #[test]
    fn a_resizing_layer_is_upsampling_then_a_convolution() {
        tch::manual_seed(3);
        for (n, cin, cout, h) in [(2, 3, 5, 4), (1, 8, 1, 7), (3, 2, 3, 14)] {
            let x = Tensor::randn([n, cin, h, h], (Kind::Double, Device::Cpu));
            let k = RESIZE_KERNEL;
            let w = Tensor::randn([cout, cin, k, k], (Kind::Double, Device::Cpu)).set_requires_grad(true);
            let b = Tensor::randn([cout], (Kind::Double, Device::Cpu));
            let conv = Conv { w: w.shallow_clone(), b: Some(b.shallow_clone()), kind: ConvKind::Resize };
            let got = conv.forward(&x).unwrap();
            let want = upsample_then_convolve(&x, &w, &b);
            // Other odd kernels by the same rule.
            for k in [1, 3, 7] {
                let w = Tensor::randn([cout, cin, k, k], (Kind::Double, Device::Cpu));
                let g = crate::sys::torch_ext::Transposed { stride: 2, padding: (k - 1) / 2, output_padding: 0 };
                let t = resize_as_transposed(&w).unwrap();
                let y = x.conv_transpose2d(&t, Some(&b), [2, 2], [g.padding; 2], [0, 0], 1, [1, 1]);
                let d = f64::try_from((&y - upsample_then_convolve(&x, &w, &b)).abs().max()).unwrap();
                assert!(d < 1e-12, "k = {k}: {d}");
            }
            assert_eq!(got.size(), [n, cout, 2 * h, 2 * h]);
            assert!(f64::try_from((&got - &want).abs().max()).unwrap() < 1e-12);
            // The weight's gradient is the definition's too.
            let g_got = Tensor::run_backward(&[got.sum(Kind::Double)], &[&w], false, false).pop().unwrap();
            let g_want = Tensor::run_backward(&[want.sum(Kind::Double)], &[&w], false, false).pop().unwrap();
            assert!(f64::try_from((&g_got - &g_want).abs().max()).unwrap() < 1e-10);
        }
    }
}
