/* Integer GEMM of quantized linear layers: uint8 activation codes x int8 (or int4) weight codes,
 * accumulated exactly in int32, then one float epilogue per output.
 *
 * Codes follow kernels/uniform.h: code q stands for (q - zero) * scale. A layer has one activation grid
 * (scale, integer zero point) and per-output-channel weight grids. The product computed is
 *     acc[i][j] = sum_k (a[i][k] - a_zero) * (wq[j][k] - w_zero[j])          (exact, int32)
 *     c[i][j]   = epilogue((float)acc[i][j] * (a_scale * w_scale[j]) + bias[j])
 * with the float steps rounded one at a time in that order (the scale product once per call, then a
 * multiply and an add per output: no fused multiply-add), identically on every instruction-set path.
 * The integer part is exact, so every path and every thread count gives bit-identical results, and
 * an output never depends on m or on the row its input sits in.
 *
 * Activation codes are always carried as uint8: unsigned grids as they are, signed (symmetric) grids
 * shifted by +128, so that the signed code q is the byte q + 128 and the zero point 0 becomes 128
 * (vitq_i_qact_offset). The kernels multiply bytes as unsigned x signed (vpdpbusd).
 *
 * The kernels compute sum_k a * u over stored weight codes u and correct it afterwards:
 *     acc = sum a u - zs[j] * sum_k a[i][k] + a_zero * (k zs[j] - sum_k u[j][k])
 * where zs is the zero point in the stored domain (see vitq_i_qpacked); the row sums are only taken
 * when some zs is not 0 (symmetric 8-bit weights need none).
 *
 * Overflow: with activation bytes and a_zero in [0, 255], |a - a_zero| <= 255, so |acc| <=
 * k * 255 * max|wq - w_zero| over the weight grid. vitq_i_qgemm_pack checks that this bound fits in
 * int32 (8-bit weights with the zero point inside the grid: k <= 33025; symmetric 8-bit weights with
 * zero 0: k <= 65793; unsigned 4-bit: k <= 561433; symmetric 4-bit: k <= 1052688). Inside that limit
 * every intermediate may wrap modulo 2^32 (vpdpbusd does not saturate) and the final value is still
 * exact, because wrapping arithmetic is exact modulo 2^32 and the true result fits. */
#ifndef VITQ_KERNELS_IGEMM_H
#define VITQ_KERNELS_IGEMM_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "kernels/kernels.h"
#include "kernels/uniform.h"

/* Output channels per packed weight panel: three 16-lane groups (one zmm of int32 lanes each). */
#define VITQ_I_QGEMM_NR 48
/* Largest row tile of any kernel. */
#define VITQ_I_QGEMM_MR_MAX 8

/* Weights of one linear layer, packed once at load time.
 * Panel p holds output channels [48p, 48p + 48), the last one zero-padded. Inside a panel, 8-bit
 * storage is a sequence of k-quads: quad q is three 64-byte groups (channels 16g .. 16g + 15), byte
 * 4 * lane + t = stored code of channel 16g + lane at k = 4q + t (the vpdpbusd layout). 4-bit storage
 * is a sequence of k-octets of the same shape: the low nibble of byte 4 * lane + t holds k = 8o + t,
 * the high nibble k = 8o + 4 + t, so masking or shifting one load gives the 8-bit layout of two quads.
 * Stored codes are u = code - offset (the offset depends on the grid and the storage, see
 * vitq_i_qgemm_pack); the zero point in the stored domain is zero - offset, so no offset survives in
 * the result. Padded k and padded channels store 0. */
typedef struct vitq_i_qpacked {
    size_t n, k;        /* output and input features */
    int bits;           /* bits of the weight codes, 2..8 */
    int symmetric;      /* signed codes (1) or unsigned codes (0) */
    int store_bits;     /* 8: one code per byte (int8); 4: two codes per byte (unsigned nibbles) */
    size_t kpad;        /* k rounded up to 4 (8-bit storage) or 8 (4-bit storage) */
    size_t panel_bytes; /* bytes of one panel: kpad * 48 * store_bits / 8 */
    size_t panels;      /* ceil(n / 48) */
    uint8_t *data;      /* panels * panel_bytes bytes */
    float *scale;       /* [panels * 48] per channel weight scale (padding 0) */
    int32_t *zero;      /* [panels * 48] zero point in the stored domain (padding 0) */
    int32_t *kzero;     /* [panels * 48] k * zero - sum_k u, modulo 2^32 (the a_zero correction) */
    int need_row_sums;  /* some stored-domain zero point is not 0: the GEMM needs sum_k a[i][k] */
} vitq_i_qpacked;

/* Pack weight codes codes[n][k] (row-major as vitq stores them, one int32 per code) of a grid of
 * `bits` bits (2..8), signed [-2^(bits-1), 2^(bits-1) - 1] when `symmetric`, else unsigned
 * [0, 2^bits - 1]. `scale` and `zero` hold `groups` values: groups == 1 gives one scale and zero point
 * for the whole tensor, groups == n one per output channel. `zero` may be NULL (all zero points 0);
 * a zero point may lie outside the grid as long as the overflow bound holds. store_bits: 8 (one code
 * per byte), 4 (two codes per byte; bits <= 4 only) or 0 (4 when bits <= 4, else 8).
 * Errors: VITQ_ERR_INVALID_ARGUMENT (NULL pointers, groups not 1 or n, store_bits not 0/4/8),
 * VITQ_ERR_UNSUPPORTED (bits outside 2..8, 4-bit storage of more than 4 bits, k too large for exact
 * int32 accumulation with these zero points), VITQ_ERR_OUT_OF_RANGE (a code outside its grid, a scale
 * that is not finite and positive), VITQ_ERR_OUT_OF_MEMORY. On error *out is zeroed. */
vitq_status vitq_i_qgemm_pack(const vitq_allocator *alloc, const int32_t *codes, size_t n, size_t k, int bits,
                              int symmetric, const float *scale, const int32_t *zero, size_t groups, int store_bits,
                              vitq_i_qpacked *out);
void vitq_i_qpacked_free(const vitq_allocator *alloc, vitq_i_qpacked *p);
/* The codes codes[n][k] given to vitq_i_qgemm_pack back from the panels, exactly (an integer model
 * keeps only the panels; saving it reads the codes from them). */
void vitq_i_qgemm_unpack_codes(const vitq_i_qpacked *p, int32_t *codes);
/* The zero point of output channel j in the codes' own domain (what vitq_i_qgemm_pack was given). */
int32_t vitq_i_qgemm_zero_point(const vitq_i_qpacked *p, size_t j);

/* An activation grid: vitq's code range [qmin, qmax] (unsigned within [0, 255] or signed within
 * [-128, 127]), scale > 0 and finite, integer zero point (0 for symmetric grids). */
typedef struct vitq_i_qact {
    float scale;
    int32_t zero;
    int32_t qmin, qmax;
} vitq_i_qact;

/* VITQ_OK, or VITQ_ERR_OUT_OF_RANGE naming what the uint8 carrier cannot represent. */
vitq_status vitq_i_qact_check(const vitq_i_qact *q);
/* What is added to a code to make its byte: 128 for signed grids (qmin < 0), else 0. The GEMM's
 * a_zero for activations quantized with `q` is q->zero + vitq_i_qact_offset(q). */
int32_t vitq_i_qact_offset(const vitq_i_qact *q);

/* ---- activation matrices as the right-hand side (attention's K, and V transposed) ---- */

/* Bytes of memory vitq_i_qgemm_pack_bytes needs for an n x k matrix (SIZE_MAX on overflow). */
size_t vitq_i_qgemm_bytes_size(size_t n, size_t k);

/* Pack the n x k matrix of activation bytes of grid g (vitq_i_quantize_u8's output), element (j, kk)
 * at b[j * rs + kk * cs], as the weights of vitq_i_qgemm (c = a . B^T), into `mem`
 * (vitq_i_qgemm_bytes_size(n, k) bytes, 64-byte aligned): no allocation, so it can run per attention
 * head. Every channel has g's scale and zero point. vitq_i_qgemm then gives the same results as with
 * vitq_i_qgemm_pack of the codes (bytes - offset), bit for bit. VITQ_ERR_UNSUPPORTED when k is too
 * large for exact int32 sums (k > 33025). */
vitq_status vitq_i_qgemm_pack_bytes(const uint8_t *b, size_t rs, size_t cs, size_t n, size_t k,
                                    const vitq_i_qact *g, void *mem, vitq_i_qpacked *out);

/* out[r][c] = vitq_i_uniform_code(x[r][c]) + offset for `rows` rows of `cols` floats: exactly the
 * codes of kernels/uniform.h (x / scale with one IEEE division, round half to even, clamp to
 * [qmin, qmax], NaN -> zero point), as bytes, by the active path's uniform_u8 (kernels/isa.h).
 * `q` must pass vitq_i_qact_check. Every path gives the same bytes. */
void vitq_i_quantize_u8(const float *x, size_t ldx, size_t rows, size_t cols, const vitq_i_qact *q, uint8_t *out,
                        size_t ldo, int nthreads);

/* c[m][n] = epilogue((float)acc * (a_scale * w_scale[j]) + bias[j]) for activation bytes a[m][k]
 * (row stride lda) with zero point a_zero in [0, 255]; bias may be NULL (0). RESIDUAL adds to what c
 * holds: c = c + value. GELU goes through the float kernels' vector epilogue (kernels/isa.h), which
 * gives the bits of vitq_i_gelu_erf / vitq_i_gelu_tanh. nthreads <= 0: all available.
 * Errors: VITQ_ERR_INVALID_ARGUMENT (a_zero outside [0, 255], unknown epilogue, NULL pointers with
 * m, n > 0); nothing is written then. */
vitq_status vitq_i_qgemm(const uint8_t *a, size_t lda, size_t m, float a_scale, int32_t a_zero, const vitq_i_qpacked *w,
                         const float *bias, float *c, size_t ldc, vitq_i_epilogue e, int nthreads);

/* The same GEMM writing the next layer's activation bytes instead of floats (e.g. fc1 -> GELU -> the
 * codes fc2 consumes): q[i][j] = vitq_i_quantize_u8 of the float vitq_i_qgemm would have written,
 * bit for bit. `e` is NONE, GELU_ERF or GELU_TANH (RESIDUAL has no float input: INVALID_ARGUMENT);
 * `next` must pass vitq_i_qact_check. */
vitq_status vitq_i_qgemm_requant(const uint8_t *a, size_t lda, size_t m, float a_scale, int32_t a_zero,
                                 const vitq_i_qpacked *w, const float *bias, vitq_i_epilogue e, const vitq_i_qact *next,
                                 uint8_t *q, size_t ldq, int nthreads);

/* The micro-kernel family in use. Chosen from vitq_i_features_active() (so VITQ_ISA and
 * vitq_i_isa_force lower it), or forced for tests and benchmarks. */
typedef enum vitq_i_qkernel {
    VITQ_I_QK_GENERIC = 0,        /* portable C */
    VITQ_I_QK_AVX2 = 1,           /* AVX2: bytes widened to 16 bits, vpmaddwd */
    VITQ_I_QK_AVX2_VNNI = 2,      /* AVX-VNNI: ymm vpdpbusd, VEX-encoded */
    VITQ_I_QK_AVX2_VNNI_EVEX = 3, /* the AVX-VNNI kernel assembled with EVEX encodings (AVX512-VNNI + VL):
                                   * the same code, so CPUs without AVX-VNNI can test it */
    VITQ_I_QK_AVX512BW = 4,       /* AVX-512BW: widened to 16 bits, vpmaddwd on zmm */
    VITQ_I_QK_AVX512_VNNI = 5,    /* AVX512-VNNI: zmm vpdpbusd */
    VITQ_I_QK_COUNT = 6
} vitq_i_qkernel;

/* 1 when this CPU (all of it, whatever path is forced) can run kernel k. */
int vitq_i_qkernel_available(vitq_i_qkernel k);
/* The kernel the GEMM uses now (activation bytes come from the instruction-set table instead). */
vitq_i_qkernel vitq_i_qkernel_active(void);
/* Force kernel k (ignored while unavailable); a negative value returns to the automatic choice.
 * Not thread-safe against running GEMMs: for tests and benchmarks. */
void vitq_i_qkernel_force(int k);
const char *vitq_i_qkernel_name(vitq_i_qkernel k);

/* ---- Between the driver (igemm.c) and the per-instruction-set kernels (igemm_*.c) ---- */

/* One row tile x one weight panel. The kernel computes acc for its mr rows and 48 channels, then
 *     acc' = acc - col_zero[j] * row_sum[r] + col_add[j]             (modulo 2^32)
 *     v = (float)acc' * col_scale[j]; v = v + col_bias[j]; if (accumulate) v = out + v
 * and stores v for the first nrows rows and ncols channels at out + r * ldo + j. */
typedef struct vitq_i_qtile {
    const uint8_t *rows[VITQ_I_QGEMM_MR_MAX]; /* activation rows; tiles past m repeat the last row */
    size_t kdirect;         /* bytes read from rows in place: k rounded down to 4 (8-bit) or 8 (4-bit) */
    const uint8_t *tail;    /* bytes [kdirect, kpad) of row r at tail + 8 * r, zero-padded */
    const uint8_t *panel;   /* the weight panel */
    size_t kpad;            /* the panel's padded k */
    const int32_t *row_sum; /* [mr] sum_k a[r][k] (only read when need_row_sums) */
    int need_row_sums;
    const int32_t *col_zero; /* [48] stored-domain weight zero points */
    const int32_t *col_add;  /* [48] a_zero * kzero[j] modulo 2^32 */
    const float *col_scale;  /* [48] a_scale * w_scale[j] */
    const float *col_bias;   /* [48] bias[j] or 0 */
    float *out;
    size_t ldo, nrows, ncols;
    int accumulate;
} vitq_i_qtile;

typedef struct vitq_i_qimpl {
    size_t mr8, mr4;                      /* rows per tile of tile8 and tile4, <= VITQ_I_QGEMM_MR_MAX */
    void (*tile8)(const vitq_i_qtile *t); /* 8-bit storage */
    void (*tile4)(const vitq_i_qtile *t); /* 4-bit storage */
} vitq_i_qimpl;

/* The int32 whose bits are u. Wrapping uint32 arithmetic is the portable C form of the modulo-2^32
 * sums (signed overflow is undefined); the true results fit int32, so this gives them back exactly. */
static inline int32_t vitq_i_wrap_i32(uint32_t u) { return u <= INT32_MAX ? (int32_t)u : -(int32_t)(~u) - 1; }

extern const vitq_i_qimpl vitq_i_qimpl_generic;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
extern const vitq_i_qimpl vitq_i_qimpl_avx2, vitq_i_qimpl_avx2_vnni, vitq_i_qimpl_avx2_vnni_evex;
extern const vitq_i_qimpl vitq_i_qimpl_avx512bw, vitq_i_qimpl_avx512_vnni;
#endif

#endif
