/* The whole model's backward (see backward.h). Per chunk of images: a forward pass that keeps each
 * block's input (and each stage's output, which patch merging and the final norm need), the
 * cross-entropy loss and its gradient at the logits, then the way back: classifier, the ViT
 * representation layer when there is one (tanh, then its linear layer), final LayerNorm (ViT: on the
 * prefix tokens only; Swin: under the mean pooling), and the blocks from the last,
 * crossing Swin's patch merging between stages. The embedding is not differentiated (no block is
 * below it). The forward runs the forward pass's own stems (model/stem.h) and blocks (model/block.h),
 * so its logits are bit-identical to vitq_i_net_forward without taps. */
#include <math.h>
#include <string.h>

#include "grad/backward.h"
#include "kernels/parallel.h"
#include "model/forward_common.h"
#include "model/stem.h"
#include "model/swin_geometry.h"
#include "model/weights.h"

#define CHUNK_ROWS 2048

typedef struct model_ws {
    vitq_i_block_ws blk;
    int nthreads;
    float *cache;           /* every block's input, block b at block_cache() */
    float *stage_out;       /* every stage's output, stage s at stage_cache() */
    float *x, *dx, *dprev;  /* residual stream and its gradients, the widest stage */
    float *gather, *dgather; /* patch merging input [rows][4 d], Swin's final norm, ViT's patch embedding */
    float *patches;         /* im2col of the patch embedding */
    float *feat, *feat_ln;  /* ViT: the prefix-token rows before / after the final norm; Swin: pooled */
    float *dfeat;
    float *rep, *drep;      /* ViT representation layer: its tanh output and the gradient there */
    float *logits, *logits_dist, *dlogits;
    float *wt_merge;        /* a merge reduction weight packed transposed */
    float *block;
} model_ws;

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

/* Tokens per image of stage s (ViT: prefix tokens + patches). */
static size_t stage_tokens(const vitq_i_net *m, int s) {
    const vitq_model_info *i = &m->info;
    if (i->arch != VITQ_ARCH_SWIN) return (size_t)i->num_tokens;
    return (size_t)i->stage_grid[s] * (size_t)i->stage_grid[s];
}

static int stage_first_block(const vitq_i_net *m, int s) {
    int b = 0;
    for (int p = 0; p < s; p++) b += m->info.stage_depth[p];
    return b;
}

/* Floats of the per-image activation of stage s. */
static size_t stage_floats(const vitq_i_net *m, int s) { return stage_tokens(m, s) * (size_t)m->info.stage_dim[s]; }

static float *block_cache(const vitq_i_net *m, const model_ws *w, size_t images, int b) {
    size_t at = 0;
    for (int s = 0, k = 0; s < m->info.num_stages; s++)
        for (int j = 0; j < m->info.stage_depth[s]; j++, k++)
            if (k < b) at += images * stage_floats(m, s);
    return w->cache + at;
}

static float *stage_cache(const vitq_i_net *m, const model_ws *w, size_t images, int s) {
    size_t at = 0;
    for (int p = 0; p < s; p++) at += images * stage_floats(m, p);
    return w->stage_out + at;
}

static vitq_status ws_alloc(const vitq_i_net *m, size_t images, model_ws *w) {
    const vitq_model_info *i = &m->info;
    size_t cache = 0, stages = 0, widest = 0, merge = 0;
    for (int s = 0; s < i->num_stages; s++) {
        size_t f = images * stage_floats(m, s);
        cache += (size_t)i->stage_depth[s] * f;
        stages += f;
        widest = max_size(widest, f);
        if (s > 0)
            merge = max_size(merge, vitq_i_transposed_floats((size_t)i->stage_dim[s], 4 * (size_t)i->stage_dim[s - 1]));
    }
    size_t patch_in = (size_t)i->in_channels * (size_t)i->patch_size * (size_t)i->patch_size;
    size_t patches = stage_tokens(m, 0) - (size_t)i->num_prefix_tokens;
    size_t last = (size_t)i->stage_dim[i->num_stages - 1], feat = images * 2 * last;
    size_t k = images * (size_t)i->num_classes, rep = images * m->pre_logits.out;
    size_t sizes[16] = {cache, stages, widest, widest, widest, widest, widest, images * patches * patch_in,
                        feat,  feat,   feat,   rep,    rep,    k,      k,      k};
    float **slots[16] = {&w->cache,   &w->stage_out, &w->x,       &w->dx,    &w->dprev, &w->gather,
                         &w->dgather, &w->patches,   &w->feat,    &w->feat_ln, &w->dfeat, &w->rep,
                         &w->drep,    &w->logits,    &w->logits_dist, &w->dlogits};
    memset(w, 0, sizeof *w);
    w->nthreads = vitq_i_resolve_threads(m->num_threads);
    vitq_status st = vitq_i_carve_workspace(&m->alloc, sizes, slots, 16, &w->block);
    float *wt = NULL;
    if (!st) {
        wt = vitq_i_alloc_array(&m->alloc, merge ? merge : 1, sizeof(float));
        if (!wt) st = vitq_i_oom("patch merging weights", merge * sizeof(float));
    }
    w->wt_merge = wt;
    if (!st) st = vitq_i_block_ws_alloc(m, images, &w->blk);
    if (st) vitq_i_error_prefix("model backward (%zu images per chunk)", images);
    return st;
}

static void ws_free(const vitq_i_net *m, model_ws *w) {
    vitq_i_block_ws_free(m, &w->blk);
    vitq_i_free(&m->alloc, w->wt_merge);
    vitq_i_free(&m->alloc, w->block);
}

/* ---- forward ------------------------------------------------------------------------------------- */

/* A pass of the forward's own kernels, no taps: the float layers of a network the backward accepts. */
static vitq_i_pass plain_pass(const vitq_i_net *m, const model_ws *w) {
    vitq_i_pass p;
    vitq_i_pass_begin(&p, m, NULL);
    p.nthreads = w->nthreads;
    return p;
}

/* Forward of n images to w->logits, keeping block inputs and stage outputs. */
static void forward_chunk(const vitq_i_net *m, const float *images, size_t n, model_ws *w) {
    const vitq_model_info *i = &m->info;
    int swin = i->arch == VITQ_ARCH_SWIN;
    vitq_i_pass p = plain_pass(m, w);
    if (swin) vitq_i_swin_embed(&p, images, n, w->patches, w->x);
    else vitq_i_vit_embed(&p, images, n, w->patches, w->gather, w->x);
    for (int s = 0, b = 0; s < i->num_stages; s++) {
        if (s > 0) vitq_i_swin_merge(&p, s, n, stage_cache(m, w, n, s - 1), w->gather, w->x);
        size_t count = n * stage_floats(m, s);
        for (int j = 0; j < i->stage_depth[s]; j++, b++) {
            memcpy(block_cache(m, w, n, b), w->x, count * sizeof(float));
            vitq_i_block_ws_forward(m, b, w->x, n, &w->blk);
        }
        memcpy(stage_cache(m, w, n, s), w->x, count * sizeof(float));
    }
    if (swin) vitq_i_swin_classify(&p, n, w->x, w->gather, w->feat, w->logits);
    else vitq_i_vit_classify_into(&p, n, w->x, w->feat, w->feat_ln, w->rep, w->logits, w->logits_dist);
    (void)vitq_i_pass_end(&p); /* float layers only: nothing can fail */
}

/* ---- loss ---------------------------------------------------------------------------------------- */

static int32_t argmax(const float *x, size_t k) {
    size_t best = 0;
    for (size_t c = 1; c < k; c++)
        if (x[c] > x[best]) best = c;
    return (int32_t)best;
}

/* Cross-entropy of one image's logits against `target`, its gradient into d = softmax - onehot. */
static double cross_entropy(const float *logits, size_t k, int32_t target, float *d) {
    float max = logits[argmax(logits, k)];
    double sum = 0.0;
    for (size_t c = 0; c < k; c++) sum += exp((double)logits[c] - max);
    for (size_t c = 0; c < k; c++) d[c] = (float)(exp((double)logits[c] - max) / sum) - (c == (size_t)target);
    return (double)max + log(sum) - (double)logits[target];
}

static double loss_chunk(const vitq_i_net *m, const int32_t *targets, size_t n, model_ws *w) {
    size_t k = (size_t)m->info.num_classes;
    double loss = 0.0;
    for (size_t b = 0; b < n; b++) {
        const float *l = w->logits + b * k;
        loss += cross_entropy(l, k, targets ? targets[b] : argmax(l, k), w->dlogits + b * k);
    }
    return loss;
}

/* ---- backward ------------------------------------------------------------------------------------ */

/* d_in[n][in] = scale * d_out[n][out] . W (a classifier: small, a plain loop will do). */
static void head_backward(const vitq_i_linear *l, const float *d_out, size_t n, float scale, float *d_in) {
    for (size_t b = 0; b < n; b++) {
        float *dst = d_in + b * l->in;
        memset(dst, 0, l->in * sizeof(float));
        for (size_t c = 0; c < l->out; c++) {
            float g = d_out[b * l->out + c] * scale;
            const float *row = l->weight + c * l->in;
            for (size_t j = 0; j < l->in; j++) dst[j] += g * row[j];
        }
    }
}

/* ViT: dlogits -> w->dx, the gradient at the last block's output (zero but on the prefix tokens).
 * Distilled logits are (cls + dist) / 2, so each head gets half the gradient. */
static void vit_head_backward(const vitq_i_net *m, size_t n, model_ws *w) {
    const vitq_model_info *i = &m->info;
    size_t d = (size_t)i->embed_dim, t = (size_t)i->num_tokens, pre = (size_t)i->num_prefix_tokens;
    float scale = pre == 2 ? 0.5f : 1.0f;
    if (m->pre_logits.out) { /* logits = head(tanh(z)), z = pre_logits(LN(x)): tanh' = 1 - tanh^2 */
        size_t r = m->pre_logits.out;
        head_backward(&m->head, w->dlogits, n, scale, w->drep);
        for (size_t j = 0; j < n * r; j++) w->drep[j] *= 1.0f - w->rep[j] * w->rep[j];
        head_backward(&m->pre_logits, w->drep, n, 1.0f, w->dfeat);
    } else {
        head_backward(&m->head, w->dlogits, n, scale, w->dfeat);
    }
    if (pre == 2) head_backward(&m->head_dist, w->dlogits, n, scale, w->dfeat + n * d);
    vitq_i_layernorm_backward(w->feat, w->dfeat, pre * n, d, m->norm.gamma, i->layer_norm_eps, w->dfeat, 0,
                              w->nthreads);
    memset(w->dx, 0, n * t * d * sizeof(float));
    for (size_t tok = 0; tok < pre; tok++)
        for (size_t b = 0; b < n; b++)
            memcpy(w->dx + (b * t + tok) * d, w->dfeat + (tok * n + b) * d, d * sizeof(float));
}

/* Swin: dlogits -> pooled features -> every token's final-norm output (1/tokens each) -> w->dx. */
static void swin_head_backward(const vitq_i_net *m, size_t n, model_ws *w) {
    int last = m->info.num_stages - 1;
    size_t d = (size_t)m->info.stage_dim[last], tokens = stage_tokens(m, last);
    head_backward(&m->head, w->dlogits, n, 1.0f, w->dfeat);
    float inv = (float)(1.0 / (double)tokens);
    for (size_t b = 0; b < n; b++)
        for (size_t t = 0; t < tokens; t++)
            for (size_t k = 0; k < d; k++) w->dgather[(b * tokens + t) * d + k] = w->dfeat[b * d + k] * inv;
    vitq_i_layernorm_backward(stage_cache(m, w, n, last), w->dgather, n * tokens, d, m->norm.gamma,
                              m->info.layer_norm_eps, w->dx, 0, w->nthreads);
}

/* Swin patch merging of stage s: w->dx (w.r.t. its output) -> w->dprev (w.r.t. the previous stage's
 * output). The LayerNorm input is re-gathered from the cached stage output. */
static void merge_backward(const vitq_i_net *m, int s, size_t n, model_ws *w) {
    const vitq_model_info *i = &m->info;
    const vitq_i_stage *st = &m->stages[s];
    size_t in = 4 * (size_t)i->stage_dim[s - 1], rows = n * stage_tokens(m, s);
    vitq_i_packed wt;
    vitq_i_pack_transposed(st->merge.weight, st->merge.out, st->merge.in, w->wt_merge, &wt);
    vitq_i_linear_backward(&wt, w->dx, rows, w->dgather, 0, w->nthreads);
    vitq_i_swin_merge_gather(stage_cache(m, w, n, s - 1), n, i->stage_grid[s - 1], (size_t)i->stage_dim[s - 1],
                             w->gather);
    vitq_i_layernorm_backward(w->gather, w->dgather, rows, in, st->merge_norm.gamma, VITQ_I_SWIN_STEM_EPS, w->dgather,
                              0, w->nthreads);
    vitq_i_swin_merge_scatter(w->dgather, n, i->stage_grid[s - 1], (size_t)i->stage_dim[s - 1], w->dprev);
}

static void swap(float **a, float **b) {
    float *t = *a;
    *a = *b;
    *b = t;
}

/* From w->dlogits down to block 0, calling fn on every block, last first. */
static vitq_status backward_chunk(const vitq_i_net *m, size_t first, size_t n, model_ws *w,
                                  vitq_i_block_grad_fn fn, void *ctx) {
    const vitq_model_info *i = &m->info;
    if (i->arch == VITQ_ARCH_SWIN) swin_head_backward(m, n, w);
    else vit_head_backward(m, n, w);
    for (int s = i->num_stages - 1; s >= 0; s--) {
        int lo = stage_first_block(m, s);
        for (int b = lo + i->stage_depth[s] - 1; b >= lo; b--) {
            const float *x_in = block_cache(m, w, n, b);
            if (fn(ctx, b, first, n, x_in, w->dx))
                return vitq_i_fail(VITQ_ERR_CANCELLED, "model backward: cancelled by the callback at block %d "
                                   "(images %zu..%zu)", b, first, first + n - 1);
            if (b == 0) return VITQ_OK; /* nothing below wants a gradient */
            vitq_i_block_backward_ws(m, b, x_in, w->dx, n, NULL, w->dprev, &w->blk);
            swap(&w->dx, &w->dprev);
        }
        if (s > 0) {
            merge_backward(m, s, n, w);
            swap(&w->dx, &w->dprev);
        }
    }
    return VITQ_OK;
}

static vitq_status check_arguments(const vitq_i_net *m, const float *images, size_t n, const int32_t *targets) {
    if (!m || !images)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_i_model_backward: NULL %s", !m ? "model" : "images");
    if (n == 0) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_i_model_backward: no images");
    for (size_t b = 0; targets && b < n; b++)
        if (targets[b] < 0 || targets[b] >= m->info.num_classes)
            return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT,
                               "vitq_i_model_backward: target %ld of image %zu is not a class of %s (0..%d)",
                               (long)targets[b], b, m->name ? m->name : "the model", (int)m->info.num_classes - 1);
    const vitq_model_info *i = &m->info;
    size_t per_image = (size_t)i->in_channels * (size_t)i->image_size * (size_t)i->image_size;
    vitq_status st = vitq_i_check_finite(images, n * per_image, per_image);
    return st ? st : vitq_i_model_require_rows(m, "vitq_i_model_backward");
}

vitq_status vitq_i_model_backward(const vitq_i_net *m, const float *images, size_t n, const int32_t *targets,
                                  double *loss, vitq_i_block_grad_fn fn, void *ctx) {
    vitq_status st = check_arguments(m, images, n, targets);
    if (st) return st;
    const vitq_model_info *i = &m->info;
    size_t per_image = (size_t)i->in_channels * (size_t)i->image_size * (size_t)i->image_size;
    size_t chunk = vitq_i_chunk_images(CHUNK_ROWS, stage_tokens(m, 0), n);
    model_ws w;
    if ((st = ws_alloc(m, chunk, &w))) {
        ws_free(m, &w);
        return st;
    }
    double total = 0.0;
    for (size_t first = 0; first < n && !st; first += chunk) {
        size_t count = n - first < chunk ? n - first : chunk;
        forward_chunk(m, images + first * per_image, count, &w);
        total += loss_chunk(m, targets ? targets + first : NULL, count, &w);
        if (fn) st = backward_chunk(m, first, count, &w, fn, ctx);
    }
    ws_free(m, &w);
    if (!st && loss) *loss = total;
    return st;
}
