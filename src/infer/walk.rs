//! Latent walks: images along the great circle between two latents, for animations and for
//! looking at what the model has learned between two of its images.

use crate::error::{Error, Result};
use crate::limits;
use crate::model::Model;
use gran_common::classes::Classes;
use tch::Tensor;

/// The most frames one walk draws.
pub const MAX_WALK_FRAMES: usize = 4096;

/// Spherical interpolation between latents `a` and `b` at `t` in [0, 1] (Shoemake's slerp, as
/// GAN latent walks use: a Gaussian latent keeps its typical norm along the way, where the
/// straight line between two latents passes through less likely, shorter ones). Nearly
/// parallel latents interpolate linearly.
pub fn slerp(a: &[f32], b: &[f32], t: f64) -> Vec<f32> {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let cos = (dot / (norm(a) * norm(b)).max(f64::MIN_POSITIVE)).clamp(-1.0, 1.0);
    let omega = cos.acos();
    let (wa, wb) = if omega.sin().abs() < 1e-6 {
        (1.0 - t, t)
    } else {
        (((1.0 - t) * omega).sin() / omega.sin(), (t * omega).sin() / omega.sin())
    };
    a.iter().zip(b).map(|(x, y)| (wa * f64::from(*x) + wb * f64::from(*y)) as f32).collect()
}

impl Model {
    /// A latent walk: `frames` steps from image i of seed `from` to image i of seed `to`, for
    /// i in `0 .. count`, the latents interpolated by [`slerp`] at `t = k / (frames - 1)` (the
    /// first frame is `from`'s images, the last `to`'s, as `sample` draws them). Returns one
    /// tensor `[count, C, H, W]` per frame, on the CPU. A conditional model draws image i of
    /// every frame as the class `classes` gives it (`Classes::Drawn`: the class `sample` draws
    /// for image i of `from`), so only the latent moves.
    ///
    /// # Errors
    /// `InvalidArgument` for fewer than 2 or more than [`MAX_WALK_FRAMES`] frames, or a count
    /// or classes `sample` refuses; `OutOfMemory`; those of `generate`.
    pub fn walk(&self, from: u64, to: u64, count: usize, frames: usize, classes: Classes) -> Result<Vec<Tensor>> {
        if !(2..=MAX_WALK_FRAMES).contains(&frames) {
            return Err(Error::invalid(format!("{frames} frames: a walk has 2 to {MAX_WALK_FRAMES}")));
        }
        let n_classes = self.config().classes;
        classes.check(n_classes, count, true)?;
        let z_dim = self.config().z_dim as usize;
        let (a, b) = (self.latents(from, 0, count)?, self.latents(to, 0, count)?);
        let total = limits::mul(frames, count, "the walk's images")?;
        let mut z = limits::vec_with_capacity(limits::mul(total, z_dim, "the walk's latents")?, "the walk's latents")?;
        for k in 0..frames {
            let t = k as f64 / (frames - 1) as f64;
            for (za, zb) in a.chunks_exact(z_dim).zip(b.chunks_exact(z_dim)) {
                z.extend(slerp(za, zb, t));
            }
        }
        let images = if n_classes == 0 {
            self.generate(&z, total, false)?.images
        } else {
            let mut per_image = vec![0u32; count];
            classes.fill(n_classes, from, 0, &mut per_image);
            let each = per_image.repeat(frames);
            self.generate_classes(&z, total, Classes::Each(&each), false)?.images
        };
        (0..frames as i64).map(|k| Ok(images.f_narrow(0, k * count as i64, count as i64)?)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::slerp;

    #[test]
    fn slerp_ends_at_its_latents_and_keeps_orthogonal_norms() {
        let (a, b) = ([3.0f32, 0.0, 0.0], [0.0f32, 3.0, 0.0]);
        assert_eq!(slerp(&a, &b, 0.0), a.to_vec());
        let end = slerp(&a, &b, 1.0);
        assert!(end.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6), "{end:?}");
        // Halfway between two orthogonal latents of norm 3: norm 3 (a straight line: 2.12).
        let mid = slerp(&a, &b, 0.5);
        let norm = mid.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 3.0).abs() < 1e-5 && (mid[0] - mid[1]).abs() < 1e-6, "{mid:?}");
        // Parallel latents: the straight line.
        assert_eq!(slerp(&[1.0, 2.0], &[2.0, 4.0], 0.5), vec![1.5, 3.0]);
    }
}
