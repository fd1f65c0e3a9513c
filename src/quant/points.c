/* Enumeration of a model's quantization points (see points.h). Names follow timm's modules for
 * every checkpoint layout (Swin: timm >= 0.9, patch merging named by the stage it starts). */
#include <stdio.h>
#include <string.h>

#include "quant/points.h"

typedef struct builder {
    vitq_i_point_list *list;
    int capacity;
} builder;

static int add(builder *b, const char *prefix, const char *suffix, vitq_point_kind kind, vitq_point_role role,
               int64_t channels, int64_t inner, int64_t heads, vitq_i_linear *weight) {
    int index = b->list->count;
    if (index >= b->capacity) return -1; /* cannot happen: capacity counts every add */
    vitq_i_point_desc *p = &b->list->points[b->list->count++];
    memset(p, 0, sizeof *p);
    /* names are short by construction (prefixes of at most ~40 characters) */
    size_t n = strlen(prefix), m = strlen(suffix);
    if (n + m + 2 > sizeof p->name) return -1;
    memcpy(p->name, prefix, n);
    if (n) p->name[n++] = '.';
    memcpy(p->name + n, suffix, m + 1);
    p->kind = kind;
    p->role = role;
    p->channels = channels;
    p->inner = inner;
    p->heads = heads;
    p->weight = weight;
    return index;
}

/* A linear layer: its input, then its weight. Returns the input's index. */
static int add_linear(builder *b, const char *prefix, vitq_point_role input_role, int64_t input_heads,
                      int64_t weight_heads, vitq_i_linear *l) {
    int in = add(b, prefix, "input", VITQ_POINT_ACTIVATION, input_role, (int64_t)l->in, 1, input_heads, NULL);
    add(b, prefix, "weight", VITQ_POINT_WEIGHT, VITQ_ROLE_LINEAR_WEIGHT, (int64_t)l->out, (int64_t)l->in,
        weight_heads, l);
    return in;
}

static void add_block(builder *b, const char *pre, vitq_i_block *blk, int64_t d, int64_t heads, int64_t tokens,
                      vitq_i_block_sites *s) {
    char name[VITQ_I_POINT_NAME];
    int64_t tt = tokens * tokens;
    s->norm1_in = add(b, pre, "norm1.input", VITQ_POINT_ACTIVATION, VITQ_ROLE_LAYERNORM_INPUT, d, 1, 0, NULL);
    snprintf(name, sizeof name, "%s.attn.qkv", pre);
    s->qkv_in = add_linear(b, name, VITQ_ROLE_POST_LAYERNORM, 0, 3 * heads, &blk->qkv);
    snprintf(name, sizeof name, "%s.attn", pre);
    s->q = add(b, name, "q", VITQ_POINT_ACTIVATION, VITQ_ROLE_QUERY, d, 1, heads, NULL);
    s->k = add(b, name, "k", VITQ_POINT_ACTIVATION, VITQ_ROLE_KEY, d, 1, heads, NULL);
    s->v = add(b, name, "v", VITQ_POINT_ACTIVATION, VITQ_ROLE_VALUE, d, 1, heads, NULL);
    s->scores = add(b, name, "softmax.input", VITQ_POINT_ACTIVATION, VITQ_ROLE_SOFTMAX_INPUT, heads, tt, heads, NULL);
    s->probs = add(b, name, "softmax.out", VITQ_POINT_ACTIVATION, VITQ_ROLE_POST_SOFTMAX, heads, tt, heads, NULL);
    snprintf(name, sizeof name, "%s.attn.proj", pre);
    s->proj_in = add_linear(b, name, VITQ_ROLE_LINEAR_INPUT, heads, 0, &blk->proj);
    s->norm2_in = add(b, pre, "norm2.input", VITQ_POINT_ACTIVATION, VITQ_ROLE_LAYERNORM_INPUT, d, 1, 0, NULL);
    snprintf(name, sizeof name, "%s.mlp.fc1", pre);
    s->fc1_in = add_linear(b, name, VITQ_ROLE_POST_LAYERNORM, 0, 0, &blk->fc1);
    snprintf(name, sizeof name, "%s.mlp", pre);
    s->gelu_in = add(b, name, "gelu.input", VITQ_POINT_ACTIVATION, VITQ_ROLE_GELU_INPUT, (int64_t)blk->fc1.out, 1,
                     0, NULL);
    snprintf(name, sizeof name, "%s.mlp.fc2", pre);
    s->fc2_in = add_linear(b, name, VITQ_ROLE_POST_GELU, 0, 0, &blk->fc2);
}

static int point_capacity(const vitq_i_net *m) {
    /* per block 12 activations + 4 weights; per stage 3 + 1; ends: patch 2 + 1, norm 1, pre_logits 2,
     * 2 heads x 2 */
    return 16 * m->info.depth + 4 * m->info.num_stages + 16;
}

vitq_status vitq_i_points_build(const vitq_allocator *a, vitq_i_net *m, vitq_i_point_list *out) {
    const vitq_model_info *i = &m->info;
    memset(out, 0, sizeof *out);
    int capacity = point_capacity(m);
    int stages = i->num_stages > 0 ? i->num_stages : 1;
    out->points = vitq_i_calloc(a, (size_t)capacity, sizeof *out->points);
    out->sites.blocks = vitq_i_calloc(a, (size_t)i->depth + 1, sizeof *out->sites.blocks);
    out->sites.stages = vitq_i_calloc(a, (size_t)stages, sizeof *out->sites.stages);
    if (!out->points || !out->sites.blocks || !out->sites.stages) {
        vitq_i_points_free(a, out);
        return vitq_i_oom("quantization points", (size_t)capacity * sizeof *out->points);
    }
    builder b = {out, capacity};
    vitq_i_sites *s = &out->sites;
    s->patch_norm_in = s->head_dist_in = s->pre_logits_in = -1;
    s->patch_in = add_linear(&b, "patch_embed.proj", VITQ_ROLE_IMAGE, 0, 0, &m->patch_embed);
    out->points[s->patch_in].edge = out->points[s->patch_in + 1].edge = 1;
    if (i->arch == VITQ_ARCH_SWIN) {
        if (m->patch_norm.gamma)
            s->patch_norm_in = add(&b, "patch_embed.norm", "input", VITQ_POINT_ACTIVATION, VITQ_ROLE_LAYERNORM_INPUT,
                                   i->embed_dim, 1, 0, NULL);
        for (int st = 0; st < i->num_stages; st++) {
            char pre[VITQ_I_POINT_NAME];
            vitq_i_stage_sites *ss = &s->stages[st];
            ss->merge_norm_in = ss->merge_in = -1;
            if (st > 0) {
                snprintf(pre, sizeof pre, "layers.%d.downsample.norm", st);
                ss->merge_norm_in = add(&b, pre, "input", VITQ_POINT_ACTIVATION, VITQ_ROLE_LAYERNORM_INPUT,
                                        4 * (int64_t)i->stage_dim[st - 1], 1, 0, NULL);
                snprintf(pre, sizeof pre, "layers.%d.downsample.reduction", st);
                ss->merge_in = add_linear(&b, pre, VITQ_ROLE_POST_LAYERNORM, 0, 0, &m->stages[st].merge);
            }
            int64_t win = i->stage_window[st];
            for (int k = 0; k < i->stage_depth[st]; k++) {
                int blk = m->stages[st].first_block + k;
                snprintf(pre, sizeof pre, "layers.%d.blocks.%d", st, k);
                add_block(&b, pre, &m->blocks[blk], i->stage_dim[st], i->stage_heads[st], win * win,
                          &s->blocks[blk]);
            }
        }
        int last = i->num_stages - 1;
        s->norm_in = add(&b, "norm", "input", VITQ_POINT_ACTIVATION, VITQ_ROLE_LAYERNORM_INPUT, i->stage_dim[last], 1,
                         0, NULL);
        s->head_in = add_linear(&b, "head.fc", VITQ_ROLE_LINEAR_INPUT, 0, 0, &m->head);
    } else {
        s->stages[0].merge_norm_in = s->stages[0].merge_in = -1;
        for (int k = 0; k < i->depth; k++) {
            char pre[VITQ_I_POINT_NAME];
            snprintf(pre, sizeof pre, "blocks.%d", k);
            add_block(&b, pre, &m->blocks[k], i->embed_dim, i->num_heads, i->num_tokens, &s->blocks[k]);
        }
        s->norm_in = add(&b, "norm", "input", VITQ_POINT_ACTIVATION, VITQ_ROLE_LAYERNORM_INPUT, i->embed_dim, 1, 0,
                         NULL);
        vitq_point_role head_role = VITQ_ROLE_POST_LAYERNORM;
        if (m->pre_logits.out) {
            /* the representation layer reads the final norm's output; the classifier then reads its
             * tanh output. Part of the classifier, so an edge layer as the head is. */
            s->pre_logits_in = add_linear(&b, "pre_logits.fc", VITQ_ROLE_POST_LAYERNORM, 0, 0, &m->pre_logits);
            out->points[s->pre_logits_in].edge = out->points[s->pre_logits_in + 1].edge = 1;
            head_role = VITQ_ROLE_LINEAR_INPUT;
        }
        s->head_in = add_linear(&b, "head", head_role, 0, 0, &m->head);
        if (i->num_prefix_tokens == 2) {
            s->head_dist_in = add_linear(&b, "head_dist", VITQ_ROLE_POST_LAYERNORM, 0, 0, &m->head_dist);
            out->points[s->head_dist_in].edge = out->points[s->head_dist_in + 1].edge = 1;
        }
    }
    out->points[s->head_in].edge = out->points[s->head_in + 1].edge = 1;
    return VITQ_OK;
}

void vitq_i_points_free(const vitq_allocator *a, vitq_i_point_list *list) {
    vitq_i_free(a, list->points);
    vitq_i_sites_free(a, &list->sites);
    memset(list, 0, sizeof *list);
}

int vitq_i_points_find(const vitq_i_point_list *list, const char *name) {
    for (int p = 0; p < list->count; p++)
        if (strcmp(list->points[p].name, name) == 0) return p;
    return -1;
}

static int keep(int site, const unsigned char *active) { return site >= 0 && active[site] ? site : -1; }

vitq_status vitq_i_sites_filter(const vitq_allocator *a, const vitq_i_net *m, const vitq_i_point_list *list,
                                const unsigned char *active, vitq_i_sites *out) {
    const vitq_i_sites *in = &list->sites;
    int stages = m->info.num_stages > 0 ? m->info.num_stages : 1;
    memset(out, 0, sizeof *out);
    out->blocks = vitq_i_calloc(a, (size_t)m->info.depth + 1, sizeof *out->blocks);
    out->stages = vitq_i_calloc(a, (size_t)stages, sizeof *out->stages);
    if (!out->blocks || !out->stages) {
        vitq_i_sites_free(a, out);
        return vitq_i_oom("quantization sites", (size_t)m->info.depth * sizeof *out->blocks);
    }
    out->patch_in = keep(in->patch_in, active);
    out->patch_norm_in = keep(in->patch_norm_in, active);
    out->norm_in = keep(in->norm_in, active);
    out->head_in = keep(in->head_in, active);
    out->head_dist_in = keep(in->head_dist_in, active);
    out->pre_logits_in = keep(in->pre_logits_in, active);
    for (int s = 0; s < stages; s++) {
        out->stages[s].merge_norm_in = keep(in->stages[s].merge_norm_in, active);
        out->stages[s].merge_in = keep(in->stages[s].merge_in, active);
    }
    for (int b = 0; b < m->info.depth; b++) {
        const vitq_i_block_sites *x = &in->blocks[b];
        vitq_i_block_sites *y = &out->blocks[b];
        y->norm1_in = keep(x->norm1_in, active);
        y->qkv_in = keep(x->qkv_in, active);
        y->q = keep(x->q, active);
        y->k = keep(x->k, active);
        y->v = keep(x->v, active);
        y->scores = keep(x->scores, active);
        y->probs = keep(x->probs, active);
        y->proj_in = keep(x->proj_in, active);
        y->norm2_in = keep(x->norm2_in, active);
        y->fc1_in = keep(x->fc1_in, active);
        y->gelu_in = keep(x->gelu_in, active);
        y->fc2_in = keep(x->fc2_in, active);
    }
    return VITQ_OK;
}

void vitq_i_sites_free(const vitq_allocator *a, vitq_i_sites *s) {
    vitq_i_free(a, s->blocks);
    vitq_i_free(a, s->stages);
    s->blocks = NULL;
    s->stages = NULL;
}
