// CUDA graphs: a sequence of libtorch calls captured once on a CUDA device and replayed as one
// launch (where a step is many small kernels, the launches are the cost). gran captures around
// its own Rust code: capture_begin makes a side stream current and starts capturing, the caller
// runs its tensor operations, capture_end stops and instantiates, and replay re-runs the kernels
// on the same memory (inputs are updated in place before a replay; outputs are read after it).
// Internal to libgran (not exported: gran.map).
//
// Compiled with GRAN_CUDA_GRAPHS only when build.rs finds the CUDA runtime headers beside
// libtorch (the nvidia/cu13 wheel); without them every call fails cleanly with a message.
// Each call returns 0, or 1 with a message in `err` (NUL-terminated, at most `err_len` bytes).
#include <cstdint>
#include <cstdio>
#include <string>
#include <stdexcept>

#include "shim.h"

#ifdef GRAN_CUDA_GRAPHS
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

namespace {
struct Graph {
    explicit Graph(int device)
        : device(static_cast<c10::DeviceIndex>(device)),
          side(c10::cuda::getStreamFromPool(false, this->device)),
          previous(c10::cuda::getCurrentCUDAStream(this->device)) {}
    c10::DeviceIndex device;
    at::cuda::CUDAGraph graph;
    c10::cuda::CUDAStream side;
    c10::cuda::CUDAStream previous;
    bool capturing = false;
    bool captured = false;
};
}  // namespace

extern "C" int grn_cuda_graph_supported(void) { return 1; }

extern "C" int grn_cuda_graph_new(int device, void **out, char *err, size_t err_len) {
    try {
        if (device < 0 || device >= static_cast<int>(c10::cuda::device_count()))
            throw std::runtime_error("no CUDA device " + std::to_string(device));
        *out = new Graph(device);
        return 0;
    } catch (const std::exception &e) {
        return grn_fail(e, err, err_len);
    }
}

// Makes a side stream current (capture cannot run on the default stream) and starts capturing
// what this thread launches on it.
extern "C" int grn_cuda_graph_capture_begin(void *g, char *err, size_t err_len) {
    auto *graph = static_cast<Graph *>(g);
    try {
        if (graph->capturing || graph->captured) throw std::runtime_error("this CUDA graph is already captured");
        graph->previous = c10::cuda::getCurrentCUDAStream(graph->device);
        // Whatever ran before (weights being written, warm-up) is done before capture starts.
        c10::cuda::device_synchronize();
        c10::cuda::setCurrentCUDAStream(graph->side);
        graph->capturing = true;
        graph->graph.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
        return 0;
    } catch (const std::exception &e) {
        if (graph->capturing) c10::cuda::setCurrentCUDAStream(graph->previous);
        graph->capturing = false;
        return grn_fail(e, err, err_len);
    }
}

// Ends the capture (also after a failure in between: then the graph is unusable and the caller
// drops it) and restores the stream that was current.
extern "C" int grn_cuda_graph_capture_end(void *g, char *err, size_t err_len) {
    auto *graph = static_cast<Graph *>(g);
    if (!graph->capturing) {
        if (err != nullptr && err_len > 0) std::snprintf(err, err_len, "%s", "no capture in progress");
        return 1;
    }
    int status = 0;
    try {
        graph->graph.capture_end();
        graph->captured = true;
    } catch (const std::exception &e) {
        status = grn_fail(e, err, err_len);
    }
    graph->capturing = false;
    c10::cuda::setCurrentCUDAStream(graph->previous);
    try {
        c10::cuda::device_synchronize();
    } catch (const std::exception &e) {
        if (status == 0) status = grn_fail(e, err, err_len);
    }
    return status;
}

// Re-runs the captured kernels on the current stream.
extern "C" int grn_cuda_graph_replay(void *g, char *err, size_t err_len) {
    auto *graph = static_cast<Graph *>(g);
    try {
        if (!graph->captured) throw std::runtime_error("this CUDA graph was not captured");
        graph->graph.replay();
        return 0;
    } catch (const std::exception &e) {
        return grn_fail(e, err, err_len);
    }
}

extern "C" void grn_cuda_graph_free(void *g) {
    try {
        delete static_cast<Graph *>(g);
    } catch (...) {
    }
}

#else  // no CUDA headers at build time

namespace {
int unsupported(char *err, size_t err_len) {
    return grn_fail(std::runtime_error("gran was built without CUDA graph support (no CUDA runtime headers beside "
                                       "libtorch at build time)"),
                    err, err_len);
}
}  // namespace

extern "C" int grn_cuda_graph_supported(void) { return 0; }
extern "C" int grn_cuda_graph_new(int, void **, char *err, size_t err_len) { return unsupported(err, err_len); }
extern "C" int grn_cuda_graph_capture_begin(void *, char *err, size_t err_len) { return unsupported(err, err_len); }
extern "C" int grn_cuda_graph_capture_end(void *, char *err, size_t err_len) { return unsupported(err, err_len); }
extern "C" int grn_cuda_graph_replay(void *, char *err, size_t err_len) { return unsupported(err, err_len); }
extern "C" void grn_cuda_graph_free(void *) {}

#endif
