/*
 * What every C test program of gran shares, whichever library it tests: assertion macros that
 * print file:line and fail the process, and a tiny runner with a watchdog that runs each test in
 * a child process. Include gran.h (libgran's tests, through check.h) or gran_runtime.h (the
 * runtime's) first: both declare the calls used here. C99 + POSIX 2008.
 */
#ifndef GRAN_TEST_CHECK_CORE_H
#define GRAN_TEST_CHECK_CORE_H

#if !defined(GRAN_H) && !defined(GRAN_RUNTIME_H)
#error "include gran.h or gran_runtime.h before check_core.h"
#endif

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
/* What the last run_tests ran, and how many of those failed. */
static int g_tests_ran, g_tests_failed;

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
    g_tests_ran = ran;
    g_tests_failed = failed;
    if (failed) {
        printf("%s: %d of %d tests FAILED (%.1f s)\n", argv[0], failed, ran, now_seconds() - start);
        return 1;
    }
    printf("%s: %d tests passed in %.1f s\n", argv[0], ran, now_seconds() - start);
    return 0;
}

#endif /* GRAN_TEST_CHECK_CORE_H */
