/* Integer attention of a quantized model (see integer.h): when the queries, keys, values and
 * probabilities of a block are uniform grids the kernels take, and the scores are not quantized, the
 * two attention products run on the integer GEMM instead of float GEMMs around fake quantization:
 *
 *   codes of q, k and v (vitq_i_quantize_u8: the simulation's codes bit for bit),
 *   per (sequence, head): K and V^T packed as the GEMM's right-hand side (vitq_i_qgemm_pack_bytes),
 *   scores = (q codes . K^T) * (scale_q / sqrt(head_dim) * scale_k) exactly summed, + bias, + mask,
 *   the float softmax of the simulation, probabilities to codes, out = (P codes . V) * scale_p * scale_v.
 *
 * As for the linear layers, only the sums differ from the simulation (exact here, float there), and
 * the T x T probabilities never exist in float for more than one head per thread. */
#include <math.h>
#include <string.h>

#include "kernels/isa.h"
#include "kernels/parallel.h"
#include "quant/integer.h"

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
    const vitq_i_int_attention *f;
    const uint8_t *codes; /* [seqs * tokens][3 dim]: q, k, v codes */
    size_t tokens, dim, heads, hd;
    const vitq_i_attn_bias *bias;
    float *out;
    float q_scale; /* scale_q / sqrt(head_dim): the scale of the simulation's scaled queries */
} attn_job;

static vitq_status head(const attn_job *j, size_t seq, size_t h, const head_scratch *s) {
    const vitq_i_int_attention *f = j->f;
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
    const vitq_i_isa_kernels *isa = vitq_i_kernels_active();
    for (size_t r = 0; r < t; r++) {
        float *row = s->scores + r * t;
        if (hb)
            for (size_t c = 0; c < t; c++) row[c] += hb[r * t + c];
        if (mk)
            for (size_t c = 0; c < t; c++) row[c] += mk[r * t + c];
        isa->softmax(row, t);
    }
    vitq_i_quantize_u8(s->scores, t, t, t, &f->p, s->probs, t, 1);
    return vitq_i_qgemm(s->probs, t, t, f->p.scale, f->p.zero + vitq_i_qact_offset(&f->p), &vp, NULL,
                        j->out + seq * t * j->dim + h * j->hd, j->dim, VITQ_I_EPI_NONE, 1);
}

int vitq_i_integer_attention(vitq_i_taps *t, const vitq_i_block_sites *sites, const float *qkv, size_t seqs,
                             size_t tokens, size_t dim, size_t heads, const vitq_i_attn_bias *bias, float *out,
                             int nthreads) {
    const vitq_i_qmodel *q = t->ctx;
    const vitq_i_int_attention *f = sites->q >= 0 && q->attns ? q->attns[sites->q] : NULL;
    size_t sizes[4] = {0, 0, 0, 0}, hd = heads ? dim / heads : 0, per = head_bytes(tokens, hd, sizes);
    if (!f || sites->scores >= 0 || hd * heads != dim || per == SIZE_MAX || tokens > 33025) {
        if (!t->attention_all) return 0; /* the simulation's path */
        t->status = vitq_i_fail(VITQ_ERR_UNSUPPORTED, "integer attention: %zu tokens of %zu heads in %zu channels",
                                tokens, heads, dim);
        return 1; /* the forward pass has no buffer for the simulation's path */
    }
    int threads = vitq_i_resolve_threads(nthreads);
    size_t rows = seqs * tokens, codes_bytes, need;
    if (!vitq_i_mul_size(rows, 3 * dim, &codes_bytes) || !vitq_i_mul_size(per, (size_t)threads, &need) ||
        !vitq_i_add_size(need, align64(codes_bytes), &need)) {
        t->status = vitq_i_oom("integer attention", SIZE_MAX);
        return 1;
    }
    if ((t->status = vitq_i_integer_reserve(&q->alloc, need + 64, &t->scratch, &t->scratch_bytes))) return 1;
    uint8_t *codes = (uint8_t *)(((uintptr_t)t->scratch + 63) & ~(uintptr_t)63), *heads_base = codes + align64(codes_bytes);
    const vitq_i_qact *grids[3] = {&f->q, &f->k, &f->v};
    for (int part = 0; part < 3; part++)
        vitq_i_quantize_u8(qkv + (size_t)part * dim, 3 * dim, rows, dim, grids[part], codes + (size_t)part * dim,
                           3 * dim, threads);
    attn_job j = {f, codes, tokens, dim, heads, hd, bias, out, f->q.scale * (1.0f / sqrtf((float)hd))};
    long tasks = (long)(seqs * heads);
    vitq_status first = VITQ_OK;
    VITQ_I_PARALLEL_FOR(threads)
    for (long task = 0; task < tasks; task++) {
        head_scratch s = carve(heads_base + (size_t)vitq_i_thread_id() * per, sizes);
        vitq_status st = head(&j, (size_t)task / heads, (size_t)task % heads, &s);
        if (st) {
#ifdef _OPENMP
#pragma omp critical /* unnamed: a named one would export a non-vitq global */
#endif
            if (!first) first = st;
        }
    }
    t->status = first;
    return 1;
}
