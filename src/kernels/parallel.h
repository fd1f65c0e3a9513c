/* How the kernels run in parallel: every parallel loop is a vitq_i_parallel_for (core/pool.h) over a
 * fixed grid of tiles, rows or (sequence, head) pairs that does not depend on the thread count. Each
 * output element is computed by one task in a fixed order, which is why results are bit-identical for
 * any thread count and in every build (the library's pool, OPENMP=1, VITQ_NO_THREADS). A loop body
 * is a static task function with a context struct; per-thread scratch is indexed by its worker. */
#ifndef VITQ_KERNELS_PARALLEL_H
#define VITQ_KERNELS_PARALLEL_H

#include "core/pool.h"

/* Number of threads to use for a request of `requested` (0 = all available). */
static inline int vitq_i_resolve_threads(int requested) {
    int max = vitq_i_max_threads();
    if (requested <= 0 || requested > max) return max;
    return requested;
}

#endif
