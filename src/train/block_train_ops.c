/* Points and attention backward of the quantized training block (block_train_ops.h). */
#include <math.h>
#include <string.h>

#include "grad/backward.h"
#include "kernels/gelu_slope.h"
#include "kernels/isa.h"
#include "kernels/kernels.h"
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

/* Elements per run of the element-wise loops: their mask bytes and terms live on the stack. */
#define RUN 256

/* dropped[i] = vitq_i_bt_dropped(key, e0 + i, drop) for i < len (len <= RUN), thr the drop in 1/256ths: one
 * hash per eight elements, its bytes laid out in element order, then one comparison per byte (vectorised). */
static void drop_run(uint64_t key, size_t e0, size_t len, unsigned thr, unsigned char *dropped) {
    unsigned char bytes[RUN + 16];
    size_t skip = e0 & 7, words = (skip + len + 7) >> 3;
    for (size_t w = 0; w < words; w++) {
        uint64_t h = mix64(key + (uint64_t)((e0 >> 3) + w));
        for (unsigned k = 0; k < 8; k++) bytes[8 * w + k] = (unsigned char)(h >> (8 * k));
    }
    if (thr > 255) {
        memset(dropped, 1, len);
        return;
    }
    const unsigned char t = (unsigned char)thr, *b = bytes + skip;
    for (size_t i = 0; i < len; i++) dropped[i] = b[i] < t;
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
    unsigned thr; /* QDrop's probability in 1/256ths (vitq_i_bt_dropped) */
    int grid, mask; /* forward: the learned grid, the QDrop mask */
} point_job;

static size_t run_len(int64_t from, int64_t to) { return to - from < RUN ? (size_t)(to - from) : RUN; }

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
        const float *pre = j->pre + o * v->outer_stride;
        for (int64_t k0 = 0; j->mask && k0 < width; k0 += RUN) {
            unsigned char dropped[RUN];
            size_t len = run_len(k0, width);
            drop_run(j->key, (size_t)(o * v->outer_stride + k0), len, j->thr, dropped);
            for (size_t i = 0; i < len; i++) {
                float q = x[k0 + i], f = pre[k0 + i];
                x[k0 + i] = dropped[i] ? f : q;
            }
        }
    }
}

static int64_t tasks_of(const vitq_tensor_view *v) { return (v->outer + ROWS_PER_TASK - 1) / ROWS_PER_TASK; }

vitq_status vitq_i_bt_point_forward(const vitq_i_block_train *bt, int site, const vitq_tensor_view *v,
                                    const float *pre) {
    const vitq_i_bt_point *pt = &bt->pt[site];
    if (!pt->inst) return VITQ_OK;
    vitq_status st = VITQ_OK;
    point_job j = {bt, pt, v, pre, NULL, bt->dropping ? vitq_i_bt_mask_key(bt, site) : 0,
                   (unsigned)(bt->drop * 256.0 + 0.5), 0, 0};
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

/* The mask bytes of elements [k0, k0 + len) of the row starting at element `base` (all 0 without QDrop). */
static void run_mask(const point_job *j, size_t base, int64_t k0, size_t len, unsigned char *dropped) {
    if (j->bt->dropping) drop_run(j->key, base + (size_t)k0, len, j->thr, dropped);
    else memset(dropped, 0, len);
}

/* LSQ through elements [k0, k1) of one row, all of group g: dy/dx (1 inside the grid's range, else 0) into d,
 * each element's share of the step gradient added to *total in element order (a dropped one adds 0). Two
 * branch-free loops per run (floats, then the shares in double) so that the compiler vectorises both. */
static void lsq_span(const point_job *j, int64_t g, size_t base, const float *x, float *d, int64_t k0, int64_t k1,
                     double *total) {
    const vitq_i_bt_point *pt = j->pt;
    const float s = pt->step[g], z = pt->zero_point[g], qmin = (float)pt->grid.qmin, qmax = (float)pt->grid.qmax;
    const float lo = vitq_i_uniform_value(pt->grid.qmin, s, z), hi = vitq_i_uniform_value(pt->grid.qmax, s, z);
    const float magic = VITQ_I_UNIFORM_MAGIC;
    double sum = *total;
    for (int64_t r = k0; r < k1; r += RUN) {
        unsigned char dropped[RUN];
        float code[RUN], num[RUN], dk[RUN];
        double share[RUN];
        size_t len = run_len(r, k1);
        run_mask(j, base, r, len, dropped);
        const float *xr = x + r;
        float *dr = d + r;
        for (size_t i = 0; i < len; i++) {
            /* vitq_i_uniform_code as a float (an integer, exactly). Its clamp of x / s to +-2^22 is left out: it
             * only keeps the rounding exact, and beyond 2^22 the code is qmin or qmax either way (grids have at
             * most 16 bits), as it is for an infinity; NaN gives the zero point */
            float xi = xr[i], di = dr[i], v = ((xi / s + magic) - magic) + z, c = v < qmin ? qmin : z;
            c = v >= qmin ? v : c;
            c = v >= qmax ? qmax : c;
            int inside = (xi >= lo) & (xi <= hi), keep = dropped[i] | inside;
            code[i] = c;
            num[i] = inside ? xi : 0.0f;
            dk[i] = dropped[i] ? 0.0f : di;
            dr[i] = keep ? di : 0.0f;
        }
        /* LSQ: dy/ds = round(u) - u inside, the clamped code's value outside (zero point fixed) */
        for (size_t i = 0; i < len; i++)
            share[i] = (double)dk[i] * (((double)code[i] - (double)z) - (double)num[i] / (double)s);
        for (size_t i = 0; i < len; i++) sum += share[i];
    }
    *total = sum;
}

/* The straight-through estimator through elements [k0, k1) of one row, all of group g: d kept where the
 * input (plus its noise: per element when shift_each, else `shift`) lies in the group's interval or the
 * element was dropped, else 0. */
static void ste_span(const point_job *j, int64_t g, size_t base, const float *x, float *d, int64_t k0, int64_t k1,
                     const float *shift_each, float shift) {
    const float lo = j->pt->ste.lo[g], hi = j->pt->ste.hi[g];
    for (int64_t r = k0; r < k1; r += RUN) {
        unsigned char dropped[RUN];
        size_t len = run_len(r, k1);
        run_mask(j, base, r, len, dropped);
        const float *xr = x + r;
        float *dr = d + r;
        if (shift_each) {
            const float *sh = shift_each + r;
            for (size_t i = 0; i < len; i++) {
                float xx = xr[i] + sh[i];
                dr[i] = dropped[i] | ((xx >= lo) & (xx <= hi)) ? dr[i] : 0.0f;
            }
        } else {
            for (size_t i = 0; i < len; i++) {
                float xx = xr[i] + shift;
                dr[i] = dropped[i] | ((xx >= lo) & (xx <= hi)) ? dr[i] : 0.0f;
            }
        }
    }
}

static void backward_task(void *ctx, int64_t task, int worker) {
    (void)worker;
    const point_job *j = ctx;
    const vitq_tensor_view *v = j->v;
    const vitq_i_bt_point *pt = j->pt;
    const vitq_i_block_train *bt = j->bt;
    int64_t end = (task + 1) * ROWS_PER_TASK < v->outer ? (task + 1) * ROWS_PER_TASK : v->outer;
    int64_t inner = v->inner, width = v->channels * inner, span = pt->cpg * inner;
    double *acc = pt->learned ? bt->partial + task * pt->groups : NULL;
    for (int64_t o = task * ROWS_PER_TASK; o < end; o++) {
        const float *x = v->data + o * v->outer_stride;
        float *d = j->dy + o * v->outer_stride;
        size_t base = (size_t)(o * v->outer_stride);
        for (int64_t k0 = 0, g = 0; k0 < width; k0 += span, g++) { /* a group's channels are consecutive */
            int64_t k1 = k0 + span < width ? k0 + span : width;
            if (pt->learned && inner == 1) {
                lsq_span(j, g, base, x, d, k0, k1, &acc[g]);
            } else if (pt->learned) {
                for (int64_t c0 = k0; c0 < k1; c0 += inner) { /* the channel's share, then the group's once */
                    double sum = 0.0;
                    lsq_span(j, g, base, x, d, c0, c0 + inner, &sum);
                    acc[g] += sum;
                }
            } else if (!pt->noise) {
                ste_span(j, g, base, x, d, k0, k1, NULL, 0.0f);
            } else if (inner == 1) {
                ste_span(j, g, base, x, d, k0, k1, pt->noise, 0.0f);
            } else {
                for (int64_t c0 = k0; c0 < k1; c0 += inner) ste_span(j, g, base, x, d, c0, c0 + inner, NULL, pt->noise[c0 / inner]);
            }
        }
    }
}

void vitq_i_bt_point_backward(vitq_i_block_train *bt, int site, const vitq_tensor_view *v, float *dy) {
    vitq_i_bt_point *pt = &bt->pt[site];
    if (!pt->inst) return;
    int64_t tasks = tasks_of(v);
    point_job j = {bt, pt, v, NULL, dy, bt->dropping ? vitq_i_bt_mask_key(bt, site) : 0,
                   (unsigned)(bt->drop * 256.0 + 0.5), 0, 0};
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

/* ---- GELU ----------------------------------------------------------------------------------------- */

void vitq_i_bt_gelu(const vitq_i_block_train *bt, const float *x, size_t count, float *y) {
    vitq_i_epilogue e = bt->m->info.gelu == VITQ_GELU_TANH ? VITQ_I_EPI_GELU_TANH : VITQ_I_EPI_GELU_ERF;
    vitq_i_kernels_active()->epilogue(x, NULL, y, count, e);
}

#define GELU_BLOCK 4096 /* elements per task */

typedef struct gelu_job {
    vitq_i_block_train *bt;
    size_t count;
} gelu_job;

static void gelu_back_task(void *ctx, int64_t task, int worker) {
    (void)worker;
    const gelu_job *j = ctx;
    const vitq_i_block_train *bt = j->bt;
    size_t first = (size_t)task * GELU_BLOCK, n = j->count - first < GELU_BLOCK ? j->count - first : GELU_BLOCK;
    vitq_i_gelu_slope_mul(bt->hq + first, bt->dh + first, n, bt->m->info.gelu == VITQ_GELU_TANH, bt->dh + first);
}

void vitq_i_bt_gelu_backward(vitq_i_block_train *bt, size_t count) {
    gelu_job j = {bt, count};
    vitq_i_parallel_for(bt->nthreads, (int64_t)((count + GELU_BLOCK - 1) / GELU_BLOCK), gelu_back_task, &j);
}

/* ---- attention ------------------------------------------------------------------------------------ */

typedef struct attn_job {
    vitq_i_block_train *bt;
    const float *d_att;
    float *dqkv;
} attn_job;

/* dst[c][r] = src[r][c] for a t x t matrix, in tiles so that both sides stay in cache. */
static void transpose_square(const float *src, size_t t, float *dst) {
    enum { TILE = 32 };
    for (size_t r0 = 0; r0 < t; r0 += TILE)
        for (size_t c0 = 0; c0 < t; c0 += TILE) {
            size_t r1 = r0 + TILE < t ? r0 + TILE : t, c1 = c0 + TILE < t ? c0 + TILE : t;
            for (size_t r = r0; r < r1; r++)
                for (size_t c = c0; c < c1; c++) dst[c * t + r] = src[r * t + c];
        }
}

/* The GEMM panels of worker `worker`: bt->scratch holds nthreads x vitq_i_attention_scratch_floats(seq, hd)
 * floats, more than the panels of a seq x hd or hd x seq operand take. */
static float *panels_of(const vitq_i_block_train *bt, int worker) {
    return bt->scratch + (size_t)worker * vitq_i_attention_scratch_floats(bt->seq, bt->hd);
}

/* Sequence b, head h, as two GEMMs on one thread (the task grid is the parallel loop):
 * dP^ = dO V^T into bt->dp and dV = P^^T dO into dqkv's v slice. P^^T is formed in this task's block of
 * bt->ds, which the softmax backward writes only later. */
static void dv_task(void *ctx, int64_t task, int worker) {
    const attn_job *j = ctx;
    const vitq_i_block_train *bt = j->bt;
    size_t t = bt->seq, d = bt->d, hd = bt->hd, b = (size_t)task / bt->heads, h = (size_t)task % bt->heads;
    const float *v = bt->qkvq + b * t * 3 * d + 2 * d + h * hd, *go = j->d_att + b * t * d + h * hd;
    const float *pq = bt->pq + (size_t)task * t * t;
    float *dv = j->dqkv + b * t * 3 * d + 2 * d + h * hd, *dp = bt->dp + (size_t)task * t * t;
    float *pqt = bt->ds + (size_t)task * t * t, *panels = panels_of(bt, worker);
    vitq_i_packed w;
    vitq_i_gemm_pack_strided(v, 3 * d, 1, t, hd, panels, &w); /* (k, e) = V[k][e] */
    vitq_i_gemm(go, d, t, &w, NULL, dp, t, VITQ_I_EPI_NONE, 1);
    transpose_square(pq, t, pqt);
    vitq_i_gemm_pack_strided(go, 1, d, hd, t, panels, &w); /* (e, i) = dO[i][e] */
    vitq_i_gemm(pqt, t, t, &w, NULL, dv, 3 * d, VITQ_I_EPI_NONE, 1);
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

/* Sequence b, head h: dq_i = scale sum_j dS_ij k_j, dk_j = sum_i dS_ij (scale q_i) (the forward scales q before
 * the product), as two GEMMs; dS^T is formed in this task's block of bt->dp, which is not needed any more. */
static void dqk_task(void *ctx, int64_t task, int worker) {
    const attn_job *j = ctx;
    const vitq_i_block_train *bt = j->bt;
    size_t t = bt->seq, d = bt->d, hd = bt->hd, b = (size_t)task / bt->heads, h = (size_t)task % bt->heads;
    const float scale = 1.0f / sqrtf((float)hd);
    const float *q = bt->qkvq + b * t * 3 * d + h * hd, *k = q + d, *ds = bt->ds + (size_t)task * t * t;
    float *dq = j->dqkv + b * t * 3 * d + h * hd, *dk = dq + d;
    float *dst = bt->dp + (size_t)task * t * t, *panels = panels_of(bt, worker);
    vitq_i_packed w;
    vitq_i_gemm_pack_strided(k, 1, 3 * d, hd, t, panels, &w); /* (e, k) = K[k][e] */
    vitq_i_gemm(ds, t, t, &w, NULL, dq, 3 * d, VITQ_I_EPI_NONE, 1);
    for (size_t i = 0; i < t; i++)
        for (size_t e = 0; e < hd; e++) dq[i * 3 * d + e] *= scale;
    transpose_square(ds, t, dst);
    vitq_i_gemm_pack_strided(q, 1, 3 * d, hd, t, panels, &w); /* (e, i) = Q[i][e] scale */
    size_t packed = vitq_i_gemm_packed_floats(hd, t);
    for (size_t e = 0; e < packed; e++) panels[e] *= scale;
    vitq_i_gemm(dst, t, t, &w, NULL, dk, 3 * d, VITQ_I_EPI_NONE, 1);
}

void vitq_i_bt_attn_dqk(vitq_i_block_train *bt, size_t n, float *dqkv) {
    attn_job j = {bt, NULL, dqkv};
    vitq_i_parallel_for(bt->nthreads, (int64_t)(n * bt->heads), dqk_task, &j);
}
