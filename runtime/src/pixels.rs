//! Pixel layouts of caller buffers, and the conversion of a drawing's canvas into them, with
//! libgran's rules: the canvas is sigmoid(sum of the steps), bytes are
//! `round_half_even(clamp(v, 0, 1) * 255)`, floats are clamped to [0, 1] (NaN as 0).

use crate::error::{invalid, Result};
use gran_common::abi::{
    GranPixelFormat, GRAN_PIXEL_FORMAT_F32_CHW, GRAN_PIXEL_FORMAT_U8_CHW, GRAN_PIXEL_FORMAT_U8_HWC,
};

/// The layout of a pixel buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// Bytes, interleaved: image, row, column, channel.
    U8Hwc,
    /// Bytes, planar: image, channel, row, column.
    U8Chw,
    /// Native-endian float32 in [0, 1], planar.
    F32Chw,
}

impl PixelFormat {
    pub fn from_c(f: GranPixelFormat) -> Result<Self> {
        match f {
            GRAN_PIXEL_FORMAT_U8_HWC => Ok(PixelFormat::U8Hwc),
            GRAN_PIXEL_FORMAT_U8_CHW => Ok(PixelFormat::U8Chw),
            GRAN_PIXEL_FORMAT_F32_CHW => Ok(PixelFormat::F32Chw),
            _ => Err(invalid(format!("pixel format {f} is unknown (U8_HWC 0, U8_CHW 1, F32_CHW 2)"))),
        }
    }

    pub fn sample_bytes(self) -> usize {
        match self {
            PixelFormat::U8Hwc | PixelFormat::U8Chw => 1,
            PixelFormat::F32Chw => 4,
        }
    }
}

/// sigmoid in float32, as libtorch computes it.
#[inline]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// A value in [0, 1] (NaN as 0) as a byte.
#[inline]
pub(crate) fn to_byte(v: f32) -> u8 {
    let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
    (v * 255.0).round_ties_even() as u8
}

/// Writes image `img` of a canvas sum `sum` (`[n][H*W][C]`, before the sigmoid) into `out`
/// (one image in `format`).
pub(crate) fn write_image(sum: &[f32], img: usize, channels: usize, plane: usize, format: PixelFormat, out: &mut [u8]) {
    let src = &sum[img * plane * channels..][..plane * channels];
    match format {
        PixelFormat::U8Hwc => {
            for (o, &v) in out[..plane * channels].iter_mut().zip(src) {
                *o = to_byte(sigmoid(v));
            }
        }
        PixelFormat::U8Chw => {
            for (p, px) in src.chunks_exact(channels).enumerate() {
                for (c, &v) in px.iter().enumerate() {
                    out[c * plane + p] = to_byte(sigmoid(v));
                }
            }
        }
        PixelFormat::F32Chw => {
            for (p, px) in src.chunks_exact(channels).enumerate() {
                for (c, &v) in px.iter().enumerate() {
                    let v = sigmoid(v);
                    let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
                    out[(c * plane + p) * 4..][..4].copy_from_slice(&v.to_ne_bytes());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_half_to_even_after_clamping() {
        assert_eq!((to_byte(0.0), to_byte(1.0), to_byte(-3.0), to_byte(7.0), to_byte(f32::NAN)), (0, 255, 0, 255, 0));
        // 0.5 * 255 = 127.5 rounds to the even 128; 1.5 / 255 * 255 is 1.5 -> 2.
        assert_eq!(to_byte(0.5), 128);
        assert_eq!(to_byte(2.5 / 255.0), 2);
    }

    #[test]
    fn layouts_place_channels_as_named() {
        // Two images of 2 pixels x 2 channels; the canvas sums are +-20 (sigmoid ~ 1 or 0).
        let (ch, plane) = (2, 2);
        let mut sum = vec![-20f32; 2 * plane * ch];
        sum[plane * ch + 1] = 20.0; // image 1, pixel 0, channel 1
        let mut hwc = vec![9u8; 4];
        write_image(&sum, 1, ch, plane, PixelFormat::U8Hwc, &mut hwc);
        assert_eq!(hwc, [0, 255, 0, 0]);
        let mut chw = vec![9u8; 4];
        write_image(&sum, 1, ch, plane, PixelFormat::U8Chw, &mut chw);
        assert_eq!(chw, [0, 0, 255, 0]);
    }
}
