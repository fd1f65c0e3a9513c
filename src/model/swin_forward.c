/* Forward pass of Swin (v1), as timm, Hugging Face and torchvision compute it (in FP32, or with taps and
 * the integer kernels of a quantized model's layers, as vit_forward.c):
 *   x = LN(patch_embed(img))                                    tokens on a grid, row-major
 *   per stage: (s > 0) x = reduction(LN(merge 2x2 neighbours of x))
 *              per block: x += proj(window_attention(shift(LN1(x)))) shifted back;
 *                         x += fc2(gelu(fc1(LN2(x))))
 *   logits = head(mean over tokens of LN(x))
 * Window attention adds the relative position bias and, on shifted blocks, the region mask. */
#include <math.h>
#include <string.h>

#include "model/forward_common.h"
#include "model/swin_geometry.h"

#define CHUNK_ROWS 4096

typedef struct workspace {
    float *x, *ln, *qkv, *att, *tmp, *hid, *patches, *pooled, *scratch;
    float *probs; /* attention scores / probabilities of a chunk's windows, only when tapping */
    float *block;
} workspace;

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

static vitq_status workspace_alloc(const vitq_i_net *m, size_t chunk, int nthreads, int tapping, workspace *w) {
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

static void run_block(vitq_i_pass *p, int b, size_t n, workspace *w) {
    vitq_i_block_geom g;
    vitq_i_block_geom_of(p->m, b, n, &g);
    vitq_i_block_bufs bufs = {w->ln, w->qkv, w->att, w->tmp, w->hid, w->scratch, w->probs};
    vitq_i_block_run(p, &g, w->x, &bufs, VITQ_I_BLOCK_FULL);
}

vitq_status vitq_i_swin_forward(const vitq_i_net *m, const float *input, size_t n, float *logits,
                                vitq_i_taps *taps) {
    const vitq_model_info *i = &m->info;
    size_t per_image = (size_t)i->in_channels * (size_t)i->image_size * (size_t)i->image_size;
    vitq_status st = vitq_i_check_finite(input, n * per_image, per_image);
    if (st) return st;
    vitq_i_pass p;
    vitq_i_pass_begin(&p, m, taps);
    size_t chunk = vitq_i_chunk_images(CHUNK_ROWS, (size_t)i->num_tokens, n);
    workspace w;
    if ((st = workspace_alloc(m, chunk, p.nthreads, vitq_i_pass_needs_probs(m, taps), &w))) return st;
    for (size_t first = 0; first < n; first += chunk) {
        size_t count = n - first < chunk ? n - first : chunk;
        vitq_i_swin_embed(&p, input + first * per_image, count, w.patches, w.x);
        for (int s = 0; s < i->num_stages; s++) {
            if (s > 0) vitq_i_swin_merge(&p, s, count, w.x, w.tmp, w.x);
            for (int b = 0; b < i->stage_depth[s]; b++) run_block(&p, m->stages[s].first_block + b, count, &w);
        }
        vitq_i_swin_classify(&p, count, w.x, w.ln, w.pooled, logits + first * (size_t)i->num_classes);
        if (vitq_i_pass_failed(&p)) break;
    }
    vitq_i_free(&m->alloc, w.block);
    return vitq_i_pass_end(&p);
}
