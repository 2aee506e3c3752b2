//! Conversions between caller pixel buffers and image tensors.
//!
//! Three buffer layouts are understood (see [`PixelFormat`]); tensors are always
//! `[N, C, H, W]` (planar, batch first), the layout the models work in.

use crate::error::{Error, ErrorKind, Result};
use tch::{Kind, Tensor};

/// The layout of a pixel buffer holding `count` images of `channels x height x width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// One byte per sample (0..=255), channels interleaved per pixel: image, row, column, channel.
    /// The layout image files and image tools use.
    U8Hwc,
    /// One byte per sample (0..=255), planar: image, channel, row, column.
    U8Chw,
    /// One native-endian `f32` per sample in `[0, 1]`, planar: image, channel, row, column.
    F32Chw,
}

impl PixelFormat {
    /// Bytes per sample: 1 for the `u8` formats, 4 for `F32Chw`.
    pub(crate) fn sample_bytes(self) -> usize {
        match self {
            PixelFormat::U8Hwc | PixelFormat::U8Chw => 1,
            PixelFormat::F32Chw => 4,
        }
    }
}

/// Bytes one image of `channels x height x width` takes in `format`; `InvalidArgument` when
/// that does not fit in a `usize` (checked, never saturated).
pub fn bytes_per_image(format: PixelFormat, channels: u32, height: u32, width: u32) -> Result<usize> {
    crate::limits::product(
        &[format.sample_bytes(), channels as usize, height as usize, width as usize],
        &format!("one {channels}x{height}x{width} image in {format:?}"),
    )
}

/// Bytes `count` images of `channels x height x width` take in `format` (checked).
pub fn bytes_for(format: PixelFormat, count: usize, channels: u32, height: u32, width: u32) -> Result<usize> {
    crate::limits::mul(
        bytes_per_image(format, channels, height, width)?,
        count,
        &format!("{count} images of {channels}x{height}x{width} in {format:?}"),
    )
}

/// The largest image height or width accepted anywhere (images, datasets, PNG tiles).
pub(crate) const MAX_SIDE: u32 = 16384;

/// Checks the dimensions of a batch of images: at least one image, 1 (grey) or 3 (RGB)
/// channels, and height and width in 1..=[`MAX_SIDE`]. Errors are `InvalidArgument`.
pub(crate) fn check_dims(count: usize, channels: u32, height: u32, width: u32) -> Result<()> {
    if count == 0 {
        return Err(Error::invalid("image count is 0: expected at least one image"));
    }
    if channels != 1 && channels != 3 {
        return Err(Error::invalid(format!("images have {channels} channels: expected 1 (grey) or 3 (RGB)")));
    }
    if height == 0 || width == 0 || height > MAX_SIDE || width > MAX_SIDE {
        return Err(Error::invalid(format!(
            "image size is {height}x{width}: height and width must be in 1..={MAX_SIDE}"
        )));
    }
    Ok(())
}

/// The `(count, channels, height, width)` of an `[N, C, H, W]` image tensor, checked with
/// [`check_dims`]. A tensor of another rank is `InvalidArgument`.
pub(crate) fn tensor_dims(images: &Tensor) -> Result<(usize, u32, u32, u32)> {
    let size = images.size();
    let bad_shape = || Error::invalid(format!("expected a 4-D image tensor [N, C, H, W], got shape {size:?}"));
    let &[n, c, h, w] = size.as_slice() else {
        return Err(bad_shape());
    };
    let count = usize::try_from(n).map_err(|_| bad_shape())?;
    let dim = |d: i64| u32::try_from(d).map_err(|_| bad_shape());
    let (channels, height, width) = (dim(c)?, dim(h)?, dim(w)?);
    check_dims(count, channels, height, width)?;
    Ok((count, channels, height, width))
}

/// The error for sample `index` holding `value`, outside the `[0, 1]` float pixel range.
fn out_of_range(index: usize, value: f64) -> Error {
    Error::invalid(format!(
        "float pixel value {index} is {value}: expected finite values in [0, 1] (the first bad value is reported)"
    ))
}

/// Checks that every value of a float tensor is finite and in `[0, 1]`; the error
/// (`InvalidArgument`) names the flat index and value of the first one that is not.
pub(crate) fn check_unit_range(t: &Tensor) -> Result<()> {
    let bad = t.f_ge(0.0)?.f_logical_and(&t.f_le(1.0)?)?.f_logical_not()?.f_flatten(0, -1)?;
    if bad.f_any()?.f_int64_value(&[])? == 0 {
        return Ok(());
    }
    let first = bad.f_nonzero()?.f_int64_value(&[0, 0])?;
    let value = t.f_flatten(0, -1)?.f_double_value(&[first])?;
    Err(out_of_range(first as usize, value))
}

/// Builds a CPU image tensor `[count, channels, height, width]` from a pixel buffer.
///
/// The result is `Uint8` (0..=255) for the `u8` formats and `Float` for `F32Chw`. The `f32`
/// values are read with `f32::from_ne_bytes` from 4-byte chunks, so `data` needs no particular
/// alignment.
///
/// # Errors
/// `InvalidArgument` when `count` is 0, `channels` is not 1 or 3, `height` or `width` is 0,
/// `data.len()` is not `count * bytes_per_image(..)`, or (for `F32Chw`) a value is NaN,
/// infinite or outside `[0, 1]` (the message gives the index and value of the first one).
/// Allocation failures are `OutOfMemory`.
pub fn to_tensor(
    data: &[u8],
    count: usize,
    channels: u32,
    height: u32,
    width: u32,
    format: PixelFormat,
) -> Result<Tensor> {
    check_dims(count, channels, height, width)?;
    let expected = bytes_for(format, count, channels, height, width)?;
    if data.len() != expected {
        return Err(Error::invalid(format!(
            "pixel buffer holds {} bytes: expected {expected} for {count} images of {channels}x{height}x{width} in {format:?}",
            data.len()
        )));
    }
    let (n, c, h, w) = (count as i64, channels as i64, height as i64, width as i64);
    let tensor = match format {
        PixelFormat::U8Chw => Tensor::f_from_data_size(data, &[n, c, h, w], Kind::Uint8)?,
        // `contiguous` alone keeps the permuted strides when C = 1 (they already count as
        // contiguous), which libtorch then reads as channels-last and convolves by another
        // path; the fresh view gives the standard layout, so HWC and CHW input score alike.
        PixelFormat::U8Hwc => Tensor::f_from_data_size(data, &[n, h, w, c], Kind::Uint8)?
            .f_permute([0, 3, 1, 2])?
            .f_contiguous()?
            .f_view([n, c, h, w])?,
        PixelFormat::F32Chw => {
            let value = |b: &[u8]| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
            if let Some(i) = data.chunks_exact(4).position(|b| !(0.0..=1.0).contains(&value(b))) {
                return Err(out_of_range(i, f64::from(value(&data[4 * i..]))));
            }
            // The bytes are native-endian floats already: one copy, into the tensor.
            Tensor::f_from_data_size(data, &[n, c, h, w], Kind::Float)?
        }
    };
    Ok(tensor)
}

/// Converts an image tensor to the sample type of `format`, on the tensor's own device:
/// `Uint8` for the `u8` formats, `Float` for `F32Chw`, permuted to `[N, H, W, C]` for `U8Hwc`.
///
/// Float input is mapped NaN to 0, +inf to 1, -inf to 0, then clamped to `[0, 1]`; bytes are
/// `round(v * 255)`. `Uint8` input is taken as 0..=255.
fn convert(images: &Tensor, format: PixelFormat) -> Result<Tensor> {
    let images = &images.f_detach()?;
    let kind = images.f_kind()?;
    let unit = match kind {
        Kind::Uint8 => None,
        Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16 => {
            Some(images.f_to_kind(Kind::Float)?.f_nan_to_num(0.0, 1.0, 0.0)?.f_clamp(0.0, 1.0)?)
        }
        other => {
            return Err(Error::invalid(format!("image tensor has kind {other:?}: expected a float kind or Uint8")))
        }
    };
    let converted = match (format, unit) {
        (PixelFormat::F32Chw, Some(f)) => f,
        (PixelFormat::F32Chw, None) => images.f_to_kind(Kind::Float)?.f_div_scalar(255.0)?,
        (_, Some(f)) => f.f_mul_scalar(255.0)?.f_round()?.f_to_kind(Kind::Uint8)?,
        (_, None) => images.shallow_clone(),
    };
    Ok(match format {
        PixelFormat::U8Hwc => converted.f_permute([0, 2, 3, 1])?,
        PixelFormat::U8Chw | PixelFormat::F32Chw => converted,
    })
}

/// Bytes needed to hold `images` (`[N, C, H, W]`) in `format`, after checking its shape.
fn needed_bytes(images: &Tensor, format: PixelFormat) -> Result<usize> {
    let (count, channels, height, width) = tensor_dims(images)?;
    bytes_for(format, count, channels, height, width)
}

/// Writes `images` (`[N, C, H, W]`, float in `[0, 1]` or `Uint8`, on any device) into `out` in
/// `format`. Exactly `N * bytes_per_image(..)` bytes are written, at the start of `out`; any
/// bytes after them are left untouched.
///
/// Bytes are `round(clamp(v, 0, 1) * 255)`; `F32Chw` values are clamped to `[0, 1]`. NaN is
/// written as 0 and infinities as the nearest bound.
///
/// # Errors
/// `BufferTooSmall` (with the needed size) when `out` is shorter than needed;
/// `InvalidArgument` for a tensor that is not 4-D, has 0 images, a channel count other than
/// 1 or 3, or a kind other than a float kind or `Uint8`; libtorch failures (e.g. `Device`).
pub fn write_from_tensor(images: &Tensor, format: PixelFormat, out: &mut [u8]) -> Result<()> {
    let needed = needed_bytes(images, format)?;
    if out.len() < needed {
        return Err(Error::new(
            ErrorKind::BufferTooSmall,
            format!("output buffer holds {} bytes: {needed} needed for these images in {format:?}", out.len()),
        ));
    }
    let converted = convert(images, format)?;
    // `f_copy_data_u8` moves the data to the CPU and makes it contiguous as needed, and copies
    // raw native-endian elements (4 bytes each for `Float`).
    converted.f_copy_data_u8(&mut out[..needed], converted.numel())?;
    Ok(())
}

/// The bytes of `images` (`[N, C, H, W]`, float in `[0, 1]` or `Uint8`, on any device) in
/// `format`: a new buffer filled by [`write_from_tensor`], whose conversion rules and errors
/// apply (except `BufferTooSmall`).
pub fn from_tensor(images: &Tensor, format: PixelFormat) -> Result<Vec<u8>> {
    let mut out = crate::limits::vec_filled(needed_bytes(images, format)?, 0u8, "the pixel buffer")?;
    write_from_tensor(images, format, &mut out)?;
    Ok(out)
}
