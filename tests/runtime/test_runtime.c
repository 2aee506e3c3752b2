/*
 * The C contract of libgran_runtime, through include/gran_runtime.h only: versions, status
 * strings, last-error semantics, loading (and IO / FORMAT for what is not a model), the
 * configuration and its struct_size, generators, latents, the three drawing calls in every
 * pixel format with their exact buffer sizes, their class-taking forms (refused by these
 * unconditional models), threads, PNG files, handles, and concurrent use.
 *
 * C99 + POSIX 2008; built with -fsanitize=address,undefined by tests/runtime/test.sh. Run from
 * the repository root (it reads runtime/tests/data; GRAN_RUNTIME_DATA overrides the folder).
 * Arguments: names of tests to run (default: all). Each test runs in a child process of its
 * own under a watchdog, so one failure (or crash) does not hide the others; the last line is
 * "runtime-c: N passed, M failed".
 */
#define _POSIX_C_SOURCE 200809L

#include "gran_runtime.h"

#include "check_core.h"

/* ---------------------------------------------------------------------------------------- */
/* Checks                                                                                    */


/* ---------------------------------------------------------------------------------------- */
/* Fixtures                                                                                  */

#define IMG 784 /* 28 x 28 x 1: every test model's image */
#define T 3     /* their drawing steps */
#define ZDIM 16

static const char *const FILES[3] = {"tiny_t3_bf16.safetensors", "tiny_t3_fp32.safetensors",
                                     "tiny_t3_checkpoint.safetensors"};
static char g_tmp[512]; /* this test's temporary folder, removed after it */

static void data_path(char *out, size_t len, const char *name) {
    const char *d = getenv("GRAN_RUNTIME_DATA");
    int n = snprintf(out, len, "%s/%s", d && *d ? d : "runtime/tests/data", name);
    CHECK(n > 0 && (size_t)n < len);
}

static void tmp_path(char *out, size_t len, const char *name) {
    int n;
    if (g_tmp[0] == '\0') {
        const char *base = getenv("TMPDIR");
        snprintf(g_tmp, sizeof g_tmp, "%s/gran-runtime-ctest-XXXXXX", base && *base ? base : "/tmp");
        CHECK(mkdtemp(g_tmp) != NULL);
    }
    n = snprintf(out, len, "%s/%s", g_tmp, name);
    CHECK(n > 0 && (size_t)n < len);
}

static GranModel load(const char *file) {
    char path[1024];
    GranModel m = 0;
    data_path(path, sizeof path, file);
    CHECK_OK(gran_model_load(path, NULL, &m));
    CHECK(m != 0);
    return m;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    CHECK(p != NULL);
    return p;
}

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long n;
    CHECK(f != NULL);
    CHECK(fseek(f, 0, SEEK_END) == 0);
    n = ftell(f);
    CHECK(n >= 0);
    CHECK(fseek(f, 0, SEEK_SET) == 0);
    buf = (unsigned char *)xmalloc((size_t)n + 1);
    CHECK(n == 0 || fread(buf, 1, (size_t)n, f) == (size_t)n);
    CHECK(fclose(f) == 0);
    *len = (size_t)n;
    return buf;
}

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(len == 0 || fwrite(data, 1, len, f) == len);
    CHECK(fclose(f) == 0);
}

static int all_bytes(const void *p, unsigned char v, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    size_t i;
    for (i = 0; i < n; i++)
        if (b[i] != v) return 0;
    return 1;
}

/* The largest difference between two byte buffers. */
static int max_diff_u8(const unsigned char *a, const unsigned char *b, size_t n) {
    size_t i;
    int d = 0;
    for (i = 0; i < n; i++) {
        int e = abs((int)a[i] - (int)b[i]);
        if (e > d) d = e;
    }
    return d;
}

static float max_diff_f32(const float *a, const float *b, size_t n) {
    size_t i;
    float d = 0.0f;
    for (i = 0; i < n; i++) {
        float e = fabsf(a[i] - b[i]);
        if (!(e <= d)) d = e; /* NaN counts as a difference */
    }
    return d;
}

static size_t value_bytes(GranPixelFormat f) { return f == GRAN_PIXEL_FORMAT_F32_CHW ? 4 : 1; }

/* ---------------------------------------------------------------------------------------- */
/* Library                                                                                   */

static void test_versions(void) {
    const char *v = gran_version();
    CHECK(gran_abi_version() == GRAN_ABI_VERSION);
    CHECK(GRAN_ABI_VERSION == 1);
    CHECK(v != NULL && v[0] >= '0' && v[0] <= '9' && strchr(v, '.') != NULL);
    CHECK(gran_version() == v); /* static */
    /* The struct layout of ABI 1 (gran.h's). */
    CHECK(sizeof(GranStatus) == 4 && sizeof(GranModel) == 8 && sizeof(GranDevice) == 8);
    CHECK(sizeof(GranModelConfig) == 64);
}

static void test_status_strings(void) {
    static const char *const names[] = {
        "GRAN_STATUS_OK",       "GRAN_STATUS_INVALID_ARGUMENT", "GRAN_STATUS_INVALID_HANDLE",
        "GRAN_STATUS_BUFFER_TOO_SMALL", "GRAN_STATUS_IO",   "GRAN_STATUS_FORMAT",
        "GRAN_STATUS_DEVICE",   "GRAN_STATUS_OUT_OF_MEMORY",    "GRAN_STATUS_CANCELLED",
        "GRAN_STATUS_BUSY",     "GRAN_STATUS_DIVERGED",         "GRAN_STATUS_INTERNAL",
        "GRAN_STATUS_DISTRIBUTED",
    };
    static const GranStatus unknown[] = {-1, 13, 14, 100, INT32_MIN, INT32_MAX};
    GranStatus s;
    size_t i;
    CHECK(GRAN_STATUS_DISTRIBUTED == 12);
    for (s = 0; s <= GRAN_STATUS_DISTRIBUTED; s++) {
        const char *n = gran_status_string(s);
        CHECK_MSG(n != NULL && strcmp(n, names[s]) == 0, "status %d: %s", (int)s, n ? n : "NULL");
        CHECK(gran_status_string(s) == n); /* static */
    }
    for (i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        CHECK(strcmp(gran_status_string(unknown[i]), "GRAN_STATUS_UNKNOWN") == 0);
}

static void *other_thread_error(void *arg) {
    char buf[256];
    (void)arg;
    /* A fresh thread has no message. */
    CHECK(gran_last_error(NULL, 0) == 0);
    buf[0] = 'x';
    CHECK(gran_last_error(buf, sizeof buf) == 0 && buf[0] == '\0');
    CHECK_STATUS(gran_model_free(87654321), GRAN_STATUS_INVALID_HANDLE);
    CHECK_ERROR_HAS("87654321");
    return NULL;
}

static void test_last_error(void) {
    char full[512], mark[16];
    size_t n, i;
    pthread_t t;
    GranModel m = load(FILES[0]);
    uint64_t step;
    CHECK_STATUS(gran_model_free(12345678), GRAN_STATUS_INVALID_HANDLE);
    n = gran_last_error(NULL, 0);
    CHECK(n > 8 && n < sizeof full);
    /* NULL with a length, a buffer of length 0: nothing written, the length returned. */
    CHECK(gran_last_error(NULL, 100) == n);
    memset(mark, 'Z', sizeof mark);
    CHECK(gran_last_error(mark, 0) == n && all_bytes(mark, 'Z', sizeof mark));
    /* n + 1 bytes: the whole message, nothing past its NUL. */
    memset(full, 'Z', sizeof full);
    CHECK(gran_last_error(full, n + 1) == n);
    CHECK(strlen(full) == n && full[n + 1] == 'Z');
    CHECK(strstr(full, "12345678") != NULL);
    /* Short buffers: len - 1 bytes and a NUL (snprintf), nothing past. */
    memset(mark, 'Z', sizeof mark);
    CHECK(gran_last_error(mark, 8) == n);
    CHECK(strlen(mark) == 7 && memcmp(mark, full, 7) == 0);
    for (i = 8; i < sizeof mark; i++) CHECK(mark[i] == 'Z');
    mark[0] = mark[1] = 'Z';
    CHECK(gran_last_error(mark, 1) == n && mark[0] == '\0' && mark[1] == 'Z');
    /* Successful calls do not clear it. */
    CHECK_OK(gran_model_step(m, &step));
    CHECK(gran_last_error(NULL, 0) == n);
    /* Each thread has its own. */
    CHECK(pthread_create(&t, NULL, other_thread_error, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(gran_last_error(full, sizeof full) == n);
    CHECK(strstr(full, "12345678") != NULL && strstr(full, "87654321") == NULL);
    /* A new failure replaces it; the message names the NULL argument. */
    CHECK_STATUS(gran_model_step(m, NULL), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("out");
    CHECK_ERROR_HAS("NULL");
    CHECK_OK(gran_model_free(m));
}

/* ---------------------------------------------------------------------------------------- */
/* Loading and describing                                                                    */

static void test_load(void) {
    char path[1024], tmp[1024];
    unsigned char *bytes;
    size_t len, i;
    GranModel m;
    GranDevice cuda = {GRAN_DEVICE_CUDA, 0}, cpu = {GRAN_DEVICE_CPU, 0}, autodev = {GRAN_DEVICE_AUTO, 0};
    for (i = 0; i < 3; i++) {
        GranModel a = load(FILES[i]);
        CHECK_OK(gran_model_free(a));
    }
    data_path(path, sizeof path, FILES[1]);
    CHECK_OK(gran_model_load(path, &cpu, &m));
    CHECK_OK(gran_model_free(m));
    CHECK_OK(gran_model_load(path, &autodev, &m));
    CHECK_OK(gran_model_free(m));
    /* Failures leave the handle as it was. */
    m = 777;
    CHECK_STATUS(gran_model_load(path, &cuda, &m), GRAN_STATUS_DEVICE);
    CHECK(m == 777);
    tmp_path(tmp, sizeof tmp, "missing.safetensors");
    CHECK_STATUS(gran_model_load(tmp, NULL, &m), GRAN_STATUS_IO);
    CHECK_ERROR_HAS("missing.safetensors");
    CHECK(m == 777);
    /* A folder. */
    tmp_path(tmp, sizeof tmp, "");
    CHECK_STATUS(gran_model_load(tmp, NULL, &m), GRAN_STATUS_IO);
    CHECK_STATUS(gran_model_load("/", NULL, &m), GRAN_STATUS_IO);
    /* A truncated copy of each file: FORMAT. */
    for (i = 0; i < 3; i++) {
        data_path(path, sizeof path, FILES[i]);
        bytes = read_file(path, &len);
        tmp_path(tmp, sizeof tmp, "cut.safetensors");
        write_file(tmp, bytes, len - 1);
        CHECK_STATUS(gran_model_load(tmp, NULL, &m), GRAN_STATUS_FORMAT);
        write_file(tmp, bytes, len / 2);
        CHECK_STATUS(gran_model_load(tmp, NULL, &m), GRAN_STATUS_FORMAT);
        write_file(tmp, bytes, 4);
        CHECK_STATUS(gran_model_load(tmp, NULL, &m), GRAN_STATUS_FORMAT);
        free(bytes);
    }
    /* Files that are not gran files, in /tmp: text, an empty file, a safetensors of another kind. */
    {
        static const char text[] = "P5\n28 28\n255\nnot a model at all, just text\n";
        static const char other[] = "{\"__metadata__\":{\"format\":\"pt\"},"
                                    "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
        unsigned char st[256];
        uint64_t n = sizeof other - 1;
        tmp_path(tmp, sizeof tmp, "notes.txt");
        write_file(tmp, text, sizeof text - 1);
        CHECK_STATUS(gran_model_load(tmp, NULL, &m), GRAN_STATUS_FORMAT);
        tmp_path(tmp, sizeof tmp, "empty");
        write_file(tmp, "", 0);
        CHECK_STATUS(gran_model_load(tmp, NULL, &m), GRAN_STATUS_FORMAT);
        for (i = 0; i < 8; i++) st[i] = (unsigned char)(n >> (8 * i));
        memcpy(st + 8, other, (size_t)n);
        memset(st + 8 + n, 0, 4);
        tmp_path(tmp, sizeof tmp, "other.safetensors");
        write_file(tmp, st, 8 + (size_t)n + 4);
        CHECK_STATUS(gran_model_load(tmp, NULL, &m), GRAN_STATUS_FORMAT);
        CHECK_ERROR_HAS("gran");
    }
    CHECK(m == 777);
    /* NULL and empty paths, NULL out. */
    CHECK_STATUS(gran_model_load(NULL, NULL, &m), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_model_load("", NULL, &m), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_model_load(path, NULL, NULL), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK(m == 777);
}

static void test_config(void) {
    GranModelConfig c;
    union {
        GranModelConfig c;
        unsigned char b[sizeof(GranModelConfig) + 16];
    } u; /* a caller's struct, larger than this header's, aligned as the struct */
    unsigned char *raw = u.b;
    uint32_t size;
    size_t i;
    memset(&c, 0xEE, sizeof c);
    gran_model_config_init(&c);
    CHECK(c.struct_size == sizeof c);
    CHECK(c.height == 28 && c.width == 28 && c.channels == 1 && c.steps == 3);
    CHECK(c.z_dim == 100 && c.hidden_dim == 100 && c.width_scale == 1.0f && c.leaky_relu == 1);
    CHECK(c.device.kind == GRAN_DEVICE_AUTO && c.seed == 0 && c.classes == 0);
    gran_model_config_init(NULL);
    for (i = 0; i < 3; i++) {
        GranModel m = load(FILES[i]);
        memset(&c, 0xEE, sizeof c);
        gran_model_config_init(&c);
        CHECK_OK(gran_model_config(m, &c));
        CHECK(c.struct_size == sizeof c);
        CHECK(c.height == 28 && c.width == 28 && c.channels == 1 && c.steps == T);
        CHECK(c.z_dim == ZDIM && c.hidden_dim == 16 && c.width_scale == 0.0625f && c.leaky_relu == 1);
        CHECK(c.device.kind == GRAN_DEVICE_CPU && c.device.index == 0 && c.seed == 4);
        CHECK(c.classes == 0); /* unconditional */
        /* struct_size below 8: INVALID_ARGUMENT, nothing written. */
        for (size = 0; size < 8; size += 3) {
            memset(raw, 0xEE, sizeof u.b);
            memcpy(raw, &size, 4);
            CHECK_STATUS(gran_model_config(m, &u.c), GRAN_STATUS_INVALID_ARGUMENT);
            CHECK_ERROR_HAS("struct_size");
            CHECK(all_bytes(raw + 4, 0xEE, sizeof u.b - 4));
        }
        /* 8 (an older, smaller struct): only its fields; struct_size stays as set. */
        size = 8;
        memset(raw, 0xEE, sizeof u.b);
        memcpy(raw, &size, 4);
        CHECK_OK(gran_model_config(m, &u.c));
        memcpy(&size, raw, 4);
        CHECK(size == 8);
        memcpy(&size, raw + 4, 4);
        CHECK(size == 28);
        CHECK(all_bytes(raw + 8, 0xEE, sizeof u.b - 8));
        /* Larger than this header's (a newer struct): sizeof(GranModelConfig) bytes, no more. */
        size = (uint32_t)sizeof u.b;
        memset(raw, 0xEE, sizeof u.b);
        memcpy(raw, &size, 4);
        CHECK_OK(gran_model_config(m, &u.c));
        memcpy(&c, raw, sizeof c);
        CHECK(c.struct_size == sizeof u.b && c.steps == T && c.seed == 4);
        CHECK(all_bytes(raw + sizeof c, 0xEE, sizeof u.b - sizeof c));
        CHECK_STATUS(gran_model_config(m, NULL), GRAN_STATUS_INVALID_ARGUMENT);
        CHECK_OK(gran_model_free(m));
    }
}

static void test_step_and_generators(void) {
    size_t i;
    unsigned char avg[8 * IMG], raw[8 * IMG], again[8 * IMG], fp32[8 * IMG];
    for (i = 0; i < 3; i++) {
        GranModel m = load(FILES[i]);
        uint64_t step = 0;
        int32_t has = -1, only = -1;
        CHECK_OK(gran_model_step(m, &step));
        CHECK(step == 60);
        CHECK_OK(gran_model_has_averaged(m, &has));
        CHECK(has == (i == 2));
        CHECK_OK(gran_model_inference_only(m, &only));
        CHECK(only == 1);
        CHECK_STATUS(gran_model_step(m, NULL), GRAN_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(gran_model_has_averaged(m, NULL), GRAN_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(gran_model_inference_only(m, NULL), GRAN_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(gran_model_set_generator(m, 2), GRAN_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(gran_model_set_generator(m, UINT32_MAX), GRAN_STATUS_INVALID_ARGUMENT);
        /* AVERAGED (the default), RAW, AVERAGED again. */
        CHECK_OK(gran_sample(m, 11, 8, GRAN_PIXEL_FORMAT_U8_HWC, avg, sizeof avg));
        CHECK_OK(gran_model_set_generator(m, GRAN_GENERATOR_RAW));
        CHECK_OK(gran_sample(m, 11, 8, GRAN_PIXEL_FORMAT_U8_HWC, raw, sizeof raw));
        CHECK_OK(gran_model_set_generator(m, GRAN_GENERATOR_AVERAGED));
        CHECK_OK(gran_sample(m, 11, 8, GRAN_PIXEL_FORMAT_U8_HWC, again, sizeof again));
        CHECK(memcmp(avg, again, sizeof avg) == 0);
        if (i == 2) {
            /* The checkpoint's two generators differ; its averaged one is what was exported. */
            CHECK(memcmp(avg, raw, sizeof avg) != 0);
            CHECK_MSG(max_diff_u8(avg, fp32, sizeof avg) <= 1, "checkpoint vs fp32 export: %d",
                      max_diff_u8(avg, fp32, sizeof avg));
        } else {
            /* An export holds one generator: both choices draw with it. */
            CHECK(memcmp(avg, raw, sizeof avg) == 0);
            if (i == 1) memcpy(fp32, avg, sizeof fp32);
        }
        CHECK_OK(gran_model_free(m));
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Drawing                                                                                   */

static void test_latents(void) {
    GranModel m = load(FILES[0]);
    float z[5 * ZDIM + 8], z2[2 * ZDIM], other[5 * ZDIM];
    size_t i;
    /* count * z_dim floats; a float short is BUFFER_TOO_SMALL and leaves z untouched. */
    memset(z, 0xEE, sizeof z);
    CHECK_STATUS(gran_latents(m, 5, 5, z, 5 * ZDIM - 1), GRAN_STATUS_BUFFER_TOO_SMALL);
    CHECK_ERROR_HAS("80");
    CHECK(all_bytes(z, 0xEE, sizeof z));
    CHECK_STATUS(gran_latents(m, 5, 0, z, 5 * ZDIM), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_latents(m, 5, 5, NULL, 5 * ZDIM), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_latents(m, 5, UINT32_MAX, z, 5 * ZDIM), GRAN_STATUS_BUFFER_TOO_SMALL);
    CHECK(all_bytes(z, 0xEE, sizeof z));
    /* Exactly enough, and more: nothing past count * z_dim is written. */
    CHECK_OK(gran_latents(m, 5, 5, z, 5 * ZDIM + 8));
    CHECK(all_bytes(z + 5 * ZDIM, 0xEE, 8 * sizeof(float)));
    for (i = 0; i < 5 * ZDIM; i++) CHECK(isfinite(z[i]) && fabsf(z[i]) < 10.0f);
    /* Deterministic; image i's latents do not depend on count; seeds differ. */
    CHECK_OK(gran_latents(m, 5, 2, z2, 2 * ZDIM));
    CHECK(memcmp(z, z2, sizeof z2) == 0);
    CHECK_OK(gran_latents(m, 6, 5, other, 5 * ZDIM));
    CHECK(memcmp(z, other, sizeof other) != 0);
    /* Every model of the same z_dim gives the same latents (they depend on the seed only). */
    {
        GranModel c = load(FILES[2]);
        CHECK_OK(gran_latents(c, 5, 5, other, 5 * ZDIM));
        CHECK(memcmp(z, other, sizeof other) == 0);
        CHECK_OK(gran_model_free(c));
    }
    CHECK_OK(gran_model_free(m));
}

/* gran_sample, gran_sample_steps and gran_generate in `format`: exact sizes, the last block of
 * the steps equal to the images, generate on gran_latents equal to sample (within 1 in
 * bytes, 1/255 in floats), image i independent of count. */
static void draw_format(GranModel m, GranPixelFormat format) {
    enum { N = 5 };
    size_t per = IMG * value_bytes(format), need = N * per, need_steps = T * need;
    unsigned char *out = (unsigned char *)xmalloc(need_steps + 64);
    unsigned char *steps = (unsigned char *)xmalloc(need_steps + 64);
    unsigned char *gen = (unsigned char *)xmalloc(need + 64);
    unsigned char *one = (unsigned char *)xmalloc(per);
    float z[N * ZDIM];
    char needed[32];
    size_t i;

    /* gran_sample: one byte short is BUFFER_TOO_SMALL naming the size, out untouched. */
    snprintf(needed, sizeof needed, "%zu", need);
    memset(out, 0xAB, need_steps + 64);
    CHECK_STATUS(gran_sample(m, 3, N, format, out, need - 1), GRAN_STATUS_BUFFER_TOO_SMALL);
    CHECK_ERROR_HAS(needed);
    CHECK(all_bytes(out, 0xAB, need_steps + 64));
    CHECK_STATUS(gran_sample(m, 3, N, format, out, 0), GRAN_STATUS_BUFFER_TOO_SMALL);
    CHECK_STATUS(gran_sample(m, 3, 0, format, out, need), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_sample(m, 3, N, format, NULL, need), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK(all_bytes(out, 0xAB, need_steps + 64));
    /* Exactly enough; then a larger buffer: the bytes past `need` are left alone. */
    CHECK_OK(gran_sample(m, 3, N, format, out, need));
    CHECK(all_bytes(out + need, 0xAB, need_steps + 64 - need));
    CHECK_OK(gran_sample(m, 3, N, format, gen, need + 64));
    CHECK(memcmp(out, gen, need) == 0); /* deterministic */
    if (format == GRAN_PIXEL_FORMAT_F32_CHW) {
        const float *f = (const float *)(void *)out;
        for (i = 0; i < N * IMG; i++) CHECK(f[i] >= 0.0f && f[i] <= 1.0f);
    }
    /* Image i does not depend on count. */
    CHECK_OK(gran_sample(m, 3, 1, format, one, per));
    if (format == GRAN_PIXEL_FORMAT_F32_CHW)
        CHECK(max_diff_f32((const float *)(void *)one, (const float *)(void *)out, IMG) <= 1.0f / 255);
    else
        CHECK(max_diff_u8(one, out, per) <= 1);

    /* gran_sample_steps: T * count images; the last block equals gran_sample's output. */
    snprintf(needed, sizeof needed, "%zu", need_steps);
    memset(steps, 0xCD, need_steps + 64);
    CHECK_STATUS(gran_sample_steps(m, 3, N, format, steps, need_steps - 1), GRAN_STATUS_BUFFER_TOO_SMALL);
    CHECK_ERROR_HAS(needed);
    CHECK_STATUS(gran_sample_steps(m, 3, N, format, steps, need), GRAN_STATUS_BUFFER_TOO_SMALL);
    CHECK(all_bytes(steps, 0xCD, need_steps + 64));
    CHECK_OK(gran_sample_steps(m, 3, N, format, steps, need_steps));
    CHECK(all_bytes(steps + need_steps, 0xCD, 64));
    CHECK(memcmp(steps + (T - 1) * need, out, need) == 0);
    /* The canvases change from step to step. */
    CHECK(memcmp(steps, steps + need, need) != 0);

    /* gran_generate on gran_latents' output: gran_sample's images. */
    CHECK_OK(gran_latents(m, 3, N, z, N * ZDIM));
    memset(gen, 0xEF, need + 64);
    CHECK_STATUS(gran_generate(m, z, N, format, gen, need - 1), GRAN_STATUS_BUFFER_TOO_SMALL);
    CHECK_STATUS(gran_generate(m, z, 0, format, gen, need), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_generate(m, NULL, N, format, gen, need), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK(all_bytes(gen, 0xEF, need + 64));
    CHECK_OK(gran_generate(m, z, N, format, gen, need));
    CHECK(all_bytes(gen + need, 0xEF, 64));
    if (format == GRAN_PIXEL_FORMAT_F32_CHW)
        CHECK(max_diff_f32((const float *)(void *)gen, (const float *)(void *)out, N * IMG) <= 1.0f / 255);
    else
        CHECK_MSG(max_diff_u8(gen, out, need) <= 1, "generate vs sample: %d", max_diff_u8(gen, out, need));
    /* A NaN or infinite latent: INVALID_ARGUMENT, out untouched. */
    z[N * ZDIM - 1] = NAN;
    memset(gen, 0xEF, need + 64);
    CHECK_STATUS(gran_generate(m, z, N, format, gen, need), GRAN_STATUS_INVALID_ARGUMENT);
    z[N * ZDIM - 1] = 0.0f;
    z[0] = -INFINITY;
    CHECK_STATUS(gran_generate(m, z, N, format, gen, need), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK(all_bytes(gen, 0xEF, need + 64));
    free(one);
    free(gen);
    free(steps);
    free(out);
}

static void test_draw(void) {
    size_t i;
    for (i = 0; i < 3; i++) {
        GranModel m = load(FILES[i]);
        unsigned char hwc[4 * IMG], chw[4 * IMG];
        float f[4 * IMG];
        size_t k;
        draw_format(m, GRAN_PIXEL_FORMAT_U8_HWC);
        draw_format(m, GRAN_PIXEL_FORMAT_U8_CHW);
        draw_format(m, GRAN_PIXEL_FORMAT_F32_CHW);
        /* One channel: HWC and CHW are the same bytes; the floats round to them. */
        CHECK_OK(gran_sample(m, 9, 4, GRAN_PIXEL_FORMAT_U8_HWC, hwc, sizeof hwc));
        CHECK_OK(gran_sample(m, 9, 4, GRAN_PIXEL_FORMAT_U8_CHW, chw, sizeof chw));
        CHECK_OK(gran_sample(m, 9, 4, GRAN_PIXEL_FORMAT_F32_CHW, f, sizeof f));
        CHECK(memcmp(hwc, chw, sizeof hwc) == 0);
        for (k = 0; k < 4 * IMG; k++) CHECK(fabsf(f[k] * 255.0f - (float)hwc[k]) <= 0.5f + 1e-3f);
        /* Unknown formats. */
        CHECK_STATUS(gran_sample(m, 9, 1, 3, hwc, sizeof hwc), GRAN_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(gran_sample_steps(m, 9, 1, UINT32_MAX, hwc, sizeof hwc), GRAN_STATUS_INVALID_ARGUMENT);
        /* A count of 2^32 - 1 with a small buffer: refused before anything is drawn. */
        CHECK_STATUS(gran_sample(m, 9, UINT32_MAX, GRAN_PIXEL_FORMAT_U8_HWC, hwc, sizeof hwc),
                     GRAN_STATUS_BUFFER_TOO_SMALL);
        CHECK_OK(gran_model_free(m));
    }
}

/* The test models are unconditional: every call that names classes is INVALID_ARGUMENT and
   leaves out untouched, as are malformed class arguments (runtime/tests/classes.rs draws
   class-conditional models). */
static void test_classes_unconditional(void) {
    enum { N = 2 };
    unsigned char out[T * N * IMG];
    const uint32_t one = 0, each[N] = {0, 1};
    float z[N * ZDIM] = {0};
    size_t i;
    for (i = 0; i < 3; i++) {
        GranModel m = load(FILES[i]);
        memset(out, 0xAB, sizeof out);
        CHECK_STATUS(gran_sample_class(m, 1, N, &one, 1, GRAN_PIXEL_FORMAT_U8_HWC, out, N * IMG),
                     GRAN_STATUS_INVALID_ARGUMENT);
        CHECK_ERROR_HAS("unconditional");
        CHECK_STATUS(gran_sample_steps_class(m, 1, N, each, N, GRAN_PIXEL_FORMAT_U8_HWC, out, sizeof out),
                     GRAN_STATUS_INVALID_ARGUMENT);
        CHECK_ERROR_HAS("unconditional");
        CHECK_STATUS(gran_generate_class(m, z, N, each, N, GRAN_PIXEL_FORMAT_U8_HWC, out, N * IMG),
                     GRAN_STATUS_INVALID_ARGUMENT);
        CHECK_ERROR_HAS("unconditional");
        /* NULL classes; a classes_len other than 1 or count. */
        CHECK_STATUS(gran_sample_class(m, 1, N, NULL, 1, GRAN_PIXEL_FORMAT_U8_HWC, out, N * IMG),
                     GRAN_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(gran_sample_class(m, 1, N, each, 0, GRAN_PIXEL_FORMAT_U8_HWC, out, N * IMG),
                     GRAN_STATUS_INVALID_ARGUMENT);
        CHECK_ERROR_HAS("classes_len");
        CHECK_STATUS(gran_generate_class(m, z, N, each, N + 1, GRAN_PIXEL_FORMAT_U8_HWC, out, N * IMG),
                     GRAN_STATUS_INVALID_ARGUMENT);
        CHECK(all_bytes(out, 0xAB, sizeof out));
        /* And they still sample without classes. */
        CHECK_OK(gran_sample(m, 1, N, GRAN_PIXEL_FORMAT_U8_HWC, out, N * IMG));
        CHECK_OK(gran_model_free(m));
    }
}

static void test_threads(void) {
    enum { N = 16 };
    GranModel m = load(FILES[2]);
    static unsigned char a[N * IMG], b[N * IMG];
    static float fa[N * IMG], fb[N * IMG];
    CHECK(gran_num_threads() == 1); /* the default */
    CHECK_STATUS(gran_set_num_threads(0), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("0");
    CHECK_STATUS(gran_set_num_threads(257), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_set_num_threads(-1), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_set_num_threads(INT32_MIN), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK(gran_num_threads() == 1); /* refusals change nothing */
    CHECK_OK(gran_sample(m, 21, N, GRAN_PIXEL_FORMAT_U8_HWC, a, sizeof a));
    CHECK_OK(gran_sample(m, 21, N, GRAN_PIXEL_FORMAT_F32_CHW, fa, sizeof fa));
    CHECK_OK(gran_set_num_threads(4));
    CHECK(gran_num_threads() == 4);
    CHECK_OK(gran_sample(m, 21, N, GRAN_PIXEL_FORMAT_U8_HWC, b, sizeof b));
    CHECK_OK(gran_sample(m, 21, N, GRAN_PIXEL_FORMAT_F32_CHW, fb, sizeof fb));
    CHECK_MSG(max_diff_u8(a, b, sizeof a) <= 1, "4 threads vs 1: %d", max_diff_u8(a, b, sizeof a));
    CHECK(max_diff_f32(fa, fb, N * IMG) <= 1.0f / 255);
    /* More threads than images, and the most allowed. */
    CHECK_OK(gran_set_num_threads(256));
    CHECK_OK(gran_sample(m, 21, 3, GRAN_PIXEL_FORMAT_U8_HWC, b, 3 * IMG));
    CHECK(max_diff_u8(a, b, 3 * IMG) <= 1);
    CHECK_OK(gran_sample_steps(m, 21, 2, GRAN_PIXEL_FORMAT_U8_HWC, b, T * 2 * IMG));
    CHECK_OK(gran_set_num_threads(1));
    CHECK(gran_num_threads() == 1);
    CHECK_OK(gran_model_free(m));
}

/* The PNG's width and height from its IHDR chunk (big-endian, bytes 16..23). */
static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void test_write_png(void) {
    static const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    GranModel m = load(FILES[0]);
    static unsigned char px[64 * IMG];
    static float fpx[6 * IMG];
    char path[1024], dir[1024];
    unsigned char *png;
    size_t len;
    struct stat st;
    CHECK_OK(gran_sample(m, 1, 64, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px));
    tmp_path(path, sizeof path, "grid.png");
    CHECK_OK(gran_write_png(path, px, 64, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, 8));
    png = read_file(path, &len);
    CHECK(len > 33 + 12 && memcmp(png, signature, 8) == 0);
    CHECK(memcmp(png + 12, "IHDR", 4) == 0);
    /* 8 tiles of 28 with 2 pixels between them: 8 * 30 - 2 = 238 each way; 8-bit grey. */
    CHECK_MSG(be32(png + 16) == 238 && be32(png + 20) == 238, "%ux%u", (unsigned)be32(png + 16),
              (unsigned)be32(png + 20));
    CHECK(png[24] == 8 && png[25] == 0);
    CHECK(memcmp(png + len - 8, "IEND", 4) == 0);
    free(png);
    /* Floats, 6 images in 4 columns: 4 * 30 - 2 = 118 wide, 2 rows: 58 high. Replacing a file. */
    CHECK_OK(gran_sample(m, 1, 6, GRAN_PIXEL_FORMAT_F32_CHW, fpx, sizeof fpx));
    CHECK_OK(gran_write_png(path, fpx, 6, 28, 28, 1, GRAN_PIXEL_FORMAT_F32_CHW, 4));
    png = read_file(path, &len);
    CHECK(memcmp(png, signature, 8) == 0 && be32(png + 16) == 118 && be32(png + 20) == 58);
    free(png);
    CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode));
    /* A folder as the path: IO, the folder left as it was. */
    tmp_path(dir, sizeof dir, "adir");
    CHECK(mkdir(dir, 0700) == 0);
    CHECK_STATUS(gran_write_png(dir, px, 1, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, 1), GRAN_STATUS_IO);
    CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode));
    /* A folder that does not exist. */
    tmp_path(dir, sizeof dir, "no/such/folder.png");
    CHECK_STATUS(gran_write_png(dir, px, 1, 28, 28, 1, GRAN_PIXEL_FORMAT_U8_HWC, 1), GRAN_STATUS_IO);
    /* Bad arguments, refused before the pixels are read. */
    tmp_path(path, sizeof path, "bad.png");
    CHECK_STATUS(gran_write_png(path, px, 0, 28, 28, 1, 0, 1), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_write_png(path, px, 1, 28, 28, 2, 0, 1), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_write_png(path, px, 1, 28, 28, 1, 0, 0), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_write_png(path, px, 1, 0, 28, 1, 0, 1), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_write_png(path, px, UINT32_MAX, 16384, 16384, 3, 0, 1), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_write_png(path, px, 1, 28, 28, 1, 3, 1), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_write_png(path, NULL, 1, 28, 28, 1, 0, 1), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_write_png(NULL, px, 1, 28, 28, 1, 0, 1), GRAN_STATUS_INVALID_ARGUMENT);
    fpx[5] = 1.5f;
    CHECK_STATUS(gran_write_png(path, fpx, 1, 28, 28, 1, GRAN_PIXEL_FORMAT_F32_CHW, 1),
                 GRAN_STATUS_INVALID_ARGUMENT);
    CHECK(stat(path, &st) != 0); /* nothing written */
    CHECK_OK(gran_model_free(m));
}

static void test_handles(void) {
    GranModel m = load(FILES[0]);
    const GranModel forged[] = {0, m + 1, m + 1000, UINT64_MAX, (uint64_t)1 << 63, 0xDEADBEEFCAFEF00DULL};
    unsigned char px[IMG];
    float z[ZDIM];
    GranModelConfig c;
    uint64_t step;
    int32_t flag;
    size_t i;
    /* Freed, 0 and forged handles: INVALID_HANDLE from every call that takes one. */
    CHECK_OK(gran_model_free(m));
    for (i = 0; i <= sizeof forged / sizeof forged[0]; i++) {
        GranModel h = i == 0 ? m : forged[i - 1];
        const GranStatus bad = GRAN_STATUS_INVALID_HANDLE;
        gran_model_config_init(&c);
        CHECK_STATUS(gran_model_config(h, &c), bad);
        CHECK_STATUS(gran_model_step(h, &step), bad);
        CHECK_STATUS(gran_model_set_generator(h, GRAN_GENERATOR_RAW), bad);
        CHECK_STATUS(gran_model_has_averaged(h, &flag), bad);
        CHECK_STATUS(gran_model_inference_only(h, &flag), bad);
        CHECK_STATUS(gran_sample(h, 1, 1, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px), bad);
        CHECK_STATUS(gran_sample_steps(h, 1, 1, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px), bad);
        CHECK_STATUS(gran_latents(h, 1, 1, z, ZDIM), bad);
        CHECK_STATUS(gran_generate(h, z, 1, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px), bad);
        if (h != 0) CHECK_STATUS(gran_model_free(h), bad);
    }
    CHECK_OK(gran_model_free(0));
    CHECK_STATUS(gran_model_free(m), GRAN_STATUS_INVALID_HANDLE);
    CHECK_ERROR_HAS("handle");
    /* A handle is never reused. */
    {
        GranModel again = load(FILES[0]);
        CHECK(again != m);
        CHECK_OK(gran_model_free(again));
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Concurrency: 8 threads draw from one model while another thread frees a second model
 * they also draw from. */

enum { SAMPLERS = 8, ROUNDS = 12, BATCH = 4 };

typedef struct {
    GranModel shared, doomed;
    const unsigned char *reference; /* BATCH images of `shared`, seed 5 */
    int freed;                      /* set by the freeing thread once gran_model_free returned */
    int index;
    int ok_after_free;     /* calls on `doomed` that succeeded after it was freed */
    int invalid_on_doomed; /* INVALID_HANDLE from `doomed` */
    int failures;
    char message[256];
} Shared;

typedef struct {
    Shared *s;
    int index;
} Worker;

static void *sampler(void *arg) {
    Worker *w = (Worker *)arg;
    Shared *s = w->s;
    unsigned char px[BATCH * IMG];
    float z[BATCH * ZDIM];
    int r;
    for (r = 0; r < ROUNDS; r++) {
        int freed_before = __atomic_load_n(&s->freed, __ATOMIC_SEQ_CST);
        GranStatus st;
        /* The shared model: always OK, always the reference images. */
        memset(px, 0, sizeof px);
        st = gran_sample(s->shared, 5, BATCH, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px);
        if (st != GRAN_STATUS_OK || memcmp(px, s->reference, sizeof px) != 0) __atomic_add_fetch(&s->failures, 1, __ATOMIC_SEQ_CST);
        if ((r + w->index) % 3 == 0) {
            /* Latents and images from them, on the same model, at the same time. */
            unsigned char gen[BATCH * IMG];
            st = gran_latents(s->shared, 5, BATCH, z, BATCH * ZDIM);
            if (st == GRAN_STATUS_OK) st = gran_generate(s->shared, z, BATCH, GRAN_PIXEL_FORMAT_U8_HWC, gen, sizeof gen);
            if (st != GRAN_STATUS_OK || max_diff_u8(gen, s->reference, sizeof gen) > 1)
                __atomic_add_fetch(&s->failures, 1, __ATOMIC_SEQ_CST);
        }
        /* The doomed model: OK until it is freed, INVALID_HANDLE after; nothing else. */
        st = gran_sample_steps(s->doomed, 7, 1, GRAN_PIXEL_FORMAT_U8_HWC, px, T * IMG);
        if (st == GRAN_STATUS_INVALID_HANDLE) {
            char msg[256];
            __atomic_add_fetch(&s->invalid_on_doomed, 1, __ATOMIC_SEQ_CST);
            gran_last_error(msg, sizeof msg);
            if (strstr(msg, "handle") == NULL) __atomic_add_fetch(&s->failures, 1, __ATOMIC_SEQ_CST);
        } else if (st == GRAN_STATUS_OK) {
            if (freed_before) __atomic_add_fetch(&s->ok_after_free, 1, __ATOMIC_SEQ_CST);
        } else {
            __atomic_add_fetch(&s->failures, 1, __ATOMIC_SEQ_CST);
            gran_last_error(s->message, sizeof s->message);
        }
    }
    return NULL;
}

static void *freer(void *arg) {
    Shared *s = (Shared *)arg;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    if (gran_model_free(s->doomed) != GRAN_STATUS_OK) __atomic_add_fetch(&s->failures, 1, __ATOMIC_SEQ_CST);
    __atomic_store_n(&s->freed, 1, __ATOMIC_SEQ_CST);
    /* A second free from this thread: INVALID_HANDLE. */
    if (gran_model_free(s->doomed) != GRAN_STATUS_INVALID_HANDLE) __atomic_add_fetch(&s->failures, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void test_threads_concurrent(void) {
    static unsigned char reference[BATCH * IMG];
    Shared s;
    Worker w[SAMPLERS];
    pthread_t t[SAMPLERS + 1];
    int i;
    memset(&s, 0, sizeof s);
    s.shared = load(FILES[2]);
    s.doomed = load(FILES[0]);
    CHECK_OK(gran_sample(s.shared, 5, BATCH, GRAN_PIXEL_FORMAT_U8_HWC, reference, sizeof reference));
    s.reference = reference;
    for (i = 0; i < SAMPLERS; i++) {
        w[i].s = &s;
        w[i].index = i;
        CHECK(pthread_create(&t[i], NULL, sampler, &w[i]) == 0);
    }
    CHECK(pthread_create(&t[SAMPLERS], NULL, freer, &s) == 0);
    for (i = 0; i <= SAMPLERS; i++) CHECK(pthread_join(t[i], NULL) == 0);
    CHECK_MSG(s.failures == 0, "%d failures (%s)", s.failures, s.message);
    CHECK_MSG(s.ok_after_free == 0, "%d calls on a freed model succeeded", s.ok_after_free);
    /* The model is gone for every thread; the shared one still draws the same. */
    CHECK_STATUS(gran_model_free(s.doomed), GRAN_STATUS_INVALID_HANDLE);
    {
        unsigned char px[BATCH * IMG];
        CHECK_OK(gran_sample(s.shared, 5, BATCH, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px));
        CHECK(memcmp(px, reference, sizeof px) == 0);
    }
    printf("    (%d calls on the freed model were INVALID_HANDLE)\n", s.invalid_on_doomed);
    CHECK_OK(gran_model_free(s.shared));
}

/* ---------------------------------------------------------------------------------------- */
/* Runner                                                                                    */


static const TestCase TESTS[] = {
    {"versions", test_versions},
    {"status_strings", test_status_strings},
    {"last_error", test_last_error},
    {"load", test_load},
    {"config", test_config},
    {"step_and_generators", test_step_and_generators},
    {"latents", test_latents},
    {"draw", test_draw},
    {"classes_unconditional", test_classes_unconditional},
    {"threads", test_threads},
    {"write_png", test_write_png},
    {"handles", test_handles},
    {"threads_concurrent", test_threads_concurrent},
};

static void remove_tmp(void) {
    char cmd[600];
    if (g_tmp[0] == '\0') return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    CHECK(system(cmd) == 0);
    g_tmp[0] = '\0';
}

int main(int argc, char **argv) {
    int status = run_tests(TESTS, sizeof TESTS / sizeof TESTS[0], argc, argv, remove_tmp, 120);
    printf("runtime-c: %d passed, %d failed\n", g_tests_ran - g_tests_failed, g_tests_failed);
    return status;
}
