//! Exported functions of the quality evaluator: a classifier trained on labelled data, then the
//! Frechet distance of its features, its classifier score, the share of images per class and the
//! nearest-training-image copy check, for a model's samples or for any set of images.

use super::boundary::{arg_mut, check_versioned_out, guard, read_versioned, write_versioned, Versioned};
use super::dataset::DATASETS;
use super::model::MODELS;
use super::registry::Registry;
use super::status::GranStatus;
use super::types::{DeviceSpecs, GranDataset, GranDevice, GranModel};
use crate::data::Dataset;
use crate::error::Result;
use crate::metrics::evaluator::{Evaluator, EvaluatorConfig, Quality, MAX_CLASSES};
use std::sync::Arc;

/// A trained quality evaluator: an opaque identifier, never 0 when valid, never reused.
pub type GranEvaluator = u64;

/// The most classes an evaluator handles (labels 0 .. GRAN_MAX_CLASSES-1).
pub const GRAN_MAX_CLASSES: usize = 64;
const _: () = assert!(GRAN_MAX_CLASSES == MAX_CLASSES);

pub(crate) static EVALUATORS: Registry<Evaluator> = Registry::new("evaluator");

/// How the evaluator's classifier is trained. Fill with `gran_evaluator_config_init`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct GranEvaluatorConfig {
    /// sizeof(GranEvaluatorConfig), set by `gran_evaluator_config_init`.
    pub struct_size: u32,
    /// Passes over the labelled data. Default 5 (about 98% held-out accuracy on MNIST).
    pub epochs: u32,
    /// Default 64.
    pub batch_size: u32,
    /// Adam learning rate, decaying linearly to 0. Default 1e-3.
    pub lr: f64,
    /// Seed of the initial weights and minibatch order. Default 0.
    pub seed: u64,
    /// Where the classifier runs. Default AUTO.
    pub device: GranDevice,
}

unsafe impl Versioned for GranEvaluatorConfig {
    fn defaults() -> Self {
        let d = EvaluatorConfig::default();
        GranEvaluatorConfig {
            struct_size: std::mem::size_of::<Self>() as u32,
            epochs: d.epochs,
            batch_size: d.batch_size,
            lr: d.lr,
            seed: d.seed,
            device: GranDevice::from_spec(crate::device::DeviceSpec::Auto),
        }
    }
}

/// The quality of a set of images (a model's samples, or a dataset) under an evaluator.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct GranQuality {
    /// sizeof(GranQuality): set it before the call, e.g. with `gran_quality_init`.
    pub struct_size: u32,
    /// Number of classes of the evaluator: the entries of `class_share` that are used.
    pub classes: u32,
    /// Images evaluated.
    pub count: u64,
    /// Frechet distance between the images' and the reference set's features (the classifier's
    /// penultimate layer, 128 values): lower is closer to the real data.
    pub frechet_distance: f64,
    /// exp(E KL(p(y|x) || p(y))) of the classifier's probabilities (the Inception-score
    /// formula): between 1 and `classes`; high when images are confidently of one class each and
    /// the classes are balanced.
    pub classifier_score: f64,
    /// Mean Euclidean pixel distance (pixels in [0, 1]) from each image to its nearest training
    /// image, and the same for the reference images; NaN when no training set was given. Images
    /// much closer to the training set than the reference images are suspected copies.
    pub nearest_train_distance: f64,
    pub reference_nearest_train_distance: f64,
    /// Share of the images the classifier assigns to each class; a collapsed model puts almost
    /// everything in a few classes.
    pub class_share: [f64; GRAN_MAX_CLASSES],
    /// A class-conditional model's samples (`gran_evaluate_model`): for each class, the share
    /// of the samples asked to be of it that the classifier assigns to it. NaN for a class no
    /// sample asked for, and everywhere for an unconditional model or an image set.
    pub class_accuracy: [f64; GRAN_MAX_CLASSES],
}

unsafe impl Versioned for GranQuality {
    fn defaults() -> Self {
        GranQuality {
            struct_size: std::mem::size_of::<Self>() as u32,
            classes: 0,
            count: 0,
            frechet_distance: 0.0,
            classifier_score: 0.0,
            nearest_train_distance: 0.0,
            reference_nearest_train_distance: 0.0,
            class_share: [0.0; GRAN_MAX_CLASSES],
            class_accuracy: [0.0; GRAN_MAX_CLASSES],
        }
    }
}

impl GranQuality {
    fn from_core(q: &Quality) -> Self {
        let mut out = GranQuality {
            classes: q.class_shares.len() as u32,
            count: q.count as u64,
            frechet_distance: q.frechet_distance,
            classifier_score: q.classifier_score,
            nearest_train_distance: q.nearest_train_distance,
            reference_nearest_train_distance: q.reference_nearest_train_distance,
            ..GranQuality::defaults()
        };
        out.class_share[..q.class_shares.len()].copy_from_slice(&q.class_shares);
        out.class_accuracy = [f64::NAN; GRAN_MAX_CLASSES];
        out.class_accuracy[..q.class_accuracy.len()].copy_from_slice(&q.class_accuracy);
        out
    }
}

/// Fills `cfg` with the defaults (5 epochs, batch 64, lr 1e-3, seed 0, device AUTO) and
/// `struct_size`. Does nothing when `cfg` is NULL.
///
/// Thread safety: any thread.
///
/// # Safety
/// `cfg` is NULL or points to a writable GranEvaluatorConfig.
#[no_mangle]
pub unsafe extern "C" fn gran_evaluator_config_init(cfg: *mut GranEvaluatorConfig) {
    if !cfg.is_null() {
        cfg.write(GranEvaluatorConfig::defaults());
    }
}

/// Prepares `out` for `gran_evaluate_model` and `gran_evaluate_dataset`: zeroes every field and
/// sets `struct_size`. Does nothing when `out` is NULL.
///
/// Thread safety: any thread.
///
/// # Safety
/// `out` is NULL or points to a writable GranQuality.
#[no_mangle]
pub unsafe extern "C" fn gran_quality_init(out: *mut GranQuality) {
    if !out.is_null() {
        out.write(GranQuality::defaults());
    }
}

/// Trains an evaluator (a small convolutional classifier) on the labelled dataset `labelled` and
/// writes its handle to `*out`. `cfg` NULL uses the defaults. Free it with `gran_evaluator_free`.
///
/// Errors: INVALID_ARGUMENT (a dataset without labels, more than GRAN_MAX_CLASSES classes, bad
/// settings), INVALID_HANDLE, DEVICE, OUT_OF_MEMORY.
///
/// Thread safety: any thread.
///
/// # Safety
/// `cfg` is NULL or points to a GranEvaluatorConfig; `out` points to a GranEvaluator.
#[no_mangle]
pub unsafe extern "C" fn gran_evaluator_train(
    labelled: GranDataset,
    cfg: *const GranEvaluatorConfig,
    out: *mut GranEvaluator,
) -> GranStatus {
    guard(|| {
        let data = DATASETS.get(labelled)?;
        let c = if cfg.is_null() { GranEvaluatorConfig::defaults() } else { read_versioned(cfg, "cfg")? };
        let out = arg_mut(out, "out")?;
        let device = c.device.to_spec()?.resolve()?;
        let ev = Evaluator::train(
            &data,
            &EvaluatorConfig { epochs: c.epochs, batch_size: c.batch_size, lr: c.lr, seed: c.seed },
            device,
        )?;
        *out = EVALUATORS.insert(ev);
        Ok(())
    })
}

/// Writes to `*out` the share of the labelled dataset's images that the evaluator classifies
/// as their label (its held-out accuracy when given held-out data).
///
/// Errors: INVALID_ARGUMENT (no labels, images of another size), INVALID_HANDLE.
///
/// Thread safety: any thread.
///
/// # Safety
/// `out` points to a writable double.
#[no_mangle]
pub unsafe extern "C" fn gran_evaluator_accuracy(e: GranEvaluator, labelled: GranDataset, out: *mut f64) -> GranStatus {
    guard(|| {
        let (ev, data) = (EVALUATORS.get(e)?, DATASETS.get(labelled)?);
        let out = arg_mut(out, "out")?;
        *out = ev.accuracy(&data)?;
        Ok(())
    })
}

/// Frees an evaluator. 0 does nothing; a handle already freed is INVALID_HANDLE. Safe while other
/// threads use it (they keep it until their call ends).
///
/// Errors: INVALID_HANDLE.
///
/// Thread safety: any thread.
#[no_mangle]
pub extern "C" fn gran_evaluator_free(e: GranEvaluator) -> GranStatus {
    guard(|| {
        if e != 0 {
            EVALUATORS.remove(e)?;
        }
        Ok(())
    })
}

fn optional_dataset(d: GranDataset) -> Result<Option<Arc<Dataset>>> {
    if d == 0 {
        Ok(None)
    } else {
        DATASETS.get(d).map(Some)
    }
}

/// Evaluates `samples` images drawn from model `m` with `seed` against the real images of
/// `reference` (held-out data), and, unless `train` is 0, the copy check against the training
/// images of `train`. Writes the result to `*out` (no more than `out->struct_size` bytes).
///
/// Per-call limit: `samples` 2 ..= 1,048,576 (2^20). The samples are scored as they are drawn,
/// chunk by chunk (the scores keep running sums), so memory does not grow with `samples`.
///
/// Errors: INVALID_ARGUMENT (samples outside the limit, images of different sizes),
/// INVALID_HANDLE, OUT_OF_MEMORY.
///
/// Thread safety: any thread; concurrent with training of the model.
///
/// # Safety
/// `out` points to a GranQuality whose `struct_size` is set.
#[no_mangle]
pub unsafe extern "C" fn gran_evaluate_model(
    e: GranEvaluator,
    m: GranModel,
    seed: u64,
    samples: u32,
    reference: GranDataset,
    train: GranDataset,
    out: *mut GranQuality,
) -> GranStatus {
    guard(|| {
        let (ev, model, reference) = (EVALUATORS.get(e)?, MODELS.get(m)?, DATASETS.get(reference)?);
        let train = optional_dataset(train)?;
        check_versioned_out(out, "out")?;
        let q = ev.model_quality(&model, seed, samples as usize, &reference, train.as_deref())?;
        write_versioned(out, &GranQuality::from_core(&q), "out")
    })
}

/// Evaluates the images of dataset `images` (for example real data, or images made elsewhere)
/// like `gran_evaluate_model`.
///
/// Errors: as `gran_evaluate_model` (INVALID_HANDLE, INVALID_ARGUMENT for images of another
/// size than the evaluator's or a NULL out, OUT_OF_MEMORY).
///
/// Thread safety: any thread.
///
/// # Safety
/// `out` points to a GranQuality whose `struct_size` is set.
#[no_mangle]
pub unsafe extern "C" fn gran_evaluate_dataset(
    e: GranEvaluator,
    images: GranDataset,
    reference: GranDataset,
    train: GranDataset,
    out: *mut GranQuality,
) -> GranStatus {
    guard(|| {
        let (ev, images, reference) = (EVALUATORS.get(e)?, DATASETS.get(images)?, DATASETS.get(reference)?);
        let train = optional_dataset(train)?;
        check_versioned_out(out, "out")?;
        let q = ev.quality(images.images()?, &reference, train.as_deref())?;
        write_versioned(out, &GranQuality::from_core(&q), "out")
    })
}
