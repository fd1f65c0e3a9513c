/* Packed, cache-blocked, parallel float32 GEMM: C = epilogue(A . W^T + bias).
 *
 * Layout: W is packed into panels of NR=16 output features (k-major), A is read in place. The work
 * is cut into blocks of MC rows x NC columns on a fixed grid and blocks are shared among threads;
 * inside a block each 16-wide panel is swept over the row tiles so that it stays in cache. Every
 * output element goes through the one MR x NR micro-kernel (partial tiles are padded through a
 * local buffer), so the arithmetic of an element never depends on where it sits or on threads. */
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/parallel.h"

#define NR VITQ_I_GEMM_NR
#define MR VITQ_I_GEMM_MR
#define MC (MR * 8)  /* rows per block: A block (MC x K) stays in L2 */
#define NC (NR * 4)  /* columns per block: 4 panels reuse the A block */

/* Instruction-set clones picked at load time by the dynamic loader (glibc ifunc). Kept off where
 * ifunc does not exist (static firmware, other libcs): the portable clone is the same C code. */
#if defined(__x86_64__) && defined(__GLIBC__) && defined(__GNUC__) && !defined(__clang__) &&         \
    !defined(VITQ_NO_IFUNC) && !defined(__SANITIZE_ADDRESS__)
#define VITQ_I_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define VITQ_I_CLONES
#endif

vitq_status vitq_i_gemm_pack(const vitq_allocator *a, const float *w, size_t n, size_t k,
                             vitq_i_packed *out) {
    size_t panels = (n + NR - 1) / NR, count;
    memset(out, 0, sizeof *out);
    if (!vitq_i_mul_size(panels * NR, k, &count)) return vitq_i_oom("packed weights", SIZE_MAX);
    out->panels = vitq_i_calloc(a, count, sizeof(float));
    if (!out->panels) return vitq_i_oom("packed weights", count * sizeof(float));
    out->n = n;
    out->k = k;
    for (size_t p = 0; p < panels; p++) {
        float *dst = out->panels + p * k * NR;
        for (size_t j = 0; j < NR && p * NR + j < n; j++) {
            const float *row = w + (p * NR + j) * k;
            for (size_t kk = 0; kk < k; kk++) dst[kk * NR + j] = row[kk];
        }
    }
    return VITQ_OK;
}

void vitq_i_gemm_packed_free(const vitq_allocator *a, vitq_i_packed *p) {
    vitq_i_free(a, p->panels);
    memset(p, 0, sizeof *p);
}

/* acc[MR][NR] = rows[0..MR) . panel (K x NR). Rows are given by pointer so that a partial tile can
 * repeat its last row instead of copying: each output row depends only on its own input row. */
VITQ_I_CLONES
static void micro_kernel(size_t k, const float *const *rows, const float *panel, float *acc) {
    float c[MR][NR];
    memset(c, 0, sizeof c);
    for (size_t kk = 0; kk < k; kk++) {
        const float *b = panel + kk * NR;
        for (int r = 0; r < MR; r++) {
            float ar = rows[r][kk];
            for (int j = 0; j < NR; j++) c[r][j] += ar * b[j];
        }
    }
    memcpy(acc, c, sizeof c);
}

static float apply_epilogue(float v, float old, vitq_i_epilogue e) {
    switch (e) {
    case VITQ_I_EPI_GELU_ERF: return vitq_i_gelu_erf(v);
    case VITQ_I_EPI_GELU_TANH: return vitq_i_gelu_tanh(v);
    case VITQ_I_EPI_RESIDUAL: return old + v;
    default: return v;
    }
}

/* One MC x NC block of C. */
static void gemm_block(const float *a, size_t lda, size_t m, const vitq_i_packed *w, const float *bias,
                       float *c, size_t ldc, vitq_i_epilogue e, size_t row0, size_t col0) {
    size_t k = w->k, row_end = row0 + MC < m ? row0 + MC : m;
    size_t col_end = col0 + NC < w->n ? col0 + NC : w->n;
    float acc[MR * NR];
    const float *rows[MR];
    for (size_t p0 = col0; p0 < col_end; p0 += NR) {
        const float *panel = w->panels + (p0 / NR) * k * NR;
        size_t ncols = col_end - p0 < NR ? col_end - p0 : NR;
        for (size_t r0 = row0; r0 < row_end; r0 += MR) {
            size_t nrows = row_end - r0 < MR ? row_end - r0 : MR;
            for (size_t r = 0; r < MR; r++) rows[r] = a + (r0 + (r < nrows ? r : nrows - 1)) * lda;
            micro_kernel(k, rows, panel, acc);
            for (size_t r = 0; r < nrows; r++) {
                float *crow = c + (r0 + r) * ldc + p0;
                for (size_t j = 0; j < ncols; j++) {
                    float v = acc[r * NR + j] + (bias ? bias[p0 + j] : 0.0f);
                    crow[j] = apply_epilogue(v, crow[j], e);
                }
            }
        }
    }
}

void vitq_i_gemm(const float *a, size_t lda, size_t m, const vitq_i_packed *w, const float *bias,
                 float *c, size_t ldc, vitq_i_epilogue epilogue, int nthreads) {
    if (m == 0 || w->n == 0) return;
    size_t row_blocks = (m + MC - 1) / MC, col_blocks = (w->n + NC - 1) / NC;
    long total = (long)(row_blocks * col_blocks);
    (void)nthreads;
    VITQ_I_PARALLEL_FOR(nthreads)
    for (long b = 0; b < total; b++) {
        size_t rb = (size_t)b / col_blocks, cb = (size_t)b % col_blocks;
        gemm_block(a, lda, m, w, bias, c, ldc, epilogue, rb * MC, cb * NC);
    }
}
