//! The averaged generator: an exponential moving average of the generator's weights (StudioGAN's
//! `g_ema`, StyleGAN's `G_ema`), with batch-norm statistics of its own.
//!
//! After every training step, `avg <- decay * avg + (1 - decay) * w` for each generator
//! parameter (before the run's `ema_start` step: `avg <- w`). The raw generator's running
//! statistics belong to the raw weights: borrowed by averaged weights they normalise with the
//! wrong means and variances (docs/RESULTS.md, "Generator averaging"). So the averaged generator's statistics are
//! re-estimated from its own weights, as BigGAN's "standing statistics": a fixed set of
//! latents ([`STANDING_BATCHES`] batches of the run's batch size, the same latents every time)
//! goes through it with batch statistics, and each batch-norm slot keeps the cumulative average
//! of what it saw. They are a pure function of the averaged weights, so a resumed run gets the
//! same ones as a run that never stopped.

use crate::config::{Architecture, ModelConfig};
use crate::error::Result;
use crate::nn::generator::Generator;
use crate::nn::layers::{BnMode, Builder, Named};
use crate::rng::{stream, Stream};
use tch::{Device, Tensor};

/// The prefix of the averaged generator's tensors in a checkpoint ("ema.g.dec.fc.weight").
pub(crate) const PREFIX: &str = "ema.";

/// Batches of latents the standing statistics are estimated over.
pub const STANDING_BATCHES: u32 = 16;

/// The largest batch a checkpoint may ask the estimate to use (a training batch is bounded by
/// its dataset; a file is not).
pub(crate) const MAX_STATS_BATCH: u32 = 1 << 16;

/// The batch size of the estimate until a run sets its own.
pub(crate) const DEFAULT_BATCH: u32 = 64;

/// The averaged generator of a model.
pub struct Averaged {
    pub(crate) gen: Generator,
    /// Averaged weights, in the order of the raw generator's parameters.
    pub params: Vec<Named>,
    /// Its own batch-norm running statistics, in the order of the raw generator's buffers.
    pub buffers: Vec<Named>,
    /// The model step the statistics were estimated at (None: not since the weights changed).
    pub stats_step: Option<u64>,
    /// The batch size of that estimate.
    pub stats_batch: u32,
    /// The batch size to estimate with: the last training run's.
    pub(crate) batch: u32,
}

impl Averaged {
    /// A generator of the model's architecture, its tensors named with [`PREFIX`], allocated
    /// as `b` fills them (uninitialised or shape-only: `follow` or a checkpoint sets them).
    pub(crate) fn new(b: &mut Builder, cfg: &ModelConfig, arch: &Architecture) -> Result<Self> {
        let (outer_params, outer_buffers) = (std::mem::take(&mut b.params), std::mem::take(&mut b.buffers));
        let gen = Generator::new(b, cfg, arch)?;
        let mut params = std::mem::replace(&mut b.params, outer_params);
        let mut buffers = std::mem::replace(&mut b.buffers, outer_buffers);
        for n in params.iter_mut().chain(buffers.iter_mut()) {
            n.name = format!("{PREFIX}{}", n.name);
            // Averaged weights are never trained: no gradient is recorded for them.
            if n.tensor.requires_grad() {
                n.tensor = n.tensor.f_detach_()?;
            }
        }
        Ok(Averaged { gen, params, buffers, stats_step: None, stats_batch: 0, batch: DEFAULT_BATCH })
    }

    /// Sets the averaged weights and statistics to the raw generator's (`params`, `buffers`).
    pub(crate) fn copy_from(&mut self, params: &[Named], buffers: &[Named]) -> Result<()> {
        let _no_grad = tch::no_grad_guard();
        for (a, r) in self.params.iter().chain(&self.buffers).zip(params.iter().chain(buffers)) {
            a.tensor.shallow_clone().f_copy_(&r.tensor)?;
        }
        self.stats_step = None;
        Ok(())
    }

    /// One averaging step towards the raw weights `params`: avg += (1 - decay) (w - avg).
    /// The statistics are stale afterwards.
    pub(crate) fn update(&mut self, params: &[Named], decay: f64) -> Result<()> {
        let avg: Vec<&Tensor> = self.params.iter().map(|n| &n.tensor).collect();
        let raw: Vec<&Tensor> = params.iter().map(|n| &n.tensor).collect();
        crate::sys::torch_ext::foreach_lerp_(&avg, &raw, 1.0 - decay)?;
        self.stats_step = None;
        Ok(())
    }

    /// Whether the statistics were estimated for these weights (model step `step`).
    pub(crate) fn fresh(&self, step: u64) -> bool {
        self.stats_step == Some(step) && self.stats_batch == self.batch
    }

    /// Re-estimates the batch-norm statistics from the averaged weights, on `device` in float32:
    /// [`STANDING_BATCHES`] batches of `self.batch` latents from a fixed stream, each slot's
    /// running mean and variance the average over the batches. Records `step` as their step.
    ///
    /// A conditional generator's batches draw their classes uniformly from a fixed stream too,
    /// as training's generated minibatches do.
    pub(crate) fn estimate_statistics(&mut self, z_dim: usize, classes: u32, device: Device, step: u64) -> Result<()> {
        let batch = self.batch;
        let _no_grad = tch::no_grad_guard();
        let s = Stream::new(0, stream::STANDING);
        let sy = Stream::new(0, stream::STANDING_CLASS);
        let n = batch.max(2) as usize;
        for k in 0..STANDING_BATCHES {
            let z = s.sub(u64::from(k)).normals(0, n * z_dim);
            let z = Tensor::f_from_slice(&z)?.f_view([n as i64, z_dim as i64])?.f_to_device(device)?;
            let y = match classes {
                0 => None,
                c => {
                    let y: Vec<i64> =
                        (0..n as u64).map(|i| sy.sub(u64::from(k)).below(i, u64::from(c)) as i64).collect();
                    Some(Tensor::f_from_slice(&y)?.f_to_device(device)?)
                }
            };
            self.gen.forward_with(&z, y.as_ref(), BnMode::Accumulate(k + 1), false)?;
        }
        self.stats_step = Some(step);
        self.stats_batch = batch;
        Ok(())
    }
}

/// Which generator sampling, step pictures, GAM and the evaluator use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Choice {
    /// The averaged generator when the model has one, else the raw one (the default).
    #[default]
    Averaged,
    /// The generator as trained, step by step.
    Raw,
}
