/* Integer GEMM, the float side (see igemm.h): weight packing (at load time), activation quantization,
 * and the float output modes (vitq_i_qgemm, vitq_i_qgemm_requant) on the walk over blocks and tiles
 * of igemm_int.c, which holds everything the int32 mode needs without floating point. */
#include <math.h>
#include <string.h>

#include "kernels/igemm.h"
#include "kernels/isa.h"
#include "kernels/parallel.h"

#define NR VITQ_I_QGEMM_NR

/* ---- weight packing ---- */

void vitq_i_qpacked_free(const vitq_allocator *alloc, vitq_i_qpacked *p) {
    if (!p) return;
    vitq_i_free(alloc, p->data);
    vitq_i_free(alloc, p->scale);
    vitq_i_free(alloc, p->zero);
    vitq_i_free(alloc, p->kzero);
    memset(p, 0, sizeof *p);
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

    int32_t offset = vitq_i_qstore_offset(bits, symmetric, store_bits);
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

void vitq_i_qgemm_unpack_codes(const vitq_i_qpacked *p, int32_t *codes) {
    int32_t offset = vitq_i_qstore_offset(p->bits, p->symmetric, p->store_bits);
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

/* ---- the float output modes ---- */

typedef struct float_out {
    float a_scale;
    const float *bias;
    float *c; /* float output, or NULL when requantizing */
    size_t ldc;
    vitq_i_epilogue e;
    act_row next; /* requantization */
    uint8_t *q;
    size_t ldq;
    const vitq_i_isa_kernels *fk; /* GELU's vector epilogue and uniform_u8 */
} float_out;

static void float_columns(const vitq_i_qwalk *wk, size_t p0, size_t ncols, vitq_i_qcols *cols, size_t at) {
    const float_out *o = wk->mode;
    for (size_t jj = 0; jj < NR; jj++) {
        cols->scale[at + jj] = o->a_scale * wk->w->scale[p0 + jj];
        cols->bias[at + jj] = o->bias && jj < ncols ? o->bias[p0 + jj] : 0.0f;
    }
}

/* Plain and residual outputs go straight to c. GELU goes through the float kernels' vector epilogue
 * (the bits of vitq_i_gelu_erf / _tanh) over all rows of a buffered tile, and requantization through
 * the same table's uniform_u8. */
static void float_run_tile(const vitq_i_qwalk *wk, vitq_i_qtile *t, size_t r0, size_t p0,
                           void (*tile)(const vitq_i_qtile *t)) {
    const float_out *o = wk->mode;
    int gelu = o->e == VITQ_I_EPI_GELU_ERF || o->e == VITQ_I_EPI_GELU_TANH;
    t->accumulate = o->c && o->e == VITQ_I_EPI_RESIDUAL;
    if (o->c && !gelu) {
        t->out = o->c + r0 * o->ldc + p0, t->ldo = o->ldc;
        tile(t);
        return;
    }
    float buf[VITQ_I_QGEMM_MR_MAX * NR], gelu_buf[VITQ_I_QGEMM_MR_MAX * NR];
    /* GELU runs over whole buffer rows: the columns past ncols must be finite (they are never read back) */
    if (gelu && t->ncols < NR) memset(buf, 0, sizeof buf);
    t->out = buf, t->ldo = NR;
    tile(t);
    const float *v = buf;
    if (gelu) {
        o->fk->epilogue(buf, NULL, gelu_buf, t->nrows * NR, o->e);
        v = gelu_buf;
    }
    for (size_t r = 0; r < t->nrows; r++) {
        if (o->c)
            memcpy(o->c + (r0 + r) * o->ldc + p0, v + r * NR, t->ncols * sizeof(float));
        else
            quantize_row(o->fk, &o->next, v + r * NR, t->ncols, o->q + (r0 + r) * o->ldq + p0);
    }
}

static void run_float(const uint8_t *a, size_t lda, size_t m, int32_t a_zero, const vitq_i_qpacked *w,
                      float_out *o, int nthreads) {
    static const vitq_i_qimpl *const impls[VITQ_I_QK_COUNT] = VITQ_I_QIMPLS(_f32);
    o->fk = vitq_i_kernels_active();
    vitq_i_qwalk wk = {a, lda, m, a_zero, w, impls[vitq_i_qkernel_active()], float_columns, float_run_tile, o};
    vitq_i_qwalk_run(&wk, nthreads);
}

vitq_status vitq_i_qgemm(const uint8_t *a, size_t lda, size_t m, float a_scale, int32_t a_zero, const vitq_i_qpacked *w,
                         const float *bias, float *c, size_t ldc, vitq_i_epilogue e, int nthreads) {
    vitq_status st = vitq_i_qgemm_check(a, lda, m, a_zero, w, c, ldc, e);
    if (st) return st;
    float_out o;
    memset(&o, 0, sizeof o);
    o.a_scale = a_scale, o.bias = bias, o.c = c, o.ldc = ldc, o.e = e;
    run_float(a, lda, m, a_zero, w, &o, nthreads);
    return VITQ_OK;
}

vitq_status vitq_i_qgemm_requant(const uint8_t *a, size_t lda, size_t m, float a_scale, int32_t a_zero,
                                 const vitq_i_qpacked *w, const float *bias, vitq_i_epilogue e, const vitq_i_qact *next,
                                 uint8_t *q, size_t ldq, int nthreads) {
    vitq_status st = vitq_i_qgemm_check(a, lda, m, a_zero, w, q, ldq, e);
    if (st) return st;
    if (e == VITQ_I_EPI_RESIDUAL)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "qgemm requant: a residual epilogue needs a float output");
    st = vitq_i_qact_check(next);
    if (st) return st;
    float_out o;
    memset(&o, 0, sizeof o);
    o.a_scale = a_scale, o.bias = bias, o.e = e, o.next = act_row_of(next), o.q = q, o.ldq = ldq;
    run_float(a, lda, m, a_zero, w, &o, nthreads);
    return VITQ_OK;
}
