"""Loading the library and the ctypes mirror of include/gran.h (structs, constants, prototypes).

Two libraries implement this C API: libgran (everything: create, train, sample, evaluate; on
libtorch) and libgran_runtime (sampling only, pure Rust, a few hundred kilobytes), whose header
include/gran_runtime.h is a declaration-for-declaration subset of gran.h. load() tells them
apart by whether the library exports gran_train, and stands in for every function
libgran_runtime lacks with one that raises errors.SamplingOnlyError.

Every struct below matches the C header field by field (order and types); the test suite
checks ctypes.sizeof and every offset against the C compiler's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char_p,
    c_double,
    c_float,
    c_int32,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path

# ----------------------------------------------------------------------------------------------
# Constants (gran.h)
# ----------------------------------------------------------------------------------------------

GRAN_ABI_VERSION = 1
GRAN_MAX_CLASSES = 64

GRAN_STATUS_OK = 0
GRAN_STATUS_INVALID_ARGUMENT = 1
GRAN_STATUS_INVALID_HANDLE = 2
GRAN_STATUS_BUFFER_TOO_SMALL = 3
GRAN_STATUS_IO = 4
GRAN_STATUS_FORMAT = 5
GRAN_STATUS_DEVICE = 6
GRAN_STATUS_OUT_OF_MEMORY = 7
GRAN_STATUS_CANCELLED = 8
GRAN_STATUS_BUSY = 9
GRAN_STATUS_DIVERGED = 10
GRAN_STATUS_INTERNAL = 11
GRAN_STATUS_DISTRIBUTED = 12

GRAN_DEVICE_CPU = 0
GRAN_DEVICE_CUDA = 1
GRAN_DEVICE_AUTO = 2

GRAN_PIXEL_FORMAT_U8_HWC = 0
GRAN_PIXEL_FORMAT_U8_CHW = 1
GRAN_PIXEL_FORMAT_F32_CHW = 2

GRAN_PRECISION_FP32 = 0
GRAN_PRECISION_BF16 = 1

GRAN_UPSAMPLING_TRANSPOSED = 0
GRAN_UPSAMPLING_RESIZE = 1

GRAN_LR_CONSTANT = 0
GRAN_LR_INVERSE_EPOCH = 1
GRAN_LR_LINEAR = 2

GRAN_AUGMENT_OFF = 0
GRAN_AUGMENT_FIXED = 1
GRAN_AUGMENT_ADAPTIVE = 2

GRAN_GENERATOR_AVERAGED = 0
GRAN_GENERATOR_RAW = 1

GRAN_GAM_TIE = 0
GRAN_GAM_A_WINS = 1
GRAN_GAM_B_WINS = 2
GRAN_GAM_UNDECIDED = 3
GranGamRanking = c_uint32
GRAN_GAM_EVEN = 0
GRAN_GAM_A_FIRST = 1
GRAN_GAM_B_FIRST = 2

GRAN_BACKEND_AUTO = 0
GRAN_BACKEND_GLOO = 1
GRAN_BACKEND_NCCL = 2

GRAN_LOG_DEBUG = 0
GRAN_LOG_INFO = 1
GRAN_LOG_WARN = 2
GRAN_LOG_ERROR = 3

# Typedefs
GranStatus = c_int32
GranPixelFormat = c_uint32
GranPrecision = c_uint32
GranLrSchedule = c_uint32
GranGenerator = c_uint32
GranDeviceKind = c_uint32
GranLogLevel = c_uint32
GranGamVerdict = c_uint32
GranModel = c_uint64
GranDataset = c_uint64
GranProcessGroup = c_uint64
GranBackend = c_uint32
GranEvaluator = c_uint64


# ----------------------------------------------------------------------------------------------
# Structs (gran.h), in header order
# ----------------------------------------------------------------------------------------------


class GranDatasetInfo(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("height", c_uint32),
        ("width", c_uint32),
        ("channels", c_uint32),
        ("count", c_uint64),
        ("has_labels", c_uint32),
    ]


class GranDevice(Structure):
    _fields_ = [
        ("kind", GranDeviceKind),
        ("index", c_int32),
    ]


class GranEvaluatorConfig(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("epochs", c_uint32),
        ("batch_size", c_uint32),
        ("lr", c_double),
        ("seed", c_uint64),
        ("device", GranDevice),
    ]


class GranQuality(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("classes", c_uint32),
        ("count", c_uint64),
        ("frechet_distance", c_double),
        ("classifier_score", c_double),
        ("nearest_train_distance", c_double),
        ("reference_nearest_train_distance", c_double),
        ("class_share", c_double * GRAN_MAX_CLASSES),
        ("class_accuracy", c_double * GRAN_MAX_CLASSES),
    ]


class GranGamConfig(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("samples", c_uint32),
        ("seed", c_uint64),
        ("tolerance", c_double),
        ("score_batch", c_uint32),
    ]


class GranGamResult(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("verdict", GranGamVerdict),
        ("test_error_a", c_double),
        ("test_error_b", c_double),
        ("sample_error_a", c_double),
        ("sample_error_b", c_double),
        ("r_test", c_double),
        ("r_sample", c_double),
        ("test_count", c_uint64),
        ("sample_count", c_uint64),
        ("accuracy_r_test", c_double),
        ("accuracy_r_sample", c_double),
        ("accuracy_ranking", GranGamRanking),
        ("reserved", c_uint32),
    ]


class GranModelConfig(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("height", c_uint32),
        ("width", c_uint32),
        ("channels", c_uint32),
        ("steps", c_uint32),
        ("z_dim", c_uint32),
        ("hidden_dim", c_uint32),
        ("width_scale", c_float),
        ("leaky_relu", c_uint32),
        ("device", GranDevice),
        ("seed", c_uint64),
        ("classes", c_uint32),
        ("upsampling", c_uint32),
    ]


class GranProgress(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("d_dominates", c_uint32),
        ("step", c_uint64),
        ("total_steps", c_uint64),
        ("epoch", c_uint64),
        ("d_loss", c_double),
        ("g_loss", c_double),
        ("d_real", c_double),
        ("d_fake", c_double),
        ("elapsed_seconds", c_double),
        ("images_per_second", c_double),
        ("augment_p", c_double),
    ]


# int32_t (*GranProgressCallback)(const GranProgress *progress, void *user_data)
GranProgressCallback = CFUNCTYPE(c_int32, POINTER(GranProgress), c_void_p)

# void (*GranLogCallback)(GranLogLevel level, const char *message, void *user_data)
GranLogCallback = CFUNCTYPE(None, GranLogLevel, c_char_p, c_void_p)


class GranTrainConfig(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("batch_size", c_uint32),
        ("iterations", c_uint64),
        ("epochs", c_uint32),
        ("lr_g", c_double),
        ("beta1_g", c_double),
        ("beta2_g", c_double),
        ("lr_d", c_double),
        ("beta1_d", c_double),
        ("beta2_d", c_double),
        ("d_weight_decay", c_double),
        ("seed", c_uint64),
        ("report_every", c_uint64),
        ("on_progress", GranProgressCallback),
        ("user_data", c_void_p),
        ("checkpoint_path", c_char_p),
        ("checkpoint_every", c_uint64),
        ("precision", GranPrecision),
        ("ema_decay", c_double),
        ("ema_start", c_uint64),
        ("lr_schedule", GranLrSchedule),
        ("cuda_graph", c_uint32),
        ("process_group", GranProcessGroup),
        ("augment", c_uint32),
        ("augment_flip", c_uint32),
        ("augment_p", c_double),
        ("augment_target", c_double),
        ("augment_speed", c_double),
        ("r1_gamma", c_double),
        ("r1_every", c_uint32),
        ("reserved0", c_uint32),
        ("recompute", c_uint32),
        ("canvas_penalty", c_double),
    ]


class GranProcessGroupConfig(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("backend", GranBackend),
        ("rank", c_uint32),
        ("world_size", c_uint32),
        ("master_addr", c_char_p),
        ("master_port", c_uint32),
        ("local_rank", c_uint32),
        ("timeout_ms", c_uint64),
    ]


STRUCTS = {
    "GranDatasetInfo": GranDatasetInfo,
    "GranEvaluatorConfig": GranEvaluatorConfig,
    "GranQuality": GranQuality,
    "GranGamConfig": GranGamConfig,
    "GranGamResult": GranGamResult,
    "GranDevice": GranDevice,
    "GranModelConfig": GranModelConfig,
    "GranProgress": GranProgress,
    "GranTrainConfig": GranTrainConfig,
    "GranProcessGroupConfig": GranProcessGroupConfig,
}

# ----------------------------------------------------------------------------------------------
# Prototypes: name -> (restype, argtypes), every function of gran.h
# ----------------------------------------------------------------------------------------------

_st = GranStatus
PROTOTYPES = {
    # datasets
    "gran_dataset_from_pixels": (
        _st,
        [c_void_p, c_size_t, c_uint32, c_uint32, c_uint32, GranPixelFormat, POINTER(GranDataset)],
    ),
    # labels: `count` bytes, one class per image
    "gran_dataset_from_labelled_pixels": (
        _st,
        [c_void_p, c_void_p, c_size_t, c_uint32, c_uint32, c_uint32, GranPixelFormat, POINTER(GranDataset)],
    ),
    "gran_dataset_load_idx": (_st, [c_char_p, c_char_p, POINTER(GranDataset)]),
    "gran_dataset_load_cifar10": (_st, [c_char_p, POINTER(GranDataset)]),
    "gran_dataset_load_images": (_st, [c_char_p, c_uint32, c_uint32, c_uint32, POINTER(GranDataset)]),
    "gran_dataset_load_image_files": (
        _st,
        [c_char_p, c_uint32, c_uint32, c_uint32, c_uint32, c_uint32, POINTER(GranDataset)],
    ),
    "gran_dataset_load_npy": (_st, [c_char_p, POINTER(GranDataset)]),
    "gran_dataset_open_npy": (_st, [c_char_p, POINTER(GranDataset)]),
    "gran_dataset_info_init": (None, [POINTER(GranDatasetInfo)]),
    "gran_dataset_info": (_st, [GranDataset, POINTER(GranDatasetInfo)]),
    "gran_dataset_free": (_st, [GranDataset]),
    # quality evaluator
    "gran_evaluator_config_init": (None, [POINTER(GranEvaluatorConfig)]),
    "gran_evaluator_train": (_st, [GranDataset, POINTER(GranEvaluatorConfig), POINTER(GranEvaluator)]),
    "gran_evaluator_accuracy": (_st, [GranEvaluator, GranDataset, POINTER(c_double)]),
    "gran_evaluator_free": (_st, [GranEvaluator]),
    "gran_quality_init": (None, [POINTER(GranQuality)]),
    "gran_evaluate_model": (
        _st,
        [GranEvaluator, GranModel, c_uint64, c_uint32, GranDataset, GranDataset, POINTER(GranQuality)],
    ),
    "gran_evaluate_dataset": (_st, [GranEvaluator, GranDataset, GranDataset, GranDataset, POINTER(GranQuality)]),
    # GAM
    "gran_gam_config_init": (None, [POINTER(GranGamConfig)]),
    "gran_gam_result_init": (None, [POINTER(GranGamResult)]),
    "gran_gam": (_st, [GranModel, GranModel, GranDataset, POINTER(GranGamConfig), POINTER(GranGamResult)]),
    # models
    "gran_model_config_init": (None, [POINTER(GranModelConfig)]),
    "gran_model_create": (_st, [POINTER(GranModelConfig), POINTER(GranModel)]),
    "gran_model_config": (_st, [GranModel, POINTER(GranModelConfig)]),
    "gran_model_step": (_st, [GranModel, POINTER(c_uint64)]),
    "gran_model_set_precision": (_st, [GranModel, GranPrecision]),
    "gran_model_precision": (_st, [GranModel, POINTER(GranPrecision)]),
    "gran_model_set_generator": (_st, [GranModel, GranGenerator]),
    "gran_model_export": (_st, [GranModel, c_char_p, GranPrecision]),
    "gran_model_inference_only": (_st, [GranModel, POINTER(c_int32)]),
    "gran_model_has_averaged": (_st, [GranModel, POINTER(c_int32)]),
    "gran_model_save": (_st, [GranModel, c_char_p]),
    "gran_model_load": (_st, [c_char_p, POINTER(GranDevice), POINTER(GranModel)]),
    "gran_model_free": (_st, [GranModel]),
    "gran_cancel": (_st, [GranModel]),
    # sampling
    "gran_sample": (_st, [GranModel, c_uint64, c_uint32, GranPixelFormat, c_void_p, c_size_t]),
    "gran_sample_steps": (_st, [GranModel, c_uint64, c_uint32, GranPixelFormat, c_void_p, c_size_t]),
    "gran_latents": (_st, [GranModel, c_uint64, c_uint32, POINTER(c_float), c_size_t]),
    "gran_generate": (_st, [GranModel, POINTER(c_float), c_uint32, GranPixelFormat, c_void_p, c_size_t]),
    "gran_discriminate": (_st, [GranModel, c_void_p, c_uint32, GranPixelFormat, POINTER(c_float)]),
    # class-conditional models: `classes` points to classes_len uint32 (1: one class for all
    # images, or one per image)
    "gran_sample_class": (
        _st,
        [GranModel, c_uint64, c_uint32, POINTER(c_uint32), c_uint32, GranPixelFormat, c_void_p, c_size_t],
    ),
    "gran_sample_steps_class": (
        _st,
        [GranModel, c_uint64, c_uint32, POINTER(c_uint32), c_uint32, GranPixelFormat, c_void_p, c_size_t],
    ),
    "gran_generate_class": (
        _st,
        [GranModel, POINTER(c_float), c_uint32, POINTER(c_uint32), c_uint32, GranPixelFormat, c_void_p, c_size_t],
    ),
    "gran_discriminate_class": (
        _st,
        [GranModel, c_void_p, c_uint32, POINTER(c_uint32), c_uint32, GranPixelFormat, POINTER(c_float)],
    ),
    "gran_write_png": (
        _st,
        [c_char_p, c_void_p, c_uint32, c_uint32, c_uint32, c_uint32, GranPixelFormat, c_uint32],
    ),
    "gran_write_gif": (
        _st,
        [c_char_p, c_void_p, c_uint32, c_uint32, c_uint32, c_uint32, c_uint32, GranPixelFormat, c_uint32, c_uint32,
         c_uint32],
    ),
    # training
    "gran_train_config_init": (None, [POINTER(GranTrainConfig)]),
    "gran_progress_init": (None, [POINTER(GranProgress)]),
    "gran_process_group_config_init": (None, [POINTER(GranProcessGroupConfig)]),
    "gran_process_group_create": (_st, [POINTER(GranProcessGroupConfig), POINTER(GranProcessGroup)]),
    "gran_process_group_from_env": (_st, [GranBackend, c_uint64, POINTER(GranProcessGroup)]),
    "gran_process_group_info": (_st, [GranProcessGroup, POINTER(c_uint32), POINTER(c_uint32)]),
    "gran_process_group_free": (_st, [GranProcessGroup]),
    "gran_train": (_st, [GranModel, GranDataset, POINTER(GranTrainConfig), POINTER(GranProgress)]),
    # library
    "gran_abi_version": (c_uint32, []),
    "gran_version": (c_char_p, []),
    "gran_last_error": (c_size_t, [c_char_p, c_size_t]),
    "gran_status_string": (c_char_p, [GranStatus]),
    "gran_cuda_device_count": (c_int32, []),
    "gran_set_deterministic": (None, [c_int32]),
    "gran_deterministic": (c_int32, []),
    "gran_set_log_callback": (None, [GranLogCallback, c_void_p, GranLogLevel]),
    "gran_set_num_threads": (_st, [c_int32]),
    "gran_num_threads": (c_int32, []),
}

# The functions of include/gran_runtime.h: all that libgran_runtime exports.
RUNTIME_FUNCTIONS = frozenset({
    "gran_model_config_init", "gran_model_config", "gran_model_step", "gran_model_set_generator",
    "gran_model_has_averaged", "gran_model_inference_only", "gran_model_load", "gran_model_free",
    "gran_sample", "gran_sample_steps", "gran_latents", "gran_generate", "gran_write_png",
    "gran_sample_class", "gran_sample_steps_class", "gran_generate_class",
    "gran_abi_version", "gran_version", "gran_last_error", "gran_status_string",
    "gran_set_log_callback", "gran_set_num_threads", "gran_num_threads",
})

LIBGRAN = "libgran"
LIBGRAN_RUNTIME = "libgran_runtime"

# What a missing C function is called in this package, for SamplingOnlyError's message: the
# first prefix that matches.
_API_NAMES = (
    ("gran_model_create", "Model.create / Model.from_config"),
    ("gran_train", "Model.train"),
    ("gran_progress_init", "Model.train"),
    ("gran_cancel", "Model.cancel"),
    ("gran_model_save", "Model.save"),
    ("gran_model_export", "Model.export"),
    ("gran_model_set_precision", "Model.precision"),
    ("gran_model_precision", "Model.precision"),
    ("gran_discriminate", "Model.discriminate"),
    ("gran_dataset_", "Dataset"),
    ("gran_evaluat", "Evaluator"),
    ("gran_quality_init", "Evaluator"),
    ("gran_gam", "gam"),
    ("gran_process_group_", "ProcessGroup"),
    ("gran_set_deterministic", "set_deterministic"),
    ("gran_deterministic", "deterministic"),
    ("gran_cuda_device_count", "cuda_device_count"),
)


def api_name(function):
    """The package's name for C function `function` ("gran_train" -> "Model.train")."""
    for prefix, name in _API_NAMES:
        if function.startswith(prefix):
            return name
    return function

# ----------------------------------------------------------------------------------------------
# Finding and loading the shared library
# ----------------------------------------------------------------------------------------------

if sys.platform == "darwin":
    _NAMES = ["libgran.dylib", "libgran.0.dylib"]
    _RUNTIME_NAMES = ["libgran_runtime.dylib", "libgran_runtime.0.dylib"]
elif sys.platform == "win32":
    _NAMES = ["gran.dll"]
    _RUNTIME_NAMES = ["gran_runtime.dll"]
else:
    _NAMES = ["libgran.so", "libgran.so.0"]
    _RUNTIME_NAMES = ["libgran_runtime.so", "libgran_runtime.so.0"]


def candidate_paths():
    """Where the library is looked for, in order (GRAN_LIBRARY excepted): next to this package
    (a wheel ships one of them there), then the repository's target/release (a source
    checkout); libgran before libgran_runtime in each."""
    here = Path(__file__).resolve().parent
    out = [here / n for n in _NAMES + _RUNTIME_NAMES]
    # bindings/python/gran -> repository root
    repo = here.parent.parent.parent
    out += [repo / "target" / "release" / n for n in _NAMES + _RUNTIME_NAMES]
    return out


def find_library():
    """The path or name of the library to load (libgran or libgran_runtime).

    Order: the GRAN_LIBRARY environment variable (a path); the library next to this package;
    the repository's target/release (for a source checkout); ctypes.util.find_library("gran"),
    then "gran_runtime"; finally libgran's bare soname, left to the system loader.
    """
    env = os.environ.get("GRAN_LIBRARY")
    if env:
        return env
    for p in candidate_paths():
        if p.is_file():
            return str(p)
    for name in ("gran", "gran_runtime"):
        found = ctypes.util.find_library(name)
        if found:
            return found
    return _NAMES[-1] if sys.platform.startswith("linux") else _NAMES[0]


def _sampling_only(name, path):
    """Stands in for C function `name`, which libgran_runtime at `path` does not have."""

    def unavailable(*_args, **_kwargs):
        from .errors import SamplingOnlyError

        raise SamplingOnlyError(api_name(name), path)

    unavailable.__name__ = name
    return unavailable


def load(path=None):
    """Loads the library (from `path`, else find_library()) and declares every prototype.

    Returns (library, path, kind): kind is LIBGRAN, or LIBGRAN_RUNTIME for a library without
    gran_train, whose missing functions then raise errors.SamplingOnlyError when called.
    """
    path = path or find_library()
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise ImportError(
            f"gran: cannot load the shared library {path!r} ({e}). Build it (make build, or make "
            "runtime for the sampling-only libgran_runtime), or set GRAN_LIBRARY to its path."
        ) from e
    kind = LIBGRAN if hasattr(lib, "gran_train") else LIBGRAN_RUNTIME
    missing = []
    for name, (restype, argtypes) in PROTOTYPES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            if kind == LIBGRAN_RUNTIME and name not in RUNTIME_FUNCTIONS:
                setattr(lib, name, _sampling_only(name, path))
            else:
                missing.append(name)
            continue
        fn.restype = restype
        fn.argtypes = argtypes
    if missing:
        raise ImportError(f"gran: {path!r} lacks {', '.join(missing)}: not a compatible {kind}")
    abi = lib.gran_abi_version()
    if abi != GRAN_ABI_VERSION:
        raise ImportError(
            f"gran: {path!r} has ABI version {abi}; these bindings were written for {GRAN_ABI_VERSION}"
        )
    return lib, path, kind
