//! The C boundary both libraries share: the one panic guard every exported function runs in,
//! the calling thread's last error, and every conversion of a raw pointer coming from C into a
//! checked reference or slice. Nothing else in either library touches C pointers.

use crate::abi::{GranStatus, GRAN_STATUS_INTERNAL, GRAN_STATUS_INVALID_ARGUMENT, GRAN_STATUS_OK};
use std::cell::RefCell;
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

/// A failed call as C sees it: its status and the message `gran_last_error` gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: GranStatus,
    pub message: String,
}

impl Failure {
    pub fn new(status: GranStatus, message: impl Into<String>) -> Self {
        Failure { status, message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Failure::new(GRAN_STATUS_INVALID_ARGUMENT, message)
    }
}

thread_local! {
    static LAST_ERROR: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Records `f` as this thread's last error and returns its status.
pub fn fail(f: Failure) -> GranStatus {
    LAST_ERROR.with(|m| {
        let mut m = m.borrow_mut();
        m.clear();
        // Interior NULs would cut the C string short: show them as spaces.
        m.extend(f.message.bytes().map(|b| if b == 0 { b' ' } else { b }));
    });
    f.status
}

/// Copies this thread's last error message into `buf` (snprintf semantics); returns its full
/// length.
///
/// # Safety
/// `buf` is NULL or points to `len` writable bytes.
pub unsafe fn copy_last_error(buf: *mut c_char, len: usize) -> usize {
    LAST_ERROR.with(|m| {
        let m = m.borrow();
        if !buf.is_null() && len > 0 {
            let n = m.len().min(len - 1);
            // SAFETY: the caller promises `buf` points to `len` writable bytes; n + 1 <= len.
            unsafe {
                std::ptr::copy_nonoverlapping(m.as_ptr(), buf as *mut u8, n);
                *buf.add(n) = 0;
            }
        }
        m.len()
    })
}

/// Runs `f`, turning its error or any panic (a bug, or a failure deep in a dependency surfacing
/// as one) into a status and this thread's last-error message. Never unwinds into C.
pub fn guard<E: Into<Failure>>(f: impl FnOnce() -> Result<(), E>) -> GranStatus {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => GRAN_STATUS_OK,
        Ok(Err(e)) => fail(e.into()),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            fail(Failure::new(GRAN_STATUS_INTERNAL, format!("internal error: {what}")))
        }
    }
}

/// Like [`guard`] for functions that cannot report a status: returns `fallback` on a panic.
pub fn guard_value<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

fn null(name: &str) -> Failure {
    Failure::invalid(format!("{name} is NULL"))
}

/// `&T` from a pointer that must not be NULL.
///
/// # Safety
/// `p` is NULL or points to a valid, initialised `T` that outlives the call.
pub unsafe fn arg_ref<'a, T>(p: *const T, name: &str) -> Result<&'a T, Failure> {
    p.as_ref().ok_or_else(|| null(name))
}

/// `&mut T` from a pointer that must not be NULL.
///
/// # Safety
/// `p` is NULL or points to a valid, writable `T` not aliased during the call.
pub unsafe fn arg_mut<'a, T>(p: *mut T, name: &str) -> Result<&'a mut T, Failure> {
    p.as_mut().ok_or_else(|| null(name))
}

/// A UTF-8 path from a NUL-terminated string.
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
pub unsafe fn arg_path(p: *const c_char, name: &str) -> Result<PathBuf, Failure> {
    if p.is_null() {
        return Err(null(name));
    }
    let s = CStr::from_ptr(p).to_str().map_err(|_| Failure::invalid(format!("{name} is not valid UTF-8")))?;
    if s.is_empty() {
        return Err(Failure::invalid(format!("{name} is empty")));
    }
    Ok(PathBuf::from(s))
}

/// Optional path: NULL is `None`.
///
/// # Safety
/// As [`arg_path`].
pub unsafe fn arg_opt_path(p: *const c_char, name: &str) -> Result<Option<PathBuf>, Failure> {
    if p.is_null() {
        Ok(None)
    } else {
        arg_path(p, name).map(Some)
    }
}

/// A slice of `len` `T`s. NULL, a length past what memory can hold (more than `isize::MAX`
/// bytes) or a pointer not aligned for `T` is INVALID_ARGUMENT, never undefined behaviour here.
///
/// # Safety
/// `p` is NULL or points to `len` readable `T`s.
pub unsafe fn arg_slice<'a, T>(p: *const T, len: usize, name: &str) -> Result<&'a [T], Failure> {
    check_extent(p, len, name)?;
    Ok(std::slice::from_raw_parts(p, len))
}

/// A writable slice of `len` `T`s, checked as [`arg_slice`].
///
/// # Safety
/// `p` is NULL or points to `len` writable `T`s not aliased during the call.
pub unsafe fn arg_slice_mut<'a, T>(p: *mut T, len: usize, name: &str) -> Result<&'a mut [T], Failure> {
    check_extent(p, len, name)?;
    Ok(std::slice::from_raw_parts_mut(p, len))
}

fn check_extent<T>(p: *const T, len: usize, name: &str) -> Result<(), Failure> {
    if p.is_null() {
        return Err(null(name));
    }
    if len.checked_mul(std::mem::size_of::<T>()).map_or(true, |b| b > isize::MAX as usize) {
        return Err(Failure::invalid(format!("{name} would span {len} elements: more than memory can hold")));
    }
    if (p as usize) % std::mem::align_of::<T>() != 0 {
        return Err(Failure::invalid(format!("{name} is not aligned for its element type")));
    }
    Ok(())
}

/// The classes of a request of `count` images from C: `classes_len` 1 (one class for every
/// image, `Classes::All`) or `count` (one per image, `Classes::Each`); anything else, or NULL,
/// is INVALID_ARGUMENT. The values are checked against the model by the caller.
///
/// # Safety
/// `classes` is NULL or points to `classes_len` readable `uint32_t`s.
pub unsafe fn arg_classes<'a>(
    classes: *const u32,
    classes_len: u32,
    count: usize,
) -> Result<crate::classes::Classes<'a>, Failure> {
    let len = classes_len as usize;
    if len != 1 && len != count {
        return Err(Failure::invalid(format!(
            "classes_len is {classes_len} for {count} images: 1 (one class for all) or {count} (one per image)"
        )));
    }
    Ok(match arg_slice(classes, len, "classes")? {
        [k] => crate::classes::Classes::All(*k),
        list => crate::classes::Classes::Each(list),
    })
}

/// An image count from C: INVALID_ARGUMENT for 0.
pub fn check_count(count: u32) -> Result<usize, Failure> {
    if count == 0 {
        return Err(Failure::invalid("count is 0: ask for at least one image"));
    }
    Ok(count as usize)
}

/// BUFFER_TOO_SMALL unless the caller's `have` bytes hold `needed` (the message says how many
/// are needed); checked before any work.
pub fn check_room(have: usize, needed: usize, what: &str) -> Result<(), Failure> {
    if have < needed {
        return Err(Failure::new(
            crate::abi::GRAN_STATUS_BUFFER_TOO_SMALL,
            format!("{what} has {have} bytes; {needed} are needed"),
        ));
    }
    Ok(())
}

/// Versioned parameter structs: every one starts with `uint32_t struct_size`.
///
/// # Safety
/// Implementors are `#[repr(C)]`, start with a `u32` size field, and are valid for any bytes a
/// caller may put in the fields that fit (plain integers, floats and nullable pointers).
pub unsafe trait Versioned: Copy {
    /// The struct with every field at its documented default, `struct_size` = sizeof.
    fn defaults() -> Self;
}

/// Reads a caller's versioned struct: the fields that fit in its `struct_size`, defaults for
/// the rest (an application built against an older, smaller struct keeps working).
///
/// # Safety
/// `p` is NULL or points to at least `struct_size` readable bytes (its first field).
pub unsafe fn read_versioned<T: Versioned>(p: *const T, name: &str) -> Result<T, Failure> {
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
pub unsafe fn write_versioned<T: Versioned>(p: *mut T, value: &T, name: &str) -> Result<(), Failure> {
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
pub unsafe fn check_versioned_out<T: Versioned>(p: *const T, name: &str) -> Result<(), Failure> {
    if p.is_null() {
        return Err(null(name));
    }
    check_size::<T>(std::ptr::read_unaligned(p as *const u32) as usize, name)
}

fn check_size<T>(size: usize, name: &str) -> Result<(), Failure> {
    if size < 8 {
        return Err(Failure::invalid(format!(
            "{name}->struct_size is {size}: set it to sizeof the struct (this library's is {}), \
             for example with the matching _init function",
            std::mem::size_of::<T>()
        )));
    }
    Ok(())
}
