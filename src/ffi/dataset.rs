//! Exported functions on datasets: from caller pixels, from MNIST IDX, CIFAR-10 and image
//! folders; information; freeing. Datasets are immutable once made.

use super::boundary::{arg_bytes, arg_mut, arg_opt_path, arg_path, guard, write_versioned, Versioned};
use super::registry::Registry;
use super::status::GranStatus;
use super::types::{
    folder_labels, image_fit, pixel_format, GranDataset, GranDatasetInfo, GranFit, GranLabels, GranPixelFormat,
};
use crate::data::{pixels, Dataset};
use crate::error::Result;
use std::ffi::{c_char, c_void};

pub(crate) static DATASETS: Registry<Dataset> = Registry::new("dataset");

fn register(out: *mut GranDataset, make: impl FnOnce() -> Result<Dataset>) -> Result<()> {
    // SAFETY: callers pass their `out` argument, documented as pointing to a GranDataset.
    let out = unsafe { arg_mut(out, "out")? };
    *out = DATASETS.insert(make()?);
    Ok(())
}

/// Makes a dataset from `count` images in caller memory (copied: the buffer may be reused at
/// once). `pixels` holds count * height * width * channels values in `format` (bytes for the U8
/// formats, floats in [0, 1] for F32_CHW).
///
/// Errors: INVALID_ARGUMENT for NULL pointers, a count of 0, channels other than 1 or 3, a
/// height or width outside 1 ..= 16384, a total size past what memory can address, an unknown
/// format, or a float that is NaN or outside [0, 1] (the message gives its index and value);
/// OUT_OF_MEMORY.
///
/// Thread safety: any thread.
///
/// # Safety
/// `pixels` points to count * height * width * channels values of the format's type.
#[no_mangle]
pub unsafe extern "C" fn gran_dataset_from_pixels(
    pixels: *const c_void,
    count: usize,
    height: u32,
    width: u32,
    channels: u32,
    format: GranPixelFormat,
    out: *mut GranDataset,
) -> GranStatus {
    guard(|| from_pixels(pixels, None, count, (height, width, channels), format, out))
}

/// `gran_dataset_from_pixels`, with labels when `labels` is given.
///
/// # Safety
/// As `gran_dataset_from_labelled_pixels`, `labels` `None` or its pointer.
unsafe fn from_pixels(
    pixels: *const c_void,
    labels: Option<*const u8>,
    count: usize,
    (height, width, channels): (u32, u32, u32),
    format: GranPixelFormat,
    out: *mut GranDataset,
) -> Result<()> {
    let format = pixel_format(format)?;
    pixels::check_dims(count, channels, height, width)?;
    let len = pixels::bytes_for(format, count, channels, height, width)?;
    let data = arg_bytes(pixels as *const u8, len, "pixels")?;
    let labels = match labels {
        Some(p) => {
            let given = arg_bytes(p, count, "labels")?;
            let mut copy = crate::limits::vec_with_capacity(count, "the labels")?;
            copy.extend_from_slice(given);
            Some(copy)
        }
        None => None,
    };
    register(out, || Dataset::new(pixels::to_tensor(data, count, channels, height, width, format)?, labels))
}

/// `gran_dataset_from_pixels` with a class label per image (`labels`: `count` bytes, copied),
/// for class-conditional models (`GranModelConfig.classes`): labels 0 .. classes-1.
///
/// Errors: as `gran_dataset_from_pixels`; INVALID_ARGUMENT also for NULL `labels`.
///
/// Thread safety: any thread.
///
/// # Safety
/// `pixels` points to count * height * width * channels values of the format's type;
/// `labels` to `count` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn gran_dataset_from_labelled_pixels(
    pixels: *const c_void,
    labels: *const u8,
    count: usize,
    height: u32,
    width: u32,
    channels: u32,
    format: GranPixelFormat,
    out: *mut GranDataset,
) -> GranStatus {
    guard(|| from_pixels(pixels, Some(labels), count, (height, width, channels), format, out))
}

/// Loads MNIST-style IDX files: `images_path` (magic 0x00000803) and, unless NULL,
/// `labels_path` (magic 0x00000801, one label per image). Each may be plain or gzip-compressed
/// (detected from its bytes). A header may declare at most 4 GiB of data, and decompressed data
/// is never read past what the header declares. Errors: IO (cannot read, or not a regular
/// file), OUT_OF_MEMORY, FORMAT (bad magic, truncated, counts
/// that disagree), INVALID_ARGUMENT.
///
/// Thread safety: any thread.
///
/// # Safety
/// `images_path` is a NUL-terminated string, `labels_path` NULL or one; `out` points to a
/// GranDataset.
#[no_mangle]
pub unsafe extern "C" fn gran_dataset_load_idx(
    images_path: *const c_char,
    labels_path: *const c_char,
    out: *mut GranDataset,
) -> GranStatus {
    guard(|| {
        let images = arg_path(images_path, "images_path")?;
        let labels = arg_opt_path(labels_path, "labels_path")?;
        register(out, || crate::data::idx::load_idx(&images, labels.as_deref()))
    })
}

/// Loads CIFAR-10 in its binary format: `path` is one batch file (records of 1 label byte and
/// 3072 bytes of 32x32 planar RGB), or the folder holding `data_batch_1.bin` ...
/// `data_batch_5.bin` (those present; `test_batch.bin` when there are none). Labels are kept.
/// Errors: IO, FORMAT (a length that is not a whole number of records, a label above 9).
///
/// Thread safety: any thread.
///
/// # Safety
/// `path` is a NUL-terminated string; `out` points to a GranDataset.
#[no_mangle]
pub unsafe extern "C" fn gran_dataset_load_cifar10(path: *const c_char, out: *mut GranDataset) -> GranStatus {
    guard(|| {
        let path = arg_path(path, "path")?;
        register(out, || crate::data::cifar::load_cifar10(&path))
    })
}

/// Loads every PNG and JPEG file in `dir`, a folder (at any depth) or a `.zip` archive, in name
/// order folder by folder, converted to `channels` (1: grey, 3: RGB) and resized to
/// height x width (the aspect ratio is not kept); labelled by a `dataset.json` at its top
/// (StyleGAN2-ADA's `{"labels": [[name, label], ...]}`) when there is one. The same as
/// `gran_dataset_load_image_files` with GRAN_LABELS_AUTO and GRAN_FIT_STRETCH.
/// Errors: IO, FORMAT (a file that does not decode, named in the message; a bad archive or
/// dataset.json), INVALID_ARGUMENT (no images, bad sizes).
///
/// Thread safety: any thread.
///
/// # Safety
/// `dir` is a NUL-terminated string; `out` points to a GranDataset.
#[no_mangle]
pub unsafe extern "C" fn gran_dataset_load_images(
    dir: *const c_char,
    height: u32,
    width: u32,
    channels: u32,
    out: *mut GranDataset,
) -> GranStatus {
    guard(|| {
        let dir = arg_path(dir, "dir")?;
        register(out, || crate::data::images::load_images(&dir, height, width, channels))
    })
}

/// Loads the PNG and JPEG files of `path` (a folder, at any depth, or a `.zip` archive) as
/// `gran_dataset_load_images` does, with labels from `labels` (GRAN_LABELS_AUTO: dataset.json
/// when present; GRAN_LABELS_CLASS_FOLDERS: the index of each image's first-level folder, in
/// name order, as torchvision's ImageFolder; GRAN_LABELS_NONE) and images brought to
/// height x width by `fit` (GRAN_FIT_STRETCH, or GRAN_FIT_CENTER_CROP: the largest centred
/// crop of the target's aspect ratio, then resized).
/// Errors: as `gran_dataset_load_images`; INVALID_ARGUMENT also for an unknown `labels` or
/// `fit`, more than 256 class folders, or an image outside the class folders.
///
/// Thread safety: any thread.
///
/// # Safety
/// `path` is a NUL-terminated string; `out` points to a GranDataset.
#[no_mangle]
pub unsafe extern "C" fn gran_dataset_load_image_files(
    path: *const c_char,
    height: u32,
    width: u32,
    channels: u32,
    labels: GranLabels,
    fit: GranFit,
    out: *mut GranDataset,
) -> GranStatus {
    guard(|| {
        let path = arg_path(path, "path")?;
        let labels = folder_labels(labels)?;
        let shape = crate::data::ImageShape { height, width, channels, fit: image_fit(fit)? };
        register(out, || crate::data::load_image_source(&path, shape, labels))
    })
}

/// Loads a numpy `.npy` array of uint8 images, (N, H, W, C) or (N, C, H, W) with C 1 or 3, or
/// (N, H, W), C order (what `np.save` writes and `gran pack` makes), with its labels from
/// `NAME.labels.npy` beside it when that exists (N integers in 0..=255). The header is checked
/// before the data is read: its size must be the file's.
/// Errors: IO, FORMAT (not a .npy gran reads: the reason is named), INVALID_ARGUMENT,
/// OUT_OF_MEMORY.
///
/// Thread safety: any thread.
///
/// # Safety
/// `path` is a NUL-terminated string; `out` points to a GranDataset.
#[no_mangle]
pub unsafe extern "C" fn gran_dataset_load_npy(path: *const c_char, out: *mut GranDataset) -> GranStatus {
    guard(|| {
        let path = arg_path(path, "path")?;
        register(out, || crate::data::npy::load_npy(&path))
    })
}

/// Opens a numpy `.npy` array of uint8 images (as `gran_dataset_load_npy` reads it) without
/// loading it: the header, and the labels of `NAME.labels.npy` when present, are read now;
/// `gran_train` reads each minibatch from the file on a thread of its own, a few steps ahead,
/// so memory does not grow with the dataset (the file must stay as it is while the dataset is
/// used). The minibatches, and so the trained weights, are those of the loaded array. Functions
/// that need every image (`gran_evaluate` on it as the reference) read it whole once.
/// Errors: as `gran_dataset_load_npy`; a file that changes later makes the call reading it
/// fail with IO.
///
/// Thread safety: any thread.
///
/// # Safety
/// `path` is a NUL-terminated string; `out` points to a GranDataset.
#[no_mangle]
pub unsafe extern "C" fn gran_dataset_open_npy(path: *const c_char, out: *mut GranDataset) -> GranStatus {
    guard(|| {
        let path = arg_path(path, "path")?;
        register(out, || Dataset::open_npy(&path))
    })
}

/// Prepares `out` for `gran_dataset_info`: zeroes every field and sets `struct_size`. Does
/// nothing when `out` is NULL.
///
/// Thread safety: any thread.
///
/// # Safety
/// `out` is NULL or points to a writable GranDatasetInfo.
#[no_mangle]
pub unsafe extern "C" fn gran_dataset_info_init(out: *mut GranDatasetInfo) {
    if !out.is_null() {
        out.write(GranDatasetInfo::defaults());
    }
}

/// Writes the dataset's image count, size, channels and whether it has labels to `*out` (no more
/// than `out->struct_size` bytes: set it first).
///
/// Errors: INVALID_HANDLE, INVALID_ARGUMENT (NULL out, `out->struct_size` below 8).
///
/// Thread safety: any thread.
///
/// # Safety
/// `out` points to a GranDatasetInfo whose `struct_size` is set.
#[no_mangle]
pub unsafe extern "C" fn gran_dataset_info(d: GranDataset, out: *mut GranDatasetInfo) -> GranStatus {
    guard(|| {
        let ds = DATASETS.get(d)?;
        let info = GranDatasetInfo {
            height: ds.height(),
            width: ds.width(),
            channels: ds.channels(),
            count: ds.count() as u64,
            has_labels: ds.labels().is_some() as u32,
            ..GranDatasetInfo::defaults()
        };
        write_versioned(out, &info, "out")
    })
}

/// Frees a dataset. 0 is accepted and does nothing; a handle already freed is INVALID_HANDLE.
/// Safe while a training run or an evaluation uses it: they keep it until they end.
///
/// Errors: INVALID_HANDLE.
///
/// Thread safety: any thread.
#[no_mangle]
pub extern "C" fn gran_dataset_free(d: GranDataset) -> GranStatus {
    guard(|| {
        if d != 0 {
            DATASETS.remove(d)?;
        }
        Ok(())
    })
}
