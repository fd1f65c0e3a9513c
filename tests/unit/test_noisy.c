/* NoisyQuant's searches (quant/noisy.h, calib/noisy_search.c, the noisyquant method): the noisy bias
 * is chosen where it provably lowers a layer's output error and lowers it, is declined where it cannot
 * help, the output-MSE clipping search finds the brute-force optimum of its grid, and the method runs
 * on ViT, DeiT and Swin with either base and keeps a noisy bias on some layers. */
#include <float.h>

#include "api/model.h"
#include "calib_util.h"
#include "kernels/kernels.h"
#include "quant/noisy.h"
#include "quant/schemes.h"
#include "quant/view.h"
#include "test_random.h"

static vitq_allocator alloc;

/* A per-tensor uniform quantizer of `in` channels (scheme minmax, `bits`, symmetric or not) for the
 * input of a linear layer, its grid set by hand or by a search. */
static int make_quantizer(vitq_i_instance *inst, int bits, int symmetric, int64_t in) {
    vitq_point_config c = {.struct_size = sizeof c, .name = "test.input", .kind = VITQ_POINT_ACTIVATION,
                           .role = VITQ_ROLE_LINEAR_INPUT, .bits = bits, .granularity = VITQ_GRAN_TENSOR,
                           .symmetric = symmetric, .channels = in, .options = NULL, .seed = 1};
    vitq_status st = vitq_i_config_groups(&c, 0);
    if (!st) st = vitq_i_instance_create(inst, &alloc, &vitq_i_scheme_minmax, &c);
    CHECK_STATUS(st, VITQ_OK);
    return st == VITQ_OK;
}

static void set_grid(vitq_i_instance *inst, float scale, float zero) {
    CHECK_STATUS(inst->scheme.set_param(inst->state, "scale", &scale, 1), VITQ_OK);
    CHECK_STATUS(inst->scheme.set_param(inst->state, "zero_point", &zero, 1), VITQ_OK);
}

static float param(const vitq_i_instance *inst, const char *name) {
    for (int32_t k = 0; k < inst->scheme.param_count(inst->state); k++) {
        const char *n;
        const float *v;
        int64_t count;
        if (!inst->scheme.get_param(inst->state, k, &n, &v, &count) && !strcmp(n, name)) return v[0];
    }
    return NAN;
}

/* ---- the noisy bias ------------------------------------------------------------------------------ */

/* A layer whose input rows each sit at one offset d_r between grid levels, the same in every channel
 * (x = k + d_r steps, k whole, d_r uniform over a step), and whose weights all have the same sign
 * (W = (1 + 0.2 g) / in). Whatever the quantizer or a common shift of it does, every channel of a row
 * makes the same rounding error e_r, so the output errors add up coherently: output MSE = E[e^2] mean_o
 * S_o^2 with S_o the row sums of W (about 1) and E[e^2] = 1/12 for any shift (d_r + shift is still
 * uniform over a step). A noisy bias of amplitude >= half a step gives each channel a different rounding
 * offset, so the errors of a row become independent across channels and average out: output MSE about
 * (1/12) sum_c W_oc^2, about 1/in of the former. The search must find that. */
static void layer_coherent(size_t rows, size_t in, size_t out, float *x, float *w) {
    for (size_t r = 0; r < rows; r++) {
        double d = urand() - 0.5;
        for (size_t c = 0; c < in; c++) x[r * in + c] = (float)((double)((int)(urand() * 81.0) - 40) + d);
    }
    for (size_t i = 0; i < out * in; i++) w[i] = (float)((1.0 + 0.2 * gauss()) / (double)in);
}

static void test_noise_lowers_coherent_error(void) {
    const size_t rows = 256, in = 64, out = 16;
    float *x = calloc(rows * in, sizeof(float)), *w = calloc(out * in, sizeof(float));
    float *unit = calloc(in, sizeof(float)), *noise = calloc(in, sizeof(float));
    layer_coherent(rows, in, out, x, w);
    vitq_i_noise_draw(42, unit, in);
    vitq_i_packed wq = {0, 0, NULL};
    CHECK_STATUS(vitq_i_gemm_pack(&alloc, w, out, in, &wq), VITQ_OK);
    vitq_i_instance inst;
    if (!make_quantizer(&inst, 8, 1, (int64_t)in)) return;
    set_grid(&inst, 1.0f, 0.0f); /* step 1, codes -128..127: no value is ever clipped */
    vitq_i_noisy_layer l = {&alloc, x, rows, in, &wq, 1};
    double sum_s2 = 0.0, sum_w2 = 0.0;
    for (size_t o = 0; o < out; o++) {
        double s = 0.0;
        for (size_t c = 0; c < in; c++) s += w[o * in + c], sum_w2 += (double)w[o * in + c] * w[o * in + c];
        sum_s2 += s * s;
    }
    double coherent = sum_s2 / (double)out / 12.0, independent = sum_w2 / (double)out / 12.0;
    for (int shift = 1; shift >= 0; shift--) {
        vitq_i_noisy_choice ch;
        memset(&ch, 0, sizeof ch);
        CHECK_STATUS(vitq_i_noisy_bias_search(&l, &inst, unit, shift, noise, &ch), VITQ_OK);
        printf("    mean shift %s: output MSE %.4g plain (theory %.4g), %.4g shifted by %+.2f steps, %.4g with K = "
               "%.2f steps (theory with independent errors %.4g)\n",
               shift ? "on" : "off", ch.mse_plain, coherent, ch.mse_shift, ch.shift, ch.mse, ch.amplitude,
               independent);
        CHECK(ch.mse_plain > 0.6 * coherent && ch.mse_plain < 1.5 * coherent);
        CHECK(ch.mse_shift > 0.5 * coherent); /* no shift can help: d_r + shift is uniform */
        CHECK(ch.amplitude > 0.0);            /* the search chooses noise ... */
        CHECK(ch.mse < 0.1 * ch.mse_shift);   /* ... and it lowers the output error against K = 0 */
        CHECK(ch.mse < 4.0 * independent);    /* near the independent-error figure */
        if (!shift) CHECK(ch.shift == 0.0);
        /* the returned bias is the one scored: recomputed, and against no bias at all */
        double again = -1.0, none = -1.0;
        CHECK_STATUS(vitq_i_noisy_output_mse(&l, &inst, noise, &again), VITQ_OK);
        CHECK_STATUS(vitq_i_noisy_output_mse(&l, &inst, NULL, &none), VITQ_OK);
        CHECK_NEAR(again, ch.mse, 1e-12 + 1e-9 * ch.mse);
        CHECK_NEAR(none, ch.mse_plain, 1e-12 + 1e-9 * none);
        /* and it is the noise the search claims: shift + K u_c steps */
        size_t off = 0;
        for (size_t c = 0; c < in; c++) off += fabs(noise[c] - (ch.shift + ch.amplitude * unit[c])) > 1e-6;
        CHECK(off == 0);
    }
    vitq_i_instance_destroy(&inst);
    vitq_i_gemm_packed_free(&alloc, &wq);
    free(x), free(w), free(unit), free(noise);
}

/* Inputs exactly on the grid are quantized without error: any shift that is not a whole number of
 * steps, or any noise, only adds error, so the search keeps the plain quantizer (shift 0, K 0). */
static void test_noise_declined_where_useless(void) {
    const size_t rows = 128, in = 32, out = 8;
    float *x = calloc(rows * in, sizeof(float)), *w = calloc(out * in, sizeof(float));
    float *unit = calloc(in, sizeof(float)), *noise = calloc(in, sizeof(float));
    for (size_t i = 0; i < rows * in; i++) x[i] = 0.25f * (float)((int)(urand() * 41.0) - 20);
    for (size_t i = 0; i < out * in; i++) w[i] = (float)gauss();
    vitq_i_noise_draw(7, unit, in);
    vitq_i_packed wq = {0, 0, NULL};
    CHECK_STATUS(vitq_i_gemm_pack(&alloc, w, out, in, &wq), VITQ_OK);
    vitq_i_instance inst;
    if (!make_quantizer(&inst, 6, 1, (int64_t)in)) return;
    set_grid(&inst, 0.25f, 0.0f);
    vitq_i_noisy_layer l = {&alloc, x, rows, in, &wq, 1};
    vitq_i_noisy_choice ch;
    for (size_t c = 0; c < in; c++) noise[c] = 1.0f; /* must be overwritten with zeros */
    CHECK_STATUS(vitq_i_noisy_bias_search(&l, &inst, unit, 1, noise, &ch), VITQ_OK);
    CHECK(ch.mse_plain == 0.0 && ch.mse == 0.0);
    CHECK(ch.shift == 0.0 && ch.amplitude == 0.0);
    size_t nonzero = 0;
    for (size_t c = 0; c < in; c++) nonzero += noise[c] != 0.0f;
    CHECK(nonzero == 0);
    /* and noise of half a step really would have cost something here */
    for (size_t c = 0; c < in; c++) noise[c] = 0.5f * 0.25f * unit[c];
    double noisy = 0.0;
    CHECK_STATUS(vitq_i_noisy_output_mse(&l, &inst, noise, &noisy), VITQ_OK);
    CHECK(noisy > 0.0);
    vitq_i_instance_destroy(&inst);
    vitq_i_gemm_packed_free(&alloc, &wq);
    free(x), free(w), free(unit), free(noise);
}

/* On any data the three stages can only improve on each other (each keeps the previous best as a
 * candidate), and bad arguments are errors. */
static void test_noise_monotone_and_errors(void) {
    const size_t rows = 96, in = 24, out = 12;
    float *x = calloc(rows * in, sizeof(float)), *w = calloc(out * in, sizeof(float));
    float *unit = calloc(in, sizeof(float)), *noise = calloc(in, sizeof(float));
    for (size_t i = 0; i < rows * in; i++) { /* post-GELU-like: a peak just below 0 and a long tail */
        double g = gauss();
        x[i] = (float)(0.5 * g * (1.0 + erf(g / sqrt(2.0))) * (i % 17 == 0 ? 6.0 : 1.0));
    }
    for (size_t i = 0; i < out * in; i++) w[i] = (float)gauss();
    vitq_i_noise_draw(3, unit, in);
    vitq_i_packed wq = {0, 0, NULL};
    CHECK_STATUS(vitq_i_gemm_pack(&alloc, w, out, in, &wq), VITQ_OK);
    vitq_i_instance inst;
    if (!make_quantizer(&inst, 4, 0, (int64_t)in)) return;
    vitq_i_noisy_layer l = {&alloc, x, rows, in, &wq, 0};
    CHECK_STATUS(vitq_i_noisy_clip_search(&l, &inst, 20, NULL, NULL), VITQ_OK);
    vitq_i_noisy_choice ch;
    CHECK_STATUS(vitq_i_noisy_bias_search(&l, &inst, unit, 1, noise, &ch), VITQ_OK);
    CHECK(ch.mse <= ch.mse_shift && ch.mse_shift <= ch.mse_plain && ch.mse_plain > 0.0);
    CHECK(fabs(ch.shift) <= 1.0 && ch.amplitude >= 0.0 && ch.amplitude <= 2.0);
    printf("    4-bit post-GELU-like input: output MSE %.4g plain, %.4g shifted (%+.2f), %.4g noisy (K %.2f)\n",
           ch.mse_plain, ch.mse_shift, ch.shift, ch.mse, ch.amplitude);
    CHECK_STATUS(vitq_i_noisy_bias_search(&l, &inst, NULL, 1, noise, &ch), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_noisy_clip_search(&l, &inst, 0, NULL, NULL), VITQ_ERR_OUT_OF_RANGE);
    vitq_i_noisy_layer wrong = l;
    wrong.in = in - 1;
    CHECK_STATUS(vitq_i_noisy_bias_search(&wrong, &inst, unit, 1, noise, &ch), VITQ_ERR_SHAPE);
    CHECK_STATUS(vitq_i_noisy_output_mse(&l, &inst, NULL, NULL), VITQ_ERR_INVALID_ARGUMENT);
    vitq_i_instance_destroy(&inst);
    vitq_i_gemm_packed_free(&alloc, &wq);
    free(x), free(w), free(unit), free(noise);
}

/* ---- the clipping search ------------------------------------------------------------------------- */

/* Output MSE in double of the layer x . w^T when x goes through the symmetric grid of `scale` (codes
 * -2^(bits-1) .. 2^(bits-1) - 1, round half to even): the brute-force reference, written apart from
 * the library's quantizer. */
static double brute_mse(const float *x, const float *w, size_t rows, size_t in, size_t out, int bits, double scale) {
    double qmax = (double)((1 << (bits - 1)) - 1), qmin = -qmax - 1.0, sum = 0.0;
    double *e = calloc(in, sizeof(double));
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < in; c++) {
            double t = nearbyint((double)(float)((double)x[r * in + c] / scale));
            t = t < qmin ? qmin : t > qmax ? qmax : t;
            e[c] = t * scale - x[r * in + c];
        }
        for (size_t o = 0; o < out; o++) {
            double y = 0.0;
            for (size_t c = 0; c < in; c++) y += e[c] * w[o * in + c];
            sum += y * y;
        }
    }
    free(e);
    return sum / (double)(rows * out);
}

/* Heavy-tailed inputs (a few outliers 12 times the rest) at 4 bits: clipping pays, so the optimum is
 * inside the grid; the search must pick the candidate of least output MSE among alpha = i / grid. */
static void test_clip_search_brute_force(void) {
    const size_t rows = 160, in = 40, out = 20;
    const int grid = 50, bits = 4;
    float *x = calloc(rows * in, sizeof(float)), *w = calloc(out * in, sizeof(float));
    for (size_t i = 0; i < rows * in; i++) x[i] = (float)(gauss() * (urand() < 0.01 ? 12.0 : 1.0));
    for (size_t i = 0; i < out * in; i++) w[i] = (float)gauss();
    double amax = 0.0;
    for (size_t i = 0; i < rows * in; i++) amax = fmax(amax, fabs(x[i]));
    vitq_i_packed wq = {0, 0, NULL};
    CHECK_STATUS(vitq_i_gemm_pack(&alloc, w, out, in, &wq), VITQ_OK);
    vitq_i_instance inst;
    if (!make_quantizer(&inst, bits, 1, (int64_t)in)) return;
    vitq_i_noisy_layer l = {&alloc, x, rows, in, &wq, 2};
    double alpha = -1.0, mse = -1.0;
    CHECK_STATUS(vitq_i_noisy_clip_search(&l, &inst, grid, &alpha, &mse), VITQ_OK);
    double best = INFINITY, best_alpha = 0.0, at_alpha = NAN, widest = 0.0;
    for (int i = grid; i >= 1; i--) {
        double a = (double)i / grid, scale = (double)(float)(a * amax / ((1 << (bits - 1)) - 1));
        double e = brute_mse(x, w, rows, in, out, bits, scale);
        if (e < best) best = e, best_alpha = a;
        if (fabs(a - alpha) < 1e-12) at_alpha = e;
        if (i == grid) widest = e;
    }
    printf("    output-MSE clip search: alpha %.2f (MSE %.5g), brute force alpha %.2f (MSE %.5g), no clipping %.5g\n",
           alpha, mse, best_alpha, best, widest);
    CHECK(alpha < 0.9 && alpha > 1.0 / grid); /* clipping pays here */
    /* the chosen candidate is the optimum (up to the float rounding of the search's GEMM) */
    CHECK(at_alpha <= best * (1.0 + 1e-5));
    CHECK_NEAR(mse, at_alpha, 1e-5 * at_alpha);
    CHECK(best < 0.8 * widest);
    /* and the quantizer is left on that grid */
    CHECK_NEAR(param(&inst, "scale"), alpha * amax / 7.0, 1e-6 * amax);
    CHECK(param(&inst, "zero_point") == 0.0f);
    vitq_i_instance_destroy(&inst);
    vitq_i_gemm_packed_free(&alloc, &wq);
    free(x), free(w);
}

/* ---- the method on models ------------------------------------------------------------------------ */

/* Points of q with a noisy bias, and of those the ones with K > 0.05 steps (from the bias's spread). */
static void count_noise(const vitq_model *q, int *with_bias, int *with_k, int *on_edges) {
    *with_bias = *with_k = *on_edges = 0;
    const vitq_i_qmodel *qm = q->quant;
    for (int i = 0; qm && i < qm->count; i++) {
        const vitq_i_qpoint *qp = &qm->qpoints[i];
        if (!qp->noise) continue;
        (*with_bias)++;
        *on_edges += qm->list.points[qp->point].edge;
        float lo = FLT_MAX, hi = -FLT_MAX, step = param(&qp->inst, "scale");
        for (int64_t c = 0; c < qp->inst.config.channels; c++) lo = fminf(lo, qp->noise[c]), hi = fmaxf(hi, qp->noise[c]);
        *with_k += (hi - lo) / 2.0f > 0.05f * step;
    }
}

static const char *scheme_of(const vitq_calibrator *c, const char *name) {
    for (int32_t p = 0; p < vitq_calibrator_num_points(c); p++) {
        vitq_point_info i;
        vitq_point_info_init(&i);
        if (!vitq_calibrator_point_info(c, p, &i) && !strcmp(i.name, name)) return i.scheme;
    }
    return "";
}

/* The base option chooses the quantizers: min-max placeholders for the clipping search (base 0),
 * PTQ4ViT's (twin-gelu on post-GELU inputs, base 1), omse (base 2). */
static void test_method_bases(void) {
    vitq_model *fp = load("models/fmnist-vit");
    if (!fp) return;
    vitq_calibrator_options o;
    vitq_calibrator_options_init(&o);
    o.scheme = "noisyquant";
    vitq_calibrator *c = NULL;
    CHECK_STATUS(vitq_calibrator_create(fp, &o, &c), VITQ_OK);
    if (c) {
        CHECK(!strcmp(scheme_of(c, "blocks.0.mlp.fc2.input"), "minmax"));
        CHECK(!strcmp(scheme_of(c, "blocks.0.attn.q"), "omse"));
        CHECK_STATUS(vitq_calibrator_set_option(c, "base", "1"), VITQ_OK);
        CHECK(!strcmp(scheme_of(c, "blocks.0.mlp.fc2.input"), "twin-gelu"));
        CHECK_STATUS(vitq_calibrator_set_option(c, "base", "2"), VITQ_OK);
        CHECK(!strcmp(scheme_of(c, "blocks.0.mlp.fc2.input"), "omse"));
        CHECK_STATUS(vitq_calibrator_set_option(c, "base", "3"), VITQ_ERR_OUT_OF_RANGE);
        CHECK_STATUS(vitq_calibrator_set_option(c, "clip_grid", "5"), VITQ_ERR_OUT_OF_RANGE);
    }
    vitq_calibrator_free(c);
    vitq_model_free(fp);
}

/* NoisyQuant at W4A4 on each architecture: runs, keeps accuracy, puts a noisy bias of K > 0 on some
 * layers and none on the patch embedding or (linear base) the classifier. */
static void check_method_on(const char *path, const char *const *opts, int num_opts) {
    vitq_model *fp = load(path);
    if (!fp) return;
    size_t n = harness_quick() ? 100 : 500;
    double base = top1(fp, n);
    vitq_model *q = quantize_with(fp, NULL, "noisyquant", 4, 4, NULL, 0, opts, num_opts, harness_quick() ? 4 : 16);
    int base1 = num_opts && !strcmp(opts[0], "base") && !strcmp(opts[1], "1");
    if (q) {
        int bias, k, edges;
        count_noise(q, &bias, &k, &edges);
        double acc = top1(q, n);
        printf("    %s noisyquant %s W4A4: top-1 %.3f (FP32 %.3f); %d layers with a noisy bias, %d with K > 0\n", path,
               base1 ? "base 1" : "base 0", acc, base, bias, k);
        CHECK(acc > 0.5 * base);
        CHECK(k >= 1);
        CHECK(base1 || edges == 0);
    }
    vitq_model_free(q);
    vitq_model_free(fp);
}

/* Under the sanitizers (quick mode) a coarser clipping grid: the searches dominate the time there. */
static void check_linear_base(const char *path) {
    static const char *const coarse[] = {"clip_grid", "10"};
    check_method_on(path, harness_quick() ? coarse : NULL, harness_quick() ? 1 : 0);
}
static void test_method_vit(void) { check_linear_base("models/fmnist-vit"); }
static void test_method_deit(void) { check_linear_base("models/fmnist-deit-distilled"); }
static void test_method_swin(void) { check_linear_base("models/fmnist-swin"); }
static void test_method_over_ptq4vit(void) {
    static const char *const opts[] = {"base", "1", "grid", "4", "search_images", "4"};
    static const char *const quick[] = {"base", "1", "grid", "2", "search_images", "2"};
    check_method_on("models/fmnist-vit", harness_quick() ? quick : opts, 3);
}

int main(void) {
    vitq_i_allocator_resolve(NULL, &alloc);
    RUN(test_noise_lowers_coherent_error);
    RUN(test_noise_declined_where_useless);
    RUN(test_noise_monotone_and_errors);
    RUN(test_clip_search_brute_force);
    CHECK_STATUS(vitq_dataset_load_file(CALIB, NULL, NULL, &calib_set), VITQ_OK);
    CHECK_STATUS(vitq_dataset_load_file(TEST_IMAGES, TEST_LABELS, NULL, &test_set), VITQ_OK);
    if (!calib_set || !test_set) return 1;
    RUN(test_method_bases);
    RUN(test_method_vit);
    RUN(test_method_deit);
    RUN(test_method_swin);
    RUN(test_method_over_ptq4vit);
    vitq_dataset_free(calib_set);
    vitq_dataset_free(test_set);
    HARNESS_EXIT();
}
