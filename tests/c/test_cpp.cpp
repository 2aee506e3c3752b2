// include/gran.h used from C++17: extern "C" linkage, nullptr for pointers, lambdas as
// callbacks, RAII ownership of handles, std::thread. Built with
// g++ -std=c++17 -Wall -Wextra -Werror -pedantic and run under AddressSanitizer.
#include "gran.h"

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

static_assert(GRAN_ABI_VERSION >= 1, "ABI version");
static_assert(GRAN_STATUS_OK == 0, "OK is 0");
static_assert(sizeof(GranModel) == 8 && sizeof(GranDataset) == 8, "64-bit handles");
static_assert(std::is_standard_layout<GranModelConfig>::value && std::is_trivial<GranModelConfig>::value,
              "plain C struct");
static_assert(std::is_standard_layout<GranTrainConfig>::value && std::is_trivial<GranTrainConfig>::value,
              "plain C struct");
static_assert(std::is_same<decltype(&gran_sample),
                           GranStatus (*)(GranModel, uint64_t, uint32_t, GranPixelFormat, void *, size_t)>::value,
              "gran_sample's signature");

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) fail(__FILE__, __LINE__, #cond);                                              \
    } while (0)
#define CHECK_IS(expr, want) CHECK((expr) == (want))

[[noreturn]] static void fail(const char *file, int line, const char *what) {
    char msg[512];
    gran_last_error(msg, sizeof msg);
    std::fprintf(stderr, "%s:%d: CHECK(%s) failed; gran_last_error: %s\n", file, line, what, msg);
    std::fflush(nullptr);
    std::_Exit(1);
}

static std::string last_error() {
    std::string s(gran_last_error(nullptr, 0), '\0');
    gran_last_error(&s[0], s.size() + 1); // C++11 strings hold a NUL past size()
    return s;
}

// Owns a model handle.
class Model {
public:
    explicit Model(const GranModelConfig &c) { CHECK_IS(gran_model_create(&c, &handle_), GRAN_STATUS_OK); }
    Model(Model &&o) noexcept : handle_(o.handle_) { o.handle_ = 0; }
    Model(const Model &) = delete;
    Model &operator=(const Model &) = delete;
    ~Model() {
        if (handle_ != 0) CHECK_IS(gran_model_free(handle_), GRAN_STATUS_OK);
    }
    GranModel get() const { return handle_; }
    std::vector<uint8_t> sample(uint64_t seed, uint32_t count) const {
        std::vector<uint8_t> out(static_cast<size_t>(count) * 28 * 28);
        CHECK_IS(gran_sample(handle_, seed, count, GRAN_PIXEL_FORMAT_U8_HWC, out.data(), out.size()), GRAN_STATUS_OK);
        return out;
    }

private:
    GranModel handle_ = 0;
};

int main() {
    GranModelConfig mc;
    gran_model_config_init(&mc);
    mc.steps = 2;
    mc.z_dim = 16;
    mc.hidden_dim = 16;
    mc.width_scale = 0.125f;
    // The device of the tests (GRAN_TEST_DEVICE: cpu, cuda or cuda:N; the CPU when unset).
    const char *dev = std::getenv("GRAN_TEST_DEVICE");
    mc.device = GranDevice{GRAN_DEVICE_CPU, 0};
    if (dev != nullptr && std::strncmp(dev, "cuda", 4) == 0)
        mc.device = GranDevice{GRAN_DEVICE_CUDA, dev[4] == ':' ? std::atoi(dev + 5) : 0};
    else if (dev != nullptr && *dev != '\0' && std::strcmp(dev, "cpu") != 0) {
        std::fprintf(stderr, "GRAN_TEST_DEVICE=\"%s\": expected cpu, cuda or cuda:N\n", dev);
        return 2;
    }

    // Errors as values, messages as std::string.
    GranModel none = 0;
    CHECK_IS(gran_model_create(nullptr, &none), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK(none == 0);
    CHECK(last_error().find("NULL") != std::string::npos);
    CHECK(std::string(gran_status_string(GRAN_STATUS_BUSY)) == "GRAN_STATUS_BUSY");

    // Synthetic data.
    std::vector<uint8_t> pixels(32 * 28 * 28);
    for (size_t i = 0; i < pixels.size(); i++) pixels[i] = static_cast<uint8_t>((i * 37) % 256);
    GranDataset data = 0;
    CHECK_IS(gran_dataset_from_pixels(pixels.data(), 32, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, &data), GRAN_STATUS_OK);

    Model model(mc);
    Model moved(std::move(model));
    CHECK(model.get() == 0 && moved.get() != 0);

    // A captureless lambda as the progress callback; user data is a std::atomic.
    std::atomic<int> reports{0};
    GranTrainConfig tc;
    gran_train_config_init(&tc);
    tc.batch_size = 16;
    tc.iterations = 3;
    tc.report_every = 1;
    tc.user_data = &reports;
    tc.on_progress = [](const GranProgress *p, void *user) -> int32_t {
        static_cast<std::atomic<int> *>(user)->fetch_add(1);
        return p->step > 3; // never: the run has 3 steps
    };

    // Sampling from two std::threads while this one trains.
    std::atomic<bool> done{false};
    std::atomic<long> sampled{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; t++) {
        threads.emplace_back([&, t] {
            while (!done.load()) {
                std::vector<float> f(2 * 28 * 28);
                GranStatus s = gran_sample(moved.get(), static_cast<uint64_t>(t), 2, GRAN_PIXEL_FORMAT_F32_CHW,
                                           f.data(), f.size() * sizeof(float));
                CHECK_IS(s, GRAN_STATUS_OK);
                for (float v : f) CHECK(v >= 0.0f && v <= 1.0f);
                sampled.fetch_add(1);
            }
        });
    }
    GranProgress last{};
    last.struct_size = sizeof last;
    CHECK_IS(gran_train(moved.get(), data, &tc, &last), GRAN_STATUS_OK);
    while (sampled.load() < 2) std::this_thread::yield();
    done.store(true);
    for (auto &t : threads) t.join();
    CHECK(reports.load() == 3 && last.step == 3);

    // Determinism: the first images do not depend on the count.
    auto a = moved.sample(9, 2), b = moved.sample(9, 5);
    CHECK(std::memcmp(a.data(), b.data(), a.size()) == 0);

    CHECK_IS(gran_dataset_free(data), GRAN_STATUS_OK);
    CHECK_IS(gran_dataset_free(data), GRAN_STATUS_INVALID_HANDLE);
    std::printf("test_cpp: ok (gran %s, ABI %u)\n", gran_version(), gran_abi_version());
    return 0;
}
