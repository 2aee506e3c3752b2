// ema[i] += weight * (x[i] - ema[i]) for a list of tensors, in place, with libtorch's
// multi-tensor kernel (at::_foreach_lerp_): one launch for the whole generator on CUDA instead
// of one per tensor. The averaged generator's update after every training step (crate::ema).
// tch does not bind list-of-tensor operators. Internal (not exported: gran.map).
//
// Returns 0, or 1 with a message in `err`.
#include <ATen/core/Tensor.h>
#include <ATen/ops/_foreach_lerp.h>
#include <c10/core/GradMode.h>

#include <vector>

#include "shim.h"

extern "C" int grn_foreach_lerp_(at::Tensor **ema, at::Tensor **x, size_t n, double weight, char *err,
                                 size_t err_len) {
    try {
        c10::AutoGradMode no_grad(false);
        std::vector<at::Tensor> a, b;
        a.reserve(n);
        b.reserve(n);
        for (size_t i = 0; i < n; i++) {
            a.push_back(*ema[i]);
            b.push_back(*x[i]);
        }
        at::_foreach_lerp_(a, b, at::Scalar(weight));
        return 0;
    } catch (const std::exception &e) {
        return grn_fail(e, err, err_len);
    }
}
