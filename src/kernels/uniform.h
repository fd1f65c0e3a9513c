/* The uniform integer grid, the one implementation of its numerics. A group has a float scale > 0 and
 * a zero point (an integer stored as float); code q stands for (q - zero) * scale. Symmetric grids use
 * signed codes [-2^(b-1), 2^(b-1) - 1] with zero point 0, asymmetric ones unsigned codes [0, 2^b - 1].
 * The scalar inline functions below define the results; the row operations of the instruction-set
 * tables (kernels/isa.h: uniform_fq, uniform_u8) repeat them lane by lane and give the same bits, so
 * fake quantization, dequantize(quantize(x)) and the integer GEMM's activation bytes all agree.
 * The quant layer's parameter choice and view-level operations build on this (quant/uniform.h). */
#ifndef VITQ_KERNELS_UNIFORM_H
#define VITQ_KERNELS_UNIFORM_H

#include <stdint.h>

typedef struct vitq_i_uniform {
    int32_t bits;
    int32_t symmetric;
    int32_t qmin, qmax; /* code range */
} vitq_i_uniform;

/* The rounding of vitq_i_uniform_code: x / scale is pre-clamped to +-LIMIT, then adding and
 * subtracting MAGIC rounds it to an integer, half to even (exact while |t| < 2^22). */
#define VITQ_I_UNIFORM_LIMIT 4194304.0f  /* 2^22 */
#define VITQ_I_UNIFORM_MAGIC 12582912.0f /* 1.5 * 2^23 */

/* The grid of `bits` (2..16) bits, symmetric (1) or asymmetric (0). */
vitq_i_uniform vitq_i_uniform_grid(int32_t bits, int32_t symmetric);

/* Code of x: clamp(nearbyintf(x / scale) + zero, qmin, qmax), rounding half to even as PyTorch does.
 * NaN maps to the zero point (value 0) so that no NaN ever becomes an undefined integer conversion. */
static inline int32_t vitq_i_uniform_code(const vitq_i_uniform *u, float x, float scale, float zero_point) {
    float t = x / scale;
    /* Round half to even without a libm call: adding and subtracting 1.5 * 2^23 rounds to an integer
     * in the default rounding mode, exactly while |t| < 2^22; larger |t| is clamped below anyway, so
     * pre-clamp it (a NaN fails both comparisons and stays NaN). */
    const float limit = VITQ_I_UNIFORM_LIMIT, magic = VITQ_I_UNIFORM_MAGIC;
    t = t > limit ? limit : t < -limit ? -limit : t;
    float v = ((t + magic) - magic) + zero_point;
    if (v >= (float)u->qmax) return u->qmax;
    if (v >= (float)u->qmin) return (int32_t)v;
    return v < (float)u->qmin ? u->qmin : (int32_t)zero_point;
}

/* Value of code q. */
static inline float vitq_i_uniform_value(int32_t q, float scale, float zero_point) {
    return ((float)q - zero_point) * scale;
}

/* x quantized and dequantized. */
static inline float vitq_i_uniform_fq(const vitq_i_uniform *u, float x, float scale, float zero_point) {
    return vitq_i_uniform_value(vitq_i_uniform_code(u, x, scale, zero_point), scale, zero_point);
}

/* p[i] = vitq_i_uniform_fq(p[i]) for i < n, by the active instruction-set path (same results). */
void vitq_i_uniform_fq_run(const vitq_i_uniform *u, float *p, int64_t n, float scale, float zero_point);

#endif
