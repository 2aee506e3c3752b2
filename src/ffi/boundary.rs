//! The one panic boundary every exported function goes through, and every conversion of a raw
//! pointer coming from C. Nothing else in the crate touches C pointers.

use super::status::{fail, GranStatus, GRAN_STATUS_OK};
use crate::error::{Error, Result};
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

/// Runs `f`, turning its error or any panic (a Rust bug or a libtorch exception surfacing as a
/// panic) into a status and this thread's last-error message. Never unwinds into C.
pub(crate) fn guard(f: impl FnOnce() -> Result<()>) -> GranStatus {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => GRAN_STATUS_OK,
        Ok(Err(e)) => fail(e),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            fail(Error::internal(format!("internal error: {what}")))
        }
    }
}

/// Like [`guard`] for functions that cannot report a status: returns `fallback` on a panic.
pub(crate) fn guard_value<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

fn null(name: &str) -> Error {
    Error::invalid(format!("{name} is NULL"))
}

/// `&T` from a pointer that must not be NULL.
///
/// # Safety
/// `p` is NULL or points to a valid, initialised `T` that outlives the call.
pub(crate) unsafe fn arg_ref<'a, T>(p: *const T, name: &str) -> Result<&'a T> {
    p.as_ref().ok_or_else(|| null(name))
}

/// `&mut T` from a pointer that must not be NULL.
///
/// # Safety
/// `p` is NULL or points to a valid, writable `T` not aliased during the call.
pub(crate) unsafe fn arg_mut<'a, T>(p: *mut T, name: &str) -> Result<&'a mut T> {
    p.as_mut().ok_or_else(|| null(name))
}

/// A UTF-8 path from a NUL-terminated string.
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
pub(crate) unsafe fn arg_path(p: *const c_char, name: &str) -> Result<PathBuf> {
    if p.is_null() {
        return Err(null(name));
    }
    let s = CStr::from_ptr(p).to_str().map_err(|_| Error::invalid(format!("{name} is not valid UTF-8")))?;
    if s.is_empty() {
        return Err(Error::invalid(format!("{name} is empty")));
    }
    Ok(PathBuf::from(s))
}

/// Optional path: NULL is `None`.
///
/// # Safety
/// As [`arg_path`].
pub(crate) unsafe fn arg_opt_path(p: *const c_char, name: &str) -> Result<Option<PathBuf>> {
    if p.is_null() {
        Ok(None)
    } else {
        arg_path(p, name).map(Some)
    }
}

/// A slice of `len` `T`s. NULL, a length past what memory can hold (more than `isize::MAX`
/// bytes) or a pointer not aligned for `T` is `InvalidArgument`, never undefined behaviour here.
///
/// # Safety
/// `p` is NULL or points to `len` readable `T`s.
unsafe fn arg_slice<'a, T>(p: *const T, len: usize, name: &str) -> Result<&'a [T]> {
    check_extent(p, len, name)?;
    Ok(std::slice::from_raw_parts(p, len))
}

/// A writable slice of `len` `T`s, checked as [`arg_slice`].
///
/// # Safety
/// `p` is NULL or points to `len` writable `T`s not aliased during the call.
unsafe fn arg_slice_mut<'a, T>(p: *mut T, len: usize, name: &str) -> Result<&'a mut [T]> {
    check_extent(p, len, name)?;
    Ok(std::slice::from_raw_parts_mut(p, len))
}

fn check_extent<T>(p: *const T, len: usize, name: &str) -> Result<()> {
    if p.is_null() {
        return Err(null(name));
    }
    if len.checked_mul(std::mem::size_of::<T>()).map_or(true, |b| b > isize::MAX as usize) {
        return Err(Error::invalid(format!("{name} would span {len} elements: more than memory can hold")));
    }
    if (p as usize) % std::mem::align_of::<T>() != 0 {
        return Err(Error::invalid(format!("{name} is not aligned for its element type")));
    }
    Ok(())
}

/// A byte slice of `len` bytes.
///
/// # Safety
/// `p` is NULL or points to `len` readable bytes.
pub(crate) unsafe fn arg_bytes<'a>(p: *const u8, len: usize, name: &str) -> Result<&'a [u8]> {
    arg_slice(p, len, name)
}

/// A writable byte slice of `len` bytes.
///
/// # Safety
/// `p` is NULL or points to `len` writable bytes.
pub(crate) unsafe fn arg_bytes_mut<'a>(p: *mut u8, len: usize, name: &str) -> Result<&'a mut [u8]> {
    arg_slice_mut(p, len, name)
}

/// A slice of `len` floats (aligned, as C guarantees for a `float *`).
///
/// # Safety
/// `p` is NULL or points to `len` readable floats.
pub(crate) unsafe fn arg_floats<'a>(p: *const f32, len: usize, name: &str) -> Result<&'a [f32]> {
    arg_slice(p, len, name)
}

/// A writable slice of `len` floats.
///
/// # Safety
/// `p` is NULL or points to `len` writable floats.
pub(crate) unsafe fn arg_floats_mut<'a>(p: *mut f32, len: usize, name: &str) -> Result<&'a mut [f32]> {
    arg_slice_mut(p, len, name)
}

/// Versioned parameter structs: every one starts with `uint32_t struct_size`.
///
/// # Safety
/// Implementors are `#[repr(C)]`, start with a `u32` size field, and are valid for any bytes a
/// caller may put in the fields that fit (plain integers, floats and nullable pointers).
pub(crate) unsafe trait Versioned: Copy {
    /// The struct with every field at its documented default, `struct_size` = sizeof.
    fn defaults() -> Self;
}

/// Reads a caller's versioned struct: the fields that fit in its `struct_size`, defaults for
/// the rest (an application built against an older, smaller struct keeps working).
///
/// # Safety
/// `p` is NULL or points to at least `struct_size` readable bytes (its first field).
pub(crate) unsafe fn read_versioned<T: Versioned>(p: *const T, name: &str) -> Result<T> {
    if p.is_null() {
        return Err(null(name));
    }
    let size = std::ptr::read_unaligned(p as *const u32) as usize;
    check_size::<T>(size, name)?;
    let mut out = T::defaults();
    let n = size.min(std::mem::size_of::<T>());
    std::ptr::copy_nonoverlapping(p as *const u8, &mut out as *mut T as *mut u8, n);
    *(&mut out as *mut T as *mut u32) = std::mem::size_of::<T>() as u32;
    Ok(out)
}

/// Writes `value` into a caller's versioned struct, no more than its `struct_size` bytes (and
/// leaves its `struct_size` as the caller set it).
///
/// # Safety
/// `p` is NULL or points to at least `struct_size` writable bytes.
pub(crate) unsafe fn write_versioned<T: Versioned>(p: *mut T, value: &T, name: &str) -> Result<()> {
    if p.is_null() {
        return Err(null(name));
    }
    let size = std::ptr::read_unaligned(p as *const u32) as usize;
    check_size::<T>(size, name)?;
    let n = size.min(std::mem::size_of::<T>());
    std::ptr::copy_nonoverlapping((value as *const T as *const u8).add(4), (p as *mut u8).add(4), n - 4);
    Ok(())
}

/// Checks a caller's output struct (non-NULL, usable `struct_size`) without writing to it, so a
/// call can refuse a bad output before doing its work.
///
/// # Safety
/// `p` is NULL or points to at least 4 readable bytes.
pub(crate) unsafe fn check_versioned_out<T: Versioned>(p: *const T, name: &str) -> Result<()> {
    if p.is_null() {
        return Err(null(name));
    }
    check_size::<T>(std::ptr::read_unaligned(p as *const u32) as usize, name)
}

fn check_size<T>(size: usize, name: &str) -> Result<()> {
    if size < 8 {
        return Err(Error::invalid(format!(
            "{name}->struct_size is {size}: set it to sizeof the struct (this library's is {}), \
             for example with the matching _init function",
            std::mem::size_of::<T>()
        )));
    }
    Ok(())
}
