/* From checkpoint tensors to a ready-to-run model: shapes first (they fix most hyper-parameters),
 * then the configuration, then weights, then a check that nothing in the file was left unread. */
#include <stdio.h>
#include <string.h>

#include "model/checkpoint.h"
#include "model/build_util.h"
#include "model/vit_build.h"

#define NAME_LEN VITQ_I_NAME_LEN

/* The representation layer (timm's pre_logits.fc of in21k ViTs, torchvision's heads.pre_logits): a
 * linear D -> R, then tanh, before the classifier. Its width R, 0 when the file has none; shapes
 * checked, and the classifier's input width checked against it. */
static vitq_status pre_logits_facts(const vitq_i_ckpt *c, const vitq_i_shape_facts *f, int *width) {
    uint64_t s[VITQ_I_MAX_DIMS];
    char name[NAME_LEN];
    vitq_status st;
    *width = 0;
    if (vitq_i_ckpt_has(c, "pre_logits.fc.weight")) {
        if ((st = vitq_i_build_shape(c, "pre_logits.fc.weight", 2, s))) return st;
        vitq_i_ckpt_translate(c, "pre_logits.fc.weight", name, sizeof name);
        if (s[1] != (uint64_t)f->embed_dim || s[0] == 0 || s[0] > 1000000)
            return vitq_i_fail(VITQ_ERR_SHAPE, "%s: representation layer '%s' is [%llu, %llu], not [R, width %d]",
                               c->name, name, (unsigned long long)s[0], (unsigned long long)s[1], f->embed_dim);
        if (f->distilled)
            return vitq_i_fail(VITQ_ERR_UNSUPPORTED,
                               "%s: a distilled DeiT with a representation layer ('%s') is not a known model",
                               c->name, name);
        *width = (int)s[0];
    }
    int want = *width ? *width : f->embed_dim;
    if ((st = vitq_i_build_shape(c, "head.weight", 2, s))) return st;
    if (s[1] != (uint64_t)want) {
        vitq_i_ckpt_translate(c, "head.weight", name, sizeof name);
        if (*width)
            return vitq_i_fail(VITQ_ERR_SHAPE, "%s: classifier '%s' is [%llu, %llu]; after the representation layer "
                               "(width %d) it must take %d inputs",
                               c->name, name, (unsigned long long)s[0], (unsigned long long)s[1], *width, *width);
        return vitq_i_fail(VITQ_ERR_SHAPE,
                           "%s: classifier '%s' is [%llu, %llu]: its input width %llu is not the model width %d, and "
                           "the file has no representation layer (pre_logits) that would make it",
                           c->name, name, (unsigned long long)s[0], (unsigned long long)s[1],
                           (unsigned long long)s[1], f->embed_dim);
    }
    return VITQ_OK;
}

static vitq_status collect_facts(const vitq_i_ckpt *c, vitq_i_shape_facts *f) {
    uint64_t s[VITQ_I_MAX_DIMS];
    vitq_status st;
    memset(f, 0, sizeof *f);
    f->layout = c->layout;
    if ((st = vitq_i_build_patch_facts(c, f))) return st;
    f->distilled = vitq_i_ckpt_has(c, "dist_token");
    f->num_prefix = f->distilled ? 2 : 1;
    if ((st = vitq_i_build_shape(c, "pos_embed", 3, s))) return st;
    if (s[0] != 1 || s[2] != (uint64_t)f->embed_dim || s[1] <= (uint64_t)f->num_prefix || s[1] > 1000000)
        return vitq_i_fail(VITQ_ERR_SHAPE,
                           "%s: pos_embed [%llu,%llu,%llu] is not [1, %d prefix tokens + patches, %d]%s", c->name,
                           (unsigned long long)s[0], (unsigned long long)s[1], (unsigned long long)s[2],
                           f->num_prefix, f->embed_dim,
                           s[1] == 0 ? "" : " (timm no_embed_class position embeddings are not supported)");
    f->pos_patches = (int)s[1] - f->num_prefix;
    char key[NAME_LEN];
    while (f->depth < 100000) {
        snprintf(key, sizeof key, "blocks.%d.norm1.weight", f->depth);
        if (!vitq_i_ckpt_has(c, key)) break;
        f->depth++;
    }
    if (f->depth == 0) return vitq_i_ckpt_shape(c, "blocks.0.norm1.weight", &(int){0}, s);
    if ((st = vitq_i_build_shape(c, "blocks.0.mlp.fc1.weight", 2, s))) return st;
    f->mlp_dim = (int)s[0];
    if ((st = vitq_i_build_head_facts(c, f))) return st;
    int representation;
    if ((st = pre_logits_facts(c, f, &representation))) return st;
    if (f->distilled != vitq_i_ckpt_has(c, "head_dist.weight"))
        return vitq_i_fail(VITQ_ERR_MISSING_TENSOR, "%s: %s", c->name,
                           f->distilled ? "distillation token without distillation head ('head_dist.weight')"
                                        : "distillation head without distillation token ('dist_token')");
    return VITQ_OK;
}

static vitq_status load_weights(vitq_i_ckpt *c, vitq_i_net *m) {
    const vitq_allocator *a = &m->alloc;
    vitq_model_info *i = &m->info;
    size_t d = (size_t)i->embed_dim;
    size_t hidden = (size_t)i->mlp_dim, classes = (size_t)i->num_classes;
    vitq_status st = VITQ_OK;
    uint64_t token_shape[3] = {1, 1, d}, pos_shape[3] = {1, (uint64_t)i->num_tokens, d};

    st = vitq_i_build_patch_embed(c, m);
    if (!st) m->cls_token = vitq_i_build_floats(a, d, "cls_token", &st);
    if (!st) st = vitq_i_ckpt_read(c, "cls_token", 3, token_shape, m->cls_token);
    if (!st && i->num_prefix_tokens == 2) {
        m->dist_token = vitq_i_build_floats(a, d, "dist_token", &st);
        if (!st) st = vitq_i_ckpt_read(c, "dist_token", 3, token_shape, m->dist_token);
    }
    if (!st) m->pos_embed = vitq_i_build_floats(a, (size_t)i->num_tokens * d, "pos_embed", &st);
    if (!st) st = vitq_i_ckpt_read(c, "pos_embed", 3, pos_shape, m->pos_embed);
    if (!st) {
        m->blocks = vitq_i_calloc(a, (size_t)i->depth, sizeof *m->blocks);
        if (!m->blocks) st = vitq_i_oom("blocks", (size_t)i->depth * sizeof *m->blocks);
    }
    for (int b = 0; !st && b < i->depth; b++) {
        char key[NAME_LEN];
        vitq_i_block *blk = &m->blocks[b];
        snprintf(key, sizeof key, "blocks.%d", b);
        st = vitq_i_build_block(c, a, key, d, hidden, blk);
    }
    if (!st) st = vitq_i_build_layernorm(c, a, "norm", d, &m->norm);
    size_t head_in = d;
    if (!st && vitq_i_ckpt_has(c, "pre_logits.fc.weight")) { /* shape checked by pre_logits_facts */
        uint64_t s[VITQ_I_MAX_DIMS];
        st = vitq_i_build_shape(c, "pre_logits.fc.weight", 2, s);
        if (!st) {
            head_in = (size_t)s[0];
            i->representation_size = (int32_t)s[0];
            st = vitq_i_build_linear(c, a, "pre_logits.fc", head_in, d, VITQ_I_BIAS_REQUIRED, &m->pre_logits);
        }
    }
    if (!st) st = vitq_i_build_linear(c, a, "head", classes, head_in, VITQ_I_BIAS_REQUIRED, &m->head);
    if (!st && i->num_prefix_tokens == 2)
        st = vitq_i_build_linear(c, a, "head_dist", classes, d, VITQ_I_BIAS_REQUIRED, &m->head_dist);
    return st;
}

static void count_cost(vitq_i_net *m) {
    vitq_model_info *i = &m->info;
    uint64_t d = (uint64_t)i->embed_dim, t = (uint64_t)i->num_tokens, h = (uint64_t)i->mlp_dim;
    uint64_t patch_in = (uint64_t)i->in_channels * (uint64_t)i->patch_size * (uint64_t)i->patch_size;
    uint64_t r = (uint64_t)i->representation_size, head_in = r ? r : d;
    uint64_t heads_macs = (uint64_t)i->num_classes * head_in * (uint64_t)i->num_prefix_tokens + r * d;
    uint64_t heads_out = heads_macs + (uint64_t)i->num_classes * (uint64_t)i->num_prefix_tokens + r;
    /* two LayerNorms (2d each) + qkv + proj + fc1 + fc2 */
    uint64_t per_block = 4 * d + (3 * d * d + 3 * d) + (d * d + d) + (h * d + h) + (d * h + d);
    i->num_params = (patch_in * d + d) + d * (uint64_t)i->num_prefix_tokens + t * d +
                    per_block * (uint64_t)i->depth + 2 * d + heads_out;
    double patches = (double)(t - (uint64_t)i->num_prefix_tokens);
    double macs_block = (double)t * (4.0 * (double)(d * d) + 2.0 * (double)(d * h)) + 2.0 * (double)(t * t * d);
    double macs = patches * (double)(patch_in * d) + macs_block * (double)i->depth + (double)heads_macs;
    i->gflops = 2.0 * macs / 1e9;
}

static void fill_info(vitq_i_net *m, const vitq_i_shape_facts *f) {
    vitq_model_info *i = &m->info;
    i->arch = f->distilled ? VITQ_ARCH_DEIT_DISTILLED : VITQ_ARCH_VIT;
    i->num_prefix_tokens = f->num_prefix;
    i->num_tokens = f->num_prefix + f->pos_patches;
    i->num_stages = 1;
    i->stage_depth[0] = i->depth;
    i->stage_dim[0] = i->embed_dim;
    i->stage_heads[0] = i->num_heads;
    i->stage_grid[0] = i->image_size / i->patch_size;
}

vitq_status vitq_i_vit_build(vitq_i_ckpt *c, const vitq_i_config_inputs *in, vitq_i_net **out) {
    static const vitq_i_family_builder vit = {collect_facts, fill_info, load_weights, count_cost};
    return vitq_i_build_model(&vit, c, in, out);
}
