/* Packed, cache-blocked, parallel float32 GEMM: C = epilogue(A . W^T + bias).
 *
 * W is packed once into panels of NR = 32 output features (k-major, kernels.h). C is cut into tiles
 * of MC rows x NC = 128 columns on a fixed grid (MC = 4 micro-kernel heights of the active path:
 * 56 rows for AVX-512, 24 for AVX2, 16 for portable C), walked column tile by column tile so that
 * the tile's slice of W stays in L2 while the rows of A stream past; threads share the tiles.
 * Inside a tile, K is walked in blocks of at most KC = 384: for each block and each micro-kernel
 * step of rows (A read in place, or copied when its rows would collide in L1), the 4 panel slices
 * (KC x 32) are swept by the micro-kernel. Partial sums live in a per-thread tile buffer; the
 * epilogue (bias, GELU, residual) runs once per row when the last block is done. The two buffers
 * (tile sums 28 KB, copied rows 22 KB) are on the stack of the thread running the tile.
 *
 * Every output element is one accumulator over k in increasing order, whatever tile, micro-kernel
 * height or thread computes it (a block boundary stores and reloads the float sum exactly), so the
 * arithmetic of an element never depends on where it sits or on threads. */
#include <string.h>

#include "kernels/isa.h"
#include "kernels/parallel.h"

#define NR VITQ_I_GEMM_NR
#define NC (NR * 4)  /* columns per tile: 4 panels share each step of A rows */
#define ROW_STEPS 4  /* micro-kernel steps of rows per tile */
#define MC_MAX (VITQ_I_GEMM_MR * ROW_STEPS)
#define KC 384       /* deepest K block: a panel slice is KC x 128 bytes, a 14-row step of A 21 KB */

size_t vitq_i_gemm_packed_floats(size_t n, size_t k) {
    size_t cols = (n + NR - 1) / NR * NR, count;
    return vitq_i_mul_size(cols, k, &count) ? count : SIZE_MAX;
}

void vitq_i_gemm_pack_strided(const float *w, size_t row_stride, size_t col_stride, size_t n, size_t k,
                              float *panels, vitq_i_packed *out) {
    size_t count = (n + NR - 1) / NR;
    for (size_t p = 0; p < count; p++) {
        float *dst = panels + p * k * NR;
        size_t width = n - p * NR < NR ? n - p * NR : NR;
        for (size_t kk = 0; kk < k; kk++) {
            const float *src = w + p * NR * row_stride + kk * col_stride;
            for (size_t j = 0; j < width; j++) dst[kk * NR + j] = src[j * row_stride];
            for (size_t j = width; j < NR; j++) dst[kk * NR + j] = 0.0f;
        }
    }
    out->n = n;
    out->k = k;
    out->panels = panels;
}

vitq_status vitq_i_gemm_pack(const vitq_allocator *a, const float *w, size_t n, size_t k,
                             vitq_i_packed *out) {
    size_t count = vitq_i_gemm_packed_floats(n, k);
    memset(out, 0, sizeof *out);
    if (count == SIZE_MAX) return vitq_i_oom("packed weights", SIZE_MAX);
    float *panels = vitq_i_alloc_array(a, count, sizeof(float));
    if (!panels) return vitq_i_oom("packed weights", count * sizeof(float));
    vitq_i_gemm_pack_strided(w, k, 1, n, k, panels, out);
    return VITQ_OK;
}

void vitq_i_gemm_unpack(const vitq_i_packed *p, float *w) {
    for (size_t j = 0; j < p->n; j++) {
        const float *src = p->panels + (j / NR) * p->k * NR + j % NR;
        for (size_t kk = 0; kk < p->k; kk++) w[j * p->k + kk] = src[kk * NR];
    }
}

void vitq_i_gemm_packed_free(const vitq_allocator *a, vitq_i_packed *p) {
    vitq_i_free(a, p->panels);
    memset(p, 0, sizeof *p);
}

typedef struct gemm_job {
    const vitq_i_isa_kernels *isa;
    const float *a;
    size_t lda, m;
    const vitq_i_packed *w;
    const float *bias;
    float *c;
    size_t ldc;
    vitq_i_epilogue epilogue;
    size_t mc, kc;    /* tile rows, K block depth (K split into equal blocks) */
    size_t row_tiles; /* of the tile grid, row tiles first */
} gemm_job;

/* Rows of A whose stride is a multiple of 4 KB fall into one set of an L1 cache (64 sets of 64
 * bytes): the rows of a micro-kernel step would evict each other. Such steps first copy their rows
 * to a buffer with a padded stride (the copy is used for all the tile's panels). */
static int rows_conflict(size_t lda) { return lda % 1024 == 0; }

static void gemm_tile(const gemm_job *g, size_t row0, size_t col0) {
    _Alignas(64) float acc[MC_MAX * NC];
    _Alignas(64) float rows_copy[VITQ_I_GEMM_MR * (KC + 16)];
    size_t k = g->w->k, rows = g->m - row0 < g->mc ? g->m - row0 : g->mc;
    size_t cols = g->w->n - col0 < NC ? g->w->n - col0 : NC, panels = (cols + NR - 1) / NR, mr = g->isa->mr;
    int copy = rows_conflict(g->lda);
    size_t k0 = 0;
    do {
        size_t kc = k - k0 < g->kc ? k - k0 : g->kc;
        for (size_t r = 0; r < rows; r += mr) {
            size_t step = rows - r < mr ? rows - r : mr, lda = g->lda;
            const float *a = g->a + (row0 + r) * g->lda + k0;
            if (copy) {
                for (size_t i = 0; i < step; i++) memcpy(rows_copy + i * (kc + 16), a + i * g->lda, kc * sizeof(float));
                a = rows_copy;
                lda = kc + 16;
            }
            for (size_t p = 0; p < panels; p++)
                g->isa->tile(step, kc, a, lda, g->w->panels + (col0 / NR + p) * k * NR + k0 * NR, NR,
                             acc + r * NC + p * NR, NC, k0 > 0);
        }
        k0 += kc;
    } while (k0 < k);
    for (size_t r = 0; r < rows; r++)
        g->isa->epilogue(acc + r * NC, g->bias ? g->bias + col0 : NULL, g->c + (row0 + r) * g->ldc + col0, cols,
                         g->epilogue);
}

/* Tile t of the grid. Consecutive tiles share their 128 columns of W (NC x K, kept in L2) while A
 * streams by: W is read from memory once per column tile, A (the smaller per flop) once per tile. */
static void tile_task(void *ctx, int64_t t, int worker) {
    const gemm_job *g = ctx;
    (void)worker;
    gemm_tile(g, (size_t)t % g->row_tiles * g->mc, (size_t)t / g->row_tiles * NC);
}

void vitq_i_gemm(const float *a, size_t lda, size_t m, const vitq_i_packed *w, const float *bias,
                 float *c, size_t ldc, vitq_i_epilogue epilogue, int nthreads) {
    if (m == 0 || w->n == 0) return;
    gemm_job g = {vitq_i_kernels_active(), a, lda, m, w, bias, c, ldc, epilogue, 0, 0, 0};
    g.mc = g.isa->mr * ROW_STEPS;
    size_t blocks = (w->k + KC - 1) / KC;
    g.kc = blocks ? (w->k + blocks - 1) / blocks : 1;
    g.row_tiles = (m + g.mc - 1) / g.mc;
    size_t col_tiles = (w->n + NC - 1) / NC;
    vitq_i_parallel_for(vitq_i_resolve_threads(nthreads), (int64_t)(g.row_tiles * col_tiles), tile_task, &g);
}
