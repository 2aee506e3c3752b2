//! Loading, describing and freeing models.

use super::guard;
use crate::error::{with_status, Result};
use crate::model::Model;
use gran_common::abi::{
    GranDevice, GranGenerator, GranModel, GranModelConfig, GranStatus, GRAN_DEVICE_AUTO, GRAN_DEVICE_CPU,
    GRAN_GENERATOR_AVERAGED, GRAN_GENERATOR_RAW, GRAN_STATUS_DEVICE,
};
use gran_common::boundary::{arg_mut, arg_path, arg_ref, write_versioned, Versioned};
use gran_common::registry::Registry;
use std::ffi::c_char;

pub(crate) static MODELS: Registry<Model> = Registry::new("model");

/// Fills `cfg` with the defaults (28x28x1 images, 3 steps, z_dim 100, hidden 100, the paper's
/// widths, device AUTO, seed 0) and `struct_size`. Does nothing when `cfg` is NULL. Prepare a
/// GranModelConfig with it before `gran_model_config`.
///
/// Thread safety: any thread.
///
/// # Safety
/// `cfg` is NULL or points to a writable GranModelConfig.
#[no_mangle]
pub unsafe extern "C" fn gran_model_config_init(cfg: *mut GranModelConfig) {
    if !cfg.is_null() {
        cfg.write(GranModelConfig::defaults());
    }
}

/// Writes the configuration of `m` to `*out` (no more than `out->struct_size` bytes; set it
/// first, e.g. with `gran_model_config_init`). `out->device` is the CPU, where this library
/// draws.
///
/// Errors: INVALID_HANDLE, INVALID_ARGUMENT (NULL out, `out->struct_size` below 8).
///
/// Thread safety: any thread.
///
/// # Safety
/// `out` points to a GranModelConfig whose `struct_size` is set.
#[no_mangle]
pub unsafe extern "C" fn gran_model_config(m: GranModel, out: *mut GranModelConfig) -> GranStatus {
    guard(|| {
        let model = MODELS.get(m)?;
        let c = model.config();
        let cfg = GranModelConfig {
            height: c.height,
            width: c.width,
            channels: c.channels,
            steps: c.steps,
            z_dim: c.z_dim,
            hidden_dim: c.hidden_dim,
            width_scale: c.width_scale,
            leaky_relu: c.leaky_relu as u32,
            device: GranDevice { kind: GRAN_DEVICE_CPU, index: 0 },
            seed: c.seed,
            classes: c.classes,
            upsampling: c.upsampling.to_abi(),
            ..GranModelConfig::defaults()
        };
        write_versioned(out, &cfg, "out")
    })
}

/// Writes the number of training steps the weights of `m` are from to `*out`.
///
/// Errors: INVALID_HANDLE, INVALID_ARGUMENT (NULL out).
///
/// Thread safety: any thread.
///
/// # Safety
/// `out` points to a writable uint64_t.
#[no_mangle]
pub unsafe extern "C" fn gran_model_step(m: GranModel, out: *mut u64) -> GranStatus {
    guard(|| {
        let model = MODELS.get(m)?;
        *arg_mut(out, "out")? = model.step();
        Ok(())
    })
}

/// Chooses the generator `m` draws with: `GRAN_GENERATOR_AVERAGED` (the default: a training
/// checkpoint's averaged generator when it has one, else the raw one) or `GRAN_GENERATOR_RAW`.
/// A generator export holds one generator: both choices draw with it.
///
/// Errors: INVALID_HANDLE; INVALID_ARGUMENT for an unknown `generator`.
///
/// Thread safety: any thread; calls already running keep the generator they started with.
#[no_mangle]
pub extern "C" fn gran_model_set_generator(m: GranModel, generator: GranGenerator) -> GranStatus {
    guard(|| {
        let model = MODELS.get(m)?;
        match generator {
            GRAN_GENERATOR_AVERAGED => model.set_raw(false),
            GRAN_GENERATOR_RAW => model.set_raw(true),
            g => return Err(crate::error::invalid(format!("generator is {g}: unknown generator (AVERAGED 0, RAW 1)"))),
        }
        Ok(())
    })
}

/// Writes 1 to `*out` when `m` has an averaged generator besides the raw one (a training
/// checkpoint of a run with `ema_decay` > 0), else 0.
///
/// Errors: INVALID_HANDLE, INVALID_ARGUMENT (NULL out).
///
/// Thread safety: any thread.
///
/// # Safety
/// `out` points to a writable int32_t.
#[no_mangle]
pub unsafe extern "C" fn gran_model_has_averaged(m: GranModel, out: *mut i32) -> GranStatus {
    guard(|| {
        let model = MODELS.get(m)?;
        *arg_mut(out, "out")? = model.has_averaged() as i32;
        Ok(())
    })
}

/// Writes 1 to `*out`: every model of this library draws only (0 in libgran for a model that
/// can train).
///
/// Errors: INVALID_HANDLE, INVALID_ARGUMENT (NULL out).
///
/// Thread safety: any thread.
///
/// # Safety
/// `out` points to a writable int32_t.
#[no_mangle]
pub unsafe extern "C" fn gran_model_inference_only(m: GranModel, out: *mut i32) -> GranStatus {
    guard(|| {
        MODELS.get(m)?;
        *arg_mut(out, "out")? = 1;
        Ok(())
    })
}

/// Loads a generator export (`gran export`, `gran_model_export`; float32 or bfloat16) or the
/// generators of a training checkpoint (`gran_model_save`: the raw one, and the averaged one
/// when the file has it with statistics estimated for its weights, as gran_model_save writes
/// them; sampling uses the averaged one, see `gran_model_set_generator`) and writes the new
/// model's handle to `*out`. Free it with `gran_model_free`.
/// `device`: NULL, CPU or AUTO (this library draws on the CPU).
///
/// The file is checked before the work it would justify, as libgran checks it: its header
/// (at most 16 MiB) alone first, the configuration, the whole tensor table against the
/// configuration and the file's length, then the data's checksum and every value.
///
/// Errors: IO (cannot read, or not a regular file), FORMAT (anything that is not an intact
/// gran file), DEVICE (a CUDA device asked for), INVALID_ARGUMENT, OUT_OF_MEMORY.
///
/// Thread safety: any thread.
///
/// # Safety
/// `path` is a NUL-terminated string; `device` is NULL or points to a GranDevice; `out` points
/// to a GranModel.
#[no_mangle]
pub unsafe extern "C" fn gran_model_load(
    path: *const c_char,
    device: *const GranDevice,
    out: *mut GranModel,
) -> GranStatus {
    guard(|| {
        let path = arg_path(path, "path")?;
        if !device.is_null() {
            check_device(arg_ref(device, "device")?)?;
        }
        let out = arg_mut(out, "out")?;
        *out = MODELS.insert(Model::load(&path)?);
        Ok(())
    })
}

fn check_device(d: &GranDevice) -> Result<()> {
    match d.kind {
        GRAN_DEVICE_CPU | GRAN_DEVICE_AUTO => Ok(()),
        k => Err(with_status(
            GRAN_STATUS_DEVICE,
            format!("device kind {k}: libgran_runtime draws on the CPU (CPU 0 or AUTO 2)"),
        )),
    }
}

/// Frees a model. 0 is accepted and does nothing; a handle already freed (or never issued) is
/// INVALID_HANDLE. Safe while other threads use the model: their new calls fail with
/// INVALID_HANDLE at once, calls in flight finish, and the memory goes when the last one ends.
///
/// Errors: INVALID_HANDLE.
///
/// Thread safety: any thread.
#[no_mangle]
pub extern "C" fn gran_model_free(m: GranModel) -> GranStatus {
    guard(|| {
        if m != 0 {
            MODELS.remove(m)?;
        }
        Ok(())
    })
}
