//! Atomic file writes (gran_common::atomic_file, shared with libgran_runtime): a temporary file
//! beside the target, flushed to disk, renamed over it; links followed, anything that is not a
//! regular file refused.

use crate::error::Result;
use std::path::Path;

pub(crate) use gran_common::atomic_file::AtomicWriter;

/// Writes `bytes` to `path` atomically (gran_common::atomic_file::write_atomic).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(gran_common::atomic_file::write_atomic(path, bytes)?)
}
