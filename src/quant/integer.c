/* The integer kernels of a quantized model's layers (see integer.h). */
#include <string.h>

#include "model/block.h"
#include "quant/codes.h"
#include "quant/integer.h"
#include "quant/range_scheme.h"

/* The range state of a uniform quantizer (minmax, percentile, omse, percentile-mse), or NULL when the
 * point uses another kind of quantizer (log, twin, ...) whose codes are not one uniform grid. */
static const vitq_i_range_state *uniform_state(const vitq_i_qpoint *qp) {
    if (qp->inst.scheme.fake_quant != vitq_i_range_fake_quant) return NULL;
    const vitq_i_range_state *s = qp->inst.state;
    return s && s->scale && s->zero_point ? s : NULL;
}

/* The input grid of a layer, when the kernels can take it: one group, at most 8 bits, no noise. */
static int input_grid(const vitq_i_qpoint *qp, vitq_i_qact *act) {
    const vitq_i_range_state *s = uniform_state(qp);
    if (!s || qp->noise || s->config.groups != 1 || s->grid.bits > 8) return 0;
    act->scale = s->scale[0];
    act->zero = (int32_t)s->zero_point[0];
    act->qmin = s->grid.qmin;
    act->qmax = s->grid.qmax;
    if ((float)act->zero != s->zero_point[0]) return 0;
    vitq_status st = vitq_i_qact_check(act);
    vitq_i_error_clear();
    return st == VITQ_OK;
}

/* Pack the weight codes of qp for layer l. VITQ_ERR_UNSUPPORTED when the kernels cannot take them (the
 * layer then stays simulated). */
static vitq_status pack_weight(const vitq_allocator *a, const vitq_i_qpoint *qp, const vitq_i_linear *l,
                               const vitq_i_codes_source *source, vitq_i_qpacked *out) {
    memset(out, 0, sizeof *out); /* the caller frees *out on any failure, also one before packing */
    const vitq_i_range_state *s = uniform_state(qp);
    size_t n = l->out, k = l->in, count;
    if (!s || (!qp->codes && !source) || s->grid.bits > 8 || (size_t)qp->inst.config.channels != n)
        return VITQ_ERR_UNSUPPORTED;
    if (!vitq_i_mul_size(n, k, &count)) return vitq_i_oom("integer weights", SIZE_MAX);
    uint8_t *stored = NULL; /* the codes read for this layer only, when qp does not hold them */
    if (!qp->codes) {
        vitq_status got = source->load(source->user, qp, &stored);
        if (got) return got;
    }
    int32_t *codes = vitq_i_alloc_array(a, count, sizeof(int32_t));
    float *scale = vitq_i_alloc_array(a, n, sizeof(float));
    int32_t *zero = vitq_i_alloc_array(a, n, sizeof(int32_t));
    vitq_status st = codes && scale && zero ? VITQ_OK : vitq_i_oom("integer weights", count * sizeof(int32_t));
    if (!st) {
        st = vitq_i_codes_unpack(stored ? stored : qp->codes, (int64_t)n, (int64_t)k, s->grid.bits, s->grid.symmetric,
                                 codes);
        int64_t per = s->config.channels_per_group > 0 ? s->config.channels_per_group : (int64_t)n;
        for (size_t j = 0; !st && j < n; j++) {
            scale[j] = s->scale[(int64_t)j / per];
            float z = s->zero_point[(int64_t)j / per];
            /* A zero point outside the code range, or fractional, is not a grid of codes (range first:
             * converting an out-of-range float to int is undefined). */
            if (!(z >= -256.0f && z <= 256.0f)) {
                st = VITQ_ERR_UNSUPPORTED;
                break;
            }
            zero[j] = (int32_t)z;
            if ((float)zero[j] != z) st = VITQ_ERR_UNSUPPORTED;
        }
    }
    vitq_i_free(a, stored); /* before the panels: they take its place */
    if (!st) st = vitq_i_qgemm_pack(a, codes, n, k, s->grid.bits, s->grid.symmetric, scale, zero, n, 0, out);
    vitq_i_free(a, codes);
    vitq_i_free(a, scale);
    vitq_i_free(a, zero);
    return st;
}

/* The grid of active point `point` when the kernels take it as an input. */
static int point_grid(const vitq_i_qmodel *q, int point, vitq_i_qact *grid) {
    return point >= 0 && q->of_point[point] >= 0 && input_grid(&q->qpoints[q->of_point[point]], grid);
}

int vitq_i_integer_point_grid(const vitq_i_qmodel *q, int point, vitq_i_qact *grid) {
    return point_grid(q, point, grid);
}

vitq_status vitq_i_integer_weight_ints(const vitq_allocator *a, const vitq_i_qpoint *qp, const vitq_i_linear *l,
                                       vitq_i_weight_ints *out) {
    memset(out, 0, sizeof *out);
    size_t n = l->out, k = l->in, count;
    if (!vitq_i_mul_size(n, k, &count)) return vitq_i_oom("integer weights", SIZE_MAX);
    out->codes = vitq_i_alloc_array(a, count, sizeof(int32_t));
    out->scale = vitq_i_alloc_array(a, n, sizeof(float));
    out->zero = vitq_i_alloc_array(a, n, sizeof(int32_t));
    if (!out->codes || !out->scale || !out->zero) return vitq_i_oom("integer weights", count * sizeof(int32_t));
    if (l->integer) { /* the panels hold the codes */
        const vitq_i_qpacked *w = &l->integer->weight;
        vitq_i_qgemm_unpack_codes(w, out->codes);
        for (size_t j = 0; j < n; j++) out->scale[j] = w->scale[j], out->zero[j] = vitq_i_qgemm_zero_point(w, j);
        out->bits = w->bits;
        out->symmetric = w->symmetric;
        return VITQ_OK;
    }
    const vitq_i_range_state *s = uniform_state(qp);
    if (!s || !qp->codes || s->grid.bits > 8 || (size_t)qp->inst.config.channels != n)
        return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "%s: not a uniform grid of at most 8 bits", qp->inst.name);
    vitq_status st = vitq_i_codes_unpack(qp->codes, (int64_t)n, (int64_t)k, s->grid.bits, s->grid.symmetric, out->codes);
    int64_t per = s->config.channels_per_group > 0 ? s->config.channels_per_group : (int64_t)n;
    for (size_t j = 0; !st && j < n; j++) {
        float z = s->zero_point[(int64_t)j / per];
        out->scale[j] = s->scale[(int64_t)j / per];
        if (!(z >= -256.0f && z <= 256.0f) || (float)(int32_t)z != z)
            return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "%s: zero point %g is not an integer code", qp->inst.name, (double)z);
        out->zero[j] = (int32_t)z;
    }
    out->bits = s->grid.bits;
    out->symmetric = s->grid.symmetric;
    return st;
}

void vitq_i_weight_ints_free(const vitq_allocator *a, vitq_i_weight_ints *w) {
    vitq_i_free(a, w->codes);
    vitq_i_free(a, w->scale);
    vitq_i_free(a, w->zero);
    memset(w, 0, sizeof *w);
}

static vitq_status build_attentions(vitq_i_net *m, const vitq_i_qmodel *q, unsigned char *realised, int *count) {
    for (int b = 0; q->sites.blocks && b < m->info.depth; b++) {
        const vitq_i_block_sites *s = &q->sites.blocks[b];
        vitq_i_qattention f;
        vitq_i_block_geom g;
        vitq_i_block_geom_of(m, b, 1, &g);
        if (s->scores >= 0 || !point_grid(q, s->q, &f.q) || !point_grid(q, s->k, &f.k) || !point_grid(q, s->v, &f.v) ||
            !point_grid(q, s->probs, &f.p) || !vitq_i_qattention_fits(g.seq_t, g.d, g.heads))
            continue;
        vitq_i_qattention *kernel = vitq_i_alloc(&m->alloc, sizeof f);
        if (!kernel) return vitq_i_oom("integer attention", sizeof f);
        *kernel = f;
        m->blocks[b].integer_attention = kernel;
        realised[s->q] = realised[s->k] = realised[s->v] = realised[s->probs] = 1;
        (*count)++;
    }
    return VITQ_OK;
}

static vitq_status build_layers(vitq_i_net *m, vitq_i_qmodel *q, const vitq_i_codes_source *source,
                                unsigned char *realised, int *count) {
    /* A weight point follows its layer's input point in the list (points.h). */
    for (int p = 1; p < q->list.count; p++) {
        const vitq_i_point_desc *d = &q->list.points[p];
        int wi = q->of_point[p], ii = q->of_point[p - 1];
        if (d->kind != VITQ_POINT_WEIGHT || !d->weight || wi < 0 || ii < 0 ||
            !vitq_i_role_is_linear_input(q->list.points[p - 1].role))
            continue;
        vitq_i_qact act;
        vitq_i_qpacked packed;
        if (!input_grid(&q->qpoints[ii], &act)) continue;
        vitq_status st = pack_weight(&m->alloc, &q->qpoints[wi], d->weight, source, &packed);
        if (st == VITQ_ERR_UNSUPPORTED) { /* stays simulated */
            vitq_i_error_clear();
            continue;
        }
        if (!st) st = vitq_i_qlinear_create(&m->alloc, &act, &packed, &d->weight->integer);
        if (st) {
            vitq_i_qpacked_free(&m->alloc, &packed);
            return st;
        }
        vitq_i_gemm_packed_free(&m->alloc, &d->weight->packed);
        vitq_i_free(&q->alloc, q->qpoints[wi].codes); /* the panels hold them (vitq_i_integer_weight_codes) */
        q->qpoints[wi].codes = NULL;
        realised[p - 1] = 1;
        (*count)++;
    }
    return VITQ_OK;
}

vitq_status vitq_i_integer_build(vitq_i_net *m, vitq_i_qmodel *q, const vitq_i_codes_source *source, int *layers,
                                 int *attentions) {
    *layers = *attentions = 0;
    unsigned char *realised = vitq_i_calloc(&q->alloc, (size_t)q->list.count + 1, 1);
    unsigned char *active = vitq_i_calloc(&q->alloc, (size_t)q->list.count + 1, 1);
    vitq_status st = realised && active ? VITQ_OK : vitq_i_oom("integer layers", 2 * (size_t)q->list.count);
    if (!st) st = build_attentions(m, q, realised, attentions);
    if (!st) st = build_layers(m, q, source, realised, layers);
    for (int i = 0; !st && i < q->count; i++) active[q->qpoints[i].point] = !realised[q->qpoints[i].point];
    for (int i = 0; !st && i < q->nl_count; i++) active[q->nl[i].point] = 1; /* operators run in the pass */
    if (!st) {
        vitq_i_sites_free(&q->alloc, &q->run_sites);
        st = vitq_i_sites_filter(&q->alloc, m, &q->list, active, &q->run_sites);
    }
    vitq_i_free(&q->alloc, realised);
    vitq_i_free(&q->alloc, active);
    return st;
}

vitq_status vitq_i_integer_weight_codes(const vitq_allocator *a, const vitq_i_linear *l, const vitq_i_qpoint *wp,
                                        uint8_t *out) {
    const vitq_i_qpacked *w = &l->integer->weight;
    size_t count;
    int32_t *codes = vitq_i_mul_size(w->n, w->k, &count) ? vitq_i_alloc_array(a, count, sizeof(int32_t)) : NULL;
    if (!codes) return vitq_i_oom(wp->inst.name, w->n * w->k * sizeof(int32_t));
    vitq_i_qgemm_unpack_codes(w, codes);
    const vitq_point_config *cfg = &wp->inst.config;
    vitq_status st =
        vitq_i_codes_pack(codes, (int64_t)w->n, (int64_t)w->k, cfg->bits, cfg->symmetric, out, wp->inst.name);
    vitq_i_free(a, codes);
    return st;
}
