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
    const vitq_i_qpoint *qp = &q->qpoints[q->of_point[point]];
    if (qp->noise) return vitq_i_noisy_fake_quant(instance_fake_quant, (void *)&qp->inst, qp->noise, v);
    return qp->inst.scheme.fake_quant(qp->inst.state, v);
}

vitq_i_taps vitq_i_qmodel_taps(const vitq_i_qmodel *q) {
    vitq_i_taps t = {.sites = q->run_sites.blocks ? &q->run_sites : &q->sites, .apply = apply_fake_quant,
                     .ctx = (void *)q};
    return t;
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
