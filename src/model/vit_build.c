/* From checkpoint tensors to a ready-to-run model: shapes first (they fix most hyper-parameters),
 * then the configuration, then weights, then a check that nothing in the file was left unread. */
#include <stdio.h>
#include <string.h>

#include "model/checkpoint.h"
#include "model/vit_build.h"

#define NAME_LEN 128

static vitq_status shape_of(const vitq_i_ckpt *c, const char *canon, int want_ndim, uint64_t *shape) {
    int ndim;
    vitq_status st = vitq_i_ckpt_shape(c, canon, &ndim, shape);
    if (st) return st;
    if (ndim != want_ndim)
        return vitq_i_fail(VITQ_ERR_SHAPE, "%s: tensor '%s' has %d dimensions, expected %d", c->name, canon, ndim,
                           want_ndim);
    return VITQ_OK;
}

static vitq_status collect_facts(const vitq_i_ckpt *c, vitq_i_shape_facts *f) {
    uint64_t s[VITQ_I_MAX_DIMS];
    vitq_status st;
    memset(f, 0, sizeof *f);
    f->layout = c->layout;
    if ((st = shape_of(c, "patch_embed.proj.weight", 4, s))) return st;
    if (s[2] != s[3] || s[0] == 0 || s[1] == 0 || s[2] == 0 || s[0] > 65536 || s[1] > 64 || s[2] > 1024)
        return vitq_i_fail(VITQ_ERR_SHAPE, "%s: patch embedding weight [%llu,%llu,%llu,%llu] is not [D,C,p,p]",
                           c->name, (unsigned long long)s[0], (unsigned long long)s[1], (unsigned long long)s[2],
                           (unsigned long long)s[3]);
    f->embed_dim = (int)s[0];
    f->in_channels = (int)s[1];
    f->patch_size = (int)s[2];
    f->distilled = vitq_i_ckpt_has(c, "dist_token");
    f->num_prefix = f->distilled ? 2 : 1;
    if ((st = shape_of(c, "pos_embed", 3, s))) return st;
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
    if ((st = shape_of(c, "blocks.0.mlp.fc1.weight", 2, s))) return st;
    f->mlp_dim = (int)s[0];
    if (!vitq_i_ckpt_has(c, "head.weight"))
        return vitq_i_fail(VITQ_ERR_MISSING_TENSOR,
                           "%s: no classification head ('head.weight' / HF 'classifier.weight'): a backbone without "
                           "head cannot produce logits",
                           c->name);
    if ((st = shape_of(c, "head.weight", 2, s))) return st;
    f->num_classes = (int)s[0];
    if (f->distilled != vitq_i_ckpt_has(c, "head_dist.weight"))
        return vitq_i_fail(VITQ_ERR_MISSING_TENSOR, "%s: %s", c->name,
                           f->distilled ? "distillation token without distillation head ('head_dist.weight')"
                                        : "distillation head without distillation token ('dist_token')");
    return VITQ_OK;
}

static float *alloc_floats(const vitq_allocator *a, size_t n, const char *what, vitq_status *st) {
    float *p = vitq_i_alloc_array(a, n, sizeof(float));
    if (!p) *st = vitq_i_oom(what, n * sizeof(float));
    return p;
}

static vitq_status load_vector(vitq_i_ckpt *c, const vitq_allocator *a, const char *canon, size_t n,
                               float **out) {
    vitq_status st = VITQ_OK;
    uint64_t shape[1] = {n};
    *out = alloc_floats(a, n, canon, &st);
    if (st) return st;
    return vitq_i_ckpt_read(c, canon, 1, shape, *out);
}

/* Linear layer `prefix`.weight [out, in] and optional `prefix`.bias [out]. */
static vitq_status load_linear(vitq_i_ckpt *c, const vitq_allocator *a, const char *prefix, size_t out,
                               size_t in, vitq_i_linear *l) {
    char key[NAME_LEN];
    vitq_status st = VITQ_OK;
    uint64_t wshape[2] = {out, in};
    l->in = in;
    l->out = out;
    snprintf(key, sizeof key, "%s.weight", prefix);
    l->weight = alloc_floats(a, out * in, key, &st);
    if (!st) st = vitq_i_ckpt_read(c, key, 2, wshape, l->weight);
    snprintf(key, sizeof key, "%s.bias", prefix);
    if (!st && vitq_i_ckpt_has(c, key)) {
        st = load_vector(c, a, key, out, &l->bias);
    } else if (!st) {
        l->bias = vitq_i_calloc(a, out, sizeof(float)); /* e.g. timm qkv_bias=False */
        if (!l->bias) st = vitq_i_oom(key, out * sizeof(float));
    }
    if (!st) st = vitq_i_gemm_pack(a, l->weight, out, in, &l->packed);
    return st;
}

static vitq_status load_layernorm(vitq_i_ckpt *c, const vitq_allocator *a, const char *prefix, size_t dim,
                                  vitq_i_layernorm_params *ln) {
    char key[NAME_LEN];
    snprintf(key, sizeof key, "%s.weight", prefix);
    vitq_status st = load_vector(c, a, key, dim, &ln->gamma);
    snprintf(key, sizeof key, "%s.bias", prefix);
    if (!st) st = load_vector(c, a, key, dim, &ln->beta);
    return st;
}

static vitq_status load_weights(vitq_i_ckpt *c, vitq_model *m) {
    const vitq_allocator *a = &m->alloc;
    const vitq_model_info *i = &m->info;
    size_t d = (size_t)i->embed_dim, p = (size_t)i->patch_size, ch = (size_t)i->in_channels;
    size_t hidden = (size_t)i->mlp_dim, classes = (size_t)i->num_classes;
    vitq_status st = VITQ_OK;
    uint64_t token_shape[3] = {1, 1, d}, pos_shape[3] = {1, (uint64_t)i->num_tokens, d};
    uint64_t pe_shape[4] = {d, ch, p, p};

    m->patch_embed.in = ch * p * p;
    m->patch_embed.out = d;
    m->patch_embed.weight = alloc_floats(a, d * ch * p * p, "patch_embed.proj.weight", &st);
    if (!st) st = vitq_i_ckpt_read(c, "patch_embed.proj.weight", 4, pe_shape, m->patch_embed.weight);
    if (!st) st = load_vector(c, a, "patch_embed.proj.bias", d, &m->patch_embed.bias);
    if (!st) st = vitq_i_gemm_pack(a, m->patch_embed.weight, d, ch * p * p, &m->patch_embed.packed);
    if (!st) m->cls_token = alloc_floats(a, d, "cls_token", &st);
    if (!st) st = vitq_i_ckpt_read(c, "cls_token", 3, token_shape, m->cls_token);
    if (!st && i->num_prefix_tokens == 2) {
        m->dist_token = alloc_floats(a, d, "dist_token", &st);
        if (!st) st = vitq_i_ckpt_read(c, "dist_token", 3, token_shape, m->dist_token);
    }
    if (!st) m->pos_embed = alloc_floats(a, (size_t)i->num_tokens * d, "pos_embed", &st);
    if (!st) st = vitq_i_ckpt_read(c, "pos_embed", 3, pos_shape, m->pos_embed);
    if (!st) {
        m->blocks = vitq_i_calloc(a, (size_t)i->depth, sizeof *m->blocks);
        if (!m->blocks) st = vitq_i_oom("blocks", (size_t)i->depth * sizeof *m->blocks);
    }
    for (int b = 0; !st && b < i->depth; b++) {
        char key[NAME_LEN];
        vitq_i_block *blk = &m->blocks[b];
        snprintf(key, sizeof key, "blocks.%d.norm1", b);
        st = load_layernorm(c, a, key, d, &blk->norm1);
        snprintf(key, sizeof key, "blocks.%d.attn.qkv", b);
        if (!st) st = load_linear(c, a, key, 3 * d, d, &blk->qkv);
        snprintf(key, sizeof key, "blocks.%d.attn.proj", b);
        if (!st) st = load_linear(c, a, key, d, d, &blk->proj);
        snprintf(key, sizeof key, "blocks.%d.norm2", b);
        if (!st) st = load_layernorm(c, a, key, d, &blk->norm2);
        snprintf(key, sizeof key, "blocks.%d.mlp.fc1", b);
        if (!st) st = load_linear(c, a, key, hidden, d, &blk->fc1);
        snprintf(key, sizeof key, "blocks.%d.mlp.fc2", b);
        if (!st) st = load_linear(c, a, key, d, hidden, &blk->fc2);
    }
    if (!st) st = load_layernorm(c, a, "norm", d, &m->norm);
    if (!st) st = load_linear(c, a, "head", classes, d, &m->head);
    if (!st && i->num_prefix_tokens == 2) st = load_linear(c, a, "head_dist", classes, d, &m->head_dist);
    return st;
}

static void count_cost(vitq_model *m) {
    vitq_model_info *i = &m->info;
    uint64_t d = (uint64_t)i->embed_dim, t = (uint64_t)i->num_tokens, h = (uint64_t)i->mlp_dim;
    uint64_t patch_in = (uint64_t)i->in_channels * (uint64_t)i->patch_size * (uint64_t)i->patch_size;
    uint64_t heads_out = (uint64_t)i->num_classes * (d + 1) * (uint64_t)i->num_prefix_tokens;
    /* two LayerNorms (2d each) + qkv + proj + fc1 + fc2 */
    uint64_t per_block = 4 * d + (3 * d * d + 3 * d) + (d * d + d) + (h * d + h) + (d * h + d);
    i->num_params = (patch_in * d + d) + d * (uint64_t)i->num_prefix_tokens + t * d +
                    per_block * (uint64_t)i->depth + 2 * d + heads_out;
    double patches = (double)(t - (uint64_t)i->num_prefix_tokens);
    double macs_block = (double)t * (4.0 * (double)(d * d) + 2.0 * (double)(d * h)) + 2.0 * (double)(t * t * d);
    double macs = patches * (double)(patch_in * d) + macs_block * (double)i->depth +
                  (double)(heads_out / (d + 1) * d);
    i->gflops = 2.0 * macs / 1e9;
}

vitq_status vitq_i_vit_build(const vitq_allocator *a, const vitq_i_config_inputs *in, vitq_model **out) {
    vitq_i_ckpt ckpt;
    vitq_i_shape_facts facts;
    vitq_model *m = NULL;
    *out = NULL;
    vitq_status st = vitq_i_ckpt_open(&ckpt, a, in->st, in->name);
    if (!st) st = collect_facts(&ckpt, &facts);
    if (!st) {
        m = vitq_i_calloc(a, 1, sizeof *m);
        if (!m) st = vitq_i_oom("model", sizeof *m);
    }
    if (!st) {
        m->alloc = *a;
        vitq_model_info_init(&m->info);
        st = vitq_i_config_resolve(&facts, in, &m->info, m->sources);
    }
    if (!st) {
        vitq_model_info *i = &m->info;
        i->arch = facts.distilled ? VITQ_ARCH_DEIT_DISTILLED : VITQ_ARCH_VIT;
        i->layout = facts.layout;
        i->patch_size = facts.patch_size;
        i->in_channels = facts.in_channels;
        i->embed_dim = facts.embed_dim;
        i->depth = facts.depth;
        i->mlp_dim = facts.mlp_dim;
        i->num_classes = facts.num_classes;
        i->num_prefix_tokens = facts.num_prefix;
        i->num_tokens = facts.num_prefix + facts.pos_patches;
        m->num_threads = in->opts->num_threads;
        m->name = vitq_i_strdup(a, in->name ? in->name : "model");
        if (!m->name) st = vitq_i_oom("model name", 0);
    }
    if (!st) st = load_weights(&ckpt, m);
    if (!st) st = vitq_i_ckpt_check_all_used(&ckpt);
    vitq_i_ckpt_close(&ckpt);
    if (st) {
        vitq_i_model_destroy(m);
        return st;
    }
    count_cost(m);
    *out = m;
    return VITQ_OK;
}
