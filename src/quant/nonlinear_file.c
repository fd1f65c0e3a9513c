/* Saving and loading the integer non-linear operators of a quantized file (nonlinear_file.h). */
#include "quant/nonlinear_file.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "util/json.h"
#include "util/text.h"

/* The int32 parameters of each kernel, by the name the file gives them. */
typedef struct field {
    const char *key;
    size_t offset; /* of an int32_t in the kernel's parameter struct (the union vitq_i_qnl.k) */
} field;

#define F(type, member) {#member, offsetof(type, member)}
static const field ibert_softmax_fields[] = {F(vitq_i_ibert_softmax_params, x0_int), F(vitq_i_ibert_softmax_params, b_int),
                                             F(vitq_i_ibert_softmax_params, c_int), F(vitq_i_ibert_softmax_params, exp_mult),
                                             F(vitq_i_ibert_softmax_params, exp_shift), F(vitq_i_ibert_softmax_params, out_bits),
                                             {NULL, 0}};
static const field lis_fields[] = {F(vitq_i_lis_params, x0_int), F(vitq_i_lis_params, b_int), F(vitq_i_lis_params, c_int),
                                   F(vitq_i_lis_params, bits), {NULL, 0}};
static const field shiftmax_fields[] = {F(vitq_i_shiftmax_params, x0), F(vitq_i_shiftmax_params, out_bits), {NULL, 0}};
static const field ibert_gelu_fields[] = {F(vitq_i_ibert_gelu_params, b_int), F(vitq_i_ibert_gelu_params, c_int),
                                          F(vitq_i_ibert_gelu_params, shift), F(vitq_i_ibert_gelu_params, one), {NULL, 0}};
static const field shiftgelu_fields[] = {F(vitq_i_shiftgelu_params, x0), F(vitq_i_shiftgelu_params, out_bits), {NULL, 0}};
static const field int_ln_fields[] = {F(vitq_i_int_layernorm_params, variant), F(vitq_i_int_layernorm_params, channels),
                                      {"out_zero", offsetof(vitq_i_int_layernorm_params, out.zero)},
                                      {"out_min", offsetof(vitq_i_int_layernorm_params, out.min)},
                                      {"out_max", offsetof(vitq_i_int_layernorm_params, out.max)}, {NULL, 0}};
static const field ptf_ln_fields[] = {F(vitq_i_ptf_layernorm_params, channels),
                                      {"out_zero", offsetof(vitq_i_ptf_layernorm_params, out.zero)},
                                      {"out_min", offsetof(vitq_i_ptf_layernorm_params, out.min)},
                                      {"out_max", offsetof(vitq_i_ptf_layernorm_params, out.max)}, {NULL, 0}};
#undef F

static const field *fields_of(int op, int32_t method) {
    if (op == VITQ_I_NL_LAYERNORM) return method == VITQ_NONLINEAR_FQVIT ? ptf_ln_fields : int_ln_fields;
    if (op == VITQ_I_NL_SOFTMAX)
        return method == VITQ_NONLINEAR_IBERT ? ibert_softmax_fields
               : method == VITQ_NONLINEAR_FQVIT ? lis_fields
                                                : shiftmax_fields;
    return method == VITQ_NONLINEAR_IBERT ? ibert_gelu_fields : shiftgelu_fields;
}

/* The per-channel tensors of a LayerNorm: name, dtype ("I32" or "I64"). */
typedef struct column {
    const char *name;
    int wide; /* I64 */
} column;
static const column int_ln_columns[] = {{"mult", 0}, {"shift", 0}, {"bias", 1}, {NULL, 0}};
static const column ptf_columns[] = {{"alpha", 0}, {"sign", 0}, {"g", 0}, {"ge", 0}, {"bq", 1}, {NULL, 0}};

/* Value `col` of channel c (the columns above, in order). */
static int64_t column_get(const vitq_i_qnl *nl, int col, int32_t c) {
    if (!nl->alpha) {
        const vitq_i_ln_channel *x = &nl->ln_ch[c];
        return col == 0 ? x->mult : col == 1 ? x->shift : x->bias;
    }
    const vitq_i_ptf_channel *x = &nl->ptf_ch[c];
    return col == 0 ? nl->alpha[c] : col == 1 ? x->sign : col == 2 ? x->g : col == 3 ? x->ge : x->bq;
}

static void column_set(vitq_i_qnl *nl, int col, int32_t c, int64_t v) {
    if (!nl->alpha) {
        vitq_i_ln_channel *x = &nl->ln_ch[c];
        if (col == 0) x->mult = (int32_t)v;
        else if (col == 1) x->shift = (int32_t)v;
        else x->bias = v;
        return;
    }
    vitq_i_ptf_channel *x = &nl->ptf_ch[c];
    if (col == 0) nl->alpha[c] = x->alpha = (int32_t)v;
    else if (col == 1) x->sign = (int32_t)v;
    else if (col == 2) x->g = (int32_t)v;
    else if (col == 3) x->ge = (int32_t)v;
    else x->bq = v;
}

/* ---- writing ---- */

static void put_le(uint8_t *p, int64_t v, int bytes) {
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(u >> (8 * i));
}

static vitq_status write_columns(vitq_i_st_writer *w, const vitq_i_qnl *nl, const char *point) {
    const column *cols = nl->alpha ? ptf_columns : int_ln_columns;
    for (int k = 0; cols[k].name; k++) {
        int bytes = cols[k].wide ? 8 : 4;
        uint8_t *data = vitq_i_alloc_array(&w->alloc, (size_t)nl->channels, (size_t)bytes);
        if (!data) return vitq_i_oom(point, (size_t)nl->channels * (size_t)bytes);
        for (int32_t c = 0; c < nl->channels; c++) put_le(data + (size_t)c * bytes, column_get(nl, k, c), bytes);
        char full[VITQ_I_POINT_NAME + 16];
        snprintf(full, sizeof full, "%s.nl_%s", point, cols[k].name);
        uint64_t shape[1] = {(uint64_t)nl->channels};
        vitq_status st = vitq_i_stw_add_owned(w, full, cols[k].wide ? "I64" : "I32", 1, shape, data,
                                              (size_t)nl->channels * (size_t)bytes);
        if (st) return st;
    }
    return VITQ_OK;
}

static void describe(vitq_i_text *t, const vitq_i_qnl *nl, const char *point, int first) {
    vitq_i_text_append(t, "%s{\"name\":\"%s\",\"op\":\"%s\",\"method\":\"%s\",\"input_bits\":%d,\"input_zero\":%d,",
                       first ? "" : ",", point, vitq_i_nl_op_name(nl->op), vitq_i_nl_method_name(nl->method),
                       (int)nl->in_bits, (int)nl->in_zero);
    vitq_i_text_append(t, "\"input_scale\":%.17g,\"output_scale\":%.17g,\"kernel\":{", nl->in_scale, nl->out_scale);
    const field *f = fields_of(nl->op, nl->method);
    for (int i = 0; f[i].key; i++) {
        int32_t v;
        memcpy(&v, (const char *)&nl->k + f[i].offset, sizeof v);
        vitq_i_text_append(t, "%s\"%s\":%d", i ? "," : "", f[i].key, (int)v);
    }
    vitq_i_text_append(t, "},\"dsqnr\":{");
    for (int m = 0; m < VITQ_I_NL_METHODS; m++) {
        const char *name = vitq_i_nl_method_name(m + 1);
        if (isfinite(nl->dsqnr[m])) vitq_i_text_append(t, "%s\"%s\":%.9g", m ? "," : "", name, nl->dsqnr[m]);
        else vitq_i_text_append(t, "%s\"%s\":null", m ? "," : "", name);
    }
    vitq_i_text_append(t, "}}");
}

vitq_status vitq_i_nl_write(vitq_i_st_writer *w, const vitq_i_qmodel *q) {
    if (!q->nl_count) return VITQ_OK;
    vitq_i_text t = {&w->alloc, NULL, 0, 0, 0};
    vitq_status st = VITQ_OK;
    vitq_i_text_append(&t, "[");
    for (int i = 0; !st && i < q->nl_count; i++) {
        const vitq_i_qnl *nl = &q->nl[i];
        const char *point = q->list.points[nl->point].name;
        describe(&t, nl, point, i == 0);
        if (nl->op == VITQ_I_NL_LAYERNORM) st = write_columns(w, nl, point);
    }
    vitq_i_text_append(&t, "]");
    if (!st && t.failed) st = vitq_i_oom("integer operator table", t.cap ? 2 * t.cap : 4096);
    if (!st) st = vitq_i_stw_meta(w, VITQ_I_NL_META_KEY, t.s);
    vitq_i_text_free(&t);
    return st;
}

/* ---- reading ---- */

static vitq_status parse_table(const vitq_allocator *a, const vitq_i_safetensors *st, vitq_i_json **root) {
    *root = NULL;
    const char *text = vitq_i_st_meta(st, VITQ_I_NL_META_KEY);
    if (!text) return VITQ_OK;
    vitq_status s = vitq_i_json_parse(a, text, strlen(text), VITQ_I_NL_META_KEY, root);
    if (!s && (*root)->type != VITQ_I_JSON_ARRAY) {
        vitq_i_json_free(a, *root);
        *root = NULL;
        s = vitq_i_fail(VITQ_ERR_FORMAT, "%s: %s is not a JSON array", st->name, VITQ_I_NL_META_KEY);
    }
    return s;
}

vitq_status vitq_i_nl_count(const vitq_allocator *a, const vitq_i_safetensors *st, int *count) {
    vitq_i_json *root;
    vitq_status s = parse_table(a, st, &root);
    *count = root ? (int)root->count : 0;
    vitq_i_json_free(a, root);
    return s;
}

static int64_t get_le(const uint8_t *p, int bytes) {
    uint64_t u = 0;
    for (int i = 0; i < bytes; i++) u |= (uint64_t)p[i] << (8 * i);
    if (bytes == 4) return (int64_t)(int32_t)(uint32_t)u;
    return u <= INT64_MAX ? (int64_t)u : -(int64_t)(~u) - 1;
}

static vitq_status read_columns(const vitq_allocator *a, const vitq_i_safetensors *st, vitq_i_qnl *nl,
                                const char *point, vitq_status (*remember)(void *, const char *), void *ctx) {
    size_t C = (size_t)nl->channels;
    if (nl->method == VITQ_NONLINEAR_FQVIT) {
        nl->alpha = vitq_i_alloc_array(a, C, sizeof *nl->alpha);
        nl->ptf_ch = vitq_i_alloc_array(a, C, sizeof *nl->ptf_ch);
        if (!nl->alpha || !nl->ptf_ch) return vitq_i_oom(point, C * sizeof *nl->ptf_ch);
        nl->k.ptf_layernorm.ch = nl->ptf_ch;
    } else {
        nl->ln_ch = vitq_i_alloc_array(a, C, sizeof *nl->ln_ch);
        if (!nl->ln_ch) return vitq_i_oom(point, C * sizeof *nl->ln_ch);
        nl->k.int_layernorm.ch = nl->ln_ch;
    }
    const column *cols = nl->alpha ? ptf_columns : int_ln_columns;
    for (int k = 0; cols[k].name; k++) {
        char full[VITQ_I_POINT_NAME + 16];
        snprintf(full, sizeof full, "%s.nl_%s", point, cols[k].name);
        const vitq_i_st_tensor *t = vitq_i_st_find(st, full);
        vitq_i_elem want = cols[k].wide ? VITQ_I_ELEM_I64 : VITQ_I_ELEM_I32;
        if (!t) return vitq_i_fail(VITQ_ERR_MISSING_TENSOR, "%s: integer LayerNorm tensor '%s' is missing", st->name, full);
        if (t->array.elem != want || t->array.ndim != 1 || t->array.shape[0] != C)
            return vitq_i_fail(VITQ_ERR_SHAPE, "%s: tensor '%s' must be %s [%zu]", st->name, full,
                               cols[k].wide ? "I64" : "I32", C);
        int bytes = cols[k].wide ? 8 : 4;
        for (size_t c = 0; c < C; c++) column_set(nl, k, (int32_t)c, get_le(t->array.data + c * bytes, bytes));
        vitq_status s = remember(ctx, full);
        if (s) return s;
    }
    return VITQ_OK;
}

static vitq_status check_kernel(const vitq_i_qnl *nl) {
    switch (nl->op * 4 + nl->method) {
    case VITQ_I_NL_LAYERNORM * 4 + VITQ_NONLINEAR_FQVIT: return vitq_i_ptf_layernorm_check(&nl->k.ptf_layernorm);
    case VITQ_I_NL_LAYERNORM * 4 + VITQ_NONLINEAR_IBERT:
    case VITQ_I_NL_LAYERNORM * 4 + VITQ_NONLINEAR_IVIT: {
        int32_t variant = nl->method == VITQ_NONLINEAR_IBERT ? VITQ_I_LN_IBERT : VITQ_I_LN_IVIT;
        if (nl->k.int_layernorm.variant != variant)
            return vitq_i_fail(VITQ_ERR_FORMAT, "LayerNorm variant %d is not method %s's", (int)nl->k.int_layernorm.variant,
                               vitq_i_nl_method_name(nl->method));
        return vitq_i_int_layernorm_check(&nl->k.int_layernorm);
    }
    case VITQ_I_NL_SOFTMAX * 4 + VITQ_NONLINEAR_IBERT: return vitq_i_ibert_softmax_check(&nl->k.ibert_softmax);
    case VITQ_I_NL_SOFTMAX * 4 + VITQ_NONLINEAR_FQVIT: return vitq_i_lis_check(&nl->k.lis);
    case VITQ_I_NL_SOFTMAX * 4 + VITQ_NONLINEAR_IVIT: return vitq_i_shiftmax_check(&nl->k.shiftmax);
    case VITQ_I_NL_GELU * 4 + VITQ_NONLINEAR_IBERT: return vitq_i_ibert_gelu_check(&nl->k.ibert_gelu);
    case VITQ_I_NL_GELU * 4 + VITQ_NONLINEAR_IVIT: return vitq_i_shiftgelu_check(&nl->k.shiftgelu);
    default: return vitq_i_fail(VITQ_ERR_FORMAT, "no integer %s of method %s", vitq_i_nl_op_name(nl->op),
                                vitq_i_nl_method_name(nl->method));
    }
}

static vitq_status read_entry(const vitq_allocator *a, const vitq_i_safetensors *st, const vitq_i_json *e,
                              vitq_i_qnl *nl, char *name, vitq_status (*remember)(void *, const char *), void *ctx) {
    const char *file = st->name, *point = NULL, *op = NULL, *method = NULL;
    int64_t in_bits, in_zero;
    double in_scale = 0, out_scale = 0;
    for (int m = 0; m < VITQ_I_NL_METHODS; m++) nl->dsqnr[m] = NAN;
    vitq_status s = vitq_i_json_get_string(e, "name", file, &point, NULL);
    if (!s && !point) s = vitq_i_fail(VITQ_ERR_FORMAT, "%s: a %s entry has no name", file, VITQ_I_NL_META_KEY);
    if (!s && strlen(point) >= VITQ_I_POINT_NAME)
        s = vitq_i_fail(VITQ_ERR_FORMAT, "%s: %s: point name '%.40s...' too long", file, VITQ_I_NL_META_KEY, point);
    if (s) return s;
    strcpy(name, point);
    s = vitq_i_json_get_string(e, "op", file, &op, NULL);
    if (!s) s = vitq_i_json_get_string(e, "method", file, &method, NULL);
    if (!s) s = vitq_i_json_get_int(e, "input_bits", file, 2, 16, &in_bits, NULL);
    if (!s) s = vitq_i_json_get_int(e, "input_zero", file, -65536, 65536, &in_zero, NULL);
    if (!s) s = vitq_i_json_get_number(e, "input_scale", file, &in_scale, NULL);
    if (!s) s = vitq_i_json_get_number(e, "output_scale", file, &out_scale, NULL);
    if (s) return s;
    nl->op = -1;
    for (int o = 0; op && o < 3; o++)
        if (!strcmp(op, vitq_i_nl_op_name(o))) nl->op = o;
    nl->method = vitq_i_nl_method_parse(method);
    if (nl->op < 0 || nl->method < VITQ_NONLINEAR_IBERT || nl->method > VITQ_NONLINEAR_IVIT ||
        !vitq_i_nl_has_kernel(nl->method, nl->op))
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: operator '%s': no integer %s of method %s", file, point,
                           op ? op : "(none)", method ? method : "(none)");
    int ptf = nl->op == VITQ_I_NL_LAYERNORM && nl->method == VITQ_NONLINEAR_FQVIT;
    if (in_bits != (ptf ? VITQ_I_NL_PTF_BITS : VITQ_I_NL_INPUT_BITS) ||
        (ptf ? in_zero < 0 || in_zero > (1 << VITQ_I_NL_PTF_BITS) - 1 : in_zero != 0))
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: operator '%s': input grid of %d bits, zero point %d: this kernel takes "
                           "%s", file, point, (int)in_bits, (int)in_zero,
                           ptf ? "8-bit codes with a zero point in [0, 255]" : "16-bit codes with zero point 0");
    if (!(in_scale > 0 && isfinite(in_scale) && out_scale > 0 && isfinite(out_scale)))
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: operator '%s': scales must be finite and positive", file, point);
    nl->in_bits = (int32_t)in_bits;
    nl->in_zero = (int32_t)in_zero;
    nl->in_scale = in_scale;
    nl->out_scale = out_scale;
    const vitq_i_json *kernel = vitq_i_json_get(e, "kernel");
    const field *f = fields_of(nl->op, nl->method);
    for (int i = 0; f[i].key; i++) {
        int64_t v;
        int found = 0;
        s = vitq_i_json_get_int(kernel, f[i].key, file, INT32_MIN, INT32_MAX, &v, &found);
        if (!s && !found)
            s = vitq_i_fail(VITQ_ERR_FORMAT, "%s: operator '%s' lacks kernel parameter '%s'", file, point, f[i].key);
        if (s) return s;
        int32_t x = (int32_t)v;
        memcpy((char *)&nl->k + f[i].offset, &x, sizeof x);
    }
    const vitq_i_json *dsqnr = vitq_i_json_get(e, "dsqnr");
    for (int m = 0; m < VITQ_I_NL_METHODS; m++) {
        const vitq_i_json *v = vitq_i_json_get(dsqnr, vitq_i_nl_method_name(m + 1));
        if (v && v->type == VITQ_I_JSON_NUMBER) nl->dsqnr[m] = v->number;
    }
    if (nl->op == VITQ_I_NL_LAYERNORM) {
        nl->channels = nl->method == VITQ_NONLINEAR_FQVIT ? nl->k.ptf_layernorm.channels : nl->k.int_layernorm.channels;
        if (nl->channels < 1 || nl->channels > VITQ_I_INTNL_MAX_N)
            return vitq_i_fail(VITQ_ERR_FORMAT, "%s: operator '%s': %d channels", file, point, (int)nl->channels);
        if ((s = read_columns(a, st, nl, point, remember, ctx))) return s;
    }
    if ((s = check_kernel(nl))) vitq_i_error_prefix("%s: operator '%s'", file, point);
    return s;
}

vitq_status vitq_i_nl_read(const vitq_allocator *a, const vitq_i_safetensors *st, vitq_i_qnl *out,
                           char (*names)[VITQ_I_POINT_NAME], int count,
                           vitq_status (*remember)(void *ctx, const char *name), void *ctx) {
    vitq_i_json *root;
    vitq_status s = parse_table(a, st, &root);
    if (!s && (root ? (int)root->count : 0) != count)
        s = vitq_i_fail(VITQ_ERR_BAD_STATE, "%s: %s changed while read", st->name, VITQ_I_NL_META_KEY);
    for (int i = 0; !s && i < count; i++) s = read_entry(a, st, root->items[i], &out[i], names[i], remember, ctx);
    vitq_i_json_free(a, root);
    return s;
}

vitq_status vitq_i_nl_attach(vitq_i_qmodel *q, vitq_i_qnl *nl, char (*names)[VITQ_I_POINT_NAME], int count,
                             const char *file) {
    for (int i = 0; i < count; i++) {
        int p = vitq_i_points_find(&q->list, names[i]);
        if (p < 0)
            return vitq_i_fail(VITQ_ERR_FORMAT, "%s: integer operator '%s': no such point in this model", file, names[i]);
        const vitq_i_point_desc *d = &q->list.points[p];
        if (nl[i].op == VITQ_I_NL_LAYERNORM && d->channels != nl[i].channels)
            return vitq_i_fail(VITQ_ERR_FORMAT, "%s: integer LayerNorm '%s' has %d channels, the model's %lld", file,
                               names[i], (int)nl[i].channels, (long long)d->channels);
        nl[i].point = p;
    }
    q->nl = nl;
    q->nl_count = count;
    return vitq_i_qmodel_index_nl(q, file);
}
