//! The networks and what updates them: layers, the generator (the T-step canvas drawer), the
//! discriminator, Adam, the averaged generator and the precision they run in.

pub(crate) mod adam;
pub(crate) mod discriminator;
pub(crate) mod ema;
pub(crate) mod generator;
pub(crate) mod layers;
pub(crate) mod precision;
pub(crate) mod recompute;
