//! `gran eval`: trains the evaluator (a small classifier) on the labelled training split and
//! scores each model's samples against the held-out split.

use crate::data::{self, Split};
use crate::opts::{DataArgs, RunArgs};
use crate::output::Out;
use gran::{Error, Result};
use gran::{Evaluator, EvaluatorConfig, Quality};
use std::path::PathBuf;

#[derive(clap::Args)]
#[command(args_override_self = true)]
pub struct Args {
    /// Gran checkpoints to score (all of one image size)
    #[arg(value_name = "MODEL", required = true)]
    pub models: Vec<PathBuf>,
    /// Samples drawn from each model
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(2..))]
    pub samples: u32,
    /// Seed of the latents
    #[arg(short, long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Epochs the evaluator's classifier trains on the training split
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub evaluator_epochs: u32,
    /// Seed of the evaluator's initial weights and minibatch order
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub evaluator_seed: u64,
    /// Skip the copy check (each image's distance to its nearest training image)
    #[arg(long)]
    pub no_copy_check: bool,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

fn quality_json(q: &Quality) -> serde_json::Value {
    let num = |x: f64| if x.is_finite() { Some(x) } else { None };
    serde_json::json!({
        "count": q.count, "frechet_distance": num(q.frechet_distance),
        "classifier_score": num(q.classifier_score), "class_shares": q.class_shares,
        "nearest_train_distance": num(q.nearest_train_distance),
        "reference_nearest_train_distance": num(q.reference_nearest_train_distance),
        "class_accuracy": q.class_accuracy.iter().map(|&a| num(a)).collect::<Vec<_>>(),
        "mean_class_accuracy": q.accuracy_summary().map(|s| s.0),
        "worst_class_accuracy": q.accuracy_summary().map(|s| s.1),
    })
}

pub fn run(a: &Args, out: &Out) -> Result<()> {
    let mut models = Vec::new();
    for path in &a.models {
        models.push((path, a.run.load(path)?));
    }
    let c0 = models[0].1.config().clone();
    let shape = (c0.height, c0.width, c0.channels);
    if let Some((p, m)) =
        models.iter().find(|(_, m)| (m.config().height, m.config().width, m.config().channels) != shape)
    {
        return Err(Error::invalid(format!(
            "{} makes {}x{}x{} images but {} makes {}x{}x{}: evaluate models of one image size together",
            p.display(),
            m.config().height,
            m.config().width,
            m.config().channels,
            models[0].0.display(),
            shape.0,
            shape.1,
            shape.2
        )));
    }
    let train = data::load(&a.data, Split::Train, shape)?;
    let test = data::load(&a.data, Split::Test, shape)?;
    out.note(&format!("evaluator: training on {} ({})", data::describe(&train.data), train.source));
    let device = models[0].1.device();
    let cfg = EvaluatorConfig { epochs: a.evaluator_epochs, seed: a.evaluator_seed, ..EvaluatorConfig::default() };
    let ev = Evaluator::train(&train.data, &cfg, device)?;
    let accuracy = if test.data.labels().is_some() { Some(ev.accuracy(&test.data)?) } else { None };
    let copy_ref = if a.no_copy_check { None } else { Some(&train.data) };
    let mut results = Vec::new();
    let mut text = format!(
        "evaluator: {} classes, held-out accuracy {}; reference: {} ({})\n",
        ev.classes(),
        accuracy.map_or("n/a (no labels)".into(), |x| format!("{:.1}%", 100.0 * x)),
        data::describe(&test.data),
        test.source
    );
    for (path, model) in &models {
        let q = ev.model_quality(model, a.seed, a.samples as usize, &test.data, copy_ref)?;
        let shares: Vec<String> = q.class_shares.iter().map(|s| format!("{:.0}", 100.0 * s)).collect();
        text += &format!(
            "{} (T={}, step {}): Frechet distance {:.2}, classifier score {:.2}, classes (%) [{}]",
            path.display(),
            model.config().drawing_steps,
            model.step(),
            q.frechet_distance,
            q.classifier_score,
            shares.join(" ")
        );
        if copy_ref.is_some() {
            text += &format!(
                ", nearest training image {:.3} (held-out images: {:.3})",
                q.nearest_train_distance, q.reference_nearest_train_distance
            );
        }
        if let Some((mean, worst)) = q.accuracy_summary() {
            let each: Vec<String> = q.class_accuracy.iter().map(|a| format!("{:.0}", 100.0 * a)).collect();
            text += &format!(
                "; samples of the class asked for: {:.1}% on average, {:.1}% for the worst class, per class (%) [{}]",
                100.0 * mean,
                100.0 * worst,
                each.join(" ")
            );
        }
        text += "\n";
        let mut v = quality_json(&q);
        v["model"] = path.display().to_string().into();
        v["step"] = model.step().into();
        v["drawing_steps"] = model.config().drawing_steps.into();
        results.push(v);
    }
    let value = serde_json::json!({
        "classes": ev.classes(), "evaluator_accuracy": accuracy, "reference_count": test.data.count(),
        "samples": a.samples, "seed": a.seed, "models": results,
    });
    out.result("eval", value, || text);
    Ok(())
}
