/* The integer-only ViT / DeiT runtime (intvit.h). No floating point in this file: it builds with
 * -mgeneral-regs-only. The order of operations follows model/block.c, with every float step replaced by
 * its integer counterpart. */
#include "kernels/intvit.h"

#include <string.h>

#include "core/core.h"
#include "kernels/cpu.h"
#include "kernels/igemm_int_sink.h"
#include "kernels/parallel.h"

static size_t align64(size_t v) { return (v + 63) / 64 * 64; }

/* The scratch of a run, cut from one block: the parts shared by the whole pass, then one set of
 * attention buffers per worker. The GEMMs hand their int32 tiles to the next step (igemm_int_sink.h):
 * no layer's int32 output is kept whole. */
typedef struct bufs {
    int32_t *res;     /* [rows][dim] the residual stream */
    uint8_t *bytes;   /* [rows][max(dim, hidden)] a linear layer's input bytes */
    uint8_t *qkv;     /* [rows][3 dim] Q, K, V bytes */
    int32_t *acc;     /* [n][dim] the final norm's gathered rows */
    int16_t *x16;     /* [rows][max(dim, hidden)] a kernel's int16 input */
    int32_t *y32;     /* [rows][max(dim, hidden)] a kernel's int32 output */
    uint8_t *pixels;  /* [rows][patch^2] one colour channel's patches */
    uint8_t *heads;   /* the workers' attention buffers, head_bytes each */
    size_t head_bytes;
} bufs;

/* Query rows of a head computed together: scores, softmax, P and P.V of QB rows stay in L1 / L2. */
#define QB 64

static int forced_query_rows; /* vitq_i_intvit_force_query_rows; shared through VITQ_I_LOAD_INT / STORE_INT */

void vitq_i_intvit_force_query_rows(int rows) {
    VITQ_I_STORE_INT(&forced_query_rows, rows >= 1 && rows <= QB ? rows : 0);
}

/* One worker's attention buffers. */
typedef struct head_bufs {
    int16_t *s16;     /* [QB][tokens] */
    int32_t *probs;   /* [QB][tokens] */
    uint8_t *pb;      /* [QB][tokens] P bytes, or LIS codes */
    int32_t *pv;      /* [QB][head_dim] LIS's P.V */
    void *kpack, *vpack;
} head_bufs;

#define SHARED_PARTS 7
#define HEAD_PARTS 6
/* The largest buffer set a run may ask for: 1 TiB on 64-bit hosts, SIZE_MAX / 16 where size_t is 32 bits
 * (a Cortex-M firmware), where 1 << 40 would not fit. */
#define MAX_BYTES (SIZE_MAX / 16 < ((uint64_t)1 << 40) ? SIZE_MAX / 16 : (size_t)((uint64_t)1 << 40))

/* Sizes of the shared parts and of one worker's parts (0 on overflow). */
static int layout(const vitq_i_intvit *p, size_t n, size_t shared[SHARED_PARTS], size_t head[HEAD_PARTS]) {
    size_t d = (size_t)p->dim, h = (size_t)p->hidden, t = (size_t)p->tokens, rows;
    size_t hd = d / (size_t)p->heads, wide = d > h ? d : h, pp = (size_t)p->patch * (size_t)p->patch;
    if (!vitq_i_mul_size(n, t, &rows) || rows > MAX_BYTES / (4 * wide + 3 * d + 1)) return 0;
    size_t a[SHARED_PARTS] = {rows * d * 4, rows * wide, rows * 3 * d, n * d * 4, rows * wide * 2, rows * wide * 4,
                              rows * pp};
    size_t kb = vitq_i_qgemm_bytes_size(t, hd), vb = vitq_i_qgemm_bytes_size(hd, t);
    if (kb == SIZE_MAX || vb == SIZE_MAX || t > 65536) return 0;
    size_t qb = t < QB ? t : QB;
    size_t b[HEAD_PARTS] = {qb * t * 2, qb * t * 4, qb * t, qb * hd * 4, kb, vb};
    for (int i = 0; i < SHARED_PARTS; i++) shared[i] = align64(a[i]);
    for (int i = 0; i < HEAD_PARTS; i++) head[i] = align64(b[i]);
    return 1;
}

size_t vitq_i_intvit_scratch_bytes(const vitq_i_intvit *p, size_t n, int nthreads) {
    size_t shared[SHARED_PARTS], head[HEAD_PARTS], total = 0, per = 0;
    if (!layout(p, n, shared, head)) return SIZE_MAX;
    for (int i = 0; i < SHARED_PARTS; i++) total += shared[i];
    for (int i = 0; i < HEAD_PARTS; i++) per += head[i];
    size_t workers = (size_t)vitq_i_resolve_threads(nthreads), all;
    if (!vitq_i_mul_size(per, workers, &all) || total > SIZE_MAX - all) return SIZE_MAX;
    return total + all;
}

static bufs carve(const vitq_i_intvit *p, size_t n, uint8_t *base) {
    size_t shared[SHARED_PARTS], head[HEAD_PARTS], o = 0;
    layout(p, n, shared, head);
    bufs b;
    void **parts[SHARED_PARTS] = {(void **)&b.res, (void **)&b.bytes, (void **)&b.qkv, (void **)&b.acc,
                                  (void **)&b.x16, (void **)&b.y32, (void **)&b.pixels};
    for (int i = 0; i < SHARED_PARTS; i++) {
        *parts[i] = base + o;
        o += shared[i];
    }
    b.heads = base + o;
    b.head_bytes = 0;
    for (int i = 0; i < HEAD_PARTS; i++) b.head_bytes += head[i];
    return b;
}

static head_bufs carve_head(const vitq_i_intvit *p, const bufs *b, int worker) {
    size_t shared[SHARED_PARTS], head[HEAD_PARTS], o = 0;
    layout(p, 1, shared, head);
    uint8_t *base = b->heads + (size_t)worker * b->head_bytes;
    head_bufs h;
    void **parts[HEAD_PARTS] = {(void **)&h.s16, (void **)&h.probs, (void **)&h.pb, (void **)&h.pv, &h.kpack,
                                &h.vpack};
    for (int i = 0; i < HEAD_PARTS; i++) {
        *parts[i] = base + o;
        o += head[i];
    }
    return h;
}

static vitq_status requant(const vitq_i_iv_requant *r, const int32_t *x, size_t ldx, size_t rows, size_t cols,
                           void *out, size_t ldo) {
    return vitq_i_requant_rows(x, ldx, rows, cols, r->m, r->nm, &r->g, out, ldo);
}

static vitq_status linear(const vitq_i_iv_linear *l, const uint8_t *a, size_t lda, size_t rows, int32_t *c, size_t ldc,
                          int nthreads) {
    return vitq_i_qgemm_i32(a, lda, rows, l->a_zero, l->w, l->bias, c, ldc, nthreads);
}

/* ---- GEMMs whose int32 tiles go straight to the next step ---- */

/* A GEMM's output columns [begin, end) requantized by r into `out` (its column 0 = column begin; row
 * stride ldo elements of r's type). */
typedef struct rq_seg {
    size_t begin, end;
    const vitq_i_iv_requant *r;
    void *out;
    size_t ldo;
} rq_seg;

typedef struct rq_sink {
    rq_seg seg[3];
    int count;
} rq_sink;

static size_t type_bytes(vitq_i_requant_type t) { return t == VITQ_I_RQ_INT16 ? 2 : 1; }

static void requant_sink(void *ctx, size_t r0, size_t nrows, size_t c0, size_t ncols, const int32_t *x, size_t ldx) {
    const rq_sink *k = ctx;
    for (int i = 0; i < k->count; i++) {
        const rq_seg *s = &k->seg[i];
        size_t lo = c0 > s->begin ? c0 : s->begin, hi = c0 + ncols < s->end ? c0 + ncols : s->end;
        if (lo >= hi) continue;
        const vitq_i_iv_requant *r = s->r;
        size_t n = hi - lo, at = lo - s->begin;
        uint8_t *out = (uint8_t *)s->out + (r0 * s->ldo + at) * type_bytes(r->g.type);
        if (r->nm == 1) vitq_i_requant_block(x + (lo - c0), ldx, nrows, n, r->m, 1, &r->g, out, s->ldo);
        else vitq_i_requant_block(x + (lo - c0), ldx, nrows, n, r->m + at, n, &r->g, out, s->ldo);
    }
}

/* The linear layer l on `rows` rows of a, its output requantized by the segments of k (checked here,
 * once for the whole GEMM). */
static vitq_status linear_requant(const vitq_i_iv_linear *l, const uint8_t *a, size_t lda, size_t rows, rq_sink *k,
                                  int nthreads) {
    for (int i = 0; i < k->count; i++) {
        const rq_seg *s = &k->seg[i];
        vitq_status st = vitq_i_requant_check(s->r->m, s->r->nm, s->end - s->begin, &s->r->g);
        if (st) return st;
    }
    return vitq_i_qgemm_i32_sink(a, lda, rows, l->a_zero, l->w, l->bias, requant_sink, k, nthreads);
}

/* A GEMM's output added into residual rows: GEMM row r is residual row (r / count) * per + skip + r % count
 * (the patch embedding's rows skip the prefix tokens of every image; per = count, skip = 0 otherwise). */
typedef struct res_sink {
    const vitq_i_dyadic *m; /* [dim] */
    int32_t *res;
    size_t ld, count, per, skip;
} res_sink;

static void residual_sink(void *ctx, size_t r0, size_t nrows, size_t c0, size_t ncols, const int32_t *x, size_t ldx) {
    const res_sink *k = ctx;
    for (size_t i = 0; i < nrows;) { /* runs of rows that are consecutive in the stream */
        size_t r = r0 + i, in_image = k->count - r % k->count, run = nrows - i < in_image ? nrows - i : in_image;
        int32_t *res = k->res + (r / k->count * k->per + k->skip + r % k->count) * k->ld + c0;
        vitq_i_residual_add_i32_block(res, k->ld, x + i * ldx, ldx, run, ncols, k->m + c0, ncols, INT32_MIN, INT32_MAX);
        i += run;
    }
}

static vitq_status linear_residual(const vitq_i_iv_linear *l, const uint8_t *a, size_t lda, size_t rows, res_sink *k,
                                   int nthreads) {
    vitq_status st = vitq_i_residual_check(k->m, k->ld, k->ld);
    if (!st) st = vitq_i_qgemm_i32_sink(a, lda, rows, l->a_zero, l->w, l->bias, residual_sink, k, nthreads);
    return st;
}

/* fc1's tiles through an elementwise GELU (I-BERT's: no row statistic) into fc2's bytes: the GELU's int16
 * inputs and int32 outputs never leave L1. */
typedef struct gelu_sink {
    const vitq_i_iv_block *blk;
    uint8_t *out;
    size_t ld;
    int failed;
} gelu_sink;

static void gelu_sink_fn(void *ctx, size_t r0, size_t nrows, size_t c0, size_t ncols, const int32_t *x, size_t ldx) {
    gelu_sink *k = ctx;
    const vitq_i_iv_requant *in = &k->blk->to_gelu, *out = &k->blk->to_fc2;
    int16_t x16[VITQ_I_QGEMM_MR_MAX * VITQ_I_QGEMM_NR];
    int32_t y32[VITQ_I_QGEMM_MR_MAX * VITQ_I_QGEMM_NR];
    size_t n = nrows * ncols;
    vitq_i_requant_block(x, ldx, nrows, ncols, in->nm == 1 ? in->m : in->m + c0, in->nm == 1 ? 1 : ncols, &in->g, x16,
                         ncols);
    vitq_status st = vitq_i_ibert_gelu(&k->blk->gelu.p.ibert_gelu, x16, 1, (int64_t)n, y32);
    if (st) {
        VITQ_I_STORE_INT(&k->failed, (int)st);
        return;
    }
    vitq_i_requant_block(y32, ncols, nrows, ncols, out->nm == 1 ? out->m : out->m + c0, out->nm == 1 ? 1 : ncols,
                         &out->g, k->out + r0 * k->ld + c0, k->ld);
}

/* fc1 -> I-BERT GELU -> fc2's bytes in one pass (`rows` rows). */
static vitq_status fc1_gelu(const vitq_i_intvit *p, const vitq_i_iv_block *blk, const uint8_t *a, size_t rows,
                            uint8_t *out, int nthreads) {
    size_t d = (size_t)p->dim, hid = (size_t)p->hidden;
    vitq_status st = vitq_i_requant_check(blk->to_gelu.m, blk->to_gelu.nm, hid, &blk->to_gelu.g);
    if (!st) st = vitq_i_requant_check(blk->to_fc2.m, blk->to_fc2.nm, hid, &blk->to_fc2.g);
    if (!st) st = vitq_i_ibert_gelu_check(&blk->gelu.p.ibert_gelu);
    if (!st && blk->to_gelu.g.type != VITQ_I_RQ_INT16)
        st = vitq_i_fail(VITQ_ERR_BAD_STATE, "integer-only model: the GELU's input grid is not int16");
    gelu_sink k = {blk, out, hid, 0};
    if (!st)
        st = vitq_i_qgemm_i32_sink(a, d, rows, blk->fc1.a_zero, blk->fc1.w, blk->fc1.bias, gelu_sink_fn, &k, nthreads);
    int failed = VITQ_I_LOAD_INT(&k.failed);
    if (!st && failed) st = vitq_i_fail((vitq_status)failed, "integer-only model: the GELU refused its inputs");
    return st;
}

/* A LayerNorm, LayerNorm-PTF, softmax or GELU kernel on rows of n int16 values. */
static vitq_status run_op(const vitq_i_iv_op *op, const int16_t *x, size_t rows, size_t n, void *out) {
    switch (op->kind) {
    case VITQ_I_IV_LN_INT: return vitq_i_int_layernorm(&op->p.ln, x, (int64_t)rows, out);
    case VITQ_I_IV_LN_PTF: return vitq_i_ptf_layernorm(&op->p.ptf, x, (int64_t)rows, out);
    case VITQ_I_IV_SM_IBERT: return vitq_i_ibert_softmax(&op->p.ibert_softmax, x, (int64_t)rows, (int64_t)n, out);
    case VITQ_I_IV_SM_SHIFT: return vitq_i_shiftmax(&op->p.shiftmax, x, (int64_t)rows, (int64_t)n, out);
    case VITQ_I_IV_SM_LIS: return vitq_i_lis_softmax(&op->p.lis, x, (int64_t)rows, (int64_t)n, out);
    case VITQ_I_IV_GELU_IBERT: return vitq_i_ibert_gelu(&op->p.ibert_gelu, x, (int64_t)rows, (int64_t)n, out);
    case VITQ_I_IV_GELU_SHIFT: return vitq_i_shiftgelu(&op->p.shiftgelu, x, (int64_t)rows, (int64_t)n, out);
    default: return vitq_i_fail(VITQ_ERR_BAD_STATE, "integer-only model: operator kind %d", (int)op->kind);
    }
}

/* residual rows -> LayerNorm -> bytes of the next layer (ld `ldo`), with x16 / y32 for `rows` rows. */
static vitq_status norm(const vitq_i_intvit *p, const vitq_i_iv_norm *nm, const int32_t *res, size_t ldr, size_t rows,
                        int16_t *x16, int32_t *y32, uint8_t *out, size_t ldo) {
    size_t d = (size_t)p->dim;
    vitq_status st = requant(&nm->in, res, ldr, rows, d, x16, d);
    if (!st && nm->op.kind == VITQ_I_IV_LN_PTF) /* PTF takes code - zero */
        for (size_t i = 0; i < rows * d; i++) x16[i] = (int16_t)(x16[i] - nm->in.g.zero);
    if (!st) st = run_op(&nm->op, x16, rows, d, y32);
    if (!st) st = requant(&nm->out, y32, d, rows, d, out, ldo);
    return st;
}

/* Row-parallel stages: every row's result depends on that row only, so chunks of ROW_CHUNK rows run
 * as independent tasks (the same results for any thread count). */
#define ROW_CHUNK 32

enum { STAGE_NORM, STAGE_GELU };

typedef struct rows_job {
    const vitq_i_intvit *p;
    int stage;
    const vitq_i_iv_block *blk;  /* GELU */
    const vitq_i_iv_norm *nm;    /* NORM */
    const bufs *b;
    size_t rows;
    int failed;
} rows_job;

/* The GELU's int16 inputs (fc1's requantized output) -> fc2's bytes, for `rows` rows at row r0. */
static vitq_status gelu_rows(const vitq_i_intvit *p, const vitq_i_iv_block *blk, const bufs *b, size_t r0, size_t rows) {
    size_t hid = (size_t)p->hidden;
    int16_t *x16 = b->x16 + r0 * hid;
    int32_t *y32 = b->y32 + r0 * hid;
    vitq_status st = run_op(&blk->gelu, x16, rows, hid, y32);
    if (!st) st = requant(&blk->to_fc2, y32, hid, rows, hid, b->bytes + r0 * hid, hid);
    return st;
}

static void rows_task(void *ctx, int64_t item, int worker) {
    (void)worker;
    rows_job *j = ctx;
    const bufs *b = j->b;
    size_t r0 = (size_t)item * ROW_CHUNK, count = j->rows - r0 < ROW_CHUNK ? j->rows - r0 : ROW_CHUNK;
    size_t d = (size_t)j->p->dim, wide = (size_t)(j->p->dim > j->p->hidden ? j->p->dim : j->p->hidden);
    vitq_status st;
    switch (j->stage) {
    case STAGE_GELU: st = gelu_rows(j->p, j->blk, b, r0, count); break;
    default:
        st = norm(j->p, j->nm, b->res + r0 * d, d, count, b->x16 + r0 * wide, b->y32 + r0 * wide, b->bytes + r0 * d, d);
    }
    if (st) VITQ_I_STORE_INT(&j->failed, (int)st);
}

static vitq_status run_rows(rows_job *j, int nthreads, const char *what) {
    vitq_i_parallel_for(nthreads, (int64_t)((j->rows + ROW_CHUNK - 1) / ROW_CHUNK), rows_task, j);
    int failed = VITQ_I_LOAD_INT(&j->failed);
    return failed ? vitq_i_fail((vitq_status)failed, "integer-only model: the %s refused its inputs", what) : VITQ_OK;
}

/* floor((a + 2^(s-1)) / 2^s) for s in [0, 30] without shifting a negative value. */
static int32_t round_shr32(int64_t a, int s) {
    if (s == 0) return (int32_t)a;
    int64_t v = a + ((int64_t)1 << (s - 1));
    return (int32_t)(v >= 0 ? v >> s : -((-v - 1) >> s) - 1);
}

/* FQ-ViT's P.V by shifts on V codes of any zero point: out[r][d] = sum over the tokens j whose code is
 * not the zero code of round_shr((v[j][d] - zero) 2^frac, code[r][j]) (kernels/intnl.h's rule, with
 * int16 values so that asymmetric V grids fit). */
static void lis_pv(const uint8_t *codes, size_t rows, size_t t, int32_t bits, const uint8_t *v, size_t ldv,
                   int32_t v_zero, int32_t v_offset, size_t hd, int32_t frac, int32_t *out) {
    int32_t zero_code = (1 << bits) - 1;
    for (size_t r = 0; r < rows; r++) {
        int32_t *o = out + r * hd;
        for (size_t k = 0; k < hd; k++) o[k] = 0;
        for (size_t j = 0; j < t; j++) {
            int32_t c = codes[r * t + j];
            if (c >= zero_code) continue;
            const uint8_t *vj = v + j * ldv;
            for (size_t k = 0; k < hd; k++) {
                int64_t x = (int64_t)((int32_t)vj[k] - v_offset - v_zero) * ((int64_t)1 << frac);
                o[k] += round_shr32(x, c);
            }
        }
    }
}

/* One (image, head) of the attention: Q.K^T, the softmax, P.V into proj's input bytes, QB query rows at
 * a time (every row's result depends on that row only). The GEMMs requantize their tiles on the way
 * out: the scores into the softmax's int16 inputs, P.V into proj's bytes. */
static vitq_status head(const vitq_i_intvit *p, const vitq_i_iv_block *blk, const bufs *b, size_t s, size_t h,
                        const head_bufs *w) {
    size_t t = (size_t)p->tokens, d = (size_t)p->dim, hd = d / (size_t)p->heads, ld = 3 * d;
    const uint8_t *base = b->qkv + s * t * ld + h * hd;
    uint8_t *out = b->bytes + s * t * d + h * hd;
    int lis = blk->softmax.kind == VITQ_I_IV_SM_LIS;
    vitq_i_qpacked kp, vp;
    vitq_i_iv_requant to_s16 = {(vitq_i_dyadic *)&blk->to_scores, 1, {VITQ_I_RQ_INT16, 0, -32767, 32767}};
    vitq_status st = vitq_i_requant_check(to_s16.m, 1, t, &to_s16.g);
    if (!st) st = vitq_i_requant_check(blk->to_proj.m, blk->to_proj.nm, hd, &blk->to_proj.g);
    if (!st) st = vitq_i_qgemm_pack_bytes(base + d, ld, 1, t, hd, blk->k_grid, w->kpack, &kp);
    if (!st && !lis) st = vitq_i_qgemm_pack_bytes(base + 2 * d, 1, ld, hd, t, blk->v_grid, w->vpack, &vp);
    int forced = VITQ_I_LOAD_INT(&forced_query_rows);
    size_t qb = forced ? (size_t)forced : QB;
    for (size_t q0 = 0; !st && q0 < t; q0 += qb) {
        size_t nq = t - q0 < qb ? t - q0 : qb;
        rq_sink scores = {{{0, t, &to_s16, w->s16, t}}, 1};
        st = vitq_i_qgemm_i32_sink(base + q0 * ld, ld, nq, blk->q_zero, &kp, NULL, requant_sink, &scores, 1);
        if (!st && lis) {
            st = run_op(&blk->softmax, w->s16, nq, t, w->pb);
            int32_t v_offset = blk->v_grid->qmin < 0 ? 128 : 0;
            if (!st) {
                lis_pv(w->pb, nq, t, blk->softmax.p.lis.bits, base + 2 * d, ld, blk->v_zero, v_offset, hd,
                       blk->lis_frac, w->pv);
                st = requant(&blk->to_proj, w->pv, hd, nq, hd, out + q0 * d, d);
            }
        } else if (!st) {
            st = run_op(&blk->softmax, w->s16, nq, t, w->probs);
            if (!st) st = requant(&blk->to_p, w->probs, t, nq, t, w->pb, t);
            rq_sink pv = {{{0, hd, &blk->to_proj, out + q0 * d, d}}, 1};
            if (!st) st = vitq_i_qgemm_i32_sink(w->pb, t, nq, blk->p_zero, &vp, NULL, requant_sink, &pv, 1);
        }
    }
    return st;
}

typedef struct head_job {
    const vitq_i_intvit *p;
    const vitq_i_iv_block *blk;
    const bufs *b;
    int failed;
} head_job;

static void head_task(void *ctx, int64_t item, int worker) {
    head_job *j = ctx;
    size_t heads = (size_t)j->p->heads;
    head_bufs w = carve_head(j->p, j->b, worker);
    vitq_status st = head(j->p, j->blk, j->b, (size_t)item / heads, (size_t)item % heads, &w);
    if (st) VITQ_I_STORE_INT(&j->failed, (int)st);
}

static vitq_status attention(const vitq_i_intvit *p, const vitq_i_iv_block *blk, size_t n, const bufs *b, int nt) {
    head_job j = {p, blk, b, 0};
    vitq_i_parallel_for(nt, (int64_t)(n * (size_t)p->heads), head_task, &j);
    int failed = VITQ_I_LOAD_INT(&j.failed);
    return failed ? vitq_i_fail((vitq_status)failed, "integer-only model: an attention head's kernels refused its inputs")
                  : VITQ_OK;
}

static vitq_status block(const vitq_i_intvit *p, const vitq_i_iv_block *blk, size_t n, const bufs *b, int nt) {
    size_t rows = n * (size_t)p->tokens, d = (size_t)p->dim, hid = (size_t)p->hidden;
    rows_job norm1 = {p, STAGE_NORM, NULL, &blk->norm1, b, rows, 0};
    rows_job norm2 = {p, STAGE_NORM, NULL, &blk->norm2, b, rows, 0};
    rows_job gelu = {p, STAGE_GELU, blk, NULL, b, rows, 0};
    rq_sink qkv = {{{0, d, &blk->to_q, b->qkv, 3 * d},
                    {d, 2 * d, &blk->to_k, b->qkv + d, 3 * d},
                    {2 * d, 3 * d, &blk->to_v, b->qkv + 2 * d, 3 * d}},
                   3};
    rq_sink fc1 = {{{0, hid, &blk->to_gelu, b->x16, hid}}, 1};
    res_sink proj_res = {blk->proj_res, b->res, d, rows, rows, 0}, fc2_res = {blk->fc2_res, b->res, d, rows, rows, 0};
    vitq_status st = run_rows(&norm1, nt, "LayerNorm");
    if (!st) st = linear_requant(&blk->qkv, b->bytes, d, rows, &qkv, nt);
    if (!st) st = attention(p, blk, n, b, nt);
    if (!st) st = linear_residual(&blk->proj, b->bytes, d, rows, &proj_res, nt);
    if (!st) st = run_rows(&norm2, nt, "LayerNorm");
    /* fc2's input bytes: beside fc1's input when fc1's tiles write them (x16's space, unused then) */
    uint8_t *fc2_in = b->bytes;
    if (!st && blk->gelu.kind == VITQ_I_IV_GELU_IBERT) {
        fc2_in = (uint8_t *)b->x16;
        st = fc1_gelu(p, blk, b->bytes, rows, fc2_in, nt);
    } else if (!st) {
        st = linear_requant(&blk->fc1, b->bytes, d, rows, &fc1, nt);
        if (!st) st = run_rows(&gelu, nt, "GELU");
    }
    if (!st) st = linear_residual(&blk->fc2, fc2_in, hid, rows, &fc2_res, nt);
    return st;
}

/* The residual stream of n images: the constants, then each colour channel's patch GEMM added. */
static vitq_status embed(const vitq_i_intvit *p, const uint8_t *pixels, size_t n, const bufs *b, int nt) {
    size_t d = (size_t)p->dim, t = (size_t)p->tokens, pre = (size_t)p->prefix, g = (size_t)p->grid;
    size_t ps = (size_t)p->patch, s = (size_t)p->image_size, count = t - pre, pp = ps * ps;
    for (size_t i = 0; i < n; i++) memcpy(b->res + i * t * d, p->embed_const, t * d * sizeof(int32_t));
    vitq_status st = VITQ_OK;
    for (int32_t c = 0; !st && c < p->channels; c++) {
        for (size_t i = 0; i < n; i++) /* the channel's patches, row by row of the image */
            for (size_t gy = 0; gy < g; gy++)
                for (size_t gx = 0; gx < g; gx++) {
                    uint8_t *dst = b->pixels + (i * count + gy * g + gx) * pp;
                    const uint8_t *src = pixels + ((i * (size_t)p->channels + (size_t)c) * s + gy * ps) * s + gx * ps;
                    for (size_t ky = 0; ky < ps; ky++) memcpy(dst + ky * ps, src + ky * s, ps);
                }
        res_sink add = {p->patch_res[c], b->res, d, count, t, pre};
        vitq_i_iv_linear patch = {&p->patch_w[c], 0, NULL};
        st = linear_residual(&patch, b->pixels, pp, n * count, &add, nt);
    }
    return st;
}

vitq_status vitq_i_intvit_run(const vitq_i_intvit *p, const uint8_t *pixels, size_t n, int32_t *logits,
                              int32_t *logits_dist, void *scratch, int nthreads) {
    if (!p || !pixels || !logits || !scratch || (p->head_dist.w && !logits_dist))
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "integer-only model: NULL argument");
    if (n == 0) return VITQ_OK;
    bufs b = carve(p, n, scratch);
    nthreads = vitq_i_resolve_threads(nthreads);
    vitq_status st = embed(p, pixels, n, &b, nthreads);
    for (int32_t i = 0; !st && i < p->depth; i++) st = block(p, &p->blocks[i], n, &b, nthreads);
    /* the final norm and the heads read the prefix tokens only: token k of every image, in turn */
    size_t d = (size_t)p->dim, t = (size_t)p->tokens, k = (size_t)p->classes;
    for (int32_t tok = 0; !st && tok < p->prefix && tok < 2; tok++) {
        const vitq_i_iv_linear *head = tok == 0 ? &p->head : &p->head_dist;
        if (!head->w) break;
        int32_t *rows = b.acc; /* [n][d] gathered residual rows */
        for (size_t i = 0; i < n; i++) memcpy(rows + i * d, b.res + (i * t + (size_t)tok) * d, d * sizeof(int32_t));
        st = norm(p, tok == 0 ? &p->norm : &p->norm_dist, rows, d, n, b.x16, b.y32, b.bytes, d);
        if (!st) st = linear(head, b.bytes, d, n, tok == 0 ? logits : logits_dist, k, nthreads);
    }
    return st;
}
