/* Parallel loops (see pool.h): the library's own thread pool, OpenMP, or the caller's thread alone.
 *
 * The pool. Workers start at the first loop that wants them and then sleep on a condition variable
 * between loops: an idle worker costs no CPU, so it takes nothing from other processes or from the
 * application's threads, and a machine that is busy does not make every loop wait for a spinning
 * thread that the scheduler has parked. One loop at a time owns the pool (`busy`): its caller posts
 * a job, runs items itself as worker 0, and sleeps until the helpers that joined have left. Items
 * come from one atomic counter, so a helper that is descheduled holds up at most the item it is
 * in, while the others take the rest. Another thread that wants a loop meanwhile runs it alone
 * instead of waiting, and a loop inside a task runs inline: neither can deadlock, and the library
 * never runs more threads than the pool plus the application's own callers. */
#if !defined(VITQ_NO_THREADS) && !defined(_OPENMP) && defined(__linux__)
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#endif

#include <stdlib.h>

#include "core/pool.h"

/* Threads of one loop, the caller's included: a bound on the pool's size. */
#define POOL_MAX_THREADS 256

#if !defined(VITQ_NO_THREADS)
/* VITQ_NUM_THREADS as a cap (0 when absent or not a positive integer). */
static int env_cap(void) {
    const char *e = getenv("VITQ_NUM_THREADS");
    if (!e || !*e) return 0;
    char *end;
    long v = strtol(e, &end, 10);
    if (*end != '\0' || v <= 0) return 0;
    return v > POOL_MAX_THREADS ? POOL_MAX_THREADS : (int)v;
}

static int capped(int n) {
    int cap = env_cap();
    if (cap > 0 && n > cap) n = cap;
    return n < 1 ? 1 : n > POOL_MAX_THREADS ? POOL_MAX_THREADS : n;
}
#endif

/* ---------------------------------------------------------------------------------------------- */
#if defined(VITQ_NO_THREADS)

void vitq_i_parallel_for(int nthreads, int64_t items, vitq_i_task_fn fn, void *ctx) {
    (void)nthreads;
    for (int64_t i = 0; i < items; i++) fn(ctx, i, 0);
}

int vitq_i_max_threads(void) { return 1; }

/* ---------------------------------------------------------------------------------------------- */
#elif defined(_OPENMP)
#include <omp.h>

void vitq_i_parallel_for(int nthreads, int64_t items, vitq_i_task_fn fn, void *ctx) {
    if (items <= 0) return;
    if (nthreads > items) nthreads = (int)items;
    if (nthreads <= 1 || omp_in_parallel()) { /* no region for one thread, nor a nested one */
        for (int64_t i = 0; i < items; i++) fn(ctx, i, 0);
        return;
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
    for (int64_t i = 0; i < items; i++) fn(ctx, i, omp_get_thread_num());
}

int vitq_i_max_threads(void) {
    static int cached; /* read once; a racing first call stores the same value */
    int n;
#pragma omp atomic read
    n = cached;
    if (n == 0) {
        n = capped(omp_get_max_threads());
#pragma omp atomic write
        cached = n;
    }
    return n;
}

/* ---------------------------------------------------------------------------------------------- */
#else
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

typedef struct pool_job {
    vitq_i_task_fn fn;
    void *ctx;
    int64_t items;
    atomic_int_fast64_t next; /* the next item to hand out */
    int seats;                /* helpers that may still join (under pool.lock) */
    int joined;               /* helpers that joined; the next one is worker joined + 1 (under pool.lock) */
    atomic_int running;       /* helpers inside the job (changed under pool.lock) */
} pool_job;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;   /* to the workers: a job with free seats, or stop */
    pthread_cond_t done;   /* to a job's caller: its last helper has left */
    pool_job *job;         /* the job helpers may join, or NULL */
    int busy;              /* a caller is between posting its job and collecting its helpers */
    int workers;           /* threads started */
    int stop;              /* set by the destructor: loops run on their caller's thread from then on */
    int atfork;            /* the fork handlers are registered */
    atomic_uint posted;    /* jobs posted so far: what a polling worker watches */
    pthread_t threads[POOL_MAX_THREADS - 1];
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};

/* How long a thread that has nothing to do polls before it sleeps: a worker that finished its part
 * of a loop, for the next loop (a forward pass posts them back to back), and a caller that finished
 * its items, for its helpers. Sleeping costs a wake-up of tens of microseconds per loop. Measured
 * (docs/performance.md, "Threads on a busy machine"): 20 us made forward passes 6-10 % faster on an
 * idle machine and changed nothing beyond the noise beside a competing load; 200 us was slower there. */
#ifndef VITQ_POOL_SPIN_NS
#define VITQ_POOL_SPIN_NS 20000
#endif

/* In integers: the integer-only runtime runs its loops on this pool, and nothing it runs uses floating
 * point (tests/build/check_float_free.sh builds this file without FP registers). */
static int64_t mono_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + (int64_t)t.tv_nsec;
}

static void cpu_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Polls until done(arg) or VITQ_POOL_SPIN_NS have passed (without the lock). */
static void spin_until(int (*done)(const void *), const void *arg) {
    int64_t t0 = mono_ns();
    for (int k = 1; !done(arg); k++) {
        cpu_pause();
        if (k % 64 == 0 && mono_ns() - t0 > VITQ_POOL_SPIN_NS) return;
    }
}

static int posted_since(const void *seen) {
    return atomic_load_explicit(&pool.posted, memory_order_relaxed) != *(const unsigned *)seen;
}

static int helpers_left(const void *job) {
    /* acquire: the helpers' results are visible once their count is seen at 0 */
    return atomic_load_explicit(&((const pool_job *)job)->running, memory_order_acquire) == 0;
}

static void run_items(pool_job *j, int worker) {
    for (;;) {
        int64_t i = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (i >= j->items) return;
        j->fn(j->ctx, i, worker);
    }
}

/* A worker polls briefly after each job, then sleeps until a job has a free seat. */
static void *worker_main(void *arg) {
    (void)arg;
    int spun = 1; /* no spin before the first job */
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (!pool.stop && !(pool.job && pool.job->seats > 0)) {
            if (!spun) { /* once per idle spell, right after a job */
                unsigned seen = atomic_load_explicit(&pool.posted, memory_order_relaxed);
                pthread_mutex_unlock(&pool.lock);
                spin_until(posted_since, &seen);
                pthread_mutex_lock(&pool.lock);
                spun = 1;
                continue;
            }
            pthread_cond_wait(&pool.wake, &pool.lock);
        }
        spun = 0;
        if (pool.stop) break;
        pool_job *j = pool.job;
        j->seats--;
        int worker = ++j->joined;
        atomic_fetch_add(&j->running, 1);
        pthread_mutex_unlock(&pool.lock);
        run_items(j, worker);
        pthread_mutex_lock(&pool.lock);
        int last = atomic_fetch_sub(&j->running, 1) == 1; /* j is not touched after this: its caller returns */
        if (last) {
            /* signalled without the lock, so the caller wakes to a free mutex rather than to this
             * thread still holding it (the wait loop re-checks `running`, so a late signal is harmless) */
            pthread_mutex_unlock(&pool.lock);
            pthread_cond_signal(&pool.done);
            pthread_mutex_lock(&pool.lock);
        }
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

/* Fork: the child has only the forking thread. The prepare handler holds the lock across fork() so
 * the child's copy of the pool is consistent; the child forgets the workers (they do not exist
 * there) and any other thread's job, and its next loop starts a fresh pool. */
static void fork_prepare(void) { pthread_mutex_lock(&pool.lock); }
static void fork_parent(void) { pthread_mutex_unlock(&pool.lock); }
static void fork_child(void) {
    pool.job = NULL;
    pool.busy = 0;
    pool.workers = 0;
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pthread_cond_init(&pool.done, NULL);
}

/* Grow the pool to n workers (under the lock). A thread that cannot be created leaves the pool
 * smaller: loops then use fewer threads, never fail. */
static void start_workers(int n) {
    if (pool.workers >= n) return;
    if (!pool.atfork) pool.atfork = pthread_atfork(fork_prepare, fork_parent, fork_child) == 0;
    if (!pool.atfork) return; /* without fork safety no threads: a forked child could deadlock */
    /* Workers block every signal: the application's handlers run on the application's threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    while (pool.workers < n && pthread_create(&pool.threads[pool.workers], NULL, worker_main, NULL) == 0)
        pool.workers++;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Open job j to want - 1 helpers; 0 when the pool is taken (or stopped, or has no thread). */
static int post(pool_job *j, int want) {
    pthread_mutex_lock(&pool.lock);
    if (pool.busy || pool.stop) {
        pthread_mutex_unlock(&pool.lock);
        return 0;
    }
    start_workers(want - 1);
    int seats = want - 1 < pool.workers ? want - 1 : pool.workers, all = seats == pool.workers;
    if (seats > 0) {
        j->seats = seats;
        pool.job = j;
        pool.busy = 1;
        atomic_fetch_add_explicit(&pool.posted, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&pool.lock);
    /* woken after the unlock: a worker wakes to a free mutex (the job stays posted until collect()) */
    if (seats > 0 && all)
        pthread_cond_broadcast(&pool.wake);
    else
        for (int k = 0; k < seats; k++) pthread_cond_signal(&pool.wake);
    return seats > 0;
}

/* Close j to newcomers and wait (briefly polling, then asleep) until its helpers have left. */
static void collect(pool_job *j) {
    pthread_mutex_lock(&pool.lock);
    pool.job = NULL;
    if (atomic_load(&j->running) > 0) { /* a helper is finishing its last item */
        pthread_mutex_unlock(&pool.lock);
        spin_until(helpers_left, j);
        pthread_mutex_lock(&pool.lock);
    }
    while (atomic_load(&j->running) > 0) pthread_cond_wait(&pool.done, &pool.lock);
    pool.busy = 0;
    pthread_mutex_unlock(&pool.lock);
}

void vitq_i_parallel_for(int nthreads, int64_t items, vitq_i_task_fn fn, void *ctx) {
    if (items <= 0) return;
    int want = nthreads < POOL_MAX_THREADS ? nthreads : POOL_MAX_THREADS;
    if (want > items) want = (int)items;
    pool_job j;
    j.fn = fn;
    j.ctx = ctx;
    j.items = items;
    atomic_init(&j.next, 0);
    atomic_init(&j.running, 0);
    j.seats = j.joined = 0;
    if (want <= 1 || !post(&j, want)) { /* alone: one thread wanted, nested, or the pool is taken */
        for (int64_t i = 0; i < items; i++) fn(ctx, i, 0);
        return;
    }
    run_items(&j, 0);
    collect(&j);
}

static int cpus_available(void) {
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 && n < POOL_MAX_THREADS ? (int)n : n > 0 ? POOL_MAX_THREADS : 1;
}

int vitq_i_max_threads(void) {
    static atomic_int cached; /* read once; a racing first call stores the same value */
    int n = atomic_load_explicit(&cached, memory_order_relaxed);
    if (n == 0) {
        n = capped(cpus_available());
        atomic_store_explicit(&cached, n, memory_order_relaxed);
    }
    return n;
}

/* Stop and join the workers when the program exits or libvitq.so is unloaded (dlclose), so no thread
 * is left running code that is gone. Loops after this run on their caller's thread. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((destructor)) static void pool_shutdown(void) {
    pthread_mutex_lock(&pool.lock);
    pool.stop = 1;
    int n = pool.workers;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    for (int k = 0; k < n; k++) pthread_join(pool.threads[k], NULL);
    pthread_mutex_lock(&pool.lock);
    pool.workers = 0;
    pthread_mutex_unlock(&pool.lock);
}
#endif

#endif
