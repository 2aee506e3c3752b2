//! The networks and what updates them: layers, the generator (the T-step canvas drawer), the
//! discriminator, Adam, the averaged generator and the precision they run in.

pub mod adam;
pub mod discriminator;
pub mod ema;
pub mod generator;
pub mod layers;
pub mod precision;
