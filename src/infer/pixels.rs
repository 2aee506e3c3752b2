//! Drawing into a caller's pixel buffer: images, or the canvases after every drawing step in the
//! [T][count][image] layout, written chunk by chunk straight into place (the library's own
//! memory does not grow with the count), and discriminator scores of a caller's pixels.

use crate::data::pixels::{self, PixelFormat};
use crate::error::{Error, Result};
use crate::infer::sample::{check_latents, Samples, CHUNK};
use crate::limits;
use crate::model::Model;
use gran_common::classes::Classes;

impl Model {
    /// Bytes one of this model's images takes in `format`.
    pub(crate) fn image_bytes(&self, format: PixelFormat) -> Result<usize> {
        let c = self.config();
        pixels::bytes_per_image(format, c.channels, c.height, c.width)
    }

    /// Bytes `count` images take in `format`, or with `with_canvases` the T canvases of each.
    pub(crate) fn pixel_bytes(&self, format: PixelFormat, count: usize, with_canvases: bool) -> Result<usize> {
        let pictures = if with_canvases {
            limits::mul(count, self.config().drawing_steps as usize, "the canvases")?
        } else {
            count
        };
        limits::mul(pictures, self.image_bytes(format)?, "the output")
    }

    /// Images 0 .. count-1 of `seed` of `classes` (or their canvases, with `with_canvases`)
    /// written to `out` (exactly `pixel_bytes(format, count, with_canvases)` bytes) in `format`.
    pub(crate) fn sample_pixels(
        &self,
        seed: u64,
        count: usize,
        with_canvases: bool,
        classes: Classes,
        format: PixelFormat,
        out: &mut [u8],
    ) -> Result<()> {
        let per_image = self.image_bytes(format)?;
        self.sample_chunked(seed, count, with_canvases, classes, &mut chunk_writer(out, format, per_image, count))
    }

    /// The images of caller latents `z` (count * z_dim, row-major; all checked before the first
    /// image is drawn) written to `out` in `format`.
    pub(crate) fn generate_pixels(
        &self,
        z: &[f32],
        count: usize,
        classes: Classes,
        format: PixelFormat,
        out: &mut [u8],
    ) -> Result<()> {
        let z_dim = self.config().z_dim as usize;
        if z.len() != limits::mul(count, z_dim, "the latents")? {
            return Err(Error::internal(format!("{} latents for {count} images of z_dim {z_dim}", z.len())));
        }
        check_latents(z, 0)?;
        let per_image = self.image_bytes(format)?;
        let mut latents = |first: usize, chunk: &mut [f32]| {
            chunk.copy_from_slice(&z[first * z_dim..first * z_dim + chunk.len()]);
            Ok(())
        };
        self.generate_chunked(
            count,
            false,
            classes,
            None,
            &mut latents,
            &mut chunk_writer(out, format, per_image, count),
        )
    }

    /// D(x) for each of the `count` images of `data` (in `format`, the model's size), chunk by
    /// chunk (each image scored alone, with running statistics): memory does not grow with the
    /// count. A bad value's message points into the whole buffer. A conditional model judges
    /// each image as a member of its class in `classes` (`Classes::Drawn`: of its most real
    /// class).
    pub(crate) fn discriminate_pixels(
        &self,
        data: &[u8],
        count: usize,
        format: PixelFormat,
        classes: Classes,
    ) -> Result<Vec<f32>> {
        let per_image = self.image_bytes(format)?;
        let c = self.config();
        classes.check(c.classes, count, true)?;
        let mut labels = vec![0u32; CHUNK.min(count)];
        let mut scores = limits::vec_with_capacity(count, "the probabilities")?;
        for (k, chunk) in data[..limits::mul(count, per_image, "the pixels")?].chunks(CHUNK * per_image).enumerate() {
            let n = chunk.len() / per_image;
            let images = pixels::to_tensor(chunk, n, c.channels, c.height, c.width, format)
                .map_err(|e| offset_message(e, k * CHUNK))?;
            let y = match classes {
                Classes::Drawn => None,
                _ => {
                    classes.fill(c.classes, 0, k * CHUNK, &mut labels[..n]);
                    Some(crate::infer::sample::labels_tensor(&labels[..n])?)
                }
            };
            scores.extend(self.discriminate_labelled(
                &images,
                y.as_ref(),
                crate::infer::sample::Scoring::RunningStatistics,
            )?);
        }
        Ok(scores)
    }
}

/// Writes each chunk of a chunked drawing into its place in `out`: images `first ..` of the
/// chunk at `first * per_image`, and with canvases, step t's block at `(t * count + first) *
/// per_image` (the [T][count][image] layout).
fn chunk_writer<'a>(
    out: &'a mut [u8],
    format: PixelFormat,
    per_image: usize,
    count: usize,
) -> impl FnMut(usize, &Samples) -> Result<()> + 'a {
    move |first, s| {
        let n = s.images.size()[0] as usize;
        match &s.canvases {
            None => pixels::write_from_tensor(&s.images, format, &mut out[first * per_image..]),
            Some(c) => {
                for t in 0..c.size()[0] {
                    let at = (t as usize * count + first) * per_image;
                    pixels::write_from_tensor(&c.f_get(t)?, format, &mut out[at..at + n * per_image])?;
                }
                Ok(())
            }
        }
    }
}

/// A chunk's error, with the chunk's first image index added so that "value i" messages point
/// into the caller's whole buffer.
fn offset_message(mut e: Error, first_image: usize) -> Error {
    if first_image > 0 {
        e.message = format!("{} (in the chunk of images from {first_image})", e.message);
    }
    e
}
