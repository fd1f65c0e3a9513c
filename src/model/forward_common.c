/* Pieces every family's forward pass shares (see forward_common.h). */
#include <math.h>
#include <string.h>

#include "model/forward_common.h"
#include "quant/integer.h"

vitq_status vitq_i_check_finite(const float *input, size_t count, size_t per_image) {
    for (size_t i = 0; i < count; i++)
        if (!isfinite(input[i]))
            return vitq_i_fail(VITQ_ERR_NON_FINITE, "input: image %zu, element %zu is %s", i / per_image,
                               i % per_image, isnan(input[i]) ? "NaN" : "infinite");
    return VITQ_OK;
}

vitq_status vitq_i_carve_workspace(const vitq_allocator *a, const size_t *sizes, float **const *slots, int count,
                                   float **block) {
    size_t total = 0;
    for (int s = 0; s < count; s++) total += (sizes[s] + 15) & ~(size_t)15; /* 16 floats: 64-byte aligned */
    *block = vitq_i_alloc_array(a, total, sizeof(float));
    if (!*block) return vitq_i_oom("forward workspace", total * sizeof(float));
    float *p = *block;
    for (int s = 0; s < count; s++) {
        *slots[s] = p;
        p += (sizes[s] + 15) & ~(size_t)15;
    }
    return VITQ_OK;
}

void vitq_i_linear_tapped(vitq_i_taps *taps, int site, const vitq_i_linear *l, float *in, size_t lda, size_t rows,
                          float *out, size_t ldc, vitq_i_epilogue e, int nthreads) {
    if (taps && site >= 0 && taps->linear && !taps->status &&
        taps->linear(taps, site, l, in, lda, rows, out, ldc, (int)e, nthreads))
        return;
    vitq_i_tap(taps, site, in, (int64_t)rows, (int64_t)l->in, 1, (int64_t)lda);
    if (!l->integer) {
        vitq_i_gemm(in, lda, rows, &l->packed, l->bias, out, ldc, e, nthreads);
        return;
    }
    /* An integer-only layer under other taps (a report's measurement): the tapped input goes through the
     * integer kernels (quantizing an already fake-quantized value gives its code again). */
    void *scratch = NULL;
    size_t bytes = 0;
    vitq_status st = vitq_i_integer_run(l->integer, in, lda, rows, out, ldc, (int)e, nthreads, &scratch, &bytes);
    vitq_i_free(&l->integer->alloc, scratch);
    if (taps && !taps->status) taps->status = st;
}

void vitq_i_patch_embed(const vitq_model *m, const float *images, size_t n, float *patches, float *out,
                        int nthreads, vitq_i_taps *taps) {
    const vitq_model_info *i = &m->info;
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
    vitq_i_linear_tapped(taps, VITQ_I_SITE(taps, taps->sites, patch_in), &m->patch_embed, patches, patch_in, n * tokens,
                         out, (size_t)i->embed_dim, VITQ_I_EPI_NONE, nthreads);
}

void vitq_i_layernorm_tapped(vitq_i_taps *taps, int site, float *x, size_t rows, size_t d,
                             const vitq_i_layernorm_params *ln, float eps, float *out, int nthreads) {
    if (taps && site >= 0) {
        if (out != x) memcpy(out, x, rows * d * sizeof(float));
        vitq_i_tap(taps, site, out, (int64_t)rows, (int64_t)d, 1, (int64_t)d);
        x = out;
    }
    vitq_i_layernorm(x, rows, d, ln->gamma, ln->beta, eps, out, nthreads);
}

void vitq_i_mlp_residual(const vitq_i_block *blk, float *x, float *ln, float *hid, size_t rows, size_t d, float eps,
                         int gelu, int nthreads, vitq_i_taps *taps, const vitq_i_block_sites *sites) {
    size_t hidden = blk->fc1.out;
    int64_t r = (int64_t)rows, h = (int64_t)hidden;
    vitq_i_layernorm_tapped(taps, VITQ_I_SITE(taps, sites, norm2_in), x, rows, d, &blk->norm2, eps, ln, nthreads);
    int fc1_site = VITQ_I_SITE(taps, sites, fc1_in), gelu_site = VITQ_I_SITE(taps, sites, gelu_in);
    int fc2_site = VITQ_I_SITE(taps, sites, fc2_in);
    vitq_i_epilogue act = gelu == VITQ_GELU_TANH ? VITQ_I_EPI_GELU_TANH : VITQ_I_EPI_GELU_ERF;
    if (taps && taps->mlp && gelu_site < 0 && fc1_site >= 0 && fc2_site >= 0 && !taps->status &&
        taps->mlp(taps, fc1_site, fc2_site, &blk->fc1, &blk->fc2, ln, rows, x, (int)act, nthreads))
        return;
    if (gelu_site >= 0) {
        /* unfused: the GELU input is tapped between the product and the activation */
        vitq_i_linear_tapped(taps, fc1_site, &blk->fc1, ln, d, rows, hid, hidden, VITQ_I_EPI_NONE, nthreads);
        vitq_i_tap(taps, gelu_site, hid, r, h, 1, h);
        for (size_t k = 0; k < rows * hidden; k++)
            hid[k] = gelu == VITQ_GELU_TANH ? vitq_i_gelu_tanh(hid[k]) : vitq_i_gelu_erf(hid[k]);
    } else {
        vitq_i_linear_tapped(taps, fc1_site, &blk->fc1, ln, d, rows, hid, hidden, act, nthreads);
    }
    vitq_i_linear_tapped(taps, fc2_site, &blk->fc2, hid, hidden, rows, x, d, VITQ_I_EPI_RESIDUAL, nthreads);
}

void vitq_i_attention_tapped(vitq_i_taps *taps, const vitq_i_block_sites *sites, float *qkv, size_t seqs,
                             size_t tokens, size_t dim, size_t heads, const vitq_i_attn_bias *bias, float *out,
                             float *scratch, float *probs, int nthreads) {
    int64_t rows = (int64_t)(seqs * tokens), d = (int64_t)dim, tt = (int64_t)(tokens * tokens);
    if (!taps) {
        vitq_i_attention_biased(qkv, seqs, tokens, dim, heads, bias, out, scratch, nthreads);
        return;
    }
    if (taps->attention && !taps->status &&
        taps->attention(taps, sites, qkv, seqs, tokens, dim, heads, bias, out, nthreads))
        return;
    if (!probs) { /* taps that promised to take every attention (attention_all) and did not */
        if (!taps->status) taps->status = vitq_i_fail(VITQ_ERR_BAD_STATE, "attention: no buffer for the scores");
        return;
    }
    vitq_i_tap(taps, sites->q, qkv, rows, d, 1, 3 * d);
    vitq_i_tap(taps, sites->k, qkv + dim, rows, d, 1, 3 * d);
    vitq_i_tap(taps, sites->v, qkv + 2 * dim, rows, d, 1, 3 * d);
    if (sites->scores < 0 && sites->probs < 0) {
        vitq_i_attention_biased(qkv, seqs, tokens, dim, heads, bias, out, scratch, nthreads);
        return;
    }
    int64_t h = (int64_t)heads;
    vitq_i_attention_scores(qkv, seqs, tokens, dim, heads, bias, probs, scratch, nthreads);
    vitq_i_tap(taps, sites->scores, probs, (int64_t)seqs, h, tt, h * tt);
    vitq_i_attention_softmax(probs, seqs * heads * tokens, tokens, nthreads);
    vitq_i_tap(taps, sites->probs, probs, (int64_t)seqs, h, tt, h * tt);
    vitq_i_attention_apply(probs, qkv, seqs, tokens, dim, heads, out, scratch, nthreads);
}

size_t vitq_i_chunk_images(size_t rows, size_t tokens_per_image, size_t n) {
    size_t chunk = rows / tokens_per_image;
    if (chunk < 1) chunk = 1;
    return chunk > n ? n : chunk;
}
