// A copy of a host tensor in page-locked (pinned) memory, from which a copy to a CUDA device can
// run without blocking the host. tch's binding always passes pin_memory's `device` argument,
// which libtorch has deprecated; this calls it without one.
// Internal to libgran (not exported: gran.map).
//
// Returns 0 and a new tensor handle in *out (owned by the caller, as tch's own results), or 1
// with a message in `err` (NUL-terminated, at most `err_len` bytes) when libtorch throws (as it
// does on a machine without a CUDA driver).
#include <ATen/core/Tensor.h>

#include "shim.h"

extern "C" int grn_pin_memory(at::Tensor *x, at::Tensor **out, char *err, size_t err_len) {
    try {
        *out = new at::Tensor(x->pin_memory());
        return 0;
    } catch (const std::exception &e) {
        return grn_fail(e, err, err_len);
    }
}
