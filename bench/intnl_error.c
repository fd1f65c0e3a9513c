/* intnl_error: the integer non-linear kernels (kernels/intnl.h: I-BERT, I-ViT, FQ-ViT softmax, GELU
 * and LayerNorm) against the exact functions, on the real inputs of those operations in a model
 * (issue 17). An internal measurement linked against the static library (-Isrc), not a test.
 *
 *   intnl_error [MODEL [IMAGES.npy [N]]]
 *     MODEL   a ViT / DeiT folder or weights file (default ../shared/imagenet/deit_tiny_patch16_224)
 *     IMAGES  uint8 images as `vitq eval --data` takes them (default build/imagenet/images.npy)
 *     N       the first N images (default 16); every captured tensor is kept: ~14 MB per image on
 *             DeiT-Tiny
 *
 * Build and run from the repository root: make bench-intnl [INTNL_ARGS="MODEL IMAGES.npy N"].
 *
 * One float forward pass of the N images with taps captures, in every block, the softmax input (the
 * scaled scores Q.K^T/sqrt(d), rows of `tokens`), the GELU input (fc1's output, a token's `hidden`
 * values) and the LayerNorm inputs (norm1, norm2 and the final norm, a token's channels). Each layer
 * is then quantized to the grid its kernels take, with parameters from that layer's values over the
 * N images (the N images are their own calibration set):
 *   softmax, GELU: symmetric per tensor, b in {8, 12, 16} bits, S = max|x| / (2^(b-1) - 1);
 *   I-BERT / I-ViT LayerNorm: the same at 8 and 16 bits;
 *   FQ-ViT PTF LayerNorm: 8-bit asymmetric min-max with FQ-ViT's per-channel factor 2^alpha
 *     (vitq_i_ptf_alpha, alpha in 0..3);
 *   LayerNorm outputs: an asymmetric per-tensor grid of 8 (or 16) bits over the layer's exact outputs.
 * Each kernel whose prepare function accepts the layer's scale runs; its dequantized output is compared
 * with the exact function (double) of the unquantized input (the whole error: input rounding and kernel)
 * and of the dequantized input (the kernel alone, with its output grid). Rows "float f" are the exact
 * function of the dequantized input (input rounding alone); rows with a float input and an output grid
 * are the exact output rounded to that grid (output rounding alone).
 * Units: softmax in probability; GELU in output units divided by that layer's output range
 * (max - min of GELU(x) over the layer); LayerNorm in output units (gamma and beta applied). SQNR is
 * 10 log10(sum ref^2 / sum err^2) over every value of every layer; the worst layer has the lowest SQNR.
 * Below each table, for kernels that take the same input bits and give outputs of the same width (GELU:
 * the same input bits, every output being finer than the errors): in how many layers each has the
 * highest SQNR against f(x) (a per-operation view, not the network-output loss of issue 17's mixed
 * selection). The final norm sees only the class token (the head reads no other), so it has N tokens.
 * 16 images: about 20 s on the 2-core machine the docs' table came from (the forward pass 3 s of it;
 * the comparisons run on one thread). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/model.h"
#include "data/dataset.h"
#include "kernels/intnl.h"
#include "quant/intnl_params.h"
#include "quant/points.h"

enum { FAM_SOFTMAX, FAM_GELU, FAM_LN, NUM_FAM };

/* ---- capture ------------------------------------------------------------------------------------ */

typedef struct capture {
    char name[VITQ_I_POINT_NAME];
    int fam;
    float *data;
    size_t used, cap; /* floats */
    int64_t width;    /* values per row: tokens of a softmax row, hidden of GELU, channels of LN */
    const vitq_i_layernorm_params *ln; /* its gamma and beta */
} capture;

typedef struct capture_set {
    capture *caps;
    int count;
    int *of_point; /* [points]: index into caps or -1 */
} capture_set;

/* Append the view (outer slices of channels * inner values) to the point's capture. */
static vitq_status capture_tap(vitq_i_taps *t, int point, const vitq_tensor_view *v) {
    capture_set *cs = t->ctx;
    int i = cs->of_point[point];
    if (i < 0) return VITQ_OK;
    capture *c = &cs->caps[i];
    int64_t slice = v->channels * v->inner, width = slice;
    if (c->fam == FAM_SOFTMAX) { /* scores [.., heads, tokens * tokens] */
        width = (int64_t)llround(sqrt((double)v->inner));
        if (width * width != v->inner)
            return vitq_i_fail(VITQ_ERR_BAD_STATE, "%s: %lld scores per head is not tokens^2", c->name,
                               (long long)v->inner);
    }
    if (c->width && c->width != width)
        return vitq_i_fail(VITQ_ERR_BAD_STATE, "%s: rows of %lld then %lld values", c->name, (long long)c->width,
                           (long long)width);
    c->width = width;
    size_t add = (size_t)(v->outer * slice);
    if (c->used + add > c->cap) {
        size_t cap = c->cap ? c->cap : add;
        while (cap < c->used + add) cap *= 2;
        float *grown = realloc(c->data, cap * sizeof(float));
        if (!grown) return vitq_i_oom(c->name, cap * sizeof(float));
        c->data = grown, c->cap = cap;
    }
    for (int64_t o = 0; o < v->outer; o++) {
        memcpy(c->data + c->used, v->data + o * v->outer_stride, (size_t)slice * sizeof(float));
        c->used += (size_t)slice;
    }
    return VITQ_OK;
}

/* The gamma and beta of a LayerNorm input point of a ViT / DeiT (names of quant/points.c). */
static const vitq_i_layernorm_params *ln_of(const vitq_i_net *m, const char *name) {
    int b;
    char which[8];
    if (strcmp(name, "norm.input") == 0) return &m->norm;
    if (sscanf(name, "blocks.%d.norm%1[12].input", &b, which) == 2 && b >= 0 && b < m->info.depth)
        return which[0] == '1' ? &m->blocks[b].norm1 : &m->blocks[b].norm2;
    return NULL;
}

/* ---- error statistics --------------------------------------------------------------------------- */

#define MAX_LAYERS 64 /* per family, for the per-layer comparison */

typedef struct stat {
    double max_e, se, sr;   /* against f(x), x unquantized */
    double max_k, sek, srk; /* against f(x^), x^ the dequantized input */
    double lay_se, lay_sr;  /* this layer, against f(x) */
    double lay_db[MAX_LAYERS]; /* SQNR of each layer against f(x) (NAN: refused), for the winners */
    double worst_db;
    int64_t count;
    int layers, refused, has_k;
    char worst[VITQ_I_POINT_NAME], why[240];
} stat;

static double sqnr_db(double sr, double se) { return se > 0 ? 10 * log10(sr / se) : INFINITY; }

static void stat_add(stat *s, double got, double ref, double refq) {
    double e = got - ref;
    s->max_e = fmax(s->max_e, fabs(e));
    s->se += e * e, s->sr += ref * ref;
    s->lay_se += e * e, s->lay_sr += ref * ref;
    s->count++;
    if (!isnan(refq)) {
        double k = got - refq;
        s->max_k = fmax(s->max_k, fabs(k));
        s->sek += k * k, s->srk += refq * refq;
        s->has_k = 1;
    }
}

/* The layer's name without ".input", for the worst-layer column. */
static void layer_name(const char *point, char *out, size_t cap) {
    snprintf(out, cap, "%s", point);
    size_t n = strlen(out);
    if (n > 6 && strcmp(out + n - 6, ".input") == 0) out[n - 6] = '\0';
}

static void stat_layer_end(stat *s, const char *point) {
    double db = sqnr_db(s->lay_sr, s->lay_se);
    if (s->layers + s->refused < MAX_LAYERS) s->lay_db[s->layers + s->refused] = db;
    if (!s->layers || db < s->worst_db) {
        s->worst_db = db;
        layer_name(point, s->worst, sizeof s->worst);
    }
    s->layers++;
    s->lay_se = s->lay_sr = 0;
}

static void stat_refuse(stat *s, const char *point) {
    if (s->layers + s->refused < MAX_LAYERS) s->lay_db[s->layers + s->refused] = NAN;
    if (!s->refused++) {
        char name[VITQ_I_POINT_NAME];
        layer_name(point, name, sizeof name);
        snprintf(s->why, sizeof s->why, "%s: %s", name, vitq_last_error());
    }
}

/* ---- a row of a table: one kernel (or the exact function) on one input grid and output grid ---- */

typedef struct row {
    const char *kernel, *in, *out;
    int kind;  /* what runs (family-specific enum) */
    int grid;  /* index of the input grid, -1: the float input */
    int param; /* output bits (softmax M, ShiftGELU M, LayerNorm output grid), LIS code bits */
    int group; /* kernels compared layer by layer (same input bits and output width); 0: not compared */
    stat s;
    /* this layer's prepared parameters */
    int ok;
    double out_scale;
    vitq_i_ibert_softmax_params ib;
    vitq_i_shiftmax_params sh;
    vitq_i_lis_params lis;
    vitq_i_ibert_gelu_params ig;
    vitq_i_shiftgelu_params sg;
    vitq_i_int_layernorm_params iln;
    vitq_i_ptf_layernorm_params ptf;
    vitq_i_ln_channel *lnch;
    vitq_i_ptf_channel *ptfch;
} row;

static row mk(const char *kernel, const char *in, const char *out, int kind, int grid, int param) {
    row r;
    memset(&r, 0, sizeof r);
    r.kernel = kernel, r.in = in, r.out = out, r.kind = kind, r.grid = grid, r.param = param;
    return r;
}

static void fmt_db(char *buf, size_t cap, double v) {
    if (isinf(v)) snprintf(buf, cap, "inf");
    else snprintf(buf, cap, "%.1f", v);
}

/* Per group of comparable kernels: in how many layers each has the highest SQNR against f(x) (equal
 * SQNRs to 0.01 dB: a tie, counted apart). */
static void print_winners(const row *rows, int n) {
    int shown = 0;
    for (int g = 1; g < 16; g++) {
        int members[16], m = 0, wins[16] = {0}, layers = 0, ties = 0;
        for (int i = 0; i < n && m < 16; i++)
            if (rows[i].group == g && rows[i].s.layers) members[m++] = i;
        if (m < 2) continue;
        int total = rows[members[0]].s.layers + rows[members[0]].s.refused;
        for (int l = 0; l < total && l < MAX_LAYERS; l++) {
            int best = -1, tied = 0;
            for (int k = 0; k < m; k++) {
                double db = rows[members[k]].s.lay_db[l];
                if (isnan(db)) continue;
                double top = best < 0 ? -INFINITY : rows[members[best]].s.lay_db[l];
                if (best >= 0 && fabs(db - top) < 0.01) tied = 1;
                else if (db > top) best = k, tied = 0;
            }
            if (best < 0) continue;
            layers++;
            if (tied) ties++;
            else wins[best]++;
        }
        printf("%s- layer by layer, the highest SQNR against f(x) among", shown++ ? "" : "\n");
        for (int k = 0; k < m; k++) {
            const row *r = &rows[members[k]];
            printf("%s %s (%s, %s): %d", k ? "," : "", r->kernel, r->in, r->out, wins[k]);
        }
        printf(" of %d layers\n", layers);
        if (ties) printf("  (%d layers tied)\n", ties);
    }
}

static void print_table(const char *title, const char *units, const row *rows, int n) {
    printf("\n%s — errors in %s\n\n", title, units);
    printf("| kernel | input | output | max abs err | rms err | SQNR dB | worst layer (SQNR dB) | "
           "kernel alone: max abs err, SQNR dB |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (int i = 0; i < n; i++) {
        const row *r = &rows[i];
        const stat *s = &r->s;
        if (!s->layers) {
            printf("| %s | %s | %s | refused | | | | |\n", r->kernel, r->in, r->out);
            continue;
        }
        char db[32], wdb[32], kdb[32], kern[96];
        fmt_db(db, sizeof db, sqnr_db(s->sr, s->se));
        fmt_db(wdb, sizeof wdb, s->worst_db);
        fmt_db(kdb, sizeof kdb, sqnr_db(s->srk, s->sek));
        if (s->has_k) snprintf(kern, sizeof kern, "%.2e, %s", s->max_k, kdb);
        else snprintf(kern, sizeof kern, "—");
        printf("| %s%s | %s | %s | %.2e | %.2e | %s | %s (%s) | %s |\n", r->kernel, s->refused ? " ¹" : "", r->in,
               r->out, s->max_e, sqrt(s->se / (double)s->count), db, s->worst, wdb, kern);
    }
    int notes = 0;
    for (int i = 0; i < n; i++) {
        const stat *s = &rows[i].s;
        if (!s->refused) continue;
        if (!notes++) printf("\n");
        printf("- %s%s, %s input, output %s: its prepare function refused %d of %d layers (first: %s)\n",
               rows[i].kernel, s->layers ? " ¹" : "", rows[i].in, rows[i].out, s->refused, s->refused + s->layers,
               s->why);
    }
    print_winners(rows, n);
    fflush(stdout);
}

/* ---- quantization ------------------------------------------------------------------------------- */

static const int GRID_BITS[3] = {8, 12, 16};
static const char *const GRID_NAME[3] = {"int8 sym", "int12 sym", "int16 sym"};

static int16_t qsym(double x, double S, int qmax) {
    double v = nearbyint(x / S);
    return (int16_t)(v > qmax ? qmax : v < -qmax ? -qmax : v);
}

static double amax_of(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)x[i]));
    return m;
}

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "intnl_error: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

/* A kernel that refuses parameters its own prepare function made, or any other failure here, is a bug:
 * stop with the message rather than print a table with holes. */
static void must(vitq_status st, const char *what) {
    if (!st) return;
    fprintf(stderr, "intnl_error: %s: %s (%s)\n", what, vitq_status_string(st), vitq_last_error());
    exit(1);
}

/* ---- softmax ------------------------------------------------------------------------------------ */

enum { SM_FLOAT, SM_UNIFORM, SM_LOG2, SM_IBERT, SM_SHIFTMAX, SM_LIS };

static int softmax_rows(row *r) {
    int n = 0;
    for (int g = 0; g < 3; g++) r[n++] = mk("float softmax", GRID_NAME[g], "float", SM_FLOAT, g, 0);
    r[n++] = mk("float softmax", "float", "uniform 2^-8", SM_UNIFORM, -1, 8);
    r[n++] = mk("float softmax", "float", "4-bit log2", SM_LOG2, -1, 4);
    for (int g = 0; g < 3; g++) r[n++] = mk("I-BERT softmax", GRID_NAME[g], "M 16 (2^-16)", SM_IBERT, g, 16);
    for (int g = 0; g < 3; g++) r[n++] = mk("I-BERT softmax", GRID_NAME[g], "M 8 (2^-8)", SM_IBERT, g, 8);
    for (int g = 0; g < 3; g++) r[n++] = mk("I-ViT Shiftmax", GRID_NAME[g], "M 16 (2^-15)", SM_SHIFTMAX, g, 16);
    for (int g = 0; g < 3; g++) r[n++] = mk("I-ViT Shiftmax", GRID_NAME[g], "M 8 (2^-7)", SM_SHIFTMAX, g, 8);
    for (int g = 0; g < 3; g++) r[n++] = mk("FQ-ViT Log-Int-Softmax", GRID_NAME[g], "4-bit log2", SM_LIS, g, 4);
    for (int i = 0; i < n; i++) /* I-BERT against Shiftmax at the same input grid and output width */
        if (r[i].kind == SM_IBERT || r[i].kind == SM_SHIFTMAX) r[i].group = 1 + 2 * r[i].grid + (r[i].param == 8);
    return n;
}

/* FQ-ViT's float log2 quantizer of a probability (its formula on round(1/p), the code the integer
 * kernel computes from its integer exps): code q stands for 2^-q, the top code for 0. */
static int log2_code(double p, int bits) {
    int top = (1 << bits) - 1;
    if (!(p > 0) || 1 / p >= 0x1p40) return top;
    double u = nearbyint(1 / p);
    int k = (int)floor(log2(u));
    int q = k + (u - ldexp(1, k) >= ldexp(1, k - 1));
    return q < top ? q : top;
}

static void softmax_layer(const capture *c, row *rows, int nrows) {
    int64_t t = c->width, tt = t * t, mats = (int64_t)(c->used / (size_t)tt);
    double amax = amax_of(c->data, c->used), S[3];
    for (int g = 0; g < 3; g++) S[g] = amax / ((1 << (GRID_BITS[g] - 1)) - 1);
    for (int i = 0; i < nrows; i++) {
        row *r = &rows[i];
        vitq_status st = VITQ_OK;
        if (r->kind == SM_IBERT) st = vitq_i_ibert_softmax_prepare(S[r->grid], r->param, &r->ib, &r->out_scale);
        if (r->kind == SM_SHIFTMAX)
            st = vitq_i_shiftmax_prepare(S[r->grid], r->param, (int32_t)t, &r->sh, &r->out_scale);
        if (r->kind == SM_LIS) st = vitq_i_lis_prepare(S[r->grid], r->param, &r->lis);
        r->ok = st == VITQ_OK;
        if (!r->ok) stat_refuse(&r->s, c->name);
    }
    double *x = xmalloc((size_t)tt * sizeof(double)), *p = xmalloc((size_t)tt * sizeof(double));
    double *xq = xmalloc((size_t)tt * sizeof(double)), *pq[3];
    int16_t *q[3];
    int32_t *out = xmalloc((size_t)tt * sizeof(int32_t));
    uint8_t *codes = xmalloc((size_t)tt);
    for (int g = 0; g < 3; g++) {
        pq[g] = xmalloc((size_t)tt * sizeof(double));
        q[g] = xmalloc((size_t)tt * sizeof(int16_t));
    }
    for (int64_t mi = 0; mi < mats; mi++) { /* one head of one image: t rows of t scores */
        const float *src = c->data + mi * tt;
        for (int64_t i = 0; i < tt; i++) x[i] = src[i];
        for (int64_t r = 0; r < t; r++) vitq_i_softmax_ref(x + r * t, t, p + r * t);
        for (int g = 0; g < 3; g++) {
            int qmax = (1 << (GRID_BITS[g] - 1)) - 1;
            for (int64_t i = 0; i < tt; i++) xq[i] = (q[g][i] = qsym(x[i], S[g], qmax)) * S[g];
            for (int64_t r = 0; r < t; r++) vitq_i_softmax_ref(xq + r * t, t, pq[g] + r * t);
        }
        for (int i = 0; i < nrows; i++) {
            row *r = &rows[i];
            if (!r->ok) continue;
            const double *ref_q = r->grid >= 0 ? pq[r->grid] : NULL;
            switch (r->kind) {
            case SM_FLOAT:
                for (int64_t j = 0; j < tt; j++) stat_add(&r->s, ref_q[j], p[j], NAN);
                break;
            case SM_UNIFORM: {
                double steps = ldexp(1, r->param);
                for (int64_t j = 0; j < tt; j++) stat_add(&r->s, fmin(nearbyint(p[j] * steps), steps - 1) / steps, p[j], NAN);
                break;
            }
            case SM_LOG2:
                for (int64_t j = 0; j < tt; j++) stat_add(&r->s, vitq_i_lis_value(log2_code(p[j], r->param), r->param), p[j], NAN);
                break;
            case SM_IBERT:
            case SM_SHIFTMAX:
                must(r->kind == SM_IBERT ? vitq_i_ibert_softmax(&r->ib, q[r->grid], t, t, out)
                                         : vitq_i_shiftmax(&r->sh, q[r->grid], t, t, out),
                     r->kernel);
                for (int64_t j = 0; j < tt; j++) stat_add(&r->s, out[j] * r->out_scale, p[j], ref_q[j]);
                break;
            case SM_LIS:
                must(vitq_i_lis_softmax(&r->lis, q[r->grid], t, t, codes), r->kernel);
                for (int64_t j = 0; j < tt; j++) stat_add(&r->s, vitq_i_lis_value(codes[j], r->param), p[j], ref_q[j]);
                break;
            }
        }
    }
    for (int i = 0; i < nrows; i++)
        if (rows[i].ok) stat_layer_end(&rows[i].s, c->name);
    for (int g = 0; g < 3; g++) free(pq[g]), free(q[g]);
    free(x), free(p), free(xq), free(out), free(codes);
}

/* ---- GELU --------------------------------------------------------------------------------------- */

enum { G_FLOAT, G_SIGMOID, G_IBERT, G_SHIFT };

static int gelu_rows(row *r) {
    int n = 0;
    for (int g = 0; g < 3; g++) r[n++] = mk("float GELU", GRID_NAME[g], "float", G_FLOAT, g, 0);
    r[n++] = mk("float x·σ(1.702x)", "float", "float", G_SIGMOID, -1, 0);
    for (int g = 0; g < 3; g++) r[n++] = mk("I-BERT i-GELU", GRID_NAME[g], "int32", G_IBERT, g, 0);
    for (int g = 0; g < 3; g++) r[n++] = mk("I-ViT ShiftGELU", GRID_NAME[g], "M 16", G_SHIFT, g, 16);
    for (int g = 0; g < 3; g++) r[n++] = mk("I-ViT ShiftGELU", GRID_NAME[g], "M 8", G_SHIFT, g, 8);
    for (int i = 0; i < n; i++) /* both kernels' outputs are finer than their error: compared by input grid */
        if (r[i].kind == G_IBERT || r[i].kind == G_SHIFT) r[i].group = 1 + r[i].grid;
    return n;
}

static int gelu_tanh_model;

/* The model's GELU, exactly (in double). */
static double gelu_exact(double x) {
    if (!gelu_tanh_model) return vitq_i_gelu_ref(x);
    return 0.5 * x * (1 + tanh(0.7978845608028654 /* sqrt(2 / pi) */ * (x + 0.044715 * x * x * x)));
}

#define GELU_CHUNK 64 /* tokens per kernel call */

static void gelu_layer(const capture *c, row *rows, int nrows) {
    int64_t h = c->width, tokens = (int64_t)(c->used / (size_t)h);
    double amax = amax_of(c->data, c->used), S[3], lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < c->used; i++) {
        double y = gelu_exact(c->data[i]);
        lo = fmin(lo, y), hi = fmax(hi, y);
    }
    double range = hi > lo ? hi - lo : 1; /* errors are reported relative to the layer's output range */
    for (int g = 0; g < 3; g++) S[g] = amax / ((1 << (GRID_BITS[g] - 1)) - 1);
    for (int i = 0; i < nrows; i++) {
        row *r = &rows[i];
        vitq_status st = VITQ_OK;
        if (r->kind == G_IBERT) st = vitq_i_ibert_gelu_prepare(S[r->grid], &r->ig, &r->out_scale);
        if (r->kind == G_SHIFT) st = vitq_i_shiftgelu_prepare(S[r->grid], r->param, &r->sg, &r->out_scale);
        r->ok = st == VITQ_OK;
        if (!r->ok) stat_refuse(&r->s, c->name);
    }
    size_t cap = (size_t)(GELU_CHUNK * h);
    double *y = xmalloc(cap * sizeof(double)), *yq[3];
    int16_t *q[3];
    int32_t *out = xmalloc(cap * sizeof(int32_t));
    for (int g = 0; g < 3; g++) {
        yq[g] = xmalloc(cap * sizeof(double));
        q[g] = xmalloc(cap * sizeof(int16_t));
    }
    for (int64_t first = 0; first < tokens; first += GELU_CHUNK) {
        int64_t rows_now = tokens - first < GELU_CHUNK ? tokens - first : GELU_CHUNK, m = rows_now * h;
        const float *src = c->data + first * h;
        for (int64_t i = 0; i < m; i++) y[i] = gelu_exact(src[i]) / range;
        for (int g = 0; g < 3; g++) {
            int qmax = (1 << (GRID_BITS[g] - 1)) - 1;
            for (int64_t i = 0; i < m; i++) yq[g][i] = gelu_exact((q[g][i] = qsym(src[i], S[g], qmax)) * S[g]) / range;
        }
        for (int i = 0; i < nrows; i++) {
            row *r = &rows[i];
            if (!r->ok) continue;
            switch (r->kind) {
            case G_FLOAT:
                for (int64_t j = 0; j < m; j++) stat_add(&r->s, yq[r->grid][j], y[j], NAN);
                break;
            case G_SIGMOID:
                for (int64_t j = 0; j < m; j++) {
                    double v = src[j];
                    stat_add(&r->s, v / (1 + exp(-1.702 * v)) / range, y[j], NAN);
                }
                break;
            case G_IBERT:
            case G_SHIFT:
                must(r->kind == G_IBERT ? vitq_i_ibert_gelu(&r->ig, q[r->grid], rows_now, h, out)
                                        : vitq_i_shiftgelu(&r->sg, q[r->grid], rows_now, h, out),
                     r->kernel);
                for (int64_t j = 0; j < m; j++) stat_add(&r->s, out[j] * r->out_scale / range, y[j], yq[r->grid][j]);
                break;
            }
        }
    }
    for (int i = 0; i < nrows; i++)
        if (rows[i].ok) stat_layer_end(&rows[i].s, c->name);
    for (int g = 0; g < 3; g++) free(yq[g]), free(q[g]);
    free(y), free(out);
}

/* ---- LayerNorm ---------------------------------------------------------------------------------- */

enum { L_FLOAT, L_OUT, L_IBERT, L_IVIT, L_PTF };
static const char *const LN_GRID[3] = {"int8 sym", "int16 sym", "uint8 PTF"};

static int ln_rows(row *r) {
    int n = 0;
    for (int g = 0; g < 3; g++) r[n++] = mk("float LayerNorm", LN_GRID[g], "float", L_FLOAT, g, 0);
    r[n++] = mk("float LayerNorm", "float", "int8 asym", L_OUT, -1, 8);
    r[n++] = mk("I-BERT LayerNorm", LN_GRID[0], "int8 asym", L_IBERT, 0, 8);
    r[n++] = mk("I-BERT LayerNorm", LN_GRID[1], "int8 asym", L_IBERT, 1, 8);
    r[n++] = mk("I-BERT LayerNorm", LN_GRID[1], "int16 asym", L_IBERT, 1, 16);
    r[n++] = mk("I-ViT I-LayerNorm", LN_GRID[0], "int8 asym", L_IVIT, 0, 8);
    r[n++] = mk("I-ViT I-LayerNorm", LN_GRID[1], "int8 asym", L_IVIT, 1, 8);
    r[n++] = mk("I-ViT I-LayerNorm", LN_GRID[1], "int16 asym", L_IVIT, 1, 16);
    r[n++] = mk("FQ-ViT PTF LayerNorm", LN_GRID[2], "int8 asym", L_PTF, 2, 8);
    for (int i = 0; i < n; i++) /* by input bits (PTF's are 8) and output bits */
        if (r[i].kind >= L_IBERT) r[i].group = (r[i].grid == 1 ? 2 : 0) + (r[i].param == 16 ? 2 : 1);
    return n;
}

/* An asymmetric output grid of `bits` over [lo, hi] (lo <= 0 <= hi for a LayerNorm's outputs). */
static vitq_i_ln_affine out_grid(const vitq_i_layernorm_params *ln, int32_t C, double lo, double hi, int bits) {
    double half = ldexp(1, bits - 1), scale = (hi - lo) / (2 * half - 1);
    vitq_i_ln_affine a = {C, ln->gamma, ln->beta, scale, {0, (int32_t)-half, (int32_t)(half - 1)}};
    a.out.zero = (int32_t)(-half - nearbyint(lo / scale));
    return a;
}

static double ln_code_value(int32_t code, const vitq_i_ln_affine *a) { return (code - a->out.zero) * a->out_scale; }

static void ln_layer(const capture *c, const vitq_i_net *m, row *rows, int nrows) {
    int32_t C = (int32_t)c->width;
    int64_t tokens = (int64_t)(c->used / (size_t)C);
    const vitq_i_layernorm_params *ln = c->ln;
    double eps = m->info.layer_norm_eps, amax = amax_of(c->data, c->used), xlo = INFINITY, xhi = -INFINITY;
    double *x = xmalloc((size_t)C * sizeof(double)), *y = xmalloc((size_t)C * sizeof(double)), *xq = xmalloc((size_t)C * sizeof(double));
    double *yq[3], ylo = INFINITY, yhi = -INFINITY;
    int16_t *q[3];
    for (int g = 0; g < 3; g++) {
        yq[g] = xmalloc((size_t)C * sizeof(double));
        q[g] = xmalloc((size_t)C * sizeof(int16_t));
    }
    int32_t *out = xmalloc((size_t)C * sizeof(int32_t)), *alpha = xmalloc((size_t)C * sizeof(int32_t));
    for (int64_t t = 0; t < tokens; t++) { /* the exact outputs' range: the output grids */
        for (int32_t k = 0; k < C; k++) x[k] = c->data[t * C + k], xlo = fmin(xlo, x[k]), xhi = fmax(xhi, x[k]);
        vitq_i_layernorm_ref(x, C, ln->gamma, ln->beta, eps, y);
        for (int32_t k = 0; k < C; k++) ylo = fmin(ylo, y[k]), yhi = fmax(yhi, y[k]);
    }
    vitq_i_ln_affine out8 = out_grid(ln, C, fmin(ylo, 0), fmax(yhi, 0), 8);
    vitq_i_ln_affine out16 = out_grid(ln, C, fmin(ylo, 0), fmax(yhi, 0), 16);
    double S[2] = {amax / 127, amax / 32767}, s_min = 0;
    int32_t zp = 0;
    must(vitq_i_ptf_alpha(c->data, tokens, C, xlo, xhi, 8, &s_min, &zp, alpha), c->name);
    for (int i = 0; i < nrows; i++) {
        row *r = &rows[i];
        const vitq_i_ln_affine *a = r->param == 16 ? &out16 : &out8;
        vitq_status st = VITQ_OK;
        if (r->kind == L_IBERT || r->kind == L_IVIT)
            st = vitq_i_int_layernorm_prepare(r->kind == L_IBERT ? VITQ_I_LN_IBERT : VITQ_I_LN_IVIT, a, r->lnch, &r->iln);
        if (r->kind == L_PTF) st = vitq_i_ptf_layernorm_prepare(a, alpha, r->ptfch, &r->ptf);
        r->ok = st == VITQ_OK;
        if (!r->ok) stat_refuse(&r->s, c->name);
    }
    for (int64_t t = 0; t < tokens; t++) {
        const float *src = c->data + t * C;
        for (int32_t k = 0; k < C; k++) x[k] = src[k];
        vitq_i_layernorm_ref(x, C, ln->gamma, ln->beta, eps, y);
        for (int g = 0; g < 3; g++) {
            for (int32_t k = 0; k < C; k++) {
                if (g < 2) {
                    q[g][k] = qsym(x[k], S[g], g == 0 ? 127 : 32767);
                    xq[k] = q[g][k] * S[g];
                } else { /* FQ-ViT's input: uint8 codes minus the zero point at scale s_min 2^alpha_c */
                    q[g][k] = vitq_i_ptf_input(src[k], s_min, zp, alpha[k], 8);
                    xq[k] = q[g][k] * ldexp(s_min, alpha[k]);
                }
            }
            vitq_i_layernorm_ref(xq, C, ln->gamma, ln->beta, eps, yq[g]);
        }
        for (int i = 0; i < nrows; i++) {
            row *r = &rows[i];
            if (!r->ok) continue;
            const vitq_i_ln_affine *a = r->param == 16 ? &out16 : &out8;
            switch (r->kind) {
            case L_FLOAT:
                for (int32_t k = 0; k < C; k++) stat_add(&r->s, yq[r->grid][k], y[k], NAN);
                break;
            case L_OUT:
                for (int32_t k = 0; k < C; k++) {
                    double v = nearbyint(y[k] / a->out_scale) + a->out.zero;
                    v = fmin(fmax(v, a->out.min), a->out.max);
                    stat_add(&r->s, ln_code_value((int32_t)v, a), y[k], NAN);
                }
                break;
            default:
                must(r->kind == L_PTF ? vitq_i_ptf_layernorm(&r->ptf, q[r->grid], 1, out)
                                      : vitq_i_int_layernorm(&r->iln, q[r->grid], 1, out),
                     r->kernel);
                for (int32_t k = 0; k < C; k++) stat_add(&r->s, ln_code_value(out[k], a), y[k], yq[r->grid][k]);
                break;
            }
        }
    }
    for (int i = 0; i < nrows; i++)
        if (rows[i].ok) stat_layer_end(&rows[i].s, c->name);
    for (int g = 0; g < 3; g++) free(yq[g]), free(q[g]);
    free(x), free(y), free(xq), free(out), free(alpha);
}

/* ---- driver ------------------------------------------------------------------------------------- */

/* "…/X-images.npy" -> "…/X-labels.npy" when that file exists (as `vitq eval` finds labels). */
static const char *labels_beside(const char *images, char *buf, size_t cap) {
    const char *base = strrchr(images, '/');
    base = base ? base + 1 : images;
    const char *hit = strstr(base, "images");
    if (!hit) return NULL;
    int n = snprintf(buf, cap, "%.*slabels%s", (int)(hit - images), images, hit + 6);
    return n > 0 && (size_t)n < cap && access(buf, R_OK) == 0 ? buf : NULL;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    const char *model_path = argc > 1 ? argv[1] : "../shared/imagenet/deit_tiny_patch16_224";
    const char *images_path = argc > 2 ? argv[2] : "build/imagenet/images.npy";
    char *end = NULL;
    long want = argc > 3 ? strtol(argv[3], &end, 10) : 16;
    if (argc > 4 || want < 1 || (end && *end)) {
        fprintf(stderr, "usage: intnl_error [MODEL [IMAGES.npy [N >= 1]]]\n");
        return 2;
    }
    double t0 = now_seconds();
    vitq_model_options mo;
    vitq_model_options_init(&mo);
    vitq_model *model = NULL;
    must(vitq_model_load_file(model_path, &mo, &model), model_path);
    vitq_i_net *net = model->net;
    if (net->info.arch == VITQ_ARCH_SWIN) {
        fprintf(stderr, "intnl_error: %s is a Swin model; only ViT / DeiT LayerNorms are mapped here\n", model_path);
        return 2;
    }
    gelu_tanh_model = net->info.gelu == VITQ_GELU_TANH;
    char lb[4096];
    const char *labels = labels_beside(images_path, lb, sizeof lb);
    vitq_dataset *ds = NULL;
    must(vitq_dataset_load_file(images_path, labels, NULL, &ds), images_path);
    vitq_dataset_info di;
    vitq_dataset_info_init(&di);
    must(vitq_dataset_get_info(ds, &di), images_path);
    size_t n = di.count < (uint64_t)want ? (size_t)di.count : (size_t)want;
    size_t per_image = (size_t)net->info.in_channels * (size_t)net->info.image_size * (size_t)net->info.image_size;
    float *input = xmalloc(n * per_image * sizeof(float));
    must(vitq_i_dataset_images(net, ds, 0, n, input), images_path);

    /* the points: every softmax, GELU and LayerNorm input */
    vitq_i_point_list list;
    must(vitq_i_points_build(&net->alloc, net, &list), "points");
    capture_set cs = {xmalloc((size_t)list.count * sizeof(capture)), 0, xmalloc((size_t)list.count * sizeof(int))};
    unsigned char *active = calloc((size_t)list.count, 1);
    if (!active) must(vitq_i_oom("active points", (size_t)list.count), "points");
    for (int p = 0; p < list.count; p++) {
        const vitq_i_point_desc *d = &list.points[p];
        int fam = d->role == VITQ_ROLE_SOFTMAX_INPUT ? FAM_SOFTMAX
                  : d->role == VITQ_ROLE_GELU_INPUT  ? FAM_GELU
                  : d->role == VITQ_ROLE_LAYERNORM_INPUT ? FAM_LN
                                                         : -1;
        const vitq_i_layernorm_params *ln = fam == FAM_LN ? ln_of(net, d->name) : NULL;
        cs.of_point[p] = -1;
        if (fam < 0 || d->kind != VITQ_POINT_ACTIVATION) continue;
        if (fam == FAM_LN && !ln) {
            fprintf(stderr, "intnl_error: %s: no LayerNorm mapped to this point; skipped\n", d->name);
            continue;
        }
        capture *c = &cs.caps[cs.count];
        memset(c, 0, sizeof *c);
        snprintf(c->name, sizeof c->name, "%s", d->name);
        c->fam = fam, c->ln = ln;
        cs.of_point[p] = cs.count++;
        active[p] = 1;
    }
    vitq_i_sites sites;
    must(vitq_i_sites_filter(&net->alloc, net, &list, active, &sites), "sites");
    vitq_i_taps taps = {.sites = &sites, .apply = capture_tap, .ctx = &cs};
    float *logits = xmalloc(n * (size_t)net->info.num_classes * sizeof(float));
    must(vitq_i_net_forward(net, input, n, logits, &taps), "forward");
    double t_fwd = now_seconds() - t0;

    char date[32];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d", localtime(&now));
    printf("intnl_error %s %s %zu (%s)\n", model_path, images_path, n, date);
    if (labels) {
        int correct = 0;
        for (size_t i = 0; i < n; i++) {
            const float *l = logits + i * (size_t)net->info.num_classes;
            int best = 0;
            for (int k = 1; k < net->info.num_classes; k++) best = l[k] > l[best] ? k : best;
            int32_t label = -1;
            must(vitq_dataset_label(ds, i, &label), labels);
            correct += best == label;
        }
        printf("float top-1 of the captured pass: %d / %zu\n", correct, n);
    }
    int counts[NUM_FAM] = {0};
    for (int i = 0; i < cs.count; i++) counts[cs.caps[i].fam]++;
    printf("captured %d softmax, %d GELU and %d LayerNorm inputs\n", counts[FAM_SOFTMAX], counts[FAM_GELU],
           counts[FAM_LN]);

    row sm[32], ge[32], lnr[32];
    int nsm = softmax_rows(sm), nge = gelu_rows(ge), nln = ln_rows(lnr);
    for (int i = 0; i < nln; i++) {
        lnr[i].lnch = xmalloc(VITQ_I_INTNL_MAX_N * sizeof(vitq_i_ln_channel));
        lnr[i].ptfch = xmalloc(VITQ_I_INTNL_MAX_N * sizeof(vitq_i_ptf_channel));
    }
    for (int i = 0; i < cs.count; i++) {
        capture *c = &cs.caps[i];
        if (!c->used) continue;
        if (c->fam == FAM_SOFTMAX) softmax_layer(c, sm, nsm);
        if (c->fam == FAM_GELU) gelu_layer(c, ge, nge);
        if (c->fam == FAM_LN) {
            if (c->width > VITQ_I_INTNL_MAX_N) {
                fprintf(stderr, "intnl_error: %s: %lld channels, more than the kernels take\n", c->name,
                        (long long)c->width);
                return 1;
            }
            ln_layer(c, net, lnr, nln);
        }
        free(c->data);
        c->data = NULL;
    }
    print_table("Softmax", "probability", sm, nsm);
    print_table("GELU", "output units / the layer's output range (max - min of GELU(x))", ge, nge);
    print_table("LayerNorm", "output units (gamma, beta applied)", lnr, nln);
    fprintf(stderr, "forward pass %.1f s, total %.1f s\n", t_fwd, now_seconds() - t0);

    for (int i = 0; i < nln; i++) free(lnr[i].lnch), free(lnr[i].ptfch);
    free(logits), free(active), free(cs.caps), free(cs.of_point), free(input);
    vitq_i_sites_free(&net->alloc, &sites);
    vitq_i_points_free(&net->alloc, &list);
    vitq_dataset_free(ds);
    vitq_model_free(model);
    return 0;
}
