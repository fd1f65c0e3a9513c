/* Units, loss measurement and unit moves of greedy mixed precision (mixed_precision.h). */
#include "calib/mixed_precision.h"

#include <math.h>
#include <string.h>

#include "model/forward_common.h"

/* The weight point of `layer` in the run's list, or -1. */
static int weight_point(const vitq_i_run *r, const vitq_i_linear *layer) {
    for (int p = 0; p < r->list->count; p++)
        if (r->list->points[p].kind == VITQ_POINT_WEIGHT && r->list->points[p].weight == layer) return p;
    return -1;
}

/* Add unit (input point `in`, the layer, extra points) when its input and weight are quantized and none
 * of its points was set by the caller. */
static void add_unit(const vitq_i_run *r, const unsigned char *user_set, int in, const vitq_i_linear *layer,
                     const int *extra, int n_extra, int block, vitq_i_mp_layer kind, vitq_i_mp_unit *units, int *count) {
    int w = weight_point(r, layer);
    if (in < 0 || w < 0 || !r->cfg[in].bits || !r->cfg[w].bits) return;
    vitq_i_mp_unit u = {.count = 0, .weight = w, .block = block, .layer = kind,
                        .params = (uint64_t)r->list->points[w].channels * (uint64_t)r->list->points[w].inner};
    int all[VITQ_I_MP_MAX_POINTS] = {in, w};
    int n = 2;
    for (int i = 0; i < n_extra; i++)
        if (extra[i] >= 0 && r->cfg[extra[i]].bits) all[n++] = extra[i];
    for (int i = 0; i < n; i++) {
        if (user_set && user_set[all[i]]) return;
        u.points[u.count++] = all[i];
    }
    units[(*count)++] = u;
}

vitq_status vitq_i_mp_units(const vitq_i_run *r, const unsigned char *user_set, vitq_i_mp_unit **units, int *count) {
    const vitq_i_net *m = r->model;
    const vitq_i_sites *s = &r->list->sites;
    int depth = m->info.depth, stages = m->stages ? m->info.num_stages : 1;
    *count = 0;
    *units = vitq_i_calloc(r->alloc, (size_t)(4 * depth + stages), sizeof **units);
    if (!*units) return vitq_i_oom("mixed precision units", (size_t)(4 * depth + stages) * sizeof **units);
    for (int b = 0; b < depth; b++) {
        const vitq_i_block_sites *bs = &s->blocks[b];
        const vitq_i_block *blk = &m->blocks[b];
        const int attention[] = {bs->q, bs->k, bs->v, bs->scores, bs->probs};
        add_unit(r, user_set, bs->qkv_in, &blk->qkv, attention, 5, b, VITQ_I_MP_QKV, *units, count);
        add_unit(r, user_set, bs->proj_in, &blk->proj, NULL, 0, b, VITQ_I_MP_PROJ, *units, count);
        add_unit(r, user_set, bs->fc1_in, &blk->fc1, NULL, 0, b, VITQ_I_MP_FC1, *units, count);
        add_unit(r, user_set, bs->fc2_in, &blk->fc2, NULL, 0, b, VITQ_I_MP_FC2, *units, count);
    }
    for (int st = 1; m->stages && st < stages; st++)
        add_unit(r, user_set, s->stages[st].merge_in, &m->stages[st].merge, NULL, 0, st, VITQ_I_MP_MERGE, *units,
                 count);
    return VITQ_OK;
}

void vitq_i_mp_fixed(const vitq_i_run *r, const vitq_i_mp_unit *units, int count, uint64_t *params, uint64_t *bits,
                     uint64_t *float_params) {
    uint64_t all = 0;
    *params = *bits = 0;
    for (int p = 0; p < r->list->count; p++) {
        const vitq_i_point_desc *d = &r->list->points[p];
        if (d->kind != VITQ_POINT_WEIGHT || !r->cfg[p].bits) continue;
        uint64_t n = (uint64_t)d->channels * (uint64_t)d->inner;
        all += n;
        int in_unit = 0;
        for (int u = 0; u < count && !in_unit; u++) in_unit = units[u].weight == p;
        if (in_unit) continue;
        *params += n;
        *bits += n * (uint64_t)r->cfg[p].bits;
    }
    uint64_t total = r->model->info.num_params;
    *float_params = total > all ? total - all : 0;
}

/* ---- the layers a unit owns ------------------------------------------------------------------ */

static vitq_i_linear *unit_linear(vitq_i_net *m, const vitq_i_mp_unit *u) {
    switch (u->layer) {
    case VITQ_I_MP_QKV: return &m->blocks[u->block].qkv;
    case VITQ_I_MP_PROJ: return &m->blocks[u->block].proj;
    case VITQ_I_MP_FC1: return &m->blocks[u->block].fc1;
    case VITQ_I_MP_FC2: return &m->blocks[u->block].fc2;
    default: return &m->stages[u->block].merge;
    }
}

/* The LayerNorm a method may fold into the unit's layer (RepQ-ViT, SQ-b), or NULL. */
static vitq_i_layernorm_params *unit_norm(vitq_i_net *m, const vitq_i_mp_unit *u) {
    switch (u->layer) {
    case VITQ_I_MP_QKV: return &m->blocks[u->block].norm1;
    case VITQ_I_MP_FC1: return &m->blocks[u->block].norm2;
    case VITQ_I_MP_MERGE: return &m->stages[u->block].merge_norm;
    default: return NULL;
    }
}

/* Exchange the unit's layers between two networks of the same shape (plain structs owning their
 * arrays: nothing points into them but the point lists, which address them by position); the runs'
 * row pointers follow. */
static void exchange_layers(vitq_i_run *a, vitq_i_run *b, const vitq_i_mp_unit *u) {
    vitq_i_linear *la = unit_linear(a->model, u), *lb = unit_linear(b->model, u), tl = *la;
    *la = *lb;
    *lb = tl;
    vitq_i_layernorm_params *na = unit_norm(a->model, u), *nb = unit_norm(b->model, u);
    if (na && nb) {
        vitq_i_layernorm_params tn = *na;
        *na = *nb;
        *nb = tn;
    }
    a->weights[u->weight] = la->weight;
    b->weights[u->weight] = lb->weight;
}

/* ---- measurement ---------------------------------------------------------------------------- */

/* Taps of the base run's quantizers, with the unit's points from another run's. */
typedef struct override_ctx {
    vitq_i_taps base, other;
    const unsigned char *mask;
} override_ctx;

static vitq_status override_apply(vitq_i_taps *t, int point, const vitq_tensor_view *v) {
    override_ctx *o = t->ctx;
    vitq_i_taps *use = o->mask[point] ? &o->other : &o->base;
    return use->apply(use, point, v);
}

static double mean_kl(const float *ref, const float *q, size_t n, size_t k) {
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        const float *a = ref + i * k, *b = q + i * k;
        double ma = a[0], mb = b[0], za = 0, zb = 0, kl = 0;
        for (size_t c = 1; c < k; c++) ma = a[c] > ma ? a[c] : ma, mb = b[c] > mb ? b[c] : mb;
        for (size_t c = 0; c < k; c++) za += exp(a[c] - ma), zb += exp(b[c] - mb);
        double la = ma + log(za), lb = mb + log(zb);
        for (size_t c = 0; c < k; c++) {
            double pa = exp(a[c] - la);
            kl += pa * ((a[c] - la) - (b[c] - lb));
        }
        total += kl > 0 ? kl : 0;
    }
    return n ? total / (double)n : 0;
}

/* The base network's weight of unit u packed from `from`'s quantizer and rows (the layer base now
 * holds is `from`'s when the layers were exchanged). */
static vitq_status pack_from(vitq_i_run *base, const vitq_i_run *from, int p) {
    const vitq_i_point_desc *d = &base->list->points[p];
    vitq_i_linear *l = d->weight;
    float *w = vitq_i_alloc_array(base->alloc, l->out * l->in, sizeof(float));
    if (!w) return vitq_i_oom(d->name, l->out * l->in * sizeof(float));
    vitq_status st = vitq_i_run_fake_weight(from, p, w);
    vitq_i_packed fresh;
    if (!st) st = vitq_i_gemm_pack(base->alloc, w, l->out, l->in, &fresh);
    if (!st) {
        vitq_i_gemm_packed_free(base->alloc, &l->packed);
        l->packed = fresh;
    }
    vitq_i_free(base->alloc, w);
    return st;
}

/* The block a pass measuring unit u may start from (ViT / DeiT, streams kept), else -1. */
static int start_block(const vitq_i_net *m, const vitq_i_mp_unit *u, int have_streams) {
    return have_streams && !m->stages ? u->block : -1;
}

#define VITQ_I_MP_IMAGES 64                           /* at most this many calibration images measure */
#define VITQ_I_MP_STREAM_BUDGET ((size_t)64 << 20)    /* bytes of kept block inputs per group */

vitq_status vitq_i_mp_measure(vitq_i_run *const *runs, int widths, const vitq_i_mp_unit *units, int count, int layers,
                              double *loss) {
    vitq_i_run *r = runs[0];
    const vitq_i_net *m = r->model;
    size_t n = r->num_images < VITQ_I_MP_IMAGES ? r->num_images : VITQ_I_MP_IMAGES;
    size_t k = (size_t)m->info.num_classes, depth = (size_t)m->info.depth;
    size_t per_stream, group = vitq_i_run_stream_group(m, n, VITQ_I_MP_STREAM_BUDGET, &per_stream);
    float *fp = vitq_i_alloc_array(r->alloc, n + group, k * sizeof(float));
    float *streams = per_stream ? vitq_i_alloc_array(r->alloc, (depth + 1) * group, per_stream * sizeof(float)) : NULL;
    float **at = vitq_i_calloc(r->alloc, depth + 1, sizeof *at);
    unsigned char *mask = vitq_i_calloc(r->alloc, (size_t)r->list->count, 1);
    double *sum = vitq_i_calloc(r->alloc, (size_t)count * (size_t)widths + 1, sizeof(double));
    vitq_status st = VITQ_OK;
    if (!fp || (per_stream && !streams) || !at || !mask || !sum)
        st = vitq_i_oom("mixed precision measurement", (depth + 1) * group * per_stream * sizeof(float));
    for (size_t b = 0; streams && b <= depth; b++) at[b] = streams + b * group * per_stream;
    float *out = fp + n * k;
    double base_sum = 0;
    /* the float network's logits, then every weight quantized as the widest run has it */
    if (!st) st = vitq_i_run_set_weights(r, 0);
    for (size_t first = 0; !st && first < n; first += VITQ_I_FEED_BATCH) {
        size_t c = n - first < VITQ_I_FEED_BATCH ? n - first : VITQ_I_FEED_BATCH;
        st = vitq_i_run_forward(r, first, c, NULL, fp + first * k);
    }
    if (!st) st = vitq_i_run_set_weights(r, 1);
    r->progress_total += (int64_t)((n + group - 1) / group) * (1 + count);
    for (size_t first = 0; !st && first < n; first += group) {
        size_t c = n - first < group ? n - first : group;
        const float *images = r->images + first * r->per_image, *ref = fp + first * k;
        vitq_i_taps taps = vitq_i_qmodel_taps(r->q);
        st = streams ? vitq_i_vit_streams_taps(m, images, c, at, &taps, out) : vitq_i_net_forward(m, images, c, out, &taps);
        if (!st) base_sum += mean_kl(ref, out, c, k) * (double)c;
        if (!st) st = vitq_i_run_progress(r, "mixed precision");
        for (int u = 0; !st && u < count; u++) {
            const vitq_i_mp_unit *un = &units[u];
            for (int i = 0; i < un->count; i++) mask[un->points[i]] = 1;
            for (int w = 1; !st && w < widths; w++) {
                if (layers) exchange_layers(r, runs[w], un);
                st = pack_from(r, runs[w], un->weight);
                override_ctx o = {vitq_i_qmodel_taps(r->q), vitq_i_qmodel_taps(runs[w]->q), mask};
                vitq_i_taps t = {.sites = o.base.sites, .apply = override_apply, .ctx = &o};
                int from = start_block(m, un, streams != NULL);
                if (!st) st = from >= 0 ? vitq_i_vit_forward_from(m, from, at[from], c, out, &t)
                                        : vitq_i_net_forward(m, images, c, out, &t);
                if (!st) sum[(size_t)u * (size_t)widths + (size_t)w] += mean_kl(ref, out, c, k) * (double)c;
                if (layers) exchange_layers(r, runs[w], un);
                vitq_status back = vitq_i_run_set_weight(r, un->weight, 1);
                if (!st) st = back;
            }
            for (int i = 0; i < un->count; i++) mask[un->points[i]] = 0;
            if (!st) st = vitq_i_run_progress(r, "mixed precision");
        }
    }
    vitq_status restored = vitq_i_run_set_weights(r, 0);
    if (!st) st = restored;
    for (int u = 0; !st && u < count; u++) {
        loss[(size_t)u * (size_t)widths] = base_sum / (double)n;
        for (int w = 1; w < widths; w++)
            loss[(size_t)u * (size_t)widths + (size_t)w] = sum[(size_t)u * (size_t)widths + (size_t)w] / (double)n;
    }
    vitq_i_free(r->alloc, fp);
    vitq_i_free(r->alloc, streams);
    vitq_i_free(r->alloc, at);
    vitq_i_free(r->alloc, mask);
    vitq_i_free(r->alloc, sum);
    return st;
}

/* ---- composition ---------------------------------------------------------------------------- */

vitq_status vitq_i_mp_take(vitq_i_run *to, vitq_i_run *from, const vitq_i_mp_unit *u, int layers) {
    if (layers) exchange_layers(to, from, u);
    for (int i = 0; i < u->count; i++) {
        vitq_i_qpoint *dst = vitq_i_run_qpoint(to, u->points[i]);
        const vitq_i_qpoint *src = vitq_i_run_qpoint(from, u->points[i]);
        if (!dst || !src)
            return vitq_i_fail(VITQ_ERR_BAD_STATE, "mixed precision: %s is quantized in one run and not another",
                               to->list->points[u->points[i]].name);
        vitq_status st = vitq_i_instance_copy(&dst->inst, &src->inst);
        if (st) return st;
        dst->observed_min = src->observed_min;
        dst->observed_max = src->observed_max;
        vitq_i_free(to->alloc, dst->noise);
        dst->noise = NULL;
        if (src->noise) {
            size_t bytes = (size_t)to->list->points[u->points[i]].channels * sizeof(float);
            dst->noise = vitq_i_alloc(to->alloc, bytes);
            if (!dst->noise) return vitq_i_oom("noisy bias", bytes);
            memcpy(dst->noise, src->noise, bytes);
        }
        to->cfg[u->points[i]].bits = src->inst.config.bits;
    }
    return VITQ_OK;
}
