/*
 * runtime_demo: draws images from a trained GRAN model with libgran_runtime alone (no libtorch,
 * no C++): loads a generator export or a training checkpoint, prints its configuration, writes
 * a PNG grid of 64 samples, and a second PNG of the step-by-step canvases of 8 images (one row
 * per drawing step, the last row the finished images).
 *
 *   cc -std=c99 -Iinclude examples/runtime_demo.c -Ltarget/release -lgran_runtime -o runtime_demo
 *   ./runtime_demo model.safetensors samples.png [steps.png]
 *
 * Without a third argument the steps go beside the grid: samples.png -> samples_steps.png.
 * Every call's status is checked; a failure prints gran_last_error and ends with status 1.
 */
#include "gran_runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLES 64
#define SAMPLE_COLUMNS 8
#define STEP_IMAGES 8

/* Prints what failed, the status and the library's message, and ends the program. */
static void fail(const char *what, GranStatus status) {
    char message[1024];
    size_t n = gran_last_error(message, sizeof message);
    fprintf(stderr, "runtime_demo: %s failed: %s: %s%s\n", what, gran_status_string(status), message,
            n >= sizeof message ? " (cut)" : "");
    exit(1);
}

#define CALL(what, expr)                                                                          \
    do {                                                                                          \
        GranStatus s_ = (expr);                                                                   \
        if (s_ != GRAN_STATUS_OK) fail(what, s_);                                                 \
    } while (0)

/* `path` with ".png" (or nothing) replaced by "_steps.png", in a malloc'd string. */
static char *steps_path(const char *path) {
    size_t len = strlen(path);
    char *out;
    if (len >= 4 && strcmp(path + len - 4, ".png") == 0) len -= 4;
    out = (char *)malloc(len + sizeof "_steps.png");
    if (out == NULL) {
        fprintf(stderr, "runtime_demo: out of memory\n");
        exit(1);
    }
    memcpy(out, path, len);
    memcpy(out + len, "_steps.png", sizeof "_steps.png");
    return out;
}

int main(int argc, char **argv) {
    GranModel model = 0;
    GranModelConfig mc;
    uint64_t step = 0;
    int32_t averaged = 0;
    size_t image_bytes, grid_bytes, steps_bytes;
    unsigned char *pixels, *canvases;
    char *steps_owned = NULL;
    const char *steps_png;

    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s MODEL.safetensors SAMPLES.png [STEPS.png]\n", argv[0]);
        return 2;
    }
    if (gran_abi_version() != GRAN_ABI_VERSION) {
        fprintf(stderr, "runtime_demo: built for ABI %d, the library is ABI %u\n", GRAN_ABI_VERSION,
                (unsigned)gran_abi_version());
        return 1;
    }
    printf("libgran_runtime %s (ABI %u)\n", gran_version(), (unsigned)gran_abi_version());

    CALL("gran_model_load", gran_model_load(argv[1], NULL, &model));
    gran_model_config_init(&mc);
    CALL("gran_model_config", gran_model_config(model, &mc));
    CALL("gran_model_step", gran_model_step(model, &step));
    CALL("gran_model_has_averaged", gran_model_has_averaged(model, &averaged));
    printf("model %s: %ux%ux%u images, %u drawing steps, z_dim %u, hidden_dim %u, width scale %g,\n"
           "  trained %llu steps (seed %llu)%s\n",
           argv[1], (unsigned)mc.height, (unsigned)mc.width, (unsigned)mc.channels, (unsigned)mc.steps,
           (unsigned)mc.z_dim, (unsigned)mc.hidden_dim, (double)mc.width_scale, (unsigned long long)step,
           (unsigned long long)mc.seed, averaged ? ", drawing with its averaged generator" : "");

    /* 64 samples as bytes, image by image, row by row, channel last: a grid of 8 columns. */
    image_bytes = (size_t)mc.height * mc.width * mc.channels;
    grid_bytes = SAMPLES * image_bytes;
    steps_bytes = (size_t)mc.steps * STEP_IMAGES * image_bytes;
    pixels = (unsigned char *)malloc(grid_bytes);
    canvases = (unsigned char *)malloc(steps_bytes);
    steps_png = argc == 4 ? argv[3] : (steps_owned = steps_path(argv[2]));
    if (pixels == NULL || canvases == NULL) {
        fprintf(stderr, "runtime_demo: out of memory\n");
        return 1;
    }
    CALL("gran_sample", gran_sample(model, 1, SAMPLES, GRAN_PIXEL_FORMAT_U8_HWC, pixels, grid_bytes));
    CALL("gran_write_png", gran_write_png(argv[2], pixels, SAMPLES, mc.height, mc.width, mc.channels,
                                          GRAN_PIXEL_FORMAT_U8_HWC, SAMPLE_COLUMNS));
    printf("wrote %s: %d samples (seed 1), %d per row\n", argv[2], SAMPLES, SAMPLE_COLUMNS);

    /* The canvas after each step of 8 images: [T][8][image], so a grid of 8 columns has one row
     * per step, top to bottom. */
    CALL("gran_sample_steps",
         gran_sample_steps(model, 1, STEP_IMAGES, GRAN_PIXEL_FORMAT_U8_HWC, canvases, steps_bytes));
    CALL("gran_write_png", gran_write_png(steps_png, canvases, mc.steps * STEP_IMAGES,
                                          mc.height, mc.width, mc.channels, GRAN_PIXEL_FORMAT_U8_HWC,
                                          STEP_IMAGES));
    printf("wrote %s: the canvases of the first %d images, one row per step (%u rows)\n",
           steps_png, STEP_IMAGES, (unsigned)mc.steps);

    free(steps_owned);
    free(canvases);
    free(pixels);
    CALL("gran_model_free", gran_model_free(model));
    return 0;
}
