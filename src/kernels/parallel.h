/* OpenMP in one place, so that the library builds identically with OPENMP=0 (the pragmas vanish and
 * every loop runs on the caller's thread). Work is always split on a fixed tile grid that does not
 * depend on the thread count, which is why results are bit-identical with and without OpenMP. */
#ifndef VITQ_KERNELS_PARALLEL_H
#define VITQ_KERNELS_PARALLEL_H

#ifdef _OPENMP
#include <omp.h>
#define VITQ_I_PRAGMA(x) _Pragma(#x)
#define VITQ_I_PARALLEL_FOR(nthreads) VITQ_I_PRAGMA(omp parallel for schedule(dynamic, 1) num_threads(nthreads))
static inline int vitq_i_thread_id(void) { return omp_get_thread_num(); }
static inline int vitq_i_max_threads(void) { return omp_get_max_threads(); }
#else
#define VITQ_I_PARALLEL_FOR(nthreads)
static inline int vitq_i_thread_id(void) { return 0; }
static inline int vitq_i_max_threads(void) { return 1; }
#endif

/* Number of threads to use for a request of `requested` (0 = all available). */
static inline int vitq_i_resolve_threads(int requested) {
    int max = vitq_i_max_threads();
    if (requested <= 0 || requested > max) return max;
    return requested;
}

#endif
