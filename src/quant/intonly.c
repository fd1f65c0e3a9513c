/* Compiling a quantized ViT / DeiT into its integer-only program (intonly.h). */
#include "quant/intonly.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "quant/dyadic.h"
#include "quant/integer.h"

/* Headroom of the residual stream: its scale puts the largest value any LayerNorm saw in calibration
 * at 2^20, so int32 holds 2^11 times more. */
#define RES_BITS 20
/* Fraction bits of FQ-ViT's P.V by shifts (at most 2^31 / (tokens 255)). */
#define LIS_FRAC 8

typedef struct builder {
    vitq_i_intonly *p;
    const vitq_i_net *m;
    const vitq_i_qmodel *q;
} builder;

static void *own(builder *b, size_t count, size_t size) {
    vitq_i_intonly *p = b->p;
    if (p->num_owned == p->cap_owned) {
        size_t cap = p->cap_owned ? 2 * p->cap_owned : 64;
        void **grown = vitq_i_alloc_array(&p->alloc, cap, sizeof *grown);
        if (!grown) return NULL;
        if (p->owned) memcpy(grown, p->owned, p->num_owned * sizeof *grown);
        vitq_i_free(&p->alloc, p->owned);
        p->owned = grown;
        p->cap_owned = cap;
    }
    void *block = vitq_i_calloc(&p->alloc, count ? count : 1, size);
    if (block) p->owned[p->num_owned++] = block;
    return block;
}

static vitq_status dyadic(double factor, const char *what, vitq_i_dyadic *out) {
    vitq_status st = vitq_i_dyadic_from_real(factor, out);
    if (st) vitq_i_error_prefix("integer-only model: %s", what);
    return st;
}

static vitq_i_requant_grid bytes_grid(const vitq_i_qact *a) {
    vitq_i_requant_grid g = {VITQ_I_RQ_UINT8, a->zero, a->qmin, a->qmax};
    return g;
}

static const vitq_i_requant_grid int16_grid = {VITQ_I_RQ_INT16, 0, -32767, 32767};

/* A requantization by factors[0 .. nm) onto grid g. */
static vitq_status requant(builder *b, const double *factors, size_t nm, vitq_i_requant_grid g, const char *what,
                           vitq_i_iv_requant *out) {
    out->m = own(b, nm, sizeof *out->m);
    out->nm = nm;
    out->g = g;
    if (!out->m) return vitq_i_oom(what, nm * sizeof *out->m);
    for (size_t i = 0; i < nm; i++) {
        vitq_status st = dyadic(factors[i], what, &out->m[i]);
        if (st) return st;
    }
    return VITQ_OK;
}

static vitq_status requant1(builder *b, double factor, vitq_i_requant_grid g, const char *what, vitq_i_iv_requant *out) {
    return requant(b, &factor, 1, g, what, out);
}

static const vitq_i_qnl *op_of(builder *b, int point, const char *what) {
    const vitq_i_qnl *nl = vitq_i_qmodel_nl(b->q, point);
    if (!nl)
        vitq_i_fail(VITQ_ERR_UNSUPPORTED, "integer-only execution: the %s runs in float (quantize with --nonlinear "
                    "ibert|fqvit|ivit|mixed)", what);
    return nl;
}

static vitq_status grid_of(builder *b, int point, const char *what, vitq_i_qact *g) {
    if (point >= 0 && vitq_i_integer_point_grid(b->q, point, g)) return VITQ_OK;
    return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "integer-only execution: %s: not quantized on a uniform grid of at most "
                       "8 bits (the integer kernels' only input)", what);
}

/* The layer's GEMM with its bias in int32 at a_scale w_scale[j]. */
static vitq_status linear(builder *b, const vitq_i_linear *l, const char *what, vitq_i_iv_linear *out) {
    if (!l->integer)
        return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "integer-only execution: %s has no integer kernel (its input and "
                           "weight must be uniform grids of at most 8 bits)", what);
    const vitq_i_qpacked *w = &l->integer->weight;
    out->w = w;
    out->a_zero = l->integer->act_zero;
    out->bias = NULL;
    if (!l->bias) return VITQ_OK;
    out->bias = own(b, w->n, sizeof(int32_t));
    if (!out->bias) return vitq_i_oom(what, w->n * sizeof(int32_t));
    for (size_t j = 0; j < w->n; j++) {
        double v = nearbyint((double)l->bias[j] / ((double)l->integer->act.scale * w->scale[j]));
        if (!(fabs(v) < 1073741824.0))
            return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "integer-only execution: %s: bias %d is %g units of its "
                               "accumulator, beyond int32", what, (int)j, v);
        out->bias[j] = (int32_t)v;
    }
    return VITQ_OK;
}

/* Per output column j of layer l: a_scale w_scale[j] / to. */
static vitq_status per_column(builder *b, const vitq_i_linear *l, size_t j0, size_t count, double to,
                              vitq_i_requant_grid g, const char *what, vitq_i_iv_requant *out) {
    double *f = vitq_i_alloc_array(&b->p->alloc, count, sizeof(double));
    if (!f) return vitq_i_oom(what, count * sizeof(double));
    for (size_t j = 0; j < count; j++)
        f[j] = (double)l->integer->act.scale * l->integer->weight.scale[j0 + j] / to;
    vitq_status st = requant(b, f, count, g, what, out);
    vitq_i_free(&b->p->alloc, f);
    return st;
}

static vitq_status op(const vitq_i_qnl *nl, vitq_i_iv_op *out) {
    switch (nl->op * 4 + nl->method) {
    case VITQ_I_NL_LAYERNORM * 4 + VITQ_NONLINEAR_FQVIT: out->kind = VITQ_I_IV_LN_PTF, out->p.ptf = nl->k.ptf_layernorm; break;
    case VITQ_I_NL_LAYERNORM * 4 + VITQ_NONLINEAR_IBERT:
    case VITQ_I_NL_LAYERNORM * 4 + VITQ_NONLINEAR_IVIT: out->kind = VITQ_I_IV_LN_INT, out->p.ln = nl->k.int_layernorm; break;
    case VITQ_I_NL_SOFTMAX * 4 + VITQ_NONLINEAR_IBERT:
        out->kind = VITQ_I_IV_SM_IBERT, out->p.ibert_softmax = nl->k.ibert_softmax;
        break;
    case VITQ_I_NL_SOFTMAX * 4 + VITQ_NONLINEAR_FQVIT: out->kind = VITQ_I_IV_SM_LIS, out->p.lis = nl->k.lis; break;
    case VITQ_I_NL_SOFTMAX * 4 + VITQ_NONLINEAR_IVIT: out->kind = VITQ_I_IV_SM_SHIFT, out->p.shiftmax = nl->k.shiftmax; break;
    case VITQ_I_NL_GELU * 4 + VITQ_NONLINEAR_IBERT: out->kind = VITQ_I_IV_GELU_IBERT, out->p.ibert_gelu = nl->k.ibert_gelu; break;
    case VITQ_I_NL_GELU * 4 + VITQ_NONLINEAR_IVIT: out->kind = VITQ_I_IV_GELU_SHIFT, out->p.shiftgelu = nl->k.shiftgelu; break;
    default: return vitq_i_fail(VITQ_ERR_BAD_STATE, "integer-only execution: operator %d of method %d", (int)nl->op,
                                (int)nl->method);
    }
    return VITQ_OK;
}

/* The largest value a LayerNorm's input grid holds. */
static double ln_range(const vitq_i_qnl *nl) { return nl->alpha ? nl->in_scale * 8 * 255 : nl->in_scale * 32767; }

/* Residual -> LayerNorm `point` -> the bytes of `next` (a layer with an integer kernel). */
static vitq_status norm(builder *b, int point, const vitq_i_linear *next, const char *what, vitq_i_iv_norm *out) {
    const vitq_i_qnl *nl = op_of(b, point, what);
    if (!nl) return VITQ_ERR_UNSUPPORTED;
    if (!next->integer)
        return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "integer-only execution: the layer after the %s has no integer kernel",
                           what);
    vitq_status st = op(nl, &out->op);
    if (st) return st;
    double res = b->p->res_scale;
    if (nl->alpha) { /* PTF: each channel on s_min 2^alpha_c, zero point in_zero, 8-bit codes */
        size_t C = (size_t)nl->channels;
        double *f = vitq_i_alloc_array(&b->p->alloc, C, sizeof(double));
        if (!f) return vitq_i_oom(what, C * sizeof(double));
        for (size_t c = 0; c < C; c++) f[c] = res / ldexp(nl->in_scale, nl->alpha[c]);
        vitq_i_requant_grid g = {VITQ_I_RQ_INT16, nl->in_zero, 0, 255};
        st = requant(b, f, C, g, what, &out->in);
        vitq_i_free(&b->p->alloc, f);
        if (st) return st;
        if (nl->k.ptf_layernorm.out.zero != 0) return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "%s: output zero point", what);
    } else {
        if ((st = requant1(b, res / nl->in_scale, int16_grid, what, &out->in))) return st;
        if (nl->k.int_layernorm.out.zero != 0) return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "%s: output zero point", what);
    }
    return requant1(b, nl->out_scale / next->integer->act.scale, bytes_grid(&next->integer->act), what, &out->out);
}

/* The residual stream's scale: the largest value of any LayerNorm's input grid at 2^RES_BITS. */
static vitq_status residual_scale(builder *b) {
    double range = 0;
    for (int i = 0; i < b->q->nl_count; i++)
        if (b->q->nl[i].op == VITQ_I_NL_LAYERNORM && ln_range(&b->q->nl[i]) > range) range = ln_range(&b->q->nl[i]);
    if (!(range > 0))
        return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "integer-only execution: the LayerNorms run in float (quantize with "
                           "--nonlinear ibert|fqvit|ivit|mixed)");
    b->p->res_scale = ldexp(range, -RES_BITS);
    return VITQ_OK;
}

static vitq_status res_add(builder *b, const vitq_i_linear *l, const char *what, vitq_i_dyadic **out) {
    vitq_i_iv_requant r = {NULL, 0, {VITQ_I_RQ_INT16, 0, 0, 0}};
    vitq_status st = per_column(b, l, 0, l->out, b->p->res_scale, r.g, what, &r);
    *out = r.m;
    return st;
}

static vitq_status block(builder *b, int index, vitq_i_iv_block *out) {
    const vitq_i_block *blk = &b->m->blocks[index];
    const vitq_i_block_sites *s = &b->q->list.sites.blocks[index];
    size_t d = (size_t)b->m->info.embed_dim, hd = d / (size_t)b->m->info.num_heads;
    char what[64];
    vitq_status st;
    snprintf(what, sizeof what, "block %d's norm1", index);
    if ((st = norm(b, s->norm1_in, &blk->qkv, what, &out->norm1))) return st;
    snprintf(what, sizeof what, "block %d's qkv", index);
    if ((st = linear(b, &blk->qkv, what, &out->qkv))) return st;
    vitq_i_qact *g = own(b, 4, sizeof *g); /* q, k, v, p */
    if (!g) return vitq_i_oom(what, 4 * sizeof *g);
    if ((st = grid_of(b, s->q, "Q", &g[0])) || (st = grid_of(b, s->k, "K", &g[1])) || (st = grid_of(b, s->v, "V", &g[2])))
        return st;
    if ((st = per_column(b, &blk->qkv, 0, d, g[0].scale, bytes_grid(&g[0]), what, &out->to_q)) ||
        (st = per_column(b, &blk->qkv, d, d, g[1].scale, bytes_grid(&g[1]), what, &out->to_k)) ||
        (st = per_column(b, &blk->qkv, 2 * d, d, g[2].scale, bytes_grid(&g[2]), what, &out->to_v)))
        return st;
    out->k_grid = &g[1];
    out->v_grid = &g[2];
    out->q_zero = g[0].zero + vitq_i_qact_offset(&g[0]);
    snprintf(what, sizeof what, "block %d's softmax", index);
    const vitq_i_qnl *sm = op_of(b, s->scores, what);
    if (!sm) return VITQ_ERR_UNSUPPORTED;
    if ((st = op(sm, &out->softmax))) return st;
    double qk = (double)g[0].scale * g[1].scale / sqrt((double)hd);
    if ((st = dyadic(qk / sm->in_scale, what, &out->to_scores))) return st;
    const vitq_i_qact *proj_in = blk->proj.integer ? &blk->proj.integer->act : NULL;
    if (!proj_in) return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "integer-only execution: block %d's proj has no integer "
                                     "kernel", index);
    if (out->softmax.kind == VITQ_I_IV_SM_LIS) {
        out->v_zero = g[2].zero;
        out->lis_frac = LIS_FRAC;
        st = requant1(b, ldexp(g[2].scale, -LIS_FRAC) / proj_in->scale, bytes_grid(proj_in), what, &out->to_proj);
    } else {
        if ((st = grid_of(b, s->probs, "the attention probabilities", &g[3]))) return st;
        out->p_zero = g[3].zero + vitq_i_qact_offset(&g[3]);
        if ((st = requant1(b, sm->out_scale / g[3].scale, bytes_grid(&g[3]), what, &out->to_p))) return st;
        st = requant1(b, (double)g[3].scale * g[2].scale / proj_in->scale, bytes_grid(proj_in), what, &out->to_proj);
    }
    if (st) return st;
    snprintf(what, sizeof what, "block %d's proj", index);
    if ((st = linear(b, &blk->proj, what, &out->proj)) || (st = res_add(b, &blk->proj, what, &out->proj_res))) return st;
    snprintf(what, sizeof what, "block %d's norm2", index);
    if ((st = norm(b, s->norm2_in, &blk->fc1, what, &out->norm2))) return st;
    snprintf(what, sizeof what, "block %d's fc1", index);
    if ((st = linear(b, &blk->fc1, what, &out->fc1))) return st;
    snprintf(what, sizeof what, "block %d's GELU", index);
    const vitq_i_qnl *ge = op_of(b, s->gelu_in, what);
    if (!ge) return VITQ_ERR_UNSUPPORTED;
    if ((st = op(ge, &out->gelu)) ||
        (st = per_column(b, &blk->fc1, 0, blk->fc1.out, ge->in_scale, int16_grid, what, &out->to_gelu)))
        return st;
    snprintf(what, sizeof what, "block %d's fc2", index);
    if ((st = linear(b, &blk->fc2, what, &out->fc2))) return st;
    if ((st = requant1(b, ge->out_scale / blk->fc2.integer->act.scale, bytes_grid(&blk->fc2.integer->act), what,
                       &out->to_fc2)))
        return st;
    return res_add(b, &blk->fc2, what, &out->fc2_res);
}

/* The weight point of layer l. */
static const vitq_i_qpoint *weight_point(const vitq_i_qmodel *q, const vitq_i_linear *l) {
    for (int i = 0; i < q->count; i++)
        if (q->list.points[q->qpoints[i].point].weight == l) return &q->qpoints[i];
    return NULL;
}

/* The patch embedding, one GEMM per colour channel on its pixels, and the constants of the stream. */
static vitq_status embedding(builder *b) {
    const vitq_i_net *m = b->m;
    const vitq_model_info *i = &m->info;
    vitq_i_intvit *p = &b->p->prog;
    const vitq_i_qpoint *wp = weight_point(b->q, &m->patch_embed);
    if (!wp) return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "integer-only execution: the patch embedding is not quantized");
    vitq_i_weight_ints w;
    vitq_status st = vitq_i_integer_weight_ints(&b->p->alloc, wp, &m->patch_embed, &w);
    size_t d = (size_t)i->embed_dim, C = (size_t)i->in_channels, pp = (size_t)(i->patch_size * i->patch_size);
    size_t t = (size_t)i->num_tokens, pre = (size_t)i->num_prefix_tokens, k = C * pp;
    int32_t *cols = st ? NULL : vitq_i_alloc_array(&b->p->alloc, d * pp, sizeof(int32_t));
    double *f = st ? NULL : vitq_i_alloc_array(&b->p->alloc, d, sizeof(double));
    b->p->packed = st ? NULL : vitq_i_calloc(&b->p->alloc, C, sizeof *b->p->packed);
    if (!st && (!cols || !f || !b->p->packed)) st = vitq_i_oom("integer-only patch embedding", d * pp * sizeof(int32_t));
    double res = b->p->res_scale;
    for (size_t c = 0; !st && c < C; c++) {
        for (size_t j = 0; j < d; j++) memcpy(cols + j * pp, w.codes + j * k + c * pp, pp * sizeof(int32_t));
        st = vitq_i_qgemm_pack(&b->p->alloc, cols, d, pp, w.bits, w.symmetric, w.scale, w.zero, d, 0, &b->p->packed[c]);
        if (!st) b->p->num_packed = (int)c + 1;
        p->patch_w[c] = b->p->packed[c];
        /* pixel q is the value (q / 255 - mean_c) / std_c: one unit of q is 1 / (255 std_c) */
        for (size_t j = 0; !st && j < d; j++) f[j] = (double)w.scale[j] / (255.0 * i->std[c] * res);
        vitq_i_iv_requant r = {NULL, 0, {VITQ_I_RQ_INT16, 0, 0, 0}};
        if (!st) st = requant(b, f, d, r.g, "the patch embedding", &r);
        p->patch_res[c] = r.m;
    }
    p->embed_const = st ? NULL : own(b, t * d, sizeof(int32_t));
    if (!st && !p->embed_const) st = vitq_i_oom("integer-only embeddings", t * d * sizeof(int32_t));
    for (size_t j = 0; !st && j < d; j++) {
        /* the patch tokens: bias - sum_c,k W[j][c,k] mean_c / std_c, plus the position */
        double base = m->patch_embed.bias ? m->patch_embed.bias[j] : 0.0;
        for (size_t c = 0; c < C; c++)
            for (size_t kk = 0; kk < pp; kk++)
                base -= (double)(w.codes[j * k + c * pp + kk] - w.zero[j]) * w.scale[j] * i->mean[c] / i->std[c];
        for (size_t tok = 0; tok < t; tok++) {
            double v = m->pos_embed[tok * d + j];
            if (tok == 0) v += m->cls_token[j];
            else if (tok == 1 && pre == 2) v += m->dist_token[j];
            else v += base;
            double units = nearbyint(v / res);
            if (!(fabs(units) < 2147483647.0))
                st = vitq_i_fail(VITQ_ERR_UNSUPPORTED, "integer-only execution: embedding %g beyond the residual "
                                 "stream's range", v);
            else p->embed_const[tok * d + j] = (int32_t)units;
        }
    }
    vitq_i_weight_ints_free(&b->p->alloc, &w);
    vitq_i_free(&b->p->alloc, cols);
    vitq_i_free(&b->p->alloc, f);
    return st;
}

static vitq_status heads(builder *b) {
    const vitq_i_net *m = b->m;
    vitq_i_intvit *p = &b->p->prog;
    vitq_status st = norm(b, b->q->list.sites.norm_in, &m->head, "final norm", &p->norm);
    if (!st) st = linear(b, &m->head, "the head", &p->head);
    size_t k = (size_t)m->info.num_classes;
    b->p->logit_scale = own(b, k, sizeof(float));
    if (!st && !b->p->logit_scale) st = vitq_i_oom("logit scales", k * sizeof(float));
    for (size_t j = 0; !st && j < k; j++)
        b->p->logit_scale[j] = m->head.integer->act.scale * m->head.integer->weight.scale[j];
    if (!st && m->head_dist.out) { /* the distillation token's final norm writes onto head_dist's own grid */
        st = norm(b, b->q->list.sites.norm_in, &m->head_dist, "final norm (distillation token)", &p->norm_dist);
        if (!st) st = linear(b, &m->head_dist, "the distillation head", &p->head_dist);
        b->p->logit_scale_dist = own(b, k, sizeof(float));
        if (!st && !b->p->logit_scale_dist) st = vitq_i_oom("logit scales", k * sizeof(float));
        for (size_t j = 0; !st && j < k; j++)
            b->p->logit_scale_dist[j] = m->head_dist.integer->act.scale * m->head_dist.integer->weight.scale[j];
    }
    return st;
}

vitq_status vitq_i_intonly_build(const vitq_i_net *m, const vitq_i_qmodel *q, vitq_i_intonly **out) {
    *out = NULL;
    const vitq_model_info *i = &m->info;
    if (i->arch == VITQ_ARCH_SWIN || m->stages)
        return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "integer-only execution: Swin is not supported yet (ViT and DeiT are)");
    if (m->pre_logits.out)
        return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "integer-only execution: the representation layer's tanh has no "
                           "integer kernel");
    vitq_i_intonly *p = vitq_i_calloc(&m->alloc, 1, sizeof *p);
    if (!p) return vitq_i_oom("integer-only model", sizeof *p);
    p->alloc = m->alloc;
    builder b = {p, m, q};
    vitq_i_intvit *g = &p->prog;
    g->channels = i->in_channels;
    g->image_size = i->image_size;
    g->patch = i->patch_size;
    g->grid = i->image_size / i->patch_size;
    g->tokens = i->num_tokens;
    g->prefix = i->num_prefix_tokens;
    g->dim = i->embed_dim;
    g->heads = i->num_heads;
    g->hidden = m->info.depth ? (int32_t)m->blocks[0].fc1.out : 0;
    g->depth = i->depth;
    g->classes = i->num_classes;
    vitq_status st = residual_scale(&b);
    if (!st) st = embedding(&b);
    g->blocks = st ? NULL : own(&b, (size_t)i->depth, sizeof *g->blocks);
    if (!st && !g->blocks) st = vitq_i_oom("integer-only blocks", (size_t)i->depth * sizeof *g->blocks);
    for (int k = 0; !st && k < i->depth; k++) st = block(&b, k, &g->blocks[k]);
    if (!st) st = heads(&b);
    if (st) {
        vitq_i_intonly_free(p);
        return st;
    }
    *out = p;
    return VITQ_OK;
}

void vitq_i_intonly_free(vitq_i_intonly *p) {
    if (!p) return;
    vitq_allocator a = p->alloc;
    for (size_t k = 0; k < p->num_owned; k++) vitq_i_free(&a, p->owned[k]);
    vitq_i_free(&a, p->owned);
    for (int c = 0; c < p->num_packed; c++) vitq_i_qpacked_free(&a, &p->packed[c]);
    vitq_i_free(&a, p->packed);
    vitq_i_free(&a, p);
}

/* Images per pass of the program: its scratch (~1.5 MB per DeiT-S image) is taken once per call and
 * reused chunk after chunk, so a large batch neither touches fresh pages per image nor leaves the
 * caches. */
#define INTONLY_CHUNK 8

vitq_status vitq_i_intonly_forward(const vitq_i_intonly *p, const uint8_t *pixels, size_t n, float *logits,
                                   int nthreads) {
    size_t k = (size_t)p->prog.classes, chunk = n < INTONLY_CHUNK ? n : INTONLY_CHUNK;
    size_t per_image = (size_t)p->prog.channels * (size_t)p->prog.image_size * (size_t)p->prog.image_size;
    size_t bytes = vitq_i_intvit_scratch_bytes(&p->prog, chunk, nthreads);
    if (bytes == SIZE_MAX) return vitq_i_oom("integer-only forward", SIZE_MAX);
    void *scratch = vitq_i_alloc(&p->alloc, bytes + 64);
    int32_t *out = vitq_i_alloc_array(&p->alloc, 2 * chunk * k, sizeof(int32_t));
    vitq_status st = scratch && out ? VITQ_OK : vitq_i_oom("integer-only forward", bytes);
    void *aligned = scratch ? (void *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63) : NULL;
    for (size_t first = 0; !st && first < n; first += chunk) {
        size_t count = n - first < chunk ? n - first : chunk;
        int32_t *dist = p->prog.head_dist.w ? out + count * k : NULL;
        st = vitq_i_intvit_run(&p->prog, pixels + first * per_image, count, out, dist, aligned, nthreads);
        for (size_t r = 0; !st && r < count; r++)
            for (size_t j = 0; j < k; j++) {
                float v = (float)out[r * k + j] * p->logit_scale[j];
                if (dist) v = (v + (float)dist[r * k + j] * p->logit_scale_dist[j]) / 2.0f;
                logits[(first + r) * k + j] = v;
            }
    }
    vitq_i_free(&p->alloc, scratch);
    vitq_i_free(&p->alloc, out);
    return st;
}
