//! The arithmetic of drawing: matrix products (one crate, behind one function), and the
//! convolutions as matrix products over channels-last activations.

mod conv;
mod gemm;

pub(crate) use conv::{conv5x5_s2, deconv5x5_s2, DeconvWeight, Geometry, TAPS};
pub(crate) use gemm::{gemm, Mat, MatMut};
