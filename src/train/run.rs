//! One training run: its owner, `Trainer`, holds what lives as long as the run (the data on the
//! device, the random streams, the settings, the report window, the copies a failed step puts
//! back) and does the run one step at a time: `batch` gathers a step's minibatch and latents,
//! `step` makes the step's two updates under the model's write lock (or puts everything back),
//! `after_step` keeps the report window, writes checkpoints and calls the progress callback.
//!
//! All randomness comes from (train seed, step): the minibatch of step s is part of a fixed
//! permutation of epoch s / batches_per_epoch, and the latents of step s are their own stream. A
//! run saved at step N, loaded and continued therefore gives exactly the weights of a run that
//! never stopped.

use crate::data::Dataset;
use crate::dist::ProcessGroup;
use crate::error::{Error, ErrorKind, Result};
use crate::log::{log, Level};
use crate::model::{Model, State, TrainingGuard};
use crate::nn::adam::{AdamSettings, DeviceInputs};
use crate::nn::layers::BnMode;
use crate::rng::{stream, Stream};
use crate::sys::torch_ext::non_finite;
use crate::train::augment::{Adaptive, Augment, Augmenter, Params, Pass};
use crate::train::generator_pass::GeneratorPass;
use crate::train::prefetch::{Plan, Prefetcher};
use crate::train::settings::{Progress, TrainConfig};
use crate::train::snapshot::Snapshot;
use crate::train::step::{DominanceWindow, StepFailure, StepSummary, SummaryParts};
use crate::train::step_graph::{StepGraph, StepInputs, StepLabels, StepValues};
use std::sync::Arc;
use std::time::Instant;
use tch::{Device, Kind, Reduction, Tensor};

/// Steps between two comparisons of the ranks' states in a process group (also at a run's end).
const DIGEST_EVERY: u64 = 100;

/// Running sums between two reports.
#[derive(Default)]
struct Window {
    steps: u64,
    d_loss: f64,
    g_loss: f64,
    d_real: f64,
    d_fake: f64,
    started: Option<Instant>,
}

impl Window {
    fn add(&mut self, s: &StepSummary) {
        self.steps += 1;
        self.d_loss += s.d_loss;
        self.g_loss += s.g_loss;
        self.d_real += s.d_real;
        self.d_fake += s.d_fake;
    }
}

/// A step's inputs: the real minibatch, the latents of the D and G updates and, in a run that
/// augments, the three passes' augmentation parameters, on the device.
struct Batch {
    real: Tensor,
    zd: Tensor,
    zg: Tensor,
    augment: Option<[Params; 3]>,
    /// A conditional model's classes of the real, D's generated and G's generated minibatch.
    labels: Option<[Tensor; 3]>,
}

/// Eager steps a run with `cuda_graph` takes before it captures one: libraries' lazy set-up
/// (cuBLAS and cuDNN handles and workspaces, autograd's) happens outside the graph.
const GRAPH_WARMUP_STEPS: u32 = 3;

/// How the run's steps execute.
enum Execution {
    Eager,
    /// Eager for this many more steps, then captured.
    Warming(u32),
    Captured(StepGraph),
}

pub struct Trainer<'a> {
    model: &'a Model,
    cfg: &'a TrainConfig,
    _busy: TrainingGuard<'a>,
    device: Device,
    /// Where the real minibatches come from.
    minibatches: Minibatches,
    count: usize,
    /// The global batch; this process takes `local` images of it from `offset` on (all of it
    /// from 0 in one process).
    batch: usize,
    local: usize,
    offset: usize,
    group: Option<Arc<ProcessGroup>>,
    per_epoch: u64,
    z_dim: i64,
    /// The model's step counter when the run began, and where it ends.
    first: u64,
    end: u64,
    adam_d: AdamSettings,
    adam_g: AdamSettings,
    shuffle: Stream,
    z_d: Stream,
    z_g: Stream,
    /// BCE targets.
    ones: Tensor,
    zeros: Tensor,
    /// The current epoch's permutation, on the device.
    perm: Option<(u64, Tensor)>,
    /// A conditional model's: the dataset's labels (int64, on the device), and the streams of
    /// the generated minibatches' classes.
    labels: Option<ClassStreams>,
    window: Window,
    run_start: Instant,
    last: Progress,
    /// Whether the discriminator wins outright, over the run's last steps.
    dominance: DominanceWindow,
    warned: bool,
    /// Seconds spent in the step's all-reduces so far (a process group only).
    reduce_secs: std::cell::Cell<f64>,
    backup: Snapshot,
    execution: Execution,
    /// The run's augmentation of D's inputs (`None`: off), and where adaptive p stands.
    augmenter: Option<Augmenter>,
    adaptive: Adaptive,
    /// The R1 weight of the run (the setting, or the image size's default).
    r1_gamma: f64,
    /// The canvas penalty's weight of the run (the setting, or the image size's default).
    canvas_penalty: f64,
}

impl<'a> Trainer<'a> {
    /// Checks everything about the run before anything changes (`InvalidArgument`, `Busy`,
    /// `Io` for a checkpoint folder that does not exist), marks the model as training, and puts
    /// the data on its device.
    pub fn new(model: &'a Model, data: &Dataset, cfg: &'a TrainConfig) -> Result<Self> {
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
        let count = data.count();
        let batch = cfg.batch_size as usize;
        if batch > count {
            return Err(Error::invalid(format!("batch_size {batch} is larger than the dataset ({count} images)")));
        }
        if let Some(path) = &cfg.checkpoint_path {
            // Refuse a checkpoint path that cannot be written before training, not after.
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            if !dir.is_dir() {
                return Err(Error::new(ErrorKind::Io, format!("checkpoint folder {} does not exist", dir.display())));
            }
        }
        let busy = model.begin_training()?;
        let group = cfg.group.as_ref().map(|g| g.0.clone());
        let (local, offset) = match &group {
            Some(g) => {
                let local = batch / g.world_size() as usize;
                (local, local * g.rank() as usize)
            }
            None => (batch, 0),
        };
        let device = model.device();
        let per_epoch = cfg.steps_per_epoch(count);
        let first = model.step();
        let end = cfg.run_end(first, count)?;
        let minibatches = match data.stored_images(device)? {
            Some(images) => Minibatches::Resident(images),
            None => {
                let reader =
                    data.file_reader().ok_or_else(|| Error::internal("a dataset neither in memory nor in a file"))?;
                let plan =
                    Plan { shuffle: Stream::new(cfg.seed, stream::SHUFFLE), count, batch, local, offset, per_epoch };
                Minibatches::Streamed(Prefetcher::start(reader, plan, first, end)?)
            }
        };
        let labels = ClassStreams::for_run(mc.classes, data, cfg.seed, device)?;
        let r1_gamma = cfg.r1_gamma.unwrap_or_else(|| crate::train::r1_gamma_for(mc.height));
        let canvas_penalty = cfg.canvas_penalty.unwrap_or_else(|| crate::train::canvas_penalty_for(mc.height));
        let augmenter =
            (cfg.augment != Augment::Off).then(|| Augmenter::new(mc.height, mc.channels, cfg.augment_flip, cfg.seed));
        let adaptive = match cfg.augment {
            Augment::Fixed(p) => Adaptive { p, ..Default::default() },
            // Where the model's last run left p, raised to this run's floor.
            Augment::Adaptive { floor, .. } => {
                let kept = model.augment_state();
                Adaptive { p: kept.p.max(floor), ..kept }
            }
            Augment::Off => model.augment_state(),
        };
        if let Some(g) = &group {
            if g.backend() == crate::dist::Backend::Nccl && !device.is_cuda() {
                return Err(Error::invalid(
                    "an NCCL process group trains models on CUDA, this one is on the CPU: make the group with GLOO",
                ));
            }
            join(model, g)?;
        }
        let adam_d = AdamSettings {
            lr: cfg.lr_d,
            beta1: cfg.beta1_d,
            beta2: cfg.beta2_d,
            eps: 1e-8,
            weight_decay: cfg.d_weight_decay,
        };
        let adam_g =
            AdamSettings { lr: cfg.lr_g, beta1: cfg.beta1_g, beta2: cfg.beta2_g, eps: 1e-8, weight_decay: 0.0 };
        Ok(Trainer {
            model,
            cfg,
            _busy: busy,
            device,
            minibatches,
            count,
            batch,
            local,
            offset,
            group,
            per_epoch,
            z_dim: mc.z_dim as i64,
            first,
            end,
            adam_d,
            adam_g,
            shuffle: Stream::new(cfg.seed, stream::SHUFFLE),
            z_d: Stream::new(cfg.seed, stream::TRAIN_Z_D),
            z_g: Stream::new(cfg.seed, stream::TRAIN_Z_G),
            ones: Tensor::f_ones([local as i64], (Kind::Float, device))?,
            zeros: Tensor::f_zeros([local as i64], (Kind::Float, device))?,
            perm: None,
            labels,
            window: Window::default(),
            run_start: Instant::now(),
            last: Progress { step: first, total_steps: end, ..Default::default() },
            dominance: DominanceWindow::default(),
            warned: false,
            reduce_secs: std::cell::Cell::new(0.0),
            backup: Snapshot::default(),
            execution: Self::execution(cfg, r1_gamma, device, cfg.group.is_some()),
            r1_gamma,
            canvas_penalty,
            augmenter,
            adaptive,
        })
    }

    /// Eager, or captured after a warm-up where the run asks for a graph and one can be made.
    fn execution(cfg: &TrainConfig, r1_gamma: f64, device: Device, distributed: bool) -> Execution {
        if !cfg.cuda_graph {
            return Execution::Eager;
        }
        let why_not = if r1_gamma > 0.0 {
            Some("the R1 penalty runs every r1_every steps, and a graph replays one kind of step".to_string())
        } else if distributed {
            Some("data-parallel steps reduce across processes between their phases".to_string())
        } else if !device.is_cuda() {
            Some(format!("the model is on {device:?}, and only CUDA devices capture"))
        } else if !crate::sys::cuda_graph::supported() {
            Some("this build of gran has no CUDA graph support".to_string())
        } else if !crate::infer::graph_cache::enabled_by_environment() {
            Some("GRAN_CUDA_GRAPHS=0 is set".to_string())
        } else {
            None
        };
        match why_not {
            Some(why) => {
                log(Level::Info, &format!("cuda_graph: training steps run eagerly ({why})"));
                Execution::Eager
            }
            None => Execution::Warming(GRAPH_WARMUP_STEPS),
        }
    }

    /// Bytes the run's copy of the dataset takes on the device (0 when it is streamed).
    pub fn data_bytes(&self) -> usize {
        match &self.minibatches {
            Minibatches::Resident(images) => images.numel() * images.kind().elt_size_in_bytes(),
            Minibatches::Streamed(_) => 0,
        }
    }

    /// Runs every step of the run. `on_progress` is called every `report_every` steps and after
    /// the last one, with no lock held; returning `true` stops the run with `Cancelled`.
    pub fn run(self, on_progress: &mut dyn FnMut(&Progress) -> bool) -> Result<Progress> {
        self.run_reporting(on_progress).0
    }

    /// [`Trainer::run`], and the report of where the run stopped (see crate::train::train_reporting).
    pub(crate) fn run_reporting(
        mut self,
        on_progress: &mut dyn FnMut(&Progress) -> bool,
    ) -> (Result<Progress>, Option<Progress>) {
        let result = self.steps(on_progress);
        let last = match &result {
            Ok(p) => Some(p.clone()),
            Err(e) if matches!(e.kind, ErrorKind::Cancelled | ErrorKind::Diverged) => {
                Some(Progress { step: self.model.step(), ..self.last.clone() })
            }
            Err(_) => None,
        };
        (result, last)
    }

    fn steps(&mut self, on_progress: &mut dyn FnMut(&Progress) -> bool) -> Result<Progress> {
        for step in self.first..self.end {
            let cancel = self.model.cancel_requested();
            if cancel && self.group.is_none() {
                return Err(Error::new(ErrorKind::Cancelled, format!("training cancelled at step {step}")));
            }
            // In a group a cancel travels with the step's reduction: every rank completes this
            // step and stops after it.
            self.window.started.get_or_insert_with(Instant::now);
            let summary = match self.step(step, cancel) {
                Err(e) if e.kind == ErrorKind::Distributed => return Err(self.keep_completed(e)),
                other => other?,
            };
            let stop = summary.stop_requested;
            self.after_step(step, &summary, on_progress)?;
            if stop {
                return Err(Error::new(
                    ErrorKind::Cancelled,
                    format!("training cancelled at step {} (asked by a process of the group)", step + 1),
                ));
            }
        }
        Ok(self.last.clone())
    }

    /// A collective of the group failed (a process died or hung past the timeout): the model
    /// holds the last step the group completed (a failed step puts back what it changed), so
    /// rank 0 writes it to the run's checkpoint, if it has one, before the run returns `e`,
    /// which then says so. A restarted group continues from there (`gran train
    /// --resume-if-exists`) and loses no completed step. Only a collective's failure: when the
    /// ranks' states differ, nothing is written.
    fn keep_completed(&self, e: Error) -> Error {
        let Some(path) = self.cfg.checkpoint_path.as_ref().filter(|_| crate::dist::leads(self.group.as_deref())) else {
            return e;
        };
        let step = self.model.step();
        let message = match crate::io::checkpoint::save(self.model, path) {
            Ok(()) => format!("{}; {} holds step {step}, the last the group completed", e.message, path.display()),
            Err(w) => format!("{}; writing step {step} to {} failed: {}", e.message, path.display(), w.message),
        };
        Error::new(ErrorKind::Distributed, message)
    }

    /// Step `step`'s minibatch (from the epoch's permutation) and latents, on the device.
    fn batch(&mut self, step: u64) -> Result<Batch> {
        // This process's share of the global minibatch (all of it in one process): the global
        // minibatch depends on (seed, step) alone, whatever the world size. A streamed set's
        // images are read by the prefetcher with the same indices; the indices are worked out
        // here too when the labels need them.
        let resident = matches!(self.minibatches, Minibatches::Resident(_));
        let idx = if resident || self.labels.is_some() {
            let epoch = step / self.per_epoch;
            if self.perm.as_ref().map(|p| p.0) != Some(epoch) {
                let p = self.shuffle.sub(epoch).permutation(self.count);
                self.perm = Some((epoch, to_device_async(Tensor::f_from_slice(&p)?, self.device)?));
            }
            let pos = ((step % self.per_epoch) as usize * self.batch) as i64;
            let perm = &self.perm.as_ref().expect("set above").1;
            Some(perm.f_narrow(0, pos + self.offset as i64, self.local as i64)?)
        } else {
            None
        };
        let real = match &mut self.minibatches {
            Minibatches::Resident(images) => Dataset::gather_float(images, idx.as_ref().expect("resident"))?,
            // The same images, read from the file ahead of the step (crate::train::prefetch).
            Minibatches::Streamed(reader) => Dataset::to_float(&reader.next(step)?, self.device)?,
        };
        let labels = match (&self.labels, &idx) {
            (Some(c), Some(idx)) => Some(c.minibatch(idx, step, self.batch, self.offset, self.local, self.device)?),
            _ => None,
        };
        let latent = |s: &Stream| -> Result<Tensor> {
            let z = s.sub(step).normals(0, self.batch * self.z_dim as usize);
            let z = Tensor::f_from_slice(&z)?.f_view([self.batch as i64, self.z_dim])?;
            let z = if self.local == self.batch {
                z
            } else {
                z.f_narrow(0, self.offset as i64, self.local as i64)?.f_contiguous()?
            };
            to_device_async(z, self.device)
        };
        let augment = match &self.augmenter {
            Some(a) => {
                let p = self.adaptive.p;
                let pass = |pass: Pass| -> Result<Params> {
                    let drawn = a.draw(step, pass, p, self.offset, self.local)?;
                    Ok(Params { values: to_device_async(drawn.values, self.device)?, ops: drawn.ops })
                };
                Some([pass(Pass::DiscriminatorReal)?, pass(Pass::DiscriminatorFake)?, pass(Pass::GeneratorFake)?])
            }
            None => None,
        };
        Ok(Batch { real, zd: latent(&self.z_d)?, zg: latent(&self.z_g)?, augment, labels })
    }

    /// Step `step`: one D and one G update under the write lock, then the averaged generator's.
    /// Returns the D loss, the G loss, the mean D(x) and the mean D(G(z)).
    ///
    /// A step that fails in any way leaves the model as after the last complete step. The
    /// generator's update is the step's last change, and the fused kernel skips it (decided on
    /// the device) when a loss or a gradient is not finite. What changes before it is copied
    /// and put back unless the step completes: the batch-norm running statistics of both
    /// networks, and D's weights and Adam state (D's update comes before G's loss is known). The
    /// copies live in buffers allocated once for the run. G is not copied (that would cost more
    /// than a tenth of a paper-width step on a CPU), so a libtorch failure after G's update has
    /// run (in the finiteness check or the read) leaves G one update ahead of the rest; the
    /// error then says what libtorch said.
    ///
    /// In a process group, `stop` (this rank was asked to stop) travels with the step's
    /// reduction; the second value returned says whether any rank asked.
    fn step(&mut self, step: u64, stop: bool) -> Result<StepSummary> {
        let b = self.batch(step)?;
        let mut state = self.model.write();
        let st = &mut *state;
        let at_risk = |st: &State| -> Vec<Tensor> {
            st.opt_d
                .tensors()
                .chain(st.g_buffers.iter().chain(&st.d_buffers).map(|n| &n.tensor))
                .map(|t| t.shallow_clone())
                .collect()
        };
        self.backup.save(&at_risk(st))?;
        let (adam_d_t, adam_g_t) = (st.opt_d.t, st.opt_g.t);
        let f = self.cfg.lr_schedule.factor(step, self.end, self.per_epoch);
        let adam_d = AdamSettings { lr: self.adam_d.lr * f, ..self.adam_d };
        let adam_g = AdamSettings { lr: self.adam_g.lr * f, ..self.adam_g };
        let outcome = self.execute(step, st, &b, &adam_d, &adam_g, stop);
        // Each update counts, applied or skipped (as Adam::step counts); a failed step puts
        // the counts back below.
        (st.opt_d.t, st.opt_g.t) = (adam_d_t.saturating_add(1), adam_g_t.saturating_add(1));
        let failure = match &outcome {
            Err(e) => Some(StepFailure::Error(e.clone())),
            Ok(summary) => summary.divergence().map(StepFailure::Diverged),
        };
        if let Some(f) = failure {
            // The updates skipped themselves where a loss or gradient was not finite; put back
            // what changed regardless.
            self.backup.restore(&at_risk(st))?;
            (st.opt_d.t, st.opt_g.t) = (adam_d_t, adam_g_t);
            let g: Vec<&Tensor> = st.opt_g.tensors().collect();
            let generator_finite = non_finite(&g)?.f_double_value(&[])? == 0.0;
            return Err(f.into_error(step, generator_finite));
        }
        let summary = outcome?;
        st.step = step + 1;
        if self.augmenter.is_some() {
            if let Augment::Adaptive { target, floor } = self.cfg.augment {
                self.adaptive.observe(summary.real_sign, target, floor, self.batch, self.cfg.augment_speed);
            }
            st.augment = self.adaptive;
        }
        if self.cfg.ema_decay > 0.0 {
            // The first completed step of a run with averaging gives the model its averaged
            // generator (a run that completes no step leaves the model as it was).
            st.ensure_averaged(self.model.config(), self.device)?;
        }
        if let Some(ema) = &mut st.ema {
            // Before `ema_start`, and in a run without averaging, the average copies the raw
            // weights (lerp with weight 1 is exact). Its statistics are estimated with the
            // run's batch size when someone samples or saves (Model::read_fresh), not here.
            let decay = if step < self.cfg.ema_start { 0.0 } else { self.cfg.ema_decay };
            ema.update(&st.g_params, decay)?;
            ema.batch = self.cfg.batch_size;
        }
        Ok(summary)
    }

    /// After step `step` completed: the report window, the checkpoint, the progress report.
    fn after_step(
        &mut self,
        step: u64,
        summary: &StepSummary,
        on_progress: &mut dyn FnMut(&Progress) -> bool,
    ) -> Result<()> {
        self.window.add(summary);
        self.dominance.push(summary.d_loss);
        let (done, first, end) = (step + 1, self.first, self.end);
        if let (Some(path), true) = (&self.cfg.checkpoint_path, crate::dist::leads(self.group.as_deref())) {
            if done == end || (self.cfg.checkpoint_every > 0 && (done - first) % self.cfg.checkpoint_every == 0) {
                crate::io::checkpoint::save(self.model, path)?;
            }
        }
        let report = done == end || (self.cfg.report_every > 0 && (done - first) % self.cfg.report_every == 0);
        if !report {
            return Ok(());
        }
        let w = std::mem::take(&mut self.window);
        let k = w.steps as f64;
        let secs = w.started.map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0);
        self.last = Progress {
            step: done,
            total_steps: end,
            epoch: step / self.per_epoch,
            d_loss: w.d_loss / k,
            g_loss: w.g_loss / k,
            d_real: w.d_real / k,
            d_fake: w.d_fake / k,
            elapsed_s: self.run_start.elapsed().as_secs_f64(),
            images_per_s: if secs > 0.0 { k * self.batch as f64 / secs } else { 0.0 },
            d_dominates: self.dominance.dominates(),
            allreduce_s: self.reduce_secs.get(),
            augment_p: if self.augmenter.is_some() { self.adaptive.p } else { 0.0 },
        };
        let last = &self.last;
        // With adaptive augmentation a winning discriminator is what raises p: the hint is
        // for when even p = 1 does not hold it back.
        let adapting = matches!(self.cfg.augment, Augment::Adaptive { .. }) && self.adaptive.p < 1.0;
        if last.d_dominates && !self.warned && !adapting {
            self.warned = true;
            log(
                Level::Warn,
                &format!(
                    "step {done}: the discriminator wins outright (mean D loss {:.4} over the last {} steps, \
                     D(G(z)) {:.4}); the generator learns little: lower lr_d, narrow D, add r1_gamma or d_weight_decay",
                    self.dominance.mean().unwrap_or(0.0),
                    DominanceWindow::STEPS,
                    last.d_fake
                ),
            );
        }
        let stop = on_progress(last);
        if let Some(g) = &self.group {
            // Every report: does any rank's callback stop the run (then all stop here)? And, at
            // most every DIGEST_EVERY steps and at the end, are the ranks' states still the same
            // (a digest of every tensor compared)?
            let check = done == end || (done - first) % DIGEST_EVERY == 0;
            let d = if check { digest(self.model)? } else { [0.0; 2] };
            let (same, any_stop) = agree(g, &d, stop).map_err(|e| self.keep_completed(e))?;
            if !same {
                return Err(Error::new(
                    ErrorKind::Distributed,
                    format!(
                        "the processes' weights differ after step {done} (this one's digest {:e}): a rank diverged",
                        d[0]
                    ),
                ));
            }
            if any_stop {
                return Err(Error::new(
                    ErrorKind::Cancelled,
                    format!("training stopped by a progress callback at step {done}"),
                ));
            }
        } else if stop {
            return Err(Error::new(
                ErrorKind::Cancelled,
                format!("training stopped by the progress callback at step {done}"),
            ));
        }
        Ok(())
    }

    /// The step's updates on `st`, eagerly or through the captured graph (captured here once the
    /// warm-up is over; a capture that fails is logged and the run goes on eagerly). Returns
    /// the step's summary, read from the device in one transfer.
    fn execute(
        &mut self,
        step: u64,
        st: &mut State,
        b: &Batch,
        adam_d: &AdamSettings,
        adam_g: &AdamSettings,
        stop: bool,
    ) -> Result<StepSummary> {
        let values = StepValues {
            real: &b.real,
            zd: &b.zd,
            zg: &b.zg,
            lr_d: adam_d.lr,
            lr_g: adam_g.lr,
            t_d: next_count(st.opt_d.t)?,
            t_g: next_count(st.opt_g.t)?,
            augment: b.augment.as_ref(),
            labels: b.labels.as_ref(),
        };
        if let Execution::Warming(0) = self.execution {
            let all = self.augmenter.as_ref().map(Augmenter::ops).unwrap_or_default();
            let captured =
                StepGraph::capture(self.device, &values, all, |inputs| self.update(st, inputs, adam_d, adam_g));
            self.execution = match captured {
                Ok(graph) => {
                    log(Level::Info, "cuda_graph: the training step is captured; later steps replay it");
                    Execution::Captured(graph)
                }
                Err(e) => {
                    log(
                        Level::Warn,
                        &format!("cuda_graph: training steps run eagerly (capture failed: {})", e.message),
                    );
                    Execution::Eager
                }
            };
        }
        let summary = match &mut self.execution {
            Execution::Captured(graph) => graph.replay(&values)?,
            other => {
                if let Execution::Warming(left) = other {
                    *left -= 1;
                }
                let inputs = StepInputs {
                    real: b.real.shallow_clone(),
                    zd: b.zd.shallow_clone(),
                    zg: b.zg.shallow_clone(),
                    lr_d: None,
                    lr_g: None,
                    t_d: Tensor::f_full([], values.t_d as f64, (Kind::Float, self.device))?,
                    t_g: Tensor::f_full([], values.t_g as f64, (Kind::Float, self.device))?,
                    stop: match self.group {
                        Some(_) => Some(Tensor::f_full([], f64::from(u8::from(stop)), (Kind::Float, self.device))?),
                        None => None,
                    },
                    augment: b.augment.as_ref().map(|a| a.each_ref().map(Params::shallow_clone)),
                    r1: self.r1_weight(step),
                    labels: b.labels.as_ref().map(|l| l.each_ref().map(Tensor::shallow_clone)),
                };
                self.update(st, &inputs, adam_d, adam_g)?
            }
        };
        // The step's one host read.
        StepSummary::read(&summary)
    }

    /// The weight of step `step`'s R1 penalty: gamma / 2 scaled by the interval on every
    /// `r1_every`-th step of the model, `None` on the others and when R1 is off.
    fn r1_weight(&self, step: u64) -> Option<f64> {
        let every = u64::from(self.cfg.r1_every);
        (self.r1_gamma > 0.0 && every > 0 && step % every == 0).then(|| self.r1_gamma / 2.0 * every as f64)
    }

    /// `x` as the discriminator sees it in `pass`: augmented when the run augments.
    fn augmented(&self, x: &Tensor, i: &StepInputs, pass: Pass) -> Result<Tensor> {
        match (&self.augmenter, &i.augment) {
            (Some(a), Some(params)) => {
                let p = &params[pass as usize];
                a.apply(x, &p.values, p.ops)
            }
            _ => Ok(x.shallow_clone()),
        }
    }

    /// `f` (an all-reduce), its time added to the run's.
    fn timed<T>(&self, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        self.reduce_secs.set(self.reduce_secs.get() + t.elapsed().as_secs_f64());
        out
    }

    /// One discriminator and one generator update on `st`, reading the step's inputs from `i`
    /// (and nothing from the host: this is what a captured step records). Returns the step's
    /// summary packed on the device (`StepSummary::pack`).
    ///
    /// Each Adam update gets a flag on the device (1.0: a loss or gradient so far is not
    /// finite) and the fused kernel skips itself when it is set, without the host waiting to
    /// look. Forward passes run in the run's precision, each in a region of its own: a region's
    /// end drops the low-precision copies of the weights before the optimizer changes them.
    fn update(&self, st: &mut State, i: &StepInputs, adam_d: &AdamSettings, adam_g: &AdamSettings) -> Result<Tensor> {
        let d = self.discriminator_gradients(st, i)?;
        // In a group, D's gradients and loss are averaged over the ranks (the same on every
        // rank from here on, so every rank makes the same update, or skips it). The reduction
        // travels while this rank runs the generator step's forward pass, which does not depend
        // on D's update; only D's pass over G's images waits for it.
        let mut d_values = d.grads;
        d_values.push(d.loss.detach());
        let pending = match &self.group {
            Some(g) => Some(self.timed(|| g.start_mean(&d_values))?),
            None => None,
        };
        let g_labels = i.labels.as_ref().map(|l| &l[StepLabels::G_FAKE]);
        let fake = GeneratorPass::forward(
            &st.gen,
            &i.zg,
            g_labels,
            self.cfg.precision,
            self.cfg.recompute,
            self.canvas_penalty,
        )?;
        if let Some(p) = pending {
            d_values = self.timed(|| p.finish())?;
        }
        let d_loss = d_values.pop().expect("pushed");
        let d_bad = not_finite(&d_loss)?.f_maximum(&non_finite(&d_values.iter().collect::<Vec<_>>())?)?;
        st.opt_d.apply(
            &d_values,
            adam_d,
            &DeviceInputs { step: &i.t_d, lr: i.lr_d.as_ref(), skip_if: Some(&d_bad) },
        )?;

        // Generator step (non-saturating): gradients for G's parameters only.
        let g_logits = self.cfg.precision.run(self.device, || {
            let seen = self.augmented(fake.image(), i, Pass::GeneratorFake)?;
            Ok(st.disc.forward_with(&seen, g_labels, BnMode::TrainFrozenStats)?.f_to_kind(Kind::Float)?)
        })?;
        let g_loss = g_logits.f_binary_cross_entropy_with_logits::<Tensor>(&self.ones, None, None, Reduction::Mean)?;
        let g_grads = fake.gradients(st, &g_loss, self.cfg.precision)?;
        let (d_real, d_fake, real_sign) = tch::no_grad(|| -> Result<(Tensor, Tensor, Tensor)> {
            Ok((
                d.real_logits.f_sigmoid()?.f_mean(Kind::Float)?,
                d.fake_logits.f_sigmoid()?.f_mean(Kind::Float)?,
                d.real_logits.f_sign()?.f_mean(Kind::Float)?,
            ))
        })?;
        // The report's values from this phase: G's loss, the mean D outputs and the mean sign
        // of D's real logits (in a group, averaged over the ranks, with whether any rank asked
        // to stop).
        let mut report = [g_loss.detach(), d_real, d_fake, real_sign];
        let (g_grads, stop) = match &self.group {
            Some(g) => self.reduce_generator_step(g, st, i, g_grads, &mut report)?,
            None => (g_grads, None),
        };
        let bad =
            d_bad.f_maximum(&not_finite(&report[0])?)?.f_maximum(&non_finite(&g_grads.iter().collect::<Vec<_>>())?)?;
        st.opt_g.apply(&g_grads, adam_g, &DeviceInputs { step: &i.t_g, lr: i.lr_g.as_ref(), skip_if: Some(&bad) })?;
        // Finite losses and gradients do not quite make finite weights (an update can overflow
        // float32): whether any weight or moment is not finite after the updates, computed on
        // the device, goes with the summary.
        let updated: Vec<&Tensor> = st.opt_d.tensors().chain(st.opt_g.tensors()).collect();
        let [g_loss, d_real, d_fake, real_sign] = report;
        StepSummary::pack(SummaryParts {
            d_loss,
            g_loss,
            d_real,
            d_fake,
            real_sign,
            non_finite_weights: non_finite(&updated)?,
            stop,
        })
    }

    /// The discriminator's loss and gradients for the step: real and generated minibatches in
    /// separate passes, each normalised by its own batch statistics (as in DCGAN; better samples
    /// than one mixed batch: docs/RESULTS.md). The logits come out as float32 (a no-op in float32:
    /// `to_kind` returns a tensor already of the kind as it is) and the losses and backward
    /// passes run outside the precision region. Both minibatches are augmented when the run
    /// augments. On a step with an R1 penalty, its gradient joins the loss's (the reported loss
    /// is the classification loss alone): the penalty is on the gradient of D's real logits
    /// with respect to the real images before augmentation, as in StyleGAN2-ADA.
    fn discriminator_gradients(&self, st: &mut State, i: &StepInputs) -> Result<DiscriminatorGradients> {
        let real = match i.r1 {
            Some(_) => i.real.detach().f_set_requires_grad(true)?,
            None => i.real.shallow_clone(),
        };
        let label = |k: usize| i.labels.as_ref().map(|l| &l[k]);
        let (real_logits, fake_logits) = self.cfg.precision.run(self.device, || {
            let fake = tch::no_grad(|| {
                st.gen.forward_with(&i.zd, label(StepLabels::D_FAKE), BnMode::TrainFrozenStats, false)
            })?
            .image;
            let logits = |x: &Tensor, pass: Pass, y: Option<&Tensor>| -> Result<Tensor> {
                let seen = self.augmented(x, i, pass)?;
                Ok(st.disc.forward_with(&seen, y, BnMode::Train)?.f_to_kind(Kind::Float)?)
            };
            Ok((
                logits(&real, Pass::DiscriminatorReal, label(StepLabels::REAL))?,
                logits(&fake, Pass::DiscriminatorFake, label(StepLabels::D_FAKE))?,
            ))
        })?;
        let loss =
            real_logits.f_binary_cross_entropy_with_logits::<Tensor>(&self.ones, None, None, Reduction::Mean)?.f_add(
                &fake_logits.f_binary_cross_entropy_with_logits::<Tensor>(&self.zeros, None, None, Reduction::Mean)?,
            )?;
        let grads = match i.r1 {
            Some(weight) => {
                let g = Tensor::f_run_backward(&[real_logits.f_sum(Kind::Float)?], &[&real], true, true)?.remove(0);
                let penalty = g
                    .f_square()?
                    .f_sum_dim_intlist(&[1i64, 2, 3][..], false, Kind::Float)?
                    .f_mean(Kind::Float)?
                    .f_mul_scalar(weight)?;
                st.opt_d.gradients(&loss.f_add(&penalty)?)?
            }
            None => st.opt_d.gradients(&loss)?,
        };
        Ok(DiscriminatorGradients { loss, grads, real_logits, fake_logits })
    }

    /// A group's one reduction for the rest of the step: G's gradients (returned averaged),
    /// the report's values (replaced by their means), the stop flag (returned as its mean:
    /// positive when any rank asked to stop), and both networks' batch-norm running statistics
    /// (each rank normalises by its own share's statistics; the running ones are kept the same
    /// everywhere, as their mean).
    fn reduce_generator_step(
        &self,
        g: &ProcessGroup,
        st: &State,
        i: &StepInputs,
        grads: Vec<Tensor>,
        report: &mut [Tensor],
    ) -> Result<(Vec<Tensor>, Option<Tensor>)> {
        let buffers: Vec<Tensor> = st.g_buffers.iter().chain(&st.d_buffers).map(|n| n.tensor.shallow_clone()).collect();
        let (n, r) = (grads.len(), report.len());
        let flag = i.stop.as_ref().map_or(Ok(Tensor::new()), |s| s.f_to_kind(Kind::Float))?;
        let mut all = grads;
        all.extend(report.iter().map(|t| t.shallow_clone()));
        all.push(flag);
        all.extend(buffers.iter().map(|b| b.shallow_clone()));
        let mut mean = self.timed(|| g.mean(&all))?;
        tch::no_grad(|| -> Result<()> {
            for (b, m) in buffers.iter().zip(&mean[n + r + 1..]) {
                b.shallow_clone().f_copy_(m)?;
            }
            Ok(())
        })?;
        mean.truncate(n + r + 1);
        let stop = mean.pop().filter(|t| t.defined());
        for (t, m) in report.iter_mut().zip(mean.drain(n..)) {
            *t = m;
        }
        Ok((mean, stop))
    }
}

/// A conditional model's run: the dataset's labels on the device, and the streams its
/// generated minibatches' classes are drawn from (uniform over the classes, a function of
/// (seed, step) like the latents).
struct ClassStreams {
    labels: Tensor,
    classes: u64,
    y_d: Stream,
    y_g: Stream,
}

impl ClassStreams {
    /// `None` for an unconditional model; for a conditional one the dataset's labels, which it
    /// must have, each within the model's classes (`InvalidArgument` otherwise).
    fn for_run(classes: u32, data: &Dataset, seed: u64, device: Device) -> Result<Option<ClassStreams>> {
        if classes == 0 {
            return Ok(None);
        }
        let Some(labels) = data.labels() else {
            return Err(Error::invalid(format!(
                "this model is class-conditional ({classes} classes) and the dataset has no labels: train it on a \
                 labelled set (IDX or CIFAR labels, dataset.json, class folders, NAME.labels.npy)"
            )));
        };
        if let Some((i, &k)) = labels.iter().enumerate().find(|(_, &k)| u32::from(k) >= classes) {
            return Err(Error::invalid(format!(
                "image {i} of the dataset has label {k}, and the model has {classes} classes (0..={})",
                classes - 1
            )));
        }
        let labels = Tensor::f_from_slice(labels)?.f_to_kind(Kind::Int64)?;
        Ok(Some(ClassStreams {
            labels: to_device_async(labels, device)?,
            classes: u64::from(classes),
            y_d: Stream::new(seed, stream::TRAIN_Y_D),
            y_g: Stream::new(seed, stream::TRAIN_Y_G),
        }))
    }

    /// Step `step`'s classes: of the real images at `idx` (this process's share, on the
    /// device), and of the generated minibatches of D's and G's updates (this process's share
    /// of the global batch's).
    fn minibatch(
        &self,
        idx: &Tensor,
        step: u64,
        batch: usize,
        offset: usize,
        local: usize,
        device: Device,
    ) -> Result<[Tensor; 3]> {
        let drawn = |s: &Stream| -> Result<Tensor> {
            let s = s.sub(step);
            let y: Vec<i64> = (offset..offset + local).map(|i| s.below(i as u64, self.classes) as i64).collect();
            debug_assert!(offset + local <= batch);
            to_device_async(Tensor::f_from_slice(&y)?, device)
        };
        Ok([self.labels.f_index_select(0, idx)?, drawn(&self.y_d)?, drawn(&self.y_g)?])
    }
}

/// Where a run's real minibatches come from.
enum Minibatches {
    /// The whole dataset on the model's device as it is stored (bytes for byte images: a quarter
    /// of the memory floats would take); each minibatch is gathered and converted there.
    Resident(Tensor),
    /// A streamed dataset's minibatches, read from its file ahead of the step.
    Streamed(Prefetcher),
}

/// What the discriminator phase hands on: its loss and gradients (this rank's), and the
/// logits of both passes (for the report's mean D outputs).
struct DiscriminatorGradients {
    loss: Tensor,
    grads: Vec<Tensor>,
    real_logits: Tensor,
    fake_logits: Tensor,
}

/// The start of a data-parallel run: every rank must be at the same step with the same update
/// counts and the same kind of model state (a `Distributed` error says which differ: load the
/// same checkpoint everywhere), then every tensor of the model's state is made rank 0's.
fn join(model: &Model, g: &ProcessGroup) -> Result<()> {
    let st = model.write();
    let facts = [st.step as f64, st.opt_d.t as f64, st.opt_g.t as f64, f64::from(u8::from(st.ema.is_some()))];
    if !agree(g, &facts, false)?.0 {
        return Err(Error::new(
            ErrorKind::Distributed,
            format!(
                "the processes of the group start from different states (this one: step {}, {} averaged \
                 generator): give every rank the same model or checkpoint",
                facts[0],
                if st.ema.is_some() { "with an" } else { "without an" }
            ),
        ));
    }
    let tensors: Vec<Tensor> = st.named_tensors().into_iter().map(|(_, t)| t).collect();
    tch::no_grad(|| g.broadcast(&tensors.iter().collect::<Vec<_>>(), 0))
}

/// Whether `values` are the same on every rank of `g`, and whether any rank's `flag` is set: one
/// all-reduce (max) of the values, their negations (whose maxima give the smallest) and the flag.
fn agree(g: &ProcessGroup, values: &[f64], flag: bool) -> Result<(bool, bool)> {
    let n = values.len();
    let all: Vec<f64> =
        values.iter().copied().chain(values.iter().map(|v| -v)).chain([f64::from(u8::from(flag))]).collect();
    let r = g.max_over_ranks(&all)?;
    Ok(((0..n).all(|i| r[i] == -r[n + i]), r[2 * n] > 0.0))
}

/// A digest of the model's trained state: the sum and the sum of squares of every tensor, in
/// float64 (ranks with the same state get the same bits). The averaged generator's batch-norm
/// statistics are left out: they are estimated when someone samples or saves (rank 0 saving
/// re-estimates its own), a function of the averaged weights, which are in.
fn digest(model: &Model) -> Result<[f64; 2]> {
    let st = model.read();
    let averaged_statistics: Vec<String> =
        st.ema.as_ref().map(|e| e.buffers.iter().map(|n| n.name.clone()).collect()).unwrap_or_default();
    let parts = st
        .named_tensors()
        .into_iter()
        .filter(|(n, _)| !averaged_statistics.contains(n))
        .map(|(_, t)| {
            let t = t.detach().f_to_kind(Kind::Double)?;
            Ok(Tensor::f_stack(&[t.f_sum(Kind::Double)?, t.f_square()?.f_sum(Kind::Double)?], 0)?)
        })
        .collect::<Result<Vec<_>>>()?;
    // Summed on the device, read once.
    let total = Tensor::f_stack(&parts, 0)?.f_sum_dim_intlist(0, false, Kind::Double)?.f_to_device(Device::Cpu)?;
    let v = Vec::<f64>::try_from(&total)?;
    Ok([v[0], v[1]])
}

/// The update count after `t` (an error at the largest count, before anything changes).
fn next_count(t: u64) -> Result<u64> {
    t.checked_add(1).ok_or_else(|| Error::invalid("Adam's update count is at its maximum"))
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
        Ok(crate::sys::torch_ext::pin_memory(&t)?.f_to_device_(device, t.kind(), true, false)?)
    } else {
        Ok(t)
    }
}
