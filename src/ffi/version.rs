//! Library-wide functions: versions, error messages, devices, logging.

use super::boundary::{guard, guard_value};
use super::status::{status_name, GranStatus};
use super::types::{GranLogCallback, GranLogLevel};
pub use gran_common::abi::GRAN_ABI_VERSION;
use gran_common::boundary::copy_last_error;
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
    status_name(status).as_ptr() as *const c_char
}

/// The number of CUDA devices this process can use (0 without CUDA). Same binary either way.
///
/// Thread safety: any thread.
#[no_mangle]
pub extern "C" fn gran_cuda_device_count() -> i32 {
    guard_value(0, || crate::device::cuda_device_count() as i32)
}

/// Chooses whether gran's CUDA work repeats bit for bit (`on` non-zero) or may use cuDNN's
/// faster engines whose sums are ordered differently from call to call (`on` = 0).
///
/// By default gran turns on cuDNN's deterministic mode the first time a model, evaluator or
/// export is placed on a CUDA device, so that a seed gives the same images every time and
/// resuming from a checkpoint gives the weights of a run that never stopped, as on the CPU.
/// This is libtorch's process-wide flag (PyTorch's `torch.backends.cudnn.deterministic`): it
/// also applies to any other use of libtorch in the process, and once this function has been
/// called gran leaves the flag as the program set it. Nothing changes for CPU-only use.
///
/// Thread safety: any thread; calls already running keep the engines they chose.
#[no_mangle]
pub extern "C" fn gran_set_deterministic(on: i32) {
    guard_value((), || crate::device::set_deterministic(on != 0))
}

/// 1 when CUDA work is deterministic now (cuDNN's deterministic mode on and its benchmark mode
/// off), else 0. Before gran has used CUDA this reports libtorch's defaults (0), unless
/// `gran_set_deterministic` was called.
///
/// Thread safety: any thread.
#[no_mangle]
pub extern "C" fn gran_deterministic() -> i32 {
    guard_value(0, || crate::device::deterministic() as i32)
}

/// Installs the log callback: gran reports warnings (for example a discriminator that wins
/// outright during training) and other messages at `min_level` and above to `cb`. Logging is
/// off by default: the library prints nothing. Pass NULL to turn it off again. A `min_level`
/// above GRAN_LOG_ERROR is treated as GRAN_LOG_ERROR.
///
/// Thread safety: any thread; `cb` may then be called from any thread that calls into gran, and
/// concurrently, with this `user_data`. It may call gran functions, including this one.
#[no_mangle]
pub extern "C" fn gran_set_log_callback(cb: GranLogCallback, user_data: *mut c_void, min_level: GranLogLevel) {
    guard_value((), || gran_common::log::set_c_callback(cb, user_data, min_level))
}

/// Sets how many threads libtorch's CPU operators use within one call (its intra-op threads,
/// PyTorch's `torch.set_num_threads`), 1 ..= 256. libtorch's default is the machine's cores.
/// libgran_runtime has the same function for its own threads.
///
/// Errors: INVALID_ARGUMENT for `threads` outside 1 ..= 256.
///
/// Thread safety: any thread; it is libtorch's process-wide setting, so it also applies to any
/// other use of libtorch in the process. Calls already running keep their threads.
#[no_mangle]
pub extern "C" fn gran_set_num_threads(threads: i32) -> GranStatus {
    guard(|| {
        if !(1..=MAX_THREADS).contains(&threads) {
            return Err(crate::error::Error::invalid(format!("threads is {threads}: must be 1..={MAX_THREADS}")));
        }
        tch::set_num_threads(threads);
        Ok(())
    })
}

/// The most threads `gran_set_num_threads` accepts.
const MAX_THREADS: i32 = 256;

/// The threads libtorch's CPU operators use (`gran_set_num_threads`).
///
/// Thread safety: any thread.
#[no_mangle]
pub extern "C" fn gran_num_threads() -> i32 {
    guard_value(1, tch::get_num_threads)
}
