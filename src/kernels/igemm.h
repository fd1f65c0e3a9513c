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

/* The same GEMM with its int32 accumulators as the output, for the integer-only path (no float at all):
 *     c[i][j] = acc[i][j] + bias[j]          (exact, int32)
 * with acc as above (after the zero-point corrections) and bias an int32 at scale a_scale * w_scale[j]
 * (NULL: 0). Every path and thread count gives the same int32s. Bound: a in [0, 255] gives
 * |a - a_zero| <= A = max(a_zero, 255 - a_zero), so |acc[i][j]| <= k * A * D[j] with D[j] the largest
 * |wq - w_zero[j]| over channel j's weight grid; the call requires k * A * D[j] + |bias[j]| <= 2^31 - 1
 * for every j (no sum can wrap) and otherwise returns VITQ_ERR_OUT_OF_RANGE naming bias[j] and writes
 * nothing. Other errors as vitq_i_qgemm's. */
vitq_status vitq_i_qgemm_i32(const uint8_t *a, size_t lda, size_t m, int32_t a_zero, const vitq_i_qpacked *w,
                             const int32_t *bias, int32_t *c, size_t ldc, int nthreads);

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

/* ---- Between the drivers (igemm.c, igemm_int.c) and the per-instruction-set kernels ----
 * Each kernel family has its tiles twice, one set per output mode, built from one accumulation body
 * (igemm_int_<family>.h): the integer-mode tiles in igemm_int_<family>.c, which hold no floating point
 * (the integer-only runtime runs on them: tests/build/check_float_free.sh), the float-mode tiles in
 * igemm_<family>.c. */

/* One row tile x one weight panel. The kernel computes acc for its mr rows and 48 channels, then
 *     acc' = acc - col_zero[j] * row_sum[r] + col_add[j]             (modulo 2^32)
 * and stores, for the first nrows rows and ncols channels, at r * ldo + j:
 *     float mode:   v = (float)acc' * col_scale[j]; v = v + col_bias[j]; if (accumulate) v = out + v
 *                   into out (reading none of iout, col_ibias);
 *     integer mode: acc' + col_ibias[j] (modulo 2^32) as int32 into iout (reading none of out,
 *                   col_scale, col_bias, accumulate). */
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
    const float *col_scale;  /* [48] a_scale * w_scale[j] (float mode) */
    const float *col_bias;   /* [48] bias[j] or 0 (float mode) */
    float *out;              /* float mode */
    size_t ldo, nrows, ncols;
    int accumulate;           /* float mode */
    int32_t *iout;            /* integer mode */
    const int32_t *col_ibias; /* [48] integer bias (integer mode) */
} vitq_i_qtile;

/* The tiles of one kernel family in one output mode. */
typedef struct vitq_i_qimpl {
    size_t mr8, mr4;                      /* rows per tile of tile8 and tile4, <= VITQ_I_QGEMM_MR_MAX */
    void (*tile8)(const vitq_i_qtile *t); /* 8-bit storage */
    void (*tile4)(const vitq_i_qtile *t); /* 4-bit storage */
} vitq_i_qimpl;

/* Float-mode (_f32) and integer-mode (_i32) tiles of each kernel of vitq_i_qkernel. */
extern const vitq_i_qimpl vitq_i_qimpl_generic_f32, vitq_i_qimpl_generic_i32;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
extern const vitq_i_qimpl vitq_i_qimpl_avx2_f32, vitq_i_qimpl_avx2_vnni_f32, vitq_i_qimpl_avx2_vnni_evex_f32;
extern const vitq_i_qimpl vitq_i_qimpl_avx512bw_f32, vitq_i_qimpl_avx512_vnni_f32;
extern const vitq_i_qimpl vitq_i_qimpl_avx2_i32, vitq_i_qimpl_avx2_vnni_i32, vitq_i_qimpl_avx2_vnni_evex_i32;
extern const vitq_i_qimpl vitq_i_qimpl_avx512bw_i32, vitq_i_qimpl_avx512_vnni_i32;
/* The initializer of an array, indexed by vitq_i_qkernel, of the tiles of mode M (_f32 or _i32). */
#define VITQ_I_QIMPLS(M)                                                                                      \
    {&vitq_i_qimpl_generic##M, &vitq_i_qimpl_avx2##M, &vitq_i_qimpl_avx2_vnni##M, &vitq_i_qimpl_avx2_vnni_evex##M, \
     &vitq_i_qimpl_avx512bw##M, &vitq_i_qimpl_avx512_vnni##M}
#else
#define VITQ_I_QIMPLS(M)                                                                                      \
    {&vitq_i_qimpl_generic##M, &vitq_i_qimpl_generic##M, &vitq_i_qimpl_generic##M, &vitq_i_qimpl_generic##M,   \
     &vitq_i_qimpl_generic##M, &vitq_i_qimpl_generic##M}
#endif

/* ---- The walk over blocks and tiles, shared by both output modes (igemm_int.c) ----
 * The output is cut into blocks on a grid that depends on the shape only; per block the walk takes
 * the activation rows' sums and tails and the panels' col_add, asks the mode for its column constants,
 * then hands every (row tile, panel) pair, all of vitq_i_qtile but the output set, to the mode. */

/* Most panels per block (bounds the per-block column arrays on the stack). */
#define VITQ_I_QGEMM_NC_MAX 32

/* Column constants of a block's panels, panel p at index 48 p. */
typedef struct vitq_i_qcols {
    int32_t add[VITQ_I_QGEMM_NR * VITQ_I_QGEMM_NC_MAX];   /* col_add (the walk's) */
    int32_t ibias[VITQ_I_QGEMM_NR * VITQ_I_QGEMM_NC_MAX]; /* col_ibias (integer mode's) */
    float scale[VITQ_I_QGEMM_NR * VITQ_I_QGEMM_NC_MAX];   /* col_scale (float mode's) */
    float bias[VITQ_I_QGEMM_NR * VITQ_I_QGEMM_NC_MAX];    /* col_bias (float mode's) */
} vitq_i_qcols;

typedef struct vitq_i_qwalk vitq_i_qwalk;
struct vitq_i_qwalk {
    const uint8_t *a; /* activation bytes a[m][k], row stride lda */
    size_t lda, m;
    int32_t a_zero;
    const vitq_i_qpacked *w;
    const vitq_i_qimpl *impl; /* the mode's tiles of the kernel in use */
    /* The mode's constants of the panel at channel p0 (its first ncols channels real) into cols at `at`. */
    void (*columns)(const vitq_i_qwalk *wk, size_t p0, size_t ncols, vitq_i_qcols *cols, size_t at);
    /* Sets the output of t (rows from r0, the panel at channel p0), runs `tile` on it, and stores. */
    void (*run_tile)(const vitq_i_qwalk *wk, vitq_i_qtile *t, size_t r0, size_t p0,
                     void (*tile)(const vitq_i_qtile *t));
    const void *mode; /* the mode's own arguments */
};

/* The whole GEMM (nothing when m or n is 0); nthreads <= 0: all available. */
void vitq_i_qwalk_run(const vitq_i_qwalk *wk, int nthreads);
/* The argument checks of every qgemm entry point (errors as vitq_i_qgemm's); `out` is the output. */
vitq_status vitq_i_qgemm_check(const uint8_t *a, size_t lda, size_t m, int32_t a_zero, const vitq_i_qpacked *w,
                               const void *out, size_t ldo, vitq_i_epilogue e);

/* The constant subtracted from a code to store it: stored codes must fit an int8 lane (8-bit
 * storage) or an unsigned nibble (4-bit storage), whatever the grid. */
static inline int32_t vitq_i_qstore_offset(int bits, int symmetric, int store_bits) {
    if (store_bits == 4) return symmetric ? -8 : 0; /* [-8, 7] -> [0, 15]; [0, 15] as is */
    return !symmetric && bits == 8 ? 128 : 0;       /* [0, 255] -> [-128, 127]; others fit */
}

/* The int32 whose bits are u. Wrapping uint32 arithmetic is the portable C form of the modulo-2^32
 * sums (signed overflow is undefined); the true results fit int32, so this gives them back exactly. */
static inline int32_t vitq_i_wrap_i32(uint32_t u) { return u <= INT32_MAX ? (int32_t)u : -(int32_t)(~u) - 1; }

#endif
