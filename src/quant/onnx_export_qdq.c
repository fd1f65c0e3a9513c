/* Quantizers as ONNX QuantizeLinear / DequantizeLinear (see onnx_export_qdq.h).
 *
 * vitq's uniform grid and ONNX's agree: code = clamp(round_half_even(x / scale) + zero, qmin, qmax),
 * value = (code - zero) * scale. Symmetric grids have signed codes (INT8, zero 0), asymmetric ones
 * unsigned codes (UINT8). QuantizeLinear clamps to the whole 8-bit range, so a grid of fewer bits is
 * first clamped in float to its own range, [(qmin - zero) * scale, (qmax - zero) * scale], by Max and
 * Min: the rounding of a clamped value then gives exactly the edge code. Groups (per head) become
 * per-channel parameters repeated over each group's channels, so every axis is per-tensor or
 * per-channel, which opset 13 has. */
#include <stdio.h>
#include <string.h>

#include "model/weights.h"
#include "quant/integer.h"
#include "quant/onnx_export_qdq.h"
#include "quant/range_scheme.h"

/* The uniform state of a quantizer, or NULL when the scheme is not one of the built-in range schemes
 * (a plugin's "scale" parameter could mean anything, so only the built-in functions are trusted). */
static const vitq_i_range_state *uniform_state(const vitq_i_qpoint *qp) {
    if (qp->inst.scheme.fake_quant != vitq_i_range_fake_quant) return NULL;
    const vitq_i_range_state *s = qp->inst.state;
    return s && s->scale && s->zero_point ? s : NULL;
}

vitq_status vitq_i_onnx_qdq_check(const vitq_i_qmodel *q) {
    if (!q) return VITQ_OK;
    if (q->nl_count) {
        const vitq_i_qnl *nl = &q->nl[0];
        return vitq_i_fail(VITQ_ERR_UNSUPPORTED,
                           "ONNX export: point '%s' feeds an integer %s (%s), which ONNX operators cannot express; "
                           "export a model quantized with --nonlinear float",
                           q->list.points[nl->point].name, vitq_i_nl_op_name(nl->op), vitq_i_nl_method_name(nl->method));
    }
    for (int i = 0; i < q->count; i++) {
        const vitq_i_qpoint *qp = &q->qpoints[i];
        const char *name = q->list.points[qp->point].name;
        const vitq_i_range_state *s = uniform_state(qp);
        if (!s)
            return vitq_i_fail(VITQ_ERR_UNSUPPORTED,
                               "ONNX export: point '%s' uses scheme '%s', which is not a uniform grid: "
                               "QuantizeLinear/DequantizeLinear express only minmax, percentile, omse and percentile-mse",
                               name, qp->inst.scheme.name);
        if (s->grid.bits > 8)
            return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "ONNX export: point '%s' has %d bits (at most 8 fit int8)", name,
                               (int)s->grid.bits);
        for (int64_t k = 0; k < s->config.groups; k++) {
            float z = s->zero_point[k], sc = s->scale[k];
            if (!(sc > 0.0f) || !isfinite(sc) || !(z >= (float)s->grid.qmin && z <= (float)s->grid.qmax) ||
                (float)(int32_t)z != z)
                return vitq_i_fail(VITQ_ERR_UNSUPPORTED,
                                   "ONNX export: point '%s' group %lld: scale %g / zero point %g is not a grid of "
                                   "QuantizeLinear (positive finite scale, integer zero point among the codes)",
                                   name, (long long)k, (double)sc, (double)z);
        }
    }
    return VITQ_OK;
}

int vitq_i_onnx_point(const vitq_i_onnx_job *x, const char *name) {
    return x->q ? vitq_i_points_find(&x->q->list, name) : -1;
}

static void fail(vitq_i_onnx_job *x, vitq_status st) {
    if (st && !x->status) x->status = st;
}

/* Name `base` + `suffix` into out; names are short by construction (points are < 96 characters). */
static void name_of(char *out, const char *base, const char *suffix) {
    vitq_i_onnx_name(out, "%s%s", base, suffix);
}

/* Dims of a per-channel operand that broadcasts along `axis` of a rank-`rank` value: [C, 1, ...]. */
static int channel_dims(int64_t channels, int rank, int axis, int64_t *dims) {
    int n = rank - axis;
    dims[0] = channels;
    for (int d = 1; d < n; d++) dims[d] = 1;
    return n;
}

/* Scale, zero point and (for narrow grids) the float clamp of a quantizer, one entry per channel (or one
 * for a per-tensor quantizer). */
typedef struct qparams {
    int64_t n;
    float *scale, *lo, *hi;
    uint8_t *zero;
} qparams;

static void qparams_free(const vitq_allocator *a, qparams *p) {
    vitq_i_free(a, p->scale);
    vitq_i_free(a, p->lo);
    vitq_i_free(a, p->hi);
    vitq_i_free(a, p->zero);
}

static vitq_status qparams_of(const vitq_allocator *a, const vitq_i_range_state *s, qparams *p) {
    memset(p, 0, sizeof *p);
    int per_tensor = s->config.groups == 1;
    p->n = per_tensor ? 1 : s->config.channels;
    p->scale = vitq_i_alloc_array(a, (size_t)p->n, sizeof(float));
    p->lo = vitq_i_alloc_array(a, (size_t)p->n, sizeof(float));
    p->hi = vitq_i_alloc_array(a, (size_t)p->n, sizeof(float));
    p->zero = vitq_i_alloc_array(a, (size_t)p->n, 1);
    if (!p->scale || !p->lo || !p->hi || !p->zero) return vitq_i_oom("ONNX quantizer parameters", (size_t)p->n * 13);
    int64_t per = per_tensor ? 1 : s->config.channels_per_group;
    for (int64_t c = 0; c < p->n; c++) {
        float sc = s->scale[c / per], z = s->zero_point[c / per];
        p->scale[c] = sc;
        p->zero[c] = (uint8_t)(int32_t)z; /* an int8 zero point as its two's complement byte */
        p->lo[c] = ((float)s->grid.qmin - z) * sc;
        p->hi[c] = ((float)s->grid.qmax - z) * sc;
    }
    return VITQ_OK;
}

void vitq_i_onnx_qdq_activation(vitq_i_onnx_job *x, int point, const char *tag, const char *in, int rank, int axis,
                                char *out) {
    vitq_i_onnx_name(out, "%s", in);
    int qi = x->q && point >= 0 ? vitq_i_qmodel_quantizer(x->q, point) : -1;
    if (qi < 0 || x->status) return;
    const vitq_i_qpoint *qp = &x->q->qpoints[qi];
    const vitq_i_range_state *s = uniform_state(qp);
    char pname[VITQ_I_ONNX_NAME];
    vitq_i_onnx_name(pname, "%s%s", x->q->list.points[point].name, tag);
    qparams p;
    memset(&p, 0, sizeof p);
    vitq_status st = s ? qparams_of(x->a, s, &p) : vitq_i_fail(VITQ_ERR_BAD_STATE, "%s: not uniform", pname);
    if (st) {
        qparams_free(x->a, &p);
        fail(x, st);
        return;
    }
    vitq_i_onnx *g = &x->g;
    int64_t dims[8];
    int nd = p.n == 1 ? 0 : channel_dims(p.n, rank, axis, dims);
    char cur[VITQ_I_ONNX_NAME], t[VITQ_I_ONNX_NAME], c1[VITQ_I_ONNX_NAME], c2[VITQ_I_ONNX_NAME];
    vitq_i_onnx_name(cur, "%s", in);
    if (qp->noise) { /* NoisyQuant: Q(x + N) - N */
        int64_t nd1[8];
        int n1 = channel_dims(qp->inst.config.channels, rank, axis, nd1);
        name_of(c1, pname, ".noise");
        vitq_i_onnx_floats(g, c1, nd1, n1, qp->noise);
        name_of(t, pname, ".noisy");
        vitq_i_onnx_op2(g, "Add", cur, c1, t);
        vitq_i_onnx_name(cur, "%s", t);
    }
    if (s->grid.bits < 8) { /* clamp to the grid's own codes, which int8 / uint8 would not */
        name_of(c1, pname, ".lo");
        name_of(c2, pname, ".hi");
        vitq_i_onnx_floats(g, c1, dims, nd, p.lo);
        vitq_i_onnx_floats(g, c2, dims, nd, p.hi);
        name_of(t, pname, ".clamp_lo");
        vitq_i_onnx_op2(g, "Max", cur, c1, t);
        name_of(cur, pname, ".clamped");
        vitq_i_onnx_op2(g, "Min", t, c2, cur);
    }
    /* QuantizeLinear / DequantizeLinear parameters: 1-D along the axis (or scalars) */
    int64_t pd[1] = {p.n};
    char sc[VITQ_I_ONNX_NAME], zp[VITQ_I_ONNX_NAME], qv[VITQ_I_ONNX_NAME];
    name_of(sc, pname, ".scale");
    name_of(zp, pname, ".zero_point");
    name_of(qv, pname, ".q");
    vitq_i_onnx_floats(g, sc, pd, p.n == 1 ? 0 : 1, p.scale);
    vitq_i_onnx_bytes(g, zp, s->grid.symmetric ? VITQ_I_ONNX_INT8 : VITQ_I_ONNX_UINT8, pd, p.n == 1 ? 0 : 1, p.zero);
    const char *qin[3] = {cur, sc, zp}, *dqin[3] = {qv, sc, zp};
    name_of(t, pname, qp->noise ? ".dq" : "");
    const char *qout = qv, *dqout = t;
    vitq_i_onnx_node_begin(g, "QuantizeLinear", qin, 3, &qout, 1);
    if (p.n > 1) vitq_i_onnx_attr_int(g, "axis", axis);
    vitq_i_onnx_node_end(g);
    vitq_i_onnx_node_begin(g, "DequantizeLinear", dqin, 3, &dqout, 1);
    if (p.n > 1) vitq_i_onnx_attr_int(g, "axis", axis);
    vitq_i_onnx_node_end(g);
    if (qp->noise) {
        name_of(c1, pname, ".noise");
        name_of(out, pname, ".denoised");
        vitq_i_onnx_op2(g, "Sub", t, c1, out);
    } else {
        vitq_i_onnx_name(out, "%s", t);
    }
    qparams_free(x->a, &p);
}

/* A float weight [out][in] as a float [in][out] initializer named `name`. */
static void float_weight(vitq_i_onnx_job *x, const vitq_i_linear *l, const char *name) {
    size_t n = l->out, k = l->in;
    float *rows = vitq_i_alloc_array(x->a, n * k, sizeof(float)), *cols = vitq_i_alloc_array(x->a, n * k, sizeof(float));
    vitq_status st = rows && cols ? vitq_i_linear_rows(x->a, l, rows) : vitq_i_oom(name, n * k * sizeof(float));
    if (!st) {
        for (size_t o = 0; o < n; o++)
            for (size_t i = 0; i < k; i++) cols[i * n + o] = rows[o * k + i];
        int64_t dims[2] = {(int64_t)k, (int64_t)n};
        vitq_i_onnx_floats(&x->g, name, dims, 2, cols);
    }
    fail(x, st);
    vitq_i_free(x->a, rows);
    vitq_i_free(x->a, cols);
}

void vitq_i_onnx_weight(vitq_i_onnx_job *x, const vitq_i_linear *l, const char *name, char *out) {
    vitq_i_onnx_name(out, "%s", name);
    if (x->status) return;
    int point = vitq_i_onnx_point(x, name);
    int qi = point >= 0 ? x->q->of_point[point] : -1;
    if (qi < 0) {
        float_weight(x, l, name);
        return;
    }
    const vitq_i_qpoint *qp = &x->q->qpoints[qi];
    vitq_i_weight_ints w;
    memset(&w, 0, sizeof w);
    size_t n = l->out, k = l->in;
    uint8_t *codes = vitq_i_alloc_array(x->a, n * k, 1), *zero = vitq_i_alloc(x->a, n);
    vitq_status st = codes && zero ? vitq_i_integer_weight_ints(x->a, qp, l, &w) : vitq_i_oom(name, n * k);
    if (!st) {
        /* transposed to [in][out] so that MatMul reads it as it is; per-output parameters on axis 1 */
        for (size_t o = 0; o < n; o++) {
            zero[o] = (uint8_t)w.zero[o];
            for (size_t i = 0; i < k; i++) codes[i * n + o] = (uint8_t)w.codes[o * k + i];
        }
        vitq_i_onnx *g = &x->g;
        char cv[VITQ_I_ONNX_NAME], sc[VITQ_I_ONNX_NAME], zp[VITQ_I_ONNX_NAME];
        name_of(cv, name, ".codes");
        name_of(sc, name, ".scale");
        name_of(zp, name, ".zero_point");
        int dtype = w.symmetric ? VITQ_I_ONNX_INT8 : VITQ_I_ONNX_UINT8;
        int64_t dims[2] = {(int64_t)k, (int64_t)n}, pd[1] = {(int64_t)n};
        vitq_i_onnx_bytes(g, cv, dtype, dims, 2, codes);
        vitq_i_onnx_floats(g, sc, pd, 1, w.scale);
        vitq_i_onnx_bytes(g, zp, dtype, pd, 1, zero);
        const char *in[3] = {cv, sc, zp}, *o = out;
        vitq_i_onnx_node_begin(g, "DequantizeLinear", in, 3, &o, 1);
        vitq_i_onnx_attr_int(g, "axis", 1);
        vitq_i_onnx_node_end(g);
    }
    vitq_i_weight_ints_free(x->a, &w);
    fail(x, st);
    vitq_i_free(x->a, codes);
    vitq_i_free(x->a, zero);
}
