/* Swin's window geometry on a square token grid: relative position index and bias, cyclic shift,
 * shifted-window attention mask, and moving token rows between grid order and window order.
 * Grid order: row-major (y, x). Window order: windows row-major, tokens row-major inside a window,
 * after a cyclic shift by -shift in both directions (torch.roll(x, (-s, -s))). */
#ifndef VITQ_MODEL_SWIN_GEOMETRY_H
#define VITQ_MODEL_SWIN_GEOMETRY_H

#include <stddef.h>
#include <stdint.h>

/* Row of the (2w-1)^2 bias table for query token i and key token j of a w x w window. */
int64_t vitq_i_swin_rel_index(int w, size_t i, size_t j);

/* Shift of block `block` of a stage: w/2 on odd blocks, 0 on even ones and when the window covers the
 * whole grid (timm, HF and torchvision all skip the shift then). */
int vitq_i_swin_shift(int block, int w, int grid);

/* bias[h][i][j] = table[rel_index(i, j)][h] for a table of `heads` columns. */
void vitq_i_swin_gather_bias(const float *table, size_t heads, int w, float *bias);

/* mask[window][i][j] = 0 when tokens i and j come from the same region of the shifted grid, else -100
 * (the value timm, HF and torchvision use). (grid/w)^2 windows of (w*w)^2 floats. */
void vitq_i_swin_fill_mask(int grid, int w, int shift, float *mask);

/* Rows of `images` grids ([images][grid*grid][dim]) into window order (out has the same size). */
void vitq_i_swin_partition(const float *x, size_t images, int grid, int w, int shift, size_t dim, float *out);

/* The inverse of vitq_i_swin_partition, adding: x[token] += win[its window-order row]. */
void vitq_i_swin_unpartition_add(const float *win, size_t images, int grid, int w, int shift, size_t dim, float *x);

/* Patch merging input: out[image][y][x] = concat(in[2y][2x], in[2y+1][2x], in[2y][2x+1], in[2y+1][2x+1]),
 * the order of timm, HF and torchvision; in is [images][grid*grid][dim], out [images][(grid/2)^2][4 dim]. */
void vitq_i_swin_merge_gather(const float *in, size_t images, int grid, size_t dim, float *out);

/* Its adjoint (a permutation): out[image][2y+dy][2x+dx] = the slice of in[image][y][x] the gather took from
 * there. */
void vitq_i_swin_merge_scatter(const float *in, size_t images, int grid, size_t dim, float *out);

#endif
