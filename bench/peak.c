/* peak: the arithmetic ceiling of this CPU, the denominator of the benchmark's "% of peak" column.
 *
 *   peak [SECONDS]    prints one JSON object: FP32 FMA GFLOP/s and int8 dot-product GOP/s, 1 and 2 threads
 *
 * Each loop keeps many independent accumulators so that the FMA (or vpdpbusd) latency is hidden and
 * only issue throughput counts: 12 chains cover a 4-cycle latency on 2 pipes with room to spare.
 * A flop is a multiply or an add (one FMA lane = 2 flops, like GEMM's 2*M*N*K); an int8 op likewise
 * (one vpdpbusd lane = 4 multiply-adds = 8 ops). The best of several timed runs is the peak. The
 * machine may be shared: rates are per thread CPU time (a core's throughput, unaffected by other
 * processes taking turns on it), with the wall-clock rates printed beside them ("_wall"). */
#define _GNU_SOURCE /* for pthread_setaffinity_np */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define PEAK_X86 1
#else
#define PEAK_X86 0
#endif


typedef double (*kernel_fn)(uint64_t iterations); /* returns a value that depends on the work */

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#if PEAK_X86
/* Twelve named accumulators, spelled out: a loop over an array of them is left in memory at -O2,
 * which measures the store-to-load path instead of the FMA pipes. */
#define ACCS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define CHAINS 12

/* The multiplier is just below 1 and the addend tiny, so values neither overflow nor denormalise. */
__attribute__((target("avx512f"))) static double fma_zmm(uint64_t iterations) {
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
#define DECL(i) __m512 acc##i = _mm512_set1_ps((float)(i));
#define STEP(i) acc##i = _mm512_fmadd_ps(acc##i, a, b);
#define SUM(i) s = _mm512_add_ps(s, acc##i);
    ACCS(DECL)
    for (uint64_t it = 0; it < iterations; it++) {
        ACCS(STEP)
    }
    __m512 s = _mm512_setzero_ps();
    ACCS(SUM)
#undef DECL
#undef STEP
#undef SUM
    return (double)_mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static double fma_ymm(uint64_t iterations) {
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
#define DECL(i) __m256 acc##i = _mm256_set1_ps((float)(i));
#define STEP(i) acc##i = _mm256_fmadd_ps(acc##i, a, b);
#define SUM(i) s = _mm256_add_ps(s, acc##i);
    ACCS(DECL)
    for (uint64_t it = 0; it < iterations; it++) {
        ACCS(STEP)
    }
    __m256 s = _mm256_setzero_ps();
    ACCS(SUM)
#undef DECL
#undef STEP
#undef SUM
    float lanes[8];
    _mm256_storeu_ps(lanes, s);
    return (double)(lanes[0] + lanes[7]);
}

/* The int32 accumulators wrap on purpose; sum them as unsigned so that no C-level overflow occurs
 * (_mm512_reduce_add_epi32 adds in signed int). */
__attribute__((target("avx512f"))) static double sum_lanes(__m512i v) {
    uint32_t lanes[16], total = 0;
    _mm512_storeu_si512((void *)lanes, v);
    for (int i = 0; i < 16; i++) total += lanes[i];
    return (double)total;
}

/* u8 x s8 -> s32 dot products of 4; int32 wrap-around is harmless, only the issue rate matters. */
__attribute__((target("avx512f,avx512vnni"))) static double vnni_zmm(uint64_t iterations) {
    const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-5);
#define DECL(i) __m512i acc##i = _mm512_set1_epi32(i);
#define STEP(i) acc##i = _mm512_dpbusd_epi32(acc##i, a, b);
#define SUM(i) s = _mm512_add_epi32(s, acc##i);
    ACCS(DECL)
    for (uint64_t it = 0; it < iterations; it++) {
        ACCS(STEP)
    }
    __m512i s = _mm512_setzero_si512();
    ACCS(SUM)
#undef DECL
#undef STEP
#undef SUM
    return sum_lanes(s);
}

/* Without VNNI an int8 GEMM uses vpmaddubsw + vpmaddwd + vpaddd: 3 instructions per 4 MACs a lane.
 * The operands are re-derived from the accumulators so the compiler cannot hoist the products. */
__attribute__((target("avx512f,avx512bw"))) static double madd_zmm(uint64_t iterations) {
    const __m512i b = _mm512_set1_epi8(-5), ones = _mm512_set1_epi16(1);
#define DECL(i) __m512i acc##i = _mm512_set1_epi32(i);
#define STEP(i) acc##i = _mm512_add_epi32(acc##i, _mm512_madd_epi16(_mm512_maddubs_epi16(acc##i, b), ones));
#define SUM(i) s = _mm512_add_epi32(s, acc##i);
    ACCS(DECL)
    for (uint64_t it = 0; it < iterations; it++) {
        ACCS(STEP)
    }
    __m512i s = _mm512_setzero_si512();
    ACCS(SUM)
#undef DECL
#undef STEP
#undef SUM
    return sum_lanes(s);
}
#else
#define CHAINS 12
#endif

/* Portable fallback so the program runs anywhere (the number then says little). */
static double fma_scalar(uint64_t iterations) {
    float acc[CHAINS];
    for (int i = 0; i < CHAINS; i++) acc[i] = (float)i;
    for (uint64_t it = 0; it < iterations; it++)
        for (int i = 0; i < CHAINS; i++) acc[i] = acc[i] * 0.999999f + 1e-7f;
    float s = 0;
    for (int i = 0; i < CHAINS; i++) s += acc[i];
    return (double)s;
}

typedef struct {
    kernel_fn fn;
    uint64_t iterations;
    int cpu;
    pthread_barrier_t *barrier;
    double seconds, cpu_seconds, sink;
} worker;

static double thread_cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *worker_main(void *arg) {
    worker *w = arg;
#ifdef CPU_SET
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(w->cpu, &set);
    (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set); /* best effort */
#endif
    pthread_barrier_wait(w->barrier);
    double t0 = now_seconds(), c0 = thread_cpu_seconds();
    w->sink = w->fn(w->iterations);
    w->cpu_seconds = thread_cpu_seconds() - c0;
    w->seconds = now_seconds() - t0;
    return NULL;
}

/* Ops per second of `threads` threads running `fn` together, best of several runs: *cpu_rate from
 * each thread's own CPU time (what the cores can do, even while other processes time-slice with
 * them), *wall_rate from the slowest thread's wall time (what a run got on this machine now). */
static void measure(kernel_fn fn, double ops_per_iteration, int threads, double seconds, double *cpu_rate,
                    double *wall_rate) {
    uint64_t iterations = 1u << 16;
    for (;;) { /* calibrate the count to about `seconds` of CPU per run */
        double c0 = thread_cpu_seconds();
        volatile double sink = fn(iterations);
        (void)sink;
        double t = thread_cpu_seconds() - c0;
        if (t > seconds / 4 || iterations > (1ull << 40)) {
            iterations = (uint64_t)((double)iterations * seconds / (t > 1e-9 ? t : 1e-9)) + 1;
            break;
        }
        iterations *= 4;
    }
    *cpu_rate = *wall_rate = 0;
    for (int rep = 0; rep < 5; rep++) {
        worker w[64];
        pthread_t tid[64];
        pthread_barrier_t barrier;
        pthread_barrier_init(&barrier, NULL, (unsigned)threads);
        for (int t = 0; t < threads; t++) {
            w[t] = (worker){fn, iterations, t, &barrier, 0, 0, 0};
            pthread_create(&tid[t], NULL, worker_main, &w[t]);
        }
        double slowest = 0, cpu = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(tid[t], NULL);
            if (w[t].seconds > slowest) slowest = w[t].seconds;
            cpu += (double)iterations * ops_per_iteration / w[t].cpu_seconds;
        }
        pthread_barrier_destroy(&barrier);
        double wall = (double)iterations * ops_per_iteration * threads / slowest;
        if (cpu > *cpu_rate) *cpu_rate = cpu;
        if (wall > *wall_rate) *wall_rate = wall;
    }
}

static void report(const char *key, kernel_fn fn, double ops_per_iteration, int max_threads, double seconds,
                   int *first) {
    for (int threads = 1; threads <= max_threads; threads++) {
        double cpu_rate, wall_rate;
        measure(fn, ops_per_iteration, threads, seconds, &cpu_rate, &wall_rate);
        printf("%s\"%s_%dt\": %.2f, \"%s_%dt_wall\": %.2f", *first ? "" : ", ", key, threads, cpu_rate * 1e-9, key,
               threads, wall_rate * 1e-9);
        *first = 0;
        fflush(stdout);
    }
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 0.25;
    if (!(seconds > 0)) seconds = 0.25;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int max_threads = cpus >= 2 ? 2 : 1; /* the benchmark runs every engine on 2 threads */
    int first = 1;
    printf("{");
#if PEAK_X86
    __builtin_cpu_init();
    int has_avx512 = !!__builtin_cpu_supports("avx512f");
    int has_vnni = has_avx512 && __builtin_cpu_supports("avx512vnni");
    int has_bw = has_avx512 && __builtin_cpu_supports("avx512bw");
    int has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    printf("\"avx512f\": %d, \"avx512vnni\": %d, \"avx2_fma\": %d", has_avx512, has_vnni, has_avx2);
    first = 0;
    /* flops per loop iteration: CHAINS FMAs x lanes x 2 */
    if (has_avx512) report("fp32_fma_zmm_gflops", fma_zmm, CHAINS * 16.0 * 2, max_threads, seconds, &first);
    if (has_avx2) report("fp32_fma_ymm_gflops", fma_ymm, CHAINS * 8.0 * 2, max_threads, seconds, &first);
    /* int8 ops per iteration: CHAINS instructions x 16 lanes x 4 products x 2 */
    if (has_vnni) report("int8_vnni_zmm_gops", vnni_zmm, CHAINS * 16.0 * 4 * 2, max_threads, seconds, &first);
    if (has_bw) report("int8_maddubs_zmm_gops", madd_zmm, CHAINS * 16.0 * 4 * 2, max_threads, seconds, &first);
    if (!has_avx2)
#endif
        report("fp32_portable_gflops", fma_scalar, CHAINS * 2.0, max_threads, seconds, &first);
    printf("}\n");
    return 0;
}
