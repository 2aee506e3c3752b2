//! Differentiable augmentation of what the discriminator sees (DiffAugment, Zhao et al. 2020),
//! applied with a probability p that the run tunes itself (adaptive discriminator augmentation,
//! Karras et al. 2020).
//!
//! On a small dataset an unregularised discriminator memorises the real images and the
//! generator stops learning. Augmenting every image the discriminator sees, real and generated
//! alike and inside the step (so the generator's gradient flows through the augmentation),
//! keeps it from memorising without teaching the generator to draw augmented images.
//!
//! **The operations**, each applied to an image with probability p, independently:
//! - integer translation by up to 1/8 of the image size, zero-padded;
//! - cutout: a square of half the image size set to zero, centred anywhere in the image;
//! - for colour images, brightness (+U(-0.25, 0.25)), saturation (x U(0, 2) around the pixel's
//!   grey) and contrast (x U(0.5, 1.5) around the image's mean), each its own draw;
//! - horizontal flip (with probability p / 2), only when asked: not for digits.
//!
//! **Randomness.** Every parameter is drawn on the host from (train seed, step, pass, image):
//! the three passes of a step (D's real and generated minibatches, G's generated one) draw
//! their own. A process of a group draws the global minibatch's parameters and takes its
//! share, so the augmentation does not depend on the number of processes, and a resumed run
//! draws exactly what an uninterrupted one would. The parameters go to the device as one
//! float tensor [batch, PARAMS] per pass; the operations read them there (what a captured CUDA
//! graph needs: static inputs refilled before each replay).
//!
//! **Adaptive p.** [`Adaptive`] follows ADA: every [`ADJUST_EVERY`] steps, r = the mean sign of
//! D's logits on the (augmented) real images over those steps; p moves up when r is above the
//! target (D is sure of the real images: it is memorising them) and down when below, by
//! `batch * ADJUST_EVERY / speed` (`speed`: the images over which p may move from 0 to 1),
//! within [floor, 1].
//!
//! **The floor.** ADA's signal only says whether D is memorising the real images. With the R1
//! penalty holding D level (from 32x32, `r1_gamma_for`), it never does, p falls to 0, and on a
//! small colour set the generator then drifts into saturated, checkered samples of one or two
//! photographs in two runs of three; the same runs at p held at 0.3 draw four to six of them
//! (docs/RESULTS.md, section 16). Augmentation also shapes what D learns, not only how much it
//! memorises, so adaptive p starts at and never goes below [`DEFAULT_AUGMENT_FLOOR`] by default,
//! and rises above it when D memorises regardless.

use crate::error::{Error, Result};
use crate::rng::{stream, Stream};
use tch::{Kind, Tensor};

/// How a run augments the discriminator's inputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Augment {
    /// Never.
    Off,
    /// With this probability p, in [0, 1], throughout.
    Fixed(f64),
    /// With a probability the run tunes (starting where the model's last run left it, and
    /// never below `floor`), so that the mean sign of D's logits on real images stays near
    /// `target`.
    Adaptive { target: f64, floor: f64 },
}

impl Augment {
    /// The default: adaptive p at ADA's target, never below [`DEFAULT_AUGMENT_FLOOR`].
    pub const DEFAULT: Augment = Augment::Adaptive { target: DEFAULT_AUGMENT_TARGET, floor: DEFAULT_AUGMENT_FLOOR };
}

/// ADA's target for the mean sign of D's real logits.
pub const DEFAULT_AUGMENT_TARGET: f64 = 0.6;

/// The lowest p adaptive augmentation goes to by default (the module's "The floor").
pub const DEFAULT_AUGMENT_FLOOR: f64 = 0.3;

/// Default images over which adaptive p may move from 0 to 1 (ADA's `ada_kimg`, scaled to runs
/// of thousands of steps rather than millions of images).
pub const DEFAULT_AUGMENT_SPEED: f64 = 20_000.0;

/// Steps between two adjustments of adaptive p.
pub const ADJUST_EVERY: u32 = 4;

/// Largest translation, as a fraction of the image size (DiffAugment's).
const TRANSLATION_RATIO: f64 = 0.125;
/// Cutout's side, as a fraction of the image size (DiffAugment's).
const CUTOUT_RATIO: f64 = 0.5;

/// The parameters of one image, in their columns of the parameter tensor.
const TX: usize = 0;
const TY: usize = 1;
const CUT_ON: usize = 2;
const CUT_X: usize = 3;
const CUT_Y: usize = 4;
const BRIGHTNESS: usize = 5;
const SATURATION: usize = 6;
const CONTRAST: usize = 7;
const FLIP: usize = 8;
/// Columns of the parameter tensor.
pub(crate) const PARAMS: usize = 9;

/// The three passes of a step that see augmented images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    DiscriminatorReal = 0,
    DiscriminatorFake = 1,
    GeneratorFake = 2,
}

/// Which operations are in use (for a batch: which of them change some image of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Ops {
    pub(crate) translation: bool,
    pub(crate) cutout: bool,
    pub(crate) colour: bool,
    pub(crate) flip: bool,
}

impl Ops {
    fn any(self) -> bool {
        self.translation || self.cutout || self.colour || self.flip
    }
}

/// A pass's augmentation: the parameters on the device, and which operations to run.
pub(crate) struct Params {
    pub(crate) values: Tensor,
    pub(crate) ops: Ops,
}

impl Params {
    pub(crate) fn shallow_clone(&self) -> Params {
        Params { values: self.values.shallow_clone(), ops: self.ops }
    }
}

/// The augmentation of one run: its image size, the operations it may use, its random stream.
#[derive(Debug, Clone)]
pub(crate) struct Augmenter {
    size: i64,
    shift: i64,
    cutout: i64,
    ops: Ops,
    stream: Stream,
}

impl Augmenter {
    /// For square images of side `size` with `channels` channels (colour operations for 3),
    /// flips when `flip`, drawing from the run's `seed`.
    pub(crate) fn new(size: u32, channels: u32, flip: bool, seed: u64) -> Augmenter {
        let size = i64::from(size);
        Augmenter {
            size,
            shift: (size as f64 * TRANSLATION_RATIO).round() as i64,
            cutout: (size as f64 * CUTOUT_RATIO).round() as i64,
            ops: Ops { translation: true, cutout: true, colour: channels == 3, flip },
            stream: Stream::new(seed, stream::AUGMENT),
        }
    }

    /// The operations this run may use.
    pub(crate) fn ops(&self) -> Ops {
        self.ops
    }

    /// The parameters of images `first .. first + count` of the global minibatch of `step`
    /// for `pass`, each operation on with probability `p`, as a float tensor [count, PARAMS]
    /// on the host, and the operations that change some image of them.
    pub(crate) fn draw(&self, step: u64, pass: Pass, p: f64, first: usize, count: usize) -> Result<Params> {
        let s = self.stream.sub(step).sub(pass as u64);
        let mut v = vec![0f32; count * PARAMS];
        let mut used = Ops::default();
        let side = self.size as u64;
        for (row, j) in v.chunks_exact_mut(PARAMS).zip(first as u64..) {
            // 16 counters per image: one per draw below, the rest unused.
            let c = j * 16;
            let on = |k: u64| s.uniform(c + k) < p;
            let centred = |k: u64, half: i64| s.below(c + k, (2 * half + 1) as u64) as i64 - half;
            if self.ops.translation && self.shift > 0 && on(0) {
                (row[TX], row[TY]) = (centred(1, self.shift) as f32, centred(2, self.shift) as f32);
                used.translation |= row[TX] != 0.0 || row[TY] != 0.0;
            }
            if self.ops.cutout && on(3) {
                (row[CUT_ON], row[CUT_X], row[CUT_Y]) = (1.0, s.below(c + 4, side) as f32, s.below(c + 5, side) as f32);
                used.cutout = true;
            }
            (row[SATURATION], row[CONTRAST]) = (1.0, 1.0);
            if self.ops.colour {
                if on(6) {
                    row[BRIGHTNESS] = (s.uniform(c + 7) * 0.5 - 0.25) as f32;
                    used.colour = true;
                }
                if on(8) {
                    row[SATURATION] = (s.uniform(c + 9) * 2.0) as f32;
                    used.colour = true;
                }
                if on(10) {
                    row[CONTRAST] = (s.uniform(c + 11) + 0.5) as f32;
                    used.colour = true;
                }
            }
            if self.ops.flip && on(12) && s.uniform(c + 13) < 0.5 {
                row[FLIP] = 1.0;
                used.flip = true;
            }
        }
        Ok(Params { values: Tensor::f_from_slice(&v)?.f_view([count as i64, PARAMS as i64])?, ops: used })
    }

    /// `x` [N, C, H, W] in [0, 1], augmented by `params` ([N, PARAMS] on x's device), running
    /// the operations of `ops` only. Differentiable with respect to `x`.
    pub(crate) fn apply(&self, x: &Tensor, params: &Tensor, ops: Ops) -> Result<Tensor> {
        if !ops.any() {
            return Ok(x.shallow_clone());
        }
        let (n, c, h, w) = x.size4()?;
        let col = |k: usize| -> Result<Tensor> { Ok(params.f_select(1, k as i64)?) };
        let per_image = |k: usize| -> Result<Tensor> { Ok(col(k)?.f_view([n, 1, 1, 1])?.f_to_kind(x.kind())?) };
        let mut x = x.shallow_clone();
        if ops.colour {
            x = x.f_add(&per_image(BRIGHTNESS)?)?;
            let grey = x.f_mean_dim(1, true, x.kind())?;
            x = x.f_sub(&grey)?.f_mul(&per_image(SATURATION)?)?.f_add(&grey)?;
            let mean = x.f_mean_dim(&[1i64, 2, 3][..], true, x.kind())?;
            x = x.f_sub(&mean)?.f_mul(&per_image(CONTRAST)?)?.f_add(&mean)?;
        }
        if ops.flip {
            x = x.f_lerp_tensor(&x.f_flip([3])?, &per_image(FLIP)?)?;
        }
        let device = x.device();
        let positions = |len: i64| Tensor::f_arange(len, (Kind::Int64, device));
        if ops.translation && self.shift > 0 {
            // Zero-pad by the largest shift, then gather the shifted rows and columns.
            let s = self.shift;
            let padded = x.f_constant_pad_nd([s, s, s, s])?;
            let shift = |k: usize| -> Result<Tensor> { Ok(col(k)?.f_to_kind(Kind::Int64)?.f_view([n, 1])?) };
            let rows = positions(h)?.f_view([1, h])?.f_add_scalar(s)?.f_sub(&shift(TY)?)?;
            let cols = positions(w)?.f_view([1, w])?.f_add_scalar(s)?.f_sub(&shift(TX)?)?;
            let rows = rows.f_view([n, 1, h, 1])?.f_expand([n, c, h, w + 2 * s], false)?;
            let cols = cols.f_view([n, 1, 1, w])?.f_expand([n, c, h, w], false)?;
            x = padded.f_gather(2, &rows, false)?.f_gather(3, &cols, false)?;
        }
        if ops.cutout {
            // Zero where |y - cy| < side / 2 and |x - cx| < side / 2, on the images that have it.
            let half = self.cutout as f64 / 2.0;
            let inside = |len: i64, k: usize, shape: [i64; 3]| -> Result<Tensor> {
                let at = positions(len)?.f_to_kind(Kind::Float)?.f_view(shape)?;
                let centre = col(k)?.f_view([n, 1, 1])?;
                Ok(at.f_sub(&centre)?.f_abs()?.f_lt(half)?)
            };
            let cut = inside(h, CUT_Y, [1, h, 1])?
                .f_logical_and(&inside(w, CUT_X, [1, 1, w])?)?
                .f_logical_and(&col(CUT_ON)?.f_view([n, 1, 1])?.f_gt(0.5)?)?;
            let keep = cut.f_logical_not()?.f_to_kind(x.kind())?.f_unsqueeze(1)?;
            x = x.f_mul(&keep)?;
        }
        Ok(x)
    }
}

/// Adaptive p between steps: its value and the signs gathered since its last adjustment. Kept
/// with the model (and in its checkpoints), so that a resumed run continues it exactly.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Adaptive {
    /// The probability the next step augments with.
    pub p: f64,
    /// Sum of the per-step mean signs of D's real logits since the last adjustment.
    pub sign_sum: f64,
    /// Steps since the last adjustment.
    pub steps: u32,
}

impl Adaptive {
    /// After a step whose mean sign of D's real logits was `sign`: every [`ADJUST_EVERY`]
    /// steps, p moves towards holding the mean sign at `target`, within [`floor`, 1].
    pub(crate) fn observe(&mut self, sign: f64, target: f64, floor: f64, batch: usize, speed: f64) {
        self.sign_sum += sign;
        self.steps += 1;
        if self.steps >= ADJUST_EVERY {
            let r = self.sign_sum / f64::from(self.steps);
            let delta = (batch as f64 * f64::from(self.steps)) / speed;
            let direction = if r > target {
                1.0
            } else if r < target {
                -1.0
            } else {
                0.0
            };
            self.p = (self.p + direction * delta).clamp(floor, 1.0);
            (self.sign_sum, self.steps) = (0.0, 0);
        }
    }

    /// Checks a state read from a file or given by a caller.
    pub(crate) fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.p)
            || !self.sign_sum.is_finite()
            || self.steps >= ADJUST_EVERY
            || self.sign_sum.abs() > f64::from(self.steps)
        {
            return Err(Error::invalid(format!("augmentation state {self:?} is out of range")));
        }
        Ok(())
    }
}

/// Checks a run's augmentation settings.
pub(crate) fn validate(augment: Augment, speed: f64) -> Result<()> {
    match augment {
        Augment::Off => Ok(()),
        Augment::Fixed(p) if !(0.0..=1.0).contains(&p) => {
            Err(Error::invalid(format!("augmentation probability is {p}: must be in [0, 1]")))
        }
        Augment::Fixed(_) => Ok(()),
        Augment::Adaptive { target, .. } if !(target > 0.0 && target < 1.0) => {
            Err(Error::invalid(format!("augmentation target is {target}: must be in (0, 1)")))
        }
        Augment::Adaptive { floor, .. } if !(0.0..=1.0).contains(&floor) => {
            Err(Error::invalid(format!("augmentation floor is {floor}: must be in [0, 1]")))
        }
        Augment::Adaptive { .. } if !(speed.is_finite() && speed >= 1.0) => {
            Err(Error::invalid(format!("augmentation speed is {speed} images: must be at least 1")))
        }
        Augment::Adaptive { .. } => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn ramp(n: i64, c: i64, size: i64) -> Tensor {
        Tensor::arange(n * c * size * size, (Kind::Float, Device::Cpu)).view([n, c, size, size])
            / (n * c * size * size) as f64
    }

    #[test]
    fn p_zero_is_the_identity_and_p_one_changes_every_image() {
        let a = Augmenter::new(8, 3, true, 1);
        let x = ramp(16, 3, 8);
        let none = a.draw(0, Pass::DiscriminatorReal, 0.0, 0, 16).unwrap();
        assert_eq!(none.ops, Ops::default());
        assert!(a.apply(&x, &none.values, none.ops).unwrap().equal(&x));
        let all = a.draw(0, Pass::DiscriminatorReal, 1.0, 0, 16).unwrap();
        assert!(all.ops.cutout && all.ops.colour && all.ops.translation);
        let y = a.apply(&x, &all.values, all.ops).unwrap();
        assert_eq!(y.size(), x.size());
        let changed = (&y - &x).abs().sum_dim_intlist(&[1i64, 2, 3][..], false, Kind::Float).gt(1e-6);
        assert!(bool::try_from(changed.all()).unwrap(), "every image changes at p = 1");
    }

    #[test]
    fn translation_moves_pixels_and_pads_with_zeros() {
        let a = Augmenter::new(8, 1, false, 1);
        let x = ramp(1, 1, 8) + 0.5;
        let mut v = vec![0f32; PARAMS];
        (v[TX], v[TY], v[SATURATION], v[CONTRAST]) = (1.0, -1.0, 1.0, 1.0);
        let p = Tensor::from_slice(&v).view([1, PARAMS as i64]);
        let y = a.apply(&x, &p, Ops { translation: true, ..Default::default() }).unwrap();
        // Moved right by 1 and up by 1: y[r][c] = x[r + 1][c - 1], zero where that is outside.
        for r in 0..8i64 {
            for c in 0..8i64 {
                let got = y.double_value(&[0, 0, r, c]);
                let want = if r + 1 < 8 && c >= 1 { x.double_value(&[0, 0, r + 1, c - 1]) } else { 0.0 };
                assert_eq!(got, want, "({r}, {c})");
            }
        }
    }

    #[test]
    fn cutout_zeroes_a_square_of_half_the_side() {
        let a = Augmenter::new(8, 1, false, 1);
        let x = Tensor::ones([1, 1, 8, 8], (Kind::Float, Device::Cpu));
        let mut v = vec![0f32; PARAMS];
        (v[CUT_ON], v[CUT_X], v[CUT_Y], v[SATURATION], v[CONTRAST]) = (1.0, 4.0, 0.0, 1.0, 1.0);
        let p = Tensor::from_slice(&v).view([1, PARAMS as i64]);
        let y = a.apply(&x, &p, Ops { cutout: true, ..Default::default() }).unwrap();
        // Side 4: |x - 4| < 2 (columns 3..=5) and |y - 0| < 2 (rows 0..=1).
        assert_eq!(y.sum(Kind::Float).double_value(&[]), 64.0 - 6.0);
        assert_eq!(y.double_value(&[0, 0, 1, 5]), 0.0);
        assert_eq!(y.double_value(&[0, 0, 2, 5]), 1.0);
    }

    #[test]
    fn the_augmentation_is_differentiable_and_keeps_the_shape() {
        let a = Augmenter::new(8, 3, true, 2);
        let x = ramp(4, 3, 8).set_requires_grad(true);
        let p = a.draw(5, Pass::GeneratorFake, 1.0, 0, 4).unwrap();
        let y = a.apply(&x, &p.values, p.ops).unwrap();
        assert_eq!(y.size(), vec![4, 3, 8, 8]);
        let g = Tensor::run_backward(&[y.square().sum(Kind::Float)], &[&x], false, false).remove(0);
        assert_eq!(g.size(), x.size());
        assert!(bool::try_from(g.isfinite().all()).unwrap());
        assert!(g.abs().sum(Kind::Float).double_value(&[]) > 0.0);
    }

    #[test]
    fn draws_depend_on_step_pass_and_image_only() {
        let a = Augmenter::new(32, 3, false, 9);
        let whole = a.draw(3, Pass::DiscriminatorFake, 0.7, 0, 8).unwrap().values;
        let share = a.draw(3, Pass::DiscriminatorFake, 0.7, 4, 4).unwrap().values;
        assert!(whole.narrow(0, 4, 4).equal(&share), "a process's share is its part of the global draw");
        assert!(!a.draw(4, Pass::DiscriminatorFake, 0.7, 0, 8).unwrap().values.equal(&whole));
        assert!(!a.draw(3, Pass::DiscriminatorReal, 0.7, 0, 8).unwrap().values.equal(&whole));
    }

    #[test]
    fn adaptive_p_rises_when_d_is_sure_and_falls_when_it_is_not() {
        let mut up = Adaptive::default();
        for _ in 0..40 {
            up.observe(0.95, 0.6, 0.0, 64, 6400.0);
        }
        // 10 adjustments of 64 * 4 / 6400 = 0.04 each.
        assert!((up.p - 0.4).abs() < 1e-9, "{}", up.p);
        let mut down = Adaptive { p: 0.5, ..Default::default() };
        for _ in 0..8 {
            down.observe(-0.2, 0.6, 0.0, 64, 6400.0);
        }
        assert!((down.p - 0.42).abs() < 1e-9, "{}", down.p);
        let mut floor = Adaptive::default();
        floor.observe(0.0, 0.6, 0.0, 64, 1.0);
        assert_eq!((floor.p, floor.steps), (0.0, 1));
        for _ in 0..3 {
            floor.observe(0.0, 0.6, 0.0, 64, 1.0);
        }
        assert_eq!((floor.p, floor.steps, floor.sign_sum), (0.0, 0, 0.0), "clamped at 0");
        let mut held = Adaptive { p: 0.35, ..Default::default() };
        for _ in 0..8 {
            held.observe(-0.2, 0.6, 0.3, 64, 6400.0);
        }
        assert_eq!(held.p, 0.3, "clamped at the floor");
        for _ in 0..4 {
            held.observe(0.95, 0.6, 0.3, 64, 6400.0);
        }
        assert!((held.p - 0.34).abs() < 1e-9, "rises from the floor: {}", held.p);
        assert!(Adaptive { p: 1.5, ..Default::default() }.validate().is_err());
        assert!(Adaptive { sign_sum: 2.0, steps: 1, p: 0.1 }.validate().is_err());
    }
}
