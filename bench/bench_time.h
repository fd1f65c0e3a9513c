/* Clocks and medians shared by the internal kernel benchmarks (bench_kernels.c, bench_igemm.c). */
#ifndef VITQ_BENCH_TIME_H
#define VITQ_BENCH_TIME_H

#include <stdlib.h>
#include <time.h>

static inline double clock_seconds(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static inline double now(void) { return clock_seconds(CLOCK_MONOTONIC); }
/* CPU seconds of the whole process: on a machine shared with other jobs, time spent descheduled
 * does not count, so one-thread figures stay meaningful under load. */
static inline double cpu_now(void) { return clock_seconds(CLOCK_PROCESS_CPUTIME_ID); }

static inline int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of v[0..n) (sorts v). */
static inline double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#endif
