/*
 * The C contract of libgran under threads: one model trained by one thread while eight threads
 * sample it and another saves it (and loads what it saved), then freed mid-training; cancelling
 * from another thread; BUSY from another thread; a dataset freed during training; models
 * trained in parallel; concurrent frees of one handle. A watchdog turns a deadlock into a
 * failure.
 *
 * Arguments: names of tests to run (default: all).
 */
#define _POSIX_C_SOURCE 200809L

#include "check.h"

#define SAMPLERS 8

/* ---------------------------------------------------------------------------------------- */
/* Stress: train + 8 samplers + a saver, then free mid-training                              */

typedef struct {
    GranModel model;
    GranDataset data;
    char path[600];
    pthread_mutex_t lock;
    uint64_t steps;                /* last step reported by the progress callback */
    unsigned long samples[SAMPLERS];
    unsigned long saves, reads;
    GranStatus train_status;
    GranProgress last;
} Stress;

typedef struct {
    Stress *s;
    int index;
} SamplerArg;

static int stress_progress(const GranProgress *p, void *user) {
    Stress *s = (Stress *)user;
    pthread_mutex_lock(&s->lock);
    s->steps = p->step;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static void *stress_trainer(void *arg) {
    Stress *s = (Stress *)arg;
    GranTrainConfig t = tiny_train(1000000);
    t.on_progress = stress_progress;
    t.user_data = s;
    s->last.struct_size = sizeof s->last;
    s->train_status = gran_train(s->model, s->data, &t, &s->last);
    return NULL;
}

/* Samples in a loop, in every format and through every sampling function, checking each
 * result, until the model's handle becomes invalid. */
static void *stress_sampler(void *arg) {
    SamplerArg *a = (SamplerArg *)arg;
    Stress *s = a->s;
    const size_t max_count = 3, img = 784;
    /* room for T=2 canvases of 3 float images, plus a canary */
    unsigned char *buf = (unsigned char *)malloc(2 * max_count * img * 4 + 16);
    float z[3 * 16], probs[3];
    unsigned long i;
    CHECK(buf != NULL);
    for (i = 0;; i++) {
        uint32_t count = (uint32_t)(1 + (i + (unsigned long)a->index) % max_count);
        GranPixelFormat f = (GranPixelFormat)((i + (unsigned long)a->index) % 3);
        size_t bytes = count * img * (f == GRAN_PIXEL_FORMAT_F32_CHW ? 4 : 1);
        uint64_t seed = (uint64_t)a->index * 1000003u + i;
        GranStatus st;
        memset(buf + bytes, 0xC5, 16);
        switch (i % 4) {
        case 0:
        case 1:
            st = gran_sample(s->model, seed, count, f, buf, bytes);
            break;
        case 2:
            st = gran_latents(s->model, seed, count, z, count * 16);
            if (st == GRAN_STATUS_OK) st = gran_generate(s->model, z, count, f, buf, bytes);
            break;
        default:
            memset(buf + 2 * bytes, 0xC5, 16);
            st = gran_sample_steps(s->model, seed, count, f, buf, 2 * bytes);
            if (st == GRAN_STATUS_OK) {
                CHECK(all_bytes(buf + 2 * bytes, 0xC5, 16));
                bytes *= 2;
            }
            break;
        }
        if (st == GRAN_STATUS_INVALID_HANDLE) break; /* the model was freed: stop */
        CHECK_STATUS(st, GRAN_STATUS_OK);
        if (f == GRAN_PIXEL_FORMAT_F32_CHW) CHECK(floats_in_unit_range((const float *)buf, bytes / 4));
        CHECK(all_bytes(buf + bytes, 0xC5, 16)); /* nothing written past the buffer */
        if (i % 5 == 4) {
            st = gran_discriminate(s->model, buf, count, f, probs);
            if (st == GRAN_STATUS_INVALID_HANDLE) break;
            CHECK_STATUS(st, GRAN_STATUS_OK);
            CHECK(floats_in_unit_range(probs, count));
        }
        pthread_mutex_lock(&s->lock);
        s->samples[a->index]++;
        pthread_mutex_unlock(&s->lock);
    }
    /* Every later call fails the same way. */
    CHECK_STATUS(gran_sample(s->model, 1, 1, GRAN_PIXEL_FORMAT_U8_HWC, buf, img), GRAN_STATUS_INVALID_HANDLE);
    free(buf);
    return NULL;
}

/* Saves the model in a loop; each file it wrote must load, also while the next save renames a
 * new file over it. */
static void *stress_saver(void *arg) {
    Stress *s = (Stress *)arg;
    unsigned char px[784];
    for (;;) {
        GranModel loaded = 0;
        uint64_t step = 0;
        GranStatus st = gran_model_save(s->model, s->path);
        if (st == GRAN_STATUS_INVALID_HANDLE) break;
        CHECK_STATUS(st, GRAN_STATUS_OK);
        CHECK_OK(gran_model_load(s->path, NULL, &loaded));
        CHECK_OK(gran_model_step(loaded, &step));
        CHECK_OK(gran_sample(loaded, step, 1, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px));
        CHECK_OK(gran_model_free(loaded));
        pthread_mutex_lock(&s->lock);
        s->saves++;
        pthread_mutex_unlock(&s->lock);
    }
    return NULL;
}

static void log_sink(GranLogLevel level, const char *message, void *user) {
    (void)level;
    (void)message;
    (void)user;
}

/* Reads the configuration and the step counter in a loop, and installs and removes the log
 * callback meanwhile. */
static void *stress_reader(void *arg) {
    Stress *s = (Stress *)arg;
    unsigned long i;
    uint64_t step, prev = 0;
    for (i = 0;; i++) {
        GranModelConfig c;
        GranStatus st;
        gran_model_config_init(&c);
        st = gran_model_config(s->model, &c);
        if (st == GRAN_STATUS_INVALID_HANDLE) break;
        CHECK_STATUS(st, GRAN_STATUS_OK);
        CHECK(c.z_dim == 16 && c.steps == 2 && c.device.kind == env_test_device().kind);
        st = gran_model_step(s->model, &step);
        if (st == GRAN_STATUS_INVALID_HANDLE) break;
        CHECK_STATUS(st, GRAN_STATUS_OK);
        CHECK(step >= prev); /* never goes back */
        prev = step;
        if (i % 2 == 0) gran_set_log_callback(log_sink, s, GRAN_LOG_DEBUG);
        else gran_set_log_callback(NULL, NULL, GRAN_LOG_DEBUG);
        pthread_mutex_lock(&s->lock);
        s->reads++;
        pthread_mutex_unlock(&s->lock);
        sleep_ms(1);
    }
    gran_set_log_callback(NULL, NULL, GRAN_LOG_DEBUG);
    return NULL;
}

static void test_stress_free_mid_training(void) {
    Stress s;
    SamplerArg args[SAMPLERS];
    pthread_t trainer, saver, reader, samplers[SAMPLERS];
    char dir[512];
    double deadline;
    int i, ready = 0;
    uint64_t steps_at_free;
    memset(&s, 0, sizeof s);
    CHECK(pthread_mutex_init(&s.lock, NULL) == 0);
    tmpdir_make(dir, sizeof dir, "stress");
    path_join(s.path, sizeof s.path, dir, "stress.gran");
    s.model = tiny_model(101);
    s.data = synthetic_dataset(64);
    s.train_status = -1;
    CHECK(pthread_create(&trainer, NULL, stress_trainer, &s) == 0);
    for (i = 0; i < SAMPLERS; i++) {
        args[i].s = &s;
        args[i].index = i;
        CHECK(pthread_create(&samplers[i], NULL, stress_sampler, &args[i]) == 0);
    }
    CHECK(pthread_create(&saver, NULL, stress_saver, &s) == 0);
    CHECK(pthread_create(&reader, NULL, stress_reader, &s) == 0);
    /* Let every thread do some work while training goes on. */
    deadline = now_seconds() + 60.0;
    while (!ready) {
        CHECK_MSG(now_seconds() < deadline, "the threads made no progress in 60 s");
        sleep_ms(20);
        pthread_mutex_lock(&s.lock);
        ready = s.steps >= 20 && s.saves >= 5 && s.reads >= 20;
        for (i = 0; i < SAMPLERS; i++) ready = ready && s.samples[i] >= 20;
        pthread_mutex_unlock(&s.lock);
    }
    /* Free it mid-training: the training run is cancelled, every other thread gets
     * INVALID_HANDLE at its next call and stops. */
    pthread_mutex_lock(&s.lock);
    steps_at_free = s.steps;
    pthread_mutex_unlock(&s.lock);
    CHECK_OK(gran_model_free(s.model));
    CHECK(pthread_join(trainer, NULL) == 0);
    CHECK_MSG(s.train_status == GRAN_STATUS_CANCELLED, "gran_train returned %s after the model was freed",
              gran_status_string(s.train_status));
    CHECK(s.last.step >= steps_at_free && s.last.step < 1000000);
    for (i = 0; i < SAMPLERS; i++) CHECK(pthread_join(samplers[i], NULL) == 0);
    CHECK(pthread_join(saver, NULL) == 0);
    CHECK(pthread_join(reader, NULL) == 0);
    CHECK_STATUS(gran_model_free(s.model), GRAN_STATUS_INVALID_HANDLE);
    CHECK_STATUS(gran_cancel(s.model), GRAN_STATUS_INVALID_HANDLE);
    /* The last file saved is intact. */
    {
        GranModel loaded = 0;
        uint64_t step = 0;
        CHECK_OK(gran_model_load(s.path, NULL, &loaded));
        CHECK_OK(gran_model_step(loaded, &step));
        CHECK(step >= 1 && step <= s.last.step + 1);
        CHECK_OK(gran_model_free(loaded));
    }
    printf("    (stress: %llu training steps, %lu saves and loads, %lu reads; samples per thread:",
           (unsigned long long)s.last.step, s.saves, s.reads);
    for (i = 0; i < SAMPLERS; i++) printf(" %lu", s.samples[i]);
    printf(")\n");
    CHECK_OK(gran_dataset_free(s.data));
    CHECK(pthread_mutex_destroy(&s.lock) == 0);
    tmpdir_remove(dir);
}

/* ---------------------------------------------------------------------------------------- */
/* gran_cancel and BUSY from another thread                                                  */

typedef struct {
    GranModel model;
    GranDataset data;
    uint64_t iterations;
    GranStatus status;
    GranProgress last;
} TrainJob;

static void *train_job(void *arg) {
    TrainJob *j = (TrainJob *)arg;
    GranTrainConfig t = tiny_train(j->iterations);
    j->last.struct_size = sizeof j->last;
    j->status = gran_train(j->model, j->data, &t, &j->last);
    return NULL;
}

static uint64_t wait_for_step(GranModel m, uint64_t at_least) {
    double deadline = now_seconds() + 60.0;
    uint64_t step = 0;
    for (;;) {
        CHECK_OK(gran_model_step(m, &step));
        if (step >= at_least) return step;
        CHECK_MSG(now_seconds() < deadline, "training made no progress in 60 s");
        sleep_ms(5);
    }
}

static void test_cancel_from_thread(void) {
    TrainJob j;
    pthread_t t;
    GranTrainConfig tc = tiny_train(2);
    uint64_t step;
    unsigned char px[2 * 784];
    memset(&j, 0, sizeof j);
    j.model = tiny_model(102);
    j.data = synthetic_dataset(32);
    j.iterations = 1000000;
    j.status = -1;
    CHECK(pthread_create(&t, NULL, train_job, &j) == 0);
    wait_for_step(j.model, 2);
    /* A second run from this thread while the first one trains: BUSY, nothing changes. */
    CHECK_STATUS(gran_train(j.model, j.data, &tc, NULL), GRAN_STATUS_BUSY);
    /* Sampling and reading the configuration meanwhile. */
    CHECK_OK(gran_sample(j.model, 1, 2, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px));
    CHECK_OK(gran_cancel(j.model));
    CHECK(pthread_join(t, NULL) == 0);
    CHECK_MSG(j.status == GRAN_STATUS_CANCELLED, "gran_train returned %s", gran_status_string(j.status));
    /* Intact: the step counter of the last completed step, and the model trains on. */
    CHECK_OK(gran_model_step(j.model, &step));
    CHECK(step >= 2 && step < 1000000 && j.last.step == step);
    CHECK_OK(gran_sample(j.model, 1, 2, GRAN_PIXEL_FORMAT_U8_HWC, px, sizeof px));
    CHECK_OK(gran_train(j.model, j.data, &tc, NULL));
    CHECK_OK(gran_model_step(j.model, &j.last.step));
    CHECK(j.last.step == step + 2);
    CHECK_OK(gran_model_free(j.model));
    CHECK_OK(gran_dataset_free(j.data));
}

/* ---------------------------------------------------------------------------------------- */
/* A dataset freed while a training run uses it                                              */

typedef struct {
    GranDataset data;
    int calls;
} FreeDataState;

static int free_data_callback(const GranProgress *p, void *user) {
    FreeDataState *s = (FreeDataState *)user;
    (void)p;
    if (s->calls++ == 0) {
        GranDatasetInfo info;
        CHECK_OK(gran_dataset_free(s->data));
        info.struct_size = sizeof info;
        CHECK_STATUS(gran_dataset_info(s->data, &info), GRAN_STATUS_INVALID_HANDLE);
    }
    return 0;
}

static void test_free_dataset_during_training(void) {
    GranModel m = tiny_model(103);
    FreeDataState s;
    GranTrainConfig t = tiny_train(4);
    uint64_t step;
    s.data = synthetic_dataset(32);
    s.calls = 0;
    t.on_progress = free_data_callback;
    t.user_data = &s;
    CHECK_OK(gran_train(m, s.data, &t, NULL)); /* the run keeps the data until it ends */
    CHECK(s.calls == 4);
    CHECK_OK(gran_model_step(m, &step));
    CHECK(step == 4);
    CHECK_STATUS(gran_dataset_free(s.data), GRAN_STATUS_INVALID_HANDLE);
    CHECK_OK(gran_model_free(m));
}

/* ---------------------------------------------------------------------------------------- */
/* Several models trained in parallel                                                        */

#define PARALLEL 4

typedef struct {
    GranDataset data;
    int index;
    unsigned char image[2 * 784];
} ParallelJob;

static void *parallel_job(void *arg) {
    ParallelJob *j = (ParallelJob *)arg;
    /* Pairs of jobs (0, 1) and (2, 3) build the same model: their results must agree. */
    GranModel m = tiny_model(200 + (uint64_t)(j->index / 2));
    GranTrainConfig t = tiny_train(3);
    GranModel forged = 900000000u + (GranModel)j->index;
    char msg[256], needle[32];
    uint64_t step;
    CHECK_OK(gran_train(m, j->data, &t, NULL));
    CHECK_OK(gran_sample(m, 5, 2, GRAN_PIXEL_FORMAT_U8_HWC, j->image, sizeof j->image));
    /* This thread's own error message. */
    CHECK_STATUS(gran_model_step(forged, &step), GRAN_STATUS_INVALID_HANDLE);
    snprintf(needle, sizeof needle, "%llu", (unsigned long long)forged);
    sleep_ms(10);
    gran_last_error(msg, sizeof msg);
    CHECK_MSG(strstr(msg, needle) != NULL, "thread %d sees another thread's message: %s", j->index, msg);
    CHECK_OK(gran_model_free(m));
    return NULL;
}

static void test_parallel_models(void) {
    ParallelJob jobs[PARALLEL];
    pthread_t t[PARALLEL];
    GranDataset d = synthetic_dataset(32);
    int i;
    for (i = 0; i < PARALLEL; i++) {
        jobs[i].data = d;
        jobs[i].index = i;
        CHECK(pthread_create(&t[i], NULL, parallel_job, &jobs[i]) == 0);
    }
    for (i = 0; i < PARALLEL; i++) CHECK(pthread_join(t[i], NULL) == 0);
    CHECK(memcmp(jobs[0].image, jobs[1].image, sizeof jobs[0].image) == 0);
    CHECK(memcmp(jobs[2].image, jobs[3].image, sizeof jobs[2].image) == 0);
    CHECK(memcmp(jobs[0].image, jobs[2].image, sizeof jobs[0].image) != 0);
    CHECK_OK(gran_dataset_free(d));
}

/* ---------------------------------------------------------------------------------------- */
/* One handle freed by several threads at once: exactly one succeeds                         */

#define FREERS 8

typedef struct {
    GranModel model;
    GranDataset data;
    pthread_barrier_t *start;
    GranStatus model_status, data_status;
} FreeJob;

static void *free_job(void *arg) {
    FreeJob *j = (FreeJob *)arg;
    pthread_barrier_wait(j->start);
    j->model_status = gran_model_free(j->model);
    j->data_status = gran_dataset_free(j->data);
    return NULL;
}

static void test_concurrent_free(void) {
    FreeJob jobs[FREERS];
    pthread_t t[FREERS];
    pthread_barrier_t start;
    int i, round, ok_m, ok_d;
    for (round = 0; round < 5; round++) {
        GranModel m = tiny_model(300);
        GranDataset d = synthetic_dataset(2);
        CHECK(pthread_barrier_init(&start, NULL, FREERS) == 0);
        for (i = 0; i < FREERS; i++) {
            jobs[i].model = m;
            jobs[i].data = d;
            jobs[i].start = &start;
            CHECK(pthread_create(&t[i], NULL, free_job, &jobs[i]) == 0);
        }
        ok_m = ok_d = 0;
        for (i = 0; i < FREERS; i++) {
            CHECK(pthread_join(t[i], NULL) == 0);
            CHECK(jobs[i].model_status == GRAN_STATUS_OK || jobs[i].model_status == GRAN_STATUS_INVALID_HANDLE);
            CHECK(jobs[i].data_status == GRAN_STATUS_OK || jobs[i].data_status == GRAN_STATUS_INVALID_HANDLE);
            ok_m += jobs[i].model_status == GRAN_STATUS_OK;
            ok_d += jobs[i].data_status == GRAN_STATUS_OK;
        }
        CHECK(ok_m == 1 && ok_d == 1);
        CHECK(pthread_barrier_destroy(&start) == 0);
    }
}

int main(int argc, char **argv) {
    static const TestCase tests[] = {
        {"stress_free_mid_training", test_stress_free_mid_training},
        {"cancel_from_thread", test_cancel_from_thread},
        {"free_dataset_during_training", test_free_dataset_during_training},
        {"parallel_models", test_parallel_models},
        {"concurrent_free", test_concurrent_free},
    };
    setvbuf(stdout, NULL, _IOLBF, 0);
    return run_tests(tests, sizeof tests / sizeof tests[0], argc, argv, NULL, 120);
}
