/* Parallel loops (core/pool.c): the one place the library starts threads.
 *
 * Three builds, chosen at compile time:
 *  - default: the library's own pool of pthreads, whose idle threads sleep on a condition variable.
 *    OpenMP's threads (libgomp) spin at their barriers, which collapses when other processes or the
 *    application's own threads want the cores; the pool leaves them the CPU (docs/performance.md,
 *    "Threads on a busy machine").
 *  - `make OPENMP=1` (-fopenmp): the same loops as `#pragma omp parallel for`.
 *  - -DVITQ_NO_THREADS: every loop on the caller's thread, no pthread symbol (firmware).
 * Callers split their work on a fixed grid of items that does not depend on the thread count, so
 * results are the same bit for bit in every build and for every thread count. */
#ifndef VITQ_CORE_POOL_H
#define VITQ_CORE_POOL_H

#include <stdint.h>

/* One item of a parallel loop. `worker` is in [0, nthreads) of the vitq_i_parallel_for call and no
 * two threads run under the same worker number at once, so it indexes per-thread scratch. A task
 * must not fail or call vitq_i_fail (it may run on another thread, whose error message nobody reads):
 * callers check everything that can fail before the loop. */
typedef void (*vitq_i_task_fn)(void *ctx, int64_t item, int worker);

/* fn(ctx, i, worker) once for every i in [0, items), on at most nthreads threads, the caller's among
 * them (worker 0); returns when all have run. Items are handed out one at a time, in increasing order,
 * to whichever thread is free. Runs everything on the caller's thread when nthreads <= 1, items <= 1,
 * or when called from inside a task (nested); in the pool build also when the pool is running another
 * caller's loop (several application threads in forward passes at once: the newcomer neither waits
 * nor adds threads; OpenMP instead gives every calling thread a team of its own). */
void vitq_i_parallel_for(int nthreads, int64_t items, vitq_i_task_fn fn, void *ctx);

/* The threads a forward pass uses by default: the CPUs this process may run on (its affinity mask),
 * at most the environment variable VITQ_NUM_THREADS when that is a positive integer (read once);
 * with OpenMP, omp_get_max_threads() under the same cap; 1 with VITQ_NO_THREADS. */
int vitq_i_max_threads(void);

#endif
