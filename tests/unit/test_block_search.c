/* The searches of PTQ4ViT and APQ-ViT (src/calib/block_search.c, search_point.c, edge_search.c) against brute
 * force, and the Matthew-effect preserving quantizer (src/quant/scheme_mpq.c).
 *
 * On the bundled fmnist-vit, one point at a time is quantized and searched by the real calibrator; the test
 * then computes, itself, the score of every candidate of the reference grid (PTQ4ViT's code:
 * (alpha + i (beta - alpha) / grid) max|W| / (2^(k-1) - 0.5), i < grid) from the float network's own
 * gradients, and the search must have kept the candidate of least score: a block's fc2 weight (Hessian-
 * guided error of the fc2 output), the patch embedding's weight (per output channel, on its output with the
 * gradient of block 0's input), the classifier's weight (on the logits). Bottom elimination: on a planted
 * fc2 weight with a few large entries, the plain metric clips them and the bottom-eliminated one does not,
 * and APQ-ViT's search returns the eliminated metric's optimum. MPQ: every value goes to its nearest level
 * of the power grid, and on real attention maps (and on a power law) the attention output P.V is closer to
 * the float one under MPQ than under log2 at 4 bits, the order of APQ-ViT's ablation. */
#include "api/model.h"
#include "calib/search_point.h"
#include "calib_util.h"
#include "data/dataset.h"
#include "grad/backward.h"
#include "kernels/kernels.h"
#include "model/block.h"
#include "model/weights.h"
#include "quant/points.h"
#include "quant/registry.h"

#define MODEL "models/fmnist-vit"
#define IMAGES 8 /* search images */
#define GRID 16
#define LAST 3 /* a middle block of fmnist-vit (in the last, only the class token has a gradient) */

static const char *const grid_opts[] = {"grid", "16", "rounds", "1"};

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static double uniform01(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

/* ---- the float network's data ------------------------------------------------------------------ */

typedef struct net_data {
    vitq_model *fp;
    vitq_i_point_list list;
    float *images;               /* [IMAGES] model-ready */
    float *x_in[2], *d_out[2];   /* blocks 0 and LAST: input, gradient at the output */
    size_t block_floats;         /* per image */
    float *logits, *head_in, *patches;
    float *fc2_in;               /* block LAST's fc2 input [rows][hidden] */
} net_data;

static int keep_blocks(void *ctx, int block, size_t first, size_t n, const float *x_in, const float *d_out) {
    net_data *d = ctx;
    int k = block == 0 ? 0 : block == LAST ? 1 : -1;
    if (k < 0) return 0;
    memcpy(d->x_in[k] + first * d->block_floats, x_in, n * d->block_floats * sizeof(float));
    memcpy(d->d_out[k] + first * d->block_floats, d_out, n * d->block_floats * sizeof(float));
    return 0;
}

typedef struct capture {
    int points[3];
    float *out[3];
} capture;

static vitq_status capture_tap(vitq_i_taps *t, int point, const vitq_tensor_view *v) {
    capture *c = t->ctx;
    for (int k = 0; k < 3; k++)
        if (point == c->points[k])
            for (int64_t o = 0; o < v->outer; o++)
                memcpy(c->out[k] + o * v->channels * v->inner, v->data + o * v->outer_stride,
                       (size_t)(v->channels * v->inner) * sizeof(float));
    return VITQ_OK;
}

static int load_data(net_data *d) {
    memset(d, 0, sizeof *d);
    d->fp = load(MODEL);
    if (!d->fp) return 0;
    vitq_i_net *m = d->fp->net;
    const vitq_model_info *i = &m->info;
    CHECK_STATUS(vitq_i_model_attach_rows(m), VITQ_OK);
    CHECK_STATUS(vitq_i_points_build(&m->alloc, m, &d->list), VITQ_OK);
    size_t per = (size_t)i->in_channels * (size_t)i->image_size * (size_t)i->image_size;
    size_t t = (size_t)i->num_tokens, dim = (size_t)i->embed_dim, hidden = m->blocks[LAST].fc1.out;
    size_t patch_in = (size_t)i->in_channels * (size_t)i->patch_size * (size_t)i->patch_size;
    d->block_floats = t * dim;
    d->images = malloc(IMAGES * per * sizeof(float));
    for (int k = 0; k < 2; k++) {
        d->x_in[k] = malloc(IMAGES * d->block_floats * sizeof(float));
        d->d_out[k] = malloc(IMAGES * d->block_floats * sizeof(float));
    }
    d->logits = malloc(IMAGES * (size_t)i->num_classes * sizeof(float));
    d->head_in = malloc(IMAGES * dim * sizeof(float));
    d->patches = malloc(IMAGES * t * patch_in * sizeof(float));
    d->fc2_in = malloc(IMAGES * t * hidden * sizeof(float));
    CHECK_STATUS(vitq_i_dataset_images(m, calib_set, 0, IMAGES, d->images), VITQ_OK);
    CHECK_STATUS(vitq_i_model_backward(m, d->images, IMAGES, NULL, NULL, keep_blocks, d), VITQ_OK);
    capture c = {{d->list.sites.head_in, d->list.sites.patch_in, -1}, {d->head_in, d->patches, NULL}};
    vitq_i_taps taps = {.sites = &d->list.sites, .apply = capture_tap, .ctx = &c};
    CHECK_STATUS(vitq_i_net_forward(m, d->images, IMAGES, d->logits, &taps), VITQ_OK);
    float *x = malloc(IMAGES * d->block_floats * sizeof(float));
    memcpy(x, d->x_in[1], IMAGES * d->block_floats * sizeof(float));
    capture c2 = {{d->list.sites.blocks[LAST].fc2_in, -1, -1}, {d->fc2_in, NULL, NULL}};
    vitq_i_taps taps2 = {.sites = &d->list.sites, .apply = capture_tap, .ctx = &c2};
    CHECK_STATUS(vitq_i_net_block_forward(m, LAST, x, IMAGES, &taps2), VITQ_OK);
    free(x);
    return 1;
}

static void free_data(net_data *d) {
    if (d->fp) vitq_i_points_free(&d->fp->net->alloc, &d->list);
    vitq_model_free(d->fp);
    free(d->images);
    for (int k = 0; k < 2; k++) free(d->x_in[k]), free(d->d_out[k]);
    free(d->logits), free(d->head_in), free(d->patches), free(d->fc2_in);
}

/* ---- the quantized model's parameters ------------------------------------------------------------ */

static const float *param_of(const vitq_model *q, const char *point, const char *param, int64_t *count) {
    int p = vitq_i_points_find(&q->quant->list, point);
    if (p < 0 || q->quant->of_point[p] < 0) return NULL;
    const vitq_i_qpoint *qp = &q->quant->qpoints[q->quant->of_point[p]];
    for (int32_t k = 0; k < qp->inst.scheme.param_count(qp->inst.state); k++) {
        const char *name;
        const float *v;
        if (qp->inst.scheme.get_param(qp->inst.state, k, &name, &v, count) == VITQ_OK && !strcmp(name, param)) return v;
    }
    return NULL;
}

/* Quantize with `method` where only `point` is quantized (4 bits); options (key, value) pairs. */
static vitq_model *only(const vitq_model *fp, const char *method, const char *point, const char *const *opts, int n) {
    const char *sets[] = {"*", "bits", "0", point, "bits", "4"};
    return quantize_with(fp, NULL, method, 4, 4, sets, 2, opts, n, IMAGES);
}

/* ---- brute force ------------------------------------------------------------------------------------ */

/* Candidate i of the reference grid for the range max at 4 bits. */
static float cand(int i, double max) {
    float base = (float)(max / 7.5);
    return (float)((0.01 + i * (1.2 - 0.01) / GRID) * (double)base);
}

static float fq4(float w, float s) {
    double q = nearbyint((double)w / (double)s);
    q = q < -8 ? -8 : q > 7 ? 7 : q;
    return (float)(q * (double)s);
}

/* Terms (g (X dW^T))^2 of a linear layer's output error, rows x out, weight rows [lo, hi) only (others 0). */
static void error_terms(const float *x, const float *w, size_t rows, size_t in, size_t out, size_t lo, size_t hi,
                        float s, const float *g, float *terms) {
    float *dw = malloc(out * in * sizeof(float));
    for (size_t o = 0; o < out * in; o++) dw[o] = fq4(w[o], s) - w[o];
    for (size_t r = 0; r < rows; r++)
        for (size_t o = 0; o < out; o++) {
            double e = 0.0;
            if (o >= lo && o < hi)
                for (size_t k = 0; k < in; k++) e += (double)x[r * in + k] * dw[o * in + k];
            double t = (double)g[r * out + o] * e;
            terms[r * out + o] = (float)(t * t);
        }
    free(dw);
}

static double sum_above(const float *terms, size_t n, float tau) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        if (terms[i] >= tau) s += terms[i];
    return s;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static double max_abs(const float *w, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(w[i]));
    return m;
}

/* Scores of every candidate for a per-tensor weight w [out][in] read by x [rows][in], gradient g; with
 * `eliminate` > 0 the terms below the incumbent's (the reference start max/7.5) quantile are dropped. */
static void scores(const float *x, const float *w, size_t rows, size_t in, size_t out, const float *g,
                   double eliminate, double *score) {
    size_t n = rows * out;
    float *terms = malloc(n * sizeof(float)), tau = 0.0f;
    double max = max_abs(w, out * in);
    if (eliminate > 0) {
        error_terms(x, w, rows, in, out, 0, out, (float)(max / 7.5), g, terms);
        qsort(terms, n, sizeof(float), cmp_float);
        tau = terms[(size_t)(eliminate * (double)(n - 1))];
    }
    for (int i = 0; i < GRID; i++) {
        error_terms(x, w, rows, in, out, 0, out, cand(i, max), g, terms);
        if (eliminate < 0) {
            float *sorted = malloc(n * sizeof(float));
            memcpy(sorted, terms, n * sizeof(float));
            qsort(sorted, n, sizeof(float), cmp_float);
            tau = sorted[(size_t)(-eliminate * (double)(n - 1))];
            free(sorted);
        }
        score[i] = sum_above(terms, n, tau);
    }
    free(terms);
}

static int argmin(const double *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] < v[best]) best = i;
    return best;
}

/* The searched scale is candidate `want` of the grid for max. */
static void check_choice(const char *what, float got, int want, double max, const double *score) {
    int at = -1;
    for (int i = 0; i < GRID; i++)
        if (fabs((double)got - cand(i, max)) <= 1e-6 * cand(i, max)) at = i;
    printf("    %s: searched candidate %d (scale %.6g), brute force %d (score %.6g; candidates 0 and %d: %.4g, %.4g)\n",
           what, at, (double)got, want, score[want], GRID - 1, score[0], score[GRID - 1]);
    CHECK(at >= 0);
    /* the same candidate, or one whose score ties the best to float rounding */
    CHECK(at == want || (at >= 0 && score[at] <= score[want] * (1 + 1e-5)));
}

/* ---- the tests ---------------------------------------------------------------------------------------- */

static net_data data;

/* PTQ4ViT: the fc2 weight of the last block, scored on fc2's output with the block's output gradient. */
static void test_block_weight_brute_force(void) {
    if (!data.fp) return;
    vitq_i_net *m = data.fp->net;
    const vitq_i_linear *l = &m->blocks[LAST].fc2;
    size_t rows = IMAGES * (size_t)m->info.num_tokens;
    double score[GRID];
    scores(data.fc2_in, l->weight, rows, l->in, l->out, data.d_out[1], 0.0, score);
    vitq_model *q = only(data.fp, "ptq4vit", "blocks.3.mlp.fc2.weight", grid_opts, 2);
    int64_t count = 0;
    const float *s = q ? param_of(q, "blocks.3.mlp.fc2.weight", "scale", &count) : NULL;
    CHECK(s && count == 1);
    if (s) check_choice("fc2 weight (hessian)", s[0], argmin(score, GRID), max_abs(l->weight, l->out * l->in), score);
    /* not the min-max scale nor the reference start: the search moved */
    CHECK(s && fabs(s[0] - max_abs(l->weight, l->out * l->in) / 7.0) > 1e-6 && fabs(s[0] - max_abs(l->weight, l->out * l->in) / 7.5) > 1e-6);
    vitq_model_free(q);
}

/* PTQ4ViT's patch embedding: a scale per output channel, each the best on its own output channel. */
static void test_patch_embedding_brute_force(void) {
    if (!data.fp) return;
    vitq_i_net *m = data.fp->net;
    const vitq_model_info *i = &m->info;
    const vitq_i_linear *l = &m->patch_embed;
    size_t t = (size_t)i->num_tokens, pre = (size_t)i->num_prefix_tokens, d = (size_t)i->embed_dim;
    size_t rows = IMAGES * (t - pre);
    /* the gradient at the embedding's output: block 0's input gradient on the patch tokens */
    float *d_in = malloc(IMAGES * t * d * sizeof(float)), *g = malloc(rows * d * sizeof(float));
    CHECK_STATUS(vitq_i_block_backward(m, 0, data.x_in[0], data.d_out[0], IMAGES, NULL, d_in), VITQ_OK);
    for (size_t b = 0; b < IMAGES; b++) memcpy(g + b * (t - pre) * d, d_in + (b * t + pre) * d, (t - pre) * d * sizeof(float));
    vitq_model *q = only(data.fp, "ptq4vit", "patch_embed.proj.weight", grid_opts, 2);
    int64_t count = 0;
    const float *s = q ? param_of(q, "patch_embed.proj.weight", "scale", &count) : NULL;
    CHECK(s && count == (int64_t)l->out);
    float *terms = malloc(rows * l->out * sizeof(float));
    int same = 0, moved = 0;
    for (size_t c = 0; s && c < l->out; c++) {
        double max = max_abs(l->weight + c * l->in, l->in), score[GRID];
        for (int k = 0; k < GRID; k++) {
            error_terms(data.patches, l->weight, rows, l->in, l->out, c, c + 1, cand(k, max), g, terms);
            score[k] = sum_above(terms, rows * l->out, 0.0f);
        }
        int want = argmin(score, GRID), at = -1;
        for (int k = 0; k < GRID; k++)
            if (fabs((double)s[c] - cand(k, max)) <= 1e-6 * cand(k, max)) at = k;
        same += at == want || (at >= 0 && score[at] <= score[want] * (1 + 1e-5));
        moved += at != GRID - 1;
    }
    printf("    patch embedding: %d of %zu channels at their brute-force optimum, %d below the top candidate\n", same,
           l->out, moved);
    CHECK(s && same == (int)l->out);
    CHECK(moved > 0);
    free(terms), free(d_in), free(g);
    vitq_model_free(q);
}

/* PTQ4ViT's classifier: scored on the logits with the cross-entropy's gradient against the top-1 class. */
static void test_classifier_brute_force(void) {
    if (!data.fp) return;
    vitq_i_net *m = data.fp->net;
    const vitq_i_linear *l = &m->head;
    size_t k = l->out;
    float *g = malloc(IMAGES * k * sizeof(float));
    for (size_t b = 0; b < IMAGES; b++) {
        const float *z = data.logits + b * k;
        size_t top = 0;
        double sum = 0.0;
        for (size_t c = 1; c < k; c++)
            if (z[c] > z[top]) top = c;
        for (size_t c = 0; c < k; c++) sum += exp((double)z[c] - z[top]);
        for (size_t c = 0; c < k; c++) g[b * k + c] = (float)(exp((double)z[c] - z[top]) / sum) - (c == top);
    }
    double score[GRID];
    scores(data.head_in, l->weight, IMAGES, l->in, k, g, 0.0, score);
    vitq_model *q = only(data.fp, "ptq4vit", "head.weight", grid_opts, 2);
    int64_t count = 0;
    const float *s = q ? param_of(q, "head.weight", "scale", &count) : NULL;
    CHECK(s && count == 1);
    if (s) check_choice("classifier weight", s[0], argmin(score, GRID), max_abs(l->weight, k * l->in), score);
    free(g);
    vitq_model_free(q);
}

/* ---- MPQ ---------------------------------------------------------------------------------------------- */

/* APQ-ViT's search of the same fc2 weight, scored on the block's output (the same error as fc2's output: only
 * that weight is quantized) without the terms under the incumbent's 90th percentile. */
static void test_apq_block_weight_brute_force(void) {
    if (!data.fp) return;
    static const char *const opts[] = {"grid", "16", "rounds", "1", "eliminate", "0.9"};
    vitq_i_net *m = data.fp->net;
    const vitq_i_linear *l = &m->blocks[LAST].fc2;
    size_t rows = IMAGES * (size_t)m->info.num_tokens;
    double plain[GRID], bbc[GRID];
    scores(data.fc2_in, l->weight, rows, l->in, l->out, data.d_out[1], 0.0, plain);
    scores(data.fc2_in, l->weight, rows, l->in, l->out, data.d_out[1], 0.9, bbc);
    vitq_model *q = only(data.fp, "apq-vit", "blocks.3.mlp.fc2.weight", opts, 3);
    int64_t count = 0;
    const float *s = q ? param_of(q, "blocks.3.mlp.fc2.weight", "scale", &count) : NULL;
    CHECK(s && count == 1);
    printf("    (the plain metric's optimum here: candidate %d)\n", argmin(plain, GRID));
    if (s) check_choice("fc2 weight (apq-vit, eliminate 0.9)", s[0], argmin(bbc, GRID), max_abs(l->weight, l->out * l->in), bbc);
    vitq_model_free(q);
}

/* ---- the search loop on a planted tensor ------------------------------------------------------------- */

/* A run with one activation point, symmetric minmax at 4 bits, whose "layer" is its own quantizer: the
 * output the metric sees is Q(x), the reference x, the gradient 1. */
typedef struct one_point {
    vitq_allocator alloc;
    vitq_i_point_desc desc;
    vitq_i_point_list list;
    vitq_i_point_cfg cfg;
    vitq_i_qpoint qp;
    int of_point;
    vitq_i_qmodel q;
    vitq_i_run r;
    const float *x;
    float *out;
    size_t n;
} one_point;

static vitq_status run_quantizer(void *ctx, const float **out) {
    one_point *o = ctx;
    memcpy(o->out, o->x, o->n * sizeof(float));
    vitq_tensor_view v = {sizeof v, o->out, 1, 1, (int64_t)o->n, (int64_t)o->n};
    *out = o->out;
    return o->qp.inst.scheme.fake_quant(o->qp.inst.state, &v);
}

static int one_point_init(one_point *o, const float *x, size_t n) {
    memset(o, 0, sizeof *o);
    CHECK_STATUS(vitq_i_allocator_resolve(NULL, &o->alloc), VITQ_OK);
    snprintf(o->desc.name, sizeof o->desc.name, "planted.input");
    o->desc.kind = VITQ_POINT_ACTIVATION, o->desc.role = VITQ_ROLE_LINEAR_INPUT, o->desc.channels = 1, o->desc.inner = 1;
    o->list.points = &o->desc, o->list.count = 1;
    o->cfg.scheme = NULL, o->cfg.bits = 4, o->cfg.granularity = VITQ_GRAN_TENSOR, o->cfg.symmetric = 1;
    const vitq_scheme *minmax = NULL;
    for (int32_t i = 0; i < vitq_registry_count(NULL); i++)
        if (!strcmp(vitq_registry_get(NULL, i)->name, "minmax")) minmax = vitq_registry_get(NULL, i);
    vitq_point_config c = {.struct_size = sizeof c, .name = "planted.input", .kind = VITQ_POINT_ACTIVATION,
                           .role = VITQ_ROLE_LINEAR_INPUT, .bits = 4, .granularity = VITQ_GRAN_TENSOR, .symmetric = 1,
                           .channels = 1};
    CHECK(minmax != NULL);
    if (!minmax) return 0;
    CHECK_STATUS(vitq_i_config_groups(&c, 0), VITQ_OK);
    CHECK_STATUS(vitq_i_instance_create(&o->qp.inst, &o->alloc, minmax, &c), VITQ_OK);
    vitq_tensor_view v = {sizeof v, (float *)x, 1, 1, (int64_t)n, (int64_t)n};
    for (int32_t pass = 0; pass < minmax->num_passes; pass++)
        CHECK_STATUS(o->qp.inst.scheme.observe(o->qp.inst.state, pass, &v), VITQ_OK);
    CHECK_STATUS(o->qp.inst.scheme.finalize(o->qp.inst.state), VITQ_OK);
    o->qp.observed_min = INFINITY, o->qp.observed_max = -INFINITY;
    for (size_t i = 0; i < n; i++) o->qp.observed_min = fminf(o->qp.observed_min, x[i]), o->qp.observed_max = fmaxf(o->qp.observed_max, x[i]);
    o->q.qpoints = &o->qp, o->q.count = 1, o->q.of_point = &o->of_point;
    o->r.alloc = &o->alloc, o->r.list = &o->list, o->r.cfg = &o->cfg, o->r.q = &o->q;
    o->x = x, o->n = n, o->out = malloc(n * sizeof(float));
    return 1;
}

/* 995 values spread over [-1, 1] and 5 at +-1.6: the many small rounding errors of the 995 pull the plain
 * metric to a fine step that clips the 5; eliminating the terms under the incumbent's 90th percentile, the
 * search keeps a coarser step that clips them less. Both searches return their metric's brute-force best. */
static void test_bottom_elimination_changes_the_choice(void) {
    enum { N = 1000, G = 20 };
    float *x = malloc(N * sizeof(float)), *ones = malloc(N * sizeof(float)), *terms = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) x[i] = (float)(uniform01() * 2 - 1), ones[i] = 1.0f;
    for (int i = 0; i < 5; i++) x[i * 199] = i % 2 ? -1.6f : 1.6f;
    double amax = max_abs(x, N), plain[G], bbc[G];
    float base = (float)(amax / 7.5), tau = 0.0f;
    for (int i = 0; i < N; i++) terms[i] = (x[i] - fq4(x[i], base)) * (x[i] - fq4(x[i], base));
    qsort(terms, N, sizeof(float), cmp_float);
    tau = terms[(size_t)(0.9 * (N - 1))];
    for (int k = 0; k < G; k++) {
        float s = (float)((0.01 + k * (1.2 - 0.01) / G) * (double)base);
        for (int i = 0; i < N; i++) terms[i] = (x[i] - fq4(x[i], s)) * (x[i] - fq4(x[i], s));
        plain[k] = sum_above(terms, N, 0.0f), bbc[k] = sum_above(terms, N, tau);
    }
    int want_plain = argmin(plain, G), want_bbc = argmin(bbc, G);
    int got[2] = {-1, -1};
    for (int mode = 0; mode < 2; mode++) {
        one_point o;
        if (!one_point_init(&o, x, N)) break;
        vitq_i_block_search_options opt = {mode, 0.9, 0, G, 0.01, 1.2, 1, 0, 0, 0};
        vitq_i_metric m = {x, ones, N, 0, 0.0f};
        CHECK_STATUS(vitq_i_search_start(&o.r, 0), VITQ_OK);
        CHECK_STATUS(vitq_i_search_point(&o.r, 0, &opt, &m, 0, run_quantizer, &o), VITQ_OK);
        const char *name;
        const float *v;
        int64_t count;
        CHECK_STATUS(o.qp.inst.scheme.get_param(o.qp.inst.state, 0, &name, &v, &count), VITQ_OK);
        for (int k = 0; k < G; k++)
            if (v[0] == (float)((0.01 + k * (1.2 - 0.01) / G) * (double)base)) got[mode] = k;
        vitq_i_instance_destroy(&o.qp.inst);
        free(o.out);
    }
    printf("    planted: plain optimum %d (searched %d), bottom-eliminated optimum %d (searched %d)\n", want_plain,
           got[0], want_bbc, got[1]);
    CHECK(want_bbc > want_plain); /* a coarser step: the 5 large values clipped less */
    CHECK(got[0] == want_plain && got[1] == want_bbc);
    free(x), free(ones), free(terms);
}

/* The metric's own arithmetic on a planted pair: candidate A errs a little everywhere, B a lot on a few
 * values. The plain sum prefers B; eliminating the terms under the incumbent's median prefers A. */
static void test_metric_elimination(void) {
    enum { N = 1000 };
    float *ref = calloc(N, sizeof(float)), *grad = malloc(N * sizeof(float)), *a = malloc(N * sizeof(float));
    float *b = calloc(N, sizeof(float)), *inc = malloc(N * sizeof(float)), *work = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) grad[i] = 1.0f, a[i] = 0.1f, inc[i] = 0.2f;
    for (int i = 0; i < 20; i++) b[i * 50] = 0.5f; /* 20 x 0.25 = 5 against 1000 x 0.01 = 10 */
    vitq_i_metric m = {ref, grad, N, 0, 0.0f};
    double pa = vitq_i_metric_score(&m, a), pb = vitq_i_metric_score(&m, b);
    m.threshold = vitq_i_metric_threshold(&m, inc, 0.5, work);
    double ea = vitq_i_metric_score(&m, a), eb = vitq_i_metric_score(&m, b);
    printf("    plain: A %.3g, B %.3g; eliminated below %.3g: A %.3g, B %.3g\n", pa, pb, (double)m.threshold, ea, eb);
    CHECK(pb < pa && ea < eb);
    CHECK_NEAR(m.threshold, 0.04f, 1e-7);
    /* per column: the sums of the kept terms of each column */
    double cols[4];
    vitq_i_metric mc = {ref, grad, N, 4, 0.0f};
    vitq_i_metric_columns(&mc, b, cols);
    CHECK_NEAR(cols[0] + cols[1] + cols[2] + cols[3], pb, 1e-9);
    CHECK(cols[0] > 0 && cols[1] == 0 && cols[2] > 0 && cols[3] == 0); /* b is non-zero at multiples of 50 */
    free(ref), free(grad), free(a), free(b), free(inc), free(work);
}

/* ---- MPQ ---------------------------------------------------------------------------------------------- */

/* Softmax rows of random logits (spread `temp`): outer x heads x t x t. */
static float *softmax_rows(int64_t outer, int64_t heads, int64_t t, double temp) {
    float *p = malloc((size_t)(outer * heads * t * t) * sizeof(float));
    for (int64_t r = 0; r < outer * heads * t; r++) {
        double z[256], sum = 0.0;
        for (int64_t j = 0; j < t; j++) sum += z[j] = exp(temp * (uniform01() * 2 - 1) * (uniform01() < 0.1 ? 3 : 1));
        for (int64_t j = 0; j < t; j++) p[r * t + j] = (float)(z[j] / sum);
    }
    return p;
}

static vitq_quantizer *softmax_q(const char *scheme, int bits) {
    vitq_quantizer *q = NULL;
    CHECK_STATUS(vitq_quantizer_create(NULL, scheme, NULL, &q), VITQ_OK);
    if (!q) return NULL;
    CHECK_STATUS(vitq_quantizer_set_int(q, "bits", bits), VITQ_OK);
    CHECK_STATUS(vitq_quantizer_set(q, "granularity", "tensor"), VITQ_OK);
    CHECK_STATUS(vitq_quantizer_set_int(q, "symmetric", 0), VITQ_OK);
    return q;
}

static void calibrate(vitq_quantizer *q, const vitq_tensor_view *v) {
    for (int32_t p = 0; p < vitq_quantizer_num_passes(q); p++) CHECK_STATUS(vitq_quantizer_observe(q, p, v), VITQ_OK);
    CHECK_STATUS(vitq_quantizer_finalize(q), VITQ_OK);
}

/* Every value goes to the nearest level of the grid u (c / top)^p, p = ln(u / l) / ln(top) (0 and the top
 * exact), codes are in range and dequantize to the fake-quantized values bit for bit. */
static void test_mpq_nearest_level(void) {
    const int64_t outer = 5, heads = 2, t = 12, n = outer * heads * t * t;
    for (int bits = 2; bits <= 8; bits++) {
        float *x = softmax_rows(outer, heads, t, 3.0), *y = malloc((size_t)n * sizeof(float));
        float *dq = malloc((size_t)n * sizeof(float));
        int32_t *codes = malloc((size_t)n * sizeof(int32_t));
        vitq_tensor_view v = {sizeof v, x, outer, heads, t * t, heads * t * t};
        vitq_quantizer *q = softmax_q("mpq", bits);
        if (!q) continue;
        calibrate(q, &v);
        float max = 0.0f;
        for (int64_t i = 0; i < n; i++) max = fmaxf(max, x[i]);
        x[0] = 1.5f, x[1] = -0.25f, x[2] = 0.0f; /* then above the top, below 0, 0 */
        memcpy(y, x, (size_t)n * sizeof(float));
        v.data = y;
        CHECK_STATUS(vitq_quantizer_fake_quant(q, &v), VITQ_OK);
        v.data = x;
        CHECK_STATUS(vitq_quantizer_quantize(q, &v, codes), VITQ_OK);
        v.data = dq;
        CHECK_STATUS(vitq_quantizer_dequantize(q, codes, &v), VITQ_OK);
        int64_t count = 0;
        const float *lo = NULL, *hi = NULL;
        CHECK_STATUS(vitq_quantizer_param(q, "lower", &lo, &count), VITQ_OK);
        CHECK_STATUS(vitq_quantizer_param(q, "upper", &hi, &count), VITQ_OK);
        int top = (1 << bits) - 1, nearest = 1, in_range = 1;
        double levels[256], u = hi ? hi[0] : 0, l = lo ? lo[0] : 0, p = l > 0 && u > l ? log(u / l) / log(top) : 0;
        for (int c = 0; c <= top; c++) levels[c] = c == 0 ? 0 : c == top ? u : !(l > 0) ? 0 : u * pow((double)c / top, p);
        for (int64_t i = 0; i < n; i++) {
            double best = INFINITY;
            for (int c = 0; c <= top; c++) best = fmin(best, fabs(x[i] - levels[c]));
            /* y is a level, and no level is nearer to x (up to the float rounding of the levels) */
            double off = INFINITY;
            for (int c = 0; c <= top; c++) off = fmin(off, fabs(y[i] - levels[c]));
            nearest &= off <= 1e-6 * u && fabs(x[i] - y[i]) <= best + 1e-6 * u;
            in_range &= codes[i] >= 0 && codes[i] <= top;
        }
        printf("    %d bits: lower %.3g (p %.2f), upper %.3g\n", bits, l, p, u);
        CHECK(hi && hi[0] == max && lo && lo[0] <= hi[0]);
        CHECK(nearest && in_range);
        CHECK(memcmp(y, dq, (size_t)n * sizeof(float)) == 0);
        CHECK(y[0] == (float)u && y[1] == 0.0f && y[2] == 0.0f);
        vitq_quantizer_free(q);
        free(x), free(y), free(dq), free(codes);
    }
}

/* || (Q(P) - P) V ||^2 over seqs x heads attention maps P [t][t] and values V [seqs * t][heads * dh], with
 * `scheme` calibrated on P at 4 bits. */
static double attention_error(const char *scheme, const float *probs, const float *v, int64_t seqs, int64_t heads,
                              int64_t t, int64_t dh, double *mse) {
    int64_t n = seqs * heads * t * t;
    float *y = malloc((size_t)n * sizeof(float));
    memcpy(y, probs, (size_t)n * sizeof(float));
    vitq_tensor_view view = {sizeof view, (float *)probs, seqs, heads, t * t, heads * t * t};
    vitq_quantizer *q = softmax_q(scheme, 4);
    double e = INFINITY;
    if (q) {
        calibrate(q, &view);
        view.data = y;
        CHECK_STATUS(vitq_quantizer_fake_quant(q, &view), VITQ_OK);
        e = 0.0, *mse = 0.0;
        for (int64_t i = 0; i < n; i++) *mse += ((double)y[i] - probs[i]) * ((double)y[i] - probs[i]);
        for (int64_t s = 0; s < seqs; s++)
            for (int64_t h = 0; h < heads; h++)
                for (int64_t i = 0; i < t; i++)
                    for (int64_t c = 0; c < dh; c++) {
                        double o = 0.0;
                        for (int64_t j = 0; j < t; j++) {
                            int64_t at = ((s * heads + h) * t + i) * t + j;
                            o += ((double)y[at] - probs[at]) * v[(s * t + j) * heads * dh + h * dh + c];
                        }
                        e += o * o;
                    }
    }
    vitq_quantizer_free(q);
    free(y);
    return e;
}

static void compare_softmax_schemes(const char *what, const float *probs, const float *v, int64_t seqs, int64_t heads,
                                    int64_t t, int64_t dh) {
    static const char *const names[3] = {"mpq", "log2", "log-sqrt2"};
    double e[3], mse[3];
    for (int k = 0; k < 3; k++) e[k] = attention_error(names[k], probs, v, seqs, heads, t, dh, &mse[k]);
    printf("    %s, 4 bits: attention output error mpq %.4g, log2 %.4g, log-sqrt2 %.4g (squared error of P: %.4g, "
           "%.4g, %.4g)\n", what, e[0], e[1], e[2], mse[0], mse[1], mse[2]);
    CHECK(e[0] < e[1]); /* APQ-ViT's ablation: MPQ before log2 */
}

/* On the real attention maps of fmnist-vit's middle block and on power-law rows of 197 tokens. */
static void test_mpq_beats_log2(void) {
    if (data.fp) {
        vitq_i_net *m = data.fp->net;
        int64_t t = m->info.num_tokens, heads = m->info.num_heads, d = m->info.embed_dim;
        float *probs = malloc((size_t)(IMAGES * heads * t * t) * sizeof(float));
        float *v = malloc((size_t)(IMAGES * t * d) * sizeof(float)), *logits = malloc(IMAGES * 10 * sizeof(float));
        capture c = {{data.list.sites.blocks[2].probs, data.list.sites.blocks[2].v, -1}, {probs, v, NULL}};
        vitq_i_taps taps = {.sites = &data.list.sites, .apply = capture_tap, .ctx = &c};
        CHECK_STATUS(vitq_i_net_forward(m, data.images, IMAGES, logits, &taps), VITQ_OK);
        compare_softmax_schemes("fmnist-vit block 2", probs, v, IMAGES, heads, t, d / heads);
        free(probs), free(v), free(logits);
    }
    /* power law: p_j ~ rank_j^-1.1 over 197 tokens, in a random order; values with a non-zero mean */
    const int64_t t = 197, seqs = 2, heads = 1, dh = 8;
    float *probs = malloc((size_t)(seqs * t * t) * sizeof(float)), *v = malloc((size_t)(seqs * t * dh) * sizeof(float));
    for (int64_t r = 0; r < seqs * t; r++) {
        double sum = 0.0;
        for (int64_t j = 0; j < t; j++) sum += pow((double)(j + 1), -1.1);
        for (int64_t j = 0; j < t; j++) probs[r * t + j] = (float)(pow((double)(j + 1), -1.1) / sum);
        for (int64_t j = t - 1; j > 0; j--) { /* shuffle */
            int64_t k = (int64_t)(uniform01() * (double)(j + 1));
            float s = probs[r * t + j];
            probs[r * t + j] = probs[r * t + k], probs[r * t + k] = s;
        }
    }
    for (int64_t i = 0; i < seqs * t * dh; i++) v[i] = (float)(0.5 + (uniform01() - 0.5) * 3.0);
    compare_softmax_schemes("power law, 197 tokens", probs, v, seqs, heads, t, dh);
    free(probs), free(v);
}

int main(void) {
    CHECK_STATUS(vitq_dataset_load_file(CALIB, NULL, NULL, &calib_set), VITQ_OK);
    if (!calib_set) return 1;
    load_data(&data);
    RUN(test_block_weight_brute_force);
    RUN(test_patch_embedding_brute_force);
    RUN(test_classifier_brute_force);
    RUN(test_apq_block_weight_brute_force);
    RUN(test_bottom_elimination_changes_the_choice);
    RUN(test_metric_elimination);
    RUN(test_mpq_nearest_level);
    RUN(test_mpq_beats_log2);
    free_data(&data);
    vitq_dataset_free(calib_set);
    HARNESS_EXIT();
}
