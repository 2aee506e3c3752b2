/*
 * Helpers shared by the C tests of libgran: assertion macros that print file:line and fail the
 * process, a tiny test runner with a watchdog, and builders for tiny models and synthetic data.
 *
 * Each test program includes this file once (it defines functions). C99 + POSIX 2008.
 */
#ifndef GRAN_TEST_CHECK_H
#define GRAN_TEST_CHECK_H

#include "gran.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------- */
/* Failing                                                                                   */

static const char *g_current_test = "(none)";

static inline void print_last_error(void) {
    char msg[1024];
    size_t n = gran_last_error(msg, sizeof msg);
    fprintf(stderr, "    gran_last_error (%zu bytes): %s\n", n, n ? msg : "(empty)");
}

/* Fails the whole process at once: threads may be running, so no cleanup is attempted. */
static inline void fail_now(const char *file, int line, const char *what) {
    fprintf(stderr, "%s:%d: FAILED in %s: %s\n", file, line, g_current_test, what);
    print_last_error();
    fflush(NULL);
    _Exit(1);
}

#define CHECK(cond)                                                                               \
    do {                                                                                          \
        if (!(cond)) fail_now(__FILE__, __LINE__, "CHECK(" #cond ")");                            \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                      \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            fprintf(stderr, __VA_ARGS__);                                                         \
            fprintf(stderr, "\n");                                                                \
            fail_now(__FILE__, __LINE__, "CHECK(" #cond ")");                                     \
        }                                                                                         \
    } while (0)

/* `expr` must return status `want`; on a failure, a non-empty last-error message too. */
#define CHECK_STATUS(expr, want)                                                                  \
    do {                                                                                          \
        GranStatus got_ = (expr);                                                                 \
        GranStatus want_ = (want);                                                                \
        if (got_ != want_) {                                                                      \
            fprintf(stderr, "%s:%d: %s\n    returned %s (%d), expected %s (%d)\n", __FILE__,      \
                    __LINE__, #expr, gran_status_string(got_), (int)got_,                         \
                    gran_status_string(want_), (int)want_);                                       \
            fail_now(__FILE__, __LINE__, "CHECK_STATUS");                                         \
        }                                                                                         \
        if (want_ != GRAN_STATUS_OK && gran_last_error(NULL, 0) == 0)                             \
            fail_now(__FILE__, __LINE__, "failure without a gran_last_error message: " #expr);   \
    } while (0)

#define CHECK_OK(expr) CHECK_STATUS(expr, GRAN_STATUS_OK)

/* The calling thread's last error message (static buffer per call site is not thread-safe:
 * the caller passes the buffer). */
static inline const char *last_error(char *buf, size_t len) {
    gran_last_error(buf, len);
    return buf;
}

/* The last error message must contain `needle`. */
#define CHECK_ERROR_HAS(needle)                                                                   \
    do {                                                                                          \
        char eb_[1024];                                                                           \
        last_error(eb_, sizeof eb_);                                                              \
        if (strstr(eb_, (needle)) == NULL) {                                                      \
            fprintf(stderr, "%s:%d: last error lacks \"%s\"\n", __FILE__, __LINE__, (needle));   \
            fail_now(__FILE__, __LINE__, "CHECK_ERROR_HAS(" #needle ")");                         \
        }                                                                                         \
    } while (0)

/* ---------------------------------------------------------------------------------------- */
/* Time, watchdog and runner                                                                 */

static inline double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static inline void sleep_ms(long ms) {
    struct timespec t;
    t.tv_sec = ms / 1000;
    t.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
}

static inline void on_watchdog(int sig) {
    static const char msg[] = "\nWATCHDOG: a test ran past its time limit (deadlock?): ";
    (void)sig;
    if (write(2, msg, sizeof msg - 1) < 0 || write(2, g_current_test, strlen(g_current_test)) < 0 ||
        write(2, "\n", 1) < 0) {
    }
    _Exit(2);
}

typedef struct {
    const char *name;
    void (*fn)(void);
} TestCase;

/* Runs one test in this process, then `cleanup` (may be NULL), under a watchdog. */
static inline void run_one(const TestCase *t, void (*cleanup)(void), unsigned watchdog_s) {
    g_current_test = t->name;
    signal(SIGALRM, on_watchdog);
    alarm(watchdog_s);
    t->fn();
    if (cleanup != NULL) cleanup();
    alarm(0);
}

/* Runs every test, or those named on the command line, each in a child process of its own
 * (so that one failure does not hide the results of the others, and LeakSanitizer checks each
 * test when its process exits), with a watchdog of `watchdog_s` seconds per test. `cleanup`
 * runs after each test in its process (free the fixtures, remove temporary files).
 * GRAN_TEST_NOFORK=1 runs them all in this process instead, stopping at the first failure. */
static inline int run_tests(const TestCase *tests, size_t n, int argc, char **argv, void (*cleanup)(void),
                            unsigned watchdog_s) {
    size_t i;
    int j, ran = 0, failed = 0;
    double start = now_seconds();
    const char *nofork = getenv("GRAN_TEST_NOFORK");
    int forking = !(nofork && *nofork && strcmp(nofork, "0") != 0);
    for (j = 1; j < argc; j++) {
        for (i = 0; i < n; i++)
            if (strcmp(argv[j], tests[i].name) == 0) break;
        if (i == n) {
            fprintf(stderr, "%s: no test named %s\n", argv[0], argv[j]);
            return 2;
        }
    }
    for (i = 0; i < n; i++) {
        int wanted = argc <= 1, status = 0;
        double t0;
        pid_t pid;
        for (j = 1; j < argc; j++)
            if (strcmp(argv[j], tests[i].name) == 0) wanted = 1;
        if (!wanted) continue;
        ran++;
        fflush(NULL);
        t0 = now_seconds();
        if (!forking) {
            run_one(&tests[i], cleanup, watchdog_s);
            printf("  %-36s ok (%.2f s)\n", tests[i].name, now_seconds() - t0);
            continue;
        }
        pid = fork();
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0) {
            run_one(&tests[i], cleanup, watchdog_s);
            fflush(NULL);
            exit(0); /* through exit(): LeakSanitizer checks this test's process */
        }
        while (waitpid(pid, &status, 0) < 0) {
            if (errno != EINTR) {
                perror("waitpid");
                return 2;
            }
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            printf("  %-36s ok (%.2f s)\n", tests[i].name, now_seconds() - t0);
        } else {
            failed++;
            if (WIFSIGNALED(status))
                printf("  %-36s FAILED (signal %d) (%.2f s)\n", tests[i].name, WTERMSIG(status), now_seconds() - t0);
            else
                printf("  %-36s FAILED (exit status %d) (%.2f s)\n", tests[i].name, WEXITSTATUS(status),
                       now_seconds() - t0);
        }
        fflush(NULL);
    }
    if (failed) {
        printf("%s: %d of %d tests FAILED (%.1f s)\n", argv[0], failed, ran, now_seconds() - start);
        return 1;
    }
    printf("%s: %d tests passed in %.1f s\n", argv[0], ran, now_seconds() - start);
    return 0;
}

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
