//! Animated GIFs: a sequence of picture grids (the canvas after each drawing step, a walk
//! through the latent space), each tiled as `png::encode_grid` tiles them, looping forever.

use crate::data::pixels::{self, PixelFormat};
use crate::error::{Error, Result};
use crate::io::png::{check_grid, encode_grid};
use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, Frame};
use std::path::Path;
use tch::Tensor;

/// The most frames one animation holds.
pub const MAX_FRAMES: usize = 4096;
/// The longest a frame may show: GIF stores delays as 16-bit counts of 10 ms.
pub const MAX_DELAY_MS: u32 = 655_350;

/// Checks an animation's settings and sizes before any work: `frames` grids of `count` tiles of
/// `height x width x channels` in `columns` columns, shown `delay_ms` each, the last `hold_ms`.
/// `InvalidArgument` for no frames or more than [`MAX_FRAMES`], a delay of 0 or past
/// [`MAX_DELAY_MS`], or a grid that `png::check_grid` refuses, also when all the frames'
/// pixels together pass `limits::MAX_PNG_BYTES`.
pub(crate) fn check_animation(
    frames: usize,
    count: usize,
    (height, width, channels): (u32, u32, u32),
    columns: u32,
    delay_ms: u32,
    hold_ms: u32,
) -> Result<()> {
    if frames == 0 || frames > MAX_FRAMES {
        return Err(Error::invalid(format!("{frames} frames: an animation has 1 to {MAX_FRAMES}")));
    }
    for (name, ms) in [("delay_ms", delay_ms), ("hold_ms", hold_ms)] {
        if ms == 0 || ms > MAX_DELAY_MS {
            return Err(Error::invalid(format!("{name} is {ms}: must be in 1 ..= {MAX_DELAY_MS} (GIF's range)")));
        }
    }
    let grid = check_grid(count, height, width, channels, columns)?;
    if (grid.bytes as u64).saturating_mul(frames as u64) > crate::limits::MAX_PNG_BYTES {
        return Err(Error::invalid(format!(
            "{frames} frames of {} bytes each: more than the {} bytes an animation may hold",
            grid.bytes,
            crate::limits::MAX_PNG_BYTES
        )));
    }
    Ok(())
}

/// Writes `frames` (each `[N, C, H, W]` of the same shape, float in `[0, 1]` or `Uint8`, on any
/// device) to `path` as a looping GIF: frame i is the grid `png::encode_grid(frames[i],
/// columns)`, shown for `delay_ms`, the last for `hold_ms`. Grey images keep their exact grey
/// levels; colour frames are reduced to 256 colours each (NeuQuant). Browsers show delays under
/// 20 ms as 100 ms. Written atomically, as `png::write_grid` writes.
///
/// # Errors
/// Those of [`check_animation`] and `encode_grid`; `InvalidArgument` when the frames differ in
/// shape; `Io` when the file cannot be written; `Internal` if GIF encoding fails.
pub fn write_animation(path: &Path, frames: &[Tensor], columns: u32, delay_ms: u32, hold_ms: u32) -> Result<()> {
    let first = frames.first().ok_or_else(|| Error::invalid("an animation needs at least one frame"))?;
    let (count, channels, height, width) = pixels::tensor_dims(first)?;
    check_animation(frames.len(), count, (height, width, channels), columns, delay_ms, hold_ms)?;
    if let Some(f) = frames.iter().find(|f| f.size() != first.size()) {
        return Err(Error::invalid(format!("animation frames differ in shape: {:?} and {:?}", first.size(), f.size())));
    }
    let failed = |e: image::ImageError| Error::internal(format!("encoding {} as GIF: {e}", path.display()));
    let mut bytes = Vec::new();
    {
        // Speed 10 of NeuQuant's 1 (slowest) ..= 30: the gif crate's own default.
        let mut encoder = GifEncoder::new_with_speed(&mut bytes, 10);
        encoder.set_repeat(Repeat::Infinite).map_err(failed)?;
        for (i, f) in frames.iter().enumerate() {
            let picture = encode_grid(f, columns)?.to_rgba8();
            let ms = if i + 1 == frames.len() { hold_ms } else { delay_ms };
            encoder
                .encode_frame(Frame::from_parts(picture, 0, 0, Delay::from_numer_denom_ms(ms, 1)))
                .map_err(failed)?;
        }
    }
    crate::io::atomic_file::write_atomic(path, &bytes)
}

/// Writes caller pixels `data` (`frames` consecutive groups of `count` images of
/// `channels x height x width` in `format`) to `path` by [`write_animation`].
///
/// # Errors
/// Those of [`pixels::to_tensor`] and [`write_animation`].
#[allow(clippy::too_many_arguments)]
pub fn write_animation_pixels(
    path: &Path,
    data: &[u8],
    frames: usize,
    count: usize,
    (height, width, channels): (u32, u32, u32),
    format: PixelFormat,
    columns: u32,
    (delay_ms, hold_ms): (u32, u32),
) -> Result<()> {
    let all =
        pixels::to_tensor(data, crate::limits::mul(frames, count, "the images")?, channels, height, width, format)?;
    let frames: Vec<Tensor> = (0..frames as i64)
        .map(|i| all.f_narrow(0, i * count as i64, count as i64))
        .collect::<std::result::Result<_, _>>()?;
    write_animation(path, &frames, columns, delay_ms, hold_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::AnimationDecoder;

    fn temp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("gran-gif-{}-{name}", std::process::id()))
    }

    /// Frames come back in order, with their delays and exact grey levels, tiled as the PNG grid.
    #[test]
    fn an_animation_round_trips_frames_delays_and_grey_levels() {
        let path = temp("grey.gif");
        // 3 frames of 2 images 4x5: frame f is the grey level 40 f + image index.
        let frames: Vec<Tensor> = (0..3)
            .map(|f| {
                Tensor::cat(
                    &[
                        Tensor::full([1, 1, 4, 5], 40 * f, (tch::Kind::Uint8, tch::Device::Cpu)),
                        Tensor::full([1, 1, 4, 5], 40 * f + 1, (tch::Kind::Uint8, tch::Device::Cpu)),
                    ],
                    0,
                )
            })
            .collect();
        write_animation(&path, &frames, 2, 120, 900).unwrap();
        let file = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
        let decoded = image::codecs::gif::GifDecoder::new(file).unwrap().into_frames().collect_frames().unwrap();
        assert_eq!(decoded.len(), 3);
        for (f, frame) in decoded.iter().enumerate() {
            let ms = if f == 2 { 900 } else { 120 };
            assert_eq!(frame.delay().numer_denom_ms(), (ms, 1));
            let b = frame.buffer();
            // Two tiles of 5 with a 2-pixel border: 12 x 4.
            assert_eq!(b.dimensions(), (12, 4));
            let grey = |x| b.get_pixel(x, 1).0;
            assert_eq!(grey(0), [40 * f as u8, 40 * f as u8, 40 * f as u8, 255]);
            assert_eq!(grey(11), [40 * f as u8 + 1, 40 * f as u8 + 1, 40 * f as u8 + 1, 255]);
            assert_eq!(grey(5)[..3], [0, 0, 0], "the border");
        }
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn bad_animations_are_refused_before_any_file() {
        let path = temp("bad.gif");
        let f = Tensor::zeros([2, 1, 4, 4], (tch::Kind::Float, tch::Device::Cpu));
        let g = Tensor::zeros([3, 1, 4, 4], (tch::Kind::Float, tch::Device::Cpu));
        let cases: [(&[Tensor], u32, u32, u32, &str); 5] = [
            (&[], 1, 10, 10, "at least one frame"),
            (std::slice::from_ref(&f), 1, 0, 10, "delay_ms"),
            (std::slice::from_ref(&f), 1, 10, MAX_DELAY_MS + 1, "hold_ms"),
            (std::slice::from_ref(&f), 0, 10, 10, "columns"),
            (&[f.shallow_clone(), g], 1, 10, 10, "differ in shape"),
        ];
        for (frames, columns, delay, hold, why) in cases {
            let e = write_animation(&path, frames, columns, delay, hold).unwrap_err();
            assert_eq!(e.kind, crate::error::ErrorKind::InvalidArgument, "{why}: {}", e.message);
            assert!(e.message.contains(why), "{why}: {}", e.message);
        }
        assert!(!path.exists());
        let too_many = check_animation(MAX_FRAMES + 1, 1, (4, 4, 1), 1, 10, 10).unwrap_err();
        assert!(too_many.message.contains("frames"));
        let too_big = check_animation(4096, 1024, (128, 128, 3), 32, 10, 10).unwrap_err();
        assert!(too_big.message.contains("bytes"), "{}", too_big.message);
    }
}
