//! A quality evaluator independent of GAM: a small convolutional classifier trained by gran on a
//! labelled dataset, whose penultimate layer gives the features for a Frechet distance (FID's
//! formula on these features), whose probabilities give a classifier score (the Inception-score
//! formula) and the share of samples per class (a collapsed model shows), and the paper's copy
//! check: each sample's distance to its nearest training image against the held-out images'
//! own nearest-training distances.

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nn::adam::{Adam, AdamSettings};
use crate::nn::layers::{BatchNorm, BnMode, Builder, Conv, ConvKind, Linear};
use crate::rng::{stream, Stream};
use tch::{Device, Kind, Reduction, Tensor};

/// Width of the feature layer.
pub(crate) const FEATURES: i64 = 128;
/// Labels are bytes; a dataset may use at most this many classes (0 .. MAX_CLASSES-1).
pub(crate) const MAX_CLASSES: usize = 64;

/// How the classifier is trained.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluatorConfig {
    pub epochs: u32,
    pub batch_size: u32,
    pub lr: f64,
    pub seed: u64,
}

impl Default for EvaluatorConfig {
    fn default() -> Self {
        EvaluatorConfig { epochs: 5, batch_size: 64, lr: 1e-3, seed: 0 }
    }
}

struct Net {
    convs: Vec<(Conv, BatchNorm)>,
    fc: Linear,
    out: Linear,
}

impl Net {
    /// (features [N, FEATURES], logits [N, classes]) for float images in [0, 1].
    fn forward(&self, x: &Tensor, mode: BnMode) -> Result<(Tensor, Tensor)> {
        let mut x = x.shallow_clone();
        for (conv, bn) in &self.convs {
            x = bn.forward(&conv.forward(&x)?, mode, 0)?.f_relu()?;
        }
        let f = self.fc.forward(&x.f_flatten(1, -1)?)?.f_relu()?;
        let logits = self.out.forward(&f)?;
        Ok((f, logits))
    }
}

pub struct Evaluator {
    net: Net,
    device: Device,
    shape: (u32, u32, u32),
    classes: usize,
}

// SAFETY: as for the model's state: after training, the evaluator is only read (eval mode,
// no-grad), which libtorch supports from several threads at once.
unsafe impl Sync for Evaluator {}

/// The statistics of one image set under the evaluator.
#[derive(Debug, Clone, PartialEq)]
pub struct Quality {
    /// Frechet distance between the features of the images and of the real reference set.
    pub frechet_distance: f64,
    /// exp(E_x KL(p(y|x) || p(y))): high when each image is confidently one class and the
    /// classes are balanced; at most the number of classes.
    pub classifier_score: f64,
    /// Share of images the classifier assigns to each class (argmax), `classes` entries.
    pub class_shares: Vec<f64>,
    /// Mean Euclidean pixel distance of each image to its nearest training image.
    pub nearest_train_distance: f64,
    /// The same for the real reference images (what an image that is not a copy typically shows).
    pub reference_nearest_train_distance: f64,
    pub count: usize,
    /// A class-conditional model's samples: for each class, the share of the samples asked to
    /// be of it that the classifier assigns to it (NaN for a class no sample asked for; the
    /// evaluator's classes). Empty for an unconditional model and for image sets.
    pub class_accuracy: Vec<f64>,
}

impl Quality {
    /// The mean of the per-class accuracies that were measured, and the worst of them; `None`
    /// when none was.
    pub fn accuracy_summary(&self) -> Option<(f64, f64)> {
        let measured: Vec<f64> = self.class_accuracy.iter().copied().filter(|a| !a.is_nan()).collect();
        if measured.is_empty() {
            return None;
        }
        let mean = measured.iter().sum::<f64>() / measured.len() as f64;
        Some((mean, measured.iter().copied().fold(f64::INFINITY, f64::min)))
    }
}

fn to_float(x: &Tensor, device: Device) -> Result<Tensor> {
    let x = x.f_to_device(device)?;
    Ok(if x.kind() == Kind::Uint8 { x.f_to_kind(Kind::Float)?.f_div_scalar(255.0)? } else { x.f_to_kind(Kind::Float)? })
}

/// Rows of `x` in chunks, mapped by `f` and concatenated.
fn chunked(x: &Tensor, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    let n = x.size()[0];
    let mut parts = Vec::new();
    let mut start = 0;
    while start < n {
        let len = 512.min(n - start);
        parts.push(f(&x.f_narrow(0, start, len)?)?);
        start += len;
    }
    Ok(Tensor::f_cat(&parts, 0)?)
}

impl Evaluator {
    /// Trains the classifier on a labelled dataset (on `device`).
    pub fn train(data: &Dataset, cfg: &EvaluatorConfig, device: Device) -> Result<Evaluator> {
        let labels = data.labels().ok_or_else(|| Error::invalid("the evaluator needs a dataset with labels"))?;
        let classes = *labels.iter().max().expect("datasets are not empty") as usize + 1;
        if classes > MAX_CLASSES {
            return Err(Error::invalid(format!("labels go up to {}: at most {MAX_CLASSES} classes", classes - 1)));
        }
        if cfg.epochs == 0 || cfg.batch_size < 2 || cfg.batch_size as usize > data.count() {
            return Err(Error::invalid(format!(
                "epochs {} and batch_size {}: need epochs >= 1 and 2 <= batch_size <= {}",
                cfg.epochs,
                cfg.batch_size,
                data.count()
            )));
        }
        if !(cfg.lr.is_finite() && cfg.lr > 0.0) {
            return Err(Error::invalid(format!("learning rate is {}: must be > 0", cfg.lr)));
        }
        let (c, h, w) = (data.channels(), data.height(), data.width());
        let mut b = Builder::new(cfg.seed, device);
        let mut convs = Vec::new();
        let (mut ch, mut size) = (c as i64, h.min(w) as i64);
        let mut spatial = (h as i64, w as i64);
        for (i, out) in [32i64, 64, 128, 128].into_iter().enumerate() {
            if i >= 2 && size <= 8 {
                break;
            }
            convs.push((
                b.conv(&format!("e.conv{i}"), ch, out, ConvKind::Down, false)?,
                b.batch_norm(&format!("e.bn{i}"), out, 1)?,
            ));
            ch = out;
            size = (size + 1) / 2;
            spatial = ((spatial.0 + 1) / 2, (spatial.1 + 1) / 2);
        }
        let fc = b.linear("e.fc", ch * spatial.0 * spatial.1, FEATURES, true, false)?;
        let out = b.linear("e.out", FEATURES, classes as i64, true, false)?;
        let params = std::mem::take(&mut b.params);
        let ev = Evaluator { net: Net { convs, fc, out }, device, shape: (c, h, w), classes };

        let images = data.float_images(device)?;
        let targets = Tensor::f_from_slice(labels)?.f_to_kind(Kind::Int64)?.f_to_device(device)?;
        let mut adam = Adam::new(&params)?;
        let n = data.count();
        let batch = cfg.batch_size as usize;
        let total = (cfg.epochs as usize * (n / batch)) as f64;
        let shuffle = Stream::new(cfg.seed, stream::EVAL);
        // Regularisation for small datasets: each minibatch is shifted by up to 2 pixels (zero
        // padding), and the learning rate decays linearly to 0.
        let pad = 2i64;
        let padded = images.f_constant_pad_nd([pad, pad, pad, pad])?;
        let mut step = 0usize;
        for epoch in 0..cfg.epochs as u64 {
            let order = shuffle.sub(epoch);
            let perm = Tensor::f_from_slice(&order.permutation(n))?.f_to_device(device)?;
            for k in 0..n / batch {
                let settings = AdamSettings {
                    lr: cfg.lr * (1.0 - step as f64 / total),
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: 0.0,
                };
                step += 1;
                let idx = perm.f_narrow(0, (k * batch) as i64, batch as i64)?;
                let (dy, dx) = (
                    order.below(2 * k as u64 + n as u64, 5) as i64,
                    order.below(2 * k as u64 + 1 + n as u64, 5) as i64,
                );
                let x = padded.f_index_select(0, &idx)?.f_narrow(2, dy, h as i64)?.f_narrow(3, dx, w as i64)?;
                let (_, logits) = ev.net.forward(&x, BnMode::Train)?;
                let loss = logits.f_cross_entropy_loss::<Tensor>(
                    &targets.f_index_select(0, &idx)?,
                    None,
                    Reduction::Mean,
                    -100,
                    0.0,
                )?;
                let grads = adam.gradients(&loss)?;
                adam.step(&grads, &settings, None)?;
            }
        }
        Ok(ev)
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    fn check_shape(&self, x: &Tensor) -> Result<()> {
        let s = x.size();
        let (c, h, w) = self.shape;
        if s.len() != 4 || s[1..] != [c as i64, h as i64, w as i64] {
            return Err(Error::invalid(format!("images of shape {s:?} given to an evaluator of {c}x{h}x{w} images")));
        }
        Ok(())
    }

    /// (features, class probabilities) of images [N, C, H, W] (u8 or float in [0, 1]).
    pub(crate) fn features_and_probabilities(&self, images: &Tensor) -> Result<(Tensor, Tensor)> {
        self.check_shape(images)?;
        let _g = tch::no_grad_guard();
        let both = chunked(images, |x| {
            let (f, logits) = self.net.forward(&to_float(x, self.device)?, BnMode::Eval)?;
            Ok(Tensor::f_cat(&[f, logits.f_softmax(-1, Kind::Float)?], 1)?)
        })?
        .f_to_device(Device::Cpu)?
        .f_to_kind(Kind::Double)?;
        Ok((both.f_narrow(1, 0, FEATURES)?, both.f_narrow(1, FEATURES, self.classes as i64)?))
    }

    /// Share of `data`'s images classified as their label.
    pub fn accuracy(&self, data: &Dataset) -> Result<f64> {
        let labels = data.labels().ok_or_else(|| Error::invalid("accuracy needs a dataset with labels"))?;
        let (_, p) = self.features_and_probabilities(data.images()?)?;
        let predicted = Vec::<i64>::try_from(p.f_argmax(1, false)?)?;
        Ok(predicted.iter().zip(labels).filter(|(p, &l)| **p == l as i64).count() as f64 / labels.len() as f64)
    }

    /// Quality of `images` against the real reference set `reference`; with `train`, also the
    /// nearest-training-image distances of both (the copy check).
    pub fn quality(&self, images: &Tensor, reference: &Dataset, train: Option<&Dataset>) -> Result<Quality> {
        let mut stats = Stats::new(self, train)?;
        let n = images.size().first().copied().unwrap_or(0);
        let mut start = 0;
        while start < n {
            let len = CHUNK.min(n - start);
            stats.add(&images.f_narrow(0, start, len)?, None)?;
            start += len;
        }
        self.finish(stats, reference, train)
    }

    /// Quality of `samples` images drawn from `model` with `seed`, consumed chunk by chunk as
    /// they are drawn: memory does not grow with `samples`. A class-conditional model draws
    /// each image as a class drawn uniformly from (seed, i), and the result says how often the
    /// classifier agrees with the class asked for, per class.
    pub fn model_quality(
        &self,
        model: &crate::model::Model,
        seed: u64,
        samples: usize,
        reference: &Dataset,
        train: Option<&Dataset>,
    ) -> Result<Quality> {
        check_samples(samples)?;
        let mut stats = Stats::new(self, train)?;
        stats.conditional = model.config().conditional();
        model.sample_chunked(seed, samples, false, crate::Classes::Drawn, &mut |_, s| {
            stats.add(&s.images, s.labels.as_ref())
        })?;
        self.finish(stats, reference, train)
    }

    /// The scores of the images summed in `stats` against `reference`.
    fn finish(&self, stats: Stats, reference: &Dataset, train: Option<&Dataset>) -> Result<Quality> {
        let mut real = Stats::new(self, train)?;
        let n = reference.count() as i64;
        let mut start = 0;
        while start < n {
            let len = CHUNK.min(n - start);
            real.add(&reference.images()?.f_narrow(0, start, len)?, None)?;
            start += len;
        }
        let count = stats.n;
        let (mu, cov) = stats.moments()?;
        let (mu_r, cov_r) = real.moments()?;
        Ok(Quality {
            frechet_distance: frechet_from_moments(&mu, &cov, &mu_r, &cov_r)?,
            classifier_score: stats.classifier_score()?,
            class_shares: stats.counts.iter().map(|&c| c as f64 / count as f64).collect(),
            nearest_train_distance: stats.near_sum / count as f64,
            reference_nearest_train_distance: real.near_sum / n as f64,
            count,
            class_accuracy: match stats.conditional {
                true => stats
                    .asked
                    .iter()
                    .zip(&stats.hits)
                    .map(|(&a, &h)| if a > 0 { h as f64 / a as f64 } else { f64::NAN })
                    .collect(),
                false => Vec::new(),
            },
        })
    }
}

/// Images per forward pass of the evaluator.
const CHUNK: i64 = 256;

/// The per-call limit on the samples of an evaluation ([`crate::limits::MAX_METRIC_SAMPLES`]);
/// the Frechet distance needs at least 2.
pub(crate) fn check_samples(samples: usize) -> Result<()> {
    let most = crate::limits::MAX_METRIC_SAMPLES as usize;
    if !(2..=most).contains(&samples) {
        return Err(Error::invalid(format!("samples is {samples}: must be in 2..={most}")));
    }
    Ok(())
}

/// Running sums over a stream of images: everything [`Quality`] needs, in memory that does
/// not depend on the number of images (features' sum and sum of outer products in double
/// precision, class-probability sums, the classes chosen, nearest-training distances).
struct Stats<'a> {
    ev: &'a Evaluator,
    /// Training images, flattened float, for the copy check.
    train: Option<Tensor>,
    n: usize,
    sum: Tensor,
    outer: Tensor,
    p_sum: Tensor,
    /// Sum over images of sum_y p log(p + eps).
    p_log_p: f64,
    counts: Vec<i64>,
    near_sum: f64,
    /// Conditional samples: whether they are, and per class the samples asked to be of it and
    /// those the classifier assigns to it.
    conditional: bool,
    asked: Vec<i64>,
    hits: Vec<i64>,
}

/// Keeps log(0) out of the classifier score.
const EPS: f64 = 1e-12;

impl<'a> Stats<'a> {
    fn new(ev: &'a Evaluator, train: Option<&Dataset>) -> Result<Self> {
        let zeros = |shape: &[i64]| Tensor::f_zeros(shape, (Kind::Double, Device::Cpu));
        let train = match train {
            Some(t) => Some(to_float(t.images()?, Device::Cpu)?.f_flatten(1, -1)?),
            None => None,
        };
        Ok(Stats {
            ev,
            train,
            n: 0,
            sum: zeros(&[FEATURES])?,
            outer: zeros(&[FEATURES, FEATURES])?,
            p_sum: zeros(&[ev.classes as i64])?,
            p_log_p: 0.0,
            counts: vec![0; ev.classes],
            near_sum: f64::NAN,
            conditional: false,
            asked: vec![0; ev.classes],
            hits: vec![0; ev.classes],
        })
    }

    /// Adds the images of one chunk ([n, C, H, W], u8 or float in [0, 1]), with the classes
    /// they were asked to be (int64 [n]) when a conditional model drew them.
    fn add(&mut self, images: &Tensor, asked: Option<&Tensor>) -> Result<()> {
        let (f, p) = self.ev.features_and_probabilities(images)?;
        if let Some(asked) = asked {
            let predicted = Vec::<i64>::try_from(p.f_argmax(1, false)?)?;
            for (&k, &y) in Vec::<i64>::try_from(asked.f_to_device(Device::Cpu)?)?.iter().zip(&predicted) {
                if let Some(slot) = usize::try_from(k).ok().filter(|&k| k < self.ev.classes) {
                    self.asked[slot] += 1;
                    self.hits[slot] += i64::from(y == k);
                }
            }
        }
        self.n += f.size()[0] as usize;
        self.sum = self.sum.f_add(&f.f_sum_dim_intlist(&[0i64][..], false, Kind::Double)?)?;
        self.outer = self.outer.f_add(&f.f_transpose(0, 1)?.f_matmul(&f)?)?;
        self.p_sum = self.p_sum.f_add(&p.f_sum_dim_intlist(&[0i64][..], false, Kind::Double)?)?;
        self.p_log_p += p.f_mul(&p.f_add_scalar(EPS)?.f_log()?)?.f_sum(Kind::Double)?.f_double_value(&[])?;
        let chosen = p.f_argmax(1, false)?.f_bincount::<Tensor>(None, self.ev.classes as i64)?;
        for (c, k) in self.counts.iter_mut().zip(Vec::<i64>::try_from(&chosen)?) {
            *c += k;
        }
        if let Some(t) = &self.train {
            let x = to_float(images, Device::Cpu)?.f_flatten(1, -1)?;
            if x.size()[1] != t.size()[1] {
                return Err(Error::invalid("images and training images differ in size"));
            }
            let _g = tch::no_grad_guard();
            let nearest = Tensor::f_cdist(&x, t, 2.0, None)?.f_amin(&[1i64][..], false)?;
            let sum = nearest.f_sum(Kind::Double)?.f_double_value(&[])?;
            self.near_sum = if self.near_sum.is_nan() { sum } else { self.near_sum + sum };
        }
        Ok(())
    }

    /// Mean and covariance (n - 1 in the denominator) of the features.
    fn moments(&self) -> Result<(Tensor, Tensor)> {
        let n = self.n as f64;
        if self.n < 2 {
            return Err(Error::invalid("the Frechet distance needs at least 2 images per set"));
        }
        let mu = self.sum.f_div_scalar(n)?;
        let cov = self.outer.f_sub(&mu.f_outer(&mu)?.f_mul_scalar(n)?)?.f_div_scalar(n - 1.0)?;
        Ok((mu, cov))
    }

    /// exp(mean over images of KL(p(y|x) || p(y))) = exp(E[sum p log p] - sum_y p(y) log p(y)).
    fn classifier_score(&self) -> Result<f64> {
        let n = self.n as f64;
        let py = self.p_sum.f_div_scalar(n)?;
        let cross = self.p_sum.f_mul(&py.f_add_scalar(EPS)?.f_log()?)?.f_sum(Kind::Double)?.f_double_value(&[])?;
        Ok(((self.p_log_p - cross) / n).exp())
    }
}

/// Mean and covariance (rows are observations), in double precision.
fn moments(x: &Tensor) -> Result<(Tensor, Tensor)> {
    let n = x.size()[0];
    if n < 2 {
        return Err(Error::invalid("the Frechet distance needs at least 2 images per set"));
    }
    let mu = x.f_mean_dim(&[0i64][..], false, Kind::Double)?;
    let centred = x.f_sub(&mu)?;
    let cov = centred.f_transpose(0, 1)?.f_matmul(&centred)?.f_div_scalar((n - 1) as f64)?;
    Ok((mu, cov))
}

/// The Frechet distance between two sets of feature rows.
pub fn frechet_distance(a: &Tensor, b: &Tensor) -> Result<f64> {
    let (mu1, s1) = moments(a)?;
    let (mu2, s2) = moments(b)?;
    frechet_from_moments(&mu1, &s1, &mu2, &s2)
}

/// ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), with Tr((S1 S2)^(1/2)) computed as the sum
/// of the square roots of the eigenvalues of the symmetric S1^(1/2) S2 S1^(1/2).
fn frechet_from_moments(mu1: &Tensor, s1: &Tensor, mu2: &Tensor, s2: &Tensor) -> Result<f64> {
    let (l, v) = s1.f_linalg_eigh("L")?;
    let root = v.f_mul(&l.f_clamp_min(0.0)?.f_sqrt()?.f_unsqueeze(0)?)?.f_matmul(&v.f_transpose(0, 1)?)?;
    let m = root.f_matmul(s2)?.f_matmul(&root)?;
    let m = m.f_add(&m.f_transpose(0, 1)?)?.f_div_scalar(2.0)?;
    let tr_sqrt = m.f_linalg_eigvalsh("L")?.f_clamp_min(0.0)?.f_sqrt()?.f_sum(Kind::Double)?.f_double_value(&[])?;
    let diff = mu1.f_sub(mu2)?;
    let d = diff.f_dot(&diff)?.f_double_value(&[])?
        + s1.f_trace()?.f_double_value(&[])?
        + s2.f_trace()?.f_double_value(&[])?
        - 2.0 * tr_sqrt;
    Ok(d.max(0.0))
}
