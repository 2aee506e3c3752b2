/*
 * An out-of-tree program that uses an installed libgran: creates a tiny model, samples four
 * images and prints OK. `make test-install` builds it twice against a temporary PREFIX, with
 * pkg-config and with CMake's find_package(gran), and runs it without LD_LIBRARY_PATH.
 */
#include <gran.h>

#include <stdio.h>

static int failed(const char *what, GranStatus s) {
    char msg[512];
    gran_last_error(msg, sizeof msg);
    fprintf(stderr, "consumer: %s: %s: %s\n", what, gran_status_string(s), msg);
    return 1;
}

int main(void) {
    GranModelConfig cfg;
    GranModel model = 0;
    GranStatus s;
    unsigned char images[4 * 28 * 28];
    size_t i, lit = 0;

    if (gran_abi_version() != GRAN_ABI_VERSION) {
        fprintf(stderr, "consumer: header ABI %d, library ABI %u\n", GRAN_ABI_VERSION, gran_abi_version());
        return 1;
    }
    gran_model_config_init(&cfg);
    cfg.steps = 2;
    cfg.z_dim = 16;
    cfg.hidden_dim = 16;
    cfg.width_scale = 0.125f;
    cfg.device.kind = GRAN_DEVICE_CPU;
    if ((s = gran_model_create(&cfg, &model)) != GRAN_STATUS_OK) return failed("gran_model_create", s);
    if ((s = gran_sample(model, 1, 4, GRAN_PIXEL_FORMAT_U8_HWC, images, sizeof images)) != GRAN_STATUS_OK)
        return failed("gran_sample", s);
    for (i = 0; i < sizeof images; i++) lit += images[i] != 0;
    if ((s = gran_model_free(model)) != GRAN_STATUS_OK) return failed("gran_model_free", s);
    if (lit == 0) {
        fprintf(stderr, "consumer: the samples are all black\n");
        return 1;
    }
    printf("OK\n");
    return 0;
}
