//! Drawing images from a model: the eager and lean forward passes, canvases per drawing step,
//! discriminator scores, and sampling through captured CUDA graphs.

pub(crate) mod graph_cache;
pub(crate) mod graphed;
pub(crate) mod lean;
mod pixels;
pub(crate) mod sample;
