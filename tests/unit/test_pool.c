/* The parallel loops (core/pool.h) in whichever build this is (the library's pool, OPENMP=1, or
 * VITQ_NO_THREADS): every item runs exactly once against a plain count for many (threads, items)
 * pairs, worker numbers stay in range and are never shared by two threads at once, the caller is
 * worker 0, several application threads may run loops at once, a loop inside a task runs inline,
 * idle threads and a waiting caller sleep, a forked child gets a working pool, and forward passes
 * give the same bits for every thread count (float and integer W8A8). */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/pool.h"
#include "harness.h"
#include "test_util.h"

#define FIXTURE "tests/fixtures/models/odd-vit-hf"
#define MAX_ITEMS 4096
#define MAX_WORKERS 64

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

static int threaded(void) { return (vitq_build_features() & VITQ_FEATURE_THREADS) != 0; }

static double wall_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- one loop against the reference count ------------------------------------------------------ */

typedef struct count_ctx {
    int nthreads;
    atomic_int runs[MAX_ITEMS];    /* times item i ran */
    atomic_int busy[MAX_WORKERS];  /* 1 while a thread runs a task as that worker */
    atomic_int bad_worker, shared_worker, caller_not_zero;
    pthread_t caller;
} count_ctx;

static void count_task(void *ctx, int64_t item, int worker) {
    count_ctx *c = ctx;
    if (worker < 0 || worker >= c->nthreads || worker >= MAX_WORKERS) {
        atomic_fetch_add(&c->bad_worker, 1);
        return;
    }
    if (atomic_exchange(&c->busy[worker], 1) != 0) atomic_fetch_add(&c->shared_worker, 1);
    if (!!pthread_equal(pthread_self(), c->caller) != (worker == 0)) atomic_fetch_add(&c->caller_not_zero, 1);
    atomic_fetch_add(&c->runs[item], 1);
    if (item % 7 == 0) sched_yield(); /* uneven items, so threads interleave */
    atomic_store(&c->busy[worker], 0);
}

/* Runs one loop; 1 when every item ran once and the worker rules held. */
static int run_counted(count_ctx *c, int nthreads, int64_t items) {
    memset(c, 0, sizeof *c);
    c->nthreads = nthreads;
    c->caller = pthread_self();
    vitq_i_parallel_for(nthreads, items, count_task, c);
    int ok = 1;
    for (int64_t i = 0; i < items; i++)
        if (atomic_load(&c->runs[i]) != 1) {
            printf("    %d threads, %lld items: item %lld ran %d times\n", nthreads, (long long)items, (long long)i,
                   atomic_load(&c->runs[i]));
            ok = 0;
            break;
        }
    for (int64_t i = items; i < MAX_ITEMS; i++)
        if (atomic_load(&c->runs[i]) != 0) ok = 0; /* nothing past the end */
    if (c->bad_worker || c->shared_worker || c->caller_not_zero) {
        printf("    %d threads, %lld items: %d out-of-range workers, %d shared, %d caller/worker-0 mismatches\n",
               nthreads, (long long)items, atomic_load(&c->bad_worker), atomic_load(&c->shared_worker),
               atomic_load(&c->caller_not_zero));
        ok = 0;
    }
    return ok;
}

static count_ctx counted;

static void test_every_item_once(void) {
    const int threads[] = {-1, 0, 1, 2, 3, 4, 8};
    const int64_t items[] = {0, 1, 2, 3, 5, 7, 8, 9, 63, 64, 1000, MAX_ITEMS};
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++)
        for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
            int n = threads[t] < 1 ? 1 : threads[t]; /* worker numbers are checked against max(1, nthreads) */
            memset(&counted, 0, sizeof counted);
            counted.nthreads = n;
            counted.caller = pthread_self();
            vitq_i_parallel_for(threads[t], items[i], count_task, &counted);
            int ok = 1;
            for (int64_t k = 0; k < MAX_ITEMS; k++)
                if (atomic_load(&counted.runs[k]) != (k < items[i])) ok = 0;
            if (!ok || counted.bad_worker || counted.shared_worker || counted.caller_not_zero)
                printf("    nthreads %d, %lld items: wrong counts or workers\n", threads[t], (long long)items[i]);
            CHECK(ok && !counted.bad_worker && !counted.shared_worker && !counted.caller_not_zero);
        }
    for (int rep = 0; rep < 200; rep++) CHECK(run_counted(&counted, 2 + rep % 3, 1 + rep % 17)); /* back to back */
}

/* ---- the loop really runs on several threads ---------------------------------------------------- */

typedef struct meet_ctx {
    atomic_int arrived;
    atomic_int met; /* tasks that saw the other one running */
} meet_ctx;

/* Each of two items waits (up to 10 s) until the other has started: only two threads can pass. */
static void meet_task(void *ctx, int64_t item, int worker) {
    meet_ctx *m = ctx;
    (void)item;
    (void)worker;
    atomic_fetch_add(&m->arrived, 1);
    double t0 = wall_seconds();
    while (atomic_load(&m->arrived) < 2 && wall_seconds() - t0 < 10.0) sleep_ms(1);
    if (atomic_load(&m->arrived) >= 2) atomic_fetch_add(&m->met, 1);
}

static void test_runs_in_parallel(void) {
    if (!threaded()) {
        SKIP("built with VITQ_NO_THREADS: loops run on the caller's thread");
        return;
    }
    meet_ctx m;
    atomic_init(&m.arrived, 0);
    atomic_init(&m.met, 0);
    vitq_i_parallel_for(2, 2, meet_task, &m);
    if (atomic_load(&m.met) != 2) printf("    the two items of a 2-thread loop never ran at the same time\n");
    CHECK(atomic_load(&m.met) == 2);
}

/* ---- several application threads at once ------------------------------------------------------- */

typedef struct caller_job {
    int index, failures;
    count_ctx c;
} caller_job;

static void *caller_main(void *arg) {
    caller_job *j = arg;
    for (int r = 0; r < 150; r++) {
        int n = 1 + (r + j->index) % 4;
        int64_t items = (r * 37 + j->index * 11) % 300;
        if (!run_counted(&j->c, n, items)) j->failures++;
    }
    return NULL;
}

static caller_job callers[4];

static void test_concurrent_callers(void) {
    pthread_t th[4];
    int started = 0;
    for (int t = 0; t < 4; t++) {
        callers[t].index = t;
        callers[t].failures = 0;
        if (pthread_create(&th[t], NULL, caller_main, &callers[t]) == 0) started++;
    }
    CHECK(started == 4);
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < started; t++) {
        if (callers[t].failures) printf("    caller thread %d: %d loops went wrong\n", t, callers[t].failures);
        CHECK(callers[t].failures == 0);
    }
}

/* ---- a loop inside a task ----------------------------------------------------------------------- */

typedef struct nest_ctx {
    atomic_int inner_runs[16 * 50];
    atomic_int inner_not_inline; /* inner tasks on another thread or worker than 0 */
} nest_ctx;

typedef struct inner_ctx {
    nest_ctx *n;
    int64_t outer;
    pthread_t thread;
} inner_ctx;

static void inner_task(void *ctx, int64_t item, int worker) {
    inner_ctx *in = ctx;
    if (worker != 0 || !pthread_equal(pthread_self(), in->thread)) atomic_fetch_add(&in->n->inner_not_inline, 1);
    atomic_fetch_add(&in->n->inner_runs[in->outer * 50 + item], 1);
}

static void outer_task(void *ctx, int64_t item, int worker) {
    (void)worker;
    inner_ctx in = {ctx, item, pthread_self()};
    vitq_i_parallel_for(4, 50, inner_task, &in);
}

static nest_ctx nested;

static void test_nested(void) {
    memset(&nested, 0, sizeof nested);
    vitq_i_parallel_for(3, 16, outer_task, &nested);
    int once = 1;
    for (int i = 0; i < 16 * 50; i++) once &= atomic_load(&nested.inner_runs[i]) == 1;
    CHECK(once);
    CHECK(atomic_load(&nested.inner_not_inline) == 0);
}

/* ---- idle threads sleep ------------------------------------------------------------------------- */

static void spin_task(void *ctx, int64_t item, int worker) {
    (void)ctx;
    (void)item;
    (void)worker;
    volatile double x = 0;
    for (int i = 0; i < 20000; i++) x += i;
}

typedef struct straggler_ctx {
    atomic_int started, slept;
} straggler_ctx;

/* Item 0 waits (asleep, up to 2 s) for another thread to start item 1, which then sleeps 300 ms:
 * the caller has nothing left and must wait for it without burning a core. */
static void straggler_task(void *ctx, int64_t item, int worker) {
    straggler_ctx *s = ctx;
    if (item == 0) {
        for (int k = 0; k < 2000 && !atomic_load(&s->started); k++) sleep_ms(1);
        return;
    }
    atomic_store(&s->started, 1);
    if (worker != 0) {
        sleep_ms(300);
        atomic_store(&s->slept, 1);
    }
}

static void test_idle_threads_sleep(void) {
    if (!threaded()) {
        SKIP("built with VITQ_NO_THREADS: no threads to sleep");
        return;
    }
    for (int r = 0; r < 50; r++) vitq_i_parallel_for(2, 64, spin_task, NULL);
    sleep_ms(50); /* past any short spin */
    double c0 = cpu_seconds(), w0 = wall_seconds();
    sleep_ms(300);
    double idle_cpu = cpu_seconds() - c0, idle_wall = wall_seconds() - w0;
    printf("    idle: %.1f ms of CPU in %.0f ms\n", 1e3 * idle_cpu, 1e3 * idle_wall);
    CHECK(idle_cpu < 0.05);
    /* the caller waits for a straggler without burning a core */
    straggler_ctx s;
    int waited = 0;
    for (int attempt = 0; attempt < 5 && !waited; attempt++) {
        atomic_init(&s.started, 0);
        atomic_init(&s.slept, 0);
        c0 = cpu_seconds();
        vitq_i_parallel_for(2, 2, straggler_task, &s);
        double cpu = cpu_seconds() - c0;
        waited = atomic_load(&s.slept);
        if (waited) {
            printf("    waiting 300 ms for a straggler: %.1f ms of CPU\n", 1e3 * cpu);
            CHECK(cpu < 0.1);
        }
    }
    if (!waited) printf("    no helper took item 1 in 5 tries: the wait was not measured\n");
    CHECK(waited);
}

/* ---- fork ----------------------------------------------------------------------------------- */

static atomic_int keep_looping;

static void *looper_main(void *arg) {
    (void)arg;
    while (atomic_load(&keep_looping)) vitq_i_parallel_for(2, 64, spin_task, NULL);
    return NULL;
}

static void test_fork(void) {
    if (UNDER_TSAN) {
        SKIP("ThreadSanitizer does not support threads in the child of a multi-threaded fork");
        return;
    }
    if (vitq_build_features() & VITQ_FEATURE_OPENMP) {
        /* GCC 12's libgomp: a child that runs a parallel region after its parent ran one hangs */
        SKIP("OpenMP build: libgomp is not fork-safe (the pool build is)");
        return;
    }
    /* fork while another thread runs loops: the child's pool must start afresh and work */
    atomic_store(&keep_looping, 1);
    pthread_t looper;
    int started = pthread_create(&looper, NULL, looper_main, NULL) == 0;
    CHECK(started);
    for (int round = 0; round < 5; round++) {
        sleep_ms(5);
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(20); /* a deadlock kills the child: the parent sees a signal */
            int ok = 1;
            for (int r = 0; r < 20 && ok; r++) ok = run_counted(&counted, 2 + r % 2, 200);
            _exit(ok ? 0 : 3);
        }
        CHECK(pid > 0);
        int status = 0;
        if (pid > 0) {
            CHECK(waitpid(pid, &status, 0) == pid);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                printf("    forked child: %s %d\n", WIFEXITED(status) ? "exit status" : "killed by signal",
                       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
    }
    atomic_store(&keep_looping, 0);
    if (started) pthread_join(looper, NULL);
    CHECK(run_counted(&counted, 2, 100)); /* and the parent's pool still works */
}

/* ---- thread counts ------------------------------------------------------------------------------ */

static void test_max_threads(void) {
    int n = vitq_i_max_threads();
    CHECK(n >= 1);
    if (!threaded()) {
        CHECK(n == 1);
        return;
    }
    const char *cap = getenv("VITQ_NUM_THREADS");
#if defined(__linux__) && !defined(_OPENMP)
    cpu_set_t set;
    if (!cap && sched_getaffinity(0, sizeof set, &set) == 0) {
        printf("    %d threads by default, %d CPUs in the affinity mask\n", n, CPU_COUNT(&set));
        CHECK(n == CPU_COUNT(&set));
    }
#endif
    if (cap && atoi(cap) > 0) CHECK(n <= atoi(cap));
}

/* ---- forward passes: the same bits for every thread count ------------------------------------- */

static int quantize(const vitq_model *fp, vitq_model **integer) {
    vitq_dataset *images = NULL;
    vitq_calibrator *cal = NULL;
    vitq_model *simulated = NULL;
    vitq_calibrator_options co;
    vitq_calibrator_options_init(&co);
    co.scheme = "minmax";
    vitq_status st = vitq_dataset_load_file(FIXTURE "/input.npy", NULL, NULL, &images);
    if (!st) st = vitq_calibrator_create(fp, &co, &cal);
    if (!st) st = vitq_calibrator_feed_dataset(cal, images, 0, 3);
    if (!st) st = vitq_calibrator_run(cal, &simulated);
    vitq_calibrator_free(cal);
    vitq_dataset_free(images);
    size_t size = 0;
    uint8_t *buf = NULL;
    if (!st) st = vitq_model_save_memory(simulated, NULL, 0, &size);
    if (st == VITQ_ERR_BUFFER_TOO_SMALL) st = VITQ_OK;
    if (!st && !(buf = malloc(size))) st = VITQ_ERR_OUT_OF_MEMORY;
    if (!st) st = vitq_model_save_memory(simulated, buf, size, &size);
    if (!st) st = vitq_model_load_memory(buf, size, "w8a8.safetensors", NULL, integer);
    free(buf);
    vitq_model_free(simulated);
    if (st) printf("    quantizing " FIXTURE ": %s (%s)\n", vitq_status_name(st), vitq_last_error());
    return st == VITQ_OK;
}

/* Logits of 3 images at 1, 2, 3 and 0 (all) threads: identical bits. */
static void check_thread_invariance(vitq_model *m, const float *input, const char *what) {
    float want[3 * 16], got[3 * 16];
    vitq_model_info info;
    vitq_model_info_init(&info);
    CHECK_STATUS(vitq_model_get_info(m, &info), VITQ_OK);
    size_t n = 3 * (size_t)info.num_classes;
    CHECK(n <= sizeof want / sizeof want[0]);
    if (n > sizeof want / sizeof want[0]) return;
    CHECK_STATUS(vitq_model_set_num_threads(m, 1), VITQ_OK);
    CHECK_STATUS(vitq_model_forward(m, input, 3, want), VITQ_OK);
    const int counts[] = {2, 3, 0};
    for (int k = 0; k < 3; k++) {
        CHECK_STATUS(vitq_model_set_num_threads(m, counts[k]), VITQ_OK);
        CHECK_STATUS(vitq_model_forward(m, input, 3, got), VITQ_OK);
        if (memcmp(got, want, n * sizeof(float)) != 0) printf("    %s: %d threads differ from 1\n", what, counts[k]);
        CHECK(memcmp(got, want, n * sizeof(float)) == 0);
    }
}

static void test_forward_bits(void) {
    vitq_model *fp = NULL, *qi = NULL;
    uint64_t rows = 0, cols = 0;
    CHECK_STATUS(vitq_model_load_file(FIXTURE, NULL, &fp), VITQ_OK);
    float *input = load_npy_f32(FIXTURE "/input.npy", &rows, &cols);
    CHECK(fp && input && rows >= 3);
    if (fp && input && rows >= 3) {
        check_thread_invariance(fp, input, "float");
        CHECK(quantize(fp, &qi));
        if (qi) {
            vitq_model_info info;
            vitq_model_info_init(&info);
            CHECK_STATUS(vitq_model_get_info(qi, &info), VITQ_OK);
            CHECK(info.num_integer_layers > 0 && info.num_integer_attentions > 0); /* the integer kernels run */
            check_thread_invariance(qi, input, "W8A8 integer");
        }
    }
    free(input);
    vitq_model_free(qi);
    vitq_model_free(fp);
}

int main(void) {
    RUN(test_every_item_once);
    RUN(test_runs_in_parallel);
    RUN(test_concurrent_callers);
    RUN(test_nested);
    RUN(test_idle_threads_sleep);
    RUN(test_fork);
    RUN(test_max_threads);
    RUN(test_forward_bits);
    HARNESS_EXIT();
}
