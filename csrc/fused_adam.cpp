// One Adam update of a list of parameters with libtorch's fused kernel (at::_fused_adam_: one
// pass over each parameter's memory on the CPU, one kernel launch for the whole list on CUDA).
// tch does not generate bindings for list-of-tensor operators, so gran compiles this shim
// itself; it is internal (not exported from libgran.so: gran.map).
//
// Tensors are passed as tch's raw handles (torch::Tensor *). `found_inf` is NULL or a float
// scalar on the parameters' device: when it holds 1.0 the kernel changes nothing (the update is
// skipped on the device, with no host read: how training steps over a non-finite loss).
// `lr_tensor` is NULL (the rate is `lr`) or a float scalar on the parameters' device holding the
// rate, read by the kernel (a captured training step changes it between replays). Returns 0,
// or 1 with a message in `err` (NUL-terminated, at most `err_len` bytes) when libtorch throws.
#include <ATen/core/Tensor.h>
#include <ATen/ops/_fused_adam.h>
#include <c10/core/GradMode.h>

#include <vector>

#include "shim.h"

extern "C" int grn_fused_adam(at::Tensor **params, at::Tensor **grads, at::Tensor **exp_avgs, at::Tensor **exp_avg_sqs,
                              at::Tensor *step, at::Tensor *found_inf, at::Tensor *lr_tensor, size_t n, double lr,
                              double beta1, double beta2, double weight_decay, double eps, char *err, size_t err_len) {
    try {
        std::vector<at::Tensor> p, g, m, v, steps;
        p.reserve(n);
        g.reserve(n);
        m.reserve(n);
        v.reserve(n);
        steps.reserve(n);
        for (size_t i = 0; i < n; i++) {
            p.push_back(*params[i]);
            g.push_back(*grads[i]);
            m.push_back(*exp_avgs[i]);
            v.push_back(*exp_avg_sqs[i]);
            // The kernel reads the step count (for the bias corrections) and does not change it.
            steps.push_back(*step);
        }
        c10::AutoGradMode no_grad(false);
        const auto inf = found_inf ? std::optional<at::Tensor>(*found_inf) : std::nullopt;
        if (lr_tensor != nullptr) {
            at::_fused_adam_(p, g, m, v, /*max_exp_avg_sqs=*/{}, steps, *lr_tensor, beta1, beta2, weight_decay, eps,
                             /*amsgrad=*/false, /*maximize=*/false, /*grad_scale=*/std::nullopt, inf);
        } else {
            at::_fused_adam_(p, g, m, v, /*max_exp_avg_sqs=*/{}, steps, lr, beta1, beta2, weight_decay, eps,
                             /*amsgrad=*/false, /*maximize=*/false, /*grad_scale=*/std::nullopt, inf);
        }
        return 0;
    } catch (const std::exception &e) {
        return grn_fail(e, err, err_len);
    }
}
