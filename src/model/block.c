/* The transformer block (see block.h). */
#include <string.h>

#include "kernels/parallel.h"
#include "model/block.h"
#include "model/swin_geometry.h"

void vitq_i_pass_begin(vitq_i_pass *p, const vitq_i_net *m, vitq_i_taps *taps) {
    memset(p, 0, sizeof *p);
    p->m = m;
    p->taps = taps;
    p->nthreads = vitq_i_resolve_threads(m->num_threads);
    p->scratch.alloc = m->alloc;
}

int vitq_i_pass_failed(const vitq_i_pass *p) { return p->status || (p->taps && p->taps->status); }

vitq_status vitq_i_pass_end(vitq_i_pass *p) {
    vitq_i_scratch_release(&p->scratch);
    if (p->status) return p->status;
    return p->taps ? p->taps->status : VITQ_OK;
}

static void record(vitq_i_pass *p, vitq_status st) {
    if (st && !p->status) p->status = st;
}

int vitq_i_block_stage(const vitq_i_net *m, int b) {
    int s = 0;
    while (s + 1 < m->info.num_stages && b >= m->stages[s + 1].first_block) s++;
    return s;
}

void vitq_i_block_geom_of(const vitq_i_net *m, int b, size_t n, vitq_i_block_geom *g) {
    const vitq_model_info *i = &m->info;
    memset(g, 0, sizeof *g);
    g->blk = &m->blocks[b];
    g->index = b;
    g->hidden = g->blk->fc1.out;
    g->bias.mask_period = 1;
    if (i->arch == VITQ_ARCH_SWIN) {
        int s = vitq_i_block_stage(m, b);
        g->swin = 1;
        g->grid = i->stage_grid[s];
        g->win = i->stage_window[s];
        g->tokens = (size_t)g->grid * (size_t)g->grid;
        g->d = (size_t)i->stage_dim[s];
        g->heads = (size_t)i->stage_heads[s];
        g->seq_t = (size_t)g->win * (size_t)g->win;
        g->bias.head_bias = g->blk->attn_bias;
        g->bias.mask = g->blk->shift ? m->stages[s].mask : NULL;
        g->bias.mask_period = g->tokens / g->seq_t;
    } else {
        g->tokens = g->seq_t = (size_t)i->num_tokens;
        g->d = (size_t)i->embed_dim;
        g->heads = (size_t)i->num_heads;
    }
    g->n = n;
    g->rows = n * g->tokens;
    g->seqs = g->rows / g->seq_t;
}

void vitq_i_linear_run(vitq_i_pass *p, int site, const vitq_i_linear *l, float *in, size_t lda, size_t rows,
                       float *out, size_t ldc, vitq_i_epilogue e) {
    vitq_i_tap(p->taps, site, in, (int64_t)rows, (int64_t)l->in, 1, (int64_t)lda);
    if (!l->integer) {
        vitq_i_gemm(in, lda, rows, &l->packed, l->bias, out, ldc, e, p->nthreads);
        return;
    }
    /* Under taps that reach this input (a report's measurement) the tapped input goes through the
     * integer kernel: quantizing an already fake-quantized value gives its code again. */
    if (!vitq_i_pass_failed(p))
        record(p, vitq_i_qlinear_run(l->integer, l->bias, in, lda, rows, out, ldc, e, p->nthreads, &p->scratch));
}

void vitq_i_layernorm_run(vitq_i_pass *p, int site, float *x, size_t rows, size_t d, const vitq_i_layernorm_params *ln,
                          float eps, float *out) {
    if (p->taps && site >= 0) {
        if (out != x) memcpy(out, x, rows * d * sizeof(float));
        vitq_i_tap(p->taps, site, out, (int64_t)rows, (int64_t)d, 1, (int64_t)d);
        if (vitq_i_tap_replace(p->taps, site, out, (int64_t)rows, (int64_t)d, (int64_t)d, out)) return;
        x = out;
    }
    vitq_i_layernorm(x, rows, d, ln->gamma, ln->beta, eps, out, p->nthreads);
}

/* No tap reaches the attention's inside (q, k, v, scores, probabilities). */
static int attention_untapped(const vitq_i_block_sites *s) {
    return !s || (s->q < 0 && s->k < 0 && s->v < 0 && s->scores < 0 && s->probs < 0);
}

int vitq_i_block_needs_probs(const vitq_i_taps *taps, int b) {
    if (!taps) return 0;
    const vitq_i_block_sites *s = &taps->sites->blocks[b];
    return s->scores >= 0 || s->probs >= 0;
}

static void attention(vitq_i_pass *p, const vitq_i_block_geom *g, const vitq_i_block_sites *sites,
                      const vitq_i_block_bufs *w, int keep) {
    const vitq_i_attn_bias *bias = g->swin ? &g->bias : NULL;
    size_t d = g->d, h = g->heads, t = g->seq_t;
    int nt = p->nthreads;
    vitq_i_taps *taps = p->taps;
    if (!keep && g->blk->integer_attention && attention_untapped(taps ? sites : NULL)) {
        if (!vitq_i_pass_failed(p))
            record(p, vitq_i_qattention_run(g->blk->integer_attention, w->qkv, g->seqs, t, d, h, bias, w->att, nt,
                                            &p->scratch));
        return;
    }
    int64_t rows = (int64_t)g->rows, dd = (int64_t)d, tt = (int64_t)(t * t), hh = (int64_t)h;
    if (taps) {
        vitq_i_tap(taps, sites->q, w->qkv, rows, dd, 1, 3 * dd);
        vitq_i_tap(taps, sites->k, w->qkv + d, rows, dd, 1, 3 * dd);
        vitq_i_tap(taps, sites->v, w->qkv + 2 * d, rows, dd, 1, 3 * dd);
    }
    int scores_site = VITQ_I_SITE(taps, sites, scores), probs_site = VITQ_I_SITE(taps, sites, probs);
    if (!keep && scores_site < 0 && probs_site < 0) {
        vitq_i_attention_biased(w->qkv, g->seqs, t, d, h, bias, w->att, w->scratch, nt);
        return;
    }
    if (!w->probs) {
        record(p, vitq_i_fail(VITQ_ERR_BAD_STATE, "block %d: attention: no buffer for the scores", g->index));
        return;
    }
    /* staged: the same per-element arithmetic as the fused kernel, with the T x T matrices in view */
    vitq_i_attention_scores(w->qkv, g->seqs, t, d, h, bias, w->probs, w->scratch, nt);
    vitq_i_tap(taps, scores_site, w->probs, (int64_t)g->seqs, hh, tt, hh * tt);
    int64_t softmax_rows = (int64_t)(g->seqs * h * t), tl = (int64_t)t;
    if (!vitq_i_tap_replace(taps, scores_site, w->probs, softmax_rows, tl, tl, w->probs))
        vitq_i_attention_softmax(w->probs, g->seqs * h * t, t, nt);
    vitq_i_tap(taps, probs_site, w->probs, (int64_t)g->seqs, hh, tt, hh * tt);
    vitq_i_attention_apply(w->probs, w->qkv, g->seqs, t, d, h, w->att, w->scratch, nt);
}

/* x += fc2(gelu(fc1(LN2(x)))); RECOMPUTE stops at fc1's output before the GELU (in w->hid). */
static void mlp(vitq_i_pass *p, const vitq_i_block_geom *g, const vitq_i_block_sites *sites, float *x,
                const vitq_i_block_bufs *w, int mode) {
    const vitq_i_block *blk = g->blk;
    vitq_i_taps *taps = p->taps;
    size_t rows = g->rows, d = g->d, hidden = g->hidden;
    int gelu = p->m->info.gelu;
    vitq_i_layernorm_run(p, VITQ_I_SITE(taps, sites, norm2_in), x, rows, d, &blk->norm2, p->m->info.layer_norm_eps,
                         w->ln);
    int fc1_site = VITQ_I_SITE(taps, sites, fc1_in), gelu_site = VITQ_I_SITE(taps, sites, gelu_in);
    int fc2_site = VITQ_I_SITE(taps, sites, fc2_in);
    vitq_i_epilogue act = gelu == VITQ_GELU_TANH ? VITQ_I_EPI_GELU_TANH : VITQ_I_EPI_GELU_ERF;
    if (mode == VITQ_I_BLOCK_RECOMPUTE) {
        vitq_i_linear_run(p, fc1_site, &blk->fc1, w->ln, d, rows, w->hid, hidden, VITQ_I_EPI_NONE);
        return;
    }
    if (blk->fc1.integer && blk->fc2.integer && gelu_site < 0 && fc2_site < 0) {
        /* nothing needs fc2's float input: fc1's epilogue writes fc2's codes */
        vitq_i_tap(taps, fc1_site, w->ln, (int64_t)rows, (int64_t)d, 1, (int64_t)d);
        if (!vitq_i_pass_failed(p))
            record(p, vitq_i_qlinear_mlp(blk->fc1.integer, blk->fc1.bias, blk->fc2.integer, blk->fc2.bias, w->ln, rows,
                                         x, act, p->nthreads, &p->scratch));
        return;
    }
    if (gelu_site >= 0) {
        /* unfused: the GELU input is tapped between the product and the activation */
        int64_t r = (int64_t)rows, h = (int64_t)hidden;
        vitq_i_linear_run(p, fc1_site, &blk->fc1, w->ln, d, rows, w->hid, hidden, VITQ_I_EPI_NONE);
        vitq_i_tap(taps, gelu_site, w->hid, r, h, 1, h);
        if (!vitq_i_tap_replace(taps, gelu_site, w->hid, r, h, h, w->hid))
            for (size_t k = 0; k < rows * hidden; k++)
                w->hid[k] = gelu == VITQ_GELU_TANH ? vitq_i_gelu_tanh(w->hid[k]) : vitq_i_gelu_erf(w->hid[k]);
    } else {
        vitq_i_linear_run(p, fc1_site, &blk->fc1, w->ln, d, rows, w->hid, hidden, act);
    }
    vitq_i_linear_run(p, fc2_site, &blk->fc2, w->hid, hidden, rows, x, d, VITQ_I_EPI_RESIDUAL);
}

void vitq_i_block_run(vitq_i_pass *p, const vitq_i_block_geom *g, float *x, const vitq_i_block_bufs *w, int mode) {
    const vitq_i_block *blk = g->blk;
    vitq_i_taps *taps = p->taps;
    const vitq_i_block_sites *sites = taps ? &taps->sites->blocks[g->index] : NULL;
    size_t rows = g->rows, d = g->d;
    float eps = p->m->info.layer_norm_eps;
    int norm1 = VITQ_I_SITE(taps, sites, norm1_in);
    if (g->swin) { /* LayerNorm is per token, so it commutes with the shift and the window partition */
        vitq_i_layernorm_run(p, norm1, x, rows, d, &blk->norm1, eps, w->tmp);
        vitq_i_swin_partition(w->tmp, g->n, g->grid, g->win, blk->shift, d, w->ln);
    } else {
        vitq_i_layernorm_run(p, norm1, x, rows, d, &blk->norm1, eps, w->ln);
    }
    vitq_i_linear_run(p, VITQ_I_SITE(taps, sites, qkv_in), &blk->qkv, w->ln, d, rows, w->qkv, 3 * d, VITQ_I_EPI_NONE);
    attention(p, g, sites, w, mode == VITQ_I_BLOCK_RECOMPUTE);
    int proj = VITQ_I_SITE(taps, sites, proj_in);
    if (g->swin) {
        vitq_i_linear_run(p, proj, &blk->proj, w->att, d, rows, w->tmp, d, VITQ_I_EPI_NONE);
        vitq_i_swin_unpartition_add(w->tmp, g->n, g->grid, g->win, blk->shift, d, x);
    } else {
        vitq_i_linear_run(p, proj, &blk->proj, w->att, d, rows, x, d, VITQ_I_EPI_RESIDUAL);
    }
    mlp(p, g, sites, x, w, mode);
}

vitq_status vitq_i_net_block_forward(const vitq_i_net *m, int b, float *x, size_t n, vitq_i_taps *taps) {
    if (b < 0 || b >= m->info.depth)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "block %d of a model with %d blocks", b, (int)m->info.depth);
    vitq_i_pass p;
    vitq_i_pass_begin(&p, m, taps);
    vitq_i_block_geom g;
    vitq_i_block_geom_of(m, b, n, &g);
    size_t rd = g.rows * g.d;
    size_t sizes[7] = {rd, 3 * rd, rd, rd, g.rows * g.hidden,
                       (size_t)p.nthreads * vitq_i_attention_scratch_floats(g.seq_t, g.d / g.heads),
                       vitq_i_block_needs_probs(taps, b) ? g.seqs * g.heads * g.seq_t * g.seq_t : 0};
    vitq_i_block_bufs w;
    float *block, **slots[7] = {&w.ln, &w.qkv, &w.att, &w.tmp, &w.hid, &w.scratch, &w.probs};
    vitq_status st = vitq_i_carve_workspace(&m->alloc, sizes, slots, 7, &block);
    if (st) return st;
    if (!sizes[6]) w.probs = NULL;
    vitq_i_block_run(&p, &g, x, &w, VITQ_I_BLOCK_FULL);
    vitq_i_free(&m->alloc, block);
    return vitq_i_pass_end(&p);
}
