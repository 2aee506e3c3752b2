//! The arithmetic of drawing: matrix products (one crate, behind one function), and the
//! convolutions as matrix products over channels-last activations.

mod conv;
mod gemm;

pub(crate) use conv::{
    conv5x5_s2, deconv5x5_s2, reorder_conv_weight, upconv3x3, DeconvWeight, Geometry, TAPS, UP_TAPS,
};
pub(crate) use gemm::{gemm, Mat, MatMut};
