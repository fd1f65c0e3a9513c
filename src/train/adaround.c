/* AdaRound's soft rounding, its regulariser and annealing, and the final hard rounding (adaround.h).
 * Everything per weight is computed in double from the stored floats. The per-step functions (soft weights,
 * backward, regulariser) run over a fixed grid of chunks, in parallel on r->nthreads: each weight's result
 * is the same whatever the threads, and the regulariser's value is summed per chunk, then in chunk order. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kernels/parallel.h"
#include "train/adaround.h"

#define CHUNK 4096 /* weights per task of the per-step loops */

static const double zeta = VITQ_I_ADAROUND_ZETA, gamma_ = VITQ_I_ADAROUND_GAMMA;

static double sigmoid(double v) { return v >= 0.0 ? 1.0 / (1.0 + exp(-v)) : exp(v) / (1.0 + exp(v)); }

double vitq_i_adaround_h(double v) {
    double h = sigmoid(v) * (zeta - gamma_) + gamma_;
    return h < 0.0 ? 0.0 : h > 1.0 ? 1.0 : h;
}

double vitq_i_adaround_dh(double v) {
    double sg = sigmoid(v), h = sg * (zeta - gamma_) + gamma_;
    return h <= 0.0 || h >= 1.0 ? 0.0 : (zeta - gamma_) * sg * (1.0 - sg);
}

/* h(V) and dh/dV from one sigmoid: the values of vitq_i_adaround_h and _dh. */
static void h_and_dh(double v, double *h, double *dh) {
    double sg = sigmoid(v), u = sg * (zeta - gamma_) + gamma_;
    *h = u < 0.0 ? 0.0 : u > 1.0 ? 1.0 : u;
    *dh = u <= 0.0 || u >= 1.0 ? 0.0 : (zeta - gamma_) * sg * (1.0 - sg);
}

vitq_status vitq_i_adaround_create(vitq_i_adaround *r, const vitq_allocator *a, const char *name, const float *w,
                                   int64_t channels, int64_t inner, const vitq_i_uniform *grid, const float *scale,
                                   const float *zero_point, int64_t groups, int64_t cpg) {
    if (!r) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "adaround: state is NULL");
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name ? name : "adaround");
    vitq_status st = vitq_i_allocator_resolve(a, &r->alloc);
    if (st != VITQ_OK) return st;
    if (!w || !grid || !scale || !zero_point || channels < 1 || inner < 1 || groups < 1 || cpg < 1 ||
        channels > INT64_MAX / inner || groups > INT64_MAX / cpg || groups * cpg != channels)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: %lld channels x %lld, %lld groups of %lld channels (or a "
                           "NULL array)", r->name, (long long)channels, (long long)inner, (long long)groups,
                           (long long)cpg);
    for (int64_t g = 0; g < groups; g++)
        if (!(scale[g] > 0.0f) || !isfinite(scale[g]) || !isfinite(zero_point[g]))
            return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s: group %lld has scale %g, zero point %g", r->name,
                               (long long)g, (double)scale[g], (double)zero_point[g]);
    r->grid = *grid;
    r->channels = channels, r->inner = inner, r->groups = groups, r->cpg = cpg;
    r->count = (size_t)(channels * inner);
    r->scale = vitq_i_alloc_array(&r->alloc, (size_t)groups, sizeof(float));
    r->zero_point = vitq_i_alloc_array(&r->alloc, (size_t)groups, sizeof(float));
    r->base = vitq_i_alloc_array(&r->alloc, r->count, sizeof(float));
    r->v = vitq_i_alloc_array(&r->alloc, r->count, sizeof(float));
    r->v_grad = vitq_i_calloc(&r->alloc, r->count, sizeof(float));
    r->nthreads = 1;
    r->chunk_sums = vitq_i_alloc_array(&r->alloc, (r->count + CHUNK - 1) / CHUNK, sizeof(double));
    if (!r->scale || !r->zero_point || !r->base || !r->v || !r->v_grad || !r->chunk_sums) {
        vitq_i_adaround_free(r);
        return vitq_i_oom("AdaRound variables", r->count * 3 * sizeof(float));
    }
    memcpy(r->scale, scale, (size_t)groups * sizeof(float));
    memcpy(r->zero_point, zero_point, (size_t)groups * sizeof(float));
    for (size_t i = 0; i < r->count; i++) {
        int64_t g = (int64_t)i / inner / cpg;
        if (!isfinite(w[i])) {
            vitq_i_adaround_free(r);
            return vitq_i_fail(VITQ_ERR_NON_FINITE, "%s: weight %zu is %g", r->name, i, (double)w[i]);
        }
        double t = (double)w[i] / (double)scale[g], down = floor(t);
        r->base[i] = (float)(down + (double)zero_point[g]);
        /* h(V) = frac: sigmoid(V) = (frac - gamma) / (zeta - gamma), in (0.083, 0.917) for frac in [0, 1) */
        double p = (t - down - gamma_) / (zeta - gamma_);
        r->v[i] = (float)log(p / (1.0 - p));
    }
    return VITQ_OK;
}

void vitq_i_adaround_free(vitq_i_adaround *r) {
    if (!r) return;
    vitq_i_free(&r->alloc, r->scale);
    vitq_i_free(&r->alloc, r->zero_point);
    vitq_i_free(&r->alloc, r->base);
    vitq_i_free(&r->alloc, r->v);
    vitq_i_free(&r->alloc, r->v_grad);
    vitq_i_free(&r->alloc, r->chunk_sums);
    r->scale = r->zero_point = r->base = r->v = r->v_grad = NULL;
    r->chunk_sums = NULL;
}

static inline int64_t group_of(const vitq_i_adaround *r, size_t i) { return (int64_t)i / r->inner / r->cpg; }

typedef struct step_job {
    vitq_i_adaround *r;
    float *w_soft;
    const float *d_soft;
    double beta, lambda;
} step_job;

static int64_t chunks_of(const vitq_i_adaround *r) { return (int64_t)((r->count + CHUNK - 1) / CHUNK); }

static size_t chunk_end(const vitq_i_adaround *r, size_t first) { return first + CHUNK < r->count ? first + CHUNK : r->count; }

static void soft_task(void *ctx, int64_t task, int worker) {
    (void)worker;
    const step_job *j = ctx;
    const vitq_i_adaround *r = j->r;
    double lo = r->grid.qmin, hi = r->grid.qmax;
    size_t first = (size_t)task * CHUNK, end = chunk_end(r, first);
    for (size_t i = first; i < end; i++) {
        int64_t g = group_of(r, i);
        double c = (double)r->base[i] + vitq_i_adaround_h(r->v[i]);
        c = c < lo ? lo : c > hi ? hi : c;
        j->w_soft[i] = (float)((double)r->scale[g] * (c - (double)r->zero_point[g]));
    }
}

void vitq_i_adaround_soft(const vitq_i_adaround *r, float *w_soft) {
    step_job j = {(vitq_i_adaround *)r, w_soft, NULL, 0.0, 0.0};
    vitq_i_parallel_for(r->nthreads, chunks_of(r), soft_task, &j);
}

static void backward_task(void *ctx, int64_t task, int worker) {
    (void)worker;
    const step_job *j = ctx;
    vitq_i_adaround *r = j->r;
    double lo = r->grid.qmin, hi = r->grid.qmax;
    size_t first = (size_t)task * CHUNK, end = chunk_end(r, first);
    for (size_t i = first; i < end; i++) {
        double h, dh;
        h_and_dh(r->v[i], &h, &dh);
        double c = (double)r->base[i] + h;
        if (c < lo || c > hi) continue; /* clamped: w_soft does not move with V */
        r->v_grad[i] += (float)((double)j->d_soft[i] * (double)r->scale[group_of(r, i)] * dh);
    }
}

void vitq_i_adaround_backward(vitq_i_adaround *r, const float *d_soft) {
    step_job j = {r, NULL, d_soft, 0.0, 0.0};
    vitq_i_parallel_for(r->nthreads, chunks_of(r), backward_task, &j);
}

static void reg_task(void *ctx, int64_t task, int worker) {
    (void)worker;
    const step_job *j = ctx;
    vitq_i_adaround *r = j->r;
    double beta = j->beta, lambda = j->lambda, f = 0.0;
    size_t first = (size_t)task * CHUNK, end = chunk_end(r, first);
    for (size_t i = first; i < end; i++) {
        double h, dh;
        h_and_dh(r->v[i], &h, &dh);
        double d = 2.0 * h - 1.0, a = fabs(d);
        if (a == 0.0) { /* |2h - 1|^beta is 0 (beta > 0); no gradient */
            f += 1.0;
            continue;
        }
        double p = pow(a, beta - 1.0); /* one pow: a^beta = a a^(beta - 1) */
        f += 1.0 - a * p;
        if (lambda != 0.0 && a > 0.0) {
            double df = -beta * p * (d > 0.0 ? 1.0 : -1.0) * 2.0 * dh;
            r->v_grad[i] += (float)(lambda * df);
        }
    }
    r->chunk_sums[task] = f;
}

double vitq_i_adaround_reg(vitq_i_adaround *r, double beta, double lambda) {
    step_job j = {r, NULL, NULL, beta, lambda};
    vitq_i_parallel_for(r->nthreads, chunks_of(r), reg_task, &j);
    double f = 0.0;
    for (int64_t t = 0; t < chunks_of(r); t++) f += r->chunk_sums[t]; /* in chunk order */
    return f;
}

vitq_i_adaround_anneal vitq_i_adaround_anneal_defaults(int64_t iters) {
    vitq_i_adaround_anneal a = {iters, 0.2, 20.0, 2.0};
    return a;
}

double vitq_i_adaround_beta(const vitq_i_adaround_anneal *a, int64_t t, int *active) {
    double start = a->warmup * (double)a->iters;
    if ((double)t < start) {
        if (active) *active = 0;
        return a->beta_start;
    }
    if (active) *active = 1;
    double span = (double)a->iters - start, rel = span > 0.0 ? ((double)t - start) / span : 1.0;
    if (rel > 1.0) rel = 1.0;
    return a->beta_end + (a->beta_start - a->beta_end) * (1.0 - rel);
}

void vitq_i_adaround_codes(const vitq_i_adaround *r, int32_t *codes) {
    for (size_t i = 0; i < r->count; i++) {
        double c = (double)r->base[i] + (vitq_i_adaround_h(r->v[i]) >= 0.5 ? 1.0 : 0.0);
        codes[i] = c < r->grid.qmin ? r->grid.qmin : c > r->grid.qmax ? r->grid.qmax : (int32_t)c;
    }
}

void vitq_i_adaround_hard(const vitq_i_adaround *r, float *w_hard) {
    for (size_t i = 0; i < r->count; i++) {
        double c = (double)r->base[i] + (vitq_i_adaround_h(r->v[i]) >= 0.5 ? 1.0 : 0.0);
        c = c < r->grid.qmin ? r->grid.qmin : c > r->grid.qmax ? r->grid.qmax : c;
        int64_t g = group_of(r, i);
        /* as vitq_i_uniform_value: the float product a saved model's dequantization makes */
        w_hard[i] = ((float)c - r->zero_point[g]) * r->scale[g];
    }
}

size_t vitq_i_adaround_settled(const vitq_i_adaround *r, double tol) {
    size_t n = 0;
    for (size_t i = 0; i < r->count; i++) {
        double h = vitq_i_adaround_h(r->v[i]);
        n += h <= tol || h >= 1.0 - tol;
    }
    return n;
}
