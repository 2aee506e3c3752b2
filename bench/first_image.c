/*
 * Process start to the first image written: load a model, draw one image, write it as a PNG.
 * Compiled against libgran and against libgran_runtime (the same calls); bench/runtime.sh runs
 * each under /usr/bin/time -v for the wall time and the peak memory of the whole process.
 *
 *   first_image MODEL OUT.png
 */
#include "gran_runtime.h"

#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL OUT.png\n", argv[0]);
        return 2;
    }
    GranModel m;
    GranModelConfig c;
    unsigned char px[128 * 128 * 3];
    gran_model_config_init(&c);
    if (gran_model_load(argv[1], NULL, &m) != GRAN_STATUS_OK || gran_model_config(m, &c) != GRAN_STATUS_OK ||
        gran_sample(m, 1, 1, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px) != GRAN_STATUS_OK ||
        gran_write_png(argv[2], px, 1, c.height, c.width, c.channels, GRAN_PIXEL_FORMAT_U8_HWC, 1) != GRAN_STATUS_OK) {
        char msg[512];
        gran_last_error(msg, sizeof msg);
        fprintf(stderr, "first_image: %s\n", msg);
        return 1;
    }
    return gran_model_free(m) != GRAN_STATUS_OK;
}
