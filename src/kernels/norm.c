/* LayerNorm over the last dimension. */
#include <math.h>

#include "kernels/kernels.h"
#include "kernels/parallel.h"

void vitq_i_layernorm(const float *x, size_t rows, size_t dim, const float *gamma, const float *beta,
                      float eps, float *out, int nthreads) {
    (void)nthreads;
    VITQ_I_PARALLEL_FOR(nthreads)
    for (long r = 0; r < (long)rows; r++) {
        const float *xr = x + (size_t)r * dim;
        float *yr = out + (size_t)r * dim;
        double sum = 0.0, sq = 0.0;
        for (size_t i = 0; i < dim; i++) sum += xr[i];
        double mean = sum / (double)dim;
        for (size_t i = 0; i < dim; i++) {
            double d = xr[i] - mean;
            sq += d * d;
        }
        /* Biased variance, as torch.nn.LayerNorm. */
        double rstd = 1.0 / sqrt(sq / (double)dim + (double)eps);
        for (size_t i = 0; i < dim; i++)
            yr[i] = (float)((xr[i] - mean) * rstd) * gamma[i] + beta[i];
    }
}
