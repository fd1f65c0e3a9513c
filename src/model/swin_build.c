/* Swin Transformer (v1) from timm (< 0.9 and >= 0.9), Hugging Face or torchvision checkpoints. Shapes reveal almost
 * everything: stages and blocks by their names, widths by the LayerNorms, heads and window side by
 * the relative position tables ([(2w-1)^2, heads]). Stored relative position indices and attention
 * masks (timm < 0.9, HF) are checked against the ones vitq computes, then counted as consumed. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/build_util.h"
#include "model/swin_geometry.h"
#include "model/vit_build.h"

#define NAME_LEN VITQ_I_NAME_LEN

static vitq_status stage_facts(const vitq_i_ckpt *c, int s, vitq_i_shape_facts *f) {
    uint64_t sh[VITQ_I_MAX_DIMS];
    char key[NAME_LEN];
    vitq_status st;
    int depth = 0;
    for (;; depth++) {
        snprintf(key, sizeof key, "layers.%d.blocks.%d.norm1.weight", s, depth);
        if (!vitq_i_ckpt_has(c, key)) break;
    }
    f->stage_depth[s] = depth;
    snprintf(key, sizeof key, "layers.%d.blocks.0.norm1.weight", s);
    if ((st = vitq_i_build_shape(c, key, 1, sh))) return st;
    f->stage_dim[s] = (int)sh[0];
    snprintf(key, sizeof key, "layers.%d.blocks.0.attn.relative_position_bias_table", s);
    if ((st = vitq_i_build_shape(c, key, 2, sh))) return st;
    /* (2w - 1)^2 rows: an odd square */
    uint64_t side = (uint64_t)llround(sqrt((double)sh[0]));
    if (side * side != sh[0] || side % 2 == 0 || sh[1] == 0 || sh[0] > 100000)
        return vitq_i_fail(VITQ_ERR_SHAPE,
                           "%s: tensor '%s' has shape [%llu,%llu], not [(2w-1)^2, heads] of a square window", c->name,
                           key, (unsigned long long)sh[0], (unsigned long long)sh[1]);
    f->stage_window[s] = (int)(side + 1) / 2;
    f->stage_heads[s] = (int)sh[1];
    if (f->stage_dim[s] % f->stage_heads[s] != 0)
        return vitq_i_fail(VITQ_ERR_SHAPE, "%s: stage %d: %d heads (relative position table) do not divide width %d",
                           c->name, s, f->stage_heads[s], f->stage_dim[s]);
    return VITQ_OK;
}

/* timm < 0.9 stores the mask of shifted blocks: [windows, w*w, w*w] reveals the grid, hence the image. */
static void mask_image_size(const vitq_i_ckpt *c, vitq_i_shape_facts *f) {
    uint64_t sh[VITQ_I_MAX_DIMS];
    char key[NAME_LEN];
    for (int s = 0; s < f->num_stages; s++)
        for (int b = 1; b < f->stage_depth[s]; b += 2) {
            snprintf(key, sizeof key, "layers.%d.blocks.%d.attn_mask", s, b);
            int ndim;
            if (!vitq_i_ckpt_has(c, key) || vitq_i_ckpt_shape(c, key, &ndim, sh) != VITQ_OK || ndim != 3) continue;
            int per_side = (int)llround(sqrt((double)sh[0]));
            if ((uint64_t)per_side * (uint64_t)per_side != sh[0]) continue;
            f->mask_image_size = per_side * f->stage_window[s] * (1 << s) * f->patch_size;
            return;
        }
}

static vitq_status collect_facts(const vitq_i_ckpt *c, vitq_i_shape_facts *f) {
    uint64_t sh[VITQ_I_MAX_DIMS];
    char key[NAME_LEN];
    vitq_status st;
    memset(f, 0, sizeof *f);
    f->swin = 1;
    f->layout = c->layout;
    if ((st = vitq_i_build_patch_facts(c, f))) return st;
    for (;; f->num_stages++) {
        snprintf(key, sizeof key, "layers.%d.blocks.0.norm1.weight", f->num_stages);
        if (!vitq_i_ckpt_has(c, key)) break;
        if (f->num_stages == VITQ_MAX_STAGES)
            return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "%s: more than %d Swin stages", c->name, VITQ_MAX_STAGES);
        if ((st = stage_facts(c, f->num_stages, f))) return st;
        f->depth += f->stage_depth[f->num_stages];
    }
    if (f->num_stages == 0) return vitq_i_build_shape(c, "layers.0.blocks.0.norm1.weight", 1, sh);
    if (f->stage_dim[0] != f->embed_dim)
        return vitq_i_fail(VITQ_ERR_SHAPE, "%s: stage 0 has width %d, the patch embedding %d", c->name,
                           f->stage_dim[0], f->embed_dim);
    if ((st = vitq_i_build_shape(c, "layers.0.blocks.0.mlp.fc1.weight", 2, sh))) return st;
    f->mlp_dim = (int)sh[0];
    if ((st = vitq_i_build_head_facts(c, f))) return st;
    mask_image_size(c, f);
    return VITQ_OK;
}

/* A stored integer index or float mask must equal what vitq computes from the geometry. The index is
 * [w*w, w*w] (timm < 0.9, HF) or the same values flattened to [w^4] (torchvision, and HF files
 * converted from it); any other shape is refused by the read. */
static vitq_status check_stored_index(vitq_i_ckpt *c, const char *canon, int w) {
    size_t n = (size_t)w * (size_t)w;
    uint64_t shape[2] = {n, n}, got[VITQ_I_MAX_DIMS];
    int ndim = 2;
    vitq_status st = vitq_i_ckpt_shape(c, canon, &ndim, got);
    if (st) return st;
    if (ndim == 1 && got[0] == n * n) shape[0] = n * n;
    else ndim = 2;
    /* scratch for this tensor only, so that it never sits beside a layer's (loading peaks at one) */
    int64_t *scratch = vitq_i_alloc_array(c->alloc, n * n, sizeof *scratch);
    if (!scratch) return vitq_i_oom(canon, n * n * sizeof *scratch);
    st = vitq_i_ckpt_read_int(c, canon, ndim, shape, scratch);
    char actual[NAME_LEN];
    if (!vitq_i_ckpt_translate(c, canon, actual, sizeof actual)) snprintf(actual, sizeof actual, "%s", canon);
    for (size_t i = 0; !st && i < n; i++)
        for (size_t j = 0; !st && j < n; j++)
            if (scratch[i * n + j] != vitq_i_swin_rel_index(w, i, j))
                st = vitq_i_fail(VITQ_ERR_UNSUPPORTED,
                                 "%s: tensor '%s' differs from Swin's relative position index at [%zu][%zu]%s "
                                 "(%lld, expected %lld)",
                                 c->name, actual, i, j, ndim == 1 ? " of its [w*w, w*w] form" : "",
                                 (long long)scratch[i * n + j], (long long)vitq_i_swin_rel_index(w, i, j));
    vitq_i_free(c->alloc, scratch);
    return st;
}

static vitq_status check_stored_mask(vitq_i_ckpt *c, const char *canon, const vitq_i_stage *stage, int grid, int w,
                                     int shift) {
    size_t n = (size_t)w * (size_t)w, windows = (size_t)(grid / w) * (size_t)(grid / w);
    uint64_t shape[3] = {windows, n, n};
    float *scratch = vitq_i_alloc_array(c->alloc, windows * n * n, sizeof *scratch); /* as above */
    if (!scratch) return vitq_i_oom(canon, windows * n * n * sizeof *scratch);
    vitq_status st = vitq_i_ckpt_read(c, canon, 3, shape, scratch);
    char actual[NAME_LEN];
    if (!vitq_i_ckpt_translate(c, canon, actual, sizeof actual)) snprintf(actual, sizeof actual, "%s", canon);
    for (size_t i = 0; !st && i < windows * n * n; i++) {
        float want = stage->mask ? stage->mask[i] : 0.0f;
        if (scratch[i] != want)
            st = vitq_i_fail(VITQ_ERR_CONFIG,
                             "%s: tensor '%s' is not the shifted-window mask of a %dx%d grid with window %d and "
                             "shift %d: the image size is probably wrong",
                             c->name, actual, grid, grid, w, shift);
    }
    vitq_i_free(c->alloc, scratch);
    return st;
}

static vitq_status load_block(vitq_i_ckpt *c, vitq_i_net *m, int s, int b, vitq_i_block *blk) {
    const vitq_allocator *a = &m->alloc;
    const vitq_model_info *i = &m->info;
    size_t d = (size_t)i->stage_dim[s], heads = (size_t)i->stage_heads[s];
    int w = i->stage_window[s], grid = i->stage_grid[s];
    size_t side = 2 * (size_t)w - 1;
    char pre[64], key[NAME_LEN];
    uint64_t sh[VITQ_I_MAX_DIMS], table_shape[2] = {side * side, heads};
    snprintf(pre, sizeof pre, "layers.%d.blocks.%d", s, b);
    vitq_status st = VITQ_OK;
    snprintf(key, sizeof key, "%s.mlp.fc1.weight", pre);
    if ((st = vitq_i_build_shape(c, key, 2, sh))) return st;
    size_t hidden = (size_t)sh[0];
    if (!st) st = vitq_i_build_block(c, a, pre, d, hidden, blk);
    snprintf(key, sizeof key, "%s.attn.relative_position_bias_table", pre);
    if (!st) blk->rel_table = vitq_i_build_floats(a, side * side * heads, key, &st);
    if (!st) st = vitq_i_ckpt_read(c, key, 2, table_shape, blk->rel_table);
    snprintf(key, sizeof key, "%s.attn.relative_position_index", pre);
    if (!st && vitq_i_ckpt_has(c, key)) st = check_stored_index(c, key, w);
    if (st) return st;
    blk->shift = vitq_i_swin_shift(b, w, grid);
    size_t n = (size_t)w * (size_t)w;
    blk->attn_bias = vitq_i_build_floats(a, heads * n * n, "relative position bias", &st);
    if (st) return st;
    vitq_i_swin_gather_bias(blk->rel_table, heads, w, blk->attn_bias);
    snprintf(key, sizeof key, "%s.attn_mask", pre);
    if (vitq_i_ckpt_has(c, key)) st = check_stored_mask(c, key, &m->stages[s], grid, w, blk->shift);
    return st;
}

static vitq_status load_stage(vitq_i_ckpt *c, vitq_i_net *m, int s) {
    const vitq_allocator *a = &m->alloc;
    const vitq_model_info *i = &m->info;
    vitq_i_stage *stage = &m->stages[s];
    char key[NAME_LEN];
    vitq_status st = VITQ_OK;
    stage->first_block = 0;
    for (int p = 0; p < s; p++) stage->first_block += i->stage_depth[p];
    if (s > 0) {
        size_t in = 4 * (size_t)i->stage_dim[s - 1];
        snprintf(key, sizeof key, "layers.%d.downsample.norm", s);
        st = vitq_i_build_layernorm(c, a, key, in, &stage->merge_norm);
        snprintf(key, sizeof key, "layers.%d.downsample.reduction", s);
        /* no bias in any implementation; a reparameterised (RepQ-ViT) file may carry one */
        if (!st) st = vitq_i_build_linear(c, a, key, (size_t)i->stage_dim[s], in, VITQ_I_BIAS_OPTIONAL, &stage->merge);
    }
    int w = i->stage_window[s], grid = i->stage_grid[s];
    if (!st && i->stage_depth[s] > 1 && vitq_i_swin_shift(1, w, grid)) {
        size_t n = (size_t)w * (size_t)w, windows = (size_t)(grid / w) * (size_t)(grid / w);
        stage->mask = vitq_i_build_floats(a, windows * n * n, "shifted-window mask", &st);
        if (!st) vitq_i_swin_fill_mask(grid, w, vitq_i_swin_shift(1, w, grid), stage->mask);
    }
    for (int b = 0; !st && b < i->stage_depth[s]; b++)
        st = load_block(c, m, s, b, &m->blocks[stage->first_block + b]);
    return st;
}

static vitq_status load_weights(vitq_i_ckpt *c, vitq_i_net *m) {
    const vitq_allocator *a = &m->alloc;
    const vitq_model_info *i = &m->info;
    size_t d = (size_t)i->embed_dim;
    size_t last = (size_t)i->stage_dim[i->num_stages - 1];
    vitq_status st = VITQ_OK;
    st = vitq_i_build_patch_embed(c, m);
    /* timm's patch_norm=False variant has no LayerNorm here */
    if (!st && vitq_i_ckpt_has(c, "patch_embed.norm.weight"))
        st = vitq_i_build_layernorm(c, a, "patch_embed.norm", d, &m->patch_norm);
    if (!st) {
        m->blocks = vitq_i_calloc(a, (size_t)i->depth, sizeof *m->blocks);
        m->stages = vitq_i_calloc(a, (size_t)i->num_stages, sizeof *m->stages);
        if (!m->blocks || !m->stages) st = vitq_i_oom("Swin stages and blocks", (size_t)i->depth * sizeof *m->blocks);
    }
    for (int s = 0; !st && s < i->num_stages; s++) st = load_stage(c, m, s);
    if (!st) st = vitq_i_build_layernorm(c, a, "norm", last, &m->norm);
    if (!st) st = vitq_i_build_linear(c, a, "head", (size_t)i->num_classes, last, VITQ_I_BIAS_REQUIRED, &m->head);
    return st;
}

static void count_cost(vitq_i_net *m) {
    vitq_model_info *i = &m->info;
    uint64_t patch_in = (uint64_t)i->in_channels * (uint64_t)i->patch_size * (uint64_t)i->patch_size;
    uint64_t params = patch_in * (uint64_t)i->embed_dim + (uint64_t)i->embed_dim;
    if (m->patch_norm.gamma) params += 2 * (uint64_t)i->embed_dim;
    uint64_t tokens0 = (uint64_t)i->num_tokens;
    double macs = (double)tokens0 * (double)(patch_in * (uint64_t)i->embed_dim);
    for (int s = 0; s < i->num_stages; s++) {
        uint64_t d = (uint64_t)i->stage_dim[s], t = (uint64_t)i->stage_grid[s] * (uint64_t)i->stage_grid[s];
        uint64_t n = (uint64_t)i->stage_window[s] * (uint64_t)i->stage_window[s];
        uint64_t side = 2 * (uint64_t)i->stage_window[s] - 1;
        if (s > 0) {
            uint64_t in = 4 * (uint64_t)i->stage_dim[s - 1];
            params += 2 * in + in * d;
            macs += (double)t * (double)(in * d);
        }
        for (int b = 0; b < i->stage_depth[s]; b++) {
            const vitq_i_block *blk = &m->blocks[m->stages[s].first_block + b];
            uint64_t h = (uint64_t)blk->fc1.out;
            params += 4 * d + (3 * d * d + 3 * d) + (d * d + d) + (h * d + h) + (d * h + d) +
                      side * side * (uint64_t)i->stage_heads[s];
            macs += (double)t * (4.0 * (double)(d * d) + 2.0 * (double)(d * h)) + 2.0 * (double)(t * n * d);
        }
    }
    uint64_t last = (uint64_t)i->stage_dim[i->num_stages - 1];
    params += 2 * last + (uint64_t)i->num_classes * (last + 1);
    macs += (double)((uint64_t)i->num_classes * last);
    i->num_params = params;
    i->gflops = 2.0 * macs / 1e9;
}

static void fill_info(vitq_i_net *m, const vitq_i_shape_facts *f) {
    vitq_model_info *i = &m->info;
    i->arch = VITQ_ARCH_SWIN;
    i->num_prefix_tokens = 0;
    i->num_stages = f->num_stages;
    int grid = i->image_size / i->patch_size;
    i->num_tokens = grid * grid;
    for (int s = 0; s < f->num_stages; s++) {
        if (s > 0) grid /= 2;
        i->stage_depth[s] = f->stage_depth[s];
        i->stage_dim[s] = f->stage_dim[s];
        i->stage_heads[s] = f->stage_heads[s];
        i->stage_window[s] = f->stage_window[s];
        i->stage_grid[s] = grid;
    }
}

vitq_status vitq_i_swin_build(vitq_i_ckpt *c, const vitq_i_config_inputs *in, vitq_i_net **out) {
    static const vitq_i_family_builder swin = {collect_facts, fill_info, load_weights, count_cost};
    return vitq_i_build_model(&swin, c, in, out);
}
