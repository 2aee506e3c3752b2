//! The discriminator: 5x5 stride-2 convolutions, each with batch norm and ReLU (or leaky ReLU
//! 0.2), then Linear -> 100 with tanh and Linear -> 1 without bias. It returns the logit;
//! D(x) = sigmoid(logit) is the probability that x is real.

use crate::config::{Architecture, ModelConfig};
use crate::error::Result;
use crate::nn::layers::{BatchNorm, BnMode, Builder, Conv, Linear};
use tch::Tensor;

/// Leaky ReLU's slope for negative inputs (DCGAN's).
pub(crate) const LEAKY_SLOPE: f64 = 0.2;

pub(crate) struct Discriminator {
    convs: Vec<(Conv, BatchNorm)>,
    fc: Linear,
    out: Linear,
    leaky: bool,
}

impl Discriminator {
    pub(crate) fn new(b: &mut Builder, cfg: &ModelConfig, arch: &Architecture) -> Result<Self> {
        let mut convs = Vec::new();
        let mut c = cfg.channels as i64;
        let mut size = cfg.height as i64;
        for (i, &out) in arch.disc.iter().enumerate() {
            let conv = b.conv(&format!("d.conv{i}"), c, out, false, false)?;
            let bn = b.batch_norm(&format!("d.bn{i}"), out, 1)?;
            convs.push((conv, bn));
            c = out;
            size = (size + 1) / 2;
        }
        // Weight decay, when asked for, applies to these two linear layers (as in the official code).
        let fc = b.linear("d.fc", c * size * size, arch.disc_hidden, true, true)?;
        let out = b.linear("d.out", arch.disc_hidden, 1, false, true)?;
        Ok(Discriminator { convs, fc, out, leaky: cfg.leaky_relu })
    }

    /// Logits [N] for images [N, C, H, W] in [0, 1].
    pub(crate) fn forward(&self, x: &Tensor, mode: BnMode) -> Result<Tensor> {
        let mut x = x.shallow_clone();
        for (conv, bn) in &self.convs {
            x = bn.forward(&conv.forward(&x)?, mode, 0)?;
            x = if self.leaky { crate::sys::torch_ext::leaky_relu_(&mut x, LEAKY_SLOPE)? } else { x.f_relu_()? };
        }
        let h = self.fc.forward(&x.f_flatten(1, -1)?)?.f_tanh_()?;
        Ok(self.out.forward(&h)?.f_view([-1])?)
    }
}
