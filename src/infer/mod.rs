//! Drawing images from a model: the eager and lean forward passes, canvases per drawing step,
//! discriminator scores, sampling through captured CUDA graphs, and latent walks.

pub(crate) mod graph_cache;
pub(crate) mod graphed;
pub(crate) mod lean;
mod pixels;
pub(crate) mod sample;
pub(crate) mod walk;
