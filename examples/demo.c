/*
 * The main job of gran, as a C program linked against libgran like any user's program.
 *
 * Trains a T = 3 GRAN and the single-step T = 1 baseline on the built-in MNIST digits, writes
 * each one's checkpoint and 8x8 sample grid, the step-by-step drawing of the T = 3 model (rows:
 * images; columns: the canvas after each step), and prints the GAM comparison of the two on the
 * held-out digits.
 *
 *   demo [--data DIR] [--out DIR] [--iterations N] [--width-scale S] [--seed N]
 */
#define _POSIX_C_SOURCE 199309L
#include "gran.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <sys/stat.h>

#define SIDE 28
#define GRID 64

static int check(GranStatus s, const char *what) {
    if (s == GRAN_STATUS_OK) return 0;
    char msg[512];
    gran_last_error(msg, sizeof msg);
    fprintf(stderr, "demo: %s failed: %s: %s\n", what, gran_status_string(s), msg);
    return 1;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int32_t on_progress(const GranProgress *p, void *user_data) {
    const char *name = (const char *)user_data;
    printf("[%s] step %5llu/%llu  D loss %.3f  G loss %.3f  D(x) %.2f  D(G(z)) %.2f  %.0f img/s%s\n", name,
           (unsigned long long)p->step, (unsigned long long)p->total_steps, p->d_loss, p->g_loss, p->d_real,
           p->d_fake, p->images_per_second, p->d_dominates ? "  (D wins outright)" : "");
    fflush(stdout);
    return 0;
}

static void on_log(GranLogLevel level, const char *message, void *user_data) {
    (void)user_data;
    fprintf(stderr, "gran %s: %s\n", level >= GRAN_LOG_WARN ? "warning" : "info", message);
}

struct options {
    const char *data;
    const char *out;
    unsigned long long iterations;
    float width_scale;
    unsigned long long seed;
};

static int parse(int argc, char **argv, struct options *o) {
    int i;
    for (i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--data")) o->data = argv[i + 1];
        else if (!strcmp(argv[i], "--out")) o->out = argv[i + 1];
        else if (!strcmp(argv[i], "--iterations")) o->iterations = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--width-scale")) o->width_scale = strtof(argv[i + 1], NULL);
        else if (!strcmp(argv[i], "--seed")) o->seed = strtoull(argv[i + 1], NULL, 10);
        else return 1;
    }
    return i != argc;
}

/* Trains one model of `steps` drawing steps; writes its checkpoint and sample grid. */
static int train_one(const struct options *o, GranDataset train, uint32_t steps, GranModel *out) {
    char name[16], path[1024];
    GranModelConfig mc;
    GranTrainConfig tc;
    GranProgress last;
    GranModel m;
    static uint8_t grid[GRID * SIDE * SIDE];
    double t0 = now_seconds();

    snprintf(name, sizeof name, "T=%u", (unsigned)steps);
    gran_model_config_init(&mc);
    mc.steps = steps;
    mc.width_scale = o->width_scale;
    mc.seed = o->seed;
    if (check(gran_model_create(&mc, &m), "gran_model_create")) return 1;

    gran_train_config_init(&tc);
    tc.iterations = o->iterations;
    tc.seed = o->seed;
    tc.report_every = 250;
    tc.on_progress = on_progress;
    tc.user_data = name;
    last.struct_size = sizeof last;
    if (check(gran_train(m, train, &tc, &last), "gran_train")) return gran_model_free(m), 1;
    printf("[%s] trained %llu steps in %.1f s\n", name, (unsigned long long)last.step, now_seconds() - t0);

    snprintf(path, sizeof path, "%s/gran_t%u.safetensors", o->out, (unsigned)steps);
    if (check(gran_model_save(m, path), "gran_model_save")) return gran_model_free(m), 1;
    printf("[%s] wrote %s\n", name, path);
    if (check(gran_sample(m, o->seed, GRID, GRAN_PIXEL_FORMAT_U8_HWC, grid, sizeof grid), "gran_sample")) return gran_model_free(m), 1;
    snprintf(path, sizeof path, "%s/samples_t%u.png", o->out, (unsigned)steps);
    if (check(gran_write_png(path, grid, GRID, SIDE, SIDE, 1, GRAN_PIXEL_FORMAT_U8_HWC, 8), "gran_write_png")) return gran_model_free(m), 1;
    printf("[%s] wrote %s\n", name, path);
    *out = m;
    return 0;
}

/* The step-by-step picture: 8 images (rows) x the canvas after each of the T steps (columns). */
static int write_steps(const struct options *o, GranModel m, uint32_t steps) {
    enum { ROWS = 8, IMG = SIDE * SIDE };
    char path[1024];
    size_t n = (size_t)steps * ROWS * IMG;
    uint8_t *canvases = malloc(n), *picture = malloc(n);
    uint32_t t, r;
    int rc = 1;
    if (!canvases || !picture) goto done;
    /* gran_sample_steps gives [T][count][image]; the picture wants [count][T][image]. */
    if (check(gran_sample_steps(m, o->seed, ROWS, GRAN_PIXEL_FORMAT_U8_HWC, canvases, n), "gran_sample_steps")) goto done;
    for (r = 0; r < ROWS; r++)
        for (t = 0; t < steps; t++)
            memcpy(picture + ((size_t)r * steps + t) * IMG, canvases + ((size_t)t * ROWS + r) * IMG, IMG);
    snprintf(path, sizeof path, "%s/steps_t%u.png", o->out, (unsigned)steps);
    if (check(gran_write_png(path, picture, steps * ROWS, SIDE, SIDE, 1, GRAN_PIXEL_FORMAT_U8_HWC, steps), "gran_write_png")) goto done;
    printf("wrote %s (rows: images; columns: the canvas after each step)\n", path);
    rc = 0;
done:
    free(canvases);
    free(picture);
    return rc;
}

static const char *verdict_name(GranGamVerdict v) {
    switch (v) {
    case GRAN_GAM_A_WINS: return "T=3 wins";
    case GRAN_GAM_B_WINS: return "T=1 wins";
    case GRAN_GAM_TIE: return "tie";
    default: return "undecided (r_test outside the tolerance)";
    }
}

int main(int argc, char **argv) {
    struct options o = {"data/mnist10k", "out", 2000, 0.25f, 1};
    char images[1024], labels[1024];
    GranDataset train = 0, test = 0;
    GranModel gran3 = 0, gran1 = 0;
    GranGamConfig gc;
    GranGamResult r;
    double t0 = now_seconds();
    int rc = 1;

    if (parse(argc, argv, &o)) {
        fprintf(stderr, "usage: demo [--data DIR] [--out DIR] [--iterations N] [--width-scale S] [--seed N]\n");
        return 2;
    }
    if (mkdir(o.out, 0755) != 0 && errno != EEXIST) {
        perror(o.out);
        return 1;
    }
    gran_set_log_callback(on_log, NULL, GRAN_LOG_WARN);
    printf("gran %s (ABI %u), %d CUDA device(s)\n", gran_version(), gran_abi_version(), gran_cuda_device_count());

    snprintf(images, sizeof images, "%s/train-images-idx3-ubyte.gz", o.data);
    snprintf(labels, sizeof labels, "%s/train-labels-idx1-ubyte.gz", o.data);
    if (check(gran_dataset_load_idx(images, labels, &train), "loading the training digits")) goto done;
    snprintf(images, sizeof images, "%s/t10k-images-idx3-ubyte.gz", o.data);
    snprintf(labels, sizeof labels, "%s/t10k-labels-idx1-ubyte.gz", o.data);
    if (check(gran_dataset_load_idx(images, labels, &test), "loading the held-out digits")) goto done;

    if (train_one(&o, train, 3, &gran3)) goto done;
    if (write_steps(&o, gran3, 3)) goto done;
    if (train_one(&o, train, 1, &gran1)) goto done;

    gran_gam_config_init(&gc);
    gc.seed = o.seed;
    r.struct_size = sizeof r;
    if (check(gran_gam(gran3, gran1, test, &gc, &r), "gran_gam")) goto done;
    printf("\nGAM, A = GRAN T=3, B = single-step T=1 (%llu held-out digits, %llu samples each):\n",
           (unsigned long long)r.test_count, (unsigned long long)r.sample_count);
    printf("  test errors:   D_A %.4f  D_B %.4f   r_test   = %.3f\n", r.test_error_a, r.test_error_b, r.r_test);
    printf("  sample errors: D_A on G_B %.4f  D_B on G_A %.4f   r_sample = %.3f\n", r.sample_error_a, r.sample_error_b, r.r_sample);
    printf("  verdict: %s (tolerance on r_test %.2f)\n", verdict_name(r.verdict), gc.tolerance);
    printf("wall time %.1f s\n", now_seconds() - t0);
    rc = 0;
done:
    gran_model_free(gran3);
    gran_model_free(gran1);
    gran_dataset_free(train);
    gran_dataset_free(test);
    return rc;
}
