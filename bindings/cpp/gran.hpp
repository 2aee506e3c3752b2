// gran.hpp: header-only C++17 wrappers over the C interface of libgran (include/gran.h).
//
//   #include <gran.hpp>
//   gran::ModelConfig mc;                      // defaults from gran_model_config_init
//   mc.device = gran::cpu();
//   auto model = gran::Model::create(mc);      // owns the handle; freed by the destructor
//   auto data = gran::Dataset::load_idx("train-images-idx3-ubyte.gz");
//   gran::TrainConfig tc;                      // defaults from gran_train_config_init
//   tc.iterations = 500;
//   model.train(data, tc, [](const gran::Progress& p) { return p.d_loss < 0; /* true: stop */ });
//   std::vector<uint8_t> px = model.sample(/*seed*/ 1, /*count*/ 64);   // 64 x 28 x 28 x 1, HWC
//   gran::write_png("samples.png", px, 64, 28, 28, 1, 8);
//   model.save("model.gran");
//
// Every wrapper checks the status of the C call and throws gran::Error (with the status and
// the message of gran_last_error) when it is not GRAN_STATUS_OK. Model, Dataset and Evaluator
// are move-only RAII owners of their handle; a moved-from (or default-constructed) object holds
// handle 0, which every call rejects with GRAN_STATUS_INVALID_HANDLE: using it is safe.
//
// Class-conditional models (ModelConfig::classes > 0) draw the classes they are asked for with
// the *_class methods (sample_class, sample_steps_class, generate_class, discriminate_class),
// which take a gran::Classes: one class for every image (a number) or one per image (a vector
// or a braced list). They are separate names, not overloads of sample(), because a class and a
// GranPixelFormat are both uint32_t: sample(seed, count, 2) would silently mean a format.
//
// Link with -lgran. A program that only loads models and draws (Model::load, sample,
// sample_steps, latents, generate, write_png, and their *_class forms except
// discriminate_class) may link -lgran_runtime instead, the library
// without libtorch (include/gran_runtime.h): the wrappers it does not call are never emitted
// (tests/runtime/test_cpp.cpp). C++17; no other dependency than the C header.
#ifndef GRAN_HPP
#define GRAN_HPP

#include <gran.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace gran {

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// The name of a status, e.g. "GRAN_STATUS_IO" (gran_status_string).
inline std::string status_string(GranStatus status) {
    const char *s = gran_status_string(status);
    return s ? std::string(s) : std::string("GRAN_STATUS_UNKNOWN");
}

/// Thrown by every wrapper whose C call fails. what() is "<status name>: <message>";
/// status() is the GranStatus and message() the text of gran_last_error.
class Error : public std::runtime_error {
public:
    Error(GranStatus status, const std::string &message)
        : std::runtime_error(status_string(status) + ": " + message),
          status_(status),
          message_(std::make_shared<const std::string>(message)) {}

    /// The C status (never GRAN_STATUS_OK).
    GranStatus status() const noexcept { return status_; }
    /// The library's message for the failure (gran_last_error), without the status name.
    const std::string &message() const noexcept { return *message_; }

private:
    GranStatus status_;
    std::shared_ptr<const std::string> message_;  // shared: copying an exception never throws
};

/// The calling thread's last failure message (gran_last_error).
inline std::string last_error() {
    std::size_t n = gran_last_error(nullptr, 0);
    std::string s(n + 1, '\0');
    std::size_t m = gran_last_error(&s[0], s.size());
    s.resize(m < n ? m : n);
    return s;
}

namespace detail {

/// Throws gran::Error unless `status` is GRAN_STATUS_OK. Call right after the C function, on
/// the same thread (the message is thread-local).
inline void check(GranStatus status) {
    if (status != GRAN_STATUS_OK) throw Error(status, last_error());
}

[[noreturn]] inline void invalid(const std::string &message) {
    throw Error(GRAN_STATUS_INVALID_ARGUMENT, message);
}

inline std::size_t bytes_per_value(GranPixelFormat format) {
    switch (format) {
    case GRAN_PIXEL_FORMAT_U8_HWC:
    case GRAN_PIXEL_FORMAT_U8_CHW: return 1;
    case GRAN_PIXEL_FORMAT_F32_CHW: return 4;
    default: invalid("pixel format " + std::to_string(format) + " is unknown (U8_HWC 0, U8_CHW 1, F32_CHW 2)");
    }
}

inline bool is_u8(GranPixelFormat format) {
    return format == GRAN_PIXEL_FORMAT_U8_HWC || format == GRAN_PIXEL_FORMAT_U8_CHW;
}

/// `count` as the uint32_t the C functions take, or INVALID_ARGUMENT.
inline uint32_t count32(std::size_t count) {
    if (count > std::numeric_limits<uint32_t>::max()) invalid("count " + std::to_string(count) + " exceeds 2^32-1");
    return static_cast<uint32_t>(count);
}

/// Move-only owner of one handle, freed by `Free` in the destructor. A moved-from or empty
/// owner holds 0, which every C function rejects with GRAN_STATUS_INVALID_HANDLE.
template <GranStatus (*Free)(uint64_t)>
class Handle {
public:
    Handle() noexcept = default;
    explicit Handle(uint64_t handle) noexcept : handle_(handle) {}
    Handle(const Handle &) = delete;
    Handle &operator=(const Handle &) = delete;
    Handle(Handle &&other) noexcept : handle_(std::exchange(other.handle_, 0)) {}
    Handle &operator=(Handle &&other) noexcept {
        if (this != &other) {
            reset();
            handle_ = std::exchange(other.handle_, 0);
        }
        return *this;
    }
    ~Handle() { reset(); }

    /// The C handle (still owned by this object).
    uint64_t handle() const noexcept { return handle_; }
    /// Gives up ownership: returns the handle and leaves this object empty.
    uint64_t release() noexcept { return std::exchange(handle_, 0); }
    /// Frees the object now (no-op when empty).
    void reset() noexcept {
        if (handle_ != 0) Free(std::exchange(handle_, 0));
    }
    /// True when the object holds a handle.
    explicit operator bool() const noexcept { return handle_ != 0; }

protected:
    uint64_t handle_ = 0;
};

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Library information
// ---------------------------------------------------------------------------------------------

/// The library version, e.g. "0.1.0" (gran_version).
inline std::string version() {
    const char *v = gran_version();
    return v ? std::string(v) : std::string();
}

/// The ABI version of the loaded library; compare with GRAN_ABI_VERSION (this header's).
inline uint32_t abi_version() noexcept { return gran_abi_version(); }

/// Number of usable CUDA devices (0 without CUDA).
inline int32_t cuda_device_count() noexcept { return gran_cuda_device_count(); }

/// Whether CUDA work repeats bit for bit (cuDNN's deterministic engines; gran's default once it
/// uses CUDA) or may use faster engines. libtorch's process-wide flag: gran_set_deterministic.
inline void set_deterministic(bool on) noexcept { gran_set_deterministic(on ? 1 : 0); }

/// True when CUDA work is deterministic now (gran_deterministic).
inline bool deterministic() noexcept { return gran_deterministic() != 0; }

/// Receives library log messages (level is a GRAN_LOG_* value).
using LogCallback = std::function<void(GranLogLevel level, const std::string &message)>;

/// Installs a process-wide log callback for messages at `min_level` and above; an empty
/// function turns logging off. The callback may be called from any thread, concurrently;
/// exceptions it throws are swallowed (they cannot cross the C library). Callbacks replaced by
/// a later call are kept alive (a few bytes each) since a call may still be in flight.
inline void set_log_callback(LogCallback cb, GranLogLevel min_level = GRAN_LOG_WARN) {
    // Never destroyed: a log call from another thread may outlive static destruction order.
    static std::mutex *mutex = new std::mutex;
    static std::vector<LogCallback *> *keep = new std::vector<LogCallback *>;
    if (!cb) {
        gran_set_log_callback(nullptr, nullptr, min_level);
        return;
    }
    auto *owned = new LogCallback(std::move(cb));
    {
        std::lock_guard<std::mutex> lock(*mutex);
        keep->push_back(owned);
    }
    gran_set_log_callback(
        [](GranLogLevel level, const char *message, void *user_data) {
            try {
                (*static_cast<LogCallback *>(user_data))(level, message ? std::string(message) : std::string());
            } catch (...) {
                // Swallowed: nothing may unwind into the C library.
            }
        },
        owned, min_level);
}

// ---------------------------------------------------------------------------------------------
// Devices and parameter structs
// ---------------------------------------------------------------------------------------------

/// A device: GRAN_DEVICE_CPU, GRAN_DEVICE_CUDA with an index, or GRAN_DEVICE_AUTO.
using Device = GranDevice;

/// The CPU.
inline Device cpu() noexcept { return Device{GRAN_DEVICE_CPU, 0}; }
/// CUDA device `index`.
inline Device cuda(int32_t index = 0) noexcept { return Device{GRAN_DEVICE_CUDA, index}; }
/// CUDA device 0 when available, else the CPU.
inline Device auto_device() noexcept { return Device{GRAN_DEVICE_AUTO, 0}; }

/// GranModelConfig filled with the library defaults (gran_model_config_init): 28x28x1, 3 steps,
/// z_dim 100, hidden 100, width scale 1, ReLU discriminator, device AUTO, seed 0, classes 0
/// (unconditional; 2..=256 makes a class-conditional model, which trains on labelled data).
/// Change fields as needed; it converts to the C struct.
struct ModelConfig : GranModelConfig {
    ModelConfig() noexcept : GranModelConfig() { gran_model_config_init(this); }
    /// Wraps a C struct as is (struct_size included).
    ModelConfig(const GranModelConfig &c) noexcept : GranModelConfig(c) {}
};

/// GranTrainConfig filled with the library defaults (gran_train_config_init): 2000 iterations,
/// batch 64, Adam 8e-4 / 3.2e-3 with betas (0.5, 0.999), a report every 100 steps, no callback, no
/// checkpoint. `checkpoint_path` is borrowed for the train() call only. Set `on_progress` and
/// `user_data` only to use a raw C callback; Model::train's std::function overrides them.
struct TrainConfig : GranTrainConfig {
    TrainConfig() noexcept : GranTrainConfig() { gran_train_config_init(this); }
    /// Wraps a C struct as is (struct_size included).
    TrainConfig(const GranTrainConfig &c) noexcept : GranTrainConfig(c) {}
};

/// The classes of a request of `count` images to a class-conditional model (the *_class methods
/// of Model): one class for every image, or one per image (then exactly `count` of them). Each
/// must be below the model's classes; the library checks them all before drawing anything.
///
///   model.sample_class(seed, 16, 3);                  // 16 images of class 3
///   model.sample_class(seed, 4, {0, 1, 2, 3});        // one of each
///   model.sample_class(seed, n, labels);              // std::vector<uint32_t> labels(n)
class Classes {
public:
    /// One class for every image.
    Classes(uint32_t one_for_all) : values_(1, one_for_all) {}
    /// One class per image (or one for all when it holds one).
    Classes(std::vector<uint32_t> per_image) : values_(std::move(per_image)) {}
    /// One class per image (or one for all when it holds one).
    Classes(std::initializer_list<uint32_t> per_image) : values_(per_image) {}

    /// The classes as the C functions take them.
    const uint32_t *data() const noexcept { return values_.data(); }
    /// classes_len: 1 or the image count.
    uint32_t size() const { return detail::count32(values_.size()); }
    const std::vector<uint32_t> &values() const noexcept { return values_; }

private:
    std::vector<uint32_t> values_;
};

/// A progress report (see GranProgress): step, total_steps, epoch, d_loss, g_loss, d_real,
/// d_fake, elapsed_seconds, images_per_second, d_dominates.
using Progress = GranProgress;

/// Called with each progress report during Model::train; return true to stop training.
using ProgressCallback = std::function<bool(const Progress &)>;

/// What Dataset::info reports: count, height, width, channels, has_labels.
using DatasetInfo = GranDatasetInfo;

// ---------------------------------------------------------------------------------------------
// Dataset
// ---------------------------------------------------------------------------------------------

/// An immutable set of training images in the library (move-only; freed by the destructor).
/// handle(), release(), reset() and operator bool come from detail::Handle.
class Dataset : public detail::Handle<gran_dataset_free> {
public:
    /// An empty dataset (handle 0): every call on it throws INVALID_HANDLE.
    Dataset() noexcept = default;
    /// Takes ownership of a handle from the C API.
    explicit Dataset(GranDataset handle) noexcept : Handle(handle) {}

    /// Copies `count` images of height x width x channels from caller memory in `format`
    /// (bytes for the U8 formats, floats in [0, 1] for F32_CHW).
    static Dataset from_pixels(const void *pixels, std::size_t count, uint32_t height, uint32_t width,
                               uint32_t channels, GranPixelFormat format) {
        GranDataset d = 0;
        detail::check(gran_dataset_from_pixels(pixels, count, height, width, channels, format, &d));
        return Dataset(d);
    }

    /// Bytes in U8_HWC (default) or U8_CHW; the image count is pixels.size() / (h * w * c).
    static Dataset from_pixels(const std::vector<uint8_t> &pixels, uint32_t height, uint32_t width,
                               uint32_t channels, GranPixelFormat format = GRAN_PIXEL_FORMAT_U8_HWC) {
        if (!detail::is_u8(format)) detail::invalid("a byte vector needs a U8 pixel format");
        return from_pixels(pixels.data(), whole_images(pixels.size(), height, width, channels), height, width,
                           channels, format);
    }

    /// Floats in [0, 1], F32_CHW; the image count is pixels.size() / (h * w * c).
    static Dataset from_pixels(const std::vector<float> &pixels, uint32_t height, uint32_t width,
                               uint32_t channels) {
        return from_pixels(pixels.data(), whole_images(pixels.size(), height, width, channels), height, width,
                           channels, GRAN_PIXEL_FORMAT_F32_CHW);
    }

    /// from_pixels with a class label per image (`labels`: `count` bytes, copied), for
    /// evaluators and class-conditional models (gran_dataset_from_labelled_pixels).
    static Dataset from_labelled_pixels(const void *pixels, const uint8_t *labels, std::size_t count, uint32_t height,
                                        uint32_t width, uint32_t channels, GranPixelFormat format) {
        GranDataset d = 0;
        detail::check(gran_dataset_from_labelled_pixels(pixels, labels, count, height, width, channels, format, &d));
        return Dataset(d);
    }

    /// Bytes in U8_HWC (default) or U8_CHW with one label per image (labels.size() images).
    static Dataset from_labelled_pixels(const std::vector<uint8_t> &pixels, const std::vector<uint8_t> &labels,
                                        uint32_t height, uint32_t width, uint32_t channels,
                                        GranPixelFormat format = GRAN_PIXEL_FORMAT_U8_HWC) {
        if (!detail::is_u8(format)) detail::invalid("a byte vector needs a U8 pixel format");
        return from_labelled_pixels(pixels.data(), labels.data(),
                                    labelled_images(pixels.size(), labels.size(), height, width, channels), height,
                                    width, channels, format);
    }

    /// Floats in [0, 1], F32_CHW, with one label per image (labels.size() images).
    static Dataset from_labelled_pixels(const std::vector<float> &pixels, const std::vector<uint8_t> &labels,
                                        uint32_t height, uint32_t width, uint32_t channels) {
        return from_labelled_pixels(pixels.data(), labels.data(),
                                    labelled_images(pixels.size(), labels.size(), height, width, channels), height,
                                    width, channels, GRAN_PIXEL_FORMAT_F32_CHW);
    }

    /// MNIST-style IDX images (plain or .gz) and, when `labels_path` is not empty, labels.
    static Dataset load_idx(const std::string &images_path, const std::string &labels_path = std::string()) {
        GranDataset d = 0;
        detail::check(gran_dataset_load_idx(images_path.c_str(), labels_path.empty() ? nullptr : labels_path.c_str(),
                                            &d));
        return Dataset(d);
    }

    /// A CIFAR-10 binary batch file, or the folder holding the batch files.
    static Dataset load_cifar10(const std::string &path) {
        GranDataset d = 0;
        detail::check(gran_dataset_load_cifar10(path.c_str(), &d));
        return Dataset(d);
    }

    /// Every PNG/JPEG file in `dir` (a folder, at any depth, or a .zip), converted to `channels`
    /// and resized to height x width; labels from its dataset.json when present.
    static Dataset load_images(const std::string &dir, uint32_t height, uint32_t width, uint32_t channels) {
        GranDataset d = 0;
        detail::check(gran_dataset_load_images(dir.c_str(), height, width, channels, &d));
        return Dataset(d);
    }

    /// As load_images, with the labels' source and the fit chosen (gran_dataset_load_image_files).
    static Dataset load_image_files(const std::string &path, uint32_t height, uint32_t width, uint32_t channels,
                                    GranLabels labels = GRAN_LABELS_AUTO, GranFit fit = GRAN_FIT_STRETCH) {
        GranDataset d = 0;
        detail::check(gran_dataset_load_image_files(path.c_str(), height, width, channels, labels, fit, &d));
        return Dataset(d);
    }

    /// A .npy array of uint8 images, and NAME.labels.npy beside it when present.
    static Dataset load_npy(const std::string &path) {
        GranDataset d = 0;
        detail::check(gran_dataset_load_npy(path.c_str(), &d));
        return Dataset(d);
    }

    /// As load_npy, read from the file as training goes (gran_dataset_open_npy).
    static Dataset open_npy(const std::string &path) {
        GranDataset d = 0;
        detail::check(gran_dataset_open_npy(path.c_str(), &d));
        return Dataset(d);
    }

    /// Image count, size, channels, whether there are labels.
    DatasetInfo info() const {
        DatasetInfo i;
        gran_dataset_info_init(&i);
        detail::check(gran_dataset_info(handle_, &i));
        return i;
    }

private:
    static std::size_t whole_images(std::size_t values, uint32_t h, uint32_t w, uint32_t c) {
        std::size_t per = std::size_t(h) * w * c;
        if (per == 0 || values % per != 0 || values == 0)
            detail::invalid("the pixel vector holds " + std::to_string(values) + " values, not a positive multiple of " +
                            std::to_string(h) + "x" + std::to_string(w) + "x" + std::to_string(c));
        return values / per;
    }

    static std::size_t labelled_images(std::size_t values, std::size_t labels, uint32_t h, uint32_t w, uint32_t c) {
        std::size_t count = whole_images(values, h, w, c);
        if (labels != count)
            detail::invalid(std::to_string(labels) + " labels for " + std::to_string(count) +
                            " images: give one per image");
        return count;
    }
};

// ---------------------------------------------------------------------------------------------
// Process groups (data-parallel training)
// ---------------------------------------------------------------------------------------------

/// GranProcessGroupConfig filled with the library defaults (gran_process_group_config_init):
/// backend AUTO, rank 0 of 1, master 127.0.0.1:29500, timeout 5 minutes.
struct ProcessGroupConfig : GranProcessGroupConfig {
    ProcessGroupConfig() noexcept : GranProcessGroupConfig() { gran_process_group_config_init(this); }
};

/// This process's place in a group of processes that train one model data-parallel
/// (move-only; leaving the group when destroyed). Put handle() in
/// GranTrainConfig::process_group. Making one blocks until every rank has arrived.
class ProcessGroup : public detail::Handle<gran_process_group_free> {
public:
    ProcessGroup() noexcept = default;
    explicit ProcessGroup(GranProcessGroup handle) noexcept : Handle(handle) {}

    /// From explicit settings (gran_process_group_create).
    static ProcessGroup create(const GranProcessGroupConfig &config) {
        GranProcessGroup g = 0;
        detail::check(gran_process_group_create(&config, &g));
        return ProcessGroup(g);
    }

    /// From torchrun's environment (gran_process_group_from_env).
    static ProcessGroup from_env(GranBackend backend = GRAN_BACKEND_AUTO, uint64_t timeout_ms = 300000) {
        GranProcessGroup g = 0;
        detail::check(gran_process_group_from_env(backend, timeout_ms, &g));
        return ProcessGroup(g);
    }

    uint32_t rank() const {
        uint32_t r = 0;
        detail::check(gran_process_group_info(handle_, &r, nullptr));
        return r;
    }

    uint32_t world_size() const {
        uint32_t n = 0;
        detail::check(gran_process_group_info(handle_, nullptr, &n));
        return n;
    }
};

// ---------------------------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------------------------

/// A GRAN model (generator and discriminator) in the library (move-only; freed by the
/// destructor, which also cancels a training run in progress on another thread).
/// handle(), release(), reset() and operator bool come from detail::Handle.
class Model : public detail::Handle<gran_model_free> {
public:
    /// An empty model (handle 0): every call on it throws INVALID_HANDLE.
    Model() noexcept = default;
    /// Takes ownership of a handle from the C API.
    explicit Model(GranModel handle) noexcept : Handle(handle) {}

    /// A model with fresh weights (gran_model_create).
    static Model create(const GranModelConfig &config = ModelConfig()) {
        GranModel m = 0;
        detail::check(gran_model_create(&config, &m));
        return Model(m);
    }

    /// Loads a checkpoint (gran_model_load). Without `device`: where it was saved when that
    /// device exists here, else AUTO.
    static Model load(const std::string &path, std::optional<Device> device = std::nullopt) {
        GranModel m = 0;
        detail::check(gran_model_load(path.c_str(), device ? &*device : nullptr, &m));
        return Model(m);
    }

    /// The model's configuration; `device` is the concrete device (never AUTO).
    ModelConfig config() const {
        ModelConfig c;
        detail::check(gran_model_config(handle_, &c));
        return c;
    }

    /// The classes of a class-conditional model (2..=256); 0 for an unconditional one.
    uint32_t classes() const { return config().classes; }

    /// Training steps completed so far.
    uint64_t step() const {
        uint64_t s = 0;
        detail::check(gran_model_step(handle_, &s));
        return s;
    }

    /// The precision sampling and scoring compute in (gran_model_precision):
    /// GRAN_PRECISION_FP32 unless set.
    GranPrecision precision() const {
        GranPrecision p = GRAN_PRECISION_FP32;
        detail::check(gran_model_precision(handle_, &p));
        return p;
    }

    /// Sets the precision of later sampling and scoring calls (gran_model_set_precision);
    /// training takes its own from GranTrainConfig::precision.
    void set_precision(GranPrecision p) const { detail::check(gran_model_set_precision(handle_, p)); }

    /// Whether the model has an averaged generator (gran_model_has_averaged).
    bool has_averaged() const {
        int32_t v = 0;
        detail::check(gran_model_has_averaged(handle_, &v));
        return v != 0;
    }

    /// Chooses the generator later sampling calls use (gran_model_set_generator):
    /// GRAN_GENERATOR_AVERAGED (the default) or GRAN_GENERATOR_RAW.
    void set_generator(GranGenerator g) const { detail::check(gran_model_set_generator(handle_, g)); }

    /// Writes the generator for shipping (gran_model_export): GRAN_PRECISION_FP32 or _BF16
    /// storage. Model::load reads it as a sampling-only model.
    void export_generator(const std::string &path, GranPrecision storage = GRAN_PRECISION_FP32) const {
        detail::check(gran_model_export(handle_, path.c_str(), storage));
    }

    /// Whether the model was loaded from a generator export (gran_model_inference_only).
    bool inference_only() const {
        int32_t v = 0;
        detail::check(gran_model_inference_only(handle_, &v));
        return v != 0;
    }

    /// Writes a checkpoint atomically (gran_model_save).
    void save(const std::string &path) const { detail::check(gran_model_save(handle_, path.c_str())); }

    /// Trains on `data` (gran_train), continuing from step(); returns the final report.
    /// `on_progress` (optional) gets each report on this thread; returning true stops the run,
    /// which then throws Error with GRAN_STATUS_CANCELLED. An exception thrown by `on_progress`
    /// stops the run too and is rethrown here once the library has returned (it never crosses
    /// the C library).
    Progress train(const Dataset &data, const GranTrainConfig &config = TrainConfig(),
                   const ProgressCallback &on_progress = ProgressCallback()) {
        GranTrainConfig c = config;
        Bridge bridge{&on_progress, nullptr};
        if (on_progress) {
            c.on_progress = &Model::trampoline;
            c.user_data = &bridge;
        }
        Progress last;
        gran_progress_init(&last);
        GranStatus s = gran_train(handle_, data.handle(), &c, &last);
        if (bridge.error) std::rethrow_exception(bridge.error);
        detail::check(s);
        return last;
    }

    /// Asks a training run in progress (on another thread, or from the callback) to stop.
    void cancel() const { detail::check(gran_cancel(handle_)); }

    /// `count` images from latents of `seed`, as the raw bytes of `format` (count * h * w * c
    /// values; 4 bytes each for F32_CHW). Default layout: bytes, HWC.
    std::vector<uint8_t> sample(uint64_t seed, uint32_t count,
                                GranPixelFormat format = GRAN_PIXEL_FORMAT_U8_HWC) const {
        std::vector<uint8_t> out(image_bytes(format, count));
        detail::check(gran_sample(handle_, seed, count, format, out.data(), out.size()));
        return out;
    }

    /// `count` images as floats in [0, 1], CHW.
    std::vector<float> sample_f32(uint64_t seed, uint32_t count) const {
        std::vector<float> out(image_bytes(GRAN_PIXEL_FORMAT_F32_CHW, count) / sizeof(float));
        detail::check(
            gran_sample(handle_, seed, count, GRAN_PIXEL_FORMAT_F32_CHW, out.data(), out.size() * sizeof(float)));
        return out;
    }

    /// The canvas after each of the T steps, [T][count][image], as raw bytes of `format`.
    std::vector<uint8_t> sample_steps(uint64_t seed, uint32_t count,
                                      GranPixelFormat format = GRAN_PIXEL_FORMAT_U8_HWC) const {
        ModelConfig c = config();
        std::vector<uint8_t> out(std::size_t(c.steps) * image_bytes(c, format, count));
        detail::check(gran_sample_steps(handle_, seed, count, format, out.data(), out.size()));
        return out;
    }

    /// The canvas after each of the T steps, [T][count][C][H][W], as floats in [0, 1].
    std::vector<float> sample_steps_f32(uint64_t seed, uint32_t count) const {
        ModelConfig c = config();
        std::vector<float> out(std::size_t(c.steps) * image_bytes(c, GRAN_PIXEL_FORMAT_F32_CHW, count) /
                               sizeof(float));
        detail::check(gran_sample_steps(handle_, seed, count, GRAN_PIXEL_FORMAT_F32_CHW, out.data(),
                                        out.size() * sizeof(float)));
        return out;
    }

    /// The latents sample() uses for images 0..count-1 of `seed`: count * z_dim floats.
    std::vector<float> latents(uint64_t seed, uint32_t count) const {
        std::vector<float> z(std::size_t(count) * config().z_dim);
        detail::check(gran_latents(handle_, seed, count, z.data(), z.size()));
        return z;
    }

    /// Images from caller latents (count * z_dim finite floats; count = z.size() / z_dim), as the
    /// raw bytes of `format`.
    std::vector<uint8_t> generate(const std::vector<float> &z,
                                  GranPixelFormat format = GRAN_PIXEL_FORMAT_U8_HWC) const {
        ModelConfig c = config();
        uint32_t count = latent_count(c, z.size());
        std::vector<uint8_t> out(image_bytes(c, format, count));
        detail::check(gran_generate(handle_, z.data(), count, format, out.data(), out.size()));
        return out;
    }

    /// Images from caller latents as floats in [0, 1], CHW.
    std::vector<float> generate_f32(const std::vector<float> &z) const {
        ModelConfig c = config();
        uint32_t count = latent_count(c, z.size());
        std::vector<float> out(image_bytes(c, GRAN_PIXEL_FORMAT_F32_CHW, count) / sizeof(float));
        detail::check(gran_generate(handle_, z.data(), count, GRAN_PIXEL_FORMAT_F32_CHW, out.data(),
                                    out.size() * sizeof(float)));
        return out;
    }

    /// D(x) for each of `count` images at `pixels` (the model's size, in `format`).
    std::vector<float> discriminate(const void *pixels, uint32_t count, GranPixelFormat format) const {
        std::vector<float> p(count);
        detail::check(gran_discriminate(handle_, pixels, count, format, p.data()));
        return p;
    }

    /// D(x) for byte images (U8_HWC by default, or U8_CHW); count = pixels.size() / image size.
    std::vector<float> discriminate(const std::vector<uint8_t> &pixels,
                                    GranPixelFormat format = GRAN_PIXEL_FORMAT_U8_HWC) const {
        if (!detail::is_u8(format)) detail::invalid("a byte vector needs a U8 pixel format");
        return discriminate(pixels.data(), image_count(pixels.size()), format);
    }

    /// D(x) for float images in [0, 1], CHW; count = pixels.size() / image size.
    std::vector<float> discriminate(const std::vector<float> &pixels) const {
        return discriminate(pixels.data(), image_count(pixels.size()), GRAN_PIXEL_FORMAT_F32_CHW);
    }

    // -- class-conditional models (classes() > 0) ---------------------------------------------
    // On an unconditional model every *_class method throws INVALID_ARGUMENT, as does a class
    // >= classes() (nothing is drawn then). On a conditional model, sample() and sample_steps()
    // draw image i's class from (seed, i), generate() throws INVALID_ARGUMENT (caller latents
    // need classes), and discriminate() judges each image as the class it finds most real.

    /// `count` images of `seed` of the classes named (gran_sample_class), as the raw bytes of
    /// `format`. Image i depends only on the weights, `seed`, i and its class.
    std::vector<uint8_t> sample_class(uint64_t seed, uint32_t count, const Classes &classes,
                                      GranPixelFormat format = GRAN_PIXEL_FORMAT_U8_HWC) const {
        std::vector<uint8_t> out(image_bytes(format, count));
        detail::check(gran_sample_class(handle_, seed, count, classes.data(), classes.size(), format, out.data(),
                                        out.size()));
        return out;
    }

    /// sample_class as floats in [0, 1], CHW.
    std::vector<float> sample_class_f32(uint64_t seed, uint32_t count, const Classes &classes) const {
        std::vector<float> out(image_bytes(GRAN_PIXEL_FORMAT_F32_CHW, count) / sizeof(float));
        detail::check(gran_sample_class(handle_, seed, count, classes.data(), classes.size(),
                                        GRAN_PIXEL_FORMAT_F32_CHW, out.data(), out.size() * sizeof(float)));
        return out;
    }

    /// The canvas after each of the T steps of images of the classes named
    /// (gran_sample_steps_class), [T][count][image], as raw bytes of `format`.
    std::vector<uint8_t> sample_steps_class(uint64_t seed, uint32_t count, const Classes &classes,
                                            GranPixelFormat format = GRAN_PIXEL_FORMAT_U8_HWC) const {
        ModelConfig c = config();
        std::vector<uint8_t> out(std::size_t(c.steps) * image_bytes(c, format, count));
        detail::check(gran_sample_steps_class(handle_, seed, count, classes.data(), classes.size(), format,
                                              out.data(), out.size()));
        return out;
    }

    /// sample_steps_class as floats in [0, 1], [T][count][C][H][W].
    std::vector<float> sample_steps_class_f32(uint64_t seed, uint32_t count, const Classes &classes) const {
        ModelConfig c = config();
        std::vector<float> out(std::size_t(c.steps) * image_bytes(c, GRAN_PIXEL_FORMAT_F32_CHW, count) /
                               sizeof(float));
        detail::check(gran_sample_steps_class(handle_, seed, count, classes.data(), classes.size(),
                                              GRAN_PIXEL_FORMAT_F32_CHW, out.data(), out.size() * sizeof(float)));
        return out;
    }

    /// Images from caller latents (count = z.size() / z_dim) of the classes named
    /// (gran_generate_class), as the raw bytes of `format`.
    std::vector<uint8_t> generate_class(const std::vector<float> &z, const Classes &classes,
                                        GranPixelFormat format = GRAN_PIXEL_FORMAT_U8_HWC) const {
        ModelConfig c = config();
        uint32_t count = latent_count(c, z.size());
        std::vector<uint8_t> out(image_bytes(c, format, count));
        detail::check(gran_generate_class(handle_, z.data(), count, classes.data(), classes.size(), format,
                                          out.data(), out.size()));
        return out;
    }

    /// generate_class as floats in [0, 1], CHW.
    std::vector<float> generate_class_f32(const std::vector<float> &z, const Classes &classes) const {
        ModelConfig c = config();
        uint32_t count = latent_count(c, z.size());
        std::vector<float> out(image_bytes(c, GRAN_PIXEL_FORMAT_F32_CHW, count) / sizeof(float));
        detail::check(gran_generate_class(handle_, z.data(), count, classes.data(), classes.size(),
                                          GRAN_PIXEL_FORMAT_F32_CHW, out.data(), out.size() * sizeof(float)));
        return out;
    }

    /// D(x, y) for each of `count` images at `pixels`, each judged as its class in `classes`
    /// (gran_discriminate_class; libgran only).
    std::vector<float> discriminate_class(const void *pixels, uint32_t count, const Classes &classes,
                                          GranPixelFormat format) const {
        std::vector<float> p(count);
        detail::check(gran_discriminate_class(handle_, pixels, count, classes.data(), classes.size(), format,
                                              p.data()));
        return p;
    }

    /// D(x, y) for byte images (U8_HWC by default, or U8_CHW); count = pixels.size() / image size.
    std::vector<float> discriminate_class(const std::vector<uint8_t> &pixels, const Classes &classes,
                                          GranPixelFormat format = GRAN_PIXEL_FORMAT_U8_HWC) const {
        if (!detail::is_u8(format)) detail::invalid("a byte vector needs a U8 pixel format");
        return discriminate_class(pixels.data(), image_count(pixels.size()), classes, format);
    }

    /// D(x, y) for float images in [0, 1], CHW; count = pixels.size() / image size.
    std::vector<float> discriminate_class(const std::vector<float> &pixels, const Classes &classes) const {
        return discriminate_class(pixels.data(), image_count(pixels.size()), classes, GRAN_PIXEL_FORMAT_F32_CHW);
    }

private:
    struct Bridge {
        const ProgressCallback *callback;
        std::exception_ptr error;
    };

    // Called by the C library: nothing may unwind out of it.
    static int32_t trampoline(const GranProgress *progress, void *user_data) noexcept {
        auto *bridge = static_cast<Bridge *>(user_data);
        try {
            return (*bridge->callback)(*progress) ? 1 : 0;
        } catch (...) {
            bridge->error = std::current_exception();
            return 1;
        }
    }

    static std::size_t image_bytes(const GranModelConfig &c, GranPixelFormat format, uint32_t count) {
        return std::size_t(count) * c.height * c.width * c.channels * detail::bytes_per_value(format);
    }

    std::size_t image_bytes(GranPixelFormat format, uint32_t count) const {
        return image_bytes(config(), format, count);
    }

    uint32_t image_count(std::size_t values) const {
        ModelConfig c = config();
        std::size_t per = std::size_t(c.height) * c.width * c.channels;
        if (values == 0 || values % per != 0)
            detail::invalid("the pixel vector holds " + std::to_string(values) +
                            " values, not a positive multiple of the model's image size " + std::to_string(per));
        return detail::count32(values / per);
    }

    static uint32_t latent_count(const GranModelConfig &c, std::size_t values) {
        if (values == 0 || c.z_dim == 0 || values % c.z_dim != 0)
            detail::invalid("z holds " + std::to_string(values) + " floats, not a positive multiple of z_dim " +
                            std::to_string(c.z_dim));
        return detail::count32(values / c.z_dim);
    }
};

// ---------------------------------------------------------------------------------------------
// Quality evaluator
// ---------------------------------------------------------------------------------------------

/// GranEvaluatorConfig filled with the library defaults (gran_evaluator_config_init): 5 epochs,
/// batch 64, lr 1e-3, seed 0, device AUTO.
struct EvaluatorConfig : GranEvaluatorConfig {
    EvaluatorConfig() noexcept : GranEvaluatorConfig() { gran_evaluator_config_init(this); }
    /// Wraps a C struct as is (struct_size included).
    EvaluatorConfig(const GranEvaluatorConfig &c) noexcept : GranEvaluatorConfig(c) {}
};

/// What an evaluation reports (see GranQuality): classes, count, frechet_distance,
/// classifier_score, nearest_train_distance, reference_nearest_train_distance, class_share, and
/// class_accuracy (a class-conditional model's samples: per class, the share the classifier
/// assigns to the class asked for; NaN where no sample asked for it, and everywhere for an
/// unconditional model or a dataset).
using Quality = GranQuality;

/// A quality evaluator: a small classifier trained on labelled images, then used to score a
/// model's samples or a dataset (move-only; freed by the destructor).
class Evaluator : public detail::Handle<gran_evaluator_free> {
public:
    /// An empty evaluator (handle 0): every call on it throws INVALID_HANDLE.
    Evaluator() noexcept = default;
    /// Takes ownership of a handle from the C API.
    explicit Evaluator(GranEvaluator handle) noexcept : Handle(handle) {}

    /// Trains the classifier on a dataset with labels (gran_evaluator_train).
    static Evaluator train(const Dataset &labelled, const GranEvaluatorConfig &config = EvaluatorConfig()) {
        GranEvaluator e = 0;
        detail::check(gran_evaluator_train(labelled.handle(), &config, &e));
        return Evaluator(e);
    }

    /// Share of the labelled images classified as their label.
    double accuracy(const Dataset &labelled) const {
        double a = 0.0;
        detail::check(gran_evaluator_accuracy(handle_, labelled.handle(), &a));
        return a;
    }

    /// Quality of `samples` images of `model` (latents from `seed`) against `reference`;
    /// with `train` (not null), also the nearest-training-image copy check.
    Quality evaluate_model(const Model &model, uint64_t seed, uint32_t samples, const Dataset &reference,
                           const Dataset *train = nullptr) const {
        Quality q;
        gran_quality_init(&q);
        detail::check(gran_evaluate_model(handle_, model.handle(), seed, samples, reference.handle(),
                                          train ? train->handle() : 0, &q));
        return q;
    }

    /// Quality of the images of `images` against `reference` (and `train`, when not null).
    Quality evaluate_dataset(const Dataset &images, const Dataset &reference, const Dataset *train = nullptr) const {
        Quality q;
        gran_quality_init(&q);
        detail::check(gran_evaluate_dataset(handle_, images.handle(), reference.handle(), train ? train->handle() : 0,
                                            &q));
        return q;
    }
};

// ---------------------------------------------------------------------------------------------
// GAM
// ---------------------------------------------------------------------------------------------

/// GranGamConfig filled with the library defaults (gran_gam_config_init): 1000 samples per
/// generator, seed 0, tolerance 0.2 on r_test, scoring in chunks of 100 images normalised by
/// their own batch statistics (score_batch).
struct GamConfig : GranGamConfig {
    GamConfig() noexcept : GranGamConfig() { gran_gam_config_init(this); }
    /// Wraps a C struct as is (struct_size included).
    GamConfig(const GranGamConfig &c) noexcept : GranGamConfig(c) {}
};

/// What gam() reports: verdict (GRAN_GAM_TIE, _A_WINS, _B_WINS, _UNDECIDED), the four error
/// rates, r_test, r_sample, the counts, and the accuracy form (accuracy_r_test,
/// accuracy_r_sample, accuracy_ranking: GRAN_GAM_EVEN, _A_FIRST, _B_FIRST).
using GamResult = GranGamResult;

/// Compares models `a` and `b` with the Generative Adversarial Metric on held-out images `test`
/// (gran_gam): each discriminator judges the test data and the other generator's samples.
inline GamResult gam(const Model &a, const Model &b, const Dataset &test, const GranGamConfig &config = GamConfig()) {
    GamResult r;
    gran_gam_result_init(&r);
    detail::check(gran_gam(a.handle(), b.handle(), test.handle(), &config, &r));
    return r;
}

// ---------------------------------------------------------------------------------------------
// PNG
// ---------------------------------------------------------------------------------------------

/// Writes `count` images at `pixels` (height x width x channels in `format`) as one PNG grid of
/// `columns` columns (gran_write_png).
inline void write_png(const std::string &path, const void *pixels, uint32_t count, uint32_t height, uint32_t width,
                      uint32_t channels, GranPixelFormat format, uint32_t columns) {
    detail::check(gran_write_png(path.c_str(), pixels, count, height, width, channels, format, columns));
}

/// Byte images (U8_HWC by default); `count` must match pixels.size().
inline void write_png(const std::string &path, const std::vector<uint8_t> &pixels, uint32_t count, uint32_t height,
                      uint32_t width, uint32_t channels, uint32_t columns,
                      GranPixelFormat format = GRAN_PIXEL_FORMAT_U8_HWC) {
    if (!detail::is_u8(format)) detail::invalid("a byte vector needs a U8 pixel format");
    if (pixels.size() < std::size_t(count) * height * width * channels)
        detail::invalid("the pixel vector holds " + std::to_string(pixels.size()) + " bytes, fewer than " +
                        std::to_string(count) + " images of " + std::to_string(height) + "x" + std::to_string(width) +
                        "x" + std::to_string(channels));
    write_png(path, pixels.data(), count, height, width, channels, format, columns);
}

/// Float images in [0, 1], CHW; `count` must match pixels.size().
inline void write_png(const std::string &path, const std::vector<float> &pixels, uint32_t count, uint32_t height,
                      uint32_t width, uint32_t channels, uint32_t columns) {
    if (pixels.size() < std::size_t(count) * height * width * channels)
        detail::invalid("the pixel vector holds " + std::to_string(pixels.size()) + " floats, fewer than " +
                        std::to_string(count) + " images of " + std::to_string(height) + "x" + std::to_string(width) +
                        "x" + std::to_string(channels));
    write_png(path, pixels.data(), count, height, width, channels, GRAN_PIXEL_FORMAT_F32_CHW, columns);
}

/// Writes `frames` frames of `count` images each at `pixels` (one frame after the other, as
/// sample_steps returns the canvases) as a looping GIF: each frame a grid of `columns` columns
/// shown `delay_ms` milliseconds, the last `hold_ms` (gran_write_gif; libgran only).
inline void write_gif(const std::string &path, const void *pixels, uint32_t frames, uint32_t count, uint32_t height,
                      uint32_t width, uint32_t channels, GranPixelFormat format, uint32_t columns,
                      uint32_t delay_ms = 400, uint32_t hold_ms = 2000) {
    detail::check(gran_write_gif(path.c_str(), pixels, frames, count, height, width, channels, format, columns,
                                 delay_ms, hold_ms));
}

}  // namespace gran

#endif  // GRAN_HPP
