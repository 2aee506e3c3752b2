//! Exported inference functions: sampling, step-by-step canvases, latents, generation from
//! caller latents, discriminator scores, and PNG grids.

use super::boundary::{arg_bytes, arg_bytes_mut, arg_path, guard};
use super::model::MODELS;
use super::status::GranStatus;
use super::types::{pixel_format, GranModel, GranPixelFormat};
use crate::data::pixels::{self, PixelFormat};
use crate::error::{Error, ErrorKind, Result};
use crate::model::Model;
use std::ffi::{c_char, c_void};
use tch::Tensor;

fn image_bytes(model: &Model, format: PixelFormat) -> usize {
    let c = model.config();
    pixels::bytes_per_image(format, c.channels, c.height, c.width)
}

/// BUFFER_TOO_SMALL unless the caller's `have` bytes hold `needed`; checked before any work.
fn check_room(have: usize, needed: usize, what: &str) -> Result<()> {
    if have < needed {
        return Err(Error::new(ErrorKind::BufferTooSmall, format!("{what} has {have} bytes; {needed} are needed")));
    }
    Ok(())
}

/// Converts `images` into the first `needed` bytes of `out` (already checked to hold them).
///
/// # Safety
/// `out` is NULL or points to `needed` writable bytes.
unsafe fn write_images(images: &Tensor, format: PixelFormat, out: *mut c_void, needed: usize) -> Result<()> {
    let out = arg_bytes_mut(out as *mut u8, needed, "out")?;
    pixels::write_from_tensor(images, format, out)
}

/// `gran_sample` (the images) or `gran_sample_steps` (the canvases after every step).
///
/// # Safety
/// `out` is NULL or points to `out_bytes` writable bytes.
unsafe fn sample_into(
    m: GranModel,
    seed: u64,
    count: u32,
    format: GranPixelFormat,
    out: *mut c_void,
    out_bytes: usize,
    steps: bool,
) -> Result<()> {
    let model = MODELS.get(m)?;
    let (format, count) = (pixel_format(format)?, check_count(count)?);
    let images = if steps { count * model.config().steps as usize } else { count };
    let needed = images * image_bytes(&model, format);
    check_room(out_bytes, needed, "out")?;
    let s = model.sample(seed, count, steps)?;
    let pictures = match s.canvases {
        // [T, N, C, H, W] -> [T * N, C, H, W]
        Some(c) => c.f_flatten(0, 1)?,
        None => s.images,
    };
    write_images(&pictures, format, out, needed)
}

fn check_count(count: u32) -> Result<usize> {
    if count == 0 {
        return Err(Error::invalid("count is 0: ask for at least one image"));
    }
    Ok(count as usize)
}

/// Draws `count` images with latents from `seed` and writes them to `out` in `format`
/// (count * height * width * channels values). Image i depends only on the weights, `seed` and i:
/// the same for any `count` > i, and equal to `gran_generate` on the latents `gran_latents`
/// gives for `seed`. Batch norm uses its running statistics (no batch effects).
///
/// Errors: INVALID_ARGUMENT (count 0, NULL out, unknown format), BUFFER_TOO_SMALL (the message
/// says how many bytes are needed).
///
/// Thread safety: any thread; concurrent with other sampling and with training on the same
/// model (the weights between two optimizer steps).
///
/// # Safety
/// `out` points to `out_bytes` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn gran_sample(
    m: GranModel,
    seed: u64,
    count: u32,
    format: GranPixelFormat,
    out: *mut c_void,
    out_bytes: usize,
) -> GranStatus {
    guard(|| sample_into(m, seed, count, format, out, out_bytes, false))
}

/// Like `gran_sample`, but writes the canvas after each of the T drawing steps: `out` holds
/// [T][count][image] (T * count images; the last block equals `gran_sample`'s output).
///
/// Thread safety: as `gran_sample`.
///
/// # Safety
/// `out` points to `out_bytes` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn gran_sample_steps(
    m: GranModel,
    seed: u64,
    count: u32,
    format: GranPixelFormat,
    out: *mut c_void,
    out_bytes: usize,
) -> GranStatus {
    guard(|| sample_into(m, seed, count, format, out, out_bytes, true))
}

/// Writes the latents of images 0 .. count-1 of `seed` to `z` (count * z_dim floats, row-major):
/// the ones `gran_sample` uses. Edit them (interpolate, mix) and pass them to `gran_generate`.
///
/// Errors: INVALID_ARGUMENT (count 0, NULL z), BUFFER_TOO_SMALL (`z_len` < count * z_dim floats).
///
/// Thread safety: any thread.
///
/// # Safety
/// `z` points to `z_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn gran_latents(m: GranModel, seed: u64, count: u32, z: *mut f32, z_len: usize) -> GranStatus {
    guard(|| {
        let model = MODELS.get(m)?;
        let count = check_count(count)?;
        let needed = count * model.config().z_dim as usize;
        if z_len < needed {
            return Err(Error::new(
                ErrorKind::BufferTooSmall,
                format!("z has room for {z_len} floats; {needed} are needed"),
            ));
        }
        let values = model.latents(seed, 0, count);
        let out = arg_bytes_mut(z as *mut u8, needed * 4, "z")?;
        for (dst, v) in out.chunks_exact_mut(4).zip(values) {
            dst.copy_from_slice(&v.to_ne_bytes());
        }
        Ok(())
    })
}

/// Draws `count` images from caller latents `z` (count * z_dim finite floats, row-major) and
/// writes them to `out` in `format`.
///
/// Errors: INVALID_ARGUMENT (count 0, NULL pointers, a non-finite latent), BUFFER_TOO_SMALL.
///
/// Thread safety: as `gran_sample`.
///
/// # Safety
/// `z` points to count * z_dim readable floats; `out` to `out_bytes` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn gran_generate(
    m: GranModel,
    z: *const f32,
    count: u32,
    format: GranPixelFormat,
    out: *mut c_void,
    out_bytes: usize,
) -> GranStatus {
    guard(|| {
        let model = MODELS.get(m)?;
        let (format, count) = (pixel_format(format)?, check_count(count)?);
        let needed = count * image_bytes(&model, format);
        check_room(out_bytes, needed, "out")?;
        let n = count * model.config().z_dim as usize;
        let bytes = arg_bytes(z as *const u8, n * 4, "z")?;
        let z: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_ne_bytes(c.try_into().expect("4 bytes"))).collect();
        let s = model.generate(&z, count, false)?;
        write_images(&s.images, format, out, needed)
    })
}

/// Writes D(x), the discriminator's probability that the image is real, for each of `count`
/// images in `pixels` (in `format`, the model's size) to `probabilities` (count floats).
///
/// Errors: INVALID_ARGUMENT (NULL pointers, count 0, floats outside [0, 1]).
///
/// Thread safety: as `gran_sample`.
///
/// # Safety
/// `pixels` points to count images in `format`; `probabilities` to `count` writable floats.
#[no_mangle]
pub unsafe extern "C" fn gran_discriminate(
    m: GranModel,
    pixels: *const c_void,
    count: u32,
    format: GranPixelFormat,
    probabilities: *mut f32,
) -> GranStatus {
    guard(|| {
        let model = MODELS.get(m)?;
        let (format, count) = (pixel_format(format)?, check_count(count)?);
        let data = arg_bytes(pixels as *const u8, count * image_bytes(&model, format), "pixels")?;
        let out = arg_bytes_mut(probabilities as *mut u8, count * 4, "probabilities")?;
        let c = model.config();
        let images = pixels::to_tensor(data, count, c.channels, c.height, c.width, format)?;
        let p = model.discriminate(&images)?;
        for (dst, v) in out.chunks_exact_mut(4).zip(p) {
            dst.copy_from_slice(&v.to_ne_bytes());
        }
        Ok(())
    })
}

/// Writes `count` images (in `format`, height x width x channels) to `path` as one PNG grid with
/// `columns` columns and a 2-pixel border (grey for 1 channel, RGB for 3), atomically.
///
/// Errors: INVALID_ARGUMENT (NULL pointers, count or columns 0, bad sizes or values), IO.
///
/// Thread safety: any thread.
///
/// # Safety
/// `path` is a NUL-terminated string; `pixels` points to count images in `format`.
#[no_mangle]
pub unsafe extern "C" fn gran_write_png(
    path: *const c_char,
    pixels: *const c_void,
    count: u32,
    height: u32,
    width: u32,
    channels: u32,
    format: GranPixelFormat,
    columns: u32,
) -> GranStatus {
    guard(|| {
        let path = arg_path(path, "path")?;
        let (format, count) = (pixel_format(format)?, check_count(count)?);
        let len = count * pixels::bytes_per_image(format, channels, height, width);
        let data = arg_bytes(pixels as *const u8, len, "pixels")?;
        crate::png::write_grid_pixels(&path, data, count, height, width, channels, format, columns)
    })
}
