//! Inference: latents, images, the step-by-step canvases, and discriminator scores.
//!
//! All of it runs under no-grad with batch norm in eval mode (running statistics), so image i of
//! a seeded request depends only on (weights, seed, i): not on how many images are asked for, nor
//! on the chunks the work is split into. The one exception is asked for by name:
//! `discriminate_with(.., Scoring::BatchStatistics(n))` scores images in chunks normalised by
//! their own statistics (GAM's scoring). The networks run in the model's inference precision
//! (`Model::precision`); in bfloat16 an image may differ in its last bits with the batch it was
//! computed in (the kernels chosen depend on the batch size).

use crate::error::{Error, Result};
use crate::layers::BnMode;
use crate::model::Model;
use crate::rng::{stream, Stream};
use tch::{Device, Kind, Tensor};

/// Images per forward pass: bounds peak memory for large requests.
pub const CHUNK: usize = 256;

/// Output of a sampling call, on the CPU.
pub struct Samples {
    /// [N, C, H, W] in [0, 1].
    pub images: Tensor,
    /// With `steps`: [T, N, C, H, W], the canvas after each drawing step.
    pub canvases: Option<Tensor>,
}

impl Model {
    /// The latents of images `start .. start + count` of `seed`: [count * z_dim] row-major.
    pub fn latents(&self, seed: u64, start: u64, count: usize) -> Vec<f32> {
        let z_dim = self.config().z_dim as usize;
        Stream::new(seed, stream::SAMPLE).normals(start * z_dim as u64, count * z_dim)
    }

    /// Images from caller latents `z` ([count * z_dim] row-major).
    pub fn generate(&self, z: &[f32], count: usize, steps: bool) -> Result<Samples> {
        let z_dim = self.config().z_dim as usize;
        if count == 0 {
            return Err(Error::invalid("count is 0: ask for at least one image"));
        }
        if z.len() != count * z_dim {
            return Err(Error::invalid(format!(
                "{} latent values given for {count} images of z_dim {z_dim}: expected {}",
                z.len(),
                count * z_dim
            )));
        }
        if let Some(i) = z.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(format!("latent value {i} is {}: must be finite", z[i])));
        }
        let _no_grad = tch::no_grad_guard();
        let precision = self.precision();
        let state = self.read();
        let mut images = Vec::new();
        let mut canvases = Vec::new();
        for chunk in z.chunks(CHUNK * z_dim) {
            let n = (chunk.len() / z_dim) as i64;
            let zt = Tensor::f_from_slice(chunk)?.f_view([n, z_dim as i64])?.f_to_device(self.device())?;
            // Images and canvases are float32 in either precision (the canvas sums in float32).
            let d = precision.run(self.device(), || state.gen.forward(&zt, BnMode::Eval, steps))?;
            images.push(d.image.f_to_device(Device::Cpu)?);
            if steps {
                canvases.push(Tensor::f_stack(&d.canvases, 0)?.f_to_device(Device::Cpu)?);
            }
        }
        Ok(Samples {
            images: Tensor::f_cat(&images, 0)?,
            canvases: if steps { Some(Tensor::f_cat(&canvases, 1)?) } else { None },
        })
    }

    /// `count` images of `seed` (and, with `steps`, their canvases after every step).
    pub fn sample(&self, seed: u64, count: usize, steps: bool) -> Result<Samples> {
        if count == 0 {
            return Err(Error::invalid("count is 0: ask for at least one image"));
        }
        let z = self.latents(seed, 0, count);
        self.generate(&z, count, steps)
    }

    /// D(x) for each image of `images` ([N, C, H, W], u8 0..255 or float in [0, 1], any device),
    /// each image scored alone (running batch-norm statistics).
    pub fn discriminate(&self, images: &Tensor) -> Result<Vec<f32>> {
        self.discriminate_with(images, Scoring::RunningStatistics)
    }

    /// D(x) for each image of `images`, with the batch-norm statistics `scoring` says.
    pub fn discriminate_with(&self, images: &Tensor, scoring: Scoring) -> Result<Vec<f32>> {
        let c = self.config();
        let size = images.size();
        let expect = [c.channels as i64, c.height as i64, c.width as i64];
        if size.len() != 4 || size[1..] != expect {
            return Err(Error::invalid(format!(
                "images of shape {size:?} given to a model of {}x{}x{} (channels x height x width)",
                c.channels, c.height, c.width
            )));
        }
        let n = size[0];
        let (most, mode) = match scoring {
            Scoring::RunningStatistics => (CHUNK as i64, BnMode::Eval),
            Scoring::BatchStatistics(0) => return Err(Error::invalid("a scoring batch of 0 images")),
            Scoring::BatchStatistics(b) => (b as i64, BnMode::TrainFrozenStats),
        };
        let chunks = (n + most - 1) / most;
        let _no_grad = tch::no_grad_guard();
        let precision = self.precision();
        let state = self.read();
        let mut out = Vec::with_capacity(n as usize);
        // Balanced chunks: sizes differ by at most one, so no chunk's statistics rest on a few
        // left-over images.
        let mut start = 0;
        for k in 0..chunks {
            let len = n / chunks + i64::from(k < n % chunks);
            let mut x = images.f_narrow(0, start, len)?.f_to_device(self.device())?;
            x = if x.kind() == Kind::Uint8 {
                x.f_to_kind(Kind::Float)?.f_div_scalar(255.0)?
            } else {
                x.f_to_kind(Kind::Float)?
            };
            let logits = precision.run(self.device(), || state.disc.forward(&x, mode))?;
            let p = logits.f_to_kind(Kind::Float)?.f_sigmoid()?.f_to_device(Device::Cpu)?;
            out.extend(Vec::<f32>::try_from(&p)?);
            start += len;
        }
        Ok(out)
    }
}

/// How the discriminator's batch norm is normalised when scoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scoring {
    /// Running statistics: each image's score is its own, whatever else is scored with it.
    RunningStatistics,
    /// Statistics of the images scored together, in balanced chunks of at most this many: the
    /// condition the discriminator was trained in (real and generated minibatches in separate
    /// passes), and the way the paper's code scored GAM. Meaningful for sets of one kind only.
    BatchStatistics(usize),
}
