//! Folders of ordinary image files (PNG, JPEG), decoded and resized to one size.

use super::pixels::{self, PixelFormat};
use super::Dataset;
use crate::error::{Error, Result};
use image::imageops::{self, FilterType};
use std::path::{Path, PathBuf};

/// The largest height or width accepted.
const MAX_SIDE: u32 = 4096;
/// File extensions read (compared case-insensitively).
const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Loads every `*.png`, `*.jpg` and `*.jpeg` file (extension case-insensitive) directly in
/// `dir` into an unlabelled `[N, channels, height, width]` `Uint8` dataset. Subfolders and
/// other files are ignored.
///
/// Files are read in order of file name, so the result is deterministic. Each is decoded (by
/// its content, not its extension), converted to grey (`channels` 1) or RGB (`channels` 3) and
/// resized to exactly `height x width` with a triangle (bilinear) filter: the aspect ratio is
/// not kept, so images of another shape are stretched.
///
/// # Errors
/// `InvalidArgument` when `height` or `width` is outside 1..=4096, `channels` is not 1 or 3,
/// or the folder holds no such files (the folder is named); `Io` when the folder or a file
/// cannot be read; `Format` (naming the file) when a file does not decode.
pub fn load_images(dir: &Path, height: u32, width: u32, channels: u32) -> Result<Dataset> {
    if !(1..=MAX_SIDE).contains(&height) || !(1..=MAX_SIDE).contains(&width) {
        return Err(Error::invalid(format!("image size {height}x{width}: height and width must be in 1..={MAX_SIDE}")));
    }
    pixels::check_dims(1, channels, height, width)?;
    let files = image_files(dir)?;
    if files.is_empty() {
        return Err(Error::invalid(format!("{}: no .png, .jpg or .jpeg files in this folder", dir.display())));
    }
    let total = pixels::bytes_for(PixelFormat::U8Hwc, files.len(), channels, height, width)?;
    let mut data = crate::limits::vec_with_capacity(total, "the decoded images")?;
    for file in &files {
        data.extend_from_slice(&decode(file, height, width, channels)?);
    }
    let tensor = pixels::to_tensor(&data, files.len(), channels, height, width, PixelFormat::U8Hwc)?;
    Dataset::new(tensor, None)
}

/// The image files directly in `dir`, sorted by file name.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let io_err = |e| Error::io(format!("reading folder {}", dir.display()), e);
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let path = entry.map_err(io_err)?.path();
        let is_image = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)));
        if is_image && path.is_file() {
            files.push(path);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// Decodes one file to `height x width` interleaved bytes of `channels` (1 or 3) channels.
fn decode(path: &Path, height: u32, width: u32, channels: u32) -> Result<Vec<u8>> {
    let bytes = crate::limits::read_regular(path, crate::limits::MAX_FILE_BYTES, "an image file")?;
    let img = image::load_from_memory(&bytes)
        .map_err(|e| Error::format(format!("{}: cannot decode the image: {e}", path.display())))?;
    Ok(if channels == 1 {
        imageops::resize(&img.to_luma8(), width, height, FilterType::Triangle).into_raw()
    } else {
        imageops::resize(&img.to_rgb8(), width, height, FilterType::Triangle).into_raw()
    })
}
