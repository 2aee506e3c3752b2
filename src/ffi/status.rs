//! Status codes and the thread-local "last error" message.

use crate::error::{Error, ErrorKind};
use std::cell::RefCell;
use std::ffi::c_char;

/// The result of every fallible function. `GRAN_STATUS_OK` (0) is success; outputs are written
/// only on success. `gran_last_error` gives the message of the calling thread's last failure.
pub type GranStatus = i32;

/// Success.
pub const GRAN_STATUS_OK: GranStatus = 0;
/// An argument is NULL where a pointer is required, out of range, or inconsistent.
pub const GRAN_STATUS_INVALID_ARGUMENT: GranStatus = 1;
/// A handle is 0, freed, forged, or of the wrong type.
pub const GRAN_STATUS_INVALID_HANDLE: GranStatus = 2;
/// An output buffer is too small; the message says the size needed.
pub const GRAN_STATUS_BUFFER_TOO_SMALL: GranStatus = 3;
/// A file could not be read or written.
pub const GRAN_STATUS_IO: GranStatus = 4;
/// A corrupt, truncated or incompatible checkpoint or data file.
pub const GRAN_STATUS_FORMAT: GranStatus = 5;
/// CUDA asked for but absent, a device index past the count, or a device error.
pub const GRAN_STATUS_DEVICE: GranStatus = 6;
/// Host or device memory ran out: the system refused an allocation (libtorch's CPU or CUDA
/// allocator, or the library's own buffers, which are all allocated fallibly). The library
/// never aborts on an allocation failure and installs no allocation hook of its own.
pub const GRAN_STATUS_OUT_OF_MEMORY: GranStatus = 7;
/// Stopped by `gran_cancel`, by the progress callback, or by freeing the model.
pub const GRAN_STATUS_CANCELLED: GranStatus = 8;
/// The model is already training.
pub const GRAN_STATUS_BUSY: GranStatus = 9;
/// Training produced a NaN or infinite loss; the model keeps its last finite weights.
pub const GRAN_STATUS_DIVERGED: GranStatus = 10;
/// A bug or an unexpected libtorch failure; the library stays usable.
pub const GRAN_STATUS_INTERNAL: GranStatus = 11;
/// Data-parallel training: a peer process died, hung past the group's timeout or could not be
/// reached, the ranks' weights disagree, or the backend is not in this build. The model keeps
/// the weights of its last completed step.
pub const GRAN_STATUS_DISTRIBUTED: GranStatus = 12;

pub(crate) fn status_of(kind: ErrorKind) -> GranStatus {
    match kind {
        ErrorKind::InvalidArgument => GRAN_STATUS_INVALID_ARGUMENT,
        ErrorKind::InvalidHandle => GRAN_STATUS_INVALID_HANDLE,
        ErrorKind::BufferTooSmall => GRAN_STATUS_BUFFER_TOO_SMALL,
        ErrorKind::Io => GRAN_STATUS_IO,
        ErrorKind::Format => GRAN_STATUS_FORMAT,
        ErrorKind::Device => GRAN_STATUS_DEVICE,
        ErrorKind::OutOfMemory => GRAN_STATUS_OUT_OF_MEMORY,
        ErrorKind::Cancelled => GRAN_STATUS_CANCELLED,
        ErrorKind::Busy => GRAN_STATUS_BUSY,
        ErrorKind::Diverged => GRAN_STATUS_DIVERGED,
        ErrorKind::Internal => GRAN_STATUS_INTERNAL,
        ErrorKind::Distributed => GRAN_STATUS_DISTRIBUTED,
    }
}

thread_local! {
    static LAST_ERROR: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Records `e` as this thread's last error and returns its status.
pub(crate) fn fail(e: Error) -> GranStatus {
    LAST_ERROR.with(|m| {
        let mut m = m.borrow_mut();
        m.clear();
        // Interior NULs would cut the C string short: show them as spaces.
        m.extend(e.message.bytes().map(|b| if b == 0 { b' ' } else { b }));
    });
    status_of(e.kind)
}

/// Copies this thread's last error message into `buf` (snprintf semantics).
pub(crate) fn copy_last_error(buf: *mut c_char, len: usize) -> usize {
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

/// The static name of a status.
pub(crate) fn status_name(s: GranStatus) -> &'static [u8] {
    match s {
        GRAN_STATUS_OK => b"GRAN_STATUS_OK\0",
        GRAN_STATUS_INVALID_ARGUMENT => b"GRAN_STATUS_INVALID_ARGUMENT\0",
        GRAN_STATUS_INVALID_HANDLE => b"GRAN_STATUS_INVALID_HANDLE\0",
        GRAN_STATUS_BUFFER_TOO_SMALL => b"GRAN_STATUS_BUFFER_TOO_SMALL\0",
        GRAN_STATUS_IO => b"GRAN_STATUS_IO\0",
        GRAN_STATUS_FORMAT => b"GRAN_STATUS_FORMAT\0",
        GRAN_STATUS_DEVICE => b"GRAN_STATUS_DEVICE\0",
        GRAN_STATUS_OUT_OF_MEMORY => b"GRAN_STATUS_OUT_OF_MEMORY\0",
        GRAN_STATUS_CANCELLED => b"GRAN_STATUS_CANCELLED\0",
        GRAN_STATUS_BUSY => b"GRAN_STATUS_BUSY\0",
        GRAN_STATUS_DIVERGED => b"GRAN_STATUS_DIVERGED\0",
        GRAN_STATUS_INTERNAL => b"GRAN_STATUS_INTERNAL\0",
        GRAN_STATUS_DISTRIBUTED => b"GRAN_STATUS_DISTRIBUTED\0",
        _ => b"GRAN_STATUS_UNKNOWN\0",
    }
}
