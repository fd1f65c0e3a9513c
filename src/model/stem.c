/* Embeddings, patch merging and the heads (see stem.h). */
#include <math.h>
#include <string.h>

#include "model/stem.h"
#include "model/swin_geometry.h"

void vitq_i_patch_embed(vitq_i_pass *pass, const float *images, size_t n, float *patches, float *out) {
    const vitq_model_info *i = &pass->m->info;
    size_t p = (size_t)i->patch_size, c = (size_t)i->in_channels, s = (size_t)i->image_size, g = s / p;
    size_t patch_in = c * p * p, tokens = g * g;
    /* im2col in the conv weight's (channel, row, column) order */
    for (size_t b = 0; b < n; b++)
        for (size_t gy = 0; gy < g; gy++)
            for (size_t gx = 0; gx < g; gx++) {
                float *dst = patches + ((b * tokens) + gy * g + gx) * patch_in;
                for (size_t ch = 0; ch < c; ch++)
                    for (size_t ky = 0; ky < p; ky++)
                        memcpy(dst + (ch * p + ky) * p, images + ((b * c + ch) * s + gy * p + ky) * s + gx * p,
                               p * sizeof(float));
            }
    vitq_i_taps *taps = pass->taps;
    vitq_i_linear_run(pass, VITQ_I_SITE(taps, taps->sites, patch_in), &pass->m->patch_embed, patches, patch_in,
                      n * tokens, out, (size_t)i->embed_dim, VITQ_I_EPI_NONE);
}

void vitq_i_vit_embed(vitq_i_pass *p, const float *images, size_t n, float *patches, float *embed, float *x) {
    const vitq_i_net *m = p->m;
    const vitq_model_info *i = &m->info;
    size_t d = (size_t)i->embed_dim, t = (size_t)i->num_tokens, pre = (size_t)i->num_prefix_tokens;
    size_t count = t - pre;
    vitq_i_patch_embed(p, images, n, patches, embed);
    for (size_t b = 0; b < n; b++) {
        float *xb = x + b * t * d;
        for (size_t j = 0; j < d; j++) {
            xb[j] = m->cls_token[j] + m->pos_embed[j];
            if (pre == 2) xb[d + j] = m->dist_token[j] + m->pos_embed[d + j];
        }
        for (size_t k = 0; k < count; k++)
            for (size_t j = 0; j < d; j++)
                xb[(pre + k) * d + j] = embed[(b * count + k) * d + j] + m->pos_embed[(pre + k) * d + j];
    }
}

void vitq_i_swin_embed(vitq_i_pass *p, const float *images, size_t n, float *patches, float *x) {
    const vitq_i_net *m = p->m;
    const vitq_model_info *i = &m->info;
    vitq_i_patch_embed(p, images, n, patches, x);
    if (m->patch_norm.gamma)
        vitq_i_layernorm_run(p, VITQ_I_SITE(p->taps, p->taps->sites, patch_norm_in), x, n * (size_t)i->num_tokens,
                             (size_t)i->embed_dim, &m->patch_norm, VITQ_I_SWIN_STEM_EPS, x);
}

void vitq_i_swin_merge(vitq_i_pass *p, int s, size_t n, const float *prev, float *gather, float *x) {
    const vitq_i_net *m = p->m;
    const vitq_model_info *i = &m->info;
    const vitq_i_stage *stage = &m->stages[s];
    size_t in = 4 * (size_t)i->stage_dim[s - 1], grid = (size_t)i->stage_grid[s];
    size_t rows = n * grid * grid;
    vitq_i_swin_merge_gather(prev, n, i->stage_grid[s - 1], (size_t)i->stage_dim[s - 1], gather);
    vitq_i_taps *taps = p->taps;
    const vitq_i_stage_sites *sites = taps ? &taps->sites->stages[s] : NULL;
    vitq_i_layernorm_run(p, VITQ_I_SITE(taps, sites, merge_norm_in), gather, rows, in, &stage->merge_norm,
                         VITQ_I_SWIN_STEM_EPS, gather);
    vitq_i_linear_run(p, VITQ_I_SITE(taps, sites, merge_in), &stage->merge, gather, in, rows, x,
                      (size_t)i->stage_dim[s], VITQ_I_EPI_NONE);
}

void vitq_i_vit_classify_into(vitq_i_pass *p, size_t n, const float *x, float *feat, float *feat_ln, float *rep,
                              float *logits, float *logits_dist) {
    const vitq_i_net *m = p->m;
    const vitq_model_info *i = &m->info;
    vitq_i_taps *taps = p->taps;
    size_t d = (size_t)i->embed_dim, t = (size_t)i->num_tokens, k = (size_t)i->num_classes;
    const vitq_i_linear *heads[2] = {&m->head, &m->head_dist};
    int sites[2] = {VITQ_I_SITE(taps, taps->sites, head_in), VITQ_I_SITE(taps, taps->sites, head_dist_in)};
    float *out[2] = {logits, logits_dist};
    for (size_t token = 0; token < (size_t)i->num_prefix_tokens; token++) {
        /* only the prefix tokens reach the heads: the final norm skips the others */
        float *in = feat + token * n * d, *ln = feat_ln + token * n * d;
        for (size_t b = 0; b < n; b++) memcpy(in + b * d, x + (b * t + token) * d, d * sizeof(float));
        vitq_i_layernorm_run(p, VITQ_I_SITE(taps, taps->sites, norm_in), in, n, d, &m->norm, i->layer_norm_eps, ln);
        if (token == 0 && m->pre_logits.out) { /* class token: head(tanh(pre_logits(x))) */
            size_t r = m->pre_logits.out;
            vitq_i_linear_run(p, VITQ_I_SITE(taps, taps->sites, pre_logits_in), &m->pre_logits, ln, d, n, rep, r,
                              VITQ_I_EPI_NONE);
            for (size_t j = 0; j < n * r; j++) rep[j] = tanhf(rep[j]);
            vitq_i_linear_run(p, sites[0], heads[0], rep, r, n, out[0], k, VITQ_I_EPI_NONE);
            continue;
        }
        vitq_i_linear_run(p, sites[token], heads[token], ln, d, n, out[token], k, VITQ_I_EPI_NONE);
    }
    if (i->num_prefix_tokens < 2) return;
    for (size_t j = 0; j < n * k; j++) logits[j] = (logits[j] + logits_dist[j]) / 2.0f;
}

void vitq_i_vit_classify(vitq_i_pass *p, size_t n, const float *x, float *feat, float *feat_ln, float *logits,
                         float *logits_dist) {
    const vitq_i_net *m = p->m;
    float *rep = NULL;
    if (m->pre_logits.out) {
        rep = vitq_i_alloc_array(&m->alloc, n, m->pre_logits.out * sizeof(float));
        if (!rep) {
            if (!p->status) p->status = vitq_i_oom("representation layer output", n * m->pre_logits.out * sizeof(float));
            return;
        }
    }
    vitq_i_vit_classify_into(p, n, x, feat, feat_ln, rep, logits, logits_dist);
    vitq_i_free(&m->alloc, rep);
}

void vitq_i_swin_classify(vitq_i_pass *p, size_t n, float *x, float *ln, float *pooled, float *logits) {
    const vitq_i_net *m = p->m;
    const vitq_model_info *i = &m->info;
    vitq_i_taps *taps = p->taps;
    int last = i->num_stages - 1;
    size_t d = (size_t)i->stage_dim[last], tokens = (size_t)i->stage_grid[last] * (size_t)i->stage_grid[last];
    vitq_i_layernorm_run(p, VITQ_I_SITE(taps, taps->sites, norm_in), x, n * tokens, d, &m->norm,
                         i->layer_norm_eps, ln);
    for (size_t b = 0; b < n; b++)
        for (size_t k = 0; k < d; k++) {
            double sum = 0.0;
            for (size_t t = 0; t < tokens; t++) sum += ln[(b * tokens + t) * d + k];
            pooled[b * d + k] = (float)(sum / (double)tokens);
        }
    vitq_i_linear_run(p, VITQ_I_SITE(taps, taps->sites, head_in), &m->head, pooled, d, n, logits,
                      (size_t)i->num_classes, VITQ_I_EPI_NONE);
}
