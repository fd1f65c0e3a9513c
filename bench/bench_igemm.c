/* Throughput of the integer GEMM on the DeiT-S linear layers (8 images: M = 8 * 197), per kernel,
 * int8 and int4 weights, 1 and 2 threads, as GOP/s (2 * M * N * K operations per GEMM) and as a
 * share of the vpdpbusd peak measured here with a register-only loop. Also the activation
 * quantization, and the float GEMM on the same shapes for comparison. Each figure comes from many
 * short samples: the median, and the best sample, which on a machine shared with other jobs is the
 * closest to what the code does alone.
 *   bench_igemm [--all] [--quick] [--kernel NAME] [--layer NAME] [--threads N] [--rows M] [--width D]
 * --all adds the portable C kernel, --quick takes fewer repeats, --rows sets M (197: one image),
 * --width the model width (384, DeiT-S, unless given; 768: ViT-B); the others select rows of the
 * table. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_time.h"
#include "kernels/cpu.h"
#include "kernels/igemm.h"
#include "kernels/kernels.h"
#include "kernels/parallel.h"

static int repeats = 25;

/* Seconds of one piece of work: median and best over `repeats` samples (each of at least 2 ms,
 * several calls when one is shorter), and the median CPU seconds of the process per call. */
typedef struct timing {
    double med, best, cpu;
} timing;
typedef void (*work_fn)(const void *ctx);

static timing time_work(work_fn f, const void *ctx) {
    f(ctx); /* warm-up: caches, page faults, thread start */
    double one = now();
    f(ctx);
    one = now() - one;
    int calls = one > 0.002 ? 1 : (int)(0.002 / (one + 1e-9)) + 1, n = repeats < 200 ? repeats : 200;
    double t[200], tc[200];
    for (int r = 0; r < n; r++) {
        double t0 = now(), c0 = cpu_now();
        for (int i = 0; i < calls; i++) f(ctx);
        t[r] = (now() - t0) / calls, tc[r] = (cpu_now() - c0) / calls;
    }
    timing out;
    out.cpu = median(tc, n);
    out.med = median(t, n);
    out.best = t[0]; /* sorted by median() */
    return out;
}

/* ---- the peak: independent vpdpbusd on registers only ---- */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define DP(r) "vpdpbusd %[w], %[a], %[" #r "]\n\t"
__attribute__((target("avx512f,avx512bw,avx512vnni"), noinline)) static int peak_loop(long iters) {
    __m512i c0 = _mm512_set1_epi32(1), c1 = _mm512_set1_epi32(2), c2 = _mm512_set1_epi32(3), c3 = _mm512_set1_epi32(4),
            c4 = _mm512_set1_epi32(5), c5 = _mm512_set1_epi32(6), c6 = _mm512_set1_epi32(7), c7 = _mm512_set1_epi32(8),
            c8 = _mm512_set1_epi32(9), c9 = _mm512_set1_epi32(10), c10 = _mm512_set1_epi32(11),
            c11 = _mm512_set1_epi32(12);
    __m512i a = _mm512_set1_epi8(3), w = _mm512_set1_epi8(-5);
    for (long i = 0; i < iters; i++)
        __asm__ volatile(DP(c0) DP(c1) DP(c2) DP(c3) DP(c4) DP(c5) DP(c6) DP(c7) DP(c8) DP(c9) DP(c10) DP(c11)
                         : [c0] "+v"(c0), [c1] "+v"(c1), [c2] "+v"(c2), [c3] "+v"(c3), [c4] "+v"(c4), [c5] "+v"(c5),
                           [c6] "+v"(c6), [c7] "+v"(c7), [c8] "+v"(c8), [c9] "+v"(c9), [c10] "+v"(c10), [c11] "+v"(c11)
                         : [a] "v"(a), [w] "v"(w));
    __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3)),
                                 _mm512_add_epi32(_mm512_add_epi32(c4, c5), _mm512_add_epi32(c6, c7)));
    s = _mm512_add_epi32(s, _mm512_add_epi32(_mm512_add_epi32(c8, c9), _mm512_add_epi32(c10, c11)));
    return _mm512_reduce_add_epi32(s);
}

typedef struct peak_ctx {
    int threads;
    long iters;
} peak_ctx;

/* One thread's loop (a parallel loop of `threads` items: one per thread). */
static void peak_task(void *ctx, int64_t item, int worker) {
    const peak_ctx *p = ctx;
    volatile int sink = peak_loop(p->iters);
    (void)sink;
    (void)item;
    (void)worker;
}

static void peak_work(const void *ctx) {
    const peak_ctx *p = ctx;
    vitq_i_parallel_for(p->threads, p->threads, peak_task, (void *)p);
}

/* GOP/s of `threads` threads running the loop at once (each 12 x 64 multiply-adds per iteration):
 * median and best sample by the clock, and per CPU-second. */
static timing measure_peak(int threads) {
    peak_ctx p = {threads, 4000000}; /* about 15 ms per sample */
    timing t = time_work(peak_work, &p);
    double ops = 2.0 * 12 * 64 * (double)p.iters * threads / 1e9;
    timing g = {ops / t.med, ops / t.best, ops / t.cpu};
    return g;
}
#else
static timing measure_peak(int threads) {
    (void)threads;
    timing g = {0, 0, 0};
    return g;
}
#endif

/* ---- GEMM ---- */

typedef struct shape {
    const char *name;
    size_t n, k;
    vitq_i_epilogue e;
    int requant; /* write the next layer's u8 codes instead of floats */
} shape;

/* The layers of a block of width D (DeiT-S: 384; --width 768: ViT-B), as multiples of D. */
static shape shapes[] = {
    {"qkv", 3, 1, VITQ_I_EPI_NONE, 0},          {"proj", 1, 1, VITQ_I_EPI_RESIDUAL, 0},
    {"fc1", 4, 1, VITQ_I_EPI_NONE, 0},          {"fc2", 1, 4, VITQ_I_EPI_RESIDUAL, 0},
    {"fc1+gelu", 4, 1, VITQ_I_EPI_GELU_ERF, 0}, {"fc1+gelu>u8", 4, 1, VITQ_I_EPI_GELU_ERF, 1},
};
#define M_ROWS (8 * 197)

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 17);
}

typedef struct qgemm_ctx {
    const uint8_t *a;
    size_t m;
    const vitq_i_qpacked *w;
    const float *bias;
    float *c;
    const shape *sh;
    int threads;
} qgemm_ctx;

static void qgemm_work(const void *ctx) {
    static const vitq_i_qact next = {0.05f, 0, -128, 127};
    const qgemm_ctx *q = ctx;
    const vitq_i_qpacked *w = q->w;
    if (q->sh->requant)
        vitq_i_qgemm_requant(q->a, w->k, q->m, 0.02f, 128, w, q->bias, q->sh->e, &next, (uint8_t *)q->c, w->n,
                             q->threads);
    else
        vitq_i_qgemm(q->a, w->k, q->m, 0.02f, 128, w, q->bias, q->c, w->n, q->sh->e, q->threads);
}

typedef struct fgemm_ctx {
    const float *a;
    size_t m;
    const vitq_i_packed *w;
    float *c;
    int threads;
} fgemm_ctx;

static void fgemm_work(const void *ctx) {
    const fgemm_ctx *f = ctx;
    vitq_i_gemm(f->a, f->w->k, f->m, f->w, NULL, f->c, f->w->n, VITQ_I_EPI_NONE, f->threads);
}

typedef struct quant_ctx {
    const float *x;
    size_t m, k;
    uint8_t *out;
    int threads;
} quant_ctx;

static void quant_work(const void *ctx) {
    static const vitq_i_qact q = {0.05f, 0, -128, 127};
    const quant_ctx *p = ctx;
    vitq_i_quantize_u8(p->x, p->k, p->m, p->k, &q, p->out, p->k, p->threads);
}

int main(int argc, char **argv) {
    int all = 0, only_threads = 0;
    size_t rows = M_ROWS, width = 384;
    const char *only_kernel = NULL, *only_layer = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--all"))
            all = 1;
        else if (!strcmp(argv[i], "--quick"))
            repeats = 7;
        else if (!strcmp(argv[i], "--kernel") && i + 1 < argc)
            only_kernel = argv[++i], all = 1;
        else if (!strcmp(argv[i], "--layer") && i + 1 < argc)
            only_layer = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            only_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rows") && i + 1 < argc)
            rows = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--width") && i + 1 < argc && atol(argv[i + 1]) > 0)
            width = (size_t)atol(argv[++i]);
        else {
            fprintf(stderr,
                    "usage: %s [--all] [--quick] [--kernel NAME] [--layer NAME] [--threads N] [--rows M] [--width D]\n",
                    argv[0]);
            return 2;
        }
    }
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) shapes[s].n *= width, shapes[s].k *= width;
    vitq_allocator alloc;
    vitq_i_allocator_resolve(NULL, &alloc);
    int max_threads = vitq_i_max_threads() < 2 ? vitq_i_max_threads() : 2;
    int have_vnni = vitq_i_qkernel_available(VITQ_I_QK_AVX512_VNNI);
    timing peak[3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
    for (int t = 1; t <= max_threads && have_vnni; t++) peak[t] = measure_peak(t);
    for (int t = 1; t <= max_threads && have_vnni; t++)
        printf("vpdpbusd zmm peak, %d thread(s): %.0f GOP/s median, %.0f best, %.0f per CPU-second\n", t, peak[t].med,
               peak[t].best, peak[t].cpu);
    if (!have_vnni) printf("no AVX512-VNNI: percentages omitted\n");
    printf("GOP/s = 2 M N K / seconds; %%peak against the same statistic of the peak loop (median, best);\n"
           "cpu%%: GOP per CPU-second of the process against the peak's (insensitive to time slicing)\n");
    printf("M = %zu rows (8 images x 197 tokens unless --rows), width %zu, activations u8 with zero point 128, bias;\n"
           "proj and fc2 add the residual; fc1+gelu applies GELU (erf), fc1+gelu>u8 also requantizes to u8 codes\n\n",
           rows, width);

    size_t kmax = 4 * width, nmax = 4 * width, m = rows > 0 ? rows : 1;
    uint8_t *a = malloc(m * kmax);
    float *af = malloc(m * kmax * sizeof(float)), *c = malloc(m * nmax * sizeof(float));
    float *bias = malloc(nmax * sizeof(float)), *scale = malloc(nmax * sizeof(float));
    int32_t *codes = malloc(nmax * kmax * sizeof(int32_t)), *zero = calloc(nmax, sizeof(int32_t));
    float *wf = malloc(nmax * kmax * sizeof(float));
    for (size_t i = 0; i < m * kmax; i++) a[i] = (uint8_t)rnd(), af[i] = (float)(rnd() % 2001) / 1000.0f - 1.0f;
    for (size_t j = 0; j < nmax; j++) bias[j] = 0.01f * (float)(j % 7), scale[j] = 0.01f, zero[j] = 8;

    printf("%-14s %-11s %-6s %4s %8s %8s %7s %8s %7s %6s\n", "kernel", "layer", "weight", "thr", "ms(med)", "GOP/s",
           "%peak", "best", "%peak", "cpu%");
    for (int kern = 0; kern < VITQ_I_QK_COUNT; kern++) {
        if (!vitq_i_qkernel_available((vitq_i_qkernel)kern) || (kern == VITQ_I_QK_GENERIC && !all)) continue;
        if (only_kernel && strcmp(only_kernel, vitq_i_qkernel_name((vitq_i_qkernel)kern))) continue;
        vitq_i_qkernel_force(kern);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int bits = 8; bits >= 4; bits -= 4) {
                if (only_layer && strcmp(only_layer, shapes[s].name)) continue;
                size_t n = shapes[s].n, k = shapes[s].k;
                /* int8: signed symmetric codes; int4: unsigned codes with zero point 8 (row sums in use). */
                for (size_t i = 0; i < n * k; i++)
                    codes[i] = bits == 8 ? (int32_t)(rnd() % 256) - 128 : (int32_t)(rnd() % 16);
                vitq_i_qpacked w;
                if (vitq_i_qgemm_pack(&alloc, codes, n, k, bits, bits == 8, scale, bits == 8 ? NULL : zero, n, 0, &w)) {
                    fprintf(stderr, "pack failed: %s\n", vitq_last_error());
                    return 1;
                }
                for (int t = 1; t <= max_threads; t++) {
                    if (only_threads && t != only_threads) continue;
                    qgemm_ctx q = {a, m, &w, bias, c, &shapes[s], t};
                    timing tm = time_work(qgemm_work, &q);
                    double gop = 2.0 * (double)(m * n * k) / 1e9;
                    printf("%-14s %-11s %-6s %4d %8.3f %8.1f", vitq_i_qkernel_name((vitq_i_qkernel)kern),
                           shapes[s].name, bits == 8 ? "int8" : "int4", t, tm.med * 1e3, gop / tm.med);
                    if (peak[t].med > 0)
                        printf(" %6.1f%% %8.1f %6.1f%% %5.1f%%\n", 100.0 * gop / tm.med / peak[t].med, gop / tm.best,
                               100.0 * gop / tm.best / peak[t].best, 100.0 * gop / tm.cpu / peak[t].cpu);
                    else
                        printf(" %7s %8.1f\n", "-", gop / tm.best);
                    fflush(stdout);
                }
                vitq_i_qpacked_free(&alloc, &w);
            }
    }
    vitq_i_qkernel_force(-1);

    if (only_kernel) return 0; /* --layer alone (e.g. --layer none) keeps the tables below */
    printf("\nactivation quantization (M x K floats -> u8, signed 8-bit grid)\n");
    printf("%-14s %6s %4s %9s %9s %9s\n", "isa", "K", "thr", "us(med)", "us(best)", "Gelem/s");
    for (int isa = VITQ_I_ISA_GENERIC; isa <= VITQ_I_ISA_AVX512; isa++) {
        vitq_i_isa_force(isa); /* the bytes come from the instruction-set table, whatever the GEMM kernel */
        if ((int)vitq_i_isa_active() != isa) continue; /* beyond this CPU */
        for (size_t k = width; k <= 4 * width; k *= 4)
            for (int t = 1; t <= max_threads; t++) {
                quant_ctx qc = {af, m, k, a, t};
                timing tm = time_work(quant_work, &qc);
                printf("%-14s %6zu %4d %9.1f %9.1f %9.2f\n", vitq_i_isa_name((vitq_i_isa)isa), k, t, tm.med * 1e6,
                       tm.best * 1e6, (double)(m * k) / tm.best / 1e9);
            }
    }
    vitq_i_isa_force(-1);

    printf("\nfloat GEMM (vitq_i_gemm, %s) on the same shapes\n", vitq_i_isa_name(vitq_i_isa_active()));
    printf("%-6s %4s %9s %9s %9s\n", "layer", "thr", "ms(med)", "GFLOP/s", "best");
    for (size_t s = 0; s < 4; s++) {
        size_t n = shapes[s].n, k = shapes[s].k;
        for (size_t i = 0; i < n * k; i++) wf[i] = (float)(rnd() % 2001) / 1000.0f - 1.0f;
        vitq_i_packed w;
        if (vitq_i_gemm_pack(&alloc, wf, n, k, &w)) return 1;
        for (int t = 1; t <= max_threads; t++) {
            fgemm_ctx fc = {af, m, &w, c, t};
            timing tm = time_work(fgemm_work, &fc);
            printf("%-6s %4d %9.3f %9.1f %9.1f\n", shapes[s].name, t, tm.med * 1e3, 2.0 * (double)(m * n * k) / tm.med / 1e9,
                   2.0 * (double)(m * n * k) / tm.best / 1e9);
        }
        vitq_i_gemm_packed_free(&alloc, &w);
    }
    free(a), free(af), free(c), free(bias), free(scale), free(codes), free(zero), free(wf);
    return 0;
}
