/* The tensors of a model, named and shaped as timm stores them (see model_tensors.h). */
#include <stdio.h>

#include "model/model_tensors.h"

typedef struct walker {
    vitq_i_tensor_fn fn;
    void *ctx;
} walker;

static vitq_status emit_any(const walker *w, const char *prefix, const char *suffix, int ndim, uint64_t a,
                            uint64_t b, uint64_t c, uint64_t d, const float *data, const vitq_i_linear *layer) {
    char name[160];
    uint64_t shape[4] = {a, b, c, d};
    snprintf(name, sizeof name, "%s%s%s", prefix, *suffix ? "." : "", suffix);
    return w->fn(w->ctx, name, ndim, shape, data, layer);
}

static vitq_status emit(const walker *w, const char *prefix, const char *suffix, int ndim, uint64_t a, uint64_t b,
                        uint64_t c, uint64_t d, const float *data) {
    return emit_any(w, prefix, suffix, ndim, a, b, c, d, data, NULL);
}

static int any_nonzero(const float *x, size_t n) {
    for (size_t i = 0; x && i < n; i++)
        if (x[i] != 0.0f) return 1;
    return 0;
}

static vitq_status linear(const walker *w, const char *prefix, const vitq_i_linear *l, int with_bias) {
    vitq_status st = emit_any(w, prefix, "weight", 2, l->out, l->in, 0, 0, NULL, l);
    if (!st && with_bias) st = emit(w, prefix, "bias", 1, l->out, 0, 0, 0, l->bias);
    return st;
}

static vitq_status layernorm(const walker *w, const char *prefix, const vitq_i_layernorm_params *ln, size_t dim) {
    vitq_status st = emit(w, prefix, "weight", 1, dim, 0, 0, 0, ln->gamma);
    return st ? st : emit(w, prefix, "bias", 1, dim, 0, 0, 0, ln->beta);
}

static vitq_status block(const walker *w, const char *pre, const vitq_i_block *blk, size_t d, size_t heads,
                         int window) {
    char name[128];
    vitq_status st;
    snprintf(name, sizeof name, "%s.norm1", pre);
    if ((st = layernorm(w, name, &blk->norm1, d))) return st;
    snprintf(name, sizeof name, "%s.attn.qkv", pre);
    if ((st = linear(w, name, &blk->qkv, 1))) return st;
    if (blk->rel_table) {
        size_t side = 2 * (size_t)window - 1;
        snprintf(name, sizeof name, "%s.attn", pre);
        if ((st = emit(w, name, "relative_position_bias_table", 2, side * side, heads, 0, 0, blk->rel_table)))
            return st;
    }
    snprintf(name, sizeof name, "%s.attn.proj", pre);
    if ((st = linear(w, name, &blk->proj, 1))) return st;
    snprintf(name, sizeof name, "%s.norm2", pre);
    if ((st = layernorm(w, name, &blk->norm2, d))) return st;
    snprintf(name, sizeof name, "%s.mlp.fc1", pre);
    if ((st = linear(w, name, &blk->fc1, 1))) return st;
    snprintf(name, sizeof name, "%s.mlp.fc2", pre);
    return linear(w, name, &blk->fc2, 1);
}

static vitq_status patch_embed(const walker *w, const vitq_i_net *m) {
    const vitq_model_info *i = &m->info;
    uint64_t p = (uint64_t)i->patch_size;
    vitq_status st = emit_any(w, "patch_embed.proj", "weight", 4, (uint64_t)i->embed_dim, (uint64_t)i->in_channels,
                              p, p, NULL, &m->patch_embed);
    return st ? st : emit(w, "patch_embed.proj", "bias", 1, (uint64_t)i->embed_dim, 0, 0, 0, m->patch_embed.bias);
}

static vitq_status swin(const walker *w, const vitq_i_net *m) {
    const vitq_model_info *i = &m->info;
    vitq_status st = patch_embed(w, m);
    if (!st && m->patch_norm.gamma) st = layernorm(w, "patch_embed.norm", &m->patch_norm, (size_t)i->embed_dim);
    for (int s = 0; !st && s < i->num_stages; s++) {
        char pre[96];
        if (s > 0) {
            snprintf(pre, sizeof pre, "layers.%d.downsample.norm", s);
            st = layernorm(w, pre, &m->stages[s].merge_norm, 4 * (size_t)i->stage_dim[s - 1]);
            snprintf(pre, sizeof pre, "layers.%d.downsample.reduction", s);
            /* Swin's reduction has no bias, unless a reparameterisation (RepQ-ViT) gave it one */
            if (!st) st = linear(w, pre, &m->stages[s].merge, any_nonzero(m->stages[s].merge.bias, m->stages[s].merge.out));
        }
        for (int b = 0; !st && b < i->stage_depth[s]; b++) {
            snprintf(pre, sizeof pre, "layers.%d.blocks.%d", s, b);
            st = block(w, pre, &m->blocks[m->stages[s].first_block + b], (size_t)i->stage_dim[s],
                       (size_t)i->stage_heads[s], i->stage_window[s]);
        }
    }
    size_t last = (size_t)i->stage_dim[i->num_stages - 1];
    if (!st) st = layernorm(w, "norm", &m->norm, last);
    return st ? st : linear(w, "head.fc", &m->head, 1);
}

static vitq_status vit(const walker *w, const vitq_i_net *m) {
    const vitq_model_info *i = &m->info;
    uint64_t d = (uint64_t)i->embed_dim;
    vitq_status st = patch_embed(w, m);
    if (!st) st = emit(w, "cls_token", "", 3, 1, 1, d, 0, m->cls_token);
    if (!st && m->dist_token) st = emit(w, "dist_token", "", 3, 1, 1, d, 0, m->dist_token);
    if (!st) st = emit(w, "pos_embed", "", 3, 1, (uint64_t)i->num_tokens, d, 0, m->pos_embed);
    for (int b = 0; !st && b < i->depth; b++) {
        char pre[64];
        snprintf(pre, sizeof pre, "blocks.%d", b);
        st = block(w, pre, &m->blocks[b], (size_t)d, (size_t)i->num_heads, 0);
    }
    if (!st) st = layernorm(w, "norm", &m->norm, (size_t)d);
    if (!st && m->pre_logits.out) st = linear(w, "pre_logits.fc", &m->pre_logits, 1); /* timm's in21k name */
    if (!st) st = linear(w, "head", &m->head, 1);
    if (!st && i->num_prefix_tokens == 2) st = linear(w, "head_dist", &m->head_dist, 1);
    return st;
}

vitq_status vitq_i_model_tensors(const vitq_i_net *m, vitq_i_tensor_fn fn, void *ctx) {
    walker w = {fn, ctx};
    return m->info.arch == VITQ_ARCH_SWIN ? swin(&w, m) : vit(&w, m);
}
