// Leaky ReLU with a chosen slope (at::leaky_relu, with autograd): tch's binding fixes the slope
// at libtorch's default 0.01, and the alternatives tch offers cost more (on the CPU, for a
// 256x80x14x14 activation forward and backward: leaky_relu 4.3 ms, prelu 9.9 ms, maximum(x, 0.2x)
// 23 ms). Internal to libgran (not exported: gran.map).
//
// With `in_place` nonzero, x is overwritten (at::leaky_relu_; autograd allows it for a positive
// slope, its backward reads the result) and *out is a new handle to the same tensor.
//
// Returns 0 and a new tensor handle in *out (owned by the caller, as tch's own results), or 1
// with a message in `err` (NUL-terminated, at most `err_len` bytes) when libtorch throws.
#include <ATen/ATen.h>

#include "shim.h"

extern "C" int grn_leaky_relu(at::Tensor *x, double negative_slope, int in_place, at::Tensor **out, char *err,
                              size_t err_len) {
    try {
        *out = new at::Tensor(in_place ? at::leaky_relu_(*x, negative_slope) : at::leaky_relu(*x, negative_slope));
        return 0;
    } catch (const std::exception &e) {
        return grn_fail(e, err, err_len);
    }
}
