//! PNG picture grids of caller pixels (`gran_write_png`), as libgran draws them: `min(columns,
//! count)` tiles per row, 2 black pixels between tiles, grey for 1 channel and RGB for 3,
//! written atomically.

use crate::error::{internal, invalid, zeros, Result};
use crate::pixels::{to_byte, PixelFormat};
use std::path::Path;

/// The largest image height or width accepted for PNG grids (libgran's).
const MAX_SIDE: u32 = 16384;

/// Checks a batch's dimensions as libgran does: at least one image, 1 or 3 channels, sides in
/// 1..=16384.
fn check_dims(count: usize, channels: u32, height: u32, width: u32) -> Result<()> {
    if count == 0 {
        return Err(invalid("image count is 0: expected at least one image"));
    }
    if channels != 1 && channels != 3 {
        return Err(invalid(format!("images have {channels} channels: expected 1 (grey) or 3 (RGB)")));
    }
    if height == 0 || width == 0 || height > MAX_SIDE || width > MAX_SIDE {
        return Err(invalid(format!("image size is {height}x{width}: height and width must be in 1..={MAX_SIDE}")));
    }
    Ok(())
}

const BORDER: u64 = 2;
const PNG_MAX_SIDE: u64 = (1 << 31) - 1;
/// libgran's MAX_PNG_BYTES: 1 GiB of pixels.
const MAX_PNG_BYTES: u64 = 1 << 30;

/// A grid's size, checked before any pixel is read.
pub(crate) struct Grid {
    cols: usize,
    width: usize,
    height: usize,
}

pub(crate) fn check_grid(count: usize, height: u32, width: u32, channels: u32, columns: u32) -> Result<Grid> {
    check_dims(count, channels, height, width)?;
    if columns == 0 {
        return Err(invalid("columns is 0: a grid needs at least one column"));
    }
    let cols = u64::from(columns).min(count as u64).max(1);
    let rows = (count as u64).div_ceil(cols);
    let side = |tiles: u64, tile: u32| tiles.checked_mul(u64::from(tile) + BORDER).map(|s| s - BORDER);
    let (w, h) = match (side(cols, width), side(rows, height)) {
        (Some(w), Some(h)) if w <= PNG_MAX_SIDE && h <= PNG_MAX_SIDE => (w, h),
        _ => {
            return Err(invalid(format!("a grid of {count} images of {height}x{width} is larger than a PNG can hold")))
        }
    };
    if w * h * u64::from(channels) > MAX_PNG_BYTES {
        return Err(invalid(format!(
            "a grid of {count} images of {height}x{width}x{channels} is {w}x{h} pixels: more than the \
             {MAX_PNG_BYTES} bytes a PNG grid may hold"
        )));
    }
    Ok(Grid { cols: cols as usize, width: w as usize, height: h as usize })
}

/// Writes `data` (`count` images of `channels x height x width` in `format`, its length
/// already checked) to `path` as a grid.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_grid(
    path: &Path,
    data: &[u8],
    count: usize,
    height: u32,
    width: u32,
    channels: u32,
    format: PixelFormat,
    grid: Grid,
) -> Result<()> {
    let (h, w, c) = (height as usize, width as usize, channels as usize);
    let per = h * w * c * format.sample_bytes();
    if let PixelFormat::F32Chw = format {
        for (i, b) in data.chunks_exact(4).enumerate() {
            let v = f32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid(format!(
                    "float pixel value {i} is {v}: expected finite values in [0, 1] (the first bad value is reported)"
                )));
            }
        }
    }
    let row_bytes = grid.width * c;
    let mut pixels = zeros::<u8>(row_bytes * grid.height, "the PNG grid")?;
    for i in 0..count {
        let img = &data[i * per..(i + 1) * per];
        let (x0, y0) = ((i % grid.cols) * (w + BORDER as usize), (i / grid.cols) * (h + BORDER as usize));
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    let v = match format {
                        PixelFormat::U8Hwc => img[(y * w + x) * c + ch],
                        PixelFormat::U8Chw => img[(ch * h + y) * w + x],
                        PixelFormat::F32Chw => {
                            let at = ((ch * h + y) * w + x) * 4;
                            to_byte(f32::from_ne_bytes([img[at], img[at + 1], img[at + 2], img[at + 3]]))
                        }
                    };
                    pixels[(y0 + y) * row_bytes + (x0 + x) * c + ch] = v;
                }
            }
        }
    }
    let mut file = Vec::new();
    file.try_reserve(pixels.len() + pixels.len() / 64 + grid.height + 4096)
        .map_err(|_| internal("the PNG file could not be allocated"))?;
    {
        let mut enc = png::Encoder::new(&mut file, grid.width as u32, grid.height as u32);
        enc.set_color(if c == 1 { png::ColorType::Grayscale } else { png::ColorType::Rgb });
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(|e| internal(format!("encoding PNG: {e}")))?;
        writer.write_image_data(&pixels).map_err(|e| internal(format!("encoding PNG: {e}")))?;
        writer.finish().map_err(|e| internal(format!("encoding PNG: {e}")))?;
    }
    gran_common::atomic_file::write_atomic(path, &file)
}
