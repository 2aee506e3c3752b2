//! The one unsafe layer: every call into the C++ shims of csrc/ (libtorch operators tch does
//! not bind, CUDA graphs, c10d process groups) and into the operating system beside the
//! standard library. What it exports is safe Rust; no other module
//! outside `ffi` declares an `extern` function or holds a raw pointer or tensor handle.
//!
//! Every shim follows one convention: it returns 0 on success, or non-zero with a
//! NUL-terminated message written into the caller's buffer (at most `err_len` bytes), and never
//! lets a C++ exception cross into Rust. [`call`] is the one place that buffer lives, and
//! [`handle`] / [`handles`] the one place tensors become handles.

pub(crate) mod cuda_graph;
pub(crate) mod dist;
pub(crate) mod torch_ext;

use crate::error::{Error, ErrorKind, Result};
use std::os::raw::{c_char, c_int};
use tch::Tensor;
use torch_sys::C_tensor;

/// The size of the message buffer a shim may write into.
const MESSAGE_BYTES: usize = 1024;

/// Runs `f(err, err_len)`, a call of one shim, and turns its failure into a `kind` error
/// "`what` failed: message" (the message's first line: c10d and libtorch append C++ stack
/// traces after it).
fn call(kind: ErrorKind, what: &str, f: impl FnOnce(*mut c_char, usize) -> c_int) -> Result<()> {
    let mut err = [0 as c_char; MESSAGE_BYTES];
    if f(err.as_mut_ptr(), err.len() - 1) == 0 {
        return Ok(());
    }
    // The last byte stays NUL whatever the shim wrote (it was told one byte less).
    // SAFETY: `err` is NUL-terminated within its length.
    let msg = unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned();
    Err(Error::new(kind, format!("{what} failed: {}", msg.lines().next().unwrap_or("").trim_end())))
}

/// The libtorch handle of a tensor, for one shim call that borrows it.
fn handle(t: &Tensor) -> *mut C_tensor {
    t.as_ptr() as *mut C_tensor
}

/// The handles of a list of tensors (see [`handle`]).
fn handles<T: std::borrow::Borrow<Tensor>>(ts: &[T]) -> Vec<*mut C_tensor> {
    ts.iter().map(|t| handle(t.borrow())).collect()
}

/// The handle of an optional tensor: null for `None`.
fn handle_or_null(t: Option<&Tensor>) -> *mut C_tensor {
    t.map_or(std::ptr::null_mut(), handle)
}
