//! libtorch operators that tch has no binding for (operators on lists of tensors), called
//! through the small C++ shims in csrc/. The one place outside the FFI layer that handles raw
//! tensor handles; what it exports is safe Rust.

use crate::error::{Error, ErrorKind, Result};
use std::os::raw::{c_char, c_int};
use tch::Tensor;
use torch_sys::C_tensor;

extern "C" {
    /// csrc/fused_adam.cpp
    fn grn_fused_adam(
        params: *const *mut C_tensor,
        grads: *const *mut C_tensor,
        exp_avgs: *const *mut C_tensor,
        exp_avg_sqs: *const *mut C_tensor,
        step: *mut C_tensor,
        n: usize,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
}

/// Hyper-parameters of one fused Adam update.
#[derive(Debug, Clone, Copy)]
pub struct AdamArgs {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// L2 (added to the gradient, as torch.optim.Adam), not decoupled.
    pub weight_decay: f64,
    pub eps: f64,
}

/// `at::_fused_adam_`: one Adam update of every `params[i]` in place, from `grads[i]`, with the
/// moments `exp_avgs[i]` and `exp_avg_sqs[i]` updated in place; `step` (a float scalar on the
/// parameters' device) is the update count the bias corrections use, read and not changed.
/// All lists have the same length; the tensors of one index share shape, dtype and device.
pub fn fused_adam_(
    params: &[&Tensor],
    grads: &[&Tensor],
    exp_avgs: &[&Tensor],
    exp_avg_sqs: &[&Tensor],
    step: &Tensor,
    a: &AdamArgs,
) -> Result<()> {
    let n = params.len();
    if grads.len() != n || exp_avgs.len() != n || exp_avg_sqs.len() != n {
        return Err(Error::new(ErrorKind::Internal, "fused Adam: lists of different lengths"));
    }
    if n == 0 {
        return Ok(());
    }
    let handles = |ts: &[&Tensor]| ts.iter().map(|t| t.as_ptr() as *mut C_tensor).collect::<Vec<_>>();
    let (p, g, m, v) = (handles(params), handles(grads), handles(exp_avgs), handles(exp_avg_sqs));
    let mut err = [0 as c_char; 512];
    // SAFETY: every handle is a live tensor borrowed for the duration of the call; the shim reads
    // `n` entries of each array, does not keep them, and writes at most `err.len()` bytes to `err`.
    let rc = unsafe {
        grn_fused_adam(
            p.as_ptr(),
            g.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            step.as_ptr() as *mut C_tensor,
            n,
            a.lr,
            a.beta1,
            a.beta2,
            a.weight_decay,
            a.eps,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    if rc != 0 {
        // SAFETY: on failure the shim wrote a NUL-terminated message within the buffer.
        let msg = unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned();
        return Err(Error::new(ErrorKind::Internal, format!("fused Adam update failed: {msg}")));
    }
    Ok(())
}
