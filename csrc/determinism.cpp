// libtorch's process-wide cuDNN settings that decide whether CUDA results repeat bit for bit:
// `deterministic` (only cuDNN engines without non-deterministic numerics, e.g. no atomics in a
// transposed convolution's forward or a convolution's weight gradient) and `benchmark` (choice
// of engine by timing, which can differ from one run to the next). PyTorch's
// torch.backends.cudnn.deterministic and .benchmark are the same two flags. tch binds only the
// second. Internal to libgran (not exported: gran.map). Plain flag reads and writes: no throw.
#include <ATen/Context.h>

extern "C" void grn_set_cudnn_deterministic(int on) {
    at::globalContext().setDeterministicCuDNN(on != 0);
}

extern "C" int grn_cudnn_deterministic() {
    return at::globalContext().deterministicCuDNN() ? 1 : 0;
}

extern "C" int grn_cudnn_benchmark() {
    return at::globalContext().benchmarkCuDNN() ? 1 : 0;
}
