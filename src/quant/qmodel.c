/* The simulated quantization of a quantized model (see qmodel.h). */
#include <stdio.h>
#include <string.h>

#include "core/abi.h"
#include "quant/noisy.h"
#include "quant/qmodel.h"

void vitq_i_qmodel_free(vitq_i_qmodel *q) {
    if (!q) return;
    vitq_allocator a = q->alloc;
    for (int i = 0; q->qpoints && i < q->count; i++) {
        vitq_i_instance_destroy(&q->qpoints[i].inst);
        vitq_i_free(&a, q->qpoints[i].codes);
        vitq_i_free(&a, q->qpoints[i].noise);
    }
    vitq_i_free(&a, q->qpoints);
    vitq_i_free(&a, q->of_point);
    for (int i = 0; q->nl && i < q->nl_count; i++) vitq_i_qnl_free(&a, &q->nl[i]);
    vitq_i_free(&a, q->nl);
    vitq_i_free(&a, q->nl_of_point);
    vitq_i_sites_free(&a, &q->sites);
    vitq_i_sites_free(&a, &q->run_sites);
    vitq_i_points_free(&a, &q->list);
    vitq_i_free(&a, q);
}

/* Fake quantization is read-only on a finalized quantizer, so concurrent forward passes on one
 * quantized model are safe (schemes promise it, vitq.h). */
static vitq_status instance_fake_quant(void *ctx, const vitq_tensor_view *v) {
    const vitq_i_instance *inst = ctx;
    return inst->scheme.fake_quant(inst->state, v);
}

static vitq_status apply_fake_quant(vitq_i_taps *t, int point, const vitq_tensor_view *v) {
    const vitq_i_qmodel *q = t->ctx;
    int qi = vitq_i_qmodel_quantizer(q, point);
    if (qi < 0) return VITQ_OK; /* an operator's input: replace takes it */
    const vitq_i_qpoint *qp = &q->qpoints[qi];
    if (qp->noise) return vitq_i_noisy_fake_quant(instance_fake_quant, (void *)&qp->inst, qp->noise, v);
    return qp->inst.scheme.fake_quant(qp->inst.state, v);
}

int vitq_i_qmodel_replace(const vitq_i_qmodel *q, vitq_i_taps *t, int point, const float *in, int64_t rows,
                          int64_t channels, int64_t stride, float *out) {
    const vitq_i_qnl *nl = vitq_i_qmodel_nl(q, point);
    if (!nl) return 0;
    t->status = vitq_i_qnl_run(&q->alloc, nl, in, rows, channels, stride, out);
    return 1;
}

static int replace_nonlinear(vitq_i_taps *t, int point, const float *in, int64_t rows, int64_t channels,
                             int64_t stride, float *out) {
    return vitq_i_qmodel_replace(t->ctx, t, point, in, rows, channels, stride, out);
}

vitq_i_taps vitq_i_qmodel_taps(const vitq_i_qmodel *q) {
    vitq_i_taps t = {.sites = q->run_sites.blocks ? &q->run_sites : &q->sites, .apply = apply_fake_quant,
                     .replace = q->nl_count ? replace_nonlinear : NULL, .ctx = (void *)q};
    return t;
}

vitq_status vitq_i_qmodel_index_nl(vitq_i_qmodel *q, const char *what) {
    vitq_i_free(&q->alloc, q->nl_of_point);
    q->nl_of_point = NULL;
    if (!q->nl_count) return VITQ_OK;
    q->nl_of_point = vitq_i_alloc_array(&q->alloc, (size_t)q->list.count, sizeof(int));
    if (!q->nl_of_point) return vitq_i_oom("integer operators", (size_t)q->list.count * sizeof(int));
    for (int p = 0; p < q->list.count; p++) q->nl_of_point[p] = -1;
    for (int i = 0; i < q->nl_count; i++) {
        int p = q->nl[i].point;
        if (p < 0 || p >= q->list.count)
            return vitq_i_fail(VITQ_ERR_FORMAT, "%s: integer operator %d has no point", what, i);
        const char *name = q->list.points[p].name;
        if (q->nl_of_point[p] >= 0)
            return vitq_i_fail(VITQ_ERR_FORMAT, "%s: point '%s' has two integer operators", what, name);
        if (q->of_point && q->of_point[p] >= 0)
            return vitq_i_fail(VITQ_ERR_FORMAT, "%s: point '%s' has a quantizer and an integer operator", what, name);
        if (vitq_i_nl_op_of_role(q->list.points[p].role) != q->nl[i].op)
            return vitq_i_fail(VITQ_ERR_FORMAT, "%s: point '%s' is not the input of a %s", what, name,
                               vitq_i_nl_op_name(q->nl[i].op));
        q->nl_of_point[p] = i;
    }
    /* FQ-ViT's Log-Int-Softmax gives the quantized probabilities itself (its 4-bit log2 codes) */
    for (int i = 0; i < q->nl_count; i++) {
        if (q->nl[i].op != VITQ_I_NL_SOFTMAX || q->nl[i].method != VITQ_NONLINEAR_FQVIT) continue;
        int probs = q->nl[i].point + 1; /* the probabilities follow the scores in the list (points.c) */
        if (probs < q->list.count && q->list.points[probs].role == VITQ_ROLE_POST_SOFTMAX)
            q->nl_of_point[probs] = VITQ_I_NL_BYPASSED;
    }
    return VITQ_OK;
}

void vitq_i_qmodel_mark_sites(const vitq_i_qmodel *q, unsigned char *active) {
    for (int i = 0; i < q->count; i++)
        if (q->list.points[q->qpoints[i].point].kind == VITQ_POINT_ACTIVATION) active[q->qpoints[i].point] = 1;
    for (int i = 0; i < q->nl_count; i++) active[q->nl[i].point] = 1;
}

void vitq_i_qmodel_point_info(const vitq_i_qmodel *q, int index, vitq_point_info *info) {
    const vitq_i_qpoint *qp = &q->qpoints[index];
    const vitq_i_point_desc *d = &q->list.points[qp->point];
    info->name = d->name;
    info->kind = d->kind;
    info->role = d->role;
    info->bits = qp->inst.config.bits;
    info->granularity = qp->inst.config.granularity;
    info->symmetric = qp->inst.config.symmetric;
    info->scheme = qp->inst.scheme.name;
    info->channels = d->channels;
    info->heads = d->heads;
    info->observed_min = qp->observed_min;
    info->observed_max = qp->observed_max;
}

void vitq_point_info_init(vitq_point_info *info) {
    if (!info) return;
    memset(info, 0, sizeof *info);
    info->struct_size = sizeof *info;
}

/* Copy `full` into the caller's struct, as much of it as the caller's version knows. */
vitq_status vitq_i_point_info_out(const vitq_point_info *full, vitq_point_info *info, const char *fn) {
    vitq_status st = vitq_i_check_struct_size(info->struct_size, VITQ_I_V1_POINT_INFO, fn, "vitq_point_info");
    if (!st) vitq_i_struct_out(info, info->struct_size, full, sizeof *full);
    return st;
}

void vitq_i_qmodel_size(const vitq_i_qmodel *q, uint64_t num_params, uint64_t *bytes, double *average_bits) {
    uint64_t params = 0, bits = 0;
    for (int i = 0; q && i < q->count; i++) {
        const vitq_i_point_desc *d = &q->list.points[q->qpoints[i].point];
        if (d->kind != VITQ_POINT_WEIGHT) continue;
        uint64_t n = (uint64_t)d->channels * (uint64_t)d->inner;
        params += n;
        bits += n * (uint64_t)q->qpoints[i].inst.config.bits;
    }
    uint64_t rest = num_params > params ? num_params - params : 0;
    *bytes = (bits + 32 * rest + 7) / 8;
    *average_bits = params ? (double)bits / (double)params : 32.0;
}
