/* RepQ-ViT reparameterisation and NoisyQuant: the identities the two folds promise, checked on random
 * data with outlier channels and on a real model block; argument errors; the noise generator. */
#include <float.h>
#include <stdint.h>

#include "api/model.h"
#include "harness.h"
#include "kernels/kernels.h"
#include "model/net.h"
#include "model/weights.h"
#include "quant/noisy.h"
#include "quant/reparam.h"
#include "quant/uniform.h"
#include "quant/view.h"
#include "test_util.h"

/* ---- data ------------------------------------------------------------------------------------ */

#include "test_random.h"
static float *floats(size_t n) { return calloc(n + 1, sizeof(float)); }
static float *copy_floats(const float *x, size_t n) {
    float *p = floats(n);
    memcpy(p, x, n * sizeof(float));
    return p;
}
static double max_abs(const double *v, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fabs(v[i]) > m ? fabs(v[i]) : m;
    return m;
}
static vitq_allocator malloc_allocator(void) {
    vitq_allocator a;
    vitq_i_allocator_resolve(NULL, &a);
    return a;
}

/* ---- linear layers ------------------------------------------------------------------------------ */

/* bias_kind: 0 random, 1 all zeros, 2 NULL (the fold must create one). */
static void make_linear(const vitq_allocator *a, size_t out, size_t in, int bias_kind, vitq_i_linear *l) {
    memset(l, 0, sizeof *l);
    l->in = in;
    l->out = out;
    l->weight = vitq_i_alloc_array(a, out * in, sizeof(float));
    for (size_t i = 0; i < out * in; i++) l->weight[i] = gauss() / (float)sqrt((double)in);
    if (bias_kind != 2) {
        l->bias = vitq_i_calloc(a, out, sizeof(float));
        for (size_t o = 0; bias_kind == 0 && o < out; o++) l->bias[o] = 0.2f * gauss();
    }
    CHECK_STATUS(vitq_i_gemm_pack(a, l->weight, out, in, &l->packed), VITQ_OK);
}
static void free_linear(const vitq_allocator *a, vitq_i_linear *l) {
    vitq_i_free(a, l->weight);
    vitq_i_free(a, l->bias);
    vitq_i_gemm_packed_free(a, &l->packed);
}

/* out = x . W^T + bias in double, from the float weights (the reference). */
static double *linear_ref(const float *x, size_t rows, const vitq_i_linear *l) {
    double *out = calloc(rows * l->out + 1, sizeof(double));
    for (size_t t = 0; t < rows; t++)
        for (size_t o = 0; o < l->out; o++) {
            double acc = l->bias ? l->bias[o] : 0.0;
            for (size_t c = 0; c < l->in; c++) acc += (double)x[t * l->in + c] * l->weight[o * l->in + c];
            out[t * l->out + o] = acc;
        }
    return out;
}
/* The same through the packed panels and the library GEMM (what the forward pass runs). */
static double *linear_gemm(const float *x, size_t rows, const vitq_i_linear *l) {
    float *f = floats(rows * l->out);
    double *out = calloc(rows * l->out + 1, sizeof(double));
    vitq_i_gemm(x, l->in, rows, &l->packed, l->bias, f, l->out, VITQ_I_EPI_NONE, 1);
    for (size_t i = 0; i < rows * l->out; i++) out[i] = f[i];
    free(f);
    return out;
}

/* ---- RepQ: the identity -------------------------------------------------------------------------- */

#define MAX_NEXT 4

/* What the unfolded model computes: LayerNorm output, per-channel parameters, codes, outputs. */
typedef struct repq_ref {
    float *y, *scale, *zero;
    int32_t *codes;
    double *out_q[MAX_NEXT], *out_fp[MAX_NEXT];
} repq_ref;

/* Per-channel asymmetric parameters from each channel's range, shrunk by `shrink` so that the
 * outlier tails are clipped (the clamp must survive the fold too). */
static void per_channel_params(const vitq_i_uniform *u, const float *y, size_t rows, size_t d, double shrink,
                               float *scale, float *zero) {
    for (size_t c = 0; c < d; c++) {
        double lo = DBL_MAX, hi = -DBL_MAX;
        for (size_t t = 0; t < rows; t++) lo = fmin(lo, y[t * d + c]), hi = fmax(hi, y[t * d + c]);
        vitq_i_uniform_params(u, lo * shrink, hi * shrink, &scale[c], &zero[c]);
    }
}

static void repq_reference(const vitq_i_uniform *u, const float *x, size_t rows, size_t d, float eps,
                           const vitq_i_layernorm_params *ln, vitq_i_linear *const *next, int n, repq_ref *r) {
    r->y = floats(rows * d);
    r->scale = floats(d);
    r->zero = floats(d);
    r->codes = calloc(rows * d + 1, sizeof(int32_t));
    vitq_i_layernorm(x, rows, d, ln->gamma, ln->beta, eps, r->y, 1);
    per_channel_params(u, r->y, rows, d, 0.9, r->scale, r->zero);
    vitq_tensor_view v = vitq_i_view_columns(r->y, (int64_t)rows, (int64_t)d, (int64_t)d);
    vitq_i_uniform_quantize(u, r->scale, r->zero, 1, &v, r->codes);
    float *yq = copy_floats(r->y, rows * d);
    v.data = yq;
    vitq_i_uniform_fake_quant(u, r->scale, r->zero, 1, &v);
    for (int i = 0; i < n; i++) {
        r->out_q[i] = linear_ref(yq, rows, next[i]);
        r->out_fp[i] = linear_ref(r->y, rows, next[i]);
    }
    free(yq);
}

static void repq_ref_free(repq_ref *r, int n) {
    free(r->y), free(r->scale), free(r->zero), free(r->codes);
    for (int i = 0; i < n; i++) free(r->out_q[i]), free(r->out_fp[i]);
}

/* Codes of the folded path against the per-channel codes. A difference is only acceptable as a
 * float-rounding tie: one code apart, and the per-channel x / scale within 1e-3 of k + 1/2.
 * Marks the rows that hold a difference in `row_bad`. Returns the number of differences. */
static size_t compare_codes(const repq_ref *r, const int32_t *codes, size_t rows, size_t d, char *row_bad) {
    size_t diff = 0;
    for (size_t t = 0; t < rows; t++)
        for (size_t c = 0; c < d; c++) {
            size_t i = t * d + c;
            if (codes[i] == r->codes[i]) continue;
            double q = (double)r->y[i] / r->scale[c], tie = fabs(q - floor(q) - 0.5);
            if (abs(codes[i] - r->codes[i]) != 1 || tie > 1e-3) {
                printf("    code of token %zu channel %zu: %d, per-channel %d (x/scale %.6f)\n", t, c, (int)codes[i],
                       (int)r->codes[i], q);
                harness_check_failures++;
            }
            row_bad[t] = 1;
            diff++;
        }
    return diff;
}

/* max |got - want| over the rows not marked, relative to max |want|. */
static double rel_error(const double *got, const double *want, size_t rows, size_t cols, const char *row_bad) {
    double worst = 0.0, scale = max_abs(want, rows * cols);
    for (size_t t = 0; t < rows; t++)
        for (size_t o = 0; !(row_bad && row_bad[t]) && o < cols; o++)
            worst = fmax(worst, fabs(got[t * cols + o] - want[t * cols + o]));
    return worst / (scale > 0.0 ? scale : 1.0);
}

/* Fold ln -> next with per-channel parameters calibrated on x (rows x d residual-stream tokens) and
 * check: same codes, same quantized outputs, same FP32 outputs. */
static void check_fold(const vitq_allocator *a, const float *x, size_t rows, size_t d, float eps,
                       vitq_i_layernorm_params *ln, vitq_i_linear *const *next, int n, int bits, const char *label) {
    vitq_i_uniform u = vitq_i_uniform_grid(bits, 0);
    repq_ref r;
    repq_reference(&u, x, rows, d, eps, ln, next, n, &r);
    float ts = 0.0f, tz = -1.0f;
    CHECK_STATUS(vitq_i_repq_fold(a, ln, d, next, n, r.scale, r.zero, &ts, &tz), VITQ_OK);
    double mean_s = 0.0, mean_z = 0.0;
    for (size_t c = 0; c < d; c++) mean_s += r.scale[c], mean_z += r.zero[c];
    CHECK_NEAR(ts, mean_s / (double)d, 1e-6 * ts);
    CHECK(tz == nearbyint(mean_z / (double)d) && tz >= 0.0f && tz <= (float)u.qmax);

    /* the folded path: LN', one per-tensor grid, the folded linears through their new panels */
    float *y2 = floats(rows * d);
    int32_t *codes = calloc(rows * d + 1, sizeof(int32_t));
    char *row_bad = calloc(rows + 1, 1);
    vitq_i_layernorm(x, rows, d, ln->gamma, ln->beta, eps, y2, 1);
    vitq_tensor_view v = vitq_i_view_columns(y2, (int64_t)rows, (int64_t)d, (int64_t)d);
    vitq_i_uniform_quantize(&u, &ts, &tz, (int64_t)d, &v, codes);
    size_t diff = compare_codes(&r, codes, rows, d, row_bad);
    CHECK(diff <= 2 + rows * d / 1000);
    /* the data must exercise what the fold has to get right: clipped codes and unequal zero points */
    size_t clipped = 0, zero_spread = 0;
    for (size_t i = 0; i < rows * d; i++) clipped += r.codes[i] == 0 || r.codes[i] == u.qmax;
    for (size_t c = 1; c < d; c++) zero_spread += r.zero[c] != r.zero[0];
    CHECK(clipped > 0 && zero_spread > 0);
    double worst_q = 0.0, worst_fp = 0.0;
    float *y2q = copy_floats(y2, rows * d);
    v.data = y2q;
    vitq_i_uniform_fake_quant(&u, &ts, &tz, (int64_t)d, &v);
    for (int i = 0; i < n; i++) {
        double *got_q = linear_gemm(y2q, rows, next[i]), *got_fp = linear_gemm(y2, rows, next[i]);
        worst_q = fmax(worst_q, rel_error(got_q, r.out_q[i], rows, next[i]->out, row_bad));
        worst_fp = fmax(worst_fp, rel_error(got_fp, r.out_fp[i], rows, next[i]->out, NULL));
        free(got_q), free(got_fp);
    }
    CHECK(worst_q <= 1e-4);
    CHECK(worst_fp <= 1e-4);
    printf("    %s W?A%d: %zu/%zu codes differ (ties), max rel. error quantized %.2g, FP32 %.2g\n", label, bits, diff,
           rows * d, worst_q, worst_fp);
    free(y2), free(codes), free(row_bad), free(y2q);
    repq_ref_free(&r, n);
}

/* A post-LN activation with strong per-channel outliers: a few channels get a large gamma and an
 * offset beta, as the systematic outlier channels of trained ViTs do. */
static void outlier_layernorm(size_t d, vitq_i_layernorm_params *ln) {
    ln->gamma = floats(d);
    ln->beta = floats(d);
    for (size_t c = 0; c < d; c++) {
        ln->gamma[c] = 1.0f + 0.3f * gauss();
        ln->beta[c] = 0.5f * gauss();
        if (c % 17 == 3) ln->gamma[c] *= 15.0f, ln->beta[c] += 4.0f;
        if (c % 23 == 5) ln->beta[c] -= 6.0f;
    }
}

static float *residual_tokens(size_t rows, size_t d) {
    float *x = floats(rows * d);
    for (size_t t = 0; t < rows; t++)
        for (size_t c = 0; c < d; c++) x[t * d + c] = 2.0f * gauss() + 0.3f * (float)(c % 5);
    return x;
}

/* The caveat behind the rounded zero point: RepQ-ViT's reference code keeps the mean zero point Zf
 * fractional, b_c = (Zf - z_c) S. Emulated here in double (vitq's grids hold integer zero points
 * only): mapped back to channel c, the per-tensor grid is the per-channel one shifted by frac(Zf)
 * steps, so the dequantized values no longer reproduce the per-channel ones (0 is no longer exact
 * either). Returns how many of the rows x d values differ. */
static size_t fractional_zero_mismatches(const vitq_i_uniform *u, const repq_ref *r, size_t rows, size_t d,
                                         double *frac) {
    double s = 0.0, zf = 0.0;
    for (size_t c = 0; c < d; c++) s += r->scale[c], zf += r->zero[c];
    s /= (double)d, zf /= (double)d;
    *frac = zf - floor(zf);
    size_t moved = 0;
    for (size_t t = 0; t < rows; t++)
        for (size_t c = 0; c < d; c++) {
            double rc = r->scale[c] / s, bc = (zf - r->zero[c]) * s, y = r->y[t * d + c];
            double q = fmin(fmax(nearbyint((y / rc - bc) / s) + zf, u->qmin), u->qmax);
            double folded = rc * ((q - zf) * s + bc); /* what the next linear effectively reads */
            double want = ((double)r->codes[t * d + c] - r->zero[c]) * r->scale[c];
            moved += fabs(folded - want) > 1e-3 * r->scale[c];
        }
    return moved;
}

static void test_repq_fractional_zero(void) {
    const size_t rows = 80, d = 64;
    vitq_i_uniform u = vitq_i_uniform_grid(6, 0);
    vitq_i_layernorm_params ln;
    outlier_layernorm(d, &ln);
    float *x = residual_tokens(rows, d);
    repq_ref r;
    repq_reference(&u, x, rows, d, 1e-6f, &ln, NULL, 0, &r);
    double frac = 0.0;
    size_t moved = fractional_zero_mismatches(&u, &r, rows, d, &frac);
    printf("    fractional mean zero point: %zu/%zu dequantized values differ (grid shifted by %.3f of a step)\n", moved,
           rows * d, frac);
    CHECK(frac < 0.05 || frac > 0.95 || moved > rows * d / 20);
    repq_ref_free(&r, 0);
    free(x), free(ln.gamma), free(ln.beta);
}

static void repq_case(size_t d, int bits) {
    vitq_allocator a = malloc_allocator();
    const size_t rows = 80;
    vitq_i_layernorm_params ln;
    vitq_i_linear l1, l2;
    outlier_layernorm(d, &ln);
    /* two readers of one LayerNorm (as q, k, v or a Swin merge would be), the second without bias */
    make_linear(&a, 2 * d + 5, d, 0, &l1);
    make_linear(&a, d / 2 + 3, d, d == 64 ? 2 : 1, &l2);
    float *x = residual_tokens(rows, d);
    vitq_i_linear *next[2] = {&l1, &l2};
    char label[64];
    snprintf(label, sizeof label, "d=%zu", d);
    check_fold(&a, x, rows, d, 1e-6f, &ln, next, 2, bits, label);
    CHECK(l2.bias != NULL); /* created when absent */
    free(x), free(ln.gamma), free(ln.beta);
    free_linear(&a, &l1);
    free_linear(&a, &l2);
}

static void test_repq_identity(void) {
    static const size_t dims[] = {7, 64, 193};
    static const int bits[] = {4, 6, 8};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) repq_case(dims[i], bits[j]);
}

/* The fold on a real checkpoint: norm1 -> qkv of block 0 and norm2 -> fc1 of the last block, checked
 * on random residual-stream tokens; the FP32 logits of the whole model must not move. */
static void test_repq_model(void) {
    vitq_model *handle = NULL;
    CHECK_STATUS(vitq_model_load_file("tests/fixtures/models/odd-vit-hf", NULL, &handle), VITQ_OK);
    if (!handle) return;
    vitq_i_net *m = handle->net;
    /* the fold rewrites row-major weights, which calibration attaches to its copy of a model */
    CHECK_STATUS(vitq_i_model_attach_rows(m), VITQ_OK);
    uint64_t n = 0, cols = 0;
    float *input = load_npy_f32("tests/fixtures/models/odd-vit-hf/input.npy", &n, &cols);
    CHECK(input != NULL);
    if (!input) {
        vitq_model_free(handle);
        return;
    }
    size_t classes = (size_t)m->info.num_classes, d = (size_t)m->info.embed_dim, rows = 50;
    float *before = floats(n * classes), *after = floats(n * classes);
    CHECK_STATUS(vitq_model_forward(handle, input, n, before), VITQ_OK);

    float *x = residual_tokens(rows, d);
    vitq_i_block *first = &m->blocks[0], *last = &m->blocks[m->info.depth - 1];
    vitq_i_linear *qkv[1] = {&first->qkv}, *fc1[1] = {&last->fc1};
    check_fold(&m->alloc, x, rows, d, m->info.layer_norm_eps, &first->norm1, qkv, 1, 6, "odd-vit-hf norm1->qkv");
    check_fold(&m->alloc, x, rows, d, m->info.layer_norm_eps, &last->norm2, fc1, 1, 4, "odd-vit-hf norm2->fc1");

    CHECK_STATUS(vitq_model_forward(handle, input, n, after), VITQ_OK);
    logits_match("logits after two folds", after, before, n * classes);
    free(x), free(input), free(before), free(after);
    vitq_model_free(handle); /* the new panels were allocated from, and go back to, the model's allocator */
}

/* ---- RepQ: errors and allocation failures -------------------------------------------------------- */

/* An allocator that counts live blocks and refuses allocation number fail_at. */
typedef struct count_alloc {
    long live, allocs, fail_at;
} count_alloc;

static void *ca_alloc(void *user, size_t size, size_t align) {
    count_alloc *c = user;
    if (c->allocs++ == c->fail_at) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size ? size : 1) != 0) return NULL;
    c->live++;
    return p;
}
static void ca_free(void *user, void *p) {
    ((count_alloc *)user)->live--;
    free(p);
}

typedef struct fold_fixture {
    vitq_i_layernorm_params ln;
    vitq_i_linear l, narrow;
    float scale[5], zero[5];
} fold_fixture;

static void fixture_make(const vitq_allocator *a, fold_fixture *f) {
    f->ln.gamma = floats(5);
    f->ln.beta = floats(5);
    for (int c = 0; c < 5; c++) {
        f->ln.gamma[c] = 1.0f + 0.1f * (float)c;
        f->ln.beta[c] = 0.25f * (float)c;
        f->scale[c] = 0.01f * (float)(c + 1);
        f->zero[c] = (float)(100 + 10 * c);
    }
    make_linear(a, 3, 5, 2, &f->l); /* no bias: the fold allocates one */
    make_linear(a, 3, 4, 0, &f->narrow);
}

/* 1 when the fixture's LayerNorm and linear are as fixture_make left them. */
static int fixture_same(const fold_fixture *f, const fold_fixture *orig) {
    return !memcmp(f->ln.gamma, orig->ln.gamma, 5 * sizeof(float)) &&
           !memcmp(f->ln.beta, orig->ln.beta, 5 * sizeof(float)) &&
           !memcmp(f->l.weight, orig->l.weight, 15 * sizeof(float)) && f->l.bias == NULL &&
           f->l.packed.panels == orig->l.packed.panels;
}

static void fixture_free(const vitq_allocator *a, fold_fixture *f) {
    free(f->ln.gamma), free(f->ln.beta);
    free_linear(a, &f->l);
    free_linear(a, &f->narrow);
}

static void test_repq_errors(void) {
    vitq_allocator a = malloc_allocator();
    fold_fixture f, orig;
    fixture_make(&a, &f);
    orig = f;
    orig.ln.gamma = copy_floats(f.ln.gamma, 5);
    orig.ln.beta = copy_floats(f.ln.beta, 5);
    orig.l.weight = copy_floats(f.l.weight, 15);
    float ts, tz, bad[5];
    vitq_i_linear *one[1] = {&f.l}, *twice[2] = {&f.l, &f.l}, *narrow[2] = {&f.l, &f.narrow}, *none[1] = {NULL};
    vitq_i_layernorm_params no_gamma = {NULL, f.ln.beta};
    const vitq_status INVALID = VITQ_ERR_INVALID_ARGUMENT;
    CHECK_STATUS(vitq_i_repq_fold(NULL, &f.ln, 5, one, 1, f.scale, f.zero, &ts, &tz), INVALID);
    CHECK_STATUS(vitq_i_repq_fold(&a, NULL, 5, one, 1, f.scale, f.zero, &ts, &tz), INVALID);
    CHECK_STATUS(vitq_i_repq_fold(&a, &no_gamma, 5, one, 1, f.scale, f.zero, &ts, &tz), INVALID);
    CHECK_STATUS(vitq_i_repq_fold(&a, &f.ln, 0, one, 1, f.scale, f.zero, &ts, &tz), INVALID);
    CHECK_STATUS(vitq_i_repq_fold(&a, &f.ln, 5, NULL, 1, f.scale, f.zero, &ts, &tz), INVALID);
    CHECK_STATUS(vitq_i_repq_fold(&a, &f.ln, 5, one, 0, f.scale, f.zero, &ts, &tz), INVALID);
    CHECK_STATUS(vitq_i_repq_fold(&a, &f.ln, 5, none, 1, f.scale, f.zero, &ts, &tz), INVALID);
    CHECK_STATUS(vitq_i_repq_fold(&a, &f.ln, 5, twice, 2, f.scale, f.zero, &ts, &tz), INVALID);
    CHECK_STATUS(vitq_i_repq_fold(&a, &f.ln, 5, narrow, 2, f.scale, f.zero, &ts, &tz), VITQ_ERR_SHAPE);
    CHECK(strstr(vitq_last_error(), "linear 1 is 4 -> 3, expected 5 inputs") != NULL);
    CHECK_STATUS(vitq_i_repq_fold(&a, &f.ln, 5, one, 1, NULL, f.zero, &ts, &tz), INVALID);
    CHECK_STATUS(vitq_i_repq_fold(&a, &f.ln, 5, one, 1, f.scale, NULL, &ts, &tz), INVALID);
    CHECK_STATUS(vitq_i_repq_fold(&a, &f.ln, 5, one, 1, f.scale, f.zero, NULL, &tz), INVALID);
    CHECK_STATUS(vitq_i_repq_fold(&a, &f.ln, 5, one, 1, f.scale, f.zero, &ts, NULL), INVALID);
    const float bad_scales[] = {0.0f, -0.5f, NAN, INFINITY};
    for (int i = 0; i < 4; i++) {
        memcpy(bad, f.scale, sizeof bad);
        bad[2] = bad_scales[i];
        CHECK_STATUS(vitq_i_repq_fold(&a, &f.ln, 5, one, 1, bad, f.zero, &ts, &tz), INVALID);
        CHECK(strstr(vitq_last_error(), "scale[2]") != NULL);
    }
    const float bad_zeros[] = {0.5f, NAN, -INFINITY};
    for (int i = 0; i < 3; i++) {
        memcpy(bad, f.zero, sizeof bad);
        bad[4] = bad_zeros[i];
        CHECK_STATUS(vitq_i_repq_fold(&a, &f.ln, 5, one, 1, f.scale, bad, &ts, &tz), INVALID);
        CHECK(strstr(vitq_last_error(), "zero_point[4]") != NULL);
    }
    float *w = f.l.weight;
    f.l.weight = NULL;
    CHECK_STATUS(vitq_i_repq_fold(&a, &f.ln, 5, one, 1, f.scale, f.zero, &ts, &tz), INVALID);
    f.l.weight = w;
    CHECK(fixture_same(&f, &orig)); /* every refusal left the layers alone */
    free(orig.ln.gamma), free(orig.ln.beta), free(orig.l.weight);
    fixture_free(&a, &f);
}

/* Refuse each allocation of the fold in turn: out of memory, nothing changed, nothing leaked; then a
 * successful fold owns exactly one more block (the created bias). */
static void test_repq_out_of_memory(void) {
    count_alloc counter = {0, 0, -1};
    vitq_allocator a = {sizeof(vitq_allocator), ca_alloc, ca_free, &counter};
    fold_fixture f, orig;
    fixture_make(&a, &f);
    orig = f;
    orig.ln.gamma = copy_floats(f.ln.gamma, 5);
    orig.ln.beta = copy_floats(f.ln.beta, 5);
    orig.l.weight = copy_floats(f.l.weight, 15);
    vitq_i_linear *one[1] = {&f.l};
    float ts, tz;
    long live = counter.live, refused = 0;
    vitq_status st = VITQ_ERR_OUT_OF_MEMORY;
    for (long k = 0; st == VITQ_ERR_OUT_OF_MEMORY && k < 50; k++) {
        counter.allocs = 0;
        counter.fail_at = k;
        st = vitq_i_repq_fold(&a, &f.ln, 5, one, 1, f.scale, f.zero, &ts, &tz);
        if (st != VITQ_ERR_OUT_OF_MEMORY) break;
        refused++;
        CHECK(counter.live == live);
        CHECK(fixture_same(&f, &orig));
    }
    CHECK_STATUS(st, VITQ_OK);
    CHECK(refused >= 4); /* factors, staging list, weight, bias, panels */
    CHECK(counter.live == live + 1);
    CHECK(f.l.bias != NULL && f.l.packed.panels != orig.l.packed.panels);
    free(orig.ln.gamma), free(orig.ln.beta), free(orig.l.weight);
    fixture_free(&a, &f);
    CHECK(counter.live == 0);
}

/* ---- NoisyQuant ------------------------------------------------------------------------------------ */

/* Per-tensor uniform fake quantization as the callback of vitq_i_noisy_fake_quant. */
typedef struct uq_ctx {
    vitq_i_uniform u;
    float scale, zero;
    int fail;
} uq_ctx;

static vitq_status uq_fake_quant(void *ctx, const vitq_tensor_view *v) {
    const uq_ctx *q = ctx;
    if (q->fail) return vitq_i_fail(VITQ_ERR_GENERIC, "test quantizer refuses");
    vitq_i_uniform_fake_quant(&q->u, &q->scale, &q->zero, v->channels, v);
    return VITQ_OK;
}

static uq_ctx uq_for(const float *x, size_t n, int bits) {
    uq_ctx q = {vitq_i_uniform_grid(bits, 0), 1.0f, 0.0f, 0};
    double lo = DBL_MAX, hi = -DBL_MAX;
    for (size_t i = 0; i < n; i++) lo = fmin(lo, x[i]), hi = fmax(hi, x[i]);
    vitq_i_uniform_params(&q.u, lo, hi, &q.scale, &q.zero);
    return q;
}

static void test_noise_draw(void) {
    /* golden: splitmix64 computed independently (Python), top 24 bits minus 2^23 */
    static const int32_t gold12345[6] = {-6155902, -4952356, -6383017, -5433842, 115430, -2734107};
    static const int32_t gold0[4] = {6430888, -1148770, -7945123, 7900088};
    float first[6];
    vitq_i_noise_draw(12345, first, 6);
    for (int i = 0; i < 6; i++) CHECK(first[i] == (float)gold12345[i] / 8388608.0f);
    vitq_i_noise_draw(0, first, 4);
    for (int i = 0; i < 4; i++) CHECK(first[i] == (float)gold0[i] / 8388608.0f);

    const size_t n = 100000;
    float *u1 = floats(n), *u2 = floats(n), *u3 = floats(n);
    vitq_i_noise_draw(12345, u1, n);
    vitq_i_noise_draw(12345, u2, n);
    vitq_i_noise_draw(12346, u3, n);
    CHECK(!memcmp(u1, u2, n * sizeof(float)));
    for (int i = 0; i < 6; i++) CHECK(u1[i] == (float)gold12345[i] / 8388608.0f); /* a longer draw extends */
    size_t same = 0, low_quarter = 0;
    double sum = 0.0, sq = 0.0, lo = 1.0, hi = -1.0;
    for (size_t i = 0; i < n; i++) {
        same += u1[i] == u3[i];
        sum += u1[i], sq += (double)u1[i] * u1[i];
        lo = fmin(lo, u1[i]), hi = fmax(hi, u1[i]);
        low_quarter += u1[i] < -0.5f;
    }
    double mean = sum / (double)n, var = sq / (double)n - mean * mean;
    CHECK(same < 10);
    CHECK(lo >= -1.0 && hi < 1.0 && lo < -0.999 && hi > 0.999);
    CHECK(fabs(mean) < 0.01);              /* sd of the mean: 0.0018 */
    CHECK(fabs(var - 1.0 / 3.0) < 0.01);   /* uniform on [-1, 1): 1/3 */
    CHECK(fabs((double)low_quarter / (double)n - 0.25) < 0.01);

    /* scaled: inside [-K, K), plus the shift */
    const float k = 0.37f, shift = 0.05f;
    vitq_i_noise_scale(u1, n, k, 0.0f, u2);
    vitq_i_noise_scale(u1, n, k, shift, u3);
    int in_range = 1, shifted = 1;
    for (size_t i = 0; i < n; i++) {
        in_range &= u2[i] >= -k && u2[i] < k;
        shifted &= fabs((double)u3[i] - shift - (double)u2[i]) <= 1e-7;
    }
    CHECK(in_range && shifted);
    float top = 1.0f - 0x1p-23f, edge;
    vitq_i_noise_scale(&top, 1, k, 0.0f, &edge); /* the largest unit value never rounds up to K */
    CHECK(edge < k);
    vitq_i_noise_scale(u1, n, 0.0f, 0.0f, u2);
    for (size_t i = 0; i < n; i++) in_range &= u2[i] == 0.0f;
    CHECK(in_range);
    free(u1), free(u2), free(u3);
}

/* Wq.(Q(X+N) - N) + B == Wq.Q(X+N) + B' */
static void test_noisy_denoise(void) {
    const size_t rows = 29, in = 53, out = 37;
    float *x = floats(rows * in), *wq = floats(out * in), *bias = floats(out), *b2 = floats(out);
    float *unit = floats(in), *noise = floats(in), *xn = floats(rows * in);
    for (size_t i = 0; i < rows * in; i++) x[i] = gauss() * (i % in == 7 ? 8.0f : 1.0f);
    for (size_t i = 0; i < out * in; i++) wq[i] = gauss() / 7.0f;
    for (size_t o = 0; o < out; o++) bias[o] = 0.1f * gauss();
    /* quantized weight: per-row symmetric 6-bit */
    vitq_i_uniform wu = vitq_i_uniform_grid(6, 1);
    float wscale[37], wzero[37];
    for (size_t o = 0; o < out; o++) {
        double amax = 0.0;
        for (size_t c = 0; c < in; c++) amax = fmax(amax, fabs(wq[o * in + c]));
        vitq_i_uniform_params(&wu, -amax, amax, &wscale[o], &wzero[o]);
    }
    vitq_tensor_view wv = vitq_i_view_rows(wq, (int64_t)out, (int64_t)in);
    vitq_i_uniform_fake_quant(&wu, wscale, wzero, 1, &wv);

    uq_ctx q = uq_for(x, rows * in, 6);
    vitq_i_noise_draw(99, unit, in);
    vitq_i_noise_scale(unit, in, 0.6f * q.scale, 0.1f * q.scale, noise);
    /* Q(X + N) directly */
    for (size_t t = 0; t < rows; t++)
        for (size_t c = 0; c < in; c++) xn[t * in + c] = x[t * in + c] + noise[c];
    vitq_tensor_view v = vitq_i_view_columns(xn, (int64_t)rows, (int64_t)in, (int64_t)in);
    CHECK_STATUS(uq_fake_quant(&q, &v), VITQ_OK);
    /* Q(X + N) - N through the library */
    v.data = x;
    CHECK_STATUS(vitq_i_noisy_fake_quant(uq_fake_quant, &q, noise, &v), VITQ_OK);
    vitq_i_noisy_denoise_bias(wq, bias, out, in, noise, b2);

    vitq_i_linear l_noisy = {in, out, wq, bias, {0, 0, NULL}, NULL}, l_denoised = {in, out, wq, b2, {0, 0, NULL}, NULL};
    double *left = linear_ref(x, rows, &l_noisy), *right = linear_ref(xn, rows, &l_denoised);
    double err = rel_error(left, right, rows, out, NULL);
    CHECK(err <= 1e-5);
    printf("    max rel. difference %.2g\n", err);

    /* in place, and bias NULL as zeros */
    float *b3 = copy_floats(bias, out), *b4 = floats(out);
    vitq_i_noisy_denoise_bias(wq, b3, out, in, noise, b3);
    CHECK(!memcmp(b3, b2, out * sizeof(float)));
    vitq_i_noisy_denoise_bias(wq, NULL, out, in, noise, b4);
    for (size_t o = 0; o < out; o++) CHECK_NEAR(b4[o] + bias[o], b2[o], 1e-5);
    free(left), free(right), free(b3), free(b4);
    free(x), free(wq), free(bias), free(b2), free(unit), free(noise), free(xn);
}

/* Mean squared error of Q(x + N) - N (or Q(x) when noise is NULL) against x. */
static double noisy_mse(const uq_ctx *q, const float *x, size_t rows, size_t ch, const float *noise) {
    float *y = copy_floats(x, rows * ch);
    vitq_tensor_view v = vitq_i_view_columns(y, (int64_t)rows, (int64_t)ch, (int64_t)ch);
    if (noise) CHECK_STATUS(vitq_i_noisy_fake_quant(uq_fake_quant, (void *)q, noise, &v), VITQ_OK);
    else CHECK_STATUS(uq_fake_quant((void *)q, &v), VITQ_OK);
    double e = 0.0;
    for (size_t i = 0; i < rows * ch; i++) e += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
    free(y);
    return e / (double)(rows * ch);
}

/* The NoisyQuant theory: values far from the bin centres (here exactly on the bin edges, error D/2
 * each) are quantized better with noise U(-D/2, D/2) (expected error D^2/12 instead of D^2/4);
 * values at the bin centres get worse (0 -> D^2/12), which is why the K search keeps K = 0. */
static void test_noisy_mse(void) {
    const size_t rows = 64, ch = 256;
    const float delta = 0.125f; /* a power of two: (k + 1/2) * delta / delta is exactly a tie */
    uq_ctx q = {vitq_i_uniform_grid(4, 0), delta, 8.0f, 0}; /* codes [0, 15]: values [-1, 0.875] */
    float *edges = floats(rows * ch), *centres = floats(rows * ch), *unit = floats(ch), *noise = floats(ch);
    for (size_t i = 0; i < rows * ch; i++) {
        int k = (int)(urand() * 12.0) - 6; /* -6..5: with the noise still inside the code range */
        edges[i] = ((float)k + 0.5f) * delta;
        centres[i] = (float)k * delta;
    }
    vitq_i_noise_draw(7, unit, ch);
    vitq_i_noise_scale(unit, ch, delta / 2.0f, 0.0f, noise);
    double d2 = (double)delta * delta;
    double plain = noisy_mse(&q, edges, rows, ch, NULL), noisy = noisy_mse(&q, edges, rows, ch, noise);
    CHECK_NEAR(plain, d2 / 4.0, 1e-12);
    CHECK(noisy < 0.5 * plain);
    CHECK(fabs(noisy / (d2 / 12.0) - 1.0) < 0.25);
    double plain_c = noisy_mse(&q, centres, rows, ch, NULL), noisy_c = noisy_mse(&q, centres, rows, ch, noise);
    CHECK(plain_c == 0.0 && noisy_c > 0.5 * d2 / 12.0);
    printf("    bin edges: MSE %.3g -> %.3g with noise (D^2/4 = %.3g, D^2/12 = %.3g); bin centres: %.3g -> %.3g\n",
           plain, noisy, d2 / 4.0, d2 / 12.0, plain_c, noisy_c);
    free(edges), free(centres), free(unit), free(noise);
}

/* K = 0 (and no shift): exactly the plain quantizer. */
static void test_noisy_zero_noise(void) {
    const size_t rows = 33, ch = 70;
    float *x = floats(rows * ch), *unit = floats(ch), *noise = floats(ch);
    for (size_t i = 0; i < rows * ch; i++) x[i] = gauss() * (i % ch == 3 ? 20.0f : 1.0f);
    uq_ctx q = uq_for(x, rows * ch, 4);
    vitq_i_noise_draw(5, unit, ch);
    vitq_i_noise_scale(unit, ch, 0.0f, 0.0f, noise);
    float *a = copy_floats(x, rows * ch), *b = copy_floats(x, rows * ch);
    vitq_tensor_view va = vitq_i_view_columns(a, (int64_t)rows, (int64_t)ch, (int64_t)ch), vb = va;
    vb.data = b;
    CHECK_STATUS(uq_fake_quant(&q, &va), VITQ_OK);
    CHECK_STATUS(vitq_i_noisy_fake_quant(uq_fake_quant, &q, noise, &vb), VITQ_OK);
    size_t differ = 0;
    for (size_t i = 0; i < rows * ch; i++) differ += a[i] != b[i];
    CHECK(differ == 0);
    free(x), free(unit), free(noise), free(a), free(b);
}

static void test_noisy_errors(void) {
    float x[12], orig[12], noise[4] = {0.3f, -0.2f, 0.1f, 0.05f};
    for (int i = 0; i < 12; i++) x[i] = orig[i] = 0.1f * (float)i;
    uq_ctx q = uq_for(x, 12, 4);
    vitq_tensor_view v = vitq_i_view_columns(x, 3, 4, 4), bad = v;
    CHECK_STATUS(vitq_i_noisy_fake_quant(NULL, &q, noise, &v), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_noisy_fake_quant(uq_fake_quant, &q, NULL, &v), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_noisy_fake_quant(uq_fake_quant, &q, noise, NULL), VITQ_ERR_INVALID_ARGUMENT);
    bad.struct_size = 8;
    CHECK_STATUS(vitq_i_noisy_fake_quant(uq_fake_quant, &q, noise, &bad), VITQ_ERR_ABI_MISMATCH);
    bad = v;
    bad.channels = 0;
    CHECK_STATUS(vitq_i_noisy_fake_quant(uq_fake_quant, &q, noise, &bad), VITQ_ERR_SHAPE);
    CHECK(!memcmp(x, orig, sizeof x));
    q.fail = 1;
    CHECK_STATUS(vitq_i_noisy_fake_quant(uq_fake_quant, &q, noise, &v), VITQ_ERR_GENERIC);
    CHECK(strstr(vitq_last_error(), "noisy fake quant: test quantizer refuses") != NULL);
    for (int i = 0; i < 12; i++) CHECK_NEAR(x[i], orig[i], 1e-7); /* noise taken off again */
}

int main(void) {
    RUN(test_repq_identity);
    RUN(test_repq_fractional_zero);
    RUN(test_repq_model);
    RUN(test_repq_errors);
    RUN(test_repq_out_of_memory);
    RUN(test_noise_draw);
    RUN(test_noisy_denoise);
    RUN(test_noisy_mse);
    RUN(test_noisy_zero_noise);
    RUN(test_noisy_errors);
    HARNESS_EXIT();
}
