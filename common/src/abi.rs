//! The plain types and constants of the C interface that libgran and libgran_runtime both
//! declare (include/gran.h and its subset include/gran_runtime.h): one definition, so the two
//! headers cannot drift. Enumerations are integer typedefs with constants, so that any value a
//! C caller passes is checked rather than undefined behaviour.

use std::ffi::{c_char, c_void};

/// The ABI version this header describes. Compare with `gran_abi_version()` at run time: the
/// library only changes the meaning of an existing function, type or field with a new value.
pub const GRAN_ABI_VERSION: u32 = 1;

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

/// The static name of a status.
pub fn status_name(s: GranStatus) -> &'static [u8] {
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
/// A model: an opaque identifier, never 0 when valid, never reused.
pub type GranModel = u64;
/// Where a model runs. See `GranDevice`.
pub type GranDeviceKind = u32;
/// The CPU.
pub const GRAN_DEVICE_CPU: GranDeviceKind = 0;
/// CUDA device `index`.
pub const GRAN_DEVICE_CUDA: GranDeviceKind = 1;
/// CUDA device 0 when CUDA is available, else the CPU.
pub const GRAN_DEVICE_AUTO: GranDeviceKind = 2;

/// A device: a kind and, for `GRAN_DEVICE_CUDA`, the device index.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GranDevice {
    pub kind: GranDeviceKind,
    pub index: i32,
}

/// How pixels are laid out in caller memory.
pub type GranPixelFormat = u32;
/// Bytes 0..255, interleaved: image, row, column, channel (what image tools use).
pub const GRAN_PIXEL_FORMAT_U8_HWC: GranPixelFormat = 0;
/// Bytes 0..255, planar: image, channel, row, column.
pub const GRAN_PIXEL_FORMAT_U8_CHW: GranPixelFormat = 1;
/// 32-bit floats in [0, 1], planar: image, channel, row, column.
pub const GRAN_PIXEL_FORMAT_F32_CHW: GranPixelFormat = 2;

/// The precision the networks compute in. See `GranTrainConfig.precision` and
/// `gran_model_set_precision`.
pub type GranPrecision = u32;
/// float32 throughout (the default).
pub const GRAN_PRECISION_FP32: GranPrecision = 0;
/// bfloat16 mixed precision (autocast): convolutions and linear layers in bfloat16; weights,
/// gradients, optimizer state, batch-norm statistics, losses and output images in float32. No
/// loss scaling is needed. Faster where the hardware has bfloat16 units (CUDA GPUs from Ampere
/// on, CPUs with AVX-512 BF16 or AMX); works, more slowly, elsewhere. Results differ from
/// float32 in the low bits: a bfloat16 run does not repeat a float32 run bit for bit (it does
/// repeat itself). How it compares in quality: docs/RESULTS.md.
pub const GRAN_PRECISION_BF16: GranPrecision = 1;

/// How a model's generator doubles the size of its feature maps (`GranModelConfig.upsampling`).
pub type GranUpsampling = u32;
/// A 5x5 transposed convolution of stride 2 per layer: the paper's generator (the default).
pub const GRAN_UPSAMPLING_TRANSPOSED: GranUpsampling = 0;
/// Nearest-neighbour upsampling by 2, then a 5x5 convolution, per layer: every output pixel sees
/// the same taps, so the generator cannot draw a transposed convolution's checkerboard
/// (docs/RESULTS.md, section 19). Computed as the 6x6 transposed convolution it equals: 1.44
/// times the decoder's arithmetic, about the same time per training step on the CPU.
pub const GRAN_UPSAMPLING_RESIZE: GranUpsampling = 1;

/// Which generator a model samples with (`gran_model_set_generator`).
pub type GranGenerator = u32;
/// The averaged generator when the model has one, else the raw one (the default).
pub const GRAN_GENERATOR_AVERAGED: GranGenerator = 0;
/// The generator's weights as trained, step by step, with its own running statistics.
pub const GRAN_GENERATOR_RAW: GranGenerator = 1;

/// Message severity for the log callback.
pub type GranLogLevel = u32;
pub const GRAN_LOG_DEBUG: GranLogLevel = 0;
pub const GRAN_LOG_INFO: GranLogLevel = 1;
pub const GRAN_LOG_WARN: GranLogLevel = 2;
pub const GRAN_LOG_ERROR: GranLogLevel = 3;

/// Receives library messages at or above the level given to `gran_set_log_callback`. May be
/// called from any thread that calls into gran; `message` is valid only during the call.
pub type GranLogCallback =
    Option<unsafe extern "C" fn(level: GranLogLevel, message: *const c_char, user_data: *mut c_void)>;

/// The shape and initial weights of a model. Fill with `gran_model_config_init`, then change
/// what you need.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GranModelConfig {
    /// sizeof(GranModelConfig), set by `gran_model_config_init`.
    pub struct_size: u32,
    /// Image height and width: equal, and one of 28, 32, 64, 128. Default 28.
    pub height: u32,
    pub width: u32,
    /// 1 (grey) or 3 (RGB). Default 1.
    pub channels: u32,
    /// Drawing steps T, 1..=64; 1 is the single-step DCGAN-style baseline. Default 3.
    pub steps: u32,
    /// Latent size, 1..=4096. Default 100.
    pub z_dim: u32,
    /// Size of h_z and h_c, 1..=4096. Default 100.
    pub hidden_dim: u32,
    /// Multiplies the paper's channel counts, (0, 8]. Default 1.0 (the paper's widths).
    pub width_scale: f32,
    /// Non-zero: leaky ReLU (0.2) in the discriminator (DCGAN); 0: plain ReLU (the authors'
    /// code). Default 1, chosen by measurement (README.md).
    pub leaky_relu: u32,
    /// Where the model lives. Default AUTO.
    pub device: GranDevice,
    /// Seed of the initial weights. Default 0.
    pub seed: u64,
    /// Classes of a class-conditional model, 2..=256: it draws the class it is asked for
    /// (`gran_sample_class`) and trains on labelled data only. 0 (the default): unconditional.
    pub classes: u32,
    /// How the generator doubles its feature maps: `GRAN_UPSAMPLING_TRANSPOSED` (the default;
    /// zero, so code written before this field existed keeps its meaning) or
    /// `GRAN_UPSAMPLING_RESIZE`.
    pub upsampling: GranUpsampling,
}

impl GranModelConfig {
    /// The defaults `gran_model_config_init` writes: 28x28x1 images, 3 steps, z_dim 100, hidden
    /// 100, the paper's widths, leaky-ReLU discriminator, device AUTO, seed 0.
    pub const DEFAULT: GranModelConfig = GranModelConfig {
        struct_size: std::mem::size_of::<GranModelConfig>() as u32,
        height: 28,
        width: 28,
        channels: 1,
        steps: 3,
        z_dim: 100,
        hidden_dim: 100,
        width_scale: 1.0,
        leaky_relu: 1,
        device: GranDevice { kind: GRAN_DEVICE_AUTO, index: 0 },
        seed: 0,
        classes: 0,
        upsampling: GRAN_UPSAMPLING_TRANSPOSED,
    };
}

// SAFETY: repr(C), starts with `struct_size`, and every field is a plain number.
unsafe impl crate::boundary::Versioned for GranModelConfig {
    fn defaults() -> Self {
        Self::DEFAULT
    }
}
