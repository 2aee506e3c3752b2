//! A quality evaluator independent of GAM: a small convolutional classifier trained by gran on a
//! labelled dataset, whose penultimate layer gives the features for a Frechet distance (FID's
//! formula on these features), whose probabilities give a classifier score (the Inception-score
//! formula) and the share of samples per class (a collapsed model shows), and the paper's copy
//! check: each sample's distance to its nearest training image against the held-out images'
//! own nearest-training distances.

use crate::adam::{Adam, AdamSettings};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::layers::{BatchNorm, BnMode, Builder, Conv, Linear};
use crate::rng::{stream, Stream};
use tch::{Device, Kind, Reduction, Tensor};

/// Width of the feature layer.
pub const FEATURES: i64 = 128;
/// Labels are bytes; a dataset may use at most this many classes (0 .. MAX_CLASSES-1).
pub const MAX_CLASSES: usize = 64;

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
                b.conv(&format!("e.conv{i}"), ch, out, false, false)?,
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
    pub fn features_and_probabilities(&self, images: &Tensor) -> Result<(Tensor, Tensor)> {
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
        let (_, p) = self.features_and_probabilities(data.images())?;
        let predicted = Vec::<i64>::try_from(p.f_argmax(1, false)?)?;
        Ok(predicted.iter().zip(labels).filter(|(p, &l)| **p == l as i64).count() as f64 / labels.len() as f64)
    }

    /// Quality of `images` against the real reference set `reference`; with `train`, also the
    /// nearest-training-image distances of both (the copy check).
    pub fn quality(&self, images: &Tensor, reference: &Dataset, train: Option<&Dataset>) -> Result<Quality> {
        let (f, p) = self.features_and_probabilities(images)?;
        let (fr, _) = self.features_and_probabilities(reference.images())?;
        let n = p.size()[0] as usize;
        let counts = Vec::<i64>::try_from(p.f_argmax(1, false)?.f_bincount::<Tensor>(None, self.classes as i64)?)?;
        let (near, near_ref) = match train {
            Some(t) => (nearest_distance(images, t)?, nearest_distance(reference.images(), t)?),
            None => (f64::NAN, f64::NAN),
        };
        Ok(Quality {
            frechet_distance: frechet_distance(&f, &fr)?,
            classifier_score: classifier_score(&p)?,
            class_shares: counts.iter().map(|&c| c as f64 / n as f64).collect(),
            nearest_train_distance: near,
            reference_nearest_train_distance: near_ref,
            count: n,
        })
    }
}

impl Evaluator {
    /// Quality of `samples` images drawn from `model` with `seed`.
    pub fn model_quality(
        &self,
        model: &crate::model::Model,
        seed: u64,
        samples: usize,
        reference: &Dataset,
        train: Option<&Dataset>,
    ) -> Result<Quality> {
        let images = model.sample(seed, samples, false)?.images;
        self.quality(&images, reference, train)
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

/// ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), with Tr((S1 S2)^(1/2)) computed as the sum
/// of the square roots of the eigenvalues of the symmetric S1^(1/2) S2 S1^(1/2).
pub fn frechet_distance(a: &Tensor, b: &Tensor) -> Result<f64> {
    let (mu1, s1) = moments(a)?;
    let (mu2, s2) = moments(b)?;
    let (l, v) = s1.f_linalg_eigh("L")?;
    let root = v.f_mul(&l.f_clamp_min(0.0)?.f_sqrt()?.f_unsqueeze(0)?)?.f_matmul(&v.f_transpose(0, 1)?)?;
    let m = root.f_matmul(&s2)?.f_matmul(&root)?;
    let m = m.f_add(&m.f_transpose(0, 1)?)?.f_div_scalar(2.0)?;
    let tr_sqrt = m.f_linalg_eigvalsh("L")?.f_clamp_min(0.0)?.f_sqrt()?.f_sum(Kind::Double)?.f_double_value(&[])?;
    let diff = mu1.f_sub(&mu2)?;
    let d = diff.f_dot(&diff)?.f_double_value(&[])?
        + s1.f_trace()?.f_double_value(&[])?
        + s2.f_trace()?.f_double_value(&[])?
        - 2.0 * tr_sqrt;
    Ok(d.max(0.0))
}

/// exp(mean over images of KL(p(y|x) || p(y))).
pub fn classifier_score(p: &Tensor) -> Result<f64> {
    let eps = 1e-12;
    let py = p.f_mean_dim(&[0i64][..], true, Kind::Double)?;
    let kl = p.f_mul(&p.f_add_scalar(eps)?.f_log()?.f_sub(&py.f_add_scalar(eps)?.f_log()?)?)?.f_sum_dim_intlist(
        &[1i64][..],
        false,
        Kind::Double,
    )?;
    Ok(kl.f_mean(Kind::Double)?.f_double_value(&[])?.exp())
}

/// Mean over the rows of `images` of the Euclidean pixel distance to the nearest image of `train`.
pub fn nearest_distance(images: &Tensor, train: &Dataset) -> Result<f64> {
    let t = to_float(train.images(), Device::Cpu)?.f_flatten(1, -1)?;
    let x = to_float(images, Device::Cpu)?.f_flatten(1, -1)?;
    if x.size()[1] != t.size()[1] {
        return Err(Error::invalid("images and training images differ in size"));
    }
    let _g = tch::no_grad_guard();
    let nearest = chunked(&x, |c| Ok(Tensor::f_cdist(c, &t, 2.0, None)?.f_amin(&[1i64][..], false)?))?;
    Ok(nearest.f_mean(Kind::Double)?.f_double_value(&[])?)
}
