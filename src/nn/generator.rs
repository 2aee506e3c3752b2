//! The GRAN generator: a latent code drawn once per image, and T drawing steps with shared
//! weights. Step t decodes [h_z, h_c[t]] into an addition dC[t] to the canvas, and the encoder
//! reads dC[t] (this step's output, not the running canvas) into h_c[t+1]. The image is
//! sigmoid(sum_t dC[t]); T = 1 is the single-step DCGAN-style baseline.
//!
//! A class-conditional generator (`ModelConfig::classes` > 0) also takes each image's class y:
//! a learned embedding e(y) of h_z's size joins h_z, so step t decodes [h_z, e(y), h_c[t]]. The
//! per-image code [h_z, e(y)] is the same at every step; everything downstream of it (the
//! decoder, the encoder, recomputation, the lean form) sees one wider code.

use crate::config::{Architecture, ModelConfig, Upsampling};
use crate::error::Result;
use crate::nn::layers::{BatchNorm, BnMode, Builder, Conv, ConvKind, Embedding, Linear};
use tch::{Kind, Tensor};

/// The initial spread of the class embedding e(y): N(0, 0.1), a tenth of h_z's entries (of order
/// one after batch norm and tanh). Started at h_z's own scale, the class decides the decoder's
/// input as much as the latent does from the first step, and the averaged generator draws
/// prototypes of each class with little variety within it (docs/RESULTS.md, section 13).
pub(crate) const EMBED_STD: f32 = 0.1;

/// The fields are the crate's to read (crate::infer::lean folds them into an inference form).
pub struct Generator {
    pub(crate) drawing_steps: usize,
    pub(crate) hidden: i64,
    pub(crate) base: i64,
    pub(crate) c0: i64,
    pub(crate) hz_fc: Linear,
    pub(crate) hz_bn: BatchNorm,
    /// A conditional generator's class embedding [classes, hidden].
    pub(crate) embed: Option<Embedding>,
    pub(crate) dec_fc: Linear,
    pub(crate) dec_bn: BatchNorm,
    pub(crate) dec_convs: Vec<Conv>,
    /// Encoder convolutions, each with batch norm except the last (smallest resolution).
    pub(crate) enc_convs: Vec<(Conv, Option<BatchNorm>)>,
    pub(crate) enc_fc: Linear,
    pub(crate) enc_bn: BatchNorm,
}

/// What one forward pass produces.
pub struct Drawing {
    /// sigmoid(sum of all steps): [N, C, H, W] in [0, 1].
    pub image: Tensor,
    /// When asked for: the canvas after each step, sigmoid(sum_{s<=t} dC[s]), T tensors.
    pub canvases: Vec<Tensor>,
    /// When asked for: each step's raw output dC[t], T tensors.
    pub deltas: Vec<Tensor>,
}

impl Generator {
    pub(crate) fn new(b: &mut Builder, cfg: &ModelConfig, arch: &Architecture) -> Result<Self> {
        let steps = cfg.drawing_steps as usize;
        let hidden = cfg.hidden_dim as i64;
        let (base, c0) = (arch.base, arch.dec[0]);
        let hz_fc = b.linear("g.hz.fc", cfg.z_dim as i64, hidden, true, false)?;
        let hz_bn = b.batch_norm("g.hz.bn", hidden, 1)?;
        let embed = match cfg.classes {
            0 => None,
            k => Some(b.embedding("g.embed", k as i64, hidden, EMBED_STD, false)?),
        };
        let code = hidden * if embed.is_some() { 2 } else { 1 };
        let dec_fc = b.linear("g.dec.fc", code + hidden, c0 * base * base, true, false)?;
        let dec_bn = b.batch_norm("g.dec.bn", c0 * base * base, steps)?;
        let up = match cfg.upsampling {
            Upsampling::Transposed => ConvKind::Transposed,
            Upsampling::Resize => ConvKind::Resize,
        };
        let mut dec_convs = Vec::new();
        for (i, w) in arch.dec.windows(2).enumerate() {
            dec_convs.push(b.conv(&format!("g.dec.conv{i}"), w[0], w[1], up, true)?);
        }
        // The encoder mirrors the decoder: image channels -> ... -> c0 at the base size.
        let rev: Vec<i64> = arch.dec.iter().rev().copied().collect();
        let mut enc_convs = Vec::new();
        let n_enc = rev.len() - 1;
        for (i, w) in rev.windows(2).enumerate() {
            let last = i + 1 == n_enc;
            let conv = b.conv(&format!("g.enc.conv{i}"), w[0], w[1], ConvKind::Down, last)?;
            let bn = if last { None } else { Some(b.batch_norm(&format!("g.enc.bn{i}"), w[1], steps)?) };
            enc_convs.push((conv, bn));
        }
        let enc_fc = b.linear("g.enc.fc", c0 * base * base, hidden, true, false)?;
        let enc_bn = b.batch_norm("g.enc.bn", hidden, steps)?;
        Ok(Generator {
            drawing_steps: steps,
            hidden,
            base,
            c0,
            hz_fc,
            hz_bn,
            embed,
            dec_fc,
            dec_bn,
            dec_convs,
            enc_convs,
            enc_fc,
            enc_bn,
        })
    }

    /// Decoder g: [h_z, h_c] -> dC (linear output, the image's channels).
    ///
    /// Here and in the encoder the activations run in place (`relu_`, `tanh_`): they follow a
    /// batch norm, a convolution or a linear layer, whose backward passes need their inputs, not
    /// their outputs, so autograd keeps its graph and a step allocates one activation less per layer.
    pub(super) fn decode(&self, hz: &Tensor, hc: &Tensor, mode: BnMode, t: usize) -> Result<Tensor> {
        let x = Tensor::f_cat(&[hz, hc], 1)?;
        let x = self.dec_bn.forward(&self.dec_fc.forward(&x)?, mode, t)?.f_relu_()?;
        let mut x = x.f_view([-1, self.c0, self.base, self.base])?;
        let last = self.dec_convs.len() - 1;
        for (i, conv) in self.dec_convs.iter().enumerate() {
            x = conv.forward(&x)?;
            if i < last {
                x = x.f_relu_()?;
            }
        }
        Ok(x)
    }

    /// Encoder f: dC -> h_c for the next step.
    pub(super) fn encode(&self, dc: &Tensor, mode: BnMode, t: usize) -> Result<Tensor> {
        let mut x = dc.shallow_clone();
        for (conv, bn) in &self.enc_convs {
            x = conv.forward(&x)?;
            if let Some(bn) = bn {
                x = bn.forward(&x, mode, t)?;
            }
            x = x.f_relu_()?;
        }
        let x = self.enc_fc.forward(&x.f_flatten(1, -1)?)?;
        Ok(self.enc_bn.forward(&x, mode, t)?.f_tanh_()?)
    }

    /// Width of the per-image code the decoder reads besides h_c: h_z, and e(y) when
    /// conditional.
    pub(crate) fn code_width(&self) -> i64 {
        self.hidden * if self.embed.is_some() { 2 } else { 1 }
    }

    /// Whether the generator draws a given class.
    pub fn conditional(&self) -> bool {
        self.embed.is_some()
    }

    /// The per-image code, once per image: h_z from z [N, z_dim] ([N, hidden]), joined by e(y)
    /// for a conditional generator (`labels`: int64 [N] on z's device, in 0..classes).
    /// `InvalidArgument` when labels are missing for a conditional generator or given to an
    /// unconditional one.
    pub(crate) fn latent_code(&self, z: &Tensor, labels: Option<&Tensor>, mode: BnMode) -> Result<Tensor> {
        let hz = self.hz_bn.forward(&self.hz_fc.forward(z)?, mode, 0)?.f_tanh_()?;
        match (&self.embed, labels) {
            (None, None) => Ok(hz),
            (Some(e), Some(y)) => {
                let ey = e.forward(y)?.f_to_kind(hz.kind())?;
                Ok(Tensor::f_cat(&[&hz, &ey], 1)?)
            }
            (Some(_), None) => Err(crate::error::Error::invalid(
                "this model is class-conditional: say which class each image is to be",
            )),
            (None, Some(_)) => Err(crate::error::Error::invalid(
                "this model is unconditional: it draws no class (its configuration has classes 0)",
            )),
        }
    }

    /// Draws images from latents z [N, z_dim] (an unconditional generator). With
    /// `keep_canvases`, also returns the canvas after every step and each step's output (for the
    /// step-by-step pictures).
    pub fn forward(&self, z: &Tensor, mode: BnMode, keep_canvases: bool) -> Result<Drawing> {
        self.forward_with(z, None, mode, keep_canvases)
    }

    /// [`Generator::forward`] with each image's class (`labels`, int64 [N]) for a conditional
    /// generator; `None` for an unconditional one.
    pub fn forward_with(
        &self,
        z: &Tensor,
        labels: Option<&Tensor>,
        mode: BnMode,
        keep_canvases: bool,
    ) -> Result<Drawing> {
        Ok(self.draw(z, labels, mode, keep_canvases, false)?.0)
    }

    /// The training pass's images and, with `keep_sum`, the summed canvas they are the sigmoid
    /// of (for the canvas penalty: crate::train::canvas_penalty).
    pub(crate) fn forward_training(
        &self,
        z: &Tensor,
        labels: Option<&Tensor>,
        keep_sum: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (drawing, sum) = self.draw(z, labels, BnMode::Train, false, keep_sum)?;
        Ok((drawing.image, sum))
    }

    fn draw(
        &self,
        z: &Tensor,
        labels: Option<&Tensor>,
        mode: BnMode,
        keep_canvases: bool,
        keep_sum: bool,
    ) -> Result<(Drawing, Option<Tensor>)> {
        let n = z.size()[0];
        let hz = self.latent_code(z, labels, mode)?;
        let mut hc = Tensor::f_zeros([n, self.hidden], (z.kind(), z.device()))?;
        let mut sum: Option<Tensor> = None;
        let mut canvases = Vec::new();
        let mut deltas = Vec::new();
        for t in 0..self.drawing_steps {
            let dc = self.decode(&hz, &hc, mode, t)?;
            // h_c[T+1] is never used: the last step skips the encoder.
            if t + 1 < self.drawing_steps {
                hc = self.encode(&dc, mode, t)?;
            }
            if keep_canvases {
                deltas.push(dc.shallow_clone());
            }
            // The canvas accumulates in float32 even when the steps run in bfloat16 (autocast);
            // in float32 `to_kind` returns `dc` itself.
            let s = match sum {
                None => dc.f_to_kind(Kind::Float)?,
                Some(prev) => prev.f_add(&dc)?,
            };
            if keep_canvases {
                canvases.push(s.f_sigmoid()?);
            }
            sum = Some(s);
        }
        let sum = sum.expect("steps >= 1");
        let image = match canvases.last() {
            Some(last) => last.shallow_clone(),
            None if keep_sum => sum.f_sigmoid()?,
            // In place: nothing saved the sum for a backward pass (an addition's backward needs
            // no inputs, and the last step's output goes to no encoder).
            None => sum.shallow_clone().f_sigmoid_()?,
        };
        Ok((Drawing { image, canvases, deltas }, keep_sum.then_some(sum)))
    }
}
