// Convolutions and transposed convolutions with prepacked weights, on the CPU through oneDNN:
// libtorch's conv2d and conv_transpose2d reorder the weight into oneDNN's blocked layout on every
// call (a pass over the whole weight, which at one image costs about as much as the arithmetic);
// these keep the reordered weight and reuse it. The operators are libtorch's own (mkldnn::, the ones
// torch.compile's CPU weight prepacking uses), which tch does not bind: they are looked up in
// the dispatcher and called boxed. Where libtorch was built without oneDNN the lookup throws and
// the caller keeps the plain convolution. Internal to libgran (not exported: gran.map).
//
// Tensors are tch's raw handles (torch::Tensor *). Each function returns 0 with a new tensor in
// *out (owned by the caller, as tch's own results), or 1 with a message in `err`
// (NUL-terminated, at most `err_len` bytes) when libtorch throws.
#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <c10/core/GradMode.h>

#include <vector>

#include "shim.h"

namespace {

std::vector<c10::IValue> call(const char *name, std::vector<c10::IValue> stack) {
    const auto op = c10::Dispatcher::singleton().findSchemaOrThrow(name, "");
    op.callBoxed(&stack);
    return stack;
}

std::vector<int64_t> pair(int64_t v) { return {v, v}; }

}  // namespace

// `w` ([in, out, k, k], float32, CPU) in oneDNN's layout for a transposed convolution of
// stride `stride`, padding `padding` and output padding `output_padding` (both dimensions).
extern "C" int grn_conv_transpose_prepack(at::Tensor *w, int64_t stride, int64_t padding, int64_t output_padding,
                                          at::Tensor **out, char *err, size_t err_len) {
    try {
        c10::AutoGradMode no_grad(false);
        auto r = call("mkldnn::_reorder_convolution_transpose_weight",
                      {*w, pair(padding), pair(output_padding), pair(stride), pair(1), int64_t{1}, c10::IValue()});
        *out = new at::Tensor(r.at(0).toTensor());
        return 0;
    } catch (const std::exception &e) {
        return grn_fail(e, err, err_len);
    }
}

// The transposed convolution of `x` ([N, in, h, w], float32, CPU) with a weight from
// grn_conv_transpose_prepack (same stride and paddings) and `bias` (NULL for none), followed by
// ReLU when `relu` is nonzero (fused into the kernel).
extern "C" int grn_conv_transpose_packed(at::Tensor *x, at::Tensor *packed, at::Tensor *bias, int64_t stride,
                                         int64_t padding, int64_t output_padding, int relu, at::Tensor **out,
                                         char *err, size_t err_len) {
    try {
        c10::AutoGradMode no_grad(false);
        c10::IValue b = bias ? c10::IValue(*bias) : c10::IValue();
        auto r = call("mkldnn::_convolution_transpose_pointwise",
                      {*x, *packed, b, pair(padding), pair(output_padding), pair(stride), pair(1), int64_t{1},
                       std::string(relu ? "relu" : "none"), c10::List<std::optional<at::Scalar>>(), c10::IValue()});
        *out = new at::Tensor(r.at(0).toTensor());
        return 0;
    } catch (const std::exception &e) {
        return grn_fail(e, err, err_len);
    }
}

// `w` ([out, in, k, k], float32, CPU) in oneDNN's layout for a convolution of stride `stride` and
// padding `padding` (both dimensions): libtorch's conv2d reorders the weight on every call, as
// conv_transpose2d does.
extern "C" int grn_conv_prepack(at::Tensor *w, int64_t stride, int64_t padding, at::Tensor **out, char *err,
                                size_t err_len) {
    try {
        c10::AutoGradMode no_grad(false);
        auto r = call("mkldnn::_reorder_convolution_weight",
                      {*w, pair(padding), pair(stride), pair(1), int64_t{1}, c10::IValue()});
        *out = new at::Tensor(r.at(0).toTensor());
        return 0;
    } catch (const std::exception &e) {
        return grn_fail(e, err, err_len);
    }
}

// The convolution of `x` ([N, in, h, w], float32, CPU) with a weight from grn_conv_prepack (same
// stride and padding) and `bias` (NULL for none), followed by ReLU when `relu` is nonzero (fused
// into the kernel).
extern "C" int grn_conv_packed(at::Tensor *x, at::Tensor *packed, at::Tensor *bias, int64_t stride, int64_t padding,
                               int relu, at::Tensor **out, char *err, size_t err_len) {
    try {
        c10::AutoGradMode no_grad(false);
        c10::IValue b = bias ? c10::IValue(*bias) : c10::IValue();
        auto r = call("mkldnn::_convolution_pointwise",
                      {*x, *packed, b, pair(padding), pair(stride), pair(1), int64_t{1},
                       std::string(relu ? "relu" : "none"), c10::List<std::optional<at::Scalar>>(), c10::IValue()});
        *out = new at::Tensor(r.at(0).toTensor());
        return 0;
    } catch (const std::exception &e) {
        return grn_fail(e, err, err_len);
    }
}
