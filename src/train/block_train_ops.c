/* Points and attention backward of the quantized training block (block_train_ops.h). */
#include <math.h>
#include <string.h>

#include "grad/backward.h"
#include "kernels/parallel.h"
#include "quant/noisy.h"
#include "train/block_train_ops.h"

/* splitmix64's finaliser: a counter-based stream, so a mask bit is a function of (key, element). */
static uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t vitq_i_bt_mask_key(const vitq_i_block_train *bt, int site) {
    return mix64(bt->seed ^ mix64((uint64_t)bt->step * 64u + (uint64_t)site));
}

int vitq_i_bt_dropped(uint64_t key, size_t e, double drop) {
    /* eight decisions per hash: byte e % 8 of the hash of e / 8, against drop in 1/256ths */
    unsigned byte = (unsigned)(mix64(key + (uint64_t)(e >> 3)) >> (8 * (e & 7))) & 255u;
    return byte < (unsigned)(drop * 256.0 + 0.5);
}

static vitq_status instance_fq(void *ctx, const vitq_tensor_view *v) {
    const vitq_i_instance *inst = ctx;
    return inst->scheme.fake_quant(inst->state, v);
}

/* The clamp of the straight-through surrogate, in the units residuals are frozen in (steps for a learned
 * point, values for a fixed one). */
static double sur_clamp(const vitq_i_bt_point *pt, float x, int64_t c, int64_t g) {
    if (pt->learned) {
        double u = (double)x / pt->step[g], lo = pt->grid.qmin - pt->zero_point[g], hi = pt->grid.qmax - pt->zero_point[g];
        return u < lo ? lo : u > hi ? hi : u;
    }
    double xx = (double)x + (pt->noise ? pt->noise[c] : 0.0);
    xx = xx < pt->ste.lo[g] ? pt->ste.lo[g] : xx > pt->ste.hi[g] ? pt->ste.hi[g] : xx;
    return xx - (pt->noise ? pt->noise[c] : 0.0);
}

static void surrogate(const vitq_i_block_train *bt, int site, const vitq_tensor_view *v, const float *pre) {
    const vitq_i_bt_point *pt = &bt->pt[site];
    float *fr = bt->frozen[site];
    for (int64_t o = 0; o < v->outer; o++)
        for (int64_t k = 0; k < v->channels * v->inner; k++) {
            size_t e = (size_t)(o * v->outer_stride + k);
            int64_t c = k / v->inner, g = c / pt->cpg;
            double s = pt->learned ? pt->step[g] : 1.0, base = sur_clamp(pt, pre[e], c, g);
            if (bt->surrogate == 1) fr[e] = (float)((double)v->data[e] / s - base);
            else v->data[e] = (float)(s * (base + (double)fr[e]));
        }
}

#define ROWS_PER_TASK VITQ_I_BT_ROWS_PER_TASK

typedef struct point_job {
    const vitq_i_block_train *bt;
    const vitq_i_bt_point *pt;
    const vitq_tensor_view *v;
    const float *pre;
    float *dy;
    uint64_t key;
    int grid, mask; /* forward: the learned grid, the QDrop mask */
} point_job;

static void forward_task(void *ctx, int64_t task, int worker) {
    (void)worker;
    const point_job *j = ctx;
    const vitq_tensor_view *v = j->v;
    const vitq_i_bt_point *pt = j->pt;
    int64_t width = v->channels * v->inner, span = pt->cpg * v->inner;
    int64_t end = (task + 1) * ROWS_PER_TASK < v->outer ? (task + 1) * ROWS_PER_TASK : v->outer;
    for (int64_t o = task * ROWS_PER_TASK; o < end; o++) {
        float *x = v->data + o * v->outer_stride;
        for (int64_t g = 0; j->grid && g < pt->groups; g++) /* a group's channels are consecutive */
            vitq_i_uniform_fq_run(&pt->grid, x + g * span, span, pt->step[g], pt->zero_point[g]);
        for (int64_t k = 0; j->mask && k < width; k++) {
            size_t e = (size_t)(o * v->outer_stride + k);
            if (vitq_i_bt_dropped(j->key, e, j->bt->drop)) v->data[e] = j->pre[e];
        }
    }
}

static int64_t tasks_of(const vitq_tensor_view *v) { return (v->outer + ROWS_PER_TASK - 1) / ROWS_PER_TASK; }

vitq_status vitq_i_bt_point_forward(const vitq_i_block_train *bt, int site, const vitq_tensor_view *v,
                                    const float *pre) {
    const vitq_i_bt_point *pt = &bt->pt[site];
    if (!pt->inst) return VITQ_OK;
    vitq_status st = VITQ_OK;
    point_job j = {bt, pt, v, pre, NULL, bt->dropping ? vitq_i_bt_mask_key(bt, site) : 0, 0, 0};
    if (bt->surrogate == 2 && bt->frozen[site]) {
        surrogate(bt, site, v, pre);
    } else if (pt->learned) {
        j.grid = 1;
        vitq_i_parallel_for(bt->nthreads, tasks_of(v), forward_task, &j);
        j.grid = 0;
    } else if (pt->noise) {
        st = vitq_i_noisy_fake_quant(instance_fq, (void *)pt->inst, pt->noise, v);
    } else {
        st = pt->inst->scheme.fake_quant(pt->inst->state, v);
    }
    if (st) return st;
    if (bt->surrogate == 1 && bt->frozen[site]) surrogate(bt, site, v, pre);
    if (!bt->dropping) return VITQ_OK;
    j.mask = 1;
    vitq_i_parallel_for(bt->nthreads, tasks_of(v), forward_task, &j);
    return VITQ_OK;
}

static void backward_task(void *ctx, int64_t task, int worker) {
    (void)worker;
    const point_job *j = ctx;
    const vitq_tensor_view *v = j->v;
    const vitq_i_bt_point *pt = j->pt;
    const vitq_i_block_train *bt = j->bt;
    int64_t end = (task + 1) * ROWS_PER_TASK < v->outer ? (task + 1) * ROWS_PER_TASK : v->outer;
    double *acc = pt->learned ? bt->partial + task * pt->groups : NULL;
    for (int64_t o = task * ROWS_PER_TASK; o < end; o++) {
        const float *x = v->data + o * v->outer_stride;
        float *d = j->dy + o * v->outer_stride;
        for (int64_t c = 0; c < v->channels; c++) {
            int64_t g = c / pt->cpg;
            float s = pt->learned ? pt->step[g] : 1.0f, z = pt->learned ? pt->zero_point[g] : 0.0f;
            float lo = pt->learned ? vitq_i_uniform_value(pt->grid.qmin, s, z) : pt->ste.lo[g];
            float hi = pt->learned ? vitq_i_uniform_value(pt->grid.qmax, s, z) : pt->ste.hi[g];
            float shift = pt->noise ? pt->noise[c] : 0.0f;
            int64_t k0 = c * v->inner, k1 = k0 + v->inner;
            size_t base = (size_t)(o * v->outer_stride);
            if (pt->learned) {
                double sum = 0.0; /* the channel's share, in element order (added to the group's once) */
                for (int64_t k = k0; k < k1; k++) {
                    if (bt->dropping && vitq_i_bt_dropped(j->key, base + (size_t)k, bt->drop)) continue;
                    int32_t code = vitq_i_uniform_code(&pt->grid, x[k], s, z);
                    int inside = x[k] >= lo && x[k] <= hi;
                    /* LSQ: dy/ds = round(u) - u inside, the clamped code's value outside (zero point fixed) */
                    double dyds = ((double)code - z) - (inside ? (double)x[k] / s : 0.0);
                    sum += (double)d[k] * dyds;
                    if (!inside) d[k] = 0.0f;
                }
                acc[g] += sum;
            } else if (!bt->dropping) {
                for (int64_t k = k0; k < k1; k++) {
                    float xx = x[k] + shift;
                    d[k] = xx >= lo && xx <= hi ? d[k] : 0.0f;
                }
            } else {
                for (int64_t k = k0; k < k1; k++) {
                    float xx = x[k] + shift;
                    if (!(xx >= lo && xx <= hi) && !vitq_i_bt_dropped(j->key, base + (size_t)k, bt->drop)) d[k] = 0.0f;
                }
            }
        }
    }
}

void vitq_i_bt_point_backward(vitq_i_block_train *bt, int site, const vitq_tensor_view *v, float *dy) {
    vitq_i_bt_point *pt = &bt->pt[site];
    if (!pt->inst) return;
    int64_t tasks = tasks_of(v);
    point_job j = {bt, pt, v, NULL, dy, bt->dropping ? vitq_i_bt_mask_key(bt, site) : 0, 0, 0};
    if (pt->learned) memset(bt->partial, 0, (size_t)(tasks * pt->groups) * sizeof(double));
    vitq_i_parallel_for(bt->nthreads, tasks, backward_task, &j);
    if (!pt->learned) return;
    double per_group = (double)v->outer * (double)pt->cpg * (double)v->inner;
    for (int64_t g = 0; g < pt->groups; g++) {
        double sum = 0.0;
        for (int64_t t = 0; t < tasks; t++) sum += bt->partial[t * pt->groups + g]; /* in task order */
        pt->step_grad[g] += (float)(sum / sqrt(per_group * (double)pt->grid.qmax));
    }
}

/* ---- attention ------------------------------------------------------------------------------------ */

typedef struct attn_job {
    vitq_i_block_train *bt;
    const float *d_att;
    float *dqkv;
} attn_job;

/* Sequence b, head h: dP^ = dO V^T into bt->dp, dV = P^^T dO into dqkv's v slice. */
static void dv_task(void *ctx, int64_t task, int worker) {
    (void)worker;
    const attn_job *j = ctx;
    const vitq_i_block_train *bt = j->bt;
    size_t t = bt->seq, d = bt->d, hd = bt->hd, b = (size_t)task / bt->heads, h = (size_t)task % bt->heads;
    const float *seq = bt->qkvq + b * t * 3 * d, *pq = bt->pq + (size_t)task * t * t;
    float *dseq = j->dqkv + b * t * 3 * d, *dp = bt->dp + (size_t)task * t * t;
    for (size_t k = 0; k < t; k++) memset(dseq + k * 3 * d + 2 * d + h * hd, 0, hd * sizeof(float));
    for (size_t i = 0; i < t; i++) {
        const float *go = j->d_att + (b * t + i) * d + h * hd;
        for (size_t k = 0; k < t; k++) {
            const float *v = seq + k * 3 * d + 2 * d + h * hd;
            float *dv = dseq + k * 3 * d + 2 * d + h * hd, acc = 0.0f, pik = pq[i * t + k];
            for (size_t e = 0; e < hd; e++) {
                acc += go[e] * v[e];
                dv[e] += pik * go[e];
            }
            dp[i * t + k] = acc;
        }
    }
}

void vitq_i_bt_attn_dv(vitq_i_block_train *bt, size_t n, const float *d_att, float *dqkv) {
    attn_job j = {bt, d_att, dqkv};
    vitq_i_parallel_for(bt->nthreads, (int64_t)(n * bt->heads), dv_task, &j);
}

static void softmax_task(void *ctx, int64_t task, int worker) {
    (void)worker;
    vitq_i_block_train *bt = ctx;
    size_t t = bt->seq, at = (size_t)task * t * t;
    for (size_t i = 0; i < t; i++) vitq_i_softmax_backward(bt->p + at + i * t, bt->dp + at + i * t, t, bt->ds + at + i * t);
}

void vitq_i_bt_softmax_back(vitq_i_block_train *bt, size_t n) {
    vitq_i_parallel_for(bt->nthreads, (int64_t)(n * bt->heads), softmax_task, bt);
}

/* Sequence b, head h: dq_i = scale sum_j dS_ij k_j, dk_j = sum_i dS_ij (scale q_i): the forward scales q
 * before the product. */
static void dqk_task(void *ctx, int64_t task, int worker) {
    (void)worker;
    const attn_job *j = ctx;
    const vitq_i_block_train *bt = j->bt;
    size_t t = bt->seq, d = bt->d, hd = bt->hd, b = (size_t)task / bt->heads, h = (size_t)task % bt->heads;
    const float scale = 1.0f / sqrtf((float)hd);
    const float *seq = bt->qkvq + b * t * 3 * d, *ds = bt->ds + (size_t)task * t * t;
    float *dseq = j->dqkv + b * t * 3 * d;
    for (size_t k = 0; k < t; k++) memset(dseq + k * 3 * d + d + h * hd, 0, hd * sizeof(float));
    for (size_t i = 0; i < t; i++) {
        const float *q = seq + i * 3 * d + h * hd;
        float *dq = dseq + i * 3 * d + h * hd;
        memset(dq, 0, hd * sizeof(float));
        for (size_t k = 0; k < t; k++) {
            const float *kk = seq + k * 3 * d + d + h * hd;
            float *dk = dseq + k * 3 * d + d + h * hd, s = ds[i * t + k];
            for (size_t e = 0; e < hd; e++) {
                dq[e] += s * kk[e];
                dk[e] += s * (q[e] * scale);
            }
        }
        for (size_t e = 0; e < hd; e++) dq[e] *= scale;
    }
}

void vitq_i_bt_attn_dqk(vitq_i_block_train *bt, size_t n, float *dqkv) {
    attn_job j = {bt, NULL, dqkv};
    vitq_i_parallel_for(bt->nthreads, (int64_t)(n * bt->heads), dqk_task, &j);
}
