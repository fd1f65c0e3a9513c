/* MSE and Fisher-weighted MSE with their gradients (loss.h). */
#include <math.h>

#include "train/loss.h"

vitq_status vitq_i_loss_mse(const float *y, const float *t, const float *fisher, size_t n, double norm,
                            double *loss, float *dy) {
    if (!y || !t || !loss) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "loss: output, target or result is NULL");
    if (!(norm > 0.0) || !isfinite(norm))
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "loss: normalisation %g must be finite and > 0", norm);
    double sum = 0.0, k = 2.0 / norm;
    for (size_t i = 0; i < n; i++) {
        double d = (double)y[i] - (double)t[i], f = fisher ? (double)fisher[i] : 1.0;
        if (f < 0.0)
            return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "loss: Fisher weight %zu is %g (weights are >= 0)", i, f);
        sum += f * d * d;
        if (dy) dy[i] = (float)(k * f * d);
    }
    *loss = sum / norm;
    if (!isfinite(*loss))
        return vitq_i_fail(VITQ_ERR_NON_FINITE, "loss: the %s over %zu values is %g (NaN or infinity in the "
                           "output, target or weights)", fisher ? "Fisher-weighted MSE" : "MSE", n, *loss);
    return VITQ_OK;
}
