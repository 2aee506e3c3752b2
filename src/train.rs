//! Adversarial training: per minibatch one discriminator update, then one generator update, each
//! with fresh latents; non-saturating losses computed from logits; Adam for each network.
//!
//! All randomness comes from (train seed, step): the minibatch of step s is part of a fixed
//! permutation of epoch s / batches_per_epoch, and the latents of step s are their own stream. A
//! run saved at step N, loaded and continued therefore gives exactly the weights of a run that
//! never stopped.

use crate::adam::AdamSettings;
use crate::data::Dataset;
use crate::error::{Error, ErrorKind, Result};
use crate::layers::BnMode;
use crate::log::{log, Level};
use crate::model::Model;
use crate::precision::Precision;
use crate::rng::{stream, Stream};
use crate::torch_ext::non_finite;
use std::path::PathBuf;
use std::time::Instant;
use tch::{Kind, Reduction, Tensor};

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
    /// Decay of the averaged generator (crate::ema), in [0, 1). Above 0, a model without an
    /// averaged generator gets one (a copy of the raw generator) and it follows the raw weights
    /// after every step; 0: no averaging in this run (a model that already has an averaged
    /// generator keeps it equal to the raw one, so it never goes stale).
    pub ema_decay: f64,
    /// The model step from which the average decays; before it the averaged generator copies
    /// the raw one (the early weights are far from where training goes).
    pub ema_start: u64,
    /// How the learning rates change with the step.
    pub lr_schedule: LrSchedule,
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

/// Default decay and start of the averaged generator (docs/RESULTS.md, "Generator averaging").
pub const DEFAULT_EMA_DECAY: f64 = 0.999;
pub const DEFAULT_EMA_START: u64 = 500;

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            iterations: 2000,
            epochs: 0,
            batch_size: 64,
            lr_g: 2e-4,
            lr_d: 4e-4,
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
        }
    }
}

/// A progress report: means over the steps since the previous report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// The model's step counter after the last completed step.
    pub step: u64,
    /// The step counter this run ends at.
    pub total_steps: u64,
    /// Epoch of the last completed step (step / batches per epoch).
    pub epoch: u64,
    pub d_loss: f64,
    pub g_loss: f64,
    /// Mean D(x) on real minibatches.
    pub d_real: f64,
    /// Mean D(G(z)) on generated minibatches (discriminator step).
    pub d_fake: f64,
    pub elapsed_s: f64,
    pub images_per_s: f64,
    /// The discriminator wins outright (D loss near 0): the generator gets no useful gradient.
    pub d_dominates: bool,
}

/// Mean D loss below which the discriminator is said to win outright.
const D_WINS_LOSS: f64 = 0.05;

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
        Ok(())
    }
}

/// Running sums between two reports.
#[derive(Default)]
struct Window {
    steps: u64,
    sums: [f64; 4],
    started: Option<Instant>,
}

/// Trains `model` on `data`. `on_progress` is called every `report_every` steps and after the
/// last one, with no lock held (it may sample from the model); returning `true` stops the run
/// with `Cancelled`. Returns the final report.
pub fn train(
    model: &Model,
    data: &Dataset,
    cfg: &TrainConfig,
    on_progress: &mut dyn FnMut(&Progress) -> bool,
) -> Result<Progress> {
    cfg.validate()?;
    model.require_full("training")?;
    let mc = model.config();
    if (data.channels(), data.height(), data.width()) != (mc.channels, mc.height, mc.width) {
        return Err(Error::invalid(format!(
            "dataset images are {}x{}x{} but the model makes {}x{}x{} (channels x height x width)",
            data.channels(),
            data.height(),
            data.width(),
            mc.channels,
            mc.height,
            mc.width
        )));
    }
    let n = data.count();
    let batch = cfg.batch_size as usize;
    if batch > n {
        return Err(Error::invalid(format!("batch_size {batch} is larger than the dataset ({n} images)")));
    }
    if let Some(path) = &cfg.checkpoint_path {
        // Refuse a checkpoint path that cannot be written before training, not after.
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        if !dir.is_dir() {
            return Err(Error::new(ErrorKind::Io, format!("checkpoint folder {} does not exist", dir.display())));
        }
    }
    let _busy = model.begin_training()?;
    let device = model.device();
    let per_epoch = (n / batch) as u64;
    let steps_this_call = if cfg.iterations > 0 { cfg.iterations } else { u64::from(cfg.epochs) * per_epoch };
    let first = model.step();
    let end = first.checked_add(steps_this_call).ok_or_else(|| {
        Error::invalid(format!(
            "the model's step counter {first} plus {steps_this_call} steps passes the largest step counter ({})",
            u64::MAX
        ))
    })?;
    // The whole dataset goes to the model's device once; minibatches are gathered there.
    let images = data.float_images(device)?;
    let z_dim = mc.z_dim as i64;
    let adam_d = AdamSettings {
        lr: cfg.lr_d,
        beta1: cfg.beta1_d,
        beta2: cfg.beta2_d,
        eps: 1e-8,
        weight_decay: cfg.d_weight_decay,
    };
    let adam_g = AdamSettings { lr: cfg.lr_g, beta1: cfg.beta1_g, beta2: cfg.beta2_g, eps: 1e-8, weight_decay: 0.0 };
    let shuffle = Stream::new(cfg.seed, stream::SHUFFLE);
    let z_d = Stream::new(cfg.seed, stream::TRAIN_Z_D);
    let z_g = Stream::new(cfg.seed, stream::TRAIN_Z_G);
    let ones = Tensor::f_ones([batch as i64], (Kind::Float, device))?;
    let zeros = Tensor::f_zeros([batch as i64], (Kind::Float, device))?;
    let run_start = Instant::now();
    let mut perm: Option<(u64, Tensor)> = None;
    let mut window = Window::default();
    let mut last = Progress { step: first, total_steps: end, ..Default::default() };
    let mut warned = false;
    let mut backup = crate::snapshot::Snapshot::default();
    for step in first..end {
        if model.cancel_requested() {
            return Err(Error::new(ErrorKind::Cancelled, format!("training cancelled at step {step}")));
        }
        window.started.get_or_insert_with(Instant::now);
        let epoch = step / per_epoch;
        if perm.as_ref().map(|p| p.0) != Some(epoch) {
            let p = shuffle.sub(epoch).permutation(n);
            perm = Some((epoch, to_device_async(Tensor::f_from_slice(&p)?, device)?));
        }
        let pos = ((step % per_epoch) as usize * batch) as i64;
        let idx = perm.as_ref().expect("set above").1.f_narrow(0, pos, batch as i64)?;
        let real = images.f_index_select(0, &idx)?;
        let latent = |s: &Stream| -> Result<Tensor> {
            let z = s.sub(step).normals(0, batch * z_dim as usize);
            to_device_async(Tensor::f_from_slice(&z)?.f_view([batch as i64, z_dim])?, device)
        };
        let (zd, zg) = (latent(&z_d)?, latent(&z_g)?);

        let mut state = model.write();
        let st = &mut *state;
        // A step that fails in any way leaves the model as after the last complete step. The
        // generator's update is the step's last change, and the fused kernel skips it (decided
        // on the device) when a loss or a gradient is not finite. What changes before it is
        // copied here and put back unless the step completes: the batch-norm running statistics
        // of both networks, and D's weights and Adam state (D's update comes before G's loss is
        // known). The copies live in buffers allocated once for the run. G is not copied (that
        // would cost more than a tenth of a paper-width step on a CPU), so a libtorch failure
        // after G's update has run (in the finiteness check or the read) leaves G one update
        // ahead of the rest; the error then says what libtorch said.
        let at_risk = |st: &crate::model::State| -> Vec<Tensor> {
            st.opt_d
                .tensors()
                .chain(st.g_buffers.iter().chain(&st.d_buffers).map(|n| &n.tensor))
                .map(|t| t.shallow_clone())
                .collect()
        };
        backup.save(&at_risk(st))?;
        let (adam_d_t, adam_g_t) = (st.opt_d.t, st.opt_g.t);
        let f = cfg.lr_schedule.factor(step, end, per_epoch);
        let (adam_d, adam_g) = (AdamSettings { lr: adam_d.lr * f, ..adam_d }, AdamSettings { lr: adam_g.lr * f, ..adam_g });
        let outcome = step_once(st, cfg, device, &real, &zd, &zg, &ones, &zeros, &adam_d, &adam_g);
        let failure = match &outcome {
            Err(e) => Some(e.clone()),
            Ok(sums) => [("discriminator loss", sums[0]), ("generator loss", sums[1])]
                .into_iter()
                .find(|(_, v)| !v.is_finite())
                .map(|(what, value)| diverged(step, what, value))
                .or_else(|| (sums[4] != 0.0).then(|| diverged(step, "largest weight after the update", f64::INFINITY))),
        };
        if let Some(e) = failure {
            // The updates skipped themselves where a loss or gradient was not finite; put back
            // what changed regardless.
            backup.restore(&at_risk(st))?;
            (st.opt_d.t, st.opt_g.t) = (adam_d_t, adam_g_t);
            return Err(generator_check(st, e)?);
        }
        let sums = outcome?;
        st.step = step + 1;
        if cfg.ema_decay > 0.0 {
            // The first completed step of a run with averaging gives the model its averaged
            // generator (a run that completes no step leaves the model as it was).
            st.ensure_averaged(mc, device)?;
        }
        if let Some(ema) = &mut st.ema {
            // Before `ema_start`, and in a run without averaging, the average copies the raw
            // weights (lerp with weight 1 is exact). Its statistics are estimated with the
            // run's batch size when someone samples or saves (Model::read_fresh), not here.
            let decay = if step < cfg.ema_start { 0.0 } else { cfg.ema_decay };
            ema.update(&st.g_params, decay)?;
            ema.batch = cfg.batch_size;
        }
        drop(state);

        for (a, b) in window.sums.iter_mut().zip(sums) {
            *a += b;
        }
        window.steps += 1;

        let done = step + 1;
        if let Some(path) = &cfg.checkpoint_path {
            if done == end || (cfg.checkpoint_every > 0 && (done - first) % cfg.checkpoint_every == 0) {
                crate::checkpoint::save(model, path)?;
            }
        }
        let report = done == end || (cfg.report_every > 0 && (done - first) % cfg.report_every == 0);
        if report {
            let k = window.steps as f64;
            let secs = window.started.map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0);
            last = Progress {
                step: done,
                total_steps: end,
                epoch: step / per_epoch,
                d_loss: window.sums[0] / k,
                g_loss: window.sums[1] / k,
                d_real: window.sums[2] / k,
                d_fake: window.sums[3] / k,
                elapsed_s: run_start.elapsed().as_secs_f64(),
                images_per_s: if secs > 0.0 { k * batch as f64 / secs } else { 0.0 },
                d_dominates: window.sums[0] / k < D_WINS_LOSS,
            };
            window = Window::default();
            if last.d_dominates && !warned {
                warned = true;
                log(
                    Level::Warn,
                    &format!(
                        "step {done}: the discriminator wins outright (D loss {:.4}, D(G(z)) {:.4}); \
                         the generator learns little: lower lr_d, narrow D or add d_weight_decay",
                        last.d_loss, last.d_fake
                    ),
                );
            }
            if on_progress(&last) {
                return Err(Error::new(
                    ErrorKind::Cancelled,
                    format!("training stopped by the progress callback at step {done}"),
                ));
            }
        }
    }
    Ok(last)
}

/// One discriminator and one generator update on `st`. Returns, in one host read: the D loss,
/// the G loss, the mean D(x), the mean D(G(z)), and 1.0 if any weight or Adam moment of either
/// network is not finite after the updates (else 0.0).
#[allow(clippy::too_many_arguments)]
fn step_once(
    st: &mut crate::model::State,
    cfg: &TrainConfig,
    device: tch::Device,
    real: &Tensor,
    zd: &Tensor,
    zg: &Tensor,
    ones: &Tensor,
    zeros: &Tensor,
    adam_d: &AdamSettings,
    adam_g: &AdamSettings,
) -> Result<Vec<f64>> {
    // Discriminator step: real and generated minibatches in separate passes, each normalised
    // by its own batch statistics (as in DCGAN). Measured on mnist10k against one mixed batch:
    // a lower Frechet distance for both seeds tried (459 vs 529, 555 vs 725 at 2000 steps).
    // Forward passes in the run's precision; the logits come out as float32 (a no-op in
    // float32: `to_kind` returns a tensor already of the kind as it is) and the losses and
    // backward passes run outside the autocast region. Each phase is a region of its own: its
    // end drops the low-precision copies of the weights before the optimizer changes them.
    // Each Adam update gets a flag on the device (1.0: a loss or gradient so far is not finite)
    // and the fused kernel skips itself when it is set, without the host waiting to look.
    let (lr_, lf) = cfg.precision.run(device, || {
        let fake = tch::no_grad(|| st.gen.forward(zd, BnMode::TrainFrozenStats, false))?.image;
        let logits =
            |x: &Tensor| -> Result<Tensor> { Ok(st.disc.forward(x, BnMode::Train)?.f_to_kind(Kind::Float)?) };
        Ok((logits(real)?, logits(&fake)?))
    })?;
    let d_loss = lr_
        .f_binary_cross_entropy_with_logits::<Tensor>(ones, None, None, Reduction::Mean)?
        .f_add(&lf.f_binary_cross_entropy_with_logits::<Tensor>(zeros, None, None, Reduction::Mean)?)?;
    let d_grads = st.opt_d.gradients(&d_loss)?;
    let d_bad = not_finite(&d_loss)?.f_maximum(&non_finite(&d_grads.iter().collect::<Vec<_>>())?)?;
    st.opt_d.step(&d_grads, adam_d, Some(&d_bad))?;

    // Generator step (non-saturating): gradients for G's parameters only.
    let g_logits = cfg.precision.run(device, || {
        let fake = st.gen.forward(zg, BnMode::Train, false)?.image;
        Ok(st.disc.forward(&fake, BnMode::TrainFrozenStats)?.f_to_kind(Kind::Float)?)
    })?;
    let g_loss = g_logits.f_binary_cross_entropy_with_logits::<Tensor>(ones, None, None, Reduction::Mean)?;
    let g_grads = st.opt_g.gradients(&g_loss)?;
    let bad = d_bad
        .f_maximum(&not_finite(&g_loss)?)?
        .f_maximum(&non_finite(&g_grads.iter().collect::<Vec<_>>())?)?;
    st.opt_g.step(&g_grads, adam_g, Some(&bad))?;
    // Finite losses and gradients do not quite make finite weights (an update can overflow
    // float32): whether any weight or moment is not finite after the updates, computed on the
    // device, goes with the read.
    let updated: Vec<&Tensor> = st.opt_d.tensors().chain(st.opt_g.tensors()).collect();
    let largest = non_finite(&updated)?;
    // The step's one host read: both losses, the mean D outputs and the finiteness flag.
    tch::no_grad(|| -> Result<Vec<f64>> {
        let v = Tensor::f_stack(
            &[
                d_loss,
                g_loss,
                lr_.f_sigmoid()?.f_mean(Kind::Float)?,
                lf.f_sigmoid()?.f_mean(Kind::Float)?,
                largest.f_to_kind(Kind::Float)?,
            ],
            0,
        )?;
        Ok(Vec::<f64>::try_from(&v.f_to_kind(Kind::Double)?.f_to_device(tch::Device::Cpu)?)?)
    })
}

/// After a failed step was put back: `diverged` as it is when the generator is finite (the
/// promise: the weights of the last complete step). An update of G that overflowed float32
/// from finite gradients cannot be taken back (G is not copied each step); that case, reachable
/// only with learning rates near float32's range, is said plainly instead.
fn generator_check(st: &crate::model::State, diverged: Error) -> Result<Error> {
    let g: Vec<&Tensor> = st.opt_g.tensors().collect();
    if non_finite(&g)?.f_double_value(&[])? == 0.0 {
        return Ok(diverged);
    }
    Ok(Error::new(
        ErrorKind::Diverged,
        format!(
            "{}; but the generator's update overflowed float32 (a learning rate too large?) and its \
             weights are no longer finite: load the last checkpoint",
            diverged.message.split("; the model keeps").next().unwrap_or(&diverged.message)
        ),
    ))
}

/// 1.0 where `loss` is not finite, else 0.0, as a float tensor on the loss's device.
fn not_finite(loss: &Tensor) -> Result<Tensor> {
    Ok(loss.f_isfinite()?.f_logical_not()?.f_to_kind(Kind::Float)?)
}

/// A host tensor on `device`. On CUDA the copy is made from pinned memory without blocking, so
/// the host goes on queueing the step's work instead of waiting for the copy (a copy from
/// ordinary host memory synchronises with the device).
fn to_device_async(t: Tensor, device: tch::Device) -> Result<Tensor> {
    if device.is_cuda() {
        Ok(crate::torch_ext::pin_memory(&t)?.f_to_device_(device, t.kind(), true, false)?)
    } else {
        Ok(t)
    }
}

fn diverged(step: u64, what: &str, value: f64) -> Error {
    Error::new(
        ErrorKind::Diverged,
        format!("training diverged at step {step}: the {what} is {value}; the model keeps the weights of step {step}"),
    )
}
