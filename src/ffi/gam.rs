//! Exported GAM (Generative Adversarial Metric) functions.

use super::boundary::{check_versioned_out, guard, read_versioned, write_versioned, Versioned};
use super::dataset::DATASETS;
use super::model::MODELS;
use super::status::GranStatus;
use super::types::{GranDataset, GranModel};
use crate::metrics::gam::{gam, GamConfig, Ranking, Verdict};

/// The outcome of a GAM comparison.
pub type GranGamVerdict = u32;
/// r_sample = 1: neither generator fooled the other's discriminator more.
pub const GRAN_GAM_TIE: GranGamVerdict = 0;
/// r_sample < 1: model A's generator fooled B's discriminator more than the reverse.
pub const GRAN_GAM_A_WINS: GranGamVerdict = 1;
/// r_sample > 1: model B wins.
pub const GRAN_GAM_B_WINS: GranGamVerdict = 2;
/// |r_test - 1| > tolerance: the discriminators differ on real data, the comparison is unfair.
pub const GRAN_GAM_UNDECIDED: GranGamVerdict = 3;

/// Which model the accuracy form of GAM (the authors' `battle.py`) ranks first.
pub type GranGamRanking = u32;
/// accuracy_r_sample = 1.
pub const GRAN_GAM_EVEN: GranGamRanking = 0;
/// accuracy_r_sample > 1: A's discriminator catches B's samples more often than the reverse.
pub const GRAN_GAM_A_FIRST: GranGamRanking = 1;
/// accuracy_r_sample < 1: B ranks first.
pub const GRAN_GAM_B_FIRST: GranGamRanking = 2;

/// GAM settings. Fill with `gran_gam_config_init`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct GranGamConfig {
    /// sizeof(GranGamConfig), set by `gran_gam_config_init`.
    pub struct_size: u32,
    /// Samples drawn from each generator, >= 1. Default 1000 (as the paper's battle.py).
    pub samples: u32,
    /// Seed of the generators' latents. Default 0.
    pub seed: u64,
    /// Largest |r_test - 1| for which a verdict is given. Default 0.2: the paper fixes none,
    /// and with 1000 held-out images and error rates of a few percent the sampling noise of
    /// r_test alone is of the order of 10-20%.
    pub tolerance: f64,
    /// How the discriminators score. > 0 (default 100): each set (the held-out images, the
    /// other model's samples) in chunks of at most this many images, batch norm normalised by
    /// each chunk's own statistics: the condition the discriminators were trained in, and how
    /// the paper scored GAM. 0: each image alone, with running statistics (the scores that
    /// gran_discriminate gives), which call many real images fake (docs/RESULTS.md).
    pub score_batch: u32,
}

unsafe impl Versioned for GranGamConfig {
    fn defaults() -> Self {
        let d = GamConfig::default();
        GranGamConfig {
            struct_size: std::mem::size_of::<Self>() as u32,
            samples: d.samples,
            seed: d.seed,
            tolerance: d.tolerance,
            score_batch: d.score_batch,
        }
    }
}

/// A GAM result: all four error rates, both ratios, the counts and the verdict, then the same
/// comparison in the accuracy form of the authors' `battle.py` (ratios of 1 - error, and a
/// ranking that is decided even where the verdict is not). Ratios with a zero denominator: 0/0
/// is 1, x/0 (x > 0) is +infinity. A caller compiled against an older, shorter struct gets its
/// prefix (`struct_size`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct GranGamResult {
    /// sizeof(GranGamResult): set it before the call, e.g. with `gran_gam_result_init`.
    pub struct_size: u32,
    /// GRAN_GAM_TIE, GRAN_GAM_A_WINS, GRAN_GAM_B_WINS or GRAN_GAM_UNDECIDED.
    pub verdict: GranGamVerdict,
    /// Share of the held-out images that A's (B's) discriminator calls fake (D(x) <= 0.5).
    pub test_error_a: f64,
    pub test_error_b: f64,
    /// Share of B's samples that A's discriminator calls real (D > 0.5), and of A's samples
    /// that B's discriminator calls real.
    pub sample_error_a: f64,
    pub sample_error_b: f64,
    /// test_error_a / test_error_b.
    pub r_test: f64,
    /// sample_error_a / sample_error_b.
    pub r_sample: f64,
    /// Held-out images used, and samples drawn from each generator.
    pub test_count: u64,
    pub sample_count: u64,
    /// (1 - test_error_a) / (1 - test_error_b).
    pub accuracy_r_test: f64,
    /// (1 - sample_error_a) / (1 - sample_error_b).
    pub accuracy_r_sample: f64,
    /// GRAN_GAM_EVEN, GRAN_GAM_A_FIRST or GRAN_GAM_B_FIRST, from accuracy_r_sample.
    pub accuracy_ranking: GranGamRanking,
    /// Zero.
    pub reserved: u32,
}

unsafe impl Versioned for GranGamResult {
    fn defaults() -> Self {
        GranGamResult { struct_size: std::mem::size_of::<Self>() as u32, ..Default::default() }
    }
}

/// Fills `cfg` with the defaults (1000 samples, seed 0, tolerance 0.2, score_batch 100) and
/// `struct_size`.
/// Does nothing when `cfg` is NULL.
///
/// Thread safety: any thread.
///
/// # Safety
/// `cfg` is NULL or points to a writable GranGamConfig.
#[no_mangle]
pub unsafe extern "C" fn gran_gam_config_init(cfg: *mut GranGamConfig) {
    if !cfg.is_null() {
        cfg.write(GranGamConfig::defaults());
    }
}

/// Prepares `out` for `gran_gam`: zeroes every field and sets `struct_size`. Does nothing when
/// `out` is NULL.
///
/// Thread safety: any thread.
///
/// # Safety
/// `out` is NULL or points to a writable GranGamResult.
#[no_mangle]
pub unsafe extern "C" fn gran_gam_result_init(out: *mut GranGamResult) {
    if !out.is_null() {
        out.write(GranGamResult::defaults());
    }
}

/// Compares models `a` and `b` with GAM (Im et al. 2016) on the held-out images of `test`: each
/// model's discriminator judges the held-out data and the other model's samples (scored as
/// `cfg->score_batch` says). Writes all four error rates, r_test, r_sample, the counts, the verdict and the accuracy form to `*out`
/// (no more than `out->struct_size` bytes: set it first). `cfg` NULL uses the defaults.
/// Swapping `a` and `b` swaps the verdict and inverts both ratios.
///
/// Per-call limits: `samples` 1 ..= 1,048,576 (2^20), `score_batch` 0 ..= 4096. Samples are
/// drawn and judged one scoring chunk at a time, so memory does not grow with `samples`.
///
/// Errors: INVALID_ARGUMENT (models or data of different image sizes, samples or score_batch
/// outside the limits, a negative or non-finite tolerance, NULL out, a model loaded from a
/// generator export: it has no discriminator), INVALID_HANDLE,
/// OUT_OF_MEMORY.
///
/// Thread safety: any thread; concurrent with training and sampling of either model.
///
/// # Safety
/// `cfg` is NULL or points to a GranGamConfig (at least `struct_size` bytes); `out` points to a
/// GranGamResult whose `struct_size` is set.
#[no_mangle]
pub unsafe extern "C" fn gran_gam(
    a: GranModel,
    b: GranModel,
    test: GranDataset,
    cfg: *const GranGamConfig,
    out: *mut GranGamResult,
) -> GranStatus {
    guard(|| {
        let (ma, mb, data) = (MODELS.get(a)?, MODELS.get(b)?, DATASETS.get(test)?);
        let c = if cfg.is_null() { GranGamConfig::defaults() } else { read_versioned(cfg, "cfg")? };
        check_versioned_out(out, "out")?;
        let r = gam(
            &ma,
            &mb,
            &data,
            &GamConfig { samples: c.samples, seed: c.seed, tolerance: c.tolerance, score_batch: c.score_batch },
        )?;
        let result = GranGamResult {
            verdict: match r.verdict {
                Verdict::Tie => GRAN_GAM_TIE,
                Verdict::AWins => GRAN_GAM_A_WINS,
                Verdict::BWins => GRAN_GAM_B_WINS,
                Verdict::Undecided => GRAN_GAM_UNDECIDED,
            },
            test_error_a: r.test_error_a,
            test_error_b: r.test_error_b,
            sample_error_a: r.sample_error_a,
            sample_error_b: r.sample_error_b,
            r_test: r.r_test,
            r_sample: r.r_sample,
            test_count: r.test_count as u64,
            sample_count: r.sample_count as u64,
            accuracy_r_test: r.accuracy.r_test,
            accuracy_r_sample: r.accuracy.r_sample,
            accuracy_ranking: match r.accuracy.ranking {
                Ranking::Even => GRAN_GAM_EVEN,
                Ranking::AFirst => GRAN_GAM_A_FIRST,
                Ranking::BFirst => GRAN_GAM_B_FIRST,
            },
            ..GranGamResult::defaults()
        };
        write_versioned(out, &result, "out")
    })
}
