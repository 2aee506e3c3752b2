// Process groups for data-parallel training, on PyTorch's own distributed engine (c10d): a
// TCPStore rendezvous (rank 0 serves it), then ProcessGroupGloo (CPU tensors) or
// ProcessGroupNCCL (CUDA tensors). gran calls three collectives: all-reduce (sum or max) of one
// flat tensor, several started at once and then waited for (a step's gradient buckets), and
// broadcast from a rank. Internal to libgran (not exported: gran.map).
//
// Gloo's headers do not ship with the torch wheel; the Makefile unpacks Debian's libgloo-dev
// headers into the venv and build.rs compiles this file with GRAN_GLOO (the symbols are
// libtorch_cpu's). NCCL is compiled in with GRAN_NCCL when nccl.h (the nvidia-nccl wheel) and the
// CUDA runtime headers are found. A backend that was not compiled in fails cleanly at creation.
//
// Faults: every collective waits at most the group's timeout and then throws, as does a peer
// that closed its connection; the shim turns that into status 1 and a message. For NCCL, the
// environment is set (unless the caller set it) so that its watchdog reports instead of tearing
// the host process down: TORCH_NCCL_BLOCKING_WAIT=1 (wait() throws on a timeout or a failed
// peer) and TORCH_NCCL_ASYNC_ERROR_HANDLING=0 (the watchdog does not abort).
//
// Quiet: c10d and its backends report through libtorch's C++ log (LOG(WARNING), e.g. a
// rendezvous retrying, with C++ stack traces), which writes to the process's stderr. A host's
// stderr belongs to the host, and every failure reaches the caller as a status and a message,
// so the first group made raises libtorch's log threshold (FLAGS_caffe2_log_level) to FATAL,
// unless the program chose a level itself with TORCH_CPP_LOG_LEVEL.
//
// Each call returns 0, or 1 with a message in `err` (NUL-terminated, at most `err_len` bytes).
#include <ATen/ATen.h>
#include <c10/util/Logging.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "shim.h"

#if defined(GRAN_GLOO) || defined(GRAN_NCCL)
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#ifdef GRAN_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef GRAN_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace {
#if defined(GRAN_GLOO) || defined(GRAN_NCCL)
struct Group {
    c10::intrusive_ptr<c10d::Store> store;
    c10::intrusive_ptr<c10d::Backend> backend;
    std::chrono::milliseconds timeout;
};

// Collectives started and not yet waited for: one work per tensor, with the tensor lists
// they were started on (kept alive until the works are done).
struct Pending {
    std::chrono::milliseconds timeout;
    std::vector<std::vector<at::Tensor>> lists;
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
};

// Starts one collective per tensor (`start` makes the work of one single-tensor list).
template <typename Start>
std::unique_ptr<Pending> start_each(Group *group, at::Tensor **tensors, size_t n, Start start) {
    auto p = std::make_unique<Pending>();
    p->timeout = group->timeout;
    p->lists.resize(n);
    p->works.reserve(n);
    for (size_t i = 0; i < n; i++) {
        p->lists[i].push_back(*tensors[i]);
        p->works.push_back(start(p->lists[i]));
    }
    return p;
}

// Waits for each of `p`'s works, at most the group's timeout; a failure or timeout throws with
// `what`.
void wait_all(Pending &p, const char *what) {
    for (auto &w : p.works) {
        if (!w->wait(p.timeout)) throw std::runtime_error(std::string(what) + " did not complete");
    }
}

// Starts one collective per tensor, then waits for each.
template <typename Start>
void each(Group *group, at::Tensor **tensors, size_t n, const char *what, Start start) {
    wait_all(*start_each(group, tensors, n, start), what);
}

c10d::AllreduceOptions reduce_options(Group *group, int op) {
    c10d::AllreduceOptions o;
    o.reduceOp = op == 1 ? c10d::ReduceOp(c10d::ReduceOp::MAX) : c10d::ReduceOp(c10d::ReduceOp::SUM);
    o.timeout = group->timeout;
    return o;
}
#else
struct Group {};
#endif

// Raises libtorch's C++ log threshold to FATAL once, unless TORCH_CPP_LOG_LEVEL chose one.
void quiet_libtorch_log() {
    static std::once_flag once;
    std::call_once(once, [] {
        const char *chosen = std::getenv("TORCH_CPP_LOG_LEVEL");
        if (chosen == nullptr || *chosen == '\0') FLAGS_caffe2_log_level = c10::GLOG_FATAL;
    });
}
}  // namespace

// Backends: 1 Gloo, 2 NCCL (gran's GRAN_BACKEND_* values; AUTO is resolved by the caller).
extern "C" int grn_dist_backend_built(int backend) {
#ifdef GRAN_GLOO
    if (backend == 1) return 1;
#endif
#ifdef GRAN_NCCL
    if (backend == 2) return 1;
#endif
    (void)backend;
    return 0;
}

// A group of `world` processes of which this is `rank`, meeting at host:port. With
// `agent_attempt` < 0 rank 0 serves the store there; otherwise a launcher's agent serves it
// (torchrun) and every rank connects, keying the rendezvous under the restart attempt's prefix
// as torch.distributed does ("/worker/attempt_N"), so that a restarted group does not read the
// keys of the attempt before it. `device` is the CUDA device index of this rank's tensors for
// NCCL (ignored for Gloo).
extern "C" int grn_dist_new(int backend, int rank, int world, const char *host, int port, int64_t timeout_ms,
                            int device, int agent_attempt, void **out, char *err, size_t err_len) {
    try {
        quiet_libtorch_log();
#if defined(GRAN_GLOO) || defined(GRAN_NCCL)
        if (!grn_dist_backend_built(backend))
            throw std::runtime_error(backend == 2 ? "this build of gran has no NCCL (no nccl.h or CUDA headers at build time)"
                                                  : "this build of gran has no Gloo (no gloo headers at build time)");
        auto timeout = std::chrono::milliseconds(timeout_ms);
        c10d::TCPStoreOptions so;
        so.port = static_cast<std::uint16_t>(port);
        so.isServer = agent_attempt < 0 && rank == 0;
        so.numWorkers = static_cast<std::size_t>(world);
        so.waitWorkers = agent_attempt < 0;
        so.timeout = timeout;
        c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(std::string(host), so);
        if (agent_attempt >= 0)
            store = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(agent_attempt), store);
        auto group = std::make_unique<Group>();
        group->store = store;
        group->timeout = timeout;
        if (backend == 1) {
#ifdef GRAN_GLOO
            auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
            const char *ifname = std::getenv("GLOO_SOCKET_IFNAME");
            if (ifname != nullptr && *ifname != '\0') {
                opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
            } else {
                // The address the store is reached at is an address of this machine's way to
                // its peers (127.0.0.1 for local processes); otherwise the host's own name.
                const std::string h(host);
                if (h == "127.0.0.1" || h == "localhost")
                    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
                else
                    opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
            }
            opts->threads = 2;
            group->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, opts);
#endif
        } else {
#ifdef GRAN_NCCL
            setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);
            setenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", "0", 0);
            c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));
            auto opts = c10d::ProcessGroupNCCL::Options::create();
            opts->timeout = timeout;
            group->backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, opts);
#endif
        }
        (void)device;
        *out = group.release();
        return 0;
#else
        (void)backend, (void)rank, (void)world, (void)host, (void)port, (void)timeout_ms, (void)device, (void)out;
        throw std::runtime_error("this build of gran has no distributed backend (no Gloo or NCCL headers at build time)");
#endif
    } catch (const std::exception &e) {
        return grn_fail(e, err, err_len);
    }
}

// All-reduces each of `tensors[0..n]` in place (op 0: sum, 1: max): all are started, then each
// is waited for (at most the group's timeout).
extern "C" int grn_dist_all_reduce(void *g, at::Tensor **tensors, size_t n, int op, char *err, size_t err_len) {
    try {
#if defined(GRAN_GLOO) || defined(GRAN_NCCL)
        auto *group = static_cast<Group *>(g);
        auto o = reduce_options(group, op);
        each(group, tensors, n, "all-reduce", [&](std::vector<at::Tensor> &l) { return group->backend->allreduce(l, o); });
        return 0;
#else
        (void)g, (void)tensors, (void)n, (void)op;
        throw std::runtime_error("no distributed backend in this build");
#endif
    } catch (const std::exception &e) {
        return grn_fail(e, err, err_len);
    }
}

// Starts all-reducing each of `tensors[0..n]` in place (op as grn_dist_all_reduce) and returns
// at once, in `*out`, what grn_dist_wait waits for and grn_dist_pending_free frees. The tensors
// must not be read or written until the wait returned.
extern "C" int grn_dist_all_reduce_start(void *g, at::Tensor **tensors, size_t n, int op, void **out, char *err,
                                         size_t err_len) {
    try {
#if defined(GRAN_GLOO) || defined(GRAN_NCCL)
        auto *group = static_cast<Group *>(g);
        auto o = reduce_options(group, op);
        *out = start_each(group, tensors, n, [&](std::vector<at::Tensor> &l) { return group->backend->allreduce(l, o); })
                   .release();
        return 0;
#else
        (void)g, (void)tensors, (void)n, (void)op, (void)out;
        throw std::runtime_error("no distributed backend in this build");
#endif
    } catch (const std::exception &e) {
        return grn_fail(e, err, err_len);
    }
}

// Waits (at most the group's timeout) for the collectives grn_dist_all_reduce_start started.
extern "C" int grn_dist_wait(void *pending, char *err, size_t err_len) {
    try {
#if defined(GRAN_GLOO) || defined(GRAN_NCCL)
        wait_all(*static_cast<Pending *>(pending), "all-reduce");
        return 0;
#else
        (void)pending;
        throw std::runtime_error("no distributed backend in this build");
#endif
    } catch (const std::exception &e) {
        return grn_fail(e, err, err_len);
    }
}

// Frees what grn_dist_all_reduce_start returned (waited for or not: a work still running
// keeps its own references to the tensors).
extern "C" void grn_dist_pending_free(void *pending) {
#if defined(GRAN_GLOO) || defined(GRAN_NCCL)
    delete static_cast<Pending *>(pending);
#else
    (void)pending;
#endif
}

// Broadcasts each of `tensors[0..n]` in place from rank `root`.
extern "C" int grn_dist_broadcast(void *g, at::Tensor **tensors, size_t n, int root, char *err, size_t err_len) {
    try {
#if defined(GRAN_GLOO) || defined(GRAN_NCCL)
        auto *group = static_cast<Group *>(g);
        c10d::BroadcastOptions o;
        o.rootRank = root;
        o.timeout = group->timeout;
        each(group, tensors, n, "broadcast", [&](std::vector<at::Tensor> &l) { return group->backend->broadcast(l, o); });
        return 0;
#else
        (void)g, (void)tensors, (void)n, (void)root;
        throw std::runtime_error("no distributed backend in this build");
#endif
    } catch (const std::exception &e) {
        return grn_fail(e, err, err_len);
    }
}

extern "C" void grn_dist_free(void *g) {
    try {
#if defined(GRAN_GLOO) || defined(GRAN_NCCL)
        auto *group = static_cast<Group *>(g);
        if (group != nullptr && group->backend) {
            // Ends the backend's threads and connections now (NCCL: its communicators), not at
            // some later destructor; a failure here changes nothing for the caller.
            try {
                group->backend->shutdown();
            } catch (...) {
            }
        }
        delete group;
#else
        (void)g;
#endif
    } catch (...) {
    }
}
