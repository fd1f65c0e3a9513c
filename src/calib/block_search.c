/* Gradient-weighted search of quantizer parameters, part by part in forward order (PTQ4ViT, APQ-ViT;
 * docs/methods.md): the patch embedding, each block (Swin: each stage's patch merging first), the
 * classifiers.
 *
 * One forward and backward pass of the float network over the search images stores each block's input and
 * the gradient of the loss (cross-entropy against the float model's top-1 class) at its output; the
 * gradients inside a block come from the block's own backward, those at the outputs of the layers outside
 * the blocks from the block after them (the classifiers': from the logits). The search then walks a stream
 * through the network: the float network's (quantized_input 0, PTQ4ViT's parallel calibration) or the
 * output of the parts already quantized (quantized_input 1: scored against the float network's output, as
 * BRECQ; 2: against the float part on the same input, each part answering for its own error only).
 * Inside a part each quantized point has its parameter searched (search_point.c), one run of that part
 * alone per candidate, scored against the float network's output of the part by
 *   hessian: sum g^2 (O^ - O)^2 over the output O of the layer that consumes the point (PTQ4ViT);
 *   bbc:     the same on the block output, without the terms below a threshold set by the incumbent's
 *            terms (APQ-ViT's bottom elimination, our reading: search_point.h, docs/methods.md).
 * Points are searched in pairs (weight then input of a linear layer; Q then K; P then V), for `rounds`
 * rounds. Parallel mode (PTQ4ViT) quantizes only the pair being searched; sequential mode (APQ-ViT) keeps
 * the block's points searched before quantized. Layers outside the blocks: edge_search.c.
 *
 * Weights are fake-quantized in the packed copy the GEMM reads (the run's private model), so the float
 * weights that get encoded stay untouched; every packed weight is float again when the search ends. */
#include <math.h>
#include <string.h>

#include "calib/block_search.h"
#include "calib/edge_search.h"
#include "grad/backward.h"
#include "kernels/parallel.h"
#include "model/block.h"
#include "model/stem.h"
#include "model/swin_geometry.h"

enum { SITE_QKV, SITE_SCORES, SITE_ATTN, SITE_XMID, SITE_FC1, SITE_FC2, SITE_OUT, NUM_SITES };

/* The whole search. */
typedef struct search {
    vitq_i_run *r;
    const vitq_i_block_search_options *opt;
    size_t n;               /* search images: the run's first n */
    unsigned char *active;  /* per point: fake-quantized in the passes */
    float **x_in, **d_out;  /* per block: the float network's input and the gradient at the output */
    size_t *row_floats;     /* per block: floats per image */
    float *cur;             /* the stream the next part reads: [n][tokens][d], room for the widest stage */
    float *keep;            /* as large: the stream before a patch merging */
} search;

/* ---- passes over the parts outside the blocks -------------------------------------------------- */

typedef struct flow {
    const search *s;
    int capture[2];      /* points whose input is copied (before their quantization), -1: none */
    float *captured[2];
} flow;

static void capture_rows(float *dst, size_t width, size_t offset, const vitq_tensor_view *v) {
    size_t w = (size_t)(v->channels * v->inner);
    for (int64_t o = 0; o < v->outer; o++)
        memcpy(dst + (size_t)o * width + offset, v->data + o * v->outer_stride, w * sizeof(float));
}

static vitq_status flow_tap(vitq_i_taps *t, int point, const vitq_tensor_view *v) {
    const flow *f = t->ctx;
    for (int k = 0; k < 2; k++)
        if (point == f->capture[k] && f->captured[k])
            capture_rows(f->captured[k], (size_t)(v->channels * v->inner), 0, v);
    const vitq_i_qpoint *qp = vitq_i_run_qpoint(f->s->r, point);
    if (!qp || !f->s->active[point]) return VITQ_OK;
    return qp->inst.scheme.fake_quant(qp->inst.state, v);
}

static flow no_capture(const search *s) {
    flow f = {s, {-1, -1}, {NULL, NULL}};
    return f;
}

static vitq_status end_pass(vitq_i_pass *p, vitq_i_taps *t) {
    vitq_status st = vitq_i_pass_end(p);
    return st ? st : t->status;
}

/* The embedding of the search images into s->cur. */
static vitq_status run_embed(search *s, flow *f) {
    const vitq_i_net *m = s->r->model;
    const vitq_model_info *i = &m->info;
    size_t tokens = (size_t)i->num_tokens, d = (size_t)i->embed_dim;
    size_t patch_in = (size_t)i->in_channels * (size_t)i->patch_size * (size_t)i->patch_size;
    float *patches = vitq_i_alloc_array(s->r->alloc, s->n * tokens * patch_in, sizeof(float));
    float *embed = vitq_i_alloc_array(s->r->alloc, s->n * tokens * d, sizeof(float));
    if (!patches || !embed) {
        vitq_i_free(s->r->alloc, patches);
        vitq_i_free(s->r->alloc, embed);
        return vitq_i_oom("patch embedding", s->n * tokens * (patch_in + d) * sizeof(float));
    }
    vitq_i_taps taps = {.sites = &s->r->list->sites, .apply = flow_tap, .ctx = f};
    vitq_i_pass p;
    vitq_i_pass_begin(&p, m, &taps);
    if (i->arch == VITQ_ARCH_SWIN) vitq_i_swin_embed(&p, s->r->images, s->n, patches, s->cur);
    else vitq_i_vit_embed(&p, s->r->images, s->n, patches, embed, s->cur);
    vitq_i_free(s->r->alloc, patches);
    vitq_i_free(s->r->alloc, embed);
    return end_pass(&p, &taps);
}

/* Swin's patch merging into stage st from the stream `prev` into s->cur. */
static vitq_status run_merge(search *s, int st, const float *prev, flow *f) {
    const vitq_model_info *i = &s->r->model->info;
    size_t rows = s->n * (size_t)i->stage_grid[st] * (size_t)i->stage_grid[st], in = 4 * (size_t)i->stage_dim[st - 1];
    float *gather = vitq_i_alloc_array(s->r->alloc, rows * in, sizeof(float));
    if (!gather) return vitq_i_oom("patch merging", rows * in * sizeof(float));
    vitq_i_taps taps = {.sites = &s->r->list->sites, .apply = flow_tap, .ctx = f};
    vitq_i_pass p;
    vitq_i_pass_begin(&p, s->r->model, &taps);
    vitq_i_swin_merge(&p, st, s->n, prev, gather, s->cur);
    vitq_i_free(s->r->alloc, gather);
    return end_pass(&p, &taps);
}

/* The heads on the stream x (the last block's output): logits [n][classes]. */
static vitq_status run_classify(search *s, float *x, flow *f, float *logits) {
    const vitq_i_net *m = s->r->model;
    const vitq_model_info *i = &m->info;
    int last = i->num_stages - 1, swin = i->arch == VITQ_ARCH_SWIN;
    size_t d = (size_t)i->stage_dim[last], k = (size_t)i->num_classes;
    size_t tokens = swin ? (size_t)i->stage_grid[last] * (size_t)i->stage_grid[last] : 2;
    float *feat = vitq_i_alloc_array(s->r->alloc, s->n * (2 * tokens * d + d + k), sizeof(float));
    if (!feat) return vitq_i_oom("classifier", s->n * (2 * tokens * d + d + k) * sizeof(float));
    float *ln = feat + s->n * tokens * d, *pooled = ln + s->n * tokens * d, *dist = pooled + s->n * d;
    vitq_i_taps taps = {.sites = &s->r->list->sites, .apply = flow_tap, .ctx = f};
    vitq_i_pass p;
    vitq_i_pass_begin(&p, m, &taps);
    if (swin) vitq_i_swin_classify(&p, s->n, x, ln, pooled, logits);
    else vitq_i_vit_classify(&p, s->n, x, feat, ln, logits, dist);
    vitq_i_free(s->r->alloc, feat);
    return end_pass(&p, &taps);
}

/* Mark the quantized points among points[0..count) active (on) or not, their weights packed accordingly. */
static vitq_status set_part(search *s, const int *points, int count, int on) {
    vitq_status st = VITQ_OK;
    for (int k = 0; !st && k < count; k++) {
        int p = points[k];
        if (!vitq_i_run_qpoint(s->r, p)) continue;
        s->active[p] = (unsigned char)on;
        if (s->r->list->points[p].kind == VITQ_POINT_WEIGHT) st = vitq_i_run_set_weight(s->r, p, on);
    }
    return st;
}

static int quantized(const search *s, int p) { return vitq_i_run_qpoint(s->r, p) != NULL; }

/* The gradient at block b's input (the output of what comes before it). */
static vitq_status input_grad(const search *s, int b, float *d_in) {
    return vitq_i_block_backward(s->r->model, b, s->x_in[b], s->d_out[b], s->n, NULL, d_in);
}

/* ---- the patch embedding ------------------------------------------------------------------------- */

static vitq_status search_patch(search *s) {
    vitq_i_run *r = s->r;
    const vitq_i_net *m = r->model;
    const vitq_model_info *i = &m->info;
    int in = r->list->sites.patch_in, part[3] = {in, in + 1, r->list->sites.patch_norm_in};
    flow f = no_capture(s);
    if (!quantized(s, in) && !quantized(s, in + 1)) return run_embed(s, &f);
    const vitq_i_linear *l = &m->patch_embed;
    size_t tokens = (size_t)i->num_tokens, d = (size_t)i->embed_dim;
    size_t pre = i->arch == VITQ_ARCH_SWIN ? 0 : (size_t)i->num_prefix_tokens, rows = s->n * (tokens - pre);
    float *x = vitq_i_alloc_array(r->alloc, rows * l->in, sizeof(float));
    float *ref = vitq_i_alloc_array(r->alloc, rows * l->out, sizeof(float));
    float *grad = vitq_i_alloc_array(r->alloc, rows * l->out, sizeof(float));
    float *d_in = vitq_i_alloc_array(r->alloc, s->n * tokens * d, sizeof(float));
    vitq_status st = x && ref && grad && d_in ? VITQ_OK : vitq_i_oom("patch embedding search", rows * l->in * 16);
    f.capture[0] = in, f.captured[0] = x;
    if (!st) st = run_embed(s, &f); /* nothing quantized yet: the float network's */
    vitq_i_pass p;
    vitq_i_pass_begin(&p, m, NULL);
    if (!st) vitq_i_linear_run(&p, -1, l, x, l->in, rows, ref, l->out, VITQ_I_EPI_NONE);
    vitq_status pst = vitq_i_pass_end(&p);
    if (!st) st = pst;
    if (!st) st = input_grad(s, 0, d_in);
    if (!st && pre) /* ViT: the patch tokens' rows; position embeddings add nothing to the error */
        for (size_t b = 0; b < s->n; b++)
            memcpy(grad + b * (tokens - pre) * d, d_in + (b * tokens + pre) * d, (tokens - pre) * d * sizeof(float));
    else if (!st && m->patch_norm.gamma) /* Swin: back through the patch LayerNorm to the projection */
        vitq_i_layernorm_backward(ref, d_in, rows, d, m->patch_norm.gamma, VITQ_I_SWIN_STEM_EPS, grad, 0,
                                  vitq_i_resolve_threads(m->num_threads));
    else if (!st) memcpy(grad, d_in, rows * d * sizeof(float));
    vitq_i_edge_layer e = {l, in, x, rows, ref, grad};
    if (!st) st = vitq_i_edge_search(r, s->opt, s->active, &e);
    if (!st && s->opt->quantized_input) {
        f = no_capture(s);
        st = set_part(s, part, 3, 1);
        if (!st) st = run_embed(s, &f);
    }
    vitq_status off = set_part(s, part, 3, 0);
    vitq_i_free(r->alloc, x);
    vitq_i_free(r->alloc, ref);
    vitq_i_free(r->alloc, grad);
    vitq_i_free(r->alloc, d_in);
    return st ? st : off;
}

/* ---- Swin's patch merging ------------------------------------------------------------------------ */

static vitq_status search_merge(search *s, int stage) {
    vitq_i_run *r = s->r;
    const vitq_i_net *m = r->model;
    const vitq_model_info *i = &m->info;
    const vitq_i_stage_sites *ss = &r->list->sites.stages[stage];
    int in = ss->merge_in, part[3] = {ss->merge_norm_in, in, in + 1}, first = m->stages[stage].first_block;
    const vitq_i_linear *l = &m->stages[stage].merge;
    size_t prev = s->n * (size_t)i->stage_grid[stage - 1] * (size_t)i->stage_grid[stage - 1] *
                  (size_t)i->stage_dim[stage - 1];
    size_t rows = s->n * (size_t)i->stage_grid[stage] * (size_t)i->stage_grid[stage];
    memcpy(s->keep, s->cur, prev * sizeof(float));
    flow f = no_capture(s);
    vitq_status st = VITQ_OK;
    if (!quantized(s, in) && !quantized(s, in + 1)) {
        if (s->opt->quantized_input) st = set_part(s, part, 3, 1);
        if (!st) st = run_merge(s, stage, s->keep, &f);
        vitq_status off = set_part(s, part, 3, 0);
        return st ? st : off;
    }
    float *x = vitq_i_alloc_array(r->alloc, rows * l->in, sizeof(float));
    float *grad = vitq_i_alloc_array(r->alloc, rows * l->out, sizeof(float));
    if (!x || !grad) st = vitq_i_oom("patch merging search", rows * (l->in + l->out) * sizeof(float));
    f.capture[0] = in, f.captured[0] = x;
    if (!st) st = run_merge(s, stage, s->keep, &f); /* nothing of it quantized yet: s->cur is the float layer's */
    if (!st) st = input_grad(s, first, grad);
    /* the reference: the float network's merging output, the next block's float input, or (quantized_input
     * 2) the float layer's output on the input the candidates see */
    vitq_i_edge_layer e = {l, in, x, rows, s->opt->quantized_input == 2 ? s->cur : s->x_in[first], grad};
    if (!st) st = vitq_i_edge_search(r, s->opt, s->active, &e);
    if (!st && s->opt->quantized_input) {
        f = no_capture(s);
        st = set_part(s, part, 3, 1);
        if (!st) st = run_merge(s, stage, s->keep, &f);
    }
    vitq_status off = set_part(s, part, 3, 0);
    vitq_i_free(r->alloc, x);
    vitq_i_free(r->alloc, grad);
    return st ? st : off;
}

/* ---- the classifiers ----------------------------------------------------------------------------- */

/* Cross-entropy against each image's own top-1 class: softmax - onehot, times `scale`. */
static void logit_grad(const float *logits, size_t n, size_t k, float scale, float *g) {
    for (size_t b = 0; b < n; b++) {
        const float *l = logits + b * k;
        size_t top = 0;
        for (size_t c = 1; c < k; c++)
            if (l[c] > l[top]) top = c;
        double sum = 0.0;
        for (size_t c = 0; c < k; c++) sum += exp((double)l[c] - l[top]);
        for (size_t c = 0; c < k; c++)
            g[b * k + c] = scale * ((float)(exp((double)l[c] - l[top]) / sum) - (c == top ? 1.0f : 0.0f));
    }
}

static vitq_status search_heads(search *s) {
    vitq_i_run *r = s->r;
    const vitq_i_net *m = r->model;
    const vitq_model_info *i = &m->info;
    const vitq_i_linear *heads[2] = {&m->head, &m->head_dist};
    int in[2] = {r->list->sites.head_in, r->list->sites.head_dist_in}, count = in[1] >= 0 ? 2 : 1, any = 0;
    for (int h = 0; h < count; h++) any |= quantized(s, in[h]) || quantized(s, in[h] + 1);
    if (!any) return VITQ_OK;
    int last = i->depth - 1, part[5] = {r->list->sites.norm_in, in[0], in[0] + 1, in[1], in[1] + 1};
    size_t k = (size_t)i->num_classes, feat[2] = {heads[0]->in, heads[1]->in}, tokens = s->row_floats[last];
    float *buf = vitq_i_alloc_array(r->alloc, s->n * (tokens + 2 * k + 4 * (feat[0] + feat[1]) + 3 * k), sizeof(float));
    if (!buf) return vitq_i_oom("classifier search", s->n * tokens * sizeof(float));
    float *stream = buf, *logits = stream + s->n * tokens, *grad = logits + s->n * k;
    float *xf[2] = {grad + s->n * k, NULL}, *xq[2], *ref[2];
    xf[1] = xf[0] + s->n * feat[0];
    xq[0] = xf[1] + s->n * feat[1], xq[1] = xq[0] + s->n * feat[0];
    ref[0] = xq[1] + s->n * feat[1], ref[1] = ref[0] + s->n * k;
    /* the float network's heads: their inputs, their outputs and the gradient there */
    flow f = {s, {in[0], count > 1 ? in[1] : -1}, {xf[0], xf[1]}};
    memcpy(stream, s->x_in[last], s->n * tokens * sizeof(float));
    vitq_status st = vitq_i_net_block_forward(m, last, stream, s->n, NULL);
    if (!st) st = run_classify(s, stream, &f, logits);
    logit_grad(logits, s->n, k, count > 1 ? 0.5f : 1.0f, grad); /* distilled: logits are the two heads' mean */
    vitq_i_pass p;
    vitq_i_pass_begin(&p, m, NULL);
    for (int h = 0; !st && h < count; h++)
        vitq_i_linear_run(&p, -1, heads[h], xf[h], heads[h]->in, s->n, ref[h], k, VITQ_I_EPI_NONE);
    vitq_status pst = vitq_i_pass_end(&p);
    if (!st) st = pst;
    const float *const *x = (const float *const *)xf;
    if (!st && s->opt->quantized_input) { /* the heads' inputs from the quantized network */
        flow fq = {s, {in[0], count > 1 ? in[1] : -1}, {xq[0], xq[1]}};
        float *ql = ref[1] + s->n * k; /* the quantized network's logits: not needed */
        st = set_part(s, part, 1, 1);
        if (!st) st = run_classify(s, s->cur, &fq, ql);
        x = (const float *const *)xq;
        vitq_i_pass_begin(&p, m, NULL); /* quantized_input 2: the float heads on those inputs */
        for (int h = 0; !st && h < count && s->opt->quantized_input == 2; h++)
            vitq_i_linear_run(&p, -1, heads[h], xq[h], heads[h]->in, s->n, ref[h], k, VITQ_I_EPI_NONE);
        pst = vitq_i_pass_end(&p);
        if (!st) st = pst;
    }
    for (int h = 0; !st && h < count; h++) {
        vitq_i_edge_layer e = {heads[h], in[h], x[h], s->n, ref[h], grad};
        st = vitq_i_edge_search(r, s->opt, s->active, &e);
    }
    vitq_status off = set_part(s, part, 2 * count + 1, 0);
    vitq_i_free(r->alloc, buf);
    return st ? st : off;
}

/* ---- one block ----------------------------------------------------------------------------------- */

typedef struct block_ctx {
    search *s;
    vitq_i_run *r;
    const vitq_i_block_search_options *opt;
    int b;
    size_t n, rows, d, hidden, heads, seq_tokens;
    const float *x_in, *x_start; /* the float network's input, the input candidates run on */
    const float *d_out;          /* gradient at the block's output */
    int site;                    /* the output the point under search is scored on */
    float *ref[NUM_SITES];       /* float outputs */
    float *grad[NUM_SITES];      /* their gradients */
    float *cap[NUM_SITES];       /* outputs of the run under way */
    size_t size[NUM_SITES], width[NUM_SITES];
    float *work;                 /* [rows][d] */
} block_ctx;

static vitq_status search_tap(vitq_i_taps *t, int point, const vitq_tensor_view *v) {
    block_ctx *c = t->ctx;
    const vitq_i_block_sites *s = &c->r->list->sites.blocks[c->b];
    if (point == s->q || point == s->k || point == s->v)
        capture_rows(c->cap[SITE_QKV], 3 * c->d, point == s->q ? 0 : point == s->k ? c->d : 2 * c->d, v);
    else if (point == s->scores) capture_rows(c->cap[SITE_SCORES], (size_t)(v->channels * v->inner), 0, v);
    else if (point == s->proj_in) capture_rows(c->cap[SITE_ATTN], c->d, 0, v);
    else if (point == s->norm2_in) capture_rows(c->cap[SITE_XMID], c->d, 0, v);
    else if (point == s->gelu_in) capture_rows(c->cap[SITE_FC1], c->hidden, 0, v);
    const vitq_i_qpoint *qp = vitq_i_run_qpoint(c->r, point);
    if (!qp || !c->s->active[point]) return VITQ_OK;
    return qp->inst.scheme.fake_quant(qp->inst.state, v);
}

/* One forward of the block on `x` under the current quantization; captures every site. */
static vitq_status run_block_on(block_ctx *c, const float *x) {
    memcpy(c->work, x, c->rows * c->d * sizeof(float));
    vitq_i_taps taps = {.sites = &c->r->list->sites, .apply = search_tap, .ctx = c};
    vitq_status st = vitq_i_net_block_forward(c->r->model, c->b, c->work, c->n, &taps);
    if (st) return st;
    memcpy(c->cap[SITE_OUT], c->work, c->rows * c->d * sizeof(float));
    for (size_t i = 0; i < c->rows * c->d; i++) c->cap[SITE_FC2][i] = c->work[i] - c->cap[SITE_XMID][i];
    return VITQ_OK;
}

static vitq_status run_candidate(void *ctx, const float **out) {
    block_ctx *c = ctx;
    vitq_status st = run_block_on(c, c->x_start);
    *out = c->cap[c->site];
    return st;
}

/* Search a pair of points (a then b) that feed the output at `site`. */
static vitq_status search_pair(block_ctx *c, int a, int b, int site) {
    vitq_status st = VITQ_OK;
    unsigned char *active = c->s->active;
    int pa = a >= 0 && vitq_i_run_qpoint(c->r, a), pb = b >= 0 && vitq_i_run_qpoint(c->r, b);
    if (!pa && !pb) return VITQ_OK;
    c->site = c->opt->bbc ? SITE_OUT : site;
    vitq_i_metric m = {c->ref[c->site], c->grad[c->site], c->size[c->site], c->width[c->site], 0.0f};
    /* PTQ4ViT's start values; OPT-m's candidates are whole grids of their own (the ratios) */
    if (pa && !c->opt->ratios_only) st = vitq_i_search_start(c->r, a);
    if (!st && pb && !c->opt->ratios_only) st = vitq_i_search_start(c->r, b);
    if (pa) active[a] = 1;
    if (pb) active[b] = 1;
    if (!st && pa && c->r->list->points[a].kind == VITQ_POINT_WEIGHT) st = vitq_i_run_set_weight(c->r, a, 1);
    for (int round = 0; !st && round < c->opt->rounds; round++) {
        if (pa) st = vitq_i_search_point(c->r, a, c->opt, &m, !c->opt->bbc, run_candidate, c);
        if (!st && pb) st = vitq_i_search_point(c->r, b, c->opt, &m, !c->opt->bbc, run_candidate, c);
    }
    if (!st && !c->opt->sequential) { /* parallel: the next pairs see this one in float */
        if (pa) active[a] = 0;
        if (pb) active[b] = 0;
        if (pa && c->r->list->points[a].kind == VITQ_POINT_WEIGHT) st = vitq_i_run_set_weight(c->r, a, 0);
    }
    if (!st) st = vitq_i_run_progress(c->r, "search");
    return st;
}

/* Swin computes proj's output in window order; the site it is compared at (norm2's input) is in grid
 * order: bring the gradient there. */
static vitq_status swin_grid_order(block_ctx *c, float *grad) {
    const vitq_i_net *m = c->r->model;
    int s = vitq_i_block_stage(m, c->b);
    float *grid = vitq_i_calloc(c->r->alloc, c->rows * c->d, sizeof(float));
    if (!grid) return vitq_i_oom("block search", c->rows * c->d * sizeof(float));
    vitq_i_swin_unpartition_add(grad, c->n, m->info.stage_grid[s], m->info.stage_window[s], m->blocks[c->b].shift,
                                c->d, grid);
    memcpy(grad, grid, c->rows * c->d * sizeof(float));
    vitq_i_free(c->r->alloc, grid);
    return VITQ_OK;
}

/* The points of block b: every one, for the quantized stream. */
static int block_points(const vitq_i_block_sites *s, int *p) {
    const int sites[12] = {s->norm1_in, s->qkv_in, s->q, s->k, s->v, s->scores, s->probs, s->proj_in, s->norm2_in,
                           s->fc1_in, s->gelu_in, s->fc2_in};
    int count = 0;
    for (int k = 0; k < 12; k++) {
        if (sites[k] < 0) continue;
        p[count++] = sites[k];
        if (k == 1 || k == 7 || k == 9 || k == 11) p[count++] = sites[k] + 1; /* the layer's weight */
    }
    return count;
}

static vitq_status search_block(block_ctx *c) {
    const vitq_i_block_sites *s = &c->r->list->sites.blocks[c->b];
    vitq_i_block_grads g = {c->grad[SITE_QKV], c->grad[SITE_SCORES], NULL, c->grad[SITE_ATTN], c->grad[SITE_XMID],
                            c->grad[SITE_FC1], NULL, NULL, NULL};
    vitq_status st = vitq_i_block_backward(c->r->model, c->b, c->x_in, c->d_out, c->n, &g, NULL);
    if (st) return st;
    if (c->r->model->info.arch == VITQ_ARCH_SWIN) st = swin_grid_order(c, c->grad[SITE_XMID]);
    if (st) return st;
    memcpy(c->grad[SITE_FC2], c->d_out, c->rows * c->d * sizeof(float));
    memcpy(c->grad[SITE_OUT], c->d_out, c->rows * c->d * sizeof(float));
    /* the reference: the float block on the float network's input, or (quantized_input 2) on the input
     * the candidates see, so that a candidate answers for its own block's error only */
    memset(c->s->active, 0, (size_t)c->r->list->count);
    if ((st = run_block_on(c, c->opt->quantized_input == 2 ? c->x_start : c->x_in))) return st;
    for (int k = 0; k < NUM_SITES; k++) memcpy(c->ref[k], c->cap[k], c->size[k] * sizeof(float));
    if (c->opt->ratios_only) { /* OPT-m: the twin ratios, each scored on the output of what reads it */
        st = search_pair(c, s->probs, -1, SITE_ATTN);
        if (!st) st = search_pair(c, -1, s->fc2_in, SITE_FC2);
    } else { /* pairs in forward order; a weight point follows its layer's input point */
        st = search_pair(c, s->qkv_in + 1, s->qkv_in, SITE_QKV);
        if (!st) st = search_pair(c, s->q, s->k, SITE_SCORES);
        if (!st) st = search_pair(c, s->probs, s->v, SITE_ATTN);
        if (!st) st = search_pair(c, s->proj_in + 1, s->proj_in, SITE_XMID);
        if (!st) st = search_pair(c, s->fc1_in + 1, s->fc1_in, SITE_FC1);
        if (!st) st = search_pair(c, s->fc2_in + 1, s->fc2_in, SITE_FC2);
    }
    /* the stream on: through the block quantized (quantized_input) or in float */
    int points[16], count = block_points(s, points);
    if (!st) st = set_part(c->s, points, count, c->opt->quantized_input);
    flow f = no_capture(c->s);
    vitq_i_taps taps = {.sites = &c->r->list->sites, .apply = flow_tap, .ctx = &f};
    if (!st) st = vitq_i_net_block_forward(c->r->model, c->b, c->s->cur, c->n, &taps);
    vitq_status off = set_part(c->s, points, count, 0);
    return st ? st : off;
}

static vitq_status alloc_block_ctx(vitq_i_run *r, int b, size_t n, block_ctx *c) {
    size_t tokens;
    vitq_i_block_shape(r->model, b, &tokens, &c->d, &c->hidden, &c->heads, &c->seq_tokens);
    c->b = b;
    c->n = n;
    c->rows = n * tokens;
    size_t seqs = c->rows / c->seq_tokens;
    size_t sizes[NUM_SITES] = {c->rows * 3 * c->d, seqs * c->heads * c->seq_tokens * c->seq_tokens, c->rows * c->d,
                               c->rows * c->d, c->rows * c->hidden, c->rows * c->d, c->rows * c->d};
    size_t widths[NUM_SITES] = {3 * c->d, c->seq_tokens, c->d, c->d, c->hidden, c->d, c->d};
    for (int k = 0; k < NUM_SITES; k++) {
        c->size[k] = sizes[k];
        c->width[k] = widths[k];
        c->ref[k] = vitq_i_alloc_array(r->alloc, sizes[k], sizeof(float));
        c->grad[k] = vitq_i_alloc_array(r->alloc, sizes[k], sizeof(float));
        c->cap[k] = vitq_i_alloc_array(r->alloc, sizes[k], sizeof(float));
        if (!c->ref[k] || !c->grad[k] || !c->cap[k]) return vitq_i_oom("block search", sizes[k] * 12);
    }
    c->work = vitq_i_alloc_array(r->alloc, c->rows * c->d, sizeof(float));
    return c->work ? VITQ_OK : vitq_i_oom("block search", c->rows * c->d * 4);
}

static void free_block_ctx(vitq_i_run *r, block_ctx *c) {
    for (int k = 0; k < NUM_SITES; k++) {
        vitq_i_free(r->alloc, c->ref[k]);
        vitq_i_free(r->alloc, c->grad[k]);
        vitq_i_free(r->alloc, c->cap[k]);
    }
    vitq_i_free(r->alloc, c->work);
}

static vitq_status run_block_search(search *s, int b) {
    block_ctx c;
    memset(&c, 0, sizeof c);
    c.s = s;
    c.r = s->r;
    c.opt = s->opt;
    c.x_in = s->x_in[b];
    c.x_start = s->cur;
    c.d_out = s->d_out[b];
    vitq_status st = alloc_block_ctx(s->r, b, s->n, &c);
    if (!st) st = search_block(&c);
    free_block_ctx(s->r, &c);
    return st;
}

/* ---- inputs and gradients of every block, then the walk -------------------------------------------- */

static int collect(void *ctx, int block, size_t first, size_t n, const float *x_in, const float *d_out) {
    search *s = ctx;
    size_t per = s->row_floats[block];
    memcpy(s->x_in[block] + first * per, x_in, n * per * sizeof(float));
    memcpy(s->d_out[block] + first * per, d_out, n * per * sizeof(float));
    return 0;
}

/* Swin's patch merging into stage `stage` in float, nothing searched (OPT-m). */
static vitq_status pass_merge(search *s, int stage) {
    const vitq_model_info *i = &s->r->model->info;
    size_t prev = s->n * (size_t)i->stage_grid[stage - 1] * (size_t)i->stage_grid[stage - 1] *
                  (size_t)i->stage_dim[stage - 1];
    memcpy(s->keep, s->cur, prev * sizeof(float));
    flow f = no_capture(s);
    return run_merge(s, stage, s->keep, &f);
}

static vitq_status walk(search *s) {
    const vitq_i_net *m = s->r->model;
    int all = !s->opt->ratios_only; /* OPT-m searches inside the blocks only: the float stream elsewhere */
    flow f = no_capture(s);
    vitq_status st = all ? search_patch(s) : run_embed(s, &f);
    for (int stage = 0, b = 0; !st && stage < m->info.num_stages; stage++) {
        if (stage > 0) st = all ? search_merge(s, stage) : pass_merge(s, stage);
        int end = stage + 1 < m->info.num_stages ? m->stages[stage + 1].first_block : m->info.depth;
        for (; !st && b < end; b++) st = run_block_search(s, b);
    }
    if (!st && all) st = search_heads(s);
    return st;
}

vitq_status vitq_i_block_search(vitq_i_run *r, const vitq_i_block_search_options *opt) {
    const vitq_i_net *m = r->model;
    int depth = m->info.depth;
    search s = {r, opt, opt->images && opt->images < r->num_images ? opt->images : r->num_images,
                vitq_i_calloc(r->alloc, (size_t)r->list->count, 1), vitq_i_calloc(r->alloc, (size_t)depth, sizeof(float *)),
                vitq_i_calloc(r->alloc, (size_t)depth, sizeof(float *)), vitq_i_calloc(r->alloc, (size_t)depth, sizeof(size_t)),
                NULL, NULL};
    vitq_status st = s.active && s.x_in && s.d_out && s.row_floats ? VITQ_OK : vitq_i_oom("block search", 0);
    size_t widest = 0;
    for (int b = 0; !st && b < depth; b++) {
        size_t tokens, d;
        vitq_i_block_shape(m, b, &tokens, &d, NULL, NULL, NULL);
        s.row_floats[b] = tokens * d;
        if (tokens * d > widest) widest = tokens * d;
        s.x_in[b] = vitq_i_alloc_array(r->alloc, s.n * tokens * d, sizeof(float));
        s.d_out[b] = vitq_i_alloc_array(r->alloc, s.n * tokens * d, sizeof(float));
        if (!s.x_in[b] || !s.d_out[b]) st = vitq_i_oom("block inputs and gradients", 2 * s.n * tokens * d * 4);
    }
    if (!st) {
        s.cur = vitq_i_alloc_array(r->alloc, s.n * widest, sizeof(float));
        s.keep = vitq_i_alloc_array(r->alloc, s.n * widest, sizeof(float));
        if (!s.cur || !s.keep) st = vitq_i_oom("block search stream", 2 * s.n * widest * sizeof(float));
    }
    r->progress_total += 6 * depth + 2 * m->info.num_stages + 2;
    if (!st) st = vitq_i_model_backward(m, r->images, s.n, NULL, NULL, collect, &s);
    if (!st) st = walk(&s);
    for (int b = 0; s.x_in && s.d_out && b < depth; b++) {
        vitq_i_free(r->alloc, s.x_in[b]);
        vitq_i_free(r->alloc, s.d_out[b]);
    }
    vitq_i_free(r->alloc, s.x_in);
    vitq_i_free(r->alloc, s.d_out);
    vitq_i_free(r->alloc, s.row_floats);
    vitq_i_free(r->alloc, s.active);
    vitq_i_free(r->alloc, s.cur);
    vitq_i_free(r->alloc, s.keep);
    return st;
}
