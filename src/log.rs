//! Library logging (gran_common::log, shared with libgran_runtime): off by default (gran prints
//! nothing unless asked). One process-wide sink with a minimum level, set by the embedding
//! application.

pub use gran_common::log::{log, set_sink, Level, Sink};
