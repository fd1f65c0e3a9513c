/* SmoothQuant with bias (SQ-b) and plain SmoothQuant (quant/smooth.h) and the mptq-vit method: the
 * formulas on a hand-made case, argument errors, the FP32 identity of the fold on the bundled ViT,
 * DeiT and Swin (every post-LayerNorm input of a linear inside the network), the shift centring each
 * channel, and mptq-vit's accuracy on Fashion-MNIST. */
#include <float.h>

#include "api/model.h"
#include "calib_util.h"
#include "data/dataset.h"
#include "model/weights.h"
#include "quant/points.h"
#include "quant/smooth.h"

static vitq_allocator malloc_allocator(void) {
    vitq_allocator a;
    vitq_i_allocator_resolve(NULL, &a);
    return a;
}

/* ---- the formulas on a hand-made case --------------------------------------------------------------- */

/* Three channels, a 2 x 3 linear without bias; channel 2 is constant (lo == hi), column 1 of W is 0. */
static void test_formulas(void) {
    vitq_allocator a = malloc_allocator();
    const float lo[3] = {-3.0f, -1.0f, 2.0f}, hi[3] = {1.0f, 5.0f, 2.0f};
    float w0[6] = {0.5f, 0.0f, 1.0f, -2.0f, 0.0f, 0.25f};
    vitq_i_linear l;
    memset(&l, 0, sizeof l);
    l.in = 3, l.out = 2;
    l.weight = vitq_i_alloc_array(&a, 6, sizeof(float));
    memcpy(l.weight, w0, sizeof w0);
    CHECK_STATUS(vitq_i_gemm_pack(&a, l.weight, 2, 3, &l.packed), VITQ_OK);
    vitq_i_linear *next[1] = {&l};
    double b[3], s[3];

    /* SQ-b, alpha 0.75: b = (hi + lo) / 2 = (-1, 2, 2); max|X - b| = (hi - lo) / 2 = (2, 3, 0);
     * max|W[:, c]| = (2, 0, 1): s_0 = 2^0.75 / 2^0.25 = sqrt(2), s_1 and s_2 guarded to 1 */
    CHECK_STATUS(vitq_i_smooth_factors(lo, hi, 3, next, 1, 0.75, 1, b, s), VITQ_OK);
    CHECK(b[0] == -1.0 && b[1] == 2.0 && b[2] == 2.0);
    CHECK_NEAR(s[0], pow(2.0, 0.75) / pow(2.0, 0.25), 1e-12); /* = sqrt(2) */
    CHECK(s[1] == 1.0); /* zero weight column */
    CHECK(s[2] == 1.0); /* constant channel */
    /* plain SmoothQuant, alpha 0.5: b = 0, max|X| = (3, 5, 2) */
    double b0[3], s0[3];
    CHECK_STATUS(vitq_i_smooth_factors(lo, hi, 3, next, 1, 0.5, 0, b0, s0), VITQ_OK);
    CHECK(b0[0] == 0.0 && b0[1] == 0.0 && b0[2] == 0.0);
    CHECK_NEAR(s0[0], sqrt(3.0) / sqrt(2.0), 1e-12);
    CHECK(s0[1] == 1.0);
    CHECK_NEAR(s0[2], sqrt(2.0) / 1.0, 1e-12);

    /* the fold of (b, s) of SQ-b: gamma / s, (beta - b) / s, W[:, c] s_c, bias = W b (W original) */
    float gamma[3] = {1.0f, 2.0f, 0.0f}, beta[3] = {0.5f, -1.0f, 2.0f};
    vitq_i_layernorm_params ln = {gamma, beta};
    CHECK_STATUS(vitq_i_smooth_fold(&a, &ln, 3, next, 1, b, s), VITQ_OK);
    const double r2 = sqrt(2.0);
    CHECK_NEAR(gamma[0], 1.0 / r2, 1e-7);
    CHECK_NEAR(beta[0], (0.5 + 1.0) / r2, 1e-7);
    CHECK(gamma[1] == 2.0f && beta[1] == -3.0f);
    CHECK(gamma[2] == 0.0f && beta[2] == 0.0f);
    CHECK(l.bias != NULL); /* created */
    if (l.bias) {
        CHECK_NEAR(l.bias[0], 0.5 * -1.0 + 0.0 * 2.0 + 1.0 * 2.0, 1e-7);
        CHECK_NEAR(l.bias[1], -2.0 * -1.0 + 0.0 * 2.0 + 0.25 * 2.0, 1e-7);
    }
    CHECK_NEAR(l.weight[0], 0.5 * r2, 1e-7);
    CHECK_NEAR(l.weight[3], -2.0 * r2, 1e-7);
    CHECK(l.weight[1] == 0.0f && l.weight[2] == 1.0f && l.weight[5] == 0.25f);
    /* the panels hold the new weight */
    float unpacked[6];
    vitq_i_gemm_unpack(&l.packed, unpacked);
    CHECK(!memcmp(unpacked, l.weight, sizeof unpacked));
    vitq_i_free(&a, l.weight);
    vitq_i_free(&a, l.bias);
    vitq_i_gemm_packed_free(&a, &l.packed);
}

static void test_errors(void) {
    vitq_allocator a = malloc_allocator();
    float w[4] = {1.0f, 2.0f, 3.0f, 4.0f}, bias[2] = {0.1f, 0.2f};
    vitq_i_linear l = {2, 2, w, bias, {0, 0, NULL}, NULL}, narrow = {3, 2, w, bias, {0, 0, NULL}, NULL};
    CHECK_STATUS(vitq_i_gemm_pack(&a, w, 2, 2, &l.packed), VITQ_OK);
    float *panels = l.packed.panels;
    vitq_i_linear *one[1] = {&l}, *twice[2] = {&l, &l}, *bad_shape[1] = {&narrow};
    float lo[2] = {-1.0f, 0.0f}, hi[2] = {1.0f, 2.0f};
    double b[2], s[2];
    const vitq_status INVALID = VITQ_ERR_INVALID_ARGUMENT;
    CHECK_STATUS(vitq_i_smooth_factors(lo, hi, 2, one, 1, 1.5, 1, b, s), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_i_smooth_factors(lo, hi, 2, one, 1, NAN, 1, b, s), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_i_smooth_factors(NULL, hi, 2, one, 1, 0.5, 1, b, s), INVALID);
    CHECK_STATUS(vitq_i_smooth_factors(lo, hi, 2, twice, 2, 0.5, 1, b, s), INVALID);
    CHECK_STATUS(vitq_i_smooth_factors(lo, hi, 2, bad_shape, 1, 0.5, 1, b, s), VITQ_ERR_SHAPE);
    float unseen_lo[2] = {-1.0f, INFINITY}, unseen_hi[2] = {1.0f, -INFINITY};
    CHECK_STATUS(vitq_i_smooth_factors(unseen_lo, unseen_hi, 2, one, 1, 0.5, 1, b, s), INVALID);
    CHECK(strstr(vitq_last_error(), "channel 1") != NULL);
    float gamma[2] = {1.0f, 1.0f}, beta[2] = {0.0f, 0.0f};
    vitq_i_layernorm_params ln = {gamma, beta};
    const double good_b[2] = {0.0, 1.0}, zero_s[2] = {1.0, 0.0}, nan_b[2] = {NAN, 0.0}, huge_s[2] = {1.0, 1e-300};
    const double ones[2] = {1.0, 1.0};
    CHECK_STATUS(vitq_i_smooth_fold(&a, &ln, 2, one, 1, good_b, zero_s), INVALID);
    CHECK(strstr(vitq_last_error(), "channel 1") != NULL);
    CHECK_STATUS(vitq_i_smooth_fold(&a, &ln, 2, one, 1, nan_b, ones), INVALID);
    CHECK_STATUS(vitq_i_smooth_fold(&a, &ln, 2, one, 1, good_b, huge_s), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_i_smooth_fold(&a, &ln, 2, twice, 2, good_b, ones), INVALID);
    CHECK_STATUS(vitq_i_smooth_fold(NULL, &ln, 2, one, 1, good_b, ones), INVALID);
    /* every refusal left everything as it was */
    CHECK(gamma[0] == 1.0f && gamma[1] == 1.0f && beta[0] == 0.0f && beta[1] == 0.0f);
    CHECK(w[0] == 1.0f && w[3] == 4.0f && bias[0] == 0.1f && bias[1] == 0.2f && l.packed.panels == panels);
    vitq_i_gemm_packed_free(&a, &l.packed);
}

/* An allocator that refuses allocation number fail_at and counts live blocks. */
typedef struct refuse {
    long live, allocs, fail_at;
} refuse;
static void *refuse_alloc(void *user, size_t size, size_t align) {
    refuse *r = user;
    if (r->allocs++ == r->fail_at) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size ? size : 1)) return NULL;
    r->live++;
    return p;
}
static void refuse_free(void *user, void *p) {
    ((refuse *)user)->live--;
    free(p);
}

/* Each allocation of the fold refused in turn: out of memory, nothing changed, nothing leaked; then
 * the fold succeeds owning one block more (the bias it created). */
static void test_out_of_memory(void) {
    refuse counter = {0, 0, -1};
    vitq_allocator a = {sizeof a, refuse_alloc, refuse_free, &counter};
    float w0[6] = {1, 2, 3, 4, 5, 6}, gamma[3] = {1, 1, 1}, beta[3] = {0, 0, 0};
    vitq_i_linear l = {3, 2, w0, NULL, {0, 0, NULL}, NULL};
    CHECK_STATUS(vitq_i_gemm_pack(&a, w0, 2, 3, &l.packed), VITQ_OK);
    vitq_i_linear *one[1] = {&l};
    vitq_i_layernorm_params ln = {gamma, beta};
    const double b[3] = {0.5, -1, 2}, s[3] = {2, 0.5, 1};
    long live = counter.live, refused = 0;
    const float *panels = l.packed.panels;
    vitq_status st = VITQ_ERR_OUT_OF_MEMORY;
    for (long k = 0; st == VITQ_ERR_OUT_OF_MEMORY && k < 50; k++) {
        counter.allocs = 0;
        counter.fail_at = k;
        st = vitq_i_smooth_fold(&a, &ln, 3, one, 1, b, s);
        if (st != VITQ_ERR_OUT_OF_MEMORY) break;
        refused++;
        CHECK(counter.live == live && l.bias == NULL && l.packed.panels == panels);
        CHECK(w0[0] == 1.0f && gamma[0] == 1.0f && beta[1] == 0.0f);
    }
    CHECK_STATUS(st, VITQ_OK);
    CHECK(refused >= 4); /* LayerNorm staging, linear staging, weight and bias, panels */
    CHECK(counter.live == live + 1 && l.bias != NULL && w0[0] == 2.0f && gamma[0] == 0.5f);
    vitq_i_free(&a, l.bias);
    vitq_i_gemm_packed_free(&a, &l.packed);
    CHECK(counter.live == 0);
}

/* ---- the FP32 identity on the bundled models -------------------------------------------------------- */

/* Per-channel min / max of the chosen activation points, observed through taps. */
typedef struct ranges {
    float **lo, **hi; /* [point]: [channels], NULL for the points not observed */
} ranges;

static vitq_status range_tap(vitq_i_taps *t, int point, const vitq_tensor_view *v) {
    ranges *r = t->ctx;
    for (int64_t o = 0; o < v->outer; o++)
        for (int64_t c = 0; c < v->channels; c++)
            for (int64_t i = 0; i < v->inner; i++) {
                float x = v->data[o * v->outer_stride + c * v->inner + i];
                if (x < r->lo[point][c]) r->lo[point][c] = x;
                if (x > r->hi[point][c]) r->hi[point][c] = x;
            }
    return VITQ_OK;
}

/* A site to fold: the point (a LayerNorm output), its LayerNorm and its linear. */
typedef struct site {
    int point;
    vitq_i_layernorm_params *ln;
    vitq_i_linear *next;
} site;

static int fold_sites(vitq_i_net *m, const vitq_i_point_list *list, site *out) {
    int n = 0;
    for (int b = 0; b < m->info.depth; b++) {
        out[n++] = (site){list->sites.blocks[b].qkv_in, &m->blocks[b].norm1, &m->blocks[b].qkv};
        out[n++] = (site){list->sites.blocks[b].fc1_in, &m->blocks[b].norm2, &m->blocks[b].fc1};
    }
    for (int s = 1; m->stages && s < m->info.num_stages; s++)
        out[n++] = (site){list->sites.stages[s].merge_in, &m->stages[s].merge_norm, &m->stages[s].merge};
    return n;
}

/* Observe the sites' ranges on images (n of them) with a forward pass; logits into `logits`. */
static void observe(vitq_i_net *m, const vitq_i_point_list *list, const site *sites, int ns, const float *images,
                    size_t n, ranges *r, float *logits) {
    vitq_allocator a = malloc_allocator();
    unsigned char *active = calloc((size_t)list->count + 1, 1);
    for (int i = 0; i < ns; i++) {
        int p = sites[i].point;
        active[p] = 1;
        for (int64_t c = 0; c < list->points[p].channels; c++) r->lo[p][c] = INFINITY, r->hi[p][c] = -INFINITY;
    }
    vitq_i_sites filtered;
    CHECK_STATUS(vitq_i_sites_filter(&a, m, list, active, &filtered), VITQ_OK);
    vitq_i_taps taps = {.sites = &filtered, .apply = range_tap, .ctx = r};
    CHECK_STATUS(vitq_i_net_forward(m, images, n, logits, &taps), VITQ_OK);
    vitq_i_sites_free(&a, &filtered);
    free(active);
}

/* Fold every site of `path` with (shift, alpha 0.5) factors from its ranges on 24 test images: the
 * logits stay within the golden tolerance, and the shift centres every channel. */
static void check_identity(const char *path, int shift) {
    vitq_model *handle = load(path);
    if (!handle) return;
    vitq_i_net *m = handle->net;
    vitq_allocator a = malloc_allocator();
    CHECK_STATUS(vitq_i_model_attach_rows(m), VITQ_OK);
    vitq_i_point_list list;
    CHECK_STATUS(vitq_i_points_build(&a, m, &list), VITQ_OK);
    const size_t n = 24, classes = (size_t)m->info.num_classes;
    size_t per_image = (size_t)m->info.in_channels * (size_t)m->info.image_size * (size_t)m->info.image_size;
    float *images = malloc(n * per_image * sizeof(float));
    float *before = malloc(n * classes * sizeof(float)), *after = malloc(n * classes * sizeof(float));
    CHECK_STATUS(vitq_i_dataset_images(m, test_set, 0, n, images), VITQ_OK);
    site sites[64];
    int ns = fold_sites(m, &list, sites);
    size_t count = list.count > 0 ? (size_t)list.count : 1;
    ranges r = {calloc(count, sizeof(float *)), calloc(count, sizeof(float *))};
    for (int i = 0; i < ns; i++) {
        int64_t d = list.points[sites[i].point].channels;
        r.lo[sites[i].point] = malloc((size_t)d * sizeof(float));
        r.hi[sites[i].point] = malloc((size_t)d * sizeof(float));
    }
    observe(m, &list, sites, ns, images, n, &r, before);

    /* the first site's bias before the fold: put back afterwards, the model must move (the check can fail) */
    size_t out0 = sites[0].next->out;
    float *bias0 = malloc(out0 * sizeof(float));
    memcpy(bias0, sites[0].next->bias, out0 * sizeof(float));
    size_t changed = 0, channels = 0;
    double worst_centre = 0.0, worst_balance = 0.0;
    double **bs = calloc(sizeof sites / sizeof sites[0], sizeof(double *));
    for (int i = 0; i < ns; i++) {
        int p = sites[i].point;
        size_t d = sites[i].next->in;
        bs[i] = malloc(2 * d * sizeof(double));
        vitq_i_linear *next[1] = {sites[i].next};
        CHECK_STATUS(vitq_i_smooth_factors(r.lo[p], r.hi[p], d, next, 1, 0.5, shift, bs[i], bs[i] + d), VITQ_OK);
        CHECK_STATUS(vitq_i_smooth_fold(&m->alloc, sites[i].ln, d, next, 1, bs[i], bs[i] + d), VITQ_OK);
        for (size_t c = 0; c < d; c++) changed += bs[i][d + c] != 1.0 || bs[i][c] != 0.0;
        channels += d;
    }
    observe(m, &list, sites, ns, images, n, &r, after);
    /* Tolerance: 1e-5 of the largest logit. The fold is exact in real arithmetic; in FP32 it changes the
     * rounding of every folded LayerNorm output and product (unit roundoff 6e-8, relative), and those
     * perturbations pass through the later blocks: measured 3e-7 relative on all three models, so 1e-5
     * leaves a margin of 30 while a wrong fold (the bias from W' instead of W, a shift left out of
     * beta or of the bias) moves the logits by far more than 1e-3. */
    double worst = 0.0, largest = 0.0;
    for (size_t i = 0; i < n * classes; i++) {
        worst = fmax(worst, fabs((double)after[i] - before[i]));
        largest = fmax(largest, fabs((double)before[i]));
        if (after[i] != after[i]) worst = INFINITY;
    }
    printf("    %s %s: logits after %d folds differ by at most %.3g (largest logit %.3g)\n", path,
           shift ? "SQ-b" : "SmoothQuant", ns, worst, largest);
    CHECK(worst <= 1e-5 * largest);
    if (shift) {
        float *folded_bias = sites[0].next->bias;
        sites[0].next->bias = bias0;
        float *broken = malloc(n * classes * sizeof(float));
        CHECK_STATUS(vitq_i_net_forward(m, images, n, broken, NULL), VITQ_OK);
        double moved = 0.0;
        for (size_t i = 0; i < n * classes; i++) moved = fmax(moved, fabs((double)broken[i] - before[i]));
        printf("    without the shift's bias at the first site: logits move by %.3g\n", moved);
        CHECK(moved > 1e-3 * largest);
        sites[0].next->bias = folded_bias;
        free(broken);
    }
    free(bias0);
    CHECK(changed > channels / 2); /* the folds did change the model */

    /* On the same images: a shifted channel's mid-range is 0, and (alpha 0.5) each channel's max|X'| equals
     * its weight column's max|W'| - both up to float rounding of the folded LayerNorm, relative to the
     * channel's original extent (|b| + half range) / s. */
    for (int i = 0; i < ns; i++) {
        int p = sites[i].point;
        const vitq_i_linear *l = sites[i].next;
        size_t d = l->in;
        for (size_t c = 0; c < d; c++) {
            double lo = r.lo[p][c], hi = r.hi[p][c], s = bs[i][d + c], b = bs[i][c];
            double extent = fmax(fabs(lo), fabs(hi)) + fabs(b) / s + 1e-30;
            if (shift) worst_centre = fmax(worst_centre, fabs(0.5 * (lo + hi)) / extent);
            double wmax = 0.0;
            for (size_t o = 0; o < l->out; o++) wmax = fmax(wmax, fabs(l->weight[o * d + c]));
            double xmax = fmax(fabs(lo), fabs(hi));
            if (s != 1.0) worst_balance = fmax(worst_balance, fabs(xmax - wmax) / fmax(xmax, wmax));
        }
    }
    printf("    %s: %zu/%zu channels changed; worst |max|X'| - max|W'|| / max %.2g", path, changed, channels,
           worst_balance);
    if (shift) printf(", worst |mid-range| / extent %.2g", worst_centre);
    printf("\n");
    CHECK(worst_centre <= 1e-5);
    CHECK(worst_balance <= 1e-5);

    for (int i = 0; i < ns; i++) free(bs[i]);
    for (int p = 0; p < list.count; p++) free(r.lo[p]), free(r.hi[p]);
    free(bs), free(r.lo), free(r.hi), free(images), free(before), free(after);
    vitq_i_points_free(&a, &list);
    vitq_model_free(handle);
}

static void test_identity_vit(void) {
    check_identity("models/fmnist-vit", 1);
    check_identity("models/fmnist-vit", 0);
}
static void test_identity_deit(void) {
    check_identity("models/fmnist-deit-distilled", 1);
    check_identity("models/fmnist-deit-distilled", 0);
}
static void test_identity_swin(void) {
    check_identity("models/fmnist-swin", 1);
    check_identity("models/fmnist-swin", 0);
}

/* ---- the smoothed-output error the alpha search minimises ------------------------------------------------ */

/* A planted optimum: an activation channel 50x the others against even weights. Alpha 0 leaves the
 * outlier in the activations, alpha 1 moves it whole into a weight column; the middle splits it
 * (SmoothQuant's point), so the error at 0.5 is below both ends. At 16 bits nothing is lost; the
 * error equals a direct sum by hand. */
static double error_at(const float *x, size_t rows, size_t d, vitq_i_linear *l, double alpha, int bits) {
    vitq_allocator a = malloc_allocator();
    float lo[8], hi[8];
    for (size_t c = 0; c < d; c++) {
        lo[c] = hi[c] = x[c];
        for (size_t r = 0; r < rows; r++) lo[c] = fminf(lo[c], x[r * d + c]), hi[c] = fmaxf(hi[c], x[r * d + c]);
    }
    double bs[16], err = -1;
    vitq_i_linear *const next[1] = {l};
    CHECK_STATUS(vitq_i_smooth_factors(lo, hi, d, next, 1, alpha, 1, bs, bs + d), VITQ_OK);
    CHECK_STATUS(vitq_i_smooth_error(&a, x, rows, d, l, lo, hi, bs, bs + d, bits, bits, &err), VITQ_OK);
    return err;
}

static void test_smooth_error(void) {
    enum { R = 64, D = 8, O = 4 };
    float x[R * D], w[O * D], xo[R * D];
    unsigned seed = 99;
    for (int i = 0; i < R * D; i++) {
        seed = seed * 1103515245u + 12345u;
        x[i] = (float)(((seed >> 8) & 0xFFFF) / 32768.0 - 1.0);
        xo[i] = (i % D == 3) ? 50.0f * x[i] : x[i]; /* channel 3: an activation outlier */
    }
    for (int i = 0; i < O * D; i++) {
        seed = seed * 1103515245u + 12345u;
        w[i] = (float)(((seed >> 8) & 0xFFFF) / 32768.0 - 1.0);
    }
    vitq_i_linear l;
    memset(&l, 0, sizeof l);
    l.in = D, l.out = O, l.weight = w;
    double a1 = error_at(xo, R, D, &l, 1.0, 4), a0 = error_at(xo, R, D, &l, 0.0, 4);
    double ah = error_at(xo, R, D, &l, 0.5, 4);
    printf("    activation outlier: error %.4g at alpha 0, %.4g at 0.5, %.4g at 1\n", a0, ah, a1);
    CHECK(ah < 0.7 * a0 && ah < 0.7 * a1);
    double fine = error_at(xo, R, D, &l, 0.5, 16);
    CHECK(fine < 1e-6 * a0);
    /* a direct sum at alpha 0 without shift effect on the weights: 4-bit symmetric rounding by hand */
    l.weight = w;
    vitq_allocator a = malloc_allocator();
    float lo[D], hi[D];
    double b[D], sc[D], err = -1, direct = 0, amax = 0;
    for (int c = 0; c < D; c++) {
        lo[c] = hi[c] = x[c];
        for (int r = 0; r < R; r++) lo[c] = fminf(lo[c], x[r * D + c]), hi[c] = fmaxf(hi[c], x[r * D + c]);
        b[c] = 0.5 * ((double)lo[c] + hi[c]), sc[c] = 1.0;
        amax = fmax(amax, fmax(fabs(lo[c] - b[c]), fabs(hi[c] - b[c])));
    }
    CHECK_STATUS(vitq_i_smooth_error(&a, x, R, D, &l, lo, hi, b, sc, 4, 4, &err), VITQ_OK);
    for (int o = 0; o < O; o++) {
        double wmax = 0;
        for (int c = 0; c < D; c++) wmax = fmax(wmax, fabs(w[o * D + c]));
        for (int r = 0; r < R; r++) {
            double e = 0, q = 0;
            for (int c = 0; c < D; c++) {
                double xv = (double)(float)(x[r * D + c] - b[c]), wv = w[o * D + c];
                double xq = fmin(fmax(nearbyint(xv / (amax / 7)), -8), 7) * (amax / 7);
                double wq = fmin(fmax(nearbyint(wv / (wmax / 7)), -8), 7) * (wmax / 7);
                e += xv * wv, q += (double)(float)xq * wq;
            }
            direct += (e - q) * (e - q);
        }
    }
    printf("    direct sum %.6g, vitq_i_smooth_error %.6g\n", direct, err);
    CHECK(fabs(direct - err) <= 1e-4 * direct);
}

/* ---- mptq-vit ------------------------------------------------------------------------------------------ */

static void test_mptq_accuracy(void) {
    vitq_model *fp = load("models/fmnist-vit");
    if (!fp) return;
    size_t n = 1000, images = 32;
    static const char *const plain[] = {"shift", "0"};
    double base = top1(fp, n);
    vitq_model *q8 = quantize_with(fp, NULL, "mptq-vit", 8, 8, NULL, 0, NULL, 0, images);
    vitq_model *q4 = quantize_with(fp, NULL, "mptq-vit", 4, 4, NULL, 0, NULL, 0, images);
    vitq_model *s4 = quantize_with(fp, NULL, "mptq-vit", 4, 4, NULL, 0, plain, 1, images);
    vitq_model *m4 = quantize_with(fp, NULL, "minmax", 4, 4, NULL, 0, NULL, 0, images);
    double a8 = q8 ? top1(q8, n) : 0, a4 = q4 ? top1(q4, n) : 0, as4 = s4 ? top1(s4, n) : 0, am4 = m4 ? top1(m4, n) : 0;
    printf("    FP32 %.3f; mptq-vit W8A8 %.3f, W4A4 %.3f (SmoothQuant %.3f); minmax W4A4 %.3f\n", base, a8, a4, as4, am4);
    /* measured (32 calibration images, the first 1000 test images): FP32 0.904; mptq-vit W8A8 0.901,
     * W4A4 0.881 (shift 0: 0.889); minmax W4A4 0.848. One image is 0.1 point: at 1000 images the
     * sampling error of a top-1 near 0.9 is about 1 point, so SQ-b and plain SmoothQuant are not told
     * apart here, while both are 3 to 4 points above min-max. */
    CHECK(a8 >= base - 0.01);
    CHECK(a4 > am4 + 0.01);
    CHECK(as4 > am4 + 0.01);
    vitq_model_free(q8), vitq_model_free(q4), vitq_model_free(s4), vitq_model_free(m4);
    vitq_model_free(fp);
}

int main(void) {
    CHECK_STATUS(vitq_dataset_load_file(CALIB, NULL, NULL, &calib_set), VITQ_OK);
    CHECK_STATUS(vitq_dataset_load_file(TEST_IMAGES, TEST_LABELS, NULL, &test_set), VITQ_OK);
    if (!calib_set || !test_set) return 1;
    RUN(test_formulas);
    RUN(test_errors);
    RUN(test_out_of_memory);
    RUN(test_identity_vit);
    RUN(test_identity_deit);
    RUN(test_identity_swin);
    RUN(test_smooth_error);
    RUN(test_mptq_accuracy);
    vitq_dataset_free(calib_set);
    vitq_dataset_free(test_set);
    HARNESS_EXIT();
}
