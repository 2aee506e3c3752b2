//! `gran gam`: the paper's Generative Adversarial Metric between two models on held-out data.

use crate::data::{self, Split};
use crate::opts::{DataArgs, RunArgs};
use crate::output::Out;
use gran::{gam, GamConfig, Ranking, Verdict, DEFAULT_SCORE_BATCH, DEFAULT_TOLERANCE};
use gran::{Error, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
#[command(args_override_self = true)]
pub struct Args {
    /// Model A (a gran checkpoint)
    #[arg(value_name = "MODEL_A")]
    pub a: PathBuf,
    /// Model B (a gran checkpoint)
    #[arg(value_name = "MODEL_B")]
    pub b: PathBuf,
    /// Samples drawn from each generator
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub samples: u32,
    /// Seed of both generators' latents
    #[arg(short, long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Largest |r_test - 1| for which the comparison is decided
    #[arg(long, value_name = "X", default_value_t = DEFAULT_TOLERANCE)]
    pub tolerance: f64,
    /// Images per scoring chunk, normalised by their own batch statistics (0: each image alone,
    /// with running statistics)
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SCORE_BATCH)]
    pub score_batch: u32,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::AWins => "a_wins",
        Verdict::BWins => "b_wins",
        Verdict::Tie => "tie",
        Verdict::Undecided => "undecided",
    }
}

pub fn run(a: &Args, out: &Out) -> Result<()> {
    let ma = a.run.load(&a.a)?;
    let mb = a.run.load(&a.b)?;
    let (ca, cb) = (ma.config().clone(), mb.config().clone());
    if (ca.height, ca.width, ca.channels) != (cb.height, cb.width, cb.channels) {
        return Err(Error::invalid(format!(
            "the models make images of different sizes ({}x{}x{} and {}x{}x{}): GAM compares models of one kind of image",
            ca.height, ca.width, ca.channels, cb.height, cb.width, cb.channels
        )));
    }
    let test = data::load(&a.data, Split::Test, (ca.height, ca.width, ca.channels))?;
    out.note(&format!("held-out data: {} ({})", data::describe(&test.data), test.source));
    let cfg = GamConfig { samples: a.samples, seed: a.seed, tolerance: a.tolerance, score_batch: a.score_batch };
    let r = gam(&ma, &mb, &test.data, &cfg)?;
    // JSON has no infinity: a ratio with a zero denominator (x/0, x > 0) is written as null.
    let finite = |x: f64| if x.is_finite() { Some(x) } else { None };
    let value = serde_json::json!({
        "model_a": a.a.display().to_string(), "model_b": a.b.display().to_string(),
        "step_a": ma.step(), "step_b": mb.step(), "drawing_steps_a": ca.drawing_steps, "drawing_steps_b": cb.drawing_steps,
        "test_error_a": r.test_error_a, "test_error_b": r.test_error_b,
        "sample_error_a": r.sample_error_a, "sample_error_b": r.sample_error_b,
        "r_test": finite(r.r_test), "r_sample": finite(r.r_sample),
        "test_count": r.test_count, "sample_count": r.sample_count,
        "tolerance": a.tolerance, "verdict": verdict_name(r.verdict),
    });
    let acc = r.accuracy;
    let acc_rank = match acc.ranking {
        Ranking::AFirst => "A ranks first",
        Ranking::BFirst => "B ranks first",
        Ranking::Even => "even",
    };
    let mut value = value;
    value["accuracy_form"] = serde_json::json!({
        "r_test": finite(acc.r_test), "r_sample": finite(acc.r_sample), "ranking": acc_rank,
    });
    out.result("gam", value, || {
        let verdict = match r.verdict {
            Verdict::AWins => format!("A wins ({})", a.a.display()),
            Verdict::BWins => format!("B wins ({})", a.b.display()),
            Verdict::Tie => "tie".into(),
            Verdict::Undecided => format!(
                "undecided: r_test = {:.3} is more than {} from 1, i.e. the two discriminators disagree on \
                 real held-out images (D_A calls {:.1}% of them fake, D_B {:.1}%), so their judgements of \
                 each other's samples are not comparable",
                r.r_test,
                a.tolerance,
                100.0 * r.test_error_a,
                100.0 * r.test_error_b
            ),
        };
        format!(
            "GAM: A = {} (T={}, step {}), B = {} (T={}, step {})\n\
             {} held-out images, {} samples from each generator\n\
             test errors:   D_A {:.4}  D_B {:.4}   r_test   = {:.3}\n\
             sample errors: D_A on G_B {:.4}  D_B on G_A {:.4}   r_sample = {:.3}\n\
             verdict: {verdict}\n\
             accuracy form (the authors' battle.py): r_test {:.3}, r_sample {:.3}: {acc_rank}",
            a.a.display(),
            ca.drawing_steps,
            ma.step(),
            a.b.display(),
            cb.drawing_steps,
            mb.step(),
            r.test_count,
            r.sample_count,
            r.test_error_a,
            r.test_error_b,
            r.r_test,
            r.sample_error_a,
            r.sample_error_b,
            r.r_sample,
            acc.r_test,
            acc.r_sample
        )
    });
    Ok(())
}
