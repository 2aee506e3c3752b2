//! Files: training checkpoints and generator exports (one safetensors container), atomic
//! replacement, PNG grids.

pub mod atomic_file;
pub mod checkpoint;
pub mod export;
pub mod png;
