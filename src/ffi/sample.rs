//! Exported inference functions: sampling, step-by-step canvases, latents, generation from
//! caller latents, discriminator scores, and PNG grids.

use super::boundary::{arg_bytes, arg_bytes_mut, arg_classes, arg_floats, arg_floats_mut, arg_path, guard};
use super::model::MODELS;
use super::status::GranStatus;
use super::types::{pixel_format, GranModel, GranPixelFormat};
use crate::data::pixels;
use crate::error::{Error, ErrorKind, Result};
use crate::limits;
use crate::Classes;
use std::ffi::{c_char, c_void};

/// gran_common's image-count and buffer-size checks, with the core's error type.
fn check_room(have: usize, needed: usize, what: &str) -> Result<()> {
    Ok(gran_common::boundary::check_room(have, needed, what)?)
}

/// `gran_sample` (the images) or `gran_sample_steps` (the canvases after every step).
///
/// # Safety
/// `out`, the caller's pointer and its length in bytes: the pointer is NULL or points to that
/// many writable bytes.
/// `classes`: `None` for the drawn classes, else the caller's pointer and length.
unsafe fn sample_into(
    m: GranModel,
    seed: u64,
    count: u32,
    classes: Option<(*const u32, u32)>,
    format: GranPixelFormat,
    (out, out_bytes): (*mut c_void, usize),
    with_canvases: bool,
) -> Result<()> {
    let model = MODELS.get(m)?;
    let (format, count) = (pixel_format(format)?, check_count(count)?);
    let classes = classes_arg(classes, count)?;
    let needed = model.pixel_bytes(format, count, with_canvases)?;
    check_room(out_bytes, needed, "out")?;
    let out = arg_bytes_mut(out as *mut u8, needed, "out")?;
    model.sample_pixels(seed, count, with_canvases, classes, format, out)
}

/// The classes of a request: `None` (the plain calls) draws them, else the caller's pointer
/// and length, checked as `arg_classes` checks them.
///
/// # Safety
/// The pointer is NULL or points to the length's readable `uint32_t`s.
unsafe fn classes_arg<'a>(classes: Option<(*const u32, u32)>, count: usize) -> Result<Classes<'a>> {
    match classes {
        Some((p, len)) => arg_classes(p, len, count),
        None => Ok(Classes::Drawn),
    }
}

fn check_count(count: u32) -> Result<usize> {
    Ok(gran_common::boundary::check_count(count)?)
}

/// Draws `count` images with latents from `seed` and writes them to `out` in `format`
/// (count * height * width * channels values). Image i depends only on the weights, `seed` and i:
/// the same for any `count` > i, and equal to `gran_generate` on the latents `gran_latents`
/// gives for `seed`. Batch norm uses its running statistics (no batch effects). On the CPU this
/// holds bit for bit. On a CUDA device libtorch chooses its kernels by batch size, so an image
/// drawn in batches of another size may differ in its last float bits (an 8-bit pixel by at
/// most one level); the same call repeated gives the same bytes.
///
/// A class-conditional model draws image i as a class drawn uniformly from (`seed`, i), also
/// independent of `count`; `gran_sample_class` names the classes.
///
/// Images are drawn 256 at a time straight into `out`: the library's own memory does not grow
/// with `count`. Every argument is checked before the first image is drawn; a failure after
/// that (OUT_OF_MEMORY, DEVICE, INTERNAL) may leave `out` partly written.
///
/// Errors: INVALID_ARGUMENT (count 0, NULL out, unknown format), BUFFER_TOO_SMALL (the message
/// says how many bytes are needed), OUT_OF_MEMORY.
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
    guard(|| sample_into(m, seed, count, None, format, (out, out_bytes), false))
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
    guard(|| sample_into(m, seed, count, Some((classes, classes_len)), format, (out, out_bytes), false))
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
    guard(|| sample_into(m, seed, count, None, format, (out, out_bytes), true))
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
    guard(|| sample_into(m, seed, count, Some((classes, classes_len)), format, (out, out_bytes), true))
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
        let needed = limits::mul(count, model.config().z_dim as usize, "the latents")?;
        if z_len < needed {
            return Err(Error::new(
                ErrorKind::BufferTooSmall,
                format!("z has room for {z_len} floats; {needed} are needed"),
            ));
        }
        let out = arg_floats_mut(z, needed, "z")?;
        model.latents_into(seed, 0, out);
        Ok(())
    })
}

/// Draws `count` images from caller latents `z` (count * z_dim finite floats, row-major) and
/// writes them to `out` in `format`.
///
/// Images are drawn 256 at a time, as in `gran_sample` (the same rule for `out` on a failure
/// after the arguments, all latents included, were checked).
///
/// Errors: INVALID_ARGUMENT (count 0, NULL pointers, a non-finite latent, a class-conditional
/// model: its images need classes, `gran_generate_class`), BUFFER_TOO_SMALL, OUT_OF_MEMORY.
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

/// `gran_generate` or `gran_generate_class`.
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
    let (format, count) = (pixel_format(format)?, check_count(count)?);
    let classes = classes_arg(classes, count)?;
    let needed = model.pixel_bytes(format, count, false)?;
    check_room(out_bytes, needed, "out")?;
    let z = arg_floats(z, limits::mul(count, model.config().z_dim as usize, "the latents")?, "z")?;
    let out = arg_bytes_mut(out as *mut u8, needed, "out")?;
    model.generate_pixels(z, count, classes, format, out)
}

/// Writes D(x), the discriminator's probability that the image is real, for each of `count`
/// images in `pixels` (in `format`, the model's size) to `probabilities` (count floats).
///
/// A class-conditional model judges each image as a member of the class its discriminator finds
/// most real; `gran_discriminate_class` names the classes.
///
/// Errors: INVALID_ARGUMENT (NULL pointers, count 0, floats outside [0, 1], a model loaded from
/// a generator export: it has no discriminator).
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
    guard(|| discriminate_into(m, pixels, count, None, format, probabilities))
}

/// D(x, y): `gran_discriminate` for a class-conditional model, each image judged as a member of
/// its class in `classes` (as `gran_sample_class` takes them).
///
/// Errors: as `gran_discriminate` and `gran_sample_class`.
///
/// Thread safety: as `gran_sample`.
///
/// # Safety
/// `pixels` points to count images in `format`; `classes` to `classes_len` readable uint32_t;
/// `probabilities` to `count` writable floats.
#[no_mangle]
pub unsafe extern "C" fn gran_discriminate_class(
    m: GranModel,
    pixels: *const c_void,
    count: u32,
    classes: *const u32,
    classes_len: u32,
    format: GranPixelFormat,
    probabilities: *mut f32,
) -> GranStatus {
    guard(|| discriminate_into(m, pixels, count, Some((classes, classes_len)), format, probabilities))
}

/// `gran_discriminate` or `gran_discriminate_class`.
///
/// # Safety
/// As `gran_discriminate_class`, with `classes` `None` or the caller's pointer and length.
unsafe fn discriminate_into(
    m: GranModel,
    pixels: *const c_void,
    count: u32,
    classes: Option<(*const u32, u32)>,
    format: GranPixelFormat,
    probabilities: *mut f32,
) -> Result<()> {
    let model = MODELS.get(m)?;
    let (format, count) = (pixel_format(format)?, check_count(count)?);
    let classes = classes_arg(classes, count)?;
    let len = limits::mul(count, model.image_bytes(format)?, "the pixels")?;
    let data = arg_bytes(pixels as *const u8, len, "pixels")?;
    let out = arg_floats_mut(probabilities, count, "probabilities")?;
    // Nothing is written unless every chunk succeeds.
    out.copy_from_slice(&model.discriminate_pixels(data, count, format, classes)?);
    Ok(())
}

/// Writes `count` images (in `format`, height x width x channels) to `path` as one PNG grid with
/// `columns` columns and a 2-pixel border (grey for 1 channel, RGB for 3), atomically, to a path
/// as `gran_model_save` accepts.
///
/// Limits: image sides 1 ..= 16384 pixels, a grid of at most 2^31 - 1 pixels per side and
/// 1 GiB of pixels, all checked before `pixels` is read.
///
/// Errors: INVALID_ARGUMENT (NULL pointers, count or columns 0, sizes past the limits, bad
/// values), IO, OUT_OF_MEMORY.
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
        pixels::check_dims(count, channels, height, width)?;
        let len = pixels::bytes_for(format, count, channels, height, width)?;
        crate::io::png::check_grid(count, height, width, channels, columns)?;
        let data = arg_bytes(pixels as *const u8, len, "pixels")?;
        crate::io::png::write_grid_pixels(&path, data, count, height, width, channels, format, columns)
    })
}

/// Writes an animation to `path` as a looping GIF, atomically, to a path as `gran_model_save`
/// accepts: `frames` frames, each a grid of `count` images (in `format`, height x width x
/// channels) tiled as `gran_write_png` tiles them. `pixels` holds the frames one after the
/// other (`frames * count` images). Each frame shows for `delay_ms` milliseconds, the last
/// for `hold_ms` (GIF keeps 10 ms steps; browsers show delays under 20 ms as 100 ms). Grey
/// images keep their exact grey levels; colour frames are reduced to 256 colours each.
/// With the canvases of `gran_sample_steps` (frame t: the canvas after drawing step t) it is
/// the drawing as an animation.
///
/// Limits: those of `gran_write_png` for each frame; 1 ..= 4096 frames and 1 GiB of pixels
/// in all; delays of 1 ..= 655350 ms; all checked before `pixels` is read.
///
/// Errors: INVALID_ARGUMENT (NULL pointers, a count, frame count, columns or delay out of
/// range, sizes past the limits, bad values), IO, OUT_OF_MEMORY.
///
/// Thread safety: any thread.
///
/// # Safety
/// `path` is a NUL-terminated string; `pixels` points to frames * count images in `format`.
#[no_mangle]
pub unsafe extern "C" fn gran_write_gif(
    path: *const c_char,
    pixels: *const c_void,
    frames: u32,
    count: u32,
    height: u32,
    width: u32,
    channels: u32,
    format: GranPixelFormat,
    columns: u32,
    delay_ms: u32,
    hold_ms: u32,
) -> GranStatus {
    guard(|| {
        let path = arg_path(path, "path")?;
        let (format, count) = (pixel_format(format)?, check_count(count)?);
        pixels::check_dims(count, channels, height, width)?;
        let frames = frames as usize;
        crate::io::gif::check_animation(frames, count, (height, width, channels), columns, delay_ms, hold_ms)?;
        let images = limits::mul(frames, count, "the images")?;
        let len = pixels::bytes_for(format, images, channels, height, width)?;
        let data = arg_bytes(pixels as *const u8, len, "pixels")?;
        crate::io::gif::write_animation_pixels(
            &path,
            data,
            frames,
            count,
            (height, width, channels),
            format,
            columns,
            (delay_ms, hold_ms),
        )
    })
}
