//! The captured sampling graphs of one model (CUDA only): `Model::generate_chunked` draws
//! batches of up to 64 images through them (crate::sys::cuda_graph), the same operations as
//! the eager forward pass without their launch overhead.

use crate::error::Result;
use crate::nn::precision::Precision;
use crate::sys::cuda_graph::{supported, CudaGraph};
use tch::{Device, Tensor};

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
