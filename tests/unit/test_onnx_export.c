/* vitq_model_export_onnx (docs/onnx.md): the models of the bundled fmnist checkpoints are read back with
 * a small protobuf decoder of this file (independent of the library's encoder) and their structure
 * checked: node counts per operator, initializer dtypes and shapes, opset, inputs and outputs; and the
 * refusals (non-uniform schemes, integer non-linear operators, Swin, bad options).
 * tests/build/check_onnx_export.sh runs the exported models in ONNX Runtime. */
#include "harness.h"

#define CALIB "data/fashion-mnist/calib1000-images-idx3-ubyte.gz"

/* ---- a protobuf reader: just enough to walk an ONNX model ---------------------------------------- */

typedef struct field {
    uint32_t number;
    int wire;
    uint64_t value;          /* varint */
    const uint8_t *data;     /* length-delimited */
    size_t len;
} field;

/* The next field of [*p, end) into f; 0 at the end or on malformed input (flagged in *bad). */
static int next_field(const uint8_t **p, const uint8_t *end, field *f, int *bad) {
    if (*p >= end) return 0;
    uint64_t v[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        if (k == 1 && (v[0] & 7) != 0 && (v[0] & 7) != 2) break;
        int shift = 0;
        for (;;) {
            if (*p >= end || shift > 63) {
                *bad = 1;
                return 0;
            }
            uint8_t b = *(*p)++;
            v[k] |= (uint64_t)(b & 0x7f) << shift;
            shift += 7;
            if (!(b & 0x80)) break;
        }
    }
    f->number = (uint32_t)(v[0] >> 3);
    f->wire = (int)(v[0] & 7);
    f->value = v[1];
    f->data = NULL;
    f->len = 0;
    if (f->wire == 2) {
        if (v[1] > (uint64_t)(end - *p)) {
            *bad = 1;
            return 0;
        }
        f->data = *p;
        f->len = (size_t)v[1];
        *p += f->len;
    } else if (f->wire == 5) {
        if (end - *p < 4) {
            *bad = 1;
            return 0;
        }
        *p += 4;
    } else if (f->wire != 0) {
        *bad = 1;
        return 0;
    }
    return 1;
}

#define MAX_OPS 40
typedef struct summary {
    int bad;
    int64_t ir_version, opset;
    int nodes, initializers;
    char ops[MAX_OPS][32];
    int op_count[MAX_OPS];
    char input[32], output[32];
    /* one initializer looked up by name */
    const char *want_name;
    int want_dtype;
    int64_t want_dims[4];
    int want_ndim;
    size_t want_raw;
    int found;
    int meta_mean;
} summary;

static int count_of(const summary *s, const char *op) {
    for (int i = 0; i < MAX_OPS && s->ops[i][0]; i++)
        if (!strcmp(s->ops[i], op)) return s->op_count[i];
    return 0;
}

static int is_str(const field *f, const char *s) { return f->len == strlen(s) && !memcmp(f->data, s, f->len); }

static void read_node(summary *s, const uint8_t *p, const uint8_t *end) {
    field f;
    while (next_field(&p, end, &f, &s->bad))
        if (f.number == 4 && f.wire == 2) {
            int i = 0;
            while (i < MAX_OPS && s->ops[i][0] && !is_str(&f, s->ops[i])) i++;
            if (i == MAX_OPS || f.len >= sizeof s->ops[0]) {
                s->bad = 1;
                return;
            }
            memcpy(s->ops[i], f.data, f.len);
            s->op_count[i]++;
        }
}

static void read_tensor(summary *s, const uint8_t *p, const uint8_t *end) {
    field f;
    int64_t dims[4];
    int ndim = 0, dtype = 0, match = 0;
    size_t raw = 0;
    while (next_field(&p, end, &f, &s->bad)) {
        if (f.number == 1 && f.wire == 0 && ndim < 4) dims[ndim++] = (int64_t)f.value;
        if (f.number == 2) dtype = (int)f.value;
        if (f.number == 8 && s->want_name && is_str(&f, s->want_name)) match = 1;
        if (f.number == 9) raw = f.len;
    }
    if (!match) return;
    s->found = 1;
    s->want_dtype = dtype;
    s->want_ndim = ndim;
    memcpy(s->want_dims, dims, sizeof dims);
    s->want_raw = raw;
}

static void read_value_name(summary *s, const uint8_t *p, const uint8_t *end, char *out) {
    field f;
    while (next_field(&p, end, &f, &s->bad))
        if (f.number == 1 && f.wire == 2 && f.len < 32) {
            memcpy(out, f.data, f.len);
            out[f.len] = '\0';
        }
}

static void read_graph(summary *s, const uint8_t *p, const uint8_t *end) {
    field f;
    while (next_field(&p, end, &f, &s->bad)) {
        if (f.number == 1) s->nodes++, read_node(s, f.data, f.data + f.len);
        if (f.number == 5) s->initializers++, read_tensor(s, f.data, f.data + f.len);
        if (f.number == 11) read_value_name(s, f.data, f.data + f.len, s->input);
        if (f.number == 12) read_value_name(s, f.data, f.data + f.len, s->output);
    }
}

static summary summarize(const uint8_t *bytes, size_t n, const char *want_name) {
    summary s;
    memset(&s, 0, sizeof s);
    s.want_name = want_name;
    const uint8_t *p = bytes, *end = bytes + n;
    field f;
    while (next_field(&p, end, &f, &s.bad)) {
        if (f.number == 1) s.ir_version = (int64_t)f.value;
        if (f.number == 7) read_graph(&s, f.data, f.data + f.len);
        if (f.number == 8) {
            const uint8_t *q = f.data;
            field g;
            while (next_field(&q, f.data + f.len, &g, &s.bad))
                if (g.number == 2) s.opset = (int64_t)g.value;
        }
        if (f.number == 14) {
            const uint8_t *q = f.data;
            field g;
            while (next_field(&q, f.data + f.len, &g, &s.bad))
                if (g.number == 1 && is_str(&g, "vitq.mean")) s.meta_mean = 1;
        }
    }
    if (p != end) s.bad = 1;
    return s;
}

/* ---- models ------------------------------------------------------------------------------------- */

static vitq_model *load(const char *path) {
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_load_file(path, NULL, &m), VITQ_OK);
    return m;
}

/* fp quantized with `scheme` after the settings (pattern, key, value) triples of `sets`. */
static vitq_model *quantize(vitq_model *fp, const char *scheme, const char *const *sets, int nsets, int nonlinear) {
    vitq_calibrator_options o;
    vitq_calibrator_options_init(&o);
    o.scheme = scheme;
    o.nonlinear = nonlinear;
    vitq_calibrator *c = NULL;
    vitq_dataset *ds = NULL;
    vitq_model *q = NULL;
    CHECK_STATUS(vitq_calibrator_create(fp, &o, &c), VITQ_OK);
    CHECK_STATUS(vitq_dataset_load_file(CALIB, NULL, NULL, &ds), VITQ_OK);
    for (int i = 0; c && i < nsets; i++) CHECK_STATUS(vitq_calibrator_set(c, sets[3 * i], sets[3 * i + 1], sets[3 * i + 2]), VITQ_OK);
    if (c && ds) CHECK_STATUS(vitq_calibrator_feed_dataset(c, ds, 0, 8), VITQ_OK);
    if (c && ds) CHECK_STATUS(vitq_calibrator_run(c, &q), VITQ_OK);
    vitq_calibrator_free(c);
    vitq_dataset_free(ds);
    return q;
}

/* The model's ONNX bytes (malloc'd) through the memory variant, checking its size protocol. */
static uint8_t *export_bytes(const vitq_model *m, const vitq_onnx_options *o, size_t *n) {
    *n = 0;
    CHECK_STATUS(vitq_model_export_onnx_memory(m, o, NULL, 0, n), VITQ_OK);
    if (!*n) return NULL;
    uint8_t *buf = malloc(*n), small[16];
    size_t again = 0;
    CHECK_STATUS(vitq_model_export_onnx_memory(m, o, small, sizeof small, &again), VITQ_ERR_BUFFER_TOO_SMALL);
    CHECK(again == *n);
    CHECK_STATUS(vitq_model_export_onnx_memory(m, o, buf, *n, &again), VITQ_OK);
    return buf;
}

static void test_quantized_vit(void) {
    vitq_model *fp = load("models/fmnist-vit"), *q = fp ? quantize(fp, "minmax", NULL, 0, 0) : NULL;
    if (!q) {
        vitq_model_free(fp);
        return;
    }
    vitq_model_info info;
    vitq_model_info_init(&info);
    CHECK_STATUS(vitq_model_get_info(q, &info), VITQ_OK);
    int weights = 0, activations = 0;
    for (int32_t i = 0; i < info.num_quantized_points; i++) {
        vitq_point_info p;
        vitq_point_info_init(&p);
        CHECK_STATUS(vitq_model_point_info(q, i, &p), VITQ_OK);
        if (p.kind == VITQ_POINT_WEIGHT) weights++;
        else activations++;
    }
    size_t n;
    uint8_t *bytes = export_bytes(q, NULL, &n);
    int d = info.depth;
    summary s = summarize(bytes, n, "blocks.0.attn.qkv.weight.codes");
    CHECK(!s.bad);
    CHECK(s.ir_version == 8 && s.opset == 17);
    CHECK(!strcmp(s.input, "input") && !strcmp(s.output, "logits"));
    /* default W8A8: weights of every linear layer; inputs of every linear layer but the image, and q, k, v
     * and the probabilities */
    CHECK(weights == 4 * d + 2 && activations == 8 * d + 1);
    CHECK(count_of(&s, "QuantizeLinear") == activations);
    CHECK(count_of(&s, "DequantizeLinear") == activations + weights);
    CHECK(count_of(&s, "MatMul") == 6 * d + 2);
    CHECK(count_of(&s, "LayerNormalization") == 2 * d + 1);
    CHECK(count_of(&s, "Softmax") == d && count_of(&s, "Erf") == d && count_of(&s, "Split") == d);
    CHECK(count_of(&s, "ReduceMean") == 0 && count_of(&s, "Max") == 0); /* 8 bits: no clamp of narrow grids */
    CHECK(s.meta_mean);
    /* symmetric per-channel weight codes, transposed for MatMul: [in, out] int8 */
    CHECK(s.found && s.want_dtype == 3 && s.want_ndim == 2);
    CHECK(s.want_dims[0] == info.embed_dim && s.want_dims[1] == 3 * info.embed_dim);
    CHECK(s.want_raw == (size_t)(3 * info.embed_dim * info.embed_dim));
    summary z = summarize(bytes, n, "blocks.0.attn.qkv.input.zero_point");
    CHECK(z.found && z.want_dtype == 2 && z.want_ndim == 0); /* asymmetric per-tensor activation: uint8 scalar */
    summary w = summarize(bytes, n, "blocks.0.attn.qkv.weight.scale");
    CHECK(w.found && w.want_dtype == 1 && w.want_ndim == 1 && w.want_dims[0] == 3 * info.embed_dim);

    /* the file variant writes the same bytes */
    const char *path = "build/test_onnx_export.onnx";
    CHECK_STATUS(vitq_model_export_onnx(q, path, NULL), VITQ_OK);
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    if (f && bytes) {
        uint8_t *back = malloc(n + 1);
        CHECK(fread(back, 1, n + 1, f) == n);
        CHECK(memcmp(back, bytes, n) == 0);
        free(back);
    }
    if (f) fclose(f);
    remove(path);
    free(bytes);
    vitq_model_free(q);
    vitq_model_free(fp);
}

/* 4-bit activations per head and NoisyQuant's noise: clamps, per-channel parameters, Add / Sub. */
static void test_narrow_grids_and_noise(void) {
    const char *sets[] = {"*.attn.q", "granularity", "head", "*.attn.q", "bits", "4", "*.mlp.fc2.input", "noisy", "1"};
    vitq_model *fp = load("models/fmnist-vit"), *q = fp ? quantize(fp, "minmax", sets, 3, 0) : NULL;
    if (q) {
        vitq_model_info info;
        vitq_model_info_init(&info);
        vitq_model_get_info(q, &info);
        size_t n;
        uint8_t *bytes = export_bytes(q, NULL, &n);
        summary s = summarize(bytes, n, "blocks.0.attn.q.scale");
        CHECK(!s.bad);
        CHECK(count_of(&s, "Max") == info.depth && count_of(&s, "Min") == info.depth);
        CHECK(s.found && s.want_ndim == 1 && s.want_dims[0] == info.embed_dim); /* per head, repeated per channel */
        summary lo = summarize(bytes, n, "blocks.0.attn.q.lo");
        CHECK(lo.found && lo.want_ndim == 1 && lo.want_dims[0] == info.embed_dim);
        summary noise = summarize(bytes, n, "blocks.0.mlp.fc2.input.noise");
        CHECK(noise.found && noise.want_dims[0] == info.mlp_dim);
        CHECK(count_of(&s, "Sub") == info.depth); /* the noise taken off after the quantizer */
        free(bytes);
    }
    vitq_model_free(q);
    vitq_model_free(fp);
}

static void test_float_models_and_opset_13(void) {
    vitq_model *fp = load("models/fmnist-deit-distilled");
    if (!fp) return;
    vitq_model_info info;
    vitq_model_info_init(&info);
    vitq_model_get_info(fp, &info);
    vitq_onnx_options o;
    vitq_onnx_options_init(&o);
    o.opset = 13;
    size_t n;
    uint8_t *bytes = export_bytes(fp, &o, &n);
    summary s = summarize(bytes, n, "pos_embed");
    int d = info.depth;
    CHECK(!s.bad && s.ir_version == 7 && s.opset == 13);
    CHECK(count_of(&s, "QuantizeLinear") == 0 && count_of(&s, "DequantizeLinear") == 0);
    CHECK(count_of(&s, "LayerNormalization") == 0);
    CHECK(count_of(&s, "ReduceMean") == 2 * (2 * d + 2)); /* the final norm once per prefix token */
    CHECK(count_of(&s, "Gather") == 2 && count_of(&s, "Div") == 1 + 2 * d + 2);
    CHECK(count_of(&s, "MatMul") == 6 * d + 3);
    CHECK(s.found && s.want_dtype == 1 && s.want_ndim == 3 && s.want_dims[1] == info.num_tokens);
    free(bytes);
    vitq_model_free(fp);
}

static void test_refusals(void) {
    vitq_model *fp = load("models/fmnist-vit");
    if (!fp) return;
    const char *sets[] = {"blocks.1.attn.softmax.out", "scheme", "log2", "blocks.1.attn.softmax.out", "bits", "4"};
    vitq_model *q = quantize(fp, "minmax", sets, 2, 0);
    size_t n = 0;
    if (q) {
        CHECK_STATUS(vitq_model_export_onnx_memory(q, NULL, NULL, 0, &n), VITQ_ERR_UNSUPPORTED);
        CHECK(strstr(vitq_last_error(), "blocks.1.attn.softmax.out") && strstr(vitq_last_error(), "log2"));
        CHECK_STATUS(vitq_model_export_onnx(q, "build/test_onnx_refused.onnx", NULL), VITQ_ERR_UNSUPPORTED);
        FILE *f = fopen("build/test_onnx_refused.onnx", "rb");
        CHECK(f == NULL); /* nothing written */
        if (f) fclose(f);
    }
    vitq_model_free(q);
    q = quantize(fp, "minmax", NULL, 0, VITQ_NONLINEAR_IBERT);
    if (q) {
        CHECK_STATUS(vitq_model_export_onnx_memory(q, NULL, NULL, 0, &n), VITQ_ERR_UNSUPPORTED);
        CHECK(strstr(vitq_last_error(), "ibert") != NULL);
    }
    vitq_model_free(q);
    vitq_onnx_options o;
    vitq_onnx_options_init(&o);
    o.opset = 12;
    CHECK_STATUS(vitq_model_export_onnx_memory(fp, &o, NULL, 0, &n), VITQ_ERR_OUT_OF_RANGE);
    o.opset = 18;
    CHECK_STATUS(vitq_model_export_onnx_memory(fp, &o, NULL, 0, &n), VITQ_ERR_OUT_OF_RANGE);
    o.struct_size = 2;
    CHECK_STATUS(vitq_model_export_onnx_memory(fp, &o, NULL, 0, &n), VITQ_ERR_ABI_MISMATCH);
    CHECK_STATUS(vitq_model_export_onnx_memory(NULL, NULL, NULL, 0, &n), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_model_export_onnx(fp, NULL, NULL), VITQ_ERR_INVALID_ARGUMENT);
    vitq_model_free(fp);
    vitq_model *swin = load("models/fmnist-swin");
    if (swin) {
        CHECK_STATUS(vitq_model_export_onnx_memory(swin, NULL, NULL, 0, &n), VITQ_ERR_UNSUPPORTED);
        CHECK(strstr(vitq_last_error(), "Swin") != NULL);
    }
    vitq_model_free(swin);
}

int main(void) {
    RUN(test_quantized_vit);
    RUN(test_narrow_grids_and_noise);
    RUN(test_float_models_and_opset_13);
    RUN(test_refusals);
    HARNESS_EXIT();
}
