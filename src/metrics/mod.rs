//! Judging models: the independent evaluator (a LeNet trained on real data: FD and classifier
//! scores) and GAM, the Generative Adversarial Metric.

pub(crate) mod evaluator;
pub mod gam;
