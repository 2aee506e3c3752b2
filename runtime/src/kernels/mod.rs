//! The arithmetic of drawing: matrix products (one crate, behind one function), convolutions
//! as matrix products with im2col / col2im, and the element-wise maps.

mod conv;
mod gemm;

pub(crate) use conv::{conv5x5_s2, deconv5x5_s2, Geometry};
pub(crate) use gemm::{gemm, Mat, MatMut};
