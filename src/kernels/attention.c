/* Multi-head scaled dot-product attention, one (sequence, head) pair per task. Only one row of
 * scores exists at a time: the T x T matrix is never materialised. K is transposed into scratch so
 * that a row of scores is a vectorisable sweep over tokens. Swin's relative position bias and shifted
 * window mask are added to the scores in that order, each rounded, as timm and torchvision do.
 *
 * The staged variant (vitq_i_attention_staged) materialises scores and probabilities so that
 * simulated quantization can reach them; it runs the same per-row arithmetic, so without changes
 * between its stages it gives the fused kernel's results bit for bit. */
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/parallel.h"

size_t vitq_i_attention_scratch_floats(size_t tokens, size_t head_dim) {
    return 2 * tokens * head_dim + tokens + head_dim;
}

/* K of head h transposed into kt [head_dim][tokens] and V copied into v [tokens][head_dim]. */
static void gather_kv(const float *qkv, size_t tokens, size_t dim, size_t head_dim, size_t h, float *kt, float *v) {
    size_t ld = 3 * dim;
    for (size_t t = 0; t < tokens; t++) {
        const float *krow = qkv + t * ld + dim + h * head_dim;
        const float *vrow = qkv + t * ld + 2 * dim + h * head_dim;
        for (size_t d = 0; d < head_dim; d++) kt[d * tokens + t] = krow[d];
        memcpy(v + t * head_dim, vrow, head_dim * sizeof(float));
    }
}

/* scores[t] = (q * scale) . k_t + bias_row[t] + mask_row[t] (either row may be NULL). */
static void score_row(const float *q, const float *kt, size_t tokens, size_t head_dim, const float *bias_row,
                      const float *mask_row, float *scores) {
    const float scale = 1.0f / sqrtf((float)head_dim);
    for (size_t t = 0; t < tokens; t++) scores[t] = 0.0f;
    for (size_t d = 0; d < head_dim; d++) {
        float qd = q[d] * scale;
        const float *kd = kt + d * tokens;
        for (size_t t = 0; t < tokens; t++) scores[t] += qd * kd[t];
    }
    if (bias_row)
        for (size_t t = 0; t < tokens; t++) scores[t] += bias_row[t];
    if (mask_row)
        for (size_t t = 0; t < tokens; t++) scores[t] += mask_row[t];
}

/* out[0..head_dim) = sum_t p[t] v[t]. */
static void weighted_sum(const float *p, const float *v, size_t tokens, size_t head_dim, float *acc, float *out) {
    for (size_t d = 0; d < head_dim; d++) acc[d] = 0.0f;
    for (size_t t = 0; t < tokens; t++) {
        float pt = p[t];
        const float *vt = v + t * head_dim;
        for (size_t d = 0; d < head_dim; d++) acc[d] += pt * vt[d];
    }
    memcpy(out, acc, head_dim * sizeof(float));
}

static void attend_one(const float *qkv, size_t tokens, size_t dim, size_t head_dim, size_t h,
                       const float *bias, const float *mask, float *out, float *scratch) {
    float *kt = scratch;                   /* [head_dim][tokens] */
    float *v = kt + head_dim * tokens;     /* [tokens][head_dim] */
    float *scores = v + tokens * head_dim; /* [tokens] */
    float *acc = scores + tokens;          /* [head_dim] */
    gather_kv(qkv, tokens, dim, head_dim, h, kt, v);
    for (size_t i = 0; i < tokens; i++) {
        score_row(qkv + i * 3 * dim + h * head_dim, kt, tokens, head_dim, bias ? bias + i * tokens : NULL,
                  mask ? mask + i * tokens : NULL, scores);
        vitq_i_softmax(scores, tokens);
        weighted_sum(scores, v, tokens, head_dim, acc, out + i * dim + h * head_dim);
    }
}

/* The head bias of head h and the mask of sequence b (NULL where absent). */
static void bias_rows(const vitq_i_attn_bias *bias, size_t b, size_t h, size_t tt, const float **hb,
                      const float **mk) {
    *hb = bias && bias->head_bias ? bias->head_bias + h * tt : NULL;
    *mk = bias && bias->mask ? bias->mask + (b % bias->mask_period) * tt : NULL;
}

void vitq_i_attention_biased(const float *qkv, size_t batch, size_t tokens, size_t dim, size_t heads,
                             const vitq_i_attn_bias *bias, float *out, float *scratch, int nthreads) {
    size_t head_dim = dim / heads, per_thread = vitq_i_attention_scratch_floats(tokens, head_dim);
    size_t tt = tokens * tokens;
    long tasks = (long)(batch * heads);
    (void)nthreads;
    VITQ_I_PARALLEL_FOR(nthreads)
    for (long task = 0; task < tasks; task++) {
        size_t b = (size_t)task / heads, h = (size_t)task % heads;
        float *mine = scratch + (size_t)vitq_i_thread_id() * per_thread;
        const float *hb, *mk;
        bias_rows(bias, b, h, tt, &hb, &mk);
        attend_one(qkv + b * tokens * 3 * dim, tokens, dim, head_dim, h, hb, mk, out + b * tokens * dim, mine);
    }
}

void vitq_i_attention(const float *qkv, size_t batch, size_t tokens, size_t dim, size_t heads,
                      float *out, float *scratch, int nthreads) {
    vitq_i_attention_biased(qkv, batch, tokens, dim, heads, NULL, out, scratch, nthreads);
}

void vitq_i_attention_scores(const float *qkv, size_t batch, size_t tokens, size_t dim, size_t heads,
                             const vitq_i_attn_bias *bias, float *scores, float *scratch, int nthreads) {
    size_t head_dim = dim / heads, per_thread = vitq_i_attention_scratch_floats(tokens, head_dim);
    size_t tt = tokens * tokens;
    long tasks = (long)(batch * heads);
    (void)nthreads;
    VITQ_I_PARALLEL_FOR(nthreads)
    for (long task = 0; task < tasks; task++) {
        size_t b = (size_t)task / heads, h = (size_t)task % heads;
        float *kt = scratch + (size_t)vitq_i_thread_id() * per_thread, *v = kt + head_dim * tokens;
        const float *hb, *mk;
        bias_rows(bias, b, h, tt, &hb, &mk);
        const float *seq = qkv + b * tokens * 3 * dim;
        float *dst = scores + (size_t)task * tt;
        gather_kv(seq, tokens, dim, head_dim, h, kt, v);
        for (size_t i = 0; i < tokens; i++)
            score_row(seq + i * 3 * dim + h * head_dim, kt, tokens, head_dim, hb ? hb + i * tokens : NULL,
                      mk ? mk + i * tokens : NULL, dst + i * tokens);
    }
}

void vitq_i_attention_softmax(float *scores, size_t rows, size_t tokens, int nthreads) {
    long n = (long)rows;
    (void)nthreads;
    VITQ_I_PARALLEL_FOR(nthreads)
    for (long r = 0; r < n; r++) vitq_i_softmax(scores + (size_t)r * tokens, tokens);
}

void vitq_i_attention_apply(const float *probs, const float *qkv, size_t batch, size_t tokens, size_t dim,
                            size_t heads, float *out, float *scratch, int nthreads) {
    size_t head_dim = dim / heads, per_thread = vitq_i_attention_scratch_floats(tokens, head_dim);
    size_t tt = tokens * tokens;
    long tasks = (long)(batch * heads);
    (void)nthreads;
    VITQ_I_PARALLEL_FOR(nthreads)
    for (long task = 0; task < tasks; task++) {
        size_t b = (size_t)task / heads, h = (size_t)task % heads;
        float *kt = scratch + (size_t)vitq_i_thread_id() * per_thread, *v = kt + head_dim * tokens;
        float *acc = v + tokens * head_dim + tokens;
        gather_kv(qkv + b * tokens * 3 * dim, tokens, dim, head_dim, h, kt, v);
        for (size_t i = 0; i < tokens; i++)
            weighted_sum(probs + (size_t)task * tt + i * tokens, v, tokens, head_dim, acc,
                         out + (b * tokens + i) * dim + h * head_dim);
    }
}
