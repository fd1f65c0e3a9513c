/* Isolation passes of the damage report (report_isolate.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "calib/report_isolate.h"
#include "model/forward_common.h"
#include "model/weights.h"

static vitq_status fake_quant_tap(vitq_i_taps *t, int point, const vitq_tensor_view *v) {
    const vitq_i_qmodel *q = t->ctx;
    const vitq_i_instance *inst = &q->qpoints[q->of_point[point]].inst;
    return inst->scheme.fake_quant(inst->state, v);
}

size_t vitq_i_report_group(const vitq_i_net *ref, size_t n) {
    if (ref->stages) return n;
    size_t per = (size_t)(ref->info.depth + 1) * (size_t)ref->info.num_tokens * (size_t)ref->info.embed_dim * sizeof(float);
    size_t g = VITQ_I_STREAM_BUDGET / per;
    return g < 1 ? 1 : g > n ? n : g;
}

/* Where a ViT point's pass may start: the block its name is in ("blocks.N."), the head for points after
 * the last block, the images (-1) for the patch embedding and for every Swin point. */
static int start_block(const vitq_i_net *ref, const char *name) {
    int b;
    if (ref->stages || !strncmp(name, "patch_embed", 11)) return -1;
    if (sscanf(name, "blocks.%d.", &b) == 1) return b >= 0 && b < ref->info.depth ? b : -1;
    return ref->info.depth;
}

/* One point's pass over one group: the network (ref, or a copy with one layer swapped) and taps. */
typedef struct isolated {
    vitq_i_net net;
    vitq_i_packed packed; /* the swapped layer's panels (owned) */
    vitq_i_sites sites;
    vitq_i_taps taps;
    int has_taps;
} isolated;

static void isolated_free(const vitq_allocator *a, const vitq_i_net *ref, isolated *s) {
    if (s->has_taps) vitq_i_sites_free(a, &s->sites);
    if (s->net.blocks != ref->blocks) vitq_i_free(a, s->net.blocks);
    if (s->net.stages != ref->stages) vitq_i_free(a, s->net.stages);
    vitq_i_gemm_packed_free(a, &s->packed);
}

static vitq_status isolated_setup(const vitq_allocator *a, const vitq_i_net *ref, const vitq_i_qmodel *q,
                                  const vitq_i_point_list *ref_list, int qi, isolated *s) {
    memset(s, 0, sizeof *s);
    s->net = *ref;
    const vitq_i_qpoint *qp = &q->qpoints[qi];
    const vitq_i_point_desc *d = &q->list.points[qp->point];
    if (d->kind == VITQ_POINT_ACTIVATION) {
        unsigned char *active = vitq_i_calloc(a, (size_t)q->list.count, 1);
        if (!active) return vitq_i_oom("report", (size_t)q->list.count);
        active[qp->point] = 1;
        vitq_status st = vitq_i_sites_filter(a, ref, &q->list, active, &s->sites);
        vitq_i_free(a, active);
        if (st) return st;
        s->has_taps = 1;
        s->taps = (vitq_i_taps){.sites = &s->sites, .apply = fake_quant_tap, .ctx = (void *)q};
        return VITQ_OK;
    }
    /* the float model with this one layer's weights replaced by the quantized model's */
    size_t nb = (size_t)ref->info.depth, ns = ref->stages ? (size_t)ref->info.num_stages : 0;
    s->net.blocks = vitq_i_alloc_array(a, nb + 1, sizeof *s->net.blocks);
    s->net.stages = ns ? vitq_i_alloc_array(a, ns, sizeof *s->net.stages) : NULL;
    if (!s->net.blocks || (ns && !s->net.stages)) return vitq_i_oom("report", nb * sizeof *s->net.blocks);
    memcpy(s->net.blocks, ref->blocks, nb * sizeof *s->net.blocks);
    if (ns) memcpy(s->net.stages, ref->stages, ns * sizeof *s->net.stages);
    int rp = vitq_i_points_find(ref_list, d->name);
    vitq_i_linear *layer = rp >= 0 ? vitq_i_net_same_linear(ref, &s->net, ref_list->points[rp].weight) : NULL;
    if (!layer) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "report: the float model has no layer '%s'", d->name);
    float *rows = vitq_i_alloc_array(a, d->weight->out, d->weight->in * sizeof(float));
    if (!rows) return vitq_i_oom("report", d->weight->out * d->weight->in * sizeof(float));
    vitq_status st = vitq_i_linear_rows(a, d->weight, rows);
    if (!st) st = vitq_i_gemm_pack(a, rows, d->weight->out, d->weight->in, &s->packed);
    vitq_i_free(a, rows);
    if (!st) layer->packed = s->packed;
    return st;
}

typedef struct sums {
    double ab, bb;
} sums;

vitq_status vitq_i_report_isolation(const vitq_i_net *ref, const vitq_i_qmodel *q, const vitq_i_point_list *ref_list,
                                    const float *images, size_t n, const float *fp_logits, size_t group,
                                    double *cosine, const vitq_i_progress *progress, int64_t *done, int64_t total) {
    const vitq_allocator *a = &ref->alloc;
    const vitq_model_info *i = &ref->info;
    int nq = q->count, depth = i->depth;
    size_t k = (size_t)i->num_classes;
    if (group == 0 || group > n || ref->stages) group = vitq_i_report_group(ref, n);
    size_t per_image = (size_t)i->in_channels * (size_t)i->image_size * (size_t)i->image_size;
    size_t per_stream = ref->stages ? 0 : (size_t)i->num_tokens * (size_t)i->embed_dim;
    float *streams = per_stream ? vitq_i_alloc_array(a, (size_t)(depth + 1) * group, per_stream * sizeof(float)) : NULL;
    float **at = vitq_i_calloc(a, (size_t)depth + 1, sizeof *at);
    float *logits = vitq_i_alloc_array(a, group * k, sizeof(float));
    sums *acc = vitq_i_calloc(a, (size_t)nq + 1, sizeof *acc);
    vitq_status st = VITQ_OK;
    if ((per_stream && !streams) || !at || !logits || !acc)
        st = vitq_i_oom("report: kept residual streams", (size_t)(depth + 1) * group * per_stream * sizeof(float));
    for (int b = 0; !st && streams && b <= depth; b++) at[b] = streams + (size_t)b * group * per_stream;
    double aa = 0.0;
    for (size_t first = 0; !st && first < n; first += group) {
        size_t count = n - first < group ? n - first : group;
        const float *fp = fp_logits + first * k;
        for (size_t e = 0; e < count * k; e++) aa += (double)fp[e] * fp[e];
        if (streams) st = vitq_i_vit_streams(ref, images + first * per_image, count, at);
        for (int p = 0; !st && p < nq; p++) {
            isolated s;
            st = isolated_setup(a, ref, q, ref_list, p, &s);
            int from = st ? -1 : start_block(ref, q->list.points[q->qpoints[p].point].name);
            vitq_i_taps *taps = s.has_taps ? &s.taps : NULL;
            if (!st && from >= 0) st = vitq_i_vit_forward_from(&s.net, from, at[from], count, logits, taps);
            else if (!st) st = vitq_i_net_forward(&s.net, images + first * per_image, count, logits, taps);
            isolated_free(a, ref, &s);
            for (size_t e = 0; !st && e < count * k; e++) {
                acc[p].ab += (double)fp[e] * logits[e];
                acc[p].bb += (double)logits[e] * logits[e];
            }
            if (!st) st = vitq_i_progress_step(progress, "report", ++*done, total, "report");
        }
    }
    /* the cosine of vitq_i_metric over all n images, from sums gathered group by group */
    for (int p = 0; !st && p < nq; p++) {
        double bb = acc[p].bb, c = aa == 0.0 && bb == 0.0 ? 1.0 : aa == 0.0 || bb == 0.0 ? 0.0
                                                                 : acc[p].ab / (sqrt(aa) * sqrt(bb));
        cosine[p] = c > 1.0 ? 1.0 : c < -1.0 ? -1.0 : c;
    }
    vitq_i_free(a, streams);
    vitq_i_free(a, at);
    vitq_i_free(a, logits);
    vitq_i_free(a, acc);
    return st;
}
