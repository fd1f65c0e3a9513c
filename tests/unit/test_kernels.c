/* Kernels against simple double-precision references, on odd sizes, on every instruction-set path
 * this CPU has (forced with vitq_i_isa_force) and on 1 and 2 threads.
 *
 * Tolerances are error bounds, not fitted numbers (u = 2^-24, the unit roundoff of float):
 *   - a dot product of k terms plus a bias, summed left to right in float (with or without fma), is
 *     within gamma_{k+1} * sum |terms| of the exact value, gamma_j = j u / (1 - j u) (Higham, "Accuracy
 *     and Stability of Numerical Algorithms", 3.1); we use (k + 2) u sum |terms|;
 *   - GELU moves that error by at most its largest slope (1.13) and adds its own (vmath.h);
 *   - a residual add adds one rounding. */
#include <float.h>
#include <stdint.h>

#include "harness.h"
#include "kernels/cpu.h"
#include "kernels/isa.h"
#include "kernels/kernels.h"
#include "kernels/uniform.h"

static vitq_allocator alloc;
static const double U = 1.0 / 16777216.0; /* 2^-24 */
static const double SQRT_2_OVER_PI = 0.79788456080286535588;

static uint64_t rng_state = 88172645463325252ull;
static float frand(void) { /* xorshift, uniform in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float *random_floats(size_t n, float scale) {
    float *p = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++) p[i] = frand() * scale;
    return p;
}

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* The best path of this CPU; the tests run every path up to it. */
static int best_isa(void) {
    unsigned f = vitq_i_cpu_features();
    return f & VITQ_I_CPU_AVX512 ? VITQ_I_ISA_AVX512 : f & VITQ_I_CPU_AVX2_FMA ? VITQ_I_ISA_AVX2 : VITQ_I_ISA_GENERIC;
}

static int same_floats(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

/* Exact results as doubles: x Phi(x), and x sigmoid(2y) = 0.5 x (1 + tanh y) without cancellation. */
static double ref_gelu_erf(double x) { return x * 0.5 * erfc(-x / sqrt(2.0)); }
static double ref_gelu_tanh(double x) {
    double y = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
    return x / (1.0 + exp(-2.0 * y));
}

/* Error of `got` against `want` in units in the last place of the float nearest to `want` (units of the
 * smallest subnormal below FLT_MIN). */
static double ulps(float got, double want) {
    if (isnan(want)) return isnan(got) ? 0.0 : INFINITY;
    double aw = fabs(want);
    double ulp = aw < FLT_MIN ? ldexp(1.0, -149) : ldexp(1.0, ilogb(aw) - 23);
    return fabs((double)got - want) / ulp;
}

/* ---- GEMM ------------------------------------------------------------------------------------- */

typedef struct gemm_case {
    size_t m, n, k, lda, ldc;
    float *a, *w, *bias, *base; /* base: what c holds before the call (the residual input) */
    double *sum, *mag;          /* exact a.w^T + bias, and sum of the |terms| */
    vitq_i_packed p;
} gemm_case;

static void gemm_case_make(gemm_case *g, size_t m, size_t n, size_t k, size_t lda, size_t ldc) {
    g->m = m, g->n = n, g->k = k, g->lda = lda, g->ldc = ldc;
    g->a = random_floats(m * lda, 1.0f);
    g->w = random_floats(n * k, 1.0f);
    g->bias = random_floats(n, 1.0f);
    g->base = random_floats(m * ldc, 2.0f);
    g->sum = malloc(m * n * sizeof(double));
    g->mag = malloc(m * n * sizeof(double));
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double s = g->bias[j], mag = fabs(g->bias[j]);
            for (size_t q = 0; q < k; q++) {
                double t = (double)g->a[i * lda + q] * g->w[j * k + q];
                s += t;
                mag += fabs(t);
            }
            g->sum[i * n + j] = s;
            g->mag[i * n + j] = mag;
        }
    CHECK_STATUS(vitq_i_gemm_pack(&alloc, g->w, n, k, &g->p), VITQ_OK);
}

static void gemm_case_free(gemm_case *g) {
    vitq_i_gemm_packed_free(&alloc, &g->p);
    free(g->a), free(g->w), free(g->bias), free(g->base), free(g->sum), free(g->mag);
}

static float *gemm_run(const gemm_case *g, vitq_i_epilogue e, int threads) {
    float *c = malloc(g->m * g->ldc * sizeof(float));
    memcpy(c, g->base, g->m * g->ldc * sizeof(float));
    vitq_i_gemm(g->a, g->lda, g->m, &g->p, g->bias, c, g->ldc, e, threads);
    return c;
}

/* Worst ratio of the error to its bound over the matrix (<= 1 passes); the padding columns of c
 * beyond n must be untouched. */
static double gemm_error(const gemm_case *g, vitq_i_epilogue e, const float *c) {
    double worst = 0;
    for (size_t i = 0; i < g->m; i++) {
        for (size_t j = 0; j < g->n; j++) {
            double s = g->sum[i * g->n + j], es = (double)(g->k + 2) * U * g->mag[i * g->n + j] + 1e-300;
            double old = g->base[i * g->ldc + j], want, tol;
            switch (e) {
            case VITQ_I_EPI_GELU_ERF:
            case VITQ_I_EPI_GELU_TANH:
                want = e == VITQ_I_EPI_GELU_ERF ? ref_gelu_erf(s) : ref_gelu_tanh(s);
                tol = 1.13 * es + 64 * 2 * U * fabs(want) + 1e-37; /* GELU: <= 64 ulp, tail included */
                break;
            case VITQ_I_EPI_RESIDUAL:
                want = old + s;
                tol = es * (1 + U) + U * fabs(want);
                break;
            default: want = s, tol = es; break;
            }
            double r = fabs(c[i * g->ldc + j] - want) / tol;
            if (!(r <= worst)) worst = r; /* NaN counts as a failure */
        }
        for (size_t j = g->n; j < g->ldc; j++)
            if (bits_of(c[i * g->ldc + j]) != bits_of(g->base[i * g->ldc + j])) worst = INFINITY;
    }
    return worst;
}

static const char *epi_name(int e) {
    static const char *names[] = {"none", "gelu_erf", "gelu_tanh", "residual"};
    return names[e];
}

/* Every path and epilogue against the bound, on 1 and 2 threads (bit-identical); AVX2 == AVX-512 bit
 * for bit (both are the same fused multiply-adds in the same order); the portable path (separate
 * roundings) within twice the bound of the FMA paths, as both are within the bound of the exact sum. */
static void check_gemm(size_t m, size_t n, size_t k, size_t lda, size_t ldc) {
    gemm_case g;
    gemm_case_make(&g, m, n, k, lda, ldc);
    float *portable = NULL;
    for (int e = 0; e < 4; e++) {
        float *fma_result = NULL;
        for (int isa = 0; isa <= best_isa(); isa++) {
            vitq_i_isa_force(isa);
            float *c1 = gemm_run(&g, (vitq_i_epilogue)e, 1), *c2 = gemm_run(&g, (vitq_i_epilogue)e, 2);
            double err = gemm_error(&g, (vitq_i_epilogue)e, c1);
            if (err > 1 || !same_floats(c1, c2, m * ldc)) {
                printf("    gemm %s m=%zu n=%zu k=%zu lda=%zu ldc=%zu %s: error/bound %.3g, threads agree %d\n",
                       vitq_i_isa_name((vitq_i_isa)isa), m, n, k, lda, ldc, epi_name(e), err,
                       same_floats(c1, c2, m * ldc));
                harness_check_failures++;
            }
            if (e == VITQ_I_EPI_NONE && isa == VITQ_I_ISA_GENERIC) portable = gemm_run(&g, VITQ_I_EPI_NONE, 1);
            if (e == VITQ_I_EPI_NONE && isa > VITQ_I_ISA_GENERIC) {
                double worst = 0;
                for (size_t i = 0; i < m; i++)
                    for (size_t j = 0; j < n; j++)
                        worst = fmax(worst, fabs(c1[i * ldc + j] - portable[i * ldc + j]) /
                                                (2.0 * (double)(k + 2) * U * g.mag[i * n + j] + 1e-300));
                CHECK(worst <= 1.0);
            }
            if (isa == VITQ_I_ISA_AVX2) fma_result = c1;
            if (isa == VITQ_I_ISA_AVX512 && fma_result && !same_floats(fma_result, c1, m * ldc)) {
                printf("    gemm m=%zu n=%zu k=%zu %s: avx2 and avx512 differ\n", m, n, k, epi_name(e));
                harness_check_failures++;
            }
            if (c1 != fma_result) free(c1);
            free(c2);
        }
        free(fma_result);
    }
    vitq_i_isa_force(-1);
    free(portable);
    gemm_case_free(&g);
}

static void test_gemm_odd_sizes(void) {
    const size_t sizes[] = {1, 7, 16, 17, 197, 385};
    int quick = harness_quick();
    for (size_t i = 0; i < 6; i++)
        for (size_t j = 0; j < 6; j += quick ? 3 : 2) {
            size_t m = sizes[i], n = sizes[(i + j) % 6], k = sizes[(i + 2 * j + 1) % 6];
            check_gemm(m, n, k, k, n);
        }
    for (size_t m = 1; m <= 15; m++) check_gemm(m, 40, 9, 9, 40); /* every micro-kernel height */
    check_gemm(50, 64, 1, 1, 64);
    check_gemm(29, 33, 0, 1, 33);  /* k = 0: bias only */
    check_gemm(31, 45, 800, 803, 47); /* K in 3 blocks; strides wider than the matrix */
    check_gemm(30, 40, 1024, 1024, 40); /* rows 4 KB apart: the copied-rows path */
    if (!quick) check_gemm(197, 192, 768, 768, 192);
}

/* The same row gives bit-identical outputs wherever it sits, whatever m and the thread count: this is
 * what makes logits independent of batch size and of OpenMP. Every path, every epilogue, short and
 * blocked K. */
static void test_gemm_position_invariance(void) {
    const size_t ks[] = {53, 800, 1024};
    for (int isa = 0; isa <= best_isa(); isa++) {
        vitq_i_isa_force(isa);
        for (size_t t = 0; t < 3; t++) {
            size_t m = 61, n = 37, k = ks[t];
            float *a = random_floats(m * k, 1.0f), *w = random_floats(n * k, 1.0f), *bias = random_floats(n, 1.0f);
            float *other = random_floats(9 * k, 1.0f);
            float *c1 = malloc(m * n * sizeof(float)), *c2 = malloc(9 * n * sizeof(float));
            vitq_i_packed p;
            CHECK_STATUS(vitq_i_gemm_pack(&alloc, w, n, k, &p), VITQ_OK);
            for (int e = 0; e < 3; e++) {
                vitq_i_gemm(a, k, m, &p, bias, c1, n, (vitq_i_epilogue)e, 3);
                int same = 1;
                for (size_t r = 0; r < m; r += 4) { /* every 4th row: row steps of 4 and 6 and 14 all move */
                    vitq_i_gemm(a + r * k, k, 1, &p, bias, c2, n, (vitq_i_epilogue)e, 1);
                    same &= same_floats(c1 + r * n, c2, n);
                    /* row r at position 5 of 9 other rows */
                    memcpy(other + 5 * k, a + r * k, k * sizeof(float));
                    vitq_i_gemm(other, k, 9, &p, bias, c2, n, (vitq_i_epilogue)e, 2);
                    same &= same_floats(c1 + r * n, c2 + 5 * n, n);
                }
                if (!same) {
                    printf("    %s k=%zu %s: a row's result depends on its position\n",
                           vitq_i_isa_name((vitq_i_isa)isa), k, epi_name(e));
                    harness_check_failures++;
                }
            }
            vitq_i_gemm_packed_free(&alloc, &p);
            free(a), free(w), free(bias), free(other), free(c1), free(c2);
        }
    }
    vitq_i_isa_force(-1);
}

/* A GELU fused into the GEMM equals the GELU applied afterwards (the unfused path of the forward
 * pass), bit for bit, on every path. */
static void test_gemm_fused_gelu(void) {
    size_t m = 23, n = 77, k = 45;
    float *a = random_floats(m * k, 1.5f), *w = random_floats(n * k, 1.5f), *bias = random_floats(n, 1.0f);
    float *plain = malloc(m * n * sizeof(float)), *fused = malloc(m * n * sizeof(float));
    vitq_i_packed p;
    CHECK_STATUS(vitq_i_gemm_pack(&alloc, w, n, k, &p), VITQ_OK);
    for (int isa = 0; isa <= best_isa(); isa++) {
        vitq_i_isa_force(isa);
        vitq_i_gemm(a, k, m, &p, bias, plain, n, VITQ_I_EPI_NONE, 2);
        for (int e = 1; e <= 2; e++) {
            vitq_i_gemm(a, k, m, &p, bias, fused, n, (vitq_i_epilogue)e, 2);
            int same = 1;
            for (size_t i = 0; i < m * n; i++) {
                float want = e == 1 ? vitq_i_gelu_erf(plain[i]) : vitq_i_gelu_tanh(plain[i]);
                same &= bits_of(want) == bits_of(fused[i]);
            }
            if (!same) {
                printf("    %s: fused %s differs from the scalar function\n", vitq_i_isa_name((vitq_i_isa)isa),
                       epi_name(e));
                harness_check_failures++;
            }
        }
    }
    vitq_i_isa_force(-1);
    vitq_i_gemm_packed_free(&alloc, &p);
    free(a), free(w), free(bias), free(plain), free(fused);
}

/* Packing with strides (the backward pass's transposed weights) equals packing the transposed copy. */
static void test_pack_strided(void) {
    size_t out = 45, in = 70;
    float *w = random_floats(out * in, 1.0f), *wt = malloc(in * out * sizeof(float));
    for (size_t i = 0; i < out; i++)
        for (size_t j = 0; j < in; j++) wt[j * out + i] = w[i * in + j];
    vitq_i_packed direct, strided;
    CHECK_STATUS(vitq_i_gemm_pack(&alloc, wt, in, out, &direct), VITQ_OK);
    float *panels = malloc(vitq_i_gemm_packed_floats(in, out) * sizeof(float));
    vitq_i_gemm_pack_strided(w, 1, in, in, out, panels, &strided);
    CHECK(strided.n == in && strided.k == out && strided.panels == panels);
    CHECK(same_floats(direct.panels, panels, vitq_i_gemm_packed_floats(in, out)));
    /* unpacking gives back the matrix exactly (a loaded model keeps only the panels) */
    float *back = malloc(in * out * sizeof(float));
    vitq_i_gemm_unpack(&direct, back);
    CHECK(same_floats(back, wt, in * out));
    free(back);
    CHECK(vitq_i_gemm_packed_floats(33, 5) == 64 * 5);
    CHECK(vitq_i_gemm_packed_floats(SIZE_MAX / 2, 4) == SIZE_MAX);
    vitq_i_gemm_packed_free(&alloc, &direct);
    free(w), free(wt), free(panels);
}

/* ---- point-wise functions --------------------------------------------------------------------- */

/* Float bit patterns across [lo, hi] (both signs when symmetric), every `step`-th one, plus edges. */
typedef void (*sweep_fn)(float x, double *worst, float *at);

static void sweep(float lo, float hi, uint32_t step, sweep_fn fn, double *worst, float *at) {
    for (uint64_t u = 0; u < 0xffffffffull; u += step) {
        float x = float_of((uint32_t)u);
        if (x >= lo && x <= hi) fn(x, worst, at);
    }
}

static void exp_point(float x, double *worst, float *at) {
    double want = exp((double)x);
    if ((float)want == INFINITY) return; /* the overflow boundary is checked on its own */
    double e = ulps(vitq_i_exp(x), want);
    if (e > *worst) *worst = e, *at = x;
}

static void test_exp(void) {
    double worst = 0;
    float at = 0;
    sweep(-110.0f, 90.0f, harness_quick() ? 40009 : 4001, exp_point, &worst, &at);
    /* documented <= 0.87 ulp (vmath.h), measured over every 61st float; 1 ulp asserted */
    if (worst > 1.0) printf("    exp: %.3f ulp at %.9g\n", worst, at);
    CHECK(worst <= 1.0);
    CHECK(vitq_i_exp(0.0f) == 1.0f && vitq_i_exp(-0.0f) == 1.0f);
    CHECK(vitq_i_exp(-INFINITY) == 0.0f && vitq_i_exp(INFINITY) == INFINITY && isnan(vitq_i_exp(NAN)));
    CHECK(vitq_i_exp(88.72283f) < INFINITY && vitq_i_exp(88.7229f) == INFINITY); /* ln FLT_MAX = 88.722839 */
    CHECK(vitq_i_exp(-104.0f) == 0.0f && vitq_i_exp(-1e30f) == 0.0f && vitq_i_exp(1e30f) == INFINITY);
    const float subnormal_results[] = {-87.5f, -90.0f, -100.0f, -103.0f, -103.9f}; /* rounded once */
    for (int i = 0; i < 5; i++) CHECK(ulps(vitq_i_exp(subnormal_results[i]), exp(subnormal_results[i])) <= 1.0);
    CHECK(vitq_i_exp(float_of(1)) == 1.0f && vitq_i_exp(-float_of(1)) == 1.0f);
}

static void gelu_erf_point(float x, double *worst, float *at) {
    double e = ulps(vitq_i_gelu_erf(x), ref_gelu_erf(x));
    if (e > *worst) *worst = e, *at = x;
}

/* The tanh form's error grows with |2y| in the negative tail (vmath.h, measured <= about 4 + 2 |2y|
 * ulp): checked against 4 + 3 |2y|, the rounding of the three products of the cubic. */
static void gelu_tanh_point(float x, double *worst, float *at) {
    double y2 = 2 * SQRT_2_OVER_PI * fabs(x + 0.044715 * x * x * x);
    double e = ulps(vitq_i_gelu_tanh(x), ref_gelu_tanh(x)) / (4.0 + 3.0 * y2);
    if (e > *worst) *worst = e, *at = x;
}

static void test_gelu(void) {
    uint32_t step = harness_quick() ? 40009 : 4001;
    double worst = 0;
    float at = 0;
    /* |x| < 13: results are normal floats (beyond, x Phi(x) underflows towards 0) */
    sweep(-13.0f, 13.0f, step, gelu_erf_point, &worst, &at);
    if (worst > 4.0) printf("    gelu_erf: %.3f ulp at %.9g\n", worst, at);
    CHECK(worst <= 4.0); /* documented 3.5 ulp */
    worst = 0;
    sweep(-9.0f, 13.0f, step, gelu_tanh_point, &worst, &at);
    if (worst > 1.0) printf("    gelu_tanh: %.3f x (4 + 3 |2y|) ulp at %.9g\n", worst, at);
    CHECK(worst <= 1.0);
    /* absolute: within 4 ulp of |x| everywhere, the range the sweeps leave out included */
    for (double x = -20.0; x <= 20.0; x += 0.003) {
        CHECK_NEAR(vitq_i_gelu_erf((float)x), ref_gelu_erf((float)x), 8 * U * fabs(x) + 1e-40);
        CHECK_NEAR(vitq_i_gelu_tanh((float)x), ref_gelu_tanh((float)x), 8 * U * fabs(x) + 1e-40);
    }
    /* edges: signed zero, infinities, NaN, subnormals, huge values */
    float (*f[2])(float) = {vitq_i_gelu_erf, vitq_i_gelu_tanh};
    for (int i = 0; i < 2; i++) {
        CHECK(bits_of(f[i](0.0f)) == 0 && bits_of(f[i](-0.0f)) == 0x80000000u);
        CHECK(f[i](INFINITY) == INFINITY && f[i](-INFINITY) == 0.0f && isnan(f[i](NAN)));
        CHECK(f[i](FLT_MAX) == FLT_MAX && f[i](-FLT_MAX) == 0.0f && f[i](30.0f) == 30.0f);
        CHECK(f[i](-30.0f) == 0.0f && f[i](-30.0f) <= 0.0f);
        CHECK(f[i](float_of(2)) == float_of(1) && f[i](-float_of(2)) == -float_of(1)); /* x/2, subnormal */
        CHECK(f[i](1e-20f) == 5e-21f);
    }
}

/* The vector forms (through the GEMM epilogue: k = 1, w = 1, so the epilogue sees 0 + x, which is x
 * but for -0) give the scalar functions' bits on special and swept inputs. */
static void test_gelu_paths_agree(void) {
    size_t n = 0, cap = 70000;
    float *x = malloc(cap * sizeof(float));
    const float edges[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, FLT_MAX, -FLT_MAX, 1e-45f, -1e-45f, 15.99f, -15.99f,
                           16.0f, -16.0f, 0.5f, -0.5f, 1.0f, -1.0f, 14.2f, -14.2f, 1e-30f};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) x[n++] = edges[i];
    for (uint64_t u = 0; u < 0xffffffffull && n < cap; u += 65537) x[n++] = float_of((uint32_t)u);
    float one = 1.0f, *c = malloc(n * sizeof(float));
    vitq_i_packed p;
    CHECK_STATUS(vitq_i_gemm_pack(&alloc, &one, 1, 1, &p), VITQ_OK);
    for (int isa = 0; isa <= best_isa(); isa++) {
        vitq_i_isa_force(isa);
        for (int e = 1; e <= 2; e++) {
            vitq_i_gemm(x, 1, n, &p, NULL, c, 1, (vitq_i_epilogue)e, 2);
            size_t bad = 0;
            for (size_t i = 0; i < n; i++) {
                float want = e == 1 ? vitq_i_gelu_erf(x[i] + 0.0f) : vitq_i_gelu_tanh(x[i] + 0.0f);
                if (bits_of(want) != bits_of(c[i]) && !(isnan(want) && isnan(c[i]))) bad++;
            }
            if (bad) {
                printf("    %s %s: %zu of %zu differ from the scalar function\n", vitq_i_isa_name((vitq_i_isa)isa),
                       epi_name(e), bad, n);
                harness_check_failures++;
            }
        }
    }
    vitq_i_isa_force(-1);
    vitq_i_gemm_packed_free(&alloc, &p);
    free(x), free(c);
}

/* ---- softmax ---------------------------------------------------------------------------------- */

/* Against double, and every path against the portable one bit for bit (canonical sum order). Bound of
 * p_i, relative: exp <= 1 ulp, the rounding of x_i - max (U |x_i - max|: it enters the exponent), the
 * sum's relative error (at most U (1 + sum_j |d_j| e_j / sum_j e_j), d_j = x_j - max), 1/sum and the
 * final product rounded: (3 + |d_i| + 1 + S) U. */
static void test_softmax(void) {
    float x[5] = {1000.0f, 1001.0f, 999.0f, -1e30f, 1001.0f}; /* overflows without max subtraction */
    vitq_i_softmax(x, 5);
    double e[5] = {exp(-1.0), 1.0, exp(-2.0), 0.0, 1.0}, s = 0;
    for (int i = 0; i < 5; i++) s += e[i];
    for (int i = 0; i < 5; i++) CHECK_NEAR(x[i], e[i] / s, 3 * U * e[i] / s);
    float one[1] = {-3.0f};
    vitq_i_softmax(one, 1);
    CHECK(one[0] == 1.0f);
    float masked[4] = {-INFINITY, 2.0f, -INFINITY, 2.0f};
    vitq_i_softmax(masked, 4);
    CHECK(masked[0] == 0.0f && masked[1] == 0.5f && masked[2] == 0.0f && masked[3] == 0.5f);
    vitq_i_softmax(NULL, 0);

    const size_t lens[] = {1, 2, 7, 15, 16, 17, 31, 49, 64, 197, 200, 1000};
    for (size_t t = 0; t < sizeof lens / sizeof lens[0]; t++) {
        size_t n = lens[t];
        float *row = random_floats(n, 60.0f), *ref = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
        for (int isa = 0; isa <= best_isa(); isa++) {
            vitq_i_isa_force(isa);
            memcpy(got, row, n * sizeof(float));
            vitq_i_softmax(got, n);
            if (isa == 0) memcpy(ref, got, n * sizeof(float));
            CHECK(same_floats(ref, got, n));
        }
        double mx = -INFINITY, sum = 0, spread = 0;
        for (size_t i = 0; i < n; i++) mx = fmax(mx, row[i]);
        for (size_t i = 0; i < n; i++) sum += exp((double)row[i] - mx);
        for (size_t i = 0; i < n; i++) spread += fabs(row[i] - mx) * exp((double)row[i] - mx) / sum;
        for (size_t i = 0; i < n; i++) {
            double want = exp((double)row[i] - mx) / sum;
            CHECK_NEAR(ref[i], want, (4 + fabs(row[i] - mx) + spread) * U * want + 1e-44);
        }
        free(row), free(ref), free(got);
    }
    vitq_i_isa_force(-1);
}

/* ---- LayerNorm -------------------------------------------------------------------------------- */

static void test_layernorm(void) {
    const size_t dims[] = {1, 7, 8, 9, 17, 64, 385};
    for (size_t t = 0; t < sizeof dims / sizeof dims[0]; t++) {
        size_t rows = 5, d = dims[t];
        float *x = random_floats(rows * d, 3.0f), *g = random_floats(d, 1.0f), *b = random_floats(d, 1.0f);
        float *y = malloc(rows * d * sizeof(float)), *y0 = malloc(rows * d * sizeof(float));
        float *inplace = malloc(rows * d * sizeof(float));
        for (size_t i = 0; i < rows * d; i++) x[i] += 100.0f; /* large mean, as in real residual streams */
        for (int isa = 0; isa <= best_isa(); isa++) {
            vitq_i_isa_force(isa);
            vitq_i_layernorm(x, rows, d, g, b, 1e-6f, y, 2);
            if (isa == 0) memcpy(y0, y, rows * d * sizeof(float));
            CHECK(same_floats(y0, y, rows * d)); /* canonical double sums: every path alike */
            for (size_t r = 0; r < rows; r++) {
                double mean = 0, var = 0;
                for (size_t i = 0; i < d; i++) mean += x[r * d + i];
                mean /= (double)d;
                for (size_t i = 0; i < d; i++) var += (x[r * d + i] - mean) * (x[r * d + i] - mean);
                var /= (double)d;
                for (size_t i = 0; i < d; i++) {
                    /* statistics in double (their error ~1e-14 here); three float roundings: the normalised
                     * value, * gamma (2.01 U |z g|), + beta (U |result|) */
                    double z = (x[r * d + i] - mean) / sqrt(var + 1e-6), want = z * g[i] + b[i];
                    CHECK_NEAR(y[r * d + i], want, U * (2.01 * fabs(z * g[i]) + fabs(want)) + 1e-12);
                }
            }
            memcpy(inplace, x, rows * d * sizeof(float));
            vitq_i_layernorm(inplace, rows, d, g, b, 1e-6f, inplace, 1); /* in place gives the same */
            CHECK(same_floats(inplace, y, rows * d));
        }
        vitq_i_isa_force(-1);
        free(x), free(g), free(b), free(y), free(y0), free(inplace);
    }
}

/* ---- attention -------------------------------------------------------------------------------- */

/* Double reference of one output row slice, with its error bound. The scores carry the dot product's
 * error ((hd + 3) u sum |terms|: the scaled query, the fma chain, the bias and mask additions); the
 * probabilities move by at most twice the largest score error, plus the softmax's own error (as in
 * test_softmax: (4 + |d_j| + S) u relative); the weighted sum adds (T + 1) u sum p |v|. */
static void attention_reference(const float *seq, size_t tok, size_t d, size_t hd, size_t h, size_t i,
                                const float *hb, const float *mk, double *out, double *tol) {
    double *s = malloc(tok * sizeof(double)), *p = malloc(tok * sizeof(double));
    double mx = -INFINITY, sum = 0, ds = 0, spread = 0, scale = 1.0 / sqrt((double)hd);
    for (size_t j = 0; j < tok; j++) {
        double dot = 0, mag = 0;
        for (size_t e = 0; e < hd; e++) {
            double t = (double)seq[i * 3 * d + h * hd + e] * seq[j * 3 * d + d + h * hd + e];
            dot += t;
            mag += fabs(t);
        }
        s[j] = dot * scale;
        mag = mag * scale + fabs(s[j]);
        if (hb) s[j] += hb[i * tok + j], mag += fabs(hb[i * tok + j]);
        if (mk) s[j] += mk[i * tok + j], mag += fabs(mk[i * tok + j]);
        ds = fmax(ds, (double)(hd + 3) * U * mag);
        mx = fmax(mx, s[j]);
    }
    for (size_t j = 0; j < tok; j++) sum += (p[j] = exp(s[j] - mx));
    for (size_t j = 0; j < tok; j++) spread += fabs(s[j] - mx) * (p[j] /= sum);
    for (size_t e = 0; e < hd; e++) {
        double o = 0, mag = 0, perr = 0;
        for (size_t j = 0; j < tok; j++) {
            double v = seq[j * 3 * d + 2 * d + h * hd + e];
            o += p[j] * v;
            mag += p[j] * fabs(v);
            perr += p[j] * fabs(v) * (2.02 * ds + (4 + fabs(s[j] - mx) + spread) * U);
        }
        out[e] = o;
        tol[e] = perr + (double)(tok + 1) * U * mag + 1e-30;
    }
    free(s), free(p);
}

typedef struct attn_case {
    size_t tok, d, heads, batch, period;
    float *qkv, *hb, *mask, *scratch;
} attn_case;

static void attn_case_make(attn_case *c, size_t tok, size_t d, size_t heads, size_t batch, int biased) {
    c->tok = tok, c->d = d, c->heads = heads, c->batch = batch, c->period = 3;
    c->qkv = random_floats(batch * tok * 3 * d, 2.0f);
    c->hb = biased ? random_floats(heads * tok * tok, 3.0f) : NULL;
    c->mask = NULL;
    if (biased) {
        c->mask = calloc(c->period * tok * tok, sizeof(float));
        for (size_t i = 0; i < c->period * tok * tok; i++)
            if ((i * 7 + i / 5) % 4 == 0 && i % tok != (i / tok) % tok) c->mask[i] = -100.0f; /* never a whole row */
    }
    c->scratch = malloc(2 * vitq_i_attention_scratch_floats(tok, d / heads) * sizeof(float));
}

static void attn_case_free(attn_case *c) { free(c->qkv), free(c->hb), free(c->mask), free(c->scratch); }

/* Fused against the double reference; staged == fused bit for bit; 1 == 2 threads; AVX2 == AVX-512. */
static void check_attention(size_t tok, size_t d, size_t heads, size_t batch, int biased) {
    attn_case c;
    attn_case_make(&c, tok, d, heads, batch, biased);
    size_t hd = d / heads, n = batch * tok * d;
    vitq_i_attn_bias bias = {c.hb, c.mask, c.period};
    const vitq_i_attn_bias *bp = biased ? &bias : NULL;
    float *out = malloc(n * sizeof(float)), *out1 = malloc(n * sizeof(float)), *staged = malloc(n * sizeof(float));
    float *fma_out = malloc(n * sizeof(float)), *probs = malloc(batch * heads * tok * tok * sizeof(float));
    double *want = malloc(hd * sizeof(double)), *tol = malloc(hd * sizeof(double));
    for (int isa = 0; isa <= best_isa(); isa++) {
        vitq_i_isa_force(isa);
        vitq_i_attention_biased(c.qkv, batch, tok, d, heads, bp, out, c.scratch, 2);
        vitq_i_attention_biased(c.qkv, batch, tok, d, heads, bp, out1, c.scratch, 1);
        vitq_i_attention_scores(c.qkv, batch, tok, d, heads, bp, probs, c.scratch, 2);
        vitq_i_attention_softmax(probs, batch * heads * tok, tok, 2);
        vitq_i_attention_apply(probs, c.qkv, batch, tok, d, heads, staged, c.scratch, 2);
        if (!same_floats(out, out1, n) || !same_floats(out, staged, n)) {
            printf("    attention %s tok=%zu d=%zu heads=%zu: threads agree %d, staged == fused %d\n",
                   vitq_i_isa_name((vitq_i_isa)isa), tok, d, heads, same_floats(out, out1, n), same_floats(out, staged, n));
            harness_check_failures++;
        }
        if (isa == VITQ_I_ISA_AVX2) memcpy(fma_out, out, n * sizeof(float));
        if (isa == VITQ_I_ISA_AVX512) CHECK(same_floats(fma_out, out, n));
        double worst = 0;
        for (size_t b = 0; b < batch; b++)
            for (size_t h = 0; h < heads; h++)
                for (size_t i = 0; i < tok; i++) {
                    attention_reference(c.qkv + b * tok * 3 * d, tok, d, hd, h, i, c.hb ? c.hb + h * tok * tok : NULL,
                                        c.mask ? c.mask + (b % c.period) * tok * tok : NULL, want, tol);
                    for (size_t e = 0; e < hd; e++) {
                        double r = fabs(out[(b * tok + i) * d + h * hd + e] - want[e]) / tol[e];
                        if (!(r <= worst)) worst = r;
                    }
                }
        if (worst > 1) {
            printf("    attention %s tok=%zu d=%zu heads=%zu biased=%d: error/bound %.3g\n",
                   vitq_i_isa_name((vitq_i_isa)isa), tok, d, heads, biased, worst);
            harness_check_failures++;
        }
    }
    vitq_i_isa_force(-1);
    free(out), free(out1), free(staged), free(fma_out), free(probs), free(want), free(tol);
    attn_case_free(&c);
}

static void test_attention(void) {
    /* head_dim 4, 4, 16, 24 (copied V), 32 and 64 (V read in place) */
    check_attention(1, 8, 2, 2, 0);
    check_attention(7, 12, 3, 2, 0);
    check_attention(50, 64, 4, 2, 0);
    check_attention(197, 24, 1, 2, 0);
    check_attention(49, 96, 3, 3, 0);
    check_attention(harness_quick() ? 31 : 197, 384, 6, 2, 0);
}

/* Swin window attention: relative position bias per head, and a window mask chosen by b % period. */
static void test_attention_biased(void) {
    check_attention(9, 12, 3, 6, 1);
    check_attention(49, 96, 3, 6, 1);
    check_attention(17, 64, 1, 4, 1);
    /* the bias and mask are really applied: without them the result differs */
    attn_case c;
    attn_case_make(&c, 9, 12, 3, 6, 1);
    size_t n = 6 * 9 * 12;
    float *with = malloc(n * sizeof(float)), *plain = malloc(n * sizeof(float));
    vitq_i_attn_bias bias = {c.hb, c.mask, c.period};
    vitq_i_attention_biased(c.qkv, 6, 9, 12, 3, &bias, with, c.scratch, 2);
    vitq_i_attention(c.qkv, 6, 9, 12, 3, plain, c.scratch, 2);
    double diff = 0;
    for (size_t i = 0; i < n; i++) diff = fmax(diff, fabs(plain[i] - with[i]));
    CHECK(diff > 0.1);
    free(with), free(plain);
    attn_case_free(&c);
}

/* ---- uniform grid rows ------------------------------------------------------------------------- */

/* Inputs that probe every branch of vitq_i_uniform_code at `scale`: NaN of both signs, infinities,
 * huge values and values around the +-2^22 pre-clamp, exact ties x / scale = k + 0.5 (scale a power
 * of two) and neighbours within an ulp of a tie (any scale), signed zeros, subnormals, in-range and
 * clamped values. */
static float uniform_probe(size_t i, float scale) {
    float k = (float)((int)(frand() * 300.0f));
    switch (i % 16) {
    case 0: return NAN;
    case 1: return -NAN;
    case 2: return INFINITY;
    case 3: return -INFINITY;
    case 4: return i % 32 < 16 ? FLT_MAX : -FLT_MAX;
    case 5: return frand() * 5e30f;
    case 6: return 4194304.0f * scale * (1.0f + 0.01f * frand()); /* |x / scale| near 2^22 */
    case 7: return (k + 0.5f) * scale;
    case 8: return nextafterf((k + 0.5f) * scale, i % 32 < 16 ? INFINITY : -INFINITY);
    case 9: return i % 32 < 16 ? -0.0f : 0.0f;
    case 10: return i % 32 < 16 ? 1e-45f : -1e-40f;
    case 11: return k * scale;
    case 12: return frand() * 1000.0f * scale; /* mostly clamped */
    default: return frand() * 150.0f * scale;
    }
}

/* The tables' uniform_fq and uniform_u8 on every path this CPU has (forced with vitq_i_isa_force) give
 * the scalar vitq_i_uniform_fq / vitq_i_uniform_code (+ offset) bit for bit, for signed and unsigned
 * grids of 2..16 bits (bytes: up to 8), powers of two and other scales, zero points inside and at the
 * ends of the grid, every length up to 40 and longer odd ones, unaligned starts; nothing past n is
 * written. vitq_i_uniform_fq_run goes through the same table. */
static void test_uniform_rows(void) {
    const size_t n = 1100, guard = 8;
    const float scales[] = {0.0625f, 0.25f, 0.013f, 3e-4f, 0.37f, 1.0f};
    float *x = malloc((n + 1) * sizeof(float)), *want = malloc(n * sizeof(float));
    float *y = malloc((n + 1 + guard) * sizeof(float));
    uint8_t *want_u8 = malloc(n), *q = malloc(n + 1 + guard);
    for (int sym = 0; sym < 2; sym++)
        for (int bits = 2; bits <= 16; bits += bits < 8 ? 1 : 4) {
            vitq_i_uniform u = vitq_i_uniform_grid(bits, sym);
            for (size_t si = 0; si < sizeof scales / sizeof scales[0]; si++) {
                float scale = scales[si];
                float zero = sym ? 0.0f : (float)(si % 3 == 0 ? 0 : si % 3 == 1 ? u.qmax : (u.qmax + 1) / 2);
                int32_t offset = sym ? -u.qmin : 0; /* signed codes shifted into bytes, as the GEMM does */
                for (size_t i = 0; i <= n; i++) x[i] = uniform_probe(i + si, scale);
                const float *xs = x + si % 2; /* odd scales: an unaligned start */
                for (size_t i = 0; i < n; i++) {
                    int32_t code = vitq_i_uniform_code(&u, xs[i], scale, zero);
                    if (isnan(xs[i])) CHECK(code == (int32_t)zero);
                    want[i] = vitq_i_uniform_fq(&u, xs[i], scale, zero);
                    want_u8[i] = (uint8_t)(code + offset);
                }
                for (int isa = 0; isa <= best_isa(); isa++) {
                    vitq_i_isa_force(isa);
                    const vitq_i_isa_kernels *k = vitq_i_kernels_active();
                    CHECK(vitq_i_isa_active() == (vitq_i_isa)isa);
                    size_t bad = 0;
                    for (size_t len = 0; len <= n; len += len < 40 ? 1 : 97) {
                        float *ys = y + (si + 1) % 2;
                        memcpy(ys, xs, len * sizeof(float));
                        for (size_t g = 0; g < guard; g++) ys[len + g] = 7.0f;
                        if (len % 2) k->uniform_fq(&u, ys, len, scale, zero);
                        else vitq_i_uniform_fq_run(&u, ys, (int64_t)len, scale, zero);
                        bad += !same_floats(ys, want, len);
                        for (size_t g = 0; g < guard; g++) bad += ys[len + g] != 7.0f;
                        if (bits > 8) continue;
                        uint8_t *qs = q + si % 2;
                        memset(qs, 0xA5, len + guard);
                        k->uniform_u8(&u, xs, len, scale, zero, offset, qs);
                        bad += memcmp(qs, want_u8, len) != 0;
                        for (size_t g = 0; g < guard; g++) bad += qs[len + g] != 0xA5;
                    }
                    if (bad) {
                        printf("    %s: %d-bit %s grid, scale %g, zero %g: %zu runs differ from the scalar code\n",
                               vitq_i_isa_name((vitq_i_isa)isa), bits, sym ? "signed" : "unsigned", (double)scale,
                               (double)zero, bad);
                        harness_check_failures++;
                    }
                }
                vitq_i_isa_force(-1);
            }
        }
    free(x), free(want), free(y), free(want_u8), free(q);
}

int main(void) {
    vitq_i_allocator_resolve(NULL, &alloc);
    RUN(test_gemm_odd_sizes);
    RUN(test_gemm_position_invariance);
    RUN(test_gemm_fused_gelu);
    RUN(test_pack_strided);
    RUN(test_exp);
    RUN(test_gelu);
    RUN(test_gelu_paths_agree);
    RUN(test_softmax);
    RUN(test_layernorm);
    RUN(test_attention);
    RUN(test_attention_biased);
    RUN(test_uniform_rows);
    HARNESS_EXIT();
}
