/* The quantized network's embedding and merging on a run (run_stem.h). */
#include <string.h>

#include "calib/run_stem.h"
#include "grad/backward.h"
#include "model/stem.h"
#include "quant/noisy.h"

typedef struct embed_ctx {
    vitq_i_run *r;
    int capture_point; /* -1: none */
    float *capture;    /* a copy of that point's (quantized) view */
} embed_ctx;

static vitq_status instance_fq(void *ctx, const vitq_tensor_view *v) {
    const vitq_i_instance *inst = ctx;
    return inst->scheme.fake_quant(inst->state, v);
}

vitq_status vitq_i_run_fake_quant(const vitq_i_run *r, int point, const vitq_tensor_view *v) {
    const vitq_i_qpoint *qp = vitq_i_run_qpoint(r, point);
    if (qp && qp->noise) return vitq_i_noisy_fake_quant(instance_fq, (void *)&qp->inst, qp->noise, v);
    return qp ? qp->inst.scheme.fake_quant(qp->inst.state, v) : VITQ_OK;
}

static vitq_status quant_tap(vitq_i_taps *t, int point, const vitq_tensor_view *v) {
    const embed_ctx *c = t->ctx;
    vitq_status st = vitq_i_run_fake_quant(c->r, point, v);
    if (!st && point == c->capture_point) /* the stems' views are dense rows */
        memcpy(c->capture, v->data, (size_t)(v->outer * v->channels * v->inner) * sizeof(float));
    return st;
}

vitq_status vitq_i_run_stem(vitq_i_run *r, const vitq_i_stem_job *j, int quantized) {
    const vitq_i_net *m = r->model;
    const vitq_model_info *i = &m->info;
    size_t tokens, d, patch_in = (size_t)i->in_channels * (size_t)i->patch_size * (size_t)i->patch_size;
    vitq_i_block_shape(m, 0, &tokens, &d, NULL, NULL, NULL);
    size_t floats = j->stage ? 0 : j->n * (tokens + 1) * (patch_in + d); /* the embedding's patches */
    float *patches = floats ? vitq_i_alloc_array(r->alloc, floats, sizeof(float)) : NULL;
    if (floats && !patches) return vitq_i_oom("quantized embedding", floats * sizeof(float));
    int wp = (j->stage ? r->list->sites.stages[j->stage].merge_in : r->list->sites.patch_in) + 1;
    int weighted = quantized && vitq_i_run_qpoint(r, wp);
    vitq_status st = weighted ? vitq_i_run_set_weight(r, wp, 1) : VITQ_OK;
    embed_ctx c = {r, j->capture ? r->list->sites.stages[j->stage].merge_in : -1, j->capture};
    vitq_i_taps taps = {.sites = &r->list->sites, .apply = quant_tap, .ctx = &c};
    vitq_i_pass p;
    vitq_i_pass_begin(&p, m, quantized ? &taps : NULL);
    if (!st && j->stage) vitq_i_swin_merge(&p, j->stage, j->n, j->x, j->scratch, j->x);
    else if (!st && i->arch == VITQ_ARCH_SWIN) vitq_i_swin_embed(&p, j->images, j->n, patches, j->x);
    else if (!st) vitq_i_vit_embed(&p, j->images, j->n, patches, patches + j->n * tokens * patch_in, j->x);
    vitq_status pst = vitq_i_pass_end(&p);
    if (!st) st = pst;
    if (!st && quantized) st = taps.status;
    vitq_status off = weighted ? vitq_i_run_set_weight(r, wp, 0) : VITQ_OK;
    vitq_i_free(r->alloc, patches);
    return st ? st : off;
}

int vitq_i_merge_before(const vitq_i_net *m, int b) {
    for (int s = 1; m->info.arch == VITQ_ARCH_SWIN && s < m->info.num_stages; s++)
        if (m->stages[s].first_block == b) return s;
    return 0;
}
