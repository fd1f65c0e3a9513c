/* Swin's quantized patch merging for QAT and its backward (qat_merge.h). */
#include <string.h>

#include "calib/qat_merge.h"
#include "calib/run_stem.h"
#include "grad/backward.h"
#include "kernels/kernels.h"
#include "kernels/parallel.h"
#include "model/stem.h"
#include "model/swin_geometry.h"
#include "train/linear.h"

static vitq_tensor_view rows_of(float *x, size_t rows, size_t width) {
    vitq_tensor_view v = {sizeof v, x, (int64_t)rows, (int64_t)width, 1, (int64_t)width};
    return v;
}

vitq_status vitq_i_qat_merge_create(vitq_i_qat_merge *g, const vitq_i_run *r, int stage, size_t max_images) {
    memset(g, 0, sizeof *g);
    const vitq_model_info *i = &r->model->info;
    const vitq_i_linear *l = &r->model->stages[stage].merge;
    g->r = r, g->stage = stage, g->grid_prev = i->stage_grid[stage - 1];
    g->nthreads = vitq_i_resolve_threads(r->model->num_threads);
    g->dim_prev = (size_t)i->stage_dim[stage - 1], g->in = l->in, g->out = l->out;
    g->rows_per_image = (size_t)i->stage_grid[stage] * (size_t)i->stage_grid[stage];
    g->point_norm = r->list->sites.stages[stage].merge_norm_in, g->point_in = r->list->sites.stages[stage].merge_in;
    size_t acts = max_images * g->rows_per_image * g->in, w = g->out * g->in;
    size_t panels = vitq_i_gemm_packed_floats(g->out, g->in), scratch = vitq_i_linear_input_grad_floats(g->in, g->out);
    size_t floats = w + panels + 4 * acts + scratch;
    g->block = vitq_i_alloc_array(r->alloc, floats, sizeof(float));
    if (!g->block) return vitq_i_oom("QAT patch merging", floats * sizeof(float));
    g->w = g->block, g->panels = g->w + w, g->gather = g->panels + panels, g->gq = g->gather + acts;
    g->ln = g->gq + acts, g->lnq = g->ln + acts, g->scratch = g->lnq + acts;
    vitq_status st = vitq_i_run_fake_weight(r, g->point_in + 1, g->w); /* the weight point follows its input's */
    if (st) return st;
    vitq_i_gemm_pack_strided(g->w, g->in, 1, g->out, g->in, g->panels, &g->packed);
    const vitq_i_qpoint *qn = vitq_i_run_qpoint(r, g->point_norm), *qi = vitq_i_run_qpoint(r, g->point_in);
    g->has_norm = qn != NULL, g->has_in = qi != NULL;
    if (qn) st = vitq_i_ste_from_instance(&g->ste_norm, r->alloc, &qn->inst);
    if (!st && qi) st = vitq_i_ste_from_instance(&g->ste_in, r->alloc, &qi->inst);
    return st;
}

void vitq_i_qat_merge_free(vitq_i_qat_merge *g) {
    if (!g->r) return;
    vitq_i_ste_free(&g->ste_norm);
    vitq_i_ste_free(&g->ste_in);
    vitq_i_free(g->r->alloc, g->block);
    memset(g, 0, sizeof *g);
}

vitq_status vitq_i_qat_merge_forward(vitq_i_qat_merge *g, const float *prev, size_t n, float *x) {
    const vitq_i_stage *s = &g->r->model->stages[g->stage];
    size_t rows = n * g->rows_per_image, count = rows * g->in;
    vitq_i_swin_merge_gather(prev, n, g->grid_prev, g->dim_prev, g->gather);
    memcpy(g->gq, g->gather, count * sizeof(float));
    vitq_tensor_view v = rows_of(g->gq, rows, g->in);
    vitq_status st = vitq_i_run_fake_quant(g->r, g->point_norm, &v);
    vitq_i_layernorm(g->gq, rows, g->in, s->merge_norm.gamma, s->merge_norm.beta, VITQ_I_SWIN_STEM_EPS, g->ln,
                     g->nthreads);
    memcpy(g->lnq, g->ln, count * sizeof(float));
    v = rows_of(g->lnq, rows, g->in);
    if (!st) st = vitq_i_run_fake_quant(g->r, g->point_in, &v);
    vitq_i_gemm(g->lnq, g->in, rows, &g->packed, s->merge.bias, x, g->out, VITQ_I_EPI_NONE, g->nthreads);
    return st;
}

void vitq_i_qat_merge_backward(vitq_i_qat_merge *g, const float *dx, size_t n, float *d_prev) {
    const vitq_i_stage *s = &g->r->model->stages[g->stage];
    size_t rows = n * g->rows_per_image;
    float *d = g->lnq; /* the forward's quantized copy is free now: the gradient's room */
    vitq_i_linear_input_grad(g->w, dx, rows, g->in, g->out, d, 0, g->scratch, g->nthreads);
    vitq_tensor_view v = rows_of(g->ln, rows, g->in);
    if (g->has_in) (void)vitq_i_ste_backward(&g->ste_in, &v, d, d, 0, "patch merging input");
    vitq_i_layernorm_backward(g->gq, d, rows, g->in, s->merge_norm.gamma, VITQ_I_SWIN_STEM_EPS, d, 0, g->nthreads);
    v = rows_of(g->gather, rows, g->in);
    if (g->has_norm) (void)vitq_i_ste_backward(&g->ste_norm, &v, d, d, 0, "patch merging norm input");
    vitq_i_swin_merge_scatter(d, n, g->grid_prev, g->dim_prev, d_prev);
}
