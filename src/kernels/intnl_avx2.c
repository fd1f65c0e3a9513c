/* The AVX2 path of the integer non-linear kernels (intnl_dispatch.h): the scalar reference of intnl.c
 * step for step on 8 int32 lanes, integer instructions only (tests/build/check_float_free.sh
 * disassembles this file and refuses any floating-point arithmetic or conversion).
 *
 * The steps that need care to stay exact:
 * - floor(q / x0), x0 < 0, of the exps: z lies in [0, nexp] (q is clamped at nexp x0), so it is found
 *   bit by bit, without a division: rem = -q, and for s = 16, 8, 4, 2, 1 (as far as nexp needs),
 *   rem >= s |x0| takes s |x0| off rem and adds s to z; then r = q - x0 z = -rem.
 * - Arithmetic shifts: vpsrad is floor(a / 2^s) for either sign, which is floor_shr.
 * - 64-bit products (I-BERT's p exp_mult < 2^61): vpmuludq on the even and the odd lanes (both
 *   factors are non-negative), shifted right by a per-lane count with vpsrlvq, which gives 0 for
 *   counts >= 64, as round_shr does for shifts >= 63 on these magnitudes.
 * - ShiftGELU's per-element floor((2^31 - 1) / sum): the scalar unsigned 32-bit division per lane (AVX2
 *   has no integer division; see shiftgelu_out8).
 * - Products the scalar code forms in int64 but proves below 2^31 are vpmulld here.
 * - The LayerNorm output stage's 64-bit floor shift by a per-channel count (AVX2 has no vpsraq):
 *   floor(a / 2^s) = ~(~a >> s) for a < 0 with a logical shift, so a's sign mask m gives
 *   ((a ^ m) >>> s) ^ m for either sign (see ln_out4).
 * Rows whose length is not a multiple of 8 end with one chunk padded in a small buffer (with lanes
 * kept out of the row sums), so every element goes through the same vector code. */
#include "kernels/intnl_dispatch.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#include "kernels/intnl.h"
#include "kernels/intnl_int.h"

#define TARGET __attribute__((target("avx2")))
#define INLINE static inline __attribute__((always_inline)) TARGET

/* ---- shared pieces ---- */

/* The row maximum of int16 values (n >= 1). */
INLINE int32_t row_max16(const int16_t *x, int64_t n) {
    int32_t m = x[0];
    int64_t j = 0;
    if (n >= 16) {
        __m256i v = _mm256_loadu_si256((const __m256i *)x);
        for (j = 16; j + 16 <= n; j += 16) v = _mm256_max_epi16(v, _mm256_loadu_si256((const __m256i *)(x + j)));
        __m128i h = _mm_max_epi16(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        h = _mm_max_epi16(h, _mm_shuffle_epi32(h, 0x4e));
        h = _mm_max_epi16(h, _mm_shuffle_epi32(h, 0xb1));
        h = _mm_max_epi16(h, _mm_srli_epi32(h, 16)); /* lane 0: the larger of the last two */
        m = (int16_t)_mm_cvtsi128_si32(h);
    }
    for (; j < n; j++)
        if (x[j] > m) m = x[j];
    return m;
}

/* 8 int16 as int32 lanes. */
INLINE __m256i load8(const int16_t *x) { return _mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)x)); }

/* Lanes below `count` set (count in [0, 8]). */
INLINE __m256i first_lanes(int64_t count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Sum of 8 int32 lanes that fit with their sum in int32. */
INLINE int64_t hsum32(__m256i v) {
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
    return _mm_cvtsi128_si32(h);
}

/* Sum of 4 int64 lanes. */
INLINE int64_t hsum64(__m256i v) {
    __m128i h = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    return _mm_cvtsi128_si64(_mm_add_epi64(h, _mm_unpackhi_epi64(h, h)));
}

/* Adds the 8 non-negative int32 lanes of v (as unsigned 32-bit values) to 4 int64 lanes. */
INLINE __m256i add_u32_to_64(__m256i acc, __m256i v) {
    acc = _mm256_add_epi64(acc, _mm256_and_si256(v, _mm256_set1_epi64x(0xffffffff)));
    return _mm256_add_epi64(acc, _mm256_srli_epi64(v, 32));
}

/* The range reduction of the exps: for d <= 0, q = max(d, nexp x0), z = floor(q / x0) in [0, nexp],
 * r = q - x0 z in (x0, 0]. steps[i] = 2^(nsteps-1-i) |x0|, with 2^nsteps > nexp. */
typedef struct exp_reduce {
    __m256i lo;       /* nexp x0 */
    __m256i steps[5]; /* 16 |x0|, 8 |x0|, 4 |x0|, 2 |x0|, |x0| (the last nsteps used) */
    int nsteps;
} exp_reduce;

TARGET static void exp_reduce_init(exp_reduce *k, int32_t x0, int nexp, int nsteps) {
    k->lo = _mm256_set1_epi32(nexp * x0);
    k->nsteps = nsteps;
    for (int i = 0; i < nsteps; i++) k->steps[i] = _mm256_set1_epi32(-x0 << (nsteps - 1 - i));
}

/* r into *r, z returned. q' = -q lies in [0, nexp |x0|] and 2^nsteps > nexp, so the bits of z from
 * 2^(nsteps-1) down take all of floor(q' / |x0|) and leave rem = q' mod |x0|. */
INLINE __m256i exp_reduce_run(const exp_reduce *k, __m256i d, __m256i *r) {
    __m256i rem = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_max_epi32(d, k->lo)), z = _mm256_setzero_si256();
    for (int i = 0; i < k->nsteps; i++) {
        __m256i below = _mm256_cmpgt_epi32(k->steps[i], rem); /* rem < step: this bit of z is 0 */
        rem = _mm256_sub_epi32(rem, _mm256_andnot_si256(below, k->steps[i]));
        z = _mm256_add_epi32(z, _mm256_andnot_si256(below, _mm256_set1_epi32(1 << (k->nsteps - 1 - i))));
    }
    *r = _mm256_sub_epi32(_mm256_setzero_si256(), rem);
    return z;
}

/* ShiftExp of d' <= 0 (intnl_int.h): base = r - 2 x0 in [2, 2 |x0|], floor(base 2^(nexp - z) / 2),
 * formed as (base << (nexp - z)) >> 1 with logical shifts: base 2^nexp < 2^32 for the kernels' x0. */
INLINE __m256i shift_exp8(const exp_reduce *k, __m256i dp, __m256i two_x0abs, int nexp) {
    __m256i r, z = exp_reduce_run(k, dp, &r);
    __m256i base = _mm256_add_epi32(r, two_x0abs);
    return _mm256_srli_epi32(_mm256_sllv_epi32(base, _mm256_sub_epi32(_mm256_set1_epi32(nexp), z)), 1);
}

/* d + floor(d / 2) - floor(d / 16) (times_log2e), |d| <= 65535. */
INLINE __m256i times_log2e8(__m256i d) {
    return _mm256_sub_epi32(_mm256_add_epi32(d, _mm256_srai_epi32(d, 1)), _mm256_srai_epi32(d, 4));
}

/* ---- I-BERT softmax ---- */

typedef struct ibert_k {
    exp_reduce red;
    __m256i m, b, c, mult, shift;
} ibert_k;

/* e = round_shr(p exp_mult, exp_shift + z) of 8 scores (ibert_softmax_row in intnl.c). */
INLINE __m256i ibert_e8(const ibert_k *k, __m256i xv) {
    __m256i r, z = exp_reduce_run(&k->red, _mm256_sub_epi32(xv, k->m), &r);
    /* p = max(r (r + b) + c, 0) < 2^30: r (r + b) in [-2^29, 0] */
    __m256i p = _mm256_max_epi32(_mm256_add_epi32(_mm256_mullo_epi32(r, _mm256_add_epi32(r, k->b)), k->c),
                                 _mm256_setzero_si256());
    __m256i s = _mm256_add_epi32(z, k->shift); /* in [0, 92] */
    const __m256i lo32 = _mm256_set1_epi64x(0xffffffff), one = _mm256_set1_epi64x(1);
    __m256i s_even = _mm256_and_si256(s, lo32), s_odd = _mm256_srli_epi64(s, 32);
    /* p exp_mult < 2^61, plus 2^(s-1) (0 for s = 0 and s > 64, whose shift counts wrap or exceed 63),
     * below 2^64 unsigned; a count >= 64 gives 0 */
    __m256i pe = _mm256_mul_epu32(p, k->mult), po = _mm256_mul_epu32(_mm256_srli_epi64(p, 32), k->mult);
    pe = _mm256_add_epi64(pe, _mm256_sllv_epi64(one, _mm256_sub_epi64(s_even, one)));
    po = _mm256_add_epi64(po, _mm256_sllv_epi64(one, _mm256_sub_epi64(s_odd, one)));
    pe = _mm256_srlv_epi64(pe, s_even);
    po = _mm256_srlv_epi64(po, s_odd);
    return _mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xaa); /* e <= 32767 */
}

/* out = min(floor(e factor / 2^(32 - out_bits)), top), factor < 2^32: e factor < 2^47. */
INLINE __m256i ibert_scale8(__m256i e, __m256i factor, __m128i cnt, __m256i top) {
    __m256i ve = _mm256_srl_epi64(_mm256_mul_epu32(e, factor), cnt);
    __m256i vo = _mm256_srl_epi64(_mm256_mul_epu32(_mm256_srli_epi64(e, 32), factor), cnt);
    return _mm256_min_epi32(_mm256_blend_epi32(ve, _mm256_slli_epi64(vo, 32), 0xaa), top);
}

TARGET static void ibert_softmax_avx2(const void *pv, const int16_t *x, int64_t n, void *out) {
    const vitq_i_ibert_softmax_params *p = pv;
    int32_t *o = out;
    ibert_k k;
    int32_t m = row_max16(x, n);
    exp_reduce_init(&k.red, p->x0_int, 30, 5);
    k.m = _mm256_set1_epi32(m);
    k.b = _mm256_set1_epi32(p->b_int);
    k.c = _mm256_set1_epi32(p->c_int);
    k.mult = _mm256_set1_epi32(p->exp_mult);
    k.shift = _mm256_set1_epi32(p->exp_shift);
    __m256i acc = _mm256_setzero_si256(); /* the row sum < 2^27 */
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256i e = ibert_e8(&k, load8(x + j));
        _mm256_storeu_si256((__m256i *)(o + j), e);
        acc = _mm256_add_epi32(acc, e);
    }
    int64_t rest = n - j;
    int16_t xb[8];
    int32_t ob[8];
    if (rest) {
        for (int i = 0; i < 8; i++) xb[i] = (int16_t)(i < rest ? x[j + i] : m);
        __m256i e = ibert_e8(&k, load8(xb));
        _mm256_storeu_si256((__m256i *)ob, e);
        memcpy(o + j, ob, (size_t)rest * sizeof *o);
        acc = _mm256_add_epi32(acc, _mm256_and_si256(e, first_lanes(rest)));
    }
    int64_t sum = hsum32(acc);                 /* >= 1 (check) */
    int64_t factor = ((int64_t)1 << 32) / sum; /* <= 2^32 */
    const __m256i top = _mm256_set1_epi32((1 << p->out_bits) - 1);
    const __m128i cnt = _mm_cvtsi32_si128(32 - p->out_bits);
    /* factor = 2^32 (sum = 1): floor(e 2^32 / 2^(32 - out_bits)) = e 2^out_bits < 2^31 */
    const int whole = factor >> 32 != 0;
    const __m256i f = _mm256_set1_epi64x(factor & 0xffffffff);
    const __m128i up = _mm_cvtsi32_si128(p->out_bits);
    for (j = 0; j + 8 <= n; j += 8) {
        __m256i e = _mm256_loadu_si256((const __m256i *)(o + j));
        e = whole ? _mm256_min_epi32(_mm256_sll_epi32(e, up), top) : ibert_scale8(e, f, cnt, top);
        _mm256_storeu_si256((__m256i *)(o + j), e);
    }
    if (rest) {
        memcpy(ob, o + j, (size_t)rest * sizeof *o);
        __m256i e = _mm256_loadu_si256((const __m256i *)ob);
        e = whole ? _mm256_min_epi32(_mm256_sll_epi32(e, up), top) : ibert_scale8(e, f, cnt, top);
        _mm256_storeu_si256((__m256i *)ob, e);
        memcpy(o + j, ob, (size_t)rest * sizeof *o);
    }
}

/* ---- I-BERT softmax on 16 lanes (the AVX-512 table's entry) ----
 * The steps of ibert_e8 / ibert_scale8 on zmm registers: the exp reduction's bit steps as a compare into
 * a mask and two masked operations, the row's last n % 16 scores by masked loads and stores (the unused
 * lanes hold the row maximum, as the AVX2 code's padded copy, and stay out of the sum). */

#define T512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#define INLINE512 static inline __attribute__((always_inline)) T512

typedef struct ibert_k16 {
    __m512i lo, steps[5], m, b, c, mult, shift;
} ibert_k16;

/* e of 16 scores (ibert_e8's steps; nexp 30, five bit steps). */
INLINE512 __m512i ibert_e16(const ibert_k16 *k, __m512i xv) {
    __m512i rem = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_max_epi32(_mm512_sub_epi32(xv, k->m), k->lo));
    __m512i z = _mm512_setzero_si512();
    for (int i = 0; i < 5; i++) {
        __mmask16 take = _mm512_cmpge_epi32_mask(rem, k->steps[i]); /* this bit of z is 1 */
        rem = _mm512_mask_sub_epi32(rem, take, rem, k->steps[i]);
        z = _mm512_mask_add_epi32(z, take, z, _mm512_set1_epi32(1 << (4 - i)));
    }
    __m512i r = _mm512_sub_epi32(_mm512_setzero_si512(), rem);
    __m512i p = _mm512_max_epi32(_mm512_add_epi32(_mm512_mullo_epi32(r, _mm512_add_epi32(r, k->b)), k->c),
                                 _mm512_setzero_si512());
    __m512i s = _mm512_add_epi32(z, k->shift);
    const __m512i lo32 = _mm512_set1_epi64(0xffffffff), one = _mm512_set1_epi64(1);
    __m512i s_even = _mm512_and_si512(s, lo32), s_odd = _mm512_srli_epi64(s, 32);
    __m512i pe = _mm512_mul_epu32(p, k->mult), po = _mm512_mul_epu32(_mm512_srli_epi64(p, 32), k->mult);
    pe = _mm512_add_epi64(pe, _mm512_sllv_epi64(one, _mm512_sub_epi64(s_even, one)));
    po = _mm512_add_epi64(po, _mm512_sllv_epi64(one, _mm512_sub_epi64(s_odd, one)));
    pe = _mm512_srlv_epi64(pe, s_even);
    po = _mm512_srlv_epi64(po, s_odd);
    return _mm512_mask_blend_epi32((__mmask16)0xAAAA, pe, _mm512_slli_epi64(po, 32));
}

INLINE512 __m512i ibert_scale16(__m512i e, __m512i factor, __m128i cnt, __m512i top) {
    __m512i ve = _mm512_srl_epi64(_mm512_mul_epu32(e, factor), cnt);
    __m512i vo = _mm512_srl_epi64(_mm512_mul_epu32(_mm512_srli_epi64(e, 32), factor), cnt);
    return _mm512_min_epi32(_mm512_mask_blend_epi32((__mmask16)0xAAAA, ve, _mm512_slli_epi64(vo, 32)), top);
}

/* 16 (the lanes of `k`) int16 scores as int32 lanes, the others `fill`. */
INLINE512 __m512i load16(const int16_t *x, __mmask16 k, __m512i fill) {
    return _mm512_mask_mov_epi32(fill, k, _mm512_cvtepi16_epi32(_mm256_maskz_loadu_epi16(k, x)));
}

T512 static void ibert_softmax_avx512(const void *pv, const int16_t *x, int64_t n, void *out) {
    const vitq_i_ibert_softmax_params *p = pv;
    int32_t *o = out;
    ibert_k16 k;
    int32_t m = row_max16(x, n);
    for (int i = 0; i < 5; i++) k.steps[i] = _mm512_set1_epi32(-p->x0_int << (4 - i));
    k.lo = _mm512_set1_epi32(30 * p->x0_int);
    k.m = _mm512_set1_epi32(m);
    k.b = _mm512_set1_epi32(p->b_int);
    k.c = _mm512_set1_epi32(p->c_int);
    k.mult = _mm512_set1_epi32(p->exp_mult);
    k.shift = _mm512_set1_epi32(p->exp_shift);
    __m512i acc = _mm512_setzero_si512(); /* the row sum < 2^27 */
    for (int64_t j = 0; j < n; j += 16) {
        __mmask16 lanes = (__mmask16)(n - j >= 16 ? 0xFFFF : (1u << (n - j)) - 1);
        __m512i e = ibert_e16(&k, load16(x + j, lanes, k.m));
        _mm512_mask_storeu_epi32(o + j, lanes, e);
        acc = _mm512_mask_add_epi32(acc, lanes, acc, e);
    }
    int64_t sum = _mm512_reduce_add_epi32(acc);  /* >= 1 (check) */
    int64_t factor = ((int64_t)1 << 32) / sum;   /* <= 2^32 */
    const __m512i top = _mm512_set1_epi32((1 << p->out_bits) - 1);
    const __m128i cnt = _mm_cvtsi32_si128(32 - p->out_bits), up = _mm_cvtsi32_si128(p->out_bits);
    /* factor = 2^32 (sum = 1): floor(e 2^32 / 2^(32 - out_bits)) = e 2^out_bits < 2^31 */
    const int whole = factor >> 32 != 0;
    const __m512i f = _mm512_set1_epi64(factor & 0xffffffff);
    for (int64_t j = 0; j < n; j += 16) {
        __mmask16 lanes = (__mmask16)(n - j >= 16 ? 0xFFFF : (1u << (n - j)) - 1);
        __m512i e = _mm512_maskz_loadu_epi32(lanes, o + j);
        e = whole ? _mm512_min_epi32(_mm512_sll_epi32(e, up), top) : ibert_scale16(e, f, cnt, top);
        _mm512_mask_storeu_epi32(o + j, lanes, e);
    }
}

/* ---- the LayerNorm output stage on 16 lanes (the AVX-512 table's entry) ----
 * ln_out4's steps with AVX-512's native 64-bit lanes: vpsravq is floor(a / 2^s) for either sign (no
 * sign-mask emulation), vpmaxsq / vpminsq clamp, and eight channels per int64 register instead of four.
 * The channel records {mult, shift, bias} of 8 channels are two 64-byte loads, split by vpermt2q into
 * the (mult, shift) pairs and the biases. The row's last n % 16 channels: masked loads (x = mu, an
 * all-zero channel record: valid, never stored) and a masked store. */

typedef struct ln_k16 {
    __m512i mu, half, odd; /* int32 lanes */
    __m512i zero, lo, hi;  /* int64 lanes */
} ln_k16;

/* The outputs of 8 channels: y (int32) of the 8 channels, c0123 / c4567 their records (2 x 64 bytes). */
INLINE512 __m256i ln_out8_512(const ln_k16 *k, __m256i y, __m512i c0123, __m512i c4567) {
    const __m512i ev = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), od = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
    const __m512i one = _mm512_set1_epi64(1);
    __m512i ms = _mm512_permutex2var_epi64(c0123, ev, c4567), bias = _mm512_permutex2var_epi64(c0123, od, c4567);
    __m512i s = _mm512_srli_epi64(ms, 32);
    /* vpmuldq: the signed product of y (sign-extended into the low dword) by mult (the low dword of ms) */
    __m512i a = _mm512_add_epi64(_mm512_mul_epi32(_mm512_cvtepi32_epi64(y), ms), bias);
    a = _mm512_add_epi64(a, _mm512_sllv_epi64(one, _mm512_sub_epi64(s, one))); /* s = 0: count 2^64 - 1, adds 0 */
    __m512i v = _mm512_add_epi64(_mm512_srav_epi64(a, s), k->zero);
    v = _mm512_min_epi64(_mm512_max_epi64(v, k->lo), k->hi);
    return _mm512_cvtepi64_epi32(v); /* within [min, max], int32 */
}

T512 static void ln_output_avx512(const int16_t *x, int64_t n, int64_t mu, int64_t factor, const void *chv,
                                  const void *gridv, int32_t *o) {
    const vitq_i_ln_channel *ch = chv;
    const vitq_i_ln_out *g = gridv;
    ln_k16 k;
    k.mu = _mm512_set1_epi32((int32_t)mu);
    k.half = _mm512_set1_epi32((int32_t)(factor >> 1)); /* <= 2^30 */
    k.odd = _mm512_set1_epi32(factor & 1 ? -1 : 0);
    k.zero = _mm512_set1_epi64(g->zero);
    k.lo = _mm512_set1_epi64(g->min);
    k.hi = _mm512_set1_epi64(g->max);
    const int64_t *recs = (const int64_t *)(const void *)ch; /* two int64 words per channel */
    for (int64_t j = 0; j < n; j += 16) {
        int64_t left = n - j;
        __mmask16 lanes = (__mmask16)(left >= 16 ? 0xFFFF : (1u << left) - 1);
        /* y = floor_shr((x - mu) factor, 1) as ln_y8 */
        __m512i d = _mm512_sub_epi32(load16(x + j, lanes, k.mu), k.mu);
        __m512i y = _mm512_add_epi32(_mm512_mullo_epi32(d, k.half), _mm512_and_si512(_mm512_srai_epi32(d, 1), k.odd));
        __m512i r[4];
        for (int q = 0; q < 4; q++) { /* the records of channels j + 4q .. j + 4q + 3 */
            int64_t have = left - 4 * q;
            __mmask8 m = (__mmask8)(have >= 4 ? 0xFF : have <= 0 ? 0 : (1u << (2 * have)) - 1);
            r[q] = _mm512_maskz_loadu_epi64(m, recs + 2 * (j + 4 * q));
        }
        __m256i lo8 = ln_out8_512(&k, _mm512_castsi512_si256(y), r[0], r[1]);
        __m256i hi8 = ln_out8_512(&k, _mm512_extracti64x4_epi64(y, 1), r[2], r[3]);
        _mm512_mask_storeu_epi32(o + j, lanes, _mm512_inserti64x4(_mm512_castsi256_si512(lo8), hi8, 1));
    }
}

/* ---- I-ViT Shiftmax ---- */

TARGET static void shiftmax_avx2(const void *pv, const int16_t *x, int64_t n, void *out) {
    const vitq_i_shiftmax_params *p = pv;
    int32_t *o = out;
    exp_reduce red;
    int32_t m = row_max16(x, n);
    exp_reduce_init(&red, p->x0, 15, 4);
    const __m256i mv = _mm256_set1_epi32(m), two = _mm256_set1_epi32(-2 * p->x0);
    __m256i acc = _mm256_setzero_si256(); /* 4 int64 lanes: the sum reaches 2^41 */
    int64_t j = 0;
    int16_t xb[8];
    int32_t ob[8];
    for (; j + 8 <= n; j += 8) {
        /* e <= |x0| 2^15 <= 2^29 */
        __m256i e = shift_exp8(&red, times_log2e8(_mm256_sub_epi32(load8(x + j), mv)), two, 15);
        _mm256_storeu_si256((__m256i *)(o + j), e);
        acc = add_u32_to_64(acc, e);
    }
    int64_t rest = n - j;
    if (rest) {
        for (int i = 0; i < 8; i++) xb[i] = (int16_t)(i < rest ? x[j + i] : m);
        __m256i e = shift_exp8(&red, times_log2e8(_mm256_sub_epi32(load8(xb), mv)), two, 15);
        e = _mm256_and_si256(e, first_lanes(rest));
        _mm256_storeu_si256((__m256i *)ob, e);
        memcpy(o + j, ob, (size_t)rest * sizeof *o);
        acc = add_u32_to_64(acc, e);
    }
    int64_t sum = hsum64(acc);
    if (sum > VITQ_I_I31) sum = VITQ_I_I31; /* I-ViT's clamp, as the scalar row */
    /* e factor <= 2^31 - 1 (intnl.c): the 32-bit product is exact */
    const __m256i f = _mm256_set1_epi32((int32_t)(VITQ_I_I31 / sum));
    const __m128i cnt = _mm_cvtsi32_si128(32 - p->out_bits);
    for (j = 0; j + 8 <= n; j += 8) {
        __m256i e = _mm256_loadu_si256((const __m256i *)(o + j));
        _mm256_storeu_si256((__m256i *)(o + j), _mm256_srl_epi32(_mm256_mullo_epi32(e, f), cnt));
    }
    if (rest) {
        memcpy(ob, o + j, (size_t)rest * sizeof *o);
        __m256i e = _mm256_loadu_si256((const __m256i *)ob);
        _mm256_storeu_si256((__m256i *)ob, _mm256_srl_epi32(_mm256_mullo_epi32(e, f), cnt));
        memcpy(o + j, ob, (size_t)rest * sizeof *o);
    }
}

/* ---- I-BERT i-GELU ---- */

typedef struct gelu_k {
    __m256i negb, b, c, rmask, one;
    __m128i shift;
} gelu_k;

/* ibert_gelu_row of 8 inputs. y0 = t^2 + c lies in [-2^31, 2^31 - 2] (t^2 < 2^31, c >= -2^31): int32.
 * floor_shr(y0, s) is vpsrad (counts above 31 fill with the sign, floor for |y0| <= 2^31 too); for
 * x < 0 the scalar code shifts -y0, and floor(-y0 / 2^s) = -ceil(y0 / 2^s) = -(floor_shr(y0, s) +
 * [low s bits of y0 not all 0]), which never forms -y0 (2^31 at y0 = -2^31). The check bounds the
 * shifted value and `one` so that x (y + one) < 2^31: vpmulld. x = 0 gives 0 whatever y. */
INLINE __m256i ibert_gelu8(const gelu_k *k, __m256i q) {
    __m256i t = _mm256_add_epi32(_mm256_min_epi32(_mm256_abs_epi32(q), k->negb), k->b);
    __m256i y0 = _mm256_add_epi32(_mm256_mullo_epi32(t, t), k->c);
    __m256i fl = _mm256_sra_epi32(y0, k->shift);
    __m256i exact = _mm256_cmpeq_epi32(_mm256_and_si256(y0, k->rmask), _mm256_setzero_si256());
    __m256i negceil = _mm256_sub_epi32(_mm256_xor_si256(exact, _mm256_set1_epi32(-1)), fl); /* -fl - [inexact] */
    __m256i y = _mm256_blendv_epi8(fl, negceil, _mm256_cmpgt_epi32(_mm256_setzero_si256(), q));
    return _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_mullo_epi32(q, _mm256_add_epi32(y, k->one)));
}

TARGET static void ibert_gelu_avx2(const void *pv, const int16_t *x, int64_t n, void *out) {
    const vitq_i_ibert_gelu_params *p = pv;
    int32_t *o = out;
    gelu_k k;
    k.negb = _mm256_set1_epi32(-p->b_int);
    k.b = _mm256_set1_epi32(p->b_int);
    k.c = _mm256_set1_epi32(p->c_int);
    k.rmask = _mm256_set1_epi32(p->shift >= 32 ? -1 : (int32_t)((1u << p->shift) - 1));
    k.one = _mm256_set1_epi32(p->one);
    k.shift = _mm_cvtsi32_si128(p->shift);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_si256((__m256i *)(o + j), ibert_gelu8(&k, load8(x + j)));
    if (j < n) {
        int16_t xb[8] = {0};
        int32_t ob[8];
        memcpy(xb, x + j, (size_t)(n - j) * sizeof *x);
        _mm256_storeu_si256((__m256i *)ob, ibert_gelu8(&k, load8(xb)));
        memcpy(o + j, ob, (size_t)(n - j) * sizeof *o);
    }
}

/* ---- I-ViT ShiftGELU ---- */

typedef struct shiftgelu_k {
    exp_reduce red;
    __m256i m, two, e2;
    __m128i cnt;
} shiftgelu_k;

/* e1 and the clamped sum of 8 inputs (shiftgelu_row). e1 <= 255 2^23 < 2^31, e2 <= 2^31 - 1: the
 * sum is below 2^32 as an unsigned value, clamped at 2^31 - 1 with an unsigned minimum. */
INLINE __m256i shiftgelu_sum8(const shiftgelu_k *k, __m256i xv, __m256i *e1) {
    *e1 = shift_exp8(&k->red, times_log2e8(_mm256_sub_epi32(xv, k->m)), k->two, 23);
    return _mm256_min_epu32(_mm256_add_epi32(*e1, k->e2), _mm256_set1_epi32(2147483647));
}

/* out = x floor(e1 factor / 2^(32 - out_bits)), factor = floor((2^31 - 1) / sum) per element. The
 * divisions are the CPU's unsigned 32-bit ones, lane by lane (the quotient of the scalar int64 division:
 * both operands are positive and below 2^31): AVX2 has no integer division, and a restoring division in
 * the vector lanes (one quotient bit per step, ~20 steps for these sums) measured 2.6 times slower than
 * this on Zen 4 (bench/bench_intnl.c). e1 factor <= 2^31 - 1, sig < 2^15, |x| <= 2^15: vpmulld. */
INLINE __m256i shiftgelu_out8(const shiftgelu_k *k, __m256i xv, __m256i e1, __m256i sum) {
    uint32_t sb[8];
    _mm256_storeu_si256((__m256i *)sb, sum);
    for (int i = 0; i < 8; i++) sb[i] = 2147483647u / sb[i]; /* sum >= e1 >= 1 */
    __m256i sig = _mm256_srl_epi32(_mm256_mullo_epi32(e1, _mm256_loadu_si256((const __m256i *)sb)), k->cnt);
    return _mm256_mullo_epi32(xv, sig);
}

TARGET static void shiftgelu_avx2(const void *pv, const int16_t *x, int64_t n, void *out) {
    const vitq_i_shiftgelu_params *p = pv;
    int32_t *o = out;
    shiftgelu_k k;
    int32_t m = row_max16(x, n);
    exp_reduce_init(&k.red, p->x0, 23, 5);
    k.m = _mm256_set1_epi32(m);
    k.two = _mm256_set1_epi32(-2 * p->x0);
    /* e2 = ShiftExp(-m) with the scalar code itself: -m > 0 takes the saturating branch */
    k.e2 = _mm256_set1_epi32((int32_t)vitq_i_shift_exp(vitq_i_times_log2e(-(int64_t)m), p->x0, 23));
    k.cnt = _mm_cvtsi32_si128(32 - p->out_bits);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256i xv = load8(x + j), e1, sum = shiftgelu_sum8(&k, xv, &e1);
        _mm256_storeu_si256((__m256i *)(o + j), shiftgelu_out8(&k, xv, e1, sum));
    }
    if (j < n) {
        int16_t xb[8];
        int32_t ob[8];
        for (int i = 0; i < 8; i++) xb[i] = j + i < n ? x[j + i] : (int16_t)m; /* padding: a valid input */
        __m256i xv = load8(xb), e1, sum = shiftgelu_sum8(&k, xv, &e1);
        _mm256_storeu_si256((__m256i *)ob, shiftgelu_out8(&k, xv, e1, sum));
        memcpy(o + j, ob, (size_t)(n - j) * sizeof *o);
    }
}

/* ---- LayerNorm statistics ---- */

/* sum x and sum x^2 of n <= 4096 int16: vpmaddwd adds pairs; x0^2 + x1^2 <= 2^31 fits as an unsigned
 * 32-bit lane and goes into int64 lanes; the pair sums of x stay below 2^16 4096 / 16 per lane. */
TARGET static void ln_sums_avx2(const int16_t *x, int64_t n, int64_t *s1, int64_t *s2) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i a1 = _mm256_setzero_si256(), a2 = _mm256_setzero_si256();
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(x + j));
        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(v, ones));
        a2 = add_u32_to_64(a2, _mm256_madd_epi16(v, v));
    }
    if (j < n) {
        int16_t xb[16] = {0}; /* zeros add nothing */
        memcpy(xb, x + j, (size_t)(n - j) * sizeof *x);
        __m256i v = _mm256_loadu_si256((const __m256i *)xb);
        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(v, ones));
        a2 = add_u32_to_64(a2, _mm256_madd_epi16(v, v));
    }
    *s1 = hsum32(a1);
    *s2 = hsum64(a2);
}

/* ---- LayerNorm output stage ---- */

/* ln_out8 reads two channels per 256-bit load: mult, shift, bias as the 4 dwords of each. */
_Static_assert(sizeof(vitq_i_ln_channel) == 16 && offsetof(vitq_i_ln_channel, mult) == 0 &&
                   offsetof(vitq_i_ln_channel, shift) == 4 && offsetof(vitq_i_ln_channel, bias) == 8,
               "vitq_i_ln_channel is {int32 mult, int32 shift, int64 bias}");

typedef struct ln_k {
    __m256i mu, half, odd; /* mu, floor(factor / 2), all ones when factor is odd (int32 lanes) */
    __m256i zero, lo, hi;  /* the output grid (int64 lanes) */
} ln_k;

/* y = floor_shr((x - mu) factor, 1) of 8 channels in int32 lanes. factor = 2h + b (b = factor & 1):
 * floor((2h d + b d) / 2) = h d + b floor(d / 2). |y| <= 2^30 and |floor(d / 2)| <= 2^15 give
 * |h d| < 2^31, so vpmulld's low 32 bits are the product, and vpsrad by 1 is floor(d / 2). */
INLINE __m256i ln_y8(const ln_k *k, __m256i xv) {
    __m256i d = _mm256_sub_epi32(xv, k->mu); /* |d| <= 65535 */
    return _mm256_add_epi32(_mm256_mullo_epi32(d, k->half), _mm256_and_si256(_mm256_srai_epi32(d, 1), k->odd));
}

/* The output of 4 channels: y in the low dword of each int64 lane, ms their (mult, shift) dword pairs,
 * bias their biases. a = y mult + bias: |.| <= 2^61 + 2^61 (vpmuldq: the signed 32 x 32 -> 64 product
 * of the low dwords); plus 2^(s-1) < 2^63, where the count s - 1 wraps to 2^64 - 1 at s = 0 and
 * vpsllvq gives 0 (round_shr(a, 0) = a). The floor shift: m = (a < 0 ? ~0 : 0), a ^ m >= 0 is a or
 * ~a = -a - 1, and ~((-a - 1) >>> s) = -floor((-a - 1) / 2^s) - 1 = floor(a / 2^s) (vitq_i_floor_shr),
 * for every s in [0, 62]. Then + zero (|v| <= 2^62) and the clamp in int64: v < lo ? lo : v > hi ? hi : v. */
INLINE __m256i ln_out4(const ln_k *k, __m256i y, __m256i ms, __m256i bias) {
    const __m256i one = _mm256_set1_epi64x(1);
    __m256i s = _mm256_srli_epi64(ms, 32);
    __m256i a = _mm256_add_epi64(_mm256_mul_epi32(y, ms), bias);
    a = _mm256_add_epi64(a, _mm256_sllv_epi64(one, _mm256_sub_epi64(s, one)));
    __m256i m = _mm256_cmpgt_epi64(_mm256_setzero_si256(), a);
    __m256i v = _mm256_add_epi64(_mm256_xor_si256(_mm256_srlv_epi64(_mm256_xor_si256(a, m), s), m), k->zero);
    v = _mm256_blendv_epi8(v, k->lo, _mm256_cmpgt_epi64(k->lo, v));
    return _mm256_blendv_epi8(v, k->hi, _mm256_cmpgt_epi64(v, k->hi));
}

/* 8 channels from ch. The unpacks of the loads (channels 0-1, 2-3) give the channels in the order
 * 0, 2, 1, 3 (per 128-bit half), so y goes into the int64 lanes in that order and the results come
 * back with one dword permute. */
INLINE __m256i ln_out8(const ln_k *k, __m256i xv, const vitq_i_ln_channel *ch) {
    __m256i y = ln_y8(k, xv);
    __m256i c01 = _mm256_loadu_si256((const __m256i *)ch), c23 = _mm256_loadu_si256((const __m256i *)(ch + 2));
    __m256i c45 = _mm256_loadu_si256((const __m256i *)(ch + 4)), c67 = _mm256_loadu_si256((const __m256i *)(ch + 6));
    __m256i ya = _mm256_permutevar8x32_epi32(y, _mm256_setr_epi32(0, 0, 2, 0, 1, 0, 3, 0));
    __m256i yb = _mm256_permutevar8x32_epi32(y, _mm256_setr_epi32(4, 0, 6, 0, 5, 0, 7, 0));
    __m256i ra = ln_out4(k, ya, _mm256_unpacklo_epi64(c01, c23), _mm256_unpackhi_epi64(c01, c23));
    __m256i rb = ln_out4(k, yb, _mm256_unpacklo_epi64(c45, c67), _mm256_unpackhi_epi64(c45, c67));
    /* the clamped values fit int32: their low dwords, dwords 0 4 2 6 1 5 3 7 of the blend */
    __m256i r = _mm256_blend_epi32(ra, _mm256_slli_epi64(rb, 32), 0xaa);
    return _mm256_permutevar8x32_epi32(r, _mm256_setr_epi32(0, 4, 2, 6, 1, 5, 3, 7));
}

TARGET static void ln_output_avx2(const int16_t *x, int64_t n, int64_t mu, int64_t factor, const void *chv,
                                  const void *gridv, int32_t *o) {
    const vitq_i_ln_channel *ch = chv;
    const vitq_i_ln_out *g = gridv;
    ln_k k;
    k.mu = _mm256_set1_epi32((int32_t)mu);
    k.half = _mm256_set1_epi32((int32_t)(factor >> 1)); /* <= 2^30 */
    k.odd = _mm256_set1_epi32(factor & 1 ? -1 : 0);
    k.zero = _mm256_set1_epi64x(g->zero);
    k.lo = _mm256_set1_epi64x(g->min);
    k.hi = _mm256_set1_epi64x(g->max);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_si256((__m256i *)(o + j), ln_out8(&k, load8(x + j), ch + j));
    if (j < n) {
        /* padding: x = mu (y = 0) and an all-zero channel, both valid */
        int64_t rest = n - j;
        int16_t xb[8];
        vitq_i_ln_channel cb[8];
        int32_t ob[8];
        memset(cb, 0, sizeof cb);
        memcpy(cb, ch + j, (size_t)rest * sizeof *ch);
        for (int i = 0; i < 8; i++) xb[i] = (int16_t)(i < rest ? x[j + i] : mu);
        _mm256_storeu_si256((__m256i *)ob, ln_out8(&k, load8(xb), cb));
        memcpy(o + j, ob, (size_t)rest * sizeof *o);
    }
}

/* ---- FQ-ViT P.V ---- */

/* o[d] += round_shr(v[d] 2^frac, q). |v 2^frac| <= 2^19: for q >= 20 every term is 0 (v 2^frac +
 * 2^(q-1) lies in [0, 2^q)), else the rounding fits int32 and vpsrad is the floor. */
TARGET static void pv_token_avx2(const int8_t *v, int64_t dim, int32_t frac, int32_t q, int32_t *o) {
    if (q >= 20) return;
    const __m128i fc = _mm_cvtsi32_si128(frac), qc = _mm_cvtsi32_si128(q);
    const __m256i half = _mm256_set1_epi32(q ? 1 << (q - 1) : 0);
    int64_t d = 0;
    for (; d + 8 <= dim; d += 8) {
        __m256i a = _mm256_sll_epi32(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(v + d))), fc);
        __m256i t = _mm256_sra_epi32(_mm256_add_epi32(a, half), qc);
        _mm256_storeu_si256((__m256i *)(o + d), _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(o + d)), t));
    }
    for (; d < dim; d++) o[d] += (int32_t)vitq_i_round_shr((int64_t)v[d] * ((int64_t)1 << frac), q);
}

const vitq_i_intnl_paths vitq_i_intnl_avx2 = {
    "avx2", ibert_softmax_avx2, shiftmax_avx2, ibert_gelu_avx2, shiftgelu_avx2, ln_sums_avx2, pv_token_avx2,
    ln_output_avx2,
};

/* AVX-512: the AVX2 entries but the I-BERT softmax and the LayerNorm output stage, whose 16-lane forms
 * measured faster on DeiT-S. */
const vitq_i_intnl_paths vitq_i_intnl_avx512 = {
    "avx512", ibert_softmax_avx512, shiftmax_avx2, ibert_gelu_avx2, shiftgelu_avx2, ln_sums_avx2, pv_token_avx2,
    ln_output_avx512,
};

#endif
