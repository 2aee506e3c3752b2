//! Library-wide functions: versions, error messages, logging, threads.

use super::guard;
use gran_common::abi::{GranLogCallback, GranLogLevel, GranStatus, GRAN_ABI_VERSION};
use gran_common::boundary::{copy_last_error, guard_value};
use std::ffi::{c_char, c_void};

/// The ABI version of the loaded library (`GRAN_ABI_VERSION` of the header it was built from).
///
/// Thread safety: any thread.
#[no_mangle]
pub extern "C" fn gran_abi_version() -> u32 {
    GRAN_ABI_VERSION
}

/// The library version as a static NUL-terminated string, e.g. "0.1.0". Do not free it.
///
/// Thread safety: any thread.
#[no_mangle]
pub extern "C" fn gran_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

/// Copies the message of the calling thread's most recent failed call into `buf` with snprintf
/// semantics: at most `len - 1` bytes and a terminating NUL (nothing is written when `buf` is
/// NULL or `len` is 0). Returns the full length of the message, without the NUL, so
/// `gran_last_error(NULL, 0) + 1` is the buffer size needed. Successful calls do not clear it.
///
/// Thread safety: any thread; each thread has its own message.
///
/// # Safety
/// `buf` is NULL or points to `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn gran_last_error(buf: *mut c_char, len: usize) -> usize {
    guard_value(0, || copy_last_error(buf, len))
}

/// The name of a status as a static string ("GRAN_STATUS_OK", ...; "GRAN_STATUS_UNKNOWN" for a
/// value that is not a status). Do not free it.
///
/// Thread safety: any thread.
#[no_mangle]
pub extern "C" fn gran_status_string(status: GranStatus) -> *const c_char {
    gran_common::abi::status_name(status).as_ptr() as *const c_char
}

/// Installs the log callback: messages at `min_level` and above go to `cb`. Logging is off by
/// default: the library prints nothing. Pass NULL to turn it off again. A `min_level` above
/// GRAN_LOG_ERROR is treated as GRAN_LOG_ERROR.
///
/// Thread safety: any thread; `cb` may then be called from any thread that calls into gran, and
/// concurrently, with this `user_data`. It may call gran functions, including this one.
#[no_mangle]
pub extern "C" fn gran_set_log_callback(cb: GranLogCallback, user_data: *mut c_void, min_level: GranLogLevel) {
    guard_value((), || gran_common::log::set_c_callback(cb, user_data, min_level))
}

/// Sets how many threads later drawing calls use, 1 ..= 256 (1 by default). A call splits its
/// images between them, each thread started for the call and joined before it returns: no
/// thread runs while the library is not called. One image is drawn by one thread.
///
/// Errors: INVALID_ARGUMENT for `threads` outside 1 ..= 256.
///
/// Thread safety: any thread; calls already running keep the threads they started with.
#[no_mangle]
pub extern "C" fn gran_set_num_threads(threads: i32) -> GranStatus {
    guard(|| {
        match usize::try_from(threads) {
            Ok(n @ 1..=crate::threads::MAX_THREADS) => crate::threads::set(n),
            _ => {
                return Err(crate::error::invalid(format!(
                    "threads is {threads}: must be 1..={}",
                    crate::threads::MAX_THREADS
                )))
            }
        }
        Ok(())
    })
}

/// The threads drawing calls use (`gran_set_num_threads`).
///
/// Thread safety: any thread.
#[no_mangle]
pub extern "C" fn gran_num_threads() -> i32 {
    guard_value(1, || crate::threads::get() as i32)
}
