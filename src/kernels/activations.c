/* Point-wise non-linearities and the row softmax. */
#include <math.h>

#include "kernels/kernels.h"

float vitq_i_gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

/* The tanh form HF calls "gelu_new" and PyTorch gelu(approximate="tanh"). */
float vitq_i_gelu_tanh(float x) {
    const float k = 0.79788456080286536f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

void vitq_i_softmax(float *x, size_t n) {
    if (n == 0) return;
    float max = x[0];
    for (size_t i = 1; i < n; i++) max = x[i] > max ? x[i] : max;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (size_t i = 0; i < n; i++) x[i] *= inv;
}
