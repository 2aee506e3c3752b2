//! Sampling through captured CUDA graphs: where a GPU is launch-bound (small models, small
//! batches), the generator's forward pass for one batch size is captured once
//! (crate::sys::cuda_graph) and replayed with new latents copied into its input. On the CPU
//! sampling stays the eager or lean forward, which nothing here changes.

use crate::error::{Error, Result};
use crate::model::Model;
use crate::nn::layers::BnMode;
use crate::nn::precision::Precision;
use crate::sys::cuda_graph::{supported, CudaGraph};
use tch::{Device, Kind, Tensor};

/// Sampling through a captured generator forward pass, for one fixed batch size on a model on a
/// CUDA device: latents are copied into the graph's input, the graph is replayed, and the images
/// are copied out, as [`Model::generate`] computes them (the same operations, without their
/// launch overhead).
///
/// The graph reads the model's weights and batch-norm statistics where they are: training
/// updates them in place, so later replays draw with the trained weights. It was captured in
/// the model's precision at the time; another precision since then is refused.
pub struct GraphedSampler<'m> {
    model: &'m Model,
    count: usize,
    precision: Precision,
    /// Whether the graph reads the averaged generator (else the raw one).
    averaged: bool,
    z: Tensor,
    images: Tensor,
    graph: CudaGraph,
}

impl<'m> GraphedSampler<'m> {
    /// Captures the forward pass of `model`'s generator for batches of `count` images. A model
    /// that is not on a CUDA device is refused (`Device` error) and nothing is run.
    pub fn new(model: &'m Model, count: usize) -> Result<Self> {
        let device = model.device();
        if !device.is_cuda() {
            return Err(Error::device(format!(
                "graphed sampling needs a model on a CUDA device, this one is on {device:?}: sample eagerly (Model::generate)"
            )));
        }
        if count == 0 {
            return Err(Error::invalid("count is 0: a graph for at least one image"));
        }
        let _no_grad = tch::no_grad_guard();
        let precision = model.precision();
        let z = Tensor::f_zeros([count as i64, model.config().z_dim as i64], (Kind::Float, device))?;
        let state = model.read_fresh()?;
        let choice = model.generator_choice();
        let averaged = choice == crate::nn::ema::Choice::Averaged && state.ema.is_some();
        let gen = state.generator(choice);
        let forward = || precision.run(device, || gen.forward(&z, BnMode::Eval, false)).map(|d| d.image);
        // Once eagerly first: libraries' lazy set-up (handles, workspaces) stays out of the graph.
        let _ = forward()?;
        let (graph, images) = CudaGraph::capture(device, forward)?;
        drop(state);
        Ok(GraphedSampler { model, count, precision, averaged, z, images, graph })
    }

    /// The batch size of the graph.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The images ([count, C, H, W], float32 in [0, 1], on the CPU) of latents `z` ([count *
    /// z_dim] row-major), as `Model::generate(z, count, false)` gives them.
    pub fn generate(&self, z: &[f32]) -> Result<Tensor> {
        let z_dim = self.model.config().z_dim as usize;
        if z.len() != self.count * z_dim {
            return Err(Error::invalid(format!(
                "{} latent values given to a graph of {} images of z_dim {z_dim}: expected {}",
                z.len(),
                self.count,
                self.count * z_dim
            )));
        }
        if let Some(i) = z.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(format!("latent value {i} is {}: must be finite", z[i])));
        }
        if self.model.precision() != self.precision {
            return Err(Error::invalid("the model's precision changed since the graph was captured: capture again"));
        }
        let _no_grad = tch::no_grad_guard();
        // No training step writes the weights while the graph reads them.
        let state = self.model.read_fresh()?;
        let averaged = self.model.generator_choice() == crate::nn::ema::Choice::Averaged && state.ema.is_some();
        if averaged != self.averaged {
            return Err(Error::invalid(
                "the model's sampling generator changed since the graph was captured (averaged or raw): capture again",
            ));
        }
        let host = Tensor::f_from_slice(z)?.f_view([self.count as i64, z_dim as i64])?;
        self.z.shallow_clone().f_copy_(&host)?;
        self.graph.replay()?;
        Ok(self.images.f_to_device(Device::Cpu)?)
    }
}


/// What identifies a captured sampling graph of one model: the batch size, the precision, and
/// whether it reads the averaged generator.
type GraphKey = (usize, Precision, bool);

struct CachedGraph {
    key: GraphKey,
    z: Tensor,
    images: Tensor,
    graph: CudaGraph,
    last_used: u64,
}

/// The captured sampling graphs of one model, for `Model::generate_chunked` on a CUDA device:
/// batches of at most [`GraphCache::MAX_COUNT`] images, at most [`GraphCache::MAX_GRAPHS`]
/// graphs (the least recently used is dropped). A capture that fails turns graphs off for the
/// model (eager sampling gives the same images) and logs why. `GRAN_CUDA_GRAPHS=0` in the
/// environment turns them off for the process.
#[derive(Default)]
pub struct GraphCache {
    graphs: Vec<CachedGraph>,
    clock: u64,
    failed: bool,
}

impl GraphCache {
    /// Batches larger than this run eagerly (they are not launch-bound).
    pub const MAX_COUNT: usize = 64;
    /// Graphs kept per model (each holds its own activations' memory).
    pub const MAX_GRAPHS: usize = 8;

    /// Whether a batch of `count` images on `device` would be drawn through a graph.
    pub fn applies(&self, device: Device, count: usize) -> bool {
        device.is_cuda() && count <= Self::MAX_COUNT && !self.failed && supported() && enabled_by_environment()
    }

    /// The images of latents `z` ([count, z_dim] on the host) through the graph of `key`,
    /// captured on first use from `forward` (the eager forward pass of the batch it is given).
    /// `Ok(None)`: graphs are off for this model (the caller samples eagerly).
    pub(crate) fn images(
        &mut self,
        key: GraphKey,
        device: Device,
        z: &Tensor,
        forward: &dyn Fn(&Tensor) -> Result<Tensor>,
    ) -> Result<Option<Tensor>> {
        self.clock += 1;
        let i = match self.graphs.iter().position(|g| g.key == key) {
            Some(i) => i,
            None => match Self::capture(key, device, z, forward) {
                Ok(g) => {
                    if self.graphs.len() >= Self::MAX_GRAPHS {
                        let oldest = (0..self.graphs.len()).min_by_key(|&i| self.graphs[i].last_used).expect("full");
                        self.graphs.swap_remove(oldest);
                    }
                    self.graphs.push(g);
                    self.graphs.len() - 1
                }
                Err(e) => {
                    self.failed = true;
                    crate::log::log(
                        crate::log::Level::Warn,
                        &format!("CUDA graph sampling is off for this model: {}", e.message),
                    );
                    return Ok(None);
                }
            },
        };
        let g = &mut self.graphs[i];
        g.last_used = self.clock;
        g.z.shallow_clone().f_copy_(z)?;
        g.graph.replay()?;
        Ok(Some(g.images.f_to_device(Device::Cpu)?))
    }

    fn capture(
        key: GraphKey,
        device: Device,
        z: &Tensor,
        forward: &dyn Fn(&Tensor) -> Result<Tensor>,
    ) -> Result<CachedGraph> {
        let input = z.f_to_device(device)?;
        // Once eagerly first: libraries' lazy set-up (handles, workspaces) stays out of the graph.
        let _ = forward(&input)?;
        let (graph, images) = CudaGraph::capture(device, || forward(&input))?;
        Ok(CachedGraph { key, z: input, images, graph, last_used: 0 })
    }
}

pub(crate) fn enabled_by_environment() -> bool {
    static ON: once_cell::sync::Lazy<bool> =
        once_cell::sync::Lazy::new(|| std::env::var("GRAN_CUDA_GRAPHS").map_or(true, |v| v.trim() != "0"));
    *ON
}
