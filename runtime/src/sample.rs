//! Drawing into a caller's buffer: images, or the canvases after every step in the
//! `[T][count][image]` layout, chunk by chunk straight into place, on as many threads as set
//! (crate::threads). Image i depends only on the weights, its latents and (a class-conditional
//! model) its class: not on the count, the other images' classes, the chunks or the threads.

use crate::error::{invalid, mul, zeros, Result};
use crate::model::{Generator, Model, Scratch};
use crate::pixels::{write_image, PixelFormat};
use gran_common::classes::Classes;
use gran_common::rng::{stream, Stream};

/// Where the latents come from.
#[derive(Clone, Copy)]
pub enum Latents<'a> {
    /// Image i of seed s: the normals at counters `i * z_dim ..` of stream SAMPLE (libgran's).
    Seed(u64),
    /// The caller's, `count * z_dim` finite values, row-major.
    Given(&'a [f32]),
}

/// Floats the activations of one chunk may take (8 MiB per buffer).
const CHUNK_FLOATS: usize = 1 << 21;
/// The most images drawn in one pass.
const MAX_CHUNK: usize = 64;

/// Writes the latents of images `start .. start + out.len() / z_dim` of `seed` into `out`.
pub fn latents_into(seed: u64, z_dim: usize, start: u64, out: &mut [f32]) {
    let s = Stream::new(seed, stream::SAMPLE);
    let first = start.wrapping_mul(z_dim as u64);
    for (i, v) in out.iter_mut().enumerate() {
        *v = s.normal(first.wrapping_add(i as u64));
    }
}

/// INVALID_ARGUMENT naming the first latent that is not finite.
pub fn check_latents(z: &[f32]) -> Result<()> {
    match z.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(invalid(format!("latent value {i} is {}: must be finite", z[i]))),
        None => Ok(()),
    }
}

impl Model {
    /// Bytes `count` images take in `format` (`every_step`: the T canvases of each).
    pub fn pixel_bytes(&self, format: PixelFormat, count: usize, every_step: bool) -> Result<usize> {
        let pictures = if every_step { mul(count, self.config().steps as usize, "the canvases")? } else { count };
        let per = mul(self.config().image_len(), format.sample_bytes(), "one image")?;
        mul(pictures, per, "the output")
    }

    /// Draws `count` images of `classes` into `out` (exactly `pixel_bytes(format, count,
    /// every_step)` bytes). A conditional model draws `Classes::Drawn` from the seed (with
    /// caller latents it needs the classes named); an unconditional one takes only
    /// `Classes::Drawn`. Every argument, every class included, is checked before anything is
    /// written to `out`.
    pub fn draw_pixels(
        &self,
        latents: Latents,
        classes: Classes,
        count: usize,
        every_step: bool,
        format: PixelFormat,
        out: &mut [u8],
    ) -> Result<()> {
        let gen = self.generator();
        let z_dim = gen.z_dim();
        if count == 0 {
            return Err(invalid("count is 0: ask for at least one image"));
        }
        if let Latents::Given(z) = latents {
            if z.len() != mul(count, z_dim, "the latents")? {
                return Err(invalid(format!("{} latents for {count} images of z_dim {z_dim}", z.len())));
            }
            check_latents(z)?;
        }
        classes.check(self.config().classes, count, matches!(latents, Latents::Seed(_)))?;
        let per = gen.image_len() * format.sample_bytes();
        let blocks = if every_step { gen.steps() } else { 1 };
        if out.len() != self.pixel_bytes(format, count, every_step)? {
            return Err(invalid("the output buffer does not match the request"));
        }
        let threads = if cfg!(target_arch = "wasm32") { 1 } else { crate::threads::get().min(count) };
        // Thread k draws images bounds[k] .. bounds[k + 1]; its parts of each block of `out`.
        let bounds: Vec<usize> = (0..=threads).map(|k| k * count / threads).collect();
        let mut parts: Vec<Vec<&mut [u8]>> = (0..threads).map(|_| Vec::with_capacity(blocks)).collect();
        for block in out.chunks_exact_mut(count * per) {
            let mut rest = block;
            for (k, part) in parts.iter_mut().enumerate() {
                let (mine, tail) = rest.split_at_mut((bounds[k + 1] - bounds[k]) * per);
                part.push(mine);
                rest = tail;
            }
        }
        let chunk = (CHUNK_FLOATS / gen.largest_activation()).clamp(1, MAX_CHUNK);
        let job = |first: usize, end: usize, part: Vec<&mut [u8]>| -> Result<()> {
            Drawer { model: self, gen, latents, classes, format, every_step, chunk }.run(first, end, part)
        };
        if threads == 1 {
            return job(0, count, parts.pop().expect("one part"));
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = parts
                .into_iter()
                .enumerate()
                .map(|(k, part)| {
                    let (first, end) = (bounds[k], bounds[k + 1]);
                    scope.spawn(move || job(first, end, part))
                })
                .collect();
            handles.into_iter().try_for_each(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
        })
    }
}

/// One thread's share of a drawing call.
struct Drawer<'a> {
    model: &'a Model,
    /// The generator the call started with (every thread draws with it).
    gen: &'a Generator,
    latents: Latents<'a>,
    /// Checked against the model by `draw_pixels`.
    classes: Classes<'a>,
    format: PixelFormat,
    every_step: bool,
    chunk: usize,
}

impl Drawer<'_> {
    /// Draws images `first .. end` into `part` (one slice per block, each for these images).
    fn run(&self, first: usize, end: usize, mut part: Vec<&mut [u8]>) -> Result<()> {
        let z_dim = self.gen.z_dim();
        let most = self.chunk.min(end - first);
        let mut z = zeros::<f32>(most * z_dim, "the latents of one chunk")?;
        let conditional = self.model.config().classes > 0;
        let mut y = zeros::<u32>(if conditional { most } else { 0 }, "the classes of one chunk")?;
        let mut scratch = self.model.take_scratch();
        let result = self.draw_range(first, end, &mut part, &mut z, &mut y, &mut scratch);
        self.model.give_scratch(scratch);
        result
    }

    fn draw_range(
        &self,
        first: usize,
        end: usize,
        part: &mut [&mut [u8]],
        z: &mut [f32],
        y: &mut [u32],
        scratch: &mut Scratch,
    ) -> Result<()> {
        let gen = self.gen;
        let (z_dim, c) = (gen.z_dim(), self.model.config().channels as usize);
        let plane = (self.model.config().height * self.model.config().width) as usize;
        let per = gen.image_len() * self.format.sample_bytes();
        let mut at = first;
        while at < end {
            let n = self.chunk.min(end - at);
            let zc = &mut z[..n * z_dim];
            let seed = match self.latents {
                Latents::Seed(seed) => {
                    latents_into(seed, z_dim, at as u64, zc);
                    seed
                }
                Latents::Given(all) => {
                    zc.copy_from_slice(&all[at * z_dim..(at + n) * z_dim]);
                    0 // Classes are named for caller latents: no seed draws them.
                }
            };
            // A conditional model's classes of this chunk (y is empty for an unconditional one).
            let yc = if y.is_empty() {
                None
            } else {
                self.classes.fill(self.model.config().classes, seed, at, &mut y[..n]);
                Some(&y[..n])
            };
            let offset = (at - first) * per;
            let every_step = self.every_step;
            let mut sink = |t: usize, sum: &[f32]| -> Result<()> {
                let block = if every_step { &mut part[t] } else { &mut part[0] };
                for img in 0..n {
                    let dst = &mut block[offset + img * per..offset + (img + 1) * per];
                    write_image(sum, img, c, plane, self.format, dst);
                }
                Ok(())
            };
            gen.draw(zc, yc, n, every_step, &mut sink, scratch)?;
            at += n;
        }
        Ok(())
    }
}
