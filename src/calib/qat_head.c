/* The quantized ViT / DeiT classifier of QAT and its backward (qat_head.h). */
#include <string.h>

#include "calib/qat_head.h"
#include "calib/run_stem.h"
#include "grad/backward.h"
#include "kernels/kernels.h"

vitq_status vitq_i_qat_head_create(vitq_i_qat_head *h, const vitq_i_run *r, size_t max_images) {
    memset(h, 0, sizeof *h);
    const vitq_i_net *m = r->model;
    const vitq_model_info *i = &m->info;
    h->r = r;
    h->swin = i->arch == VITQ_ARCH_SWIN;
    h->prefix = !h->swin && i->num_prefix_tokens >= 2 ? 2 : 1;
    h->d = (size_t)i->embed_dim, h->tokens = (size_t)i->num_tokens, h->classes = (size_t)i->num_classes;
    if (h->swin) {
        int last = i->num_stages - 1;
        h->d = (size_t)i->stage_dim[last], h->tokens = (size_t)i->stage_grid[last] * (size_t)i->stage_grid[last];
    }
    h->max_images = max_images;
    const vitq_i_sites *s = &r->list->sites;
    h->point_norm = s->norm_in, h->point_head[0] = s->head_in, h->point_head[1] = s->head_dist_in;
    size_t pd = (size_t)h->prefix * max_images * h->d * (h->swin ? h->tokens : 1), w = h->classes * h->d;
    size_t floats = 2 * w + 5 * pd + max_images * (h->classes + h->d);
    h->block = vitq_i_alloc_array(r->alloc, floats, sizeof(float));
    if (!h->block) return vitq_i_oom("QAT classifier", floats * sizeof(float));
    h->w[0] = h->block, h->w[1] = h->w[0] + w, h->feat = h->w[1] + w, h->featq = h->feat + pd;
    h->ln = h->featq + pd, h->lnq = h->ln + pd, h->dln = h->lnq + pd, h->out = h->dln + pd;
    h->pool = h->out + max_images * h->classes;
    vitq_status st = VITQ_OK;
    const vitq_i_qpoint *qn = vitq_i_run_qpoint(r, h->point_norm);
    h->has_norm = qn != NULL;
    if (qn) st = vitq_i_ste_from_instance(&h->ste_norm, r->alloc, &qn->inst);
    for (int t = 0; !st && t < h->prefix; t++) {
        int wp = h->point_head[t] + 1; /* the weight point follows its input point */
        st = vitq_i_run_fake_weight(r, wp, h->w[t]);
        const vitq_i_qpoint *qp = vitq_i_run_qpoint(r, h->point_head[t]);
        h->has_head[t] = qp != NULL;
        if (!st && qp) st = vitq_i_ste_from_instance(&h->ste_head[t], r->alloc, &qp->inst);
    }
    return st;
}

void vitq_i_qat_head_free(vitq_i_qat_head *h) {
    if (!h->r) return;
    vitq_i_ste_free(&h->ste_norm);
    vitq_i_ste_free(&h->ste_head[0]);
    vitq_i_ste_free(&h->ste_head[1]);
    vitq_i_free(h->r->alloc, h->block);
    memset(h, 0, sizeof *h);
}

/* n rows of d features: the view a per-tensor or per-feature activation point sees (d channels). */
static vitq_tensor_view rows(float *x, size_t n, size_t d) {
    vitq_tensor_view v = {sizeof v, x, (int64_t)n, (int64_t)d, 1, (int64_t)d};
    return v;
}

/* out[n][classes] = a[n][d] w^T + bias (a small classifier: a plain loop). */
static void classify(const float *a, const float *w, const float *bias, size_t n, size_t d, size_t k, float *out) {
    for (size_t b = 0; b < n; b++)
        for (size_t c = 0; c < k; c++) {
            const float *row = w + c * d, *x = a + b * d;
            float s = 0.0f;
            for (size_t j = 0; j < d; j++) s += x[j] * row[j];
            out[b * k + c] = s + bias[c];
        }
}

/* d_in[n][d] = scale d_logits[n][classes] w. */
static void classify_back(const float *d_logits, const float *w, size_t n, size_t d, size_t k, float scale,
                          float *d_in) {
    for (size_t b = 0; b < n; b++) {
        float *dst = d_in + b * d;
        memset(dst, 0, d * sizeof(float));
        for (size_t c = 0; c < k; c++) {
            float g = d_logits[b * k + c] * scale;
            const float *row = w + c * d;
            for (size_t j = 0; j < d; j++) dst[j] += g * row[j];
        }
    }
}

/* Swin: the final norm of every token, the mean over tokens (in double, as the forward pass), the head. */
static vitq_status swin_forward(vitq_i_qat_head *h, const float *x, size_t n, float *logits) {
    const vitq_i_net *m = h->r->model;
    size_t d = h->d, t = h->tokens;
    memcpy(h->feat, x, n * t * d * sizeof(float));
    memcpy(h->featq, x, n * t * d * sizeof(float));
    vitq_tensor_view v = rows(h->featq, n * t, d);
    vitq_status st = vitq_i_run_fake_quant(h->r, h->point_norm, &v);
    vitq_i_layernorm(h->featq, n * t, d, m->norm.gamma, m->norm.beta, m->info.layer_norm_eps, h->ln, 1);
    for (size_t b = 0; b < n; b++)
        for (size_t k = 0; k < d; k++) {
            double sum = 0.0;
            for (size_t j = 0; j < t; j++) sum += h->ln[(b * t + j) * d + k];
            h->lnq[b * d + k] = (float)(sum / (double)t);
        }
    memcpy(h->pool, h->lnq, n * d * sizeof(float));
    v = rows(h->pool, n, d);
    if (!st) st = vitq_i_run_fake_quant(h->r, h->point_head[0], &v);
    classify(h->pool, h->w[0], m->head.bias, n, d, h->classes, logits);
    return st;
}

static void swin_backward(vitq_i_qat_head *h, const float *d_logits, size_t n, float *dx) {
    const vitq_i_net *m = h->r->model;
    size_t d = h->d, t = h->tokens;
    classify_back(d_logits, h->w[0], n, d, h->classes, 1.0f, h->dln);
    vitq_tensor_view v = rows(h->lnq, n, d);
    if (h->has_head[0]) (void)vitq_i_ste_backward(&h->ste_head[0], &v, h->dln, h->dln, 0, "classifier input");
    for (size_t b = 0; b < n; b++) /* the mean's adjoint */
        for (size_t j = 0; j < t; j++)
            for (size_t k = 0; k < d; k++) dx[(b * t + j) * d + k] = h->dln[b * d + k] / (float)t;
    vitq_i_layernorm_backward(h->featq, dx, n * t, d, m->norm.gamma, m->info.layer_norm_eps, dx, 0, 1);
    v = rows(h->feat, n * t, d);
    if (h->has_norm) (void)vitq_i_ste_backward(&h->ste_norm, &v, dx, dx, 0, "final norm input");
}

vitq_status vitq_i_qat_head_forward(vitq_i_qat_head *h, const float *x, size_t n, float *logits) {
    if (h->swin) return swin_forward(h, x, n, logits);
    const vitq_i_net *m = h->r->model;
    size_t d = h->d, k = h->classes;
    vitq_status st = VITQ_OK;
    for (int t = 0; !st && t < h->prefix; t++) {
        float *feat = h->feat + (size_t)t * n * d, *featq = h->featq + (size_t)t * n * d;
        float *ln = h->ln + (size_t)t * n * d, *lnq = h->lnq + (size_t)t * n * d;
        for (size_t b = 0; b < n; b++) memcpy(feat + b * d, x + (b * h->tokens + (size_t)t) * d, d * sizeof(float));
        memcpy(featq, feat, n * d * sizeof(float));
        vitq_tensor_view v = rows(featq, n, d);
        st = vitq_i_run_fake_quant(h->r, h->point_norm, &v);
        vitq_i_layernorm(featq, n, d, m->norm.gamma, m->norm.beta, m->info.layer_norm_eps, ln, 1);
        memcpy(lnq, ln, n * d * sizeof(float));
        v = rows(lnq, n, d);
        if (!st) st = vitq_i_run_fake_quant(h->r, h->point_head[t], &v);
        classify(lnq, h->w[t], (t ? &m->head_dist : &m->head)->bias, n, d, k, t ? h->out : logits);
    }
    if (!st && h->prefix == 2)
        for (size_t j = 0; j < n * k; j++) logits[j] = (logits[j] + h->out[j]) / 2.0f;
    return st;
}

void vitq_i_qat_head_backward(vitq_i_qat_head *h, const float *d_logits, size_t n, float *dx) {
    if (h->swin) {
        swin_backward(h, d_logits, n, dx);
        return;
    }
    const vitq_i_net *m = h->r->model;
    size_t d = h->d, k = h->classes;
    float scale = h->prefix == 2 ? 0.5f : 1.0f; /* distilled logits are the two heads' mean */
    memset(dx, 0, n * h->tokens * d * sizeof(float));
    for (int t = 0; t < h->prefix; t++) {
        float *featq = h->featq + (size_t)t * n * d, *feat = h->feat + (size_t)t * n * d;
        float *ln = h->ln + (size_t)t * n * d, *dln = h->dln;
        classify_back(d_logits, h->w[t], n, d, k, scale, dln);
        vitq_tensor_view v = rows(ln, n, d);
        if (h->has_head[t]) (void)vitq_i_ste_backward(&h->ste_head[t], &v, dln, dln, 0, "classifier input");
        vitq_i_layernorm_backward(featq, dln, n, d, m->norm.gamma, m->info.layer_norm_eps, dln, 0, 1);
        v = rows(feat, n, d);
        if (h->has_norm) (void)vitq_i_ste_backward(&h->ste_norm, &v, dln, dln, 0, "final norm input");
        for (size_t b = 0; b < n; b++) memcpy(dx + (b * h->tokens + (size_t)t) * d, dln + b * d, d * sizeof(float));
    }
}
