//! Exported training functions.

use super::boundary::{arg_opt_path, check_versioned_out, guard, read_versioned, write_versioned, Versioned};
use super::dataset::DATASETS;
use super::model::MODELS;
use super::status::GranStatus;
use super::types::{lr_schedule, precision, GranDataset, GranModel, GranProgress, GranTrainConfig};
use crate::error::ErrorKind;
use crate::train::{train, TrainConfig};

/// Fills `cfg` with the defaults: 2000 iterations, batch 64, Adam lr 8e-4 (G) and 3.2e-3 (D) with
/// betas (0.5, 0.999), no weight decay, seed 0, a report every 100 steps, no callback, no
/// checkpoint, float32, and `struct_size` set. Does nothing when `cfg` is NULL.
///
/// Thread safety: any thread.
///
/// # Safety
/// `cfg` is NULL or points to a writable GranTrainConfig.
#[no_mangle]
pub unsafe extern "C" fn gran_train_config_init(cfg: *mut GranTrainConfig) {
    if !cfg.is_null() {
        cfg.write(GranTrainConfig::defaults());
    }
}

/// Prepares `out` for `gran_train`'s `last` report: zeroes every field and sets `struct_size`.
/// Does nothing when `out` is NULL.
///
/// Thread safety: any thread.
///
/// # Safety
/// `out` is NULL or points to a writable GranProgress.
#[no_mangle]
pub unsafe extern "C" fn gran_progress_init(out: *mut GranProgress) {
    if !out.is_null() {
        out.write(GranProgress::defaults());
    }
}

/// Trains `m` on `d`: per minibatch one discriminator update, then one generator update, each
/// with fresh latents; non-saturating losses; Adam. Continues from the model's step counter, so
/// save, load and train on gives the same weights as never stopping (same `cfg`, same data).
/// Blocks until the run ends. When `last` is not NULL, the final report is written to it (no more
/// than `last->struct_size` bytes: set it first), also when the run is cancelled or diverges.
///
/// Errors: INVALID_ARGUMENT (bad settings, images that do not match the model's size, a model
/// loaded from a generator export), BUSY
/// (the model is already training), CANCELLED (`gran_cancel`, the callback returned non-zero, or
/// the model was freed), DIVERGED (a NaN or infinite loss: the model keeps the weights of the
/// last finite step), IO (checkpoint writes), OUT_OF_MEMORY, DEVICE.
///
/// Thread safety: any thread; one run per model at a time (BUSY otherwise). Other threads may
/// sample, score, run GAM on and save the model during the run.
///
/// # Safety
/// `cfg` points to a GranTrainConfig (at least `struct_size` bytes) whose callback, user data
/// and checkpoint path are valid for the call; `last` is NULL or points to a GranProgress.
#[no_mangle]
pub unsafe extern "C" fn gran_train(
    m: GranModel,
    d: GranDataset,
    cfg: *const GranTrainConfig,
    last: *mut GranProgress,
) -> GranStatus {
    guard(|| {
        let model = MODELS.get(m)?;
        let data = DATASETS.get(d)?;
        let c = read_versioned(cfg, "cfg")?;
        let tc = TrainConfig {
            iterations: c.iterations,
            epochs: c.epochs,
            batch_size: c.batch_size,
            lr_g: c.lr_g,
            lr_d: c.lr_d,
            beta1_g: c.beta1_g,
            beta2_g: c.beta2_g,
            beta1_d: c.beta1_d,
            beta2_d: c.beta2_d,
            d_weight_decay: c.d_weight_decay,
            seed: c.seed,
            report_every: c.report_every,
            checkpoint_path: arg_opt_path(c.checkpoint_path, "cfg->checkpoint_path")?,
            checkpoint_every: c.checkpoint_every,
            precision: precision(c.precision, "cfg->precision")?,
            ema_decay: c.ema_decay,
            ema_start: c.ema_start,
            lr_schedule: lr_schedule(c.lr_schedule, "cfg->lr_schedule")?,
            cuda_graph: c.cuda_graph != 0,
            group: match c.process_group {
                0 => None,
                g => Some(crate::train::Group(super::dist::GROUPS.get(g)?)),
            },
        };
        if !last.is_null() {
            // Refuse a bad output struct before training rather than after.
            check_versioned_out(last, "last")?;
        }
        let mut final_report = GranProgress::defaults();
        let mut report = |p: &crate::train::Progress| -> bool {
            final_report = GranProgress::from_core(p);
            match c.on_progress {
                // SAFETY: the application guarantees the callback and its user data.
                Some(cb) => unsafe { cb(&final_report, c.user_data) != 0 },
                None => false,
            }
        };
        let result = train(&model, &data, &tc, &mut report);
        // `last` is written on success, and for a run that ran and then stopped (cancelled or
        // diverged: the step it stopped at); never for a run refused at the start.
        let ran = match &result {
            Ok(_) => true,
            Err(e) => matches!(e.kind, ErrorKind::Cancelled | ErrorKind::Diverged),
        };
        if !last.is_null() && ran {
            if result.is_err() {
                final_report.step = model.step();
            }
            write_versioned(last, &final_report, "last")?;
        }
        result.map(|_| ())
    })
}
