/*
 * The C contract of libgran, single-threaded parts: status codes reached by their documented
 * causes, gran_last_error and gran_status_string, NULL arguments, bad handles, short buffers,
 * versioned structs, outputs left untouched on failure, determinism, checkpoints, PNG, data
 * loaders, and the struct layout of ABI 1.
 *
 * Run from the repository root (it reads data/mnist10k; GRAN_TEST_DATA overrides the folder).
 * Arguments: names of tests to run (default: all).
 */
#define _POSIX_C_SOURCE 200809L

#include "check.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <float.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <limits.h>
#include <stddef.h>

#define SENTINEL_HANDLE ((uint64_t)0xDEADBEEFCAFEF00DULL)

/* Shared fixtures of this program: created by the first test that needs them. */
static GranModel g_model;     /* tiny 28x28x1, untrained */
static GranDataset g_data;    /* 64 synthetic 28x28x1 images */
static char g_tmp[512];       /* a temporary folder, removed at the end */

static void fixtures(void) {
    if (g_model == 0) g_model = tiny_model(7);
    if (g_data == 0) g_data = synthetic_dataset(64);
    if (g_tmp[0] == 0) tmpdir_make(g_tmp, sizeof g_tmp, "api");
}

static void tmp_path(char *out, size_t len, const char *name) {
    fixtures();
    path_join(out, len, g_tmp, name);
}

/* Number of entries in a folder, "." and ".." excepted. */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    CHECK(d != NULL);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

/* ---------------------------------------------------------------------------------------- */

static void test_version(void) {
    const char *v = gran_version();
    CHECK(gran_abi_version() == GRAN_ABI_VERSION);
    CHECK(v != NULL);
    CHECK(v[0] >= '0' && v[0] <= '9');
    CHECK(strchr(v, '.') != NULL);
    CHECK(gran_version() == v); /* static */
    CHECK(gran_cuda_device_count() >= 0);
}

static void test_status_strings(void) {
    static const char *const names[] = {
        "GRAN_STATUS_OK",          "GRAN_STATUS_INVALID_ARGUMENT", "GRAN_STATUS_INVALID_HANDLE",
        "GRAN_STATUS_BUFFER_TOO_SMALL", "GRAN_STATUS_IO",       "GRAN_STATUS_FORMAT",
        "GRAN_STATUS_DEVICE",      "GRAN_STATUS_OUT_OF_MEMORY",    "GRAN_STATUS_CANCELLED",
        "GRAN_STATUS_BUSY",        "GRAN_STATUS_DIVERGED",         "GRAN_STATUS_INTERNAL",
        "GRAN_STATUS_DISTRIBUTED",
    };
    static const GranStatus codes[] = {
        GRAN_STATUS_OK,       GRAN_STATUS_INVALID_ARGUMENT, GRAN_STATUS_INVALID_HANDLE,
        GRAN_STATUS_BUFFER_TOO_SMALL, GRAN_STATUS_IO,       GRAN_STATUS_FORMAT,
        GRAN_STATUS_DEVICE,   GRAN_STATUS_OUT_OF_MEMORY,    GRAN_STATUS_CANCELLED,
        GRAN_STATUS_BUSY,     GRAN_STATUS_DIVERGED,         GRAN_STATUS_INTERNAL,
        GRAN_STATUS_DISTRIBUTED,
    };
    static const GranStatus unknown[] = {-1, 13, 14, 100, INT32_MIN, INT32_MAX};
    size_t i;
    CHECK(GRAN_STATUS_OK == 0);
    for (i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *s = gran_status_string(codes[i]);
        CHECK(codes[i] == (GranStatus)i); /* the documented values, in order */
        CHECK_MSG(s != NULL && strcmp(s, names[i]) == 0, "status %d: got %s", (int)codes[i], s ? s : "NULL");
        CHECK(gran_status_string(codes[i]) == s); /* static: the same pointer every time */
    }
    for (i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *s = gran_status_string(unknown[i]);
        CHECK(s != NULL && strcmp(s, "GRAN_STATUS_UNKNOWN") == 0);
    }
}

static void *other_thread_error(void *arg) {
    char buf[256];
    size_t n;
    (void)arg;
    /* A fresh thread has no message yet. */
    CHECK(gran_last_error(NULL, 0) == 0);
    buf[0] = 'x';
    CHECK(gran_last_error(buf, sizeof buf) == 0);
    CHECK(buf[0] == '\0');
    CHECK_STATUS(gran_model_free(87654321), GRAN_STATUS_INVALID_HANDLE);
    n = gran_last_error(buf, sizeof buf);
    CHECK(n > 0 && strstr(buf, "87654321") != NULL);
    return NULL;
}

static void test_last_error(void) {
    char full[512], small[8], mark[16];
    size_t n, i;
    pthread_t t;
    CHECK_STATUS(gran_model_free(12345678), GRAN_STATUS_INVALID_HANDLE);
    n = gran_last_error(NULL, 0);
    CHECK(n > 8 && n < sizeof full);
    /* NULL buffer with a length, and a buffer with length 0: nothing written, length returned. */
    CHECK(gran_last_error(NULL, 100) == n);
    memset(mark, 'Z', sizeof mark);
    CHECK(gran_last_error(mark, 0) == n);
    CHECK(all_bytes(mark, 'Z', sizeof mark));
    /* Exactly n + 1 bytes: the whole message. */
    memset(full, 'Z', sizeof full);
    CHECK(gran_last_error(full, n + 1) == n);
    CHECK(strlen(full) == n);
    CHECK(strstr(full, "12345678") != NULL); /* names the handle */
    CHECK(full[n + 1] == 'Z');               /* nothing past the NUL */
    /* A short buffer: truncated to len - 1 bytes, NUL-terminated, nothing written past it. */
    memset(mark, 'Z', sizeof mark);
    CHECK(gran_last_error(mark, sizeof small) == n);
    CHECK(mark[sizeof small - 1] == '\0');
    CHECK(strlen(mark) == sizeof small - 1);
    CHECK(memcmp(mark, full, sizeof small - 1) == 0);
    for (i = sizeof small; i < sizeof mark; i++) CHECK(mark[i] == 'Z');
    /* One byte: just the NUL. */
    mark[0] = 'Z';
    mark[1] = 'Z';
    CHECK(gran_last_error(mark, 1) == n);
    CHECK(mark[0] == '\0' && mark[1] == 'Z');
    /* n bytes (one short): the last character is cut. */
    {
        char *b = (char *)malloc(n);
        CHECK(b != NULL);
        CHECK(gran_last_error(b, n) == n);
        CHECK(strlen(b) == n - 1 && memcmp(b, full, n - 1) == 0);
        free(b);
    }
    /* Successful calls do not clear it. */
    CHECK(gran_abi_version() == GRAN_ABI_VERSION);
    fixtures();
    {
        uint64_t step;
        CHECK_OK(gran_model_step(g_model, &step));
    }
    CHECK(gran_last_error(NULL, 0) == n);
    /* Each thread has its own message. */
    CHECK(pthread_create(&t, NULL, other_thread_error, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(gran_last_error(full, sizeof full) == n);
    CHECK(strstr(full, "12345678") != NULL && strstr(full, "87654321") == NULL);
    /* A new failure replaces the message; it names the NULL argument. */
    CHECK_STATUS(gran_model_create(NULL, NULL), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("cfg");
    CHECK_ERROR_HAS("NULL");
}

static void test_config_defaults(void) {
    GranModelConfig c;
    GranTrainConfig t;
    memset(&c, 0xEE, sizeof c);
    gran_model_config_init(&c);
    CHECK(c.struct_size == sizeof c);
    CHECK(c.height == 28 && c.width == 28 && c.channels == 1);
    CHECK(c.steps == 3 && c.z_dim == 100 && c.hidden_dim == 100);
    CHECK(c.width_scale == 1.0f && c.leaky_relu == 1);
    CHECK(c.device.kind == GRAN_DEVICE_AUTO && c.seed == 0);
    CHECK(c.classes == 0 && c.upsampling == GRAN_UPSAMPLING_TRANSPOSED);
    memset(&t, 0xEE, sizeof t);
    gran_train_config_init(&t);
    CHECK(t.struct_size == sizeof t);
    CHECK(t.batch_size == 64 && t.iterations == 2000 && t.epochs == 0);
    CHECK(t.lr_g == 8e-4 && t.beta1_g == 0.5 && t.beta2_g == 0.999);
    CHECK(t.lr_d == 3.2e-3 && t.beta1_d == 0.5 && t.beta2_d == 0.999);
    CHECK(t.ema_decay == 0.99 && t.ema_start == 200 && t.lr_schedule == GRAN_LR_CONSTANT);
    CHECK(t.d_weight_decay == 0.0 && t.seed == 0 && t.report_every == 100);
    CHECK(t.on_progress == NULL && t.user_data == NULL && t.checkpoint_path == NULL);
    CHECK(t.precision == GRAN_PRECISION_FP32);
    CHECK(t.augment == GRAN_AUGMENT_ADAPTIVE && t.augment_flip == 0 && t.augment_p == 0.3);
    CHECK(t.augment_target == 0.6 && t.augment_speed == 20000.0 && t.r1_gamma == -1.0 && t.r1_every == 4);
    CHECK(t.reserved0 == 0 && t.recompute == 0 && t.canvas_penalty == -1.0);
    /* NULL: nothing happens. */
    gran_model_config_init(NULL);
    gran_train_config_init(NULL);
}

/* The layout of ABI 1: existing fields never move (new ones may only be appended). */
static void test_abi_layout(void) {
    CHECK(sizeof(GranStatus) == 4 && sizeof(GranModel) == 8 && sizeof(GranDataset) == 8);
    CHECK(sizeof(GranPixelFormat) == 4 && sizeof(GranDeviceKind) == 4 && sizeof(GranLogLevel) == 4);
    CHECK(sizeof(GranDevice) == 8 && offsetof(GranDevice, index) == 4);
    CHECK(offsetof(GranModelConfig, struct_size) == 0);
    CHECK(offsetof(GranModelConfig, height) == 4 && offsetof(GranModelConfig, width) == 8);
    CHECK(offsetof(GranModelConfig, channels) == 12 && offsetof(GranModelConfig, steps) == 16);
    CHECK(offsetof(GranModelConfig, z_dim) == 20 && offsetof(GranModelConfig, hidden_dim) == 24);
    CHECK(offsetof(GranModelConfig, width_scale) == 28 && offsetof(GranModelConfig, leaky_relu) == 32);
    CHECK(offsetof(GranModelConfig, device) == 36 && offsetof(GranModelConfig, seed) == 48);
    CHECK(offsetof(GranModelConfig, classes) == 56 && offsetof(GranModelConfig, upsampling) == 60);
    CHECK(sizeof(GranModelConfig) == 64);
    CHECK(offsetof(GranDatasetInfo, count) == 16 && offsetof(GranDatasetInfo, has_labels) == 24);
    CHECK(offsetof(GranProgress, d_dominates) == 4 && offsetof(GranProgress, step) == 8);
    CHECK(offsetof(GranProgress, total_steps) == 16 && offsetof(GranProgress, epoch) == 24);
    CHECK(offsetof(GranProgress, d_loss) == 32 && offsetof(GranProgress, images_per_second) == 72);
    CHECK(offsetof(GranProgress, augment_p) == 80 && sizeof(GranProgress) == 88);
    CHECK(offsetof(GranTrainConfig, batch_size) == 4 && offsetof(GranTrainConfig, iterations) == 8);
    CHECK(offsetof(GranTrainConfig, epochs) == 16 && offsetof(GranTrainConfig, lr_g) == 24);
    CHECK(offsetof(GranTrainConfig, lr_d) == 48 && offsetof(GranTrainConfig, d_weight_decay) == 72);
    CHECK(offsetof(GranTrainConfig, seed) == 80 && offsetof(GranTrainConfig, report_every) == 88);
    if (sizeof(void *) == 8) {
        CHECK(offsetof(GranTrainConfig, on_progress) == 96 && offsetof(GranTrainConfig, user_data) == 104);
        CHECK(offsetof(GranTrainConfig, checkpoint_path) == 112);
        CHECK(offsetof(GranTrainConfig, checkpoint_every) == 120);
        CHECK(offsetof(GranTrainConfig, precision) == 128);
        CHECK(offsetof(GranTrainConfig, ema_decay) == 136 && offsetof(GranTrainConfig, ema_start) == 144);
        CHECK(offsetof(GranTrainConfig, lr_schedule) == 152 && offsetof(GranTrainConfig, cuda_graph) == 156);
        CHECK(offsetof(GranTrainConfig, process_group) == 160 && offsetof(GranTrainConfig, augment) == 168);
        CHECK(offsetof(GranTrainConfig, augment_flip) == 172 && offsetof(GranTrainConfig, augment_p) == 176);
        CHECK(offsetof(GranTrainConfig, augment_target) == 184 && offsetof(GranTrainConfig, augment_speed) == 192);
        CHECK(offsetof(GranTrainConfig, r1_gamma) == 200 && offsetof(GranTrainConfig, r1_every) == 208);
        CHECK(offsetof(GranTrainConfig, recompute) == 216 && offsetof(GranTrainConfig, canvas_penalty) == 224);
        CHECK(sizeof(GranTrainConfig) == 232);
    }
    CHECK(sizeof(GranPrecision) == 4);
}

/* ---------------------------------------------------------------------------------------- */
/* INVALID_ARGUMENT                                                                          */

static void expect_create_invalid(GranModelConfig c, const char *needle) {
    GranModel m = SENTINEL_HANDLE;
    CHECK_STATUS(gran_model_create(&c, &m), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK(m == SENTINEL_HANDLE);
    CHECK_ERROR_HAS(needle);
}

static void test_invalid_model_config(void) {
    GranModelConfig c;
    c = tiny_config(28, 1, 0); c.height = 30; c.width = 30; expect_create_invalid(c, "30");
    c = tiny_config(28, 1, 0); c.width = 32;                expect_create_invalid(c, "32");
    c = tiny_config(28, 1, 0); c.channels = 2;              expect_create_invalid(c, "channels");
    c = tiny_config(28, 1, 0); c.upsampling = 2;            expect_create_invalid(c, "upsampling");
    c = tiny_config(28, 1, 0); c.channels = 0;              expect_create_invalid(c, "channels");
    c = tiny_config(28, 1, 0); c.steps = 0;                 expect_create_invalid(c, "steps");
    c = tiny_config(28, 1, 0); c.steps = 65;                expect_create_invalid(c, "steps");
    c = tiny_config(28, 1, 0); c.z_dim = 0;                 expect_create_invalid(c, "z_dim");
    c = tiny_config(28, 1, 0); c.z_dim = 4097;              expect_create_invalid(c, "z_dim");
    c = tiny_config(28, 1, 0); c.hidden_dim = 0;            expect_create_invalid(c, "hidden_dim");
    c = tiny_config(28, 1, 0); c.width_scale = 0.0f;        expect_create_invalid(c, "width_scale");
    c = tiny_config(28, 1, 0); c.width_scale = -1.0f;       expect_create_invalid(c, "width_scale");
    c = tiny_config(28, 1, 0); c.width_scale = 8.5f;        expect_create_invalid(c, "width_scale");
    c = tiny_config(28, 1, 0); c.width_scale = NAN;         expect_create_invalid(c, "width_scale");
    c = tiny_config(28, 1, 0); c.width_scale = INFINITY;    expect_create_invalid(c, "width_scale");
    c = tiny_config(28, 1, 0); c.device.kind = 7;           expect_create_invalid(c, "device");
    c = tiny_config(28, 1, 0); c.device.kind = GRAN_DEVICE_CUDA; c.device.index = -1;
    expect_create_invalid(c, "-1");
}

static void test_invalid_dataset_args(void) {
    unsigned char px[2 * 784];
    float fx[784];
    GranDataset d = SENTINEL_HANDLE;
    size_t i;
    memset(px, 100, sizeof px);
    for (i = 0; i < 784; i++) fx[i] = 0.5f;
    CHECK_STATUS(gran_dataset_from_pixels(px, 0, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, &d), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_dataset_from_pixels(px, 1, 28, 28, 2, GRAN_PIXEL_FORMAT_U8_HWC, &d), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_dataset_from_pixels(px, 1, 0, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, &d), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_dataset_from_pixels(px, 1, 28, 0, 1, GRAN_PIXEL_FORMAT_U8_HWC, &d), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_dataset_from_pixels(px, 1, 28, 28, 1, 3, &d), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("format");
    CHECK_STATUS(gran_dataset_from_pixels(px, 1, 28, 28, 1, 0xFFFFFFFFu, &d), GRAN_STATUS_INVALID_ARGUMENT);
    /* Floats outside [0, 1] or NaN: the message gives the index. */
    fx[300] = NAN;
    CHECK_STATUS(gran_dataset_from_pixels(fx, 1, 28, 28, 1, GRAN_PIXEL_FORMAT_F32_CHW, &d), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("300");
    fx[300] = 1.5f;
    CHECK_STATUS(gran_dataset_from_pixels(fx, 1, 28, 28, 1, GRAN_PIXEL_FORMAT_F32_CHW, &d), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("300");
    fx[300] = -0.01f;
    CHECK_STATUS(gran_dataset_from_pixels(fx, 1, 28, 28, 1, GRAN_PIXEL_FORMAT_F32_CHW, &d), GRAN_STATUS_INVALID_ARGUMENT);
    fx[300] = INFINITY;
    CHECK_STATUS(gran_dataset_from_pixels(fx, 1, 28, 28, 1, GRAN_PIXEL_FORMAT_F32_CHW, &d), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK(d == SENTINEL_HANDLE);
    /* The bounds themselves are fine. */
    fx[300] = 1.0f;
    fx[301] = 0.0f;
    CHECK_OK(gran_dataset_from_pixels(fx, 1, 28, 28, 1, GRAN_PIXEL_FORMAT_F32_CHW, &d));
    CHECK(d != SENTINEL_HANDLE && d != 0);
    CHECK_OK(gran_dataset_free(d));
    /* Empty paths. */
    d = SENTINEL_HANDLE;
    CHECK_STATUS(gran_dataset_load_idx("", NULL, &d), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_dataset_load_cifar10("", &d), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_dataset_load_images("", 28, 28, 1, &d), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK(d == SENTINEL_HANDLE);
}

static void test_invalid_train_args(void) {
    GranTrainConfig t;
    GranProgress last;
    GranDataset d32 = 0, d3 = 0;
    uint64_t step0, step1;
    unsigned char *px = (unsigned char *)calloc(20 * 32 * 32 * 3, 1);
    CHECK(px != NULL);
    fixtures();
    CHECK_OK(gran_model_step(g_model, &step0));
#define EXPECT_TRAIN_INVALID(model, data, needle)                                                 \
    do {                                                                                          \
        memset(&last, 0xEE, sizeof last);                                                         \
        last.struct_size = sizeof last;                                                           \
        CHECK_STATUS(gran_train((model), (data), &t, &last), GRAN_STATUS_INVALID_ARGUMENT);       \
        CHECK_ERROR_HAS(needle);                                                                  \
        /* outputs are written only on success (cancelled and diverged runs excepted) */          \
        CHECK(last.struct_size == sizeof last);                                                   \
        CHECK(all_bytes((char *)&last + 4, 0xEE, sizeof last - 4));                               \
    } while (0)
    t = tiny_train(2); t.batch_size = 1;       EXPECT_TRAIN_INVALID(g_model, g_data, "batch_size");
    t = tiny_train(2); t.batch_size = 65;      EXPECT_TRAIN_INVALID(g_model, g_data, "batch_size");
    t = tiny_train(0); t.epochs = 0;           EXPECT_TRAIN_INVALID(g_model, g_data, "iterations");
    t = tiny_train(2); t.lr_g = 0.0;           EXPECT_TRAIN_INVALID(g_model, g_data, "learning rate");
    t = tiny_train(2); t.lr_d = -1e-3;         EXPECT_TRAIN_INVALID(g_model, g_data, "learning rate");
    t = tiny_train(2); t.lr_d = NAN;           EXPECT_TRAIN_INVALID(g_model, g_data, "learning rate");
    t = tiny_train(2); t.beta1_g = 1.0;        EXPECT_TRAIN_INVALID(g_model, g_data, "beta1");
    t = tiny_train(2); t.beta2_d = -0.1;       EXPECT_TRAIN_INVALID(g_model, g_data, "beta2");
    t = tiny_train(2); t.d_weight_decay = -1;  EXPECT_TRAIN_INVALID(g_model, g_data, "d_weight_decay");
    t = tiny_train(2); t.checkpoint_path = ""; EXPECT_TRAIN_INVALID(g_model, g_data, "checkpoint_path");
    t = tiny_train(2); t.precision = 2;        EXPECT_TRAIN_INVALID(g_model, g_data, "precision");
    t = tiny_train(2); t.ema_decay = 1.0;      EXPECT_TRAIN_INVALID(g_model, g_data, "ema_decay");
    t = tiny_train(2); t.ema_decay = NAN;      EXPECT_TRAIN_INVALID(g_model, g_data, "ema_decay");
    t = tiny_train(2); t.lr_schedule = 3;      EXPECT_TRAIN_INVALID(g_model, g_data, "lr_schedule");
    t = tiny_train(2); t.augment = 3;          EXPECT_TRAIN_INVALID(g_model, g_data, "augment");
    t = tiny_train(2); t.augment = GRAN_AUGMENT_FIXED; t.augment_p = 1.5;
    EXPECT_TRAIN_INVALID(g_model, g_data, "probability");
    t = tiny_train(2); t.augment_target = 0.0; EXPECT_TRAIN_INVALID(g_model, g_data, "target");
    t = tiny_train(2); t.augment_speed = NAN;  EXPECT_TRAIN_INVALID(g_model, g_data, "speed");
    t = tiny_train(2); t.r1_gamma = NAN;       EXPECT_TRAIN_INVALID(g_model, g_data, "r1_gamma");
    t = tiny_train(2); t.r1_gamma = 1.0; t.r1_every = 0;
    EXPECT_TRAIN_INVALID(g_model, g_data, "r1_every");
    /* Images that do not match the model: 32x32 grey, and 28x28 RGB. */
    CHECK_OK(gran_dataset_from_pixels(px, 20, 32, 32, 1, GRAN_PIXEL_FORMAT_U8_HWC, &d32));
    CHECK_OK(gran_dataset_from_pixels(px, 20, 28, 28, 3, GRAN_PIXEL_FORMAT_U8_HWC, &d3));
    t = tiny_train(2);
    EXPECT_TRAIN_INVALID(g_model, d32, "32");
    EXPECT_TRAIN_INVALID(g_model, d3, "3");
#undef EXPECT_TRAIN_INVALID
    CHECK_OK(gran_model_step(g_model, &step1));
    CHECK(step0 == step1); /* nothing trained */
    CHECK_OK(gran_dataset_free(d32));
    CHECK_OK(gran_dataset_free(d3));
    free(px);
}

static void test_invalid_sample_args(void) {
    unsigned char out[4 * 784];
    float z[4 * 16], probs[4];
    char path[600];
    fixtures();
    memset(out, 0xAB, sizeof out);
    CHECK_STATUS(gran_sample(g_model, 1, 0, GRAN_PIXEL_FORMAT_U8_HWC, out, sizeof out), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("count");
    CHECK_STATUS(gran_sample(g_model, 1, 1, 3, out, sizeof out), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_sample_steps(g_model, 1, 0, GRAN_PIXEL_FORMAT_U8_HWC, out, sizeof out), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_sample_steps(g_model, 1, 1, 99, out, sizeof out), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_latents(g_model, 1, 0, z, 64), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_generate(g_model, z, 0, GRAN_PIXEL_FORMAT_U8_HWC, out, sizeof out), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK(all_bytes(out, 0xAB, sizeof out));
    /* A non-finite latent. */
    CHECK_OK(gran_latents(g_model, 1, 4, z, 64));
    z[17] = NAN;
    CHECK_STATUS(gran_generate(g_model, z, 4, GRAN_PIXEL_FORMAT_U8_HWC, out, sizeof out), GRAN_STATUS_INVALID_ARGUMENT);
    z[17] = INFINITY;
    CHECK_STATUS(gran_generate(g_model, z, 4, GRAN_PIXEL_FORMAT_U8_HWC, out, sizeof out), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK(all_bytes(out, 0xAB, sizeof out));
    /* gran_discriminate: count 0, unknown format, floats out of range; probabilities untouched. */
    memset(probs, 0xAB, sizeof probs);
    CHECK_STATUS(gran_discriminate(g_model, out, 0, GRAN_PIXEL_FORMAT_U8_HWC, probs), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_discriminate(g_model, out, 1, 7, probs), GRAN_STATUS_INVALID_ARGUMENT);
    {
        float fx[784];
        size_t i;
        for (i = 0; i < 784; i++) fx[i] = 0.25f;
        fx[5] = 2.0f;
        CHECK_STATUS(gran_discriminate(g_model, fx, 1, GRAN_PIXEL_FORMAT_F32_CHW, probs), GRAN_STATUS_INVALID_ARGUMENT);
        fx[5] = NAN;
        CHECK_STATUS(gran_discriminate(g_model, fx, 1, GRAN_PIXEL_FORMAT_F32_CHW, probs), GRAN_STATUS_INVALID_ARGUMENT);
    }
    CHECK(all_bytes(probs, 0xAB, sizeof probs));
    /* gran_write_png: count 0, columns 0, bad channels, unknown format; no file written. */
    tmp_path(path, sizeof path, "invalid.png");
    CHECK_STATUS(gran_write_png(path, out, 0, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, 1), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_write_png(path, out, 1, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, 0), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_write_png(path, out, 1, 28, 28, 2, GRAN_PIXEL_FORMAT_U8_HWC, 1), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_write_png(path, out, 1, 28, 28, 1, 5, 1), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_write_png("", out, 1, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, 1), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK(!file_exists(path));
    /* Paths that are not UTF-8. */
    CHECK_STATUS(gran_model_save(g_model, "/tmp/\xff\xfe.gran"), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("UTF-8");
    {
        GranModel m = SENTINEL_HANDLE;
        CHECK_STATUS(gran_model_load("/tmp/\xff\xfe.gran", NULL, &m), GRAN_STATUS_INVALID_ARGUMENT);
        CHECK(m == SENTINEL_HANDLE);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* NULL where a pointer is required                                                          */

static void test_null_arguments(void) {
    const uint32_t zero = 0;
    GranModelConfig mc = tiny_config(28, 1, 0);
    GranTrainConfig tc = tiny_train(1);
    GranDatasetInfo info;
    GranModel m = SENTINEL_HANDLE;
    GranDataset d = SENTINEL_HANDLE;
    unsigned char px[784];
    float z[16], p[1];
    char path[600], idx[600];
    fixtures();
    memset(px, 7, sizeof px);
    tmp_path(path, sizeof path, "null.gran");
    path_join(idx, sizeof idx, data_dir(), "t10k-images-idx3-ubyte.gz");
#define NULL_ARG(expr)                                                                            \
    do {                                                                                          \
        CHECK_STATUS(expr, GRAN_STATUS_INVALID_ARGUMENT);                                         \
        CHECK_ERROR_HAS("NULL");                                                                  \
    } while (0)
    /* datasets */
    NULL_ARG(gran_dataset_from_pixels(NULL, 1, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, &d));
    NULL_ARG(gran_dataset_from_pixels(px, 1, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, NULL));
    NULL_ARG(gran_dataset_load_idx(NULL, NULL, &d));
    NULL_ARG(gran_dataset_load_idx(idx, NULL, NULL));
    NULL_ARG(gran_dataset_load_cifar10(NULL, &d));
    NULL_ARG(gran_dataset_load_cifar10(g_tmp, NULL));
    NULL_ARG(gran_dataset_load_images(NULL, 28, 28, 1, &d));
    NULL_ARG(gran_dataset_load_images(g_tmp, 28, 28, 1, NULL));
    NULL_ARG(gran_dataset_info(g_data, NULL));
    CHECK(d == SENTINEL_HANDLE);
    /* models */
    NULL_ARG(gran_model_create(NULL, &m));
    NULL_ARG(gran_model_create(&mc, NULL));
    NULL_ARG(gran_model_config(g_model, NULL));
    NULL_ARG(gran_model_step(g_model, NULL));
    NULL_ARG(gran_model_save(g_model, NULL));
    CHECK_OK(gran_model_save(g_model, path));
    NULL_ARG(gran_model_load(NULL, NULL, &m));
    NULL_ARG(gran_model_load(path, NULL, NULL));
    CHECK(m == SENTINEL_HANDLE);
    /* sampling: NULL buffers with a size that would be large enough */
    NULL_ARG(gran_sample(g_model, 1, 1, GRAN_PIXEL_FORMAT_U8_HWC, NULL, sizeof px));
    NULL_ARG(gran_sample_steps(g_model, 1, 1, GRAN_PIXEL_FORMAT_U8_HWC, NULL, 2 * sizeof px));
    NULL_ARG(gran_latents(g_model, 1, 1, NULL, 16));
    CHECK_OK(gran_latents(g_model, 1, 1, z, 16));
    NULL_ARG(gran_generate(g_model, NULL, 1, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px));
    NULL_ARG(gran_generate(g_model, z, 1, GRAN_PIXEL_FORMAT_U8_HWC, NULL, sizeof px));
    NULL_ARG(gran_discriminate(g_model, NULL, 1, GRAN_PIXEL_FORMAT_U8_HWC, p));
    NULL_ARG(gran_discriminate(g_model, px, 1, GRAN_PIXEL_FORMAT_U8_HWC, NULL));
    /* the class-taking forms: NULL classes, and NULL buffers */
    NULL_ARG(gran_sample_class(g_model, 1, 1, NULL, 1, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px));
    NULL_ARG(gran_sample_class(g_model, 1, 1, &zero, 1, GRAN_PIXEL_FORMAT_U8_HWC, NULL, sizeof px));
    NULL_ARG(gran_sample_steps_class(g_model, 1, 1, NULL, 1, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px));
    NULL_ARG(gran_generate_class(g_model, z, 1, NULL, 1, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px));
    NULL_ARG(gran_generate_class(g_model, NULL, 1, &zero, 1, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px));
    NULL_ARG(gran_discriminate_class(g_model, px, 1, NULL, 1, GRAN_PIXEL_FORMAT_U8_HWC, p));
    NULL_ARG(gran_discriminate_class(g_model, NULL, 1, &zero, 1, GRAN_PIXEL_FORMAT_U8_HWC, p));
    NULL_ARG(gran_dataset_from_labelled_pixels(px, NULL, 1, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, &d));
    NULL_ARG(gran_dataset_from_labelled_pixels(NULL, (const uint8_t *)px, 1, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, &d));
    NULL_ARG(gran_write_png(NULL, px, 1, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, 1));
    tmp_path(path, sizeof path, "null.png");
    NULL_ARG(gran_write_png(path, NULL, 1, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, 1));
    CHECK(!file_exists(path));
    /* training: cfg is required, last is optional */
    NULL_ARG(gran_train(g_model, g_data, NULL, NULL));
    /* functions that accept NULL */
    CHECK(gran_last_error(NULL, 0) > 0);
    gran_set_log_callback(NULL, NULL, GRAN_LOG_DEBUG);
    gran_set_log_callback(NULL, NULL, 1000);
    gran_model_config_init(NULL);
    gran_train_config_init(NULL);
    (void)tc;
    /* the fixtures still work */
    info.struct_size = sizeof info;
    CHECK_OK(gran_dataset_info(g_data, &info));
    CHECK_OK(gran_sample(g_model, 1, 1, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px));
#undef NULL_ARG
}

/* ---------------------------------------------------------------------------------------- */
/* INVALID_HANDLE                                                                            */

/* Every function that takes a model handle, called with `bad` and otherwise valid arguments. */
static void expect_bad_model(GranModel bad) {
    const uint32_t zero = 0;
    GranModelConfig mc;
    GranTrainConfig tc = tiny_train(1);
    GranProgress last;
    unsigned char px[2 * 784];
    float z[16], p[1];
    uint64_t step = 77;
    char path[600], needle[32];
    fixtures();
    snprintf(needle, sizeof needle, "%llu", (unsigned long long)bad);
    tmp_path(path, sizeof path, "bad-handle.gran");
    CHECK_OK(gran_latents(g_model, 1, 1, z, 16));
    memset(px, 0x5A, sizeof px);
    memset(p, 0x5A, sizeof p);
    gran_model_config_init(&mc);
    mc.height = 999;
#define BAD(expr)                                                                                 \
    do {                                                                                          \
        CHECK_STATUS(expr, GRAN_STATUS_INVALID_HANDLE);                                           \
        CHECK_ERROR_HAS(needle);                                                                  \
    } while (0)
    BAD(gran_model_config(bad, &mc));
    BAD(gran_model_step(bad, &step));
    BAD(gran_model_save(bad, path));
    BAD(gran_cancel(bad));
    BAD(gran_sample(bad, 1, 1, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px));
    BAD(gran_sample_steps(bad, 1, 1, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px));
    BAD(gran_latents(bad, 1, 1, z, 16));
    BAD(gran_generate(bad, z, 1, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px));
    BAD(gran_discriminate(bad, px, 1, GRAN_PIXEL_FORMAT_U8_HWC, p));
    BAD(gran_sample_class(bad, 1, 1, &zero, 1, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px));
    BAD(gran_sample_steps_class(bad, 1, 1, &zero, 1, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px));
    BAD(gran_generate_class(bad, z, 1, &zero, 1, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px));
    BAD(gran_discriminate_class(bad, px, 1, &zero, 1, GRAN_PIXEL_FORMAT_U8_HWC, p));
    memset(&last, 0xEE, sizeof last);
    last.struct_size = sizeof last;
    BAD(gran_train(bad, g_data, &tc, &last));
    CHECK(all_bytes((char *)&last + 4, 0xEE, sizeof last - 4));
    if (bad != 0) BAD(gran_model_free(bad));
#undef BAD
    /* outputs untouched */
    CHECK(mc.height == 999 && step == 77);
    CHECK(all_bytes(px, 0x5A, sizeof px) && all_bytes(p, 0x5A, sizeof p));
    CHECK(!file_exists(path));
}

static void expect_bad_dataset(GranDataset bad) {
    GranDatasetInfo info;
    GranTrainConfig tc = tiny_train(1);
    char needle[32];
    fixtures();
    snprintf(needle, sizeof needle, "%llu", (unsigned long long)bad);
    memset(&info, 0xEE, sizeof info);
    info.struct_size = sizeof info;
    CHECK_STATUS(gran_dataset_info(bad, &info), GRAN_STATUS_INVALID_HANDLE);
    CHECK_ERROR_HAS(needle);
    CHECK(all_bytes((char *)&info + 4, 0xEE, sizeof info - 4));
    CHECK_STATUS(gran_train(g_model, bad, &tc, NULL), GRAN_STATUS_INVALID_HANDLE);
    CHECK_ERROR_HAS(needle);
    if (bad != 0) {
        CHECK_STATUS(gran_dataset_free(bad), GRAN_STATUS_INVALID_HANDLE);
        CHECK_ERROR_HAS(needle);
    }
}

static void test_handles(void) {
    GranModel m, stale_m, seen[8];
    GranDataset stale_d;
    GranDatasetInfo info;
    uint64_t step;
    size_t i, j;
    unsigned char px[784];
    fixtures();
    /* 0 is never valid; freeing it is OK. */
    expect_bad_model(0);
    expect_bad_dataset(0);
    CHECK_OK(gran_model_free(0));
    CHECK_OK(gran_dataset_free(0));
    /* Forged. */
    expect_bad_model(12345678);
    expect_bad_model(UINT64_MAX);
    expect_bad_model(g_model + 1000000);
    expect_bad_dataset(12345678);
    expect_bad_dataset(UINT64_MAX);
    /* Stale, and freed twice. */
    stale_m = tiny_model(1);
    CHECK_OK(gran_model_free(stale_m));
    expect_bad_model(stale_m);
    stale_d = synthetic_dataset(4);
    CHECK_OK(gran_dataset_free(stale_d));
    expect_bad_dataset(stale_d);
    /* Cross-type: a dataset handle as a model, and a model handle as a dataset. */
    expect_bad_model(g_data);
    expect_bad_dataset(g_model);
    {
        GranTrainConfig t = tiny_train(1);
        CHECK_STATUS(gran_train(g_data, g_model, &t, NULL), GRAN_STATUS_INVALID_HANDLE);
    }
    /* The failed frees above did not free anything. */
    info.struct_size = sizeof info;
    CHECK_OK(gran_dataset_info(g_data, &info));
    CHECK_OK(gran_model_step(g_model, &step));
    CHECK_OK(gran_sample(g_model, 3, 1, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px));
    /* Identifiers are never reused, by either registry. */
    for (i = 0; i < 8; i++) {
        if (i % 2 == 0) {
            seen[i] = tiny_model(i);
            CHECK_OK(gran_model_free(seen[i]));
        } else {
            seen[i] = synthetic_dataset(2);
            CHECK_OK(gran_dataset_free(seen[i]));
        }
        CHECK(seen[i] != 0 && seen[i] != g_model && seen[i] != g_data && seen[i] != stale_m && seen[i] != stale_d);
        for (j = 0; j < i; j++) CHECK(seen[i] != seen[j]);
    }
    m = tiny_model(1);
    for (i = 0; i < 8; i++) CHECK(m != seen[i]);
    expect_bad_model(seen[0]);
    CHECK_OK(gran_model_free(m));
}

/* ---------------------------------------------------------------------------------------- */
/* BUFFER_TOO_SMALL                                                                          */

static void test_buffer_too_small(void) {
    const size_t n = 3, img = 784;
    const size_t T = 2, z_dim = 16;
    unsigned char *buf = (unsigned char *)malloc(T * n * img * 4);
    float z[3 * 16];
    char needed[32];
    size_t sizes[3] = {1, 1, 4}; /* bytes per value: U8_HWC, U8_CHW, F32_CHW */
    GranPixelFormat f;
    CHECK(buf != NULL);
    fixtures();
    for (f = 0; f < 3; f++) {
        size_t exact = n * img * sizes[f];
        /* gran_sample: one byte short, and 0 bytes; the message gives the size needed */
        memset(buf, 0xAB, T * n * img * 4);
        snprintf(needed, sizeof needed, "%zu", exact);
        CHECK_STATUS(gran_sample(g_model, 5, (uint32_t)n, f, buf, exact - 1), GRAN_STATUS_BUFFER_TOO_SMALL);
        CHECK_ERROR_HAS(needed);
        CHECK_STATUS(gran_sample(g_model, 5, (uint32_t)n, f, buf, 0), GRAN_STATUS_BUFFER_TOO_SMALL);
        CHECK(all_bytes(buf, 0xAB, T * n * img * 4));
        CHECK_OK(gran_sample(g_model, 5, (uint32_t)n, f, buf, exact));
        CHECK(all_bytes(buf + exact, 0xAB, T * n * img * 4 - exact)); /* nothing past it */
        /* gran_sample_steps: T * n images */
        memset(buf, 0xAB, T * n * img * 4);
        snprintf(needed, sizeof needed, "%zu", T * exact);
        CHECK_STATUS(gran_sample_steps(g_model, 5, (uint32_t)n, f, buf, T * exact - 1), GRAN_STATUS_BUFFER_TOO_SMALL);
        CHECK_ERROR_HAS(needed);
        CHECK_STATUS(gran_sample_steps(g_model, 5, (uint32_t)n, f, buf, exact), GRAN_STATUS_BUFFER_TOO_SMALL);
        CHECK(all_bytes(buf, 0xAB, T * n * img * 4));
        CHECK_OK(gran_sample_steps(g_model, 5, (uint32_t)n, f, buf, T * exact));
        /* gran_generate */
        CHECK_OK(gran_latents(g_model, 5, (uint32_t)n, z, n * z_dim));
        memset(buf, 0xAB, T * n * img * 4);
        snprintf(needed, sizeof needed, "%zu", exact);
        CHECK_STATUS(gran_generate(g_model, z, (uint32_t)n, f, buf, exact - 1), GRAN_STATUS_BUFFER_TOO_SMALL);
        CHECK_ERROR_HAS(needed);
        CHECK(all_bytes(buf, 0xAB, T * n * img * 4));
        CHECK_OK(gran_generate(g_model, z, (uint32_t)n, f, buf, exact));
    }
    /* A huge count with a small buffer: refused before any work. */
    CHECK_STATUS(gran_sample(g_model, 5, UINT32_MAX, GRAN_PIXEL_FORMAT_F32_CHW, buf, 100), GRAN_STATUS_BUFFER_TOO_SMALL);
    CHECK_STATUS(gran_sample_steps(g_model, 5, UINT32_MAX, GRAN_PIXEL_FORMAT_F32_CHW, buf, 100), GRAN_STATUS_BUFFER_TOO_SMALL);
    CHECK_STATUS(gran_latents(g_model, 5, UINT32_MAX, z, 3 * 16), GRAN_STATUS_BUFFER_TOO_SMALL);
    /* gran_latents: one float short */
    memset(z, 0xAB, sizeof z);
    snprintf(needed, sizeof needed, "%zu", n * z_dim);
    CHECK_STATUS(gran_latents(g_model, 5, (uint32_t)n, z, n * z_dim - 1), GRAN_STATUS_BUFFER_TOO_SMALL);
    CHECK_ERROR_HAS(needed);
    CHECK_STATUS(gran_latents(g_model, 5, (uint32_t)n, z, 0), GRAN_STATUS_BUFFER_TOO_SMALL);
    CHECK(all_bytes(z, 0xAB, sizeof z));
    CHECK_OK(gran_latents(g_model, 5, (uint32_t)n, z, n * z_dim));
    free(buf);
}

/* ---------------------------------------------------------------------------------------- */
/* Versioned structs                                                                         */

static int fail_if_called(const GranProgress *p, void *user) {
    (void)p;
    (void)user;
    fail_now(__FILE__, __LINE__, "a callback past struct_size was called");
    return 1;
}

static void test_struct_size(void) {
    GranModelConfig c, out;
    GranModel a = 0, b = 0, c99 = 0, m = SENTINEL_HANDLE;
    unsigned char sa[2 * 784], sb[2 * 784], sc[2 * 784];
    GranTrainConfig t;
    GranProgress last;
    GranDatasetInfo info;
    uint64_t s0, s1;
    uint32_t small;
    fixtures();
    /* An older, smaller GranModelConfig (no seed): the seed takes its default, 0. */
    c = tiny_config(28, 1, 99);
    c.struct_size = (uint32_t)offsetof(GranModelConfig, seed);
    CHECK_OK(gran_model_create(&c, &a));
    c = tiny_config(28, 1, 0);
    CHECK_OK(gran_model_create(&c, &b));
    c = tiny_config(28, 1, 99);
    CHECK_OK(gran_model_create(&c, &c99));
    CHECK_OK(gran_sample(a, 1, 2, GRAN_PIXEL_FORMAT_U8_HWC, sa, sizeof sa));
    CHECK_OK(gran_sample(b, 1, 2, GRAN_PIXEL_FORMAT_U8_HWC, sb, sizeof sb));
    CHECK_OK(gran_sample(c99, 1, 2, GRAN_PIXEL_FORMAT_U8_HWC, sc, sizeof sc));
    CHECK(memcmp(sa, sb, sizeof sa) == 0);
    CHECK(memcmp(sb, sc, sizeof sb) != 0);
    /* ... and gran_model_config reports the seed it used. */
    gran_model_config_init(&out);
    CHECK_OK(gran_model_config(a, &out));
    CHECK(out.seed == 0 && out.z_dim == 16 && out.steps == 2);
    CHECK(out.device.kind == env_test_device().kind && out.device.index == env_test_device().index);
    /* Smaller still: a garbage device past struct_size is never read. */
    c = tiny_config(28, 1, 0);
    c.device.kind = 77;
    c.struct_size = (uint32_t)offsetof(GranModelConfig, device);
    CHECK_OK(gran_model_create(&c, &m));
    CHECK_OK(gran_model_free(m));
    /* struct_size 8: only `height` is read, everything else takes the defaults. */
    memset(&c, 0xFF, sizeof c);
    c.struct_size = 8;
    c.height = 28;
    CHECK_OK(gran_model_create(&c, &m));
    gran_model_config_init(&out);
    CHECK_OK(gran_model_config(m, &out));
    CHECK(out.z_dim == 100 && out.hidden_dim == 100 && out.steps == 3 && out.channels == 1);
    CHECK(out.upsampling == GRAN_UPSAMPLING_TRANSPOSED);
    CHECK_OK(gran_model_free(m));
    /* A resizing generator reports its kind back. */
    c = tiny_config(28, 1, 0);
    c.upsampling = GRAN_UPSAMPLING_RESIZE;
    CHECK_OK(gran_model_create(&c, &m));
    gran_model_config_init(&out);
    CHECK_OK(gran_model_config(m, &out));
    CHECK(out.upsampling == GRAN_UPSAMPLING_RESIZE && out.steps == 2);
    CHECK_OK(gran_sample(m, 1, 2, GRAN_PIXEL_FORMAT_U8_HWC, sa, sizeof sa));
    CHECK_OK(gran_model_free(m));
    /* A newer, larger struct: the extra bytes are ignored. */
    {
        unsigned char big[sizeof(GranModelConfig) + 32];
        GranModelConfig base = tiny_config(28, 1, 0);
        memset(big, 0x7F, sizeof big);
        base.struct_size = (uint32_t)sizeof big;
        memcpy(big, &base, sizeof base);
        m = SENTINEL_HANDLE;
        CHECK_OK(gran_model_create((const GranModelConfig *)(const void *)big, &m));
        CHECK_OK(gran_model_free(m));
    }
    /* Too small (< 8): refused, output untouched. */
    for (small = 0; small < 8; small++) {
        c = tiny_config(28, 1, 0);
        c.struct_size = small;
        m = SENTINEL_HANDLE;
        CHECK_STATUS(gran_model_create(&c, &m), GRAN_STATUS_INVALID_ARGUMENT);
        CHECK_ERROR_HAS("struct_size");
        CHECK(m == SENTINEL_HANDLE);
        memset(&out, 0xEE, sizeof out);
        out.struct_size = small;
        CHECK_STATUS(gran_model_config(g_model, &out), GRAN_STATUS_INVALID_ARGUMENT);
        CHECK(out.struct_size == small && all_bytes((char *)&out + 4, 0xEE, sizeof out - 4));
        memset(&info, 0xEE, sizeof info);
        info.struct_size = small;
        CHECK_STATUS(gran_dataset_info(g_data, &info), GRAN_STATUS_INVALID_ARGUMENT);
        CHECK(all_bytes((char *)&info + 4, 0xEE, sizeof info - 4));
        t = tiny_train(1);
        t.struct_size = small;
        CHECK_STATUS(gran_train(g_model, g_data, &t, NULL), GRAN_STATUS_INVALID_ARGUMENT);
        t = tiny_train(1);
        memset(&last, 0xEE, sizeof last);
        last.struct_size = small;
        CHECK_STATUS(gran_train(g_model, g_data, &t, &last), GRAN_STATUS_INVALID_ARGUMENT);
        CHECK(all_bytes((char *)&last + 4, 0xEE, sizeof last - 4));
    }
    /* Output structs: no more than struct_size bytes are written, struct_size is kept. */
    memset(&out, 0xEE, sizeof out);
    out.struct_size = (uint32_t)offsetof(GranModelConfig, z_dim);
    CHECK_OK(gran_model_config(b, &out));
    CHECK(out.struct_size == offsetof(GranModelConfig, z_dim));
    CHECK(out.height == 28 && out.width == 28 && out.channels == 1 && out.steps == 2);
    CHECK(all_bytes((char *)&out + offsetof(GranModelConfig, z_dim), 0xEE,
                    sizeof out - offsetof(GranModelConfig, z_dim)));
    memset(&info, 0xEE, sizeof info);
    info.struct_size = (uint32_t)offsetof(GranDatasetInfo, count);
    CHECK_OK(gran_dataset_info(g_data, &info));
    CHECK(info.height == 28 && info.width == 28 && info.channels == 1);
    CHECK(all_bytes((char *)&info + offsetof(GranDatasetInfo, count), 0xEE,
                    sizeof info - offsetof(GranDatasetInfo, count)));
    /* An older GranTrainConfig that ends before the learning rates: the NaN rate and the
     * callback past its end are never read. */
    CHECK_OK(gran_model_step(b, &s0));
    t = tiny_train(2);
    t.lr_g = NAN;
    t.on_progress = fail_if_called;
    t.struct_size = (uint32_t)offsetof(GranTrainConfig, lr_g);
    memset(&last, 0xEE, sizeof last);
    last.struct_size = (uint32_t)offsetof(GranProgress, total_steps);
    CHECK_OK(gran_train(b, g_data, &t, &last));
    CHECK_OK(gran_model_step(b, &s1));
    CHECK(s1 == s0 + 2);
    CHECK(last.step == s1);
    CHECK(all_bytes((char *)&last + offsetof(GranProgress, total_steps), 0xEE,
                    sizeof last - offsetof(GranProgress, total_steps)));
    CHECK_OK(gran_model_free(a));
    CHECK_OK(gran_model_free(b));
    CHECK_OK(gran_model_free(c99));
}

/* ---------------------------------------------------------------------------------------- */
/* IO and FORMAT                                                                             */

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* A plain IDX image file of `count` 28x28 images; `present` of them actually written. */
static void write_idx_images(const char *path, uint32_t magic, uint32_t count, uint32_t present) {
    size_t len = 16 + (size_t)present * 784;
    unsigned char *b = (unsigned char *)calloc(len, 1);
    size_t i;
    CHECK(b != NULL);
    put_be32(b, magic);
    put_be32(b + 4, count);
    put_be32(b + 8, 28);
    put_be32(b + 12, 28);
    for (i = 16; i < len; i++) b[i] = (unsigned char)(i * 31);
    write_file(path, b, len);
    free(b);
}

static void write_idx_labels(const char *path, uint32_t count) {
    unsigned char b[8 + 16];
    uint32_t i;
    CHECK(count <= 16);
    put_be32(b, 0x00000801);
    put_be32(b + 4, count);
    for (i = 0; i < count; i++) b[8 + i] = (unsigned char)(i % 10);
    write_file(path, b, 8 + count);
}

static void test_io_and_format(void) {
    char dir[600], p[600], p2[600];
    GranModel m = SENTINEL_HANDLE;
    GranDataset d = SENTINEL_HANDLE;
    GranDatasetInfo info;
    unsigned char px[4 * 784];
    unsigned char *ckpt;
    size_t ckpt_len;
    fixtures();
    memset(px, 9, sizeof px);
    path_join(dir, sizeof dir, g_tmp, "io");
    CHECK(mkdir(dir, 0700) == 0);
    /* IO: missing files and folders. */
    CHECK_STATUS(gran_model_load("/nonexistent-gran-dir/model.gran", NULL, &m), GRAN_STATUS_IO);
    CHECK_ERROR_HAS("/nonexistent-gran-dir/model.gran");
    CHECK_STATUS(gran_model_save(g_model, "/nonexistent-gran-dir/model.gran"), GRAN_STATUS_IO);
    CHECK_STATUS(gran_model_save(g_model, dir), GRAN_STATUS_IO); /* a folder is in the way */
    CHECK_STATUS(gran_dataset_load_idx("/nonexistent-gran-dir/x-idx3-ubyte", NULL, &d), GRAN_STATUS_IO);
    path_join(p, sizeof p, data_dir(), "t10k-images-idx3-ubyte.gz");
    CHECK_STATUS(gran_dataset_load_idx(p, "/nonexistent-gran-dir/labels", &d), GRAN_STATUS_IO);
    CHECK_STATUS(gran_dataset_load_cifar10("/nonexistent-gran-dir/data_batch_1.bin", &d), GRAN_STATUS_IO);
    CHECK_STATUS(gran_dataset_load_images("/nonexistent-gran-dir", 28, 28, 1, &d), GRAN_STATUS_IO);
    CHECK_STATUS(gran_write_png("/nonexistent-gran-dir/x.png", px, 1, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, 1),
                 GRAN_STATUS_IO);
    {
        /* A checkpoint that cannot be written during training: IO from gran_train. */
        GranTrainConfig t = tiny_train(1);
        GranModel tm = tiny_model(3);
        t.checkpoint_path = "/nonexistent-gran-dir/ckpt.gran";
        CHECK_STATUS(gran_train(tm, g_data, &t, NULL), GRAN_STATUS_IO);
        CHECK_OK(gran_model_free(tm));
    }
    CHECK(m == SENTINEL_HANDLE && d == SENTINEL_HANDLE);

    /* FORMAT: checkpoints that are not intact gran checkpoints. */
    path_join(p, sizeof p, dir, "empty.gran");
    write_file(p, "", 0);
    CHECK_STATUS(gran_model_load(p, NULL, &m), GRAN_STATUS_FORMAT);
    path_join(p, sizeof p, dir, "garbage.gran");
    write_file(p, "this is not a checkpoint, just some text\n", 41);
    CHECK_STATUS(gran_model_load(p, NULL, &m), GRAN_STATUS_FORMAT);
    {
        unsigned char huge_header[16];
        memset(huge_header, 0xFF, sizeof huge_header); /* a safetensors length of 2^64 - 1 */
        path_join(p, sizeof p, dir, "huge.gran");
        write_file(p, huge_header, sizeof huge_header);
        CHECK_STATUS(gran_model_load(p, NULL, &m), GRAN_STATUS_FORMAT);
    }
    path_join(p, sizeof p, dir, "good.gran");
    CHECK_OK(gran_model_save(g_model, p));
    ckpt = read_file(p, &ckpt_len);
    CHECK(ckpt_len > 100);
    path_join(p2, sizeof p2, dir, "truncated.gran");
    write_file(p2, ckpt, ckpt_len / 2);
    CHECK_STATUS(gran_model_load(p2, NULL, &m), GRAN_STATUS_FORMAT);
    write_file(p2, ckpt, ckpt_len - 1);
    CHECK_STATUS(gran_model_load(p2, NULL, &m), GRAN_STATUS_FORMAT);
    write_file(p2, ckpt, 12);
    CHECK_STATUS(gran_model_load(p2, NULL, &m), GRAN_STATUS_FORMAT);
    free(ckpt);
    /* A PNG and an IDX file are not checkpoints either. */
    path_join(p2, sizeof p2, dir, "picture.png");
    CHECK_OK(gran_write_png(p2, px, 1, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, 1));
    CHECK_STATUS(gran_model_load(p2, NULL, &m), GRAN_STATUS_FORMAT);
    path_join(p2, sizeof p2, data_dir(), "t10k-labels-idx1-ubyte.gz");
    CHECK_STATUS(gran_model_load(p2, NULL, &m), GRAN_STATUS_FORMAT);
    CHECK(m == SENTINEL_HANDLE);

    /* IDX: plain files written here. */
    path_join(p, sizeof p, dir, "ok-images");
    path_join(p2, sizeof p2, dir, "ok-labels");
    write_idx_images(p, 0x00000803, 3, 3);
    write_idx_labels(p2, 3);
    CHECK_OK(gran_dataset_load_idx(p, p2, &d));
    info.struct_size = sizeof info;
    CHECK_OK(gran_dataset_info(d, &info));
    CHECK(info.count == 3 && info.height == 28 && info.width == 28 && info.channels == 1 && info.has_labels == 1);
    CHECK_OK(gran_dataset_free(d));
    d = SENTINEL_HANDLE;
    write_idx_labels(p2, 4); /* counts that disagree */
    CHECK_STATUS(gran_dataset_load_idx(p, p2, &d), GRAN_STATUS_FORMAT);
    CHECK_STATUS(gran_dataset_load_idx(p2, NULL, &d), GRAN_STATUS_FORMAT); /* labels as images */
    path_join(p, sizeof p, dir, "bad-magic");
    write_idx_images(p, 0x00000804, 3, 3);
    CHECK_STATUS(gran_dataset_load_idx(p, NULL, &d), GRAN_STATUS_FORMAT);
    path_join(p, sizeof p, dir, "truncated-images");
    write_idx_images(p, 0x00000803, 3, 2);
    CHECK_STATUS(gran_dataset_load_idx(p, NULL, &d), GRAN_STATUS_FORMAT);
    write_file(p, "\0\0\x08", 3);
    CHECK_STATUS(gran_dataset_load_idx(p, NULL, &d), GRAN_STATUS_FORMAT);
    path_join(p, sizeof p, dir, "not-gzip.gz");
    write_file(p, "\x1f\x8b\x08\0garbage", 11); /* a gzip header, then nonsense */
    CHECK_STATUS(gran_dataset_load_idx(p, NULL, &d), GRAN_STATUS_FORMAT);
    {
        /* The real training images with the held-out labels: 9000 images, 1000 labels. */
        char imgs[600], labs[600];
        path_join(imgs, sizeof imgs, data_dir(), "train-images-idx3-ubyte.gz");
        path_join(labs, sizeof labs, data_dir(), "t10k-labels-idx1-ubyte.gz");
        CHECK_STATUS(gran_dataset_load_idx(imgs, labs, &d), GRAN_STATUS_FORMAT);
    }
    CHECK(d == SENTINEL_HANDLE);

    /* CIFAR-10 binary batches written here. */
    {
        unsigned char *rec = (unsigned char *)calloc(3 * 3073, 1);
        size_t i;
        CHECK(rec != NULL);
        for (i = 0; i < 3 * 3073; i++) rec[i] = (unsigned char)(i * 7);
        rec[0] = 3;
        rec[3073] = 9;
        rec[2 * 3073] = 0;
        path_join(p, sizeof p, dir, "data_batch_1.bin");
        write_file(p, rec, 3 * 3073);
        CHECK_OK(gran_dataset_load_cifar10(p, &d));
        CHECK_OK(gran_dataset_info(d, &info));
        CHECK(info.count == 3 && info.height == 32 && info.width == 32 && info.channels == 3 && info.has_labels);
        CHECK_OK(gran_dataset_free(d));
        d = SENTINEL_HANDLE;
        path_join(p, sizeof p, dir, "short.bin");
        write_file(p, rec, 2 * 3073 - 1);
        CHECK_STATUS(gran_dataset_load_cifar10(p, &d), GRAN_STATUS_FORMAT);
        rec[3073] = 10; /* a label above 9 */
        path_join(p, sizeof p, dir, "badlabel.bin");
        write_file(p, rec, 3 * 3073);
        CHECK_STATUS(gran_dataset_load_cifar10(p, &d), GRAN_STATUS_FORMAT);
        free(rec);
        CHECK(d == SENTINEL_HANDLE);
    }

    /* Image folders: a PNG written by gran_write_png loads back; a corrupt one is FORMAT;
     * a folder without images is INVALID_ARGUMENT. */
    {
        char imgdir[600];
        path_join(imgdir, sizeof imgdir, dir, "images");
        CHECK(mkdir(imgdir, 0700) == 0);
        CHECK_STATUS(gran_dataset_load_images(imgdir, 28, 28, 1, &d), GRAN_STATUS_INVALID_ARGUMENT);
        path_join(p, sizeof p, imgdir, "a.png");
        CHECK_OK(gran_write_png(p, px, 1, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, 1));
        path_join(p, sizeof p, imgdir, "b.png");
        CHECK_OK(gran_write_png(p, px, 4, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, 2));
        CHECK_OK(gran_dataset_load_images(imgdir, 32, 32, 3, &d));
        CHECK_OK(gran_dataset_info(d, &info));
        CHECK(info.count == 2 && info.height == 32 && info.width == 32 && info.channels == 3 && !info.has_labels);
        CHECK_OK(gran_dataset_free(d));
        d = SENTINEL_HANDLE;
        CHECK_STATUS(gran_dataset_load_images(imgdir, 0, 28, 1, &d), GRAN_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(gran_dataset_load_images(imgdir, 28, 28, 2, &d), GRAN_STATUS_INVALID_ARGUMENT);
        path_join(p, sizeof p, imgdir, "c.png");
        write_file(p, "\x89PNG\r\n\x1a\n but then nothing", 25);
        CHECK_STATUS(gran_dataset_load_images(imgdir, 28, 28, 1, &d), GRAN_STATUS_FORMAT);
        CHECK_ERROR_HAS("c.png");
        CHECK(d == SENTINEL_HANDLE);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* DEVICE                                                                                    */

static void test_device(void) {
    int32_t n = gran_cuda_device_count();
    GranModelConfig c = tiny_config(28, 1, 0), out;
    GranDevice dev;
    GranModel m = SENTINEL_HANDLE;
    char path[600];
    CHECK(n >= 0);
    /* The index past the last device (CUDA 0 on a machine without CUDA): DEVICE, no fallback. */
    c.device.kind = GRAN_DEVICE_CUDA;
    c.device.index = n;
    CHECK_STATUS(gran_model_create(&c, &m), GRAN_STATUS_DEVICE);
    CHECK(m == SENTINEL_HANDLE);
    c.device.index = n + 5;
    CHECK_STATUS(gran_model_create(&c, &m), GRAN_STATUS_DEVICE);
    tmp_path(path, sizeof path, "device.gran");
    CHECK_OK(gran_model_save(g_model, path));
    dev.kind = GRAN_DEVICE_CUDA;
    dev.index = n;
    CHECK_STATUS(gran_model_load(path, &dev, &m), GRAN_STATUS_DEVICE);
    CHECK(m == SENTINEL_HANDLE);
    dev.kind = 9;
    dev.index = 0;
    CHECK_STATUS(gran_model_load(path, &dev, &m), GRAN_STATUS_INVALID_ARGUMENT);
    /* CPU works anywhere; AUTO picks CUDA 0 when there is one, else the CPU; never reported as AUTO. */
    dev.kind = GRAN_DEVICE_CPU;
    CHECK_OK(gran_model_load(path, &dev, &m));
    CHECK_OK(gran_model_free(m));
    c.device.kind = GRAN_DEVICE_AUTO;
    c.device.index = 0;
    CHECK_OK(gran_model_create(&c, &m));
    gran_model_config_init(&out);
    CHECK_OK(gran_model_config(m, &out));
    CHECK(out.device.kind == (n > 0 ? (GranDeviceKind)GRAN_DEVICE_CUDA : (GranDeviceKind)GRAN_DEVICE_CPU));
    /* A model on CUDA turned cuDNN's deterministic mode on (this process never chose one). */
    if (n > 0) CHECK(gran_deterministic() == 1);
    CHECK_OK(gran_model_free(m));
    /* The program's choice is libtorch's process-wide flag, read back as set. */
    gran_set_deterministic(0);
    CHECK(gran_deterministic() == 0);
    gran_set_deterministic(1);
    CHECK(gran_deterministic() == 1);
}

/* ---------------------------------------------------------------------------------------- */
/* DIVERGED, CANCELLED and BUSY from one thread                                              */

static void test_diverged(void) {
    GranModel m = tiny_model(11);
    GranTrainConfig t = tiny_train(50);
    GranProgress last;
    uint64_t step;
    float img[4 * 784], before[4], after[4];
    unsigned char px[4 * 784];
    size_t i;
    fixtures();
    CHECK_OK(gran_sample(m, 1, 4, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px));
    CHECK_OK(gran_discriminate(m, px, 4, GRAN_PIXEL_FORMAT_U8_HWC, before));
    t.lr_g = 1e30;
    t.lr_d = 1e30;
    memset(&last, 0xEE, sizeof last);
    last.struct_size = sizeof last;
    CHECK_STATUS(gran_train(m, g_data, &t, &last), GRAN_STATUS_DIVERGED);
    CHECK_ERROR_HAS("diverged");
    /* The final report is written also when the run diverges. */
    CHECK_OK(gran_model_step(m, &step));
    CHECK(step < 50);
    CHECK(last.step == step);
    /* The model keeps the weights of the last finite step: both networks still give finite
     * values, and when it diverged in its first step they are the initial weights. */
    CHECK_OK(gran_sample(m, 1, 4, GRAN_PIXEL_FORMAT_F32_CHW, img, sizeof img));
    CHECK(floats_in_unit_range(img, 4 * 784));
    CHECK_OK(gran_discriminate(m, px, 4, GRAN_PIXEL_FORMAT_U8_HWC, after));
    for (i = 0; i < 4; i++) {
        CHECK_MSG(after[i] >= 0.0f && after[i] <= 1.0f, "D(x) after DIVERGED is %g", (double)after[i]);
        if (step == 0) CHECK(after[i] == before[i]);
    }
    /* Training on with sane settings works. */
    t = tiny_train(2);
    CHECK_OK(gran_train(m, g_data, &t, NULL));
    CHECK_OK(gran_model_free(m));
}

typedef struct {
    GranModel model;
    uint64_t stop_at;       /* return non-zero at this step (0: never) */
    uint64_t cancel_at;     /* call gran_cancel at this step (0: never) */
    int calls;
    GranStatus nested;      /* status of a gran_train called from inside the callback */
    GranDataset data;
} CallbackState;

static int stopping_callback(const GranProgress *p, void *user) {
    CallbackState *s = (CallbackState *)user;
    CHECK(p != NULL && p->struct_size >= sizeof(GranProgress));
    s->calls++;
    if (s->data != 0 && s->calls == 1) {
        /* A second run on the same model while this one is in progress. */
        GranTrainConfig t = tiny_train(1);
        GranProgress last;
        memset(&last, 0xEE, sizeof last);
        last.struct_size = sizeof last;
        s->nested = gran_train(s->model, s->data, &t, &last);
        CHECK(all_bytes((char *)&last + 4, 0xEE, sizeof last - 4));
    }
    if (s->cancel_at != 0 && p->step == s->cancel_at) CHECK_OK(gran_cancel(s->model));
    return s->stop_at != 0 && p->step >= s->stop_at;
}

static void test_cancel_and_busy(void) {
    GranModel m = tiny_model(12);
    GranTrainConfig t;
    GranProgress last;
    CallbackState s;
    uint64_t step;
    fixtures();
    /* The callback returns non-zero at step 2 of 100. */
    memset(&s, 0, sizeof s);
    s.model = m;
    s.stop_at = 2;
    t = tiny_train(100);
    t.on_progress = stopping_callback;
    t.user_data = &s;
    last.struct_size = sizeof last;
    CHECK_STATUS(gran_train(m, g_data, &t, &last), GRAN_STATUS_CANCELLED);
    CHECK_ERROR_HAS("callback");
    CHECK(s.calls == 2 && last.step == 2 && last.total_steps == 100);
    CHECK_OK(gran_model_step(m, &step));
    CHECK(step == 2);
    /* gran_cancel from inside the callback, at step 4: no further step. */
    memset(&s, 0, sizeof s);
    s.model = m;
    s.cancel_at = 4;
    CHECK_STATUS(gran_train(m, g_data, &t, &last), GRAN_STATUS_CANCELLED);
    CHECK_OK(gran_model_step(m, &step));
    CHECK(step == 4 && last.step == 4 && s.calls == 2);
    /* BUSY: gran_train on the same model from inside its own callback. */
    memset(&s, 0, sizeof s);
    s.model = m;
    s.data = g_data;
    s.nested = -1;
    t = tiny_train(2);
    t.on_progress = stopping_callback;
    t.user_data = &s;
    CHECK_OK(gran_train(m, g_data, &t, NULL));
    CHECK(s.nested == GRAN_STATUS_BUSY);
    CHECK_OK(gran_model_step(m, &step));
    CHECK(step == 6);
    /* gran_cancel on a model that is not training: OK, and the next run is not affected. */
    CHECK_OK(gran_cancel(m));
    CHECK_OK(gran_cancel(m));
    t = tiny_train(2);
    CHECK_OK(gran_train(m, g_data, &t, NULL));
    CHECK_OK(gran_model_step(m, &step));
    CHECK(step == 8);
    CHECK_OK(gran_model_free(m));
}

/* ---------------------------------------------------------------------------------------- */
/* A progress callback that re-enters the library                                            */

typedef struct {
    GranModel model;
    const char *path;
    int calls;
} ReentrantState;

static int reentrant_callback(const GranProgress *p, void *user) {
    ReentrantState *s = (ReentrantState *)user;
    unsigned char px[2 * 784];
    GranModelConfig c;
    GranModel loaded = 0;
    uint64_t step = 0;
    s->calls++;
    CHECK_OK(gran_sample(s->model, (uint64_t)s->calls, 2, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px));
    CHECK_OK(gran_model_save(s->model, s->path));
    CHECK_OK(gran_model_step(s->model, &step));
    CHECK(step == p->step);
    gran_model_config_init(&c);
    CHECK_OK(gran_model_config(s->model, &c));
    CHECK_OK(gran_model_load(s->path, NULL, &loaded));
    CHECK_OK(gran_model_step(loaded, &step));
    CHECK(step == p->step);
    CHECK_OK(gran_model_free(loaded));
    return 0;
}

static void test_reentrant_callback(void) {
    GranModel m = tiny_model(13);
    GranTrainConfig t = tiny_train(3);
    ReentrantState s;
    char path[600];
    fixtures();
    tmp_path(path, sizeof path, "reentrant.gran");
    s.model = m;
    s.path = path;
    s.calls = 0;
    t.on_progress = reentrant_callback;
    t.user_data = &s;
    CHECK_OK(gran_train(m, g_data, &t, NULL)); /* the watchdog catches a deadlock */
    CHECK(s.calls == 3);
    CHECK_OK(gran_model_free(m));
}

/* ---------------------------------------------------------------------------------------- */
/* The log callback                                                                          */

typedef struct {
    int warnings;
    int d_wins;
    int others;
} LogState;

static void log_callback(GranLogLevel level, const char *message, void *user) {
    LogState *s = (LogState *)user;
    CHECK(message != NULL);
    CHECK(level <= GRAN_LOG_ERROR);
    if (level == GRAN_LOG_WARN) s->warnings++;
    if (strstr(message, "discriminator wins outright") != NULL) s->d_wins++;
    else s->others++;
    /* It may call gran functions. */
    CHECK(gran_abi_version() == GRAN_ABI_VERSION);
}

static void test_log_callback(void) {
    GranModel m = tiny_model(14);
    /* The warning judges the mean D loss over a run's last 50 steps: a run of 60. */
    GranTrainConfig t = tiny_train(60);
    LogState s;
    fixtures();
    memset(&s, 0, sizeof s);
    gran_set_log_callback(log_callback, &s, GRAN_LOG_WARN);
    /* A strong discriminator and a generator that hardly learns, without augmentation (with
     * adaptive augmentation the warning waits until p reaches 1). */
    t.lr_d = 1e-2;
    t.lr_g = 1e-7;
    t.augment = GRAN_AUGMENT_OFF;
    t.report_every = 10;
    CHECK_OK(gran_train(m, g_data, &t, NULL));
    gran_set_log_callback(NULL, NULL, GRAN_LOG_DEBUG);
    CHECK_MSG(s.d_wins == 1, "got %d 'discriminator wins outright' warnings (want 1 per run)", s.d_wins);
    CHECK(s.warnings >= 1);
    /* Removed: no more calls. */
    memset(&s, 0, sizeof s);
    t.iterations = 10;
    CHECK_OK(gran_train(m, g_data, &t, NULL));
    CHECK(s.d_wins == 0 && s.warnings == 0 && s.others == 0);
    /* ERROR as the minimum level filters the warning out. */
    gran_set_log_callback(log_callback, &s, GRAN_LOG_ERROR);
    CHECK_OK(gran_train(m, g_data, &t, NULL));
    gran_set_log_callback(NULL, NULL, GRAN_LOG_DEBUG);
    CHECK(s.warnings == 0);
    CHECK_OK(gran_model_free(m));
}

/* ---------------------------------------------------------------------------------------- */
/* Sampling: determinism, formats, steps, latents                                            */

static void test_sample_determinism(void) {
    unsigned char a[10 * 784], b[10 * 784], hwc[10 * 784], steps[2 * 10 * 784];
    float f[10 * 784], z[10 * 16], z3[3 * 16];
    size_t i;
    GranModel m = tiny_model(21);
    GranTrainConfig t = tiny_train(3);
    fixtures();
    CHECK_OK(gran_train(m, g_data, &t, NULL)); /* running batch-norm statistics that are not the initial ones */
    CHECK_OK(gran_sample(m, 42, 3, GRAN_PIXEL_FORMAT_U8_CHW, a, 3 * 784));
    CHECK_OK(gran_sample(m, 42, 10, GRAN_PIXEL_FORMAT_U8_CHW, b, sizeof b));
    CHECK(same_across_batches(a, b, 3 * 784)); /* image i is the same for count 3 and count 10 */
    CHECK_OK(gran_sample(m, 42, 10, GRAN_PIXEL_FORMAT_U8_CHW, a, sizeof a));
    CHECK(memcmp(a, b, sizeof a) == 0); /* and the same call twice gives the same bytes */
    CHECK_OK(gran_sample(m, 43, 10, GRAN_PIXEL_FORMAT_U8_CHW, a, sizeof a));
    CHECK(memcmp(a, b, sizeof a) != 0); /* another seed, other images */
    for (i = 1; i < 10; i++) CHECK(memcmp(b, b + i * 784, 784) != 0); /* images differ */
    /* One channel: HWC and CHW are the same bytes. */
    CHECK_OK(gran_sample(m, 42, 10, GRAN_PIXEL_FORMAT_U8_HWC, hwc, sizeof hwc));
    CHECK(memcmp(hwc, b, sizeof b) == 0);
    /* Floats in [0, 1] that round to the bytes. */
    CHECK_OK(gran_sample(m, 42, 10, GRAN_PIXEL_FORMAT_F32_CHW, f, sizeof f));
    CHECK(floats_in_unit_range(f, 10 * 784));
    for (i = 0; i < 10 * 784; i++) CHECK(fabs((double)f[i] * 255.0 - (double)b[i]) <= 1.0);
    /* gran_generate on gran_latents equals gran_sample. */
    CHECK_OK(gran_latents(m, 42, 10, z, 10 * 16));
    CHECK_OK(gran_latents(m, 42, 3, z3, 3 * 16));
    CHECK(memcmp(z, z3, sizeof z3) == 0);
    CHECK_OK(gran_generate(m, z, 10, GRAN_PIXEL_FORMAT_U8_CHW, a, sizeof a));
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK_OK(gran_generate(m, z + 5 * 16, 1, GRAN_PIXEL_FORMAT_U8_CHW, a, 784));
    CHECK(same_across_batches(a, b + 5 * 784, 784));
    /* gran_sample_steps: [T][count][image], the last block equals gran_sample. */
    CHECK_OK(gran_sample_steps(m, 42, 10, GRAN_PIXEL_FORMAT_U8_CHW, steps, sizeof steps));
    CHECK(same_across_batches(steps + 10 * 784, b, sizeof b));
    CHECK(memcmp(steps, b, sizeof b) != 0);
    CHECK_OK(gran_model_free(m));
}

/* A class-conditional model: trained on labelled pixels, sampled by class. Image i of class k
 * for a seed does not depend on the other images' classes; a bad class is refused with the
 * output untouched; the plain calls draw classes from the seed (gran_sample) or refuse
 * (gran_generate); an unconditional model refuses classes. */
static void test_conditional(void) {
    enum { N = 48 };
    unsigned char *px = synthetic_pixels(N), labels[N], a[6 * 784], b[6 * 784], keep[6 * 784];
    uint32_t mixed[6] = {2, 0, 3, 1, 2, 2}, others[6] = {2, 3, 0, 0, 2, 1}, bad[6] = {0, 1, 2, 3, 4, 0};
    uint32_t two = 2, drawn_as[6];
    float z[6 * 16], p2[6], p3[6];
    size_t i;
    GranDataset d = 0, plain = 0;
    GranModel m = 0;
    GranModelConfig c = tiny_config(28, 1, 31), got;
    GranTrainConfig t = tiny_train(2);
    for (i = 0; i < N; i++) labels[i] = (unsigned char)(i % 4);
    CHECK_STATUS(gran_dataset_from_labelled_pixels(px, NULL, N, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, &d),
                 GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_OK(gran_dataset_from_labelled_pixels(px, labels, N, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, &d));
    CHECK_OK(gran_dataset_from_pixels(px, N, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, &plain));
    c.classes = 1;
    expect_create_invalid(c, "classes");
    c.classes = 4;
    CHECK_OK(gran_model_create(&c, &m));
    gran_model_config_init(&got);
    CHECK_OK(gran_model_config(m, &got));
    CHECK(got.classes == 4);
    /* Unlabelled data is refused before any step. */
    CHECK_STATUS(gran_train(m, plain, &t, NULL), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("no labels");
    CHECK_OK(gran_train(m, d, &t, NULL));
    CHECK_OK(gran_sample_class(m, 5, 6, mixed, 6, GRAN_PIXEL_FORMAT_U8_CHW, a, sizeof a));
    CHECK_OK(gran_sample_class(m, 5, 6, others, 6, GRAN_PIXEL_FORMAT_U8_CHW, b, sizeof b));
    CHECK(memcmp(a, b, 784) == 0 && memcmp(a + 4 * 784, b + 4 * 784, 784) == 0); /* images 0 and 4: class 2 */
    CHECK(memcmp(a + 784, b + 784, 784) != 0);                                 /* image 1: class 0 against 3 */
    CHECK_OK(gran_sample_class(m, 5, 6, &two, 1, GRAN_PIXEL_FORMAT_U8_CHW, b, sizeof b));
    CHECK(memcmp(a, b, 784) == 0);                                             /* one class for all */
    /* Bad classes: INVALID_ARGUMENT, the output untouched. */
    memset(keep, 0xA5, sizeof keep);
    memcpy(b, keep, sizeof b);
    CHECK_STATUS(gran_sample_class(m, 5, 6, bad, 6, GRAN_PIXEL_FORMAT_U8_CHW, b, sizeof b), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("class 4 of image 4");
    CHECK_STATUS(gran_sample_class(m, 5, 6, mixed, 3, GRAN_PIXEL_FORMAT_U8_CHW, b, sizeof b), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("classes_len");
    CHECK_STATUS(gran_sample_class(m, 5, 6, NULL, 1, GRAN_PIXEL_FORMAT_U8_CHW, b, sizeof b), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK(memcmp(b, keep, sizeof b) == 0);
    /* Caller latents need classes; with them, the seed's images. */
    CHECK_OK(gran_latents(m, 5, 6, z, 6 * 16));
    CHECK_STATUS(gran_generate(m, z, 6, GRAN_PIXEL_FORMAT_U8_CHW, b, sizeof b), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("class-conditional");
    CHECK_OK(gran_generate_class(m, z, 6, mixed, 6, GRAN_PIXEL_FORMAT_U8_CHW, b, sizeof b));
    CHECK(memcmp(a, b, sizeof a) == 0);
    /* gran_sample draws each image's class: one of the 4, each giving gran_sample's image. */
    CHECK_OK(gran_sample(m, 5, 6, GRAN_PIXEL_FORMAT_U8_CHW, a, sizeof a));
    for (i = 0; i < 6; i++) {
        uint32_t k, found = 0;
        for (k = 0; k < 4; k++) {
            CHECK_OK(gran_sample_class(m, 5, (uint32_t)i + 1, &k, 1, GRAN_PIXEL_FORMAT_U8_CHW, b, sizeof b));
            if (memcmp(a + i * 784, b + i * 784, 784) == 0) { found++; drawn_as[i] = k; }
        }
        CHECK(found >= 1 && drawn_as[i] < 4);
    }
    /* D(x, y): the class changes the score. */
    CHECK_OK(gran_discriminate_class(m, a, 6, &two, 1, GRAN_PIXEL_FORMAT_U8_CHW, p2));
    two = 3;
    CHECK_OK(gran_discriminate_class(m, a, 6, &two, 1, GRAN_PIXEL_FORMAT_U8_CHW, p3));
    CHECK(memcmp(p2, p3, sizeof p2) != 0);
    CHECK_OK(gran_model_free(m));
    /* An unconditional model takes no class. */
    m = tiny_model(32);
    CHECK_STATUS(gran_sample_class(m, 5, 6, mixed, 6, GRAN_PIXEL_FORMAT_U8_CHW, b, sizeof b), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("unconditional");
    CHECK_OK(gran_model_free(m));
    CHECK_OK(gran_dataset_free(d));
    CHECK_OK(gran_dataset_free(plain));
    free(px);
}

/* bfloat16: training and sampling run, stay close to float32, and leave float32 as it was. */
static void test_precision(void) {
    enum { N = 16 };
    static float f32a[N * 784], bf[N * 784], f32b[N * 784];
    float pa[N], pb[N];
    double most = 0.0, sum = 0.0;
    size_t i;
    GranPrecision p = 99;
    GranModel m = tiny_model(23), m2 = tiny_model(23);
    GranTrainConfig t = tiny_train(4);
    GranProgress last;
    uint64_t step = 0;
    fixtures();
    /* The sampling precision: FP32 at creation; set, read back, refused when unknown. */
    CHECK_OK(gran_model_precision(m, &p));
    CHECK(p == GRAN_PRECISION_FP32);
    CHECK_STATUS(gran_model_set_precision(m, 7), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("precision");
    CHECK_OK(gran_model_precision(m, &p));
    CHECK(p == GRAN_PRECISION_FP32);
    CHECK_STATUS(gran_model_set_precision(SENTINEL_HANDLE, GRAN_PRECISION_BF16), GRAN_STATUS_INVALID_HANDLE);
    CHECK_STATUS(gran_model_precision(m, NULL), GRAN_STATUS_INVALID_ARGUMENT);
    /* A bfloat16 training run: it trains, reports finite losses, and its weights stay float32
     * (a float32 run of the same model and seed gives other, nearby samples). */
    t.precision = GRAN_PRECISION_BF16;
    memset(&last, 0, sizeof last);
    last.struct_size = sizeof last;
    CHECK_OK(gran_train(m, g_data, &t, &last));
    CHECK_OK(gran_model_step(m, &step));
    CHECK(step == 4 && last.step == 4);
    CHECK(isfinite(last.d_loss) && isfinite(last.g_loss) && last.d_real > 0.0 && last.d_real < 1.0);
    t.precision = GRAN_PRECISION_FP32;
    CHECK_OK(gran_train(m2, g_data, &t, NULL));
    CHECK_OK(gran_sample(m, 5, N, GRAN_PIXEL_FORMAT_F32_CHW, f32a, sizeof f32a));
    CHECK_OK(gran_sample(m2, 5, N, GRAN_PIXEL_FORMAT_F32_CHW, f32b, sizeof f32b));
    CHECK(memcmp(f32a, f32b, sizeof f32a) != 0);
    for (i = 0; i < N * 784; i++) most = fmax(most, fabs((double)f32a[i] - (double)f32b[i]));
    CHECK(most < 0.05);
    /* Sampling in bfloat16: floats in [0, 1], near the float32 images but not the same bits;
     * back in float32 the bytes are those of before. */
    CHECK_OK(gran_model_set_precision(m, GRAN_PRECISION_BF16));
    CHECK_OK(gran_model_precision(m, &p));
    CHECK(p == GRAN_PRECISION_BF16);
    CHECK_OK(gran_sample(m, 5, N, GRAN_PIXEL_FORMAT_F32_CHW, bf, sizeof bf));
    CHECK(floats_in_unit_range(bf, N * 784));
    CHECK(memcmp(bf, f32a, sizeof bf) != 0);
    most = 0.0;
    for (i = 0; i < N * 784; i++) {
        double d = fabs((double)bf[i] - (double)f32a[i]);
        most = fmax(most, d);
        sum += d;
    }
    CHECK(most < 0.05 && sum / (N * 784) < 0.005);
    CHECK_OK(gran_discriminate(m, f32a, N, GRAN_PIXEL_FORMAT_F32_CHW, pb));
    CHECK_OK(gran_model_set_precision(m, GRAN_PRECISION_FP32));
    CHECK_OK(gran_discriminate(m, f32a, N, GRAN_PIXEL_FORMAT_F32_CHW, pa));
    for (i = 0; i < N; i++) CHECK(fabs((double)pa[i] - (double)pb[i]) < 0.05);
    CHECK_OK(gran_sample(m, 5, N, GRAN_PIXEL_FORMAT_F32_CHW, f32b, sizeof f32b));
    CHECK(memcmp(f32a, f32b, sizeof f32a) == 0);
    /* A GranTrainConfig from before `precision` existed: the bytes past its end are not read. */
    t = tiny_train(1);
    t.precision = 77;
    t.struct_size = (uint32_t)offsetof(GranTrainConfig, precision);
    CHECK_OK(gran_train(m2, g_data, &t, NULL));
    CHECK_OK(gran_model_free(m));
    CHECK_OK(gran_model_free(m2));
}

static void test_rgb_formats(void) {
    GranModelConfig c = tiny_config(32, 3, 5);
    GranModel m = 0;
    const size_t px = 32 * 32 * 3;
    unsigned char *hwc = (unsigned char *)malloc(2 * px), *chw = (unsigned char *)malloc(2 * px);
    float *probs = (float *)malloc(2 * sizeof(float));
    size_t i, y, x, ch;
    char path[600];
    CHECK(hwc && chw && probs);
    CHECK_OK(gran_model_create(&c, &m));
    CHECK_OK(gran_sample(m, 9, 2, GRAN_PIXEL_FORMAT_U8_HWC, hwc, 2 * px));
    CHECK_OK(gran_sample(m, 9, 2, GRAN_PIXEL_FORMAT_U8_CHW, chw, 2 * px));
    for (i = 0; i < 2; i++)
        for (y = 0; y < 32; y++)
            for (x = 0; x < 32; x++)
                for (ch = 0; ch < 3; ch++)
                    CHECK(hwc[i * px + (y * 32 + x) * 3 + ch] == chw[i * px + ch * 1024 + y * 32 + x]);
    /* The discriminator reads both layouts alike. */
    {
        float p2[2];
        CHECK_OK(gran_discriminate(m, hwc, 2, GRAN_PIXEL_FORMAT_U8_HWC, probs));
        CHECK_OK(gran_discriminate(m, chw, 2, GRAN_PIXEL_FORMAT_U8_CHW, p2));
        CHECK(probs[0] >= 0.0f && probs[0] <= 1.0f && probs[1] >= 0.0f && probs[1] <= 1.0f);
        CHECK(fabsf(probs[0] - p2[0]) < 1e-5f && fabsf(probs[1] - p2[1]) < 1e-5f);
    }
    tmp_path(path, sizeof path, "rgb.png");
    CHECK_OK(gran_write_png(path, hwc, 2, 32, 32, 3, GRAN_PIXEL_FORMAT_U8_HWC, 2));
    CHECK(file_exists(path));
    CHECK_OK(gran_model_free(m));
    free(hwc);
    free(chw);
    free(probs);
}

static void test_discriminate(void) {
    unsigned char px[8 * 784];
    float p[8], p2[8];
    size_t i;
    fixtures();
    CHECK_OK(gran_sample(g_model, 3, 8, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px));
    CHECK_OK(gran_discriminate(g_model, px, 8, GRAN_PIXEL_FORMAT_U8_HWC, p));
    for (i = 0; i < 8; i++) CHECK(p[i] >= 0.0f && p[i] <= 1.0f);
    /* Per image: scoring 1 image gives the same value as within a batch of 8. */
    CHECK_OK(gran_discriminate(g_model, px + 3 * 784, 1, GRAN_PIXEL_FORMAT_U8_HWC, p2));
    CHECK(fabsf(p2[0] - p[3]) < 1e-5f);
}

/* ---------------------------------------------------------------------------------------- */
/* Checkpoints and PNG                                                                       */

static void test_save_load_roundtrip(void) {
    GranModel m = tiny_model(31), l = 0;
    GranTrainConfig t = tiny_train(3);
    GranModelConfig cm, cl;
    unsigned char a[6 * 784], b[6 * 784];
    uint64_t sm, sl;
    char dir[600], path[600];
    fixtures();
    path_join(dir, sizeof dir, g_tmp, "roundtrip");
    CHECK(mkdir(dir, 0700) == 0);
    path_join(path, sizeof path, dir, "model.gran");
    CHECK_OK(gran_train(m, g_data, &t, NULL));
    CHECK_OK(gran_model_save(m, path));
    CHECK(count_entries(dir) == 1); /* atomic write: no temporary file left behind */
    CHECK_OK(gran_model_save(m, path)); /* overwriting */
    CHECK(count_entries(dir) == 1);
    CHECK_OK(gran_model_load(path, NULL, &l));
    CHECK(l != 0 && l != m);
    CHECK_OK(gran_sample(m, 77, 6, GRAN_PIXEL_FORMAT_U8_HWC, a, sizeof a));
    CHECK_OK(gran_sample(l, 77, 6, GRAN_PIXEL_FORMAT_U8_HWC, b, sizeof b));
    CHECK(memcmp(a, b, sizeof a) == 0);
    gran_model_config_init(&cm);
    gran_model_config_init(&cl);
    CHECK_OK(gran_model_config(m, &cm));
    CHECK_OK(gran_model_config(l, &cl));
    CHECK(memcmp(&cm, &cl, sizeof cm) == 0);
    CHECK_OK(gran_model_step(m, &sm));
    CHECK_OK(gran_model_step(l, &sl));
    CHECK(sm == 3 && sl == 3);
    /* Training on from the checkpoint gives the same weights as never stopping. */
    CHECK_OK(gran_train(m, g_data, &t, NULL));
    CHECK_OK(gran_train(l, g_data, &t, NULL));
    CHECK_OK(gran_sample(m, 78, 6, GRAN_PIXEL_FORMAT_U8_HWC, a, sizeof a));
    CHECK_OK(gran_sample(l, 78, 6, GRAN_PIXEL_FORMAT_U8_HWC, b, sizeof b));
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK_OK(gran_model_free(l));
    /* The checkpoint written by gran_train itself. */
    t = tiny_train(2);
    path_join(path, sizeof path, dir, "during.gran");
    t.checkpoint_path = path;
    t.checkpoint_every = 1;
    CHECK_OK(gran_train(m, g_data, &t, NULL));
    CHECK_OK(gran_model_load(path, NULL, &l));
    CHECK_OK(gran_model_step(l, &sl));
    CHECK(sl == 8);
    CHECK_OK(gran_sample(m, 79, 6, GRAN_PIXEL_FORMAT_U8_HWC, a, sizeof a));
    CHECK_OK(gran_sample(l, 79, 6, GRAN_PIXEL_FORMAT_U8_HWC, b, sizeof b));
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(count_entries(dir) == 2);
    CHECK_OK(gran_model_free(l));
    CHECK_OK(gran_model_free(m));
}

static void test_write_png(void) {
    static const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char px[6 * 784];
    float f[6 * 784];
    unsigned char *file;
    size_t len;
    char dir[600], path[600];
    fixtures();
    path_join(dir, sizeof dir, g_tmp, "png");
    CHECK(mkdir(dir, 0700) == 0);
    path_join(path, sizeof path, dir, "grid.png");
    CHECK_OK(gran_sample(g_model, 1, 6, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px));
    CHECK_OK(gran_write_png(path, px, 6, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, 3));
    file = read_file(path, &len);
    CHECK(len > 8 + 25 && memcmp(file, signature, 8) == 0);
    CHECK(memcmp(file + 12, "IHDR", 4) == 0);
    free(file);
    CHECK(count_entries(dir) == 1); /* atomic write: no temporary file left behind */
    /* Floats, and more columns than images. */
    CHECK_OK(gran_sample(g_model, 1, 6, GRAN_PIXEL_FORMAT_F32_CHW, f, sizeof f));
    CHECK_OK(gran_write_png(path, f, 6, 28, 28, 1, GRAN_PIXEL_FORMAT_F32_CHW, 10));
    file = read_file(path, &len);
    CHECK(len > 8 && memcmp(file, signature, 8) == 0);
    free(file);
    /* Floats out of range are refused. */
    f[10] = 3.0f;
    CHECK_STATUS(gran_write_png(path, f, 6, 28, 28, 1, GRAN_PIXEL_FORMAT_F32_CHW, 3), GRAN_STATUS_INVALID_ARGUMENT);
}

/* The drawing as a GIF: the T = 2 canvases of 3 images from gran_sample_steps as 2 frames of a
 * 3-column grid (3 x 28 + 2 x 2 = 88 by 28 pixels in the logical screen descriptor). */
static void test_write_gif(void) {
    unsigned char px[2 * 3 * 784];
    unsigned char *file;
    size_t len;
    char dir[600], path[600];
    fixtures();
    path_join(dir, sizeof dir, g_tmp, "gif");
    CHECK(mkdir(dir, 0700) == 0);
    path_join(path, sizeof path, dir, "drawing.gif");
    CHECK_OK(gran_sample_steps(g_model, 1, 3, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px));
    CHECK_OK(gran_write_gif(path, px, 2, 3, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, 3, 300, 1500));
    file = read_file(path, &len);
    CHECK(len > 13 && memcmp(file, "GIF89a", 6) == 0);
    CHECK(file[6] == 88 && file[7] == 0 && file[8] == 28 && file[9] == 0);
    free(file);
    CHECK(count_entries(dir) == 1);
    /* Refused before anything is written: no frames, a delay of 0 or past GIF's range, no
     * columns, a NULL path or pixels. */
    path_join(path, sizeof path, dir, "refused.gif");
    CHECK_STATUS(gran_write_gif(path, px, 0, 3, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, 3, 300, 1500),
                 GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_write_gif(path, px, 2, 3, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, 3, 0, 1500),
                 GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_write_gif(path, px, 2, 3, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, 3, 300, 700000),
                 GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_write_gif(path, px, 2, 3, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, 0, 300, 1500),
                 GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_write_gif(NULL, px, 2, 3, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, 3, 300, 1500),
                 GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_write_gif(path, NULL, 2, 3, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, 3, 300, 1500),
                 GRAN_STATUS_INVALID_ARGUMENT);
    CHECK(!file_exists(path) && count_entries(dir) == 1);
}

/* ---------------------------------------------------------------------------------------- */
/* Real data                                                                                 */

static void test_mnist(void) {
    char imgs[600], labs[600];
    GranDataset d = 0;
    GranDatasetInfo info;
    GranModel m = tiny_model(41);
    GranTrainConfig t = tiny_train(2);
    path_join(imgs, sizeof imgs, data_dir(), "train-images-idx3-ubyte.gz");
    path_join(labs, sizeof labs, data_dir(), "train-labels-idx1-ubyte.gz");
    CHECK_OK(gran_dataset_load_idx(imgs, labs, &d));
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    CHECK_OK(gran_dataset_info(d, &info));
    CHECK(info.count == 9000 && info.height == 28 && info.width == 28 && info.channels == 1);
    CHECK(info.has_labels == 1 && info.struct_size == sizeof info);
    /* It trains a model. */
    CHECK_OK(gran_train(m, d, &t, NULL));
    CHECK_OK(gran_dataset_free(d));
    /* Without labels, and the held-out part. */
    CHECK_OK(gran_dataset_load_idx(imgs, NULL, &d));
    CHECK_OK(gran_dataset_info(d, &info));
    CHECK(info.count == 9000 && info.has_labels == 0);
    CHECK_OK(gran_dataset_free(d));
    path_join(imgs, sizeof imgs, data_dir(), "t10k-images-idx3-ubyte.gz");
    path_join(labs, sizeof labs, data_dir(), "t10k-labels-idx1-ubyte.gz");
    CHECK_OK(gran_dataset_load_idx(imgs, labs, &d));
    CHECK_OK(gran_dataset_info(d, &info));
    CHECK(info.count == 1000 && info.has_labels == 1);
    CHECK_OK(gran_dataset_free(d));
    CHECK_OK(gran_model_free(m));
}

static void test_dataset_formats(void) {
    /* The same two images in the three formats give datasets that train alike. */
    unsigned char hwc[2 * 784];
    float f[2 * 784];
    GranDataset d1 = 0, d2 = 0, d3 = 0;
    GranDatasetInfo info;
    size_t i;
    for (i = 0; i < sizeof hwc; i++) {
        hwc[i] = (unsigned char)(i % 251);
        f[i] = (float)hwc[i] / 255.0f;
    }
    CHECK_OK(gran_dataset_from_pixels(hwc, 2, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, &d1));
    CHECK_OK(gran_dataset_from_pixels(hwc, 2, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_CHW, &d2));
    CHECK_OK(gran_dataset_from_pixels(f, 2, 28, 28, 1, GRAN_PIXEL_FORMAT_F32_CHW, &d3));
    CHECK(d1 != d2 && d2 != d3 && d1 != d3);
    memset(hwc, 0, sizeof hwc); /* copied: the buffer may be reused at once */
    info.struct_size = sizeof info;
    CHECK_OK(gran_dataset_info(d3, &info));
    CHECK(info.count == 2 && info.channels == 1 && info.has_labels == 0);
    CHECK_OK(gran_dataset_free(d1));
    CHECK_OK(gran_dataset_free(d2));
    CHECK_OK(gran_dataset_free(d3));
    CHECK_STATUS(gran_dataset_free(d3), GRAN_STATUS_INVALID_HANDLE);
}

/* A .npy file as np.save writes it: 3 grey 2x2 images (N, H, W) and 3 int64 labels beside it;
 * a float array and a header that claims more data than the file holds are FORMAT. Image files
 * with an unknown label source or fit are INVALID_ARGUMENT. */
static void test_npy_and_image_files(void) {
    static const char images_head[] = "{'descr': '|u1', 'fortran_order': False, 'shape': (3, 2, 2), }";
    static const char labels_head[] = "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }";
    char dir[600], path[600], labels[600];
    unsigned char file[256];
    const size_t head = 118; /* 10 + 118 = 128: numpy pads to a multiple of 64 */
    size_t n, i;
    int64_t label;
    GranDataset d = 0;
    GranDatasetInfo info;
    fixtures();
    path_join(dir, sizeof dir, g_tmp, "npy");
    CHECK(mkdir(dir, 0700) == 0);
    path_join(path, sizeof path, dir, "set.npy");
    path_join(labels, sizeof labels, dir, "set.labels.npy");
    /* magic, version 1.0, header length (little-endian), the dict padded with spaces to a
     * newline. */
    memcpy(file, "\x93NUMPY\x01\x00", 8);
    file[8] = (unsigned char)head;
    file[9] = 0;
    n = 10;
    memset(file + n, ' ', head);
    memcpy(file + n, images_head, strlen(images_head));
    file[n + head - 1] = '\n';
    n += head;
    for (i = 0; i < 12; i++) file[n + i] = (unsigned char)(i * 20);
    write_file(path, file, n + 12);
    CHECK_OK(gran_dataset_load_npy(path, &d));
    info.struct_size = sizeof info;
    CHECK_OK(gran_dataset_info(d, &info));
    CHECK(info.count == 3 && info.height == 2 && info.width == 2 && info.channels == 1 && info.has_labels == 0);
    CHECK_OK(gran_dataset_free(d));
    memset(file + 10, ' ', head - 1);
    memcpy(file + 10, labels_head, strlen(labels_head));
    for (i = 0; i < 3; i++) {
        label = (int64_t)(i + 4);
        memcpy(file + 128 + 8 * i, &label, 8); /* little-endian on the machines gran supports */
    }
    write_file(labels, file, 128 + 24);
    CHECK_OK(gran_dataset_load_npy(path, &d));
    CHECK_OK(gran_dataset_info(d, &info));
    CHECK(info.count == 3 && info.has_labels == 1);
    CHECK_OK(gran_dataset_free(d));
    CHECK_OK(gran_dataset_open_npy(path, &d));
    CHECK_OK(gran_dataset_info(d, &info));
    CHECK(info.count == 3 && info.height == 2 && info.has_labels == 1);
    CHECK_OK(gran_dataset_free(d));
    /* The labels' header now describes 3 images of 2x2 bytes: 12 bytes, but 24 follow. */
    memset(file + 10, ' ', head - 1);
    memcpy(file + 10, images_head, strlen(images_head));
    write_file(path, file, 128 + 24);
    d = SENTINEL_HANDLE;
    CHECK_STATUS(gran_dataset_load_npy(path, &d), GRAN_STATUS_FORMAT);
    CHECK(d == SENTINEL_HANDLE);
    CHECK_STATUS(gran_dataset_load_npy(NULL, &d), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_dataset_load_image_files(dir, 8, 8, 3, 7, GRAN_FIT_STRETCH, &d), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_dataset_load_image_files(dir, 8, 8, 3, GRAN_LABELS_AUTO, 9, &d), GRAN_STATUS_INVALID_ARGUMENT);
    /* No image files in the folder. */
    CHECK_STATUS(gran_dataset_load_image_files(dir, 8, 8, 3, GRAN_LABELS_NONE, GRAN_FIT_CENTER_CROP, &d),
                 GRAN_STATUS_INVALID_ARGUMENT);
    CHECK(d == SENTINEL_HANDLE);
}

/* ---------------------------------------------------------------------------------------- */

/* After each test, in its process: frees the shared fixtures (a second free is INVALID_HANDLE)
 * and removes the temporary folder. */
static void cleanup(void) {
    if (g_model != 0) {
        CHECK_OK(gran_model_free(g_model));
        CHECK_STATUS(gran_model_free(g_model), GRAN_STATUS_INVALID_HANDLE);
    }
    if (g_data != 0) {
        CHECK_OK(gran_dataset_free(g_data));
        CHECK_STATUS(gran_dataset_free(g_data), GRAN_STATUS_INVALID_HANDLE);
    }
    g_model = 0;
    g_data = 0;
    if (g_tmp[0] != 0) tmpdir_remove(g_tmp);
    g_tmp[0] = 0;
}

/* GranDatasetInfo and GranProgress prepared by their _init functions: every field zero but
 * struct_size, and ready for the call that fills them. */
static void test_result_initialisers(void) {
    GranDatasetInfo info;
    GranProgress last;
    GranTrainConfig t = tiny_train(2);
    fixtures();
    memset(&info, 0xEE, sizeof info);
    gran_dataset_info_init(&info);
    CHECK(info.struct_size == sizeof info && info.count == 0 && info.height == 0 && info.has_labels == 0);
    CHECK_OK(gran_dataset_info(g_data, &info));
    CHECK(info.struct_size == sizeof info && info.count == 64 && info.height == 28 && info.width == 28);
    CHECK(info.channels == 1 && info.has_labels == 0);
    memset(&last, 0xEE, sizeof last);
    gran_progress_init(&last);
    CHECK(last.struct_size == sizeof last && all_bytes((char *)&last + 4, 0, sizeof last - 4));
    {
        GranModel m = tiny_model(77);
        CHECK_OK(gran_train(m, g_data, &t, &last));
        CHECK(last.struct_size == sizeof last && last.step == 2 && last.total_steps == 2);
        CHECK(isfinite(last.d_loss) && isfinite(last.g_loss));
        CHECK_OK(gran_model_free(m));
    }
    gran_dataset_info_init(NULL);
    gran_progress_init(NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* The averaged generator: created by training with ema_decay > 0, saved, chosen per model     */

static void test_averaged_generator(void) {
    GranModel m, plain, l = 0;
    GranTrainConfig t = tiny_train(6);
    int32_t has = -1;
    unsigned char avg[6 * 784], raw[6 * 784], ref[6 * 784];
    char path[600];
    fixtures();
    m = tiny_model(21);
    plain = tiny_model(21);
    CHECK_OK(gran_model_has_averaged(m, &has));
    CHECK(has == 0);
    t.ema_decay = 0.5;
    t.ema_start = 2;
    t.lr_schedule = GRAN_LR_INVERSE_EPOCH;
    CHECK_OK(gran_train(m, g_data, &t, NULL));
    CHECK_OK(gran_model_has_averaged(m, &has));
    CHECK(has == 1);
    /* The same run without averaging: no averaged generator, and the same raw one. */
    t.ema_decay = 0.0;
    CHECK_OK(gran_train(plain, g_data, &t, NULL));
    CHECK_OK(gran_model_has_averaged(plain, &has));
    CHECK(has == 0);
    CHECK_OK(gran_sample(m, 5, 6, GRAN_PIXEL_FORMAT_U8_HWC, avg, sizeof avg));
    CHECK_OK(gran_sample(plain, 5, 6, GRAN_PIXEL_FORMAT_U8_HWC, ref, sizeof ref));
    CHECK(memcmp(avg, ref, sizeof avg) != 0); /* the default is the averaged generator */
    CHECK_OK(gran_model_set_generator(m, GRAN_GENERATOR_RAW));
    CHECK_OK(gran_sample(m, 5, 6, GRAN_PIXEL_FORMAT_U8_HWC, raw, sizeof raw));
    CHECK(memcmp(raw, ref, sizeof raw) == 0);
    CHECK_STATUS(gran_model_set_generator(m, 2), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("generator");
    CHECK_OK(gran_model_set_generator(m, GRAN_GENERATOR_AVERAGED));
    /* A checkpoint keeps it; a loaded model samples the same images. */
    tmp_path(path, sizeof path, "averaged.gran");
    CHECK_OK(gran_model_save(m, path));
    CHECK_OK(gran_model_load(path, NULL, &l));
    CHECK_OK(gran_model_has_averaged(l, &has));
    CHECK(has == 1);
    CHECK_OK(gran_sample(l, 5, 6, GRAN_PIXEL_FORMAT_U8_HWC, ref, sizeof ref));
    CHECK(memcmp(avg, ref, sizeof avg) == 0);
    /* The generator export: the same images; sampling only. */
    {
        GranModel e = 0;
        int32_t only = -1;
        float prob[1];
        tmp_path(path, sizeof path, "generator.safetensors");
        CHECK_OK(gran_model_export(m, path, GRAN_PRECISION_FP32));
        CHECK_STATUS(gran_model_export(m, path, 5), GRAN_STATUS_INVALID_ARGUMENT);
        CHECK_OK(gran_model_load(path, NULL, &e));
        CHECK_OK(gran_model_inference_only(e, &only));
        CHECK(only == 1);
        CHECK_OK(gran_model_inference_only(m, &only));
        CHECK(only == 0);
        CHECK_OK(gran_sample(e, 5, 6, GRAN_PIXEL_FORMAT_U8_HWC, ref, sizeof ref));
        CHECK(memcmp(avg, ref, sizeof avg) == 0);
        CHECK_STATUS(gran_train(e, g_data, &t, NULL), GRAN_STATUS_INVALID_ARGUMENT);
        CHECK_ERROR_HAS("exported for inference");
        CHECK_STATUS(gran_discriminate(e, avg, 1, GRAN_PIXEL_FORMAT_U8_HWC, prob), GRAN_STATUS_INVALID_ARGUMENT);
        tmp_path(path, sizeof path, "from_export.gran");
        CHECK_STATUS(gran_model_save(e, path), GRAN_STATUS_INVALID_ARGUMENT);
        CHECK_OK(gran_model_free(e));
    }
    CHECK_STATUS(gran_model_has_averaged(l, NULL), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_model_has_averaged(0, &has), GRAN_STATUS_INVALID_HANDLE);
    CHECK_OK(gran_model_free(l));
    CHECK_OK(gran_model_free(plain));
    CHECK_OK(gran_model_free(m));
}

/* A port on 127.0.0.1 that nothing listens on (the kernel's choice for a bound socket). */
static uint32_t free_port(void) {
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(s, (struct sockaddr *)&a, &len) == 0);
    close(s);
    return ntohs(a.sin_port);
}

/* Process groups: the settings' checks, a group of one that trains like one process, and the
 * handle's life (two-process runs: tests/ddp.rs and the bindings' tests). */
static void test_process_group(void) {
    GranProcessGroupConfig pc;
    GranProcessGroup g = SENTINEL_HANDLE, g2 = 0;
    GranTrainConfig t = tiny_train(3);
    GranModel a = 0, b = 0;
    uint32_t rank = 99, size = 99;
    uint64_t step = 0;
    unsigned char x[4 * 784], y[4 * 784];
    fixtures();
    gran_process_group_config_init(&pc);
    CHECK(pc.struct_size == sizeof pc && pc.backend == GRAN_BACKEND_AUTO && pc.rank == 0 && pc.world_size == 1);
    CHECK(pc.master_port == 29500 && pc.timeout_ms == 300000 && pc.master_addr == NULL);
    /* Refused before any network: the output is left as it was. */
    pc.rank = 1;
    CHECK_STATUS(gran_process_group_create(&pc, &g), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("rank 1");
    CHECK(g == SENTINEL_HANDLE);
    pc.rank = 0;
    pc.backend = 7;
    CHECK_STATUS(gran_process_group_create(&pc, &g), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("backend");
    pc.backend = GRAN_BACKEND_GLOO;
    pc.master_port = 70000;
    CHECK_STATUS(gran_process_group_create(&pc, &g), GRAN_STATUS_INVALID_ARGUMENT);
    pc.master_port = free_port();
    pc.timeout_ms = 0;
    CHECK_STATUS(gran_process_group_create(&pc, &g), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("timeout");
    pc.timeout_ms = 30000;
    CHECK_STATUS(gran_process_group_create(NULL, &g), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_process_group_create(&pc, NULL), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK(g == SENTINEL_HANDLE);
    /* A group of one trains exactly as one process does. */
    CHECK_OK(gran_process_group_create(&pc, &g));
    CHECK(g != 0 && g != SENTINEL_HANDLE);
    CHECK_OK(gran_process_group_info(g, &rank, &size));
    CHECK(rank == 0 && size == 1);
    CHECK_OK(gran_process_group_info(g, NULL, NULL));
    a = tiny_model(31);
    b = tiny_model(31);
    t.process_group = g;
    CHECK_OK(gran_train(a, g_data, &t, NULL));
    t.process_group = 0;
    CHECK_OK(gran_train(b, g_data, &t, NULL));
    CHECK_OK(gran_model_step(a, &step));
    CHECK(step == 3);
    CHECK_OK(gran_sample(a, 2, 4, GRAN_PIXEL_FORMAT_U8_HWC, x, sizeof x));
    CHECK_OK(gran_sample(b, 2, 4, GRAN_PIXEL_FORMAT_U8_HWC, y, sizeof y));
    CHECK(memcmp(x, y, sizeof x) == 0);
    /* A global batch that does not split is refused (here: a batch of 1 cannot be split for
     * batch norm even in one process). */
    t.process_group = g;
    t.batch_size = 1;
    CHECK_STATUS(gran_train(a, g_data, &t, NULL), GRAN_STATUS_INVALID_ARGUMENT);
    t.batch_size = 16;
    /* Handles: freed, forged, of another type. */
    CHECK_OK(gran_process_group_free(g));
    CHECK_STATUS(gran_process_group_free(g), GRAN_STATUS_INVALID_HANDLE);
    CHECK_STATUS(gran_train(a, g_data, &t, NULL), GRAN_STATUS_INVALID_HANDLE);
    CHECK_STATUS(gran_process_group_info(g_model, &rank, &size), GRAN_STATUS_INVALID_HANDLE);
    CHECK_OK(gran_process_group_free(0));
    /* The environment torchrun would set, absent here. */
    if (getenv("RANK") == NULL) {
        CHECK_STATUS(gran_process_group_from_env(GRAN_BACKEND_AUTO, 1000, &g2), GRAN_STATUS_INVALID_ARGUMENT);
        CHECK_ERROR_HAS("RANK");
    }
    CHECK_OK(gran_model_free(a));
    CHECK_OK(gran_model_free(b));
}

int main(int argc, char **argv) {
    static const TestCase tests[] = {
        {"version", test_version},
        {"status_strings", test_status_strings},
        {"last_error", test_last_error},
        {"config_defaults", test_config_defaults},
        {"abi_layout", test_abi_layout},
        {"invalid_model_config", test_invalid_model_config},
        {"invalid_dataset_args", test_invalid_dataset_args},
        {"invalid_train_args", test_invalid_train_args},
        {"invalid_sample_args", test_invalid_sample_args},
        {"null_arguments", test_null_arguments},
        {"handles", test_handles},
        {"buffer_too_small", test_buffer_too_small},
        {"struct_size", test_struct_size},
        {"io_and_format", test_io_and_format},
        {"device", test_device},
        {"diverged", test_diverged},
        {"cancel_and_busy", test_cancel_and_busy},
        {"reentrant_callback", test_reentrant_callback},
        {"log_callback", test_log_callback},
        {"sample_determinism", test_sample_determinism},
        {"conditional", test_conditional},
        {"precision", test_precision},
        {"rgb_formats", test_rgb_formats},
        {"discriminate", test_discriminate},
        {"save_load_roundtrip", test_save_load_roundtrip},
        {"write_png", test_write_png},
        {"write_gif", test_write_gif},
        {"npy_and_image_files", test_npy_and_image_files},
        {"mnist", test_mnist},
        {"dataset_formats", test_dataset_formats},
        {"result_initialisers", test_result_initialisers},
        {"averaged_generator", test_averaged_generator},
        {"process_group", test_process_group},
    };
    setvbuf(stdout, NULL, _IOLBF, 0);
    return run_tests(tests, sizeof tests / sizeof tests[0], argc, argv, cleanup, 120);
}
