/* AVX2 kernels of the integer GEMM (see igemm.h).
 *
 * With 16 ymm registers a tile covers one 16-channel group of the panel at a time (two ymm of int32
 * lanes) and sweeps the three groups in turn.
 * AVX-VNNI (6 rows, 4 for 4-bit weights): ymm vpdpbusd, u8 activations x s8 weights, four products
 * per lane, no saturation. The instruction is written in inline assembly so that one kernel body
 * assembles both as the VEX form ({vex}, AVX-VNNI: Alder Lake and later) and as the EVEX form
 * (AVX512-VNNI + VL): the EVEX twin is the same code and lets CPUs without AVX-VNNI test it.
 * Plain AVX2 (2 rows, 1 for 4-bit weights): bytes widened to 16 bits and multiplied with vpmaddwd,
 * which adds products in pairs without saturating (vpmaddubsw would saturate a pair at 2^15); pair
 * sums are folded into channel sums after the k loop.
 *
 * One accumulation body for both output modes: included by igemm_int_avx2.c (integer mode, no
 * floating point) and igemm_avx2.c (float mode), each of which defines store8, the store of the
 * corrected accumulators acc' (igemm.h) of channels [j0, j0 + 8) of row r (j0 < ncols, r < nrows).
 * Only for x86-64 GCC/Clang: the includer checks. */
#ifndef VITQ_KERNELS_IGEMM_INT_AVX2_H
#define VITQ_KERNELS_IGEMM_INT_AVX2_H

#include <immintrin.h>
#include <string.h>

#include "kernels/igemm.h"

#define TAVX2 __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline))

TAVX2 INLINE void store8(const vitq_i_qtile *t, size_t r, size_t j0, __m256i v);

static inline int32_t load4(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* The corrections of igemm.h for channels [j0, j0 + 8) of row r, then the mode's store. */
TAVX2 INLINE void finish8(const vitq_i_qtile *t, size_t r, size_t j0, __m256i acc) {
    if (r >= t->nrows || j0 >= t->ncols) return;
    __m256i rs = _mm256_set1_epi32(t->need_row_sums ? t->row_sum[r] : 0);
    __m256i v = _mm256_sub_epi32(acc, _mm256_mullo_epi32(_mm256_loadu_si256((const __m256i *)(t->col_zero + j0)), rs));
    store8(t, r, j0, _mm256_add_epi32(v, _mm256_loadu_si256((const __m256i *)(t->col_add + j0))));
}

/* rows[r]: row r of the tile in place; tails[r]: its zero-padded tail (for the first n rows). */
#define ROW_POINTERS(n)                                                                                        \
    const uint8_t *rows[n], *tails[n];                                                                         \
    for (int r = 0; r < (n); r++) rows[r] = t->rows[r], tails[r] = t->tail + 8 * r

/* ---- AVX-VNNI, 6 rows x 16 channels per pass ---- */

/* acc += u8(a) . s8(w) per lane; `evex` is a constant after inlining. */
TAVX2 INLINE __m256i dpbusd(__m256i acc, __m256i a, __m256i w, int evex) {
    if (evex)
        __asm__("vpdpbusd %[w], %[a], %[acc]" : [acc] "+x"(acc) : [a] "x"(a), [w] "x"(w));
    else
        __asm__("%{vex%} vpdpbusd %[w], %[a], %[acc]" : [acc] "+x"(acc) : [a] "x"(a), [w] "x"(w));
    return acc;
}

#define VNNI_ROW(c, p)                                                                                         \
    do {                                                                                                       \
        __m256i a_ = _mm256_set1_epi32(load4(p));                                                              \
        c##0 = dpbusd(c##0, a_, w0, evex);                                                                     \
        c##1 = dpbusd(c##1, a_, w1, evex);                                                                     \
    } while (0)

/* 4 rows: the 4-bit tiles (the packed and unpacked weights and the nibble mask need registers too),
 * and the first 4 of VNNI_QUAD. */
#define VNNI_QUAD4(p, off)                                                                                     \
    do {                                                                                                       \
        VNNI_ROW(e0, p[0] + (off));                                                                            \
        VNNI_ROW(e1, p[1] + (off));                                                                            \
        VNNI_ROW(e2, p[2] + (off));                                                                            \
        VNNI_ROW(e3, p[3] + (off));                                                                            \
    } while (0)

#define VNNI_QUAD(p, off)                                                                                      \
    do {                                                                                                       \
        VNNI_QUAD4(p, off);                                                                                    \
        VNNI_ROW(e4, p[4] + (off));                                                                            \
        VNNI_ROW(e5, p[5] + (off));                                                                            \
    } while (0)

#define LOAD_GROUP(x0, x1, src)                                                                                \
    __m256i x0 = _mm256_loadu_si256((const __m256i *)(src)), x1 = _mm256_loadu_si256((const __m256i *)((src) + 32))

#define FINISH_ROW(r, c)                                                                                       \
    do {                                                                                                       \
        finish8(t, r, 16 * g, c##0);                                                                           \
        finish8(t, r, 16 * g + 8, c##1);                                                                       \
    } while (0)

#define FINISH_6                                                                                               \
    do {                                                                                                       \
        FINISH_ROW(0, e0);                                                                                     \
        FINISH_ROW(1, e1);                                                                                     \
        FINISH_ROW(2, e2);                                                                                     \
        FINISH_ROW(3, e3);                                                                                     \
        FINISH_ROW(4, e4);                                                                                     \
        FINISH_ROW(5, e5);                                                                                     \
    } while (0)

#define DECLARE_VNNI                                                                                           \
    __m256i e00 = _mm256_setzero_si256(), e01 = e00, e10 = e00, e11 = e00, e20 = e00, e21 = e00, e30 = e00,    \
            e31 = e00, e40 = e00, e41 = e00, e50 = e00, e51 = e00

TAVX2 INLINE void tile8_vnni_body(const vitq_i_qtile *t, int evex) {
    ROW_POINTERS(6);
    size_t quads = t->kdirect / 4, tail_quads = t->kpad / 4 - quads;
    for (size_t g = 0; g < 3 && 16 * g < t->ncols; g++) {
        DECLARE_VNNI;
        const uint8_t *b = t->panel + 64 * g;
        for (size_t q = 0; q < quads; q++, b += 192) {
            LOAD_GROUP(w0, w1, b);
            VNNI_QUAD(rows, 4 * q);
        }
        for (size_t q = 0; q < tail_quads; q++, b += 192) {
            LOAD_GROUP(w0, w1, b);
            VNNI_QUAD(tails, 4 * q);
        }
        FINISH_6;
    }
}

/* Two quads from one 4-bit octet at b: low nibbles, then high nibbles, each multiplied by STEP(p, off)
 * with the group's weights in w0, w1 (needs the nibble mask `low`). */
#define OCTET(STEP, p, off)                                                                                    \
    do {                                                                                                       \
        LOAD_GROUP(x0, x1, b);                                                                                 \
        __m256i w0 = _mm256_and_si256(x0, low), w1 = _mm256_and_si256(x1, low);                                \
        STEP(p, off);                                                                                          \
        w0 = _mm256_and_si256(_mm256_srli_epi16(x0, 4), low);                                                  \
        w1 = _mm256_and_si256(_mm256_srli_epi16(x1, 4), low);                                                  \
        STEP(p, (off) + 4);                                                                                    \
    } while (0)

TAVX2 INLINE void tile4_vnni_body(const vitq_i_qtile *t, int evex) {
    const __m256i low = _mm256_set1_epi8(0x0F);
    ROW_POINTERS(4);
    size_t octets = t->kdirect / 8, tail_octets = t->kpad / 8 - octets;
    for (size_t g = 0; g < 3 && 16 * g < t->ncols; g++) {
        __m256i e00 = _mm256_setzero_si256(), e01 = e00, e10 = e00, e11 = e00, e20 = e00, e21 = e00, e30 = e00,
                e31 = e00;
        const uint8_t *b = t->panel + 64 * g;
        for (size_t o = 0; o < octets; o++, b += 192) OCTET(VNNI_QUAD4, rows, 8 * o);
        for (size_t o = 0; o < tail_octets; o++, b += 192) OCTET(VNNI_QUAD4, tails, 0);
        FINISH_ROW(0, e0);
        FINISH_ROW(1, e1);
        FINISH_ROW(2, e2);
        FINISH_ROW(3, e3);
    }
}

TAVX2 static void tile8_vnni_vex(const vitq_i_qtile *t) { tile8_vnni_body(t, 0); }
TAVX2 static void tile4_vnni_vex(const vitq_i_qtile *t) { tile4_vnni_body(t, 0); }
TAVX2 static void tile8_vnni_evex(const vitq_i_qtile *t) { tile8_vnni_body(t, 1); }
TAVX2 static void tile4_vnni_evex(const vitq_i_qtile *t) { tile4_vnni_body(t, 1); }

/* ---- AVX2 without VNNI, 2 rows x 16 channels per pass ---- */

/* Channel sums of 8 channels from the pair sums of channels 0-3 (h0) and 4-7 (h1). */
TAVX2 INLINE __m256i fold_pairs(__m256i h0, __m256i h1) {
    return _mm256_permute4x64_epi64(_mm256_hadd_epi32(h0, h1), _MM_SHUFFLE(3, 1, 2, 0));
}

#define MADD_ROW(c, p)                                                                                         \
    do {                                                                                                       \
        __m256i a_ = _mm256_cvtepu8_epi16(_mm_set1_epi32(load4(p)));                                           \
        c##0 = _mm256_add_epi32(c##0, _mm256_madd_epi16(a_, v0));                                              \
        c##1 = _mm256_add_epi32(c##1, _mm256_madd_epi16(a_, v1));                                              \
        c##2 = _mm256_add_epi32(c##2, _mm256_madd_epi16(a_, v2));                                              \
        c##3 = _mm256_add_epi32(c##3, _mm256_madd_epi16(a_, v3));                                              \
    } while (0)

/* The group's weight bytes in w0 (channels 0-7) and w1 (8-15), sign-extended to 16 bits. */
#define WIDEN_W                                                                                                \
    __m256i v0 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(w0));                                             \
    __m256i v1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(w0, 1));                                        \
    __m256i v2 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(w1));                                             \
    __m256i v3 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(w1, 1))

/* One quad of both rows with the group's weight bytes in w0, w1. */
#define MADD_QUAD(p, off)                                                                                      \
    do {                                                                                                       \
        WIDEN_W;                                                                                               \
        MADD_ROW(f0, p[0] + (off));                                                                            \
        MADD_ROW(f1, p[1] + (off));                                                                            \
    } while (0)

#define DECLARE_MADD                                                                                           \
    __m256i f00 = _mm256_setzero_si256(), f01 = f00, f02 = f00, f03 = f00, f10 = f00, f11 = f00, f12 = f00,    \
            f13 = f00

#define FINISH_2                                                                                               \
    do {                                                                                                       \
        finish8(t, 0, 16 * g, fold_pairs(f00, f01));                                                           \
        finish8(t, 0, 16 * g + 8, fold_pairs(f02, f03));                                                       \
        finish8(t, 1, 16 * g, fold_pairs(f10, f11));                                                           \
        finish8(t, 1, 16 * g + 8, fold_pairs(f12, f13));                                                       \
    } while (0)

#define MADD_GROUP(p, off)                                                                                     \
    do {                                                                                                       \
        LOAD_GROUP(w0, w1, b);                                                                                 \
        MADD_QUAD(p, off);                                                                                     \
    } while (0)

TAVX2 static void tile8_avx2(const vitq_i_qtile *t) {
    const uint8_t *rows[2] = {t->rows[0], t->rows[1]}, *tails[2] = {t->tail, t->tail + 8};
    size_t quads = t->kdirect / 4, tail_quads = t->kpad / 4 - quads;
    for (size_t g = 0; g < 3 && 16 * g < t->ncols; g++) {
        DECLARE_MADD;
        const uint8_t *b = t->panel + 64 * g;
        for (size_t q = 0; q < quads; q++, b += 192) MADD_GROUP(rows, 4 * q);
        for (size_t q = 0; q < tail_quads; q++, b += 192) MADD_GROUP(tails, 4 * q);
        FINISH_2;
    }
}

/* 4-bit: one row per tile, so that the packed weights stay in registers next to the unpacked ones. */
#define MADD_ROW1(p, off)                                                                                      \
    do {                                                                                                       \
        WIDEN_W;                                                                                               \
        MADD_ROW(f0, p[0] + (off));                                                                            \
    } while (0)

TAVX2 static void tile4_avx2(const vitq_i_qtile *t) {
    const __m256i low = _mm256_set1_epi8(0x0F);
    const uint8_t *rows[1] = {t->rows[0]}, *tails[1] = {t->tail};
    size_t octets = t->kdirect / 8, tail_octets = t->kpad / 8 - octets;
    for (size_t g = 0; g < 3 && 16 * g < t->ncols; g++) {
        __m256i f00 = _mm256_setzero_si256(), f01 = f00, f02 = f00, f03 = f00;
        const uint8_t *b = t->panel + 64 * g;
        for (size_t o = 0; o < octets; o++, b += 192) OCTET(MADD_ROW1, rows, 8 * o);
        for (size_t o = 0; o < tail_octets; o++, b += 192) OCTET(MADD_ROW1, tails, 0);
        finish8(t, 0, 16 * g, fold_pairs(f00, f01));
        finish8(t, 0, 16 * g + 8, fold_pairs(f02, f03));
    }
}

/* The tables of the output mode M (_f32 or _i32, igemm.h): one line in each including file. */
#define VITQ_I_QTILES_AVX2(M)                                                                                  \
    const vitq_i_qimpl vitq_i_qimpl_avx2##M = {2, 1, tile8_avx2, tile4_avx2};                                  \
    const vitq_i_qimpl vitq_i_qimpl_avx2_vnni##M = {6, 4, tile8_vnni_vex, tile4_vnni_vex};                     \
    const vitq_i_qimpl vitq_i_qimpl_avx2_vnni_evex##M = {6, 4, tile8_vnni_evex, tile4_vnni_evex}

#endif
