/* One transformer block's backward (see backward.h); its forward is model/block.c's. The block is
 *   x_mid = x + proj(attention(qkv(LN1(x))))        (Swin: LN1 output window-partitioned, proj output
 *   out   = x_mid + fc2(gelu(fc1(LN2(x_mid))))       un-partitioned back onto the grid)
 * The backward first recomputes the forward from x (only the block input is cached by callers), then
 * goes back through it. Only activation gradients are formed, never weight gradients. */
#include <string.h>

#include "grad/backward.h"
#include "kernels/parallel.h"
#include "model/block.h"
#include "model/forward_common.h"
#include "model/swin_geometry.h"
#include "model/weights.h"

/* Rows (tokens) per chunk of vitq_i_block_backward: about 20-40 MB of scratch for DeiT-S sized blocks. */
#define CHUNK_ROWS 2048

typedef vitq_i_block_geom geom;

static void geom_of(const vitq_i_net *m, int b, size_t n, geom *g) { vitq_i_block_geom_of(m, b, n, g); }

void vitq_i_block_shape(const vitq_i_net *m, int b, size_t *tokens_per_image, size_t *dim, size_t *hidden,
                        size_t *heads, size_t *seq_tokens) {
    geom g;
    memset(&g, 0, sizeof g); /* a block out of range has no shape: all zero */
    if (m && b >= 0 && b < m->info.depth) geom_of(m, b, 1, &g);
    if (tokens_per_image) *tokens_per_image = g.tokens;
    if (dim) *dim = g.d;
    if (hidden) *hidden = g.hidden;
    if (heads) *heads = g.heads;
    if (seq_tokens) *seq_tokens = g.seq_t;
}

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

vitq_status vitq_i_block_ws_alloc(const vitq_i_net *m, size_t images, vitq_i_block_ws *w) {
    size_t d = 0, qkv = 0, probs = 0, hid = 0, wq = 0, wp = 0, w1 = 0, w2 = 0, scratch = 0;
    memset(w, 0, sizeof *w);
    w->images = images;
    w->nthreads = vitq_i_resolve_threads(m->num_threads);
    for (int b = 0; b < m->info.depth; b++) {
        geom g;
        geom_of(m, b, images, &g);
        size_t hd = g.d / g.heads;
        d = max_size(d, g.rows * g.d);
        qkv = max_size(qkv, g.rows * 3 * g.d);
        probs = max_size(probs, g.rows * g.heads * g.seq_t);
        hid = max_size(hid, g.rows * g.hidden);
        wq = max_size(wq, vitq_i_transposed_floats(3 * g.d, g.d));
        wp = max_size(wp, vitq_i_transposed_floats(g.d, g.d));
        w1 = max_size(w1, vitq_i_transposed_floats(g.hidden, g.d));
        w2 = max_size(w2, vitq_i_transposed_floats(g.d, g.hidden));
        scratch = max_size(scratch, max_size(vitq_i_attention_scratch_floats(g.seq_t, hd),
                                             vitq_i_attention_backward_scratch_floats(g.seq_t, hd)));
    }
    size_t sizes[15] = {d, qkv, probs, d, d, hid, hid, d, d, qkv, wq, wp, w1, w2, scratch * (size_t)w->nthreads};
    float **slots[15] = {&w->ln,   &w->qkv,    &w->probs,   &w->att,    &w->xmid,
                         &w->hid,  &w->dhid,   &w->dx,      &w->dtmp,   &w->dqkv,
                         &w->wt_qkv, &w->wt_proj, &w->wt_fc1, &w->wt_fc2, &w->scratch};
    vitq_status st = vitq_i_carve_workspace(&m->alloc, sizes, slots, 15, &w->block);
    if (st) vitq_i_error_prefix("block backward (%zu images)", images);
    return st;
}

void vitq_i_block_ws_free(const vitq_i_net *m, vitq_i_block_ws *w) {
    vitq_i_free(&m->alloc, w->block);
    memset(w, 0, sizeof *w);
}

/* The block's buffers in the workspace: LN outputs, qkv, attention output, probabilities, and fc1's
 * output in `hid`. */
static vitq_i_block_bufs bufs_of(vitq_i_block_ws *w, float *hid, int keep_probs) {
    vitq_i_block_bufs b = {w->ln, w->qkv, w->att, w->dtmp, hid, w->scratch, keep_probs ? w->probs : NULL};
    return b;
}

static void run(const vitq_i_net *m, const geom *g, float *x, vitq_i_block_ws *w, float *hid, int mode) {
    vitq_i_pass p;
    vitq_i_pass_begin(&p, m, NULL);
    p.nthreads = w->nthreads;
    vitq_i_block_bufs bufs = bufs_of(w, hid, mode == VITQ_I_BLOCK_RECOMPUTE);
    vitq_i_block_run(&p, g, x, &bufs, mode);
    (void)vitq_i_pass_end(&p); /* float layers only (the backward refuses other models): nothing can fail */
}

/* What the backward needs of the forward (model/block.h, VITQ_I_BLOCK_RECOMPUTE): x_mid in w->xmid,
 * qkv, the probabilities, the attention output, LN2's output in w->ln and fc1's output before the GELU
 * in w->hid, with the forward pass's own block. */
static void recompute(const vitq_i_net *m, const geom *g, const float *x_in, vitq_i_block_ws *w) {
    memcpy(w->xmid, x_in, g->rows * g->d * sizeof(float));
    run(m, g, w->xmid, w, w->hid, VITQ_I_BLOCK_RECOMPUTE);
}

void vitq_i_block_ws_forward(const vitq_i_net *m, int b, float *x, size_t n, vitq_i_block_ws *w) {
    geom g;
    geom_of(m, b, n, &g);
    run(m, &g, x, w, w->dhid, VITQ_I_BLOCK_FULL);
}

static void copy_out(float *dst, const float *src, size_t count) {
    if (dst) memcpy(dst, src, count * sizeof(float));
}

static void pack_weights(const vitq_i_block *blk, vitq_i_block_ws *w, vitq_i_packed p[4]) {
    vitq_i_pack_transposed(blk->qkv.weight, blk->qkv.out, blk->qkv.in, w->wt_qkv, &p[0]);
    vitq_i_pack_transposed(blk->proj.weight, blk->proj.out, blk->proj.in, w->wt_proj, &p[1]);
    vitq_i_pack_transposed(blk->fc1.weight, blk->fc1.out, blk->fc1.in, w->wt_fc1, &p[2]);
    vitq_i_pack_transposed(blk->fc2.weight, blk->fc2.out, blk->fc2.in, w->wt_fc2, &p[3]);
}

/* MLP half: d_out -> w->dx = gradient w.r.t. x_mid (the residual passes d_out straight through). */
static void mlp_backward(const vitq_i_net *m, const geom *g, const float *d_out, const vitq_i_block_grads *gr,
                         const vitq_i_packed *wt, vitq_i_block_ws *w) {
    size_t rows = g->rows, d = g->d, h = g->hidden;
    int nt = w->nthreads;
    vitq_i_linear_backward(&wt[3], d_out, rows, w->dhid, 0, nt);
    copy_out(gr->d_fc2_in, w->dhid, rows * h);
    vitq_i_gelu_backward(w->hid, w->dhid, rows * h, m->info.gelu, w->dhid, nt);
    copy_out(gr->d_fc1_out, w->dhid, rows * h);
    vitq_i_linear_backward(&wt[2], w->dhid, rows, w->dtmp, 0, nt);
    copy_out(gr->d_ln2_out, w->dtmp, rows * d);
    memcpy(w->dx, d_out, rows * d * sizeof(float));
    vitq_i_layernorm_backward(w->xmid, w->dtmp, rows, d, g->blk->norm2.gamma, m->info.layer_norm_eps, w->dx, 1, nt);
}

/* Attention half: w->dx (w.r.t. x_mid) -> w->dtmp = gradient w.r.t. LN1's output (window order on
 * Swin), the internal fields of gr on the way. */
static void attention_backward(const geom *g, const vitq_i_block_grads *gr, const vitq_i_packed *wt,
                               vitq_i_block_ws *w) {
    size_t rows = g->rows, d = g->d;
    int nt = w->nthreads;
    const float *d_proj = w->dx;
    if (g->swin) { /* the adjoint of "un-partition and add" is partitioning the gradient */
        vitq_i_swin_partition(w->dx, rows / g->tokens, g->grid, g->win, g->blk->shift, d, w->dtmp);
        d_proj = w->dtmp;
    }
    copy_out(gr->d_proj_out, d_proj, rows * d);
    vitq_i_linear_backward(&wt[1], d_proj, rows, w->att, 0, nt);
    copy_out(gr->d_attn_out, w->att, rows * d);
    vitq_i_attention_backward(w->qkv, w->probs, w->att, g->seqs, g->seq_t, d, g->heads, w->dqkv, gr->d_probs,
                              gr->d_scores, w->scratch, nt);
    copy_out(gr->d_qkv_out, w->dqkv, rows * 3 * d);
    vitq_i_linear_backward(&wt[0], w->dqkv, rows, w->dtmp, 0, nt);
    copy_out(gr->d_ln1_out, w->dtmp, rows * d);
}

void vitq_i_block_backward_ws(const vitq_i_net *m, int b, const float *x_in, const float *d_out, size_t n,
                              const vitq_i_block_grads *g, float *d_in, vitq_i_block_ws *w) {
    static const vitq_i_block_grads none;
    geom geo;
    vitq_i_packed wt[4];
    geom_of(m, b, n, &geo);
    if (!g) g = &none;
    recompute(m, &geo, x_in, w);
    pack_weights(geo.blk, w, wt);
    mlp_backward(m, &geo, d_out, g, wt, w);
    attention_backward(&geo, g, wt, w);
    if (!d_in) return;
    const float *d_ln1 = w->dtmp;
    if (geo.swin) { /* the adjoint of partitioning: scatter-add back to grid order */
        memset(w->ln, 0, geo.rows * geo.d * sizeof(float));
        vitq_i_swin_unpartition_add(w->dtmp, n, geo.grid, geo.win, geo.blk->shift, geo.d, w->ln);
        d_ln1 = w->ln;
    }
    memcpy(d_in, w->dx, geo.rows * geo.d * sizeof(float));
    vitq_i_layernorm_backward(x_in, d_ln1, geo.rows, geo.d, geo.blk->norm1.gamma, m->info.layer_norm_eps, d_in, 1,
                              w->nthreads);
}

/* The fields of g for images [first, ...) of the call. */
static vitq_i_block_grads offset_grads(const vitq_i_block_grads *g, const geom *one, size_t first) {
    vitq_i_block_grads o = *g;
    size_t rows = first * one->tokens, tt = first * one->tokens * one->heads * one->seq_t;
#define SHIFT(field, per_row) if (o.field) o.field += rows * (per_row)
    SHIFT(d_qkv_out, 3 * one->d);
    SHIFT(d_attn_out, one->d);
    SHIFT(d_proj_out, one->d);
    SHIFT(d_fc1_out, one->hidden);
    SHIFT(d_fc2_in, one->hidden);
    SHIFT(d_ln1_out, one->d);
    SHIFT(d_ln2_out, one->d);
#undef SHIFT
    if (o.d_scores) o.d_scores += tt;
    if (o.d_probs) o.d_probs += tt;
    return o;
}

vitq_status vitq_i_block_backward(const vitq_i_net *m, int b, const float *x_in, const float *d_out, size_t n,
                                  vitq_i_block_grads *g, float *d_in) {
    if (!m || !x_in || !d_out)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_i_block_backward: NULL %s",
                           !m ? "model" : !x_in ? "x_in" : "d_out");
    if (b < 0 || b >= m->info.depth)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_i_block_backward: block %d of a model with %d blocks", b,
                           (int)m->info.depth);
    if (n == 0) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_i_block_backward: no images");
    vitq_status rows = vitq_i_model_require_rows(m, "vitq_i_block_backward");
    if (rows) return rows;
    static const vitq_i_block_grads none;
    geom one;
    geom_of(m, b, 1, &one);
    size_t chunk = vitq_i_chunk_images(CHUNK_ROWS, one.tokens, n), per_image = one.tokens * one.d;
    vitq_i_block_ws w;
    vitq_status st = vitq_i_block_ws_alloc(m, chunk, &w);
    if (st) return st;
    for (size_t first = 0; first < n; first += chunk) {
        size_t count = n - first < chunk ? n - first : chunk;
        vitq_i_block_grads part = offset_grads(g ? g : &none, &one, first);
        vitq_i_block_backward_ws(m, b, x_in + first * per_image, d_out + first * per_image, count, &part,
                                 d_in ? d_in + first * per_image : NULL, &w);
    }
    vitq_i_block_ws_free(m, &w);
    return VITQ_OK;
}
