//! Image files (PNG, JPEG) from a folder tree or a zip archive (crate::data::source), decoded
//! and brought to one size.

use super::pixels::{self, PixelFormat};
use super::source::{FolderLabels, ImageSource};
use super::Dataset;
use crate::error::{Error, Result};
use image::imageops::{self, FilterType};
use std::path::Path;

/// The largest height or width accepted.
const MAX_SIDE: u32 = 4096;

/// How an image of another shape is brought to the target size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fit {
    /// Resized to exactly the target size: the aspect ratio is not kept.
    #[default]
    Stretch,
    /// The largest centred crop of the target's aspect ratio, resized to the target size.
    CenterCrop,
}

/// The size images are decoded to: `height x width`, `channels` 1 (grey) or 3 (RGB), and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageShape {
    pub height: u32,
    pub width: u32,
    pub channels: u32,
    pub fit: Fit,
}

impl ImageShape {
    /// `InvalidArgument` for a side outside 1..=4096 or channels other than 1 or 3.
    pub fn check(&self) -> Result<()> {
        let (h, w) = (self.height, self.width);
        if !(1..=MAX_SIDE).contains(&h) || !(1..=MAX_SIDE).contains(&w) {
            return Err(Error::invalid(format!("image size {h}x{w}: height and width must be in 1..={MAX_SIDE}")));
        }
        pixels::check_dims(1, self.channels, h, w)
    }

    /// Bytes of one decoded image (interleaved).
    pub fn bytes(&self) -> usize {
        (self.height * self.width * self.channels) as usize
    }
}

/// Loads every PNG and JPEG file in folder `dir`, at any depth, into a `[N, channels, height,
/// width]` `Uint8` dataset, labelled by `dataset.json` when the folder has one
/// ([`load_image_source`] with `FolderLabels::Auto` and `Fit::Stretch`).
pub fn load_images(dir: &Path, height: u32, width: u32, channels: u32) -> Result<Dataset> {
    let shape = ImageShape { height, width, channels, fit: Fit::Stretch };
    load_image_source(dir, shape, FolderLabels::Auto)
}

/// Loads the images of a folder tree or a zip archive (crate::data::source: files in name
/// order, folder by folder; labels as `labels` says). Each is decoded by its content (not its
/// extension), converted to grey or RGB and brought to `shape` (`decode`).
///
/// # Errors
/// `InvalidArgument` for a bad `shape`, or from `ImageSource::open`; `Io` when a file cannot be
/// read; `Format` (naming the file) when one does not decode, or for a bad archive or label
/// file; `OutOfMemory`.
pub fn load_image_source(path: &Path, shape: ImageShape, labels: FolderLabels) -> Result<Dataset> {
    shape.check()?;
    let mut source = ImageSource::open(path, labels)?;
    let n = source.len();
    let total = pixels::bytes_for(PixelFormat::U8Hwc, n, shape.channels, shape.height, shape.width)?;
    let mut data = crate::limits::vec_with_capacity(total, "the decoded images")?;
    for i in 0..n {
        let bytes = source.read(i)?;
        data.extend_from_slice(&decode(&bytes, source.name(i), shape)?);
    }
    let tensor = pixels::to_tensor(&data, n, shape.channels, shape.height, shape.width, PixelFormat::U8Hwc)?;
    drop(data);
    Dataset::new(tensor, source.labels().map(<[u8]>::to_vec))
}

/// Decodes one file's bytes (`name` for messages) to `shape`: interleaved bytes, converted to
/// grey or RGB, cropped (`Fit::CenterCrop`) and resized with a triangle (bilinear) filter.
pub fn decode(bytes: &[u8], name: &str, shape: ImageShape) -> Result<Vec<u8>> {
    let img =
        image::load_from_memory(bytes).map_err(|e| Error::format(format!("{name}: cannot decode the image: {e}")))?;
    let img = match shape.fit {
        Fit::Stretch => img,
        Fit::CenterCrop => {
            let (w, h) = (img.width() as u64, img.height() as u64);
            // The largest w' x h' with w' / h' = width / height inside the image.
            let (tw, th) = (shape.width as u64, shape.height as u64);
            let (cw, ch) = if w * th > h * tw { (h * tw / th, h) } else { (w, w * th / tw) };
            let (cw, ch) = (cw.max(1) as u32, ch.max(1) as u32);
            img.crop_imm(((w as u32) - cw) / 2, ((h as u32) - ch) / 2, cw, ch)
        }
    };
    let (w, h) = (shape.width, shape.height);
    let same = img.width() == w && img.height() == h;
    Ok(if shape.channels == 1 {
        let g = img.to_luma8();
        if same {
            g.into_raw()
        } else {
            imageops::resize(&g, w, h, FilterType::Triangle).into_raw()
        }
    } else {
        let c = img.to_rgb8();
        if same {
            c.into_raw()
        } else {
            imageops::resize(&c, w, h, FilterType::Triangle).into_raw()
        }
    })
}

/// Image files decoded as they are read (`Dataset::open_image_source`): one source, read by one
/// thread at a time (a zip archive reads through one file position).
pub(crate) struct DecodingReader {
    source: parking_lot::Mutex<ImageSource>,
    shape: ImageShape,
}

impl DecodingReader {
    pub(crate) fn new(source: ImageSource, shape: ImageShape) -> DecodingReader {
        DecodingReader { source: parking_lot::Mutex::new(source), shape }
    }
}

impl super::ImageReader for DecodingReader {
    fn read_raw(&self, indices: &[usize]) -> Result<super::Raw> {
        let s = self.shape;
        let mut data = crate::limits::vec_with_capacity(
            crate::limits::mul(indices.len(), s.bytes(), "the images")?,
            "the images",
        )?;
        let mut source = self.source.lock();
        for &i in indices {
            let bytes = source.read(i)?;
            data.extend_from_slice(&decode(&bytes, source.name(i), s)?);
        }
        let (channels, height, width) = (s.channels, s.height, s.width);
        Ok(super::Raw { pixels: data, count: indices.len(), channels, height, width, format: PixelFormat::U8Hwc })
    }
}
