// Tests of bindings/cpp/gran.hpp against the real library. Run from the repository root (it
// reads data/mnist10k when present, else trains on synthetic digits). Exits non-zero on failure.
#include <gran.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

int passed = 0;
int failed = 0;

struct Failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

#define EXPECT(cond)                                                                                             \
    do {                                                                                                         \
        if (!(cond)) throw Failure(std::string(__FILE__ ":") + std::to_string(__LINE__) + ": expected " #cond); \
    } while (0)

// Runs `body`, expecting gran::Error with `status`.
template <class F>
void expect_error(GranStatus status, F &&body, const char *what) {
    try {
        body();
    } catch (const gran::Error &e) {
        if (e.status() != status)
            throw Failure(std::string(what) + ": expected " + gran::status_string(status) + ", got " + e.what());
        if (e.message().empty()) throw Failure(std::string(what) + ": empty error message");
        return;
    }
    throw Failure(std::string(what) + ": expected " + gran::status_string(status) + ", nothing thrown");
}

template <class F>
void run(const char *name, F &&body) {
    auto t0 = std::chrono::steady_clock::now();
    try {
        body();
        ++passed;
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::printf("PASS %s (%.2fs)\n", name, s);
    } catch (const std::exception &e) {
        ++failed;
        std::printf("FAIL %s: %s\n", name, e.what());
    } catch (...) {
        ++failed;
        std::printf("FAIL %s: unknown exception\n", name);
    }
    std::fflush(stdout);
}

std::string temp_dir() {
    const char *base = std::getenv("TMPDIR");
    std::string templ = std::string(base && *base ? base : "/tmp") + "/gran-cpp-test-XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
    return std::string(buf.data());
}

bool file_exists(const std::string &path) { return std::ifstream(path).good(); }

gran::ModelConfig tiny_config() {
    gran::ModelConfig mc;
    mc.width_scale = 0.125f;
    mc.z_dim = 16;
    mc.hidden_dim = 16;
    mc.steps = 2;
    mc.device = gran::cpu();
    mc.seed = 7;
    return mc;
}

gran::TrainConfig tiny_train() {
    gran::TrainConfig tc;
    tc.batch_size = 16;
    tc.iterations = 20;
    tc.report_every = 5;
    tc.seed = 3;
    return tc;
}

// 64 synthetic 28x28 "digits": a bright bar at a varying position.
std::vector<uint8_t> synthetic_pixels(std::size_t count) {
    std::vector<uint8_t> px(count * 28 * 28, 0);
    for (std::size_t i = 0; i < count; ++i)
        for (int y = 4; y < 24; ++y)
            for (int x = 0; x < 4; ++x) px[i * 784 + y * 28 + (4 + (i * 3) % 18 + x)] = 255;
    return px;
}

// `count` synthetic images with labels i % classes.
std::vector<uint8_t> labels_mod(std::size_t count, uint32_t classes) {
    std::vector<uint8_t> labels(count);
    for (std::size_t i = 0; i < count; ++i) labels[i] = uint8_t(i % classes);
    return labels;
}

gran::Dataset labelled_data(std::size_t count, uint32_t classes) {
    return gran::Dataset::from_labelled_pixels(synthetic_pixels(count), labels_mod(count, classes), 28, 28, 1);
}

// Image `i` of `count` in a U8 result of `bytes` bytes.
std::vector<uint8_t> image(const std::vector<uint8_t> &bytes, std::size_t count, std::size_t i) {
    std::size_t per = bytes.size() / count;
    return std::vector<uint8_t>(bytes.begin() + std::ptrdiff_t(i * per), bytes.begin() + std::ptrdiff_t((i + 1) * per));
}

gran::Dataset training_data() {
    const char *mnist = "data/mnist10k/train-images-idx3-ubyte.gz";
    if (file_exists(mnist)) return gran::Dataset::load_idx(mnist, "data/mnist10k/train-labels-idx1-ubyte.gz");
    std::printf("note: %s not found; training on synthetic data\n", mnist);
    return gran::Dataset::from_pixels(synthetic_pixels(256), 28, 28, 1);
}

}  // namespace

int main() {
    static_assert(!std::is_copy_constructible<gran::Model>::value, "Model is move-only");
    static_assert(!std::is_copy_assignable<gran::Model>::value, "Model is move-only");
    static_assert(std::is_nothrow_move_constructible<gran::Model>::value, "Model moves");
    static_assert(!std::is_copy_constructible<gran::Dataset>::value, "Dataset is move-only");
    static_assert(std::is_nothrow_move_assignable<gran::Dataset>::value, "Dataset moves");
    static_assert(std::is_base_of<std::runtime_error, gran::Error>::value, "Error is a runtime_error");
    static_assert(std::is_nothrow_copy_constructible<gran::Error>::value, "copying an Error never throws");
    static_assert(!std::is_copy_constructible<gran::Evaluator>::value, "Evaluator is move-only");
    static_assert(std::is_nothrow_move_constructible<gran::Evaluator>::value, "Evaluator moves");

    const std::string dir = temp_dir();
    auto t0 = std::chrono::steady_clock::now();

    run("version", [] {
        EXPECT(!gran::version().empty());
        EXPECT(gran::abi_version() == GRAN_ABI_VERSION);
        EXPECT(gran::cuda_device_count() >= 0);
        const bool before = gran::deterministic();
        gran::set_deterministic(true);
        EXPECT(gran::deterministic());
        gran::set_deterministic(false);
        EXPECT(!gran::deterministic());
        gran::set_deterministic(before);
        EXPECT(gran::status_string(GRAN_STATUS_IO) == "GRAN_STATUS_IO");
    });

    run("config defaults", [] {
        gran::ModelConfig mc;
        EXPECT(mc.struct_size == sizeof(GranModelConfig) && sizeof(GranModelConfig) == 64);
        EXPECT(mc.height == 28 && mc.width == 28 && mc.channels == 1 && mc.steps == 3 && mc.classes == 0);
        EXPECT(mc.z_dim == 100 && mc.hidden_dim == 100 && mc.device.kind == GRAN_DEVICE_AUTO);
        gran::TrainConfig tc;
        EXPECT(tc.struct_size == sizeof(GranTrainConfig));
        EXPECT(tc.batch_size == 64 && tc.iterations == 2000 && tc.on_progress == nullptr);
        EXPECT(std::fabs(tc.lr_g - 8e-4) < 1e-12 && std::fabs(tc.lr_d - 3.2e-3) < 1e-12);
        EXPECT(tc.ema_decay == 0.99 && tc.ema_start == 200 && tc.lr_schedule == GRAN_LR_CONSTANT);
    });

    run("dataset", [] {
        gran::Dataset d = training_data();
        gran::DatasetInfo i = d.info();
        EXPECT(i.count >= 64 && i.height == 28 && i.width == 28 && i.channels == 1);
        gran::Dataset s = gran::Dataset::from_pixels(synthetic_pixels(10), 28, 28, 1);
        EXPECT(s.info().count == 10 && !s.info().has_labels);
        gran::Dataset l = gran::Dataset::from_labelled_pixels(synthetic_pixels(10), labels_mod(10, 3), 28, 28, 1);
        EXPECT(l.info().count == 10 && l.info().has_labels);
        EXPECT(gran::Dataset::from_labelled_pixels(std::vector<float>(2 * 784, 0.5f), {1, 0}, 28, 28, 1).info().has_labels);
        expect_error(GRAN_STATUS_INVALID_ARGUMENT,
                     [] { gran::Dataset::from_labelled_pixels(synthetic_pixels(10), labels_mod(9, 3), 28, 28, 1); },
                     "9 labels for 10 images");
        expect_error(GRAN_STATUS_INVALID_ARGUMENT,
                     [] { gran::Dataset::from_labelled_pixels(synthetic_pixels(2).data(), nullptr, 2, 28, 28, 1,
                                                             GRAN_PIXEL_FORMAT_U8_HWC); },
                     "NULL labels");
        std::vector<float> f(3 * 32 * 32 * 3, 0.5f);
        EXPECT(gran::Dataset::from_pixels(f, 32, 32, 3).info().count == 3);
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [] { gran::Dataset::from_pixels(std::vector<uint8_t>(100), 28, 28, 1); },
                     "vector of a partial image");
        f[5] = 2.0f;  // out of [0, 1]
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { gran::Dataset::from_pixels(f, 32, 32, 3); }, "float > 1");
        expect_error(GRAN_STATUS_IO, [] { gran::Dataset::load_idx("/nonexistent/images.gz"); }, "missing IDX");
    });

    run("train, sample, save, load round trip", [&] {
        gran::Dataset data = training_data();
        gran::Model m = gran::Model::create(tiny_config());
        EXPECT(m.step() == 0);
        gran::ModelConfig c = m.config();
        EXPECT(c.z_dim == 16 && c.hidden_dim == 16 && c.steps == 2 && c.device.kind == GRAN_DEVICE_CPU);

        int reports = 0;
        gran::Progress last = m.train(data, tiny_train(), [&](const gran::Progress &p) {
            ++reports;
            EXPECT(p.step >= 1 && p.step <= 20 && p.total_steps == 20);
            return false;
        });
        EXPECT(reports >= 4);
        EXPECT(last.step == 20 && std::isfinite(last.d_loss) && std::isfinite(last.g_loss));
        EXPECT(m.step() == 20);

        std::vector<uint8_t> a = m.sample(11, 8);
        EXPECT(a.size() == 8u * 28 * 28);
        std::vector<float> f = m.sample_f32(11, 8);
        EXPECT(f.size() == 8u * 28 * 28);
        for (float v : f) EXPECT(v >= 0.0f && v <= 1.0f);
        // Image i depends only on (weights, seed, i).
        std::vector<uint8_t> a3 = m.sample(11, 3);
        EXPECT(std::equal(a3.begin(), a3.end(), a.begin()));
        // sample == generate(latents).
        std::vector<float> z = m.latents(11, 8);
        EXPECT(z.size() == 8u * 16);
        EXPECT(m.generate(z) == a);
        EXPECT(m.generate_f32(z).size() == f.size());
        // The last block of sample_steps is sample.
        std::vector<uint8_t> steps = m.sample_steps(11, 8);
        EXPECT(steps.size() == 2 * a.size());
        EXPECT(std::equal(a.begin(), a.end(), steps.begin() + a.size()));
        EXPECT(m.sample_steps_f32(11, 8).size() == 2 * f.size());
        std::vector<float> p = m.discriminate(a);
        EXPECT(p.size() == 8);
        for (float v : p) EXPECT(v >= 0.0f && v <= 1.0f);
        EXPECT(m.discriminate(f).size() == 8);

        const std::string path = dir + "/model.gran";
        m.save(path);
        gran::Model loaded = gran::Model::load(path, gran::cpu());
        EXPECT(loaded.step() == 20);
        EXPECT(loaded.sample(11, 8) == a);
        EXPECT(loaded.sample_f32(11, 8) == f);
        gran::Model loaded2 = gran::Model::load(path);
        EXPECT(loaded2.sample(11, 8) == a);

        gran::write_png(dir + "/grid.png", a, 8, 28, 28, 1, 4);
        EXPECT(file_exists(dir + "/grid.png"));
        gran::write_png(dir + "/gridf.png", f, 8, 28, 28, 1, 4);
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { gran::write_png(dir + "/x.png", a, 9, 28, 28, 1, 4); },
                     "write_png with too few pixels");
        gran::write_gif(dir + "/drawing.gif", steps.data(), 2, 8, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, 4, 300);
        EXPECT(file_exists(dir + "/drawing.gif"));
        expect_error(GRAN_STATUS_INVALID_ARGUMENT,
                     [&] { gran::write_gif(dir + "/y.gif", steps.data(), 2, 8, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, 4, 0); },
                     "write_gif with a delay of 0");
        EXPECT(!file_exists(dir + "/y.gif"));
    });

    run("bfloat16 training and sampling", [&] {
        gran::Dataset data = training_data();
        gran::Model m = gran::Model::create(tiny_config());
        EXPECT(m.precision() == GRAN_PRECISION_FP32);
        GranTrainConfig t = tiny_train();
        t.precision = GRAN_PRECISION_BF16;
        gran::Progress last = m.train(data, t);
        EXPECT(last.step == 20 && std::isfinite(last.d_loss) && std::isfinite(last.g_loss));
        std::vector<float> f = m.sample_f32(3, 8);
        m.set_precision(GRAN_PRECISION_BF16);
        EXPECT(m.precision() == GRAN_PRECISION_BF16);
        std::vector<float> b = m.sample_f32(3, 8);
        EXPECT(b.size() == f.size() && b != f);
        for (std::size_t i = 0; i < f.size(); ++i) EXPECT(std::fabs(b[i] - f[i]) < 0.05f);
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { m.set_precision(2); }, "unknown precision");
        EXPECT(m.precision() == GRAN_PRECISION_BF16);
        m.set_precision(GRAN_PRECISION_FP32);
        EXPECT(m.sample_f32(3, 8) == f);
        t.precision = 9;
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { m.train(data, t); }, "unknown training precision");
        EXPECT(m.step() == 20);
    });

    run("averaged generator and schedule", [&] {
        gran::Dataset data = training_data();
        gran::Model m = gran::Model::create(tiny_config());
        EXPECT(!m.has_averaged());
        GranTrainConfig t = tiny_train();
        t.ema_decay = 0.5;
        t.ema_start = 2;
        t.lr_schedule = GRAN_LR_LINEAR;
        m.train(data, t);
        EXPECT(m.has_averaged());
        std::vector<float> averaged = m.sample_f32(3, 8);
        m.set_generator(GRAN_GENERATOR_RAW);
        std::vector<float> raw = m.sample_f32(3, 8);
        EXPECT(raw.size() == averaged.size() && raw != averaged);
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { m.set_generator(7); }, "unknown generator");
        m.set_generator(GRAN_GENERATOR_AVERAGED);
        EXPECT(m.sample_f32(3, 8) == averaged);
        m.export_generator(dir + "/g.safetensors");
        gran::Model e = gran::Model::load(dir + "/g.safetensors");
        EXPECT(e.inference_only() && !m.inference_only());
        EXPECT(e.sample_f32(3, 8) == averaged);
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { e.train(data, tiny_train()); }, "training an export");
        t.lr_schedule = 9;
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { m.train(data, t); }, "unknown schedule");
        t.lr_schedule = GRAN_LR_CONSTANT;
        t.ema_decay = 1.0;
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { m.train(data, t); }, "ema_decay 1");
        EXPECT(m.step() == 20);
    });

    run("errors carry status and message", [&] {
        expect_error(GRAN_STATUS_IO, [&] { gran::Model::load(dir + "/missing.gran"); }, "load missing file");
        {
            std::ofstream(dir + "/garbage.gran") << "this is not a checkpoint, just some bytes";
        }
        expect_error(GRAN_STATUS_FORMAT, [&] { gran::Model::load(dir + "/garbage.gran"); }, "load garbage");
        gran::ModelConfig bad = tiny_config();
        bad.height = bad.width = 30;
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { gran::Model::create(bad); }, "unsupported size");
        try {
            gran::Model::load(dir + "/missing.gran");
        } catch (const gran::Error &e) {
            EXPECT(std::string(e.what()).rfind("GRAN_STATUS_IO: ", 0) == 0);
            EXPECT(e.message().find("missing.gran") != std::string::npos);
        }
        if (gran::cuda_device_count() == 0) {
            gran::ModelConfig cu = tiny_config();
            cu.device = gran::cuda(0);
            expect_error(GRAN_STATUS_DEVICE, [&] { gran::Model::create(cu); }, "CUDA without a GPU");
        }
        gran::Model m = gran::Model::create(tiny_config());
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { m.sample(1, 0); }, "sample count 0");
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { m.generate(std::vector<float>(17)); }, "partial latent");
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { m.sample(1, 1, 99); }, "unknown format");
        expect_error(GRAN_STATUS_IO, [&] { m.save(dir + "/no/such/folder/m.gran"); }, "save into a missing folder");
    });

    run("moved-from and empty objects are safe", [&] {
        gran::Model a = gran::Model::create(tiny_config());
        gran::Model b = std::move(a);
        EXPECT(!a && b);
        EXPECT(a.handle() == 0);
        expect_error(GRAN_STATUS_INVALID_HANDLE, [&] { a.step(); }, "step on moved-from");
        expect_error(GRAN_STATUS_INVALID_HANDLE, [&] { a.sample(1, 1); }, "sample on moved-from");
        expect_error(GRAN_STATUS_INVALID_HANDLE, [&] { a.save(dir + "/x.gran"); }, "save on moved-from");
        expect_error(GRAN_STATUS_INVALID_HANDLE, [&] { a.cancel(); }, "cancel on moved-from");
        EXPECT(b.step() == 0);
        a = std::move(b);  // move back
        EXPECT(a && !b && a.step() == 0);
        gran::Model &alias = a;
        a = std::move(alias);  // self-move leaves it intact (through a reference: no -Wself-move)
        EXPECT(a && a.step() == 0);
        a.reset();
        a.reset();  // twice is fine
        EXPECT(!a);

        gran::Dataset d = gran::Dataset::from_pixels(synthetic_pixels(4), 28, 28, 1);
        gran::Dataset e(std::move(d));
        expect_error(GRAN_STATUS_INVALID_HANDLE, [&] { d.info(); }, "info on moved-from dataset");
        EXPECT(e.info().count == 4);
        gran::Model fresh = gran::Model::create(tiny_config());
        gran::TrainConfig tc = tiny_train();
        tc.batch_size = 2;
        expect_error(GRAN_STATUS_INVALID_HANDLE, [&] { fresh.train(d, tc); }, "train on a moved-from dataset");

        // release() hands the handle over; the C function frees it.
        gran::Model r = gran::Model::create(tiny_config());
        GranModel h = r.release();
        EXPECT(!r && h != 0);
        EXPECT(gran_model_free(h) == GRAN_STATUS_OK);
        EXPECT(gran_model_free(h) == GRAN_STATUS_INVALID_HANDLE);
    });

    run("callback stop gives CANCELLED", [&] {
        gran::Dataset data = training_data();
        gran::Model m = gran::Model::create(tiny_config());
        gran::TrainConfig tc = tiny_train();
        tc.report_every = 2;
        int calls = 0;
        expect_error(GRAN_STATUS_CANCELLED,
                     [&] { m.train(data, tc, [&](const gran::Progress &) { return ++calls == 2; }); },
                     "callback returning true");
        EXPECT(calls == 2);
        EXPECT(m.step() == 4);
        // cancel() from inside the callback, returning false.
        expect_error(GRAN_STATUS_CANCELLED,
                     [&] {
                         m.train(data, tc, [&](const gran::Progress &) {
                             m.cancel();
                             return false;
                         });
                     },
                     "cancel() from the callback");
        // A second train() from the callback: BUSY (rethrown as the callback's exception).
        expect_error(GRAN_STATUS_BUSY,
                     [&] { m.train(data, tc, [&](const gran::Progress &) -> bool { m.train(data, tc); return false; }); },
                     "nested train");
        // The model is still usable.
        gran::TrainConfig two = tiny_train();
        two.iterations = 2;
        uint64_t before = m.step();
        m.train(data, two);
        EXPECT(m.step() == before + 2);
    });

    run("exception in the callback is rethrown by train()", [&] {
        gran::Dataset data = training_data();
        gran::Model m = gran::Model::create(tiny_config());
        gran::TrainConfig tc = tiny_train();
        tc.report_every = 1;
        struct Custom {
            int value;
        };
        int calls = 0;
        try {
            m.train(data, tc, [&](const gran::Progress &) -> bool {
                if (++calls == 3) throw Custom{42};
                return false;
            });
            throw Failure("train() did not rethrow");
        } catch (const Custom &c) {
            EXPECT(c.value == 42);
        }
        EXPECT(calls == 3);
        EXPECT(m.step() == 3);
        try {
            m.train(data, tc, [](const gran::Progress &) -> bool { throw std::out_of_range("from callback"); });
            throw Failure("train() did not rethrow");
        } catch (const std::out_of_range &e) {
            EXPECT(std::string(e.what()) == "from callback");
        }
        EXPECT(m.sample(1, 2).size() == 2u * 784);
    });

    run("gam", [&] {
        gran::Dataset data = training_data();
        const char *held_out = "data/mnist10k/t10k-images-idx3-ubyte.gz";
        gran::Dataset test = file_exists(held_out) ? gran::Dataset::load_idx(held_out)
                                                   : gran::Dataset::from_pixels(synthetic_pixels(64), 28, 28, 1);
        gran::Model a = gran::Model::create(tiny_config());
        gran::ModelConfig cb = tiny_config();
        cb.seed = 99;
        gran::Model b = gran::Model::create(cb);
        gran::TrainConfig tc = tiny_train();
        tc.iterations = 5;
        a.train(data, tc);
        gran::GamConfig gc;
        EXPECT(gc.struct_size == sizeof(GranGamConfig) && gc.samples == 1000);
        gc.samples = 64;
        gran::GamResult ab = gran::gam(a, b, test, gc);
        gran::GamResult ba = gran::gam(b, a, test, gc);
        EXPECT(ab.verdict <= GRAN_GAM_UNDECIDED);
        EXPECT(ab.sample_count == 64 && ab.test_count > 0);
        EXPECT(ab.test_error_a == ba.test_error_b && ab.sample_error_a == ba.sample_error_b);
        if (ab.verdict == GRAN_GAM_A_WINS) EXPECT(ba.verdict == GRAN_GAM_B_WINS);
        if (ab.verdict == GRAN_GAM_TIE || ab.verdict == GRAN_GAM_UNDECIDED) EXPECT(ba.verdict == ab.verdict);
        if (ab.sample_error_b < 1.0)
            EXPECT(ab.accuracy_r_sample == (1.0 - ab.sample_error_a) / (1.0 - ab.sample_error_b));
        if (ab.accuracy_ranking == GRAN_GAM_A_FIRST) EXPECT(ba.accuracy_ranking == GRAN_GAM_B_FIRST);
        gc.samples = 0;
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { gran::gam(a, b, test, gc); }, "gam with 0 samples");
        gran::Model gone;
        expect_error(GRAN_STATUS_INVALID_HANDLE, [&] { gran::gam(a, gone, test); }, "gam with an empty model");
    });

    run("evaluator", [&] {
        const char *images = "data/mnist10k/t10k-images-idx3-ubyte.gz";
        const char *labels = "data/mnist10k/t10k-labels-idx1-ubyte.gz";
        if (!file_exists(images) || !file_exists(labels)) {
            std::printf("note: no labelled data: evaluator checks limited to errors\n");
            gran::Dataset unlabelled = gran::Dataset::from_pixels(synthetic_pixels(8), 28, 28, 1);
            expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { gran::Evaluator::train(unlabelled); }, "no labels");
            return;
        }
        gran::Dataset labelled = gran::Dataset::load_idx(images, labels);
        gran::EvaluatorConfig ec;
        EXPECT(ec.struct_size == sizeof(GranEvaluatorConfig) && ec.epochs == 5);
        ec.epochs = 1;
        ec.device = gran::cpu();
        gran::Evaluator ev = gran::Evaluator::train(labelled, ec);
        double acc = ev.accuracy(labelled);
        EXPECT(acc >= 0.0 && acc <= 1.0);
        gran::Model m = gran::Model::create(tiny_config());
        gran::Quality q = ev.evaluate_model(m, 1, 32, labelled);
        EXPECT(q.count == 32 && q.classes == 10);
        for (uint32_t i = 0; i < q.classes; ++i) EXPECT(std::isnan(q.class_accuracy[i]));  // unconditional
        double share = 0;
        for (uint32_t i = 0; i < q.classes; ++i) share += q.class_share[i];
        EXPECT(std::fabs(share - 1.0) < 1e-6);
        EXPECT(std::isnan(q.nearest_train_distance));
        gran::Dataset train = training_data();
        gran::Quality qt = ev.evaluate_model(m, 1, 32, labelled, &train);
        EXPECT(qt.nearest_train_distance > 0 && qt.frechet_distance == q.frechet_distance);
        gran::Quality self = ev.evaluate_dataset(labelled, labelled);
        EXPECT(self.count == labelled.info().count && std::fabs(self.frechet_distance) < 1e-3);
        gran::Dataset unlabelled = gran::Dataset::from_pixels(synthetic_pixels(8), 28, 28, 1);
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { ev.accuracy(unlabelled); }, "accuracy on unlabelled data");
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { gran::Evaluator::train(unlabelled, ec); }, "train unlabelled");
        gran::Evaluator moved = std::move(ev);
        expect_error(GRAN_STATUS_INVALID_HANDLE, [&] { ev.accuracy(labelled); }, "moved-from evaluator");
        EXPECT(moved.accuracy(labelled) == acc);
    });

    run("class-conditional model", [&] {
        gran::ModelConfig mc = tiny_config();
        mc.classes = 4;
        gran::Model m = gran::Model::create(mc);
        EXPECT(m.classes() == 4 && m.config().classes == 4);
        for (uint32_t bad : {1u, 257u}) {
            gran::ModelConfig b = tiny_config();
            b.classes = bad;
            expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { gran::Model::create(b); }, "classes 1 or 257");
        }

        // Training needs labels within the classes.
        gran::Dataset data = labelled_data(32, 4);
        EXPECT(data.info().has_labels);
        gran::TrainConfig tc = tiny_train();
        tc.iterations = 2;
        gran::Dataset unlabelled = gran::Dataset::from_pixels(synthetic_pixels(32), 28, 28, 1);
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { m.train(unlabelled, tc); }, "conditional on unlabelled data");
        gran::Dataset six = labelled_data(32, 6);
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { m.train(six, tc); }, "labels past the classes");
        EXPECT(m.step() == 0);
        gran::Progress last = m.train(data, tc);
        EXPECT(last.step == 2 && m.step() == 2);

        // One class for all, one per image: image i of class k does not depend on the count or
        // on the other images' classes.
        const std::vector<uint32_t> per = {2, 0, 1, 3, 2, 1};
        std::vector<uint8_t> a = m.sample_class(3, 6, 2);
        EXPECT(a.size() == 6u * 784);
        std::vector<uint8_t> b = m.sample_class(3, 6, per);
        EXPECT(image(b, 6, 0) == image(a, 6, 0) && image(b, 6, 4) == image(a, 6, 4));
        EXPECT(image(b, 6, 1) != image(a, 6, 1));
        std::vector<uint8_t> b2 = m.sample_class(3, 2, {2, 0});
        EXPECT(std::equal(b2.begin(), b2.end(), b.begin()));
        std::vector<uint8_t> other = m.sample_class(3, 8, {2, 3, 3, 3, 2, 0, 0, 0});
        EXPECT(image(other, 8, 0) == image(a, 6, 0) && image(other, 8, 4) == image(a, 6, 4));
        EXPECT(m.sample_class(3, 6, {2}) == a);
        std::vector<float> f = m.sample_class_f32(3, 6, per);
        EXPECT(f.size() == 6u * 784);
        for (float v : f) EXPECT(v >= 0.0f && v <= 1.0f);
        // Without classes, image i is drawn as a class drawn from (seed, i): one of the four.
        std::vector<uint8_t> drawn = m.sample(3, 6);
        std::vector<std::vector<uint8_t>> by_class;
        for (uint32_t k = 0; k < 4; ++k) by_class.push_back(m.sample_class(3, 6, k));
        for (std::size_t i = 0; i < 6; ++i) {
            bool found = false;
            for (const auto &s : by_class) found = found || image(s, 6, i) == image(drawn, 6, i);
            EXPECT(found);
        }

        // Steps, caller latents, the discriminator.
        const std::vector<uint32_t> per4 = {3, 1, 0, 2};
        std::vector<uint8_t> imgs = m.sample_class(9, 4, per4);
        std::vector<uint8_t> steps = m.sample_steps_class(9, 4, per4);
        EXPECT(steps.size() == 2 * imgs.size());
        EXPECT(std::equal(imgs.begin(), imgs.end(), steps.begin() + std::ptrdiff_t(imgs.size())));
        EXPECT(m.sample_steps_class_f32(9, 4, per4).size() == 2u * 4 * 784);
        std::vector<float> z = m.latents(9, 4);
        EXPECT(m.generate_class(z, per4) == imgs);
        EXPECT(m.generate_class_f32(z, per4) == m.sample_class_f32(9, 4, per4));
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { m.generate(z); }, "generate without classes");
        std::vector<float> p = m.discriminate_class(imgs, per4);
        EXPECT(p.size() == 4);
        for (float v : p) EXPECT(v >= 0.0f && v <= 1.0f);
        EXPECT(m.discriminate_class(m.sample_class_f32(9, 4, per4), per4).size() == 4);
        EXPECT(m.discriminate(imgs).size() == 4);  // each as its most real class

        // Bad classes: INVALID_ARGUMENT, nothing written.
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { m.sample_class(1, 2, 4); }, "class 4 of 4");
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { m.sample_class(1, 2, {0, 4}); }, "class 4 per image");
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { m.sample_class(1, 2, {0, 1, 2}); }, "3 classes, 2 images");
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { m.sample_class(1, 2, std::vector<uint32_t>()); }, "no classes");
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { m.sample_steps_class(1, 2, 9); }, "steps, class 9");
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { m.generate_class(z, 4); }, "generate, class 4");
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { m.discriminate_class(imgs, {0, 1, 2, 7}); },
                     "discriminate, class 7");
        std::vector<uint8_t> untouched(2 * 784, 0xab);
        const uint32_t bad[2] = {1, 4};
        EXPECT(gran_sample_class(m.handle(), 1, 2, bad, 2, GRAN_PIXEL_FORMAT_U8_HWC, untouched.data(),
                                 untouched.size()) == GRAN_STATUS_INVALID_ARGUMENT);
        EXPECT(gran::last_error().find('4') != std::string::npos);
        EXPECT(gran_generate_class(m.handle(), z.data(), 2, bad, 2, GRAN_PIXEL_FORMAT_U8_HWC, untouched.data(),
                                   untouched.size()) == GRAN_STATUS_INVALID_ARGUMENT);
        for (uint8_t v : untouched) EXPECT(v == 0xab);
        float probs[2] = {-1.0f, -1.0f};
        EXPECT(gran_discriminate_class(m.handle(), imgs.data(), 2, bad, 2, GRAN_PIXEL_FORMAT_U8_HWC, probs) ==
               GRAN_STATUS_INVALID_ARGUMENT);
        EXPECT(probs[0] == -1.0f && probs[1] == -1.0f);

        // Save and load keep the classes.
        m.save(dir + "/cond.gran");
        gran::Model loaded = gran::Model::load(dir + "/cond.gran", gran::cpu());
        std::remove((dir + "/cond.gran").c_str());
        EXPECT(loaded.classes() == 4 && loaded.sample_class(9, 4, per4) == imgs);

        // An unconditional model refuses classes.
        gran::Model u = gran::Model::create(tiny_config());
        EXPECT(u.classes() == 0);
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { u.sample_class(1, 2, 0); }, "unconditional sample_class");
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { u.sample_steps_class(1, 2, {0, 1}); },
                     "unconditional sample_steps_class");
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { u.generate_class(std::vector<float>(32), 0); },
                     "unconditional generate_class");
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { u.discriminate_class(imgs, 0); },
                     "unconditional discriminate_class");
        EXPECT(u.generate(std::vector<float>(32)).size() == 2u * 784);
    });

    run("log callback", [&] {
        // A discriminator that wins outright (high lr_d, frozen G) makes the library warn.
        std::vector<std::string> warnings;
        gran::set_log_callback(
            [&](GranLogLevel level, const std::string &message) {
                if (level == GRAN_LOG_WARN) warnings.push_back(message);
                throw std::runtime_error("thrown in the log callback: swallowed by the wrapper");
            },
            GRAN_LOG_WARN);
        gran::Dataset data = training_data();
        gran::Model m = gran::Model::create(tiny_config());
        gran::TrainConfig tc = tiny_train();
        tc.iterations = 60;
        tc.lr_d = 0.01;
        tc.lr_g = 1e-6;
        tc.augment = GRAN_AUGMENT_OFF;  // adaptive augmentation holds the warning until p reaches 1
        m.train(data, tc);
        gran::set_log_callback(nullptr);
        EXPECT(m.step() == 60);
        EXPECT(warnings.size() == 1);
        EXPECT(warnings[0].find("discriminator") != std::string::npos);
        m.train(data, tc);  // logging is off again
        EXPECT(warnings.size() == 1);
    });

    run("process group: two ranks train to the same weights", [] {
        // Two ranks in one process, on two threads, each with its own group and model.
        int s = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        EXPECT(s >= 0 && bind(s, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0 &&
               getsockname(s, reinterpret_cast<sockaddr *>(&a), &len) == 0);
        const uint32_t port = ntohs(a.sin_port);
        close(s);
        gran::Dataset data = training_data();
        std::vector<uint8_t> images[2];
        uint64_t steps[2] = {0, 0};
        std::string errors[2];
        auto rank = [&](uint32_t r) {
            try {
                gran::ProcessGroupConfig pc;
                pc.rank = r;
                pc.world_size = 2;
                pc.master_port = port;
                pc.timeout_ms = 60000;
                gran::ProcessGroup g = gran::ProcessGroup::create(pc);
                if (g.rank() != r || g.world_size() != 2) errors[r] = "rank or size";
                gran::Model m = gran::Model::create(tiny_config());
                gran::TrainConfig tc = tiny_train();
                tc.iterations = 3;
                tc.process_group = g.handle();
                m.train(data, tc);
                steps[r] = m.step();
                images[r] = m.sample(3, 4);
            } catch (const std::exception &e) {
                errors[r] = e.what();
            }
        };
        std::thread t0(rank, 0), t1(rank, 1);
        t0.join();
        t1.join();
        EXPECT(errors[0].empty() && errors[1].empty());
        EXPECT(steps[0] == 3 && steps[1] == 3);
        EXPECT(!images[0].empty() && images[0] == images[1]);
        gran::ProcessGroupConfig bad;
        bad.rank = 2;
        bad.world_size = 2;
        expect_error(GRAN_STATUS_INVALID_ARGUMENT, [&] { gran::ProcessGroup::create(bad); }, "rank past the size");
    });

    // Clean up the temporary folder.
    for (const char *f : {"model.gran", "grid.png", "gridf.png", "garbage.gran"}) std::remove((dir + "/" + f).c_str());
    rmdir(dir.c_str());

    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("cpp: %d passed, %d failed (%.1fs)\n", passed, failed, s);
    return failed == 0 ? 0 : 1;
}
