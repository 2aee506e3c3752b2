// bindings/cpp/gran.hpp over libgran_runtime: a C++17 program that only samples (load, config,
// sample, sample_steps, latents, generate, errors as exceptions) links against -lgran_runtime
// alone. gran.hpp includes gran.h, whose declarations the runtime lacks are never called here,
// and the header's inline functions that call them are never instantiated, so nothing of
// libgran is needed at link time.
//
// Built by tests/runtime/test.sh with -std=c++17 -Wall -Wextra -Werror -pedantic under
// AddressSanitizer + UBSan. Run from the repository root (reads runtime/tests/data).
#include <gran.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

static int g_failed = 0;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            std::fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);          \
            g_failed++;                                                                            \
        }                                                                                          \
    } while (0)

static std::string data(const char *file) {
    const char *d = std::getenv("GRAN_RUNTIME_DATA");
    return std::string(d && *d ? d : "runtime/tests/data") + "/" + file;
}

int main() {
    try {
        CHECK(gran::abi_version() == GRAN_ABI_VERSION);
        CHECK(!gran::version().empty());

        gran::Model m = gran::Model::load(data("tiny_t3_bf16.safetensors"));
        CHECK(static_cast<bool>(m));
        gran::ModelConfig c = m.config();
        CHECK(c.height == 28 && c.width == 28 && c.channels == 1 && c.steps == 3 && c.z_dim == 16);
        CHECK(m.step() == 60);
        CHECK(m.inference_only());
        CHECK(!m.has_averaged());

        const std::size_t img = 28 * 28;
        std::vector<uint8_t> px = m.sample(1, 8);
        CHECK(px.size() == 8 * img);
        std::vector<float> f = m.sample_f32(1, 8);
        CHECK(f.size() == 8 * img);
        for (std::size_t i = 0; i < f.size(); i++) CHECK(f[i] >= 0.0f && f[i] <= 1.0f);

        std::vector<uint8_t> steps = m.sample_steps(1, 8);
        CHECK(steps.size() == 3 * 8 * img);
        CHECK(std::vector<uint8_t>(steps.end() - 8 * img, steps.end()) == px);

        std::vector<float> z = m.latents(1, 8);
        CHECK(z.size() == 8 * 16);
        std::vector<uint8_t> gen = m.generate(z);
        CHECK(gen.size() == px.size());
        int worst = 0;
        for (std::size_t i = 0; i < gen.size(); i++) worst = std::max(worst, std::abs(int(gen[i]) - int(px[i])));
        CHECK(worst <= 1);

        // A checkpoint: its averaged generator by default, the raw one on request.
        gran::Model ck = gran::Model::load(data("tiny_t3_checkpoint.safetensors"), gran::cpu());
        CHECK(ck.has_averaged());
        std::vector<uint8_t> avg = ck.sample(2, 4);
        ck.set_generator(GRAN_GENERATOR_RAW);
        CHECK(ck.sample(2, 4) != avg);

        // Moves leave handle 0 behind: calls on it throw INVALID_HANDLE.
        gran::Model moved = std::move(m);
        try {
            (void)m.sample(1, 1);
            CHECK(false);
        } catch (const gran::Error &e) {
            CHECK(e.status() == GRAN_STATUS_INVALID_HANDLE);
        }
        CHECK(moved.sample(1, 8) == px);

        // Failures as exceptions with the status and the library's message.
        try {
            (void)gran::Model::load("/nonexistent/model.safetensors");
            CHECK(false);
        } catch (const gran::Error &e) {
            CHECK(e.status() == GRAN_STATUS_IO);
            CHECK(e.message().find("/nonexistent/model.safetensors") != std::string::npos);
            CHECK(std::string(e.what()).rfind("GRAN_STATUS_IO: ", 0) == 0);
        }
        try {
            (void)moved.generate(std::vector<float>(15));
            CHECK(false);
        } catch (const gran::Error &e) {
            CHECK(e.status() == GRAN_STATUS_INVALID_ARGUMENT);
        }
    } catch (const std::exception &e) {
        std::fprintf(stderr, "unexpected exception: %s\n", e.what());
        g_failed++;
    }
    std::printf("runtime-cpp: %s (%d failed checks)\n", g_failed == 0 ? "passed" : "FAILED", g_failed);
    return g_failed == 0 ? 0 : 1;
}
