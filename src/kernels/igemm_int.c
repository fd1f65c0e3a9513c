/* The integer side of the integer GEMM (see igemm.h): the choice of kernel, the blocked parallel walk
 * over tiles that both output modes share, the int32 output mode (vitq_i_qgemm_i32) and the packing of
 * activation bytes as the right-hand side. The integer-only runtime (kernels/intvit.c) runs on these,
 * so this file holds no floating point: it builds with -mgeneral-regs-only
 * (tests/build/check_float_free.sh). The float mode (igemm.c) adds its column constants and its
 * output to the same walk.
 *
 * The walk cuts the output into blocks of up to MC_TILES row tiles x as many 48-channel panels as fit
 * an L2 budget, on a grid that depends on the shape only (never on the thread count), shared among
 * threads. A block computes the row sums of its activation rows once (when the weight zero points
 * need them); then each row tile, whose rows stay in L1, sweeps the block's panels, which stay in L2.
 * Activation rows are read in place; only the last partial k-step of each row is copied into a
 * zero-padded tail, so the kernels never read past a row. */
#include <string.h>

#include "kernels/cpu.h"
#include "kernels/igemm.h"
#include "kernels/igemm_int_sink.h"
#include "kernels/parallel.h"

#define NR VITQ_I_QGEMM_NR
#define NC_MAX VITQ_I_QGEMM_NC_MAX
#define MC_TILES 8            /* row tiles per block */
#define L2_BUDGET (384 << 10) /* bytes of weight panels per block: every row tile re-reads them from L2 */
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

/* ---- the walk ---- */

/* At most 255 k, which the pack's overflow check keeps below 2^31. */
static int32_t byte_sum(const uint8_t *p, size_t n) {
    uint32_t s = 0;
    for (size_t i = 0; i < n; i++) s += p[i];
    return (int32_t)s;
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

static void run_block(const vitq_i_qwalk *wk, size_t row0, size_t mc, size_t col0, size_t nc) {
    const vitq_i_qpacked *w = wk->w;
    size_t mr = w->store_bits == 8 ? wk->impl->mr8 : wk->impl->mr4, k = w->k;
    size_t row_end = row0 + mc < wk->m ? row0 + mc : wk->m;
    size_t col_end = col0 + nc < w->n ? col0 + nc : w->n;
    size_t kstep = w->store_bits == 8 ? 4 : 8, kdirect = k / kstep * kstep;
    void (*tile)(const vitq_i_qtile *) = w->store_bits == 8 ? wk->impl->tile8 : wk->impl->tile4;

    int32_t row_sum[MC_MAX] = {0};
    uint8_t tails[MC_MAX * 8] = {0};
    for (size_t r = row0; r < row_end; r++) {
        const uint8_t *row = wk->a + r * wk->lda;
        if (w->need_row_sums) row_sum[r - row0] = byte_sum(row, k);
        memcpy(tails + 8 * (r - row0), row + kdirect, k - kdirect);
    }

    vitq_i_qcols cols;
    for (size_t p0 = col0; p0 < col_end; p0 += NR) {
        size_t at = p0 - col0;
        for (size_t jj = 0; jj < NR; jj++)
            cols.add[at + jj] = vitq_i_wrap_i32((uint32_t)wk->a_zero * (uint32_t)w->kzero[p0 + jj]);
        wk->columns(wk, p0, col_end - p0 < NR ? col_end - p0 : NR, &cols, at);
    }
    vitq_i_qtile t;
    t.kdirect = kdirect;
    t.kpad = w->kpad;
    t.need_row_sums = w->need_row_sums;
    t.out = NULL, t.iout = NULL, t.accumulate = 0; /* the mode's to set */
    for (size_t r0 = row0; r0 < row_end; r0 += mr) {
        size_t nrows = row_end - r0 < mr ? row_end - r0 : mr;
        for (size_t r = 0; r < mr; r++) t.rows[r] = wk->a + (r0 + (r < nrows ? r : nrows - 1)) * wk->lda;
        t.tail = tails + 8 * (r0 - row0);
        t.row_sum = row_sum + (r0 - row0);
        t.nrows = nrows;
        for (size_t p0 = col0; p0 < col_end; p0 += NR) {
            size_t at = p0 - col0;
            t.col_add = cols.add + at, t.col_ibias = cols.ibias + at;
            t.col_scale = cols.scale + at, t.col_bias = cols.bias + at;
            t.panel = w->data + (p0 / NR) * w->panel_bytes;
            t.col_zero = w->zero + p0;
            t.ncols = col_end - p0 < NR ? col_end - p0 : NR;
            wk->run_tile(wk, &t, r0, p0, tile);
        }
    }
}

typedef struct block_grid {
    const vitq_i_qwalk *wk;
    size_t mc, nc, col_blocks;
} block_grid;

static void block_task(void *ctx, int64_t b, int worker) {
    const block_grid *g = ctx;
    (void)worker;
    run_block(g->wk, (size_t)b / g->col_blocks * g->mc, g->mc, (size_t)b % g->col_blocks * g->nc, g->nc);
}

void vitq_i_qwalk_run(const vitq_i_qwalk *wk, int nthreads) {
    if (wk->m == 0 || wk->w->n == 0) return;
    size_t mr = wk->w->store_bits == 8 ? wk->impl->mr8 : wk->impl->mr4;
    block_grid g = {wk, block_rows(wk->m, mr), NR * block_panels(wk->w), 0};
    size_t row_blocks = (wk->m + g.mc - 1) / g.mc;
    g.col_blocks = (wk->w->n + g.nc - 1) / g.nc;
    vitq_i_parallel_for(vitq_i_resolve_threads(nthreads), (int64_t)(row_blocks * g.col_blocks), block_task, &g);
}

vitq_status vitq_i_qgemm_check(const uint8_t *a, size_t lda, size_t m, int32_t a_zero, const vitq_i_qpacked *w,
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

/* ---- the int32 output mode ---- */

typedef struct i32_out {
    const int32_t *bias;
    int32_t *c;
    size_t ldc;
} i32_out;

static void i32_columns(const vitq_i_qwalk *wk, size_t p0, size_t ncols, vitq_i_qcols *cols, size_t at) {
    const i32_out *o = wk->mode;
    for (size_t jj = 0; jj < NR; jj++) cols->ibias[at + jj] = o->bias && jj < ncols ? o->bias[p0 + jj] : 0;
}

/* Straight into the int32 output. */
static void i32_run_tile(const vitq_i_qwalk *wk, vitq_i_qtile *t, size_t r0, size_t p0,
                         void (*tile)(const vitq_i_qtile *t)) {
    const i32_out *o = wk->mode;
    t->iout = o->c + r0 * o->ldc + p0, t->ldo = o->ldc;
    tile(t);
}

/* k * max|a - a_zero| * max|wq - w_zero[j]| + |bias[j]| <= 2^31 - 1 for every channel (igemm.h). The
 * deviation is taken in the stored domain, where code - zero = u - zs. */
static vitq_status check_int_bias(const vitq_i_qpacked *w, int32_t a_zero, const int32_t *bias) {
    /* the code range of the weight grid (kernels/uniform.h), shifted to the stored domain */
    int64_t qmin = w->symmetric ? -((int64_t)1 << (w->bits - 1)) : 0;
    int64_t qmax = w->symmetric ? ((int64_t)1 << (w->bits - 1)) - 1 : ((int64_t)1 << w->bits) - 1;
    int32_t off = vitq_i_qstore_offset(w->bits, w->symmetric, w->store_bits);
    int64_t umin = qmin - off, umax = qmax - off;
    int64_t adev = a_zero > 255 - a_zero ? a_zero : 255 - a_zero;
    for (size_t jj = 0; jj < w->n; jj++) {
        int64_t zs = w->zero[jj], wdev = umax - zs > zs - umin ? umax - zs : zs - umin;
        int64_t b = bias ? bias[jj] : 0;
        /* k * adev * wdev <= 2^31 - 1 by the pack's check, so no int64 term overflows */
        int64_t bound = (int64_t)w->k * adev * wdev + (b < 0 ? -b : b);
        if (bound > INT32_MAX)
            return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE,
                               "qgemm i32: bias[%zu] = %lld with k = %zu, activation zero point %d: |acc| + |bias| "
                               "can reach %lld > 2^31 - 1",
                               jj, (long long)b, w->k, (int)a_zero, (long long)bound);
    }
    return VITQ_OK;
}

vitq_status vitq_i_qgemm_i32(const uint8_t *a, size_t lda, size_t m, int32_t a_zero, const vitq_i_qpacked *w,
                             const int32_t *bias, int32_t *c, size_t ldc, int nthreads) {
    vitq_status st = vitq_i_qgemm_check(a, lda, m, a_zero, w, c, ldc, VITQ_I_EPI_NONE);
    if (st) return st;
    st = check_int_bias(w, a_zero, bias);
    if (st) return st;
    static const vitq_i_qimpl *const impls[VITQ_I_QK_COUNT] = VITQ_I_QIMPLS(_i32);
    i32_out o = {bias, c, ldc};
    vitq_i_qwalk wk = {a, lda, m, a_zero, w, impls[vitq_i_qkernel_active()], i32_columns, i32_run_tile, &o};
    vitq_i_qwalk_run(&wk, nthreads);
    return VITQ_OK;
}

/* ---- the int32 output handed to a sink (igemm_int_sink.h) ---- */

typedef struct sink_out {
    const int32_t *bias;
    vitq_i_qgemm_sink sink;
    void *ctx;
} sink_out;

static void sink_columns(const vitq_i_qwalk *wk, size_t p0, size_t ncols, vitq_i_qcols *cols, size_t at) {
    const sink_out *o = wk->mode;
    for (size_t jj = 0; jj < NR; jj++) cols->ibias[at + jj] = o->bias && jj < ncols ? o->bias[p0 + jj] : 0;
}

/* The tile into a block on this worker's stack (L1), then to the sink. */
static void sink_run_tile(const vitq_i_qwalk *wk, vitq_i_qtile *t, size_t r0, size_t p0,
                          void (*tile)(const vitq_i_qtile *t)) {
    const sink_out *o = wk->mode;
    _Alignas(64) int32_t block[VITQ_I_QGEMM_MR_MAX * NR];
    t->iout = block, t->ldo = NR;
    tile(t);
    o->sink(o->ctx, r0, t->nrows, p0, t->ncols, block, NR);
}

vitq_status vitq_i_qgemm_i32_sink(const uint8_t *a, size_t lda, size_t m, int32_t a_zero, const vitq_i_qpacked *w,
                                  const int32_t *bias, vitq_i_qgemm_sink sink, void *ctx, int nthreads) {
    /* the output stride check of vitq_i_qgemm_check has nothing to check here: the sink's own block */
    vitq_status st = vitq_i_qgemm_check(a, lda, m, a_zero, w, sink ? (const void *)&sink : NULL, w ? w->n : 0,
                                        VITQ_I_EPI_NONE);
    if (st) return st;
    st = check_int_bias(w, a_zero, bias);
    if (st) return st;
    static const vitq_i_qimpl *const impls[VITQ_I_QK_COUNT] = VITQ_I_QIMPLS(_i32);
    sink_out o = {bias, sink, ctx};
    vitq_i_qwalk wk = {a, lda, m, a_zero, w, impls[vitq_i_qkernel_active()], sink_columns, sink_run_tile, &o};
    vitq_i_qwalk_run(&wk, nthreads);
    return VITQ_OK;
}

/* ---- packed weights, integer queries ---- */

int32_t vitq_i_qgemm_zero_point(const vitq_i_qpacked *p, size_t j) {
    return p->zero[j] + vitq_i_qstore_offset(p->bits, p->symmetric, p->store_bits);
}

int32_t vitq_i_qact_offset(const vitq_i_qact *q) { return q->qmin < 0 ? 128 : 0; }

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
    /* |byte - zero byte| <= 255 on both sides: k * 255 * 255 <= 2^31 - 1, in integers */
    if (k > (size_t)INT32_MAX / (255u * 255u))
        return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "qgemm: k = %zu activation bytes can overflow int32", k);
    size_t panels = (n + NR - 1) / NR, kpad = (k + 3) / 4 * 4, bytes = kpad * NR, cols = panels * NR;
    uint8_t *data = mem;
    out->n = n, out->k = k, out->bits = 8, out->symmetric = 1, out->store_bits = 8;
    out->kpad = kpad, out->panel_bytes = bytes, out->panels = panels, out->data = data;
    out->scale = (float *)(void *)(data + round64(bytes * panels));
    out->zero = (int32_t *)(void *)((uint8_t *)out->scale + round64(cols * sizeof(int32_t)));
    out->kzero = (int32_t *)(void *)((uint8_t *)out->zero + round64(cols * sizeof(int32_t)));
    memset(data, 0, bytes * panels);
    /* padded channels: scale 0 (all bits zero is 0.0f), no correction; the scales are copied as bytes,
     * which keeps this file free of floating point */
    memset(out->scale, 0, cols * sizeof(float));
    memset(out->kzero, 0, cols * sizeof(int32_t));
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
            out->zero[j] = jj < width ? zs : 0;
            if (jj >= width) continue;
            memcpy(out->scale + j, &g->scale, sizeof(float));
            /* sum of stored codes = sum of bytes - 128 k */
            out->kzero[j] = vitq_i_wrap_i32((uint32_t)k * (uint32_t)zs - (sums[jj] - 128u * (uint32_t)k));
        }
    }
    out->need_row_sums = zs != 0;
    return VITQ_OK;
}
