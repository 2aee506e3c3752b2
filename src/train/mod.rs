//! Adversarial training: per minibatch one discriminator update, then one generator update, each
//! with fresh latents; non-saturating losses computed from logits; Adam for each network.
//!
//! `settings` holds what a caller chooses and what a run reports, `run` the run itself,
//! `canvas_penalty` the term of the generator's loss that keeps its canvas out of saturation,
//! `step` what one step reports and why it failed, `step_graph` the training step captured as a
//! CUDA graph, `snapshot` the in-memory copy a run
//! rolls back to.

mod augment;
pub(crate) mod canvas_penalty;
mod generator_pass;
mod prefetch;
mod run;
mod settings;
mod snapshot;
mod step;
mod step_graph;

pub use augment::Adaptive;
pub use canvas_penalty::CANVAS_LIMIT;
/// The run itself, for tests that inspect a run before it starts.
#[doc(hidden)]
pub use run::Trainer;
pub use settings::*;

use crate::data::Dataset;
use crate::error::Result;
use crate::model::Model;

/// Trains `model` on `data`. `on_progress` is called every `report_every` steps and after the
/// last one, with no lock held (it may sample from the model); returning `true` stops the run
/// with `Cancelled`. Returns the final report. The run itself: `crate::train::run::Trainer`.
pub fn train(
    model: &Model,
    data: &Dataset,
    cfg: &TrainConfig,
    on_progress: &mut dyn FnMut(&Progress) -> bool,
) -> Result<Progress> {
    crate::train::run::Trainer::new(model, data, cfg)?.run(on_progress)
}

/// [`train`], and the report of where the run stopped: the final report when it completed; for
/// a run that stopped early (cancelled, or diverged and put back to its last complete step), the
/// last report's means with `step` the model's step counter and `total_steps` the step the run
/// would have ended at; `None` when the run was refused before its first step or failed
/// otherwise (an I/O error, say).
pub fn train_reporting(
    model: &Model,
    data: &Dataset,
    cfg: &TrainConfig,
    on_progress: &mut dyn FnMut(&Progress) -> bool,
) -> (Result<Progress>, Option<Progress>) {
    match crate::train::run::Trainer::new(model, data, cfg) {
        Ok(trainer) => trainer.run_reporting(on_progress),
        Err(e) => (Err(e), None),
    }
}
