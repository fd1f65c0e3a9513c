/* Reading weights into a model: shapes checked, floats allocated from the model's allocator, linear
 * layers packed for the GEMM. Shared by the ViT and Swin builders. */
#include <stdio.h>
#include <string.h>

#include "model/build_util.h"
#include "model/class_names.h"

vitq_status vitq_i_build_shape(const vitq_i_ckpt *c, const char *canon, int want_ndim, uint64_t *shape) {
    int ndim;
    vitq_status st = vitq_i_ckpt_shape(c, canon, &ndim, shape);
    if (st) return st;
    if (ndim != want_ndim)
        return vitq_i_fail(VITQ_ERR_SHAPE, "%s: tensor '%s' has %d dimensions, expected %d", c->name, canon, ndim,
                           want_ndim);
    return VITQ_OK;
}

vitq_status vitq_i_build_patch_facts(const vitq_i_ckpt *c, vitq_i_shape_facts *f) {
    uint64_t s[VITQ_I_MAX_DIMS];
    vitq_status st;
    if ((st = vitq_i_build_shape(c, "patch_embed.proj.weight", 4, s))) return st;
    if (s[2] != s[3] || s[0] == 0 || s[1] == 0 || s[2] == 0 || s[0] > 65536 || s[1] > 64 || s[2] > 1024)
        return vitq_i_fail(VITQ_ERR_SHAPE, "%s: patch embedding weight [%llu,%llu,%llu,%llu] is not [D,C,p,p]",
                           c->name, (unsigned long long)s[0], (unsigned long long)s[1], (unsigned long long)s[2],
                           (unsigned long long)s[3]);
    f->embed_dim = (int)s[0];
    f->in_channels = (int)s[1];
    f->patch_size = (int)s[2];
    return VITQ_OK;
}

vitq_status vitq_i_build_head_facts(const vitq_i_ckpt *c, vitq_i_shape_facts *f) {
    uint64_t s[VITQ_I_MAX_DIMS];
    char name[VITQ_I_NAME_LEN];
    if (!vitq_i_ckpt_has(c, "head.weight")) {
        int named = vitq_i_ckpt_translate(c, "head.weight", name, sizeof name);
        /* timm Swin names it head.fc (>= 0.9) or head (< 0.9): with neither present, name both */
        int both = c->family == VITQ_I_FAMILY_SWIN && c->layout != VITQ_LAYOUT_HF;
        return vitq_i_fail(VITQ_ERR_MISSING_TENSOR,
                           "%s: no classification head ('%s'%s): a backbone without head cannot produce logits",
                           c->name, named ? name : "head.weight", both ? " or 'head.fc.weight'" : "");
    }
    vitq_status st = vitq_i_build_shape(c, "head.weight", 2, s);
    if (!st) f->num_classes = (int)s[0];
    return st;
}

float *vitq_i_build_floats(const vitq_allocator *a, size_t n, const char *what, vitq_status *st) {
    float *p = vitq_i_alloc_array(a, n, sizeof(float));
    if (!p) *st = vitq_i_oom(what, n * sizeof(float));
    return p;
}

vitq_status vitq_i_build_vector(vitq_i_ckpt *c, const vitq_allocator *a, const char *canon, size_t n,
                               float **out) {
    vitq_status st = VITQ_OK;
    uint64_t shape[1] = {n};
    *out = vitq_i_build_floats(a, n, canon, &st);
    if (st) return st;
    return vitq_i_ckpt_read(c, canon, 1, shape, *out);
}

vitq_status vitq_i_build_linear(vitq_i_ckpt *c, const vitq_allocator *a, const char *prefix, size_t out,
                               size_t in, vitq_i_bias_rule bias, vitq_i_linear *l) {
    char key[VITQ_I_NAME_LEN];
    vitq_status st = VITQ_OK;
    uint64_t wshape[2] = {out, in};
    l->in = in;
    l->out = out;
    snprintf(key, sizeof key, "%s.weight", prefix);
    l->weight = vitq_i_build_floats(a, out * in, key, &st);
    if (!st) st = vitq_i_ckpt_read(c, key, 2, wshape, l->weight);
    snprintf(key, sizeof key, "%s.bias", prefix);
    if (!st && (vitq_i_ckpt_has(c, key) || bias == VITQ_I_BIAS_REQUIRED)) {
        st = vitq_i_build_vector(c, a, key, out, &l->bias); /* names the missing bias */
    } else if (!st) {
        l->bias = vitq_i_calloc(a, out, sizeof(float)); /* e.g. timm qkv_bias=False */
        if (!l->bias) st = vitq_i_oom(key, out * sizeof(float));
    }
    /* A quantized weight is only checked here: its kernel (integer or float panels) is built by the
     * loader from its codes, one layer at a time (quant/load.c). */
    snprintf(key, sizeof key, "%s.weight", prefix);
    if (!st && !vitq_i_ckpt_pack_later(c, key)) st = vitq_i_gemm_pack(a, l->weight, out, in, &l->packed);
    vitq_i_free(a, l->weight); /* the panels are the one copy kept (model/weights.h) */
    l->weight = NULL;
    return st;
}

vitq_status vitq_i_build_layernorm(vitq_i_ckpt *c, const vitq_allocator *a, const char *prefix, size_t dim,
                                  vitq_i_layernorm_params *ln) {
    char key[VITQ_I_NAME_LEN];
    snprintf(key, sizeof key, "%s.weight", prefix);
    vitq_status st = vitq_i_build_vector(c, a, key, dim, &ln->gamma);
    snprintf(key, sizeof key, "%s.bias", prefix);
    if (!st) st = vitq_i_build_vector(c, a, key, dim, &ln->beta);
    return st;
}


vitq_status vitq_i_build_patch_embed(vitq_i_ckpt *c, vitq_i_net *m) {
    const vitq_allocator *a = &m->alloc;
    size_t d = (size_t)m->info.embed_dim, p = (size_t)m->info.patch_size, ch = (size_t)m->info.in_channels;
    uint64_t shape[4] = {d, ch, p, p};
    vitq_status st = VITQ_OK;
    m->patch_embed.in = ch * p * p;
    m->patch_embed.out = d;
    m->patch_embed.weight = vitq_i_build_floats(a, d * ch * p * p, "patch_embed.proj.weight", &st);
    if (!st) st = vitq_i_ckpt_read(c, "patch_embed.proj.weight", 4, shape, m->patch_embed.weight);
    if (!st) st = vitq_i_build_vector(c, a, "patch_embed.proj.bias", d, &m->patch_embed.bias);
    if (!st && !vitq_i_ckpt_pack_later(c, "patch_embed.proj.weight"))
        st = vitq_i_gemm_pack(a, m->patch_embed.weight, d, ch * p * p, &m->patch_embed.packed);
    vitq_i_free(a, m->patch_embed.weight);
    m->patch_embed.weight = NULL;
    return st;
}

/* qkv [3 inner, d] with inner != d: multi-head attention whose heads x head size is not the model
 * width. Worth its own message: the generic shape error would suggest a damaged file. */
static vitq_status check_attention_width(const vitq_i_ckpt *c, const char *prefix, size_t d) {
    char key[VITQ_I_NAME_LEN], actual[VITQ_I_NAME_LEN];
    uint64_t s[VITQ_I_MAX_DIMS];
    int ndim;
    snprintf(key, sizeof key, "%s.attn.qkv.weight", prefix);
    if (!vitq_i_ckpt_has(c, key) || vitq_i_ckpt_shape(c, key, &ndim, s) != VITQ_OK) return VITQ_OK; /* read names it */
    if (ndim != 2 || s[1] != d || s[0] % 3 != 0 || s[0] == 3 * d) return VITQ_OK;
    if (!vitq_i_ckpt_translate(c, key, actual, sizeof actual)) snprintf(actual, sizeof actual, "%s", key);
    return vitq_i_fail(VITQ_ERR_UNSUPPORTED,
                       "%s: tensor '%s' is [%llu, %llu]: the attention's inner width %llu (heads x head size) is "
                       "not the model width %zu, as in lucidrains' vit-pytorch (dim_head x heads); vitq implements "
                       "attention whose heads x head size equals the width",
                       c->name, actual, (unsigned long long)s[0], (unsigned long long)s[1],
                       (unsigned long long)(s[0] / 3), d);
}

vitq_status vitq_i_build_block(vitq_i_ckpt *c, const vitq_allocator *a, const char *prefix, size_t d,
                               size_t hidden, vitq_i_block *blk) {
    char key[VITQ_I_NAME_LEN];
    snprintf(key, sizeof key, "%s.norm1", prefix);
    vitq_status st = vitq_i_build_layernorm(c, a, key, d, &blk->norm1);
    if (!st) st = check_attention_width(c, prefix, d);
    snprintf(key, sizeof key, "%s.attn.qkv", prefix);
    if (!st) st = vitq_i_build_linear(c, a, key, 3 * d, d, VITQ_I_BIAS_OPTIONAL, &blk->qkv);
    snprintf(key, sizeof key, "%s.attn.proj", prefix);
    if (!st) st = vitq_i_build_linear(c, a, key, d, d, VITQ_I_BIAS_REQUIRED, &blk->proj);
    snprintf(key, sizeof key, "%s.norm2", prefix);
    if (!st) st = vitq_i_build_layernorm(c, a, key, d, &blk->norm2);
    snprintf(key, sizeof key, "%s.mlp.fc1", prefix);
    if (!st) st = vitq_i_build_linear(c, a, key, hidden, d, VITQ_I_BIAS_REQUIRED, &blk->fc1);
    snprintf(key, sizeof key, "%s.mlp.fc2", prefix);
    if (!st) st = vitq_i_build_linear(c, a, key, d, hidden, VITQ_I_BIAS_REQUIRED, &blk->fc2);
    return st;
}

vitq_status vitq_i_build_model(const vitq_i_family_builder *fb, vitq_i_ckpt *c, const vitq_i_config_inputs *in,
                               vitq_i_net **out) {
    const vitq_allocator *a = c->alloc;
    vitq_i_shape_facts facts;
    vitq_i_net *m = NULL;
    *out = NULL;
    c->allow_non_finite = in->opts->allow_non_finite != 0;
    vitq_status st = fb->collect_facts(c, &facts);
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
        const vitq_i_shape_facts *f = &facts;
        i->layout = f->layout;
        i->patch_size = f->patch_size;
        i->in_channels = f->in_channels;
        i->embed_dim = f->embed_dim;
        i->depth = f->depth;
        i->mlp_dim = f->mlp_dim;
        i->num_classes = f->num_classes;
        fb->fill_info(m, &facts);
        m->num_threads = in->opts->num_threads;
        m->name = vitq_i_strdup(a, in->name ? in->name : "model");
        if (!m->name) st = vitq_i_oom("model name", 0);
    }
    if (!st) st = vitq_i_class_names_read(a, in, facts.num_classes, &m->class_names);
    if (!st) st = fb->load_weights(c, m);
    if (!st) st = vitq_i_ckpt_check_all_used(c);
    if (st) {
        vitq_i_net_destroy(m);
        /* a missing tensor is often one the file calls something else: say what was not recognised */
        return st == VITQ_ERR_MISSING_TENSOR ? vitq_i_ckpt_explain(c, st) : st;
    }
    fb->count_cost(m);
    *out = m;
    return VITQ_OK;
}
