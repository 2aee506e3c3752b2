//! The lean inference path: the generator as sampling runs it, without what sampling does not
//! need.
//!
//! In eval mode every batch norm is a fixed affine map per channel, one per drawing step (each
//! step keeps its own statistics). [`LeanGenerator`] works those maps out once per set of
//! weights (crate::model caches it until the weights next change) and draws with them:
//! - h_z's batch norm (one slot, small weights) is folded into its linear layer's weights and
//!   bias;
//! - every other batch norm becomes a per-step `(scale, shift)` that also takes in the preceding
//!   layer's bias, applied by one fused multiply-add on the activations. The large weights stay
//!   shared by all steps: folding each step's scale into them would keep T copies of the largest
//!   tensors, and at one image reading weights, not arithmetic, is what costs (BENCHMARKS.md,
//!   "Lean inference");
//! - the decoder's input `[h_z, h_c[t]]` is never concatenated: its h_z half, the same at every
//!   step, is multiplied once per image, and step 0's h_c (zero) not at all; a conditional
//!   generator's `e(y)` part becomes one decoder vector per class, worked out once
//!   (`embedding @ W_e`) and added by index;
//! - on the CPU, the convolutions' weights are reordered once into oneDNN's blocked layout
//!   (crate::sys::torch_ext::conv_prepack and conv_transpose_prepack; libtorch's conv2d and
//!   conv_transpose2d reorder them on every call), and a ReLU that directly follows one runs
//!   inside it; the decoder's last convolution, to the image's one or three channels, runs as a
//!   matrix product and a col2im instead;
//! - the decoder's weight halves are transposed copies, [hidden, features]: at one image the
//!   products stream their weights from memory, and they read a weight about twice as fast
//!   along its long side (12,544 features against 100 inputs at paper widths) as along the short
//!   one, or strided (BENCHMARKS.md, "Lean inference");
//! - activations run in place, the canvas sums in place, and nothing records gradients.
//!
//! The images equal [`Generator::forward`] in eval mode to float rounding (the tests below), so
//! seeded determinism and batch independence hold as before.

use crate::error::Result;
use crate::nn::generator::{Drawing, Generator};
use crate::nn::layers::{
    resize_as_transposed, Conv, ConvKind, CONV_PADDING, CONV_STRIDE, RESIZE_AS_TRANSPOSED, TRANSPOSED,
};
use crate::sys::torch_ext;
use crate::sys::torch_ext::Transposed;
use tch::{Kind, Tensor};

/// `x * scale + shift`, per channel; `scale` and `shift` are shaped to broadcast over `x`.
struct Affine {
    scale: Tensor,
    shift: Tensor,
}

impl Affine {
    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.shift.f_addcmul(x, &self.scale)?)
    }
}

/// A generator prepared for eval-mode drawing (see the module documentation).
pub(crate) struct LeanGenerator {
    drawing_steps: usize,
    base: i64,
    c0: i64,
    /// h_z's linear layer with its batch norm folded in.
    hz_w: Tensor,
    hz_b: Tensor,
    /// The decoder's linear layer split by input, each half transposed: [hidden, features] for
    /// h_z and for h_c (copies).
    dec_wz: Tensor,
    dec_wc: Tensor,
    /// A conditional generator's decoder term of each class, [classes, features]: e(y) times
    /// the decoder weights' e(y) part.
    dec_class: Option<Tensor>,
    /// Per step: the decoder's batch norm with the linear layer's bias.
    dec_affine: Vec<Affine>,
    dec_convs: Vec<Deconv>,
    enc_convs: Vec<EncConv>,
    enc_fc_w: Tensor,
    /// Per step: the encoder's final batch norm with its linear layer's bias.
    enc_affine: Vec<Affine>,
}

// SAFETY: as for crate::model::State: the tensors are only read after construction, by libtorch
// operators under no-grad, which libtorch supports from many threads at once.
unsafe impl Sync for LeanGenerator {}

/// How a decoder convolution runs on the CPU in float32 (elsewhere, and under bfloat16
/// autocast, libtorch's plain `conv_transpose2d`).
enum Kernel {
    /// oneDNN's kernel with the weight reordered once into its blocked layout.
    Packed(Tensor),
    /// The last convolution, to the image's few channels, as one matrix product per image and
    /// a col2im: oneDNN's kernel runs a 128 -> 1 channel transposed convolution at about a
    /// tenth of its usual rate, and this form is 3-4x faster (BENCHMARKS.md, "Lean
    /// inference"). The weight as [out * k * k, in].
    Columns(Tensor),
    Plain,
}

/// A decoder layer as the transposed convolution it is or equals (a resizing layer's,
/// crate::nn::layers::resize_as_transposed), and the kernel it runs with.
struct Deconv {
    /// [in, out, k, k]: the generator's own weight (shared) for a transposed convolution.
    w: Tensor,
    b: Option<Tensor>,
    geometry: Transposed,
    kernel: Kernel,
}

impl Deconv {
    fn new(c: &Conv, last: bool) -> Result<Deconv> {
        let (w, geometry) = match c.kind {
            ConvKind::Resize => (resize_as_transposed(&c.w)?.f_contiguous()?.detach(), RESIZE_AS_TRANSPOSED),
            _ => (share(&c.w), TRANSPOSED),
        };
        let kernel = if !on_cpu_in_float32(&w) {
            Kernel::Plain
        } else if last {
            let (cin, cout, k) = (w.size()[0], w.size()[1], w.size()[2]);
            Kernel::Columns(w.f_reshape([cin, -1])?.f_tr()?.f_contiguous()?.f_view([1, cout * k * k, cin])?.detach())
        } else if tch::utils::has_mkldnn() {
            match torch_ext::conv_transpose_prepack(&w, geometry) {
                Ok(p) => Kernel::Packed(p),
                Err(e) => {
                    // Not expected (libtorch says it has oneDNN); the plain kernel runs.
                    crate::log::log(crate::log::Level::Debug, &e.message);
                    Kernel::Plain
                }
            }
        } else {
            Kernel::Plain
        };
        Ok(Deconv { w, b: c.b.as_ref().map(share), geometry, kernel })
    }

    /// The convolution of `x` ([N, in, h, w]), then ReLU when `relu`.
    fn forward(&self, x: &Tensor, relu: bool) -> Result<Tensor> {
        let float32 = runs_packed(x);
        let g = self.geometry;
        let mut y = match &self.kernel {
            Kernel::Packed(p) if float32 => return torch_ext::conv_transpose_packed(x, p, self.b.as_ref(), g, relu),
            Kernel::Columns(w) if float32 => {
                let [n, cin, h, w_] = x.size()[..] else {
                    return Err(crate::error::Error::internal(format!("a decoder activation of shape {:?}", x.size())));
                };
                let k = self.w.size()[2];
                let cols = w.f_matmul(&x.f_reshape([n, cin, h * w_])?)?;
                // Both geometries double the size: (h - 1) * stride - 2 * padding + k + output padding.
                let (oh, ow) = (h * g.stride, w_ * g.stride);
                let mut y = cols.f_col2im([oh, ow], [k, k], [1, 1], [g.padding; 2], [g.stride; 2])?;
                match &self.b {
                    Some(b) => y.f_add_(&b.f_view([1, -1, 1, 1])?)?,
                    None => y,
                }
            }
            _ => x.f_conv_transpose2d(
                &self.w,
                self.b.as_ref(),
                [g.stride; 2],
                [g.padding; 2],
                [g.output_padding; 2],
                1,
                [1, 1],
            )?,
        };
        Ok(if relu { y.f_relu_()? } else { y })
    }
}

/// An encoder convolution, bias-free where a batch norm follows, that batch norm per step (none
/// for the last convolution) and, on the CPU in float32, its weight in oneDNN's layout.
struct EncConv {
    conv: Conv,
    affine: Vec<Affine>,
    packed: Option<Tensor>,
}

impl EncConv {
    fn new(conv: Conv, affine: Vec<Affine>) -> EncConv {
        let packed = if on_cpu_in_float32(&conv.w) && tch::utils::has_mkldnn() {
            torch_ext::conv_prepack(&conv.w, CONV_STRIDE, CONV_PADDING)
                .map_err(|e| crate::log::log(crate::log::Level::Debug, &e.message))
                .ok()
        } else {
            None
        };
        EncConv { conv, affine, packed }
    }

    /// The convolution of `x`, step `t`'s batch norm where there is one, and ReLU.
    fn forward(&self, x: &Tensor, t: usize) -> Result<Tensor> {
        let packed = self.packed.as_ref().filter(|_| runs_packed(x));
        // With no batch norm between them, the ReLU runs inside the prepacked convolution.
        let fused = packed.is_some() && self.affine.is_empty();
        let y = match packed {
            Some(p) => torch_ext::conv_packed(x, p, self.conv.b.as_ref(), CONV_STRIDE, CONV_PADDING, fused)?,
            None => self.conv.forward(x)?,
        };
        if fused {
            return Ok(y);
        }
        let mut y = match self.affine.get(t) {
            Some(a) => a.apply(&y)?,
            None => y,
        };
        Ok(y.f_relu_()?)
    }
}

/// Whether a weight can be prepacked for oneDNN's CPU kernels (float32 on the CPU).
fn on_cpu_in_float32(w: &Tensor) -> bool {
    w.device() == tch::Device::Cpu && w.kind() == Kind::Float
}

/// Whether an activation runs through the prepacked kernels: float32 outside a bfloat16
/// autocast region (which runs libtorch's own kernels).
fn runs_packed(x: &Tensor) -> bool {
    x.kind() == Kind::Float && !torch_ext::autocast_enabled(false)
}

/// `t`'s parameters, shared (not copied) and not recording gradients.
fn share(t: &Tensor) -> Tensor {
    t.shallow_clone().detach()
}

impl LeanGenerator {
    /// Prepares `g`'s current weights and running statistics. Later changes to `g` are not seen:
    /// prepare again.
    pub(crate) fn new(g: &Generator) -> Result<LeanGenerator> {
        let _no_grad = tch::no_grad_guard();
        let steps = g.drawing_steps;
        let channels = |a: (Tensor, Tensor)| -> Result<Affine> {
            Ok(Affine { scale: a.0.f_view([-1, 1, 1])?, shift: a.1.f_view([-1, 1, 1])? })
        };
        let features = |a: (Tensor, Tensor)| Affine { scale: a.0, shift: a.1 };

        let (s, hz_b) = g.hz_bn.folded(0, g.hz_fc.b.as_ref())?;
        let hz_w = g.hz_fc.w.f_mul(&s.f_unsqueeze(1)?)?;
        let h = g.hidden;
        let dec_wz = share(&g.dec_fc.w).f_narrow(1, 0, h)?.f_tr()?.f_contiguous()?;
        let code = g.code_width();
        let dec_wc = share(&g.dec_fc.w).f_narrow(1, code, h)?.f_tr()?.f_contiguous()?;
        let dec_class = match &g.embed {
            Some(e) => Some(share(&e.w).f_matmul(&share(&g.dec_fc.w).f_narrow(1, h, code - h)?.f_tr()?)?),
            None => None,
        };
        let dec_affine =
            (0..steps).map(|t| g.dec_bn.folded(t, g.dec_fc.b.as_ref()).map(features)).collect::<Result<Vec<_>>>()?;
        let n = g.dec_convs.len();
        let dec_convs =
            g.dec_convs.iter().enumerate().map(|(i, c)| Deconv::new(c, i + 1 == n)).collect::<Result<_>>()?;
        // The last step skips the encoder: statistics for steps 0..T-1 only.
        let mut enc_convs = Vec::with_capacity(g.enc_convs.len());
        for (c, bn) in &g.enc_convs {
            let (conv, affine) = match bn {
                Some(bn) => (
                    Conv { w: share(&c.w), b: None, kind: ConvKind::Down },
                    (0..steps - 1)
                        .map(|t| bn.folded(t, c.b.as_ref()).and_then(channels))
                        .collect::<Result<Vec<_>>>()?,
                ),
                None => (Conv { w: share(&c.w), b: c.b.as_ref().map(share), kind: ConvKind::Down }, Vec::new()),
            };
            enc_convs.push(EncConv::new(conv, affine));
        }
        let enc_affine = (0..steps - 1)
            .map(|t| g.enc_bn.folded(t, g.enc_fc.b.as_ref()).map(features))
            .collect::<Result<Vec<_>>>()?;
        Ok(LeanGenerator {
            drawing_steps: steps,
            base: g.base,
            c0: g.c0,
            hz_w,
            hz_b,
            dec_wz,
            dec_wc,
            dec_class,
            dec_affine,
            dec_convs,
            enc_convs,
            enc_fc_w: share(&g.enc_fc.w),
            enc_affine,
        })
    }

    /// Step `t`'s addition to the canvas, from `u` (the decoder's h_z part) and h_c[t] (`None`
    /// at step 0, where it is zero).
    fn decode(&self, u: &Tensor, hc: Option<&Tensor>, t: usize) -> Result<Tensor> {
        let pre = match hc {
            None => u.shallow_clone(),
            Some(hc) => u.f_addmm(hc, &self.dec_wc)?,
        };
        let mut x = self.dec_affine[t].apply(&pre)?.f_relu_()?.f_view([-1, self.c0, self.base, self.base])?;
        let last = self.dec_convs.len() - 1;
        for (i, conv) in self.dec_convs.iter().enumerate() {
            x = conv.forward(&x, i < last)?;
        }
        // The prepacked kernels write channels-last; images and canvases are handed out in the
        // plain layout (a no-op for one channel).
        Ok(x.f_contiguous()?)
    }

    /// h_c[t + 1] from step `t`'s output.
    fn encode(&self, dc: &Tensor, t: usize) -> Result<Tensor> {
        let mut x = dc.shallow_clone();
        for conv in &self.enc_convs {
            x = conv.forward(&x, t)?;
        }
        let f = x.f_flatten(1, -1)?.f_linear::<&Tensor>(&self.enc_fc_w, None)?;
        Ok(self.enc_affine[t].apply(&f)?.f_tanh_()?)
    }

    /// Draws images from latents `z` [N, z_dim] (and, for a conditional generator, classes
    /// `labels`, int64 [N]), as [`Generator::forward_with`] does in eval mode, with the same
    /// outputs.
    pub(crate) fn forward(&self, z: &Tensor, labels: Option<&Tensor>, keep_canvases: bool) -> Result<Drawing> {
        let _no_grad = tch::no_grad_guard();
        let hz = z.f_linear(&self.hz_w, Some(&self.hz_b))?.f_tanh_()?;
        let u = match (&self.dec_class, labels) {
            (None, None) => hz.f_matmul(&self.dec_wz)?,
            (Some(c), Some(y)) => c.f_index_select(0, y)?.f_to_kind(hz.kind())?.f_addmm(&hz, &self.dec_wz)?,
            _ => {
                return Err(crate::error::Error::invalid(if labels.is_some() {
                    "this model is unconditional: it draws no class (its configuration has classes 0)"
                } else {
                    "this model is class-conditional: say which class each image is to be"
                }))
            }
        };
        let mut hc: Option<Tensor> = None;
        let mut sum: Option<Tensor> = None;
        let mut canvases = Vec::new();
        let mut deltas = Vec::new();
        for t in 0..self.drawing_steps {
            let dc = self.decode(&u, hc.as_ref(), t)?;
            if t + 1 < self.drawing_steps {
                hc = Some(self.encode(&dc, t)?);
            }
            // The canvas sums in float32 (as Generator::forward). Kept steps are not summed into
            // in place: the sum may be the first step's output itself.
            let s = match sum {
                None => dc.f_to_kind(Kind::Float)?,
                Some(prev) if keep_canvases => prev.f_add(&dc)?,
                Some(mut prev) => prev.f_add_(&dc)?,
            };
            if keep_canvases {
                canvases.push(s.f_sigmoid()?);
                deltas.push(dc);
            }
            sum = Some(s);
        }
        let image = match canvases.last() {
            Some(last) => last.shallow_clone(),
            None => sum.expect("steps >= 1").f_sigmoid_()?,
        };
        Ok(Drawing { image, canvases, deltas })
    }
}

/// Whether sampling draws through the lean path: yes unless `GRAN_LEAN_INFERENCE=0` (for
/// comparing the two; both give the same images to float rounding).
pub(crate) fn enabled_by_environment() -> bool {
    static ON: once_cell::sync::Lazy<bool> =
        once_cell::sync::Lazy::new(|| std::env::var("GRAN_LEAN_INFERENCE").map_or(true, |v| v.trim() != "0"));
    *ON
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;
    use crate::nn::layers::{BnMode, Builder};
    use tch::Device;

    /// A generator with every batch-norm statistic, scale and bias moved away from its initial
    /// value (so that a fold that dropped one would show), for `steps` drawing steps.
    fn perturbed(steps: u32, width_scale: f32) -> Generator {
        perturbed_at(ModelConfig { drawing_steps: steps, width_scale, ..Default::default() })
    }

    fn perturbed_at(cfg: ModelConfig) -> Generator {
        let mut b = Builder::new(7, Device::Cpu);
        let g = Generator::new(&mut b, &cfg, &cfg.architecture().unwrap()).unwrap();
        let _no_grad = tch::no_grad_guard();
        tch::manual_seed(11);
        for n in b.params.iter().chain(&b.buffers) {
            let mut t = n.tensor.shallow_clone();
            let noise = Tensor::randn(t.size(), (Kind::Float, Device::Cpu));
            if n.name.contains("running_var") {
                t.copy_(&(noise.abs() + 0.5));
            } else if n.name.contains("running_mean") || n.name.ends_with(".bias") {
                t.copy_(&(noise * 0.3));
            } else if n.name.contains(".bn") && n.name.ends_with(".weight") {
                t.copy_(&(noise * 0.2 + 1.0));
            }
        }
        g
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        assert_eq!(a.size(), b.size());
        (a - b).abs().max().double_value(&[])
    }

    #[test]
    fn lean_drawing_equals_eval_mode_drawing() {
        for steps in [1, 2, 3] {
            let g = perturbed(steps, 0.25);
            let lean = LeanGenerator::new(&g).unwrap();
            let z = Tensor::randn([5, 100], (Kind::Float, Device::Cpu));
            let _no_grad = tch::no_grad_guard();
            for keep in [false, true] {
                let want = g.forward(&z, BnMode::Eval, keep).unwrap();
                let got = lean.forward(&z, None, keep).unwrap();
                // Images in [0, 1]; the fold reorders a few float operations per value.
                assert!(max_diff(&want.image, &got.image) < 1e-5, "T={steps} keep={keep}");
                assert_eq!((got.canvases.len(), got.deltas.len()), (want.canvases.len(), want.deltas.len()));
                for (w, l) in want.canvases.iter().zip(&got.canvases).chain(want.deltas.iter().zip(&got.deltas)) {
                    assert!(max_diff(w, l) < 1e-4, "T={steps}: a step differs");
                }
                // The canvases are those of each step, not one tensor summed into in place.
                if keep && steps > 1 {
                    assert!(max_diff(&got.canvases[0], &got.canvases[steps as usize - 1]) > 1e-3);
                }
            }
            // What it shares is the generator's; the decoder's halves are copies.
            assert!(lean.dec_convs[0].w.data_ptr() == g.dec_convs[0].w.data_ptr());
            assert!(lean.dec_wz.data_ptr() != g.dec_fc.w.data_ptr() && lean.dec_wc.is_contiguous());
            // The PyPI libtorch has oneDNN: the CPU path above ran the prepacked convolutions.
            let kernels: Vec<_> = lean.dec_convs.iter().map(|d| std::mem::discriminant(&d.kernel)).collect();
            assert_eq!(kernels[0], std::mem::discriminant(&Kernel::Packed(Tensor::new())));
            assert_eq!(kernels[1], std::mem::discriminant(&Kernel::Columns(Tensor::new())));
            assert!(lean.enc_convs.iter().all(|c| c.packed.is_some()));
            assert!(!lean.hz_w.requires_grad() && !lean.dec_wc.requires_grad());
        }
    }

    #[test]
    fn colour_images_come_out_in_the_plain_layout() {
        let cfg = ModelConfig {
            height: 32,
            width: 32,
            channels: 3,
            drawing_steps: 2,
            width_scale: 0.125,
            ..Default::default()
        };
        let g = perturbed_at(cfg);
        let lean = LeanGenerator::new(&g).unwrap();
        let z = Tensor::randn([3, 100], (Kind::Float, Device::Cpu));
        let _no_grad = tch::no_grad_guard();
        for keep in [false, true] {
            let want = g.forward(&z, BnMode::Eval, keep).unwrap();
            let got = lean.forward(&z, None, keep).unwrap();
            assert_eq!(got.image.size(), [3, 3, 32, 32]);
            assert!(got.image.is_contiguous() && got.canvases.iter().all(|c| c.is_contiguous()));
            assert!(max_diff(&want.image, &got.image) < 1e-5);
        }
    }

    #[test]
    fn a_conditional_generator_draws_the_same_through_the_lean_path() {
        let cfg = ModelConfig { drawing_steps: 3, width_scale: 0.25, classes: 10, ..Default::default() };
        let g = perturbed_at(cfg);
        let lean = LeanGenerator::new(&g).unwrap();
        let z = Tensor::randn([7, 100], (Kind::Float, Device::Cpu));
        let y = Tensor::from_slice(&[3i64, 0, 9, 3, 5, 1, 7]);
        let _no_grad = tch::no_grad_guard();
        for keep in [false, true] {
            let want = g.forward_with(&z, Some(&y), BnMode::Eval, keep).unwrap();
            let got = lean.forward(&z, Some(&y), keep).unwrap();
            assert!(max_diff(&want.image, &got.image) < 1e-5, "keep={keep}");
        }
        // The class changes the image; an image depends on its own class only.
        let other = lean.forward(&z, Some(&Tensor::from_slice(&[4i64, 0, 9, 3, 5, 1, 7])), false).unwrap().image;
        let base = lean.forward(&z, Some(&y), false).unwrap().image;
        assert!(max_diff(&other.narrow(0, 0, 1), &base.narrow(0, 0, 1)) > 1e-3);
        assert!(max_diff(&other.narrow(0, 1, 6), &base.narrow(0, 1, 6)) < 1e-6);
        // Labels are required by a conditional generator and refused by an unconditional one.
        assert!(lean.forward(&z, None, false).is_err());
        let plain = LeanGenerator::new(&perturbed(2, 0.25)).unwrap();
        assert!(plain.forward(&z, Some(&y), false).is_err());
    }

    #[test]
    fn a_resizing_generator_draws_the_same_through_the_lean_path() {
        for (size, channels, scale) in [(28, 1, 0.25), (32, 3, 0.125)] {
            let cfg = ModelConfig {
                height: size,
                width: size,
                channels,
                drawing_steps: 3,
                width_scale: scale,
                upsampling: crate::config::Upsampling::Resize,
                ..Default::default()
            };
            let g = perturbed_at(cfg);
            assert!(g.dec_convs.iter().all(|c| c.kind == ConvKind::Resize && c.w.size()[2] == 5));
            let lean = LeanGenerator::new(&g).unwrap();
            // As the transposed convolutions they equal: prepacked, the last one as columns.
            let n = lean.dec_convs.len();
            assert!(lean.dec_convs[..n - 1].iter().all(|d| matches!(d.kernel, Kernel::Packed(_))));
            assert!(matches!(lean.dec_convs[n - 1].kernel, Kernel::Columns(_)));
            let z = Tensor::randn([4, 100], (Kind::Float, Device::Cpu));
            let _no_grad = tch::no_grad_guard();
            for keep in [false, true] {
                let want = g.forward(&z, BnMode::Eval, keep).unwrap();
                let got = lean.forward(&z, None, keep).unwrap();
                assert_eq!(got.image.size(), [4, channels as i64, size as i64, size as i64]);
                assert!(got.image.is_contiguous());
                assert!(max_diff(&want.image, &got.image) < 1e-5, "{size}x{size} keep={keep}");
                for (w, l) in want.deltas.iter().zip(&got.deltas) {
                    assert!(max_diff(w, l) < 1e-4, "{size}x{size}: a step differs");
                }
            }
        }
    }

    #[test]
    fn each_image_is_its_own_whatever_the_batch() {
        let g = perturbed(3, 0.25);
        let lean = LeanGenerator::new(&g).unwrap();
        let z = Tensor::randn([6, 100], (Kind::Float, Device::Cpu));
        let all = lean.forward(&z, None, false).unwrap().image;
        let one = lean.forward(&z.narrow(0, 4, 1), None, false).unwrap().image;
        assert!(max_diff(&all.narrow(0, 4, 1), &one) < 1e-6);
    }
}
