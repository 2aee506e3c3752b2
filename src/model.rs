//! A GRAN model: configuration, both networks, both optimizers and the training step counter,
//! behind one reader-writer lock.
//!
//! Training holds the write lock for one optimizer step at a time; sampling, scoring and saving
//! take the read lock, so they run concurrently with each other and with a training run, and
//! always see the weights between two steps, never half-updated.

use crate::config::ModelConfig;
use crate::device::DeviceSpec;
use crate::error::{Error, ErrorKind, Result};
use crate::infer::lean::LeanGenerator;
use crate::nn::adam::Adam;
use crate::nn::discriminator::Discriminator;
use crate::nn::ema::{Averaged, Choice};
use crate::nn::generator::Generator;
use crate::nn::layers::{Builder, Fill, Named};
use crate::nn::precision::Precision;
use parking_lot::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tch::{Device, Tensor};

/// Everything that changes during training.
pub struct State {
    pub gen: Generator,
    pub(crate) disc: Discriminator,
    pub g_params: Vec<Named>,
    pub g_buffers: Vec<Named>,
    pub(crate) d_params: Vec<Named>,
    pub(crate) d_buffers: Vec<Named>,
    pub(crate) opt_g: Adam,
    pub(crate) opt_d: Adam,
    /// The averaged generator, once a run trained with averaging (crate::nn::ema).
    pub ema: Option<Averaged>,
    /// Completed training steps (one D and one G update each).
    pub(crate) step: u64,
    /// Where adaptive augmentation stands (crate::train::augment): saved in checkpoints, so a
    /// resumed run continues it exactly.
    pub(crate) augment: crate::train::Adaptive,
}

// SAFETY: `State` holds libtorch tensors, which tch marks `Send` but not `Sync`. Shared access
// (`&State`, under the model's read lock) only runs libtorch operators that read the tensors
// without recording gradients (sampling, scoring and saving run under no-grad and in eval mode,
// which does not touch batch-norm statistics); libtorch supports concurrent reads of a tensor.
// Every mutation (optimizer steps, batch-norm statistic updates, gradient buffers, loading)
// happens through `&mut State` under the write lock.
unsafe impl Sync for State {}

impl State {
    /// Every tensor a checkpoint holds, with its name: parameters, buffers, optimizer moments.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for set in [&self.g_params, &self.g_buffers, &self.d_params, &self.d_buffers] {
            out.extend(set.iter().map(|n| (n.name.clone(), n.tensor.shallow_clone())));
        }
        out.extend(self.opt_g.state(&self.g_params, "adam_g"));
        out.extend(self.opt_d.state(&self.d_params, "adam_d"));
        if let Some(ema) = &self.ema {
            out.extend(ema.params.iter().chain(&ema.buffers).map(|n| (n.name.clone(), n.tensor.shallow_clone())));
        }
        out
    }

    /// The generator that `choice` names: the averaged one when asked for and present.
    pub fn generator(&self, choice: Choice) -> &Generator {
        match (&self.ema, choice) {
            (Some(ema), Choice::Averaged) => &ema.gen,
            _ => &self.gen,
        }
    }

    /// Gives the model an averaged generator equal to the raw one (statistics not estimated),
    /// when it has none.
    pub(crate) fn ensure_averaged(&mut self, config: &ModelConfig, device: Device) -> Result<()> {
        if self.ema.is_none() {
            let mut b = Builder::with_fill(config.seed, device, Fill::Uninit);
            let mut ema = Averaged::new(&mut b, config, &config.architecture()?)?;
            ema.copy_from(&self.g_params, &self.g_buffers)?;
            self.ema = Some(ema);
        }
        Ok(())
    }

    /// Whether the averaged generator's statistics lag behind its weights.
    pub(crate) fn averaged_stale(&self) -> bool {
        self.ema.as_ref().is_some_and(|e| !e.fresh(self.step))
    }

    /// Re-estimates the averaged generator's statistics unless they are those of this step.
    pub(crate) fn refresh_averaged(&mut self, config: &ModelConfig, device: Device) -> Result<()> {
        let step = self.step;
        match &mut self.ema {
            Some(ema) if !ema.fresh(step) => {
                ema.estimate_statistics(config.z_dim as usize, config.classes, device, step)
            }
            _ => Ok(()),
        }
    }
}

pub struct Model {
    config: ModelConfig,
    device: Device,
    state: RwLock<State>,
    run: Mutex<RunFlags>,
    /// Precision of sampling and scoring (not of training: a run says its own).
    inference: Mutex<Precision>,
    /// The generator sampling uses (averaged when there is one, unless set otherwise).
    choice: Mutex<Choice>,
    /// Loaded from a generator export: sampling only.
    inference_only: bool,
    /// Captured sampling graphs (CUDA only; crate::infer::graphed).
    pub(crate) graphs: Mutex<crate::infer::graph_cache::GraphCache>,
    /// Counts the write-lock acquisitions: weights read under one read lock belong to one value.
    generation: AtomicU64,
    /// The lean inference forms (crate::infer::lean) of the raw generator and of the averaged one
    /// (indexed by `averaged`), each for the weights of one generation: callers sampling both
    /// at once do not prepare them in turn.
    lean: Mutex<[Option<LeanEntry>; 2]>,
}

struct LeanEntry {
    generation: u64,
    gen: Arc<LeanGenerator>,
}

/// Whether a training run is in progress and whether it was asked to stop, changed together so
/// that a stop request can only reach the run it was made during.
#[derive(Default)]
struct RunFlags {
    training: bool,
    cancel: bool,
}

/// Clears the model's "training" flag when a training run ends, however it ends.
pub(crate) struct TrainingGuard<'a>(&'a Model);

impl Drop for TrainingGuard<'_> {
    fn drop(&mut self) {
        *self.0.run.lock() = RunFlags::default();
    }
}

impl Model {
    /// A freshly initialised model (DCGAN initialisation from `config.seed`).
    pub fn new(config: &ModelConfig) -> Result<Model> {
        Self::build(config, Fill::Init)
    }

    /// A model whose tensors are allocated but not initialised, with an averaged generator
    /// when `averaged`, for a checkpoint to fill.
    pub(crate) fn new_uninit_with(config: &ModelConfig, averaged: bool) -> Result<Model> {
        let model = Self::build(config, Fill::Uninit)?;
        if averaged {
            let mut b = Builder::with_fill(config.seed, model.device, Fill::Uninit);
            model.write().ema = Some(Averaged::new(&mut b, config, &config.architecture()?)?);
        }
        Ok(model)
    }

    /// The name and shape of every tensor a checkpoint of a model of `config` holds (with an
    /// averaged generator when `averaged`), in the order of [`State::named_tensors`], worked
    /// out without allocating them.
    pub(crate) fn layout(config: &ModelConfig, averaged: bool) -> Result<Vec<(String, Vec<i64>)>> {
        let arch = config.architecture()?;
        let mut b = Builder::with_fill(config.seed, Device::Cpu, Fill::ShapeOnly);
        Generator::new(&mut b, config, &arch)?;
        let (g_params, g_buffers) = (std::mem::take(&mut b.params), std::mem::take(&mut b.buffers));
        Discriminator::new(&mut b, config, &arch)?;
        let mut out: Vec<(String, Vec<i64>)> = Vec::new();
        for set in [&g_params, &g_buffers, &b.params, &b.buffers] {
            out.extend(set.iter().map(|n| (n.name.clone(), n.tensor.size())));
        }
        for (prefix, params) in [("adam_g", &g_params), ("adam_d", &b.params)] {
            for n in params {
                for name in crate::nn::adam::moment_names(prefix, &n.name) {
                    out.push((name, n.tensor.size()));
                }
            }
        }
        if averaged {
            let ema = Averaged::new(&mut b, config, &arch)?;
            out.extend(ema.params.iter().chain(&ema.buffers).map(|n| (n.name.clone(), n.tensor.size())));
        }
        Ok(out)
    }

    fn build(config: &ModelConfig, fill: Fill) -> Result<Model> {
        Self::build_with(config, fill, false)
    }

    /// A sampling-only model whose generator is allocated but not initialised, for a generator
    /// export (crate::io::export) to fill: no discriminator weights (shape-only placeholders), no
    /// optimizer state. Training, scoring, GAM and checkpoints refuse it.
    pub(crate) fn new_inference_uninit(config: &ModelConfig) -> Result<Model> {
        Self::build_with(config, Fill::Uninit, true)
    }

    fn build_with(config: &ModelConfig, fill: Fill, inference_only: bool) -> Result<Model> {
        let arch = config.architecture()?;
        let device = config.device.resolve()?;
        let mut b = Builder::with_fill(config.seed, device, fill);
        let gen = Generator::new(&mut b, config, &arch)?;
        let (g_params, g_buffers) = (std::mem::take(&mut b.params), std::mem::take(&mut b.buffers));
        let disc = if inference_only {
            Discriminator::new(&mut Builder::with_fill(config.seed, Device::Cpu, Fill::ShapeOnly), config, &arch)?
        } else {
            Discriminator::new(&mut b, config, &arch)?
        };
        let (d_params, d_buffers) = (std::mem::take(&mut b.params), std::mem::take(&mut b.buffers));
        let opt_g = Adam::new(if inference_only { &[] } else { &g_params })?;
        let opt_d = Adam::new(&d_params)?;
        let mut config = config.clone();
        config.device = DeviceSpec::of(device);
        let state = State {
            gen,
            disc,
            g_params,
            g_buffers,
            d_params,
            d_buffers,
            opt_g,
            opt_d,
            ema: None,
            step: 0,
            augment: Default::default(),
        };
        Ok(Model {
            config,
            device,
            state: RwLock::new(state),
            run: Mutex::new(RunFlags::default()),
            inference: Mutex::new(Precision::Fp32),
            choice: Mutex::new(Choice::default()),
            inference_only,
            graphs: Mutex::new(Default::default()),
            generation: AtomicU64::new(0),
            lean: Mutex::new([None, None]),
        })
    }

    /// Whether the model was loaded from a generator export: it samples, but holds no
    /// discriminator or optimizer state.
    pub fn inference_only(&self) -> bool {
        self.inference_only
    }

    /// `InvalidArgument` naming `what` when the model is a generator export.
    pub(crate) fn require_full(&self, what: &str) -> Result<()> {
        if self.inference_only {
            return Err(Error::invalid(format!(
                "{what} needs a full model: this one was exported for inference (generator only, no \
                 discriminator or optimizer state); load the training checkpoint instead"
            )));
        }
        Ok(())
    }

    /// The configuration; its `device` names the concrete device the model lives on.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// The precision sampling and scoring run in. Float32 unless set; not saved with the model.
    pub(crate) fn precision(&self) -> Precision {
        *self.inference.lock()
    }

    /// Sets the precision of later sampling and scoring calls (calls in flight keep theirs).
    pub fn set_precision(&self, p: Precision) {
        *self.inference.lock() = p;
    }

    /// Which generator later sampling calls use (calls in flight keep theirs); not saved.
    pub(crate) fn generator_choice(&self) -> Choice {
        *self.choice.lock()
    }

    pub fn set_generator_choice(&self, c: Choice) {
        *self.choice.lock() = c;
    }

    /// Whether the model has an averaged generator.
    pub fn has_averaged(&self) -> bool {
        self.state.read().ema.is_some()
    }

    /// Training steps completed so far.
    pub fn step(&self) -> u64 {
        self.state.read().step
    }

    /// Where adaptive augmentation stands: the probability the model's next adaptive run
    /// starts from, and what it gathered since its last adjustment (crate::train::augment).
    pub fn augment_state(&self) -> crate::train::Adaptive {
        self.state.read().augment
    }

    /// Trainable parameter counts of (generator, discriminator).
    pub fn parameter_counts(&self) -> (i64, i64) {
        let s = self.state.read();
        let count = |v: &[Named]| v.iter().map(|n| n.tensor.numel() as i64).sum::<i64>();
        (count(&s.g_params), count(&s.d_params))
    }

    pub fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read()
    }

    /// The read lock, with the averaged generator's statistics estimated for its current
    /// weights first when they lag behind (then briefly the write lock, downgraded without
    /// letting a training step in between). Everything that samples or saves reads through it.
    /// Never call it while holding a lock on this model.
    pub fn read_fresh(&self) -> Result<RwLockReadGuard<'_, State>> {
        {
            let st = self.state.read();
            if !st.averaged_stale() {
                return Ok(st);
            }
        }
        let mut st = self.write();
        st.refresh_averaged(&self.config, self.device)?;
        Ok(RwLockWriteGuard::downgrade(st))
    }

    /// The write lock. Whatever is derived from the weights (the lean generator) is prepared
    /// again after it.
    pub fn write(&self) -> RwLockWriteGuard<'_, State> {
        let st = self.state.write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        st
    }

    /// The lean inference form (crate::infer::lean) of the averaged generator (`averaged`, which the
    /// model must have) or the raw one, for the weights `state` holds: `state` is the caller's
    /// read guard on this model. Prepared on first use and kept until the weights change.
    pub(crate) fn lean_generator(&self, state: &State, averaged: bool) -> Result<Arc<LeanGenerator>> {
        // Under the caller's read lock no writer is in, so the generation names these weights.
        let generation = self.generation.load(Ordering::Acquire);
        let mut cache = self.lean.lock();
        let slot = &mut cache[usize::from(averaged)];
        if let Some(e) = slot.as_ref().filter(|e| e.generation == generation) {
            return Ok(e.gen.clone());
        }
        let gen = Arc::new(LeanGenerator::new(state.generator(if averaged { Choice::Averaged } else { Choice::Raw }))?);
        *slot = Some(LeanEntry { generation, gen: gen.clone() });
        Ok(gen)
    }

    /// Asks the training run in progress on this model, if any, to stop before its next step.
    /// Without a run in progress it does nothing. Any thread.
    pub fn cancel(&self) {
        let mut run = self.run.lock();
        run.cancel = run.training;
    }

    pub(crate) fn cancel_requested(&self) -> bool {
        self.run.lock().cancel
    }

    /// Marks the model as training until the guard drops, or `Busy` if a run is in progress.
    pub(crate) fn begin_training(&self) -> Result<TrainingGuard<'_>> {
        let mut run = self.run.lock();
        if run.training {
            return Err(Error::new(ErrorKind::Busy, "this model is already training"));
        }
        *run = RunFlags { training: true, cancel: false };
        Ok(TrainingGuard(self))
    }
}
