/* Backward of the forward kernels (see backward.h). Loops are written so that the inner one is a
 * contiguous axpy over a row: the build has no -ffast-math, so float sum reductions would not be
 * vectorised, while axpy sweeps are. */
#include <math.h>
#include <string.h>

#include "grad/backward.h"
#include "kernels/parallel.h"

typedef struct ln_back_job {
    const float *x, *dy, *gamma;
    size_t dim;
    float eps;
    float *dx;
    int accumulate;
} ln_back_job;

static void ln_back_task(void *ctx, int64_t r, int worker) {
    const ln_back_job *j = ctx;
    (void)worker;
    size_t dim = j->dim;
    const float *xr = j->x + (size_t)r * dim, *gr = j->dy + (size_t)r * dim, *gamma = j->gamma;
    float *out = j->dx + (size_t)r * dim;
    /* the statistics as vitq_i_layernorm computes them */
    double sum = 0.0, sq = 0.0;
    for (size_t i = 0; i < dim; i++) sum += xr[i];
    double mean = sum / (double)dim;
    for (size_t i = 0; i < dim; i++) sq += (xr[i] - mean) * (xr[i] - mean);
    double rstd = 1.0 / sqrt(sq / (double)dim + (double)j->eps);
    /* dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * gamma */
    double g_sum = 0.0, gx_sum = 0.0;
    for (size_t i = 0; i < dim; i++) {
        double g = (double)gr[i] * gamma[i];
        g_sum += g;
        gx_sum += g * (xr[i] - mean) * rstd;
    }
    double g_mean = g_sum / (double)dim, gx_mean = gx_sum / (double)dim;
    for (size_t i = 0; i < dim; i++) {
        double xhat = (xr[i] - mean) * rstd;
        float v = (float)(rstd * ((double)gr[i] * gamma[i] - g_mean - xhat * gx_mean));
        out[i] = j->accumulate ? out[i] + v : v;
    }
}

void vitq_i_layernorm_backward(const float *x, const float *dy, size_t rows, size_t dim, const float *gamma,
                               float eps, float *dx, int accumulate, int nthreads) {
    ln_back_job j = {x, dy, gamma, dim, eps, dx, accumulate};
    vitq_i_parallel_for(nthreads, (int64_t)rows, ln_back_task, &j);
}

/* d/dx of 0.5 x (1 + erf(x / sqrt 2)) = Phi(x) + x phi(x). */
static float gelu_erf_slope(float x) {
    const float inv_sqrt2 = 0.70710678118654752f, inv_sqrt_2pi = 0.39894228040143268f;
    return 0.5f * (1.0f + erff(x * inv_sqrt2)) + x * inv_sqrt_2pi * expf(-0.5f * x * x);
}

/* d/dx of 0.5 x (1 + tanh(u)), u = k (x + c x^3). */
static float gelu_tanh_slope(float x) {
    const float k = 0.79788456080286536f, c = 0.044715f;
    float t = tanhf(k * (x + c * x * x * x));
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * k * (1.0f + 3.0f * c * x * x);
}

#define GELU_BLOCK 4096 /* elements per task: the call is memory-bound, tasks only need to be coarse */

typedef struct gelu_back_job {
    const float *x, *dy;
    size_t count;
    int gelu;
    float *dx;
} gelu_back_job;

static void gelu_back_task(void *ctx, int64_t t, int worker) {
    const gelu_back_job *j = ctx;
    (void)worker;
    size_t lo = (size_t)t * GELU_BLOCK, hi = lo + GELU_BLOCK < j->count ? lo + GELU_BLOCK : j->count;
    if (j->gelu == VITQ_GELU_TANH)
        for (size_t i = lo; i < hi; i++) j->dx[i] = j->dy[i] * gelu_tanh_slope(j->x[i]);
    else
        for (size_t i = lo; i < hi; i++) j->dx[i] = j->dy[i] * gelu_erf_slope(j->x[i]);
}

void vitq_i_gelu_backward(const float *x, const float *dy, size_t count, int gelu, float *dx, int nthreads) {
    gelu_back_job j = {x, dy, count, gelu, dx};
    vitq_i_parallel_for(nthreads, (int64_t)((count + GELU_BLOCK - 1) / GELU_BLOCK), gelu_back_task, &j);
}

void vitq_i_softmax_backward(const float *p, const float *dp, size_t n, float *dz) {
    double dot = 0.0;
    for (size_t i = 0; i < n; i++) dot += (double)p[i] * dp[i];
    float s = (float)dot;
    for (size_t i = 0; i < n; i++) dz[i] = p[i] * (dp[i] - s);
}

size_t vitq_i_transposed_floats(size_t out, size_t in) { return vitq_i_gemm_packed_floats(in, out); }

/* The GEMM's panels (kernels.h) of the weight wt[in][out] = w^T: element (j, kk) of wt is
 * w[kk * in + j], so the packing reads w with strides (1, in), no transposed copy needed. */
void vitq_i_pack_transposed(const float *w, size_t out, size_t in, float *panels, vitq_i_packed *p) {
    vitq_i_gemm_pack_strided(w, 1, in, in, out, panels, p);
}

void vitq_i_linear_backward(const vitq_i_packed *wt, const float *dy, size_t rows, float *dx, int accumulate,
                            int nthreads) {
    vitq_i_gemm(dy, wt->k, rows, wt, NULL, dx, wt->n, accumulate ? VITQ_I_EPI_RESIDUAL : VITQ_I_EPI_NONE,
                nthreads);
}

/* ---- attention ----------------------------------------------------------------------------------- */

size_t vitq_i_attention_backward_scratch_floats(size_t tokens, size_t head_dim) {
    return 4 * tokens * head_dim + 2 * tokens + 2 * head_dim;
}

typedef struct attn_scratch {
    float *k;      /* [tokens][head_dim] */
    float *vt;     /* [head_dim][tokens] */
    float *dk, *dv; /* [tokens][head_dim] accumulators */
    float *dp, *ds; /* [tokens]: one row of d_probs / d_scores */
    float *qs, *dq; /* [head_dim] */
} attn_scratch;

static attn_scratch carve(float *s, size_t t, size_t hd) {
    attn_scratch a;
    a.k = s;
    a.vt = a.k + t * hd;
    a.dk = a.vt + hd * t;
    a.dv = a.dk + t * hd;
    a.dp = a.dv + t * hd;
    a.ds = a.dp + t;
    a.qs = a.ds + t;
    a.dq = a.qs + hd;
    return a;
}

/* K and V of head h of one sequence: K row-major, V transposed (dp is a sweep over tokens). */
static void gather_kv(const float *seq, size_t t, size_t dim, size_t hd, size_t h, attn_scratch *a) {
    for (size_t j = 0; j < t; j++) {
        const float *row = seq + j * 3 * dim;
        memcpy(a->k + j * hd, row + dim + h * hd, hd * sizeof(float));
        for (size_t d = 0; d < hd; d++) a->vt[d * t + j] = row[2 * dim + h * hd + d];
    }
    memset(a->dk, 0, t * hd * sizeof(float));
    memset(a->dv, 0, t * hd * sizeof(float));
}

/* Instruction-set clones picked at load time, as gemm.c does for its micro-kernel (the same C code;
 * off where glibc's ifunc is not available or under the sanitizers). */
#if defined(__x86_64__) && defined(__GLIBC__) && defined(__GNUC__) && !defined(__clang__) &&         \
    !defined(VITQ_NO_IFUNC) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

/* Query row i: dP = dO.V^T, dS = softmax backward, then dq = scale dS.K, dK += dS^T (scale q),
 * dV += P^T dO. The forward scales q before the product, so dK takes the scaled q. */
CLONES
static void backward_row(const float *q, const float *p, const float *d_o, size_t t, size_t hd, attn_scratch *a,
                         float *dq_out, float *d_probs, float *d_scores) {
    const float scale = 1.0f / sqrtf((float)hd);
    for (size_t j = 0; j < t; j++) a->dp[j] = 0.0f;
    for (size_t d = 0; d < hd; d++) {
        float g = d_o[d];
        const float *v = a->vt + d * t;
        for (size_t j = 0; j < t; j++) a->dp[j] += g * v[j];
    }
    if (d_probs) memcpy(d_probs, a->dp, t * sizeof(float));
    vitq_i_softmax_backward(p, a->dp, t, a->ds);
    if (d_scores) memcpy(d_scores, a->ds, t * sizeof(float));
    for (size_t d = 0; d < hd; d++) {
        a->qs[d] = q[d] * scale;
        a->dq[d] = 0.0f;
    }
    for (size_t j = 0; j < t; j++) {
        float s = a->ds[j], pj = p[j];
        const float *k = a->k + j * hd;
        float *dk = a->dk + j * hd, *dv = a->dv + j * hd;
        for (size_t d = 0; d < hd; d++) {
            a->dq[d] += s * k[d];
            dk[d] += s * a->qs[d];
            dv[d] += pj * d_o[d];
        }
    }
    for (size_t d = 0; d < hd; d++) dq_out[d] = a->dq[d] * scale;
}

typedef struct attn_back_job {
    const float *qkv, *probs, *d_out;
    size_t tokens, dim, heads, hd, per_thread;
    float *d_qkv, *d_probs, *d_scores, *scratch;
} attn_back_job;

/* One (sequence, head) per task: it owns its head's slices of d_qkv, so tasks never collide. */
static void attn_back_task(void *ctx, int64_t task, int worker) {
    const attn_back_job *j = ctx;
    size_t tokens = j->tokens, dim = j->dim, hd = j->hd, tt = tokens * tokens;
    size_t b = (size_t)task / j->heads, h = (size_t)task % j->heads;
    attn_scratch a = carve(j->scratch + (size_t)worker * j->per_thread, tokens, hd);
    const float *seq = j->qkv + b * tokens * 3 * dim;
    float *dseq = j->d_qkv + b * tokens * 3 * dim;
    size_t at = (size_t)task * tt;
    gather_kv(seq, tokens, dim, hd, h, &a);
    for (size_t i = 0; i < tokens; i++)
        backward_row(seq + i * 3 * dim + h * hd, j->probs + at + i * tokens, j->d_out + (b * tokens + i) * dim + h * hd,
                     tokens, hd, &a, dseq + i * 3 * dim + h * hd, j->d_probs ? j->d_probs + at + i * tokens : NULL,
                     j->d_scores ? j->d_scores + at + i * tokens : NULL);
    for (size_t k = 0; k < tokens; k++) {
        float *row = dseq + k * 3 * dim;
        memcpy(row + dim + h * hd, a.dk + k * hd, hd * sizeof(float));
        memcpy(row + 2 * dim + h * hd, a.dv + k * hd, hd * sizeof(float));
    }
}

void vitq_i_attention_backward(const float *qkv, const float *probs, const float *d_out, size_t seqs, size_t tokens,
                               size_t dim, size_t heads, float *d_qkv, float *d_probs, float *d_scores,
                               float *scratch, int nthreads) {
    size_t hd = dim / heads, per_thread = vitq_i_attention_backward_scratch_floats(tokens, hd);
    attn_back_job j = {qkv, probs, d_out, tokens, dim, heads, hd, per_thread, d_qkv, d_probs, d_scores, scratch};
    vitq_i_parallel_for(nthreads, (int64_t)(seqs * heads), attn_back_task, &j);
}
