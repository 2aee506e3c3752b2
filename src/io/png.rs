//! PNG picture grids: a batch of images tiled into one picture, for looking at samples.

use crate::data::pixels::{self, PixelFormat};
use crate::error::{Error, Result};
use image::{DynamicImage, GrayImage, ImageFormat, RgbImage};
use std::io::Cursor;
use std::path::Path;
use tch::Tensor;

/// Black pixels between neighbouring tiles, horizontally and vertically.
pub(crate) const BORDER: u32 = 2;
/// The largest width or height a PNG may have (2^31 - 1).
const PNG_MAX_SIDE: u64 = (1 << 31) - 1;

/// Tiles `images` (`[N, C, H, W]`, float in `[0, 1]` or `Uint8`, on any device) into one
/// picture: `min(columns, N)` tiles per row, as many rows as needed (the last may be partly
/// empty), separated by [`BORDER`] black pixels. The picture is grey for 1 channel and RGB for
/// 3. Pixel values are converted as by [`pixels::from_tensor`] (`round(clamp(v, 0, 1) * 255)`).
///
/// # Errors
/// `InvalidArgument` when `columns` is 0, for a tensor [`pixels::from_tensor`] refuses, or when
/// the picture would exceed PNG's size limit; libtorch failures.
pub fn encode_grid(images: &Tensor, columns: u32) -> Result<DynamicImage> {
    let (count, channels, height, width) = pixels::tensor_dims(images)?;
    let Grid { cols, grid_w, grid_h, bytes } = check_grid(count, height, width, channels, columns)?;
    let tiles = pixels::from_tensor(images, PixelFormat::U8Hwc)?;
    let (cols, c) = (cols as u64, channels as usize);
    let tile_row = width as usize * c;
    let grid_row = grid_w as usize * c;
    let mut grid = crate::limits::vec_filled(bytes, 0u8, "the PNG grid")?;
    for (i, tile) in tiles.chunks_exact(tile_row * height as usize).enumerate() {
        let (row, col) = (i / cols as usize, i % cols as usize);
        let x0 = col * (width + BORDER) as usize * c;
        let y0 = row * (height + BORDER) as usize;
        for (y, line) in tile.chunks_exact(tile_row).enumerate() {
            let start = (y0 + y) * grid_row + x0;
            grid[start..start + tile_row].copy_from_slice(line);
        }
    }
    let (w, h) = (grid_w as u32, grid_h as u32);
    let picture = if channels == 1 {
        GrayImage::from_raw(w, h, grid).map(DynamicImage::ImageLuma8)
    } else {
        RgbImage::from_raw(w, h, grid).map(DynamicImage::ImageRgb8)
    };
    picture.ok_or_else(|| Error::internal("grid buffer does not match the grid size"))
}

/// The size of a grid picture, checked.
pub(crate) struct Grid {
    /// Tiles per row.
    pub(crate) cols: u32,
    pub(crate) grid_w: u64,
    pub(crate) grid_h: u64,
    /// Bytes of its pixels (before compression).
    pub(crate) bytes: usize,
}

/// The size of the grid of `count` tiles of `height x width x channels` in `columns` columns,
/// checked before any work: `InvalidArgument` when `columns` is 0, a side passes PNG's limit, or
/// the pixels pass [`crate::limits::MAX_PNG_BYTES`].
pub(crate) fn check_grid(count: usize, height: u32, width: u32, channels: u32, columns: u32) -> Result<Grid> {
    if columns == 0 {
        return Err(Error::invalid("columns is 0: a grid needs at least one column"));
    }
    let cols = u64::from(columns).min(count as u64).max(1);
    let rows = (count as u64).div_ceil(cols);
    // Checked: tiles and tile sides both come from the caller.
    let side =
        |tiles: u64, tile: u32| tiles.checked_mul(u64::from(tile) + u64::from(BORDER)).map(|s| s - u64::from(BORDER));
    let (grid_w, grid_h) = match (side(cols, width), side(rows, height)) {
        (Some(w), Some(h)) if w <= PNG_MAX_SIDE && h <= PNG_MAX_SIDE => (w, h),
        _ => {
            return Err(Error::invalid(format!(
                "a grid of {count} images of {height}x{width} in {cols} columns is larger than a PNG can \
                 hold ({PNG_MAX_SIDE} pixels per side)"
            )))
        }
    };
    let bytes = grid_w * grid_h * u64::from(channels);
    if bytes > crate::limits::MAX_PNG_BYTES {
        return Err(Error::invalid(format!(
            "a grid of {count} images of {height}x{width}x{channels} is {grid_w}x{grid_h} pixels ({bytes} bytes): \
             more than the {} bytes a PNG grid may hold",
            crate::limits::MAX_PNG_BYTES
        )));
    }
    Ok(Grid { cols: cols as u32, grid_w, grid_h, bytes: bytes as usize })
}

/// Writes `images` (`[N, C, H, W]`, float in `[0, 1]`, on any device) to `path` as a PNG grid
/// made by [`encode_grid`]. The file is written atomically: a temporary file in the same folder,
/// then renamed over `path`, so readers never see a partial picture.
///
/// # Errors
/// Those of [`encode_grid`]; `InvalidArgument` when `path` has no file name; `Io` when the
/// file cannot be written; `Internal` if PNG encoding fails.
pub fn write_grid(path: &Path, images: &Tensor, columns: u32) -> Result<()> {
    let picture = encode_grid(images, columns)?;
    // Room for the compressed file up front (deflate adds a few bytes per 64 KiB block and one
    // filter byte per row), so encoding does not grow the buffer.
    let raw = picture.as_bytes().len();
    let mut bytes =
        crate::limits::vec_with_capacity(raw + raw / 64 + picture.height() as usize + 4096, "the PNG file")?;
    picture
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .map_err(|e| Error::internal(format!("encoding {} as PNG: {e}", path.display())))?;
    crate::io::atomic_file::write_atomic(path, &bytes)
}

/// Writes caller pixels `data` (`count` images of `channels x height x width` in `format`) to `path`
/// as a PNG grid: the buffer is checked and converted by [`pixels::to_tensor`], then written by
/// [`write_grid`].
///
/// # Errors
/// Those of [`pixels::to_tensor`] (wrong buffer length, bad dimensions, out-of-range floats)
/// and of [`write_grid`].
#[allow(clippy::too_many_arguments)]
pub fn write_grid_pixels(
    path: &Path,
    data: &[u8],
    count: usize,
    height: u32,
    width: u32,
    channels: u32,
    format: PixelFormat,
    columns: u32,
) -> Result<()> {
    let images = pixels::to_tensor(data, count, channels, height, width, format)?;
    write_grid(path, &images, columns)
}
