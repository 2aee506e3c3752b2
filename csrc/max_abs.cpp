// The largest absolute value over a list of tensors, as a 0-d float tensor on their device
// (NaN when any value is NaN): one at::_foreach_norm(ord = inf) call and a max, with no host
// read, so training can test every updated weight and moment for finiteness inside the step's
// one transfer. tch does not bind list-of-tensor operators. Internal (not exported: gran.map).
//
// Returns 0 and a new handle in *out (owned by the caller), or 1 with a message in `err`.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <limits>
#include <vector>

#include "shim.h"

extern "C" int grn_max_abs(at::Tensor **xs, size_t n, at::Tensor **out, char *err, size_t err_len) {
    try {
        std::vector<at::Tensor> v;
        v.reserve(n);
        for (size_t i = 0; i < n; i++) v.push_back(*xs[i]);
        c10::AutoGradMode no_grad(false);
        auto norms = at::_foreach_norm(v, std::numeric_limits<double>::infinity());
        *out = new at::Tensor(at::stack(norms).max());
        return 0;
    } catch (const std::exception &e) {
        return grn_fail(e, err, err_len);
    }
}
