//! CUDA graphs: where a GPU is launch-bound (small models, small batches: many short kernels),
//! a sequence of tensor operations is captured once and replayed as one launch.
//!
//! [`CudaGraph::capture`] records what a closure launches on a CUDA device (csrc/cuda_graph.cpp,
//! libtorch's `at::cuda::CUDAGraph`); [`CudaGraph::replay`] re-runs those kernels on the same
//! memory. [`GraphedSampler`] uses it for sampling: the generator's forward pass for one fixed
//! batch size, captured once, then replayed with new latents copied into its input.
//!
//! Only CUDA devices capture: on the CPU (or in a build without the CUDA runtime headers) both
//! refuse with a `Device` error before anything runs, and sampling stays the eager
//! [`Model::generate`], which nothing here changes.

use crate::error::{Error, ErrorKind, Result};
use crate::layers::BnMode;
use crate::model::Model;
use crate::precision::Precision;
use std::os::raw::{c_char, c_int, c_void};
use tch::{Device, Kind, Tensor};

extern "C" {
    /// csrc/cuda_graph.cpp
    fn grn_cuda_graph_supported() -> c_int;
    fn grn_cuda_graph_new(device: c_int, out: *mut *mut c_void, err: *mut c_char, err_len: usize) -> c_int;
    fn grn_cuda_graph_capture_begin(g: *mut c_void, err: *mut c_char, err_len: usize) -> c_int;
    fn grn_cuda_graph_capture_end(g: *mut c_void, err: *mut c_char, err_len: usize) -> c_int;
    fn grn_cuda_graph_replay(g: *mut c_void, err: *mut c_char, err_len: usize) -> c_int;
    fn grn_cuda_graph_free(g: *mut c_void);
}

/// Whether this build of gran can capture CUDA graphs (it found the CUDA runtime headers beside
/// libtorch when it was built). Capturing also needs a CUDA device at run time.
pub fn supported() -> bool {
    // SAFETY: no arguments; returns a constant.
    unsafe { grn_cuda_graph_supported() != 0 }
}

fn call(what: &str, f: impl FnOnce(*mut c_char, usize) -> c_int) -> Result<()> {
    let mut err = [0 as c_char; 512];
    if f(err.as_mut_ptr(), err.len()) == 0 {
        return Ok(());
    }
    // SAFETY: on failure the shim wrote a NUL-terminated message within the buffer.
    let msg = unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned();
    Err(Error::new(ErrorKind::Internal, format!("CUDA graph {what} failed: {msg}")))
}

/// A captured CUDA graph (owned; freed on drop).
pub struct CudaGraph {
    raw: *mut c_void,
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        // SAFETY: `raw` came from grn_cuda_graph_new and is freed once, here.
        unsafe { grn_cuda_graph_free(self.raw) }
    }
}

/// Ends a capture even when the closure fails or panics, restoring the current stream.
struct Capturing<'a>(&'a CudaGraph, bool);

impl Capturing<'_> {
    fn end(mut self) -> Result<()> {
        self.1 = true;
        // SAFETY: a live graph that is capturing.
        call("capture", |e, n| unsafe { grn_cuda_graph_capture_end(self.0.raw, e, n) })
    }
}

impl Drop for Capturing<'_> {
    fn drop(&mut self) {
        if !self.1 {
            // SAFETY: as in end(); the graph is then unusable and dropped by the caller.
            let _ = call("capture", |e, n| unsafe { grn_cuda_graph_capture_end(self.0.raw, e, n) });
        }
    }
}

impl CudaGraph {
    /// Captures what `f` launches on `device` (which must be a CUDA device) into a graph, and
    /// returns it with `f`'s result (tensors `f` created live in the graph's memory: each
    /// replay rewrites them). `f` runs once, during the capture, and must do nothing the host
    /// waits for (no reading tensor values, no copies to the host). On the CPU, or without CUDA
    /// graph support in this build, a `Device` error before `f` runs.
    pub fn capture<T>(device: Device, f: impl FnOnce() -> Result<T>) -> Result<(CudaGraph, T)> {
        let index = match device {
            Device::Cuda(i) => i,
            other => {
                return Err(Error::device(format!(
                    "CUDA graphs capture on a CUDA device, not {other:?}: there the eager path runs"
                )))
            }
        };
        if !supported() {
            return Err(Error::device(
                "this build of gran has no CUDA graph support (no CUDA runtime headers beside libtorch when it was built)",
            ));
        }
        let mut raw = std::ptr::null_mut();
        // SAFETY: `raw` receives a new graph on success.
        call("creation", |e, n| unsafe { grn_cuda_graph_new(index as c_int, &mut raw, e, n) })?;
        let graph = CudaGraph { raw };
        // SAFETY: a live graph.
        call("capture", |e, n| unsafe { grn_cuda_graph_capture_begin(graph.raw, e, n) })?;
        let capturing = Capturing(&graph, false);
        let out = f();
        let ended = capturing.end();
        let out = out?;
        ended?;
        Ok((graph, out))
    }

    /// Re-runs the captured kernels on the current stream.
    pub fn replay(&self) -> Result<()> {
        // SAFETY: a live, captured graph.
        call("replay", |e, n| unsafe { grn_cuda_graph_replay(self.raw, e, n) })
    }
}

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
        let averaged = choice == crate::ema::Choice::Averaged && state.ema.is_some();
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
        let averaged = self.model.generator_choice() == crate::ema::Choice::Averaged && state.ema.is_some();
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

// SAFETY: a captured graph is libtorch's `at::cuda::CUDAGraph`, which may be replayed and freed
// from any thread (replay runs on the calling thread's current stream); gran keeps each graph
// behind a mutex (`GraphCache`), so no two threads use one at once.
unsafe impl Send for CudaGraph {}

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
    pub fn images(
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
