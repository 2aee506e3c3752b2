// Whether any value of a list of tensors is NaN or infinite, as a 0-d float tensor on their
// device (1.0: yes, 0.0: no), computed there with no host read: training folds it into the
// fused Adam kernel's skip flag (non-finite gradients) and into the step's one transfer
// (non-finite weights or moments after an update). Each tensor is summed in float32 (NaN and
// infinities propagate through a sum; only values near FLT_MAX could overflow it, and weights
// that large are no model), then the sums are summed: one vectorised read of each tensor,
// where at::_foreach_norm(inf) costs ten times as much on the CPU. tch does not bind
// list-of-tensor operators. Internal (not exported: gran.map).
//
// Returns 0 and a new handle in *out (owned by the caller), or 1 with a message in `err`.
#include <ATen/core/Tensor.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros.h>
#include <c10/core/GradMode.h>

#include <vector>

#include "shim.h"

extern "C" int grn_non_finite(at::Tensor **xs, size_t n, at::Tensor **out, char *err, size_t err_len) {
    try {
        c10::AutoGradMode no_grad(false);
        std::vector<at::Tensor> sums;
        sums.reserve(n);
        for (size_t i = 0; i < n; i++) {
            if (xs[i]->defined()) sums.push_back(xs[i]->sum(at::kFloat));
        }
        at::Tensor flag = sums.empty() ? at::zeros({}, at::kFloat) : at::stack(sums).sum().isfinite().logical_not().to(at::kFloat);
        *out = new at::Tensor(flag);
        return 0;
    } catch (const std::exception &e) {
        return grn_fail(e, err, err_len);
    }
}
