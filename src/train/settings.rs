//! A training run's settings (`TrainConfig`, `LrSchedule`, the defaults) and its reports
//! (`Progress`).

use crate::error::{Error, Result};
use crate::nn::precision::Precision;
pub use crate::train::augment::{Augment, DEFAULT_AUGMENT_FLOOR, DEFAULT_AUGMENT_SPEED, DEFAULT_AUGMENT_TARGET};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Steps to run in this call (continuing from the model's step counter); 0: use `epochs`.
    pub iterations: u64,
    /// Passes over the data when `iterations` is 0 (each pass is count / batch_size steps).
    pub epochs: u32,
    pub batch_size: u32,
    pub lr_g: f64,
    pub lr_d: f64,
    pub beta1_g: f64,
    pub beta2_g: f64,
    pub beta1_d: f64,
    pub beta2_d: f64,
    /// L2 weight decay on the discriminator's two linear layers (0: off).
    pub d_weight_decay: f64,
    /// Seed of minibatch order and latents.
    pub seed: u64,
    /// Steps between progress reports (and divergence checks); 0 reports only at the end.
    pub report_every: u64,
    /// Written atomically every `checkpoint_every` steps and at the end, when set.
    pub checkpoint_path: Option<PathBuf>,
    pub checkpoint_every: u64,
    /// Precision of the networks' forward and backward passes (weights, Adam state and losses
    /// stay float32 either way).
    pub precision: Precision,
    /// Decay of the averaged generator (crate::nn::ema), in [0, 1). Above 0, a model without an
    /// averaged generator gets one (a copy of the raw generator) and it follows the raw weights
    /// after every step; 0: no averaging in this run (a model that already has an averaged
    /// generator keeps it equal to the raw one, so it never goes stale).
    pub ema_decay: f64,
    /// The model step from which the average decays; before it the averaged generator copies
    /// the raw one (the early weights are far from where training goes).
    pub ema_start: u64,
    /// How the learning rates change with the step.
    pub lr_schedule: LrSchedule,
    /// On a CUDA device, capture the training step as one CUDA graph after a few eager steps
    /// and replay it (crate::train::step_graph): the same operations without their launch overhead.
    /// Off by default. Elsewhere, or if the capture fails, the steps run eagerly (logged).
    pub cuda_graph: bool,
    /// Augmentation of every image the discriminator sees, real and generated
    /// (crate::train::augment): off, a fixed probability, or adaptive (the default).
    pub augment: Augment,
    /// Adaptive augmentation: images over which p may move from 0 to 1.
    pub augment_speed: f64,
    /// Horizontal flips among the augmentations (not for digits or text). Off by default.
    pub augment_flip: bool,
    /// Weight gamma of the R1 penalty, gamma / 2 * E ||grad_x D(x)||^2 on real images
    /// (Mescheder et al. 2018); 0: off; `None` (the default): [`r1_gamma_for`] the image size.
    pub r1_gamma: Option<f64>,
    /// Steps between R1 penalties, each scaled by this (StyleGAN2's lazy regularisation).
    pub r1_every: u32,
    /// Weight of the canvas penalty, weight * mean(max(|c| - [`CANVAS_LIMIT`], 0)^2) on the
    /// generator's summed canvas c, added to its loss: it keeps the canvas where the sigmoid
    /// passes gradient back (crate::train::canvas_penalty); 0: off; `None` (the default):
    /// [`canvas_penalty_for`] the image size.
    ///
    /// [`CANVAS_LIMIT`]: crate::train::CANVAS_LIMIT
    pub canvas_penalty: Option<f64>,
    /// Per-step recomputation of the generator (crate::nn::recompute): the forward pass keeps
    /// only what one drawing step hands the next, and the backward pass recomputes each step,
    /// so training memory stays flat in the number of drawing steps T, for one more forward
    /// pass of the generator per step. The same gradients to float tolerance. Off by default.
    pub recompute: bool,
    /// Data-parallel training in this process group (crate::dist): `batch_size` is the global
    /// batch, each rank takes its share of every minibatch, gradients are averaged every step.
    /// `None`: one process.
    pub group: Option<Group>,
}

/// The process group of a run (settings compare groups by identity).
#[derive(Clone)]
pub struct Group(pub std::sync::Arc<crate::dist::ProcessGroup>);

impl PartialEq for Group {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A learning-rate schedule: the factor applied to `lr_g` and `lr_d` at each step, a function of
/// the step alone, so a resumed run follows the same schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LrSchedule {
    /// The same rates throughout.
    #[default]
    Constant,
    /// The authors' decay (Im et al.'s code): lr / (1 + epoch / 50).
    InverseEpoch,
    /// Linear decay to zero at the run's last step: lr (1 - step / end), `end` the step counter
    /// the run ends at (a run resumed with the remaining steps has the same end).
    Linear,
}

impl LrSchedule {
    /// The factor at model step `step` of a run that ends at step `end`, with `per_epoch` steps
    /// per epoch.
    pub fn factor(self, step: u64, end: u64, per_epoch: u64) -> f64 {
        match self {
            LrSchedule::Constant => 1.0,
            LrSchedule::InverseEpoch => 1.0 / (1.0 + (step / per_epoch.max(1)) as f64 / 50.0),
            LrSchedule::Linear if end == 0 => 1.0,
            LrSchedule::Linear => (end - step.min(end)) as f64 / end as f64,
        }
    }
}

/// Default learning rates of G and D (docs/RESULTS.md).
pub const DEFAULT_LR_G: f64 = 8e-4;
pub const DEFAULT_LR_D: f64 = 3.2e-3;

/// Default decay and start of the averaged generator (docs/RESULTS.md, "Generator averaging").
pub const DEFAULT_EMA_DECAY: f64 = 0.99;
pub const DEFAULT_EMA_START: u64 = 200;

/// Steps between two R1 penalties by default (docs/RESULTS.md, section 11).
pub const DEFAULT_R1_EVERY: u32 = 4;

/// The R1 weight a run uses when none is given, by image size (docs/RESULTS.md, sections 11,
/// 25 and 26): none for the 28x28 (MNIST) configuration, whose defaults were measured without
/// it; 1 for 32x32, where 10 blurs sets of flat colours (the shapes) and the photographs score
/// alike with either; 10 for 64x64 and larger, where 1 lets the discriminator get ahead and
/// the samples fall to fewer kinds. StyleGAN2 too grows gamma with the resolution.
pub fn r1_gamma_for(height: u32) -> f64 {
    if height <= 28 {
        0.0
    } else if height < 64 {
        1.0
    } else {
        10.0
    }
}

/// The canvas penalty's weight when none is given, by image size (docs/RESULTS.md, sections
/// 22-23): none for the 28x28 (MNIST) configuration, whose defaults were measured without it;
/// 1 for 32x32 and larger, where without it some seeds of small colour sets end with their
/// canvas saturated (pixels at 0 or 255 that no longer learn).
pub fn canvas_penalty_for(height: u32) -> f64 {
    if height <= 28 {
        0.0
    } else {
        1.0
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            iterations: 2000,
            epochs: 0,
            batch_size: 64,
            lr_g: DEFAULT_LR_G,
            lr_d: DEFAULT_LR_D,
            beta1_g: 0.5,
            beta2_g: 0.999,
            beta1_d: 0.5,
            beta2_d: 0.999,
            d_weight_decay: 0.0,
            seed: 0,
            report_every: 100,
            checkpoint_path: None,
            checkpoint_every: 0,
            precision: Precision::Fp32,
            ema_decay: DEFAULT_EMA_DECAY,
            ema_start: DEFAULT_EMA_START,
            lr_schedule: LrSchedule::Constant,
            cuda_graph: false,
            augment: Augment::DEFAULT,
            augment_speed: DEFAULT_AUGMENT_SPEED,
            augment_flip: false,
            r1_gamma: None,
            r1_every: DEFAULT_R1_EVERY,
            canvas_penalty: None,
            recompute: false,
            group: None,
        }
    }
}

/// A progress report: means over the steps since the previous report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// The model's step counter after the last completed step.
    pub step: u64,
    /// The step counter this run ends at (for a run that stopped early: where it would have
    /// ended).
    pub total_steps: u64,
    /// Epoch of the last completed step (step / batches per epoch).
    pub epoch: u64,
    /// The networks' classification losses (without the R1 and canvas penalties).
    pub d_loss: f64,
    pub g_loss: f64,
    /// Mean D(x) on real minibatches.
    pub d_real: f64,
    /// Mean D(G(z)) on generated minibatches (discriminator step).
    pub d_fake: f64,
    pub elapsed_s: f64,
    pub images_per_s: f64,
    /// Data-parallel runs: seconds of this run so far spent in the gradient all-reduces
    /// (waiting for the other processes included); 0 in one process.
    pub allreduce_s: f64,
    /// The discriminator wins outright (its loss averaged over the run's last 50 steps below
    /// 0.05; false before 50 steps): the generator gets no useful gradient.
    pub d_dominates: bool,
    /// The augmentation probability of the last step (crate::train::augment; 0 when off).
    pub augment_p: f64,
}

fn check_adam(name: &str, lr: f64, b1: f64, b2: f64) -> Result<()> {
    if !(lr.is_finite() && lr > 0.0) {
        return Err(Error::invalid(format!("learning rate of {name} is {lr}: must be > 0")));
    }
    for (what, b) in [("beta1", b1), ("beta2", b2)] {
        if !(0.0..1.0).contains(&b) {
            return Err(Error::invalid(format!("{what} of {name} is {b}: must be in [0, 1)")));
        }
    }
    Ok(())
}

impl TrainConfig {
    /// Training steps per epoch over `count` images.
    pub fn steps_per_epoch(&self, count: usize) -> u64 {
        (count / (self.batch_size.max(1) as usize)) as u64
    }

    /// The step counter a run from `first` over `count` images ends at: `iterations` steps, or
    /// `epochs` passes over the data. `InvalidArgument` when it passes the largest counter.
    pub fn run_end(&self, first: u64, count: usize) -> Result<u64> {
        let steps = if self.iterations > 0 {
            self.iterations
        } else {
            u64::from(self.epochs).saturating_mul(self.steps_per_epoch(count))
        };
        first.checked_add(steps).ok_or_else(|| {
            Error::invalid(format!(
                "the model's step counter {first} plus {steps} steps passes the largest step counter ({})",
                u64::MAX
            ))
        })
    }

    pub fn validate(&self) -> Result<()> {
        if self.batch_size < 2 {
            return Err(Error::invalid(format!(
                "batch_size is {}: must be at least 2 (batch norm needs batch statistics)",
                self.batch_size
            )));
        }
        if self.iterations == 0 && self.epochs == 0 {
            return Err(Error::invalid("iterations and epochs are both 0: nothing to train"));
        }
        check_adam("G", self.lr_g, self.beta1_g, self.beta2_g)?;
        check_adam("D", self.lr_d, self.beta1_d, self.beta2_d)?;
        if !(self.d_weight_decay.is_finite() && self.d_weight_decay >= 0.0) {
            return Err(Error::invalid(format!("d_weight_decay is {}: must be >= 0", self.d_weight_decay)));
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return Err(Error::invalid(format!("ema_decay is {}: must be in [0, 1)", self.ema_decay)));
        }
        crate::train::augment::validate(self.augment, self.augment_speed)?;
        if let Some(g) = self.r1_gamma.filter(|g| !(g.is_finite() && *g >= 0.0)) {
            return Err(Error::invalid(format!("r1_gamma is {g}: must be >= 0")));
        }
        if let Some(w) = self.canvas_penalty.filter(|w| !(w.is_finite() && *w >= 0.0)) {
            return Err(Error::invalid(format!("canvas_penalty is {w}: must be >= 0")));
        }
        if self.r1_gamma != Some(0.0) && self.r1_every == 0 {
            return Err(Error::invalid("r1_every is 0: must be at least 1 unless r1_gamma is 0"));
        }
        if let Some(Group(g)) = &self.group {
            let world = g.world_size();
            if self.batch_size % world != 0 || self.batch_size / world < 2 {
                return Err(Error::invalid(format!(
                    "batch_size {} over {world} processes: the global batch must split into equal shares of at \
                     least 2 images (batch norm needs batch statistics)",
                    self.batch_size
                )));
            }
        }
        Ok(())
    }
}
