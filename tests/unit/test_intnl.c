/* Integer non-linear kernels (kernels/intnl.h) against references written here from the papers'
 * formulas, line by line, with their own arithmetic (floor division through the remainder, powers of
 * two by repeated doubling, square roots by bisection): every kernel must match bit for bit on
 * thousands of random rows, on edge rows and under parameters anywhere in the range its check
 * accepts. Then the approximation against the exact functions in double (quant/intnl_params.h) on
 * realistic inputs, with bounds taken from measurement (printed), and the invariants: softmax rows sum
 * to the fixed-point one and are monotone, GELU is monotone on x >= 0 and ~0 far left, the LayerNorm
 * of a constant token is beta. */
#include <stdint.h>

#include "harness.h"
#include "kernels/cpu.h"
#include "kernels/intnl.h"
#include "kernels/intnl_dispatch.h"
#include "quant/intnl_params.h"
#include "test_random.h"

#define MAXN VITQ_I_INTNL_MAX_N

/* ---- reference arithmetic ---- */

static int64_t p2(int k) { /* 2^k, 0 <= k <= 62 */
    int64_t v = 1;
    while (k-- > 0) v *= 2;
    return v;
}
static int64_t fdiv(int64_t a, int64_t b) { /* floor(a / b) through the non-negative remainder */
    if (b < 0) {
        a = -a;
        b = -b;
    }
    int64_t m = a % b;
    if (m < 0) m += b;
    return (a - m) / b;
}
static int64_t rhu(int64_t a, int s) { /* a / 2^s rounded half up; 0 past 2^62 (|a| < 2^62) */
    if (s == 0) return a;
    if (s > 62) return 0;
    int64_t d = p2(s), q = fdiv(a, d);
    return 2 * (a - q * d) >= d ? q + 1 : q;
}
static int64_t round_even(int64_t a, int64_t b) { /* a / b, b > 0, half to even */
    int64_t q = fdiv(a, b), twice_rem = 2 * (a - q * b);
    if (twice_rem > b || (twice_rem == b && q % 2 != 0)) q++;
    return q;
}
static int64_t sqrt_bisect(int64_t v) { /* floor(sqrt(v)), v < 2^62 */
    int64_t lo = 0, hi = 2147483648LL;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        if (mid * mid <= v) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}
static int64_t clampi(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }
static int64_t irange(int64_t lo, int64_t hi) { return lo + (int64_t)(urand() * (double)(hi - lo + 1)); }
static int64_t ref_max(const int16_t *x, int n) {
    int64_t m = x[0];
    for (int j = 1; j < n; j++) m = x[j] > m ? x[j] : m;
    return m;
}

/* ---- references of the kernels ---- */

static int64_t ebuf[MAXN];

/* I-BERT's i-exp polynomial p and z for d <= 0. */
static int64_t ref_ibert_p(int64_t d, int64_t x0, int64_t b, int64_t c, int64_t *z) {
    int64_t qx = d > 30 * x0 ? d : 30 * x0;
    *z = fdiv(qx, x0);
    int64_t r = qx - x0 * *z;
    int64_t p = r * (r + b) + c;
    return p < 0 ? 0 : p;
}

static void ref_ibert_softmax(const vitq_i_ibert_softmax_params *p, const int16_t *x, int n, int32_t *out) {
    int64_t m = ref_max(x, n), sum = 0, z;
    for (int j = 0; j < n; j++) {
        int64_t poly = ref_ibert_p(x[j] - m, p->x0_int, p->b_int, p->c_int, &z);
        ebuf[j] = rhu(poly * p->exp_mult, p->exp_shift + (int)z);
        sum += ebuf[j];
    }
    int64_t factor = p2(32) / sum;
    for (int j = 0; j < n; j++) out[j] = (int32_t)clampi(fdiv(ebuf[j] * factor, p2(32 - p->out_bits)), 0, p2(p->out_bits) - 1);
}

/* I-ViT's ShiftExp, (r/2 - x0) 2^(nexp - z) floored; *huge when the value is certainly >= 2^31. */
static int64_t ref_shift_exp(int64_t d, int64_t x0, int nexp, int *huge) {
    int64_t dp = d + fdiv(d, 2) - fdiv(d, 16);
    int64_t qx = dp > nexp * x0 ? dp : nexp * x0;
    int64_t z = fdiv(qx, x0), r = qx - x0 * z, ex = nexp - z;
    *huge = ex > 45; /* r - 2 x0 >= 1: >= 2^44 */
    return *huge ? 0 : fdiv((r - 2 * x0) * p2((int)ex), 2);
}

static void ref_shiftmax(const vitq_i_shiftmax_params *p, const int16_t *x, int n, int32_t *out, int64_t *sum_out) {
    int64_t m = ref_max(x, n), sum = 0;
    int huge;
    for (int j = 0; j < n; j++) sum += ebuf[j] = ref_shift_exp(x[j] - m, p->x0, 15, &huge);
    if (sum_out) *sum_out = sum;
    if (sum > 2147483647) sum = 2147483647;
    int64_t factor = 2147483647 / sum;
    for (int j = 0; j < n; j++) out[j] = (int32_t)fdiv(ebuf[j] * factor, p2(32 - p->out_bits));
}

static void ref_lis(const vitq_i_lis_params *p, const int16_t *x, int n, uint8_t *codes) {
    int64_t m = ref_max(x, n), sum = 0, z, zc = p2(p->bits) - 1;
    for (int j = 0; j < n; j++) {
        int64_t poly = ref_ibert_p(x[j] - m, p->x0_int, p->b_int, p->c_int, &z);
        ebuf[j] = poly * p2(30 - (int)z);
        sum += ebuf[j];
    }
    for (int j = 0; j < n; j++) {
        if (ebuf[j] == 0) {
            codes[j] = (uint8_t)zc;
            continue;
        }
        int64_t v = round_even(sum, ebuf[j]), k = 0;
        while (k < 62 && p2((int)k + 1) <= v) k++;
        int64_t q = k + (2 * (v - p2((int)k)) >= p2((int)k));
        codes[j] = (uint8_t)(q < zc ? q : zc);
    }
}

static void ref_pv(const uint8_t *codes, int rows, int tokens, int bits, const int8_t *v, int dim, int frac,
                   int32_t *out) {
    for (int r = 0; r < rows; r++)
        for (int d = 0; d < dim; d++) {
            int64_t acc = 0;
            for (int j = 0; j < tokens; j++) {
                int q = codes[r * tokens + j];
                if (q != p2(bits) - 1) acc += rhu(v[j * dim + d] * p2(frac), q);
            }
            out[r * dim + d] = (int32_t)acc;
        }
}

static int32_t ref_ibert_gelu1(const vitq_i_ibert_gelu_params *p, int64_t q) {
    int64_t sgn = (q > 0) - (q < 0), a = q < 0 ? -q : q;
    if (a > -p->b_int) a = -p->b_int;
    int64_t y = sgn * ((a + p->b_int) * (a + p->b_int) + p->c_int);
    y = fdiv(y, p2(p->shift));
    return (int32_t)(-q * (y + p->one));
}

static void ref_shiftgelu(const vitq_i_shiftgelu_params *p, const int16_t *x, int n, int32_t *out) {
    int64_t m = ref_max(x, n);
    int huge2, huge1;
    int64_t e2 = ref_shift_exp(-m, p->x0, 23, &huge2);
    for (int j = 0; j < n; j++) {
        int64_t e1 = ref_shift_exp(x[j] - m, p->x0, 23, &huge1);
        int64_t sum = huge2 || e1 + e2 > 2147483647 ? 2147483647 : e1 + e2;
        out[j] = (int32_t)(x[j] * fdiv(e1 * (2147483647 / sum), p2(32 - p->out_bits)));
    }
}

static int64_t ref_ivit_sqrt(int64_t v) { /* I-ViT: k = 2^16, ten times k = floor((k + floor(v/k)) / 2) */
    int64_t k = 65536;
    for (int i = 0; i < 10; i++) k = fdiv(k + fdiv(v, k), 2);
    return k;
}

static void ref_int_layernorm(const vitq_i_int_layernorm_params *p, const int16_t *x, int32_t *out) {
    int64_t C = p->channels, sum = 0, var = 0;
    for (int c = 0; c < C; c++) sum += x[c];
    int64_t mu = round_even(sum, C);
    for (int c = 0; c < C; c++) var += (x[c] - mu) * (x[c] - mu);
    int64_t sd = p->variant == VITQ_I_LN_IBERT ? sqrt_bisect(var) : ref_ivit_sqrt(var);
    int64_t factor = sd == 0 ? 0 : (p->variant == VITQ_I_LN_IBERT ? p2(31) : p2(31) - 1) / sd;
    for (int c = 0; c < C; c++) {
        int64_t y = fdiv((x[c] - mu) * factor, 2);
        int64_t v = rhu(y * p->ch[c].mult + p->ch[c].bias, p->ch[c].shift);
        out[c] = (int32_t)clampi(v + p->out.zero, p->out.min, p->out.max);
    }
}

static void ref_ptf_layernorm(const vitq_i_ptf_layernorm_params *p, const int16_t *x, int32_t *out) {
    int64_t C = p->channels, S1 = 0, S2 = 0;
    for (int c = 0; c < C; c++) {
        int64_t xt = x[c] * p2(p->ch[c].alpha);
        S1 += xt;
        S2 += xt * xt;
    }
    int64_t R = sqrt_bisect(C * S2 - S1 * S1);
    for (int c = 0; c < C; c++) {
        const vitq_i_ptf_channel *ch = &p->ch[c];
        int64_t v;
        if (R == 0 || ch->g == 0) {
            v = rhu(ch->bq, 16);
        } else {
            int64_t Q = ch->g * p2(32) / R, lg = 0;
            while (lg < 62 && p2((int)lg + 1) <= Q) lg++;
            int64_t N = clampi(7 - (lg - 32 - ch->ge), 0, 31), J = 32 + ch->ge - N;
            int64_t M = J > 62 ? 0 : clampi(Q / p2((int)J), 0, 255);
            int64_t a16 = J - 16 > 62 ? 0 : clampi(Q / p2((int)J - 16), 0, p2(24) - 1);
            int64_t B = rhu(ch->bq * p2((int)N) - ch->sign * fdiv(a16 * S1, C), 16);
            v = rhu(ch->sign * M * x[c] * p2(ch->alpha) + B, (int)N);
        }
        out[c] = (int32_t)clampi(v + p->out.zero, p->out.min, p->out.max);
    }
}

/* ---- rows ---- */

static int16_t xin[MAXN * 4];
static int32_t got[MAXN * 4], want[MAXN * 4];
static uint8_t gotc[MAXN * 4], wantc[MAXN * 4];

enum { K_GAUSS, K_UNIFORM, K_EQUAL, K_SPIKE, K_EXTREME, K_SCORES4, K_SCORES8, K_INT8, K_KINDS };

static int16_t sat16(double v) { return (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : nearbyint(v)); }

/* Q.K^T of one query and key with `bits`-bit codes over a 64-wide head, pushed to the code extremes
 * (the largest scores such a model produces), as int16: 4-bit sums (|s| <= 4096) fit as they are,
 * 8-bit sums (|s| <= 2^20) are requantized to int16 (divided by 32, saturating). */
static int16_t model_score(int bits) {
    int64_t lo = -p2(bits - 1), hi = p2(bits - 1) - 1, acc = 0;
    int64_t sign = urand() < 0.5 ? 1 : -1;
    for (int d = 0; d < 64; d++) {
        int64_t a = urand() < 0.8 ? lo : irange(lo, hi), b = urand() < 0.8 ? sign * lo : irange(lo, hi);
        acc += a * (b < lo ? lo : b > hi ? hi : b);
    }
    return bits == 4 ? (int16_t)acc : sat16(acc / 32.0);
}

static void fill_row(int16_t *x, int n, int kind) {
    double sd = exp(urand() * log(30000.0)); /* spreads from 1 to 30000 codes */
    int16_t a = (int16_t)irange(-32768, 32767), b = (int16_t)irange(-32768, 32767);
    int spike = (int)irange(0, n - 1);
    for (int j = 0; j < n; j++) {
        switch (kind) {
        case K_GAUSS: x[j] = sat16(gauss() * sd); break;
        case K_UNIFORM: x[j] = (int16_t)irange(-32768, 32767); break;
        case K_EQUAL: x[j] = a; break;
        case K_SPIKE: x[j] = j == spike ? 32767 : a < b ? a : b; break;
        case K_EXTREME: x[j] = urand() < 0.5 ? -32768 : 32767; break;
        case K_SCORES4: x[j] = model_score(4); break;
        case K_SCORES8: x[j] = model_score(8); break;
        default: x[j] = (int16_t)irange(-128, 127); break;
        }
    }
}

static int random_n(void) {
    static const int ns[] = {1, 2, 3, 5, 8, 16, 31, 64, 197, 197, 50, 100};
    double u = urand();
    return u < 0.01 ? 3137 : u < 0.02 ? MAXN : ns[(int)irange(0, 11)];
}

static double log_uniform(double lo, double hi) { return exp(log(lo) + urand() * (log(hi) - log(lo))); }

static int same32(const int32_t *a, const int32_t *b, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

/* ---- square roots ---- */

static void test_isqrt(void) {
    int bad_newton = 0, bad_fixed = 0;
    for (int64_t v = 0; v < (1 << 20); v++) {
        int64_t r = sqrt_bisect(v), f = vitq_i_isqrt_fixed(v, 10);
        bad_newton += vitq_i_isqrt_newton(v) != r;
        bad_fixed += f != ref_ivit_sqrt(v) || f < r || (v >= 34596 && f > r + 1);
    }
    for (int i = 0; i < 200000; i++) {
        int64_t v = (int64_t)(urand() * 4611686018427387904.0); /* < 2^62 */
        if (i % 4 == 1) v = (int64_t)(urand() * 17592186044416.0); /* < 2^44 */
        if (i % 4 == 2) { int64_t s = (int64_t)(urand() * 2147483647.0); v = s * s + irange(-1, 1); }
        if (v < 0) v = 0;
        int64_t r = sqrt_bisect(v);
        bad_newton += vitq_i_isqrt_newton(v) != r;
        if (v < 17592186044416LL) {
            int64_t f = vitq_i_isqrt_fixed(v, 10);
            bad_fixed += f != ref_ivit_sqrt(v) || f < r || (v >= 34596 && f > r + 1);
        }
    }
    CHECK(bad_newton == 0);
    CHECK(bad_fixed == 0);
    CHECK(vitq_i_isqrt_newton(4611686018427387903LL) == 2147483647); /* 2^62 - 1 */
    CHECK(vitq_i_isqrt_fixed(4294967295LL, 10) == 65536);             /* 2^32 - 1: the 2-cycle's upper value */
    CHECK(vitq_i_isqrt_fixed(0, 10) == 64 && vitq_i_isqrt_fixed(0, 40) == 0);
}

/* ---- softmax: bit-exactness ---- */

static void random_ibert_params(vitq_i_ibert_softmax_params *p) {
    do { /* anywhere the check accepts, consistent or not */
        p->x0_int = (int32_t)-irange(1, 11356);
        p->b_int = (int32_t)irange(-p->x0_int, 44357);
        p->c_int = (int32_t)irange(1, (1 << 30) - 1);
        p->exp_mult = (int32_t)irange(1 << 30, 2147483647);
        p->exp_shift = (int32_t)irange(0, 62);
        p->out_bits = (int32_t)irange(1, 16);
    } while (vitq_i_ibert_softmax_check(p) != VITQ_OK);
}

static void test_ibert_softmax_exact(void) {
    int mismatches = 0, rows = 0, refused = 0;
    for (int it = 0; it < 2500; it++) {
        vitq_i_ibert_softmax_params p;
        if (it % 5 == 4) random_ibert_params(&p);
        else refused += vitq_i_ibert_softmax_prepare(log_uniform(1.0 / 16384, 0.5), (int32_t)irange(1, 16), &p, NULL) != VITQ_OK;
        int n = random_n(), r = n > 200 ? 1 : 3;
        for (int i = 0; i < r; i++) fill_row(xin + i * n, n, it % K_KINDS);
        CHECK_STATUS(vitq_i_ibert_softmax(&p, xin, r, n, got), VITQ_OK);
        for (int i = 0; i < r; i++) ref_ibert_softmax(&p, xin + i * n, n, want + i * n);
        mismatches += !same32(got, want, (int64_t)r * n);
        rows += r;
    }
    printf("    I-BERT softmax: %d rows, %d mismatching calls\n", rows, mismatches);
    CHECK(mismatches == 0 && refused == 0);
}

static void test_shiftmax_exact(void) {
    int mismatches = 0, rows = 0;
    for (int it = 0; it < 2500; it++) {
        vitq_i_shiftmax_params p;
        int n = random_n(), r = n > 200 ? 1 : 3;
        /* prepared where the scale suits the row length, else anywhere the check accepts (the clamp) */
        if (it % 5 == 4 || vitq_i_shiftmax_prepare(log_uniform(1.0 / 16384, 1), (int32_t)irange(2, 16), n, &p, NULL))
            p = (vitq_i_shiftmax_params){(int32_t)-irange(1, 16384), (int32_t)irange(2, 16)};
        for (int i = 0; i < r; i++) fill_row(xin + i * n, n, it % K_KINDS);
        CHECK_STATUS(vitq_i_shiftmax(&p, xin, r, n, got), VITQ_OK);
        for (int i = 0; i < r; i++) ref_shiftmax(&p, xin + i * n, n, want + i * n, NULL);
        mismatches += !same32(got, want, (int64_t)r * n);
        rows += r;
    }
    printf("    I-ViT Shiftmax: %d rows, %d mismatching calls\n", rows, mismatches);
    CHECK(mismatches == 0);
}

static void test_lis_exact(void) {
    int mismatches = 0, rows = 0;
    for (int it = 0; it < 2500; it++) {
        vitq_i_lis_params p;
        if (it % 5 == 4) {
            p.x0_int = (int32_t)-irange(1, 355);
            p.b_int = (int32_t)irange(-p.x0_int, 1387);
            p.c_int = (int32_t)irange(1, (1 << 20) - 1);
            p.bits = (int32_t)irange(2, 8);
        } else {
            CHECK_STATUS(vitq_i_lis_prepare(log_uniform(1.0 / 512, 0.5), it % 3 ? 4 : (int32_t)irange(2, 8), &p), VITQ_OK);
        }
        int n = random_n(), r = n > 200 ? 1 : 3;
        for (int i = 0; i < r; i++) fill_row(xin + i * n, n, it % K_KINDS);
        CHECK_STATUS(vitq_i_lis_softmax(&p, xin, r, n, gotc), VITQ_OK);
        for (int i = 0; i < r; i++) ref_lis(&p, xin + i * n, n, wantc + i * n);
        mismatches += memcmp(gotc, wantc, (size_t)r * (size_t)n) != 0;
        rows += r;
    }
    printf("    FQ-ViT Log-Int-Softmax: %d rows, %d mismatching calls\n", rows, mismatches);
    CHECK(mismatches == 0);
}

static void test_lis_pv_exact(void) {
    static uint8_t codes[4 * 3137];
    static int8_t v[3137 * 48];
    int mismatches = 0, off = 0;
    for (int it = 0; it < 400; it++) {
        int tokens = it % 50 == 0 ? 3137 : it % 7 == 0 ? MAXN : (int)irange(1, 197), rows = tokens > 197 ? 1 : 4;
        int dim = (int)irange(1, 48), bits = (int)irange(2, 8), frac = (int)irange(0, 12);
        if (tokens == MAXN) dim = 1;
        int extreme = it % 3 == 0;
        for (int i = 0; i < rows * tokens; i++) /* code 0 (= 1) everywhere on extreme calls: the bound's case */
            codes[i] = (uint8_t)(extreme ? 0 : irange(0, p2(bits) - 1));
        for (int i = 0; i < tokens * dim; i++) v[i] = (int8_t)(extreme ? (it % 2 ? -128 : 127) : irange(-128, 127));
        CHECK_STATUS(vitq_i_lis_pv(codes, rows, tokens, bits, v, dim, frac, got), VITQ_OK);
        ref_pv(codes, rows, tokens, bits, v, dim, frac, want);
        mismatches += !same32(got, want, (int64_t)rows * dim);
        /* each term is within half a unit of v 2^(frac - q): the sum within tokens / 2 */
        for (int r = 0; r < rows; r++)
            for (int d = 0; d < dim; d++) {
                double exact = 0;
                for (int j = 0; j < tokens; j++)
                    exact += v[j * dim + d] * ldexp(1, frac) * vitq_i_lis_value(codes[r * tokens + j], bits);
                off += fabs(got[r * dim + d] - exact) > tokens / 2.0;
            }
    }
    CHECK(mismatches == 0 && off == 0);
    codes[0] = 16; /* above the zero code of 4 bits */
    CHECK_STATUS(vitq_i_lis_pv(codes, 1, 1, 4, v, 1, 0, got), VITQ_ERR_OUT_OF_RANGE);
}

/* ---- softmax: edge rows and invariants ---- */

/* Row-wise invariants of the three softmaxes on one row: sums to the fixed-point one (I-BERT: within
 * n + 2^(M-5) below 2^M; Shiftmax: within n + 2^(M-1) sum_e / 2^31, its factor's resolution; LIS:
 * sum of 2^-q in [0.5, 2.25], the bounds of the log rounding) and monotone in the input. */
static void softmax_invariants(const int16_t *x, int n, double scale, int *bad) {
    vitq_i_ibert_softmax_params pb;
    vitq_i_shiftmax_params ps;
    vitq_i_lis_params pl;
    int M = 8;
    if (scale <= 0.5 && scale >= 1.0 / 16384) {
        vitq_i_ibert_softmax_prepare(scale, M, &pb, NULL);
        vitq_i_ibert_softmax(&pb, x, 1, n, got);
        int64_t s = 0;
        for (int j = 0; j < n; j++) s += got[j];
        bad[0] += s > 256 || s < 256 - n - 8;
        for (int j = 0; j < n; j++)
            for (int k = 0; k < n && n <= 200; k++) bad[1] += x[j] < x[k] && got[j] > got[k];
    }
    if (vitq_i_shiftmax_prepare(scale, M, n, &ps, NULL) == VITQ_OK) { /* scales too fine for n are refused */
        int64_t sum_e;
        vitq_i_shiftmax(&ps, x, 1, n, got);
        ref_shiftmax(&ps, x, n, want, &sum_e);
        int64_t s = 0;
        for (int j = 0; j < n; j++) s += got[j];
        double deficit = n + 128.0 * (double)sum_e / 2147483648.0; /* sum_e < 2^31: never clamped */
        bad[2] += s > 128 || s < 128 - deficit;
        for (int j = 0; j < n; j++)
            for (int k = 0; k < n && n <= 200; k++) bad[3] += x[j] < x[k] && got[j] > got[k];
    }
    if (scale >= 1.0 / 512 && scale <= 0.5) {
        vitq_i_lis_prepare(scale, 4, &pl);
        vitq_i_lis_softmax(&pl, x, 1, n, gotc);
        double s = 0;
        for (int j = 0; j < n; j++) s += vitq_i_lis_value(gotc[j], 4);
        bad[4] += s < 0.5 || s > 2.25;
        for (int j = 0; j < n; j++) /* larger input, smaller or equal code (the zero code is the largest) */
            for (int k = 0; k < n && n <= 200; k++) bad[5] += x[j] < x[k] && gotc[j] < gotc[k];
    }
}

static void test_softmax_edges(void) {
    int bad[6] = {0};
    static const double scales[] = {1.0 / 16384, 1.0 / 512, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0};
    for (int si = 0; si < 8; si++)
        for (int kind = 0; kind < K_KINDS; kind++)
            for (int t = 0; t < 12; t++) {
                int n = t == 0 ? 1 : t == 1 ? 3137 : t == 2 ? 197 : (int)irange(2, 197);
                fill_row(xin, n, kind);
                softmax_invariants(xin, n, scales[si], bad);
            }
    for (int i = 0; i < 6; i++) printf("    invariant %d: %d violations\n", i, bad[i]);
    for (int i = 0; i < 6; i++) CHECK(bad[i] == 0);

    /* row length 1 and a lone spike: all of the probability on one element */
    vitq_i_ibert_softmax_params pb;
    vitq_i_shiftmax_params ps;
    vitq_i_lis_params pl;
    CHECK_STATUS(vitq_i_ibert_softmax_prepare(0.1, 8, &pb, NULL), VITQ_OK);
    CHECK_STATUS(vitq_i_shiftmax_prepare(0.1, 8, 197, &ps, NULL), VITQ_OK);
    CHECK_STATUS(vitq_i_lis_prepare(0.1, 4, &pl), VITQ_OK);
    xin[0] = -32768;
    CHECK_STATUS(vitq_i_ibert_softmax(&pb, xin, 1, 1, got), VITQ_OK);
    CHECK(got[0] == 255);
    CHECK_STATUS(vitq_i_shiftmax(&ps, xin, 1, 1, got), VITQ_OK);
    CHECK(got[0] == 127);
    CHECK_STATUS(vitq_i_lis_softmax(&pl, xin, 1, 1, gotc), VITQ_OK);
    CHECK(gotc[0] == 0);
    for (int j = 0; j < 197; j++) xin[j] = j == 50 ? 127 : -128;
    vitq_i_ibert_softmax(&pb, xin, 1, 197, got);
    CHECK(got[50] == 255 && got[0] == 0);
    vitq_i_lis_softmax(&pl, xin, 1, 197, gotc);
    CHECK(gotc[50] == 0 && gotc[0] == 15);
    /* all equal, 197 tokens: 1/197 each (2^-7.6: code 8 is 2^-8 rounded in the linear domain of v) */
    for (int j = 0; j < 197; j++) xin[j] = 42;
    vitq_i_ibert_softmax(&pb, xin, 1, 197, got);
    CHECK(got[0] == 1 && got[196] == 1); /* floor(256 / 197) */
    vitq_i_lis_softmax(&pl, xin, 1, 197, gotc);
    CHECK(gotc[0] == 8 && gotc[196] == 8); /* v = 197 = 1.54 2^7: rounds up to q = 8 */
}

/* ---- softmax: approximation error on DeiT-like attention rows ---- */

/* Largest |P - softmax| of one kernel over `rows` 197-token rows of N(0, sigma^2) scores (DeiT-Tiny's
 * pre-softmax spread is 2 to 4) quantized with step S (clamped to +-qmax codes), against the exact
 * softmax of the same dequantized scores. kind 0: I-BERT, 1: Shiftmax, 2: LIS (4 bits), at out_bits M. */
static double softmax_error(int kind, double sigma, double S, double qmax, int M, double *agree) {
    static double xs[197], pr[197];
    vitq_i_ibert_softmax_params pb;
    vitq_i_shiftmax_params ps;
    vitq_i_lis_params pl;
    double out_scale = 1, worst = 0;
    vitq_status st = kind == 0   ? vitq_i_ibert_softmax_prepare(S, M, &pb, &out_scale)
                     : kind == 1 ? vitq_i_shiftmax_prepare(S, M, 197, &ps, &out_scale)
                                 : vitq_i_lis_prepare(S, 4, &pl);
    CHECK_STATUS(st, VITQ_OK);
    int same = 0;
    for (int row = 0; row < 40; row++) {
        for (int j = 0; j < 197; j++) {
            xin[j] = (int16_t)clampi((int64_t)nearbyint(gauss() * sigma / S), (int64_t)-qmax - 1, (int64_t)qmax);
            xs[j] = xin[j] * S;
        }
        vitq_i_softmax_ref(xs, 197, pr);
        if (kind == 0) vitq_i_ibert_softmax(&pb, xin, 1, 197, got);
        if (kind == 1) vitq_i_shiftmax(&ps, xin, 1, 197, got);
        if (kind == 2) vitq_i_lis_softmax(&pl, xin, 1, 197, gotc);
        for (int j = 0; j < 197; j++) {
            double v = kind == 2 ? vitq_i_lis_value(gotc[j], 4) : got[j] * out_scale;
            worst = fmax(worst, fabs(v - pr[j]));
            if (kind == 2) { /* FQ-ViT's float formula on the exact probability: v = round(1/p), log rounding */
                double u = nearbyint(1 / pr[j]);
                int k = (int)floor(log2(u));
                int q = k + (u - ldexp(1, k) >= ldexp(1, k - 1));
                same += (q >= 15 ? 15 : q) == gotc[j];
            }
        }
    }
    if (agree) *agree = same / (40.0 * 197);
    return worst;
}

static void test_softmax_error(void) {
    /* Scores quantized to int16 (S = 5 sigma / 32767: I-BERT's setting, whose input is the int32
     * product requantized here to 16 bits), to 12 bits and to int8 (S = 5 sigma / 127: the 8-bit
     * quantizer FQ-ViT puts after Q.K^T). The i-exp's x0_int = floor(-ln 2 / S) and Shiftmax's
     * x0 = floor(-1 / S) round the step of the range reduction, so coarse scales add an error
     * growing with |x| (at S = 0.157, 5 sigma for sigma 4: 13 % per halving for I-BERT, 10 % for
     * Shiftmax); LIS accepts S >= 2^-9 only, so int16 scores must be requantized for it. */
    double w[8] = {0}, agree_min = 1, agree12_min = 1, agree;
    static const double sigmas[] = {2, 3, 4};
    for (int si = 0; si < 3; si++) {
        double sg = sigmas[si];
        w[0] = fmax(w[0], softmax_error(0, sg, 5 * sg / 32767, 32767, 16, NULL));
        w[1] = fmax(w[1], softmax_error(0, sg, 5 * sg / 32767, 32767, 8, NULL));
        w[2] = fmax(w[2], softmax_error(0, sg, 5 * sg / 127, 127, 8, NULL));
        w[3] = fmax(w[3], softmax_error(1, sg, 5 * sg / 2047, 2047, 16, NULL));
        w[4] = fmax(w[4], softmax_error(1, sg, 5 * sg / 127, 127, 8, NULL));
        w[5] = fmax(w[5], softmax_error(1, sg, 5 * sg / 127, 127, 16, NULL));
        w[6] = fmax(w[6], softmax_error(2, sg, 5 * sg / 127, 127, 0, &agree));
        agree_min = fmin(agree_min, agree);
        w[7] = fmax(w[7], softmax_error(2, sg, 5 * sg / 2047, 2047, 0, &agree));
        agree12_min = fmin(agree12_min, agree);
    }
    printf("    max |P - softmax| over sigma 2..4, 197 tokens: I-BERT int16 %.1e (M 16) %.1e (M 8), int8 %.1e (M 8); "
           "Shiftmax 12-bit %.1e (M 16), int8 %.1e (M 8) %.1e (M 16); LIS int8 %.3f, 12-bit %.3f, codes as FQ-ViT's "
           "float formula on the exact softmax: %.1f %% (int8), %.1f %% (12-bit)\n",
           w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], 100 * agree_min, 100 * agree12_min);
    /* Bounds from this measurement with margin (the papers state no per-probability bound). */
    CHECK(w[0] < 1.5e-3); /* the polynomial alone */
    CHECK(w[1] < 6e-3);   /* + the 2^-8 output step */
    CHECK(w[2] < 0.15);
    CHECK(w[3] < 0.05);
    CHECK(w[4] < 0.15);
    CHECK(w[5] < 0.15);
    CHECK(w[6] < 0.35);   /* the 4-bit log2 grid itself: 0.7 shares the code of 1 */
    CHECK(w[7] < 0.35);
    CHECK(agree_min > 0.5);   /* the coarse range reduction moves small probabilities across code boundaries */
    CHECK(agree12_min > 0.95);
}

/* ---- GELU ---- */

static void test_gelu_exact(void) {
    int mismatches = 0, rows = 0;
    for (int it = 0; it < 2500; it++) {
        int n = random_n(), r = n > 200 ? 1 : 3;
        for (int i = 0; i < r; i++) fill_row(xin + i * n, n, it % K_KINDS);
        vitq_i_ibert_gelu_params pg;
        if (it % 5 == 4) {
            do {
                pg.b_int = (int32_t)-irange(1, 40989);
                pg.c_int = (int32_t)-irange(1, 2147483648LL);
                pg.shift = (int32_t)irange(0, 40);
                pg.one = (int32_t)-irange(1, 65535);
            } while (vitq_i_ibert_gelu_check(&pg) != VITQ_OK);
        } else {
            CHECK_STATUS(vitq_i_ibert_gelu_prepare(log_uniform(1.0 / 16384, 0.5), &pg, NULL), VITQ_OK);
        }
        CHECK_STATUS(vitq_i_ibert_gelu(&pg, xin, r, n, got), VITQ_OK);
        for (int i = 0; i < r * n; i++) mismatches += got[i] != ref_ibert_gelu1(&pg, xin[i]);
        vitq_i_shiftgelu_params ps;
        if (it % 5 == 4) ps = (vitq_i_shiftgelu_params){(int32_t)-irange(1, 255), (int32_t)irange(2, 16)};
        else CHECK_STATUS(vitq_i_shiftgelu_prepare(log_uniform(1.0 / 200, 64), (int32_t)irange(2, 16), &ps, NULL), VITQ_OK);
        CHECK_STATUS(vitq_i_shiftgelu(&ps, xin, r, n, got), VITQ_OK);
        for (int i = 0; i < r; i++) ref_shiftgelu(&ps, xin + i * n, n, want + i * n);
        mismatches += !same32(got, want, (int64_t)r * n);
        rows += r;
    }
    printf("    GELU: %d rows through both kernels, %d mismatches\n", rows, mismatches);
    CHECK(mismatches == 0);
}

static void test_gelu_error(void) {
    /* x in [-6, 6]: I-BERT on int16 (S = 6/32767) and int8 (S = 6/127) inputs, ShiftGELU on int8 (I-ViT's
     * setting); the row maximum of ShiftGELU is the largest of a 768-channel token. */
    enum { NX = 768 };
    vitq_i_ibert_gelu_params pg16, pg8;
    vitq_i_shiftgelu_params ps8, ps16;
    double s_g16, s_g8, s_s8, s_s16, S16 = 6.0 / 32767, S8 = 6.0 / 127;
    CHECK_STATUS(vitq_i_ibert_gelu_prepare(S16, &pg16, &s_g16), VITQ_OK);
    CHECK_STATUS(vitq_i_ibert_gelu_prepare(S8, &pg8, &s_g8), VITQ_OK);
    CHECK_STATUS(vitq_i_shiftgelu_prepare(S8, 8, &ps8, &s_s8), VITQ_OK);
    CHECK_STATUS(vitq_i_shiftgelu_prepare(S8, 16, &ps16, &s_s16), VITQ_OK);
    CHECK(pg16.shift == 14); /* I-BERT's own shift where its erf keeps >= 8 bits */
    double worst[4] = {0}, l2[4] = {0};
    int nonmono = 0;
    double far[4] = {0}; /* largest |GELU| for x <= -4, per kernel */
    for (int t = 0; t < 20; t++) {
        static int16_t x16[NX], x8[NX];
        for (int j = 0; j < NX; j++) {
            double x = -6 + 12 * urand();
            x16[j] = sat16(x / S16);
            x8[j] = (int16_t)clampi((int64_t)nearbyint(x / S8), -128, 127);
        }
        vitq_i_ibert_gelu(&pg16, x16, 1, NX, got);
        for (int j = 0; j < NX; j++) {
            double e = fabs(got[j] * s_g16 - vitq_i_gelu_ref(x16[j] * S16));
            worst[0] = fmax(worst[0], e), l2[0] += e * e;
        }
        const vitq_i_shiftgelu_params *pss[2] = {&ps8, &ps16};
        const double sc[2] = {s_s8, s_s16};
        vitq_i_ibert_gelu(&pg8, x8, 1, NX, got);
        for (int j = 0; j < NX; j++) {
            double e = fabs(got[j] * s_g8 - vitq_i_gelu_ref(x8[j] * S8));
            worst[1] = fmax(worst[1], e), l2[1] += e * e;
        }
        for (int k = 0; k < 2; k++) {
            vitq_i_shiftgelu(pss[k], x8, 1, NX, got);
            for (int j = 0; j < NX; j++) {
                double e = fabs(got[j] * sc[k] - vitq_i_gelu_ref(x8[j] * S8));
                worst[2 + k] = fmax(worst[2 + k], e), l2[2 + k] += e * e;
            }
        }
    }
    /* Monotone for x >= 0, ~0 for x <= -4: every int16 code with a stride of 4 (4 rows, elementwise),
     * every int8 code in one row. ShiftGELU is monotone only up to small drops at large x: its factor
     * floor((2^31 - 1) / (e1 + e2)) has few bits (~20 at |x0| = 13) and steps down as e1 grows, so
     * x sig can fall by a step of sig; the largest relative drop is measured and bounded. */
    for (int j = 0; j < 16384; j++) xin[j] = (int16_t)(-32768 + 4 * j);
    CHECK_STATUS(vitq_i_ibert_gelu(&pg16, xin, 4, 4096, got), VITQ_OK);
    for (int j = 1; j < 16384; j++) {
        nonmono += xin[j - 1] >= 0 && got[j] < got[j - 1];
        if (xin[j] * S16 <= -4) far[0] = fmax(far[0], fabs(got[j] * s_g16));
    }
    for (int q = -128; q <= 127; q++) xin[q + 128] = (int16_t)q;
    double drop = 0;
    for (int k = 0; k < 3; k++) {
        double sc = k == 0 ? s_g8 : k == 1 ? s_s8 : s_s16;
        if (k == 0) CHECK_STATUS(vitq_i_ibert_gelu(&pg8, xin, 1, 256, got), VITQ_OK);
        else CHECK_STATUS(vitq_i_shiftgelu(k == 1 ? &ps8 : &ps16, xin, 1, 256, got), VITQ_OK);
        for (int j = 1; j < 256; j++) {
            if (k == 0) nonmono += xin[j - 1] >= 0 && got[j] < got[j - 1];
            else if (xin[j - 1] >= 0 && got[j] < got[j - 1]) drop = fmax(drop, 1 - (double)got[j] / got[j - 1]);
            if (xin[j] * S8 <= -4) far[1 + k] = fmax(far[1 + k], fabs(got[j] * sc));
        }
    }
    printf("    ShiftGELU's largest drop on x >= 0: %.2f %%; largest |out| for x <= -4: I-BERT %.1e (int16) %.1e "
           "(int8), ShiftGELU %.1e (M 8) %.1e (M 16)\n",
           100 * drop, far[0], far[1], far[2], far[3]);
    CHECK(drop < 0.025);
    int n = 20 * NX;
    printf("    GELU max |err| (rms): I-BERT int16 %.2e (%.1e), int8 %.2e (%.1e); ShiftGELU int8 M 8 %.2e (%.1e), "
           "M 16 %.2e (%.1e)\n",
           worst[0], sqrt(l2[0] / n), worst[1], sqrt(l2[1] / n), worst[2], sqrt(l2[2] / n), worst[3], sqrt(l2[3] / n));
    /* Bounds from this measurement with margin. */
    CHECK(worst[0] < 0.025); /* the erf polynomial's own error (I-BERT fits it on [-1.769, 1.769]) */
    CHECK(worst[1] < 0.025);
    /* sigmoid(1.702 x) against Phi(x) (0.02 at most), then I-ViT's integer sigmoid: x0 = floor(-1/(1.702 S))
     * = -13 makes each exp halving 4.5 % off, and floor((2^31 - 1) / sum) keeps ~4 bits */
    CHECK(worst[2] < 0.3);
    CHECK(worst[3] < 0.3);
    CHECK(nonmono == 0);
    CHECK(far[0] < 1e-3 && far[1] < 1e-3);
    CHECK(far[2] < 0.05 && far[3] < 0.05); /* x sigmoid(1.702 x) is -0.004 at x = -4, and sig's step 2^-7 */
}

/* ---- LayerNorm ---- */

static float gam[MAXN], bet[MAXN];
static vitq_i_ln_channel lnch[MAXN];
static vitq_i_ptf_channel ptfch[MAXN];
static int32_t alph[MAXN];

static void random_affine(int C, double out_scale) {
    for (int c = 0; c < C; c++) {
        double u = urand();
        gam[c] = (float)(u < 0.05 ? 0 : u < 0.1 ? 1e-6 * gauss() : u < 0.2 ? -(0.2 + urand()) : 0.2 + 2 * urand());
        bet[c] = (float)(clampi((int64_t)(gauss() * 30), -32000, 32000) * out_scale * urand());
        alph[c] = (int32_t)irange(0, 3);
    }
}

static void test_layernorm_exact(void) {
    int mismatches = 0, rows = 0;
    static const int Cs[] = {1, 2, 3, 16, 64, 192, 384, 768};
    for (int it = 0; it < 1200; it++) {
        int C = it % 97 == 0 ? MAXN : Cs[irange(0, 7)], r = C > 768 ? 1 : 2;
        double out_scale = log_uniform(1e-3, 1);
        random_affine(C, out_scale);
        vitq_i_ln_affine a = {C, gam, bet, out_scale, {(int32_t)irange(-10, 10), -128, 127}};
        if (it % 4 == 0) a.out.min = -32768, a.out.max = 32767;
        for (int i = 0; i < r; i++) fill_row(xin + i * C, C, it % K_KINDS);
        vitq_i_int_layernorm_params pl;
        CHECK_STATUS(vitq_i_int_layernorm_prepare(it % 2 ? VITQ_I_LN_IVIT : VITQ_I_LN_IBERT, &a, lnch, &pl), VITQ_OK);
        if (it % 5 == 4) /* channels anywhere the check accepts */
            for (int c = 0; c < C; c++) {
                lnch[c].mult = (int32_t)irange(-2147483648LL, 2147483647LL);
                lnch[c].shift = (int32_t)irange(0, 62);
                lnch[c].bias = (int64_t)((urand() * 2 - 1) * 2305843009213693952.0);
            }
        CHECK_STATUS(vitq_i_int_layernorm(&pl, xin, r, got), VITQ_OK);
        for (int i = 0; i < r; i++) ref_int_layernorm(&pl, xin + i * C, want + i * C);
        mismatches += !same32(got, want, (int64_t)r * C);

        vitq_i_ptf_layernorm_params pp;
        CHECK_STATUS(vitq_i_ptf_layernorm_prepare(&a, alph, ptfch, &pp), VITQ_OK);
        if (it % 5 == 4)
            for (int c = 0; c < C; c++) {
                ptfch[c].sign = (int32_t)irange(-1, 1);
                ptfch[c].g = ptfch[c].sign ? (int32_t)irange(1 << 30, 2147483647) : 0;
                ptfch[c].ge = (int32_t)irange(0, 62);
                ptfch[c].bq = irange(-2147483648LL, 2147483648LL);
            }
        CHECK_STATUS(vitq_i_ptf_layernorm(&pp, xin, r, got), VITQ_OK);
        for (int i = 0; i < r; i++) ref_ptf_layernorm(&pp, xin + i * C, want + i * C);
        mismatches += !same32(got, want, (int64_t)r * C);
        rows += r;
    }
    printf("    LayerNorm: %d tokens through the three kernels, %d mismatching calls\n", rows, mismatches);
    CHECK(mismatches == 0);
}

static void test_layernorm_error(void) {
    /* DeiT-Tiny-like residual tokens: 192 channels N(mu_c, sd_c) with 3 outlier channels 20x larger;
     * gamma in [0.5, 1.5], beta N(0, 0.1); the int8 output grid covers the float outputs. I-BERT and
     * I-ViT take int16 codes, FQ-ViT uint8 codes with its power-of-two factors. */
    enum { C = 192, T = 64 };
    static float xf[T * C];
    static double mu[C], sd[C], xd[C], yref[C];
    static int16_t x16[T * C], x8[T * C];
    for (int c = 0; c < C; c++) {
        mu[c] = 0.3 * gauss(), sd[c] = 0.5 + urand();
        if (c == 7 || c == 100 || c == 150) mu[c] *= 20, sd[c] *= 20;
        gam[c] = (float)(0.5 + urand()), bet[c] = (float)(0.1 * gauss());
    }
    double amax = 0, lo = 0, hi = 0, ymax = 0;
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) {
            xf[t * C + c] = (float)(mu[c] + sd[c] * gauss());
            amax = fmax(amax, fabs(xf[t * C + c]));
            lo = fmin(lo, xf[t * C + c]), hi = fmax(hi, xf[t * C + c]);
        }
    for (int t = 0; t < T; t++) {
        for (int c = 0; c < C; c++) xd[c] = xf[t * C + c];
        vitq_i_layernorm_ref(xd, C, gam, bet, 1e-6, yref);
        for (int c = 0; c < C; c++) ymax = fmax(ymax, fabs(yref[c]));
    }
    double S16 = amax / 32767, s_min, out_scale = ymax / 127;
    int32_t zp;
    CHECK_STATUS(vitq_i_ptf_alpha(xf, T, C, lo, hi, 8, &s_min, &zp, alph), VITQ_OK);
    int widened = 0;
    for (int c = 0; c < C; c++) widened += alph[c] > 0;
    CHECK(alph[7] == 3 && alph[100] == 3 && widened < 40); /* the outliers get the widest scale */
    vitq_i_ln_affine a = {C, gam, bet, out_scale, {0, -128, 127}};
    vitq_i_int_layernorm_params pib, piv;
    vitq_i_ptf_layernorm_params pp;
    static vitq_i_ln_channel ch2[C];
    CHECK_STATUS(vitq_i_int_layernorm_prepare(VITQ_I_LN_IBERT, &a, lnch, &pib), VITQ_OK);
    CHECK_STATUS(vitq_i_int_layernorm_prepare(VITQ_I_LN_IVIT, &a, ch2, &piv), VITQ_OK);
    CHECK_STATUS(vitq_i_ptf_layernorm_prepare(&a, alph, ptfch, &pp), VITQ_OK);
    double worst[3] = {0}, l2[3] = {0}, worst_in[2] = {0};
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) {
            x16[t * C + c] = sat16(xf[t * C + c] / S16);
            x8[t * C + c] = vitq_i_ptf_input(xf[t * C + c], s_min, zp, alph[c], 8);
        }
    for (int k = 0; k < 3; k++) {
        if (k == 0) vitq_i_int_layernorm(&pib, x16, T, got);
        if (k == 1) vitq_i_int_layernorm(&piv, x16, T, got);
        if (k == 2) vitq_i_ptf_layernorm(&pp, x8, T, got);
        for (int t = 0; t < T; t++) {
            /* against the LayerNorm of the kernel's own (quantized) input, in output steps */
            for (int c = 0; c < C; c++) xd[c] = k < 2 ? x16[t * C + c] * S16 : x8[t * C + c] * ldexp(s_min, alph[c]);
            vitq_i_layernorm_ref(xd, C, gam, bet, 1e-6, yref);
            for (int c = 0; c < C; c++) {
                double e = fabs(got[t * C + c] - yref[c] / out_scale);
                worst[k] = fmax(worst[k], e), l2[k] += e * e;
                if (k == 2) { /* and of the float input, which PTF's 8-bit codes stand for */
                    xd[c] = xf[t * C + c];
                }
            }
            if (k == 2) {
                vitq_i_layernorm_ref(xd, C, gam, bet, 1e-6, yref);
                for (int c = 0; c < C; c++) worst_in[1] = fmax(worst_in[1], fabs(got[t * C + c] - yref[c] / out_scale));
            }
        }
    }
    printf("    LayerNorm max |err| in int8 output steps (rms): I-BERT %.3f (%.3f), I-ViT %.3f (%.3f), FQ-ViT PTF "
           "%.3f (%.3f), PTF against the float input %.2f\n",
           worst[0], sqrt(l2[0] / (T * C)), worst[1], sqrt(l2[1] / (T * C)), worst[2], sqrt(l2[2] / (T * C)),
           worst_in[1]);
    CHECK(worst[0] <= 0.52); /* rounding to the output grid and nothing more */
    CHECK(worst[1] <= 0.52);
    CHECK(worst[2] <= 1.0); /* FQ-ViT's 8-bit M: 2^-8 relative on up to 127 steps */

    /* a constant token gives beta */
    for (int c = 0; c < C; c++) x16[c] = 1234, x8[c] = (int16_t)(-616 / (1 << alph[c])); /* x8 2^alpha = -616 */
    vitq_i_int_layernorm(&pib, x16, 1, got);
    vitq_i_ptf_layernorm(&pp, x8, 1, want);
    int off = 0;
    for (int c = 0; c < C; c++) off += fabs(got[c] - bet[c] / out_scale) > 1 || fabs(want[c] - bet[c] / out_scale) > 0.51;
    vitq_i_int_layernorm(&piv, x16, 1, got);
    for (int c = 0; c < C; c++) off += fabs(got[c] - bet[c] / out_scale) > 1;
    CHECK(off == 0);
}

/* ---- refusals ---- */

static void test_refusals(void) {
    vitq_i_ibert_softmax_params pb;
    vitq_i_shiftmax_params ps;
    vitq_i_lis_params pl;
    vitq_i_ibert_gelu_params pg;
    vitq_i_shiftgelu_params psg;
    double s;
    CHECK_STATUS(vitq_i_ibert_softmax_prepare(0.6, 8, &pb, &s), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_i_ibert_softmax_prepare(NAN, 8, &pb, &s), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_i_ibert_softmax_prepare(0.1, 17, &pb, &s), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_i_lis_prepare(1.0 / 1024, 4, &pl), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_i_shiftgelu_prepare(0.001, 8, &psg, &s), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_i_ibert_gelu_prepare(1e-5, &pg, &s), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_i_ibert_softmax_prepare(0.1, 8, &pb, &s), VITQ_OK);
    CHECK(s == 1.0 / 256);
    CHECK_STATUS(vitq_i_ibert_softmax(&pb, xin, 1, 0, got), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_i_ibert_softmax(&pb, xin, 1, MAXN + 1, got), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_i_ibert_softmax(&pb, NULL, 1, 4, got), VITQ_ERR_INVALID_ARGUMENT);
    pb.b_int = -pb.x0_int - 1; /* the polynomial could exceed c_int */
    CHECK_STATUS(vitq_i_ibert_softmax(&pb, xin, 1, 4, got), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_i_ibert_softmax_prepare(0.1, 8, &pb, &s), VITQ_OK);
    pb.exp_shift = 0; /* the maximum's exp would not fit 16 bits */
    CHECK_STATUS(vitq_i_ibert_softmax(&pb, xin, 1, 4, got), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_i_shiftmax_prepare(0.001, 8, 197, &ps, &s), VITQ_ERR_OUT_OF_RANGE); /* its sum would clamp */
    ps = (vitq_i_shiftmax_params){0, 8};
    CHECK_STATUS(vitq_i_shiftmax(&ps, xin, 1, 4, got), VITQ_ERR_OUT_OF_RANGE);
    psg = (vitq_i_shiftgelu_params){-256, 8};
    CHECK_STATUS(vitq_i_shiftgelu(&psg, xin, 1, 4, got), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_i_ibert_gelu_prepare(0.01, &pg, &s), VITQ_OK);
    pg.one = -65535; /* |y| + |one| beyond the int32 output bound */
    CHECK_STATUS(vitq_i_ibert_gelu(&pg, xin, 1, 4, got), VITQ_ERR_OUT_OF_RANGE);
    vitq_i_ln_affine a = {4, gam, bet, 0.1, {0, -128, 127}};
    for (int c = 0; c < 4; c++) gam[c] = 1, bet[c] = 0;
    bet[2] = 4000; /* 40000 output steps */
    vitq_i_int_layernorm_params pl2;
    CHECK_STATUS(vitq_i_int_layernorm_prepare(VITQ_I_LN_IBERT, &a, lnch, &pl2), VITQ_ERR_OUT_OF_RANGE);
    bet[2] = 0, gam[1] = NAN;
    CHECK_STATUS(vitq_i_int_layernorm_prepare(VITQ_I_LN_IBERT, &a, lnch, &pl2), VITQ_ERR_NON_FINITE);
    gam[1] = 1;
    CHECK_STATUS(vitq_i_int_layernorm_prepare(VITQ_I_LN_IBERT, &a, lnch, &pl2), VITQ_OK);
    lnch[3].shift = 63;
    CHECK_STATUS(vitq_i_int_layernorm(&pl2, xin, 1, got), VITQ_ERR_OUT_OF_RANGE);
    vitq_i_ptf_layernorm_params pp;
    for (int c = 0; c < 4; c++) alph[c] = 0;
    CHECK_STATUS(vitq_i_ptf_layernorm_prepare(&a, alph, ptfch, &pp), VITQ_OK);
    ptfch[0].alpha = 4;
    CHECK_STATUS(vitq_i_ptf_layernorm(&pp, xin, 1, got), VITQ_ERR_OUT_OF_RANGE);
    CHECK(strstr(vitq_last_error(), "channel 0") != NULL);
}

/* ---- vector paths (kernels/intnl_dispatch.h): the generic path's bits on every path the CPU has ---- */

enum { VK_IBERT, VK_SHIFTMAX, VK_IGELU, VK_SHIFTGELU, VK_ILN, VK_PV, VK_COUNT };
static const char *const vk_names[VK_COUNT] = {"I-BERT softmax", "Shiftmax", "i-GELU", "ShiftGELU",
                                               "integer LayerNorm", "LIS P.V"};

typedef struct vparams {
    vitq_i_ibert_softmax_params ib;
    vitq_i_shiftmax_params sm;
    vitq_i_ibert_gelu_params ig;
    vitq_i_shiftgelu_params sg;
    vitq_i_int_layernorm_params ln; /* channels set per row length; lnch holds VEC_MAXC channels */
    int32_t pv_bits, pv_frac, pv_dim;
} vparams;

#define VEC_MAXC 300
static int8_t vvals[MAXN * 64];

/* Kernel k on `rows` rows of n (P.V: codes from x's low bits, n tokens of dimension pv_dim). */
static vitq_status vrun(int k, vparams *p, const int16_t *x, int rows, int n, int32_t *out) {
    switch (k) {
    case VK_IBERT: return vitq_i_ibert_softmax(&p->ib, x, rows, n, out);
    case VK_SHIFTMAX: return vitq_i_shiftmax(&p->sm, x, rows, n, out);
    case VK_IGELU: return vitq_i_ibert_gelu(&p->ig, x, rows, n, out);
    case VK_SHIFTGELU: return vitq_i_shiftgelu(&p->sg, x, rows, n, out);
    case VK_ILN: p->ln.channels = n; return vitq_i_int_layernorm(&p->ln, x, rows, out);
    default: {
        int32_t zc = (1 << p->pv_bits) - 1;
        for (int i = 0; i < rows * n; i++) gotc[i] = (uint8_t)((uint16_t)x[i] % (uint16_t)(zc + 1));
        return vitq_i_lis_pv(gotc, rows, n, p->pv_bits, vvals, p->pv_dim, p->pv_frac, out);
    }
    }
}

/* A parameter set for every kernel: prepared from a scale in [2^-12, 0.5] (`prepared`), else anywhere
 * its check accepts, with the bounds of the ranges (set `edge`) drawn often. */
static void vparams_make(vparams *p, int prepared, int edge) {
    double s = log_uniform(1.0 / 4096, 0.5);
    if (!prepared || vitq_i_ibert_softmax_prepare(s, (int32_t)irange(1, 16), &p->ib, NULL)) {
        do {
            random_ibert_params(&p->ib);
            if (edge) {
                p->ib.x0_int = urand() < 0.5 ? -11356 : -1;
                p->ib.b_int = urand() < 0.5 ? 44357 : -p->ib.x0_int;
                p->ib.c_int = urand() < 0.5 ? (1 << 30) - 1 : (int32_t)irange(1, 1 << 16);
                p->ib.exp_mult = urand() < 0.5 ? 2147483647 : 1 << 30;
                p->ib.exp_shift = (int32_t)(urand() < 0.3 ? 62 : urand() < 0.5 ? 0 : irange(0, 62));
                p->ib.out_bits = urand() < 0.5 ? 16 : 1;
            }
        } while (vitq_i_ibert_softmax_check(&p->ib) != VITQ_OK);
    }
    if (!prepared || vitq_i_shiftmax_prepare(s, (int32_t)irange(2, 16), VEC_MAXC, &p->sm, NULL))
        p->sm = (vitq_i_shiftmax_params){edge ? (urand() < 0.5 ? -16384 : -1) : (int32_t)-irange(1, 16384),
                                         edge ? (urand() < 0.5 ? 16 : 2) : (int32_t)irange(2, 16)};
    if (!prepared || vitq_i_ibert_gelu_prepare(s, &p->ig, NULL)) {
        do {
            p->ig.b_int = edge && urand() < 0.5 ? (urand() < 0.5 ? -40989 : -1) : (int32_t)-irange(1, 40989);
            p->ig.c_int = edge && urand() < 0.5 ? (urand() < 0.5 ? INT32_MIN : -1) : (int32_t)-irange(1, 2147483648LL);
            p->ig.shift = edge && urand() < 0.5 ? (urand() < 0.5 ? 40 : (int32_t)irange(30, 34)) : (int32_t)irange(0, 40);
            p->ig.one = edge && urand() < 0.5 ? -1 : (int32_t)-irange(1, 65535);
        } while (vitq_i_ibert_gelu_check(&p->ig) != VITQ_OK);
    }
    /* ShiftGELU prepares from S >= 1 / (255 1.702) only */
    if (!prepared || vitq_i_shiftgelu_prepare(s * 8, (int32_t)irange(2, 16), &p->sg, NULL))
        p->sg = (vitq_i_shiftgelu_params){edge ? (urand() < 0.5 ? -255 : -1) : (int32_t)-irange(1, 255),
                                          edge ? (urand() < 0.5 ? 16 : 2) : (int32_t)irange(2, 16)};
    random_affine(VEC_MAXC, 0.05);
    vitq_i_ln_affine a = {VEC_MAXC, gam, bet, 0.05, {0, -128, 127}};
    if (vitq_i_int_layernorm_prepare(urand() < 0.5 ? VITQ_I_LN_IVIT : VITQ_I_LN_IBERT, &a, lnch, &p->ln) || !prepared)
        for (int c = 0; c < VEC_MAXC; c++) { /* channels anywhere the check accepts */
            lnch[c].mult = (int32_t)irange(-2147483648LL, 2147483647LL);
            lnch[c].shift = (int32_t)irange(0, 62);
            lnch[c].bias = (int64_t)((urand() * 2 - 1) * 2305843009213693952.0);
        }
    p->ln.ch = lnch;
    p->ln.variant = urand() < 0.5 ? VITQ_I_LN_IVIT : VITQ_I_LN_IBERT;
    p->ln.out = (vitq_i_ln_out){(int32_t)irange(-10, 10), -32768, 32767};
    p->pv_bits = edge ? (urand() < 0.5 ? 8 : 2) : (int32_t)irange(2, 8);
    p->pv_frac = edge ? (urand() < 0.5 ? 12 : 0) : (int32_t)irange(0, 12);
    p->pv_dim = (int32_t)irange(1, 64);
}

/* Edge rows beyond fill_row's kinds: all at one extreme, one huge score over the floor, ramps. */
static void fill_edge_row(int16_t *x, int n, int kind) {
    for (int j = 0; j < n; j++) {
        switch (kind) {
        case 0: x[j] = -32768; break;
        case 1: x[j] = 32767; break;
        case 2: x[j] = j == n / 2 ? 32767 : -32768; break;
        case 3: x[j] = (int16_t)(j == n - 1 ? 32767 : 0); break;
        default: x[j] = (int16_t)(-32768 + (j * 65535) / (n > 1 ? n - 1 : 1)); break;
        }
    }
}

static int path_available(int isa) {
    vitq_i_isa_force(isa);
    int ok = (int)vitq_i_isa_active() == isa;
    vitq_i_isa_force(-1);
    return ok;
}

/* One comparison: kernel k on rows of n under the generic path and under `isa`. */
static void vcompare(int k, vparams *p, int isa, int rows, int n, int *bad, int *calls) {
    vitq_i_isa_force(VITQ_I_ISA_GENERIC);
    vitq_status s1 = vrun(k, p, xin, rows, n, want);
    vitq_i_isa_force(isa);
    vitq_status s2 = vrun(k, p, xin, rows, n, got);
    vitq_i_isa_force(-1);
    int64_t len = (int64_t)rows * (k == VK_PV ? p->pv_dim : n);
    calls[k]++;
    if (s1 != VITQ_OK || s2 != VITQ_OK || !same32(got, want, len)) {
        if (bad[k]++ == 0) {
            int64_t i = 0;
            while (i < len - 1 && got[i] == want[i]) i++;
            printf("    %s on %s: n %d, first difference at %lld: %d, generic %d (status %d %d)\n", vk_names[k],
                   vitq_i_isa_name((vitq_i_isa)isa), n, (long long)i, (int)got[i], (int)want[i], (int)s1, (int)s2);
        }
    }
}

static void test_vector_path(int isa) {
    if (!path_available(isa)) {
        SKIP("the %s path of the integer non-linear kernels: this CPU lacks %s", vitq_i_isa_name((vitq_i_isa)isa),
             isa == VITQ_I_ISA_AVX512 ? "AVX-512 (F, BW, DQ, VL)" : "AVX2 + FMA");
        return;
    }
    for (int i = 0; i < MAXN * 64; i++) vvals[i] = (int8_t)(i % 7 == 0 ? -128 : i % 7 == 1 ? 127 : irange(-128, 127));
    int bad[VK_COUNT] = {0}, calls[VK_COUNT] = {0};
    vparams p;
    for (int n = 1; n <= VEC_MAXC; n++) { /* every length, random rows, a new parameter set each time */
        vparams_make(&p, n % 3 != 0, n % 7 == 0);
        int rows = n < 40 ? 3 : 1;
        for (int k = 0; k < VK_COUNT; k++) {
            for (int r = 0; r < rows; r++) fill_row(xin + r * n, n, (n + k + r) % K_KINDS);
            vcompare(k, &p, isa, rows, n, bad, calls);
        }
    }
    static const int ns[] = {1, 7, 8, 9, 15, 16, 17, 192, 197, 300, 768, MAXN};
    for (int t = 0; t < 60; t++) { /* edge rows under edge and prepared parameters */
        vparams_make(&p, t % 2, t % 2 == 0);
        for (int ni = 0; ni < 12; ni++)
            for (int kind = 0; kind < 5; kind++) {
                int n = ns[ni];
                if (n > VEC_MAXC && t % 10) continue; /* long rows now and then: the LayerNorm is capped */
                fill_edge_row(xin, n, kind);
                for (int k = 0; k < VK_COUNT; k++)
                    if (k != VK_ILN || n <= VEC_MAXC) vcompare(k, &p, isa, 1, n, bad, calls);
            }
    }
    for (int k = 0; k < VK_COUNT; k++) {
        printf("    %s path, %s: %d calls, %d differing from generic\n", vitq_i_isa_name((vitq_i_isa)isa), vk_names[k],
               calls[k], bad[k]);
        CHECK(bad[k] == 0);
    }
}

static void test_vector_avx2(void) { test_vector_path(VITQ_I_ISA_AVX2); }
static void test_vector_avx512(void) { test_vector_path(VITQ_I_ISA_AVX512); }

/* The active path changes with vitq_i_isa_force: the generic path is the scalar code (no table entry). */
static void test_vector_dispatch(void) {
    vitq_i_isa_force(VITQ_I_ISA_GENERIC);
    const vitq_i_intnl_paths *g = vitq_i_intnl_active();
    CHECK(g->ibert_softmax == NULL && g->shiftmax == NULL && g->ibert_gelu == NULL && g->shiftgelu == NULL &&
          g->ln_sums == NULL && g->pv_token == NULL);
    vitq_i_isa_force(-1);
    const vitq_i_intnl_paths *best = vitq_i_intnl_active();
    printf("    integer non-linear kernels on this CPU: %s path\n", best->name);
    CHECK(vitq_i_isa_active() == VITQ_I_ISA_GENERIC || best->ibert_softmax != NULL);
}


/* ---- the LayerNorm output stage's vector path (intnl_dispatch.h ln_output) ---- */

/* Channel parameters anywhere the check accepts, the ends of each range drawn often: mult any int32,
 * shift in [0, 62], |bias| <= 2^61 with random low bits (a double alone would leave them 0). */
static void ln_edge_channel(vitq_i_ln_channel *ch) {
    static const int32_t mults[] = {INT32_MIN, INT32_MIN + 1, INT32_MAX, INT32_MAX - 1, -1, 0, 1};
    static const int32_t shifts[] = {0, 1, 2, 30, 31, 32, 33, 61, 62};
    ch->mult = urand() < 0.3 ? mults[irange(0, 6)] : (int32_t)irange(INT32_MIN, INT32_MAX);
    ch->shift = urand() < 0.4 ? shifts[irange(0, 8)] : (int32_t)irange(0, 62);
    double u = urand();
    if (u < 0.25) ch->bias = urand() < 0.5 ? p2(61) : -p2(61);
    else if (u < 0.35) ch->bias = irange(-2, 2);
    else {
        int64_t b = (int64_t)(urand() * p2(41)) * p2(20) + irange(0, p2(20) - 1); /* < 2^61 */
        b >>= irange(0, 60);                                                     /* all magnitudes */
        ch->bias = urand() < 0.5 ? -b : b;
    }
}

/* An output grid the check accepts: the ends of [-2^16, 2^16] often, min = max now and then. */
static vitq_i_ln_out ln_edge_grid(void) {
    vitq_i_ln_out g;
    double u = urand();
    g.zero = u < 0.2 ? 65536 : u < 0.4 ? -65536 : u < 0.6 ? 0 : (int32_t)irange(-65536, 65536);
    u = urand();
    if (u < 0.25) g.min = -65536, g.max = 65536;
    else if (u < 0.4) g.min = g.max = (int32_t)irange(-65536, 65536);
    else if (u < 0.6) g.min = -128, g.max = 127;
    else {
        g.min = (int32_t)irange(-65536, 65536);
        g.max = (int32_t)irange(g.min, 65536);
    }
    return g;
}

/* The entry itself against the formula, on (x, mu, factor) anywhere its precondition allows
 * (|x - mu| factor <= 2^31, mu in int16): factors of both roots' form (y reaching +-2^30), 2^31
 * (|x - mu| <= 1), 0, odd ones with negative odd x - mu (floor, not truncation, of the halving). */
static void test_ln_output_direct(void) {
    vitq_i_isa_force(VITQ_I_ISA_GENERIC);
    CHECK(vitq_i_intnl_active()->ln_output == NULL); /* the generic path is intnl.c's own loop */
    vitq_i_isa_force(-1);
    if (!path_available(VITQ_I_ISA_AVX2)) {
        SKIP("the avx2 path of the LayerNorm output stage: this CPU lacks AVX2 + FMA");
        return;
    }
    vitq_i_isa_force(VITQ_I_ISA_AVX2);
    void (*f)(const int16_t *, int64_t, int64_t, int64_t, const void *, const void *, int32_t *) =
        vitq_i_intnl_active()->ln_output;
    vitq_i_isa_force(-1);
    CHECK(f != NULL);
    if (!f) return;
    static const int ns[] = {1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 31, 33, 191, 192, 193, 197, 768, MAXN};
    int bad = 0, cases = 0, at_ends = 0;
    for (int t = 0; t < 1500; t++) {
        int n = t < 400 ? t % 40 + 1 : ns[t % 20];
        if (n > 256 && t % 7) n = 64 + t % 9; /* long rows now and then */
        int64_t mu = urand() < 0.2 ? (urand() < 0.5 ? -32768 : 32767) : irange(-32768, 32767), factor;
        int64_t kind = t % 6, sd = (int64_t)log_uniform(1, 4194304.0);
        if (kind == 0) factor = p2(31) / sd;
        else if (kind == 1) factor = (p2(31) - 1) / (sd < 64 ? 64 : sd);
        else if (kind == 2) factor = p2(31);
        else if (kind == 3) factor = 0;
        else factor = ((int64_t)log_uniform(1, 2147483648.0)) | (kind == 4); /* odd half the time */
        int64_t dmax = factor ? p2(31) / factor : 65535;
        int64_t lo = -dmax > -32768 - mu ? -dmax : -32768 - mu, hi = dmax < 32767 - mu ? dmax : 32767 - mu;
        for (int c = 0; c < n; c++) {
            double u = urand();
            int64_t d = u < 0.2 ? lo : u < 0.4 ? hi : u < 0.5 ? (lo < -1 ? -1 : lo) : irange(lo, hi);
            xin[c] = (int16_t)(mu + d);
            ln_edge_channel(&lnch[c]);
        }
        vitq_i_ln_out g = ln_edge_grid();
        for (int c = 0; c < n; c++) got[c] = INT32_MIN; /* every output must be written */
        f(xin, n, mu, factor, lnch, &g, got);
        for (int c = 0; c < n; c++) {
            int64_t y = fdiv((xin[c] - mu) * factor, 2);
            at_ends += y == p2(30) || y == -p2(30);
            int64_t v = rhu(y * lnch[c].mult + lnch[c].bias, lnch[c].shift);
            want[c] = (int32_t)clampi(v + g.zero, g.min, g.max);
        }
        cases++;
        if (!same32(got, want, n) && bad++ == 0) {
            int c = 0;
            while (c < n - 1 && got[c] == want[c]) c++;
            printf("    n %d, channel %d: avx2 %d, formula %d (x %d, mu %lld, factor %lld, mult %d, shift %d, bias %lld)\n",
                   n, c, (int)got[c], (int)want[c], (int)xin[c], (long long)mu, (long long)factor, (int)lnch[c].mult,
                   (int)lnch[c].shift, (long long)lnch[c].bias);
        }
    }
    printf("    avx2 LayerNorm output stage: %d rows, %d differing from the formula, %d outputs with |y| = 2^30\n",
           cases, bad, at_ends);
    CHECK(bad == 0);
    CHECK(at_ends > 100);
}

/* Rows whose statistics give the extreme factors: a lone +-1 over zeros (var 1: I-BERT's factor 2^31,
 * y = +-2^30), two values at the int16 ends (|y| at its bound with mu in the middle), constant rows
 * (factor 0 or I-ViT's root >= 2^6), and random ones. */
static void fill_ln_extreme(int16_t *x, int n, int kind) {
    for (int c = 0; c < n; c++) x[c] = 0;
    int at = (int)irange(0, n - 1);
    switch (kind) {
    case 0: x[at] = 1; break;
    case 1: x[at] = -1; break;
    case 2:
        for (int c = 0; c < n; c++) x[c] = (int16_t)(c % 2 ? 32767 : -32768);
        break;
    case 3:
        for (int c = 0; c < n; c++) x[c] = (int16_t)(urand() < 0.5 ? -32768 : 32767);
        break;
    case 4: {
        int16_t v = (int16_t)irange(-32768, 32767);
        for (int c = 0; c < n; c++) x[c] = v;
        break;
    }
    default: fill_row(x, n, kind % K_KINDS); break;
    }
}

/* The kernel under every vector path the CPU has against the generic path and the reference, with
 * channel parameters and grids at the ends of the accepted ranges. */
static void test_ln_output_paths(void) {
    if (!path_available(VITQ_I_ISA_AVX2)) {
        SKIP("the avx2 path of the integer LayerNorm: this CPU lacks AVX2 + FMA");
        return;
    }
    int bad = 0, calls = 0;
    static const int ns[] = {1, 3, 6, 8, 11, 16, 23, 64, 191, 192, 197, 200, 384, 768, MAXN};
    for (int t = 0; t < 600; t++) {
        int n = ns[t % 15], rows = n <= 64 ? 4 : n <= 768 ? 2 : 1;
        if (n == MAXN && t % 5) n = 255;
        vitq_i_int_layernorm_params p = {t % 2 ? VITQ_I_LN_IVIT : VITQ_I_LN_IBERT, n, lnch, ln_edge_grid()};
        for (int c = 0; c < n; c++) ln_edge_channel(&lnch[c]);
        for (int r = 0; r < rows; r++) fill_ln_extreme(xin + r * n, n, (t / 2 + r) % 12);
        for (int r = 0; r < rows; r++) ref_int_layernorm(&p, xin + r * n, want + r * n);
        for (int isa = VITQ_I_ISA_GENERIC; isa <= VITQ_I_ISA_AVX512; isa++) {
            if (isa != VITQ_I_ISA_GENERIC && !path_available(isa)) continue;
            vitq_i_isa_force(isa);
            vitq_status st = vitq_i_int_layernorm(&p, xin, rows, got);
            vitq_i_isa_force(-1);
            calls++;
            if ((st != VITQ_OK || !same32(got, want, (int64_t)rows * n)) && bad++ == 0)
                printf("    %s path, n %d, variant %d: status %d or outputs differ from the reference\n",
                       vitq_i_isa_name((vitq_i_isa)isa), n, (int)p.variant, (int)st);
        }
    }
    printf("    integer LayerNorm, edge channels and rows: %d calls over the paths, %d differing\n", calls, bad);
    CHECK(bad == 0);
}

int main(void) {
    RUN(test_isqrt);
    RUN(test_ibert_softmax_exact);
    RUN(test_shiftmax_exact);
    RUN(test_lis_exact);
    RUN(test_lis_pv_exact);
    RUN(test_softmax_edges);
    RUN(test_softmax_error);
    RUN(test_gelu_exact);
    RUN(test_gelu_error);
    RUN(test_layernorm_exact);
    RUN(test_layernorm_error);
    RUN(test_refusals);
    RUN(test_vector_dispatch);
    RUN(test_vector_avx2);
    RUN(test_vector_avx512);
    RUN(test_ln_output_direct);
    RUN(test_ln_output_paths);
    HARNESS_EXIT();
}

