/* FP32 forward pass of Swin (v1), as timm, Hugging Face and torchvision compute it:
 *   x = LN(patch_embed(img))                                    tokens on a grid, row-major
 *   per stage: (s > 0) x = reduction(LN(merge 2x2 neighbours of x))
 *              per block: x += proj(window_attention(shift(LN1(x)))) shifted back;
 *                         x += fc2(gelu(fc1(LN2(x))))
 *   logits = head(mean over tokens of LN(x))
 * Window attention adds the relative position bias and, on shifted blocks, the region mask. */
#include <math.h>
#include <string.h>

#include "kernels/parallel.h"
#include "model/swin_geometry.h"
#include "model/forward_common.h"

#define CHUNK_ROWS 4096

/* timm builds every Swin LayerNorm with PyTorch's default eps; HF applies config.layer_norm_eps to
 * the blocks and the final norm only, and keeps the default for the patch-embedding and patch-merging
 * norms. So those two use 1e-5 whatever the configuration says. */
#define PATCH_AND_MERGE_EPS 1e-5f

typedef struct workspace {
    float *x, *ln, *qkv, *att, *tmp, *hid, *patches, *pooled, *scratch;
    float *probs; /* attention scores / probabilities of a chunk's windows, only when tapping */
    float *block;
} workspace;

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

static vitq_status workspace_alloc(const vitq_model *m, size_t chunk, int nthreads, int tapping, workspace *w) {
    const vitq_model_info *i = &m->info;
    size_t x = 0, qkv = 0, tmp = 0, hid = 0, scratch = 0, probs = 0;
    for (int s = 0; s < i->num_stages; s++) {
        size_t d = (size_t)i->stage_dim[s], rows = chunk * (size_t)i->stage_grid[s] * (size_t)i->stage_grid[s];
        size_t n = (size_t)i->stage_window[s] * (size_t)i->stage_window[s];
        x = max_size(x, rows * d);
        qkv = max_size(qkv, rows * 3 * d);
        tmp = max_size(tmp, rows * d);
        if (s > 0) tmp = max_size(tmp, rows * 4 * (size_t)i->stage_dim[s - 1]);
        for (int b = 0; b < i->stage_depth[s]; b++)
            hid = max_size(hid, rows * m->blocks[m->stages[s].first_block + b].fc1.out);
        scratch = max_size(scratch, vitq_i_attention_scratch_floats(n, d / (size_t)i->stage_heads[s]));
        if (tapping) probs = max_size(probs, rows * (size_t)i->stage_heads[s] * n); /* windows x heads x n x n */
    }
    size_t patch_in = (size_t)i->in_channels * (size_t)i->patch_size * (size_t)i->patch_size;
    size_t sizes[10] = {x,   x,   qkv, x, tmp, hid, chunk * (size_t)i->num_tokens * patch_in,
                        chunk * (size_t)i->stage_dim[i->num_stages - 1], (size_t)nthreads * scratch, probs};
    float **slots[10] = {&w->x,       &w->ln,     &w->qkv,     &w->att,    &w->tmp,
                         &w->hid,     &w->patches, &w->pooled, &w->scratch, &w->probs};
    return vitq_i_carve_workspace(&m->alloc, sizes, slots, 10, &w->block);
}

/* Patch embedding, then the patch LayerNorm. */
static void embed(const vitq_model *m, const float *images, size_t n, workspace *w, int nthreads, vitq_i_taps *taps) {
    const vitq_model_info *i = &m->info;
    vitq_i_patch_embed(m, images, n, w->patches, w->x, nthreads, taps);
    if (m->patch_norm.gamma)
        vitq_i_layernorm_tapped(taps, VITQ_I_SITE(taps, taps->sites, patch_norm_in), w->x,
                                n * (size_t)i->num_tokens, (size_t)i->embed_dim, &m->patch_norm, PATCH_AND_MERGE_EPS,
                                w->x, nthreads);
}

static void merge(const vitq_model *m, int s, size_t n, workspace *w, int nthreads, vitq_i_taps *taps) {
    const vitq_model_info *i = &m->info;
    const vitq_i_stage *stage = &m->stages[s];
    size_t in = 4 * (size_t)i->stage_dim[s - 1], grid = (size_t)i->stage_grid[s];
    size_t rows = n * grid * grid;
    vitq_i_swin_merge_gather(w->x, n, i->stage_grid[s - 1], (size_t)i->stage_dim[s - 1], w->tmp);
    const vitq_i_stage_sites *sites = taps ? &taps->sites->stages[s] : NULL;
    vitq_i_layernorm_tapped(taps, VITQ_I_SITE(taps, sites, merge_norm_in), w->tmp, rows, in, &stage->merge_norm,
                            PATCH_AND_MERGE_EPS, w->tmp, nthreads);
    vitq_i_linear_tapped(taps, VITQ_I_SITE(taps, sites, merge_in), &stage->merge, w->tmp, in, rows, w->x,
                         (size_t)i->stage_dim[s], VITQ_I_EPI_NONE, nthreads);
}

static void run_block(const vitq_model *m, int s, int b, size_t n, workspace *w, int nthreads, vitq_i_taps *taps) {
    const vitq_model_info *i = &m->info;
    const vitq_i_block *blk = &m->blocks[b];
    const vitq_i_block_sites *sites = taps ? &taps->sites->blocks[b] : NULL;
    int grid = i->stage_grid[s], win = i->stage_window[s];
    size_t d = (size_t)i->stage_dim[s], rows = n * (size_t)grid * (size_t)grid;
    size_t tokens = (size_t)win * (size_t)win, windows = rows / tokens;
    float eps = i->layer_norm_eps;
    /* LayerNorm is per token, so it commutes with the shift and window partition. */
    vitq_i_layernorm_tapped(taps, VITQ_I_SITE(taps, sites, norm1_in), w->x, rows, d, &blk->norm1, eps, w->att,
                            nthreads);
    vitq_i_swin_partition(w->att, n, grid, win, blk->shift, d, w->ln);
    vitq_i_linear_tapped(taps, VITQ_I_SITE(taps, sites, qkv_in), &blk->qkv, w->ln, d, rows, w->qkv, 3 * d,
                         VITQ_I_EPI_NONE, nthreads);
    vitq_i_attn_bias bias = {blk->attn_bias, blk->shift ? m->stages[s].mask : NULL,
                             windows / n};
    vitq_i_attention_tapped(taps, sites, w->qkv, windows, tokens, d, (size_t)i->stage_heads[s], &bias, w->att,
                            w->scratch, w->probs, nthreads);
    vitq_i_linear_tapped(taps, VITQ_I_SITE(taps, sites, proj_in), &blk->proj, w->att, d, rows, w->tmp, d,
                         VITQ_I_EPI_NONE, nthreads);
    vitq_i_swin_unpartition_add(w->tmp, n, grid, win, blk->shift, d, w->x);
    vitq_i_mlp_residual(blk, w->x, w->ln, w->hid, rows, d, eps, i->gelu, nthreads, taps, sites);
}

static void classify(const vitq_model *m, size_t n, workspace *w, float *logits, int nthreads, vitq_i_taps *taps) {
    const vitq_model_info *i = &m->info;
    int last = i->num_stages - 1;
    size_t d = (size_t)i->stage_dim[last], tokens = (size_t)i->stage_grid[last] * (size_t)i->stage_grid[last];
    vitq_i_layernorm_tapped(taps, VITQ_I_SITE(taps, taps->sites, norm_in), w->x, n * tokens, d, &m->norm,
                            i->layer_norm_eps, w->ln, nthreads);
    for (size_t b = 0; b < n; b++)
        for (size_t k = 0; k < d; k++) {
            double sum = 0.0;
            for (size_t t = 0; t < tokens; t++) sum += w->ln[(b * tokens + t) * d + k];
            w->pooled[b * d + k] = (float)(sum / (double)tokens);
        }
    vitq_i_linear_tapped(taps, VITQ_I_SITE(taps, taps->sites, head_in), &m->head, w->pooled, d, n, logits,
                         (size_t)i->num_classes, VITQ_I_EPI_NONE, nthreads);
}

vitq_status vitq_i_swin_forward(const vitq_model *m, const float *input, size_t n, float *logits,
                                vitq_i_taps *taps) {
    const vitq_model_info *i = &m->info;
    size_t per_image = (size_t)i->in_channels * (size_t)i->image_size * (size_t)i->image_size;
    vitq_status st = vitq_i_check_finite(input, n * per_image, per_image);
    if (st) return st;
    int nthreads = vitq_i_resolve_threads(m->num_threads);
    size_t chunk = vitq_i_chunk_images(CHUNK_ROWS, (size_t)i->num_tokens, n);
    workspace w;
    if ((st = workspace_alloc(m, chunk, nthreads, vitq_i_taps_need_scores(taps), &w))) return st;
    for (size_t first = 0; first < n; first += chunk) {
        size_t count = n - first < chunk ? n - first : chunk;
        embed(m, input + first * per_image, count, &w, nthreads, taps);
        for (int s = 0; s < i->num_stages; s++) {
            if (s > 0) merge(m, s, count, &w, nthreads, taps);
            for (int b = 0; b < i->stage_depth[s]; b++)
                run_block(m, s, m->stages[s].first_block + b, count, &w, nthreads, taps);
        }
        classify(m, count, &w, logits + first * (size_t)i->num_classes, nthreads, taps);
        if (taps && taps->status) break;
    }
    vitq_i_free(&m->alloc, w.block);
    return taps ? taps->status : VITQ_OK;
}

vitq_status vitq_i_swin_block_forward(const vitq_model *m, int b, float *x, size_t n, vitq_i_taps *taps) {
    const vitq_model_info *i = &m->info;
    int s = 0;
    while (s + 1 < i->num_stages && m->stages[s + 1].first_block <= b) s++;
    size_t rows = n * (size_t)i->stage_grid[s] * (size_t)i->stage_grid[s], d = (size_t)i->stage_dim[s];
    int nthreads = vitq_i_resolve_threads(m->num_threads);
    workspace w;
    vitq_status st = workspace_alloc(m, n, nthreads, vitq_i_taps_need_scores(taps), &w);
    if (st) return st;
    memcpy(w.x, x, rows * d * sizeof(float));
    run_block(m, s, b, n, &w, nthreads, taps);
    memcpy(x, w.x, rows * d * sizeof(float));
    vitq_i_free(&m->alloc, w.block);
    return taps ? taps->status : VITQ_OK;
}
