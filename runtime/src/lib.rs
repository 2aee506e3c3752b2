//! libgran_runtime: draws images from the models gran trains, with no libtorch, no C++ and no
//! CUDA. It loads the files `gran export` writes (and the generator of a training checkpoint)
//! and draws through the same C calls as libgran (include/gran_runtime.h, a subset of gran.h),
//! natively and in WebAssembly.
//!
//! Layers: `model` (reading files, the folded generator and its drawing), `kernels` (matrix
//! products and convolutions), `sample` (chunks, threads, caller buffers), `png`, and `ffi`
//! (the C functions: argument checks, handles, statuses; no arithmetic). gran_common holds what
//! it shares with libgran: the random numbers, the checksum, the C types, the boundary and the
//! classes a conditional model's images are drawn as.

mod error;
pub mod ffi;
mod kernels;
mod model;
mod pixels;
#[cfg(unix)]
mod png;
mod sample;
mod threads;
#[cfg(target_arch = "wasm32")]
mod wasm;

pub use error::{Error, Result};
pub use gran_common::classes::{drawn_class, Classes};
pub use model::{Config, Model, Storage, Upsampling};
pub use pixels::PixelFormat;
pub use sample::{check_latents, latents_into, Latents};
pub use threads::{get as num_threads, set as set_num_threads, MAX_THREADS};
