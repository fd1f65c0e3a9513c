/* Integer-only non-linear kernels (intnl.h). No floating point anywhere in this file: int32/int64
 * arithmetic, shifts and comparisons only, so it compiles with -mgeneral-regs-only. Every product
 * carries its bound in a comment, derived from the ranges the check functions enforce (so the bounds
 * hold for any parameter struct a kernel accepts, consistent or not, not only for prepared ones). */
#include "kernels/intnl.h"

#include "core/core.h"
#include "kernels/intnl_dispatch.h"
#include "kernels/intnl_int.h"

/* a / b rounded half to even (torch.round of the quotient), b > 0, b < 2^62. */
static inline int64_t div_round_even(int64_t a, int64_t b) {
    int64_t q = vitq_i_floor_div(a, b), r = a - q * b; /* r in [0, b) */
    if (2 * r > b || (2 * r == b && (q & 1))) q++; /* 2r < 2^63 */
    return q;
}

/* Number of significant bits of v > 0 (floor(log2 v) + 1). */
static inline int bit_length(int64_t v) {
    int n = 0;
    for (int s = 32; s > 0; s >>= 1)
        if (v >> s) {
            v >>= s;
            n += s;
        }
    return n + 1;
}

static inline int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

static vitq_status check_rows(const char *kernel, const void *x, int64_t rows, int64_t n, const void *out) {
    if (!x || !out || rows < 0) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: NULL row pointer or rows < 0", kernel);
    if (n < 1 || n > VITQ_I_INTNL_MAX_N)
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s: row length %lld outside [1, %d]", kernel, (long long)n,
                           VITQ_I_INTNL_MAX_N);
    return VITQ_OK;
}

/* One row of a kernel: n inputs at x, outputs at out (the row's start in the output's element type). */
typedef vitq_i_intnl_row_fn row_fn;

/* The kernels' common frame: their check's status, the row arguments, then f on each row, or vec, the
 * active vector path's row function (intnl_dispatch.h), when there is one: the same bits. */
static vitq_status run_rows(const char *kernel, vitq_status st, row_fn f, row_fn vec, const void *p,
                            const int16_t *x, int64_t rows, int64_t n, void *out, size_t out_elem) {
    if (st || (st = check_rows(kernel, x, rows, n, out))) return st;
    if (vec) f = vec;
    for (int64_t i = 0; i < rows; i++) f(p, x + i * n, n, (char *)out + (size_t)(i * n) * out_elem);
    return VITQ_OK;
}

static vitq_status range(const char *kernel, const char *name, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi)
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s: %s = %lld outside [%lld, %lld]", kernel, name, (long long)v,
                           (long long)lo, (long long)hi);
    return VITQ_OK;
}

/* ---- integer square roots ---- */

/* One Newton step for sqrt(v), k >= 1: floor((k + floor(v / k)) / 2). k <= 2^32, v < 2^62: sum < 2^63. */
static inline int64_t newton_step(int64_t v, int64_t k) { return (k + v / k) / 2; }

int64_t vitq_i_isqrt_newton(int64_t v) {
    if (v <= 0) return 0;
    /* x0 = 2^ceil(bits(v)/2) >= sqrt(v) (v < 2^bits), at most 2^31 for v < 2^62. From any start at or
     * above the root the iterates decrease strictly until they reach floor(sqrt(v)); the first
     * non-decrease marks it (I-BERT's stop rule). */
    int64_t x = (int64_t)1 << ((bit_length(v) + 1) / 2);
    for (;;) {
        int64_t next = newton_step(v, x);
        if (next >= x) return x;
        x = next;
    }
}

int64_t vitq_i_isqrt_fixed(int64_t v, int iters) {
    if (v < 0) v = 0;
    int64_t k = (int64_t)1 << 16;
    /* k' = floor((k + v/k)/2) >= floor(k/2), so k stays >= 1 for iters <= 16 and for any v >= 1;
     * only v = 0 can reach 0 (after 17 steps), where the root is 0. */
    for (int i = 0; i < iters && k > 0; i++) k = newton_step(v, k);
    return k;
}

/* ---- I-BERT exp polynomial (I-BERT softmax and FQ-ViT LIS) ---- */

/* The i-exp of d <= 0 split as p 2^-z: q = max(d, 30 x0), z = floor(q / x0) in [0, 30],
 * r = q - x0 z in (x0, 0], p = max(r (r + b) + c, 0). With |x0| <= 11356, b in [-x0, 44357],
 * c < 2^30: r (r + b) in [-x0 b, 0] (r + b >= 0 since b >= -x0 > -r), so p in [0, c]: p < 2^30. */
static inline int64_t ibert_poly(int32_t d, int32_t x0, int32_t b, int32_t c, int *z_out) {
    int64_t q = d < 30 * x0 ? 30 * (int64_t)x0 : d; /* 30 x0 >= -340680 */
    int64_t z = vitq_i_floor_div(q, x0);
    int64_t r = q - (int64_t)x0 * z; /* |x0 z| <= 340680 */
    int64_t p = r * (r + b) + c;     /* |r (r + b)| <= 11356 * 44357 < 2^29 */
    *z_out = (int)z;
    return p > 0 ? p : 0;
}

static int32_t row_max(const int16_t *x, int64_t n) {
    int32_t m = x[0];
    for (int64_t j = 1; j < n; j++)
        if (x[j] > m) m = x[j];
    return m;
}

/* The i-exp integers of I-BERT and FQ-ViT: x0 in [x0_min, -1], b in [-x0, b_max], c in [1, c_max]
 * (b >= -x0 makes the polynomial at most c on (x0, 0]). */
static vitq_status check_exp_ints(const char *k, const void *p, const int32_t *xbc, int32_t x0_min, int32_t b_max,
                                  int32_t c_max) {
    if (!p) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: NULL parameters", k);
    vitq_status st;
    if ((st = range(k, "x0_int", xbc[0], x0_min, -1)) || (st = range(k, "b_int", xbc[1], -(int64_t)xbc[0], b_max)))
        return st;
    return range(k, "c_int", xbc[2], 1, c_max);
}

vitq_status vitq_i_ibert_softmax_check(const vitq_i_ibert_softmax_params *p) {
    const char *k = "I-BERT softmax";
    const int32_t xbc[3] = {p ? p->x0_int : 0, p ? p->b_int : 0, p ? p->c_int : 0};
    vitq_status st = check_exp_ints(k, p, xbc, -11356, 44357, (1 << 30) - 1);
    if (st || (st = range(k, "exp_mult", p->exp_mult, (int64_t)1 << 30, VITQ_I_I31)) ||
        (st = range(k, "exp_shift", p->exp_shift, 0, 62)) || (st = range(k, "out_bits", p->out_bits, 1, 16)))
        return st;
    /* The row maximum's 16-bit exp; every other e is at most this (p <= c_int, z >= 0), so the row sum
     * is at most 4096 * 32767 < 2^27 and at least 1. c_int * exp_mult < 2^61. */
    return range(k, "the 16-bit exp of 0 (round_shr(c_int exp_mult, exp_shift))",
                 vitq_i_round_shr((int64_t)p->c_int * p->exp_mult, p->exp_shift), 1, 32767);
}

static void ibert_softmax_row(const void *pv, const int16_t *x, int64_t n, void *out) {
    const vitq_i_ibert_softmax_params *p = pv;
    int32_t *o = out;
    const int64_t top = ((int64_t)1 << p->out_bits) - 1;
    int32_t m = row_max(x, n);
    int64_t sum = 0;
    for (int64_t j = 0; j < n; j++) {
        int z;
        int64_t pj = ibert_poly(x[j] - m, p->x0_int, p->b_int, p->c_int, &z); /* d in [-65535, 0] */
        int64_t e = vitq_i_round_shr(pj * p->exp_mult, p->exp_shift + z); /* pj mult < 2^30 2^31 = 2^61 */
        o[j] = (int32_t)e;                                           /* e <= 32767 (check) */
        sum += e;                                                    /* <= 4096 32767 < 2^27 */
    }
    int64_t factor = ((int64_t)1 << 32) / sum; /* sum >= 1: factor <= 2^32 */
    for (int64_t j = 0; j < n; j++) {
        int64_t v = ((int64_t)o[j] * factor) >> (32 - p->out_bits); /* e factor < 2^15 2^32 = 2^47 */
        /* e <= sum gives e factor <= 2^32, so v <= 2^out_bits, reached only by a row whose one nonzero
         * e is a power of two (never with prepared parameters, where the maximum's e is 32767) */
        o[j] = (int32_t)(v < top ? v : top);
    }
}

vitq_status vitq_i_ibert_softmax(const vitq_i_ibert_softmax_params *p, const int16_t *x, int64_t rows, int64_t n,
                                 int32_t *out) {
    return run_rows("I-BERT softmax", vitq_i_ibert_softmax_check(p), ibert_softmax_row,
                    vitq_i_intnl_active()->ibert_softmax, p, x, rows, n, out, sizeof *out);
}

/* ---- I-ViT ShiftExp (Shiftmax and ShiftGELU) ---- */

/* The two I-ViT kernels' parameters: x0 and the output bits. */
static vitq_status check_shift_params(const char *k, const void *p, int32_t x0, int32_t x0_min, int32_t out_bits) {
    if (!p) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: NULL parameters", k);
    vitq_status st = range(k, "x0", x0, x0_min, -1);
    return st ? st : range(k, "out_bits", out_bits, 2, 16);
}

vitq_status vitq_i_shiftmax_check(const vitq_i_shiftmax_params *p) {
    return check_shift_params("I-ViT Shiftmax", p, p ? p->x0 : 0, -16384, p ? p->out_bits : 0);
}

vitq_status vitq_i_shiftgelu_check(const vitq_i_shiftgelu_params *p) {
    /* |x0| <= 255 keeps e1 <= 255 2^23 < 2^31 (I-ViT's clamp of the sum at 2^31 - 1 then never hides e1). */
    return check_shift_params("I-ViT ShiftGELU", p, p ? p->x0 : 0, -255, p ? p->out_bits : 0);
}

static void shiftmax_row(const void *pv, const int16_t *x, int64_t n, void *out) {
    const vitq_i_shiftmax_params *p = pv;
    int32_t *o = out;
    int32_t m = row_max(x, n);
    int64_t sum = 0;
    for (int64_t j = 0; j < n; j++) {
        int64_t e = vitq_i_shift_exp(vitq_i_times_log2e(x[j] - m), p->x0, 15); /* d <= 0: e <= 16384 2^15 = 2^29 */
        o[j] = (int32_t)e;
        sum += e; /* <= 4096 2^29 = 2^41 */
    }
    if (sum > VITQ_I_I31) sum = VITQ_I_I31; /* I-ViT's clamp; the row maximum gives e = |x0| 2^15 >= 1, so sum >= 1 */
    int64_t factor = VITQ_I_I31 / sum;
    for (int64_t j = 0; j < n; j++)
        /* e factor <= 2^31 - 1: e <= sum unless clamped, and then factor = 1, e <= 2^29 */
        o[j] = (int32_t)(((int64_t)o[j] * factor) >> (32 - p->out_bits));
}

vitq_status vitq_i_shiftmax(const vitq_i_shiftmax_params *p, const int16_t *x, int64_t rows, int64_t n,
                            int32_t *out) {
    return run_rows("I-ViT Shiftmax", vitq_i_shiftmax_check(p), shiftmax_row, vitq_i_intnl_active()->shiftmax, p, x,
                    rows, n, out, sizeof *out);
}

/* ---- FQ-ViT Log-Int-Softmax ---- */

vitq_status vitq_i_lis_check(const vitq_i_lis_params *p) {
    const char *k = "FQ-ViT Log-Int-Softmax";
    const int32_t xbc[3] = {p ? p->x0_int : 0, p ? p->b_int : 0, p ? p->c_int : 0};
    vitq_status st = check_exp_ints(k, p, xbc, -355, 1387, (1 << 20) - 1);
    return st ? st : range(k, "bits", p->bits, 2, 8);
}

/* The log2 code of the probability e / sum, e >= 1, sum < 2^62: v = round(sum / e) >= 1,
 * q = floor(log2 v) + [v - 2^k >= 2^(k-1)]. */
static inline int32_t lis_code(int64_t sum, int64_t e, int32_t zero_code) {
    int64_t v = div_round_even(sum, e);
    int k = bit_length(v) - 1; /* v <= 2^62 */
    int64_t q = k + (k > 0 && v - ((int64_t)1 << k) >= ((int64_t)1 << (k - 1)));
    return q >= zero_code ? zero_code : (int32_t)q;
}

/* The exact exp p 2^(30 - z) of d <= 0: p < 2^20, z >= 0, so < 2^50. */
static inline int64_t lis_exp(const vitq_i_lis_params *p, int32_t d) {
    int z;
    int64_t poly = ibert_poly(d, p->x0_int, p->b_int, p->c_int, &z); /* sets z: a statement of its own */
    return poly << (30 - z);
}

static void lis_row(const void *pv, const int16_t *x, int64_t n, void *out) {
    const vitq_i_lis_params *p = pv;
    uint8_t *c = out;
    const int32_t zero_code = (1 << p->bits) - 1;
    int32_t m = row_max(x, n);
    int64_t sum = 0;
    /* First pass: the sum (exps are recomputed below rather than stored: they need 50 bits). */
    for (int64_t j = 0; j < n; j++) sum += lis_exp(p, x[j] - m); /* the sum of 4096 < 2^62 */
    for (int64_t j = 0; j < n; j++) {
        int64_t e = lis_exp(p, x[j] - m);
        /* The row maximum has e = c_int 2^30 >= 1, so sum >= 1 and e <= sum. */
        c[j] = (uint8_t)(e > 0 ? lis_code(sum, e, zero_code) : zero_code);
    }
}

vitq_status vitq_i_lis_softmax(const vitq_i_lis_params *p, const int16_t *x, int64_t rows, int64_t n,
                               uint8_t *codes) {
    return run_rows("FQ-ViT Log-Int-Softmax", vitq_i_lis_check(p), lis_row, NULL, p, x, rows, n, codes,
                    sizeof *codes);
}

vitq_status vitq_i_lis_pv(const uint8_t *codes, int64_t rows, int64_t tokens, int32_t bits, const int8_t *v,
                          int64_t dim, int32_t frac, int32_t *out) {
    const char *k = "FQ-ViT P.V by shifts";
    if (!v) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: NULL V", k);
    vitq_status st = check_rows(k, codes, rows, tokens, out);
    if (st || (st = range(k, "bits", bits, 2, 8)) || (st = range(k, "frac", frac, 0, 12)) ||
        (st = range(k, "dim", dim, 1, (int64_t)1 << 30)))
        return st;
    const int32_t zero_code = (1 << bits) - 1;
    void (*vec)(const int8_t *, int64_t, int32_t, int32_t, int32_t *) = vitq_i_intnl_active()->pv_token;
    for (int64_t i = 0; i < rows; i++) {
        const uint8_t *c = codes + i * tokens;
        int32_t *o = out + i * dim;
        for (int64_t d = 0; d < dim; d++) o[d] = 0;
        for (int64_t j = 0; j < tokens; j++) {
            int32_t q = c[j];
            if (q == zero_code) continue;
            if (q > zero_code)
                return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s: code %d at row %lld, token %lld above %d", k, (int)q,
                                   (long long)i, (long long)j, (int)zero_code);
            const int8_t *vj = v + j * dim;
            if (vec) { /* the vector path: the same terms, added in the same order per output */
                vec(vj, dim, frac, q, o);
                continue;
            }
            for (int64_t d = 0; d < dim; d++)
                /* term in [-2^(7+frac), 127 2^frac]; 4096 terms: [-2^31, 127 2^24] at frac 12 */
                o[d] += (int32_t)vitq_i_round_shr((int64_t)vj[d] * ((int64_t)1 << frac), q);
        }
    }
    return VITQ_OK;
}

/* ---- GELU ---- */

/* Bound on |floor_shr(y, shift)| for the erf polynomial: |y| <= max(b^2, |c|). */
static int64_t ibert_gelu_ymax(const vitq_i_ibert_gelu_params *p) {
    int64_t b2 = (int64_t)p->b_int * p->b_int, c = -(int64_t)p->c_int; /* b^2 < 2^31, |c| <= 2^31 */
    return ((b2 > c ? b2 : c) >> p->shift) + 1;
}

vitq_status vitq_i_ibert_gelu_check(const vitq_i_ibert_gelu_params *p) {
    const char *k = "I-BERT i-GELU";
    if (!p) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: NULL parameters", k);
    vitq_status st;
    if ((st = range(k, "b_int", p->b_int, -40989, -1)) || (st = range(k, "c_int", p->c_int, INT32_MIN, -1)) ||
        (st = range(k, "shift", p->shift, 0, 40)) || (st = range(k, "one", p->one, -65535, -1)))
        return st;
    /* |y + one| <= 65535 keeps |x (y + one)| <= 32768 * 65535 < 2^31. */
    return range(k, "bound of |y| + |one|", ibert_gelu_ymax(p) - p->one, 0, 65535);
}

/* Elementwise: rows only batch the call. */
static void ibert_gelu_row(const void *pv, const int16_t *x, int64_t n, void *o) {
    const vitq_i_ibert_gelu_params *p = pv;
    int32_t *out = o;
    for (int64_t i = 0; i < n; i++) {
        int64_t q = x[i];
        int64_t a = q < 0 ? -q : q;
        if (a > -(int64_t)p->b_int) a = -(int64_t)p->b_int;
        int64_t t = a + p->b_int;     /* in [b_int, 0] */
        int64_t y = t * t + p->c_int; /* t^2 <= 40989^2 < 2^31, c_int >= -2^31: |y| <= 2^31 */
        if (q < 0) y = -y;
        else if (q == 0) y = 0;
        y = vitq_i_floor_shr(y, p->shift);            /* |y| <= ymax (check) */
        out[i] = (int32_t)(-q * (y + p->one)); /* |y + one| <= 65535, |q| <= 32768: < 2^31 */
    }
}

vitq_status vitq_i_ibert_gelu(const vitq_i_ibert_gelu_params *p, const int16_t *x, int64_t rows, int64_t n,
                              int32_t *out) {
    return run_rows("I-BERT i-GELU", vitq_i_ibert_gelu_check(p), ibert_gelu_row, vitq_i_intnl_active()->ibert_gelu, p,
                    x, rows, n, out, sizeof *out);
}

static void shiftgelu_row(const void *pv, const int16_t *x, int64_t n, void *out) {
    const vitq_i_shiftgelu_params *p = pv;
    int32_t *o = out;
    int32_t m = row_max(x, n);
    /* e2 = ShiftExp(-m): -m in [-32767, 32768], d' in [-47104, 47104]; saturated at 2^31 - 1. */
    int64_t e2 = vitq_i_shift_exp(vitq_i_times_log2e(-(int64_t)m), p->x0, 23);
    for (int64_t j = 0; j < n; j++) {
        int64_t e1 = vitq_i_shift_exp(vitq_i_times_log2e(x[j] - m), p->x0, 23); /* <= 255 2^23 < 2^31 */
        int64_t sum = e1 + e2;                                     /* < 2^32 */
        if (sum > VITQ_I_I31) sum = VITQ_I_I31;
        /* sum >= e1 >= 1 unless clamped (then factor = 1): e1 factor <= 2^31 - 1 */
        int64_t sig = (e1 * (VITQ_I_I31 / sum)) >> (32 - p->out_bits); /* < 2^(out_bits - 1) <= 2^15 */
        o[j] = (int32_t)(x[j] * sig);                           /* |x| <= 2^15: < 2^30 */
    }
}

vitq_status vitq_i_shiftgelu(const vitq_i_shiftgelu_params *p, const int16_t *x, int64_t rows, int64_t n,
                             int32_t *out) {
    return run_rows("I-ViT ShiftGELU", vitq_i_shiftgelu_check(p), shiftgelu_row, vitq_i_intnl_active()->shiftgelu, p,
                    x, rows, n, out, sizeof *out);
}

/* ---- LayerNorm ---- */

/* The channel array and output grid of both LayerNorm parameter structs. */
static vitq_status check_ln_common(const char *k, const void *ch, int32_t channels, const vitq_i_ln_out *out) {
    if (!ch) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: NULL channel parameters", k);
    vitq_status st;
    if ((st = range(k, "channels", channels, 1, VITQ_I_INTNL_MAX_N)) || (st = range(k, "zero", out->zero, -65536, 65536)) ||
        (st = range(k, "out min", out->min, -65536, 65536)) || (st = range(k, "out max", out->max, out->min, 65536)))
        return st;
    return VITQ_OK;
}

vitq_status vitq_i_int_layernorm_check(const vitq_i_int_layernorm_params *p) {
    const char *k = "integer LayerNorm";
    if (!p) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: NULL parameters", k);
    vitq_status st = check_ln_common(k, p->ch, p->channels, &p->out);
    if (st || (st = range(k, "variant", p->variant, VITQ_I_LN_IBERT, VITQ_I_LN_IVIT))) return st;
    for (int32_t c = 0; c < p->channels; c++) {
        const vitq_i_ln_channel *ch = &p->ch[c];
        /* any int32 mult: |mult| <= 2^31 */
        if (ch->shift < 0 || ch->shift > 62 || ch->bias < -((int64_t)1 << 61) || ch->bias > ((int64_t)1 << 61))
            return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE,
                               "%s: channel %d: shift %d or bias %lld outside shift in [0, 62], |bias| <= 2^61", k,
                               (int)c, (int)ch->shift, (long long)ch->bias);
    }
    return VITQ_OK;
}

/* A LayerNorm row's parameters and the active path's statistics and output stage (NULL: the scalar
 * loops). */
typedef struct int_layernorm_ctx {
    const vitq_i_int_layernorm_params *p;
    void (*sums)(const int16_t *x, int64_t n, int64_t *s1, int64_t *s2);
    void (*output)(const int16_t *x, int64_t n, int64_t mu, int64_t factor, const void *ch, const void *grid,
                   int32_t *out);
} int_layernorm_ctx;

static void int_layernorm_row(const void *pv, const int16_t *x, int64_t C, void *out) {
    const int_layernorm_ctx *ctx = pv;
    const vitq_i_int_layernorm_params *p = ctx->p;
    int32_t *o = out;
    int64_t sum = 0, var = 0, mu;
    if (ctx->sums) {
        /* The vector path's sum x and sum x^2, then var = sum (x - mu)^2 = sum x^2 - 2 mu sum x + C mu^2,
         * an identity in the integers, so exactly the loop's var: sum x^2 <= 2^12 2^30 = 2^42,
         * |2 mu sum x| <= 2^16 2^27 = 2^43, C mu^2 <= 2^42. */
        int64_t s2;
        ctx->sums(x, C, &sum, &s2);
        mu = div_round_even(sum, C);
        var = s2 - 2 * mu * sum + C * mu * mu;
    } else {
        for (int64_t c = 0; c < C; c++) sum += x[c]; /* |sum| <= 2^12 2^15 = 2^27 */
        mu = div_round_even(sum, C);                 /* in [-32768, 32767] */
        for (int64_t c = 0; c < C; c++) {
            int64_t y = x[c] - mu; /* |y| <= 65535 */
            var += y * y;          /* y^2 < 2^32; var < 2^12 2^32 = 2^44 */
        }
    }
    /* Both roots are >= floor(sqrt(var)) >= |y| (each y^2 <= var): |y factor| <= 2^31. */
    int64_t sd, factor;
    if (p->variant == VITQ_I_LN_IBERT) {
        sd = vitq_i_isqrt_newton(var);              /* <= 2^22 */
        factor = sd ? ((int64_t)1 << 31) / sd : 0; /* sd = 0: var = 0, every y = 0 */
    } else {
        sd = vitq_i_isqrt_fixed(var, 10); /* >= 2^6 after 10 steps from 2^16 */
        factor = VITQ_I_I31 / sd;
    }
    if (ctx->output) { /* the vector path: the loop below, same bits (intnl_dispatch.h states its bounds) */
        ctx->output(x, C, mu, factor, p->ch, &p->out, o);
        return;
    }
    for (int64_t c = 0; c < C; c++) {
        const vitq_i_ln_channel *ch = &p->ch[c];
        int64_t y = vitq_i_floor_shr((x[c] - mu) * factor, 1); /* |y| <= 2^30 */
        /* |y mult| <= 2^30 2^31 = 2^61, |bias| <= 2^61: |sum| <= 2^62, plus 2^61 rounding < 2^63 */
        int64_t v = vitq_i_round_shr(y * ch->mult + ch->bias, ch->shift);
        o[c] = (int32_t)clamp64(v + p->out.zero, p->out.min, p->out.max); /* v + zero: |.| < 2^63 */
    }
}

vitq_status vitq_i_int_layernorm(const vitq_i_int_layernorm_params *p, const int16_t *x, int64_t rows,
                                 int32_t *out) {
    vitq_status st = vitq_i_int_layernorm_check(p);
    const vitq_i_intnl_paths *vec = vitq_i_intnl_active();
    int_layernorm_ctx ctx = {p, vec->ln_sums, vec->ln_output};
    return run_rows("integer LayerNorm", st, int_layernorm_row, NULL, &ctx, x, rows, st ? 0 : p->channels, out,
                    sizeof *out);
}

vitq_status vitq_i_ptf_layernorm_check(const vitq_i_ptf_layernorm_params *p) {
    const char *k = "FQ-ViT PTF LayerNorm";
    if (!p) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: NULL parameters", k);
    vitq_status st = check_ln_common(k, p->ch, p->channels, &p->out);
    if (st) return st;
    for (int32_t c = 0; c < p->channels; c++) {
        const vitq_i_ptf_channel *ch = &p->ch[c];
        int ok = ch->alpha >= 0 && ch->alpha <= 3 && ch->sign >= -1 && ch->sign <= 1 && ch->ge >= 0 && ch->ge <= 62 &&
                 ch->bq >= -((int64_t)1 << 31) && ch->bq <= ((int64_t)1 << 31) &&
                 (ch->sign == 0 ? ch->g == 0 : ch->g >= (1 << 30));
        if (!ok)
            return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE,
                               "%s: channel %d: alpha %d, sign %d, g %d, ge %d or bq %lld out of range (alpha in "
                               "[0, 3], g in [2^30, 2^31) with a sign, 0 without, ge in [0, 62], |bq| <= 2^31)",
                               k, (int)c, (int)ch->alpha, (int)ch->sign, (int)ch->g, (int)ch->ge, (long long)ch->bq);
    }
    return VITQ_OK;
}

/* One FQ-ViT output: round((sign M xt + B) / 2^N) for the token's R (>= 1), S1 over C channels. */
static inline int64_t ptf_output(const vitq_i_ptf_channel *ch, int64_t xt, int64_t R, int64_t S1, int64_t C) {
    /* Q = floor(A 2^(32+ge)) = floor(g 2^32 / R): g 2^32 < 2^63; Q >= 2^30 2^32 / 2^30 = 2^32 */
    int64_t Q = ((int64_t)ch->g << 32) / R;
    int64_t fl = bit_length(Q) - 1 - 32 - ch->ge; /* floor(log2 A) */
    int64_t N = clamp64(7 - fl, 0, 31);
    int64_t J = 32 + ch->ge - N; /* A 2^N = Q / 2^J; J >= 25 in every case of N (intnl.h) */
    int64_t M = J >= 63 ? 0 : Q >> J;
    if (M > 255) M = 255;
    int64_t a16 = J - 16 >= 63 ? 0 : Q >> (J - 16); /* floor(A 2^N 2^16), exact since J >= 16 */
    if (a16 > (1 << 24) - 1) a16 = (1 << 24) - 1;
    /* bq 2^N: |.| <= 2^31 2^31 = 2^62; a16 S1 < 2^24 2^30 = 2^54; B's argument < 2^62 + 2^54 */
    int64_t B = vitq_i_round_shr(ch->bq * ((int64_t)1 << N) - ch->sign * vitq_i_floor_div(a16 * S1, C), 16); /* |B| < 2^47 */
    return vitq_i_round_shr(ch->sign * M * xt + B, (int)N); /* M |xt| <= 255 2^18 < 2^26 */
}

static void ptf_layernorm_row(const void *pv, const int16_t *x, int64_t C, void *out) {
    const vitq_i_ptf_layernorm_params *p = pv;
    int32_t *o = out;
    int64_t S1 = 0, S2 = 0;
    for (int64_t c = 0; c < C; c++) {
        int64_t xt = (int64_t)x[c] * ((int64_t)1 << p->ch[c].alpha); /* |xt| <= 2^18 */
        S1 += xt;                                                    /* |S1| <= 2^30 */
        S2 += xt * xt;                                               /* <= 2^12 2^36 = 2^48 */
    }
    /* C S2 <= 2^60, S1^2 <= 2^60, and C S2 >= S1^2 (Cauchy-Schwarz) */
    int64_t R = vitq_i_isqrt_newton(C * S2 - S1 * S1); /* <= 2^30 */
    for (int64_t c = 0; c < C; c++) {
        const vitq_i_ptf_channel *ch = &p->ch[c];
        int64_t v;
        if (R == 0 || ch->g == 0)
            v = vitq_i_round_shr(ch->bq, 16); /* a constant token, or gamma = 0: beta */
        else
            v = ptf_output(ch, (int64_t)x[c] * ((int64_t)1 << ch->alpha), R, S1, C);
        o[c] = (int32_t)clamp64(v + p->out.zero, p->out.min, p->out.max);
    }
}

vitq_status vitq_i_ptf_layernorm(const vitq_i_ptf_layernorm_params *p, const int16_t *x, int64_t rows,
                                 int32_t *out) {
    vitq_status st = vitq_i_ptf_layernorm_check(p);
    return run_rows("FQ-ViT PTF LayerNorm", st, ptf_layernorm_row, NULL, p, x, rows, st ? 0 : p->channels, out,
                    sizeof *out);
}
