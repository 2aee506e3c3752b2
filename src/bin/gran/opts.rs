//! Options several subcommands share: the device, the precision, and where the data is.

use clap::ValueEnum;
use gran::{DeviceSpec, Precision};
use std::path::PathBuf;

/// "auto", "cpu", "cuda" (device 0) or "cuda:N" (clap's parser of a device argument).
pub fn parse_device(s: &str) -> Result<DeviceSpec, String> {
    s.parse::<DeviceSpec>().map_err(|e| e.message)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PrecisionArg {
    /// float32 throughout
    Fp32,
    /// bfloat16 mixed precision (faster on hardware with bfloat16 units)
    Bf16,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::Fp32 => Precision::Fp32,
            PrecisionArg::Bf16 => Precision::Bf16,
        }
    }
}

/// Device and precision of a command that runs trained models.
#[derive(clap::Args)]
#[command(next_help_heading = "Device")]
pub struct RunArgs {
    /// Where the models run: auto (CUDA 0 when present, else the CPU), cpu, cuda or cuda:N
    #[arg(long, value_name = "DEVICE", default_value = "auto", value_parser = parse_device)]
    pub device: DeviceSpec,
    /// Precision of the networks
    #[arg(long, value_enum, default_value_t = PrecisionArg::Fp32)]
    pub precision: PrecisionArg,
    /// Sample with the raw generator (the weights as trained) instead of the averaged one
    /// that a model trained with --ema-decay > 0 has
    #[arg(long)]
    pub raw: bool,
}

impl RunArgs {
    /// Loads a checkpoint onto the chosen device, in the chosen precision.
    pub fn load(&self, path: &std::path::Path) -> gran::Result<gran::Model> {
        let m = gran::checkpoint::load(path, Some(self.device))?;
        m.set_precision(self.precision.into());
        if self.raw {
            m.set_generator_choice(gran::Choice::Raw);
        }
        Ok(m)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScheduleArg {
    /// The same learning rates throughout
    Constant,
    /// The authors' decay: lr / (1 + epoch / 50)
    InverseEpoch,
    /// Linear decay to zero at the run's last step
    Linear,
}

impl From<ScheduleArg> for gran::train::LrSchedule {
    fn from(s: ScheduleArg) -> Self {
        match s {
            ScheduleArg::Constant => gran::train::LrSchedule::Constant,
            ScheduleArg::InverseEpoch => gran::train::LrSchedule::InverseEpoch,
            ScheduleArg::Linear => gran::train::LrSchedule::Linear,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AugmentArg {
    /// A probability the run tunes from how sure the discriminator is of the real images (ADA),
    /// never below --augment-p
    Ada,
    /// The fixed probability --augment-p
    Fixed,
    /// No augmentation
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum Stream {
    #[default]
    Auto,
    On,
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Recognised from the folder's files or the file's content
    Auto,
    /// MNIST IDX: a folder with train-/t10k-images-idx3-ubyte[.gz] (labels beside them), or one image file
    Idx,
    /// CIFAR-10 binary: a folder with data_batch_N.bin / test_batch.bin, or one .bin file
    Cifar,
    /// PNG/JPEG files in a folder (at any depth) or a zip archive (StyleGAN2-ADA's
    /// dataset_tool.py layout; labels from its dataset.json), resized to --image-size
    Images,
    /// A numpy .npy array of uint8 images, (N, H, W, C) or (N, C, H, W); labels from
    /// NAME.labels.npy beside it (`gran pack` writes both)
    Npy,
}

/// Where the images are. A folder holding a training and a held-out split gives `train` the
/// training split and `gam` / `eval` the held-out one.
#[derive(clap::Args, Clone)]
#[command(next_help_heading = "Data")]
pub struct DataArgs {
    /// A folder with MNIST IDX files (train-images-idx3-ubyte[.gz], t10k-...), a CIFAR-10 folder
    /// or .bin file, an IDX image file, a folder or .zip of PNG/JPEG images, or a .npy array.
    /// A folder with both splits gives `train` its training split and `gam`/`eval` the
    /// held-out one
    #[arg(short, long, value_name = "PATH", default_value = "data/mnist10k")]
    pub data: PathBuf,
    /// What --data holds
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub format: Format,
    #[command(flatten)]
    pub files: ImageFileArgs,
    /// Read each minibatch from the data's file during training instead of loading the set
    /// first: auto streams .npy arrays and loads the rest; on streams image folders and zips
    /// too (decoding each minibatch ahead of the step); off loads everything
    #[arg(long, value_enum, default_value_t = Stream::Auto)]
    pub stream: Stream,
    /// Use only the first N images of each set loaded
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
}

/// How image files (folders and zips) are decoded.
#[derive(clap::Args, Clone, Default)]
pub struct ImageFileArgs {
    /// Image files: resize every image to SIZE x SIZE (28, 32, 64 or 128 for a model)
    /// [default: the model's size; 32 for `train`; the first image's for `pack`]
    #[arg(long, value_name = "SIZE")]
    pub image_size: Option<u32>,
    /// Image files: 1 (grey) or 3 (RGB) [default: the model's; 3 for `train` and `pack`]
    #[arg(long, value_name = "C")]
    pub channels: Option<u32>,
    /// Image files: label each image by its class subfolder (one subfolder per class, in name
    /// order, as torchvision's ImageFolder) instead of by dataset.json
    #[arg(long)]
    pub class_folders: bool,
    /// Image files: crop each image to the largest centred square before resizing (instead of
    /// stretching it)
    #[arg(long)]
    pub center_crop: bool,
}
