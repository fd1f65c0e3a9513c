/* The row kernels' drivers. LayerNorm over the last dimension: rows in parallel, each row by the
 * active path's row kernel (statistics in double, summed in the canonical lane order of isa.h, so
 * every path agrees). Softmax of one row: the active path's (the same bits on every path). */
#include "kernels/isa.h"
#include "kernels/parallel.h"

void vitq_i_layernorm(const float *x, size_t rows, size_t dim, const float *gamma, const float *beta,
                      float eps, float *out, int nthreads) {
    if (dim == 0) return;
    const vitq_i_isa_kernels *isa = vitq_i_kernels_active();
    nthreads = vitq_i_resolve_threads(nthreads);
    (void)nthreads;
    /* blocks of rows: one row is too little work to hand out on its own */
    size_t block = 16, blocks = (rows + block - 1) / block;
    VITQ_I_PARALLEL_FOR(nthreads)
    for (long b = 0; b < (long)blocks; b++)
        for (size_t r = (size_t)b * block; r < rows && r < (size_t)(b + 1) * block; r++)
            isa->layernorm(x + r * dim, dim, gamma, beta, eps, out + r * dim);
}

void vitq_i_softmax(float *x, size_t n) { vitq_i_kernels_active()->softmax(x, n); }
