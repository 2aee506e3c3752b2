"""The Pythonic layer over libgran (or libgran_runtime): Model, Dataset, write_png and library
functions."""

from __future__ import annotations

import array
import ctypes
import operator
import os
import threading
from ctypes import POINTER, byref, c_double, c_float, c_int32, c_uint32, c_uint64, c_void_p, sizeof
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

from . import _lib
from ._lib import (
    GRAN_BACKEND_AUTO,
    GRAN_BACKEND_GLOO,
    GRAN_BACKEND_NCCL,
    GRAN_PIXEL_FORMAT_F32_CHW,
    GRAN_PIXEL_FORMAT_U8_CHW,
    GRAN_PIXEL_FORMAT_U8_HWC,
    GRAN_GENERATOR_AVERAGED,
    GRAN_GENERATOR_RAW,
    GRAN_LR_CONSTANT,
    GRAN_LR_INVERSE_EPOCH,
    GRAN_LR_LINEAR,
    GRAN_PRECISION_BF16,
    GRAN_PRECISION_FP32,
    GRAN_STATUS_INVALID_ARGUMENT,
    GranDataset,
    GranDatasetInfo,
    GranDevice,
    GranEvaluator,
    GranEvaluatorConfig,
    GranGamConfig,
    GranGamResult,
    GranLogCallback,
    GranModel,
    GranModelConfig,
    GranProgress,
    GranProgressCallback,
    GranProcessGroup,
    GranProcessGroupConfig,
    GranQuality,
    GranTrainConfig,
)
from .errors import InvalidArgumentError, SamplingOnlyError, error_for

# numpy is optional: without it, images come back as bytes (U8 formats) or lists of floats.
# GRAN_NO_NUMPY=1 behaves as if it were not installed.
_np: Any = None
if os.environ.get("GRAN_NO_NUMPY", "") in ("", "0"):
    try:
        import numpy as _np  # type: ignore[no-redef]
    except ImportError:  # pragma: no cover - depends on the environment
        _np = None

_LIB, LIBRARY_PATH, LIBRARY_KIND = _lib.load()


def sampling_only() -> bool:
    """True when the loaded library is libgran_runtime (LIBRARY_KIND): models load and sample;
    everything else raises SamplingOnlyError."""
    return LIBRARY_KIND == _lib.LIBGRAN_RUNTIME


def _require_libgran(api: str) -> None:
    if sampling_only():
        raise SamplingOnlyError(api, LIBRARY_PATH)


def have_numpy() -> bool:
    """True when results come back as numpy arrays (numpy importable and not disabled)."""
    return _np is not None


# ----------------------------------------------------------------------------------------------
# Status handling and small conversions
# ----------------------------------------------------------------------------------------------


def last_error() -> str:
    """The calling thread's last failure message (gran_last_error)."""
    n = _LIB.gran_last_error(None, 0)
    buf = ctypes.create_string_buffer(n + 1)
    _LIB.gran_last_error(buf, n + 1)
    return buf.value.decode("utf-8", "replace")


def _check(status: int) -> None:
    if status != 0:
        raise error_for(status, last_error())


def _invalid(message: str) -> InvalidArgumentError:
    return InvalidArgumentError(GRAN_STATUS_INVALID_ARGUMENT, message)


def _uint(name: str, value: Any, bits: int) -> int:
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}") from None
    if not 0 <= v < (1 << bits):
        raise _invalid(f"{name} is {v}: must be in [0, 2**{bits})")
    return v


def _path(p: Any) -> bytes:
    return os.fsencode(os.fspath(p))


_FORMATS = {
    "u8": GRAN_PIXEL_FORMAT_U8_HWC,
    "u8_hwc": GRAN_PIXEL_FORMAT_U8_HWC,
    "hwc": GRAN_PIXEL_FORMAT_U8_HWC,
    "u8_chw": GRAN_PIXEL_FORMAT_U8_CHW,
    "f32": GRAN_PIXEL_FORMAT_F32_CHW,
    "f32_chw": GRAN_PIXEL_FORMAT_F32_CHW,
    "float32": GRAN_PIXEL_FORMAT_F32_CHW,
}


def _format(fmt: Any) -> int:
    if isinstance(fmt, str):
        try:
            return _FORMATS[fmt.lower()]
        except KeyError:
            raise _invalid(f"pixel format {fmt!r} is unknown: use 'u8' (HWC bytes), 'u8_chw' or 'f32'") from None
    v = _uint("format", fmt, 32)
    if v not in (GRAN_PIXEL_FORMAT_U8_HWC, GRAN_PIXEL_FORMAT_U8_CHW, GRAN_PIXEL_FORMAT_F32_CHW):
        raise _invalid(f"pixel format {v} is unknown (U8_HWC 0, U8_CHW 1, F32_CHW 2)")
    return v


_PRECISIONS = {"fp32": GRAN_PRECISION_FP32, "float32": GRAN_PRECISION_FP32,
               "bf16": GRAN_PRECISION_BF16, "bfloat16": GRAN_PRECISION_BF16}


def _named(what: str, value: Any, names: dict, use: str) -> int:
    """A setting given by name (a key of `names`, any case) or as its C constant -> the constant."""
    if isinstance(value, str):
        try:
            return names[value.lower()]
        except KeyError:
            raise _invalid(f"{what} {value!r} is unknown: use {use}") from None
    return _uint(what, value, 32)


def _precision(p: Any) -> int:
    """'fp32' | 'bf16' (or the GRAN_PRECISION_ constants) -> GranPrecision."""
    return _named("precision", p, _PRECISIONS, "'fp32' or 'bf16'")


_UPSAMPLINGS = {"transposed": _lib.GRAN_UPSAMPLING_TRANSPOSED, "resize": _lib.GRAN_UPSAMPLING_RESIZE}
_UPSAMPLING_NAMES = {v: k for k, v in _UPSAMPLINGS.items()}

_SCHEDULES = {"constant": GRAN_LR_CONSTANT, "inverse-epoch": GRAN_LR_INVERSE_EPOCH, "linear": GRAN_LR_LINEAR}

_AUGMENTS = {"off": _lib.GRAN_AUGMENT_OFF, "fixed": _lib.GRAN_AUGMENT_FIXED, "ada": _lib.GRAN_AUGMENT_ADAPTIVE}


def _augment(a: Any) -> int:
    """'ada' | 'fixed' | 'off' (or the GRAN_AUGMENT_ constants) -> GranAugment."""
    return _named("augment", a, _AUGMENTS, "'ada', 'fixed' or 'off'")


def _lr_schedule(s: Any) -> int:
    """'constant' | 'inverse-epoch' | 'linear' (or the GRAN_LR_ constants) -> GranLrSchedule."""
    return _named("lr_schedule", s, _SCHEDULES, "'constant', 'inverse-epoch' or 'linear'")


def _device(spec: Any) -> GranDevice:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' (or None for auto) -> GranDevice."""
    if isinstance(spec, GranDevice):
        return spec
    if spec is None:
        return GranDevice(_lib.GRAN_DEVICE_AUTO, 0)
    if not isinstance(spec, str):
        raise TypeError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', not {spec!r}")
    s = spec.strip().lower()
    if s == "auto":
        return GranDevice(_lib.GRAN_DEVICE_AUTO, 0)
    if s == "cpu":
        return GranDevice(_lib.GRAN_DEVICE_CPU, 0)
    if s == "cuda":
        return GranDevice(_lib.GRAN_DEVICE_CUDA, 0)
    if s.startswith("cuda:"):
        try:
            index = int(s[5:])
        except ValueError:
            index = -1
        if index >= 0 and index < 2**31:
            return GranDevice(_lib.GRAN_DEVICE_CUDA, index)
    raise _invalid(f"device {spec!r} is not 'auto', 'cpu', 'cuda' or 'cuda:N'")


def _device_name(d: GranDevice) -> str:
    if d.kind == _lib.GRAN_DEVICE_CPU:
        return "cpu"
    if d.kind == _lib.GRAN_DEVICE_CUDA:
        return f"cuda:{d.index}"
    if d.kind == _lib.GRAN_DEVICE_AUTO:
        return "auto"
    return f"unknown({d.kind})"


# ----------------------------------------------------------------------------------------------
# Library information and logging
# ----------------------------------------------------------------------------------------------


def version() -> str:
    """The library's version string, e.g. '0.1.0'."""
    return _LIB.gran_version().decode()


def abi_version() -> int:
    """The loaded library's ABI version (GRAN_ABI_VERSION)."""
    return int(_LIB.gran_abi_version())


def cuda_device_count() -> int:
    """Number of usable CUDA devices (0 without CUDA, and always 0 with libgran_runtime, which
    draws on the CPU)."""
    if sampling_only():
        return 0
    return int(_LIB.gran_cuda_device_count())


def set_num_threads(threads: int) -> None:
    """How many CPU threads later calls use, 1 ..= 256. libgran: libtorch's intra-op threads
    (process-wide, as torch.set_num_threads; libtorch's default is the machine's cores).
    libgran_runtime: the threads a drawing call splits its images between (default 1)."""
    try:
        n = operator.index(threads)
    except TypeError:
        raise TypeError(f"threads must be an integer, not {type(threads).__name__}") from None
    if not 1 <= n <= 256:
        raise _invalid(f"threads is {n}: must be in 1 ..= 256")
    _check(_LIB.gran_set_num_threads(n))


def num_threads() -> int:
    """The CPU threads calls use now (set_num_threads)."""
    return int(_LIB.gran_num_threads())


def set_deterministic(on: bool) -> None:
    """Whether CUDA work repeats bit for bit (True: cuDNN's deterministic engines, gran's
    default once it uses CUDA) or may use faster engines (False). libtorch's process-wide
    flag (torch.backends.cudnn.deterministic); see gran_set_deterministic."""
    _LIB.gran_set_deterministic(1 if on else 0)


def deterministic() -> bool:
    """True when CUDA work is deterministic now (gran_deterministic)."""
    return bool(_LIB.gran_deterministic())


def status_string(status: int) -> str:
    """The name of a GranStatus, e.g. 'GRAN_STATUS_IO'."""
    return _LIB.gran_status_string(status).decode()


_LOG_LEVELS = {"debug": _lib.GRAN_LOG_DEBUG, "info": _lib.GRAN_LOG_INFO, "warn": _lib.GRAN_LOG_WARN,
               "warning": _lib.GRAN_LOG_WARN, "error": _lib.GRAN_LOG_ERROR}
_LOG_NAMES = {v: k for k, v in _LOG_LEVELS.items() if k != "warning"}
# Every installed log callback stays referenced: a call may still be in flight on another thread
# when it is replaced, and ctypes frees the C trampoline with the Python object.
_LOG_KEEP: list = []
_LOG_LOCK = threading.Lock()


def set_log_callback(callback: Optional[Callable[[str, str], Any]], level: Any = "warn") -> None:
    """Sends library messages at `level` ('debug', 'info', 'warn', 'error') and above to
    `callback(level_name, message)`; None turns logging off. The callback may run on any thread
    that calls into gran; exceptions it raises are ignored."""
    lvl = _LOG_LEVELS[level.lower()] if isinstance(level, str) else _uint("level", level, 32)
    if callback is None:
        _LIB.gran_set_log_callback(GranLogCallback(), None, lvl)
        return

    def _bridge(level_: int, message: bytes, _user_data: Any) -> None:
        try:
            callback(_LOG_NAMES.get(level_, str(level_)), (message or b"").decode("utf-8", "replace"))
        except BaseException:  # noqa: BLE001 - nothing may cross into the C library
            pass

    cb = GranLogCallback(_bridge)
    with _LOG_LOCK:
        _LOG_KEEP.append(cb)
    _LIB.gran_set_log_callback(cb, None, lvl)


# ----------------------------------------------------------------------------------------------
# Plain-data results
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelConfig:
    """A model's shape and initial weights (GranModelConfig). `device` is 'auto', 'cpu',
    'cuda' or 'cuda:N'; a live model reports its concrete device ('cpu' or 'cuda:N').
    `classes`: 0 for an unconditional model (the default), else 2 ..= 256 for a
    class-conditional one, which draws the class it is asked for and trains on labelled data.
    `upsampling`: how the generator doubles its feature maps, 'transposed' (5x5 transposed
    convolutions, the paper's; the default) or 'resize' (nearest-neighbour upsampling and a 5x5
    convolution: no checkerboard artifacts)."""

    height: int = 28
    width: int = 28
    channels: int = 1
    steps: int = 3
    z_dim: int = 100
    hidden_dim: int = 100
    width_scale: float = 1.0
    leaky_relu: bool = True
    device: str = "auto"
    seed: int = 0
    classes: int = 0
    upsampling: str = "transposed"

    def _to_c(self) -> GranModelConfig:
        c = GranModelConfig()
        _LIB.gran_model_config_init(byref(c))
        c.height = _uint("height", self.height, 32)
        c.width = _uint("width", self.width, 32)
        c.channels = _uint("channels", self.channels, 32)
        c.steps = _uint("steps", self.steps, 32)
        c.z_dim = _uint("z_dim", self.z_dim, 32)
        c.hidden_dim = _uint("hidden_dim", self.hidden_dim, 32)
        c.width_scale = float(self.width_scale)
        c.leaky_relu = 1 if self.leaky_relu else 0
        c.device = _device(self.device)
        c.seed = _uint("seed", self.seed, 64)
        c.classes = _uint("classes", self.classes, 32)
        c.upsampling = _named("upsampling", self.upsampling, _UPSAMPLINGS, "'transposed' or 'resize'")
        return c

    @classmethod
    def _from_c(cls, c: GranModelConfig) -> "ModelConfig":
        return cls(
            height=c.height, width=c.width, channels=c.channels, steps=c.steps, z_dim=c.z_dim,
            hidden_dim=c.hidden_dim, width_scale=c.width_scale, leaky_relu=bool(c.leaky_relu),
            device=_device_name(c.device), seed=c.seed, classes=c.classes,
            upsampling=_UPSAMPLING_NAMES.get(c.upsampling, str(c.upsampling)),
        )

    @classmethod
    def defaults(cls) -> "ModelConfig":
        """The library's defaults (gran_model_config_init)."""
        c = GranModelConfig()
        _LIB.gran_model_config_init(byref(c))
        return cls._from_c(c)


@dataclass(frozen=True)
class Progress:
    """A training progress report (GranProgress): means since the previous report."""

    step: int
    total_steps: int
    epoch: int
    d_loss: float
    g_loss: float
    d_real: float
    d_fake: float
    elapsed_seconds: float
    images_per_second: float
    d_dominates: bool
    augment_p: float = 0.0

    @classmethod
    def _from_c(cls, p: GranProgress) -> "Progress":
        return cls(
            step=p.step, total_steps=p.total_steps, epoch=p.epoch, d_loss=p.d_loss, g_loss=p.g_loss,
            d_real=p.d_real, d_fake=p.d_fake, elapsed_seconds=p.elapsed_seconds,
            images_per_second=p.images_per_second, d_dominates=bool(p.d_dominates), augment_p=p.augment_p,
        )


@dataclass(frozen=True)
class DatasetInfo:
    """What Dataset.info reports (GranDatasetInfo)."""

    count: int
    height: int
    width: int
    channels: int
    has_labels: bool


# ----------------------------------------------------------------------------------------------
# Buffers in and out
# ----------------------------------------------------------------------------------------------


def _output(shape: Tuple[int, ...], fmt: int, fill: Callable[[Any, int], int]) -> Any:
    """Allocates an output of `shape` values in `fmt`, lets `fill(pointer, nbytes)` write it.
    Returns a numpy array of that shape, else bytes (U8) or a flat list of floats (F32)."""
    n = 1
    for s in shape:
        n *= s
    f32 = fmt == GRAN_PIXEL_FORMAT_F32_CHW
    if _np is not None:
        arr = _np.empty(shape, dtype=_np.float32 if f32 else _np.uint8)
        _check(fill(arr.ctypes.data_as(c_void_p), arr.nbytes))
        return arr
    if f32:
        buf = (c_float * n)()
        _check(fill(ctypes.cast(buf, c_void_p), sizeof(buf)))
        return list(buf)
    raw = (ctypes.c_uint8 * n)()
    _check(fill(ctypes.cast(raw, c_void_p), n))
    return bytes(raw)


def _floats(values: Any) -> Tuple[Any, int, Any]:
    """(pointer to float32s, number of floats, the object keeping them alive) for a numpy
    array, a buffer of 'f' items, or a (nested) sequence of numbers."""
    if _np is not None and not isinstance(values, (bytes, bytearray)):
        arr = _np.ascontiguousarray(_np.asarray(values, dtype=_np.float32))
        return arr.ctypes.data_as(POINTER(c_float)), int(arr.size), arr
    if isinstance(values, (array.array, memoryview)) and getattr(values, "format", getattr(values, "typecode", "")) == "f":
        n = memoryview(values).nbytes // 4
        buf = (c_float * n).from_buffer_copy(values)
        return buf, n, buf
    flat: list = []

    def walk(v: Any) -> None:
        if isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
        else:
            flat.append(float(v))

    walk(values)
    buf = (c_float * len(flat))(*flat)
    return buf, len(flat), buf


def _classes(classes: Any, count: int) -> Tuple[Any, int, Any]:
    """(pointer to uint32s, how many, the object keeping them alive) for the classes of a
    request of `count` images: an int (one class for every image) or a sequence of ints (one
    per image; a 1-D numpy integer array too). Each must be in [0, 2**32) and there must be 1
    or `count` of them; whether they are below the model's classes is the library's check."""
    if _np is not None and isinstance(classes, _np.ndarray) and classes.ndim > 0:
        if classes.ndim != 1:
            raise _invalid(f"classes have shape {classes.shape}: expected one class per image (1-D)")
        if classes.dtype.kind not in "iu":
            raise TypeError(f"classes must be integers, not {classes.dtype}")
        bad = _np.flatnonzero((classes < 0) | (classes > 0xFFFFFFFF))
        if bad.size:
            i = int(bad[0])
            raise _invalid(f"classes[{i}] is {int(classes[i])}: must be in [0, 2**32)")
        arr = _np.ascontiguousarray(classes, dtype=_np.uint32)
        ptr, n, keep = arr.ctypes.data_as(POINTER(c_uint32)), int(arr.size), arr
    else:
        try:
            single: Optional[int] = operator.index(classes)
        except TypeError:
            single = None
        if single is not None:
            values = [_uint("classes", single, 32)]
        else:
            if isinstance(classes, (str, float)):
                raise TypeError(f"classes must be an int or a sequence of ints, not {type(classes).__name__}")
            try:
                seq = list(classes)
            except TypeError:
                raise TypeError(f"classes must be an int or a sequence of ints, not {type(classes).__name__}") from None
            values = [_uint(f"classes[{i}]", v, 32) for i, v in enumerate(seq)]
        n = len(values)
        keep = (c_uint32 * max(n, 1))(*values)
        ptr = ctypes.cast(keep, POINTER(c_uint32))
    if n not in (1, count):
        raise _invalid(f"{n} classes for {count} images: give one class for every image, or one per image")
    return ptr, n, keep


def _labels(labels: Any, count: int) -> bytes:
    """A dataset's labels (one class per image, 0 .. 255: a sequence of ints, bytes, or a numpy
    integer array) as the `count` bytes gran_dataset_from_labelled_pixels takes."""
    if isinstance(labels, (bytes, bytearray)):
        out = bytes(labels)
    else:
        if isinstance(labels, memoryview):
            labels = labels.tolist()
        if _np is not None and isinstance(labels, _np.ndarray):
            if labels.ndim != 1:
                raise _invalid(f"labels have shape {labels.shape}: expected one label per image (1-D)")
            if labels.dtype.kind not in "iu":
                raise TypeError(f"labels must be integers, not {labels.dtype}")
            labels = labels.tolist()
        if isinstance(labels, (str, float)) or not hasattr(labels, "__iter__"):
            raise TypeError(f"labels must be a sequence of ints, not {type(labels).__name__}")
        values = []
        for i, v in enumerate(labels):
            try:
                k = operator.index(v)
            except TypeError:
                raise TypeError(f"labels[{i}] must be an integer, not {type(v).__name__}") from None
            if not 0 <= k < 256:
                raise _invalid(f"labels[{i}] is {k}: labels are 0 .. 255")
            values.append(k)
        out = bytes(values)
    if len(out) != count:
        raise _invalid(f"{len(out)} labels for {count} images: give one per image")
    return out


def _images_in(images: Any, fmt: Any, size: Optional[Tuple[int, int, int]]) -> Tuple[Any, int, int, int, int, int, Any]:
    """Parses images given to the library: (pointer, count, height, width, channels, format,
    keep-alive). numpy arrays: uint8 (N, H, W, C) [or (N, C, H, W) with format 'u8_chw'] or
    (N, H, W) grey; floats (N, C, H, W) or (N, H, W) in [0, 1]. Raw bytes or a flat list of floats
    need `size` = (height, width, channels). The buffer length is checked here, so the library
    never reads past it."""
    want = None if fmt is None else _format(fmt)
    if _np is not None and isinstance(images, _np.ndarray) and images.ndim >= 3:
        arr = images
        if arr.dtype == _np.uint8:
            f = GRAN_PIXEL_FORMAT_U8_HWC if want is None else want
            if f == GRAN_PIXEL_FORMAT_F32_CHW:
                raise _invalid("uint8 images with format 'f32': pass floats in [0, 1], or format 'u8'")
        elif _np.issubdtype(arr.dtype, _np.floating):
            f = GRAN_PIXEL_FORMAT_F32_CHW if want is None else want
            if f != GRAN_PIXEL_FORMAT_F32_CHW:
                raise _invalid("float images need format 'f32' (N, C, H, W) in [0, 1]; use uint8 for 'u8'")
            arr = arr.astype(_np.float32, copy=False)
        else:
            raise TypeError(f"images must be uint8 or floating point, not {arr.dtype}")
        if arr.ndim == 3:  # (N, H, W): one channel, the same bytes in every layout
            n, h, w = arr.shape
            c = 1
        elif arr.ndim == 4:
            if f == GRAN_PIXEL_FORMAT_U8_HWC:
                n, h, w, c = arr.shape
            else:
                n, c, h, w = arr.shape
        else:
            raise _invalid(f"images have shape {arr.shape}: expected 3 or 4 dimensions")
        if size is not None and (h, w, c) != tuple(size):
            layout = "(N, H, W, C)" if f == GRAN_PIXEL_FORMAT_U8_HWC else "(N, C, H, W)"
            raise _invalid(f"images have shape {arr.shape} {layout}: expected height, width, channels {tuple(size)}")
        arr = _np.ascontiguousarray(arr)
        return arr.ctypes.data_as(c_void_p), n, h, w, c, f, arr

    # Flat data: bytes for the U8 formats, floats for F32.
    if size is None:
        raise _invalid("flat pixel data needs height, width and channels")
    h, w, c = size
    per = h * w * c
    kind = _flat_kind(images)
    if kind is None:  # a sequence of numbers: floats unless a U8 format is asked for
        kind = "u8" if want in (GRAN_PIXEL_FORMAT_U8_HWC, GRAN_PIXEL_FORMAT_U8_CHW) else "f32"
        if kind == "u8":
            images = bytes(images)
    if kind == "u8":
        f = GRAN_PIXEL_FORMAT_U8_HWC if want is None else want
        if f == GRAN_PIXEL_FORMAT_F32_CHW:
            raise _invalid("byte data with format 'f32': pass floats in [0, 1], or format 'u8'")
        if _np is not None and isinstance(images, _np.ndarray):
            images = _np.ascontiguousarray(images).reshape(-1)
        mv = memoryview(images).cast("B")
        nbytes = mv.nbytes
        if per == 0 or nbytes == 0 or nbytes % per:
            raise _invalid(f"{nbytes} bytes are not a positive whole number of {h}x{w}x{c} images")
        buf = (ctypes.c_uint8 * nbytes).from_buffer_copy(mv)
        return ctypes.cast(buf, c_void_p), nbytes // per, h, w, c, f, buf
    f = GRAN_PIXEL_FORMAT_F32_CHW if want is None else want
    if f != GRAN_PIXEL_FORMAT_F32_CHW:
        raise _invalid("float data needs format 'f32'; pass bytes for the U8 formats")
    ptr, n, keep = _floats(images)
    if per == 0 or n == 0 or n % per:
        raise _invalid(f"{n} floats are not a positive whole number of {h}x{w}x{c} images")
    return ctypes.cast(ptr, c_void_p), n // per, h, w, c, f, keep


def _flat_kind(images: Any) -> Optional[str]:
    """'u8' for byte buffers, 'f32' for float buffers, None for plain sequences."""
    if isinstance(images, (bytes, bytearray)):
        return "u8"
    if isinstance(images, memoryview):
        code = images.format
    elif isinstance(images, array.array):
        code = images.typecode
    elif _np is not None and isinstance(images, _np.ndarray):
        return "u8" if images.dtype == _np.uint8 else "f32"
    elif isinstance(images, (list, tuple)):
        return None
    else:
        raise TypeError(f"pixel data must be bytes, a buffer, a sequence of numbers or a numpy array, "
                        f"not {type(images).__name__}")
    if code in ("B", "b", "c"):
        return "u8"
    if code == "f":
        return "f32"
    raise TypeError(f"pixel buffers must hold bytes ('B') or float32 ('f'), not {code!r}")


# ----------------------------------------------------------------------------------------------
# Owned handles
# ----------------------------------------------------------------------------------------------


class _Owned:
    """Owns one library handle: close() frees it (idempotent), so do `with` blocks and garbage
    collection. After close() the (stale) handle stays, so calls raise InvalidHandleError."""

    _free_name = ""

    def __init__(self, handle: int):
        """Wraps (and takes ownership of) a handle from the C API."""
        self._handle = int(handle)
        self._open = True

    @property
    def handle(self) -> int:
        """The C handle."""
        return self._handle

    @property
    def closed(self) -> bool:
        return not self._open

    def close(self) -> None:
        """Frees the object now (idempotent). Later calls on it raise InvalidHandleError."""
        if self._open:
            self._open = False
            getattr(_LIB, self._free_name)(self._handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


# ----------------------------------------------------------------------------------------------
# Process groups (data-parallel training)
# ----------------------------------------------------------------------------------------------

_BACKENDS = {"auto": GRAN_BACKEND_AUTO, "gloo": GRAN_BACKEND_GLOO, "nccl": GRAN_BACKEND_NCCL}


def _backend(b: Any) -> int:
    if isinstance(b, str):
        try:
            return _BACKENDS[b.lower()]
        except KeyError:
            raise _invalid(f"backend {b!r} is unknown: use 'auto', 'gloo' or 'nccl'") from None
    return _uint("backend", b, 32)


class ProcessGroup(_Owned):
    """This process's place in a group of processes that train one model data-parallel
    (c10d: a TCPStore rendezvous served by rank 0, then Gloo). Every process makes its own
    (create() with explicit settings, or from_env() under torchrun) and passes it to
    Model.train(process_group=...). Making one waits until every rank has arrived (at most
    timeout_ms). Free it with close() or a `with` block."""

    _free_name = "gran_process_group_free"

    @classmethod
    def create(cls, rank: int, world_size: int, master_port: int = 29500, master_addr: str = "127.0.0.1",
               timeout_ms: int = 300_000, backend: Any = "auto", local_rank: int = 0) -> "ProcessGroup":
        """Rank `rank` of `world_size` processes meeting at master_addr:master_port (rank 0
        listens there). Raises DistributedError when the rendezvous fails or times out."""
        cfg = GranProcessGroupConfig()
        _LIB.gran_process_group_config_init(byref(cfg))
        cfg.backend = _backend(backend)
        cfg.rank = _uint("rank", rank, 32)
        cfg.world_size = _uint("world_size", world_size, 32)
        cfg.master_port = _uint("master_port", master_port, 32)
        addr = master_addr.encode()
        cfg.master_addr = addr
        cfg.local_rank = _uint("local_rank", local_rank, 32)
        cfg.timeout_ms = _uint("timeout_ms", timeout_ms, 64)
        out = GranProcessGroup(0)
        _check(_LIB.gran_process_group_create(byref(cfg), byref(out)))
        return cls(out.value)

    @classmethod
    def from_env(cls, timeout_ms: int = 300_000, backend: Any = "auto") -> "ProcessGroup":
        """The group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK)."""
        out = GranProcessGroup(0)
        _check(_LIB.gran_process_group_from_env(_backend(backend), _uint("timeout_ms", timeout_ms, 64), byref(out)))
        return cls(out.value)

    def _info(self) -> Tuple[int, int]:
        rank, size = c_uint32(0), c_uint32(0)
        _check(_LIB.gran_process_group_info(self._handle, byref(rank), byref(size)))
        return rank.value, size.value

    @property
    def rank(self) -> int:
        return self._info()[0]

    @property
    def world_size(self) -> int:
        return self._info()[1]


# ----------------------------------------------------------------------------------------------
# Dataset
# ----------------------------------------------------------------------------------------------


class Dataset(_Owned):
    """An immutable set of training images, with or without a label per image, held by the
    library. Free it with close() (or a `with` block); it is also freed when garbage-collected.
    Make one with from_array, from_pixels (both take labels=), load_idx, load_cifar10,
    load_images, load_npy or open_npy."""

    _free_name = "gran_dataset_free"

    # -- constructors --------------------------------------------------------------------------

    @classmethod
    def _make(cls, call: Callable[[Any], int]) -> "Dataset":
        out = GranDataset(0)
        _check(call(byref(out)))
        return cls(out.value)

    @classmethod
    def _from_images(cls, ptr: Any, n: int, h: int, w: int, c: int, f: int, labels: Any) -> "Dataset":
        if labels is None:
            return cls._make(lambda out: _LIB.gran_dataset_from_pixels(ptr, n, h, w, c, f, out))
        lab = _labels(labels, n)
        return cls._make(lambda out: _LIB.gran_dataset_from_labelled_pixels(ptr, lab, n, h, w, c, f, out))

    @classmethod
    def from_array(cls, images: Any, format: Any = None, labels: Any = None) -> "Dataset":
        """From a numpy array (copied): uint8 (N, H, W, C) or (N, H, W); float (N, C, H, W) or
        (N, H, W) with values in [0, 1]. format='u8_chw' reads uint8 as (N, C, H, W).
        labels: None, or one class per image (N ints 0 .. 255: a sequence, bytes or a numpy
        array), for evaluators and class-conditional models."""
        if _np is None:
            raise RuntimeError("Dataset.from_array needs numpy; use Dataset.from_pixels with bytes")
        arr = _np.asarray(images)
        if arr.ndim not in (3, 4):
            raise _invalid(f"images have shape {arr.shape}: expected (N, H, W), (N, H, W, C) or (N, C, H, W)")
        ptr, n, h, w, c, f, keep = _images_in(arr, format, None)
        return cls._from_images(ptr, n, h, w, c, f, labels)

    @classmethod
    def from_pixels(cls, pixels: Any, height: int, width: int, channels: int, format: Any = None,
                    labels: Any = None) -> "Dataset":
        """From flat pixel data (copied): bytes-like for 'u8' (HWC, the default for bytes) or
        'u8_chw'; a sequence or buffer of floats in [0, 1] for 'f32' (CHW, the default for
        floats). The image count is the length divided by height * width * channels. labels:
        None, or one class per image (ints 0 .. 255), as from_array takes them."""
        size = (_uint("height", height, 32), _uint("width", width, 32), _uint("channels", channels, 32))
        if _np is not None and isinstance(pixels, _np.ndarray):
            pixels = pixels.reshape(-1)
        ptr, n, h, w, c, f, keep = _images_in(pixels, format, size)
        return cls._from_images(ptr, n, h, w, c, f, labels)

    @classmethod
    def load_idx(cls, images: Any, labels: Any = None) -> "Dataset":
        """MNIST-style IDX files, plain or gzip-compressed; `labels` is optional."""
        ip = _path(images)
        lp = None if labels is None else _path(labels)
        return cls._make(lambda out: _LIB.gran_dataset_load_idx(ip, lp, out))

    @classmethod
    def load_cifar10(cls, path: Any) -> "Dataset":
        """A CIFAR-10 binary batch file, or the folder holding data_batch_*.bin."""
        p = _path(path)
        return cls._make(lambda out: _LIB.gran_dataset_load_cifar10(p, out))

    @classmethod
    def load_images(cls, path: Any, height: int, width: int, channels: int, labels: str = "auto",
                    center_crop: bool = False) -> "Dataset":
        """Every PNG/JPEG in `path`, a folder (at any depth) or a .zip (StyleGAN2-ADA's layout),
        converted to `channels` and resized to height x width (center_crop=True: the largest
        centred crop of that shape first). labels: 'auto' (dataset.json when present),
        'class-folders' (the first-level folder, as torchvision's ImageFolder) or 'none'."""
        p = _path(path)
        h, w, c = _uint("height", height, 32), _uint("width", width, 32), _uint("channels", channels, 32)
        kinds = {"auto": 0, "class-folders": 1, "none": 2}
        if labels not in kinds:
            raise _invalid(f"labels {labels!r}: 'auto', 'class-folders' or 'none'")
        fit = 1 if center_crop else 0
        return cls._make(lambda out: _LIB.gran_dataset_load_image_files(p, h, w, c, kinds[labels], fit, out))

    @classmethod
    def load_npy(cls, path: Any) -> "Dataset":
        """A .npy array of uint8 images, (N, H, W, C) or (N, C, H, W) with C 1 or 3, or (N, H, W),
        as np.save writes it; labels from NAME.labels.npy beside it when present."""
        p = _path(path)
        return cls._make(lambda out: _LIB.gran_dataset_load_npy(p, out))

    @classmethod
    def open_npy(cls, path: Any) -> "Dataset":
        """As load_npy, without loading the images: training reads each minibatch from the file
        ahead of the step, so memory does not grow with the dataset (the same weights as
        load_npy). The file must stay as it is while the dataset is used."""
        p = _path(path)
        return cls._make(lambda out: _LIB.gran_dataset_open_npy(p, out))

    # -- queries -------------------------------------------------------------------------------

    @property
    def info(self) -> DatasetInfo:
        """Image count, size, channels and whether it has labels."""
        i = GranDatasetInfo()
        _LIB.gran_dataset_info_init(byref(i))
        _check(_LIB.gran_dataset_info(self._handle, byref(i)))
        return DatasetInfo(count=i.count, height=i.height, width=i.width, channels=i.channels,
                           has_labels=bool(i.has_labels))

    def __len__(self) -> int:
        return self.info.count

    def __repr__(self) -> str:
        if not self._open:
            return f"<gran.Dataset {self._handle} closed>"
        try:
            i = self.info
            return f"<gran.Dataset {self._handle}: {i.count} x {i.height}x{i.width}x{i.channels}>"
        except Exception:  # noqa: BLE001
            return f"<gran.Dataset {self._handle}>"


# ----------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------

_TRAIN_FIELDS = ("batch_size", "iterations", "epochs", "lr_g", "beta1_g", "beta2_g", "lr_d", "beta1_d",
                 "beta2_d", "d_weight_decay", "seed", "report_every", "checkpoint_every", "ema_decay", "ema_start",
                 "augment_p", "augment_target", "augment_speed", "r1_gamma", "r1_every", "canvas_penalty")


class Model(_Owned):
    """A GRAN model (generator and discriminator) held by the library. Free it with close() (or
    a `with` block); it is also freed when garbage-collected. Closing a model that is training on
    another thread cancels that run. Make one with create(), from_config() or load()."""

    _free_name = "gran_model_free"

    # -- constructors --------------------------------------------------------------------------

    @classmethod
    def create(cls, *, height: int = 28, width: int = 28, channels: int = 1, steps: int = 3, z_dim: int = 100,
               hidden_dim: int = 100, width_scale: float = 1.0, leaky_relu: bool = True, device: Any = "auto",
               seed: int = 0, classes: int = 0, upsampling: Any = "transposed") -> "Model":
        """A model with fresh weights. Sizes: square 28, 32, 64 or 128; channels 1 or 3.
        device: 'auto' (CUDA 0 if present, else CPU), 'cpu', 'cuda' or 'cuda:N'. classes: 0
        (unconditional, the default) or 2 ..= 256 for a class-conditional model: its images are
        drawn as the classes sample(classes=...) names, and it trains on labelled data (labels
        0 .. classes-1). upsampling: 'transposed' (the default) or 'resize' (ModelConfig)."""
        return cls.from_config(ModelConfig(height=height, width=width, channels=channels, steps=steps, z_dim=z_dim,
                                           hidden_dim=hidden_dim, width_scale=width_scale, leaky_relu=leaky_relu,
                                           device=device, seed=seed, classes=classes, upsampling=upsampling))

    @classmethod
    def from_config(cls, config: ModelConfig) -> "Model":
        """A model with fresh weights from a ModelConfig."""
        c = config._to_c()
        out = GranModel(0)
        _check(_LIB.gran_model_create(byref(c), byref(out)))
        return cls(out.value)

    @classmethod
    def load(cls, path: Any, device: Any = None) -> "Model":
        """Loads a checkpoint written by save(). device None: where it was saved when that
        device exists here, else auto; or 'auto', 'cpu', 'cuda', 'cuda:N'."""
        p = _path(path)
        dev = None if device is None else byref(_device(device))
        out = GranModel(0)
        _check(_LIB.gran_model_load(p, dev, byref(out)))
        return cls(out.value)

    # -- queries -------------------------------------------------------------------------------

    def _config_c(self) -> GranModelConfig:
        c = GranModelConfig()
        _LIB.gran_model_config_init(byref(c))
        _check(_LIB.gran_model_config(self._handle, byref(c)))
        return c

    @property
    def config(self) -> ModelConfig:
        """The configuration; `device` is the concrete device ('cpu' or 'cuda:N')."""
        return ModelConfig._from_c(self._config_c())

    @property
    def classes(self) -> int:
        """The classes of a class-conditional model (2 ..= 256); 0 for an unconditional one."""
        return int(self._config_c().classes)

    @property
    def step(self) -> int:
        """Training steps completed so far."""
        s = c_uint64(0)
        _check(_LIB.gran_model_step(self._handle, byref(s)))
        return s.value

    @property
    def precision(self) -> str:
        """The precision sampling and scoring compute in: 'fp32' (the default; also after
        load()) or 'bf16' (bfloat16 mixed precision). Set it to change later calls."""
        p = _lib.GranPrecision(0)
        _check(_LIB.gran_model_precision(self._handle, byref(p)))
        return "bf16" if p.value == GRAN_PRECISION_BF16 else "fp32"

    @precision.setter
    def precision(self, value: Any) -> None:
        _check(_LIB.gran_model_set_precision(self._handle, _precision(value)))

    @property
    def has_averaged(self) -> bool:
        """Whether the model has an averaged generator (trained with ema_decay > 0)."""
        v = c_int32(0)
        _check(_LIB.gran_model_has_averaged(self._handle, byref(v)))
        return bool(v.value)

    @property
    def generator(self) -> str:
        """The generator sampling uses: 'averaged' (the default: the averaged generator when the
        model has one, else the raw one) or 'raw'. Set it to change later calls; not saved."""
        return getattr(self, "_generator", "averaged")

    @generator.setter
    def generator(self, value: str) -> None:
        choices = {"averaged": GRAN_GENERATOR_AVERAGED, "raw": GRAN_GENERATOR_RAW}
        if value not in choices:
            raise _invalid(f"generator {value!r} is unknown: use 'averaged' or 'raw'")
        _check(_LIB.gran_model_set_generator(self._handle, choices[value]))
        self._generator = value

    # -- checkpoints ---------------------------------------------------------------------------

    def save(self, path: Any) -> None:
        """Writes a checkpoint (configuration, weights, optimizer state, step) atomically."""
        _check(_LIB.gran_model_save(self._handle, _path(path)))

    def export(self, path: Any, storage: Any = "fp32") -> None:
        """Writes the generator to `path` for shipping (the averaged generator when the model
        has one), stored as 'fp32' (the same images, bit for bit) or 'bf16' (half the size).
        Model.load reads it as a sampling-only model (inference_only)."""
        _check(_LIB.gran_model_export(self._handle, _path(path), _precision(storage)))

    @property
    def inference_only(self) -> bool:
        """True for a model loaded from a generator export: it samples, but cannot train,
        discriminate, take part in GAM or be saved as a checkpoint (InvalidArgumentError)."""
        v = c_int32(0)
        _check(_LIB.gran_model_inference_only(self._handle, byref(v)))
        return bool(v.value)

    # -- training ------------------------------------------------------------------------------

    def train(self, dataset: Any, *, iterations: Optional[int] = None, epochs: Optional[int] = None,
              batch_size: Optional[int] = None, lr_g: Optional[float] = None, beta1_g: Optional[float] = None,
              beta2_g: Optional[float] = None, lr_d: Optional[float] = None, beta1_d: Optional[float] = None,
              beta2_d: Optional[float] = None, d_weight_decay: Optional[float] = None, seed: Optional[int] = None,
              report_every: Optional[int] = None, checkpoint_path: Any = None,
              checkpoint_every: Optional[int] = None, precision: Any = None,
              ema_decay: Optional[float] = None, ema_start: Optional[int] = None, lr_schedule: Any = None,
              cuda_graph: bool = False, process_group: Optional["ProcessGroup"] = None,
              augment: Any = None, augment_p: Optional[float] = None, augment_target: Optional[float] = None,
              augment_speed: Optional[float] = None, augment_flip: bool = False, r1_gamma: Optional[float] = None,
              r1_every: Optional[int] = None, recompute: bool = False, canvas_penalty: Optional[float] = None,
              on_progress: Optional[Callable[[Progress], Any]] = None) -> Progress:
        """Trains on `dataset` (a Dataset, or a numpy array for Dataset.from_array), continuing
        from the model's step counter, and returns the final progress report. Settings left at
        None take the library's defaults (2000 iterations, batch 64, Adam 8e-4 / 3.2e-3, betas
        (0.5, 0.999), a report every 100 steps, 'fp32'). Giving only `epochs` trains for that many
        passes. precision 'bf16': bfloat16 mixed precision (faster on hardware with bfloat16
        units; weights and optimizer state stay float32). ema_decay (default 0.99; 0: off) and
        ema_start (default 200) set the averaged generator that sampling uses by default;
        lr_schedule: 'constant' (default), 'inverse-epoch' (lr / (1 + epoch / 50)) or 'linear'
        (to zero at the run's end). cuda_graph=True: on a CUDA device, capture the training step
        as one CUDA graph after 3 eager steps and replay it (elsewhere the steps run eagerly).
        process_group: train data-parallel in that ProcessGroup (every rank calls train with the
        same settings; batch_size is the global batch; rank 0 alone writes checkpoint_path).
        augment: what the discriminator sees is augmented (translation, cutout, colour; flips
        with augment_flip=True): 'ada' (default: a probability the run tunes to hold the mean
        sign of D's real outputs at augment_target, 0.6, moving by at most 1 over augment_speed
        images, never below augment_p, 0.3; the model keeps it), 'fixed' (probability augment_p)
        or 'off'. r1_gamma: weight of the R1 gradient penalty on real images every r1_every
        steps (default 4); 0: off; None: by image size (0 for 28x28, 1 for 32x32, 10 for 64x64
        and larger). canvas_penalty: weight of a penalty on the generator's summed canvas
        beyond +-5 (before the sigmoid), which keeps pixels out of the saturated state where
        they stop learning; 0: off; None: by image size (0 for 28x28, 1 for 32x32 and
        larger). Progress reports carry augment_p. recompute=True: per-step recomputation of
        the generator, training memory flat in the number of drawing steps for one more
        forward pass of the generator per step (the same gradients to float tolerance).

        A class-conditional model (classes > 0) trains on a dataset with labels 0 .. classes-1
        (from_array or from_pixels with labels=, load_idx with labels, load_npy beside
        NAME.labels.npy, load_images with class folders or dataset.json, load_cifar10); other
        data raises InvalidArgumentError.

        on_progress(progress) is called with each report on this thread; a true return value
        stops training (CancelledError). An exception raised in it stops training and is
        re-raised here. Raises CancelledError, BusyError, DivergedError, ... on failure."""
        _require_libgran("Model.train")
        if not isinstance(dataset, Dataset):
            with Dataset.from_array(dataset) as tmp:
                return self.train(tmp, iterations=iterations, epochs=epochs, batch_size=batch_size, lr_g=lr_g,
                                  beta1_g=beta1_g, beta2_g=beta2_g, lr_d=lr_d, beta1_d=beta1_d, beta2_d=beta2_d,
                                  d_weight_decay=d_weight_decay, seed=seed, report_every=report_every,
                                  checkpoint_path=checkpoint_path, checkpoint_every=checkpoint_every,
                                  precision=precision, ema_decay=ema_decay, ema_start=ema_start,
                                  lr_schedule=lr_schedule, cuda_graph=cuda_graph, process_group=process_group,
                                  augment=augment, augment_p=augment_p, augment_target=augment_target,
                                  augment_speed=augment_speed, augment_flip=augment_flip, r1_gamma=r1_gamma,
                                  r1_every=r1_every, recompute=recompute, canvas_penalty=canvas_penalty,
                                  on_progress=on_progress)
        cfg = GranTrainConfig()
        _LIB.gran_train_config_init(byref(cfg))
        if epochs is not None and iterations is None:
            iterations = 0
        given = dict(batch_size=batch_size, iterations=iterations, epochs=epochs, lr_g=lr_g, beta1_g=beta1_g,
                     beta2_g=beta2_g, lr_d=lr_d, beta1_d=beta1_d, beta2_d=beta2_d, d_weight_decay=d_weight_decay,
                     seed=seed, report_every=report_every, checkpoint_every=checkpoint_every,
                     ema_decay=ema_decay, ema_start=ema_start, augment_p=augment_p, augment_target=augment_target,
                     augment_speed=augment_speed, r1_gamma=r1_gamma, r1_every=r1_every,
                     canvas_penalty=canvas_penalty)
        ints = {"batch_size": 32, "epochs": 32, "iterations": 64, "seed": 64, "report_every": 64,
                "checkpoint_every": 64, "ema_start": 64, "r1_every": 32}
        for name in _TRAIN_FIELDS:
            v = given[name]
            if v is None:
                continue
            setattr(cfg, name, _uint(name, v, ints[name]) if name in ints else float(v))
        if precision is not None:
            cfg.precision = _precision(precision)
        if lr_schedule is not None:
            cfg.lr_schedule = _lr_schedule(lr_schedule)
        cfg.cuda_graph = 1 if cuda_graph else 0
        if augment is not None:
            cfg.augment = _augment(augment)
        cfg.augment_flip = 1 if augment_flip else 0
        cfg.recompute = 1 if recompute else 0
        if process_group is not None:
            if not isinstance(process_group, ProcessGroup):
                raise _invalid("process_group must be a ProcessGroup")
            cfg.process_group = process_group._handle
        path_bytes = None if checkpoint_path is None else _path(checkpoint_path)
        cfg.checkpoint_path = path_bytes

        raised: list = []
        callback = None
        if on_progress is not None:
            def _bridge(progress: Any, _user_data: Any) -> int:
                # Runs inside gran_train: nothing may propagate into the C library.
                try:
                    return 1 if on_progress(Progress._from_c(progress.contents)) else 0
                except BaseException as e:  # noqa: BLE001 - re-raised after gran_train returns
                    raised.append(e)
                    return 1
            callback = GranProgressCallback(_bridge)  # referenced until gran_train returns
            cfg.on_progress = callback

        last = GranProgress()
        _LIB.gran_progress_init(byref(last))
        status = _LIB.gran_train(self._handle, dataset._handle, byref(cfg), byref(last))
        del callback, path_bytes
        if raised:
            raise raised[0]
        _check(status)
        return Progress._from_c(last)

    def cancel(self) -> None:
        """Asks a training run in progress (another thread, or the progress callback) to stop;
        its train() raises CancelledError. Does nothing when the model is not training."""
        _check(_LIB.gran_cancel(self._handle))

    # -- sampling ------------------------------------------------------------------------------

    def _shape(self, c: GranModelConfig, count: int, fmt: int) -> Tuple[int, ...]:
        if fmt == GRAN_PIXEL_FORMAT_U8_HWC:
            return (count, c.height, c.width, c.channels)
        return (count, c.channels, c.height, c.width)

    def sample(self, count: int, seed: int = 0, format: Any = "u8", *, classes: Any = None) -> Any:
        """`count` images from the latents of `seed`. format 'u8': uint8 (count, H, W, C);
        'u8_chw': uint8 (count, C, H, W); 'f32': float32 in [0, 1] (count, C, H, W). Without
        numpy: bytes for the U8 formats, a flat list of floats for 'f32'. Image i depends only on
        the weights, `seed` and i.

        classes (class-conditional models only, see `classes`): None draws image i's class
        uniformly from (seed, i); an int asks for that class for every image; a sequence of
        `count` ints (or a numpy integer array) one class per image. Image i then depends only
        on the weights, `seed`, i and its class. A class >= the model's classes, or classes on
        an unconditional model, raise InvalidArgumentError."""
        count, seed, fmt = _uint("count", count, 32), _uint("seed", seed, 64), _format(format)
        c = self._config_c()
        shape = self._shape(c, count, fmt)
        if classes is None:
            return _output(shape, fmt, lambda p, n: _LIB.gran_sample(self._handle, seed, count, fmt, p, n))
        cp, cn, keep = _classes(classes, count)
        return _output(shape, fmt,
                       lambda p, n: _LIB.gran_sample_class(self._handle, seed, count, cp, cn, fmt, p, n))

    def sample_steps(self, count: int, seed: int = 0, format: Any = "u8", *, classes: Any = None) -> Any:
        """The canvas after each of the T drawing steps: shape (T, count, ...) as in sample();
        the last block equals sample(count, seed, format, classes=classes). `classes` as in
        sample()."""
        count, seed, fmt = _uint("count", count, 32), _uint("seed", seed, 64), _format(format)
        c = self._config_c()
        shape = (c.steps,) + self._shape(c, count, fmt)
        if classes is None:
            return _output(shape, fmt, lambda p, n: _LIB.gran_sample_steps(self._handle, seed, count, fmt, p, n))
        cp, cn, keep = _classes(classes, count)
        return _output(shape, fmt,
                       lambda p, n: _LIB.gran_sample_steps_class(self._handle, seed, count, cp, cn, fmt, p, n))

    def latents(self, count: int, seed: int = 0) -> Any:
        """The latents sample(count, seed) uses: float32 (count, z_dim) (a flat list without
        numpy). Edit them and pass them to generate()."""
        count, seed = _uint("count", count, 32), _uint("seed", seed, 64)
        c = self._config_c()
        return _output((count, c.z_dim), GRAN_PIXEL_FORMAT_F32_CHW,
                       lambda p, n: _LIB.gran_latents(self._handle, seed, count, ctypes.cast(p, POINTER(c_float)),
                                                      n // 4))

    def generate(self, z: Any, format: Any = "u8", *, classes: Any = None) -> Any:
        """Images from latents `z`: (count, z_dim) floats (or a flat sequence of count * z_dim).
        Output as in sample(). A class-conditional model needs `classes` (as sample() takes
        them: an int for every image, or one per image); without them it raises
        InvalidArgumentError. generate(latents(n, seed), classes=k) is sample(n, seed,
        classes=k)."""
        fmt = _format(format)
        c = self._config_c()
        ptr, n, keep = _floats(z)
        if n == 0 or n % c.z_dim:
            raise _invalid(f"z holds {n} floats: not a positive multiple of z_dim {c.z_dim}")
        count = _uint("count", n // c.z_dim, 32)
        shape = self._shape(c, count, fmt)
        if classes is None:
            return _output(shape, fmt, lambda p, nb: _LIB.gran_generate(self._handle, ptr, count, fmt, p, nb))
        cp, cn, ckeep = _classes(classes, count)
        return _output(shape, fmt,
                       lambda p, nb: _LIB.gran_generate_class(self._handle, ptr, count, cp, cn, fmt, p, nb))

    def discriminate(self, images: Any, format: Any = None, *, classes: Any = None) -> Any:
        """D(x) for each image: float32 (count,) (a list without numpy). `images`: uint8
        (N, H, W, C) / (N, H, W), float (N, C, H, W) in [0, 1], or flat bytes / floats of whole
        images of the model's size. A class-conditional model judges each image as the class
        `classes` names (an int for every image, or one per image: D(x, y)); without them, as
        the class its discriminator finds most real."""
        c = self._config_c()
        ptr, n, h, w, ch, f, keep = _images_in(images, format, (c.height, c.width, c.channels))
        count = _uint("count", n, 32)
        if classes is None:
            return _output((count,), GRAN_PIXEL_FORMAT_F32_CHW,
                           lambda p, nb: _LIB.gran_discriminate(self._handle, ptr, count, f,
                                                                ctypes.cast(p, POINTER(c_float))))
        cp, cn, ckeep = _classes(classes, count)
        return _output((count,), GRAN_PIXEL_FORMAT_F32_CHW,
                       lambda p, nb: _LIB.gran_discriminate_class(self._handle, ptr, count, cp, cn, f,
                                                                  ctypes.cast(p, POINTER(c_float))))

    def __repr__(self) -> str:
        if not self._open:
            return f"<gran.Model {self._handle} closed>"
        try:
            c = self.config
            classes = f", {c.classes} classes" if c.classes else ""
            return (f"<gran.Model {self._handle}: {c.height}x{c.width}x{c.channels}, T={c.steps}, "
                    f"z_dim={c.z_dim}{classes}, {c.device}, step {self.step}>")
        except Exception:  # noqa: BLE001
            return f"<gran.Model {self._handle}>"


# ----------------------------------------------------------------------------------------------
# Quality evaluator
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quality:
    """The quality of a set of images under an Evaluator (GranQuality). Lower
    frechet_distance is closer to the real data; classifier_score is in [1, classes];
    nearest_train_distance (NaN without a training set) much below
    reference_nearest_train_distance suggests copies; class_share has one entry per class.
    class_accuracy (one entry per class too) is for a class-conditional model's samples
    (evaluate_model): the share of the samples asked to be of each class that the classifier
    assigns to it; NaN for a class no sample asked for, and everywhere for an unconditional
    model or a dataset."""

    classes: int
    count: int
    frechet_distance: float
    classifier_score: float
    nearest_train_distance: float
    reference_nearest_train_distance: float
    class_share: Tuple[float, ...]
    class_accuracy: Tuple[float, ...] = ()

    @classmethod
    def _from_c(cls, q: GranQuality) -> "Quality":
        n = min(int(q.classes), _lib.GRAN_MAX_CLASSES)
        return cls(classes=q.classes, count=q.count, frechet_distance=q.frechet_distance,
                   classifier_score=q.classifier_score, nearest_train_distance=q.nearest_train_distance,
                   reference_nearest_train_distance=q.reference_nearest_train_distance,
                   class_share=tuple(q.class_share[:n]), class_accuracy=tuple(q.class_accuracy[:n]))


class Evaluator(_Owned):
    """A quality evaluator: a small classifier trained on labelled images, then used for the
    Frechet distance of its features, a classifier score, class shares and a copy check, on a
    model's samples or on any dataset. Make one with Evaluator.train(labelled_dataset)."""

    _free_name = "gran_evaluator_free"

    @classmethod
    def train(cls, labelled: Dataset, *, epochs: Optional[int] = None, batch_size: Optional[int] = None,
              lr: Optional[float] = None, seed: Optional[int] = None, device: Any = None) -> "Evaluator":
        """Trains the classifier on a dataset with labels (load_idx with labels, load_cifar10).
        Settings left at None take the library's defaults (5 epochs, batch 64, lr 1e-3, seed 0,
        device auto)."""
        cfg = GranEvaluatorConfig()
        _LIB.gran_evaluator_config_init(byref(cfg))
        if epochs is not None:
            cfg.epochs = _uint("epochs", epochs, 32)
        if batch_size is not None:
            cfg.batch_size = _uint("batch_size", batch_size, 32)
        if lr is not None:
            cfg.lr = float(lr)
        if seed is not None:
            cfg.seed = _uint("seed", seed, 64)
        if device is not None:
            cfg.device = _device(device)
        out = GranEvaluator(0)
        _check(_LIB.gran_evaluator_train(labelled._handle, byref(cfg), byref(out)))
        return cls(out.value)

    def accuracy(self, labelled: Dataset) -> float:
        """Share of the labelled images classified as their label (held-out accuracy)."""
        v = c_double(0.0)
        _check(_LIB.gran_evaluator_accuracy(self._handle, labelled._handle, byref(v)))
        return v.value

    def evaluate_model(self, model: "Model", reference: Dataset, *, samples: int = 1000, seed: int = 0,
                       train: Optional[Dataset] = None) -> Quality:
        """Quality of `samples` images of `model` (latents from `seed`) against the real images of
        `reference` (held-out data); with `train`, also the nearest-training-image copy check.
        A class-conditional model draws each image as a class drawn uniformly from (seed, i),
        and class_accuracy says, per class, how often the classifier agrees."""
        q = GranQuality()
        _LIB.gran_quality_init(byref(q))
        _check(_LIB.gran_evaluate_model(self._handle, model._handle, _uint("seed", seed, 64),
                                        _uint("samples", samples, 32), reference._handle,
                                        0 if train is None else train._handle, byref(q)))
        return Quality._from_c(q)

    def evaluate_dataset(self, images: Dataset, reference: Dataset, *, train: Optional[Dataset] = None) -> Quality:
        """Quality of the images of a dataset (real data, or images made elsewhere), as
        evaluate_model."""
        q = GranQuality()
        _LIB.gran_quality_init(byref(q))
        _check(_LIB.gran_evaluate_dataset(self._handle, images._handle, reference._handle,
                                          0 if train is None else train._handle, byref(q)))
        return Quality._from_c(q)

    def __repr__(self) -> str:
        return f"<gran.Evaluator {self._handle}{' closed' if not self._open else ''}>"


# ----------------------------------------------------------------------------------------------
# GAM
# ----------------------------------------------------------------------------------------------

_VERDICTS = {_lib.GRAN_GAM_TIE: "tie", _lib.GRAN_GAM_A_WINS: "a_wins", _lib.GRAN_GAM_B_WINS: "b_wins",
             _lib.GRAN_GAM_UNDECIDED: "undecided"}
_RANKINGS = {_lib.GRAN_GAM_EVEN: "even", _lib.GRAN_GAM_A_FIRST: "a_first", _lib.GRAN_GAM_B_FIRST: "b_first"}


@dataclass(frozen=True)
class GamResult:
    """The outcome of gam() (GranGamResult). `verdict` is 'tie', 'a_wins', 'b_wins' or
    'undecided' (|r_test - 1| above the tolerance: the comparison is unfair). The accuracy_*
    fields are the same comparison in the authors' accuracy form (ratios of 1 - error);
    `accuracy_ranking` is 'a_first', 'b_first' or 'even'."""

    verdict: str
    test_error_a: float
    test_error_b: float
    sample_error_a: float
    sample_error_b: float
    r_test: float
    r_sample: float
    test_count: int
    sample_count: int
    accuracy_r_test: float
    accuracy_r_sample: float
    accuracy_ranking: str


def gam(a: Model, b: Model, test: Dataset, *, samples: Optional[int] = None, seed: Optional[int] = None,
        tolerance: Optional[float] = None, score_batch: Optional[int] = None) -> GamResult:
    """Compares models `a` and `b` with the Generative Adversarial Metric on held-out images
    `test`: each discriminator judges the test data and the other generator's samples. Settings
    left at None take the library's defaults (1000 samples per generator, seed 0, tolerance 0.2,
    score_batch 100: scored in chunks of 100 normalised by their own batch statistics; 0 scores
    each image alone with running statistics)."""
    cfg = GranGamConfig()
    _LIB.gran_gam_config_init(byref(cfg))
    if samples is not None:
        cfg.samples = _uint("samples", samples, 32)
    if seed is not None:
        cfg.seed = _uint("seed", seed, 64)
    if tolerance is not None:
        cfg.tolerance = float(tolerance)
    if score_batch is not None:
        cfg.score_batch = _uint("score_batch", score_batch, 32)
    out = GranGamResult()
    _LIB.gran_gam_result_init(byref(out))
    _check(_LIB.gran_gam(a._handle, b._handle, test._handle, byref(cfg), byref(out)))
    return GamResult(
        verdict=_VERDICTS.get(out.verdict, str(out.verdict)), test_error_a=out.test_error_a,
        test_error_b=out.test_error_b, sample_error_a=out.sample_error_a, sample_error_b=out.sample_error_b,
        r_test=out.r_test, r_sample=out.r_sample, test_count=out.test_count, sample_count=out.sample_count,
        accuracy_r_test=out.accuracy_r_test, accuracy_r_sample=out.accuracy_r_sample,
        accuracy_ranking=_RANKINGS.get(out.accuracy_ranking, str(out.accuracy_ranking)),
    )


# ----------------------------------------------------------------------------------------------
# PNG
# ----------------------------------------------------------------------------------------------


def write_png(path: Any, images: Any, columns: int = 8, *, format: Any = None, height: Optional[int] = None,
              width: Optional[int] = None, channels: Optional[int] = None) -> None:
    """Writes images as one PNG grid with `columns` columns. `images`: a numpy array as
    sample() returns (uint8 (N, H, W, C), float (N, C, H, W)), or flat bytes / floats with
    height, width and channels given."""
    size = None
    if height is not None or width is not None or channels is not None:
        if height is None or width is None or channels is None:
            raise _invalid("give all of height, width and channels, or none")
        size = (_uint("height", height, 32), _uint("width", width, 32), _uint("channels", channels, 32))
    ptr, n, h, w, c, f, keep = _images_in(images, format, size)
    _check(_LIB.gran_write_png(_path(path), ptr, _uint("count", n, 32), h, w, c, f, _uint("columns", columns, 32)))


def write_gif(path: Any, frames: Any, columns: int = 8, delay_ms: int = 400, hold_ms: int = 2000) -> None:
    """Writes an animation as a looping GIF: frame t is a grid of images with `columns`
    columns, shown delay_ms milliseconds (the last hold_ms). `frames`: a numpy array with one
    more leading axis than write_png takes, as sample_steps() returns it: (T, N, H, W, C) uint8
    or (T, N, C, H, W) floats in [0, 1]. Needs libgran (not libgran_runtime)."""
    _require_libgran("write_gif")
    if _np is None or not isinstance(frames, _np.ndarray) or frames.ndim not in (4, 5):
        raise _invalid("frames must be a numpy array (frames, images, ...) as sample_steps() returns")
    t = frames.shape[0]
    ptr, n, h, w, c, f, keep = _images_in(frames.reshape((-1,) + frames.shape[2:]), None, None)
    _check(_LIB.gran_write_gif(_path(path), ptr, _uint("frames", t, 32), _uint("count", n // max(t, 1), 32), h, w, c,
                               f, _uint("columns", columns, 32), _uint("delay_ms", delay_ms, 32),
                               _uint("hold_ms", hold_ms, 32)))
