//! The generator prepared for drawing, and the drawing itself.
//!
//! Batch norm runs in eval mode, so every one is a fixed affine map per channel and per drawing
//! step; they are folded once at load as libgran's lean path folds them (src/infer/lean.rs):
//! h_z's into its linear layer, the others into a per-step (scale, shift) that also takes in
//! the preceding layer's bias. The decoder's input `[h_z, h_c[t]]` is never concatenated: its
//! h_z half is multiplied once per image, and step 0's h_c (zero) not at all.
//!
//! A class-conditional generator decodes `[h_z, e(y), h_c[t]]`, e(y) row y of a learned class
//! embedding. Its part of the decoder's pre-activation, e(y) W_e, depends on the class alone: it
//! is worked out once per class at load (`dec_class`) and added to h_z's part by index, as
//! libgran's lean path does.
//!
//! Step t decodes into dC[t]; the encoder reads dC[t] into h_c[t+1]; the canvas after step t is
//! sigmoid(dC[0] + ... + dC[t]), and the image is the last canvas.
//!
//! Activations are channels-last (`[N][H][W][C]`, crate::kernels): the linear layers' features
//! are reordered at load (libgran's feature `c * base^2 + p` becomes `p * c0 + c`), so the
//! decoder's linear layer writes the first feature map in that layout, and the encoder's reads
//! the last one, with no transposition while drawing.

use super::config::{Config, Upsampling, RESIZE_KERNEL};
use crate::error::{format, invalid, zeros, Result};
use crate::kernels::{conv5x5_s2, deconv_s2, gemm, reorder_conv_weight, DeconvWeight, Geometry, Mat, MatMut};
use std::collections::HashMap;

const BN_EPS: f32 = 1e-5;

/// max(x, 0) as a comparison and a select: `f32::max` is a libm call in WebAssembly (its NaN
/// rule differs from the instruction's), and a select vectorises everywhere.
#[inline]
fn relu(x: f32) -> f32 {
    if x > 0.0 {
        x
    } else {
        0.0
    }
}

/// A per-channel affine map: `x * scale + shift`.
struct Affine {
    scale: Vec<f32>,
    shift: Vec<f32>,
}

/// One decoder layer, doubling the size (a transposed convolution, or a resizing layer as the
/// transposed convolution it equals), and its bias `[cout]`.
struct Deconv {
    weight: DeconvWeight,
    bias: Vec<f32>,
}

/// One encoder convolution: weight `[cout][ky][kx][cin]`; per step its batch norm (with the
/// convolution's bias), or for the last one (no batch norm) its bias.
struct EncConv {
    cin: usize,
    cout: usize,
    weight: Vec<f32>,
    post: EncPost,
}

enum EncPost {
    PerStep(Vec<Affine>),
    Bias(Vec<f32>),
}

/// A generator's weights, folded for drawing.
pub(crate) struct Generator {
    steps: usize,
    z_dim: usize,
    hidden: usize,
    base: usize,
    c0: usize,
    channels: usize,
    size: usize,
    /// h_z's linear layer with its batch norm folded in: `[hidden, z_dim]`, `[hidden]`.
    hz_w: Vec<f32>,
    hz_b: Vec<f32>,
    /// The decoder's linear layer split by input, each part transposed: `[hidden, features]`
    /// (features channels-last).
    dec_wz: Vec<f32>,
    dec_wc: Vec<f32>,
    /// Classes of a conditional generator (0: unconditional), and each one's decoder term
    /// e(y) W_e: `[classes, features]` (features channels-last; empty when unconditional).
    classes: usize,
    dec_class: Vec<f32>,
    /// Per step: the decoder's batch norm with the linear layer's bias.
    dec_affine: Vec<Affine>,
    dec_convs: Vec<Deconv>,
    enc_convs: Vec<EncConv>,
    /// `[hidden, features]` (features channels-last).
    enc_fc_w: Vec<f32>,
    /// Per step (0 .. T-1): the encoder's final batch norm with its linear layer's bias.
    enc_affine: Vec<Affine>,
}

/// Tensors by name, taken out as they are used.
struct Tensors(HashMap<String, Vec<f32>>);

impl Tensors {
    fn take(&mut self, name: &str) -> Result<Vec<f32>> {
        self.0.remove(name).ok_or_else(|| format(format!("tensor '{name}' is missing")))
    }

    /// Batch norm `name` at `slot` in eval mode as (scale, shift), taking in `bias` when given:
    /// `bn(x + bias) = x * scale + shift`.
    fn folded(&self, name: &str, slot: usize, bias: Option<&[f32]>) -> Result<Affine> {
        let get = |n: String| self.0.get(&n).ok_or_else(|| format(format!("tensor '{n}' is missing")));
        let (gamma, beta) = (get(format!("{name}.weight"))?, get(format!("{name}.bias"))?);
        let (mean, var) = (get(format!("{name}.running_mean.{slot}"))?, get(format!("{name}.running_var.{slot}"))?);
        let scale: Vec<f32> = gamma.iter().zip(var).map(|(g, v)| g / (v + BN_EPS).sqrt()).collect();
        let shift = (0..scale.len())
            .map(|i| {
                let centre = bias.map_or(0.0, |b| b[i]) - mean[i];
                beta[i] + centre * scale[i]
            })
            .collect();
        Ok(Affine { scale, shift })
    }
}

impl Generator {
    /// Folds the tensors of a generator (named as libgran names them, "g.*", shapes already
    /// checked against `config`).
    pub(crate) fn new(config: &Config, tensors: HashMap<String, Vec<f32>>) -> Result<Generator> {
        let mut t = Tensors(tensors);
        let arch = config.architecture();
        let (steps, z_dim, hidden) = (config.steps as usize, config.z_dim as usize, config.hidden_dim as usize);
        let (base, c0) = (arch.base, arch.dec[0]);
        let features = c0 * base * base;

        // libgran's feature c * base^2 + p is feature p * c0 + c here.
        let bb = base * base;
        let perm: Vec<usize> = (0..features).map(|f| (f % bb) * c0 + f / bb).collect();
        let hz_bias = t.take("g.hz.fc.bias")?;
        let hz = t.folded("g.hz.bn", 0, Some(&hz_bias))?;
        let mut hz_w = t.take("g.hz.fc.weight")?;
        for (row, s) in hz_w.chunks_exact_mut(z_dim).zip(&hz.scale) {
            row.iter_mut().for_each(|v| *v *= s);
        }
        let dec_w = t.take("g.dec.fc.weight")?;
        let dec_b = t.take("g.dec.fc.bias")?;
        // Its input columns: [h_z, h_c], or [h_z, e(y), h_c] for a conditional generator.
        let classes = config.classes as usize;
        let inputs = if classes > 0 { 3 * hidden } else { 2 * hidden };
        // One part transposed to [hidden, features'], in tiles (both sides stay in cache).
        let part = |offset: usize| -> Result<Vec<f32>> {
            let mut w = zeros(features * hidden, "the decoder's weights")?;
            const TILE: usize = 32;
            for f0 in (0..features).step_by(TILE) {
                for j0 in (0..hidden).step_by(TILE) {
                    for f in f0..(f0 + TILE).min(features) {
                        let (row, to) = (&dec_w[f * inputs + offset..][..hidden], perm[f]);
                        for j in j0..(j0 + TILE).min(hidden) {
                            w[j * features + to] = row[j];
                        }
                    }
                }
            }
            Ok(w)
        };
        let (wz, wc) = (part(0)?, part(inputs - hidden)?);
        let dec_class = match classes {
            0 => Vec::new(),
            _ => class_terms(&t.take("g.embed.weight")?, &part(hidden)?, classes, hidden, features)?,
        };
        let permuted = |a: Affine| {
            let (mut scale, mut shift) = (vec![0f32; features], vec![0f32; features]);
            for f in 0..features {
                (scale[perm[f]], shift[perm[f]]) = (a.scale[f], a.shift[f]);
            }
            Affine { scale, shift }
        };
        let dec_affine =
            (0..steps).map(|s| t.folded("g.dec.bn", s, Some(&dec_b)).map(permuted)).collect::<Result<Vec<_>>>()?;
        let mut dec_convs = Vec::new();
        let mut side = base;
        for (i, w) in arch.dec.windows(2).enumerate() {
            let raw = t.take(&format!("g.dec.conv{i}.weight"))?;
            let weight = match config.upsampling {
                Upsampling::Transposed => DeconvWeight::new(&raw, w[0], w[1], side, side)?,
                Upsampling::Resize => DeconvWeight::resize(&raw, w[0], w[1], RESIZE_KERNEL, side, side)?,
            };
            let bias = t.take(&format!("g.dec.conv{i}.bias"))?;
            dec_convs.push(Deconv { weight, bias });
            side *= 2;
        }
        let rev: Vec<usize> = arch.dec.iter().rev().copied().collect();
        let n_enc = rev.len() - 1;
        let mut enc_convs = Vec::new();
        for (i, w) in rev.windows(2).enumerate() {
            // [cout, cin, 5, 5] as [cout][ky][kx][cin].
            let raw = t.take(&format!("g.enc.conv{i}.weight"))?;
            let (cin, cout) = (w[0], w[1]);
            let weight = reorder_conv_weight(&raw, cin, cout)?;
            let post = if i + 1 == n_enc {
                EncPost::Bias(t.take(&format!("g.enc.conv{i}.bias"))?)
            } else {
                // The last step skips the encoder: statistics for steps 0 .. T-1 only.
                EncPost::PerStep(
                    (0..steps - 1).map(|s| t.folded(&format!("g.enc.bn{i}"), s, None)).collect::<Result<_>>()?,
                )
            };
            enc_convs.push(EncConv { cin: w[0], cout: w[1], weight, post });
        }
        let raw = t.take("g.enc.fc.weight")?;
        let mut enc_fc_w = zeros(raw.len(), "the encoder's weights")?;
        for (dst, src) in enc_fc_w.chunks_exact_mut(features).zip(raw.chunks_exact(features)) {
            for (&to, &v) in perm.iter().zip(src) {
                dst[to] = v;
            }
        }
        let enc_b = t.take("g.enc.fc.bias")?;
        let enc_affine = (0..steps - 1).map(|s| t.folded("g.enc.bn", s, Some(&enc_b))).collect::<Result<Vec<_>>>()?;
        Ok(Generator {
            steps,
            z_dim,
            hidden,
            base,
            c0,
            channels: config.channels as usize,
            size: config.height as usize,
            hz_w,
            hz_b: hz.shift,
            dec_wz: wz,
            dec_wc: wc,
            classes,
            dec_class,
            dec_affine,
            dec_convs,
            enc_convs,
            enc_fc_w,
            enc_affine,
        })
    }

    pub(crate) fn steps(&self) -> usize {
        self.steps
    }

    pub(crate) fn z_dim(&self) -> usize {
        self.z_dim
    }

    /// Values of one image.
    pub(crate) fn image_len(&self) -> usize {
        self.channels * self.size * self.size
    }

    /// The floats of activations one image needs at most, in any layer: what bounds a chunk.
    pub(crate) fn largest_activation(&self) -> usize {
        let mut side = self.base;
        let mut most = self.c0 * side * side;
        for d in &self.dec_convs {
            side *= 2;
            most = most.max(d.weight.cout * side * side);
        }
        most
    }

    /// Draws `n` images from latents `z` (`n * z_dim`, row-major) and, for a conditional
    /// generator, classes `classes` (`n` of them; `None` for an unconditional one, else
    /// INVALID_ARGUMENT before anything is drawn). `canvas(t, sum)` receives the sum of the
    /// steps so far after step t (`[n][H][W][C]`, before the sigmoid) when `every_step`, else
    /// only after the last step.
    pub(crate) fn draw(
        &self,
        z: &[f32],
        classes: Option<&[u32]>,
        n: usize,
        every_step: bool,
        canvas: &mut dyn FnMut(usize, &[f32]) -> Result<()>,
        s: &mut Scratch,
    ) -> Result<()> {
        let (h, f) = (self.hidden, self.c0 * self.base * self.base);
        let plane = self.size * self.size;
        self.check_classes(classes, n)?;
        s.reserve(self, n)?;
        // h_z = tanh(W z + b), then its part of the decoder's input, u = h_z W_z.
        gemm(
            Mat::rows(z, n, self.z_dim),
            Mat::transposed(&self.hz_w, self.z_dim, h),
            MatMut::rows(&mut s.hz[..n * h], n, h),
            false,
        );
        for (row, _) in s.hz[..n * h].chunks_exact_mut(h).zip(0..n) {
            for (v, b) in row.iter_mut().zip(&self.hz_b) {
                *v = (*v + b).tanh();
            }
        }
        gemm(
            Mat::rows(&s.hz[..n * h], n, h),
            Mat::rows(&self.dec_wz, h, f),
            MatMut::rows(&mut s.u[..n * f], n, f),
            false,
        );
        // A conditional generator's e(y) W_e, by class.
        for (row, &y) in s.u[..n * f].chunks_exact_mut(f).zip(classes.unwrap_or_default()) {
            let term = &self.dec_class[y as usize * f..][..f];
            row.iter_mut().zip(term).for_each(|(v, c)| *v += c);
        }
        let sum_len = self.channels * n * plane;
        for t in 0..self.steps {
            // The decoder's linear layer: u (+ h_c W_c), its batch norm, ReLU, into [c0][n][b][b].
            s.pre[..n * f].copy_from_slice(&s.u[..n * f]);
            if t > 0 {
                gemm(
                    Mat::rows(&s.hc[..n * h], n, h),
                    Mat::rows(&self.dec_wc, h, f),
                    MatMut::rows(&mut s.pre[..n * f], n, f),
                    true,
                );
            }
            let a = &self.dec_affine[t];
            for (dst, src) in s.act_a[..n * f].chunks_exact_mut(f).zip(s.pre[..n * f].chunks_exact(f)) {
                for (((d, &v), &sc), &sh) in dst.iter_mut().zip(src).zip(&a.scale).zip(&a.shift) {
                    *d = relu(v * sc + sh);
                }
            }
            // The decoder's layers, ReLU after all but the last.
            let mut g = Geometry { n, h: self.base, w: self.base };
            let last = self.dec_convs.len() - 1;
            for (i, d) in self.dec_convs.iter().enumerate() {
                let (x, y) = (&s.act_a, &mut s.act_b);
                g = deconv_s2(&x[..d.weight.cin * g.pixels()], g, &d.weight, &d.bias, y, &mut s.cols)?;
                if i < last {
                    y[..d.weight.cout * g.pixels()].iter_mut().for_each(|v| *v = relu(*v));
                }
                std::mem::swap(&mut s.act_a, &mut s.act_b);
            }
            // act_a holds dC[t] ([n][H][W][C]): add it to the canvas.
            let dc = &s.act_a[..sum_len];
            if t == 0 {
                s.sum[..sum_len].copy_from_slice(dc);
            } else {
                s.sum[..sum_len].iter_mut().zip(dc).for_each(|(c, d)| *c += d);
            }
            if every_step || t + 1 == self.steps {
                canvas(t, &s.sum[..sum_len])?;
            }
            if t + 1 < self.steps {
                self.encode(n, t, s)?;
            }
        }
        Ok(())
    }

    /// INVALID_ARGUMENT unless `classes` fits this generator for `n` images: none for an
    /// unconditional one; for a conditional one, `n` classes, each in range.
    fn check_classes(&self, classes: Option<&[u32]>, n: usize) -> Result<()> {
        match (self.classes, classes) {
            (0, None) => Ok(()),
            (0, Some(_)) => {
                Err(invalid("this model is unconditional (its configuration has classes 0): it draws no class"))
            }
            (_, None) => Err(invalid("this model is class-conditional: say which class each image is to be")),
            (k, Some(ys)) if ys.len() != n || ys.iter().any(|&y| y as usize >= k) => {
                Err(invalid(format!("{} classes for {n} images: one per image, each in 0..{k}", ys.len())))
            }
            _ => Ok(()),
        }
    }

    /// h_c[t+1] from dC[t] (in `s.act_a`), into `s.hc`.
    fn encode(&self, n: usize, t: usize, s: &mut Scratch) -> Result<()> {
        let mut g = Geometry { n, h: self.size, w: self.size };
        for c in &self.enc_convs {
            let (x, y) = (&s.act_a, &mut s.act_b);
            g = conv5x5_s2(&x[..c.cin * g.pixels()], c.cin, g, &c.weight, c.cout, y, &mut s.cols)?;
            let (scale, shift): (&[f32], &[f32]) = match &c.post {
                EncPost::PerStep(a) => (&a[t].scale, &a[t].shift),
                EncPost::Bias(b) => (&s.ones[..c.cout], b),
            };
            for px in y[..c.cout * g.pixels()].chunks_exact_mut(c.cout) {
                for ((v, &sc), &sh) in px.iter_mut().zip(scale).zip(shift) {
                    *v = relu(*v * sc + sh);
                }
            }
            std::mem::swap(&mut s.act_a, &mut s.act_b);
        }
        // act_a is [n][base][base][c0]: the encoder's linear layer's input as it is.
        let (h, f) = (self.hidden, self.c0 * self.base * self.base);
        gemm(
            Mat::rows(&s.act_a[..n * f], n, f),
            Mat::transposed(&self.enc_fc_w, f, h),
            MatMut::rows(&mut s.hc[..n * h], n, h),
            false,
        );
        let a = &self.enc_affine[t];
        for row in s.hc[..n * h].chunks_exact_mut(h) {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (*v * a.scale[j] + a.shift[j]).tanh();
            }
        }
        Ok(())
    }
}

/// Each class's decoder term: `embedding` `[classes, hidden]` times the decoder's e(y) part
/// `w_e` (`[hidden, features]`, transposed and reordered as the other parts): `[classes,
/// features]`.
fn class_terms(embedding: &[f32], w_e: &[f32], classes: usize, hidden: usize, features: usize) -> Result<Vec<f32>> {
    let mut out = zeros(classes * features, "the decoder's class terms")?;
    gemm(
        Mat::rows(embedding, classes, hidden),
        Mat::rows(w_e, hidden, features),
        MatMut::rows(&mut out, classes, features),
        false,
    );
    Ok(out)
}

/// Working memory of one drawing thread, grown to the largest chunk it has drawn.
#[derive(Default)]
pub(crate) struct Scratch {
    hz: Vec<f32>,
    u: Vec<f32>,
    pre: Vec<f32>,
    hc: Vec<f32>,
    act_a: Vec<f32>,
    act_b: Vec<f32>,
    sum: Vec<f32>,
    cols: Vec<f32>,
    /// 1.0 for every channel: the scale of a convolution followed by its bias alone.
    ones: Vec<f32>,
}

impl Scratch {
    fn reserve(&mut self, g: &Generator, n: usize) -> Result<()> {
        let grow = |v: &mut Vec<f32>, len: usize| -> Result<()> {
            if v.len() < len {
                *v = zeros(len, "the drawing's working memory")?;
            }
            Ok(())
        };
        let f = g.c0 * g.base * g.base;
        grow(&mut self.hz, n * g.hidden)?;
        grow(&mut self.u, n * f)?;
        grow(&mut self.pre, n * f)?;
        grow(&mut self.hc, n * g.hidden)?;
        grow(&mut self.act_a, n * g.largest_activation())?;
        grow(&mut self.act_b, n * g.largest_activation())?;
        grow(&mut self.sum, n * g.image_len())?;
        let widest = g.enc_convs.iter().map(|c| c.cout).max().unwrap_or(0);
        if self.ones.len() < widest {
            self.ones = vec![1.0; widest];
        }
        Ok(())
    }
}
