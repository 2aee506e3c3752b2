"""gran: Python bindings (ctypes, no compiled extension) for libgran, a library that creates,
trains, samples and evaluates GRAN models (generative recurrent adversarial networks), and for
libgran_runtime, its sampling-only subset without libtorch (what the gran wheel ships).

    import gran
    with gran.Model.create(steps=3, device="cpu") as model, \\
         gran.Dataset.load_idx("data/mnist10k/train-images-idx3-ubyte.gz") as data:
        model.train(data, iterations=500, batch_size=64,
                    on_progress=lambda p: print(p.step, p.d_loss, p.g_loss))
        images = model.sample(64, seed=1)          # uint8 (64, 28, 28, 1) with numpy, else bytes
        gran.write_png("samples.png", images, columns=8)
        model.save("model.gran")

The shared library is found through the GRAN_LIBRARY environment variable (a path), next to
this package (the wheel's libgran_runtime.so), in the repository's target/release, or by the
system loader (libgran.so.0). LIBRARY_KIND says which library it is: "libgran", or
"libgran_runtime", where every call beyond loading and sampling raises SamplingOnlyError.
numpy is optional: without it, images come back as bytes and floats as lists.
Every failure raises a subclass of gran.GranError, one per GranStatus.
"""

from ._core import (
    LIBRARY_KIND,
    LIBRARY_PATH,
    Dataset,
    DatasetInfo,
    ProcessGroup,
    Evaluator,
    GamResult,
    Model,
    ModelConfig,
    Progress,
    Quality,
    abi_version,
    cuda_device_count,
    deterministic,
    gam,
    have_numpy,
    last_error,
    num_threads,
    sampling_only,
    set_deterministic,
    set_log_callback,
    set_num_threads,
    status_string,
    version,
    write_gif,
    write_png,
)
from ._lib import (
    GRAN_ABI_VERSION,
    GRAN_BACKEND_AUTO,
    GRAN_BACKEND_GLOO,
    GRAN_BACKEND_NCCL,
    GRAN_GAM_A_WINS,
    GRAN_GAM_B_WINS,
    GRAN_GAM_TIE,
    GRAN_GAM_UNDECIDED,
    GRAN_GAM_EVEN,
    GRAN_GAM_A_FIRST,
    GRAN_GAM_B_FIRST,
    GRAN_MAX_CLASSES,
    GRAN_GENERATOR_AVERAGED,
    GRAN_GENERATOR_RAW,
    GRAN_LR_CONSTANT,
    GRAN_LR_INVERSE_EPOCH,
    GRAN_LR_LINEAR,
    GRAN_PIXEL_FORMAT_F32_CHW,
    GRAN_PIXEL_FORMAT_U8_CHW,
    GRAN_PIXEL_FORMAT_U8_HWC,
    GRAN_PRECISION_BF16,
    GRAN_PRECISION_FP32,
    GRAN_STATUS_BUFFER_TOO_SMALL,
    GRAN_STATUS_BUSY,
    GRAN_STATUS_CANCELLED,
    GRAN_STATUS_DEVICE,
    GRAN_STATUS_DIVERGED,
    GRAN_STATUS_FORMAT,
    GRAN_STATUS_DISTRIBUTED,
    GRAN_STATUS_INTERNAL,
    GRAN_STATUS_INVALID_ARGUMENT,
    GRAN_STATUS_INVALID_HANDLE,
    GRAN_STATUS_IO,
    GRAN_STATUS_OK,
    GRAN_STATUS_OUT_OF_MEMORY,
    LIBGRAN,
    LIBGRAN_RUNTIME,
)
from .errors import (
    BufferTooSmallError,
    BusyError,
    CancelledError,
    DeviceError,
    DistributedError,
    DivergedError,
    FormatError,
    GranError,
    GranIOError,
    InternalError,
    InvalidArgumentError,
    InvalidHandleError,
    OutOfMemoryError,
    SamplingOnlyError,
)

__version__ = "0.1.0"

__all__ = [
    "LIBRARY_KIND", "LIBRARY_PATH", "LIBGRAN", "LIBGRAN_RUNTIME", "Dataset", "DatasetInfo", "ProcessGroup", "Evaluator", "GamResult", "Model", "ModelConfig", "Progress", "Quality", "abi_version",
    "cuda_device_count", "deterministic", "gam", "have_numpy", "last_error", "num_threads", "sampling_only", "set_deterministic", "set_log_callback",
    "set_num_threads", "status_string", "version",
    "write_gif", "write_png", "GRAN_ABI_VERSION", "GRAN_BACKEND_AUTO", "GRAN_BACKEND_GLOO", "GRAN_BACKEND_NCCL", "GRAN_GAM_A_WINS", "GRAN_GAM_B_WINS", "GRAN_GAM_TIE",
    "GRAN_GAM_UNDECIDED", "GRAN_GAM_EVEN", "GRAN_GAM_A_FIRST", "GRAN_GAM_B_FIRST", "GRAN_MAX_CLASSES", "GRAN_PIXEL_FORMAT_F32_CHW", "GRAN_PIXEL_FORMAT_U8_CHW",
    "GRAN_PIXEL_FORMAT_U8_HWC", "GRAN_GENERATOR_AVERAGED", "GRAN_GENERATOR_RAW", "GRAN_LR_CONSTANT",
    "GRAN_LR_INVERSE_EPOCH", "GRAN_LR_LINEAR", "GRAN_PRECISION_BF16", "GRAN_PRECISION_FP32", "GRAN_STATUS_BUFFER_TOO_SMALL", "GRAN_STATUS_BUSY",
    "GRAN_STATUS_CANCELLED", "GRAN_STATUS_DEVICE", "GRAN_STATUS_DIVERGED", "GRAN_STATUS_FORMAT",
    "GRAN_STATUS_DISTRIBUTED", "GRAN_STATUS_INTERNAL", "GRAN_STATUS_INVALID_ARGUMENT", "GRAN_STATUS_INVALID_HANDLE",
    "GRAN_STATUS_IO", "GRAN_STATUS_OK", "GRAN_STATUS_OUT_OF_MEMORY", "BufferTooSmallError",
    "BusyError", "CancelledError", "DeviceError", "DistributedError", "DivergedError", "FormatError", "GranError",
    "GranIOError", "InternalError", "InvalidArgumentError", "InvalidHandleError",
    "OutOfMemoryError", "SamplingOnlyError", "__version__",
]
