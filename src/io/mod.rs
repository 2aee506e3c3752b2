//! Files: training checkpoints and generator exports (one safetensors container), atomic
//! replacement, PNG grids.

pub(crate) mod atomic_file;
pub(crate) mod checkpoint;
pub mod export;
pub(crate) mod png;
