/* Gradient-weighted search of quantizer parameters, block by block (PTQ4ViT, APQ-ViT; docs/methods.md).
 *
 * For each transformer block, the float network's input of the block and the gradient of the loss
 * (cross-entropy against the float model's top-1 class) with respect to its output come from one
 * forward and backward pass over the search images; the gradients inside the block come from the
 * block's own backward. Each quantized point of the block then has its parameter searched on a grid
 * of candidates, one forward of that block alone per candidate (never the whole network), scored by
 *   hessian: sum g^2 (O^ - O)^2 over the output O of the layer that consumes the point (PTQ4ViT);
 *   bbc:     the same on the block output, after dropping the terms below the p-th percentile
 *            (APQ-ViT's bottom elimination; the rule is the digest's reading, see docs/methods.md).
 * Points are searched in pairs (weight then input of a linear layer; Q then K; P then V), for
 * `rounds` rounds. Parallel mode (PTQ4ViT) quantizes only the pair being searched; sequential
 * mode (APQ-ViT) also keeps the block's points searched before quantized.
 *
 * Weights are fake-quantized in the packed copy the GEMM reads (the run's private model), so the
 * float weights that get encoded stay untouched. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "calib/block_search.h"
#include "grad/backward.h"
#include "model/block.h"
#include "model/swin_geometry.h"

enum { SITE_QKV, SITE_SCORES, SITE_ATTN, SITE_XMID, SITE_FC1, SITE_FC2, SITE_OUT, NUM_SITES };

typedef struct block_ctx {
    vitq_i_run *r;
    const vitq_i_block_search_options *opt;
    int b;
    size_t n, rows, d, hidden, heads, seq_tokens;
    const float *x_in, *d_out; /* [rows][d] float input of the block and gradient at its output */
    unsigned char *active;      /* per point: fake-quantized in this evaluation */
    float *ref[NUM_SITES];      /* float outputs */
    float *grad[NUM_SITES];     /* their gradients */
    float *cap[NUM_SITES];      /* outputs of the evaluation under way */
    size_t size[NUM_SITES];
    float *work;                /* [rows][d] */
    float *terms;               /* bbc: [rows][d] */
} block_ctx;

/* ---- forward of one block with capture and fake quantization --------------------------------- */

static void capture_rows(float *dst, size_t width, size_t offset, const vitq_tensor_view *v) {
    size_t w = (size_t)(v->channels * v->inner);
    for (int64_t o = 0; o < v->outer; o++)
        memcpy(dst + (size_t)o * width + offset, v->data + o * v->outer_stride, w * sizeof(float));
}

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
    if (!qp || !c->active[point]) return VITQ_OK;
    return qp->inst.scheme.fake_quant(qp->inst.state, v);
}

/* The GEMM of weight point p reads its fake-quantized weight (quantized = 1) or the float one. */
static vitq_status set_weight(block_ctx *c, int p, int quantized) {
    const vitq_i_point_desc *d = &c->r->list->points[p];
    vitq_i_linear *l = d->weight;
    float *w = vitq_i_alloc_array(c->r->alloc, l->out * l->in, sizeof(float));
    if (!w) return vitq_i_oom(d->name, l->out * l->in * sizeof(float));
    vitq_status st = quantized ? vitq_i_run_fake_weight(c->r, p, w) : VITQ_OK;
    if (!quantized) memcpy(w, l->weight, l->out * l->in * sizeof(float));
    vitq_i_packed fresh;
    if (!st) st = vitq_i_gemm_pack(c->r->alloc, w, l->out, l->in, &fresh);
    if (!st) {
        vitq_i_gemm_packed_free(c->r->alloc, &l->packed);
        l->packed = fresh;
    }
    vitq_i_free(c->r->alloc, w);
    return st;
}

/* One forward of the block under the current quantization; captures every site. */
static vitq_status run_block(block_ctx *c) {
    memcpy(c->work, c->x_in, c->rows * c->d * sizeof(float));
    vitq_i_taps taps = {.sites = &c->r->list->sites, .apply = search_tap, .ctx = c};
    vitq_status st = vitq_i_net_block_forward(c->r->model, c->b, c->work, c->n, &taps);
    if (st) return st;
    memcpy(c->cap[SITE_OUT], c->work, c->rows * c->d * sizeof(float));
    for (size_t i = 0; i < c->rows * c->d; i++) c->cap[SITE_FC2][i] = c->work[i] - c->cap[SITE_XMID][i];
    return VITQ_OK;
}

/* ---- metrics ---------------------------------------------------------------------------------- */

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static double score(block_ctx *c, int site) {
    const float *g = c->grad[site], *o = c->ref[site], *q = c->cap[site];
    size_t n = c->size[site];
    double sum = 0.0;
    if (!c->opt->bbc) {
        for (size_t i = 0; i < n; i++) {
            double e = (double)g[i] * ((double)q[i] - o[i]);
            sum += e * e;
        }
        return sum;
    }
    /* bottom elimination: drop the terms below the p-th percentile of all terms */
    for (size_t i = 0; i < n; i++) {
        float e = g[i] * (q[i] - o[i]);
        c->terms[i] = e * e;
    }
    float *sorted = c->terms + n;
    memcpy(sorted, c->terms, n * sizeof(float));
    qsort(sorted, n, sizeof(float), cmp_float);
    float tau = sorted[(size_t)(c->opt->eliminate * (double)(n - 1))];
    for (size_t i = 0; i < n; i++)
        if (c->terms[i] >= tau) sum += c->terms[i];
    return sum;
}

/* ---- the search of one point -------------------------------------------------------------------- */

/* The searched parameter of a point: "split" (twin softmax: powers of two) or "scale" (a multiplier
 * grid on its calibrated value). Returns 0 when the scheme has neither. */
static int searched_param(const vitq_i_qpoint *qp, const char **name, const float **values, int64_t *count) {
    const vitq_scheme *s = &qp->inst.scheme;
    int found = 0;
    for (int32_t k = 0; k < s->param_count(qp->inst.state); k++) {
        const char *n;
        const float *v;
        int64_t cnt;
        if (s->get_param(qp->inst.state, k, &n, &v, &cnt)) continue;
        if (strcmp(n, "split") == 0 || (strcmp(n, "scale") == 0 && !found)) {
            *name = n, *values = v, *count = cnt;
            found = 1 + (strcmp(n, "split") == 0);
        }
    }
    return found;
}

static vitq_status search_point(block_ctx *c, int p, int site) {
    vitq_i_qpoint *qp = vitq_i_run_qpoint(c->r, p);
    const char *name = NULL;
    const float *current = NULL;
    int64_t count = 0;
    int kind = qp ? searched_param(qp, &name, &current, &count) : 0;
    if (!kind) return VITQ_OK;
    int is_weight = c->r->list->points[p].kind == VITQ_POINT_WEIGHT;
    float *base = vitq_i_alloc_array(c->r->alloc, (size_t)count * 2, sizeof(float));
    if (!base) return vitq_i_oom(qp->inst.name, (size_t)count * 8);
    float *cand = base + count, best_factor = 1.0f;
    memcpy(base, current, (size_t)count * sizeof(float));
    int steps = kind == 2 ? 20 : c->opt->grid;
    double best = INFINITY;
    vitq_status st = VITQ_OK;
    for (int i = 0; !st && i <= steps; i++) {
        /* split: 2^-i; scale: alpha + i (beta - alpha) / grid times the calibrated value */
        float f = kind == 2 ? ldexpf(1.0f, -i) : (float)(c->opt->alpha + i * (c->opt->beta - c->opt->alpha) / steps);
        if (kind == 2 && i == steps) break;
        for (int64_t g = 0; g < count; g++) cand[g] = kind == 2 ? f : base[g] * f;
        st = qp->inst.scheme.set_param(qp->inst.state, name, cand, count);
        if (st) { /* a candidate the scheme rejects (e.g. a scale that underflows) is skipped */
            st = VITQ_OK;
            continue;
        }
        if (is_weight) st = set_weight(c, p, 1);
        if (!st) st = run_block(c);
        double v = st ? INFINITY : score(c, c->opt->bbc ? SITE_OUT : site);
        if (v < best) best = v, best_factor = f;
    }
    for (int64_t g = 0; g < count; g++) cand[g] = kind == 2 ? best_factor : base[g] * best_factor;
    if (!st && isfinite(best)) st = qp->inst.scheme.set_param(qp->inst.state, name, cand, count);
    else if (!st) st = qp->inst.scheme.set_param(qp->inst.state, name, base, count);
    if (!st && is_weight) st = set_weight(c, p, 1);
    vitq_i_free(c->r->alloc, base);
    return st;
}

/* Search a pair of points (a then b) that feed the output at `site`. */
static vitq_status search_pair(block_ctx *c, int a, int b, int site) {
    vitq_status st = VITQ_OK;
    int pa = a >= 0 && vitq_i_run_qpoint(c->r, a), pb = b >= 0 && vitq_i_run_qpoint(c->r, b);
    if (!pa && !pb) return VITQ_OK;
    if (pa) c->active[a] = 1;
    if (pb) c->active[b] = 1;
    if (pa && c->r->list->points[a].kind == VITQ_POINT_WEIGHT) st = set_weight(c, a, 1);
    for (int round = 0; !st && round < c->opt->rounds; round++) {
        if (pa) st = search_point(c, a, site);
        if (!st && pb) st = search_point(c, b, site);
    }
    if (!st && !c->opt->sequential) { /* parallel: the next pairs see this one in float */
        if (pa) c->active[a] = 0;
        if (pb) c->active[b] = 0;
        if (pa && c->r->list->points[a].kind == VITQ_POINT_WEIGHT) st = set_weight(c, a, 0);
    }
    if (!st) st = vitq_i_run_progress(c->r, "search");
    return st;
}

/* Swin computes proj's output in window order; the site it is compared at (norm2's input) is in grid
 * order: bring the gradient there. */
static vitq_status swin_grid_order(block_ctx *c, float *grad) {
    const vitq_i_net *m = c->r->model;
    int s = 0;
    while (s + 1 < m->info.num_stages && m->stages[s + 1].first_block <= c->b) s++;
    float *grid = vitq_i_calloc(c->r->alloc, c->rows * c->d, sizeof(float));
    if (!grid) return vitq_i_oom("block search", c->rows * c->d * sizeof(float));
    vitq_i_swin_unpartition_add(grad, c->n, m->info.stage_grid[s], m->info.stage_window[s], m->blocks[c->b].shift,
                                c->d, grid);
    memcpy(grad, grid, c->rows * c->d * sizeof(float));
    vitq_i_free(c->r->alloc, grid);
    return VITQ_OK;
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
    /* float reference: nothing quantized (parallel mode keeps other blocks float as well) */
    memset(c->active, 0, (size_t)c->r->list->count);
    if ((st = run_block(c))) return st;
    for (int k = 0; k < NUM_SITES; k++) memcpy(c->ref[k], c->cap[k], c->size[k] * sizeof(float));
    /* pairs in forward order; a weight point follows its layer's input point */
    if (!st) st = search_pair(c, s->qkv_in + 1, s->qkv_in, SITE_QKV);
    if (!st) st = search_pair(c, s->q, s->k, SITE_SCORES);
    if (!st) st = search_pair(c, s->probs, s->v, SITE_ATTN);
    if (!st) st = search_pair(c, s->proj_in + 1, s->proj_in, SITE_XMID);
    if (!st) st = search_pair(c, s->fc1_in + 1, s->fc1_in, SITE_FC1);
    if (!st) st = search_pair(c, s->fc2_in + 1, s->fc2_in, SITE_FC2);
    /* the next block starts from float weights again */
    int weights[4] = {s->qkv_in + 1, s->proj_in + 1, s->fc1_in + 1, s->fc2_in + 1};
    for (int k = 0; !st && k < 4; k++)
        if (vitq_i_run_qpoint(c->r, weights[k])) st = set_weight(c, weights[k], 0);
    return st;
}

/* ---- inputs and gradients of every block ------------------------------------------------------- */

typedef struct collect_ctx {
    float **x_in, **d_out; /* per block: [images * tokens][d] */
    size_t *row_floats;    /* per block: floats per image */
} collect_ctx;

static int collect(void *ctx, int block, size_t first, size_t n, const float *x_in, const float *d_out) {
    collect_ctx *cc = ctx;
    size_t per = cc->row_floats[block];
    memcpy(cc->x_in[block] + first * per, x_in, n * per * sizeof(float));
    memcpy(cc->d_out[block] + first * per, d_out, n * per * sizeof(float));
    return 0;
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
    for (int k = 0; k < NUM_SITES; k++) {
        c->size[k] = sizes[k];
        c->ref[k] = vitq_i_alloc_array(r->alloc, sizes[k], sizeof(float));
        c->grad[k] = vitq_i_alloc_array(r->alloc, sizes[k], sizeof(float));
        c->cap[k] = vitq_i_alloc_array(r->alloc, sizes[k], sizeof(float));
        if (!c->ref[k] || !c->grad[k] || !c->cap[k]) return vitq_i_oom("block search", sizes[k] * 12);
    }
    c->work = vitq_i_alloc_array(r->alloc, c->rows * c->d, sizeof(float));
    c->terms = c->opt->bbc ? vitq_i_alloc_array(r->alloc, 2 * c->rows * c->d, sizeof(float)) : NULL;
    if (!c->work || (c->opt->bbc && !c->terms)) return vitq_i_oom("block search", c->rows * c->d * 12);
    return VITQ_OK;
}

static void free_block_ctx(vitq_i_run *r, block_ctx *c) {
    for (int k = 0; k < NUM_SITES; k++) {
        vitq_i_free(r->alloc, c->ref[k]);
        vitq_i_free(r->alloc, c->grad[k]);
        vitq_i_free(r->alloc, c->cap[k]);
    }
    vitq_i_free(r->alloc, c->work);
    vitq_i_free(r->alloc, c->terms);
}

vitq_status vitq_i_block_search(vitq_i_run *r, const vitq_i_block_search_options *opt) {
    const vitq_i_net *m = r->model;
    int depth = m->info.depth;
    size_t n = opt->images && opt->images < r->num_images ? opt->images : r->num_images;
    collect_ctx cc = {vitq_i_calloc(r->alloc, (size_t)depth, sizeof(float *)),
                      vitq_i_calloc(r->alloc, (size_t)depth, sizeof(float *)),
                      vitq_i_calloc(r->alloc, (size_t)depth, sizeof(size_t))};
    unsigned char *active = vitq_i_calloc(r->alloc, (size_t)r->list->count, 1);
    vitq_status st = cc.x_in && cc.d_out && cc.row_floats && active ? VITQ_OK : vitq_i_oom("block search", 0);
    for (int b = 0; !st && b < depth; b++) {
        size_t tokens, d;
        vitq_i_block_shape(m, b, &tokens, &d, NULL, NULL, NULL);
        cc.row_floats[b] = tokens * d;
        cc.x_in[b] = vitq_i_alloc_array(r->alloc, n * tokens * d, sizeof(float));
        cc.d_out[b] = vitq_i_alloc_array(r->alloc, n * tokens * d, sizeof(float));
        if (!cc.x_in[b] || !cc.d_out[b]) st = vitq_i_oom("block inputs and gradients", 2 * n * tokens * d * 4);
    }
    r->progress_total += 6 * depth;
    if (!st) st = vitq_i_model_backward(m, r->images, n, NULL, NULL, collect, &cc);
    for (int b = 0; !st && b < depth; b++) {
        block_ctx c;
        memset(&c, 0, sizeof c);
        c.r = r;
        c.opt = opt;
        c.active = active;
        c.x_in = cc.x_in[b];
        c.d_out = cc.d_out[b];
        st = alloc_block_ctx(r, b, n, &c);
        if (!st) st = search_block(&c);
        free_block_ctx(r, &c);
    }
    for (int b = 0; cc.x_in && cc.d_out && b < depth; b++) {
        vitq_i_free(r->alloc, cc.x_in[b]);
        vitq_i_free(r->alloc, cc.d_out[b]);
    }
    vitq_i_free(r->alloc, cc.x_in);
    vitq_i_free(r->alloc, cc.d_out);
    vitq_i_free(r->alloc, cc.row_floats);
    vitq_i_free(r->alloc, active);
    return st;
}
