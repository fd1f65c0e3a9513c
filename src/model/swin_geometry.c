/* Swin window geometry (see swin_geometry.h). */
#include <string.h>

#include "model/swin_geometry.h"

int64_t vitq_i_swin_rel_index(int w, size_t i, size_t j) {
    int64_t yi = (int64_t)i / w, xi = (int64_t)i % w, yj = (int64_t)j / w, xj = (int64_t)j % w;
    return (yi - yj + w - 1) * (2 * w - 1) + (xi - xj + w - 1);
}

int vitq_i_swin_shift(int block, int w, int grid) { return (block % 2 == 1 && w < grid) ? w / 2 : 0; }

void vitq_i_swin_gather_bias(const float *table, size_t heads, int w, float *bias) {
    size_t n = (size_t)w * (size_t)w;
    for (size_t h = 0; h < heads; h++)
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++)
                bias[(h * n + i) * n + j] = table[(size_t)vitq_i_swin_rel_index(w, i, j) * heads + h];
}

/* Region of coordinate c along one axis of the shifted grid: [0, g-w), [g-w, g-s), [g-s, g). */
static int region(int c, int grid, int w, int shift) { return c < grid - w ? 0 : c < grid - shift ? 1 : 2; }

void vitq_i_swin_fill_mask(int grid, int w, int shift, float *mask) {
    int per = grid / w;
    size_t n = (size_t)w * (size_t)w;
    for (int wy = 0; wy < per; wy++)
        for (int wx = 0; wx < per; wx++) {
            float *m = mask + (size_t)(wy * per + wx) * n * n;
            for (size_t i = 0; i < n; i++) {
                int yi = wy * w + (int)i / w, xi = wx * w + (int)i % w;
                int ri = region(yi, grid, w, shift) * 3 + region(xi, grid, w, shift);
                for (size_t j = 0; j < n; j++) {
                    int yj = wy * w + (int)j / w, xj = wx * w + (int)j % w;
                    int rj = region(yj, grid, w, shift) * 3 + region(xj, grid, w, shift);
                    m[i * n + j] = ri == rj ? 0.0f : -100.0f;
                }
            }
        }
}

/* Grid token of window-order row r (within one image). */
static size_t source_token(size_t r, int grid, int w, int shift) {
    size_t n = (size_t)w * (size_t)w, per = (size_t)(grid / w);
    size_t win = r / n, t = r % n;
    size_t y = (win / per) * (size_t)w + t / (size_t)w, x = (win % per) * (size_t)w + t % (size_t)w;
    y = (y + (size_t)shift) % (size_t)grid;
    x = (x + (size_t)shift) % (size_t)grid;
    return y * (size_t)grid + x;
}

void vitq_i_swin_partition(const float *x, size_t images, int grid, int w, int shift, size_t dim, float *out) {
    size_t tokens = (size_t)grid * (size_t)grid;
    for (size_t b = 0; b < images; b++)
        for (size_t r = 0; r < tokens; r++)
            memcpy(out + (b * tokens + r) * dim, x + (b * tokens + source_token(r, grid, w, shift)) * dim,
                   dim * sizeof(float));
}

void vitq_i_swin_unpartition_add(const float *win, size_t images, int grid, int w, int shift, size_t dim, float *x) {
    size_t tokens = (size_t)grid * (size_t)grid;
    for (size_t b = 0; b < images; b++)
        for (size_t r = 0; r < tokens; r++) {
            float *dst = x + (b * tokens + source_token(r, grid, w, shift)) * dim;
            const float *src = win + (b * tokens + r) * dim;
            for (size_t k = 0; k < dim; k++) dst[k] += src[k];
        }
}

void vitq_i_swin_merge_gather(const float *in, size_t images, int grid, size_t dim, float *out) {
    size_t half = (size_t)grid / 2, g = (size_t)grid;
    /* (dy, dx) of the four sub-grids, in concatenation order */
    static const size_t offsets[4][2] = {{0, 0}, {1, 0}, {0, 1}, {1, 1}};
    for (size_t b = 0; b < images; b++)
        for (size_t y = 0; y < half; y++)
            for (size_t x = 0; x < half; x++) {
                float *dst = out + ((b * half + y) * half + x) * 4 * dim;
                for (int q = 0; q < 4; q++) {
                    size_t sy = 2 * y + offsets[q][0], sx = 2 * x + offsets[q][1];
                    memcpy(dst + (size_t)q * dim, in + ((b * g + sy) * g + sx) * dim, dim * sizeof(float));
                }
            }
}

/* The adjoint of vitq_i_swin_merge_gather (a permutation): out[image][2y+dy][2x+dx] = the slice of
 * in[image][y][x] the gather took from there. */
void vitq_i_swin_merge_scatter(const float *in, size_t images, int grid, size_t dim, float *out) {
    size_t half = (size_t)grid / 2, g = (size_t)grid;
    static const size_t offsets[4][2] = {{0, 0}, {1, 0}, {0, 1}, {1, 1}}; /* (dy, dx), as the gather */
    for (size_t b = 0; b < images; b++)
        for (size_t y = 0; y < half; y++)
            for (size_t x = 0; x < half; x++) {
                const float *src = in + ((b * half + y) * half + x) * 4 * dim;
                for (int q = 0; q < 4; q++) {
                    size_t sy = 2 * y + offsets[q][0], sx = 2 * x + offsets[q][1];
                    memcpy(out + ((b * g + sy) * g + sx) * dim, src + (size_t)q * dim, dim * sizeof(float));
                }
            }
}
