//! Adam (Kingma & Ba) with its state in plain tensors, so a checkpoint can hold it and training
//! resumes exactly. Optional L2 weight decay on the parameters marked for it.

use crate::error::{Error, Result};
use crate::nn::layers::Named;
use tch::{Kind, Tensor};

/// Adam's hyper-parameters: those of the fused kernel (`weight_decay` is the L2 coefficient
/// added to the gradient of parameters marked `decay`).
pub(crate) use crate::sys::torch_ext::AdamArgs as AdamSettings;

/// The checkpoint names of the first and second moments of parameter `param`.
pub(crate) fn moment_names(prefix: &str, param: &str) -> [String; 2] {
    [format!("{prefix}.m.{param}"), format!("{prefix}.v.{param}")]
}

/// Whether a checkpoint tensor name is a second moment (non-negative by construction).
pub(crate) fn is_second_moment(name: &str) -> bool {
    name.split_once('.').is_some_and(|(prefix, rest)| prefix.starts_with("adam_") && rest.starts_with("v."))
}

struct Slot {
    param: Tensor,
    m: Tensor,
    v: Tensor,
    decay: bool,
}

pub(crate) struct Adam {
    slots: Vec<Slot>,
    /// Updates applied so far (for the bias corrections).
    pub(crate) t: u64,
}

impl Adam {
    /// State for the given parameters (shallow handles: updates act on the networks' tensors).
    pub(crate) fn new(params: &[Named]) -> Result<Self> {
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
    pub(crate) fn state(&self, names: &[Named], prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.slots.len());
        for (s, n) in self.slots.iter().zip(names) {
            let [m, v] = moment_names(prefix, &n.name);
            out.push((m, s.m.shallow_clone()));
            out.push((v, s.v.shallow_clone()));
        }
        out
    }

    /// The gradients of `loss` with respect to this optimizer's parameters, in slot order
    /// (undefined for a parameter the loss does not depend on). They are returned, not
    /// accumulated into the parameters' `.grad`: nothing to zero, and no gradient is computed
    /// for tensors outside this optimizer (the other network).
    pub(crate) fn gradients(&self, loss: &Tensor) -> Result<Vec<Tensor>> {
        let params: Vec<&Tensor> = self.slots.iter().map(|s| &s.param).collect();
        Ok(Tensor::f_run_backward(&[loss], &params, false, false)?)
    }

    /// Every tensor this optimizer changes: the parameters and both moments.
    pub(crate) fn tensors(&self) -> impl Iterator<Item = &Tensor> {
        self.slots.iter().flat_map(|s| [&s.param, &s.m, &s.v])
    }

    /// One update from `grads` (as returned by `gradients`): libtorch's fused Adam kernel, one
    /// call for the parameters with weight decay and one for the rest. With `skip_if` (a float
    /// scalar on the parameters' device), the kernel leaves parameters and moments as they are
    /// when it holds 1.0 (decided on the device: no host read); `t` counts the call either way.
    pub(crate) fn step(&mut self, grads: &[Tensor], cfg: &AdamSettings, skip_if: Option<&Tensor>) -> Result<()> {
        let t = self.t.checked_add(1).ok_or_else(|| Error::invalid("Adam's update count is at its maximum"))?;
        let Some(device) = self.slots.first().map(|s| s.param.device()) else {
            self.t = t;
            return Ok(());
        };
        // The step count, read by the kernel for the bias corrections (f32 as torch.optim keeps it).
        let step = Tensor::f_full([], t as f64, (Kind::Float, device))?;
        self.apply(grads, cfg, &DeviceInputs { step: &step, lr: None, skip_if })?;
        self.t = t;
        Ok(())
    }

    /// The update of `step` with what the kernel reads on the device (the update count, and the
    /// rate where `inputs.lr` is set), without touching `t`: the form a captured training step
    /// records, whose inputs are refilled before each replay (the caller then counts `t`).
    ///
    /// Each gradient is made contiguous first, as its parameter is: autograd hands a gradient
    /// back in whatever layout the backward pass produced (a convolution weight used through a
    /// transposed view gets the view's), and the fused kernel walks parameter and gradient as
    /// flat arrays, so a gradient of other strides would update each element with another's
    /// gradient. (Gradients accumulated into `.grad` get the parameter's layout from autograd;
    /// these are returned instead.) For a contiguous gradient this is the same tensor.
    pub(crate) fn apply(&self, grads: &[Tensor], cfg: &AdamSettings, inputs: &DeviceInputs) -> Result<()> {
        let grads = grads
            .iter()
            .map(|g| Ok(if g.defined() { g.f_contiguous()? } else { g.shallow_clone() }))
            .collect::<Result<Vec<_>>>()?;
        let (mut plain, mut decayed) = (Vec::new(), Vec::new());
        for (s, g) in self.slots.iter().zip(&grads) {
            if g.defined() {
                if s.decay && cfg.weight_decay > 0.0 {
                    decayed.push((s, g));
                } else {
                    plain.push((s, g));
                }
            }
        }
        fused_adam(&plain, inputs, cfg, 0.0)?;
        fused_adam(&decayed, inputs, cfg, cfg.weight_decay)
    }
}

/// What an update reads on the device: the update count (float scalar), the learning rate
/// (float scalar; `None`: `AdamSettings::lr`), and the skip flag (see `Adam::step`).
pub(crate) struct DeviceInputs<'a> {
    pub(crate) step: &'a Tensor,
    pub(crate) lr: Option<&'a Tensor>,
    pub(crate) skip_if: Option<&'a Tensor>,
}

/// Adam on `group` (slot, gradient) in place: m <- b1 m + (1 - b1) g, v <- b2 v + (1 - b2) g^2,
/// p <- p - lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps), with g + weight_decay * p for g.
fn fused_adam(group: &[(&Slot, &Tensor)], inputs: &DeviceInputs, cfg: &AdamSettings, weight_decay: f64) -> Result<()> {
    if group.is_empty() {
        return Ok(());
    }
    let params: Vec<&Tensor> = group.iter().map(|(s, _)| &s.param).collect();
    let grads: Vec<&Tensor> = group.iter().map(|(_, g)| *g).collect();
    let ms: Vec<&Tensor> = group.iter().map(|(s, _)| &s.m).collect();
    let vs: Vec<&Tensor> = group.iter().map(|(s, _)| &s.v).collect();
    crate::sys::torch_ext::fused_adam_(
        &params,
        &grads,
        &ms,
        &vs,
        inputs.step,
        inputs.skip_if,
        inputs.lr,
        &AdamSettings { weight_decay, ..*cfg },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::Named;

    /// Three updates against the textbook formulas in f64, with and without weight decay.
    #[test]
    fn updates_follow_adam() {
        let init = [1.0f32, -2.0, 0.25, 3.0];
        let grads = [[0.5f32, 0.1, -0.3, 0.0], [-0.2, 0.4, 0.1, 1.0], [0.05, -0.6, 0.2, -0.5]];
        let cfg = AdamSettings { lr: 0.1, beta1: 0.5, beta2: 0.9, eps: 1e-8, weight_decay: 0.01 };
        for decay in [false, true] {
            let p = Tensor::from_slice(&init).set_requires_grad(true);
            let mut adam = Adam::new(&[Named { name: "p".into(), tensor: p.shallow_clone(), decay }]).unwrap();
            let (mut x, mut m, mut v) = (init.map(f64::from), [0f64; 4], [0f64; 4]);
            for (t, g) in grads.iter().enumerate() {
                adam.step(&[Tensor::from_slice(g)], &cfg, None).unwrap();
                let t = t as i32 + 1;
                for i in 0..4 {
                    let gi = g[i] as f64 + if decay { cfg.weight_decay * x[i] } else { 0.0 };
                    m[i] = cfg.beta1 * m[i] + (1.0 - cfg.beta1) * gi;
                    v[i] = cfg.beta2 * v[i] + (1.0 - cfg.beta2) * gi * gi;
                    let (bc1, bc2) = (1.0 - cfg.beta1.powi(t), 1.0 - cfg.beta2.powi(t));
                    x[i] -= cfg.lr / bc1 * m[i] / ((v[i] / bc2).sqrt() + cfg.eps);
                }
                let got = Vec::<f32>::try_from(&p.detach()).unwrap();
                for i in 0..4 {
                    assert!(
                        (got[i] as f64 - x[i]).abs() < 1e-5,
                        "decay {decay} step {t} [{i}]: {} vs {}",
                        got[i],
                        x[i]
                    );
                }
            }
            assert_eq!(adam.t, 3);
            // An undefined gradient (a parameter the loss does not reach) leaves it as it is.
            let before = Vec::<f32>::try_from(&p.detach()).unwrap();
            adam.step(&[Tensor::new()], &cfg, None).unwrap();
            assert_eq!(Vec::<f32>::try_from(&p.detach()).unwrap(), before);
        }
    }

    /// A convolution's weight held as [in, out, k, k] and used through a transposed view gets a
    /// gradient laid out as the view, not as the parameter (a convolution's backward writes
    /// [out, in, k, k]); each element must still be updated with its own gradient, as for the
    /// same values held as [out, in, k, k].
    #[test]
    fn a_gradient_with_other_strides_updates_each_element_with_its_own() {
        let cfg = AdamSettings { lr: 0.1, beta1: 0.5, beta2: 0.9, eps: 1e-8, weight_decay: 0.0 };
        tch::manual_seed(5);
        let x = Tensor::randn([2, 3, 6, 6], (Kind::Float, tch::Device::Cpu));
        let init = Tensor::randn([4, 3, 3, 3], (Kind::Float, tch::Device::Cpu)); // [out, in, k, k]
        let run = |held_transposed: bool| {
            let p = if held_transposed { init.transpose(0, 1).contiguous() } else { init.copy() };
            let p = p.set_requires_grad(true);
            let mut adam = Adam::new(&[Named { name: "p".into(), tensor: p.shallow_clone(), decay: false }]).unwrap();
            for _ in 0..3 {
                let w = if held_transposed { p.transpose(0, 1) } else { p.shallow_clone() };
                let loss = (x.conv2d::<&Tensor>(&w, None, [1, 1], [1, 1], [1, 1], 1) - 0.5).square().sum(Kind::Float);
                let g = adam.gradients(&loss).unwrap();
                assert_eq!(g[0].size(), p.size());
                adam.step(&g, &cfg, None).unwrap();
            }
            let p = p.detach();
            let p = if held_transposed { p.transpose(0, 1) } else { p };
            Vec::<f32>::try_from(&p.contiguous().flatten(0, -1)).unwrap()
        };
        let (direct, viewed) = (run(false), run(true));
        for (i, (a, b)) in direct.iter().zip(&viewed).enumerate() {
            assert!((a - b).abs() < 1e-5, "[{i}]: {a} held as used, {b} held transposed");
        }
    }

    /// The rate read from a tensor (as a captured step passes it) gives the same update as the
    /// rate passed by value, and `apply` leaves the update count to the caller.
    #[test]
    fn a_rate_on_the_device_updates_as_the_rate_by_value() {
        let cfg = AdamSettings { lr: 0.05, beta1: 0.5, beta2: 0.9, eps: 1e-8, weight_decay: 0.0 };
        let make = || {
            let p = Tensor::from_slice(&[1.0f32, -2.0, 0.5]).set_requires_grad(true);
            let adam = Adam::new(&[Named { name: "p".into(), tensor: p.shallow_clone(), decay: false }]).unwrap();
            (p, adam)
        };
        let (p, mut by_value) = make();
        let (q, on_device) = make();
        let lr = Tensor::from(0.05f32);
        for (i, g) in [[0.5f32, -0.25, 0.125], [0.25, 0.5, -1.0]].iter().enumerate() {
            by_value.step(&[Tensor::from_slice(g)], &cfg, None).unwrap();
            let step = Tensor::from((i + 1) as f32);
            let wrong = AdamSettings { lr: 9.0, ..cfg };
            on_device
                .apply(&[Tensor::from_slice(g)], &wrong, &DeviceInputs { step: &step, lr: Some(&lr), skip_if: None })
                .unwrap();
        }
        assert_eq!(by_value.t, 2);
        assert_eq!(on_device.t, 0);
        let a = Vec::<f32>::try_from(&p.detach()).unwrap();
        let b = Vec::<f32>::try_from(&q.detach()).unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
        }
        assert_ne!(a, vec![1.0, -2.0, 0.5]);
    }

    /// A skip flag of 1.0 leaves parameters and moments untouched (even with a NaN gradient);
    /// 0.0 updates as without one.
    #[test]
    fn a_set_skip_flag_leaves_everything_as_it_was() {
        let cfg = AdamSettings { lr: 0.1, beta1: 0.5, beta2: 0.9, eps: 1e-8, weight_decay: 0.0 };
        let make = || {
            let p = Tensor::from_slice(&[1.0f32, -2.0]).set_requires_grad(true);
            let adam = Adam::new(&[Named { name: "p".into(), tensor: p.shallow_clone(), decay: false }]).unwrap();
            (p, adam)
        };
        let values = |adam: &Adam| -> Vec<f32> {
            adam.tensors().flat_map(|t| Vec::<f32>::try_from(&t.detach()).unwrap()).collect()
        };
        let (_p, mut adam) = make();
        let before = values(&adam);
        adam.step(&[Tensor::from_slice(&[f32::NAN, 1.0])], &cfg, Some(&Tensor::from(1.0f32))).unwrap();
        assert_eq!(values(&adam), before);
        assert_eq!(adam.t, 1);
        let (_q, mut flagged) = make();
        let (_r, mut plain) = make();
        let g = [0.5f32, -0.25];
        flagged.step(&[Tensor::from_slice(&g)], &cfg, Some(&Tensor::from(0.0f32))).unwrap();
        plain.step(&[Tensor::from_slice(&g)], &cfg, None).unwrap();
        assert_eq!(values(&flagged), values(&plain));
        assert_ne!(values(&plain), before);
    }
}
