/* NoisyQuant's noisy bias (CVPR 2023, docs/methods.md): for every linear input configured with
 * noisy = 1, a fixed noise N_c = K * u_c (u_c uniform in [-1, 1), drawn once per layer from the
 * point's seed) is added before the activation quantizer and removed after the layer through the
 * denoising bias B - Wq.N, which simulation writes as Q(X + N) - N before the layer.
 *
 * K is searched per layer on K = t * scale, t in {0, 1/STEPS, ..., 2} (the paper's range [0, 2 scale];
 * t = 0 keeps the layer noise-free, so noise is only added where it helps), scoring the mean squared
 * error of the layer's output against the layer on unquantized inputs, both with the quantized weight
 * (as the authors' code). The inputs are a strided sample of the float network's activations over the
 * calibration images, so the search costs one forward pass and a few small GEMMs per layer. */
#include <math.h>
#include <string.h>

#include "calib/noisy_search.h"
#include "quant/noisy.h"

#define SAMPLE_ROWS 512 /* input rows per layer the search scores (bounded memory and time) */
#define STEPS 10        /* candidates per scale: K = i / STEPS * scale, i = 0 .. 2 * STEPS */

typedef struct sample {
    float *rows;   /* [SAMPLE_ROWS][channels] */
    size_t count;  /* rows kept */
    uint64_t seen; /* rows offered */
    uint64_t stride;
} sample;

typedef struct record_ctx {
    sample *samples;  /* per point (NULL rows: not recorded) */
    size_t batch_images, num_images;
} record_ctx;

static vitq_status record_tap(vitq_i_taps *t, int point, const vitq_tensor_view *v) {
    record_ctx *rc = t->ctx;
    sample *s = &rc->samples[point];
    if (!s->rows) return VITQ_OK;
    if (!s->stride) { /* the first batch tells how many rows an image has */
        uint64_t total = (uint64_t)v->outer / rc->batch_images * rc->num_images;
        s->stride = total > SAMPLE_ROWS ? (total + SAMPLE_ROWS - 1) / SAMPLE_ROWS : 1;
    }
    size_t width = (size_t)(v->channels * v->inner);
    for (int64_t o = 0; o < v->outer; o++, s->seen++) {
        if (s->seen % s->stride || s->count >= SAMPLE_ROWS) continue;
        memcpy(s->rows + s->count * width, v->data + o * v->outer_stride, width * sizeof(float));
        s->count++;
    }
    return VITQ_OK;
}

static vitq_status instance_fake_quant(void *ctx, const vitq_tensor_view *v) {
    const vitq_i_instance *inst = ctx;
    return inst->scheme.fake_quant(inst->state, v);
}

/* Mean squared output error of the layer (packed quantized weight) for inputs x against exact ones. */
static double output_mse(const float *x, const float *exact, float *err, size_t rows, size_t in,
                         const vitq_i_packed *wq, float *out) {
    for (size_t i = 0; i < rows * in; i++) err[i] = x[i] - exact[i];
    vitq_i_gemm(err, in, rows, wq, NULL, out, wq->n, VITQ_I_EPI_NONE, 1);
    double sum = 0.0;
    for (size_t i = 0; i < rows * wq->n; i++) sum += (double)out[i] * out[i];
    return sum / (double)(rows * wq->n);
}

/* Per-channel step of the point's grid ("scale", per group), or 0 when the scheme has none. */
static int channel_scales(const vitq_i_qpoint *qp, float *step) {
    const vitq_scheme *s = &qp->inst.scheme;
    for (int32_t k = 0; k < s->param_count(qp->inst.state); k++) {
        const char *name;
        const float *values;
        int64_t count;
        if (s->get_param(qp->inst.state, k, &name, &values, &count) || strcmp(name, "scale") != 0) continue;
        int64_t cpg = qp->inst.config.channels_per_group;
        for (int64_t c = 0; c < qp->inst.config.channels; c++) step[c] = values[count == 1 ? 0 : c / cpg];
        return 1;
    }
    return 0;
}

/* Search K for point p from its recorded inputs; sets qp->noise when some K > 0 beats no noise. */
static vitq_status search_point(vitq_i_run *r, int p, const sample *s) {
    vitq_i_qpoint *qp = vitq_i_run_qpoint(r, p);
    const vitq_i_point_desc *w = &r->list->points[p + 1];
    size_t in = (size_t)qp->inst.config.channels, out = (size_t)w->channels, rows = s->count;
    if (w->kind != VITQ_POINT_WEIGHT || (size_t)w->inner != in)
        return vitq_i_fail(VITQ_ERR_CONFIG, "%s: noisy bias needs the input of a linear layer", qp->inst.name);
    float *wq = vitq_i_alloc_array(r->alloc, out * in, sizeof(float));
    float *unit = vitq_i_alloc_array(r->alloc, in, sizeof(float)), *step = vitq_i_alloc_array(r->alloc, in, sizeof(float));
    float *noise = vitq_i_alloc_array(r->alloc, in, sizeof(float)), *best = vitq_i_alloc_array(r->alloc, in, sizeof(float));
    float *x = vitq_i_alloc_array(r->alloc, rows * in, sizeof(float)), *err = vitq_i_alloc_array(r->alloc, rows * in, sizeof(float));
    float *y = vitq_i_alloc_array(r->alloc, rows * out, sizeof(float));
    vitq_i_packed packed = {0, 0, NULL};
    vitq_status st = wq && unit && step && noise && best && x && err && y ? VITQ_OK : vitq_i_oom(qp->inst.name, rows * in * 8);
    if (!st && !channel_scales(qp, step))
        st = vitq_i_fail(VITQ_ERR_CONFIG, "%s: noisy bias needs a scheme with a 'scale' parameter (scheme %s)",
                         qp->inst.name, qp->inst.scheme.name);
    if (!st) st = vitq_i_run_fake_weight(r, p + 1, wq);
    if (!st) st = vitq_i_gemm_pack(r->alloc, wq, out, in, &packed);
    double best_mse = INFINITY;
    int best_i = 0;
    if (!st) vitq_i_noise_draw(qp->inst.config.seed, unit, in);
    for (int i = 0; !st && i <= 2 * STEPS; i++) {
        for (size_t c = 0; c < in; c++) noise[c] = (float)i / STEPS * step[c] * unit[c];
        memcpy(x, s->rows, rows * in * sizeof(float));
        vitq_tensor_view v = {sizeof v, x, (int64_t)rows, (int64_t)in, 1, (int64_t)in};
        st = vitq_i_noisy_fake_quant(instance_fake_quant, &qp->inst, noise, &v);
        double mse = st ? INFINITY : output_mse(x, s->rows, err, rows, in, &packed, y);
        if (mse < best_mse) { /* ties keep the smaller noise */
            best_mse = mse;
            best_i = i;
            memcpy(best, noise, in * sizeof(float));
        }
    }
    if (!st && best_i > 0) {
        qp->noise = best;
        best = NULL;
    }
    vitq_i_gemm_packed_free(r->alloc, &packed);
    float *tofree[] = {wq, unit, step, noise, best, x, err, y};
    for (size_t k = 0; k < sizeof tofree / sizeof tofree[0]; k++) vitq_i_free(r->alloc, tofree[k]);
    return st;
}

vitq_status vitq_i_noisy_refine(vitq_i_run *r, const double *search_options) {
    (void)search_options;
    int n = r->list->count;
    sample *samples = vitq_i_calloc(r->alloc, (size_t)n, sizeof *samples);
    unsigned char *active = vitq_i_calloc(r->alloc, (size_t)n, 1);
    vitq_status st = samples && active ? VITQ_OK : vitq_i_oom("noisy bias", (size_t)n * sizeof *samples);
    for (int p = 0; !st && p < n; p++) {
        if (!r->cfg[p].noisy || !vitq_i_run_qpoint(r, p)) continue;
        size_t width = (size_t)r->list->points[p].channels;
        samples[p].rows = vitq_i_alloc_array(r->alloc, SAMPLE_ROWS * width, sizeof(float));
        if (!samples[p].rows) st = vitq_i_oom("noisy bias samples", SAMPLE_ROWS * width * sizeof(float));
        active[p] = 1;
    }
    vitq_i_sites sites;
    memset(&sites, 0, sizeof sites);
    if (!st) st = vitq_i_sites_filter(r->alloc, r->model, r->list, active, &sites);
    record_ctx rc = {samples, 0, r->num_images};
    for (size_t first = 0; !st && first < r->num_images; first += VITQ_I_FEED_BATCH) {
        rc.batch_images = r->num_images - first < VITQ_I_FEED_BATCH ? r->num_images - first : VITQ_I_FEED_BATCH;
        vitq_i_taps taps = {.sites = &sites, .apply = record_tap, .ctx = &rc};
        st = vitq_i_run_forward(r, first, rc.batch_images, &taps, NULL);
        if (!st) st = vitq_i_run_progress(r, "noisy bias");
    }
    for (int p = 0; !st && p < n; p++)
        if (samples[p].rows && samples[p].count) st = search_point(r, p, &samples[p]);
    for (int p = 0; samples && p < n; p++) vitq_i_free(r->alloc, samples[p].rows);
    vitq_i_sites_free(r->alloc, &sites);
    vitq_i_free(r->alloc, samples);
    vitq_i_free(r->alloc, active);
    return st;
}
