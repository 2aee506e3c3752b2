//! Exported training functions.

use super::boundary::{arg_opt_path, check_versioned_out, guard, read_versioned, write_versioned, Versioned};
use super::dataset::DATASETS;
use super::model::MODELS;
use super::status::GranStatus;
use super::types::{augment, lr_schedule, precision, GranDataset, GranModel, GranProgress, GranTrainConfig};
use crate::error::Result;
use crate::train::{train_reporting, Group, TrainConfig};

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
/// than `last->struct_size` bytes: set it first), also when the run is cancelled or diverges:
/// then `step` is the step counter the model holds, `total_steps` where the run would have
/// ended, and the means are those of the last report (zero before the first). Nothing is
/// written for a run refused before its first step or ended by another error.
///
/// Errors: INVALID_ARGUMENT (bad settings, images that do not match the model's size, a model
/// loaded from a generator export), BUSY
/// (the model is already training), CANCELLED (`gran_cancel`, the callback returned non-zero, or
/// the model was freed), DIVERGED (a NaN or infinite loss: the model keeps the weights of the
/// last finite step), IO (checkpoint writes), OUT_OF_MEMORY, DEVICE, DISTRIBUTED (in a process
/// group: a process died, hung past the group's timeout, or the ranks' weights differ). When a
/// process died or hung, the model holds the last step the group completed, and rank 0 writes
/// it to `checkpoint_path` (when set) before returning: a restarted group loads it and loses no
/// completed step.
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
        let tc = c.to_core()?;
        if !last.is_null() {
            // Refuse a bad output struct before training rather than after.
            check_versioned_out(last, "last")?;
        }
        let mut report = |p: &crate::train::Progress| -> bool {
            let report = GranProgress::from_core(p);
            match c.on_progress {
                // SAFETY: the application guarantees the callback and its user data.
                Some(cb) => unsafe { cb(&report, c.user_data) != 0 },
                None => false,
            }
        };
        let (result, stopped_at) = train_reporting(&model, &data, &tc, &mut report);
        if let (false, Some(p)) = (last.is_null(), stopped_at) {
            write_versioned(last, &GranProgress::from_core(&p), "last")?;
        }
        result.map(|_| ())
    })
}

impl GranTrainConfig {
    /// The core settings these C settings describe, each field checked as it is converted (the
    /// values themselves are checked by `TrainConfig::validate`).
    ///
    /// # Safety
    /// `checkpoint_path` is NULL or a NUL-terminated string valid for the call.
    unsafe fn to_core(self) -> Result<TrainConfig> {
        Ok(TrainConfig {
            iterations: self.iterations,
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr_g: self.lr_g,
            lr_d: self.lr_d,
            beta1_g: self.beta1_g,
            beta2_g: self.beta2_g,
            beta1_d: self.beta1_d,
            beta2_d: self.beta2_d,
            d_weight_decay: self.d_weight_decay,
            seed: self.seed,
            report_every: self.report_every,
            checkpoint_path: arg_opt_path(self.checkpoint_path, "cfg->checkpoint_path")?,
            checkpoint_every: self.checkpoint_every,
            precision: precision(self.precision, "cfg->precision")?,
            ema_decay: self.ema_decay,
            ema_start: self.ema_start,
            lr_schedule: lr_schedule(self.lr_schedule, "cfg->lr_schedule")?,
            cuda_graph: self.cuda_graph != 0,
            group: match self.process_group {
                0 => None,
                g => Some(Group(super::dist::GROUPS.get(g)?)),
            },
            augment: augment(self.augment, self.augment_p, self.augment_target, "cfg->augment")?,
            augment_speed: self.augment_speed,
            augment_flip: self.augment_flip != 0,
            r1_gamma: by_image_size(self.r1_gamma),
            r1_every: self.r1_every,
            recompute: self.recompute != 0,
            canvas_penalty: by_image_size(self.canvas_penalty),
        })
    }
}

/// A weight whose negative values mean "by image size" (`None`); NaN passes through, for
/// TrainConfig::validate to refuse.
fn by_image_size(weight: f64) -> Option<f64> {
    let by_size = weight < 0.0;
    (!by_size).then_some(weight)
}
