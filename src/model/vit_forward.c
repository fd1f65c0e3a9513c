/* FP32 forward pass of ViT / DeiT (pre-LN blocks, as timm and Hugging Face):
 *   x = [cls, (dist), patch_embed(img)] + pos_embed
 *   x += proj(attention(qkv(LN1(x))));  x += fc2(gelu(fc1(LN2(x))))
 *   logits = head(LN(x)[0])  (distilled: mean of head(LN(x)[0]) and head_dist(LN(x)[1]))
 * Images are processed in chunks so that the activations of a chunk stay around a few MB; each
 * image's result is independent of the chunk it falls in (see vitq_i_gemm). */
#include <math.h>
#include <string.h>

#include "kernels/parallel.h"
#include "model/forward_common.h"

/* Rows (tokens) per chunk: activations of ~2k tokens of a ViT-B are ~40 MB, of a DeiT-S ~10 MB. */
#define CHUNK_ROWS 2048

typedef struct workspace {
    float *x, *ln, *qkv, *att, *hid, *patches, *embed, *scratch, *cls, *dist, *tmp;
    float *probs; /* attention scores / probabilities, only when tapping */
    float *block; /* the single allocation all of the above live in */
} workspace;

static vitq_status workspace_alloc(const vitq_model *m, size_t chunk, int nthreads, int tapping, workspace *w) {
    const vitq_model_info *i = &m->info;
    size_t d = (size_t)i->embed_dim, t = (size_t)i->num_tokens, rows = chunk * t;
    size_t patches = t - (size_t)i->num_prefix_tokens;
    size_t patch_in = (size_t)i->in_channels * (size_t)i->patch_size * (size_t)i->patch_size;
    size_t sizes[12] = {
        rows * d, rows * d, rows * 3 * d, rows * d, rows * (size_t)i->mlp_dim, chunk * patches * patch_in,
        chunk * patches * d, (size_t)nthreads * vitq_i_attention_scratch_floats(t, d / (size_t)i->num_heads),
        chunk * d, chunk * d, chunk * (size_t)i->num_classes, tapping ? rows * t * (size_t)i->num_heads : 0};
    float **slots[12] = {&w->x, &w->ln, &w->qkv, &w->att, &w->hid, &w->patches, &w->embed, &w->scratch,
                         &w->cls, &w->dist, &w->tmp, &w->probs};
    return vitq_i_carve_workspace(&m->alloc, sizes, slots, 12, &w->block);
}

/* Patch embedding of `n` images into x, with prefix tokens and position embeddings. */
static void embed(const vitq_model *m, const float *images, size_t n, workspace *w, int nthreads,
                  vitq_i_taps *taps) {
    const vitq_model_info *i = &m->info;
    size_t d = (size_t)i->embed_dim, t = (size_t)i->num_tokens, pre = (size_t)i->num_prefix_tokens;
    size_t g = (size_t)i->image_size / (size_t)i->patch_size, patches = g * g;
    vitq_i_patch_embed(m, images, n, w->patches, w->embed, nthreads, taps);
    for (size_t b = 0; b < n; b++) {
        float *x = w->x + b * t * d;
        for (size_t j = 0; j < d; j++) {
            x[j] = m->cls_token[j] + m->pos_embed[j];
            if (pre == 2) x[d + j] = m->dist_token[j] + m->pos_embed[d + j];
        }
        for (size_t k = 0; k < patches; k++)
            for (size_t j = 0; j < d; j++)
                x[(pre + k) * d + j] = w->embed[(b * patches + k) * d + j] + m->pos_embed[(pre + k) * d + j];
    }
}

static void run_block(const vitq_model *m, int b, size_t rows, size_t n, workspace *w, int nthreads,
                      vitq_i_taps *taps) {
    const vitq_model_info *i = &m->info;
    const vitq_i_block *blk = &m->blocks[b];
    const vitq_i_block_sites *sites = taps ? &taps->sites->blocks[b] : NULL;
    size_t d = (size_t)i->embed_dim;
    float eps = i->layer_norm_eps;
    vitq_i_layernorm_tapped(taps, VITQ_I_SITE(taps, sites, norm1_in), w->x, rows, d, &blk->norm1, eps, w->ln,
                            nthreads);
    vitq_i_linear_tapped(taps, VITQ_I_SITE(taps, sites, qkv_in), &blk->qkv, w->ln, d, rows, w->qkv, 3 * d,
                         VITQ_I_EPI_NONE, nthreads);
    vitq_i_attention_tapped(taps, sites, w->qkv, n, (size_t)i->num_tokens, d, (size_t)i->num_heads, NULL, w->att,
                            w->scratch, w->probs, nthreads);
    vitq_i_linear_tapped(taps, VITQ_I_SITE(taps, sites, proj_in), &blk->proj, w->att, d, rows, w->x, d,
                         VITQ_I_EPI_RESIDUAL, nthreads);
    vitq_i_mlp_residual(blk, w->x, w->ln, w->hid, rows, d, eps, i->gelu, nthreads, taps, sites);
}

/* Final LayerNorm of one prefix token (0: class, 1: distillation) of each image into out, then the
 * classifier `head`. */
static void classify_token(const vitq_model *m, size_t n, size_t token, const vitq_i_linear *head, int head_site,
                           workspace *w, float *out, float *logits, int nthreads, vitq_i_taps *taps) {
    const vitq_model_info *i = &m->info;
    size_t d = (size_t)i->embed_dim, t = (size_t)i->num_tokens, k = (size_t)i->num_classes;
    for (size_t b = 0; b < n; b++) memcpy(out + b * d, w->x + (b * t + token) * d, d * sizeof(float));
    vitq_i_layernorm_tapped(taps, VITQ_I_SITE(taps, taps->sites, norm_in), out, n, d, &m->norm, i->layer_norm_eps,
                            out, nthreads);
    vitq_i_linear_tapped(taps, head_site, head, out, d, n, logits, k, VITQ_I_EPI_NONE, nthreads);
}

/* Final LayerNorm on the prefix tokens only (the others are not used) and the classifier(s). */
static void classify(const vitq_model *m, size_t n, workspace *w, float *logits, int nthreads, vitq_i_taps *taps) {
    const vitq_model_info *i = &m->info;
    size_t k = (size_t)i->num_classes;
    classify_token(m, n, 0, &m->head, VITQ_I_SITE(taps, taps->sites, head_in), w, w->cls, logits, nthreads, taps);
    if (i->num_prefix_tokens < 2) return;
    classify_token(m, n, 1, &m->head_dist, VITQ_I_SITE(taps, taps->sites, head_dist_in), w, w->dist, w->tmp,
                   nthreads, taps);
    for (size_t j = 0; j < n * k; j++) logits[j] = (logits[j] + w->tmp[j]) / 2.0f;
}

vitq_status vitq_i_vit_forward(const vitq_model *m, const float *input, size_t n, float *logits,
                               vitq_i_taps *taps) {
    const vitq_model_info *i = &m->info;
    size_t t = (size_t)i->num_tokens, c = (size_t)i->in_channels, s = (size_t)i->image_size;
    size_t per_image = c * s * s;
    vitq_status st = vitq_i_check_finite(input, n * per_image, per_image);
    if (st) return st;
    int nthreads = vitq_i_resolve_threads(m->num_threads);
    size_t chunk = vitq_i_chunk_images(CHUNK_ROWS, t, n);
    workspace w;
    if ((st = workspace_alloc(m, chunk, nthreads, vitq_i_taps_need_scores(taps), &w))) return st;
    for (size_t first = 0; first < n; first += chunk) {
        size_t count = n - first < chunk ? n - first : chunk;
        embed(m, input + first * per_image, count, &w, nthreads, taps);
        for (int b = 0; b < i->depth; b++) run_block(m, b, count * t, count, &w, nthreads, taps);
        classify(m, count, &w, logits + first * (size_t)i->num_classes, nthreads, taps);
        if (taps && taps->status) break;
    }
    vitq_i_free(&m->alloc, w.block);
    return taps ? taps->status : VITQ_OK;
}

vitq_status vitq_i_vit_block_forward(const vitq_model *m, int b, float *x, size_t n, vitq_i_taps *taps) {
    size_t rows = n * (size_t)m->info.num_tokens, d = (size_t)m->info.embed_dim;
    int nthreads = vitq_i_resolve_threads(m->num_threads);
    workspace w;
    vitq_status st = workspace_alloc(m, n, nthreads, vitq_i_taps_need_scores(taps), &w);
    if (st) return st;
    memcpy(w.x, x, rows * d * sizeof(float));
    run_block(m, b, rows, n, &w, nthreads, taps);
    memcpy(x, w.x, rows * d * sizeof(float));
    vitq_i_free(&m->alloc, w.block);
    return taps ? taps->status : VITQ_OK;
}
