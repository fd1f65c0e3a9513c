/* Multi-head scaled dot-product attention, one (sequence, head) pair per task. Only one row of
 * scores exists at a time: the T x T matrix is never materialised. K is transposed into scratch so
 * that a row of scores is a vectorisable sweep over tokens. Swin's relative position bias and shifted
 * window mask are added to the scores in that order, each rounded, as timm and torchvision do. */
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/parallel.h"

size_t vitq_i_attention_scratch_floats(size_t tokens, size_t head_dim) {
    return 2 * tokens * head_dim + tokens + head_dim;
}

static void attend_one(const float *qkv, size_t tokens, size_t dim, size_t head_dim, size_t h,
                       const float *bias, const float *mask, float *out, float *scratch) {
    size_t ld = 3 * dim;
    float *kt = scratch;                        /* [head_dim][tokens] */
    float *v = kt + head_dim * tokens;          /* [tokens][head_dim] */
    float *scores = v + tokens * head_dim;      /* [tokens] */
    float *acc = scores + tokens;               /* [head_dim] */
    const float scale = 1.0f / sqrtf((float)head_dim);
    for (size_t t = 0; t < tokens; t++) {
        const float *krow = qkv + t * ld + dim + h * head_dim;
        const float *vrow = qkv + t * ld + 2 * dim + h * head_dim;
        for (size_t d = 0; d < head_dim; d++) kt[d * tokens + t] = krow[d];
        memcpy(v + t * head_dim, vrow, head_dim * sizeof(float));
    }
    for (size_t i = 0; i < tokens; i++) {
        const float *q = qkv + i * ld + h * head_dim;
        for (size_t t = 0; t < tokens; t++) scores[t] = 0.0f;
        for (size_t d = 0; d < head_dim; d++) {
            float qd = q[d] * scale;
            const float *kd = kt + d * tokens;
            for (size_t t = 0; t < tokens; t++) scores[t] += qd * kd[t];
        }
        if (bias)
            for (size_t t = 0; t < tokens; t++) scores[t] += bias[i * tokens + t];
        if (mask)
            for (size_t t = 0; t < tokens; t++) scores[t] += mask[i * tokens + t];
        vitq_i_softmax(scores, tokens);
        for (size_t d = 0; d < head_dim; d++) acc[d] = 0.0f;
        for (size_t t = 0; t < tokens; t++) {
            float p = scores[t];
            const float *vt = v + t * head_dim;
            for (size_t d = 0; d < head_dim; d++) acc[d] += p * vt[d];
        }
        memcpy(out + i * dim + h * head_dim, acc, head_dim * sizeof(float));
    }
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
        const float *hb = bias && bias->head_bias ? bias->head_bias + h * tt : NULL;
        const float *mk = bias && bias->mask ? bias->mask + (b % bias->mask_period) * tt : NULL;
        attend_one(qkv + b * tokens * 3 * dim, tokens, dim, head_dim, h, hb, mk, out + b * tokens * dim, mine);
    }
}

void vitq_i_attention(const float *qkv, size_t batch, size_t tokens, size_t dim, size_t heads,
                      float *out, float *scratch, int nthreads) {
    vitq_i_attention_biased(qkv, batch, tokens, dim, heads, NULL, out, scratch, nthreads);
}
