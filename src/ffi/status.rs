//! Status codes (gran_common::abi) and the core's error kinds: one-to-one.

use crate::error::ErrorKind;
pub use gran_common::abi::{
    status_name, GranStatus, GRAN_STATUS_BUFFER_TOO_SMALL, GRAN_STATUS_BUSY, GRAN_STATUS_CANCELLED, GRAN_STATUS_DEVICE,
    GRAN_STATUS_DISTRIBUTED, GRAN_STATUS_DIVERGED, GRAN_STATUS_FORMAT, GRAN_STATUS_INTERNAL,
    GRAN_STATUS_INVALID_ARGUMENT, GRAN_STATUS_INVALID_HANDLE, GRAN_STATUS_IO, GRAN_STATUS_OK,
    GRAN_STATUS_OUT_OF_MEMORY,
};

pub(crate) fn status_of(kind: ErrorKind) -> GranStatus {
    match kind {
        ErrorKind::InvalidArgument => GRAN_STATUS_INVALID_ARGUMENT,
        ErrorKind::InvalidHandle => GRAN_STATUS_INVALID_HANDLE,
        ErrorKind::BufferTooSmall => GRAN_STATUS_BUFFER_TOO_SMALL,
        ErrorKind::Io => GRAN_STATUS_IO,
        ErrorKind::Format => GRAN_STATUS_FORMAT,
        ErrorKind::Device => GRAN_STATUS_DEVICE,
        ErrorKind::OutOfMemory => GRAN_STATUS_OUT_OF_MEMORY,
        ErrorKind::Cancelled => GRAN_STATUS_CANCELLED,
        ErrorKind::Busy => GRAN_STATUS_BUSY,
        ErrorKind::Diverged => GRAN_STATUS_DIVERGED,
        ErrorKind::Internal => GRAN_STATUS_INTERNAL,
        ErrorKind::Distributed => GRAN_STATUS_DISTRIBUTED,
    }
}

/// The error kind of a status (statuses that are not errors read as `Internal`).
pub(crate) fn kind_of(status: GranStatus) -> ErrorKind {
    match status {
        GRAN_STATUS_INVALID_ARGUMENT => ErrorKind::InvalidArgument,
        GRAN_STATUS_INVALID_HANDLE => ErrorKind::InvalidHandle,
        GRAN_STATUS_BUFFER_TOO_SMALL => ErrorKind::BufferTooSmall,
        GRAN_STATUS_IO => ErrorKind::Io,
        GRAN_STATUS_FORMAT => ErrorKind::Format,
        GRAN_STATUS_DEVICE => ErrorKind::Device,
        GRAN_STATUS_OUT_OF_MEMORY => ErrorKind::OutOfMemory,
        GRAN_STATUS_CANCELLED => ErrorKind::Cancelled,
        GRAN_STATUS_BUSY => ErrorKind::Busy,
        GRAN_STATUS_DIVERGED => ErrorKind::Diverged,
        GRAN_STATUS_DISTRIBUTED => ErrorKind::Distributed,
        _ => ErrorKind::Internal,
    }
}

impl From<gran_common::boundary::Failure> for crate::error::Error {
    fn from(f: gran_common::boundary::Failure) -> Self {
        crate::error::Error::new(kind_of(f.status), f.message)
    }
}

impl From<crate::error::Error> for gran_common::boundary::Failure {
    fn from(e: crate::error::Error) -> Self {
        gran_common::boundary::Failure::new(status_of(e.kind), e.message)
    }
}
