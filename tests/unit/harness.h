/* Minimal test harness: each tests/unit/test_*.c is its own program built against libvitq.a.
 * Every RUN prints "PASS name" or "FAIL name"; tests/run.sh counts those lines over all programs.
 * Programs run from the repository root (tests read fixtures by relative path). */
#ifndef VITQ_TEST_HARNESS_H
#define VITQ_TEST_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vitq.h"

static int harness_check_failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("    check failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);                 \
            harness_check_failures++;                                                              \
        }                                                                                          \
    } while (0)

/* Expect `expr` to return status `want`; print the detail message when it does not. */
#define CHECK_STATUS(expr, want)                                                                   \
    do {                                                                                           \
        vitq_status got_ = (expr);                                                                 \
        if (got_ != (want)) {                                                                      \
            printf("    at %s:%d: %s returned %s, expected %s (%s)\n", __FILE__, __LINE__, #expr,   \
                   vitq_status_name(got_), vitq_status_name(want), vitq_last_error());             \
            harness_check_failures++;                                                              \
        }                                                                                          \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (tol))) {                                                           \
            printf("    at %s:%d: %s = %.9g, %s = %.9g, |diff| %.3g > %.3g\n", __FILE__, __LINE__, #a, \
                   a_, #b, b_, fabs(a_ - b_), (double)(tol));                                      \
            harness_check_failures++;                                                              \
        }                                                                                          \
    } while (0)

static int harness_passed, harness_failed, harness_skipped;

static void harness_run(const char *name, void (*fn)(void)) {
    int before = harness_check_failures;
    harness_skipped = 0;
    fn();
    if (harness_skipped && harness_check_failures == before) {
        printf("SKIP %s\n", name); /* counted neither as passed nor as failed */
    } else if (harness_check_failures == before) {
        printf("PASS %s\n", name);
        harness_passed++;
    } else {
        printf("FAIL %s\n", name);
        harness_failed++;
    }
    fflush(stdout);
}

/* Tests that need something absent on this machine (shared data) say so and count as neither. */
#define SKIP(...)                                                                                  \
    do {                                                                                           \
        harness_skipped = 1;                                                                       \
        printf("    skipped: ");                                                                   \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
    } while (0)

#define RUN(fn) harness_run(#fn, fn)
#define HARNESS_EXIT() return harness_failed ? 1 : 0

/* 1 when the suite runs in its quick form (sanitizer builds): skip full-test-set sweeps. */
static inline int harness_quick(void) {
    const char *q = getenv("VITQ_TEST_QUICK");
    return q && *q && *q != '0';
}

#endif
