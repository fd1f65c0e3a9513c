/* The portable C path: plain loops the compiler may vectorise for whatever the build targets.
 * Products and sums are rounded separately (no fma), so its GEMM differs from the FMA paths in the
 * last bits; its softmax, LayerNorm and activations follow the shared formulas and equal them. */
#include <math.h>
#include <string.h>

#include "kernels/isa.h"

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF /* products round where written (GCC: already off in ISO C mode) */
#endif

#define MR 4
#define NR VITQ_I_GEMM_NR

static void tile(size_t rows, size_t k, const float *a, size_t lda, const float *b, size_t ldb, float *c,
                 size_t ldc, int accumulate) {
    float acc[MR][NR];
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < NR; j++) acc[r][j] = accumulate ? c[r * ldc + j] : 0.0f;
    for (size_t kk = 0; kk < k; kk++) {
        const float *brow = b + kk * ldb;
        for (size_t r = 0; r < rows; r++) {
            float ar = a[r * lda + kk];
            for (size_t j = 0; j < NR; j++) acc[r][j] += ar * brow[j];
        }
    }
    for (size_t r = 0; r < rows; r++) memcpy(c + r * ldc, acc[r], sizeof acc[r]);
}

static void epilogue(const float *acc, const float *bias, float *c, size_t n, vitq_i_epilogue e) {
    for (size_t j = 0; j < n; j++) {
        float v = bias ? acc[j] + bias[j] : acc[j];
        switch (e) {
        case VITQ_I_EPI_GELU_ERF: v = vitq_i_gelu_erf(v); break;
        case VITQ_I_EPI_GELU_TANH: v = vitq_i_gelu_tanh(v); break;
        case VITQ_I_EPI_RESIDUAL: v = c[j] + v; break;
        default: break;
        }
        c[j] = v;
    }
}

static void softmax(float *x, size_t n) {
    if (n == 0) return;
    float max = x[0];
    for (size_t i = 1; i < n; i++) max = x[i] > max ? x[i] : max;
    double lane[VITQ_I_SOFTMAX_LANES] = {0};
    for (size_t i = 0; i < n; i++) {
        x[i] = vitq_i_exp(x[i] - max);
        lane[i % VITQ_I_SOFTMAX_LANES] += x[i];
    }
    for (size_t half = VITQ_I_SOFTMAX_LANES / 2; half > 0; half /= 2)
        for (size_t l = 0; l < half; l++) lane[l] += lane[l + half];
    float inv = (float)(1.0 / lane[0]);
    for (size_t i = 0; i < n; i++) x[i] *= inv;
}

static double fold(double *lane) {
    for (size_t half = VITQ_I_NORM_LANES / 2; half > 0; half /= 2)
        for (size_t l = 0; l < half; l++) lane[l] += lane[l + half];
    return lane[0];
}

static void layernorm(const float *x, size_t dim, const float *gamma, const float *beta, float eps, float *out) {
    double lane[VITQ_I_NORM_LANES] = {0};
    for (size_t i = 0; i < dim; i++) lane[i % VITQ_I_NORM_LANES] += x[i];
    double mean = fold(lane) / (double)dim;
    memset(lane, 0, sizeof lane);
    for (size_t i = 0; i < dim; i++) {
        double d = x[i] - mean;
        lane[i % VITQ_I_NORM_LANES] += d * d;
    }
    /* Biased variance, as torch.nn.LayerNorm. */
    double rstd = 1.0 / sqrt(fold(lane) / (double)dim + (double)eps);
    for (size_t i = 0; i < dim; i++) out[i] = (float)((x[i] - mean) * rstd) * gamma[i] + beta[i];
}

/* The scalar definitions themselves (kernels/uniform.h). */
static void uniform_fq(const vitq_i_uniform *u, float *p, size_t n, float scale, float zero) {
    for (size_t i = 0; i < n; i++) p[i] = vitq_i_uniform_fq(u, p[i], scale, zero);
}

static void uniform_u8(const vitq_i_uniform *u, const float *x, size_t n, float scale, float zero, int32_t offset,
                       uint8_t *out) {
    for (size_t i = 0; i < n; i++) out[i] = (uint8_t)(vitq_i_uniform_code(u, x[i], scale, zero) + offset);
}

const vitq_i_isa_kernels vitq_i_kernels_generic = {MR, tile, epilogue, softmax, layernorm, uniform_fq, uniform_u8};
