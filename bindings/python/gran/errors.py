"""Exceptions: one class per GranStatus, all derived from GranError.

Where a Python built-in exception means the same thing, the class derives from it too, so
generic handlers work: InvalidArgumentError and BufferTooSmallError are ValueErrors,
InvalidHandleError is a ValueError, GranIOError is an OSError, OutOfMemoryError a MemoryError.
SamplingOnlyError (a NotImplementedError) is the one GranError without a status: the loaded
library does not have the function at all.
"""

from __future__ import annotations

from . import _lib


class GranError(Exception):
    """A failed gran call: `status` is the GranStatus (int), `message` the library's text."""

    status: int = -1

    def __init__(self, status: int, message: str):
        super().__init__(status, message)
        self.status = status
        self.message = message

    @property
    def status_name(self) -> str:
        return STATUS_NAMES.get(self.status, "GRAN_STATUS_UNKNOWN")

    def __str__(self) -> str:
        return f"{self.status_name}: {self.message}"


class InvalidArgumentError(GranError, ValueError):
    """GRAN_STATUS_INVALID_ARGUMENT: an argument is missing, out of range or inconsistent."""


class InvalidHandleError(GranError, ValueError):
    """GRAN_STATUS_INVALID_HANDLE: the model or dataset was freed (closed) or never existed."""


class BufferTooSmallError(GranError, ValueError):
    """GRAN_STATUS_BUFFER_TOO_SMALL: an output buffer is too small."""


class GranIOError(GranError, OSError):
    """GRAN_STATUS_IO: a file could not be read or written."""

    def __init__(self, status: int, message: str):
        super().__init__(status, message)
        # OSError would read (status, message) as (errno, strerror): there is no errno here.
        self.errno = None
        self.strerror = message


class FormatError(GranError):
    """GRAN_STATUS_FORMAT: a corrupt, truncated or incompatible checkpoint or data file."""


class DeviceError(GranError):
    """GRAN_STATUS_DEVICE: CUDA asked for but absent, a bad device index, or a device error."""


class OutOfMemoryError(GranError, MemoryError):
    """GRAN_STATUS_OUT_OF_MEMORY: host or device memory ran out."""


class CancelledError(GranError):
    """GRAN_STATUS_CANCELLED: training stopped by cancel(), the progress callback, or close()."""


class BusyError(GranError):
    """GRAN_STATUS_BUSY: the model is already training."""


class DivergedError(GranError):
    """GRAN_STATUS_DIVERGED: training produced a NaN or infinite loss."""


class InternalError(GranError):
    """GRAN_STATUS_INTERNAL: a library bug or unexpected libtorch failure."""


class DistributedError(GranError):
    """GRAN_STATUS_DISTRIBUTED: a peer process failed, hung or was unreachable, or the ranks disagree."""


class SamplingOnlyError(GranError, NotImplementedError):
    """The loaded library is libgran_runtime, which only draws images from trained models:
    `api` (training, datasets, evaluation, GAM, discriminate, save, export, ...) needs libgran.
    `status` is None: no library function ran. `api` names the call, `library` the loaded file."""

    def __init__(self, api: str, library: str):
        message = (
            f"{api} is not available: the loaded library ({library}) is libgran_runtime, which only "
            "samples (Model.load, sample, sample_steps, latents, generate, config, write_png). "
            "Creating and training models, datasets, evaluation, GAM, discriminate, save and export "
            "need libgran: set GRAN_LIBRARY to the path of libgran.so."
        )
        super().__init__(None, message)  # type: ignore[arg-type]
        self.api = api
        self.library = library

    def __str__(self) -> str:
        return self.message


STATUS_NAMES = {
    _lib.GRAN_STATUS_OK: "GRAN_STATUS_OK",
    _lib.GRAN_STATUS_INVALID_ARGUMENT: "GRAN_STATUS_INVALID_ARGUMENT",
    _lib.GRAN_STATUS_INVALID_HANDLE: "GRAN_STATUS_INVALID_HANDLE",
    _lib.GRAN_STATUS_BUFFER_TOO_SMALL: "GRAN_STATUS_BUFFER_TOO_SMALL",
    _lib.GRAN_STATUS_IO: "GRAN_STATUS_IO",
    _lib.GRAN_STATUS_FORMAT: "GRAN_STATUS_FORMAT",
    _lib.GRAN_STATUS_DEVICE: "GRAN_STATUS_DEVICE",
    _lib.GRAN_STATUS_OUT_OF_MEMORY: "GRAN_STATUS_OUT_OF_MEMORY",
    _lib.GRAN_STATUS_CANCELLED: "GRAN_STATUS_CANCELLED",
    _lib.GRAN_STATUS_BUSY: "GRAN_STATUS_BUSY",
    _lib.GRAN_STATUS_DIVERGED: "GRAN_STATUS_DIVERGED",
    _lib.GRAN_STATUS_INTERNAL: "GRAN_STATUS_INTERNAL",
    _lib.GRAN_STATUS_DISTRIBUTED: "GRAN_STATUS_DISTRIBUTED",
}

EXCEPTIONS = {
    _lib.GRAN_STATUS_INVALID_ARGUMENT: InvalidArgumentError,
    _lib.GRAN_STATUS_INVALID_HANDLE: InvalidHandleError,
    _lib.GRAN_STATUS_BUFFER_TOO_SMALL: BufferTooSmallError,
    _lib.GRAN_STATUS_IO: GranIOError,
    _lib.GRAN_STATUS_FORMAT: FormatError,
    _lib.GRAN_STATUS_DEVICE: DeviceError,
    _lib.GRAN_STATUS_OUT_OF_MEMORY: OutOfMemoryError,
    _lib.GRAN_STATUS_CANCELLED: CancelledError,
    _lib.GRAN_STATUS_BUSY: BusyError,
    _lib.GRAN_STATUS_DIVERGED: DivergedError,
    _lib.GRAN_STATUS_INTERNAL: InternalError,
    _lib.GRAN_STATUS_DISTRIBUTED: DistributedError,
}


def error_for(status: int, message: str) -> GranError:
    """The exception instance for a status (GranError itself for an unknown one)."""
    return EXCEPTIONS.get(status, GranError)(status, message)
