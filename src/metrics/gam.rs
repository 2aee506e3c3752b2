//! GAM, the Generative Adversarial Metric of Im et al. (2016): two trained models judge each
//! other. Each discriminator calls an input real when D(x) > 0.5; with eps the error rate,
//!
//!   r_test   = eps(D_a(x_test)) / eps(D_b(x_test))    (held-out data: the target is "real")
//!   r_sample = eps(D_a(G_b(z))) / eps(D_b(G_a(z)))    (each judges the other's samples: "fake")
//!
//! If r_test is within `tolerance` of 1 the discriminators are equally good on real data and the
//! comparison is fair: r_sample < 1 means A wins (G_a fooled D_b more than G_b fooled D_a),
//! r_sample > 1 means B wins, r_sample = 1 is a tie. Otherwise the result is undecided.
//!
//! Zero denominators: 0/0 is 1 (both make no errors: equal), x/0 for x > 0 is +infinity.
//!
//! The authors' code (`battle.py`) reports the same comparison as ratios of accuracies
//! (1 - error): [`AccuracyForm`]. There A ranks first when D_A catches B's samples more often
//! than D_B catches A's (accuracy r_sample > 1); it ranks even where the verdict cannot decide.
//!
//! Scoring. A discriminator is trained on minibatches of one kind (all real, or all generated),
//! each normalised by its own batch statistics; its running statistics are a blend of the two
//! kinds that it never saw as such. Scored image by image with running statistics, trained
//! discriminators call many held-out real images fake (docs/RESULTS.md), so r_test is rarely
//! near 1 and GAM rarely decides. By default GAM therefore scores as the paper's `battle.py` did
//! and as D was trained: each set (held-out images, the other model's samples) on its own, in
//! chunks of `score_batch` images normalised by their own statistics. `score_batch = 0` scores
//! image by image with running statistics instead. The samples themselves are drawn as users
//! get them (running statistics), whatever the scoring.

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::infer::sample::{Scoring, CHUNK};
use crate::limits::{MAX_METRIC_SAMPLES, MAX_SCORE_BATCH};
use crate::model::Model;
use gran_common::classes::Classes;
use tch::Tensor;

#[derive(Debug, Clone, PartialEq)]
pub struct GamConfig {
    /// Samples drawn from each generator (the paper's battle.py used 1000).
    pub samples: u32,
    /// Seed of both generators' latents.
    pub seed: u64,
    /// Largest |r_test - 1| for which the comparison is decided.
    pub tolerance: f64,
    /// Images per scoring chunk, normalised by their own batch statistics; 0: each image alone
    /// with running statistics (see the module documentation).
    pub score_batch: u32,
}

/// The default scoring chunk: the paper's training minibatch.
pub const DEFAULT_SCORE_BATCH: u32 = 100;

/// The default tolerance on r_test. The paper fixes none; with 1000 held-out images and error
/// rates of a few percent, the sampling noise of r_test alone is of the order of 10-20%.
pub const DEFAULT_TOLERANCE: f64 = 0.2;

impl Default for GamConfig {
    fn default() -> Self {
        GamConfig { samples: 1000, seed: 0, tolerance: DEFAULT_TOLERANCE, score_batch: DEFAULT_SCORE_BATCH }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Tie,
    AWins,
    BWins,
    Undecided,
}

/// Which model the accuracy form ranks first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranking {
    AFirst,
    BFirst,
    Even,
}

/// The comparison as the authors' `battle.py` reports it: ratios of accuracies (1 - error).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccuracyForm {
    /// (1 - test_error_a) / (1 - test_error_b).
    pub r_test: f64,
    /// (1 - sample_error_a) / (1 - sample_error_b): above 1, D_A catches B's samples more often
    /// than D_B catches A's.
    pub r_sample: f64,
    pub ranking: Ranking,
}

impl AccuracyForm {
    /// The accuracy form of the four error rates.
    pub(crate) fn new(test_error_a: f64, test_error_b: f64, sample_error_a: f64, sample_error_b: f64) -> Self {
        let r_test = ratio(1.0 - test_error_a, 1.0 - test_error_b);
        let r_sample = ratio(1.0 - sample_error_a, 1.0 - sample_error_b);
        let ranking = if r_sample > 1.0 {
            Ranking::AFirst
        } else if r_sample < 1.0 {
            Ranking::BFirst
        } else {
            Ranking::Even
        };
        AccuracyForm { r_test, r_sample, ranking }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GamResult {
    /// Share of held-out images D_a (D_b) calls fake.
    pub test_error_a: f64,
    pub test_error_b: f64,
    /// Share of B's samples D_a calls real, and of A's samples D_b calls real.
    pub sample_error_a: f64,
    pub sample_error_b: f64,
    pub r_test: f64,
    pub r_sample: f64,
    pub test_count: usize,
    pub sample_count: usize,
    pub verdict: Verdict,
    /// The same comparison in the authors' accuracy form.
    pub accuracy: AccuracyForm,
}

/// x / y with the documented rule for y = 0.
fn ratio(x: f64, y: f64) -> f64 {
    if y == 0.0 {
        if x == 0.0 {
            1.0
        } else {
            f64::INFINITY
        }
    } else {
        x / y
    }
}

/// The ratios and the verdict from the four error rates.
fn decide(
    test_error_a: f64,
    test_error_b: f64,
    sample_error_a: f64,
    sample_error_b: f64,
    tolerance: f64,
) -> (f64, f64, Verdict) {
    let r_test = ratio(test_error_a, test_error_b);
    let r_sample = ratio(sample_error_a, sample_error_b);
    // A NaN ratio is not within the tolerance either.
    let test_ratio_holds = (r_test - 1.0).abs() <= tolerance;
    let verdict = if !test_ratio_holds {
        Verdict::Undecided
    } else if r_sample < 1.0 {
        Verdict::AWins
    } else if r_sample > 1.0 {
        Verdict::BWins
    } else {
        Verdict::Tie
    };
    (r_test, r_sample, verdict)
}

fn share(probabilities: &[f32], counts_as_error: impl Fn(f32) -> bool) -> f64 {
    probabilities.iter().filter(|&&p| counts_as_error(p)).count() as f64 / probabilities.len() as f64
}

/// The share of `n` samples of `drawer` (latents of `seed`) that `judge` calls real, scored as
/// `scoring` says. The samples are drawn and judged one scoring chunk at a time (the balanced
/// chunks of [`Model::discriminate_with`], or [`CHUNK`] images with running statistics), so
/// memory does not grow with `n`.
fn judged_real(judge: &Model, drawer: &Model, seed: u64, n: usize, scoring: Scoring) -> Result<f64> {
    let most = match scoring {
        Scoring::RunningStatistics => CHUNK,
        Scoring::BatchStatistics(b) => b,
    };
    let chunks = n.div_ceil(most);
    let (mut start, mut real) = (0, 0usize);
    for k in 0..chunks {
        let len = n / chunks + usize::from(k < n % chunks);
        let mut parts = Vec::new();
        let mut latents = |first: usize, z: &mut [f32]| {
            drawer.latents_into(seed, (start + first) as u64, z);
            Ok(())
        };
        let mut labels = Vec::new();
        drawer.generate_chunked(len, false, Classes::Drawn, Some(seed), &mut latents, &mut |_, s| {
            parts.push(s.images.shallow_clone());
            labels.extend(s.labels.as_ref().map(Tensor::shallow_clone));
            Ok(())
        })?;
        // A conditional judge knows the class of a conditional drawer's sample when their
        // classes are the same set; otherwise it judges each sample as of its most real class.
        let same_classes = judge.config().classes > 0 && judge.config().classes == drawer.config().classes;
        let labels = if same_classes { Some(Tensor::f_cat(&labels, 0)?) } else { None };
        let p = judge.discriminate_labelled(&Tensor::f_cat(&parts, 0)?, labels.as_ref(), scoring)?;
        real += p.iter().filter(|&&p| p > 0.5).count();
        start += len;
    }
    Ok(real as f64 / n as f64)
}

/// Runs GAM between models `a` and `b` on the held-out set `test`.
pub fn gam(a: &Model, b: &Model, test: &Dataset, cfg: &GamConfig) -> Result<GamResult> {
    a.require_full("GAM (model A's discriminator)")?;
    b.require_full("GAM (model B's discriminator)")?;
    let (ca, cb) = (a.config(), b.config());
    if (ca.channels, ca.height, ca.width) != (cb.channels, cb.height, cb.width) {
        return Err(Error::invalid(format!(
            "the models make images of different sizes ({}x{}x{} and {}x{}x{})",
            ca.channels, ca.height, ca.width, cb.channels, cb.height, cb.width
        )));
    }
    if (test.channels(), test.height(), test.width()) != (ca.channels, ca.height, ca.width) {
        return Err(Error::invalid(format!(
            "test images are {}x{}x{} but the models make {}x{}x{}",
            test.channels(),
            test.height(),
            test.width(),
            ca.channels,
            ca.height,
            ca.width
        )));
    }
    if cfg.samples == 0 || cfg.samples > MAX_METRIC_SAMPLES {
        return Err(Error::invalid(format!(
            "samples is {}: GAM needs 1..={MAX_METRIC_SAMPLES} samples from each generator",
            cfg.samples
        )));
    }
    if cfg.score_batch > MAX_SCORE_BATCH {
        return Err(Error::invalid(format!(
            "score_batch is {}: at most {MAX_SCORE_BATCH} images are scored together (0: one at a time)",
            cfg.score_batch
        )));
    }
    if !(cfg.tolerance.is_finite() && cfg.tolerance >= 0.0) {
        return Err(Error::invalid(format!("tolerance is {}: must be finite and >= 0", cfg.tolerance)));
    }
    let n = cfg.samples as usize;
    let real = test.images()?;
    let is_fake = |p: f32| p <= 0.5;
    let scoring = match cfg.score_batch {
        0 => Scoring::RunningStatistics,
        b => Scoring::BatchStatistics(b as usize),
    };
    // A conditional discriminator judges a held-out image as a member of its class when the set
    // is labelled within its classes.
    let judged = |m: &Model| -> Result<Vec<f32>> {
        let labels = match test.labels() {
            Some(l) if m.config().conditional() && l.iter().all(|&k| u32::from(k) < m.config().classes) => {
                Some(Tensor::f_from_slice(l)?.f_to_kind(tch::Kind::Int64)?)
            }
            _ => None,
        };
        m.discriminate_labelled(real, labels.as_ref(), scoring)
    };
    let test_error_a = share(&judged(a)?, is_fake);
    let test_error_b = share(&judged(b)?, is_fake);
    let sample_error_a = judged_real(a, b, cfg.seed, n, scoring)?;
    let sample_error_b = judged_real(b, a, cfg.seed, n, scoring)?;
    let (r_test, r_sample, verdict) = decide(test_error_a, test_error_b, sample_error_a, sample_error_b, cfg.tolerance);
    Ok(GamResult {
        test_error_a,
        test_error_b,
        sample_error_a,
        sample_error_b,
        r_test,
        r_sample,
        test_count: test.count(),
        sample_count: n,
        verdict,
        accuracy: AccuracyForm::new(test_error_a, test_error_b, sample_error_a, sample_error_b),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_ratios_and_verdicts() {
        // r_test = 0.1 / 0.1 = 1; r_sample = 0.2 / 0.4 = 0.5: A fooled B's discriminator more.
        assert_eq!(decide(0.1, 0.1, 0.2, 0.4, 0.2), (1.0, 0.5, Verdict::AWins));
        assert_eq!(decide(0.1, 0.1, 0.4, 0.2, 0.2), (1.0, 2.0, Verdict::BWins));
        assert_eq!(decide(0.1, 0.1, 0.3, 0.3, 0.2), (1.0, 1.0, Verdict::Tie));
        // r_test = 0.3 / 0.1 = 3: unfair comparison, whatever r_sample says.
        let (rt, rs, v) = decide(0.3, 0.1, 0.2, 0.4, 0.2);
        assert!((rt - 3.0).abs() < 1e-12 && rs == 0.5 && v == Verdict::Undecided);
        // Tolerance boundary: |1.2 - 1| = 0.2 (up to rounding) against tolerances 0.25 and 0.1.
        assert_eq!(decide(0.12, 0.1, 0.2, 0.4, 0.25).2, Verdict::AWins);
        assert_eq!(decide(0.12, 0.1, 0.2, 0.4, 0.1).2, Verdict::Undecided);
    }

    #[test]
    fn zero_denominators_follow_the_documented_rule() {
        assert_eq!(ratio(0.0, 0.0), 1.0);
        assert_eq!(ratio(0.3, 0.0), f64::INFINITY);
        // Both discriminators perfect on real data: r_test = 1. B's samples never fool D_a
        // while A's fool D_b: r_sample = 0, A wins.
        assert_eq!(decide(0.0, 0.0, 0.0, 0.3, 0.2), (1.0, 0.0, Verdict::AWins));
        assert_eq!(decide(0.0, 0.0, 0.3, 0.0, 0.2), (1.0, f64::INFINITY, Verdict::BWins));
        assert_eq!(decide(0.0, 0.0, 0.0, 0.0, 0.2), (1.0, 1.0, Verdict::Tie));
        assert_eq!(decide(0.2, 0.0, 0.0, 0.3, 0.2).2, Verdict::Undecided);
    }

    #[test]
    fn the_accuracy_form_by_hand() {
        let a = AccuracyForm::new(0.1, 0.2, 0.5, 0.75);
        assert!((a.r_test - 0.9 / 0.8).abs() < 1e-12 && (a.r_sample - 2.0).abs() < 1e-12);
        assert_eq!(a.ranking, Ranking::AFirst);
        assert_eq!(AccuracyForm::new(0.1, 0.1, 0.75, 0.5).ranking, Ranking::BFirst);
        assert_eq!(AccuracyForm::new(0.1, 0.1, 0.3, 0.3).ranking, Ranking::Even);
        // Every sample fools the other's discriminator on both sides: 0/0 is 1, even.
        assert_eq!(
            AccuracyForm::new(0.0, 0.0, 1.0, 1.0),
            AccuracyForm { r_test: 1.0, r_sample: 1.0, ranking: Ranking::Even }
        );
        assert_eq!(AccuracyForm::new(0.0, 0.0, 0.5, 1.0).r_sample, f64::INFINITY);
    }

    #[test]
    fn swapping_the_models_swaps_the_verdict_and_inverts_the_ratios() {
        for (ta, tb, sa, sb) in [(0.1, 0.11, 0.2, 0.4), (0.05, 0.05, 0.3, 0.1), (0.0, 0.0, 0.0, 0.2)] {
            let (rt, rs, v) = decide(ta, tb, sa, sb, 0.2);
            let (rt2, rs2, v2) = decide(tb, ta, sb, sa, 0.2);
            assert!((rt * rt2 - 1.0).abs() < 1e-12 || (rt.is_infinite() && rt2 == 0.0));
            assert!((rs * rs2 - 1.0).abs() < 1e-12 || (rs == 0.0 && rs2.is_infinite()));
            let swapped = match v {
                Verdict::AWins => Verdict::BWins,
                Verdict::BWins => Verdict::AWins,
                other => other,
            };
            assert_eq!(v2, swapped);
        }
    }
}
