/* Integer GEMM driver (see igemm.h): weight packing, the choice of kernel, activation quantization,
 * and the blocked, parallel loop over tiles.
 *
 * The output is cut into blocks of up to MC_TILES row tiles x as many 48-channel panels as fit an L2
 * budget, on a grid that depends on the shape only (never on the thread count), shared among
 * threads. A block computes the row sums of its activation rows once (when the weight zero points
 * need them); then each row tile, whose rows stay in L1, sweeps the block's panels, which stay in L2.
 * Activation rows are read in place; only the last partial k-step of each row is copied into a
 * zero-padded tail, so the kernels never read past a row. */
#include <math.h>
#include <string.h>

#include "kernels/cpu.h"
#include "kernels/igemm.h"
#include "kernels/isa.h"
#include "kernels/parallel.h"

#define NR VITQ_I_QGEMM_NR
#define MC_TILES 8            /* row tiles per block */
#define L2_BUDGET (384 << 10) /* bytes of weight panels per block: every row tile re-reads them from L2 */
#define NC_MAX 32             /* most panels per block (bounds the per-block column arrays on the stack) */
#define MC_MAX (VITQ_I_QGEMM_MR_MAX * MC_TILES)

/* ---- kernel choice ---- */

static int forced_kernel = -1; /* shared through VITQ_I_LOAD_INT / VITQ_I_STORE_INT (cpu.h) */

int vitq_i_qkernel_available(vitq_i_qkernel k) {
    unsigned f = vitq_i_cpu_features();
    int avx512 = (f & VITQ_I_CPU_AVX512) != 0, vnni512 = avx512 && (f & VITQ_I_CPU_AVX512_VNNI);
    switch (k) {
    case VITQ_I_QK_GENERIC: return 1;
    case VITQ_I_QK_AVX2: return (f & VITQ_I_CPU_AVX2_FMA) != 0;
    case VITQ_I_QK_AVX2_VNNI: return (f & VITQ_I_CPU_AVX2_FMA) && (f & VITQ_I_CPU_AVX_VNNI);
    case VITQ_I_QK_AVX2_VNNI_EVEX: return vnni512;
    case VITQ_I_QK_AVX512BW: return avx512;
    case VITQ_I_QK_AVX512_VNNI: return vnni512;
    default: return 0;
    }
}

vitq_i_qkernel vitq_i_qkernel_active(void) {
    int k = VITQ_I_LOAD_INT(&forced_kernel);
    if (k >= 0 && vitq_i_qkernel_available((vitq_i_qkernel)k)) return (vitq_i_qkernel)k;
    unsigned f = vitq_i_features_active();
    if ((f & VITQ_I_CPU_AVX512) && (f & VITQ_I_CPU_AVX512_VNNI)) return VITQ_I_QK_AVX512_VNNI;
    if (f & VITQ_I_CPU_AVX512) return VITQ_I_QK_AVX512BW;
    if ((f & VITQ_I_CPU_AVX2_FMA) && (f & VITQ_I_CPU_AVX_VNNI)) return VITQ_I_QK_AVX2_VNNI;
    if (f & VITQ_I_CPU_AVX2_FMA) return VITQ_I_QK_AVX2;
    return VITQ_I_QK_GENERIC;
}

void vitq_i_qkernel_force(int k) { VITQ_I_STORE_INT(&forced_kernel, k < 0 || k >= VITQ_I_QK_COUNT ? -1 : k); }

const char *vitq_i_qkernel_name(vitq_i_qkernel k) {
    static const char *const names[VITQ_I_QK_COUNT] = {"generic",        "avx2",     "avx2-vnni",
                                                       "avx2-vnni-evex", "avx512bw", "avx512-vnni"};
    return (unsigned)k < VITQ_I_QK_COUNT ? names[k] : "unknown";
}

static const vitq_i_qimpl *impl_of(vitq_i_qkernel k) {
    switch (k) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    case VITQ_I_QK_AVX2: return &vitq_i_qimpl_avx2;
    case VITQ_I_QK_AVX2_VNNI: return &vitq_i_qimpl_avx2_vnni;
    case VITQ_I_QK_AVX2_VNNI_EVEX: return &vitq_i_qimpl_avx2_vnni_evex;
    case VITQ_I_QK_AVX512BW: return &vitq_i_qimpl_avx512bw;
    case VITQ_I_QK_AVX512_VNNI: return &vitq_i_qimpl_avx512_vnni;
#endif
    default: return &vitq_i_qimpl_generic;
    }
}

/* ---- weight packing ---- */

void vitq_i_qpacked_free(const vitq_allocator *alloc, vitq_i_qpacked *p) {
    if (!p) return;
    vitq_i_free(alloc, p->data);
    vitq_i_free(alloc, p->scale);
    vitq_i_free(alloc, p->zero);
    vitq_i_free(alloc, p->kzero);
    memset(p, 0, sizeof *p);
}

/* The constant subtracted from a code to store it: stored codes must fit an int8 lane (8-bit
 * storage) or an unsigned nibble (4-bit storage), whatever the grid. */
static int32_t store_offset(int bits, int symmetric, int store_bits) {
    if (store_bits == 4) return symmetric ? -8 : 0; /* [-8, 7] -> [0, 15]; [0, 15] as is */
    return !symmetric && bits == 8 ? 128 : 0;       /* [0, 255] -> [-128, 127]; others fit */
}

static vitq_status check_pack_args(const int32_t *codes, size_t n, size_t k, int bits, const float *scale,
                                   size_t groups, int *store_bits) {
    if (n > 0 && k > 0 && !codes) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "qgemm pack: NULL codes");
    if (n > 0 && !scale) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "qgemm pack: NULL scale");
    if (n > 0 && groups != 1 && groups != n)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "qgemm pack: %zu scale groups for %zu channels (need 1 or %zu)",
                           groups, n, n);
    if (bits < 2 || bits > 8)
        return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "qgemm pack: %d-bit weights (the integer GEMM takes 2 to 8 bits)",
                           bits);
    if (*store_bits == 0) *store_bits = bits <= 4 ? 4 : 8;
    if (*store_bits != 4 && *store_bits != 8)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "qgemm pack: storage of %d bits (0, 4 or 8)", *store_bits);
    if (*store_bits == 4 && bits > 4)
        return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "qgemm pack: %d-bit codes do not fit 4-bit storage", bits);
    for (size_t g = 0; g < groups && n > 0; g++)
        if (!(scale[g] > 0.0f) || !isfinite(scale[g]))
            return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "qgemm pack: scale[%zu] = %g is not finite and positive", g,
                               (double)scale[g]);
    return VITQ_OK;
}

/* |acc| <= k * 255 * max |code - zero| must fit int32 for every channel (see igemm.h). */
static vitq_status check_overflow(size_t k, int32_t qmin, int32_t qmax, const int32_t *zero, size_t groups) {
    for (size_t g = 0; g < groups; g++) {
        int64_t z = zero ? zero[g] : 0;
        int64_t dev = (int64_t)qmax - z > z - (int64_t)qmin ? (int64_t)qmax - z : z - (int64_t)qmin;
        double bound = (double)(k > 0 ? k : 1) * 255.0 * (double)dev;
        if (bound > (double)INT32_MAX)
            return vitq_i_fail(VITQ_ERR_UNSUPPORTED,
                               "qgemm pack: k = %zu with weight zero point %lld on [%d, %d] can overflow int32 "
                               "(k * 255 * %lld > 2^31 - 1)",
                               k, (long long)z, (int)qmin, (int)qmax, (long long)dev);
    }
    return VITQ_OK;
}

/* Byte of channel j (within its panel) at k-step s of the panel layout. */
static size_t layout_byte(size_t step, size_t j, size_t t) { return step * 3 * 64 + (j / 16) * 64 + (j % 16) * 4 + t; }

vitq_status vitq_i_qgemm_pack(const vitq_allocator *alloc, const int32_t *codes, size_t n, size_t k, int bits,
                              int symmetric, const float *scale, const int32_t *zero, size_t groups, int store_bits,
                              vitq_i_qpacked *out) {
    if (!out) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "qgemm pack: NULL output");
    memset(out, 0, sizeof *out);
    vitq_status st = check_pack_args(codes, n, k, bits, scale, groups, &store_bits);
    if (st) return st;
    vitq_i_uniform grid = vitq_i_uniform_grid(bits, symmetric);
    st = check_overflow(k, grid.qmin, grid.qmax, zero, n > 0 ? groups : 0);
    if (st) return st;
    for (size_t i = 0; i < n * k; i++)
        if (codes[i] < grid.qmin || codes[i] > grid.qmax)
            return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "qgemm pack: code %d at [%zu][%zu] outside [%d, %d]",
                               (int)codes[i], i / k, i % k, (int)grid.qmin, (int)grid.qmax);

    size_t kstep = store_bits == 8 ? 4 : 8, panels = (n + NR - 1) / NR, count, bytes;
    size_t kpad = (k + kstep - 1) / kstep * kstep;
    if (kpad < k || !vitq_i_mul_size(kpad, NR * (size_t)store_bits / 8, &bytes) ||
        !vitq_i_mul_size(bytes, panels, &count))
        return vitq_i_oom("packed integer weights", SIZE_MAX);
    out->data = vitq_i_calloc(alloc, count, 1);
    out->scale = vitq_i_calloc(alloc, panels * NR, sizeof(float));
    out->zero = vitq_i_calloc(alloc, panels * NR, sizeof(int32_t));
    out->kzero = vitq_i_calloc(alloc, panels * NR, sizeof(int32_t));
    if (!out->data || !out->scale || !out->zero || !out->kzero) {
        vitq_i_qpacked_free(alloc, out);
        return vitq_i_oom("packed integer weights", count);
    }
    out->n = n, out->k = k, out->bits = bits, out->symmetric = symmetric ? 1 : 0;
    out->store_bits = store_bits, out->kpad = kpad, out->panel_bytes = bytes, out->panels = panels;

    int32_t offset = store_offset(bits, symmetric, store_bits);
    for (size_t j = 0; j < n; j++) {
        size_t g = groups == 1 ? 0 : j;
        uint8_t *panel = out->data + (j / NR) * bytes;
        size_t jj = j % NR;
        int32_t zs = (zero ? zero[g] : 0) - offset; /* bounded by check_overflow */
        uint32_t sum = 0;
        for (size_t kk = 0; kk < k; kk++) {
            int32_t u = codes[j * k + kk] - offset;
            sum += (uint32_t)u;
            if (store_bits == 8)
                panel[layout_byte(kk / 4, jj, kk % 4)] = (uint8_t)(int8_t)u;
            else
                panel[layout_byte(kk / 8, jj, kk % 4)] |= (uint8_t)(kk % 8 < 4 ? u : u << 4);
        }
        out->scale[j] = scale[g];
        out->zero[j] = zs;
        out->kzero[j] = vitq_i_wrap_i32((uint32_t)k * (uint32_t)zs - sum);
        if (zs != 0) out->need_row_sums = 1;
    }
    return VITQ_OK;
}

int32_t vitq_i_qgemm_zero_point(const vitq_i_qpacked *p, size_t j) {
    return p->zero[j] + store_offset(p->bits, p->symmetric, p->store_bits);
}

void vitq_i_qgemm_unpack_codes(const vitq_i_qpacked *p, int32_t *codes) {
    int32_t offset = store_offset(p->bits, p->symmetric, p->store_bits);
    for (size_t j = 0; j < p->n; j++) {
        const uint8_t *panel = p->data + (j / NR) * p->panel_bytes;
        size_t jj = j % NR;
        for (size_t kk = 0; kk < p->k; kk++) {
            int32_t u;
            if (p->store_bits == 8) u = (int8_t)panel[layout_byte(kk / 4, jj, kk % 4)];
            else u = (panel[layout_byte(kk / 8, jj, kk % 4)] >> (kk % 8 < 4 ? 0 : 4)) & 15;
            codes[j * p->k + kk] = u + offset;
        }
    }
}

/* ---- activation bytes as the right-hand side ---- */

static size_t round64(size_t v) { return (v + 63) / 64 * 64; }

size_t vitq_i_qgemm_bytes_size(size_t n, size_t k) {
    size_t panels = (n + NR - 1) / NR, kpad = (k + 3) / 4 * 4, data;
    if (kpad < k || !vitq_i_mul_size(kpad * NR, panels, &data) || data > SIZE_MAX / 2) return SIZE_MAX;
    return round64(data) + 3 * round64(panels * NR * sizeof(int32_t));
}

/* Stored code of byte v: v - 128 (an int8 lane), whatever the grid (see vitq_i_qgemm_pack_bytes). */
static uint32_t stored_word(uint32_t four_bytes) { return four_bytes ^ 0x80808080u; }

vitq_status vitq_i_qgemm_pack_bytes(const uint8_t *b, size_t rs, size_t cs, size_t n, size_t k,
                                    const vitq_i_qact *g, void *mem, vitq_i_qpacked *out) {
    memset(out, 0, sizeof *out);
    /* |byte - zero byte| <= 255 on both sides */
    if (k > 0 && (double)k * 255.0 * 255.0 > (double)INT32_MAX)
        return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "qgemm: k = %zu activation bytes can overflow int32", k);
    size_t panels = (n + NR - 1) / NR, kpad = (k + 3) / 4 * 4, bytes = kpad * NR, cols = panels * NR;
    uint8_t *data = mem;
    out->n = n, out->k = k, out->bits = 8, out->symmetric = 1, out->store_bits = 8;
    out->kpad = kpad, out->panel_bytes = bytes, out->panels = panels, out->data = data;
    out->scale = (float *)(void *)(data + round64(bytes * panels));
    out->zero = (int32_t *)(void *)((uint8_t *)out->scale + round64(cols * sizeof(int32_t)));
    out->kzero = (int32_t *)(void *)((uint8_t *)out->zero + round64(cols * sizeof(int32_t)));
    memset(data, 0, bytes * panels);
    memset(out->kzero, 0, cols * sizeof(int32_t)); /* padded channels: no correction */
    int32_t zs = g->zero + vitq_i_qact_offset(g) - 128;
    uint32_t sums[NR];
    for (size_t p = 0; p < panels; p++) {
        uint8_t *panel = data + p * bytes;
        size_t width = n - p * NR < NR ? n - p * NR : NR;
        memset(sums, 0, sizeof sums);
        for (size_t q = 0; 4 * q < k; q++) {
            uint8_t *dst = panel + q * 3 * 64;
            size_t take = k - 4 * q < 4 ? k - 4 * q : 4;
            for (size_t jj = 0; jj < width; jj++) {
                const uint8_t *src = b + (p * NR + jj) * rs + 4 * q * cs;
                uint32_t w = 0;
                if (cs == 1 && take == 4) {
                    memcpy(&w, src, 4); /* little-endian: byte t is k = 4q + t, as the layout wants */
                } else {
                    for (size_t t = 0; t < take; t++) w |= (uint32_t)src[t * cs] << (8 * t);
                }
                sums[jj] += (w & 0xff) + (w >> 8 & 0xff) + (w >> 16 & 0xff) + (w >> 24);
                uint32_t stored = stored_word(w);
                if (take < 4) stored &= 0xffffffffu >> (8 * (4 - take)); /* padded k stores 0 */
                memcpy(dst + (jj / 16) * 64 + (jj % 16) * 4, &stored, 4);
            }
        }
        for (size_t jj = 0; jj < NR; jj++) {
            size_t j = p * NR + jj;
            out->scale[j] = jj < width ? g->scale : 0.0f;
            out->zero[j] = jj < width ? zs : 0;
            /* sum of stored codes = sum of bytes - 128 k */
            if (jj < width) out->kzero[j] = vitq_i_wrap_i32((uint32_t)k * (uint32_t)zs - (sums[jj] - 128u * (uint32_t)k));
        }
    }
    out->need_row_sums = zs != 0;
    return VITQ_OK;
}

/* ---- activation quantization ---- */

vitq_status vitq_i_qact_check(const vitq_i_qact *q) {
    if (!q) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "activation grid: NULL");
    if (!(q->scale > 0.0f) || !isfinite(q->scale))
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "activation grid: scale %g is not finite and positive",
                           (double)q->scale);
    int32_t off = vitq_i_qact_offset(q);
    if (q->qmin > q->qmax || q->qmin + off < 0 || q->qmax + off > 255)
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "activation grid: codes [%d, %d] do not fit a byte", (int)q->qmin,
                           (int)q->qmax);
    if (q->zero + off < 0 || q->zero + off > 255)
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "activation grid: zero point %d does not fit a byte", (int)q->zero);
    return VITQ_OK;
}

int32_t vitq_i_qact_offset(const vitq_i_qact *q) { return q->qmin < 0 ? 128 : 0; }

/* The arguments of the tables' uniform_u8 for grid q. */
typedef struct act_row {
    vitq_i_uniform grid;
    float scale, zero;
    int32_t offset;
} act_row;

static act_row act_row_of(const vitq_i_qact *q) {
    act_row p;
    p.grid.bits = 8;
    p.grid.symmetric = q->qmin < 0;
    p.grid.qmin = q->qmin;
    p.grid.qmax = q->qmax;
    p.scale = q->scale;
    p.zero = (float)q->zero;
    p.offset = vitq_i_qact_offset(q);
    return p;
}

static void quantize_row(const vitq_i_isa_kernels *isa, const act_row *p, const float *x, size_t n, uint8_t *out) {
    isa->uniform_u8(&p->grid, x, n, p->scale, p->zero, p->offset, out);
}

#define QUANT_ROWS 16 /* rows per parallel task */

typedef struct quant_job {
    const vitq_i_isa_kernels *isa;
    act_row p;
    const float *x;
    size_t ldx, rows, cols;
    uint8_t *out;
    size_t ldo;
} quant_job;

/* Rows b * QUANT_ROWS .. (b + 1) * QUANT_ROWS. */
static void quant_task(void *ctx, int64_t b, int worker) {
    const quant_job *q = ctx;
    (void)worker;
    size_t r0 = (size_t)b * QUANT_ROWS, r1 = r0 + QUANT_ROWS < q->rows ? r0 + QUANT_ROWS : q->rows;
    for (size_t r = r0; r < r1; r++) quantize_row(q->isa, &q->p, q->x + r * q->ldx, q->cols, q->out + r * q->ldo);
}

void vitq_i_quantize_u8(const float *x, size_t ldx, size_t rows, size_t cols, const vitq_i_qact *q, uint8_t *out,
                        size_t ldo, int nthreads) {
    if (rows == 0 || cols == 0) return;
    quant_job j = {vitq_i_kernels_active(), act_row_of(q), x, ldx, rows, cols, out, ldo};
    vitq_i_parallel_for(vitq_i_resolve_threads(nthreads), (int64_t)((rows + QUANT_ROWS - 1) / QUANT_ROWS), quant_task,
                        &j);
}

/* ---- the GEMM ---- */

typedef struct qgemm_job {
    const uint8_t *a;
    size_t lda, m;
    float a_scale;
    int32_t a_zero;
    const vitq_i_qpacked *w;
    const float *bias;
    float *c; /* float output, or NULL when requantizing */
    size_t ldc;
    vitq_i_epilogue e;
    act_row next; /* requantization */
    uint8_t *q;
    size_t ldq;
    const vitq_i_qimpl *impl;
} qgemm_job;

/* At most 255 k, which the pack's overflow check keeps below 2^31. */
static int32_t byte_sum(const uint8_t *p, size_t n) {
    uint32_t s = 0;
    for (size_t i = 0; i < n; i++) s += p[i];
    return (int32_t)s;
}

/* Column constants of one panel. */
static void panel_columns(const qgemm_job *j, size_t p0, size_t ncols, int32_t *col_add, float *col_scale,
                          float *col_bias) {
    for (size_t jj = 0; jj < NR; jj++) {
        col_add[jj] = vitq_i_wrap_i32((uint32_t)j->a_zero * (uint32_t)j->w->kzero[p0 + jj]);
        col_scale[jj] = j->a_scale * j->w->scale[p0 + jj];
        col_bias[jj] = j->bias && jj < ncols ? j->bias[p0 + jj] : 0.0f;
    }
}

/* Panels per block: blocks of equal size, each within the L2 budget. Depends on the shape only. */
static size_t block_panels(const vitq_i_qpacked *w) {
    size_t most = w->panel_bytes ? L2_BUDGET / w->panel_bytes : NC_MAX;
    most = most < 1 ? 1 : most > NC_MAX ? NC_MAX : most;
    size_t blocks = (w->panels + most - 1) / most;
    return (w->panels + blocks - 1) / blocks;
}

/* Rows per block: at most MC_TILES tiles, blocks as even as whole tiles allow. */
static size_t block_rows(size_t m, size_t mr) {
    size_t most = mr * MC_TILES, blocks = (m + most - 1) / most;
    size_t tiles = ((m + blocks - 1) / blocks + mr - 1) / mr;
    return tiles * mr;
}

static void run_block(const qgemm_job *j, size_t row0, size_t mc, size_t col0, size_t nc) {
    const vitq_i_qpacked *w = j->w;
    size_t mr = w->store_bits == 8 ? j->impl->mr8 : j->impl->mr4, k = w->k;
    size_t row_end = row0 + mc < j->m ? row0 + mc : j->m;
    size_t col_end = col0 + nc < w->n ? col0 + nc : w->n;
    size_t kstep = w->store_bits == 8 ? 4 : 8, kdirect = k / kstep * kstep;
    void (*tile)(const vitq_i_qtile *) = w->store_bits == 8 ? j->impl->tile8 : j->impl->tile4;

    int32_t row_sum[MC_MAX] = {0};
    uint8_t tails[MC_MAX * 8] = {0};
    for (size_t r = row0; r < row_end; r++) {
        const uint8_t *row = j->a + r * j->lda;
        if (w->need_row_sums) row_sum[r - row0] = byte_sum(row, k);
        memcpy(tails + 8 * (r - row0), row + kdirect, k - kdirect);
    }

    int32_t col_add[NR * NC_MAX];
    float col_scale[NR * NC_MAX], col_bias[NR * NC_MAX], buf[VITQ_I_QGEMM_MR_MAX * NR];
    for (size_t p0 = col0; p0 < col_end; p0 += NR) {
        size_t pc = (p0 - col0) / NR;
        panel_columns(j, p0, col_end - p0 < NR ? col_end - p0 : NR, col_add + pc * NR, col_scale + pc * NR,
                      col_bias + pc * NR);
    }
    /* GELU through the float kernels' vector epilogue (the bits of vitq_i_gelu_erf / _tanh), once per
     * tile over all its rows; the buffer's columns past ncols hold finite leftovers (0 or an earlier
     * tile's values), which are never read back. Requantization by the same table's uniform_u8. */
    const vitq_i_isa_kernels *fk = vitq_i_kernels_active();
    float gelu_buf[VITQ_I_QGEMM_MR_MAX * NR];
    memset(buf, 0, sizeof buf);
    vitq_i_qtile t;
    t.kdirect = kdirect;
    t.kpad = w->kpad;
    t.need_row_sums = w->need_row_sums;
    t.accumulate = j->c && j->e == VITQ_I_EPI_RESIDUAL;
    int gelu = j->e == VITQ_I_EPI_GELU_ERF || j->e == VITQ_I_EPI_GELU_TANH;
    for (size_t r0 = row0; r0 < row_end; r0 += mr) {
        size_t nrows = row_end - r0 < mr ? row_end - r0 : mr;
        for (size_t r = 0; r < mr; r++) t.rows[r] = j->a + (r0 + (r < nrows ? r : nrows - 1)) * j->lda;
        t.tail = tails + 8 * (r0 - row0);
        t.row_sum = row_sum + (r0 - row0);
        t.nrows = nrows;
        for (size_t p0 = col0; p0 < col_end; p0 += NR) {
            size_t ncols = col_end - p0 < NR ? col_end - p0 : NR;
            size_t pc = (p0 - col0) / NR;
            t.col_add = col_add + pc * NR, t.col_scale = col_scale + pc * NR, t.col_bias = col_bias + pc * NR;
            t.panel = w->data + (p0 / NR) * w->panel_bytes;
            t.col_zero = w->zero + p0;
            t.ncols = ncols;
            if (j->c && !gelu) {
                t.out = j->c + r0 * j->ldc + p0, t.ldo = j->ldc;
                tile(&t);
                continue;
            }
            t.out = buf, t.ldo = NR;
            tile(&t);
            const float *v = buf;
            if (gelu) {
                fk->epilogue(buf, NULL, gelu_buf, nrows * NR, j->e);
                v = gelu_buf;
            }
            for (size_t r = 0; r < nrows; r++) {
                if (j->c)
                    memcpy(j->c + (r0 + r) * j->ldc + p0, v + r * NR, ncols * sizeof(float));
                else
                    quantize_row(fk, &j->next, v + r * NR, ncols, j->q + (r0 + r) * j->ldq + p0);
            }
        }
    }
}

static vitq_status check_gemm(const uint8_t *a, size_t lda, size_t m, int32_t a_zero, const vitq_i_qpacked *w,
                              const void *out, size_t ldo, vitq_i_epilogue e) {
    if (!w) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "qgemm: NULL weights");
    if (a_zero < 0 || a_zero > 255)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "qgemm: activation zero point %d outside [0, 255]", (int)a_zero);
    if ((unsigned)e > VITQ_I_EPI_RESIDUAL) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "qgemm: epilogue %d", (int)e);
    if (m > 0 && w->n > 0) {
        if (!a || !out) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "qgemm: NULL input or output");
        if (lda < w->k || ldo < w->n)
            return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "qgemm: strides %zu, %zu below k = %zu, n = %zu", lda, ldo,
                               w->k, w->n);
    }
    return VITQ_OK;
}

typedef struct block_grid {
    const qgemm_job *j;
    size_t mc, nc, col_blocks;
} block_grid;

static void block_task(void *ctx, int64_t b, int worker) {
    const block_grid *g = ctx;
    (void)worker;
    run_block(g->j, (size_t)b / g->col_blocks * g->mc, g->mc, (size_t)b % g->col_blocks * g->nc, g->nc);
}

static void run(const qgemm_job *j, int nthreads) {
    if (j->m == 0 || j->w->n == 0) return;
    size_t mr = j->w->store_bits == 8 ? j->impl->mr8 : j->impl->mr4;
    block_grid g = {j, block_rows(j->m, mr), NR * block_panels(j->w), 0};
    size_t row_blocks = (j->m + g.mc - 1) / g.mc;
    g.col_blocks = (j->w->n + g.nc - 1) / g.nc;
    vitq_i_parallel_for(vitq_i_resolve_threads(nthreads), (int64_t)(row_blocks * g.col_blocks), block_task, &g);
}

vitq_status vitq_i_qgemm(const uint8_t *a, size_t lda, size_t m, float a_scale, int32_t a_zero, const vitq_i_qpacked *w,
                         const float *bias, float *c, size_t ldc, vitq_i_epilogue e, int nthreads) {
    vitq_status st = check_gemm(a, lda, m, a_zero, w, c, ldc, e);
    if (st) return st;
    qgemm_job j;
    memset(&j, 0, sizeof j);
    j.a = a, j.lda = lda, j.m = m, j.a_scale = a_scale, j.a_zero = a_zero, j.w = w, j.bias = bias;
    j.c = c, j.ldc = ldc, j.e = e;
    j.impl = impl_of(vitq_i_qkernel_active());
    run(&j, nthreads);
    return VITQ_OK;
}

vitq_status vitq_i_qgemm_requant(const uint8_t *a, size_t lda, size_t m, float a_scale, int32_t a_zero,
                                 const vitq_i_qpacked *w, const float *bias, vitq_i_epilogue e, const vitq_i_qact *next,
                                 uint8_t *q, size_t ldq, int nthreads) {
    vitq_status st = check_gemm(a, lda, m, a_zero, w, q, ldq, e);
    if (st) return st;
    if (e == VITQ_I_EPI_RESIDUAL)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "qgemm requant: a residual epilogue needs a float output");
    st = vitq_i_qact_check(next);
    if (st) return st;
    qgemm_job j;
    memset(&j, 0, sizeof j);
    j.a = a, j.lda = lda, j.m = m, j.a_scale = a_scale, j.a_zero = a_zero, j.w = w, j.bias = bias;
    j.e = e, j.next = act_row_of(next), j.q = q, j.ldq = ldq;
    j.impl = impl_of(vitq_i_qkernel_active());
    run(&j, nthreads);
    return VITQ_OK;
}
