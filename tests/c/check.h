/*
 * Helpers shared by the C tests of libgran: check_core.h (assertion macros, a runner with a
 * watchdog), and builders for tiny models and synthetic data.
 *
 * Each test program includes this file once (it defines functions). C99 + POSIX 2008.
 */
#ifndef GRAN_TEST_CHECK_H
#define GRAN_TEST_CHECK_H

#include "gran.h"

#include "check_core.h"

/* ---------------------------------------------------------------------------------------- */
/* Fixtures                                                                                  */

/* A temporary folder, removed (with its files, one level) by tmpdir_remove. */
static inline void tmpdir_make(char *out, size_t len, const char *tag) {
    const char *base = getenv("TMPDIR");
    snprintf(out, len, "%s/gran-ctest-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    CHECK(mkdtemp(out) != NULL);
}

static inline void tmpdir_remove(const char *dir) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

static inline void path_join(char *out, size_t len, const char *dir, const char *name) {
    int n = snprintf(out, len, "%s/%s", dir, name);
    CHECK(n > 0 && (size_t)n < len);
}

static inline void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(len == 0 || fwrite(data, 1, len, f) == len);
    CHECK(fclose(f) == 0);
}

/* Reads a whole file into a malloc'd buffer (caller frees); *len receives its size. */
static inline unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long n;
    CHECK(f != NULL);
    CHECK(fseek(f, 0, SEEK_END) == 0);
    n = ftell(f);
    CHECK(n >= 0);
    CHECK(fseek(f, 0, SEEK_SET) == 0);
    buf = (unsigned char *)malloc((size_t)n + 1);
    CHECK(buf != NULL);
    CHECK(n == 0 || fread(buf, 1, (size_t)n, f) == (size_t)n);
    CHECK(fclose(f) == 0);
    *len = (size_t)n;
    return buf;
}

static inline int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* The folder of the MNIST subset shipped in the repository. */
static inline const char *data_dir(void) {
    const char *d = getenv("GRAN_TEST_DATA");
    return d && *d ? d : "data/mnist10k";
}

/* The device of the tests' models and evaluators: GRAN_TEST_DEVICE=cuda (CUDA device 0) or
 * cuda:N; the CPU when it is unset, empty or "cpu". Anything else is a mistake in the
 * environment and ends the program (rather than quietly testing the CPU). gpu/check.sh runs
 * the suites with cuda. */
static inline GranDevice env_test_device(void) {
    const char *v = getenv("GRAN_TEST_DEVICE");
    GranDevice d;
    char *end = NULL;
    long i;
    d.kind = GRAN_DEVICE_CPU;
    d.index = 0;
    if (v == NULL || *v == '\0' || strcmp(v, "cpu") == 0) return d;
    d.kind = GRAN_DEVICE_CUDA;
    if (strcmp(v, "cuda") == 0) return d;
    if (strncmp(v, "cuda:", 5) == 0 && v[5] >= '0' && v[5] <= '9') {
        errno = 0;
        i = strtol(v + 5, &end, 10);
        if (errno == 0 && *end == '\0' && i <= INT32_MAX) {
            d.index = (int32_t)i;
            return d;
        }
    }
    fprintf(stderr, "GRAN_TEST_DEVICE=\"%s\": expected cpu, cuda or cuda:N\n", v);
    exit(2);
}

/* Whether two drawings of the same n bytes of images, computed in batches of other sizes, agree:
 * the same bytes on the CPU, whose kernels do not depend on the batch size; on CUDA, where
 * libtorch chooses its kernels by batch size, within one level (gran.h, gran_sample). */
static inline int same_across_batches(const unsigned char *a, const unsigned char *b, size_t n) {
    size_t i;
    if (env_test_device().kind == GRAN_DEVICE_CPU) return memcmp(a, b, n) == 0;
    for (i = 0; i < n; i++) {
        if ((a[i] > b[i] ? a[i] - b[i] : b[i] - a[i]) > 1) return 0;
    }
    return 1;
}

/* The tiny model of the tests: 28x28x1 (or `size` x `size` x `channels`), T=2, z/hidden 16,
 * width scale 1/8, on the test device (env_test_device()). */
static inline GranModelConfig tiny_config(uint32_t size, uint32_t channels, uint64_t seed) {
    GranModelConfig c;
    gran_model_config_init(&c);
    c.height = size;
    c.width = size;
    c.channels = channels;
    c.steps = 2;
    c.z_dim = 16;
    c.hidden_dim = 16;
    c.width_scale = 0.125f;
    c.device = env_test_device();
    c.seed = seed;
    return c;
}

static inline GranModel tiny_model(uint64_t seed) {
    GranModelConfig c = tiny_config(28, 1, seed);
    GranModel m = 0;
    CHECK_OK(gran_model_create(&c, &m));
    CHECK(m != 0);
    return m;
}

/* The pixels of `count` synthetic 28x28 grey images (U8_HWC, malloc'd): a bright square at a
 * position that depends on the index, on a dark noisy background. Deterministic. */
static inline unsigned char *synthetic_pixels(size_t count) {
    size_t n = count * 28 * 28, i;
    unsigned char *px = (unsigned char *)malloc(n);
    uint32_t rng = 12345u;
    CHECK(px != NULL);
    for (i = 0; i < n; i++) {
        rng = rng * 1664525u + 1013904223u;
        px[i] = (unsigned char)((rng >> 24) & 0x1f);
    }
    for (i = 0; i < count; i++) {
        size_t x0 = 4 + (i * 7) % 14, y0 = 4 + (i * 3) % 14, x, y;
        for (y = y0; y < y0 + 10; y++)
            for (x = x0; x < x0 + 10; x++) px[i * 784 + y * 28 + x] = 230;
    }
    return px;
}

/* A dataset of the `count` images of synthetic_pixels. */
static inline GranDataset synthetic_dataset(size_t count) {
    unsigned char *px = synthetic_pixels(count);
    GranDataset d = 0;
    CHECK_OK(gran_dataset_from_pixels(px, count, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, &d));
    CHECK(d != 0);
    free(px);
    return d;
}

/* Training settings of the tests: batch 16, `iterations` steps, a report every step. */
static inline GranTrainConfig tiny_train(uint64_t iterations) {
    GranTrainConfig t;
    gran_train_config_init(&t);
    t.batch_size = 16;
    t.iterations = iterations;
    t.report_every = 1;
    return t;
}

/* Every float finite and in [0, 1]. */
static inline int floats_in_unit_range(const float *v, size_t n) {
    size_t i;
    for (i = 0; i < n; i++)
        if (!(v[i] >= 0.0f && v[i] <= 1.0f)) return 0;
    return 1;
}

static inline int all_bytes(const void *p, unsigned char value, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    size_t i;
    for (i = 0; i < n; i++)
        if (b[i] != value) return 0;
    return 1;
}

#endif /* GRAN_TEST_CHECK_H */
