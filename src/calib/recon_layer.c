/* Reconstruction of one linear layer (recon_layer.h). */
#include <string.h>

#include "calib/recon_layer.h"
#include "kernels/kernels.h"
#include "kernels/parallel.h"
#include "quant/range_scheme.h"
#include "quant/view.h"
#include "train/adaround.h"
#include "train/linear.h"
#include "train/loss.h"
#include "train/optim.h"

typedef struct layer_job {
    size_t out, in, rows, n;     /* layer, rows per image, images */
    const float *bias, *x, *y;
    float *w, *panels, *yb, *xb, *tb, *dy, *dw, *scratch;
    vitq_i_packed packed;
    int nthreads;
} layer_job;

static void pack(layer_job *j) {
    vitq_i_gemm_pack_strided(j->w, j->in, 1, j->out, j->in, j->panels, &j->packed);
}

/* The loss over every image with the packed weights (images in chunks of the batch's room). */
static vitq_status evaluate(layer_job *j, size_t chunk, double *loss) {
    double sum = 0.0;
    vitq_status st = VITQ_OK;
    for (size_t first = 0; !st && first < j->n; first += chunk) {
        size_t k = j->n - first < chunk ? j->n - first : chunk, r0 = first * j->rows, rows = k * j->rows;
        double l = 0.0;
        vitq_i_gemm(j->x + r0 * j->in, j->in, rows, &j->packed, j->bias, j->yb, j->out, VITQ_I_EPI_NONE, j->nthreads);
        st = vitq_i_loss_mse(j->yb, j->y + r0 * j->out, NULL, rows * j->out, (double)j->n, &l, NULL);
        sum += l;
    }
    *loss = sum;
    return st;
}

static uint64_t next_random(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static vitq_status train(layer_job *j, vitq_i_adaround *ar, size_t batch, const vitq_i_recon_options *o,
                         const vitq_allocator *a) {
    vitq_i_param param = {ar->v, ar->v_grad, ar->count, 0};
    vitq_i_param_group group = {o->lr_v, 0.0};
    vitq_i_adam_options ao = vitq_i_adam_defaults();
    vitq_i_adam adam;
    vitq_status st = vitq_i_adam_init(&adam, a, &param, 1, &group, 1, &ao);
    if (st) return st;
    vitq_i_adaround_anneal an = vitq_i_adaround_anneal_defaults(o->iters);
    an.warmup = o->warmup;
    uint64_t rng = o->seed ^ 0x1a7e5u;
    size_t brows = batch * j->rows;
    for (int64_t t = 0; !st && t < o->iters; t++) {
        size_t start = (size_t)(next_random(&rng) % j->n); /* consecutive images from a random start */
        for (size_t i = 0; i < batch; i++) {
            size_t img = (start + i) % j->n;
            memcpy(j->xb + i * j->rows * j->in, j->x + img * j->rows * j->in, j->rows * j->in * sizeof(float));
            memcpy(j->tb + i * j->rows * j->out, j->y + img * j->rows * j->out, j->rows * j->out * sizeof(float));
        }
        vitq_i_adam_zero_grad(&adam);
        vitq_i_adaround_soft(ar, j->w);
        pack(j);
        double loss = 0.0;
        vitq_i_gemm(j->xb, j->in, brows, &j->packed, j->bias, j->yb, j->out, VITQ_I_EPI_NONE, j->nthreads);
        st = vitq_i_loss_mse(j->yb, j->tb, NULL, brows * j->out, (double)batch, &loss, j->dy);
        if (st) break;
        vitq_i_linear_weight_grad(j->xb, j->dy, brows, j->in, j->out, j->dw, NULL, 0, j->scratch, j->nthreads);
        vitq_i_adaround_backward(ar, j->dw);
        int on = 0;
        double beta = vitq_i_adaround_beta(&an, t, &on);
        if (on) vitq_i_adaround_reg(ar, beta, o->lambda);
        vitq_status s2 = vitq_i_adam_step(&adam);
        if (s2 && s2 != VITQ_ERR_NON_FINITE) st = s2; /* a non-finite batch is skipped */
    }
    vitq_i_adam_free(&adam);
    return st;
}

vitq_status vitq_i_recon_linear(vitq_i_run *r, int p, size_t out, size_t in, const float *bias, const float *x,
                                const float *y, size_t n, size_t rows_per_image, const vitq_i_recon_options *o,
                                vitq_i_recon_block *rep) {
    rep->before = rep->after = 0.0;
    rep->kept = 1;
    const vitq_i_qpoint *qp = vitq_i_run_qpoint(r, p);
    if (!qp || qp->inst.scheme.fake_quant != vitq_i_range_fake_quant || n == 0) return VITQ_OK; /* nothing to learn */
    const vitq_i_range_state *rs = qp->inst.state;
    size_t batch = (size_t)o->batch < n ? (size_t)o->batch : n, brows = batch * rows_per_image;
    layer_job j = {out, in, rows_per_image, n, bias, x, y, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, {0},
                   vitq_i_resolve_threads(r->model->num_threads)};
    size_t sizes[8] = {out * in, vitq_i_gemm_packed_floats(out, in), brows * out, brows * in, brows * out,
                       brows * out, out * in, vitq_i_linear_weight_grad_floats(brows, in, out)};
    float **slots[8] = {&j.w, &j.panels, &j.yb, &j.xb, &j.tb, &j.dy, &j.dw, &j.scratch};
    float *block = NULL;
    vitq_status st = vitq_i_carve_workspace(r->alloc, sizes, slots, 8, &block);
    if (st) return st;
    vitq_i_adaround ar;
    memset(&ar, 0, sizeof ar);
    float *w = r->weights[p];
    memcpy(j.w, w, out * in * sizeof(float));
    vitq_tensor_view v = vitq_i_view_rows(j.w, (int64_t)out, (int64_t)in);
    st = qp->inst.scheme.fake_quant(qp->inst.state, &v); /* the start: the method's own rounding */
    if (!st) {
        pack(&j);
        st = evaluate(&j, batch, &rep->before);
    }
    if (!st)
        st = vitq_i_adaround_create(&ar, r->alloc, qp->inst.name, w, (int64_t)out, (int64_t)in, &rs->grid, rs->scale,
                                    rs->zero_point, qp->inst.config.groups, qp->inst.config.channels_per_group);
    ar.nthreads = j.nthreads;
    if (!st) st = train(&j, &ar, batch, o, r->alloc);
    if (!st) {
        vitq_i_adaround_hard(&ar, j.w);
        pack(&j);
        st = evaluate(&j, batch, &rep->after);
    }
    rep->kept = !st && !(rep->after < rep->before); /* also a NaN: the start stays */
    if (!st && !rep->kept) memcpy(w, j.w, out * in * sizeof(float));
    if (!st) st = vitq_i_run_set_weight(r, p, 0);
    vitq_i_adaround_free(&ar);
    vitq_i_free(r->alloc, block);
    return st;
}
