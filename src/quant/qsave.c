/* Writing a quantized model as safetensors (docs/formats.md, "Quantized models"):
 *   float tensors under timm names, except the weights of quantized points, stored as codes;
 *   "<point>.<param>" F32 tensors with every quantizer's parameters;
 *   __metadata__: vitq.format = "quantized", vitq.format_version, the hyper-parameters as vitq.*
 *   keys (so the file loads without config.json), the class names (vitq.class_names) when the model
 *   has them, and vitq.points, a JSON array describing each quantized point. */
#include <stdio.h>
#include <string.h>

#include "io/st_writer.h"
#include "model/class_names.h"
#include "model/model_tensors.h"
#include "model/weights.h"
#include "quant/codes.h"
#include "quant/integer.h"
#include "quant/nonlinear_file.h"
#include "quant/qmodel.h"
#include "util/text.h"

/* Version 2 adds the integer non-linear operators (vitq.nonlinear); a file without them stays version
 * 1, which older readers load. A reader of version 1 refuses version 2 rather than run its operators
 * in float without a word. */
#define FORMAT_VERSION_1 "1"
#define FORMAT_VERSION_NL "2"

typedef struct save_ctx {
    const vitq_allocator *a;
    vitq_i_st_writer *w;
    const vitq_i_qmodel *q;
    int *weight_ndim;        /* per qpoint: shape of the weight tensor as walked */
    uint64_t (*weight_shape)[4];
} save_ctx;

static vitq_status add_tensor(void *ctx, const char *name, int ndim, const uint64_t *shape, const float *data,
                              const vitq_i_linear *layer) {
    save_ctx *c = ctx;
    int point = vitq_i_points_find(&c->q->list, name);
    int qi = point >= 0 && c->q->of_point ? c->q->of_point[point] : -1;
    uint64_t count = 1;
    for (int d = 0; d < ndim; d++) count *= shape[d];
    if (qi < 0 && data) return vitq_i_stw_add(c->w, name, "F32", ndim, shape, data, (size_t)count * sizeof(float));
    if (qi < 0) { /* a float weight, rebuilt from the layer's panels */
        float *rows = vitq_i_alloc_array(c->a, (size_t)count, sizeof(float));
        if (!rows) return vitq_i_oom(name, (size_t)count * sizeof(float));
        vitq_status st = vitq_i_linear_rows(c->a, layer, rows);
        if (st) {
            vitq_i_free(c->a, rows);
            return st;
        }
        return vitq_i_stw_add_owned(c->w, name, "F32", ndim, shape, rows, (size_t)count * sizeof(float));
    }
    const vitq_i_qpoint *qp = &c->q->qpoints[qi];
    const vitq_i_point_desc *d = &c->q->list.points[qp->point];
    int sb = vitq_i_code_storage_bits(qp->inst.config.bits);
    uint64_t packed[2] = {(uint64_t)d->channels, vitq_i_code_row_bytes(d->inner, sb)};
    c->weight_ndim[qi] = ndim;
    memcpy(c->weight_shape[qi], shape, (size_t)ndim * sizeof(uint64_t));
    const char *dtype = sb == 8 && qp->inst.config.symmetric ? "I8" : "U8";
    if (qp->codes) return vitq_i_stw_add(c->w, name, dtype, 2, packed, qp->codes, qp->codes_bytes);
    /* a layer that runs in integers keeps its codes only in its panels */
    if (!d->weight || !d->weight->integer)
        return vitq_i_fail(VITQ_ERR_BAD_STATE, "quantized weight '%s' has no codes", name);
    uint8_t *codes = vitq_i_alloc(c->a, qp->codes_bytes);
    if (!codes) return vitq_i_oom(name, qp->codes_bytes);
    vitq_status st = vitq_i_integer_weight_codes(c->a, d->weight, qp, codes);
    if (st) {
        vitq_i_free(c->a, codes);
        return st;
    }
    return vitq_i_stw_add_owned(c->w, name, dtype, 2, packed, codes, qp->codes_bytes);
}

static void describe_point(vitq_i_text *t, const save_ctx *c, int qi) {
    const vitq_i_qpoint *qp = &c->q->qpoints[qi];
    const vitq_point_config *cfg = &qp->inst.config;
    const vitq_scheme *s = &qp->inst.scheme;
    vitq_i_text_append(t, "%s{\"name\":\"%s\",\"scheme\":\"%s\",\"bits\":%d,\"granularity\":\"%s\",\"symmetric\":%d,", qi ? "," : "",
           c->q->list.points[qp->point].name, s->name, (int)cfg->bits, vitq_i_granularity_name(cfg->granularity),
           (int)cfg->symmetric);
    vitq_i_text_append(t, "\"channels\":%lld,\"groups\":%lld,\"channels_per_group\":%lld,\"seed\":%llu,", (long long)cfg->channels,
           (long long)cfg->groups, (long long)cfg->channels_per_group, (unsigned long long)cfg->seed);
    if (s->revision) vitq_i_text_append(t, "\"revision\":%u,", (unsigned)s->revision);
    vitq_i_text_append(t, "\"observed_min\":%.9g,\"observed_max\":%.9g,\"options\":{", (double)qp->observed_min,
           (double)qp->observed_max);
    for (int o = 0; o < s->num_options; o++)
        vitq_i_text_append(t, "%s\"%s\":%.17g", o ? "," : "", s->options[o].name, qp->inst.options[o]);
    vitq_i_text_append(t, "},\"params\":[");
    int32_t n = s->param_count(qp->inst.state);
    for (int32_t p = 0; p < n; p++) {
        const char *name;
        const float *values;
        int64_t count;
        if (s->get_param(qp->inst.state, p, &name, &values, &count) == VITQ_OK)
            vitq_i_text_append(t, "%s\"%s\"", p ? "," : "", name);
    }
    vitq_i_text_append(t, "]");
    if (qp->noise) vitq_i_text_append(t, ",\"noise\":1");
    if (c->weight_ndim[qi]) {
        vitq_i_text_append(t, ",\"shape\":[");
        for (int d = 0; d < c->weight_ndim[qi]; d++)
            vitq_i_text_append(t, "%s%llu", d ? "," : "", (unsigned long long)c->weight_shape[qi][d]);
        vitq_i_text_append(t, "]");
    }
    vitq_i_text_append(t, "}");
}

static vitq_status add_params(save_ctx *c, int qi) {
    const vitq_i_qpoint *qp = &c->q->qpoints[qi];
    const vitq_scheme *s = &qp->inst.scheme;
    int32_t n = s->param_count(qp->inst.state);
    for (int32_t p = 0; p < n; p++) {
        const char *name;
        const float *values;
        int64_t count;
        char full[VITQ_I_POINT_NAME + 64];
        vitq_status st = s->get_param(qp->inst.state, p, &name, &values, &count);
        if (st) return st;
        snprintf(full, sizeof full, "%s.%s", c->q->list.points[qp->point].name, name);
        uint64_t shape[1] = {(uint64_t)count};
        if ((st = vitq_i_stw_add(c->w, full, "F32", 1, shape, values, (size_t)count * sizeof(float)))) return st;
    }
    if (qp->noise) {
        char full[VITQ_I_POINT_NAME + 16];
        snprintf(full, sizeof full, "%s.noise", c->q->list.points[qp->point].name);
        uint64_t shape[1] = {(uint64_t)qp->inst.config.channels};
        return vitq_i_stw_add(c->w, full, "F32", 1, shape, qp->noise, (size_t)shape[0] * sizeof(float));
    }
    return VITQ_OK;
}

static vitq_status add_hparams(vitq_i_st_writer *w, const vitq_i_net *m, const vitq_i_qmodel *q) {
    const vitq_model_info *i = &m->info;
    char v[256];
    vitq_status st = vitq_i_stw_meta(w, "vitq.format", "quantized");
    if (!st) st = vitq_i_stw_meta(w, "vitq.format_version", q->nl_count ? FORMAT_VERSION_NL : FORMAT_VERSION_1);
    if (!st && i->arch != VITQ_ARCH_SWIN) {
        snprintf(v, sizeof v, "%d", (int)i->num_heads);
        st = vitq_i_stw_meta(w, "vitq.num_heads", v);
    }
    snprintf(v, sizeof v, "%.9g", (double)i->layer_norm_eps);
    if (!st) st = vitq_i_stw_meta(w, "vitq.layer_norm_eps", v);
    if (!st) st = vitq_i_stw_meta(w, "vitq.gelu", i->gelu == VITQ_GELU_TANH ? "tanh" : "erf");
    snprintf(v, sizeof v, "%d", (int)i->image_size);
    if (!st) st = vitq_i_stw_meta(w, "vitq.image_size", v);
    for (int which = 0; !st && which < 2; which++) {
        if (m->sources[which ? VITQ_HPARAM_STD : VITQ_HPARAM_MEAN] == VITQ_SOURCE_NONE) continue;
        const float *x = which ? i->std : i->mean;
        size_t used = 0;
        for (int ch = 0; ch < i->in_channels; ch++)
            used += (size_t)snprintf(v + used, sizeof v - used, "%s%.9g", ch ? "," : "", (double)x[ch]);
        st = vitq_i_stw_meta(w, which ? "vitq.std" : "vitq.mean", v);
    }
    if (!st && m->class_names) { /* a quantized file reads no config.json: it keeps the names itself */
        char *names = vitq_i_class_names_json(&w->alloc, m->class_names, i->num_classes);
        st = names ? vitq_i_stw_meta(w, VITQ_I_CLASS_NAMES_KEY, names) : vitq_i_oom("class names", 0);
        vitq_i_free(&w->alloc, names);
    }
    return st;
}

vitq_status vitq_i_qsave(const vitq_allocator *a, const vitq_i_net *m, const vitq_i_qmodel *q, uint8_t **out,
                         size_t *size) {
    vitq_i_st_writer w;
    vitq_i_text t = {a, NULL, 0, 0, 0};
    vitq_i_stw_init(&w, a);
    save_ctx c = {a, &w, q, vitq_i_calloc(a, (size_t)q->count + 1, sizeof(int)),
                  vitq_i_calloc(a, (size_t)q->count + 1, sizeof(uint64_t[4]))};
    vitq_status st = c.weight_ndim && c.weight_shape
                         ? VITQ_OK
                         : vitq_i_oom("quantized model shapes", ((size_t)q->count + 1) * sizeof(uint64_t[4]));
    if (!st) st = add_hparams(&w, m, q);
    if (!st) st = vitq_i_model_tensors(m, add_tensor, &c);
    for (int qi = 0; !st && qi < q->count; qi++) st = add_params(&c, qi);
    /* the point table reads the shapes add_tensor recorded: only after everything above succeeded */
    if (!st) {
        vitq_i_text_append(&t, "[");
        for (int qi = 0; qi < q->count; qi++) describe_point(&t, &c, qi);
        vitq_i_text_append(&t, "]");
        if (t.failed) st = vitq_i_oom("quantized model point table", t.cap ? 2 * t.cap : 4096);
    }
    if (!st) st = vitq_i_stw_meta(&w, "vitq.points", t.s);
    if (!st) st = vitq_i_nl_write(&w, q);
    if (!st) st = vitq_i_stw_finish(&w, out, size);
    vitq_i_text_free(&t);
    vitq_i_free(a, c.weight_ndim);
    vitq_i_free(a, c.weight_shape);
    vitq_i_stw_free(&w);
    return st;
}
