//! Training data: the in-memory [`Dataset`] and its loaders (MNIST IDX, CIFAR-10 binary,
//! PNG/JPEG files in folder trees and zip archives, numpy `.npy` arrays, caller pixel buffers).

pub mod cifar;
pub mod idx;
pub mod images;
pub mod npy;
pub mod pixels;
pub mod records;
pub mod source;

pub use cifar::{load_cifar10, CifarRecords};
pub use idx::{load_idx, IdxRecords};
pub use images::{load_image_source, load_images, Fit, ImageShape};
pub use npy::load_npy;
pub use pixels::PixelFormat;
pub use records::RecordReader;
pub use source::{FolderLabels, ImageSource};

use crate::error::{Error, Result};
use std::fmt;
use tch::{Device, Kind, Tensor};

/// A set of same-sized images, optionally labelled, held on the CPU.
///
/// The images are one contiguous `[N, C, H, W]` tensor, either `Uint8` (0..=255, the compact
/// form the file loaders produce) or `Float` (values in `[0, 1]`). A dataset is immutable after
/// construction; [`Dataset::float_images`] and [`Dataset::float_slice`] give the `f32` view the
/// models train on.
pub struct Dataset {
    images: Stored,
    labels: Option<Vec<u8>>,
    count: usize,
    height: u32,
    width: u32,
    channels: u32,
}

/// Where a dataset's pixels are.
enum Stored {
    /// In memory: a contiguous CPU `[N, C, H, W]` tensor, `Uint8` or `Float`.
    Memory(Tensor),
    /// In a file, read on demand (images `start ..` of it): a `.npy` array, or image files
    /// decoded as they are read; the whole set is read into `all` only when something asks
    /// for all of it ([`Dataset::images`]).
    File { reader: std::sync::Arc<dyn ImageReader>, start: usize, all: std::sync::OnceLock<Tensor> },
}

// SAFETY: a `Dataset` is never modified after `Dataset::new` returns: every method takes `&self`
// and only reads the image tensor (narrowing, copying and converting it into new tensors).
// libtorch supports concurrent reads of one tensor from several threads, so sharing `&Dataset`
// across threads is sound. (`Tensor` is `Send` but not `Sync` only because it *can* be mutated
// in place, which nothing here does.)
unsafe impl Sync for Dataset {}

impl Dataset {
    /// Wraps an image tensor `[N, C, H, W]` (on any device; it is detached from autograd, moved
    /// to the CPU and made contiguous) and optional labels, one per image.
    ///
    /// # Errors
    /// `InvalidArgument` when the tensor is not 4-D, has no images, has a channel count other
    /// than 1 or 3, a zero height or width, a kind other than `Uint8` or `Float`, `Float`
    /// values that are NaN, infinite or outside `[0, 1]` (the first one is named), or when the
    /// number of labels differs from the number of images.
    pub fn new(images: Tensor, labels: Option<Vec<u8>>) -> Result<Dataset> {
        let (count, channels, height, width) = pixels::tensor_dims(&images)?;
        match images.f_kind()? {
            Kind::Uint8 => {}
            Kind::Float => pixels::check_unit_range(&images)?,
            other => {
                return Err(Error::invalid(format!(
                    "dataset images have kind {other:?}: expected Uint8 (0..255) or Float (in [0, 1])"
                )))
            }
        }
        if let Some(l) = &labels {
            if l.len() != count {
                return Err(Error::invalid(format!(
                    "{} labels given for {count} images: expected one per image",
                    l.len()
                )));
            }
        }
        let images = images.f_detach()?.f_to_device(Device::Cpu)?.f_contiguous()?;
        Ok(Dataset { images: Stored::Memory(images), labels, count, height, width, channels })
    }

    /// Opens a packed `.npy` image set (crate::data::npy) for training without loading it:
    /// start-up reads its header (and its labels file, when there is one); training reads each
    /// minibatch from the file, ahead of the step, so memory does not grow with the set.
    /// Everything else reads what it asks for ([`Dataset::float_slice`], [`Dataset::subset`]
    /// without a copy), or the whole set once ([`Dataset::images`]).
    ///
    /// # Errors
    /// As `npy::load_npy`, for the header and the labels.
    pub fn open_npy(path: &std::path::Path) -> Result<Dataset> {
        let (npy, labels) = npy::open_images(path)?;
        let (count, height, width, channels) = (npy.count, npy.height, npy.width, npy.channels);
        Ok(Dataset::on_demand(std::sync::Arc::new(npy), labels, count, (height, width, channels)))
    }

    /// Opens the image files of a folder tree or a zip archive (as `load_image_source` reads
    /// them) without decoding them: start-up lists the files (and reads the labels); training
    /// decodes each minibatch's files to `shape` on the reading thread, ahead of the step. The
    /// same minibatches, pixel for pixel, as the decoded set.
    ///
    /// # Errors
    /// As `ImageSource::open`, and `InvalidArgument` for a bad `shape`.
    pub fn open_image_source(path: &std::path::Path, shape: ImageShape, labels: FolderLabels) -> Result<Dataset> {
        shape.check()?;
        let source = ImageSource::open(path, labels)?;
        let labels = source.labels().map(<[u8]>::to_vec);
        let count = source.len();
        let reader = images::DecodingReader::new(source, shape);
        Ok(Dataset::on_demand(std::sync::Arc::new(reader), labels, count, (shape.height, shape.width, shape.channels)))
    }

    fn on_demand(
        reader: std::sync::Arc<dyn ImageReader>,
        labels: Option<Vec<u8>>,
        count: usize,
        (height, width, channels): (u32, u32, u32),
    ) -> Dataset {
        let images = Stored::File { reader, start: 0, all: std::sync::OnceLock::new() };
        Dataset { images, labels, count, height, width, channels }
    }

    /// For a streamed dataset: a handle that reads its images from another thread.
    pub(crate) fn file_reader(&self) -> Option<FileReader> {
        match &self.images {
            Stored::File { reader, start, .. } => {
                Some(FileReader { reader: reader.clone(), start: *start, count: self.count })
            }
            Stored::Memory(_) => None,
        }
    }

    /// Whether the pixels are read from a file on demand ([`Dataset::open_npy`]).
    pub fn streamed(&self) -> bool {
        matches!(self.images, Stored::File { .. })
    }

    /// Images `indices` (each below `count`) as stored, `[k, C, H, W]` on the CPU: read from
    /// the file of a streamed dataset, gathered from memory otherwise.
    pub(crate) fn read_images(&self, indices: &[usize]) -> Result<Tensor> {
        if let Some(&i) = indices.iter().find(|&&i| i >= self.count) {
            return Err(Error::invalid(format!("image {i} of a dataset of {} images", self.count)));
        }
        match &self.images {
            Stored::Memory(t) => {
                let idx: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
                Ok(t.f_index_select(0, &Tensor::f_from_slice(&idx)?)?)
            }
            Stored::File { .. } => self.file_reader().expect("a file").read_raw(indices)?.into_tensor(),
        }
    }

    /// The number of images (at least 1).
    pub fn count(&self) -> usize {
        self.count
    }

    /// Image height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Image width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Channels per image: 1 (grey) or 3 (RGB).
    pub fn channels(&self) -> u32 {
        self.channels
    }

    /// Samples per image: channels x height x width.
    pub fn image_len(&self) -> usize {
        self.channels as usize * self.height as usize * self.width as usize
    }

    /// One label per image, when the dataset has labels.
    pub fn labels(&self) -> Option<&[u8]> {
        self.labels.as_deref()
    }

    /// The stored images: a contiguous CPU `[N, C, H, W]` tensor, `Uint8` or `Float`.
    /// Treat it as read-only (see the `Sync` note on [`Dataset`]). A streamed dataset reads the
    /// whole set into memory the first time (and keeps it).
    ///
    /// # Errors
    /// Streamed: `Io` when the file cannot be read, `OutOfMemory`.
    pub fn images(&self) -> Result<&Tensor> {
        match &self.images {
            Stored::Memory(t) => Ok(t),
            Stored::File { reader, start, all } => {
                if let Some(t) = all.get() {
                    return Ok(t);
                }
                let read = reader.read(&(*start..*start + self.count).collect::<Vec<_>>())?;
                // Another thread may have read it meanwhile: either copy is the same.
                let _ = all.set(read);
                Ok(all.get().expect("set above"))
            }
        }
    }

    /// All images as `Float` in `[0, 1]` on `device`, shape `[N, C, H, W]`.
    ///
    /// `Uint8` data is copied as bytes and converted (divided by 255) on the device, which moves
    /// a quarter of the data a float copy would. The result may share storage with the dataset
    /// (when it is already `Float` on `device`): do not modify it in place.
    ///
    /// # Errors
    /// libtorch failures: `Device` (e.g. CUDA unavailable), `OutOfMemory`.
    pub fn float_images(&self, device: Device) -> Result<Tensor> {
        to_float(self.images()?, device)
    }

    /// The images on `device` as they are stored (bytes for images loaded as bytes: a quarter
    /// of the float size), for [`Dataset::gather_float`] to take minibatches from; `None` for a
    /// streamed dataset (its minibatches are read from its file).
    pub(crate) fn stored_images(&self, device: Device) -> Result<Option<Tensor>> {
        match &self.images {
            Stored::Memory(t) => Ok(Some(t.f_to_device(device)?)),
            Stored::File { .. } => Ok(None),
        }
    }

    /// Images `idx` (a 1-d int64 tensor on their device) of `stored` (from
    /// [`Dataset::stored_images`]) as `Float` in `[0, 1]`: the values `float_images` gives.
    pub(crate) fn gather_float(stored: &Tensor, idx: &Tensor) -> Result<Tensor> {
        to_float(&stored.f_index_select(0, idx)?, stored.device())
    }

    /// Stored images (from [`Dataset::read_images`]) as `Float` in `[0, 1]` on `device`.
    pub(crate) fn to_float(stored: &Tensor, device: Device) -> Result<Tensor> {
        to_float(stored, device)
    }

    /// Images `start .. start + count` as `Float` in `[0, 1]` on `device`, shape
    /// `[count, C, H, W]`; otherwise as [`Dataset::float_images`].
    ///
    /// # Errors
    /// `InvalidArgument` when `count` is 0 or the range runs past the last image; libtorch
    /// failures as for [`Dataset::float_images`].
    pub fn float_slice(&self, start: usize, count: usize, device: Device) -> Result<Tensor> {
        to_float(&self.range(start, count)?, device)
    }

    /// Images `start .. start + count` as stored (`Uint8` or `Float`, `[count, C, H, W]` on the
    /// CPU): a view of memory, or read from the file of a streamed dataset.
    ///
    /// # Errors
    /// `InvalidArgument` when `count` is 0 or the range runs past the last image; `Io` for a
    /// streamed dataset's file.
    pub fn stored_slice(&self, start: usize, count: usize) -> Result<Tensor> {
        self.range(start, count)
    }

    /// A new dataset of images `start .. start + count` (and their labels), holding its own
    /// copy of the pixels (a streamed dataset: the same file, nothing read).
    ///
    /// # Errors
    /// `InvalidArgument` when `count` is 0 or the range runs past the last image.
    pub fn subset(&self, start: usize, count: usize) -> Result<Dataset> {
        self.check_range(start, count)?;
        let images = match &self.images {
            Stored::Memory(_) => Stored::Memory(self.range(start, count)?.f_detach_copy()?),
            // The same file, from a later image: nothing is read.
            Stored::File { reader, start: first, .. } => {
                Stored::File { reader: reader.clone(), start: first + start, all: std::sync::OnceLock::new() }
            }
        };
        let labels = self.labels.as_ref().map(|l| l[start..start + count].to_vec());
        Ok(Dataset { images, labels, count, height: self.height, width: self.width, channels: self.channels })
    }

    fn check_range(&self, start: usize, count: usize) -> Result<()> {
        match start.checked_add(count) {
            Some(e) if count > 0 && e <= self.count => Ok(()),
            _ => Err(Error::invalid(format!(
                "image range {start} + {count} is not within the dataset's {} images (count must be at least 1)",
                self.count
            ))),
        }
    }

    /// Images `start .. start + count` as stored, after checking the range: a view of memory,
    /// or read from the file.
    fn range(&self, start: usize, count: usize) -> Result<Tensor> {
        self.check_range(start, count)?;
        match &self.images {
            Stored::Memory(t) => Ok(t.f_narrow(0, start as i64, count as i64)?),
            Stored::File { .. } => self.read_images(&(start..start + count).collect::<Vec<_>>()),
        }
    }
}

impl fmt::Debug for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataset")
            .field("count", &self.count)
            .field("channels", &self.channels)
            .field("height", &self.height)
            .field("width", &self.width)
            .field("streamed", &self.streamed())
            .field("labelled", &self.labels.is_some())
            .finish()
    }
}

/// Images read from a file on demand: `read` gives images `indices` as stored, `Uint8`
/// `[k, C, H, W]` (crate::data::npy's arrays, crate::data::images's decoded files).
pub(crate) trait ImageReader: Send + Sync {
    /// Images `indices` as bytes: `Raw::pixels` in `Raw::format`. Pure Rust, no libtorch call:
    /// the prefetch thread calls it, and libtorch operators there would start a second OpenMP
    /// team beside training's, oversubscribing the cores.
    fn read_raw(&self, indices: &[usize]) -> Result<Raw>;

    /// Images `indices` as stored, `Uint8` `[k, C, H, W]`.
    fn read(&self, indices: &[usize]) -> Result<Tensor> {
        self.read_raw(indices)?.into_tensor()
    }
}

/// Images read as bytes: `count` images of `channels x height x width` in `format`.
pub(crate) struct Raw {
    pub(crate) pixels: Vec<u8>,
    pub(crate) count: usize,
    pub(crate) channels: u32,
    pub(crate) height: u32,
    pub(crate) width: u32,
    pub(crate) format: PixelFormat,
}

impl Raw {
    /// A `Uint8` `[count, C, H, W]` tensor of the bytes.
    pub(crate) fn into_tensor(self) -> Result<Tensor> {
        pixels::to_tensor(&self.pixels, self.count, self.channels, self.height, self.width, self.format)
    }
}

/// A streamed dataset's images, readable from any thread (crate::train::prefetch).
pub(crate) struct FileReader {
    reader: std::sync::Arc<dyn ImageReader>,
    start: usize,
    count: usize,
}

impl FileReader {
    /// Images `indices` (each below the dataset's count) as bytes (no libtorch call).
    pub(crate) fn read_raw(&self, indices: &[usize]) -> Result<Raw> {
        if let Some(&i) = indices.iter().find(|&&i| i >= self.count) {
            return Err(Error::invalid(format!("image {i} of a dataset of {} images", self.count)));
        }
        self.reader.read_raw(&indices.iter().map(|&i| i + self.start).collect::<Vec<_>>())
    }
}

/// Copies stored images to `device` and makes them `Float` in `[0, 1]` there.
fn to_float(images: &Tensor, device: Device) -> Result<Tensor> {
    let moved = images.f_to_device(device)?;
    Ok(match moved.f_kind()? {
        Kind::Uint8 => moved.f_to_kind(Kind::Float)?.f_div_scalar(255.0)?,
        _ => moved,
    })
}
