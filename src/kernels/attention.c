/* Multi-head scaled dot-product attention, one (sequence, head) pair per task, blocked on the GEMM
 * micro-kernel of the active path. K is laid out as GEMM panels (32 tokens x head_dim, k-major) once
 * per task; V is read in place (copied into rows padded to 32 columns when head_dim is not a
 * multiple of 32). Then for each block of up to VITQ_I_GEMM_MR query rows: scores = (q * scale) .
 * K^T (micro-kernel over head_dim), + head bias, + mask (each rounded, as timm and torchvision do),
 * row softmax, and out = P . V (micro-kernel over the tokens). Only one block of scores exists at a
 * time: the T x T matrix is never materialised.
 *
 * The staged variant (scores, softmax, apply) materialises scores and probabilities so that simulated
 * quantization can reach them; it runs the same micro-kernel calls and the same row softmax on the
 * same values, so without changes between its stages it gives the fused kernel's results bit for
 * bit. Each score and output element is one accumulator in a fixed order: results do not depend on
 * the row block a query falls in or on threads. */
#include <math.h>
#include <string.h>

#include "kernels/isa.h"
#include "kernels/parallel.h"

#define NR VITQ_I_GEMM_NR
#define ROWS VITQ_I_GEMM_MR

static size_t round_up(size_t v, size_t m) { return (v + m - 1) / m * m; }

typedef struct attn_geom {
    size_t tokens, dim, heads, hd; /* hd: head_dim */
    size_t tp, hp;                 /* tokens and head_dim rounded up to 32 */
    size_t tt;                     /* tokens * tokens */
    float scale;
} attn_geom;

/* One task's share of scratch, every part 64-byte aligned relative to the start. */
typedef struct attn_scratch {
    float *kp; /* [tp / 32][hd][32]: K as GEMM panels, padding tokens zero */
    float *v;  /* [tokens][hp]: V, padding columns zero */
    float *q;  /* [ROWS][hd]: scaled queries of the block */
    float *s;  /* [ROWS][tp]: scores, then probabilities, of the block */
    float *o;  /* [ROWS][hp]: outputs of the block */
} attn_scratch;

static attn_geom geometry(size_t tokens, size_t dim, size_t heads) {
    attn_geom g;
    g.tokens = tokens;
    g.dim = dim;
    g.heads = heads;
    g.hd = dim / heads;
    g.tp = round_up(tokens, NR);
    g.hp = round_up(g.hd, NR);
    g.tt = tokens * tokens;
    g.scale = 1.0f / sqrtf((float)g.hd);
    return g;
}

static size_t part_sizes(size_t tokens, size_t hd, size_t sizes[5]) {
    size_t tp = round_up(tokens, NR), hp = round_up(hd, NR);
    sizes[0] = round_up(tp * hd, 16);
    sizes[1] = round_up(tokens * hp, 16);
    sizes[2] = round_up(ROWS * hd, 16);
    sizes[3] = round_up(ROWS * tp, 16);
    sizes[4] = round_up(ROWS * hp, 16);
    return sizes[0] + sizes[1] + sizes[2] + sizes[3] + sizes[4];
}

size_t vitq_i_attention_scratch_floats(size_t tokens, size_t head_dim) {
    size_t sizes[5];
    return part_sizes(tokens, head_dim, sizes);
}

/* The scratch of `worker` (per-thread slices of vitq_i_attention_scratch_floats floats). */
static attn_scratch carve(const attn_geom *g, float *scratch, int worker) {
    size_t sizes[5], per_thread = part_sizes(g->tokens, g->hd, sizes);
    attn_scratch s;
    s.kp = scratch + (size_t)worker * per_thread;
    s.v = s.kp + sizes[0];
    s.q = s.v + sizes[1];
    s.s = s.q + sizes[2];
    s.o = s.s + sizes[3];
    return s;
}

static void prefetch(const float *p) {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(p);
#else
    (void)p;
#endif
}

/* V of head h can be read in place (and outputs written in place) when head_dim is a multiple of the
 * micro-kernel's 32 columns; otherwise V is copied into rows padded to 32 and outputs go through o. */
static int in_place(const attn_geom *g) { return g->hd % NR == 0; }

/* K (as panels) and/or V (when it is copied) of head h of the sequence `seq`. */
static void gather(const attn_geom *g, const float *seq, size_t h, int want_k, int want_v, attn_scratch *s) {
    size_t ld = 3 * g->dim;
    want_v = want_v && !in_place(g);
    for (size_t t = 0; t < g->tokens; t++) {
        const float *krow = seq + t * ld + g->dim + h * g->hd, *vrow = krow + g->dim;
        if (want_k && t + 8 < g->tokens) /* rows are pages apart: the hardware does not run ahead */
            for (size_t d = 0; d < g->hd; d += 16) prefetch(krow + 8 * ld + d);
        if (want_k) {
            float *dst = s->kp + (t / NR) * g->hd * NR + t % NR;
            for (size_t d = 0; d < g->hd; d++) dst[d * NR] = krow[d];
        }
        if (want_v) {
            memcpy(s->v + t * g->hp, vrow, g->hd * sizeof(float));
            memset(s->v + t * g->hp + g->hd, 0, (g->hp - g->hd) * sizeof(float));
        }
    }
    if (want_k)
        for (size_t t = g->tokens; t < g->tp; t++)
            for (size_t d = 0; d < g->hd; d++) s->kp[(t / NR) * g->hd * NR + d * NR + t % NR] = 0.0f;
}

/* Scores of query rows i0 .. i0+rows into s->s (row stride tp): (q * scale) . k + bias + mask. */
static void score_block(const vitq_i_isa_kernels *isa, const attn_geom *g, const float *seq, size_t h, size_t i0,
                        size_t rows, const float *hb, const float *mk, attn_scratch *s) {
    for (size_t r = 0; r < rows; r++) {
        const float *q = seq + (i0 + r) * 3 * g->dim + h * g->hd;
        if (i0 + rows + r < g->tokens) /* the next block's query row */
            for (size_t d = 0; d < g->hd; d += 16) prefetch(q + rows * 3 * g->dim + d);
        for (size_t d = 0; d < g->hd; d++) s->q[r * g->hd + d] = q[d] * g->scale;
    }
    for (size_t p = 0; p < g->tp / NR; p++)
        isa->tile(rows, g->hd, s->q, g->hd, s->kp + p * g->hd * NR, NR, s->s + p * NR, g->tp, 0);
    for (size_t r = 0; r < rows; r++) {
        float *row = s->s + r * g->tp;
        if (hb)
            for (size_t t = 0; t < g->tokens; t++) row[t] += hb[(i0 + r) * g->tokens + t];
        if (mk)
            for (size_t t = 0; t < g->tokens; t++) row[t] += mk[(i0 + r) * g->tokens + t];
    }
}

/* out rows i0 .. i0+rows (head h's slice) = probs (rows x tokens, row stride ld) . V. */
static void apply_block(const vitq_i_isa_kernels *isa, const attn_geom *g, const float *probs, size_t ld,
                        const float *seq, size_t h, size_t i0, size_t rows, float *out_seq, attn_scratch *s) {
    float *out = out_seq + i0 * g->dim + h * g->hd;
    if (in_place(g)) {
        const float *v = seq + 2 * g->dim + h * g->hd;
        for (size_t cb = 0; cb < g->hd / NR; cb++)
            isa->tile(rows, g->tokens, probs, ld, v + cb * NR, 3 * g->dim, out + cb * NR, g->dim, 0);
        return;
    }
    for (size_t cb = 0; cb < g->hp / NR; cb++)
        isa->tile(rows, g->tokens, probs, ld, s->v + cb * NR, g->hp, s->o + cb * NR, g->hp, 0);
    for (size_t r = 0; r < rows; r++) memcpy(out + r * g->dim, s->o + r * g->hp, g->hd * sizeof(float));
}

/* The head bias of head h and the mask of sequence b (NULL where absent). */
static void bias_rows(const vitq_i_attn_bias *bias, size_t b, size_t h, size_t tt, const float **hb,
                      const float **mk) {
    *hb = bias && bias->head_bias ? bias->head_bias + h * tt : NULL;
    *mk = bias && bias->mask ? bias->mask + (b % bias->mask_period) * tt : NULL;
}

/* What the parallel loops of this file share: task t is (sequence t / heads, head t % heads). */
typedef struct attn_job {
    attn_geom g;
    const vitq_i_isa_kernels *isa;
    const float *qkv;
    const vitq_i_attn_bias *bias;
    const float *probs; /* apply: [task][tokens][tokens] */
    float *out;         /* fused and apply: [batch][tokens][dim]; scores: [task][tokens][tokens] */
    float *scratch;
    size_t rows;        /* softmax: rows of `out`, in blocks of SOFTMAX_BLOCK */
} attn_job;

static attn_job job_of(const float *qkv, size_t tokens, size_t dim, size_t heads, float *out, float *scratch) {
    attn_job j;
    memset(&j, 0, sizeof j);
    j.g = geometry(tokens, dim, heads);
    j.isa = vitq_i_kernels_active();
    j.qkv = qkv;
    j.out = out;
    j.scratch = scratch;
    return j;
}

static void fused_task(void *ctx, int64_t task, int worker) {
    const attn_job *j = ctx;
    const attn_geom *g = &j->g;
    size_t b = (size_t)task / g->heads, h = (size_t)task % g->heads, tokens = g->tokens;
    attn_scratch s = carve(g, j->scratch, worker);
    const float *seq = j->qkv + b * tokens * 3 * g->dim, *hb, *mk;
    bias_rows(j->bias, b, h, g->tt, &hb, &mk);
    gather(g, seq, h, 1, 1, &s);
    for (size_t i0 = 0; i0 < tokens; i0 += j->isa->mr) {
        size_t rows = tokens - i0 < j->isa->mr ? tokens - i0 : j->isa->mr;
        score_block(j->isa, g, seq, h, i0, rows, hb, mk, &s);
        for (size_t r = 0; r < rows; r++) j->isa->softmax(s.s + r * g->tp, tokens);
        apply_block(j->isa, g, s.s, g->tp, seq, h, i0, rows, j->out + b * tokens * g->dim, &s);
    }
}

void vitq_i_attention_biased(const float *qkv, size_t batch, size_t tokens, size_t dim, size_t heads,
                             const vitq_i_attn_bias *bias, float *out, float *scratch, int nthreads) {
    attn_job j = job_of(qkv, tokens, dim, heads, out, scratch);
    j.bias = bias;
    vitq_i_parallel_for(vitq_i_resolve_threads(nthreads), (int64_t)(batch * heads), fused_task, &j);
}

void vitq_i_attention(const float *qkv, size_t batch, size_t tokens, size_t dim, size_t heads,
                      float *out, float *scratch, int nthreads) {
    vitq_i_attention_biased(qkv, batch, tokens, dim, heads, NULL, out, scratch, nthreads);
}

static void scores_task(void *ctx, int64_t task, int worker) {
    const attn_job *j = ctx;
    const attn_geom *g = &j->g;
    size_t b = (size_t)task / g->heads, h = (size_t)task % g->heads, tokens = g->tokens;
    attn_scratch s = carve(g, j->scratch, worker);
    const float *seq = j->qkv + b * tokens * 3 * g->dim, *hb, *mk;
    float *dst = j->out + (size_t)task * g->tt;
    bias_rows(j->bias, b, h, g->tt, &hb, &mk);
    gather(g, seq, h, 1, 0, &s);
    for (size_t i0 = 0; i0 < tokens; i0 += j->isa->mr) {
        size_t rows = tokens - i0 < j->isa->mr ? tokens - i0 : j->isa->mr;
        score_block(j->isa, g, seq, h, i0, rows, hb, mk, &s);
        for (size_t r = 0; r < rows; r++) memcpy(dst + (i0 + r) * tokens, s.s + r * g->tp, tokens * sizeof(float));
    }
}

void vitq_i_attention_scores(const float *qkv, size_t batch, size_t tokens, size_t dim, size_t heads,
                             const vitq_i_attn_bias *bias, float *scores, float *scratch, int nthreads) {
    attn_job j = job_of(qkv, tokens, dim, heads, scores, scratch);
    j.bias = bias;
    vitq_i_parallel_for(vitq_i_resolve_threads(nthreads), (int64_t)(batch * heads), scores_task, &j);
}

#define SOFTMAX_BLOCK 32 /* rows per task */

static void softmax_task(void *ctx, int64_t b, int worker) {
    const attn_job *j = ctx;
    (void)worker;
    size_t r0 = (size_t)b * SOFTMAX_BLOCK, r1 = r0 + SOFTMAX_BLOCK < j->rows ? r0 + SOFTMAX_BLOCK : j->rows;
    for (size_t r = r0; r < r1; r++) j->isa->softmax(j->out + r * j->g.tokens, j->g.tokens);
}

void vitq_i_attention_softmax(float *scores, size_t rows, size_t tokens, int nthreads) {
    attn_job j;
    memset(&j, 0, sizeof j);
    j.isa = vitq_i_kernels_active();
    j.g.tokens = tokens;
    j.out = scores;
    j.rows = rows;
    vitq_i_parallel_for(vitq_i_resolve_threads(nthreads), (int64_t)((rows + SOFTMAX_BLOCK - 1) / SOFTMAX_BLOCK),
                        softmax_task, &j);
}

static void apply_task(void *ctx, int64_t task, int worker) {
    const attn_job *j = ctx;
    const attn_geom *g = &j->g;
    size_t b = (size_t)task / g->heads, h = (size_t)task % g->heads, tokens = g->tokens;
    attn_scratch s = carve(g, j->scratch, worker);
    const float *p = j->probs + (size_t)task * g->tt, *seq = j->qkv + b * tokens * 3 * g->dim;
    gather(g, seq, h, 0, 1, &s);
    for (size_t i0 = 0; i0 < tokens; i0 += j->isa->mr) {
        size_t rows = tokens - i0 < j->isa->mr ? tokens - i0 : j->isa->mr;
        apply_block(j->isa, g, p + i0 * tokens, tokens, seq, h, i0, rows, j->out + b * tokens * g->dim, &s);
    }
}

void vitq_i_attention_apply(const float *probs, const float *qkv, size_t batch, size_t tokens, size_t dim,
                            size_t heads, float *out, float *scratch, int nthreads) {
    attn_job j = job_of(qkv, tokens, dim, heads, out, scratch);
    j.probs = probs;
    vitq_i_parallel_for(vitq_i_resolve_threads(nthreads), (int64_t)(batch * heads), apply_task, &j);
}
