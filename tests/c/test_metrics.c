/*
 * The C contract of libgran's metrics: GAM (gran_gam) and the quality evaluator
 * (gran_evaluator_*, gran_evaluate_*): defaults, results that are consistent with their
 * definitions, and the error contract (NULL arguments, bad and cross-type handles, versioned
 * structs, outputs untouched on failure).
 *
 * Run from the repository root (it reads data/mnist10k; GRAN_TEST_DATA overrides the folder).
 * Arguments: names of tests to run (default: all).
 */
#define _POSIX_C_SOURCE 200809L

#include "check.h"

#include <stddef.h>

#define SENTINEL_HANDLE ((uint64_t)0xDEADBEEFCAFEF00DULL)

static GranModel g_a, g_b;        /* two tiny 28x28 models, trained a few steps */
static GranDataset g_test;        /* 64 synthetic 28x28 images, no labels */
static GranDataset g_mnist_test;  /* the 1000 held-out MNIST digits, labelled */
static GranEvaluator g_eval;      /* trained on g_mnist_test for three epochs */

static void fixtures(void) {
    if (g_test == 0) g_test = synthetic_dataset(64);
    if (g_a == 0) {
        GranTrainConfig t = tiny_train(3);
        g_a = tiny_model(501);
        g_b = tiny_model(502);
        CHECK_OK(gran_train(g_a, g_test, &t, NULL));
        t.seed = 9;
        CHECK_OK(gran_train(g_b, g_test, &t, NULL));
    }
    if (g_mnist_test == 0) {
        char imgs[600], labs[600];
        path_join(imgs, sizeof imgs, data_dir(), "t10k-images-idx3-ubyte.gz");
        path_join(labs, sizeof labs, data_dir(), "t10k-labels-idx1-ubyte.gz");
        CHECK_OK(gran_dataset_load_idx(imgs, labs, &g_mnist_test));
    }
}

static GranGamConfig small_gam(void) {
    GranGamConfig c;
    gran_gam_config_init(&c);
    c.samples = 50;
    return c;
}

/* x / y with GAM's rule for y = 0. */
static double gam_ratio(double x, double y) {
    if (y == 0.0) return x == 0.0 ? 1.0 : INFINITY;
    return x / y;
}

static int in_unit(double v) { return v >= 0.0 && v <= 1.0; }

/* ---------------------------------------------------------------------------------------- */
/* GAM                                                                                       */

static void test_gam_defaults(void) {
    GranGamConfig c;
    memset(&c, 0xEE, sizeof c);
    gran_gam_config_init(&c);
    CHECK(c.struct_size == sizeof c);
    CHECK(c.samples == 1000 && c.seed == 0 && c.tolerance == 0.2 && c.score_batch == 100);
    gran_gam_config_init(NULL);
    CHECK(GRAN_GAM_TIE == 0 && GRAN_GAM_A_WINS == 1 && GRAN_GAM_B_WINS == 2 && GRAN_GAM_UNDECIDED == 3);
    CHECK(GRAN_GAM_EVEN == 0 && GRAN_GAM_A_FIRST == 1 && GRAN_GAM_B_FIRST == 2);
}

static void check_gam_result(const GranGamResult *r, uint64_t test_count, uint64_t samples, double tolerance) {
    CHECK(r->struct_size == sizeof *r);
    CHECK(in_unit(r->test_error_a) && in_unit(r->test_error_b));
    CHECK(in_unit(r->sample_error_a) && in_unit(r->sample_error_b));
    CHECK(r->test_count == test_count && r->sample_count == samples);
    CHECK(r->r_test == gam_ratio(r->test_error_a, r->test_error_b));
    CHECK(r->r_sample == gam_ratio(r->sample_error_a, r->sample_error_b));
    if (!(fabs(r->r_test - 1.0) <= tolerance)) CHECK(r->verdict == GRAN_GAM_UNDECIDED);
    else if (r->r_sample < 1.0) CHECK(r->verdict == GRAN_GAM_A_WINS);
    else if (r->r_sample > 1.0) CHECK(r->verdict == GRAN_GAM_B_WINS);
    else CHECK(r->verdict == GRAN_GAM_TIE);
    /* The accuracy form: ratios of 1 - error, and its ranking. */
    CHECK(r->accuracy_r_test == gam_ratio(1.0 - r->test_error_a, 1.0 - r->test_error_b));
    CHECK(r->accuracy_r_sample == gam_ratio(1.0 - r->sample_error_a, 1.0 - r->sample_error_b));
    if (r->accuracy_r_sample > 1.0) CHECK(r->accuracy_ranking == GRAN_GAM_A_FIRST);
    else if (r->accuracy_r_sample < 1.0) CHECK(r->accuracy_ranking == GRAN_GAM_B_FIRST);
    else CHECK(r->accuracy_ranking == GRAN_GAM_EVEN);
    CHECK(r->reserved == 0);
}

/* r and its swap: 1/r, with 0 and +infinity exchanged. */
static int inverse(double r, double s) {
    if (r == 0.0) return isinf(s) && s > 0;
    if (isinf(r)) return s == 0.0;
    return fabs(r * s - 1.0) < 1e-9;
}

static void test_gam_results(void) {
    GranGamConfig c;
    GranGamResult ab, ba, aa;
    fixtures();
    c = small_gam();
    ab.struct_size = sizeof ab;
    ba.struct_size = sizeof ba;
    aa.struct_size = sizeof aa;
    CHECK_OK(gran_gam(g_a, g_b, g_test, &c, &ab));
    check_gam_result(&ab, 64, 50, c.tolerance);
    /* Swapping a and b swaps the error rates and the verdict and inverts both ratios. */
    CHECK_OK(gran_gam(g_b, g_a, g_test, &c, &ba));
    check_gam_result(&ba, 64, 50, c.tolerance);
    CHECK(ab.test_error_a == ba.test_error_b && ab.test_error_b == ba.test_error_a);
    CHECK(ab.sample_error_a == ba.sample_error_b && ab.sample_error_b == ba.sample_error_a);
    CHECK(inverse(ab.r_test, ba.r_test) && inverse(ab.r_sample, ba.r_sample));
    CHECK(inverse(ab.accuracy_r_test, ba.accuracy_r_test) && inverse(ab.accuracy_r_sample, ba.accuracy_r_sample));
    if (ab.accuracy_ranking == GRAN_GAM_A_FIRST) CHECK(ba.accuracy_ranking == GRAN_GAM_B_FIRST);
    if (ab.accuracy_ranking == GRAN_GAM_EVEN) CHECK(ba.accuracy_ranking == GRAN_GAM_EVEN);
    if (ab.verdict == GRAN_GAM_A_WINS) CHECK(ba.verdict == GRAN_GAM_B_WINS);
    if (ab.verdict == GRAN_GAM_B_WINS) CHECK(ba.verdict == GRAN_GAM_A_WINS);
    if (ab.verdict == GRAN_GAM_TIE || ab.verdict == GRAN_GAM_UNDECIDED) CHECK(ba.verdict == ab.verdict);
    /* Deterministic. */
    CHECK_OK(gran_gam(g_a, g_b, g_test, &c, &aa));
    CHECK(memcmp(&aa, &ab, sizeof aa) == 0);
    /* A model against itself: a tie. */
    CHECK_OK(gran_gam(g_a, g_a, g_test, &c, &aa));
    check_gam_result(&aa, 64, 50, c.tolerance);
    CHECK(aa.r_test == 1.0 && aa.r_sample == 1.0 && aa.verdict == GRAN_GAM_TIE);
    /* cfg NULL: the defaults (1000 samples). */
    CHECK_OK(gran_gam(g_a, g_b, g_test, NULL, &aa));
    check_gam_result(&aa, 64, 1000, 0.2);
    /* An older, smaller GranGamConfig (no tolerance): the default tolerance. */
    c = small_gam();
    c.tolerance = NAN;
    c.struct_size = (uint32_t)offsetof(GranGamConfig, tolerance);
    CHECK_OK(gran_gam(g_a, g_b, g_test, &c, &aa));
    check_gam_result(&aa, 64, 50, 0.2);
    /* score_batch 0: each held-out image scored alone, as gran_discriminate scores it. */
    {
        unsigned char *px = synthetic_pixels(64);
        float p[64];
        size_t i, fake = 0;
        CHECK_OK(gran_discriminate(g_a, px, 64, GRAN_PIXEL_FORMAT_U8_HWC, p));
        for (i = 0; i < 64; i++) fake += p[i] <= 0.5f;
        c = small_gam();
        c.score_batch = 0;
        CHECK_OK(gran_gam(g_a, g_b, g_test, &c, &aa));
        check_gam_result(&aa, 64, 50, c.tolerance);
        CHECK(aa.test_error_a == (double)fake / 64.0);
        free(px);
    }
    /* An older GranGamConfig without score_batch: the default, 100. */
    c = small_gam();
    c.score_batch = 0;
    c.struct_size = (uint32_t)offsetof(GranGamConfig, score_batch);
    CHECK_OK(gran_gam(g_a, g_b, g_test, &c, &aa));
    CHECK(memcmp(&aa, &ab, sizeof aa) == 0);
    /* An older, smaller GranGamResult: nothing written past its struct_size. */
    c = small_gam();
    memset(&aa, 0xEE, sizeof aa);
    aa.struct_size = (uint32_t)offsetof(GranGamResult, r_test);
    CHECK_OK(gran_gam(g_a, g_b, g_test, &c, &aa));
    CHECK(aa.struct_size == offsetof(GranGamResult, r_test));
    CHECK(aa.verdict == ab.verdict && aa.test_error_a == ab.test_error_a && aa.sample_error_b == ab.sample_error_b);
    CHECK(all_bytes((char *)&aa + offsetof(GranGamResult, r_test), 0xEE, sizeof aa - offsetof(GranGamResult, r_test)));
}

static void test_gam_errors(void) {
    GranGamConfig c;
    GranGamResult r;
    GranModel m32 = 0, stale = tiny_model(503);
    GranDataset d32 = 0;
    GranModelConfig mc = tiny_config(32, 1, 0);
    unsigned char *px = (unsigned char *)calloc(4 * 32 * 32, 1);
    uint32_t small;
    CHECK(px != NULL);
    fixtures();
    CHECK_OK(gran_model_create(&mc, &m32));
    CHECK_OK(gran_dataset_from_pixels(px, 4, 32, 32, 1, GRAN_PIXEL_FORMAT_U8_HWC, &d32));
    CHECK_OK(gran_model_free(stale));
#define GAM_FAILS(status, a, b, d, cfg)                                                          \
    do {                                                                                          \
        memset(&r, 0xEE, sizeof r);                                                               \
        r.struct_size = sizeof r;                                                                 \
        CHECK_STATUS(gran_gam((a), (b), (d), (cfg), &r), (status));                               \
        CHECK(all_bytes((char *)&r + 4, 0xEE, sizeof r - 4));                                     \
    } while (0)
    c = small_gam();
    /* NULL out */
    CHECK_STATUS(gran_gam(g_a, g_b, g_test, &c, NULL), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("NULL");
    /* bad settings */
    c = small_gam(); c.samples = 0;          GAM_FAILS(GRAN_STATUS_INVALID_ARGUMENT, g_a, g_b, g_test, &c);
    c = small_gam(); c.tolerance = -0.1;     GAM_FAILS(GRAN_STATUS_INVALID_ARGUMENT, g_a, g_b, g_test, &c);
    c = small_gam(); c.tolerance = NAN;      GAM_FAILS(GRAN_STATUS_INVALID_ARGUMENT, g_a, g_b, g_test, &c);
    c = small_gam(); c.tolerance = INFINITY; GAM_FAILS(GRAN_STATUS_INVALID_ARGUMENT, g_a, g_b, g_test, &c);
    /* images of different sizes */
    c = small_gam();
    GAM_FAILS(GRAN_STATUS_INVALID_ARGUMENT, g_a, m32, g_test, &c);
    GAM_FAILS(GRAN_STATUS_INVALID_ARGUMENT, g_a, g_b, d32, &c);
    /* bad handles: 0, forged, stale, cross-type */
    GAM_FAILS(GRAN_STATUS_INVALID_HANDLE, 0, g_b, g_test, &c);
    GAM_FAILS(GRAN_STATUS_INVALID_HANDLE, g_a, 0, g_test, &c);
    GAM_FAILS(GRAN_STATUS_INVALID_HANDLE, g_a, g_b, 0, &c);
    GAM_FAILS(GRAN_STATUS_INVALID_HANDLE, 12345678, g_b, g_test, &c);
    GAM_FAILS(GRAN_STATUS_INVALID_HANDLE, g_a, stale, g_test, &c);
    GAM_FAILS(GRAN_STATUS_INVALID_HANDLE, g_test, g_b, g_test, &c);
    GAM_FAILS(GRAN_STATUS_INVALID_HANDLE, g_a, g_b, g_a, &c);
    /* struct_size below 8 */
    for (small = 0; small < 8; small++) {
        c = small_gam();
        c.struct_size = small;
        GAM_FAILS(GRAN_STATUS_INVALID_ARGUMENT, g_a, g_b, g_test, &c);
        c = small_gam();
        memset(&r, 0xEE, sizeof r);
        r.struct_size = small;
        CHECK_STATUS(gran_gam(g_a, g_b, g_test, &c, &r), GRAN_STATUS_INVALID_ARGUMENT);
        CHECK(r.struct_size == small && all_bytes((char *)&r + 4, 0xEE, sizeof r - 4));
    }
#undef GAM_FAILS
    CHECK_OK(gran_model_free(m32));
    CHECK_OK(gran_dataset_free(d32));
    free(px);
}

/* ---------------------------------------------------------------------------------------- */
/* The quality evaluator                                                                     */

static void test_evaluator_defaults(void) {
    GranEvaluatorConfig c;
    memset(&c, 0xEE, sizeof c);
    gran_evaluator_config_init(&c);
    CHECK(c.struct_size == sizeof c);
    CHECK(c.epochs == 5 && c.batch_size == 64 && c.lr == 1e-3 && c.seed == 0);
    CHECK(c.device.kind == GRAN_DEVICE_AUTO);
    gran_evaluator_config_init(NULL);
}

static GranEvaluatorConfig quick_evaluator(void) {
    GranEvaluatorConfig c;
    gran_evaluator_config_init(&c);
    c.epochs = 3;
    c.device = env_test_device();
    return c;
}

static void train_evaluator(void) {
    GranEvaluatorConfig c = quick_evaluator();
    fixtures();
    if (g_eval == 0) CHECK_OK(gran_evaluator_train(g_mnist_test, &c, &g_eval));
}

static void test_evaluator_train(void) {
    GranEvaluatorConfig c = quick_evaluator();
    GranEvaluator e = SENTINEL_HANDLE;
    double acc = -1.0;
    uint32_t small;
    fixtures();
    /* Errors first: outputs untouched. */
    CHECK_STATUS(gran_evaluator_train(g_test, &c, &e), GRAN_STATUS_INVALID_ARGUMENT); /* no labels */
    CHECK_ERROR_HAS("labels");
    CHECK_STATUS(gran_evaluator_train(g_mnist_test, &c, NULL), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("NULL");
    CHECK_STATUS(gran_evaluator_train(0, &c, &e), GRAN_STATUS_INVALID_HANDLE);
    CHECK_STATUS(gran_evaluator_train(g_a, &c, &e), GRAN_STATUS_INVALID_HANDLE); /* a model */
    c = quick_evaluator(); c.lr = 0.0;
    CHECK_STATUS(gran_evaluator_train(g_mnist_test, &c, &e), GRAN_STATUS_INVALID_ARGUMENT);
    c = quick_evaluator(); c.batch_size = 0;
    CHECK_STATUS(gran_evaluator_train(g_mnist_test, &c, &e), GRAN_STATUS_INVALID_ARGUMENT);
    c = quick_evaluator(); c.device.kind = GRAN_DEVICE_CUDA; c.device.index = gran_cuda_device_count();
    CHECK_STATUS(gran_evaluator_train(g_mnist_test, &c, &e), GRAN_STATUS_DEVICE);
    for (small = 0; small < 8; small++) {
        c = quick_evaluator();
        c.struct_size = small;
        CHECK_STATUS(gran_evaluator_train(g_mnist_test, &c, &e), GRAN_STATUS_INVALID_ARGUMENT);
    }
    CHECK(e == SENTINEL_HANDLE);
    /* Three epochs on the 1000 held-out digits. */
    train_evaluator();
    CHECK(g_eval != 0 && g_eval != g_a && g_eval != g_test);
    CHECK_OK(gran_evaluator_accuracy(g_eval, g_mnist_test, &acc));
    CHECK_MSG(acc > 0.5 && acc <= 1.0, "accuracy %g after three epochs", acc);
    /* accuracy: errors leave *out untouched */
    acc = -7.0;
    CHECK_STATUS(gran_evaluator_accuracy(g_eval, g_test, &acc), GRAN_STATUS_INVALID_ARGUMENT); /* no labels */
    CHECK_STATUS(gran_evaluator_accuracy(g_eval, g_mnist_test, NULL), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(gran_evaluator_accuracy(0, g_mnist_test, &acc), GRAN_STATUS_INVALID_HANDLE);
    CHECK_STATUS(gran_evaluator_accuracy(g_a, g_mnist_test, &acc), GRAN_STATUS_INVALID_HANDLE);
    CHECK_STATUS(gran_evaluator_accuracy(g_eval, g_eval, &acc), GRAN_STATUS_INVALID_HANDLE);
    CHECK(acc == -7.0);
    /* An evaluator handle is none of the other kinds. */
    {
        uint64_t step;
        GranDatasetInfo info;
        info.struct_size = sizeof info;
        CHECK_STATUS(gran_model_step(g_eval, &step), GRAN_STATUS_INVALID_HANDLE);
        CHECK_STATUS(gran_model_free(g_eval), GRAN_STATUS_INVALID_HANDLE);
        CHECK_STATUS(gran_dataset_info(g_eval, &info), GRAN_STATUS_INVALID_HANDLE);
        CHECK_STATUS(gran_dataset_free(g_eval), GRAN_STATUS_INVALID_HANDLE);
        CHECK_STATUS(gran_evaluator_free(g_a), GRAN_STATUS_INVALID_HANDLE);
        CHECK_STATUS(gran_evaluator_free(g_test), GRAN_STATUS_INVALID_HANDLE);
    }
}

static void check_quality(const GranQuality *q, uint64_t count) {
    double sum = 0.0;
    uint32_t i;
    CHECK(q->struct_size == sizeof *q);
    CHECK(q->classes == 10 && q->count == count);
    CHECK(q->frechet_distance >= 0.0 && isfinite(q->frechet_distance));
    CHECK(q->classifier_score >= 1.0 - 1e-6 && q->classifier_score <= (double)q->classes + 1e-6);
    for (i = 0; i < q->classes; i++) {
        CHECK(in_unit(q->class_share[i]));
        sum += q->class_share[i];
    }
    CHECK(fabs(sum - 1.0) < 1e-6);
    for (i = q->classes; i < GRAN_MAX_CLASSES; i++) CHECK(q->class_share[i] == 0.0);
}

static void test_evaluate(void) {
    GranQuality q, q2;
    GranDataset d32 = 0;
    unsigned char *px = (unsigned char *)calloc(4 * 32 * 32, 1);
    uint32_t small;
    CHECK(px != NULL);
    fixtures();
    train_evaluator();
    /* A model's samples, with and without the copy check. */
    q.struct_size = sizeof q;
    CHECK_OK(gran_evaluate_model(g_eval, g_a, 1, 16, g_mnist_test, 0, &q));
    check_quality(&q, 16);
    CHECK(isnan(q.nearest_train_distance) && isnan(q.reference_nearest_train_distance));
    q2.struct_size = sizeof q2;
    CHECK_OK(gran_evaluate_model(g_eval, g_a, 1, 16, g_mnist_test, g_test, &q2));
    check_quality(&q2, 16);
    CHECK(q2.nearest_train_distance >= 0.0 && q2.reference_nearest_train_distance >= 0.0);
    CHECK(q2.frechet_distance == q.frechet_distance); /* deterministic */
    /* A dataset against itself: Frechet distance ~0. */
    CHECK_OK(gran_evaluate_dataset(g_eval, g_mnist_test, g_mnist_test, 0, &q));
    check_quality(&q, 1000);
    CHECK_MSG(q.frechet_distance < 1e-3, "Frechet distance of a set to itself: %g", q.frechet_distance);
    /* Errors: outputs untouched. */
    CHECK_OK(gran_dataset_from_pixels(px, 4, 32, 32, 1, GRAN_PIXEL_FORMAT_U8_HWC, &d32));
#define EVAL_FAILS(status, expr)                                                                  \
    do {                                                                                          \
        memset(&q, 0xEE, sizeof q);                                                               \
        q.struct_size = sizeof q;                                                                 \
        CHECK_STATUS((expr), (status));                                                           \
        CHECK(all_bytes((char *)&q + 4, 0xEE, sizeof q - 4));                                     \
    } while (0)
    EVAL_FAILS(GRAN_STATUS_INVALID_ARGUMENT, gran_evaluate_model(g_eval, g_a, 1, 1, g_mnist_test, 0, &q));
    EVAL_FAILS(GRAN_STATUS_INVALID_ARGUMENT, gran_evaluate_model(g_eval, g_a, 1, 0, g_mnist_test, 0, &q));
    EVAL_FAILS(GRAN_STATUS_INVALID_ARGUMENT, gran_evaluate_model(g_eval, g_a, 1, 8, d32, 0, &q));
    EVAL_FAILS(GRAN_STATUS_INVALID_ARGUMENT, gran_evaluate_dataset(g_eval, d32, g_mnist_test, 0, &q));
    EVAL_FAILS(GRAN_STATUS_INVALID_ARGUMENT, gran_evaluate_dataset(g_eval, g_mnist_test, g_mnist_test, d32, &q));
    EVAL_FAILS(GRAN_STATUS_INVALID_HANDLE, gran_evaluate_model(0, g_a, 1, 8, g_mnist_test, 0, &q));
    EVAL_FAILS(GRAN_STATUS_INVALID_HANDLE, gran_evaluate_model(g_a, g_a, 1, 8, g_mnist_test, 0, &q));
    EVAL_FAILS(GRAN_STATUS_INVALID_HANDLE, gran_evaluate_model(g_eval, g_eval, 1, 8, g_mnist_test, 0, &q));
    EVAL_FAILS(GRAN_STATUS_INVALID_HANDLE, gran_evaluate_model(g_eval, g_a, 1, 8, 0, 0, &q));
    EVAL_FAILS(GRAN_STATUS_INVALID_HANDLE, gran_evaluate_model(g_eval, g_a, 1, 8, g_mnist_test, 12345678, &q));
    EVAL_FAILS(GRAN_STATUS_INVALID_HANDLE, gran_evaluate_dataset(g_eval, g_a, g_mnist_test, 0, &q));
    EVAL_FAILS(GRAN_STATUS_INVALID_HANDLE, gran_evaluate_dataset(g_eval, g_mnist_test, 0, 0, &q));
    EVAL_FAILS(GRAN_STATUS_INVALID_HANDLE, gran_evaluate_dataset(g_test, g_mnist_test, g_mnist_test, 0, &q));
#undef EVAL_FAILS
    CHECK_STATUS(gran_evaluate_model(g_eval, g_a, 1, 8, g_mnist_test, 0, NULL), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("NULL");
    CHECK_STATUS(gran_evaluate_dataset(g_eval, g_mnist_test, g_mnist_test, 0, NULL), GRAN_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("NULL");
    for (small = 0; small < 8; small++) {
        memset(&q, 0xEE, sizeof q);
        q.struct_size = small;
        CHECK_STATUS(gran_evaluate_model(g_eval, g_a, 1, 8, g_mnist_test, 0, &q), GRAN_STATUS_INVALID_ARGUMENT);
        CHECK(all_bytes((char *)&q + 4, 0xEE, sizeof q - 4));
    }
    /* An older, smaller GranQuality: nothing written past its struct_size. */
    memset(&q, 0xEE, sizeof q);
    q.struct_size = (uint32_t)offsetof(GranQuality, class_share);
    CHECK_OK(gran_evaluate_model(g_eval, g_a, 1, 16, g_mnist_test, 0, &q));
    CHECK(q.classes == 10 && q.count == 16 && q.frechet_distance == q2.frechet_distance);
    CHECK(all_bytes((char *)&q + offsetof(GranQuality, class_share), 0xEE,
                    sizeof q - offsetof(GranQuality, class_share)));
    CHECK_OK(gran_dataset_free(d32));
    free(px);
}

/* After each test, in its process: frees the fixtures (a second free is INVALID_HANDLE). */
static void cleanup(void) {
    CHECK_OK(gran_evaluator_free(0));
    if (g_eval != 0) {
        GranQuality q;
        double acc;
        CHECK_OK(gran_evaluator_free(g_eval));
        CHECK_STATUS(gran_evaluator_free(g_eval), GRAN_STATUS_INVALID_HANDLE);
        q.struct_size = sizeof q;
        CHECK_STATUS(gran_evaluate_dataset(g_eval, g_mnist_test, g_mnist_test, 0, &q), GRAN_STATUS_INVALID_HANDLE);
        CHECK_STATUS(gran_evaluator_accuracy(g_eval, g_mnist_test, &acc), GRAN_STATUS_INVALID_HANDLE);
    }
    if (g_a != 0) CHECK_OK(gran_model_free(g_a));
    if (g_b != 0) CHECK_OK(gran_model_free(g_b));
    if (g_test != 0) CHECK_OK(gran_dataset_free(g_test));
    if (g_mnist_test != 0) CHECK_OK(gran_dataset_free(g_mnist_test));
    g_eval = g_a = g_b = g_test = g_mnist_test = 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Result initialisers                                                                       */

/* Each result struct's _init zeroes every field but struct_size, and a struct prepared that
 * way is all a first call needs (without it, struct_size is whatever the stack held). */
static void test_result_initialisers(void) {
    GranGamConfig c = small_gam();
    GranGamResult r;
    GranQuality q;
    fixtures();
    train_evaluator();
    memset(&r, 0xEE, sizeof r);
    gran_gam_result_init(&r);
    CHECK(r.struct_size == sizeof r && all_bytes((char *)&r + 4, 0, sizeof r - 4));
    CHECK_OK(gran_gam(g_a, g_b, g_test, &c, &r));
    check_gam_result(&r, 64, 50, c.tolerance);
    memset(&q, 0xEE, sizeof q);
    gran_quality_init(&q);
    CHECK(q.struct_size == sizeof q && all_bytes((char *)&q + 4, 0, sizeof q - 4));
    CHECK_OK(gran_evaluate_model(g_eval, g_a, 1, 16, g_mnist_test, 0, &q));
    check_quality(&q, 16);
    gran_quality_init(&q);
    CHECK_OK(gran_evaluate_dataset(g_eval, g_mnist_test, g_mnist_test, 0, &q));
    check_quality(&q, 1000);
    /* NULL: nothing happens. */
    gran_gam_result_init(NULL);
    gran_quality_init(NULL);
}

int main(int argc, char **argv) {
    static const TestCase tests[] = {
        {"gam_defaults", test_gam_defaults},
        {"gam_results", test_gam_results},
        {"gam_errors", test_gam_errors},
        {"evaluator_defaults", test_evaluator_defaults},
        {"evaluator_train", test_evaluator_train},
        {"evaluate", test_evaluate},
        {"result_initialisers", test_result_initialisers},
    };
    setvbuf(stdout, NULL, _IOLBF, 0);
    return run_tests(tests, sizeof tests / sizeof tests[0], argc, argv, cleanup, 120);
}
