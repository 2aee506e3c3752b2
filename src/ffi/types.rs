//! The C-visible types: handles, enumerations (as integer typedefs with constants, so that any
//! value a C caller passes is checked rather than undefined behaviour) and parameter structs.

use super::boundary::Versioned;
use crate::config::{ModelConfig, Upsampling};
use crate::data::pixels::PixelFormat;
use crate::device::DeviceSpec;
use crate::error::{Error, Result};
use crate::nn::precision::Precision;
pub use gran_common::abi::{
    GranDevice, GranDeviceKind, GranGenerator, GranLogCallback, GranLogLevel, GranModel, GranModelConfig,
    GranPixelFormat, GranPrecision, GRAN_DEVICE_AUTO, GRAN_DEVICE_CPU, GRAN_DEVICE_CUDA, GRAN_GENERATOR_AVERAGED,
    GRAN_GENERATOR_RAW, GRAN_LOG_DEBUG, GRAN_LOG_ERROR, GRAN_LOG_INFO, GRAN_LOG_WARN, GRAN_PIXEL_FORMAT_F32_CHW,
    GRAN_PIXEL_FORMAT_U8_CHW, GRAN_PIXEL_FORMAT_U8_HWC, GRAN_PRECISION_BF16, GRAN_PRECISION_FP32,
};
use std::ffi::{c_char, c_void};

/// A dataset: an opaque identifier, never 0 when valid, never reused.
pub type GranDataset = u64;
/// A process group for data-parallel training (`gran_process_group_create`): an opaque
/// identifier, never 0 when valid, never reused. 0 in `GranTrainConfig.process_group`: one
/// process.
pub type GranProcessGroup = u64;

/// The distributed backend of a process group.
pub type GranBackend = u32;
/// NCCL where CUDA is available (and NCCL is in this build), else Gloo. A model on the CPU of
/// a machine with GPUs trains with `GRAN_BACKEND_GLOO`.
pub const GRAN_BACKEND_AUTO: GranBackend = 0;
/// c10d's Gloo: CPU tensors over TCP.
pub const GRAN_BACKEND_GLOO: GranBackend = 1;
/// c10d's NCCL: models on CUDA, each process on the GPU of its `local_rank`.
pub const GRAN_BACKEND_NCCL: GranBackend = 2;

pub(crate) fn backend(b: GranBackend, name: &str) -> Result<crate::dist::Backend> {
    use crate::dist::Backend;
    match b {
        GRAN_BACKEND_AUTO => Ok(Backend::Auto),
        GRAN_BACKEND_GLOO => Ok(Backend::Gloo),
        GRAN_BACKEND_NCCL => Ok(Backend::Nccl),
        _ => Err(Error::invalid(format!("{name} is {b}: unknown backend (AUTO 0, GLOO 1, NCCL 2)"))),
    }
}

/// How to make a process group (`gran_process_group_create`). Fill with
/// `gran_process_group_config_init`, then set at least `rank`, `world_size` and `master_port`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GranProcessGroupConfig {
    /// sizeof(GranProcessGroupConfig), set by the init function.
    pub struct_size: u32,
    /// `GRAN_BACKEND_AUTO` (default), `GRAN_BACKEND_GLOO` or `GRAN_BACKEND_NCCL`.
    pub backend: GranBackend,
    /// This process's rank, 0 ..= world_size - 1. Default 0.
    pub rank: u32,
    /// The number of processes. Default 1.
    pub world_size: u32,
    /// Where rank 0 serves the rendezvous (an address of rank 0's machine; default
    /// "127.0.0.1"). Read during the call only.
    pub master_addr: *const c_char,
    /// The port rank 0 listens on (1 ..= 65535). Default 29500 (torchrun's).
    pub master_port: u32,
    /// This process's CUDA device for NCCL (torchrun's LOCAL_RANK). Default 0.
    pub local_rank: u32,
    /// The longest the rendezvous or any collective may wait, in milliseconds (1 ..= 86400000):
    /// a peer that died or hangs makes `gran_train` return DISTRIBUTED after at most this long.
    /// Default 300000 (5 minutes).
    pub timeout_ms: u64,
}

unsafe impl Versioned for GranProcessGroupConfig {
    fn defaults() -> Self {
        GranProcessGroupConfig {
            struct_size: std::mem::size_of::<Self>() as u32,
            backend: GRAN_BACKEND_AUTO,
            rank: 0,
            world_size: 1,
            master_addr: std::ptr::null(),
            master_port: 29500,
            local_rank: 0,
            timeout_ms: 300_000,
        }
    }
}

/// Conversions between the C device and the core's.
pub(crate) trait DeviceSpecs: Sized {
    fn to_spec(self) -> Result<DeviceSpec>;
    fn from_spec(d: DeviceSpec) -> Self;
}

impl DeviceSpecs for GranDevice {
    fn to_spec(self) -> Result<DeviceSpec> {
        match self.kind {
            GRAN_DEVICE_CPU => Ok(DeviceSpec::Cpu),
            GRAN_DEVICE_AUTO => Ok(DeviceSpec::Auto),
            GRAN_DEVICE_CUDA if self.index >= 0 => Ok(DeviceSpec::Cuda(self.index as u32)),
            GRAN_DEVICE_CUDA => Err(Error::invalid(format!("CUDA device index {} is negative", self.index))),
            k => Err(Error::invalid(format!("device kind {k} is unknown (CPU 0, CUDA 1, AUTO 2)"))),
        }
    }

    fn from_spec(d: DeviceSpec) -> Self {
        match d {
            DeviceSpec::Cpu => GranDevice { kind: GRAN_DEVICE_CPU, index: 0 },
            DeviceSpec::Cuda(i) => GranDevice { kind: GRAN_DEVICE_CUDA, index: i as i32 },
            DeviceSpec::Auto => GranDevice { kind: GRAN_DEVICE_AUTO, index: 0 },
        }
    }
}

pub(crate) fn pixel_format(f: GranPixelFormat) -> Result<PixelFormat> {
    match f {
        GRAN_PIXEL_FORMAT_U8_HWC => Ok(PixelFormat::U8Hwc),
        GRAN_PIXEL_FORMAT_U8_CHW => Ok(PixelFormat::U8Chw),
        GRAN_PIXEL_FORMAT_F32_CHW => Ok(PixelFormat::F32Chw),
        _ => Err(Error::invalid(format!("pixel format {f} is unknown (U8_HWC 0, U8_CHW 1, F32_CHW 2)"))),
    }
}

pub(crate) fn precision(p: GranPrecision, name: &str) -> Result<Precision> {
    match p {
        GRAN_PRECISION_FP32 => Ok(Precision::Fp32),
        GRAN_PRECISION_BF16 => Ok(Precision::Bf16),
        _ => Err(Error::invalid(format!("{name} is {p}: unknown precision (FP32 0, BF16 1)"))),
    }
}

/// A learning-rate schedule (`GranTrainConfig.lr_schedule`): the factor on `lr_g` and `lr_d`
/// at each step, a function of the step alone (a resumed run follows the same schedule).
pub type GranLrSchedule = u32;
/// The same rates throughout (the default).
pub const GRAN_LR_CONSTANT: GranLrSchedule = 0;
/// The authors' decay: lr / (1 + epoch / 50).
pub const GRAN_LR_INVERSE_EPOCH: GranLrSchedule = 1;
/// Linear decay to zero at the run's last step: lr * (1 - step / end), where `end` is the step
/// counter the call ends at (a run resumed with its remaining steps has the same end).
pub const GRAN_LR_LINEAR: GranLrSchedule = 2;

pub(crate) fn lr_schedule(s: GranLrSchedule, name: &str) -> Result<crate::train::LrSchedule> {
    use crate::train::LrSchedule;
    match s {
        GRAN_LR_CONSTANT => Ok(LrSchedule::Constant),
        GRAN_LR_INVERSE_EPOCH => Ok(LrSchedule::InverseEpoch),
        GRAN_LR_LINEAR => Ok(LrSchedule::Linear),
        _ => Err(Error::invalid(format!("{name} is {s}: unknown schedule (CONSTANT 0, INVERSE_EPOCH 1, LINEAR 2)"))),
    }
}

fn from_lr_schedule(s: crate::train::LrSchedule) -> GranLrSchedule {
    use crate::train::LrSchedule;
    match s {
        LrSchedule::Constant => GRAN_LR_CONSTANT,
        LrSchedule::InverseEpoch => GRAN_LR_INVERSE_EPOCH,
        LrSchedule::Linear => GRAN_LR_LINEAR,
    }
}

/// Where `gran_dataset_load_image_files` takes labels from.
pub type GranLabels = u32;
/// `dataset.json` at the top of the folder or archive when there is one (StyleGAN2-ADA's).
pub const GRAN_LABELS_AUTO: GranLabels = 0;
/// Each image's first-level folder, indexed in name order (torchvision's ImageFolder).
pub const GRAN_LABELS_CLASS_FOLDERS: GranLabels = 1;
/// No labels.
pub const GRAN_LABELS_NONE: GranLabels = 2;

pub(crate) fn folder_labels(l: GranLabels) -> Result<crate::data::FolderLabels> {
    use crate::data::FolderLabels;
    match l {
        GRAN_LABELS_AUTO => Ok(FolderLabels::Auto),
        GRAN_LABELS_CLASS_FOLDERS => Ok(FolderLabels::Classes),
        GRAN_LABELS_NONE => Ok(FolderLabels::None),
        other => Err(Error::invalid(format!("labels {other} is unknown: GRAN_LABELS_AUTO, _CLASS_FOLDERS or _NONE"))),
    }
}

/// How `gran_dataset_load_image_files` brings an image to the asked size.
pub type GranFit = u32;
/// Resized to exactly the size (the aspect ratio is not kept).
pub const GRAN_FIT_STRETCH: GranFit = 0;
/// The largest centred crop of the size's aspect ratio, then resized.
pub const GRAN_FIT_CENTER_CROP: GranFit = 1;

pub(crate) fn image_fit(f: GranFit) -> Result<crate::data::Fit> {
    match f {
        GRAN_FIT_STRETCH => Ok(crate::data::Fit::Stretch),
        GRAN_FIT_CENTER_CROP => Ok(crate::data::Fit::CenterCrop),
        other => Err(Error::invalid(format!("fit {other} is unknown: GRAN_FIT_STRETCH or GRAN_FIT_CENTER_CROP"))),
    }
}

/// How training augments what the discriminator sees (`GranTrainConfig.augment`).
pub type GranAugment = u32;
/// No augmentation.
pub const GRAN_AUGMENT_OFF: GranAugment = 0;
/// Each augmentation with the fixed probability `augment_p`.
pub const GRAN_AUGMENT_FIXED: GranAugment = 1;
/// With a probability the run tunes so that D's real logits are positive `augment_target`
/// of the time on average (ADA), never below `augment_p`; the default.
pub const GRAN_AUGMENT_ADAPTIVE: GranAugment = 2;

pub(crate) fn augment(kind: GranAugment, p: f64, target: f64, name: &str) -> Result<crate::train::Augment> {
    use crate::train::Augment;
    match kind {
        GRAN_AUGMENT_OFF => Ok(Augment::Off),
        GRAN_AUGMENT_FIXED => Ok(Augment::Fixed(p)),
        GRAN_AUGMENT_ADAPTIVE => Ok(Augment::Adaptive { target, floor: p }),
        _ => Err(Error::invalid(format!("{name} is {kind}: unknown augmentation (OFF 0, FIXED 1, ADAPTIVE 2)"))),
    }
}

/// The C form of an augmentation setting: (kind, p: the fixed one or the adaptive floor,
/// adaptive target).
fn from_augment(a: crate::train::Augment) -> (GranAugment, f64, f64) {
    use crate::train::{Augment, DEFAULT_AUGMENT_FLOOR, DEFAULT_AUGMENT_TARGET};
    match a {
        Augment::Off => (GRAN_AUGMENT_OFF, DEFAULT_AUGMENT_FLOOR, DEFAULT_AUGMENT_TARGET),
        Augment::Fixed(p) => (GRAN_AUGMENT_FIXED, p, DEFAULT_AUGMENT_TARGET),
        Augment::Adaptive { target, floor } => (GRAN_AUGMENT_ADAPTIVE, floor, target),
    }
}

pub(crate) fn generator_choice(g: GranGenerator, name: &str) -> Result<crate::nn::ema::Choice> {
    match g {
        GRAN_GENERATOR_AVERAGED => Ok(crate::nn::ema::Choice::Averaged),
        GRAN_GENERATOR_RAW => Ok(crate::nn::ema::Choice::Raw),
        _ => Err(Error::invalid(format!("{name} is {g}: unknown generator (AVERAGED 0, RAW 1)"))),
    }
}

pub(crate) fn from_precision(p: Precision) -> GranPrecision {
    match p {
        Precision::Fp32 => GRAN_PRECISION_FP32,
        Precision::Bf16 => GRAN_PRECISION_BF16,
    }
}

/// Conversions between the C model configuration and the core's.
pub(crate) trait ModelConfigs: Sized {
    fn from_core(c: &ModelConfig) -> Self;
    fn to_core(&self) -> Result<ModelConfig>;
}

impl ModelConfigs for GranModelConfig {
    fn from_core(c: &ModelConfig) -> Self {
        GranModelConfig {
            struct_size: std::mem::size_of::<Self>() as u32,
            height: c.height,
            width: c.width,
            channels: c.channels,
            steps: c.drawing_steps,
            z_dim: c.z_dim,
            hidden_dim: c.hidden_dim,
            width_scale: c.width_scale,
            leaky_relu: c.leaky_relu as u32,
            device: GranDevice::from_spec(c.device),
            seed: c.seed,
            classes: c.classes,
            upsampling: c.upsampling.to_abi(),
        }
    }

    fn to_core(&self) -> Result<ModelConfig> {
        let c = ModelConfig {
            height: self.height,
            width: self.width,
            channels: self.channels,
            drawing_steps: self.steps,
            z_dim: self.z_dim,
            hidden_dim: self.hidden_dim,
            width_scale: self.width_scale,
            leaky_relu: self.leaky_relu != 0,
            device: self.device.to_spec()?,
            seed: self.seed,
            classes: self.classes,
            upsampling: Upsampling::from_abi(self.upsampling).ok_or_else(|| {
                Error::invalid(format!(
                    "upsampling is {}: must be GRAN_UPSAMPLING_TRANSPOSED (0) or GRAN_UPSAMPLING_RESIZE (1)",
                    self.upsampling
                ))
            })?,
        };
        c.validate()?;
        Ok(c)
    }
}

/// What `gran_dataset_info` reports.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct GranDatasetInfo {
    /// sizeof(GranDatasetInfo): set it before the call, e.g. with `gran_dataset_info_init`.
    pub struct_size: u32,
    pub height: u32,
    pub width: u32,
    pub channels: u32,
    /// Number of images.
    pub count: u64,
    /// Non-zero when the dataset has class labels.
    pub has_labels: u32,
}

unsafe impl Versioned for GranDatasetInfo {
    fn defaults() -> Self {
        GranDatasetInfo { struct_size: std::mem::size_of::<Self>() as u32, ..Default::default() }
    }
}

/// A progress report: means over the steps since the previous report.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct GranProgress {
    /// sizeof(GranProgress). For `gran_train`'s `last` output, set it before the call, e.g. with
    /// `gran_progress_init`.
    pub struct_size: u32,
    /// Non-zero when the discriminator wins outright (its loss averaged over the run's last 50
    /// steps is below 0.05; 0 before the run has made 50 steps): the generator then learns
    /// little; lower `lr_d`, narrow the model or add `d_weight_decay`.
    pub d_dominates: u32,
    /// The model's step counter after the last completed step.
    pub step: u64,
    /// The step counter this run ends at (for a run that stopped early, cancelled or diverged:
    /// where it would have ended).
    pub total_steps: u64,
    /// Epoch of the last completed step.
    pub epoch: u64,
    pub d_loss: f64,
    pub g_loss: f64,
    /// Mean D(x) on real minibatches.
    pub d_real: f64,
    /// Mean D(G(z)) on generated minibatches.
    pub d_fake: f64,
    /// Seconds since the run started.
    pub elapsed_seconds: f64,
    /// Real images per second over the report window.
    pub images_per_second: f64,
    /// The probability each augmentation of the discriminator's inputs has now (tuned by the
    /// run under `GRAN_AUGMENT_ADAPTIVE`); 0 when the run does not augment.
    pub augment_p: f64,
}

unsafe impl Versioned for GranProgress {
    fn defaults() -> Self {
        GranProgress { struct_size: std::mem::size_of::<Self>() as u32, ..Default::default() }
    }
}

impl GranProgress {
    pub(crate) fn from_core(p: &crate::train::Progress) -> Self {
        GranProgress {
            struct_size: std::mem::size_of::<Self>() as u32,
            d_dominates: p.d_dominates as u32,
            step: p.step,
            total_steps: p.total_steps,
            epoch: p.epoch,
            d_loss: p.d_loss,
            g_loss: p.g_loss,
            d_real: p.d_real,
            d_fake: p.d_fake,
            elapsed_seconds: p.elapsed_s,
            images_per_second: p.images_per_s,
            augment_p: p.augment_p,
        }
    }
}

/// Called with each progress report, on the thread that called `gran_train`, with no lock held:
/// it may call any gran function (sample a preview, save the model). The report is valid only
/// during the call. Return non-zero to stop training (`gran_train` then returns CANCELLED).
pub type GranProgressCallback =
    Option<unsafe extern "C" fn(progress: *const GranProgress, user_data: *mut c_void) -> i32>;

/// Training settings. Fill with `gran_train_config_init`, then change what you need.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct GranTrainConfig {
    /// sizeof(GranTrainConfig), set by `gran_train_config_init`.
    pub struct_size: u32,
    /// Minibatch size, >= 2 and <= the dataset's count. Default 64.
    pub batch_size: u32,
    /// Steps to run in this call, continuing from the model's step counter; 0: use `epochs`.
    /// Default 2000.
    pub iterations: u64,
    /// Passes over the data when `iterations` is 0. Default 0.
    pub epochs: u32,
    /// Adam settings of the generator: default lr 8e-4, betas (0.5, 0.999).
    pub lr_g: f64,
    pub beta1_g: f64,
    pub beta2_g: f64,
    /// Adam settings of the discriminator: default lr 3.2e-3, betas (0.5, 0.999). Both rates were
    /// chosen by measurement together with the averaged generator (docs/RESULTS.md, section 8).
    pub lr_d: f64,
    pub beta1_d: f64,
    pub beta2_d: f64,
    /// L2 weight decay on the discriminator's two linear layers. Default 0.
    pub d_weight_decay: f64,
    /// Seed of the minibatch order and the latents. Default 0.
    pub seed: u64,
    /// Steps between progress reports; 0: only at the end. Default 100.
    pub report_every: u64,
    /// Called with each report; NULL for none.
    pub on_progress: GranProgressCallback,
    /// Passed to `on_progress` as is.
    pub user_data: *mut c_void,
    /// When not NULL: a checkpoint written atomically every `checkpoint_every` steps (0: only
    /// at the end) and at the end of the run, to a path as `gran_model_save` accepts (a
    /// symbolic link's target is replaced). The string is read during the call only.
    pub checkpoint_path: *const c_char,
    pub checkpoint_every: u64,
    /// Precision of the training passes: `GRAN_PRECISION_FP32` (default) or
    /// `GRAN_PRECISION_BF16`. Independent of the model's sampling precision.
    pub precision: GranPrecision,
    /// Decay of the averaged generator, in [0, 1): after every step its weights move to
    /// `decay * average + (1 - decay) * weights`. Above 0, a model without an averaged
    /// generator gets one (saved in checkpoints; sampling, step pictures, GAM and the evaluator
    /// use it: `gran_model_set_generator`); 0: no averaging in this run (an averaged generator
    /// the model already has copies the raw one). Default 0.99 (docs/RESULTS.md, section 8).
    pub ema_decay: f64,
    /// The model step from which the average decays; before it, the averaged generator copies
    /// the raw one. Default 200.
    pub ema_start: u64,
    /// `GRAN_LR_CONSTANT` (default), `GRAN_LR_INVERSE_EPOCH` or `GRAN_LR_LINEAR`.
    pub lr_schedule: GranLrSchedule,
    /// Nonzero: on a CUDA device, capture the training step as one CUDA graph after 3 eager
    /// steps and replay it for the rest of the run (the same updates without the launch
    /// overhead of its few hundred small kernels). Elsewhere, or where the capture fails, the
    /// steps run eagerly and the log says why. Default 0 (off).
    pub cuda_graph: u32,
    /// Data-parallel training in this process group (`gran_process_group_create` or
    /// `_from_env`); 0 (default): one process. Every rank calls `gran_train` with the same
    /// settings and the same model (or checkpoint); `batch_size` is the global batch (a multiple
    /// of the world size, at least 2 per rank), each rank trains on its share of every
    /// minibatch, and gradients are averaged every step, so all ranks hold the same weights.
    /// Rank 0 alone writes `checkpoint_path`. `gran_cancel` or a callback's stop on any rank
    /// stops every rank at the same step; a rank that fails makes the others return
    /// DISTRIBUTED within the group's timeout, with the weights of their last complete step.
    pub process_group: GranProcessGroup,
    /// Augmentation of every image the discriminator sees, real and generated, inside the
    /// step (differentiable: G learns through it, and does not learn to draw augmented
    /// images): integer translation, cutout and, for colour images, brightness, saturation and
    /// contrast, each with a probability p per image. It keeps D from memorising a small
    /// dataset. `GRAN_AUGMENT_ADAPTIVE` (default): p starts where the model's last run left it
    /// (checkpoints keep it), never below `augment_p`, rises while D is too sure of the real
    /// images and falls back towards `augment_p` when it is not; `GRAN_AUGMENT_FIXED`: p =
    /// `augment_p`; `GRAN_AUGMENT_OFF`. Progress reports carry p.
    pub augment: GranAugment,
    /// Nonzero: horizontal flips among the augmentations (for data where a mirror image is as
    /// good as the image: not digits or text). Default 0.
    pub augment_flip: u32,
    /// In [0, 1]: the probability under `GRAN_AUGMENT_FIXED`; the lowest p under
    /// `GRAN_AUGMENT_ADAPTIVE` (augmentation also shapes what D learns when R1 keeps it from
    /// memorising: docs/RESULTS.md, section 16). Default 0.3.
    pub augment_p: f64,
    /// The target of `GRAN_AUGMENT_ADAPTIVE`, in (0, 1): the mean sign of D's logits on real
    /// images it holds p to. Default 0.6 (ADA's).
    pub augment_target: f64,
    /// `GRAN_AUGMENT_ADAPTIVE`: images over which p may move from 0 to 1; at least 1.
    /// Default 20000.
    pub augment_speed: f64,
    /// Weight gamma of the R1 penalty on real images, gamma / 2 * E||grad D(x)||^2; 0: off;
    /// negative (the default, -1): by image size, 0 for 28x28, 1 for 32x32 and 10 for 64x64
    /// and larger (docs/RESULTS.md, sections 11 and 26). A run with a penalty does not capture
    /// CUDA graphs.
    pub r1_gamma: f64,
    /// Steps between R1 penalties, each weighted by this (lazy regularisation); >= 1 unless
    /// `r1_gamma` is 0. Default 4.
    pub r1_every: u32,
    /// Unused: keeps `recompute` off the padding that callers built against a header without it
    /// passed (their `struct_size` is 216).
    pub reserved0: u32,
    /// Nonzero: per-step recomputation of the generator. Training memory stays flat in the
    /// number of drawing steps (only what one step hands the next is kept; the backward pass
    /// recomputes each step) for one more forward pass of the generator per step; the same
    /// gradients to float tolerance. Default 0.
    pub recompute: u32,
    /// Weight of the canvas penalty, weight * mean(max(|c| - 5, 0)^2) on the generator's
    /// summed canvas c (the image is sigmoid(c)), added to its loss: it keeps the canvas where
    /// the sigmoid passes gradient back, out of the saturated state (pixels at 0 or 255 that
    /// no longer learn) that ends failing runs on small colour sets (docs/RESULTS.md, sections
    /// 21-23). 0: off; negative (the default, -1): by image size, 0 for 28x28 images and 1 for
    /// 32x32 and larger.
    /// Callers built against a header without it (`struct_size` 224) get the default.
    pub canvas_penalty: f64,
}

unsafe impl Versioned for GranTrainConfig {
    fn defaults() -> Self {
        let d = crate::train::TrainConfig::default();
        GranTrainConfig {
            struct_size: std::mem::size_of::<Self>() as u32,
            batch_size: d.batch_size,
            iterations: d.iterations,
            epochs: d.epochs,
            lr_g: d.lr_g,
            beta1_g: d.beta1_g,
            beta2_g: d.beta2_g,
            lr_d: d.lr_d,
            beta1_d: d.beta1_d,
            beta2_d: d.beta2_d,
            d_weight_decay: d.d_weight_decay,
            seed: d.seed,
            report_every: d.report_every,
            on_progress: None,
            user_data: std::ptr::null_mut(),
            checkpoint_path: std::ptr::null(),
            checkpoint_every: d.checkpoint_every,
            precision: from_precision(d.precision),
            ema_decay: d.ema_decay,
            ema_start: d.ema_start,
            lr_schedule: from_lr_schedule(d.lr_schedule),
            cuda_graph: u32::from(d.cuda_graph),
            process_group: 0,
            augment: from_augment(d.augment).0,
            augment_flip: u32::from(d.augment_flip),
            augment_p: from_augment(d.augment).1,
            augment_target: from_augment(d.augment).2,
            augment_speed: d.augment_speed,
            r1_gamma: d.r1_gamma.unwrap_or(-1.0),
            r1_every: d.r1_every,
            reserved0: 0,
            recompute: u32::from(d.recompute),
            canvas_penalty: d.canvas_penalty.unwrap_or(-1.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_c_defaults_are_the_cores() {
        assert_eq!(GranModelConfig::from_core(&ModelConfig::default()), GranModelConfig::DEFAULT);
        assert_eq!(GranModelConfig::DEFAULT.to_core().unwrap(), ModelConfig::default());
    }
}
