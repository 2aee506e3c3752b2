//! The discriminator: 5x5 stride-2 convolutions, each with batch norm and ReLU (or leaky ReLU
//! 0.2), then Linear -> 100 with tanh and Linear -> 1 without bias. It returns the logit;
//! D(x) = sigmoid(logit) is the probability that x is real.
//!
//! A class-conditional discriminator adds a projection term (Miyato & Koyama 2018): with phi(x)
//! its 100 features, D(x, y) = psi(phi(x)) + e_D(y) . phi(x), where e_D is a learned embedding
//! of the classes. An image given without its class (a conditional model judging another
//! model's samples, or a caller's images) is judged as a member of the class the projection
//! finds most real: max over y of the same sum.

use crate::config::{Architecture, ModelConfig};
use crate::error::Result;
use crate::nn::layers::{BatchNorm, BnMode, Builder, Conv, ConvKind, Embedding, Linear, INIT_STD};
use tch::Tensor;

/// Leaky ReLU's slope for negative inputs (DCGAN's).
pub(crate) const LEAKY_SLOPE: f64 = 0.2;

pub(crate) struct Discriminator {
    convs: Vec<(Conv, BatchNorm)>,
    fc: Linear,
    out: Linear,
    /// A conditional discriminator's class embedding [classes, 100].
    embed: Option<Embedding>,
    leaky: bool,
}

impl Discriminator {
    pub(crate) fn new(b: &mut Builder, cfg: &ModelConfig, arch: &Architecture) -> Result<Self> {
        let mut convs = Vec::new();
        let mut c = cfg.channels as i64;
        let mut size = cfg.height as i64;
        for (i, &out) in arch.disc.iter().enumerate() {
            let conv = b.conv(&format!("d.conv{i}"), c, out, ConvKind::Down, false)?;
            let bn = b.batch_norm(&format!("d.bn{i}"), out, 1)?;
            convs.push((conv, bn));
            c = out;
            size = (size + 1) / 2;
        }
        // Weight decay, when asked for, applies to these two linear layers (as in the official code).
        let fc = b.linear("d.fc", c * size * size, arch.disc_hidden, true, true)?;
        let out = b.linear("d.out", arch.disc_hidden, 1, false, true)?;
        // Initialised and decayed as the output layer it adds to.
        let embed = match cfg.classes {
            0 => None,
            k => Some(b.embedding("d.embed", k as i64, arch.disc_hidden, INIT_STD as f32, true)?),
        };
        Ok(Discriminator { convs, fc, out, embed, leaky: cfg.leaky_relu })
    }

    /// Logits [N] for images [N, C, H, W] in [0, 1], each judged as a member of its class
    /// (`labels`, int64 [N]) by a conditional discriminator. Unlabelled images (`None`) are
    /// judged as members of their most real class; an unconditional discriminator ignores
    /// labels (it judges every image alike).
    pub(crate) fn forward_with(&self, x: &Tensor, labels: Option<&Tensor>, mode: BnMode) -> Result<Tensor> {
        let mut x = x.shallow_clone();
        for (conv, bn) in &self.convs {
            x = bn.forward(&conv.forward(&x)?, mode, 0)?;
            x = if self.leaky { crate::sys::torch_ext::leaky_relu_(&mut x, LEAKY_SLOPE)? } else { x.f_relu_()? };
        }
        let h = self.fc.forward(&x.f_flatten(1, -1)?)?.f_tanh_()?;
        let psi = self.out.forward(&h)?.f_view([-1])?;
        let Some(e) = &self.embed else { return Ok(psi) };
        let projection = match labels {
            Some(y) => e.forward(y)?.f_to_kind(h.kind())?.f_mul(&h)?.f_sum_dim_intlist(1, false, h.kind())?,
            None => h.f_matmul(&e.w.f_to_kind(h.kind())?.f_tr()?)?.f_amax(1, false)?,
        };
        Ok(psi.f_add(&projection)?)
    }
}
