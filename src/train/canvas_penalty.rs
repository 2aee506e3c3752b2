//! The canvas penalty: a term of the generator's loss that keeps its summed canvas where the
//! sigmoid still passes gradient back.
//!
//! The generator's image is sigmoid(c), c the sum of its drawing steps' outputs. Where |c| is
//! large the pixel is 0 or 1 and the sigmoid passes back almost nothing (sigmoid'(c) < 1% of
//! its peak beyond |c| = 4.8): a generator whose canvas drifts there receives no gradient from
//! the discriminator for those pixels and does not come back. On small colour sets such runs end
//! with over half their channels at 0 or 255 and FDs in the tens of thousands (docs/RESULTS.md,
//! sections 21-22). The penalty, weight * mean(max(|c| - CANVAS_LIMIT, 0)^2) over every
//! channel of every image, is zero inside the limit, so it leaves a canvas that stays there
//! alone; beyond it, it pulls c back with a force that grows with the distance, whatever the
//! discriminator says.

use crate::error::Result;
use tch::{Kind, Tensor};

/// Where the penalty starts: sigmoid(5) = 0.9933, 253.3 / 255, so the penalty-free range
/// covers every 8-bit value but the two extremes.
pub const CANVAS_LIMIT: f64 = 5.0;

/// `weight` * mean(max(|sum| - CANVAS_LIMIT, 0)^2): a float32 scalar, recorded by autograd when
/// `sum` is.
pub(crate) fn canvas_penalty(sum: &Tensor, weight: f64) -> Result<Tensor> {
    let beyond = sum.f_abs()?.f_sub_scalar(CANVAS_LIMIT)?.f_relu()?;
    Ok(beyond.f_square()?.f_mean(Kind::Float)?.f_mul_scalar(weight)?)
}

/// The penalty's gradient with respect to `sum` (for the recomputed pass, whose sum autograd
/// did not record).
pub(crate) fn canvas_penalty_gradient(sum: &Tensor, weight: f64) -> Result<Tensor> {
    let leaf = sum.f_detach()?.f_set_requires_grad(true)?;
    let penalty = canvas_penalty(&leaf, weight)?;
    Ok(Tensor::f_run_backward(&[penalty], &[&leaf], false, false)?.remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_penalty_is_zero_inside_the_limit_and_quadratic_beyond() {
        let sum = Tensor::from_slice(&[0.0f32, 4.9, -5.0, 7.0, -8.0]).view([1, 1, 1, 5]);
        // (2^2 + 3^2) / 5 elements, times 0.5.
        let p = canvas_penalty(&sum, 0.5).unwrap().double_value(&[]);
        assert!((p - 0.5 * 13.0 / 5.0).abs() < 1e-6, "{p}");
        // d/dc: 0.5 * 2 * (|c| - 5) * sign(c) / 5.
        let g: Vec<f32> = Vec::try_from(canvas_penalty_gradient(&sum, 0.5).unwrap().flatten(0, -1)).unwrap();
        let want = [0.0f32, 0.0, 0.0, 0.4, -0.6];
        for (a, b) in g.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{g:?} against {want:?}");
        }
    }
}
