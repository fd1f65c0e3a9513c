/* bench_kernels: the FP32 kernels against the FMA peak of this machine (internal benchmark, linked
 * against build/<variant>/libvitq.a with -Isrc; `make bench-kernels`).
 *
 *   bench_kernels [--quick] [--repeats N] [--isa generic|avx2|avx512] [--threads T]
 *
 * Prints, per instruction-set path and thread count, GFLOP/s and % of the measured FMA peak for the
 * GEMM shapes of DeiT-S and ViT-B at batch 8 (M = 8 * 197 rows; qkv, proj, fc1 with GELU, fc2 with
 * residual, as the forward pass calls them) and the time of the attention of DeiT-S (197 tokens x 6
 * heads x 64, batch 8). Each figure is the median of repeated runs (the machine may be shared).
 * The peak is measured here with a loop of independent FMAs on all 16 (zmm) or 8 (ymm) lanes, on 1
 * and on T threads; the generic path is compared with the best peak. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_time.h"
#include "kernels/cpu.h"
#include "kernels/kernels.h"
#include "kernels/parallel.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define BENCH_X86 1
#else
#define BENCH_X86 0
#endif

/* One timed run: wall seconds and CPU seconds of all threads (core-seconds: work / CPU time is a
 * core's rate, unaffected by other processes taking turns on the cores; idle OpenMP threads spin,
 * so there load imbalance and synchronisation still count, while the pool's idle threads sleep). */
typedef struct timing {
    double wall, cpu;
} timing;

/* ---- FMA peak ---------------------------------------------------------------------------------- */

#if BENCH_X86
/* Twelve named chains hide the FMA latency; the empty asm keeps them in registers. */
#define CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
__attribute__((target("avx512f"))) static float fma_loop_512(long n) {
    __m512 b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-4f);
#define DECL(i) __m512 a##i = _mm512_set1_ps((float)(i)*1e-3f);
#define STEP(i) a##i = _mm512_fmadd_ps(a##i, b, c);
#define KEEP(i) __asm__ volatile("" : "+v"(a##i));
#define SUM(i) s = _mm512_add_ps(s, a##i);
    CHAINS(DECL)
    for (long i = 0; i < n; i++) {
        CHAINS(STEP)
        CHAINS(KEEP)
    }
    __m512 s = _mm512_setzero_ps();
    CHAINS(SUM)
    return _mm512_reduce_add_ps(s);
#undef DECL
#undef STEP
#undef SUM
}

__attribute__((target("avx2,fma"))) static float fma_loop_256(long n) {
    __m256 b = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(1e-4f);
#define DECL(i) __m256 a##i = _mm256_set1_ps((float)(i)*1e-3f);
#define STEP(i) a##i = _mm256_fmadd_ps(a##i, b, c);
#define SUM(i) s = _mm256_add_ps(s, a##i);
    CHAINS(DECL)
    for (long i = 0; i < n; i++) {
        CHAINS(STEP)
        CHAINS(KEEP)
    }
    __m256 s = _mm256_setzero_ps();
    CHAINS(SUM)
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0];
#undef DECL
#undef STEP
#undef SUM
}
#endif

static volatile float sink;

/* GFLOP/s per core of the FMA loop on `threads` threads (lanes: 16 or 8): work / CPU time, best of 5. */
#if BENCH_X86
typedef struct fma_job {
    int lanes;
    long n;
} fma_job;

/* One thread's FMA loop (a loop of `threads` items: one per thread). */
static void fma_task(void *ctx, int64_t item, int worker) {
    const fma_job *f = ctx;
    (void)item;
    (void)worker;
    sink = f->lanes == 16 ? fma_loop_512(f->n) : fma_loop_256(f->n);
}
#endif

static double measure_peak(int lanes, int threads) {
    double best = 0;
#if BENCH_X86
    const long n = 20000000;
    fma_job f = {lanes, n};
    for (int rep = 0; rep < 5; rep++) {
        double t0 = cpu_now();
        vitq_i_parallel_for(threads, threads, fma_task, &f);
        double rate = 2.0 * lanes * 12.0 * (double)n * threads / (cpu_now() - t0) / 1e9;
        if (rate > best) best = rate;
    }
#else
    (void)lanes;
    (void)threads;
#endif
    return best;
}

/* ---- GEMM -------------------------------------------------------------------------------------- */

typedef struct shape {
    const char *model, *name;
    size_t n, k;
    vitq_i_epilogue epilogue;
} shape;

static const shape shapes[] = {
    {"deit-s", "qkv", 1152, 384, VITQ_I_EPI_NONE},        {"deit-s", "proj", 384, 384, VITQ_I_EPI_RESIDUAL},
    {"deit-s", "fc1+gelu", 1536, 384, VITQ_I_EPI_GELU_ERF}, {"deit-s", "fc2+res", 384, 1536, VITQ_I_EPI_RESIDUAL},
    {"vit-b", "qkv", 2304, 768, VITQ_I_EPI_NONE},         {"vit-b", "proj", 768, 768, VITQ_I_EPI_RESIDUAL},
    {"vit-b", "fc1+gelu", 3072, 768, VITQ_I_EPI_GELU_ERF},  {"vit-b", "fc2+res", 768, 3072, VITQ_I_EPI_RESIDUAL},
};
#define SHAPES (sizeof shapes / sizeof shapes[0])
#define M_ROWS (8 * 197)

static float *random_floats(size_t n, float scale) {
    float *p = malloc(n * sizeof(float));
    unsigned s = 12345u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * scale;
    }
    return p;
}

static timing median_timing(const double *wall, const double *cpu, int repeats) {
    double w[64], c[64];
    for (int r = 0; r < repeats; r++) w[r] = wall[r], c[r] = cpu[r];
    timing t = {median(w, repeats), median(c, repeats)};
    return t;
}

/* Median time of one GEMM call. */
static timing time_gemm(const shape *s, int threads, int repeats) {
    vitq_allocator alloc;
    vitq_i_allocator_resolve(NULL, &alloc);
    float *a = random_floats(M_ROWS * s->k, 2.0f), *w = random_floats(s->n * s->k, 0.1f);
    float *bias = random_floats(s->n, 0.1f), *c = random_floats((size_t)M_ROWS * s->n, 1.0f);
    vitq_i_packed p;
    if (vitq_i_gemm_pack(&alloc, w, s->n, s->k, &p) != VITQ_OK) exit(1);
    double wall[64], cpu[64];
    vitq_i_gemm(a, s->k, M_ROWS, &p, bias, c, s->n, s->epilogue, threads); /* warm-up */
    for (int r = 0; r < repeats; r++) {
        double t0 = now(), c0 = cpu_now();
        vitq_i_gemm(a, s->k, M_ROWS, &p, bias, c, s->n, s->epilogue, threads);
        wall[r] = now() - t0;
        cpu[r] = cpu_now() - c0;
    }
    vitq_i_gemm_packed_free(&alloc, &p);
    free(a), free(w), free(bias), free(c);
    return median_timing(wall, cpu, repeats);
}

/* Median time of the DeiT-S attention of 8 images. */
static timing time_attention(int threads, int repeats) {
    const size_t batch = 8, tokens = 197, dim = 384, heads = 6;
    float *qkv = random_floats(batch * tokens * 3 * dim, 4.0f), *out = malloc(batch * tokens * dim * sizeof(float));
    float *scratch = malloc((size_t)threads * vitq_i_attention_scratch_floats(tokens, dim / heads) * sizeof(float));
    double wall[64], cpu[64];
    vitq_i_attention(qkv, batch, tokens, dim, heads, out, scratch, threads);
    for (int r = 0; r < repeats; r++) {
        double t0 = now(), c0 = cpu_now();
        vitq_i_attention(qkv, batch, tokens, dim, heads, out, scratch, threads);
        wall[r] = now() - t0;
        cpu[r] = cpu_now() - c0;
    }
    free(qkv), free(out), free(scratch);
    return median_timing(wall, cpu, repeats);
}

int main(int argc, char **argv) {
    int repeats = 9, only_isa = -1, max_threads = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) repeats = 3;
        else if (!strcmp(argv[i], "--repeats") && i + 1 < argc) repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) max_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--isa") && i + 1 < argc) {
            const char *n = argv[++i];
            only_isa = !strcmp(n, "generic") ? VITQ_I_ISA_GENERIC : !strcmp(n, "avx2") ? VITQ_I_ISA_AVX2 : VITQ_I_ISA_AVX512;
        } else {
            fprintf(stderr, "usage: %s [--quick] [--repeats N] [--isa generic|avx2|avx512] [--threads T]\n", argv[0]);
            return 2;
        }
    }
    if (repeats < 1) repeats = 1;
    if (repeats > 64) repeats = 64;
    if (max_threads > vitq_i_max_threads()) max_threads = vitq_i_max_threads();
    if (max_threads < 1) max_threads = 1;
    if (max_threads > 8) max_threads = 8;

    unsigned f = vitq_i_cpu_features();
    int lanes = f & VITQ_I_CPU_AVX512 ? 16 : f & VITQ_I_CPU_AVX2_FMA ? 8 : 0;
    double peak[9] = {0}; /* by thread count */
    printf("FMA peak (%s, %d lanes):", lanes == 16 ? "zmm" : lanes == 8 ? "ymm" : "none", lanes);
    for (int t = 1; t <= max_threads; t++) {
        if (lanes == 16) {
            double p256 = measure_peak(8, t), p512 = measure_peak(16, t); /* the better of the two widths */
            peak[t] = p512 > p256 ? p512 : p256;
        } else if (lanes == 8) {
            peak[t] = measure_peak(8, t);
        }
        printf("  %d thread%s %.1f GFLOP/s per core", t, t > 1 ? "s" : "", peak[t]);
    }
    printf("\nGEMM M=%d (8 images x 197 tokens), median of %d runs. GFLOP/s per core from CPU time (cpu) and from\n"
           "wall-clock time (wall, divided by the threads); %% of the FMA peak per core at that thread count.\n\n",
           M_ROWS, repeats);

    vitq_i_isa best = vitq_i_isa_active();
    double deit_ms[3][9] = {{0}}; /* [isa][threads]: wall ms of one block's 4 GEMMs */
    printf("%-8s %-7s %-10s %5s %5s %7s %9s %7s %9s %7s\n", "path", "model", "layer", "N", "K", "threads",
           "cpu GF/s", "% peak", "wall GF/s", "% peak");
    for (int isa = (int)best; isa >= 0; isa--) {
        if (only_isa >= 0 && isa != only_isa) continue;
        vitq_i_isa_force(isa);
        int reps = isa == VITQ_I_ISA_GENERIC && repeats > 3 ? 3 : repeats;
        for (int t = 1; t <= max_threads; t++)
            for (size_t s = 0; s < SHAPES; s++) {
                if (isa == VITQ_I_ISA_GENERIC && strcmp(shapes[s].model, "deit-s")) continue;
                timing tm = time_gemm(&shapes[s], t, reps);
                double gflop = 2.0 * M_ROWS * (double)shapes[s].n * (double)shapes[s].k / 1e9;
                double per_core_cpu = gflop / tm.cpu, per_core_wall = gflop / tm.wall / t;
                double pk = peak[t];
                if (!strcmp(shapes[s].model, "deit-s")) deit_ms[isa][t] += tm.wall * 1e3;
                printf("%-8s %-7s %-10s %5zu %5zu %7d %9.1f %6.1f%% %9.1f %6.1f%%\n", vitq_i_isa_name((vitq_i_isa)isa),
                       shapes[s].model, shapes[s].name, shapes[s].n, shapes[s].k, t, per_core_cpu,
                       pk > 0 ? 100.0 * per_core_cpu / pk : 0.0, per_core_wall, pk > 0 ? 100.0 * per_core_wall / pk : 0.0);
                fflush(stdout);
            }
    }

    printf("\nattention DeiT-S (8 x 197 tokens, 6 heads x 64), median of %d runs; the last column adds 12 blocks'\n"
           "GEMMs and attention per image (wall clock; LayerNorm, patch embedding and head left out)\n",
           repeats);
    printf("%-8s %7s %9s %9s %14s %14s\n", "path", "threads", "wall ms", "cpu ms", "GF/s per core", "DeiT-S ms/img");
    for (int isa = (int)best; isa >= 0; isa--) {
        if (only_isa >= 0 && isa != only_isa) continue;
        vitq_i_isa_force(isa);
        int reps = isa == VITQ_I_ISA_GENERIC && repeats > 3 ? 3 : repeats;
        for (int t = 1; t <= max_threads; t++) {
            timing tm = time_attention(t, reps);
            double gflop = 4.0 * 8 * 6 * 197.0 * 197.0 * 64.0 / 1e9;
            double per_image = 12.0 * (deit_ms[isa][t] + tm.wall * 1e3) / 8.0;
            printf("%-8s %7d %9.2f %9.2f %14.1f %14.1f\n", vitq_i_isa_name((vitq_i_isa)isa), t, tm.wall * 1e3,
                   tm.cpu * 1e3, gflop / tm.cpu, per_image);
        }
    }
    vitq_i_isa_force(-1);
    return 0;
}
