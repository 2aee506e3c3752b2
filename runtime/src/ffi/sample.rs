//! Drawing: latents, images (of named classes too), the canvases after every step, images from
//! caller latents, and PNG grids.

use super::guard;
use super::model::MODELS;
use crate::error::{mul, with_status, Result};
use crate::pixels::PixelFormat;
use crate::sample::Latents;
use gran_common::abi::{GranModel, GranPixelFormat, GranStatus, GRAN_STATUS_BUFFER_TOO_SMALL};
use gran_common::boundary::{arg_classes, arg_slice, arg_slice_mut, check_count, check_room};
use gran_common::classes::Classes;
use std::ffi::{c_char, c_void};

/// A request's classes from C: `None` names none (`Classes::Drawn`), else the caller's pointer
/// and length (gran_common's `arg_classes`): one class for all, or one per image.
///
/// # Safety
/// A pointer given is NULL or points to its length of readable `uint32_t`s.
unsafe fn classes_arg<'a>(classes: Option<(*const u32, u32)>, count: usize) -> Result<Classes<'a>> {
    Ok(match classes {
        None => Classes::Drawn,
        Some((p, len)) => arg_classes(p, len, count)?,
    })
}

/// `gran_sample`, `gran_sample_steps`, `gran_generate` and their `_class` forms (`classes`:
/// `None`, or the caller's pointer and length).
///
/// # Safety
/// `out` is NULL or points to `out_bytes` writable bytes; a `classes` pointer is NULL or points
/// to its length of readable `uint32_t`s.
#[allow(clippy::too_many_arguments)]
unsafe fn sample_into(
    m: GranModel,
    latents: Latents,
    count: u32,
    classes: Option<(*const u32, u32)>,
    format: GranPixelFormat,
    out: *mut c_void,
    out_bytes: usize,
    every_step: bool,
) -> Result<()> {
    let model = MODELS.get(m)?;
    let (format, count) = (PixelFormat::from_c(format)?, check_count(count)?);
    let classes = classes_arg(classes, count)?;
    let needed = model.pixel_bytes(format, count, every_step)?;
    check_room(out_bytes, needed, "out")?;
    let out = arg_slice_mut(out as *mut u8, needed, "out")?;
    model.draw_pixels(latents, classes, count, every_step, format, out)
}

/// Draws `count` images with latents from `seed` and writes them to `out` in `format`
/// (count * height * width * channels values). Image i depends only on the weights, `seed` and
/// i: the same for any `count` > i and any number of threads (to float rounding, as in
/// libgran), and within 1/255 of libgran's image i of the same file and seed.
///
/// A class-conditional model draws image i as a class drawn uniformly from (`seed`, i), also
/// independent of `count`; `gran_sample_class` names the classes.
///
/// Every argument is checked before the first image is drawn; a failure after that
/// (OUT_OF_MEMORY) may leave `out` partly written.
///
/// Errors: INVALID_HANDLE, INVALID_ARGUMENT (count 0, NULL out, unknown format),
/// BUFFER_TOO_SMALL (the message says how many bytes are needed), OUT_OF_MEMORY.
///
/// Thread safety: any thread; concurrent with other calls on the same model.
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
    guard(|| sample_into(m, Latents::Seed(seed), count, None, format, out, out_bytes, false))
}

/// Like `gran_sample`, for a class-conditional model, with the classes named: `classes` holds
/// one class for every image (`classes_len` 1) or one per image (`classes_len` == `count`),
/// each in 0 .. classes-1 (`GranModelConfig.classes`). Image i depends only on the weights,
/// `seed`, i and its class: not on `count` nor on the other images' classes. With the class
/// `gran_sample` draws for it, it is `gran_sample`'s image i.
///
/// Every class is checked before the first image is drawn: a bad one leaves `out` untouched.
///
/// Errors: as `gran_sample`; INVALID_ARGUMENT also for NULL `classes`, a `classes_len` other
/// than 1 or `count`, a class out of range (the message names the image), or an unconditional
/// model (classes 0: use `gran_sample`).
///
/// Thread safety: as `gran_sample`.
///
/// # Safety
/// `classes` points to `classes_len` readable uint32_t; `out` to `out_bytes` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn gran_sample_class(
    m: GranModel,
    seed: u64,
    count: u32,
    classes: *const u32,
    classes_len: u32,
    format: GranPixelFormat,
    out: *mut c_void,
    out_bytes: usize,
) -> GranStatus {
    guard(|| sample_into(m, Latents::Seed(seed), count, Some((classes, classes_len)), format, out, out_bytes, false))
}

/// Like `gran_sample`, but writes the canvas after each of the T drawing steps: `out` holds
/// [T][count][image] (T * count images; the last block equals `gran_sample`'s output).
///
/// Errors: as `gran_sample` (BUFFER_TOO_SMALL counts T * count images).
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
    guard(|| sample_into(m, Latents::Seed(seed), count, None, format, out, out_bytes, true))
}

/// `gran_sample_steps` with the classes named, as `gran_sample_class` takes them: the canvases
/// after each drawing step of images of those classes.
///
/// Errors: as `gran_sample_class` (BUFFER_TOO_SMALL counts T * count images).
///
/// Thread safety: as `gran_sample`.
///
/// # Safety
/// `classes` points to `classes_len` readable uint32_t; `out` to `out_bytes` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn gran_sample_steps_class(
    m: GranModel,
    seed: u64,
    count: u32,
    classes: *const u32,
    classes_len: u32,
    format: GranPixelFormat,
    out: *mut c_void,
    out_bytes: usize,
) -> GranStatus {
    guard(|| sample_into(m, Latents::Seed(seed), count, Some((classes, classes_len)), format, out, out_bytes, true))
}

/// Writes the latents of images 0 .. count-1 of `seed` to `z` (count * z_dim floats, row-major):
/// the ones `gran_sample` uses, bit for bit the same as libgran's on every platform. Edit them
/// (interpolate, mix) and pass them to `gran_generate`.
///
/// Errors: INVALID_HANDLE, INVALID_ARGUMENT (count 0, NULL z), BUFFER_TOO_SMALL (`z_len` <
/// count * z_dim floats).
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
        let z_dim = model.config().z_dim as usize;
        let needed = mul(count, z_dim, "the latents")?;
        if z_len < needed {
            return Err(with_status(
                GRAN_STATUS_BUFFER_TOO_SMALL,
                format!("z has room for {z_len} floats; {needed} are needed"),
            ));
        }
        crate::sample::latents_into(seed, z_dim, 0, arg_slice_mut(z, needed, "z")?);
        Ok(())
    })
}

/// Draws `count` images from caller latents `z` (count * z_dim finite floats, row-major) and
/// writes them to `out` in `format`. Every latent is checked before the first image is drawn.
///
/// Errors: INVALID_HANDLE, INVALID_ARGUMENT (count 0, NULL pointers, a non-finite latent, a
/// class-conditional model: its images need classes, `gran_generate_class`), BUFFER_TOO_SMALL,
/// OUT_OF_MEMORY.
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
    guard(|| generate_into(m, z, count, None, format, out, out_bytes))
}

/// `gran_generate` for a class-conditional model: the images of caller latents `z` as the
/// classes `classes` names (as `gran_sample_class` takes them).
///
/// Errors: as `gran_generate` and `gran_sample_class`.
///
/// Thread safety: as `gran_sample`.
///
/// # Safety
/// `z` points to count * z_dim readable floats; `classes` to `classes_len` readable uint32_t;
/// `out` to `out_bytes` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn gran_generate_class(
    m: GranModel,
    z: *const f32,
    count: u32,
    classes: *const u32,
    classes_len: u32,
    format: GranPixelFormat,
    out: *mut c_void,
    out_bytes: usize,
) -> GranStatus {
    guard(|| generate_into(m, z, count, Some((classes, classes_len)), format, out, out_bytes))
}

/// `gran_generate` or `gran_generate_class`: the buffer's size before the latents are read.
///
/// # Safety
/// As `gran_generate_class`, with `classes` `None` or the caller's pointer and length.
unsafe fn generate_into(
    m: GranModel,
    z: *const f32,
    count: u32,
    classes: Option<(*const u32, u32)>,
    format: GranPixelFormat,
    out: *mut c_void,
    out_bytes: usize,
) -> Result<()> {
    let model = MODELS.get(m)?;
    let (pixel_format, n) = (PixelFormat::from_c(format)?, check_count(count)?);
    check_room(out_bytes, model.pixel_bytes(pixel_format, n, false)?, "out")?;
    let z = arg_slice(z, mul(n, model.config().z_dim as usize, "the latents")?, "z")?;
    sample_into(m, Latents::Given(z), count, classes, format, out, out_bytes, false)
}

/// Writes `count` images (in `format`, height x width x channels) to `path` as one PNG grid with
/// `columns` columns and a 2-pixel border (grey for 1 channel, RGB for 3), atomically: a
/// temporary file beside it, then renamed; a symbolic link is followed, and a path that is not
/// a regular file (a folder, FIFO, device, socket) is IO, left untouched.
///
/// Limits: image sides 1 ..= 16384 pixels, a grid of at most 2^31 - 1 pixels per side and
/// 1 GiB of pixels, all checked before `pixels` is read.
///
/// Errors: INVALID_ARGUMENT (NULL pointers, count or columns 0, sizes past the limits, float
/// values outside [0, 1]), IO, OUT_OF_MEMORY.
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
        let path = gran_common::boundary::arg_path(path, "path")?;
        let (format, count) = (PixelFormat::from_c(format)?, check_count(count)?);
        write_png(&path, pixels, count, height, width, channels, format, columns)
    })
}

#[cfg(unix)]
#[allow(clippy::too_many_arguments)]
unsafe fn write_png(
    path: &std::path::Path,
    pixels: *const c_void,
    count: usize,
    height: u32,
    width: u32,
    channels: u32,
    format: PixelFormat,
    columns: u32,
) -> Result<()> {
    let grid = crate::png::check_grid(count, height, width, channels, columns)?;
    let len = [count, channels as usize, height as usize, width as usize, format.sample_bytes()]
        .iter()
        .try_fold(1usize, |a, &b| mul(a, b, "the pixels"))?;
    let data = arg_slice(pixels as *const u8, len, "pixels")?;
    crate::png::write_grid(path, data, count, height, width, channels, format, grid)
}

#[cfg(not(unix))]
#[allow(clippy::too_many_arguments)]
unsafe fn write_png(
    _path: &std::path::Path,
    _pixels: *const c_void,
    _count: usize,
    _height: u32,
    _width: u32,
    _channels: u32,
    _format: PixelFormat,
    _columns: u32,
) -> Result<()> {
    Err(with_status(gran_common::abi::GRAN_STATUS_IO, "this build writes no files (no file system)"))
}
