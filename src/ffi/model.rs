//! Exported functions on models: configuration, creation, checkpoints, freeing, cancelling.

use super::boundary::{arg_mut, arg_path, arg_ref, guard, read_versioned, write_versioned, Versioned};
use super::registry::Registry;
use super::status::GranStatus;
use super::types::{
    from_precision, generator_choice, precision, DeviceSpecs, GranDevice, GranGenerator, GranModel, GranModelConfig,
    GranPrecision, ModelConfigs,
};
use crate::model::Model;
use std::ffi::c_char;

pub(crate) static MODELS: Registry<Model> = Registry::new("model");

/// Fills `cfg` with the defaults: 28x28x1 images, 3 steps, z_dim 100, hidden 100, the paper's
/// widths (scale 1.0), leaky-ReLU discriminator, device AUTO, seed 0, and `struct_size` set. Does
/// nothing when `cfg` is NULL.
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

/// Creates a model with freshly initialised weights (DCGAN initialisation from `cfg->seed`) and
/// writes its handle to `*out`. Free it with `gran_model_free`.
///
/// Errors: INVALID_ARGUMENT for a NULL pointer, a bad `struct_size` or an out-of-range field
/// (the message names it); DEVICE when `cfg->device` names a CUDA device that is not present;
/// OUT_OF_MEMORY.
///
/// Thread safety: any thread.
///
/// # Safety
/// `cfg` points to a GranModelConfig (at least its `struct_size` bytes); `out` to a GranModel.
#[no_mangle]
pub unsafe extern "C" fn gran_model_create(cfg: *const GranModelConfig, out: *mut GranModel) -> GranStatus {
    guard(|| {
        let cfg = read_versioned(cfg, "cfg")?.to_core()?;
        let out = arg_mut(out, "out")?;
        let model = Model::new(&cfg)?;
        *out = MODELS.insert(model);
        Ok(())
    })
}

/// Writes the configuration of `m` to `*out` (no more than `out->struct_size` bytes; set it
/// first, e.g. with `gran_model_config_init`). `out->device` is the concrete device the model
/// lives on (never AUTO).
///
/// Errors: INVALID_HANDLE, INVALID_ARGUMENT (NULL out, `out->struct_size` below 8).
///
/// Thread safety: any thread, also while the model trains.
///
/// # Safety
/// `out` points to a GranModelConfig whose `struct_size` is set.
#[no_mangle]
pub unsafe extern "C" fn gran_model_config(m: GranModel, out: *mut GranModelConfig) -> GranStatus {
    guard(|| {
        let model = MODELS.get(m)?;
        write_versioned(out, &GranModelConfig::from_core(model.config()), "out")
    })
}

/// Writes the number of training steps `m` has completed to `*out`.
///
/// Errors: INVALID_HANDLE, INVALID_ARGUMENT (NULL out).
///
/// Thread safety: any thread, also while the model trains.
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

/// Sets the precision of `m`'s sampling and scoring: `gran_sample`, `gran_sample_steps`,
/// `gran_generate`, `gran_discriminate`, and the model's part in `gran_gam` and
/// `gran_evaluate_model` (not training: `GranTrainConfig.precision` says that).
/// `GRAN_PRECISION_BF16` computes in bfloat16, faster where the hardware has bfloat16 units;
/// images still come back as asked (`GranPixelFormat`), and an image may then differ in its
/// last bits with the number of images asked for in the call. Calls already running keep the
/// precision they started with. Not saved with the model: a model is created and loaded with
/// `GRAN_PRECISION_FP32`.
///
/// Errors: INVALID_HANDLE; INVALID_ARGUMENT for an unknown `precision`.
///
/// Thread safety: any thread, also while the model trains or samples.
#[no_mangle]
pub extern "C" fn gran_model_set_precision(m: GranModel, precision: GranPrecision) -> GranStatus {
    guard(|| {
        let model = MODELS.get(m)?;
        model.set_precision(self::precision(precision, "precision")?);
        Ok(())
    })
}

/// Writes the precision of `m`'s sampling and scoring (`gran_model_set_precision`) to `*out`.
///
/// Errors: INVALID_HANDLE, INVALID_ARGUMENT (NULL out).
///
/// Thread safety: any thread.
///
/// # Safety
/// `out` points to a writable GranPrecision.
#[no_mangle]
pub unsafe extern "C" fn gran_model_precision(m: GranModel, out: *mut GranPrecision) -> GranStatus {
    guard(|| {
        let model = MODELS.get(m)?;
        *arg_mut(out, "out")? = from_precision(model.precision());
        Ok(())
    })
}

/// Chooses the generator `m` samples with: `GRAN_GENERATOR_AVERAGED` (the default: the averaged
/// generator when the model has one, see `GranTrainConfig.ema_decay`, else the raw one) or
/// `GRAN_GENERATOR_RAW` (the weights as trained). It applies to `gran_sample`,
/// `gran_sample_steps`, `gran_generate` and the model's samples in `gran_gam` and
/// `gran_evaluate_model` (GAM's discriminator is the model's one either way). Calls already
/// running keep the generator they started with. Not saved with the model.
///
/// Errors: INVALID_HANDLE; INVALID_ARGUMENT for an unknown `generator`.
///
/// Thread safety: any thread, also while the model trains or samples.
#[no_mangle]
pub extern "C" fn gran_model_set_generator(m: GranModel, generator: GranGenerator) -> GranStatus {
    guard(|| {
        let model = MODELS.get(m)?;
        model.set_generator_choice(generator_choice(generator, "generator")?);
        Ok(())
    })
}

/// Writes 1 to `*out` when `m` has an averaged generator (it was trained with
/// `ema_decay` > 0, or loaded from a checkpoint of such a model), else 0.
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

/// Writes `m`'s generator to `path` for shipping: one safetensors file with the configuration
/// and the weights and batch-norm statistics of one generator (the averaged generator when the
/// model has one, else the raw one), each value stored as `storage` says:
/// `GRAN_PRECISION_FP32` (the same images as the model, bit for bit) or `GRAN_PRECISION_BF16`
/// (half the size; the weights rounded to bfloat16, so pixels differ from the float32 model's
/// by a few 1/255 steps: BENCHMARKS.md). No discriminator and no optimizer state: a few times smaller than the
/// checkpoint. `gran_model_load` reads it as a sampling-only model (`gran_model_inference_only`):
/// sampling, step pictures, latents, generate and the evaluator work; training, discriminate,
/// GAM and `gran_model_save` return INVALID_ARGUMENT. The write is atomic, as `gran_model_save`.
///
/// Errors: INVALID_HANDLE; INVALID_ARGUMENT (NULL or non-UTF-8 path, unknown storage); IO;
/// OUT_OF_MEMORY.
///
/// Thread safety: any thread, also while the model trains (the file holds the weights between
/// two optimizer steps).
///
/// # Safety
/// `path` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gran_model_export(m: GranModel, path: *const c_char, storage: GranPrecision) -> GranStatus {
    guard(|| {
        let model = MODELS.get(m)?;
        let storage = match precision(storage, "storage")? {
            crate::nn::precision::Precision::Fp32 => crate::io::Storage::F32,
            crate::nn::precision::Precision::Bf16 => crate::io::Storage::Bf16,
        };
        crate::io::export::export(&model, &arg_path(path, "path")?, storage)
    })
}

/// Writes 1 to `*out` when `m` was loaded from a generator export (`gran_model_export`):
/// sampling only. Else 0.
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
        let model = MODELS.get(m)?;
        *arg_mut(out, "out")? = model.inference_only() as i32;
        Ok(())
    })
}

/// Saves `m` to `path` as one checkpoint file (safetensors: configuration, both networks, both
/// optimizers' state, the step counter). The write is atomic: a temporary file in the same
/// folder, flushed, then renamed; a crash or a full disk leaves any previous file intact.
/// Temporary files are named `.<file name>.<pid>.<n>.tmp`; those left by a writer that was killed
/// are removed by the next save to the same path once their process is gone, so they never
/// accumulate. `path` names a regular file or nothing yet; a symbolic link is followed and its
/// target replaced (the link stays a link); a link to nothing, a folder, a FIFO, a device or a
/// socket is IO, and the node is left untouched. The same holds for every file gran writes
/// (exports, training checkpoints, PNG grids).
///
/// Errors: INVALID_ARGUMENT (NULL or non-UTF-8 path; a model loaded from a generator export,
/// which has no training state to save: `gran_model_export` writes those), IO (folder
/// missing, disk full, a path that is not a regular file, ...), OUT_OF_MEMORY.
///
/// Thread safety: any thread, also while the model trains (the file holds the weights between
/// two optimizer steps) and while other threads sample.
///
/// # Safety
/// `path` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gran_model_save(m: GranModel, path: *const c_char) -> GranStatus {
    guard(|| {
        let model = MODELS.get(m)?;
        crate::io::checkpoint::save(&model, &arg_path(path, "path")?)
    })
}

/// Loads a checkpoint written by `gran_model_save`, or a generator export written by
/// `gran_model_export`, and writes the new model's handle to `*out`. `device`: where to put it;
/// NULL puts it on the device it was saved from when that exists here, else AUTO. From a
/// checkpoint, training continues from the saved step, exactly as if never stopped; an export
/// gives a sampling-only model (`gran_model_inference_only`).
///
/// Errors: IO (cannot read, or not a regular file: a FIFO, device or folder is refused before
/// any read), FORMAT (anything that is not an intact gran checkpoint: truncated, corrupt,
/// another format or format version, a header over 16 MiB, a tensor table that does not match
/// the configuration or the file's length, non-finite weights, statistics or moments, negative
/// variances or second moments, Adam update counts that differ from the step counter), DEVICE,
/// INVALID_ARGUMENT, OUT_OF_MEMORY. Each check comes before the work it would justify: the
/// table before the data is read, the data's checksum and values before the model is built.
/// No format that can execute code is read.
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
        let device = if device.is_null() { None } else { Some(arg_ref(device, "device")?.to_spec()?) };
        let out = arg_mut(out, "out")?;
        let model = crate::io::load(&path, device)?;
        *out = MODELS.insert(model);
        Ok(())
    })
}

/// Frees a model. 0 is accepted and does nothing; a handle already freed (or never issued) is
/// INVALID_HANDLE. Safe while other threads use the model: their new calls fail with
/// INVALID_HANDLE at once, calls in flight finish, a training run in progress is cancelled
/// (its `gran_train` returns CANCELLED), and the memory goes when the last call ends.
///
/// Errors: INVALID_HANDLE.
///
/// Thread safety: any thread.
#[no_mangle]
pub extern "C" fn gran_model_free(m: GranModel) -> GranStatus {
    guard(|| {
        if m != 0 {
            MODELS.remove(m)?.cancel();
        }
        Ok(())
    })
}

/// Asks a training run in progress on `m` to stop: `gran_train` returns CANCELLED before its
/// next step, with the model intact (holding the weights of the last completed step). Returns
/// OK also when the model is not training (then nothing happens: a later run is not affected).
///
/// Errors: INVALID_HANDLE.
///
/// Thread safety: any thread, including the progress callback.
#[no_mangle]
pub extern "C" fn gran_cancel(m: GranModel) -> GranStatus {
    guard(|| {
        MODELS.get(m)?.cancel();
        Ok(())
    })
}
