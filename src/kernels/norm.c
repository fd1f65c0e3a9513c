/* The row kernels' drivers. LayerNorm over the last dimension: rows in parallel, each row by the
 * active path's row kernel (statistics in double, summed in the canonical lane order of isa.h, so
 * every path agrees). Softmax of one row: the active path's (the same bits on every path). */
#include "kernels/isa.h"
#include "kernels/parallel.h"

#define LN_BLOCK 16 /* rows per task: one row is too little work to hand out on its own */

typedef struct ln_job {
    const vitq_i_isa_kernels *isa;
    const float *x, *gamma, *beta;
    size_t rows, dim;
    float eps;
    float *out;
} ln_job;

static void ln_task(void *ctx, int64_t b, int worker) {
    const ln_job *j = ctx;
    (void)worker;
    size_t r0 = (size_t)b * LN_BLOCK, r1 = r0 + LN_BLOCK < j->rows ? r0 + LN_BLOCK : j->rows;
    for (size_t r = r0; r < r1; r++)
        j->isa->layernorm(j->x + r * j->dim, j->dim, j->gamma, j->beta, j->eps, j->out + r * j->dim);
}

void vitq_i_layernorm(const float *x, size_t rows, size_t dim, const float *gamma, const float *beta,
                      float eps, float *out, int nthreads) {
    if (dim == 0) return;
    ln_job j = {vitq_i_kernels_active(), x, gamma, beta, rows, dim, eps, out};
    vitq_i_parallel_for(vitq_i_resolve_threads(nthreads), (int64_t)((rows + LN_BLOCK - 1) / LN_BLOCK), ln_task, &j);
}

void vitq_i_softmax(float *x, size_t n) { vitq_i_kernels_active()->softmax(x, n); }
