// Mixed precision: libtorch's autocast, switched on for one device type with a chosen lower
// precision, and back off. tch binds only the CUDA switch and leaves the CUDA dtype at float16;
// gran needs bfloat16 (no loss scaling) and the CPU as well.
// Internal to libgran (not exported: gran.map).
//
// Autocast is per thread: entering it on one thread changes nothing on another. Each enter is
// matched by one exit with the state that enter saved; the cast-weight cache is cleared when the
// outermost region ends (as torch.autocast does), so that weights changed in place afterwards
// (an optimizer step) are never read from a stale low-precision copy.
#include <ATen/autocast_mode.h>

#include "shim.h"

namespace {
at::DeviceType device_type(int cuda) { return cuda != 0 ? at::kCUDA : at::kCPU; }
}  // namespace

// Saves the thread's autocast state of the device type in *was_enabled and *was_dtype, then turns
// autocast on with bfloat16. Returns 0, or 1 with a message in `err`.
extern "C" int grn_autocast_enter(int cuda, int *was_enabled, int *was_dtype, char *err, size_t err_len) {
    try {
        const at::DeviceType d = device_type(cuda);
        *was_enabled = at::autocast::is_autocast_enabled(d) ? 1 : 0;
        *was_dtype = static_cast<int>(at::autocast::get_autocast_dtype(d));
        at::autocast::set_autocast_dtype(d, at::kBFloat16);
        at::autocast::set_autocast_enabled(d, true);
        at::autocast::increment_nesting();
        return 0;
    } catch (const std::exception &e) {
        return grn_fail(e, err, err_len);
    }
}

// Ends the region grn_autocast_enter began: puts back the state it saved.
extern "C" int grn_autocast_exit(int cuda, int was_enabled, int was_dtype, char *err, size_t err_len) {
    try {
        const at::DeviceType d = device_type(cuda);
        if (at::autocast::decrement_nesting() == 0) {
            at::autocast::clear_cache();
        }
        at::autocast::set_autocast_enabled(d, was_enabled != 0);
        at::autocast::set_autocast_dtype(d, static_cast<at::ScalarType>(was_dtype));
        return 0;
    } catch (const std::exception &e) {
        return grn_fail(e, err, err_len);
    }
}

// Whether autocast is on for the device type on this thread (1 or 0).
extern "C" int grn_autocast_enabled(int cuda) {
    return at::autocast::is_autocast_enabled(device_type(cuda)) ? 1 : 0;
}
