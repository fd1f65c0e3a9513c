/* Integer kernels of quantized linear layers (see qlinear.h). */
#include <math.h>
#include <string.h>

#include "kernels/cpu.h"
#include "kernels/parallel.h"
#include "kernels/qlinear.h"

vitq_status vitq_i_scratch_reserve(vitq_i_scratch *s, size_t need) {
    if (s->bytes >= need) return VITQ_OK; /* grows to the largest need of the pass, then stays */
    vitq_i_free(&s->alloc, s->data);
    s->data = vitq_i_alloc(&s->alloc, need);
    s->bytes = s->data ? need : 0;
    return s->data ? VITQ_OK : vitq_i_oom("integer activations", need);
}

void vitq_i_scratch_release(vitq_i_scratch *s) {
    vitq_i_free(&s->alloc, s->data);
    s->data = NULL;
    s->bytes = 0;
}

vitq_status vitq_i_qlinear_create(const vitq_allocator *a, const vitq_i_qact *act, vitq_i_qpacked *weight,
                                  vitq_i_qlinear **out) {
    *out = NULL;
    vitq_status st = vitq_i_qact_check(act);
    if (st) return st;
    vitq_i_qlinear *f = vitq_i_alloc(a, sizeof *f);
    if (!f) return vitq_i_oom("integer layer", sizeof *f);
    f->act = *act;
    f->act_zero = act->zero + vitq_i_qact_offset(act);
    f->weight = *weight;
    memset(weight, 0, sizeof *weight);
    *out = f;
    return VITQ_OK;
}

void vitq_i_qlinear_free(const vitq_allocator *a, vitq_i_qlinear *f) {
    if (!f) return;
    vitq_i_qpacked_free(a, &f->weight);
    vitq_i_free(a, f);
}

vitq_status vitq_i_qlinear_run(const vitq_i_qlinear *f, const float *bias, const float *in, size_t lda, size_t rows,
                               float *out, size_t ldc, vitq_i_epilogue e, int nthreads, vitq_i_scratch *s) {
    size_t k = f->weight.k, need;
    if (!vitq_i_mul_size(rows, k, &need)) return vitq_i_oom("integer activations", SIZE_MAX);
    vitq_status st = vitq_i_scratch_reserve(s, need);
    if (st) return st;
    uint8_t *codes = s->data;
    vitq_i_quantize_u8(in, lda, rows, k, &f->act, codes, k, nthreads);
    return vitq_i_qgemm(codes, k, rows, f->act.scale, f->act_zero, &f->weight, bias, out, ldc, e, nthreads);
}

vitq_status vitq_i_qlinear_mlp(const vitq_i_qlinear *fc1, const float *bias1, const vitq_i_qlinear *fc2,
                               const float *bias2, const float *in, size_t rows, float *out, vitq_i_epilogue gelu,
                               int nthreads, vitq_i_scratch *s) {
    size_t d = fc1->weight.k, hidden = fc1->weight.n, a, b, need;
    if (!vitq_i_mul_size(rows, d, &a) || !vitq_i_mul_size(rows, hidden, &b) || !vitq_i_add_size(a, b, &need))
        return vitq_i_oom("integer activations", SIZE_MAX);
    vitq_status st = vitq_i_scratch_reserve(s, need);
    if (st) return st;
    uint8_t *codes = s->data, *hid = codes + a;
    vitq_i_quantize_u8(in, d, rows, d, &fc1->act, codes, d, nthreads);
    st = vitq_i_qgemm_requant(codes, d, rows, fc1->act.scale, fc1->act_zero, &fc1->weight, bias1, gelu, &fc2->act, hid,
                              hidden, nthreads);
    if (st) return st;
    return vitq_i_qgemm(hid, hidden, rows, fc2->act.scale, fc2->act_zero, &fc2->weight, bias2, out, fc2->weight.n,
                        VITQ_I_EPI_RESIDUAL, nthreads);
}

vitq_status vitq_i_qlinear_weight_rows(const vitq_allocator *a, const vitq_i_qlinear *f, float *dst) {
    const vitq_i_qpacked *w = &f->weight;
    size_t count;
    if (!vitq_i_mul_size(w->n, w->k, &count)) return vitq_i_oom("integer weights", SIZE_MAX);
    int32_t *codes = vitq_i_alloc_array(a, count, sizeof(int32_t));
    if (!codes) return vitq_i_oom("integer weights", count * sizeof(int32_t));
    vitq_i_qgemm_unpack_codes(w, codes);
    for (size_t j = 0; j < w->n; j++) {
        float zero = (float)vitq_i_qgemm_zero_point(w, j), scale = w->scale[j];
        for (size_t k = 0; k < w->k; k++) dst[j * w->k + k] = ((float)codes[j * w->k + k] - zero) * scale;
    }
    vitq_i_free(a, codes);
    return VITQ_OK;
}

/* ---- integer attention ---- */

/* Per-thread scratch of one (sequence, head) task, each part 64-byte aligned. */
typedef struct head_scratch {
    void *k, *v;    /* K and V^T packed (vitq_i_qgemm_bytes_size) */
    float *scores;  /* [tokens][tokens] */
    uint8_t *probs; /* [tokens][tokens] codes */
} head_scratch;

static size_t align64(size_t v) { return (v + 63) / 64 * 64; }

/* Bytes of one task's scratch (SIZE_MAX when a part overflows or k is out of the GEMM's range). */
static size_t head_bytes(size_t tokens, size_t hd, size_t sizes[4]) {
    size_t tt;
    if (!vitq_i_mul_size(tokens, tokens, &tt) || tt > SIZE_MAX / 8) return SIZE_MAX;
    sizes[0] = vitq_i_qgemm_bytes_size(tokens, hd);
    sizes[1] = vitq_i_qgemm_bytes_size(hd, tokens);
    if (sizes[0] == SIZE_MAX || sizes[1] == SIZE_MAX) return SIZE_MAX;
    sizes[0] = align64(sizes[0]), sizes[1] = align64(sizes[1]);
    sizes[2] = align64(tt * sizeof(float)), sizes[3] = align64(tt);
    return sizes[0] + sizes[1] + sizes[2] + sizes[3];
}

static head_scratch carve(uint8_t *base, const size_t sizes[4]) {
    head_scratch s;
    s.k = base;
    s.v = base + sizes[0];
    s.scores = (float *)(void *)(base + sizes[0] + sizes[1]);
    s.probs = base + sizes[0] + sizes[1] + sizes[2];
    return s;
}

typedef struct attn_job {
    const vitq_i_qattention *f;
    const uint8_t *codes; /* [seqs * tokens][3 dim]: q, k, v codes */
    size_t tokens, dim, heads, hd;
    const vitq_i_attn_bias *bias;
    float *out;
    float q_scale;      /* scale_q / sqrt(head_dim): the scale of the simulation's scaled queries */
    uint8_t *scratch;   /* per worker: `per` bytes cut as `sizes` */
    size_t per, sizes[4];
    int failed;         /* a head's status (VITQ_I_STORE_INT); never set: grids and sizes are checked first */
} attn_job;

static vitq_status head(const attn_job *j, size_t seq, size_t h, const head_scratch *s) {
    const vitq_i_qattention *f = j->f;
    size_t t = j->tokens, ld = 3 * j->dim, tt = t * t;
    const uint8_t *base = j->codes + seq * t * ld + h * j->hd;
    vitq_i_qpacked kp, vp;
    vitq_status st = vitq_i_qgemm_pack_bytes(base + j->dim, ld, 1, t, j->hd, &f->k, s->k, &kp);
    if (!st) st = vitq_i_qgemm_pack_bytes(base + 2 * j->dim, 1, ld, j->hd, t, &f->v, s->v, &vp);
    if (!st) st = vitq_i_qgemm(base, ld, t, j->q_scale, f->q.zero + vitq_i_qact_offset(&f->q), &kp, NULL, s->scores,
                               t, VITQ_I_EPI_NONE, 1);
    if (st) return st;
    const float *hb = j->bias && j->bias->head_bias ? j->bias->head_bias + h * tt : NULL;
    const float *mk = j->bias && j->bias->mask ? j->bias->mask + (seq % j->bias->mask_period) * tt : NULL;
    for (size_t r = 0; r < t; r++) {
        float *row = s->scores + r * t;
        if (hb)
            for (size_t c = 0; c < t; c++) row[c] += hb[r * t + c];
        if (mk)
            for (size_t c = 0; c < t; c++) row[c] += mk[r * t + c];
        vitq_i_softmax(row, t);
    }
    vitq_i_quantize_u8(s->scores, t, t, t, &f->p, s->probs, t, 1);
    return vitq_i_qgemm(s->probs, t, t, f->p.scale, f->p.zero + vitq_i_qact_offset(&f->p), &vp, NULL,
                        j->out + seq * t * j->dim + h * j->hd, j->dim, VITQ_I_EPI_NONE, 1);
}

/* Task (sequence, head) of the parallel loop. head() cannot fail here: its kernels refuse only the
 * grids and sizes that vitq_i_qattention_fits and vitq_i_qattention_run check before the loop. Were
 * it to fail all the same, the status is kept for the caller to report from its own thread (a task
 * may run on a pool thread, where an error message would be lost). */
static void head_task(void *ctx, int64_t task, int worker) {
    attn_job *j = ctx;
    head_scratch hs = carve(j->scratch + (size_t)worker * j->per, j->sizes);
    vitq_status err = head(j, (size_t)task / j->heads, (size_t)task % j->heads, &hs);
    if (err) VITQ_I_STORE_INT(&j->failed, (int)err);
}

int vitq_i_qattention_fits(size_t tokens, size_t dim, size_t heads) {
    size_t sizes[4], hd = heads ? dim / heads : 0;
    /* tokens and head_dim are the k of P.V and Q.K^T: at most 33025 for exact int32 sums (igemm.h) */
    return heads && hd * heads == dim && tokens <= 33025 && hd <= 33025 && head_bytes(tokens, hd, sizes) != SIZE_MAX;
}

vitq_status vitq_i_qattention_run(const vitq_i_qattention *f, const float *qkv, size_t seqs, size_t tokens, size_t dim,
                                  size_t heads, const vitq_i_attn_bias *bias, float *out, int nthreads,
                                  vitq_i_scratch *s) {
    size_t sizes[4] = {0, 0, 0, 0}, hd = heads ? dim / heads : 0;
    if (!vitq_i_qattention_fits(tokens, dim, heads))
        return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "integer attention: %zu tokens of %zu heads in %zu channels", tokens,
                           heads, dim);
    const vitq_i_qact *grids[4] = {&f->q, &f->k, &f->v, &f->p};
    for (int g = 0; g < 4; g++) {
        vitq_status st = vitq_i_qact_check(grids[g]);
        if (st) return st;
    }
    size_t per = head_bytes(tokens, hd, sizes);
    int threads = vitq_i_resolve_threads(nthreads);
    size_t rows = seqs * tokens, codes_bytes, need;
    if (!vitq_i_mul_size(rows, 3 * dim, &codes_bytes) || !vitq_i_mul_size(per, (size_t)threads, &need) ||
        !vitq_i_add_size(need, align64(codes_bytes), &need))
        return vitq_i_oom("integer attention", SIZE_MAX);
    vitq_status st = vitq_i_scratch_reserve(s, need + 64);
    if (st) return st;
    uint8_t *codes = (uint8_t *)(((uintptr_t)s->data + 63) & ~(uintptr_t)63), *heads_base = codes + align64(codes_bytes);
    for (int part = 0; part < 3; part++)
        vitq_i_quantize_u8(qkv + (size_t)part * dim, 3 * dim, rows, dim, grids[part], codes + (size_t)part * dim,
                           3 * dim, threads);
    attn_job j = {f, codes, tokens, dim, heads, hd, bias, out, f->q.scale * (1.0f / sqrtf((float)hd)), heads_base,
                  per, {sizes[0], sizes[1], sizes[2], sizes[3]}, 0};
    vitq_i_parallel_for(threads, (int64_t)(seqs * heads), head_task, &j);
    st = (vitq_status)VITQ_I_LOAD_INT(&j.failed);
    return st ? vitq_i_fail(st, "integer attention: a head's kernels refused %zu tokens, head_dim %zu", tokens, hd)
              : VITQ_OK;
}
