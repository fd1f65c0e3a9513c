/* The backward pass of the FP32 forward (ViT, DeiT, Swin): gradients of a loss with respect to the
 * activations inside the transformer blocks, for Hessian-guided and blockwise PTQ calibration
 * metrics. Weight gradients are not computed. Internal only (no symbol is exported).
 *
 *   grad_kernels.c   backward of the kernels (LayerNorm, linear input gradient, GELU, softmax, attention)
 *   block_backward.c one transformer block: recompute its forward from its input, then go back
 *   backward.c       the whole model: cross-entropy loss, head, final norm, patch merging, chunking */
#ifndef VITQ_GRAD_BACKWARD_H
#define VITQ_GRAD_BACKWARD_H

#include "model/net.h"

/* ---- whole blocks and models --------------------------------------------------------------------- */

/* Gradients of a loss inside one transformer block, each in the layout of the forward's own buffer
 * for that tensor (Swin: the window-partitioned order the qkv / proj buffers use; the residual
 * stream in grid order). A NULL field is not wanted and not written. On Swin, d_ln1_out, d_qkv_out,
 * d_scores, d_probs, d_attn_out and d_proj_out are in window order (windows of each image in turn,
 * after the cyclic shift), d_ln2_out, d_fc1_out and d_fc2_in in grid order. */
typedef struct vitq_i_block_grads {
    float *d_qkv_out;  /* [rows][3d]  w.r.t. the qkv linear's output (q | k | v, q before the d^-1/2 scale) */
    float *d_scores;   /* [seqs][heads][t][t] w.r.t. the attention scores entering the softmax */
    float *d_probs;    /* [seqs][heads][t][t] w.r.t. the softmax output */
    float *d_attn_out; /* [rows][d] w.r.t. P.V (the proj input) */
    float *d_proj_out; /* [rows][d] w.r.t. proj's output */
    float *d_fc1_out;  /* [rows][hidden] w.r.t. fc1's output (GELU input) */
    float *d_fc2_in;   /* [rows][hidden] w.r.t. the GELU output (fc2's input) */
    float *d_ln1_out, *d_ln2_out; /* [rows][d] w.r.t. the LayerNorm outputs (qkv / fc1 inputs) */
} vitq_i_block_grads;

/* Geometry of block b (any pointer may be NULL): tokens per image, width, MLP hidden width, heads and
 * the attention sequence length (tokens for ViT, window^2 for Swin). All 0 for a block out of range. */
void vitq_i_block_shape(const vitq_i_net *m, int b, size_t *tokens_per_image, size_t *dim, size_t *hidden,
                        size_t *heads, size_t *seq_tokens);

/* Block b of model m on n images: x_in [n*tokens_b][d_b] is the block's input (residual stream, grid
 * order), d_out the gradient w.r.t. its output. Recomputes the block's forward internally (from x_in),
 * then writes d_in (may alias nothing; may be NULL) and the wanted fields of g (g may be NULL). */
vitq_status vitq_i_block_backward(const vitq_i_net *m, int b, const float *x_in, const float *d_out, size_t n,
                                  vitq_i_block_grads *g, float *d_in);

/* Whole model: loss = sum over images of cross-entropy(logits_i, targets[i]); targets NULL = each image's
 * own FP32 top-1 class (the KL to the FP model has zero gradient at the FP model, so the FP top-1 is
 * the usual stand-in label). Calls fn once per block and chunk, last block first, with the block's input
 * x_in and d_out (both [n*tokens_b][d_b], valid only during the call); fn returns nonzero to stop (the
 * function then returns VITQ_ERR_CANCELLED). fn may be NULL (only the loss is wanted). *loss (may be
 * NULL) gets the loss. Images go in chunks of bounded memory: the forward caches only each block's input
 * for a chunk and the backward recomputes the block internals. `first` is the chunk's first image. */
typedef int (*vitq_i_block_grad_fn)(void *ctx, int block, size_t first, size_t n, const float *x_in,
                                    const float *d_out);
vitq_status vitq_i_model_backward(const vitq_i_net *m, const float *images, size_t n, const int32_t *targets,
                                  double *loss, vitq_i_block_grad_fn fn, void *ctx);

/* ---- kernels (grad_kernels.c) -------------------------------------------------------------------- */

/* dx (accumulate: +=) gradient of y = LayerNorm(x) (vitq_i_layernorm) given dy, rows x dim, in double.
 * dx may be dy when not accumulating. */
void vitq_i_layernorm_backward(const float *x, const float *dy, size_t rows, size_t dim, const float *gamma,
                               float eps, float *dx, int accumulate, int nthreads);

/* dx = dy * gelu'(x) over count elements (gelu: vitq_gelu); dx may be dy. */
void vitq_i_gelu_backward(const float *x, const float *dy, size_t count, int gelu, float *dx, int nthreads);

/* One softmax row: dz = p * (dp - sum p.dp) for p = softmax(z); dz may be dp. */
void vitq_i_softmax_backward(const float *p, const float *dp, size_t n, float *dz);

/* The weight w[out][in] of a linear layer packed for dx = dy . w with vitq_i_gemm: the GEMM wants a
 * PyTorch-layout weight of shape [in][out], i.e. w transposed. `panels` holds
 * vitq_i_transposed_floats(out, in) floats and is what *p points to (nothing is allocated). */
size_t vitq_i_transposed_floats(size_t out, size_t in);
void vitq_i_pack_transposed(const float *w, size_t out, size_t in, float *panels, vitq_i_packed *p);

/* dx[rows][in] (accumulate: +=) dy[rows][out] . w for wt from vitq_i_pack_transposed. */
void vitq_i_linear_backward(const vitq_i_packed *wt, const float *dy, size_t rows, float *dx, int accumulate,
                            int nthreads);

/* Backward of the multi-head attention of vitq_i_attention_biased for `seqs` sequences of `tokens`
 * tokens: given its input qkv [seqs*tokens][3 dim], its softmax output probs [seqs][heads][t][t] (the
 * additive bias and mask enter only through them) and d_out [seqs*tokens][dim], writes d_qkv (same
 * layout as qkv, q unscaled) and, when not NULL, d_probs and d_scores ([seqs][heads][t][t]).
 * scratch: vitq_i_attention_backward_scratch_floats() floats per thread. */
size_t vitq_i_attention_backward_scratch_floats(size_t tokens, size_t head_dim);
void vitq_i_attention_backward(const float *qkv, const float *probs, const float *d_out, size_t seqs, size_t tokens,
                               size_t dim, size_t heads, float *d_qkv, float *d_probs, float *d_scores,
                               float *scratch, int nthreads);

/* ---- shared by the files of src/grad ------------------------------------------------------------- */

/* Scratch for recomputing and differentiating any block of a model on up to `images` images. */
typedef struct vitq_i_block_ws {
    size_t images;
    int nthreads;
    float *ln, *qkv, *probs, *att, *xmid, *hid, *dhid, *dx, *dtmp, *dqkv;
    float *wt_qkv, *wt_proj, *wt_fc1, *wt_fc2; /* transposed packed weights */
    float *scratch;                             /* attention, per thread */
    float *block;                               /* the allocation all of the above live in */
} vitq_i_block_ws;

vitq_status vitq_i_block_ws_alloc(const vitq_i_net *m, size_t images, vitq_i_block_ws *w);
void vitq_i_block_ws_free(const vitq_i_net *m, vitq_i_block_ws *w);

/* Block b's forward on n <= w->images images, in place on x [n*tokens][d], in the workspace: the
 * forward pass's own block (model/block.h), so results are bit-identical to it. */
void vitq_i_block_ws_forward(const vitq_i_net *m, int b, float *x, size_t n, vitq_i_block_ws *w);

/* vitq_i_block_backward for n <= w->images images, arguments already checked. */
void vitq_i_block_backward_ws(const vitq_i_net *m, int b, const float *x_in, const float *d_out, size_t n,
                              const vitq_i_block_grads *g, float *d_in, vitq_i_block_ws *w);

#endif
