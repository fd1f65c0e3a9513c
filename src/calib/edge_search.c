/* One linear layer outside the blocks, searched on its own output (edge_search.h). Each candidate runs the
 * layer alone on its captured input: the input point's tap (the forward pass's own linear-layer step,
 * model/block.h) fake-quantizes a copy of the input when the point is active, and the GEMM reads the packed,
 * fake-quantized weight. */
#include <string.h>

#include "calib/edge_search.h"
#include "model/block.h"

typedef struct edge_ctx {
    vitq_i_run *r;
    const vitq_i_edge_layer *e;
    const unsigned char *active;
    float *in, *out; /* [rows][in], [rows][out] */
} edge_ctx;

static vitq_status edge_tap(vitq_i_taps *t, int point, const vitq_tensor_view *v) {
    const edge_ctx *c = t->ctx;
    const vitq_i_qpoint *qp = vitq_i_run_qpoint(c->r, point);
    if (!qp || !c->active[point]) return VITQ_OK;
    return qp->inst.scheme.fake_quant(qp->inst.state, v);
}

static vitq_status run_layer(void *ctx, const float **out) {
    edge_ctx *c = ctx;
    const vitq_i_linear *l = c->e->layer;
    memcpy(c->in, c->e->x, c->e->rows * l->in * sizeof(float));
    vitq_i_taps taps = {.sites = &c->r->list->sites, .apply = edge_tap, .ctx = c};
    vitq_i_pass p;
    vitq_i_pass_begin(&p, c->r->model, &taps);
    vitq_i_linear_run(&p, c->e->in_point, l, c->in, l->in, c->e->rows, c->out, l->out, VITQ_I_EPI_NONE);
    *out = c->out;
    vitq_status st = vitq_i_pass_end(&p);
    return st ? st : taps.status;
}

vitq_status vitq_i_edge_search(vitq_i_run *r, const vitq_i_block_search_options *o, unsigned char *active,
                               const vitq_i_edge_layer *e) {
    int a = e->in_point + 1, b = e->in_point; /* weight, then input, as the reference code */
    int pa = vitq_i_run_qpoint(r, a) != NULL, pb = vitq_i_run_qpoint(r, b) != NULL;
    if (!pa && !pb) return VITQ_OK;
    const vitq_i_linear *l = e->layer;
    edge_ctx c = {r, e, active, vitq_i_alloc_array(r->alloc, e->rows * l->in, sizeof(float)),
                  vitq_i_alloc_array(r->alloc, e->rows * l->out, sizeof(float))};
    vitq_status st = c.in && c.out ? VITQ_OK : vitq_i_oom(r->list->points[b].name, e->rows * (l->in + l->out) * 4);
    vitq_i_metric m = {e->ref, e->grad, e->rows * l->out, l->out, 0.0f};
    if (!st && pa) st = vitq_i_search_start(r, a);
    if (!st && pb) st = vitq_i_search_start(r, b);
    if (pa) active[a] = 1;
    if (pb) active[b] = 1;
    if (!st && pa) st = vitq_i_run_set_weight(r, a, 1);
    for (int round = 0; !st && round < o->rounds; round++) {
        if (pa) st = vitq_i_search_point(r, a, o, &m, 1, run_layer, &c);
        if (!st && pb) st = vitq_i_search_point(r, b, o, &m, 0, run_layer, &c);
    }
    if (!o->sequential) {
        active[a] = active[b] = 0;
        if (!st && pa) st = vitq_i_run_set_weight(r, a, 0);
    }
    if (!st) st = vitq_i_run_progress(r, "search");
    vitq_i_free(r->alloc, c.in);
    vitq_i_free(r->alloc, c.out);
    return st;
}
