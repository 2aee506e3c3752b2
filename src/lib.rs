//! gran: Generative Recurrent Adversarial Networks (Im et al. 2016) on libtorch.
//!
//! The Rust core: plain Rust over `tch`, with no raw pointers. The C interface lives in `ffi`
//! and only checks arguments, maps handles and statuses, and calls into this core.

pub mod config;
pub mod cuda_graph;
pub mod data;
pub mod device;
pub mod dist;
pub mod error;
pub mod evaluator;
pub mod ffi;
pub mod png;
pub mod rng;

pub use config::ModelConfig;
pub use device::DeviceSpec;
pub use error::{Error, ErrorKind, Result};

pub mod adam;
pub mod atomic_file;
pub mod checkpoint;
pub mod discriminator;
pub mod ema;
pub mod export;
pub mod gam;
pub mod generator;
pub mod layers;
pub mod lean;
pub mod limits;
pub mod log;
pub mod model;
pub mod precision;
pub mod sample;
pub mod snapshot;
pub mod step_graph;
pub mod torch_ext;
pub mod train;
pub mod trainer;

pub use data::Dataset;
pub use model::Model;
pub use precision::Precision;
pub use train::{train, Progress, TrainConfig};
