//! CUDA graphs: where a GPU is launch-bound (small models, small batches: many short kernels),
//! a sequence of tensor operations is captured once and replayed as one launch.
//!
//! [`CudaGraph::capture`] records what a closure launches on a CUDA device (csrc/cuda_graph.cpp,
//! libtorch's `at::cuda::CUDAGraph`); [`CudaGraph::replay`] re-runs those kernels on the same
//! memory. Sampling (crate::infer::graphed) and the training step (crate::train::step_graph)
//! use it.
//!
//! Only CUDA devices capture: on the CPU (or in a build without the CUDA runtime headers) a
//! capture is refused with a `Device` error before anything runs.

use super::call;
use crate::error::{Error, ErrorKind, Result};
use std::os::raw::{c_char, c_int, c_void};
use tch::Device;

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
pub(crate) fn supported() -> bool {
    // SAFETY: no arguments; returns a constant.
    unsafe { grn_cuda_graph_supported() != 0 }
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
        call(ErrorKind::Internal, "CUDA graph capture", |e, n| unsafe { grn_cuda_graph_capture_end(self.0.raw, e, n) })
    }
}

impl Drop for Capturing<'_> {
    fn drop(&mut self) {
        if !self.1 {
            // SAFETY: as in end(); the graph is then unusable and dropped by the caller.
            let _ = call(ErrorKind::Internal, "CUDA graph capture", |e, n| unsafe {
                grn_cuda_graph_capture_end(self.0.raw, e, n)
            });
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
        call(ErrorKind::Internal, "CUDA graph creation", |e, n| unsafe {
            grn_cuda_graph_new(index as c_int, &mut raw, e, n)
        })?;
        let graph = CudaGraph { raw };
        // SAFETY: a live graph.
        call(ErrorKind::Internal, "CUDA graph capture", |e, n| unsafe {
            grn_cuda_graph_capture_begin(graph.raw, e, n)
        })?;
        let capturing = Capturing(&graph, false);
        let out = f();
        let ended = capturing.end();
        let out = out?;
        ended?;
        Ok((graph, out))
    }

    /// Re-runs the captured kernels on the current stream.
    pub(crate) fn replay(&self) -> Result<()> {
        // SAFETY: a live, captured graph.
        call(ErrorKind::Internal, "CUDA graph replay", |e, n| unsafe { grn_cuda_graph_replay(self.raw, e, n) })
    }
}

// SAFETY: a captured graph is libtorch's `at::cuda::CUDAGraph`, which may be replayed and freed
// from any thread (replay runs on the calling thread's current stream); gran keeps each graph
// behind a mutex (`GraphCache`), so no two threads use one at once.
unsafe impl Send for CudaGraph {}
