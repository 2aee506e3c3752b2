//! The C boundary: gran_common's panic guard and pointer checks (shared with libgran_runtime),
//! returning the core's error type. Nothing else in the crate touches C pointers.

use super::status::GranStatus;
use crate::error::Result;
use gran_common::boundary as common;
pub(crate) use gran_common::boundary::{guard_value, Versioned};
use std::ffi::c_char;
use std::path::PathBuf;

/// Runs `f`, turning its error or any panic (a Rust bug or a libtorch exception surfacing as a
/// panic) into a status and this thread's last-error message. Never unwinds into C.
pub(crate) fn guard(f: impl FnOnce() -> Result<()>) -> GranStatus {
    common::guard(f)
}

/// `&T` from a pointer that must not be NULL.
///
/// # Safety
/// `p` is NULL or points to a valid, initialised `T` that outlives the call.
pub(crate) unsafe fn arg_ref<'a, T>(p: *const T, name: &str) -> Result<&'a T> {
    Ok(common::arg_ref(p, name)?)
}

/// `&mut T` from a pointer that must not be NULL.
///
/// # Safety
/// `p` is NULL or points to a valid, writable `T` not aliased during the call.
pub(crate) unsafe fn arg_mut<'a, T>(p: *mut T, name: &str) -> Result<&'a mut T> {
    Ok(common::arg_mut(p, name)?)
}

/// A UTF-8 path from a NUL-terminated string.
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
pub(crate) unsafe fn arg_path(p: *const c_char, name: &str) -> Result<PathBuf> {
    Ok(common::arg_path(p, name)?)
}

/// Optional path: NULL is `None`.
///
/// # Safety
/// As [`arg_path`].
pub(crate) unsafe fn arg_opt_path(p: *const c_char, name: &str) -> Result<Option<PathBuf>> {
    Ok(common::arg_opt_path(p, name)?)
}

/// A byte slice of `len` bytes.
///
/// # Safety
/// `p` is NULL or points to `len` readable bytes.
pub(crate) unsafe fn arg_bytes<'a>(p: *const u8, len: usize, name: &str) -> Result<&'a [u8]> {
    Ok(common::arg_slice(p, len, name)?)
}

/// A writable byte slice of `len` bytes.
///
/// # Safety
/// `p` is NULL or points to `len` writable bytes.
pub(crate) unsafe fn arg_bytes_mut<'a>(p: *mut u8, len: usize, name: &str) -> Result<&'a mut [u8]> {
    Ok(common::arg_slice_mut(p, len, name)?)
}

/// The classes of a request of `count` images (`common::arg_classes`), as the core takes
/// them: one for all, or one per image.
///
/// # Safety
/// `classes` is NULL or points to `classes_len` readable `uint32_t`s.
pub(crate) unsafe fn arg_classes<'a>(
    classes: *const u32,
    classes_len: u32,
    count: usize,
) -> Result<crate::Classes<'a>> {
    Ok(common::arg_classes(classes, classes_len, count)?)
}

/// A slice of `len` floats (aligned, as C guarantees for a `float *`).
///
/// # Safety
/// `p` is NULL or points to `len` readable floats.
pub(crate) unsafe fn arg_floats<'a>(p: *const f32, len: usize, name: &str) -> Result<&'a [f32]> {
    Ok(common::arg_slice(p, len, name)?)
}

/// A writable slice of `len` floats.
///
/// # Safety
/// `p` is NULL or points to `len` writable floats.
pub(crate) unsafe fn arg_floats_mut<'a>(p: *mut f32, len: usize, name: &str) -> Result<&'a mut [f32]> {
    Ok(common::arg_slice_mut(p, len, name)?)
}

/// Reads a caller's versioned struct (gran_common::boundary::read_versioned).
///
/// # Safety
/// `p` is NULL or points to at least `struct_size` readable bytes (its first field).
pub(crate) unsafe fn read_versioned<T: Versioned>(p: *const T, name: &str) -> Result<T> {
    Ok(common::read_versioned(p, name)?)
}

/// Writes into a caller's versioned struct (gran_common::boundary::write_versioned).
///
/// # Safety
/// `p` is NULL or points to at least `struct_size` writable bytes.
pub(crate) unsafe fn write_versioned<T: Versioned>(p: *mut T, value: &T, name: &str) -> Result<()> {
    Ok(common::write_versioned(p, value, name)?)
}

/// Checks a caller's output struct without writing to it.
///
/// # Safety
/// `p` is NULL or points to at least 4 readable bytes.
pub(crate) unsafe fn check_versioned_out<T: Versioned>(p: *const T, name: &str) -> Result<()> {
    Ok(common::check_versioned_out(p, name)?)
}
