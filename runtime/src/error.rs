//! The runtime's error: gran_common's `Failure` (a C status and a message), so that a failure
//! reaches C unchanged.

use gran_common::abi::{
    GranStatus, GRAN_STATUS_FORMAT, GRAN_STATUS_INTERNAL, GRAN_STATUS_IO, GRAN_STATUS_OUT_OF_MEMORY,
};
pub use gran_common::boundary::Failure as Error;

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn invalid(message: impl Into<String>) -> Error {
    Error::invalid(message)
}

pub(crate) fn format(message: impl Into<String>) -> Error {
    Error::new(GRAN_STATUS_FORMAT, message)
}

pub(crate) fn io(context: impl std::fmt::Display, e: std::io::Error) -> Error {
    Error::new(GRAN_STATUS_IO, format!("{context}: {e}"))
}

#[cfg_attr(not(unix), allow(dead_code))]
pub(crate) fn internal(message: impl Into<String>) -> Error {
    Error::new(GRAN_STATUS_INTERNAL, message)
}

pub(crate) fn with_status(status: GranStatus, message: impl Into<String>) -> Error {
    Error::new(status, message)
}

/// OUT_OF_MEMORY for `n` values of `T` that could not be allocated for `what`.
pub(crate) fn out_of_memory<T>(n: usize, what: &str) -> Error {
    Error::new(
        GRAN_STATUS_OUT_OF_MEMORY,
        format!("{what}: {n} values of {} bytes could not be allocated", std::mem::size_of::<T>()),
    )
}

/// A zeroed buffer of `n` values, or OUT_OF_MEMORY (never an abort) when the system refuses it.
pub(crate) fn zeros<T: Copy + Default>(n: usize, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| out_of_memory::<T>(n, what))?;
    v.resize(n, T::default());
    Ok(v)
}

/// An empty buffer with room for `n` values, or OUT_OF_MEMORY: for buffers filled by `extend`
/// or a read, which then need no zeroing first.
pub(crate) fn with_capacity<T>(n: usize, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| out_of_memory::<T>(n, what))?;
    Ok(v)
}

/// `a * b`, or INVALID_ARGUMENT naming `what` when it does not fit in a `usize`.
pub(crate) fn mul(a: usize, b: usize, what: &str) -> Result<usize> {
    a.checked_mul(b).ok_or_else(|| invalid(format!("{what}: {a} x {b} is past what memory can hold")))
}
