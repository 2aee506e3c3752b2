//! The one error type of the core: a kind (which maps one-to-one onto the C API's status codes)
//! and a message written for the person reading it.

use std::fmt;

/// What went wrong, coarse enough to act on. The FFI layer maps each kind to a `GranStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    InvalidArgument,
    InvalidHandle,
    BufferTooSmall,
    Io,
    /// A corrupt, truncated or incompatible checkpoint or data file.
    Format,
    /// CUDA asked for but absent, or a device error.
    Device,
    OutOfMemory,
    Cancelled,
    Busy,
    /// Training produced NaN or infinite losses.
    Diverged,
    Internal,
    /// Data-parallel training: a peer process failed, hung past the group's timeout or could
    /// not be reached, the ranks disagree, or the backend is not built.
    Distributed,
}

/// An error with its kind and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into() }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
    pub fn format(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Format, message)
    }
    pub fn io(context: impl fmt::Display, err: std::io::Error) -> Self {
        Self::new(ErrorKind::Io, format!("{context}: {err}"))
    }
    pub(crate) fn device(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Device, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Error {}

/// How libtorch words an allocation failure: its CPU allocator ("DefaultCPUAllocator: not enough
/// memory" / "can't allocate memory"), the CUDA caching allocator ("CUDA out of memory"), a C++
/// `std::bad_alloc`, and the errno text of ENOMEM.
const OUT_OF_MEMORY: [&str; 6] = [
    "out of memory",
    "not enough memory",
    "can't allocate memory",
    "cannot allocate memory",
    "bad_alloc",
    "failed to allocate",
];

/// libtorch errors: an allocation failure is `OutOfMemory`, a CUDA failure `Device`, anything
/// else `Internal`. The message keeps libtorch's first line (its backtraces are noise to a user).
impl From<tch::TchError> for Error {
    fn from(e: tch::TchError) -> Self {
        let full = e.to_string();
        let first = full.lines().find(|l| !l.trim().is_empty()).unwrap_or("libtorch error");
        let lower = full.to_ascii_lowercase();
        let kind = if OUT_OF_MEMORY.iter().any(|m| lower.contains(m)) {
            ErrorKind::OutOfMemory
        } else if lower.contains("cuda error") || lower.contains("cudnn_status") {
            ErrorKind::Device
        } else {
            ErrorKind::Internal
        };
        Error::new(kind, format!("libtorch: {}", first.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libtorch's own allocation failures, on the CPU and on CUDA, are OutOfMemory.
    #[test]
    fn libtorch_allocation_failures_are_out_of_memory() {
        let e: Error = tch::Tensor::f_empty([1i64 << 40], (tch::Kind::Float, tch::Device::Cpu)).unwrap_err().into();
        assert_eq!(e.kind, ErrorKind::OutOfMemory, "{}", e.message);
        for msg in [
            "DefaultCPUAllocator: not enough memory: you tried to allocate 1024 bytes.",
            "CUDA out of memory. Tried to allocate 2.00 GiB",
            "std::bad_alloc",
        ] {
            let e: Error = tch::TchError::Torch(msg.to_string()).into();
            assert_eq!(e.kind, ErrorKind::OutOfMemory, "{msg}");
        }
        let e: Error = tch::TchError::Torch("shape mismatch".to_string()).into();
        assert_eq!(e.kind, ErrorKind::Internal);
    }
}
