/* NoisyQuant: seeded uniform noise, noisy fake quantization, denoising bias. */
#include "quant/noisy.h"
#include "quant/view.h"

/* splitmix64: a 64-bit counter passed through a bijective mixer. Chosen because it is tiny, needs no
 * state beyond the counter and has no weak low bits for the top-bit extraction below. */
static uint64_t splitmix64_next(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void vitq_i_noise_draw(uint64_t seed, float *unit, size_t channels) {
    uint64_t state = seed;
    for (size_t c = 0; c < channels; c++) {
        /* 24 top bits -> integer in [-2^23, 2^23), times 2^-23: exact in float, so no rounding mode or
         * libm enters, and -1 is reached while +1 is not */
        int32_t k = (int32_t)(splitmix64_next(&state) >> 40) - (1 << 23);
        unit[c] = (float)k * 0x1p-23f;
    }
}

void vitq_i_noise_scale(const float *unit, size_t channels, float k, float shift, float *noise) {
    /* k * u is exact in double (24 x 24 bits), so the float result is one correctly rounded value and
     * does not depend on whether the compiler contracts the multiply-add */
    for (size_t c = 0; c < channels; c++) noise[c] = (float)((double)shift + (double)k * (double)unit[c]);
}

/* x += sign * noise per channel (sign +1 or -1: subtracting, not adding the negation, keeps the
 * two steps the exact mirror of each other in float). */
static void add_noise(const vitq_tensor_view *x, const float *noise, int sign) {
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = 0; c < x->channels; c++) {
            float *p = vitq_i_view_at(x, o, c), n = noise[c];
            for (int64_t i = 0; i < x->inner; i++) p[i] = sign > 0 ? p[i] + n : p[i] - n;
        }
}

vitq_status vitq_i_noisy_fake_quant(vitq_status (*quant)(void *ctx, const vitq_tensor_view *v), void *ctx,
                                    const float *noise, const vitq_tensor_view *x) {
    if (!quant || !noise)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "noisy fake quant: %s is NULL", quant ? "noise" : "quantizer");
    vitq_status st = vitq_i_view_check(x, 0, "noisy fake quant");
    if (st) return st;
    add_noise(x, noise, 1);
    st = quant(ctx, x);
    add_noise(x, noise, -1);
    if (st) vitq_i_error_prefix("noisy fake quant");
    return st;
}

void vitq_i_noisy_denoise_bias(const float *wq, const float *bias, size_t out, size_t in, const float *noise,
                               float *bias_out) {
    for (size_t o = 0; o < out; o++) {
        const float *w = wq + o * in;
        double acc = bias ? (double)bias[o] : 0.0;
        for (size_t c = 0; c < in; c++) acc -= (double)w[c] * (double)noise[c];
        bias_out[o] = (float)acc;
    }
}
