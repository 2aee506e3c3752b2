// Leaky ReLU in place with a chosen slope (at::leaky_relu_, with autograd): tch's binding fixes the slope
// at libtorch's default 0.01, and the alternatives tch offers cost more (on the CPU, for a
// 256x80x14x14 activation forward and backward: leaky_relu 4.3 ms, prelu 9.9 ms, maximum(x, 0.2x)
// 23 ms). Internal to libgran (not exported: gran.map).
//
// x is overwritten (autograd allows it for a positive slope: its backward reads the result).
//
// Returns 0 and a new handle to x in *out (owned by the caller, as tch's own results), or 1
// with a message in `err` (NUL-terminated, at most `err_len` bytes) when libtorch throws.
#include <ATen/core/Tensor.h>
#include <ATen/ops/leaky_relu.h>

#include "shim.h"

extern "C" int grn_leaky_relu_(at::Tensor *x, double negative_slope, at::Tensor **out, char *err, size_t err_len) {
    try {
        *out = new at::Tensor(at::leaky_relu_(*x, negative_slope));
        return 0;
    } catch (const std::exception &e) {
        return grn_fail(e, err, err_len);
    }
}
