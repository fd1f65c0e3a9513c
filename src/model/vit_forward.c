/* Forward pass of ViT / DeiT (pre-LN blocks, as timm and Hugging Face), in FP32, or with taps
 * (calibration, simulated quantization) and the integer kernels of a quantized model's layers:
 *   x = [cls, (dist), patch_embed(img)] + pos_embed
 *   x += proj(attention(qkv(LN1(x))));  x += fc2(gelu(fc1(LN2(x))))
 *   logits = head(LN(x)[0])  (distilled: mean of head(LN(x)[0]) and head_dist(LN(x)[1]))
 * Images are processed in chunks so that the activations of a chunk stay around a few MB; each
 * image's result is independent of the chunk it falls in (see vitq_i_gemm). */
#include <math.h>
#include <string.h>

#include "model/forward_common.h"

/* Rows (tokens) per chunk: activations of ~2k tokens of a ViT-B are ~40 MB, of a DeiT-S ~10 MB. */
#define CHUNK_ROWS 2048

typedef struct workspace {
    float *x, *ln, *qkv, *att, *hid, *patches, *embed, *scratch, *feat, *tmp;
    float *probs; /* attention scores / probabilities, only when taps reach them */
    float *block; /* the single allocation all of the above live in */
} workspace;

static vitq_status workspace_alloc(const vitq_i_net *m, size_t chunk, int nthreads, int probs, workspace *w) {
    const vitq_model_info *i = &m->info;
    size_t d = (size_t)i->embed_dim, t = (size_t)i->num_tokens, rows = chunk * t;
    size_t patches = t - (size_t)i->num_prefix_tokens;
    size_t patch_in = (size_t)i->in_channels * (size_t)i->patch_size * (size_t)i->patch_size;
    size_t sizes[11] = {
        rows * d, rows * d, rows * 3 * d, rows * d, rows * (size_t)i->mlp_dim, chunk * patches * patch_in,
        chunk * patches * d, (size_t)nthreads * vitq_i_attention_scratch_floats(t, d / (size_t)i->num_heads),
        chunk * (size_t)i->num_prefix_tokens * d, chunk * (size_t)i->num_classes,
        probs ? rows * t * (size_t)i->num_heads : 0};
    float **slots[11] = {&w->x, &w->ln, &w->qkv, &w->att, &w->hid, &w->patches, &w->embed, &w->scratch,
                         &w->feat, &w->tmp, &w->probs};
    return vitq_i_carve_workspace(&m->alloc, sizes, slots, 11, &w->block);
}

static void run_block(vitq_i_pass *p, int b, size_t n, workspace *w) {
    vitq_i_block_geom g;
    vitq_i_block_geom_of(p->m, b, n, &g);
    vitq_i_block_bufs bufs = {w->ln, w->qkv, w->att, NULL, w->hid, w->scratch, w->probs};
    vitq_i_block_run(p, &g, w->x, &bufs, VITQ_I_BLOCK_FULL);
}

/* Blocks from..to-1 of n images (from -1: the images `input` through the embeddings first; else the
 * stream x_in entering block `from`), then, when to == depth and logits is set, the head. The stream
 * entering each block b in [max(from, 0), to] is copied into at[b] when at and at[b] are set (at[depth]:
 * before the head). Streams are [n][tokens][d]. */
static vitq_status vit_run(const vitq_i_net *m, const float *input, const float *x_in, int from, int to, size_t n,
                           float *logits, vitq_i_taps *taps, float *const *at) {
    const vitq_model_info *i = &m->info;
    size_t t = (size_t)i->num_tokens, c = (size_t)i->in_channels, s = (size_t)i->image_size;
    size_t per_image = c * s * s, per_stream = t * (size_t)i->embed_dim;
    vitq_status st = from < 0 ? vitq_i_check_finite(input, n * per_image, per_image) : VITQ_OK;
    if (st) return st;
    vitq_i_pass p;
    vitq_i_pass_begin(&p, m, taps);
    size_t chunk = vitq_i_chunk_images(CHUNK_ROWS, t, n);
    workspace w;
    if ((st = workspace_alloc(m, chunk, p.nthreads, vitq_i_pass_needs_probs(m, taps), &w))) return st;
    for (size_t first = 0; first < n; first += chunk) {
        size_t count = n - first < chunk ? n - first : chunk, off = first * per_stream;
        if (from < 0) vitq_i_vit_embed(&p, input + first * per_image, count, w.patches, w.embed, w.x);
        else memcpy(w.x, x_in + off, count * per_stream * sizeof(float));
        for (int b = from < 0 ? 0 : from; b <= to; b++) {
            if (at && at[b]) memcpy(at[b] + off, w.x, count * per_stream * sizeof(float));
            if (b < to) run_block(&p, b, count, &w);
        }
        if (logits && to == i->depth)
            vitq_i_vit_classify(&p, count, w.x, w.feat, w.feat, logits + first * (size_t)i->num_classes, w.tmp);
        if (vitq_i_pass_failed(&p)) break;
    }
    vitq_i_free(&m->alloc, w.block);
    return vitq_i_pass_end(&p);
}

vitq_status vitq_i_vit_forward(const vitq_i_net *m, const float *input, size_t n, float *logits,
                               vitq_i_taps *taps) {
    return vit_run(m, input, NULL, -1, m->info.depth, n, logits, taps, NULL);
}

vitq_status vitq_i_vit_streams(const vitq_i_net *m, const float *input, size_t n, float *const *at) {
    return vitq_i_vit_streams_taps(m, input, n, at, NULL, NULL);
}

vitq_status vitq_i_vit_streams_taps(const vitq_i_net *m, const float *input, size_t n, float *const *at,
                                    vitq_i_taps *taps, float *logits) {
    if (m->stages) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_i_vit_streams: %s is a Swin model", m->name);
    return vit_run(m, input, NULL, -1, m->info.depth, n, logits, taps, at);
}

vitq_status vitq_i_vit_forward_from(const vitq_i_net *m, int b, const float *x, size_t n, float *logits,
                                    vitq_i_taps *taps) {
    if (m->stages || b < 0 || b > m->info.depth)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_i_vit_forward_from: block %d of %s", b, m->name);
    return vit_run(m, NULL, x, b, m->info.depth, n, logits, taps, NULL);
}

vitq_status vitq_i_vit_forward_span(const vitq_i_net *m, int from, int to, const float *input, size_t n, float *out,
                                    vitq_i_taps *taps) {
    if (m->stages || from < -1 || from >= to || to > m->info.depth)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_i_vit_forward_span: blocks %d..%d of %s", from, to, m->name);
    float *at[VITQ_I_MAX_SPAN_AT] = {0};
    float **slots = at, **own = NULL;
    if (to + 1 > VITQ_I_MAX_SPAN_AT) { /* deeper than any ViT we know: an array of the right size */
        own = vitq_i_calloc(&m->alloc, (size_t)to + 1, sizeof *own);
        if (!own) return vitq_i_oom("stream slots", ((size_t)to + 1) * sizeof *own);
        slots = own;
    }
    slots[to] = out;
    vitq_status st = vit_run(m, input, input, from, to, n, NULL, taps, slots);
    vitq_i_free(&m->alloc, own);
    return st;
}
