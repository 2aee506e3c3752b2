//! The C interface: every `gran_*` function of include/gran.h.
//!
//! This layer only checks arguments, maps handles and statuses, and calls the Rust core. Every
//! exported function runs inside `boundary::guard` (no panic or libtorch exception unwinds into
//! the caller), and every raw pointer is turned into a reference in `boundary`.

pub mod boundary;
pub mod dataset;
pub mod dist;
pub mod evaluator;
pub mod gam;
pub mod model;
pub mod registry;
pub mod sample;
pub mod status;
pub mod train;
pub mod types;
pub mod version;
