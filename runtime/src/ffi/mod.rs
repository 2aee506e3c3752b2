//! The C interface of libgran_runtime: the sampling functions of include/gran.h, with the same
//! names, types and statuses (include/gran_runtime.h). This layer checks arguments, maps handles
//! and statuses, and calls the model; every function runs inside gran_common's panic guard.

pub(crate) mod model;
mod sample;
mod version;

pub use model::*;
pub use sample::*;
pub use version::*;

use crate::error::Result;
use gran_common::abi::GranStatus;

/// Runs `f` at the boundary: its error or any panic becomes a status and this thread's last
/// error; nothing unwinds into C.
pub(crate) fn guard(f: impl FnOnce() -> Result<()>) -> GranStatus {
    gran_common::boundary::guard(f)
}
