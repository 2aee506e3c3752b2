//! Drawing images from a model: the eager and lean forward passes, canvases per drawing step,
//! discriminator scores, and sampling through captured CUDA graphs.

pub mod graphed;
pub mod lean;
pub mod sample;
