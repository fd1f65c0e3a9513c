/* Helpers shared by the fuzz targets (fuzz/README.md): invariant checks that turn a silent wrong answer
 * into a crash libFuzzer reports, an allocator that fails on request (out-of-memory paths must neither
 * crash nor leak), and a bounded forward pass of a loaded model on a fixed input. */
#ifndef VITQ_FUZZ_COMMON_H
#define VITQ_FUZZ_COMMON_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "vitq.h"

/* A broken invariant is a finding like a sanitizer report: abort so libFuzzer saves the input. */
#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz invariant failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);    \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Every failure has a known status and a detail message (include/vitq.h, "Contract"); reading the
 * whole message lets ASan see a message built from bytes past a buffer. Call vitq_i_error_clear()
 * before the call under test so an old message cannot stand in for a missing one. */
static inline void fuzz_check_status(vitq_status st) {
    const char *e = vitq_last_error();
    FUZZ_ASSERT(e != NULL);
    size_t len = strlen(e);
    if (st == VITQ_OK) return;
    FUZZ_ASSERT(st > VITQ_OK && strcmp(vitq_status_name(st), "VITQ_ERR_UNKNOWN") != 0); /* a status it knows */
    if (len == 0) fprintf(stderr, "fuzz: %s without a vitq_last_error() message\n", vitq_status_name(st));
    FUZZ_ASSERT(len > 0);
}

/* An allocator that fails the allocation numbered `fail_at` (1-based; 0: never) and counts live blocks,
 * so a failed call that leaks is caught even when a custom allocator hides it from LeakSanitizer. */
typedef struct fuzz_alloc_state {
    unsigned long calls, fail_at;
    long live;
} fuzz_alloc_state;

static void *fuzz_alloc(void *user, size_t size, size_t align) {
    fuzz_alloc_state *s = user;
    FUZZ_ASSERT(align && (align & (align - 1)) == 0 && align <= 64);
    if (++s->calls == s->fail_at) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size ? size : 1)) return NULL;
    s->live++;
    return p;
}

static void fuzz_free(void *user, void *ptr) {
    fuzz_alloc_state *s = user;
    FUZZ_ASSERT(ptr != NULL);
    s->live--;
    free(ptr);
}

static inline vitq_allocator fuzz_allocator(fuzz_alloc_state *s, unsigned long fail_at) {
    memset(s, 0, sizeof *s);
    s->fail_at = fail_at;
    vitq_allocator a = {sizeof(vitq_allocator), fuzz_alloc, fuzz_free, s};
    return a;
}

/* Forward passes are skipped above this cost so one input cannot stall the fuzzer (a fuzzed config can
 * describe a large Swin whose weights happen to fit). */
#define FUZZ_MAX_GFLOPS 0.02
#define FUZZ_MAX_INPUT (1u << 18)

/* Logits of `n` fixed images (a deterministic pattern, finite) into a malloc'd array of
 * n x num_classes, or NULL when the model is too large to run cheaply. *classes receives the count. */
static inline float *fuzz_forward(const vitq_model *model, size_t n, size_t *classes) {
    vitq_model_info info;
    vitq_model_info_init(&info);
    vitq_i_error_clear();
    vitq_status st = vitq_model_get_info(model, &info);
    fuzz_check_status(st);
    FUZZ_ASSERT(st == VITQ_OK);
    FUZZ_ASSERT(info.image_size > 0 && info.in_channels > 0 && info.num_classes > 0);
    size_t per = (size_t)info.in_channels * (size_t)info.image_size * (size_t)info.image_size;
    if (!(info.gflops <= FUZZ_MAX_GFLOPS) || per > FUZZ_MAX_INPUT || info.num_classes > 100000) return NULL;
    float *x = malloc(n * per * sizeof *x);
    float *y = malloc(n * (size_t)info.num_classes * sizeof *y);
    FUZZ_ASSERT(x && y);
    for (size_t i = 0; i < n * per; i++) x[i] = (float)sin(0.37 * (double)i) * 1.5f;
    vitq_i_error_clear();
    st = vitq_model_forward(model, x, n, y);
    fuzz_check_status(st);
    free(x);
    if (st != VITQ_OK) {
        /* Finite input: only a resource failure may stop the forward pass of a loaded model. */
        FUZZ_ASSERT(st == VITQ_ERR_OUT_OF_MEMORY);
        free(y);
        return NULL;
    }
    *classes = (size_t)info.num_classes;
    return y;
}

#endif
