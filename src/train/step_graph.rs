//! A training step captured as one CUDA graph (`TrainConfig::cuda_graph`): at batch 64 a 28x28
//! step is a few hundred small kernels, and on a GPU their launches, not their arithmetic, are
//! the cost. The step's operations (both forward and backward passes, the losses, both fused
//! Adam updates, the finiteness flags) are recorded once and replayed for every later step.
//!
//! What changes from step to step is read on the device from static buffers that are refilled
//! before each replay by copies and fills (no host read inside the captured region): the real
//! minibatch, the two latent batches, the two learning rates (schedules change them) and the two
//! Adam update counts (the bias corrections). The model's weights, moments and batch-norm
//! statistics are updated in place where they are, so the graph stays valid for the run (the
//! trainer holds the model's training guard: nothing replaces those tensors meanwhile). The
//! step's summary (losses, mean D outputs, finiteness) is the graph's output, read once after
//! each replay as in the eager step.
//!
//! Only CUDA devices capture (`CudaGraph::capture` refuses anything else before recording), and
//! the trainer runs the step eagerly wherever a graph is not used: on the CPU, with
//! `cuda_graph` off (the default), with `GRAN_CUDA_GRAPHS=0`, or after a capture that failed.

use crate::error::Result;
use crate::sys::cuda_graph::CudaGraph;
use crate::train::augment::{Ops, Params};
use tch::{Device, Kind, Tensor};

/// What a step reads on the device besides the model. The eager step builds them fresh each
/// step; the captured one owns them and refills them.
pub(crate) struct StepInputs {
    /// The real minibatch, float in [0, 1], [batch, C, H, W].
    pub(crate) real: Tensor,
    /// Latents of the discriminator's and the generator's updates, [batch, z_dim].
    pub(crate) zd: Tensor,
    pub(crate) zg: Tensor,
    /// Learning rates (float scalars); `None`: the rates in the step's `AdamSettings`.
    pub(crate) lr_d: Option<Tensor>,
    pub(crate) lr_g: Option<Tensor>,
    /// The update counts the two Adam updates use for their bias corrections (float scalars).
    pub(crate) t_d: Tensor,
    pub(crate) t_g: Tensor,
    /// Data-parallel runs: 1.0 when this rank asks the group to stop after the step (float
    /// scalar); `None` in one process.
    pub(crate) stop: Option<Tensor>,
    /// The augmentation parameters of D's real pass, D's generated pass and G's pass (indexed
    /// by `augment::Pass`); `None` in a run without augmentation.
    pub(crate) augment: Option<[Params; 3]>,
    /// The weight of this step's R1 penalty; `None` on steps without one (and in captured
    /// steps: a run with R1 runs eagerly).
    pub(crate) r1: Option<f64>,
    /// A conditional model's classes (int64): of the real minibatch, of D's generated
    /// minibatch and of G's (indexed by `StepLabels`' constants); `None` for an unconditional
    /// model.
    pub(crate) labels: Option<[Tensor; 3]>,
}

/// Indices into `StepInputs::labels`.
pub(crate) struct StepLabels;

impl StepLabels {
    pub(crate) const REAL: usize = 0;
    pub(crate) const D_FAKE: usize = 1;
    pub(crate) const G_FAKE: usize = 2;
}

/// The values of one step that change between replays.
pub(crate) struct StepValues<'a> {
    pub(crate) real: &'a Tensor,
    pub(crate) zd: &'a Tensor,
    pub(crate) zg: &'a Tensor,
    pub(crate) lr_d: f64,
    pub(crate) lr_g: f64,
    pub(crate) t_d: u64,
    pub(crate) t_g: u64,
    pub(crate) augment: Option<&'a [Params; 3]>,
    pub(crate) labels: Option<&'a [Tensor; 3]>,
}

/// A captured training step and its static inputs.
pub(crate) struct StepGraph {
    inputs: StepInputs,
    summary: Tensor,
    graph: CudaGraph,
}

impl StepGraph {
    /// Records `update` (the step's operations, given the static inputs; returns the summary
    /// tensor) into a graph on `device`, with static inputs shaped as `like`'s. Nothing is
    /// computed by the capture: the step then runs with `replay`. On a device other than CUDA,
    /// or a build without CUDA graphs, a `Device` error before `update` is called. The graph
    /// runs every augmentation of `ops` on every image (the parameters make an image's
    /// operations identities where it has none), since which images have one changes from
    /// step to step.
    pub(crate) fn capture(
        device: Device,
        like: &StepValues,
        ops: Ops,
        update: impl FnOnce(&StepInputs) -> Result<Tensor>,
    ) -> Result<StepGraph> {
        let scalar = || Tensor::f_zeros([], (Kind::Float, device));
        let inputs = StepInputs {
            real: like.real.f_to_device(device)?,
            zd: like.zd.f_to_device(device)?,
            zg: like.zg.f_to_device(device)?,
            lr_d: Some(scalar()?),
            lr_g: Some(scalar()?),
            t_d: scalar()?,
            t_g: scalar()?,
            stop: None,
            augment: match like.augment {
                Some(passes) => Some([
                    Params { values: passes[0].values.f_to_device(device)?, ops },
                    Params { values: passes[1].values.f_to_device(device)?, ops },
                    Params { values: passes[2].values.f_to_device(device)?, ops },
                ]),
                None => None,
            },
            r1: None,
            labels: match like.labels {
                Some(l) => Some([l[0].f_to_device(device)?, l[1].f_to_device(device)?, l[2].f_to_device(device)?]),
                None => None,
            },
        };
        let (graph, summary) = CudaGraph::capture(device, || update(&inputs))?;
        Ok(StepGraph { inputs, summary, graph })
    }

    /// Refills the static inputs with `v` and replays the step. Returns the step's summary (the
    /// graph's output buffer: read it before the next replay).
    pub(crate) fn replay(&self, v: &StepValues) -> Result<Tensor> {
        let i = &self.inputs;
        i.real.shallow_clone().f_copy_(v.real)?;
        i.zd.shallow_clone().f_copy_(v.zd)?;
        i.zg.shallow_clone().f_copy_(v.zg)?;
        if let (Some(stat), Some(now)) = (&i.augment, v.augment) {
            for (s, n) in stat.iter().zip(now) {
                s.values.shallow_clone().f_copy_(&n.values)?;
            }
        }
        if let (Some(stat), Some(now)) = (&i.labels, v.labels) {
            for (s, n) in stat.iter().zip(now) {
                s.shallow_clone().f_copy_(n)?;
            }
        }
        for (t, value) in [(&i.lr_d, v.lr_d), (&i.lr_g, v.lr_g)] {
            let _ = t.as_ref().expect("static rates").shallow_clone().f_fill_(value)?;
        }
        let _ = i.t_d.shallow_clone().f_fill_(v.t_d as f64)?;
        let _ = i.t_g.shallow_clone().f_fill_(v.t_g as f64)?;
        self.graph.replay()?;
        Ok(self.summary.shallow_clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On the CPU the capture is refused with a `Device` error and the step is never recorded.
    #[test]
    fn capture_is_refused_on_the_cpu() {
        let x = Tensor::zeros([2, 1, 4, 4], (Kind::Float, Device::Cpu));
        let z = Tensor::zeros([2, 3], (Kind::Float, Device::Cpu));
        let v =
            StepValues { real: &x, zd: &z, zg: &z, lr_d: 0.1, lr_g: 0.1, t_d: 1, t_g: 1, augment: None, labels: None };
        let mut called = false;
        let e = StepGraph::capture(Device::Cpu, &v, Ops::default(), |_| {
            called = true;
            Ok(Tensor::zeros([5], (Kind::Float, Device::Cpu)))
        })
        .err()
        .expect("refused");
        assert_eq!(e.kind, crate::error::ErrorKind::Device, "{}", e.message);
        assert!(!called);
    }
}
