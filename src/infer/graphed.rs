//! Sampling through captured CUDA graphs: where a GPU is launch-bound (small models, small
//! batches), the generator's forward pass for one batch size is captured once
//! (crate::sys::cuda_graph) and replayed with new latents copied into its input. On the CPU
//! sampling stays the eager or lean forward, which nothing here changes.

use crate::error::{Error, Result};
use crate::model::Model;
use crate::nn::layers::BnMode;
use crate::nn::precision::Precision;
use crate::sys::cuda_graph::CudaGraph;
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
        if model.config().conditional() {
            return Err(Error::invalid(
                "graphed sampling takes latents only, and this model is class-conditional: sample eagerly \
                 (Model::generate_classes)",
            ));
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
        crate::infer::sample::check_latents(z, 0)?;
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
