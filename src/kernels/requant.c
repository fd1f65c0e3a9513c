/* Dyadic requantization kernels (requant.h). No floating point anywhere in this file: int32/int64
 * arithmetic, shifts and comparisons only, so it compiles with -mgeneral-regs-only. The bounds of
 * every intermediate follow from the ranges the checks enforce (requant.h). */
#include "kernels/requant.h"

#include "core/core.h"
#include "kernels/cpu.h"

vitq_status vitq_i_dyadic_check(vitq_i_dyadic d, const char *what, size_t index) {
    if (d.mult < VITQ_I_DYADIC_MULT_MIN) /* the upper end is INT32_MAX: nothing above it */
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s: mult[%zu] = %d outside [2^30, 2^31 - 1]", what, index,
                           (int)d.mult);
    if (d.shift < 0 || d.shift > VITQ_I_DYADIC_SHIFT_MAX)
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s: shift[%zu] = %d outside [0, %d]", what, index, (int)d.shift,
                           VITQ_I_DYADIC_SHIFT_MAX);
    return VITQ_OK;
}

/* round(x mult / 2^shift) with half = (1 << shift) >> 1 (0 for shift 0) given: the loops below hoist
 * a per-tensor multiplier's half and inline this. Sign and magnitude by selects, not branches: the sign of
 * a GEMM output is a coin flip, and a mispredicted branch per element costs more than the arithmetic.
 * |x| <= 2^31, mult < 2^31: |p| < 2^62; the magnitude plus half of 2^62 stays below 2^63. */
static inline int64_t round_dyadic(int32_t x, int64_t mult, int64_t half, int shift) {
    int64_t p = (int64_t)x * mult;
    int64_t q = ((p < 0 ? -p : p) + half) >> shift;
    return p < 0 ? -q : q;
}

static inline int64_t half_of(int32_t shift) { return ((int64_t)1 << shift) >> 1; }

int64_t vitq_i_dyadic_apply(int32_t x, vitq_i_dyadic d) { return round_dyadic(x, d.mult, half_of(d.shift), d.shift); }

/* Two selects, which compilers turn into conditional moves: activations clamp often at the low end
 * (a zero point at the grid's edge), and a branch there mispredicts at random. */
static inline int64_t clamp64(int64_t v, int64_t lo, int64_t hi) {
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

/* Shared argument checks: pointers, strides, the multiplier count and every multiplier. */
static vitq_status check_rows(const char *what, const void *x, size_t ldx, const void *out, size_t ldo, size_t rows,
                              size_t cols, const vitq_i_dyadic *m, size_t nm) {
    if (rows == 0 || cols == 0) return VITQ_OK;
    if (!x || !out || !m) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: NULL input, output or multipliers", what);
    if (ldx < cols || ldo < cols)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: strides %zu, %zu below %zu columns", what, ldx, ldo, cols);
    if (nm != 1 && nm != cols)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: %zu multipliers for %zu columns (need 1 or %zu)", what, nm,
                           cols, cols);
    for (size_t i = 0; i < nm; i++) {
        vitq_status st = vitq_i_dyadic_check(m[i], what, i);
        if (st) return st;
    }
    return VITQ_OK;
}

static vitq_status check_range(const char *what, const char *lo_name, const char *hi_name, int32_t lo, int32_t hi,
                               int32_t type_lo, int32_t type_hi) {
    if (lo > hi || lo < type_lo || hi > type_hi)
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s: [%s, %s] = [%d, %d] is empty or outside [%d, %d]", what,
                           lo_name, hi_name, (int)lo, (int)hi, (int)type_lo, (int)type_hi);
    return VITQ_OK;
}

#define CHUNK 256 /* columns of codes the portable path computes before narrowing them to the output type */

/* Codes (offset already added) narrowed to the output type at element `at` of out. */
static void store_codes(vitq_i_requant_type type, const int32_t *codes, size_t n, void *out, size_t at) {
    if (type == VITQ_I_RQ_INT8) {
        for (size_t i = 0; i < n; i++) ((int8_t *)out)[at + i] = (int8_t)codes[i];
    } else if (type == VITQ_I_RQ_UINT8) {
        for (size_t i = 0; i < n; i++) ((uint8_t *)out)[at + i] = (uint8_t)codes[i];
    } else {
        for (size_t i = 0; i < n; i++) ((int16_t *)out)[at + i] = (int16_t)codes[i];
    }
}

/* The grid's checks; *offset the UINT8 offset it implies (else 0). */
static vitq_status check_grid(const char *what, const vitq_i_requant_grid *g, int32_t *offset) {
    if (!g) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: NULL grid", what);
    int32_t type_lo, type_hi;
    *offset = 0;
    switch (g->type) {
    case VITQ_I_RQ_INT8: type_lo = -128, type_hi = 127; break;
    case VITQ_I_RQ_UINT8:
        *offset = g->qmin < 0 ? 128 : 0;
        type_lo = -*offset, type_hi = 255 - *offset;
        break;
    case VITQ_I_RQ_INT16: type_lo = -32768, type_hi = 32767; break;
    default: return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: output type %d", what, (int)g->type);
    }
    vitq_status st = check_range(what, "qmin", "qmax", g->qmin, g->qmax, type_lo, type_hi);
    if (st) return st;
    if (g->zero < -65536 || g->zero > 65536)
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s: zero point %d outside [-65536, 65536]", what, (int)g->zero);
    return VITQ_OK;
}

vitq_status vitq_i_requant_check(const vitq_i_dyadic *m, size_t nm, size_t cols, const vitq_i_requant_grid *g) {
    int32_t offset;
    vitq_status st = check_grid("requant rows", g, &offset);
    if (st || cols == 0) return st;
    /* the pointers and strides of a one-row block at the multipliers' own address: only m is checked */
    return check_rows("requant rows", m, cols, m, cols, 1, cols, m, nm);
}

void vitq_i_requant_block(const int32_t *x, size_t ldx, size_t rows, size_t cols, const vitq_i_dyadic *m, size_t nm,
                          const vitq_i_requant_grid *g, void *out, size_t ldo) {
    if (rows == 0 || cols == 0) return;
    int32_t offset = g->type == VITQ_I_RQ_UINT8 && g->qmin < 0 ? 128 : 0;
#ifdef VITQ_I_REQUANT_AVX512
    if (vitq_i_features_active() & VITQ_I_CPU_AVX512) {
        vitq_i_requant_rows_avx512(x, ldx, rows, cols, m, nm, g, offset, out, ldo);
        return;
    }
#endif
#ifdef VITQ_I_REQUANT_AVX2
    if (vitq_i_features_active() & VITQ_I_CPU_AVX2_FMA) {
        vitq_i_requant_rows_avx2(x, ldx, rows, cols, m, nm, g, offset, out, ldo);
        return;
    }
#endif
    int32_t codes[CHUNK];
    int64_t zero = g->zero, qmin = g->qmin, qmax = g->qmax;
    for (size_t r = 0; r < rows; r++)
        for (size_t c0 = 0; c0 < cols; c0 += CHUNK) {
            size_t n = cols - c0 < CHUNK ? cols - c0 : CHUNK;
            const int32_t *xr = x + r * ldx + c0;
            /* |rounded| < 2^62, |zero| <= 2^16: the sum fits int64 */
            if (nm == 1) {
                int64_t mult = m[0].mult, half = half_of(m[0].shift);
                int shift = m[0].shift;
                for (size_t i = 0; i < n; i++)
                    codes[i] = (int32_t)clamp64(round_dyadic(xr[i], mult, half, shift) + zero, qmin, qmax) + offset;
            } else {
                const vitq_i_dyadic *mc = m + c0;
                for (size_t i = 0; i < n; i++) {
                    int64_t v = round_dyadic(xr[i], mc[i].mult, half_of(mc[i].shift), mc[i].shift);
                    codes[i] = (int32_t)clamp64(v + zero, qmin, qmax) + offset;
                }
            }
            store_codes(g->type, codes, n, out, r * ldo + c0);
        }
}

vitq_status vitq_i_requant_rows(const int32_t *x, size_t ldx, size_t rows, size_t cols, const vitq_i_dyadic *m,
                                size_t nm, const vitq_i_requant_grid *g, void *out, size_t ldo) {
    const char *what = "requant rows";
    int32_t offset;
    vitq_status st = check_grid(what, g, &offset);
    if (st) return st;
    st = check_rows(what, x, ldx, out, ldo, rows, cols, m, nm);
    if (st) return st;
    vitq_i_requant_block(x, ldx, rows, cols, m, nm, g, out, ldo);
    return VITQ_OK;
}

/* The portable residual add of both stream types (exactly one of r32, r16 set). |rounded| < 2^62 and
 * |res| <= 2^31: the sum fits int64. */
static void portable_residual_add(int32_t *r32, int16_t *r16, size_t ldr, const int32_t *x, size_t ldx, size_t rows,
                                  size_t cols, const vitq_i_dyadic *m, size_t nm, int32_t lo, int32_t hi) {
    for (size_t r = 0; r < rows; r++) {
        const int32_t *xr = x + r * ldx;
        for (size_t c = 0; c < cols; c++) {
            const vitq_i_dyadic *d = &m[nm == 1 ? 0 : c];
            int64_t add = round_dyadic(xr[c], d->mult, half_of(d->shift), d->shift);
            if (r32) r32[r * ldr + c] = (int32_t)clamp64(r32[r * ldr + c] + add, lo, hi);
            else r16[r * ldr + c] = (int16_t)clamp64(r16[r * ldr + c] + add, lo, hi);
        }
    }
}

vitq_status vitq_i_residual_check(const vitq_i_dyadic *m, size_t nm, size_t cols) {
    if (cols == 0) return VITQ_OK;
    return check_rows("residual add i32", m, cols, m, cols, 1, cols, m, nm);
}

void vitq_i_residual_add_i32_block(int32_t *res, size_t ldr, const int32_t *x, size_t ldx, size_t rows, size_t cols,
                                   const vitq_i_dyadic *m, size_t nm, int32_t lo, int32_t hi) {
    if (rows == 0 || cols == 0) return;
#ifdef VITQ_I_REQUANT_AVX512
    if (vitq_i_features_active() & VITQ_I_CPU_AVX512) {
        vitq_i_residual_add_i32_avx512(res, ldr, x, ldx, rows, cols, m, nm, lo, hi);
        return;
    }
#endif
#ifdef VITQ_I_REQUANT_AVX2
    if (vitq_i_features_active() & VITQ_I_CPU_AVX2_FMA) {
        vitq_i_residual_add_i32_avx2(res, ldr, x, ldx, rows, cols, m, nm, lo, hi);
        return;
    }
#endif
    portable_residual_add(res, NULL, ldr, x, ldx, rows, cols, m, nm, lo, hi);
}

vitq_status vitq_i_residual_add_i32(int32_t *res, size_t ldr, const int32_t *x, size_t ldx, size_t rows, size_t cols,
                                    const vitq_i_dyadic *m, size_t nm, int32_t lo, int32_t hi) {
    const char *what = "residual add i32";
    vitq_status st = check_range(what, "lo", "hi", lo, hi, INT32_MIN, INT32_MAX);
    if (st) return st;
    st = check_rows(what, x, ldx, res, ldr, rows, cols, m, nm);
    if (st) return st;
    vitq_i_residual_add_i32_block(res, ldr, x, ldx, rows, cols, m, nm, lo, hi);
    return VITQ_OK;
}

vitq_status vitq_i_residual_add_i16(int16_t *res, size_t ldr, const int32_t *x, size_t ldx, size_t rows, size_t cols,
                                    const vitq_i_dyadic *m, size_t nm, int32_t lo, int32_t hi) {
    const char *what = "residual add i16";
    vitq_status st = check_range(what, "lo", "hi", lo, hi, -32768, 32767);
    if (st) return st;
    st = check_rows(what, x, ldx, res, ldr, rows, cols, m, nm);
    if (st || rows == 0 || cols == 0) return st;
#ifdef VITQ_I_REQUANT_AVX2
    if (vitq_i_features_active() & VITQ_I_CPU_AVX2_FMA) {
        vitq_i_residual_add_i16_avx2(res, ldr, x, ldx, rows, cols, m, nm, lo, hi);
        return VITQ_OK;
    }
#endif
    portable_residual_add(NULL, res, ldr, x, ldx, rows, cols, m, nm, lo, hi);
    return VITQ_OK;
}
