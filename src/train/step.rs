//! What one training step reports, and why a step failed.
//!
//! A step leaves its report on the device as one small tensor (so that the eager step and the
//! captured one give the same output, and the host reads it in one transfer): [`StepSummary`]
//! packs it there and reads it back by field, never by position at the call sites.

use crate::error::{Error, ErrorKind, Result};
use tch::{Device, Kind, Tensor};

/// One step's report, read from the device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct StepSummary {
    pub(crate) d_loss: f64,
    pub(crate) g_loss: f64,
    /// Mean D(x) on the real minibatch.
    pub(crate) d_real: f64,
    /// Mean D(G(z)) on the discriminator step's generated minibatch.
    pub(crate) d_fake: f64,
    /// Mean sign of D's logits on the (augmented) real minibatch: adaptive augmentation's
    /// measure of how sure D is of the real images (crate::train::augment).
    pub(crate) real_sign: f64,
    /// Whether every weight and Adam moment of both networks is finite after the updates.
    pub(crate) weights_finite: bool,
    /// Data-parallel runs: whether any rank asked the group to stop after this step.
    pub(crate) stop_requested: bool,
}

/// The values a step packs, on the device: scalars (the report's means may already be averaged
/// over a group's ranks).
pub(crate) struct SummaryParts {
    pub(crate) d_loss: Tensor,
    pub(crate) g_loss: Tensor,
    pub(crate) d_real: Tensor,
    pub(crate) d_fake: Tensor,
    pub(crate) real_sign: Tensor,
    /// 1.0 where a weight or moment is not finite after the updates, else 0.0.
    pub(crate) non_finite_weights: Tensor,
    /// A group's stop flag (positive: some rank asked); `None` in one process.
    pub(crate) stop: Option<Tensor>,
}

impl StepSummary {
    /// The summary tensor of a step, on the device (float32, 6 or 7 values).
    pub(crate) fn pack(p: SummaryParts) -> Result<Tensor> {
        tch::no_grad(|| -> Result<Tensor> {
            let mut values = Vec::with_capacity(7);
            for t in [&p.d_loss, &p.g_loss, &p.d_real, &p.d_fake, &p.real_sign, &p.non_finite_weights]
                .into_iter()
                .chain(&p.stop)
            {
                values.push(t.f_to_kind(Kind::Float)?);
            }
            Ok(Tensor::f_stack(&values, 0)?)
        })
    }

    /// Reads a packed summary (one transfer to the host).
    pub(crate) fn read(packed: &Tensor) -> Result<StepSummary> {
        let v = Vec::<f64>::try_from(&packed.f_to_kind(Kind::Double)?.f_to_device(Device::Cpu)?)?;
        if !(6..=7).contains(&v.len()) {
            return Err(Error::internal(format!("a step summary of {} values", v.len())));
        }
        Ok(StepSummary {
            d_loss: v[0],
            g_loss: v[1],
            d_real: v[2],
            d_fake: v[3],
            real_sign: v[4],
            weights_finite: v[5] == 0.0,
            stop_requested: v.get(6).is_some_and(|&s| s > 0.0),
        })
    }

    /// Why the step's result cannot be kept, if it cannot.
    pub(crate) fn divergence(&self) -> Option<Divergence> {
        if !self.d_loss.is_finite() {
            Some(Divergence::Loss { network: "discriminator", value: self.d_loss })
        } else if !self.g_loss.is_finite() {
            Some(Divergence::Loss { network: "generator", value: self.g_loss })
        } else if !self.weights_finite {
            Some(Divergence::Weights)
        } else {
            None
        }
    }
}

/// Whether the discriminator wins outright: its loss, averaged over the last
/// [`DominanceWindow::STEPS`] steps of a run, below [`DominanceWindow::LOSS`]. Judged over a
/// window of steps and not over one report (a run reporting every step would otherwise judge
/// single steps: early in a default run D's loss stays below the line for up to 20 steps and
/// training recovers by itself).
#[derive(Debug, Default)]
pub(crate) struct DominanceWindow {
    losses: std::collections::VecDeque<f64>,
    sum: f64,
}

impl DominanceWindow {
    /// Steps the mean is taken over.
    pub(crate) const STEPS: usize = 50;
    /// Mean D loss below which the discriminator is said to win outright.
    pub(crate) const LOSS: f64 = 0.05;

    /// Adds a step's D loss.
    pub(crate) fn push(&mut self, d_loss: f64) {
        self.losses.push_back(d_loss);
        self.sum += d_loss;
        if self.losses.len() > Self::STEPS {
            self.sum -= self.losses.pop_front().unwrap_or(0.0);
        }
    }

    /// The mean D loss over the window once it is full, else `None`.
    pub(crate) fn mean(&self) -> Option<f64> {
        (self.losses.len() == Self::STEPS).then(|| self.sum / Self::STEPS as f64)
    }

    /// Whether the discriminator wins outright (never before the window is full).
    pub(crate) fn dominates(&self) -> bool {
        self.mean().is_some_and(|m| m < Self::LOSS)
    }
}

/// A step whose result is not finite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Divergence {
    /// A loss is NaN or infinite.
    Loss { network: &'static str, value: f64 },
    /// The losses and gradients were finite, but an update overflowed float32.
    Weights,
}

/// Why a step failed: it diverged, or libtorch (or a process group) reported an error.
#[derive(Debug, Clone)]
pub(crate) enum StepFailure {
    Diverged(Divergence),
    Error(Error),
}

impl StepFailure {
    /// The error a failed step `step` ends its run with, once the step was put back.
    /// `generator_finite`: whether the generator's weights are finite after that (an update
    /// of G that overflowed float32 from finite gradients cannot be taken back: G is not
    /// copied each step; reachable only with learning rates near float32's range).
    pub(crate) fn into_error(self, step: u64, generator_finite: bool) -> Error {
        let cause = match self {
            StepFailure::Error(e) if generator_finite => return e,
            StepFailure::Error(e) => e.message,
            StepFailure::Diverged(Divergence::Loss { network, value }) => {
                format!("training diverged at step {step}: the {network} loss is {value}")
            }
            StepFailure::Diverged(Divergence::Weights) => {
                format!("training diverged at step {step}: a weight or Adam moment is not finite after the update")
            }
        };
        let message = if generator_finite {
            format!("{cause}; the model keeps the weights of step {step}")
        } else {
            format!(
                "{cause}; but the generator's update overflowed float32 (a learning rate too large?) and its \
                 weights are no longer finite: load the last checkpoint"
            )
        };
        Error::new(ErrorKind::Diverged, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(values: &[f32]) -> StepSummary {
        StepSummary::read(&Tensor::from_slice(values)).unwrap()
    }

    #[test]
    fn a_summary_round_trips_by_field() {
        let scalar = |v: f32| Tensor::from(v);
        let packed = StepSummary::pack(SummaryParts {
            d_loss: scalar(1.25),
            g_loss: scalar(0.5),
            d_real: scalar(0.75),
            d_fake: scalar(0.25),
            real_sign: scalar(-0.5),
            non_finite_weights: scalar(0.0),
            stop: Some(scalar(0.5)),
        })
        .unwrap();
        let s = StepSummary::read(&packed).unwrap();
        assert_eq!(
            s,
            StepSummary {
                d_loss: 1.25,
                g_loss: 0.5,
                d_real: 0.75,
                d_fake: 0.25,
                real_sign: -0.5,
                weights_finite: true,
                stop_requested: true
            }
        );
        assert_eq!(s.divergence(), None);
        assert!(!summary(&[1.0, 1.0, 0.5, 0.5, 0.2, 0.0]).stop_requested);
        assert!(StepSummary::read(&Tensor::from_slice(&[1.0f32, 2.0])).is_err());
    }

    #[test]
    fn dominance_is_judged_over_a_full_window() {
        let mut w = DominanceWindow::default();
        for _ in 0..DominanceWindow::STEPS - 1 {
            w.push(0.01);
        }
        assert!(!w.dominates() && w.mean().is_none(), "a window not yet full never judges");
        w.push(0.01);
        assert!(w.dominates());
        // A few high losses raise the mean above the line: 10 steps at 0.5 and 40 at 0.01.
        for _ in 0..10 {
            w.push(0.5);
        }
        assert!((w.mean().unwrap() - (10.0 * 0.5 + 40.0 * 0.01) / 50.0).abs() < 1e-12);
        assert!(!w.dominates());
    }

    #[test]
    fn failures_are_decided_by_kind() {
        match summary(&[f32::NAN, 1.0, 0.5, 0.5, 0.2, 0.0]).divergence() {
            Some(Divergence::Loss { network: "discriminator", value }) => assert!(value.is_nan()),
            other => panic!("{other:?}"),
        }
        let g = summary(&[1.0, f32::INFINITY, 0.5, 0.5, 0.2, 0.0]).divergence().unwrap();
        assert_eq!(g, Divergence::Loss { network: "generator", value: f64::INFINITY });
        assert_eq!(summary(&[1.0, 1.0, 0.5, 0.5, 0.2, 1.0]).divergence(), Some(Divergence::Weights));

        let kept = StepFailure::Diverged(g).into_error(7, true);
        assert_eq!(kept.kind, ErrorKind::Diverged);
        assert_eq!(
            kept.message,
            "training diverged at step 7: the generator loss is inf; the model keeps the weights of step 7"
        );
        let lost = StepFailure::Diverged(Divergence::Weights).into_error(7, false);
        assert!(lost.message.starts_with("training diverged at step 7: a weight or Adam moment is not finite"));
        assert!(lost.message.ends_with("load the last checkpoint") && !lost.message.contains("keeps"));
        // A libtorch error stays itself while G is finite, and says G is lost when it is not.
        let e = Error::new(ErrorKind::Internal, "CUDA error: out of range");
        assert_eq!(StepFailure::Error(e.clone()).into_error(3, true).kind, ErrorKind::Internal);
        let lost = StepFailure::Error(e).into_error(3, false);
        assert_eq!(lost.kind, ErrorKind::Diverged);
        assert!(lost.message.starts_with("CUDA error: out of range; but the generator's update overflowed"));
    }
}
