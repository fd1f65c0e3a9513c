/* The calibration stage of the integer non-linear operators (nonlinear_search.h). */
#include "calib/nonlinear_search.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/forward_common.h"

/* One operator being calibrated: its statistics and its candidates (index m - 1 for method m). */
typedef struct target {
    int point;
    int op;
    int32_t want;                         /* r->cfg[point].nonlinear */
    vitq_i_nl_stats stats;
    const vitq_i_layernorm_params *ln;
    vitq_i_qnl cand[VITQ_I_NL_METHODS];
    int ready[VITQ_I_NL_METHODS];         /* cand[m] prepared */
} target;

typedef struct stage {
    vitq_i_run *r;
    target *t;
    int count;
    int *of_point;    /* [list.count]: index into t, or -1 */
    int ptf_pass;     /* the second statistics pass (PTF errors) */
    vitq_i_taps quant; /* the quantized model's taps (fake quantization of every quantizer) */
} stage;

static int wants(int32_t want, int32_t method, int op) {
    if (want == VITQ_NONLINEAR_MIXED) return vitq_i_nl_has_kernel(method, op); /* FQ-ViT's GELU is I-BERT's */
    return want == method;
}

/* Observe the operators' inputs; every other active point is quantized as the final model does. */
static vitq_status observe_tap(vitq_i_taps *t, int point, const vitq_tensor_view *v) {
    stage *s = t->ctx;
    int i = s->of_point[point];
    if (i < 0) return s->quant.apply(&s->quant, point, v);
    target *g = &s->t[i];
    if (!s->ptf_pass) {
        float lo = (float)g->stats.lo, hi = (float)g->stats.hi;
        vitq_i_run_view_range(v, &lo, &hi);
        g->stats.lo = lo;
        g->stats.hi = hi;
    } else if (g->stats.ptf_err) {
        vitq_i_nl_ptf_errors(v->data, v->outer, v->channels, v->outer_stride, g->stats.lo, g->stats.hi,
                             g->stats.ptf_err);
    }
    return VITQ_OK;
}

static vitq_status forward_all(stage *s, vitq_i_taps *taps, size_t n, float *logits) {
    vitq_i_run *r = s->r;
    size_t classes = (size_t)r->model->info.num_classes;
    vitq_status st = VITQ_OK;
    for (size_t first = 0; !st && first < n; first += VITQ_I_FEED_BATCH) {
        size_t count = n - first < VITQ_I_FEED_BATCH ? n - first : VITQ_I_FEED_BATCH;
        if (taps) taps->status = VITQ_OK;
        st = vitq_i_run_forward(r, first, count, taps, logits ? logits + first * classes : NULL);
        if (!st) st = vitq_i_run_progress(r, "nonlinear");
    }
    return st;
}

static vitq_status gather_stats(stage *s, const vitq_i_sites *sites) {
    vitq_i_run *r = s->r;
    int ptf = 0;
    for (int i = 0; i < s->count; i++) {
        target *g = &s->t[i];
        g->stats.lo = INFINITY;
        g->stats.hi = -INFINITY;
        if (g->op == VITQ_I_NL_LAYERNORM && wants(g->want, VITQ_NONLINEAR_FQVIT, g->op)) {
            g->stats.ptf_err = vitq_i_calloc(r->alloc, (size_t)g->stats.channels * 4, sizeof(double));
            if (!g->stats.ptf_err) return vitq_i_oom("PTF statistics", (size_t)g->stats.channels * 4 * sizeof(double));
            ptf = 1;
        }
    }
    vitq_i_taps taps = {.sites = sites, .apply = observe_tap, .ctx = s};
    vitq_status st = VITQ_OK;
    r->progress_total += (int64_t)(1 + ptf) * (int64_t)((r->num_images + VITQ_I_FEED_BATCH - 1) / VITQ_I_FEED_BATCH);
    for (s->ptf_pass = 0; !st && s->ptf_pass <= ptf; s->ptf_pass++) st = forward_all(s, &taps, r->num_images, NULL);
    return st;
}

/* Prepare every candidate a target wants; in the mixed selection a candidate whose kernel cannot take
 * the operator's inputs is left out (and said so in its NaN), a single method must succeed. */
static vitq_status prepare(stage *s) {
    vitq_i_run *r = s->r;
    for (int i = 0; i < s->count; i++) {
        target *g = &s->t[i];
        const char *name = r->list->points[g->point].name;
        int any = 0;
        for (int32_t m = VITQ_NONLINEAR_IBERT; m <= VITQ_NONLINEAR_IVIT; m++) {
            int single = g->want != VITQ_NONLINEAR_MIXED;
            if (!wants(g->want, m, g->op)) continue;
            vitq_status st = vitq_i_qnl_prepare(r->alloc, name, g->point, g->op, m, &g->stats, g->ln, &g->cand[m - 1]);
            if (st && (single || st != VITQ_ERR_OUT_OF_RANGE)) return st;
            if (st) {
                vitq_i_error_clear();
                continue;
            }
            g->ready[m - 1] = 1;
            any = 1;
        }
        if (!any)
            return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s: no integer %s takes this operator's inputs", name,
                               vitq_i_nl_op_name(g->op));
    }
    return VITQ_OK;
}

/* r->q with exactly the operator `one` (NULL: none), for a measurement. */
static vitq_status use_one(vitq_i_qmodel *q, vitq_i_qnl *one) {
    q->nl = one;
    q->nl_count = one ? 1 : 0;
    return vitq_i_qmodel_index_nl(q, "nonlinear search");
}

/* The block whose input a pass for point `name` may start from (ViT / DeiT): blocks.N. -> N, points
 * after the blocks -> depth; -1 (the images) for Swin and anything else. */
static int start_block(const vitq_i_net *m, const char *name) {
    int b;
    if (m->stages) return -1;
    if (sscanf(name, "blocks.%d.", &b) == 1) return b >= 0 && b < m->info.depth ? b : -1;
    return strncmp(name, "patch_embed", 11) ? m->info.depth : -1;
}

/* Sums of one candidate's logits against the float ones, group by group. */
typedef struct sums {
    double signal, noise;
} sums;

static double sums_db(sums x) { return x.noise == 0 ? INFINITY : 10.0 * log10(x.signal / x.noise); }

static void accumulate(sums *x, const float *ref, const float *approx, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double d = (double)ref[i] - approx[i];
        x->signal += (double)ref[i] * ref[i];
        x->noise += d * d;
    }
}

/* Images per group: the residual streams entering every block of a group fit VITQ_I_NL_STREAM_BUDGET. */
#define VITQ_I_NL_STREAM_BUDGET ((size_t)64 << 20)

static vitq_status measure(stage *s, const vitq_i_sites *sites) {
    vitq_i_run *r = s->r;
    const vitq_i_net *m = r->model;
    size_t n = r->num_images < VITQ_I_NL_SEARCH_IMAGES ? r->num_images : VITQ_I_NL_SEARCH_IMAGES;
    size_t k = (size_t)m->info.num_classes, depth = (size_t)m->info.depth;
    size_t per_stream, group = vitq_i_run_stream_group(m, n, VITQ_I_NL_STREAM_BUDGET, &per_stream);
    float *fp = vitq_i_alloc_array(r->alloc, 2 * n * k, sizeof(float));
    float *streams = per_stream ? vitq_i_alloc_array(r->alloc, (depth + 1) * group, per_stream * sizeof(float)) : NULL;
    float **at = vitq_i_calloc(r->alloc, depth + 1, sizeof *at);
    sums *acc = vitq_i_calloc(r->alloc, (size_t)s->count * VITQ_I_NL_METHODS + 1, sizeof *acc);
    if (!fp || (per_stream && !streams) || !at || !acc) {
        vitq_i_free(r->alloc, fp);
        vitq_i_free(r->alloc, streams);
        vitq_i_free(r->alloc, at);
        vitq_i_free(r->alloc, acc);
        return vitq_i_oom("nonlinear search", (depth + 1) * group * per_stream * sizeof(float));
    }
    for (size_t b = 0; streams && b <= depth; b++) at[b] = streams + b * group * per_stream;
    float *out = fp + n * k;
    vitq_i_qmodel *q = r->q;
    sums base = {0, 0};
    r->progress_total += (int64_t)((n + VITQ_I_FEED_BATCH - 1) / VITQ_I_FEED_BATCH);
    vitq_status st = vitq_i_run_set_weights(r, 0);
    if (!st) st = forward_all(s, NULL, n, fp);
    if (!st) st = vitq_i_run_set_weights(r, 1);
    size_t per_image = r->per_image;
    r->progress_total += (int64_t)((n + group - 1) / group) * (1 + s->count);
    for (size_t first = 0; !st && first < n; first += group) {
        size_t count = n - first < group ? n - first : group;
        const float *images = r->images + first * per_image, *ref = fp + first * k;
        vitq_i_taps taps = vitq_i_qmodel_taps(q);
        taps.sites = sites;
        if (!st) st = use_one(q, NULL);
        /* the quantized pass without operators: its logits, and its streams every candidate starts from */
        if (!st) st = streams ? vitq_i_vit_streams_taps(m, images, count, at, &taps, out)
                              : vitq_i_net_forward(m, images, count, out, &taps);
        if (!st) accumulate(&base, ref, out, count * k);
        if (!st) st = vitq_i_run_progress(r, "nonlinear");
        for (int i = 0; !st && i < s->count; i++) {
            target *g = &s->t[i];
            int from = streams ? start_block(m, r->list->points[g->point].name) : -1;
            for (int c = 0; !st && c < VITQ_I_NL_METHODS; c++) {
                if (!g->ready[c]) continue;
                st = use_one(q, &g->cand[c]);
                taps = vitq_i_qmodel_taps(q);
                taps.sites = sites;
                if (!st) st = from >= 0 ? vitq_i_vit_forward_from(m, from, at[from], count, out, &taps)
                                        : vitq_i_net_forward(m, images, count, out, &taps);
                if (!st) accumulate(&acc[(size_t)i * VITQ_I_NL_METHODS + (size_t)c], ref, out, count * k);
            }
            if (!st) st = vitq_i_run_progress(r, "nonlinear");
        }
    }
    for (int i = 0; !st && i < s->count; i++)
        for (int c = 0; c < VITQ_I_NL_METHODS; c++) {
            if (!s->t[i].ready[c]) continue;
            double loss = sums_db(base) - sums_db(acc[(size_t)i * VITQ_I_NL_METHODS + (size_t)c]);
            for (int j = 0; j < VITQ_I_NL_METHODS; j++) s->t[i].cand[j].dsqnr[c] = loss;
        }
    vitq_status restore = use_one(q, NULL);
    if (!st) st = restore;
    vitq_i_free(r->alloc, fp);
    vitq_i_free(r->alloc, streams);
    vitq_i_free(r->alloc, at);
    vitq_i_free(r->alloc, acc);
    return st;
}

/* The method a target keeps: its single method, or the candidate that loses least (ties: the first). */
static int chosen(const target *g) {
    if (g->want != VITQ_NONLINEAR_MIXED) return g->want - 1;
    int best = -1;
    for (int m = 0; m < VITQ_I_NL_METHODS; m++)
        if (g->ready[m] && (best < 0 || g->cand[m].dsqnr[m] < g->cand[best].dsqnr[best] ||
                            (g->cand[best].dsqnr[best] != g->cand[best].dsqnr[best]))) /* NaN loses */
            best = m;
    return best;
}

/* Drop the quantizers of the probabilities FQ-ViT softmaxes give (the model's qpoints stay in list
 * order). */
static void drop_bypassed(vitq_i_run *r) {
    vitq_i_qmodel *q = r->q;
    int kept = 0;
    for (int i = 0; i < q->count; i++) {
        vitq_i_qpoint *qp = &q->qpoints[i];
        if (q->nl_of_point[qp->point] == VITQ_I_NL_BYPASSED) {
            vitq_i_instance_destroy(&qp->inst);
            vitq_i_free(r->alloc, qp->codes);
            vitq_i_free(r->alloc, qp->noise);
            q->of_point[qp->point] = -1;
            q->nl_of_point[qp->point] = -1;
            continue;
        }
        q->qpoints[kept] = *qp;
        q->of_point[qp->point] = kept++;
    }
    q->count = kept;
}

static vitq_status finish(stage *s) {
    vitq_i_run *r = s->r;
    vitq_i_qmodel *q = r->q;
    q->nl = vitq_i_calloc(r->alloc, (size_t)s->count, sizeof *q->nl);
    if (!q->nl) return vitq_i_oom("integer operators", (size_t)s->count * sizeof *q->nl);
    for (int i = 0; i < s->count; i++) {
        target *g = &s->t[i];
        int m = chosen(g);
        q->nl[i] = g->cand[m]; /* moved: its arrays now belong to q */
        memset(&g->cand[m], 0, sizeof g->cand[m]);
        g->ready[m] = 0;
    }
    q->nl_count = s->count;
    vitq_status st = vitq_i_qmodel_index_nl(q, "nonlinear");
    if (!st) drop_bypassed(r);
    return st;
}

vitq_status vitq_i_nonlinear_refine(vitq_i_run *r) {
    vitq_i_qmodel *q = r->q;
    int count = 0;
    for (int p = 0; p < r->list->count; p++) {
        if (!r->cfg[p].nonlinear) continue;
        if (q->of_point[p] >= 0)
            return vitq_i_fail(VITQ_ERR_CONFIG, "%s: an integer operator replaces what reads this point; set its bits "
                               "to 0 (its input grid is the operator's own)", r->list->points[p].name);
        count++;
    }
    if (!count) return VITQ_OK;
    stage s = {r, vitq_i_calloc(r->alloc, (size_t)count, sizeof(target)), 0,
               vitq_i_alloc_array(r->alloc, (size_t)r->list->count, sizeof(int)), 0, vitq_i_qmodel_taps(q)};
    unsigned char *active = vitq_i_calloc(r->alloc, (size_t)r->list->count, 1);
    vitq_i_sites sites;
    memset(&sites, 0, sizeof sites);
    vitq_status st = s.t && s.of_point && active ? VITQ_OK : vitq_i_oom("nonlinear", (size_t)count * sizeof(target));
    int mixed = 0;
    for (int p = 0; !st && p < r->list->count; p++) {
        s.of_point[p] = -1;
        if (!r->cfg[p].nonlinear) continue;
        const vitq_i_point_desc *d = &r->list->points[p];
        target *g = &s.t[s.count];
        g->point = p;
        g->op = vitq_i_nl_op_of_role(d->role);
        g->want = r->cfg[p].nonlinear;
        g->stats.channels = (int32_t)d->channels;
        g->stats.row_max = g->op == VITQ_I_NL_SOFTMAX ? (int64_t)llround(sqrt((double)d->inner)) : 0;
        g->ln = g->op == VITQ_I_NL_LAYERNORM ? vitq_i_nl_layernorm_of(r->model, &r->list->sites, p) : NULL;
        if (g->op == VITQ_I_NL_LAYERNORM && !g->ln)
            st = vitq_i_fail(VITQ_ERR_BAD_STATE, "%s: no LayerNorm reads this point", d->name);
        mixed |= g->want == VITQ_NONLINEAR_MIXED;
        s.of_point[p] = s.count++;
    }
    if (!st) {
        vitq_i_qmodel_mark_sites(q, active);
        for (int i = 0; i < s.count; i++) active[s.t[i].point] = 1;
        st = vitq_i_sites_filter(r->alloc, r->model, r->list, active, &sites);
    }
    if (!st) st = vitq_i_run_set_weights(r, 1);
    if (!st) st = gather_stats(&s, &sites);
    if (!st) st = prepare(&s);
    if (!st && mixed) st = measure(&s, &sites);
    if (!st) st = finish(&s);
    vitq_status restored = vitq_i_run_set_weights(r, 0); /* the float weights back, whatever happened */
    if (!st) st = restored;
    for (int i = 0; s.t && i < s.count; i++) {
        for (int m = 0; m < VITQ_I_NL_METHODS; m++) vitq_i_qnl_free(r->alloc, &s.t[i].cand[m]);
        vitq_i_free(r->alloc, s.t[i].stats.ptf_err);
    }
    vitq_i_sites_free(r->alloc, &sites);
    vitq_i_free(r->alloc, active);
    vitq_i_free(r->alloc, s.t);
    vitq_i_free(r->alloc, s.of_point);
    return st;
}
