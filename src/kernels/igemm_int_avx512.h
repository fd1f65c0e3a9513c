/* AVX-512 kernels of the integer GEMM (see igemm.h).
 *
 * VNNI: an 8-row x 48-channel tile keeps 24 zmm accumulators. Each k-quad loads the panel's three
 * 64-byte groups once and broadcasts four activation bytes per row; vpdpbusd multiplies unsigned
 * activation bytes by signed weight bytes and adds the four products of each lane into its int32
 * without saturation. 4-bit panels hold two quads per load: the low nibbles (vpand) are the first
 * quad, the high nibbles (vpsrlw 4 + vpand) the second; nibbles are unsigned 0..15, so they are valid
 * signed bytes as they are.
 * Without VNNI (AVX-512BW, 4 x 48; 2 x 48 for 4-bit weights): weight bytes are sign-extended and
 * activation bytes zero-extended to 16 bits, and vpmaddwd adds products in pairs (exact: |pair| <=
 * 2 * 255 * 128 < 2^31, unlike vpmaddubsw, which saturates at 2^15). The pair sums are folded into
 * channel sums once, after the k loop.
 *
 * One accumulation body for both output modes: included by igemm_int_avx512.c (integer mode, no
 * floating point) and igemm_avx512.c (float mode), each of which defines store16, the store of the
 * corrected accumulators acc' (igemm.h) of the lanes m of channels [j0, j0 + 16) of row r.
 * Only for x86-64 GCC/Clang: the includer checks. */
#ifndef VITQ_KERNELS_IGEMM_INT_AVX512_H
#define VITQ_KERNELS_IGEMM_INT_AVX512_H

#include <immintrin.h>
#include <string.h>

#include "kernels/igemm.h"

#define T512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#define TVNNI __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")))
#define INLINE static inline __attribute__((always_inline))

T512 INLINE void store16(const vitq_i_qtile *t, size_t r, size_t j0, __mmask16 m, __m512i v);

static inline int32_t load4(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* The corrections of igemm.h for one row of 48 accumulators, then the mode's store. */
T512 INLINE void finish_row(const vitq_i_qtile *t, size_t r, __m512i a0, __m512i a1, __m512i a2) {
    if (r >= t->nrows) return;
    __m512i acc[3] = {a0, a1, a2};
    __m512i rs = _mm512_set1_epi32(t->need_row_sums ? t->row_sum[r] : 0);
    for (size_t g = 0; g < 3 && 16 * g < t->ncols; g++) {
        size_t j0 = 16 * g, left = t->ncols - j0;
        __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        __m512i v = _mm512_add_epi32(acc[g], _mm512_loadu_si512(t->col_add + j0));
        if (t->need_row_sums) v = _mm512_sub_epi32(v, _mm512_mullo_epi32(_mm512_loadu_si512(t->col_zero + j0), rs));
        store16(t, r, j0, m, v);
    }
}

/* rows[r]: row r of the tile in place; tails[r]: its zero-padded tail (for the first n rows). */
#define ROW_POINTERS(n)                                                                                        \
    const uint8_t *rows[n], *tails[n];                                                                         \
    for (int r = 0; r < (n); r++) rows[r] = t->rows[r], tails[r] = t->tail + 8 * r

/* ---- AVX512-VNNI, 8 x 48 ---- */

#define DP_ROW(c0, c1, c2, p)                                                                                  \
    do {                                                                                                       \
        __m512i a_ = _mm512_set1_epi32(load4(p));                                                              \
        c0 = _mm512_dpbusd_epi32(c0, a_, w0);                                                                  \
        c1 = _mm512_dpbusd_epi32(c1, a_, w1);                                                                  \
        c2 = _mm512_dpbusd_epi32(c2, a_, w2);                                                                  \
    } while (0)

/* One k-quad of all 8 rows: row r's four bytes at p[r] + off. */
#define DP_QUAD(p, off)                                                                                        \
    do {                                                                                                       \
        DP_ROW(c00, c01, c02, p[0] + (off));                                                                   \
        DP_ROW(c10, c11, c12, p[1] + (off));                                                                   \
        DP_ROW(c20, c21, c22, p[2] + (off));                                                                   \
        DP_ROW(c30, c31, c32, p[3] + (off));                                                                   \
        DP_ROW(c40, c41, c42, p[4] + (off));                                                                   \
        DP_ROW(c50, c51, c52, p[5] + (off));                                                                   \
        DP_ROW(c60, c61, c62, p[6] + (off));                                                                   \
        DP_ROW(c70, c71, c72, p[7] + (off));                                                                   \
    } while (0)

#define DECLARE_ACC                                                                                            \
    __m512i c00 = _mm512_setzero_si512(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00, c20 = c00,    \
            c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00, c40 = c00, c41 = c00, c42 = c00, c50 = c00, \
            c51 = c00, c52 = c00, c60 = c00, c61 = c00, c62 = c00, c70 = c00, c71 = c00, c72 = c00;            \
    __m512i w0, w1, w2

#define FINISH_8                                                                                               \
    do {                                                                                                       \
        finish_row(t, 0, c00, c01, c02);                                                                       \
        finish_row(t, 1, c10, c11, c12);                                                                       \
        finish_row(t, 2, c20, c21, c22);                                                                       \
        finish_row(t, 3, c30, c31, c32);                                                                       \
        finish_row(t, 4, c40, c41, c42);                                                                       \
        finish_row(t, 5, c50, c51, c52);                                                                       \
        finish_row(t, 6, c60, c61, c62);                                                                       \
        finish_row(t, 7, c70, c71, c72);                                                                       \
    } while (0)

#define LOAD_W(b) (w0 = _mm512_loadu_si512(b), w1 = _mm512_loadu_si512((b) + 64), w2 = _mm512_loadu_si512((b) + 128))

/* The 8-bit panel of a tile: quads read from the rows in place, then the zero-padded tail quads;
 * STEP(p, off) multiplies the quad at byte `off` of rows p by the weights in w0..w2. */
#define SWEEP_8BIT_PANEL(STEP)                                                                                 \
    do {                                                                                                       \
        const uint8_t *b = t->panel;                                                                           \
        size_t quads = t->kdirect / 4, tail_quads = t->kpad / 4 - quads;                                       \
        for (size_t q = 0; q < quads; q++, b += 192) { /* two loops: no branch in the hot one */               \
            LOAD_W(b);                                                                                         \
            STEP(rows, 4 * q);                                                                                 \
        }                                                                                                      \
        for (size_t q = 0; q < tail_quads; q++, b += 192) {                                                    \
            LOAD_W(b);                                                                                         \
            STEP(tails, 4 * q);                                                                                \
        }                                                                                                      \
    } while (0)

TVNNI static void tile8_vnni(const vitq_i_qtile *t) {
    DECLARE_ACC;
    ROW_POINTERS(8);
    SWEEP_8BIT_PANEL(DP_QUAD);
    FINISH_8;
}

/* Two quads from one 4-bit octet at b: low nibbles, then high nibbles, each multiplied by STEP(p, off)
 * with the weights in w0..w2 (needs the nibble mask `low`). */
#define OCTET(STEP, p, off)                                                                                    \
    do {                                                                                                       \
        __m512i x0_ = _mm512_loadu_si512(b), x1_ = _mm512_loadu_si512(b + 64), x2_ = _mm512_loadu_si512(b + 128); \
        w0 = _mm512_and_si512(x0_, low), w1 = _mm512_and_si512(x1_, low), w2 = _mm512_and_si512(x2_, low);     \
        STEP(p, off);                                                                                          \
        w0 = _mm512_and_si512(_mm512_srli_epi16(x0_, 4), low);                                                 \
        w1 = _mm512_and_si512(_mm512_srli_epi16(x1_, 4), low);                                                 \
        w2 = _mm512_and_si512(_mm512_srli_epi16(x2_, 4), low);                                                 \
        STEP(p, (off) + 4);                                                                                    \
    } while (0)

/* The 4-bit panel of a tile: octets read from the rows in place, then the zero-padded tail octets. */
#define SWEEP_4BIT_PANEL(STEP)                                                                                 \
    do {                                                                                                       \
        const uint8_t *b = t->panel;                                                                           \
        size_t octets = t->kdirect / 8, tail_octets = t->kpad / 8 - octets;                                    \
        for (size_t o = 0; o < octets; o++, b += 192) OCTET(STEP, rows, 8 * o);                                \
        for (size_t o = 0; o < tail_octets; o++, b += 192) OCTET(STEP, tails, 0);                              \
    } while (0)

TVNNI static void tile4_vnni(const vitq_i_qtile *t) {
    DECLARE_ACC;
    const __m512i low = _mm512_set1_epi8(0x0F);
    ROW_POINTERS(8);
    SWEEP_4BIT_PANEL(DP_QUAD);
    FINISH_8;
}

/* ---- AVX-512BW without VNNI, 4 x 48 ---- */

/* Channel sums of one 16-channel group from the pair sums of channels 0-7 (h0) and 8-15 (h1). */
T512 INLINE __m512i fold_pairs(__m512i h0, __m512i h1) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    return _mm512_add_epi32(_mm512_permutex2var_epi32(h0, even, h1), _mm512_permutex2var_epi32(h0, odd, h1));
}

#define MADD_ROW(c, p)                                                                                         \
    do {                                                                                                       \
        __m512i a_ = _mm512_cvtepu8_epi16(_mm256_set1_epi32(load4(p)));                                        \
        c##0 = _mm512_add_epi32(c##0, _mm512_madd_epi16(a_, v0));                                              \
        c##1 = _mm512_add_epi32(c##1, _mm512_madd_epi16(a_, v1));                                              \
        c##2 = _mm512_add_epi32(c##2, _mm512_madd_epi16(a_, v2));                                              \
        c##3 = _mm512_add_epi32(c##3, _mm512_madd_epi16(a_, v3));                                              \
        c##4 = _mm512_add_epi32(c##4, _mm512_madd_epi16(a_, v4));                                              \
        c##5 = _mm512_add_epi32(c##5, _mm512_madd_epi16(a_, v5));                                              \
    } while (0)

/* The weight bytes w0..w2 (three 64-byte groups) sign-extended to 16 bits. */
#define WIDEN_W                                                                                                \
    __m512i v0 = _mm512_cvtepi8_epi16(_mm512_castsi512_si256(w0));                                             \
    __m512i v1 = _mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(w0, 1));                                       \
    __m512i v2 = _mm512_cvtepi8_epi16(_mm512_castsi512_si256(w1));                                             \
    __m512i v3 = _mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(w1, 1));                                       \
    __m512i v4 = _mm512_cvtepi8_epi16(_mm512_castsi512_si256(w2));                                             \
    __m512i v5 = _mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(w2, 1))

/* One quad of 4 rows with weight bytes w0..w2. */
#define MADD_QUAD(p, off)                                                                                      \
    do {                                                                                                       \
        WIDEN_W;                                                                                               \
        MADD_ROW(d0, p[0] + (off));                                                                            \
        MADD_ROW(d1, p[1] + (off));                                                                            \
        MADD_ROW(d2, p[2] + (off));                                                                            \
        MADD_ROW(d3, p[3] + (off));                                                                            \
    } while (0)

#define DECLARE_BW                                                                                             \
    __m512i d00 = _mm512_setzero_si512(), d01 = d00, d02 = d00, d03 = d00, d04 = d00, d05 = d00, d10 = d00,    \
            d11 = d00, d12 = d00, d13 = d00, d14 = d00, d15 = d00, d20 = d00, d21 = d00, d22 = d00, d23 = d00, \
            d24 = d00, d25 = d00, d30 = d00, d31 = d00, d32 = d00, d33 = d00, d34 = d00, d35 = d00;            \
    __m512i w0, w1, w2

#define FINISH_BW_ROW(r, c) finish_row(t, r, fold_pairs(c##0, c##1), fold_pairs(c##2, c##3), fold_pairs(c##4, c##5))
#define FINISH_BW                                                                                              \
    do {                                                                                                       \
        FINISH_BW_ROW(0, d0);                                                                                  \
        FINISH_BW_ROW(1, d1);                                                                                  \
        FINISH_BW_ROW(2, d2);                                                                                  \
        FINISH_BW_ROW(3, d3);                                                                                  \
    } while (0)

T512 static void tile8_bw(const vitq_i_qtile *t) {
    DECLARE_BW;
    ROW_POINTERS(4);
    SWEEP_8BIT_PANEL(MADD_QUAD);
    FINISH_BW;
}

/* 4-bit: 2 rows, leaving registers for the packed weights and the nibble mask. */
#define MADD_QUAD2(p, off)                                                                                     \
    do {                                                                                                       \
        WIDEN_W;                                                                                               \
        MADD_ROW(d0, p[0] + (off));                                                                            \
        MADD_ROW(d1, p[1] + (off));                                                                            \
    } while (0)

T512 static void tile4_bw(const vitq_i_qtile *t) {
    __m512i d00 = _mm512_setzero_si512(), d01 = d00, d02 = d00, d03 = d00, d04 = d00, d05 = d00, d10 = d00,
            d11 = d00, d12 = d00, d13 = d00, d14 = d00, d15 = d00;
    __m512i w0, w1, w2;
    const __m512i low = _mm512_set1_epi8(0x0F);
    const uint8_t *rows[2] = {t->rows[0], t->rows[1]}, *tails[2] = {t->tail, t->tail + 8};
    SWEEP_4BIT_PANEL(MADD_QUAD2);
    FINISH_BW_ROW(0, d0);
    FINISH_BW_ROW(1, d1);
}

/* The tables of the output mode M (_f32 or _i32, igemm.h): one line in each including file. */
#define VITQ_I_QTILES_AVX512(M)                                                                                \
    const vitq_i_qimpl vitq_i_qimpl_avx512_vnni##M = {8, 8, tile8_vnni, tile4_vnni};                           \
    const vitq_i_qimpl vitq_i_qimpl_avx512bw##M = {4, 2, tile8_bw, tile4_bw}

#endif
