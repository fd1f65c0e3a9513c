/* A vitq_scheme_host for the scheme tests (test_quant.c, test_components.c): it counts its live
 * blocks and can refuse the n-th allocation, so a test can fail every allocation of a scheme in turn
 * and check that each failure is reported and nothing leaks. */
#ifndef VITQ_TEST_SCHEME_HOST_H
#define VITQ_TEST_SCHEME_HOST_H

#include <stdint.h>
#include <stdlib.h>

#include "quant/metrics.h"
#include "harness.h"

typedef struct test_host {
    vitq_scheme_host base; /* first: the scheme sees &base */
    long live;             /* blocks handed out and not yet freed */
    long allocs;           /* allocations attempted */
    long fail_at;          /* refuse allocation number fail_at (0-based); -1: never */
} test_host;

static inline void *th_alloc(const vitq_scheme_host *h, size_t size) {
    test_host *t = (test_host *)(uintptr_t)h;
    if (t->allocs++ == t->fail_at) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, 64, size ? size : 1) != 0) return NULL;
    t->live++;
    return p;
}

static inline void th_free(const vitq_scheme_host *h, void *p) {
    test_host *t = (test_host *)(uintptr_t)h;
    t->live--;
    free(p);
}

static inline vitq_status th_fail(const vitq_scheme_host *h, vitq_status status, const char *message) {
    (void)h;
    return vitq_i_fail(status, "%s", message);
}

static test_host host = {{sizeof(vitq_scheme_host), th_alloc, th_free, th_fail, NULL, vitq_i_metric}, 0, 0, -1};

#endif
