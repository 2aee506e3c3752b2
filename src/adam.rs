//! Adam (Kingma & Ba) with its state in plain tensors, so a checkpoint can hold it and training
//! resumes exactly. Optional L2 weight decay on the parameters marked for it.

use crate::error::Result;
use crate::layers::Named;
use tch::Tensor;

/// Per-call settings of one optimizer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamSettings {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// L2 coefficient added to the gradient of parameters marked `decay`.
    pub weight_decay: f64,
}

struct Slot {
    param: Tensor,
    m: Tensor,
    v: Tensor,
    decay: bool,
}

pub struct Adam {
    slots: Vec<Slot>,
    /// Updates applied so far (for the bias corrections).
    pub t: u64,
}

impl Adam {
    /// State for the given parameters (shallow handles: updates act on the networks' tensors).
    pub fn new(params: &[Named]) -> Result<Self> {
        let slots = params
            .iter()
            .map(|p| {
                Ok(Slot {
                    param: p.tensor.shallow_clone(),
                    m: p.tensor.f_zeros_like()?,
                    v: p.tensor.f_zeros_like()?,
                    decay: p.decay,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Adam { slots, t: 0 })
    }

    /// The moment tensors in parameter order, named by `prefix`, for checkpoints.
    pub fn state(&self, names: &[Named], prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.slots.len());
        for (s, n) in self.slots.iter().zip(names) {
            out.push((format!("{prefix}.m.{}", n.name), s.m.shallow_clone()));
            out.push((format!("{prefix}.v.{}", n.name), s.v.shallow_clone()));
        }
        out
    }

    /// The gradients of `loss` with respect to this optimizer's parameters, in slot order
    /// (undefined for a parameter the loss does not depend on). They are returned, not
    /// accumulated into the parameters' `.grad`: nothing to zero, and no gradient is computed
    /// for tensors outside this optimizer (the other network).
    pub fn gradients(&self, loss: &Tensor) -> Result<Vec<Tensor>> {
        let params: Vec<&Tensor> = self.slots.iter().map(|s| &s.param).collect();
        Ok(Tensor::f_run_backward(&[loss], &params, false, false)?)
    }

    /// Every tensor this optimizer changes: the parameters and both moments.
    pub fn tensors(&self) -> impl Iterator<Item = &Tensor> {
        self.slots.iter().flat_map(|s| [&s.param, &s.m, &s.v])
    }

    /// One update from `grads` (as returned by `gradients`).
    pub fn step(&mut self, grads: &[Tensor], cfg: &AdamSettings) -> Result<()> {
        self.t += 1;
        let bc1 = 1.0 - cfg.beta1.powi(self.t.min(i32::MAX as u64) as i32);
        let bc2 = 1.0 - cfg.beta2.powi(self.t.min(i32::MAX as u64) as i32);
        let step_size = cfg.lr / bc1;
        let bc2_sqrt = bc2.sqrt();
        let _guard = tch::no_grad_guard();
        for (s, g) in self.slots.iter_mut().zip(grads) {
            if !g.defined() {
                continue;
            }
            let mut g = g.shallow_clone();
            if s.decay && cfg.weight_decay > 0.0 {
                g = g.f_add(&s.param.f_mul_scalar(cfg.weight_decay)?)?;
            }
            // m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
            let _ = s.m.f_lerp_(&g, 1.0 - cfg.beta1)?;
            let _ = s.v.f_lerp_(&g.f_mul(&g)?, 1.0 - cfg.beta2)?;
            // p <- p - step_size * m / (sqrt(v) / sqrt(bc2) + eps), with the step size and its
            // sign folded into the denominator: p + m / d, d = -(sqrt(v) / sqrt(bc2) + eps) / step_size.
            let mut denom = s.v.f_sqrt()?;
            let _ = denom.f_mul_scalar_(-1.0 / (bc2_sqrt * step_size))?;
            let _ = denom.f_add_scalar_(-cfg.eps / step_size)?;
            let mut p = s.param.shallow_clone();
            let _ = p.f_addcdiv_(&s.m, &denom)?;
        }
        Ok(())
    }
}
