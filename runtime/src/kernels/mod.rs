//! The arithmetic of drawing: matrix products (one crate, behind one function), and the
//! convolutions as matrix products over channels-last activations.

mod conv;
mod gemm;

pub(crate) use conv::{conv5x5_s2, deconv_s2, reorder_conv_weight, DeconvWeight, Geometry};
pub(crate) use gemm::{gemm, Mat, MatMut};
