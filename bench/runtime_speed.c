/*
 * Drawing speed through the sampling calls both libraries share (gran_runtime.h is a subset of
 * gran.h): compiled once against libgran and once against libgran_runtime, the same program
 * times the same calls on the same file. bench/runtime.sh alternates the two and takes medians.
 *
 *   runtime_speed MODEL COUNT ROUNDS [THREADS]
 *
 * Prints one line: the per-call times in microseconds of ROUNDS calls of gran_sample with COUNT
 * images (after 3 warm-up calls), each with a new seed. THREADS (optional) is passed to
 * gran_set_num_threads first.
 */
#define _POSIX_C_SOURCE 199309L
#include "gran_runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int check(GranStatus s, const char *what) {
    if (s != GRAN_STATUS_OK) {
        char msg[512];
        gran_last_error(msg, sizeof msg);
        fprintf(stderr, "%s: %s: %s\n", what, gran_status_string(s), msg);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL COUNT ROUNDS [THREADS]\n", argv[0]);
        return 2;
    }
    unsigned count = (unsigned)atoi(argv[2]), rounds = (unsigned)atoi(argv[3]);
    if (argc > 4 && check(gran_set_num_threads(atoi(argv[4])), "threads")) return 1;
    GranModel m;
    if (check(gran_model_load(argv[1], NULL, &m), "load")) return 1;
    GranModelConfig c;
    gran_model_config_init(&c);
    if (check(gran_model_config(m, &c), "config")) return 1;
    size_t bytes = (size_t)count * c.height * c.width * c.channels;
    unsigned char *px = malloc(bytes);
    if (!px) return 1;
    for (unsigned i = 0; i < 3; i++)
        if (check(gran_sample(m, 1000 + i, count, GRAN_PIXEL_FORMAT_U8_HWC, px, bytes), "sample")) return 1;
    for (unsigned r = 0; r < rounds; r++) {
        double t0 = now_us();
        if (check(gran_sample(m, r, count, GRAN_PIXEL_FORMAT_U8_HWC, px, bytes), "sample")) return 1;
        printf("%s%.1f", r ? " " : "", now_us() - t0);
    }
    printf("\n");
    free(px);
    return check(gran_model_free(m), "free");
}
