//! Files: training checkpoints and generator exports (one safetensors container), atomic
//! replacement, PNG grids, GIF animations.

pub(crate) mod atomic_file;
pub(crate) mod checkpoint;
mod container;
pub(crate) mod export;
pub(crate) mod gif;
pub(crate) mod png;

pub use container::{checksum, Storage};

use crate::device::DeviceSpec;
use crate::error::{Error, Result};
use crate::model::Model;
use container::Opened;
use std::path::Path;

/// Loads a training checkpoint or a generator export (told apart by the format tag in its
/// header). `device`: where the model goes; `None` puts it where it was saved if that device
/// exists here, else on the automatic choice (CUDA 0 if available, else the CPU).
///
/// Everything is checked before the work it would justify: only a regular file is opened, and
/// its header (at most `MAX_CHECKPOINT_HEADER` bytes) is read alone first; the rest is the
/// format's own loader (crate::io::checkpoint, crate::io::export).
pub fn load(path: &Path, device: Option<DeviceSpec>) -> Result<Model> {
    let not_ours = |why: String| Error::format(format!("{} is not a valid gran checkpoint: {why}", path.display()));
    let (mut file, len) = crate::limits::open_regular(path)?;
    let header = container::read_header(&mut file, len, &not_ours)?;
    let not_export =
        |why: String| Error::format(format!("{} is not a valid gran generator export: {why}", path.display()));
    match header.meta.get("format").map(String::as_str) {
        Some(export::FORMAT_TAG) => export::load(Opened { path, header, file, len, not_ours: &not_export }, device),
        Some(checkpoint::FORMAT_TAG) => {
            checkpoint::load(Opened { path, header, file, len, not_ours: &not_ours }, device)
        }
        _ => Err(not_ours("no gran format tag".into())),
    }
}
