//! What WebAssembly adds to the C functions: memory the JavaScript side can fill (the module's
//! own allocator), and loading a model from bytes, as a page has no files. Built for wasm32
//! only; the C functions (gran_sample, gran_sample_class, gran_latents, ...) are exported as
//! they are.

use crate::ffi::guard;
use crate::model::Model;
use gran_common::abi::{GranModel, GranStatus};
use gran_common::boundary::{arg_mut, arg_slice};

/// `len` bytes of this module's memory, 16-byte aligned, for the caller to fill or read (NULL
/// when it cannot be had). Free with `gran_wasm_free(ptr, len)`.
#[no_mangle]
pub extern "C" fn gran_wasm_alloc(len: usize) -> *mut u8 {
    match std::alloc::Layout::from_size_align(len.max(1), 16) {
        // SAFETY: a non-zero size and a valid alignment.
        Ok(layout) => unsafe { std::alloc::alloc(layout) },
        Err(_) => std::ptr::null_mut(),
    }
}

/// Frees memory from `gran_wasm_alloc` (`len` as asked for). NULL does nothing.
///
/// # Safety
/// `ptr` is NULL or came from `gran_wasm_alloc(len)` and is not freed yet.
#[no_mangle]
pub unsafe extern "C" fn gran_wasm_free(ptr: *mut u8, len: usize) {
    if let (false, Ok(layout)) = (ptr.is_null(), std::alloc::Layout::from_size_align(len.max(1), 16)) {
        std::alloc::dealloc(ptr, layout);
    }
}

/// Loads a model from the `len` bytes at `bytes` (a generator export or a training checkpoint,
/// checked as `gran_model_load` checks files) and writes its handle to `*out`.
///
/// # Safety
/// `bytes` points to `len` readable bytes; `out` to a GranModel.
#[no_mangle]
pub unsafe extern "C" fn gran_wasm_model_load(bytes: *const u8, len: usize, out: *mut GranModel) -> GranStatus {
    guard(|| {
        let data = arg_slice(bytes, len, "bytes")?;
        let out = arg_mut(out, "out")?;
        *out = crate::ffi::model::MODELS.insert(Model::from_bytes(data)?);
        Ok(())
    })
}
