/* Per-point damage report of a quantized model against its float model (vitq_model_report).
 *
 * For each quantized point: the SQNR of its tensor against the unquantized value of the same tensor
 * (weights: the float weights as the quantized model's folds left them; activations: the value in the
 * fully quantized run, the local quantization noise), the float range, and the cosine of the logits
 * against FP32 when only that point is quantized (its damage in isolation). The float side is the
 * float model aligned with the quantized model's folds (report_reference.h): without that, a method
 * that rescales LayerNorm outputs into the next weights (RepQ-ViT) would be charged with its fold.
 * Isolation runs the aligned model with one tap (activations) or one layer's weights replaced by the
 * quantized ones (weights), through a shallow copy that shares everything else. */
#include <math.h>
#include <string.h>

#include "calib/report.h"
#include "calib/report_isolate.h"
#include "calib/report_reference.h"
#include "core/abi.h"
#include "data/dataset.h"
#include "model/weights.h"
#include "quant/metrics.h"

typedef struct measure {
    const vitq_i_qmodel *q;
    double *signal, *noise; /* per qpoint */
    float *lo, *hi;
    const vitq_allocator *a;
} measure;

/* Fake-quantize like the quantized model does, recording the noise it adds. */
static vitq_status measure_tap(vitq_i_taps *t, int point, const vitq_tensor_view *v) {
    measure *m = t->ctx;
    int qi = vitq_i_qmodel_quantizer(m->q, point);
    if (qi < 0) return VITQ_OK; /* an integer operator's input: measure_replace runs it */
    const vitq_i_instance *inst = &m->q->qpoints[qi].inst;
    size_t row = (size_t)(v->channels * v->inner);
    float *before = vitq_i_alloc_array(m->a, row * (size_t)v->outer, sizeof(float));
    if (!before) return vitq_i_oom("report", row * (size_t)v->outer * sizeof(float));
    for (int64_t o = 0; o < v->outer; o++) memcpy(before + (size_t)o * row, v->data + o * v->outer_stride, row * sizeof(float));
    vitq_status st = inst->scheme.fake_quant(inst->state, v);
    for (int64_t o = 0; !st && o < v->outer; o++)
        for (size_t k = 0; k < row; k++) {
            double x = before[(size_t)o * row + k], d = x - v->data[o * v->outer_stride + (int64_t)k];
            m->signal[qi] += x * x;
            m->noise[qi] += d * d;
            if (x < m->lo[qi]) m->lo[qi] = (float)x;
            if (x > m->hi[qi]) m->hi[qi] = (float)x;
        }
    vitq_i_free(m->a, before);
    return st;
}

static int measure_replace(vitq_i_taps *t, int point, const float *in, int64_t rows, int64_t channels,
                           int64_t stride, float *out) {
    const measure *m = t->ctx;
    return vitq_i_qmodel_replace(m->q, t, point, in, rows, channels, stride, out);
}

static double sqnr_db(double signal, double noise) {
    if (noise == 0) return INFINITY;
    return 10.0 * log10(signal / noise);
}

static vitq_status check_pair(const vitq_i_net *ref, const vitq_i_net *qm) {
    const vitq_model_info *a = &ref->info, *b = &qm->info;
    if (a->arch != b->arch || a->depth != b->depth || a->embed_dim != b->embed_dim || a->num_classes != b->num_classes ||
        a->image_size != b->image_size || a->num_stages != b->num_stages)
        return vitq_i_fail(VITQ_ERR_SHAPE, "vitq_model_report: %s and %s are not the same architecture", ref->name,
                           qm->name);
    return VITQ_OK;
}

/* Weights: the aligned float layer against the quantized model's, as signal and noise energies and range. */
static vitq_status measure_weights(const vitq_allocator *a, const vitq_i_qmodel *q, const vitq_i_point_list *ref_list,
                                   measure *m) {
    vitq_status st = VITQ_OK;
    for (int i = 0; !st && i < q->count; i++) {
        m->lo[i] = INFINITY;
        m->hi[i] = -INFINITY;
        const vitq_i_point_desc *d = &q->list.points[q->qpoints[i].point];
        if (d->kind != VITQ_POINT_WEIGHT) continue;
        int rp = vitq_i_points_find(ref_list, d->name);
        if (rp < 0) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "report: the float model has no layer '%s'", d->name);
        size_t elems = d->weight->out * d->weight->in;
        float *ref_w = vitq_i_alloc_array(a, elems, 2 * sizeof(float)), *q_w = ref_w ? ref_w + elems : NULL;
        if (!ref_w) return vitq_i_oom("report", 2 * elems * sizeof(float));
        st = vitq_i_linear_rows(a, ref_list->points[rp].weight, ref_w);
        if (!st) st = vitq_i_linear_rows(a, d->weight, q_w);
        for (size_t e = 0; !st && e < elems; e++) {
            double x = ref_w[e], y = q_w[e];
            m->signal[i] += x * x;
            m->noise[i] += (x - y) * (x - y);
            if (x < m->lo[i]) m->lo[i] = (float)x;
            if (x > m->hi[i]) m->hi[i] = (float)x;
        }
        vitq_i_free(a, ref_w);
    }
    return st;
}

/* The rows, worst (lowest isolated cosine) first, stable. */
static void write_rows(const vitq_i_qmodel *q, const measure *m, const double *cosine, int *order,
                       vitq_report_row *rows, int32_t capacity, size_t stride) {
    int nq = q->count;
    for (int i = 0; i < nq; i++) order[i] = i;
    for (int i = 1; i < nq; i++) /* insertion sort */
        for (int s = i; s > 0 && cosine[order[s]] < cosine[order[s - 1]]; s--) {
            int t = order[s];
            order[s] = order[s - 1];
            order[s - 1] = t;
        }
    for (int r = 0; r < nq && r < capacity; r++) {
        int i = order[r];
        vitq_report_row row;
        memset(&row, 0, sizeof row);
        row.struct_size = (uint32_t)stride;
        row.point = q->list.points[q->qpoints[i].point].name;
        row.bits = q->qpoints[i].inst.config.bits;
        row.sqnr_db = sqnr_db(m->signal[i], m->noise[i]);
        row.min = isfinite(m->lo[i]) ? m->lo[i] : 0.0f;
        row.max = isfinite(m->hi[i]) ? m->hi[i] : 0.0f;
        row.output_cosine = cosine[i];
        vitq_i_struct_out((char *)rows + (size_t)r * stride, (uint32_t)stride, &row, sizeof row);
    }
}

vitq_status vitq_i_report(const vitq_i_net *ref, const vitq_i_net *qm, const vitq_i_qmodel *q, const vitq_dataset *ds,
                          uint64_t first, size_t n, vitq_report_row *rows, int32_t capacity, int32_t *count,
                          double *output_cosine, const vitq_i_progress *progress) {
    vitq_status st = check_pair(ref, qm);
    if (st) return st;
    /* the caller's rows[0].struct_size is the stride of the array */
    size_t stride = capacity > 0 ? rows[0].struct_size : sizeof(vitq_report_row);
    if ((st = vitq_i_check_struct_size((uint32_t)stride, VITQ_I_V1_REPORT_ROW, "vitq_model_report",
                                       "vitq_report_row (rows[0])")))
        return st;
    int nq = q->count;
    *count = nq;
    if (capacity <= 0) return VITQ_OK; /* a size query: nothing to measure */
    const vitq_allocator *a = &qm->alloc;
    size_t per = (size_t)ref->info.in_channels * (size_t)ref->info.image_size * (size_t)ref->info.image_size;
    size_t k = (size_t)ref->info.num_classes;
    size_t group = vitq_i_report_group(ref, n), groups = (n + group - 1) / group;
    /* forward passes: float, quantized, one per point and group of images */
    int64_t done = 0, total = 2 + (int64_t)nq * (int64_t)groups;
    vitq_i_net aligned;
    if ((st = vitq_i_progress_step(progress, "report", 0, total, "report"))) return st;
    if ((st = vitq_i_report_reference(a, ref, qm, &aligned))) return st;
    float *images = vitq_i_alloc_array(a, n * per, sizeof(float));
    float *fp = vitq_i_alloc_array(a, n * k, sizeof(float)), *lg = vitq_i_alloc_array(a, n * k, sizeof(float));
    double *signal = vitq_i_calloc(a, (size_t)nq + 1, 2 * sizeof(double)), *cosine = vitq_i_calloc(a, (size_t)nq + 1, sizeof(double));
    float *range = vitq_i_alloc_array(a, 2 * ((size_t)nq + 1), sizeof(float));
    int *order = vitq_i_alloc_array(a, (size_t)nq + 1, sizeof(int));
    if (!images || !fp || !lg || !signal || !cosine || !range || !order) st = vitq_i_oom("report", n * per * sizeof(float));
    if (!st) st = vitq_i_dataset_images(ref, ds, first, n, images);
    if (!st) st = vitq_i_net_forward(&aligned, images, n, fp, NULL);
    if (!st) st = vitq_i_progress_step(progress, "report", ++done, total, "report");
    vitq_i_point_list ref_list;
    memset(&ref_list, 0, sizeof ref_list);
    if (!st) st = vitq_i_points_build(a, &aligned, &ref_list);
    measure m = {q, signal, signal ? signal + nq + 1 : NULL, range, range ? range + nq + 1 : NULL, a};
    if (!st) st = measure_weights(a, q, &ref_list, &m);
    if (!st) {
        /* the fully quantized run: the weights are already quantized in qm, activations measured */
        vitq_i_taps taps = {.sites = &q->sites, .apply = measure_tap, .replace = measure_replace, .ctx = &m};
        st = vitq_i_net_forward(qm, images, n, lg, &taps);
        if (!st) *output_cosine = vitq_i_metric(VITQ_METRIC_COSINE, fp, lg, n * k);
        if (!st) st = vitq_i_progress_step(progress, "report", ++done, total, "report");
    }
    if (!st) st = vitq_i_report_isolation(&aligned, q, &ref_list, images, n, fp, group, cosine, progress, &done,
                                               total);
    if (!st) write_rows(q, &m, cosine, order, rows, capacity, stride);
    vitq_i_points_free(a, &ref_list);
    vitq_i_report_reference_free(a, ref, &aligned);
    vitq_i_free(a, images);
    vitq_i_free(a, fp);
    vitq_i_free(a, lg);
    vitq_i_free(a, signal);
    vitq_i_free(a, cosine);
    vitq_i_free(a, range);
    vitq_i_free(a, order);
    return st;
}
