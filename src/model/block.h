/* One transformer block, the one implementation every caller runs: inference (vit_forward.c,
 * swin_forward.c), calibration's per-block candidates (vitq_i_net_block_forward) and the backward
 * pass's recompute (grad/block_backward.c). A pre-LN block of either family is
 *   x_mid = x + proj(attention(qkv(LN1(x))))      Swin: LN1's output window-partitioned (and shifted),
 *   out   = x_mid + fc2(gelu(fc1(LN2(x_mid))))      proj's output un-partitioned back onto the grid
 * with taps (model/taps.h) at every activation site, and the integer kernels a quantized model gave its
 * layers (kernels/qlinear.h) in place of the float GEMMs. */
#ifndef VITQ_MODEL_BLOCK_H
#define VITQ_MODEL_BLOCK_H

#include "kernels/qlinear.h"
#include "model/net.h"
#include "model/taps.h"

/* One forward pass (or one block run): the network, the taps (NULL: none), threads, and the scratch
 * of the integer kernels, which grows to the pass's largest layer and is freed by vitq_i_pass_end. */
typedef struct vitq_i_pass {
    const vitq_i_net *m;
    vitq_i_taps *taps;
    int nthreads;
    vitq_i_scratch scratch;
    vitq_status status; /* first failure of a kernel (a tap's goes to taps->status) */
} vitq_i_pass;

void vitq_i_pass_begin(vitq_i_pass *p, const vitq_i_net *m, vitq_i_taps *taps);
/* 1 once anything of the pass failed: later steps are skipped. */
int vitq_i_pass_failed(const vitq_i_pass *p);
/* Free the scratch; the first failure of the pass. */
vitq_status vitq_i_pass_end(vitq_i_pass *p);

/* Block b's shape for n images. */
typedef struct vitq_i_block_geom {
    const vitq_i_block *blk;
    int index;
    size_t tokens, d, hidden, heads, seq_t; /* per image; seq_t: attention sequence length */
    size_t n, rows, seqs;                   /* for n images */
    int swin, grid, win;
    vitq_i_attn_bias bias;
} vitq_i_block_geom;

void vitq_i_block_geom_of(const vitq_i_net *m, int b, size_t n, vitq_i_block_geom *g);
/* Stage of block b (0 for ViT). */
int vitq_i_block_stage(const vitq_i_net *m, int b);

/* Buffers of a block run, sized for its rows. */
typedef struct vitq_i_block_bufs {
    float *ln;      /* [rows][d]: LN1's output (window order), then LN2's */
    float *qkv;     /* [rows][3d] */
    float *att;     /* [rows][d]: the attention's output */
    float *tmp;     /* [rows][d]: Swin: LN1's output on the grid, then proj's output */
    float *hid;     /* [rows][hidden]: the MLP's hidden activations */
    float *scratch; /* nthreads * vitq_i_attention_scratch_floats(seq_t, head_dim) */
    float *probs;   /* [seqs][heads][seq_t][seq_t] scores, then probabilities: needed when taps reach
                     * them, or to keep them (recompute); else NULL (fused attention) */
} vitq_i_block_bufs;

/* What a recompute keeps (the backward pass): the probabilities in bufs->probs, the stream after the
 * attention half in x (not updated further), LN2's output in bufs->ln and fc1's output before the
 * GELU in bufs->hid; the MLP's second half is not run. */
#define VITQ_I_BLOCK_FULL 0
#define VITQ_I_BLOCK_RECOMPUTE 1

/* Block g on the residual stream x ([rows][d], grid order) in place. */
void vitq_i_block_run(vitq_i_pass *p, const vitq_i_block_geom *g, float *x, const vitq_i_block_bufs *w, int mode);

/* Block b alone on the residual stream x ([n * tokens of the block][its width], grid order) of n images,
 * in place, with `taps` (NULL: none): what blockwise calibration runs per candidate. */
vitq_status vitq_i_net_block_forward(const vitq_i_net *m, int b, float *x, size_t n, vitq_i_taps *taps);

/* Whether a pass with these taps needs bufs->probs for some block (the staged attention). */
int vitq_i_block_needs_probs(const vitq_i_taps *taps, int b);

/* ---- the pieces, for the stem and the head of the families' forward passes ---- */

/* Linear layer l on `rows` rows of `in` (stride lda) whose input is tap site `site` (-1: none): the tap
 * (which may change `in` in place), then the layer's kernel (integer when it has one). */
void vitq_i_linear_run(vitq_i_pass *p, int site, const vitq_i_linear *l, float *in, size_t lda, size_t rows,
                       float *out, size_t ldc, vitq_i_epilogue e);

/* LayerNorm of x into out, tapping its input at `site` first (on a copy in `out`, so that the
 * residual stream in x stays as it is). */
void vitq_i_layernorm_run(vitq_i_pass *p, int site, float *x, size_t rows, size_t d, const vitq_i_layernorm_params *ln,
                          float eps, float *out);

/* Site `field` of `sites` when tapping, else -1. */
#define VITQ_I_SITE(taps, sites, field) ((taps) ? (sites)->field : -1)

#endif
