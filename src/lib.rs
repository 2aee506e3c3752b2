//! gran: Generative Recurrent Adversarial Networks (Im et al. 2016) on libtorch.
//!
//! The Rust core is plain Rust over `tch`. Every call into C++ lives in `sys`; the C interface
//! lives in `ffi` and only checks arguments, maps handles and statuses, and calls into this
//! core. DEVELOPERS.md has the module map and the rules of each layer.
//!
//! The modules are private; what a Rust program (the `gran` tool, the examples, the tests) uses
//! is re-exported here.

mod config;
mod device;
mod error;
mod infer;
mod io;
mod limits;
mod metrics;
mod model;
mod nn;
mod sys;

pub mod data;
pub mod dist;
pub mod ffi;
pub mod log;
/// The counter-based random numbers behind every latent, initial weight and minibatch (shared
/// with libgran_runtime).
pub use gran_common::rng;
pub mod train;

pub use config::{ModelConfig, Upsampling, MAX_CLASSES};
pub use data::Dataset;
pub use device::{cuda_device_count, deterministic, DeviceSpec};
pub use error::{Error, ErrorKind, Result};
pub use gran_common::classes::Classes;
pub use infer::graph_cache::GraphCache;
pub use infer::graphed::GraphedSampler;
pub use infer::sample::{Samples, Scoring};
pub use infer::walk::{slerp, MAX_WALK_FRAMES};
pub use metrics::evaluator::{frechet_distance, Evaluator, EvaluatorConfig, Quality};
pub use metrics::gam::{
    gam, AccuracyForm, GamConfig, GamResult, Ranking, Verdict, DEFAULT_SCORE_BATCH, DEFAULT_TOLERANCE,
};
pub use model::Model;
pub use nn::ema::{Choice, STANDING_BATCHES};
pub use nn::layers::{BnMode, Named};
pub use nn::precision::Precision;
pub use sys::cuda_graph::CudaGraph;
pub use train::{train, Progress, TrainConfig};

/// Files: training checkpoints and generator exports.
pub mod checkpoint {
    pub use crate::io::checkpoint::save;
    pub use crate::io::export::export;
    pub use crate::io::{checksum, load, Storage};
}

/// Image grids as PNG files.
pub mod png {
    pub use crate::io::png::{encode_grid, write_grid, write_grid_pixels};
}

/// Sequences of image grids as looping GIF files.
pub mod gif {
    pub use crate::io::gif::{write_animation, write_animation_pixels, MAX_DELAY_MS, MAX_FRAMES};
}

/// Whether autocast is on for CUDA (`cuda`) or the CPU on this thread (for tests that check a
/// run leaves it as it found it).
#[doc(hidden)]
pub use sys::torch_ext::autocast_enabled;
