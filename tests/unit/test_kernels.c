/* Kernels against simple double-precision references, on odd sizes. */
#include <stdint.h>

#include "harness.h"
#include "kernels/kernels.h"

static vitq_allocator alloc;

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

static double ref_gelu(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }

/* One GEMM size: compares every epilogue with a double reference. */
static void check_gemm(size_t m, size_t n, size_t k, int threads) {
    float *a = random_floats(m * k, 1.0f), *w = random_floats(n * k, 1.0f), *bias = random_floats(n, 1.0f);
    float *c = malloc(m * n * sizeof(float) + 1), *base = random_floats(m * n, 1.0f);
    vitq_i_packed p;
    CHECK_STATUS(vitq_i_gemm_pack(&alloc, w, n, k, &p), VITQ_OK);
    for (int e = 0; e < 4; e++) {
        memcpy(c, base, m * n * sizeof(float));
        vitq_i_gemm(a, k, m, &p, e == 1 ? NULL : bias, c, n, (vitq_i_epilogue)e, threads);
        double worst = 0;
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++) {
                double s = e == 1 ? 0.0 : bias[j];
                for (size_t q = 0; q < k; q++) s += (double)a[i * k + q] * w[j * k + q];
                double want = e == 1 ? ref_gelu(s)
                              : e == 2 ? 0.5 * s * (1 + tanh(0.7978845608028654 * (s + 0.044715 * s * s * s)))
                              : e == 3 ? s + base[i * n + j]
                                       : s;
                double err = fabs(want - c[i * n + j]) / (1.0 + sqrt((double)k));
                if (err > worst) worst = err;
            }
        if (worst > 2e-6) {
            printf("    gemm m=%zu n=%zu k=%zu epilogue %d: scaled error %.3g\n", m, n, k, e, worst);
            harness_check_failures++;
        }
    }
    vitq_i_gemm_packed_free(&alloc, &p);
    free(a), free(w), free(bias), free(c), free(base);
}

static void test_gemm_odd_sizes(void) {
    const size_t sizes[] = {1, 7, 16, 17, 197, 385};
    for (size_t i = 0; i < 6; i++)
        for (size_t j = 0; j < 6; j += 2) check_gemm(sizes[i], sizes[(i + j) % 6], sizes[(i + 2 * j + 1) % 6], 2);
    check_gemm(50, 64, 1, 1);
    check_gemm(197, 192, 768, 0);
}

/* The same row gives bit-identical outputs wherever it sits and whatever the thread count: this is
 * what makes logits independent of batch size and of OpenMP. */
static void test_gemm_position_invariance(void) {
    size_t m = 61, n = 37, k = 53;
    float *a = random_floats(m * k, 1.0f), *w = random_floats(n * k, 1.0f);
    float *c1 = malloc(m * n * sizeof(float)), *c2 = malloc(n * sizeof(float));
    vitq_i_packed p;
    CHECK_STATUS(vitq_i_gemm_pack(&alloc, w, n, k, &p), VITQ_OK);
    vitq_i_gemm(a, k, m, &p, NULL, c1, n, VITQ_I_EPI_NONE, 3);
    int same = 1;
    for (size_t r = 0; r < m; r++) {
        vitq_i_gemm(a + r * k, k, 1, &p, NULL, c2, n, VITQ_I_EPI_NONE, 1);
        same &= memcmp(c1 + r * n, c2, n * sizeof(float)) == 0;
    }
    CHECK(same);
    vitq_i_gemm_packed_free(&alloc, &p);
    free(a), free(w), free(c1), free(c2);
}

static void test_layernorm(void) {
    const size_t dims[] = {1, 7, 64, 385};
    for (size_t t = 0; t < 4; t++) {
        size_t rows = 5, d = dims[t];
        float *x = random_floats(rows * d, 3.0f), *g = random_floats(d, 1.0f), *b = random_floats(d, 1.0f);
        float *y = malloc(rows * d * sizeof(float));
        for (size_t i = 0; i < rows * d; i++) x[i] += 100.0f; /* large mean, as in real residual streams */
        vitq_i_layernorm(x, rows, d, g, b, 1e-6f, y, 2);
        for (size_t r = 0; r < rows; r++) {
            double mean = 0, var = 0;
            for (size_t i = 0; i < d; i++) mean += x[r * d + i];
            mean /= (double)d;
            for (size_t i = 0; i < d; i++) var += (x[r * d + i] - mean) * (x[r * d + i] - mean);
            var /= (double)d;
            for (size_t i = 0; i < d; i++) {
                double want = (x[r * d + i] - mean) / sqrt(var + 1e-6) * g[i] + b[i];
                CHECK_NEAR(y[r * d + i], want, 2e-5);
            }
        }
        vitq_i_layernorm(x, rows, d, g, b, 1e-6f, x, 1); /* in place gives the same */
        CHECK(memcmp(x, y, rows * d * sizeof(float)) == 0);
        free(x), free(g), free(b), free(y);
    }
}

static void test_gelu(void) {
    for (double x = -8.0; x <= 8.0; x += 0.01) {
        CHECK_NEAR(vitq_i_gelu_erf((float)x), ref_gelu(x), 2e-6 * (1 + fabs(x)));
        double t = 0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
        CHECK_NEAR(vitq_i_gelu_tanh((float)x), t, 2e-6 * (1 + fabs(x)));
    }
    CHECK(vitq_i_gelu_erf(0.0f) == 0.0f);
}

static void test_softmax(void) {
    float x[5] = {1000.0f, 1001.0f, 999.0f, -1e30f, 1001.0f}; /* overflows without max subtraction */
    vitq_i_softmax(x, 5);
    double e[5] = {exp(-1.0), 1.0, exp(-2.0), 0.0, 1.0}, s = 0;
    for (int i = 0; i < 5; i++) s += e[i];
    for (int i = 0; i < 5; i++) CHECK_NEAR(x[i], e[i] / s, 1e-7);
    float one[1] = {-3.0f};
    vitq_i_softmax(one, 1);
    CHECK(one[0] == 1.0f);
}

static void test_attention(void) {
    const size_t cases[][3] = {{1, 8, 2}, {7, 12, 3}, {50, 64, 4}, {197, 24, 1}}; /* tokens, dim, heads */
    for (size_t t = 0; t < 4; t++) {
        size_t tok = cases[t][0], d = cases[t][1], heads = cases[t][2], hd = d / heads, batch = 2;
        float *qkv = random_floats(batch * tok * 3 * d, 2.0f), *out = malloc(batch * tok * d * sizeof(float));
        float *scratch = malloc(4 * vitq_i_attention_scratch_floats(tok, hd) * sizeof(float));
        vitq_i_attention(qkv, batch, tok, d, heads, out, scratch, 4);
        double *s = malloc(tok * sizeof(double));
        for (size_t b = 0; b < batch; b++)
            for (size_t h = 0; h < heads; h++)
                for (size_t i = 0; i < tok; i++) {
                    const float *base = qkv + b * tok * 3 * d;
                    double mx = -1e300, sum = 0;
                    for (size_t j = 0; j < tok; j++) {
                        double dot = 0;
                        for (size_t e = 0; e < hd; e++)
                            dot += (double)base[i * 3 * d + h * hd + e] * base[j * 3 * d + d + h * hd + e];
                        s[j] = dot / sqrt((double)hd);
                        if (s[j] > mx) mx = s[j];
                    }
                    for (size_t j = 0; j < tok; j++) sum += (s[j] = exp(s[j] - mx));
                    for (size_t e = 0; e < hd; e++) {
                        double o = 0;
                        for (size_t j = 0; j < tok; j++) o += s[j] / sum * base[j * 3 * d + 2 * d + h * hd + e];
                        CHECK_NEAR(out[(b * tok + i) * d + h * hd + e], o, 2e-5);
                    }
                }
        free(qkv), free(out), free(scratch), free(s);
    }
}

/* Swin window attention: relative position bias per head, and a window mask chosen by b % period. */
static void test_attention_biased(void) {
    const size_t tok = 9, d = 12, heads = 3, hd = d / heads, batch = 6, period = 3;
    float *qkv = random_floats(batch * tok * 3 * d, 2.0f), *out = malloc(batch * tok * d * sizeof(float));
    float *hb = random_floats(heads * tok * tok, 3.0f), *mask = calloc(period * tok * tok, sizeof(float));
    for (size_t i = 0; i < period * tok * tok; i++)
        if ((i * 7 + i / 5) % 4 == 0) mask[i] = -100.0f; /* some pairs masked, never a whole row */
    float *scratch = malloc(2 * vitq_i_attention_scratch_floats(tok, hd) * sizeof(float));
    vitq_i_attn_bias bias = {hb, mask, period};
    vitq_i_attention_biased(qkv, batch, tok, d, heads, &bias, out, scratch, 2);
    double s[9];
    double masked_weight = 0;
    for (size_t b = 0; b < batch; b++)
        for (size_t h = 0; h < heads; h++)
            for (size_t i = 0; i < tok; i++) {
                const float *base = qkv + b * tok * 3 * d;
                const float *mrow = mask + ((b % period) * tok + i) * tok;
                double mx = -1e300, sum = 0;
                for (size_t j = 0; j < tok; j++) {
                    double dot = 0;
                    for (size_t e = 0; e < hd; e++)
                        dot += (double)base[i * 3 * d + h * hd + e] * base[j * 3 * d + d + h * hd + e];
                    s[j] = dot / sqrt((double)hd) + hb[(h * tok + i) * tok + j] + mrow[j];
                    if (s[j] > mx) mx = s[j];
                }
                for (size_t j = 0; j < tok; j++) sum += (s[j] = exp(s[j] - mx));
                for (size_t j = 0; j < tok; j++)
                    if (mrow[j] != 0) masked_weight += s[j] / sum;
                for (size_t e = 0; e < hd; e++) {
                    double o = 0;
                    for (size_t j = 0; j < tok; j++) o += s[j] / sum * base[j * 3 * d + 2 * d + h * hd + e];
                    CHECK_NEAR(out[(b * tok + i) * d + h * hd + e], o, 2e-5);
                }
            }
    CHECK(masked_weight < 1e-30); /* the reference itself honours the mask */
    /* Without the terms the result differs: the bias and mask are really applied. */
    float *plain = malloc(batch * tok * d * sizeof(float));
    vitq_i_attention(qkv, batch, tok, d, heads, plain, scratch, 2);
    double diff = 0;
    for (size_t i = 0; i < batch * tok * d; i++) diff = fmax(diff, fabs(plain[i] - out[i]));
    CHECK(diff > 0.1);
    free(qkv), free(out), free(hb), free(mask), free(scratch), free(plain);
}

int main(void) {
    vitq_i_allocator_resolve(NULL, &alloc);
    RUN(test_gemm_odd_sizes);
    RUN(test_gemm_position_invariance);
    RUN(test_layernorm);
    RUN(test_gelu);
    RUN(test_softmax);
    RUN(test_attention);
    RUN(test_attention_biased);
    HARNESS_EXIT();
}
