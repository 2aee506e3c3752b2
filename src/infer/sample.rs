//! Inference: latents, images, the step-by-step canvases, and discriminator scores.
//!
//! All of it runs under no-grad with batch norm in eval mode (running statistics), so image i of
//! a seeded request depends only on (weights, seed, i): not on how many images are asked for, nor
//! on the chunks the work is split into. On the CPU bit for bit; on CUDA, where libtorch picks
//! kernels by batch size (and small batches replay graphs captured per size), up to the last
//! float bits. The one exception is asked for by name:
//! `discriminate_with(.., Scoring::BatchStatistics(n))` scores images in chunks normalised by
//! their own statistics (GAM's scoring). The networks run in the model's inference precision
//! (`Model::precision`); in bfloat16 an image may differ in its last bits with the batch it was
//! computed in (the kernels chosen depend on the batch size).

use crate::error::{Error, Result};
use crate::limits;
use crate::model::Model;
use crate::nn::layers::BnMode;
use crate::rng::{stream, Stream};
use gran_common::classes::Classes;
use tch::{Device, Kind, Tensor};

/// Images per forward pass: bounds peak memory for large requests.
pub(crate) const CHUNK: usize = 256;

/// Output of a sampling call, on the CPU.
pub struct Samples {
    /// [N, C, H, W] in [0, 1].
    pub images: Tensor,
    /// With `with_canvases`: [T, N, C, H, W], the canvas after each drawing step.
    pub canvases: Option<Tensor>,
    /// A conditional model's class of each image (int64 [N]); `None` for an unconditional one.
    pub labels: Option<Tensor>,
}

/// `InvalidArgument` naming the first latent of `z` that is not finite (`offset`: the index of
/// `z[0]` among the caller's latents).
pub(crate) fn check_latents(z: &[f32], offset: usize) -> Result<()> {
    match z.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(Error::invalid(format!("latent value {} is {}: must be finite", offset + i, z[i]))),
        None => Ok(()),
    }
}

impl Model {
    /// Writes the latents of images `start .. start + out.len() / z_dim` of `seed` to `out`
    /// (row-major, z_dim values per image).
    pub(crate) fn latents_into(&self, seed: u64, start: u64, out: &mut [f32]) {
        let z_dim = self.config().z_dim as u64;
        let s = Stream::new(seed, stream::SAMPLE);
        let first = start.wrapping_mul(z_dim);
        for (i, v) in out.iter_mut().enumerate() {
            *v = s.normal(first.wrapping_add(i as u64));
        }
    }

    /// The latents of images `start .. start + count` of `seed`: [count * z_dim] row-major.
    /// `OutOfMemory` / `InvalidArgument` when they cannot be held.
    pub fn latents(&self, seed: u64, start: u64, count: usize) -> Result<Vec<f32>> {
        let n = limits::mul(count, self.config().z_dim as usize, "the latents")?;
        let mut z = limits::vec_filled(n, 0f32, "the latents")?;
        self.latents_into(seed, start, &mut z);
        Ok(z)
    }

    /// Draws `count` images chunk by chunk, at most [`CHUNK`] at a time: `latents(first, z)` fills
    /// the latents of images `first .. first + z.len() / z_dim`, `classes` says each image's
    /// class (checked first; `Classes::Drawn` draws them from `class_seed`, and a conditional
    /// model refuses it without one), and `sink(first, &samples)` receives that chunk's images
    /// (and canvases with `with_canvases`) on the CPU. Memory does not grow with `count`. The
    /// model's weights are read-locked for the whole call, so every image comes from the same
    /// weights.
    pub(crate) fn generate_chunked(
        &self,
        count: usize,
        with_canvases: bool,
        classes: Classes,
        class_seed: Option<u64>,
        latents: &mut dyn FnMut(usize, &mut [f32]) -> Result<()>,
        sink: &mut dyn FnMut(usize, &Samples) -> Result<()>,
    ) -> Result<()> {
        if count == 0 {
            return Err(Error::invalid("count is 0: ask for at least one image"));
        }
        let n_classes = self.config().classes;
        classes.check(n_classes, count, class_seed.is_some())?;
        // The seed the drawn classes come from (unused by named classes); `None`: no classes.
        let class_seed = (n_classes > 0).then(|| class_seed.unwrap_or(0));
        let z_dim = self.config().z_dim as usize;
        let mut z = limits::vec_filled(CHUNK.min(count) * z_dim, 0f32, "the latents of one chunk")?;
        let mut y = vec![0u32; if class_seed.is_some() { CHUNK.min(count) } else { 0 }];
        let _no_grad = tch::no_grad_guard();
        let precision = self.precision();
        let choice = self.generator_choice();
        let state = if choice == crate::nn::ema::Choice::Averaged { self.read_fresh()? } else { self.read() };
        let gen = state.generator(choice);
        let averaged = choice == crate::nn::ema::Choice::Averaged && state.ema.is_some();
        let lean = if crate::infer::lean::enabled_by_environment() {
            Some(self.lean_generator(&state, averaged)?)
        } else {
            None
        };
        let mut first = 0;
        while first < count {
            let n = CHUNK.min(count - first);
            let chunk = &mut z[..n * z_dim];
            latents(first, chunk)?;
            check_latents(chunk, first * z_dim)?;
            let host = Tensor::f_from_slice(chunk)?.f_view([n as i64, z_dim as i64])?;
            let labels = match class_seed {
                Some(seed) => {
                    classes.fill(n_classes, seed, first, &mut y[..n]);
                    Some(labels_tensor(&y[..n])?)
                }
                None => None,
            };
            // Small batches on CUDA: through a captured graph of this batch size (the same
            // kernels without their launch overhead; crate::infer::graph_cache::GraphCache).
            // Unconditional models only: the graphs take latents alone.
            if !with_canvases && labels.is_none() {
                let mut graphs = self.graphs.lock();
                if graphs.applies(self.device(), n) {
                    let forward = |z: &Tensor| {
                        precision.run(self.device(), || gen.forward(z, BnMode::Eval, false)).map(|d| d.image)
                    };
                    if let Some(images) = graphs.images((n, precision, averaged), self.device(), &host, &forward)? {
                        drop(graphs);
                        sink(first, &Samples { images, canvases: None, labels: None })?;
                        first += n;
                        continue;
                    }
                }
            }
            let zt = host.f_to_device(self.device())?;
            let yt = labels.as_ref().map(|l| l.f_to_device(self.device())).transpose()?;
            // Images and canvases are float32 in either precision (the canvas sums in float32).
            let d = precision.run(self.device(), || match &lean {
                Some(lean) => lean.forward(&zt, yt.as_ref(), with_canvases),
                None => gen.forward_with(&zt, yt.as_ref(), BnMode::Eval, with_canvases),
            })?;
            let canvases =
                if with_canvases { Some(Tensor::f_stack(&d.canvases, 0)?.f_to_device(Device::Cpu)?) } else { None };
            sink(first, &Samples { images: d.image.f_to_device(Device::Cpu)?, canvases, labels })?;
            first += n;
        }
        Ok(())
    }

    /// `count` images of `seed` of `classes`, chunk by chunk, as [`Model::generate_chunked`]
    /// hands them over.
    pub(crate) fn sample_chunked(
        &self,
        seed: u64,
        count: usize,
        with_canvases: bool,
        classes: Classes,
        sink: &mut dyn FnMut(usize, &Samples) -> Result<()>,
    ) -> Result<()> {
        let mut latents = |first: usize, z: &mut [f32]| {
            self.latents_into(seed, first as u64, z);
            Ok(())
        };
        self.generate_chunked(count, with_canvases, classes, Some(seed), &mut latents, sink)
    }

    /// Images from caller latents `z` ([count * z_dim] row-major), of an unconditional model.
    pub fn generate(&self, z: &[f32], count: usize, with_canvases: bool) -> Result<Samples> {
        self.generate_classes(z, count, Classes::Drawn, with_canvases)
    }

    /// Images from caller latents `z` ([count * z_dim] row-major) of `classes`: a conditional
    /// model needs `Classes::All` or `Classes::Each` (caller latents have no seed to draw
    /// classes from); an unconditional one `Classes::Drawn`.
    pub fn generate_classes(&self, z: &[f32], count: usize, classes: Classes, with_canvases: bool) -> Result<Samples> {
        let z_dim = self.config().z_dim as usize;
        if count == 0 {
            return Err(Error::invalid("count is 0: ask for at least one image"));
        }
        if Some(z.len()) != count.checked_mul(z_dim) {
            return Err(Error::invalid(format!(
                "{} latent values given for {count} images of z_dim {z_dim}: expected {count} x {z_dim}",
                z.len()
            )));
        }
        let mut latents = |first: usize, out: &mut [f32]| {
            out.copy_from_slice(&z[first * z_dim..first * z_dim + out.len()]);
            Ok(())
        };
        collect(count, with_canvases, |sink| {
            self.generate_chunked(count, with_canvases, classes, None, &mut latents, sink)
        })
    }

    /// `count` images of `seed` (and, with `with_canvases`, their canvases after every step); a
    /// conditional model draws each image's class from (seed, i).
    pub fn sample(&self, seed: u64, count: usize, with_canvases: bool) -> Result<Samples> {
        self.sample_classes(seed, count, Classes::Drawn, with_canvases)
    }

    /// `count` images of `seed` of `classes` (a conditional model; `Classes::Drawn` for either).
    pub fn sample_classes(&self, seed: u64, count: usize, classes: Classes, with_canvases: bool) -> Result<Samples> {
        collect(count, with_canvases, |sink| self.sample_chunked(seed, count, with_canvases, classes, sink))
    }

    /// D(x) for each image of `images` ([N, C, H, W], u8 0..255 or float in [0, 1], any device),
    /// each image scored alone (running batch-norm statistics).
    pub fn discriminate(&self, images: &Tensor) -> Result<Vec<f32>> {
        self.discriminate_with(images, Scoring::RunningStatistics)
    }

    /// D(x) for each image of `images`, with the batch-norm statistics `scoring` says.
    pub fn discriminate_with(&self, images: &Tensor, scoring: Scoring) -> Result<Vec<f32>> {
        self.discriminate_labelled(images, None, scoring)
    }

    /// D(x, y) for each image of `images` with its class `labels` (int64 [N], any device; each
    /// in 0..classes, checked), as a conditional discriminator judges it; `None` judges each
    /// image as a member of its most real class. An unconditional model ignores labels.
    pub fn discriminate_labelled(
        &self,
        images: &Tensor,
        labels: Option<&Tensor>,
        scoring: Scoring,
    ) -> Result<Vec<f32>> {
        self.require_full("scoring with the discriminator")?;
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
        let labels = match labels.filter(|_| c.conditional()) {
            Some(l) => {
                let l = l.f_to_device(Device::Cpu)?.f_to_kind(Kind::Int64)?;
                if l.size() != [n] {
                    return Err(Error::invalid(format!("{:?} labels given for {n} images", l.size())));
                }
                if n > 0 && (l.f_min()?.f_int64_value(&[])? < 0 || l.f_max()?.f_int64_value(&[])? >= c.classes as i64) {
                    return Err(Error::invalid(format!("a label is outside 0..{} (the model's classes)", c.classes)));
                }
                Some(l)
            }
            None => None,
        };
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
            let y = labels.as_ref().map(|l| l.f_narrow(0, start, len)?.f_to_device(self.device())).transpose()?;
            let logits = precision.run(self.device(), || state.disc.forward_with(&x, y.as_ref(), mode))?;
            let p = logits.f_to_kind(Kind::Float)?.f_sigmoid()?.f_to_device(Device::Cpu)?;
            out.extend(Vec::<f32>::try_from(&p)?);
            start += len;
        }
        Ok(out)
    }
}

/// Classes as the networks take them: an int64 tensor [N] on the CPU.
pub(crate) fn labels_tensor(classes: &[u32]) -> Result<Tensor> {
    let wide: Vec<i64> = classes.iter().map(|&k| i64::from(k)).collect();
    Ok(Tensor::f_from_slice(&wide)?)
}

/// Runs a chunked drawing and joins its chunks into one [`Samples`] (`count` images).
fn collect(
    count: usize,
    with_canvases: bool,
    run: impl FnOnce(&mut dyn FnMut(usize, &Samples) -> Result<()>) -> Result<()>,
) -> Result<Samples> {
    let chunks = count.div_ceil(CHUNK);
    let mut images = limits::vec_with_capacity(chunks, "the chunks of a sample")?;
    let mut canvases = limits::vec_with_capacity(if with_canvases { chunks } else { 0 }, "the chunks of a sample")?;
    let mut labels = Vec::new();
    run(&mut |_, s: &Samples| {
        images.push(s.images.shallow_clone());
        if let Some(l) = &s.labels {
            labels.push(l.shallow_clone());
        }
        if let Some(c) = &s.canvases {
            canvases.push(c.shallow_clone());
        }
        Ok(())
    })?;
    Ok(Samples {
        images: Tensor::f_cat(&images, 0)?,
        canvases: if with_canvases { Some(Tensor::f_cat(&canvases, 1)?) } else { None },
        labels: if labels.is_empty() { None } else { Some(Tensor::f_cat(&labels, 0)?) },
    })
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
