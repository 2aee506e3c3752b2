//! libtorch calls that tch has no binding for, or binds in a way gran cannot use (operators on
//! lists of tensors, a chosen leaky-ReLU slope, pinning without a deprecated argument, autocast
//! with bfloat16 on the CPU as on CUDA), called
//! through the small C++ shims in csrc/.

use super::{call, handle, handle_or_null, handles};
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
        found_inf: *mut C_tensor,
        lr_tensor: *mut C_tensor,
        n: usize,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;

    /// csrc/mkldnn_conv.cpp
    fn grn_conv_transpose_prepack(
        w: *mut C_tensor,
        stride: i64,
        padding: i64,
        output_padding: i64,
        out: *mut *mut C_tensor,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn grn_conv_transpose_packed(
        x: *mut C_tensor,
        packed: *mut C_tensor,
        bias: *mut C_tensor,
        stride: i64,
        padding: i64,
        output_padding: i64,
        relu: c_int,
        out: *mut *mut C_tensor,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;

    fn grn_conv_prepack(
        w: *mut C_tensor,
        stride: i64,
        padding: i64,
        out: *mut *mut C_tensor,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn grn_conv_packed(
        x: *mut C_tensor,
        packed: *mut C_tensor,
        bias: *mut C_tensor,
        stride: i64,
        padding: i64,
        relu: c_int,
        out: *mut *mut C_tensor,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;

    /// csrc/pin_memory.cpp
    fn grn_pin_memory(x: *mut C_tensor, out: *mut *mut C_tensor, err: *mut c_char, err_len: usize) -> c_int;

    /// csrc/autocast.cpp
    fn grn_autocast_enter(
        cuda: c_int,
        was_enabled: *mut c_int,
        was_dtype: *mut c_int,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn grn_autocast_exit(cuda: c_int, was_enabled: c_int, was_dtype: c_int, err: *mut c_char, err_len: usize) -> c_int;
    fn grn_autocast_enabled(cuda: c_int) -> c_int;

    /// csrc/non_finite.cpp
    fn grn_non_finite(
        xs: *const *mut C_tensor,
        n: usize,
        out: *mut *mut C_tensor,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;

    /// csrc/leaky_relu.cpp
    fn grn_foreach_lerp_(
        ema: *const *mut C_tensor,
        x: *const *mut C_tensor,
        n: usize,
        weight: f64,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn grn_set_cudnn_deterministic(on: c_int);
    fn grn_cudnn_deterministic() -> c_int;
    fn grn_cudnn_benchmark() -> c_int;
    fn grn_leaky_relu_(
        x: *mut C_tensor,
        negative_slope: f64,
        out: *mut *mut C_tensor,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
}

/// Calls a shim that returns one new tensor handle: `f(out, err, err_len)` as the shims take
/// them. `what` names the operation in the error.
fn new_tensor(what: &str, f: impl FnOnce(*mut *mut C_tensor, *mut c_char, usize) -> c_int) -> Result<Tensor> {
    let mut out: *mut C_tensor = std::ptr::null_mut();
    call(ErrorKind::Internal, what, |e, n| f(&mut out, e, n))?;
    if out.is_null() {
        return Err(Error::internal(format!("{what} returned no tensor")));
    }
    // SAFETY: `out` is a new tensor handle that nothing else owns.
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// `at::leaky_relu_(x, negative_slope)`: `x` overwritten with the result (which is returned, as
/// tch's in-place operators do). Autograd accepts it for `negative_slope > 0` where nothing else
/// saved `x` for its backward (a batch norm's or convolution's output).
pub(crate) fn leaky_relu_(x: &mut Tensor, negative_slope: f64) -> Result<Tensor> {
    // SAFETY: `x` is a live tensor for the call; the shim writes a new handle to `out` or at most
    // `len` bytes to `err`.
    new_tensor("leaky ReLU", |out, err, len| unsafe { grn_leaky_relu_(handle(x), negative_slope, out, err, len) })
}

/// 1.0 if any value of `xs` (undefined tensors are skipped) is NaN or infinite, else 0.0: a 0-d
/// float tensor on their device, computed there (no host read). The tensors share a device.
pub(crate) fn non_finite(xs: &[&Tensor]) -> Result<Tensor> {
    let handles = handles(xs);
    // SAFETY: every handle is a live tensor borrowed for the call; the shim reads `n` of them.
    new_tensor("finiteness check", |out, err, len| unsafe {
        grn_non_finite(handles.as_ptr(), handles.len(), out, err, len)
    })
}

/// A copy of host tensor `x` in pinned (page-locked) memory, for copies to a CUDA device that do
/// not block the host. An error (no crash) where there is no CUDA driver.
pub(crate) fn pin_memory(x: &Tensor) -> Result<Tensor> {
    // SAFETY: as in `leaky_relu_`.
    new_tensor("pinning host memory", |out, err, len| unsafe { grn_pin_memory(handle(x), out, err, len) })
}

/// The geometry of a square transposed convolution: stride, padding, output padding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Transposed {
    pub(crate) stride: i64,
    pub(crate) padding: i64,
    pub(crate) output_padding: i64,
}

/// Weight `w` ([in, out, k, k], float32, on the CPU) of a transposed convolution of geometry `g`,
/// reordered once into oneDNN's blocked layout for [`conv_transpose_packed`] (a copy). An error
/// where libtorch has no oneDNN.
pub(crate) fn conv_transpose_prepack(w: &Tensor, g: Transposed) -> Result<Tensor> {
    // SAFETY: `w` is a live tensor for the call; the shim writes a new handle to `out` or at most
    // `len` bytes to `err`.
    new_tensor("prepacking a transposed convolution's weight", |out, err, len| unsafe {
        grn_conv_transpose_prepack(handle(w), g.stride, g.padding, g.output_padding, out, err, len)
    })
}

/// The transposed convolution of `x` ([N, in, h, w], float32, on the CPU) with `packed` (from
/// [`conv_transpose_prepack`] with the same geometry) and `bias`, then ReLU when `relu` (fused):
/// the values of `conv_transpose2d` without its per-call reorder of the weight.
pub(crate) fn conv_transpose_packed(
    x: &Tensor,
    packed: &Tensor,
    bias: Option<&Tensor>,
    g: Transposed,
    relu: bool,
) -> Result<Tensor> {
    let b = handle_or_null(bias);
    // SAFETY: every handle is a live tensor (or null for no bias) borrowed for the call; the
    // shim writes a new handle to `out` or at most `len` bytes to `err`.
    new_tensor("a prepacked transposed convolution", |out, err, len| unsafe {
        grn_conv_transpose_packed(
            handle(x),
            handle(packed),
            b,
            g.stride,
            g.padding,
            g.output_padding,
            relu as c_int,
            out,
            err,
            len,
        )
    })
}

/// Weight `w` ([out, in, k, k], float32, on the CPU) of a convolution with `stride` and `padding`,
/// reordered once into oneDNN's blocked layout for [`conv_packed`] (a copy). An error where
/// libtorch has no oneDNN.
pub(crate) fn conv_prepack(w: &Tensor, stride: i64, padding: i64) -> Result<Tensor> {
    // SAFETY: `w` is a live tensor for the call; the shim writes a new handle to `out` or at most
    // `len` bytes to `err`.
    new_tensor("prepacking a convolution's weight", |out, err, len| unsafe {
        grn_conv_prepack(handle(w), stride, padding, out, err, len)
    })
}

/// The convolution of `x` ([N, in, h, w], float32, on the CPU) with `packed` (from
/// [`conv_prepack`] with the same stride and padding) and `bias`, then ReLU when `relu` (fused):
/// the values of `conv2d` without its per-call reorder of the weight.
pub(crate) fn conv_packed(
    x: &Tensor,
    packed: &Tensor,
    bias: Option<&Tensor>,
    stride: i64,
    padding: i64,
    relu: bool,
) -> Result<Tensor> {
    let b = handle_or_null(bias);
    // SAFETY: every handle is a live tensor (or null for no bias) borrowed for the call; the
    // shim writes a new handle to `out` or at most `len` bytes to `err`.
    new_tensor("a prepacked convolution", |out, err, len| unsafe {
        grn_conv_packed(handle(x), handle(packed), b, stride, padding, relu as c_int, out, err, len)
    })
}

/// `ema[i] += weight * (x[i] - ema[i])` in place for every pair, without recording gradients
/// (libtorch's multi-tensor kernel: one launch on CUDA). The lists pair up and share a device.
pub(crate) fn foreach_lerp_(ema: &[&Tensor], x: &[&Tensor], weight: f64) -> Result<()> {
    if ema.len() != x.len() {
        return Err(Error::internal(format!("foreach_lerp_: {} tensors against {}", ema.len(), x.len())));
    }
    if ema.is_empty() {
        return Ok(());
    }
    let (a, b) = (handles(ema), handles(x));
    // SAFETY: every handle is a live tensor borrowed for the call; the shim reads `n` of each list.
    call(ErrorKind::Internal, "averaging the generator", |e, n| unsafe {
        grn_foreach_lerp_(a.as_ptr(), b.as_ptr(), a.len(), weight, e, n)
    })
}

/// Sets libtorch's process-wide cuDNN deterministic flag (PyTorch's
/// `torch.backends.cudnn.deterministic`).
pub(crate) fn set_cudnn_deterministic(on: bool) {
    // SAFETY: writes a flag of libtorch's global context; cannot fail.
    unsafe { grn_set_cudnn_deterministic(on as c_int) }
}

/// libtorch's process-wide cuDNN deterministic flag.
pub(crate) fn cudnn_deterministic() -> bool {
    // SAFETY: reads a flag of libtorch's global context; cannot fail.
    unsafe { grn_cudnn_deterministic() != 0 }
}

/// libtorch's process-wide cuDNN benchmark flag (engines chosen by timing; off unless the host
/// program turned it on).
pub(crate) fn cudnn_benchmark() -> bool {
    // SAFETY: as in `cudnn_deterministic`.
    unsafe { grn_cudnn_benchmark() != 0 }
}

/// The autocast state of one device type on this thread, as `autocast_enter` found it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AutocastState {
    cuda: bool,
    enabled: c_int,
    dtype: c_int,
}

/// Turns autocast on, with bfloat16, for the CUDA devices (`cuda`) or the CPU, on this thread
/// only; returns the state to give back to `autocast_exit`. Regions nest.
pub(crate) fn autocast_enter(cuda: bool) -> Result<AutocastState> {
    let (mut enabled, mut dtype) = (0, 0);
    // SAFETY: the shim writes the two integers.
    call(ErrorKind::Internal, "entering autocast", |e, n| unsafe {
        grn_autocast_enter(cuda as c_int, &mut enabled, &mut dtype, e, n)
    })?;
    Ok(AutocastState { cuda, enabled, dtype })
}

/// Ends the region `autocast_enter` began, putting back the state it found; the outermost
/// region's end drops the cached low-precision copies of the weights.
pub(crate) fn autocast_exit(saved: AutocastState) -> Result<()> {
    // SAFETY: plain values in; the shim restores the state they describe.
    call(ErrorKind::Internal, "leaving autocast", |e, n| unsafe {
        grn_autocast_exit(saved.cuda as c_int, saved.enabled, saved.dtype, e, n)
    })
}

/// Whether autocast is on for CUDA (`cuda`) or the CPU on this thread.
pub fn autocast_enabled(cuda: bool) -> bool {
    // SAFETY: reads thread-local state; cannot fail.
    unsafe { grn_autocast_enabled(cuda as c_int) != 0 }
}

/// Hyper-parameters of one fused Adam update.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdamArgs {
    pub(crate) lr: f64,
    pub(crate) beta1: f64,
    pub(crate) beta2: f64,
    /// L2 (added to the gradient, as torch.optim.Adam), not decoupled.
    pub(crate) weight_decay: f64,
    pub(crate) eps: f64,
}

/// `at::_fused_adam_`: one Adam update of every `params[i]` in place, from `grads[i]`, with the
/// moments `exp_avgs[i]` and `exp_avg_sqs[i]` updated in place; `step` (a float scalar on the
/// parameters' device) is the update count the bias corrections use, read and not changed.
/// When `found_inf` (a float scalar on that device) holds 1.0, nothing changes: the kernel skips
/// the update, decided on the device without a host read. With `lr` (a float scalar on that
/// device) the kernel reads the learning rate from it and `a.lr` is not used. All lists have the
/// same length; the tensors of one index share shape, dtype and device.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fused_adam_(
    params: &[&Tensor],
    grads: &[&Tensor],
    exp_avgs: &[&Tensor],
    exp_avg_sqs: &[&Tensor],
    step: &Tensor,
    found_inf: Option<&Tensor>,
    lr: Option<&Tensor>,
    a: &AdamArgs,
) -> Result<()> {
    let n = params.len();
    if grads.len() != n || exp_avgs.len() != n || exp_avg_sqs.len() != n {
        return Err(Error::new(ErrorKind::Internal, "fused Adam: lists of different lengths"));
    }
    if n == 0 {
        return Ok(());
    }
    let (p, g, m, v) = (handles(params), handles(grads), handles(exp_avgs), handles(exp_avg_sqs));
    // SAFETY: every handle is a live tensor borrowed for the duration of the call; the shim reads
    // `n` entries of each array and does not keep them.
    call(ErrorKind::Internal, "fused Adam update", |e, n_err| unsafe {
        grn_fused_adam(
            p.as_ptr(),
            g.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            handle(step),
            handle_or_null(found_inf),
            handle_or_null(lr),
            n,
            a.lr,
            a.beta1,
            a.beta2,
            a.weight_decay,
            a.eps,
            e,
            n_err,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaky_relu_values_and_gradient() {
        let w = Tensor::from_slice(&[-2.0f32, -0.5, 0.0, 1.0, 3.0]).set_requires_grad(true);
        let mut x = &w * 1.0;
        let y = leaky_relu_(&mut x, 0.2).unwrap();
        assert_eq!(Vec::<f32>::try_from(&y.detach()).unwrap(), [-0.4, -0.1, 0.0, 1.0, 3.0]);
        y.sum(tch::Kind::Float).backward();
        assert_eq!(Vec::<f32>::try_from(&w.grad()).unwrap(), [0.2, 0.2, 0.2, 1.0, 1.0]);
    }

    #[test]
    fn leaky_relu_in_place_overwrites_and_keeps_the_gradient() {
        let w = Tensor::from_slice(&[-2.0f32, -0.5, 0.0, 1.0, 3.0]).set_requires_grad(true);
        let mut x = &w * 2.0;
        let y = leaky_relu_(&mut x, 0.2).unwrap();
        // The input is the output now: one buffer, the values of leaky_relu.
        assert_eq!(x.data_ptr(), y.data_ptr());
        assert_eq!(Vec::<f32>::try_from(&x.detach()).unwrap(), [-0.8, -0.2, 0.0, 2.0, 6.0]);
        y.sum(tch::Kind::Float).backward();
        assert_eq!(Vec::<f32>::try_from(&w.grad()).unwrap(), [0.4, 0.4, 0.4, 2.0, 2.0]);
    }

    /// Pinned where a CUDA driver is present (same values, now pinned); an error otherwise.
    #[test]
    fn pin_memory_pins_or_fails_cleanly() {
        let x = Tensor::from_slice(&[1.0f32, -2.0, 3.5]);
        match pin_memory(&x) {
            Ok(p) => {
                assert!(crate::device::cuda_device_count() > 0);
                assert!(p.f_is_pinned(tch::Device::Cuda(0)).unwrap());
                assert_eq!(Vec::<f32>::try_from(&p).unwrap(), [1.0, -2.0, 3.5]);
            }
            Err(e) => {
                assert_eq!(crate::device::cuda_device_count(), 0, "{}", e.message);
                assert_eq!(e.kind, ErrorKind::Internal);
                assert!(e.message.contains("pinning host memory failed"), "{}", e.message);
            }
        }
    }

    #[test]
    fn non_finite_flags_nan_and_infinity_anywhere() {
        let flag = |xs: &[&Tensor]| non_finite(xs).unwrap().double_value(&[]);
        let a = Tensor::from_slice(&[1.0f32, -7.5]);
        let b = Tensor::from_slice(&[3.0f32, 2.0, -0.5]).view([3, 1]);
        assert_eq!(flag(&[&a, &b]), 0.0);
        assert_eq!(flag(&[&a, &Tensor::from_slice(&[0.0f32, f32::NAN])]), 1.0);
        assert_eq!(flag(&[&Tensor::from_slice(&[f32::NEG_INFINITY]), &b]), 1.0);
        // +inf and -inf in one tensor sum to NaN: still flagged.
        assert_eq!(flag(&[&Tensor::from_slice(&[f32::INFINITY, f32::NEG_INFINITY])]), 1.0);
        assert_eq!(flag(&[&a, &Tensor::new()]), 0.0);
        assert_eq!(flag(&[]), 0.0);
    }

    #[test]
    fn shim_errors_become_errors() {
        // libtorch refuses an integer tensor; the message comes back, nothing crashes.
        let e = leaky_relu_(&mut Tensor::from_slice(&[1i64, -2]), 0.2).err().unwrap();
        assert_eq!(e.kind, ErrorKind::Internal);
        assert!(e.message.contains("leaky ReLU failed"), "{}", e.message);
        let p = Tensor::from_slice(&[1.0f32]);
        let step = Tensor::from(1.0f32);
        let args = AdamArgs { lr: 0.1, beta1: 0.9, beta2: 0.999, weight_decay: 0.0, eps: 1e-8 };
        let e = fused_adam_(&[&p], &[], &[&p], &[&p], &step, None, None, &args).err().unwrap();
        assert_eq!(e.kind, ErrorKind::Internal);
    }
}
