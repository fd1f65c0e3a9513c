/* The straight-through estimator through the built-in quantizers (src/train/ste.h).
 *
 * A quantizer is a step function: its true derivative is 0 almost everywhere, so finite differences of
 * the real fake quantization cannot check an STE. What can be checked:
 *  - the pass-through interval [lo, hi] of each scheme, written here from the schemes' documented grids,
 *    is where the quantizer really clips: beyond it the instance's own fake quantization is constant (its
 *    true derivative there is 0, as the STE says) and equals the clip value, and inside it the output
 *    tracks x (within the grid's spacing);
 *  - the backward equals central differences of the surrogate (round replaced by the identity, the clamp
 *    kept: S(x) = x inside, the clip value outside) at points away from the interval's ends. */
#include "harness.h"
#include "quant/registry.h"
#include "quant/schemes.h"
#include "quant/view.h"
#include "test_random.h"
#include "train/ste.h"

static vitq_allocator alloc;

static int make(vitq_i_instance *inst, const vitq_scheme *scheme, int bits, int symmetric, int gran, int64_t channels) {
    vitq_point_config c = {.struct_size = sizeof c, .name = "test.point", .kind = VITQ_POINT_ACTIVATION, .role = 0,
                           .bits = bits, .granularity = gran, .symmetric = symmetric, .channels = channels,
                           .options = NULL, .seed = 1};
    vitq_status st = vitq_i_config_groups(&c, 0);
    if (!st) st = vitq_i_instance_create(inst, &alloc, scheme, &c);
    CHECK_STATUS(st, VITQ_OK);
    return st == VITQ_OK;
}

static void set(vitq_i_instance *inst, const char *name, const float *v, int64_t n) {
    CHECK_STATUS(inst->scheme.set_param(inst->state, name, v, n), VITQ_OK);
}

static float fq1(vitq_i_instance *inst, float x) {
    vitq_tensor_view v = vitq_i_view_rows(&x, 1, 1);
    CHECK_STATUS(inst->scheme.fake_quant(inst->state, &v), VITQ_OK);
    return x;
}

/* The checks of the header comment on a one-channel instance with the expected interval [lo, hi]; `zero_below`:
 * the clip value below lo is 0 (log grids), else lo itself. `spacing`: the largest gap between levels. */
static void check_point(vitq_i_instance *inst, double lo, double hi, int zero_below, double spacing) {
    vitq_i_ste s;
    CHECK_STATUS(vitq_i_ste_from_instance(&s, &alloc, inst), VITQ_OK);
    if (!s.lo) return;
    CHECK_NEAR(s.lo[0], lo, 1e-6 * fabs(lo) + 1e-30);
    CHECK_NEAR(s.hi[0], hi, 1e-6 * fabs(hi));
    float top = fq1(inst, (float)hi), bottom = zero_below ? 0.0f : fq1(inst, (float)lo);
    CHECK_NEAR(top, hi, 1e-6 * fabs(hi));
    if (!zero_below) CHECK_NEAR(bottom, lo, 1e-6 * fabs(lo));
    double span = hi - lo;
    int bad = 0;
    for (int i = 1; i <= 50; i++) {
        float above = (float)(hi + span * 0.06 * i), below = (float)(lo - span * 0.06 * i);
        bad += fq1(inst, above) != top;
        bad += fq1(inst, below) != bottom;
        float in = (float)(lo + span * (0.01 + 0.98 * urand()));
        bad += fabs((double)fq1(inst, in) - in) > spacing;
    }
    if (zero_below) {
        /* just above lo the value is the smallest level, not 0: lo is a real jump of the log grid */
        bad += fq1(inst, (float)(lo * 1.001)) == 0.0f;
        bad += fq1(inst, (float)(lo * 0.999)) != 0.0f;
    }
    CHECK(bad == 0);
    /* backward against the surrogate's central differences, away from lo and hi */
    enum { N = 64 };
    float x[N], dy[N], dx[N];
    for (int i = 0; i < N; i++) {
        double t;
        do t = -0.5 + 2.0 * urand(); while (fabs(t) < 0.02 || fabs(t - 1.0) < 0.02);
        x[i] = (float)(lo + span * t);
        dy[i] = (float)gauss();
    }
    vitq_tensor_view v = vitq_i_view_rows(x, 1, N);
    CHECK_STATUS(vitq_i_ste_backward(&s, &v, dy, dx, 0, "test"), VITQ_OK);
    double h = span * 1e-4;
    bad = 0;
    for (int i = 0; i < N; i++) {
        double xp = x[i] + h, xm = x[i] - h;
        double sp = xp > hi ? hi : xp < lo ? (zero_below ? 0.0 : lo) : xp;
        double sm = xm > hi ? hi : xm < lo ? (zero_below ? 0.0 : lo) : xm;
        double fd = (sp - sm) / (2 * h);
        bad += fabs((double)dx[i] - dy[i] * fd) > 1e-6 * (1 + fabs(dy[i]));
    }
    CHECK(bad == 0);
    vitq_i_ste_free(&s);
}

static void test_uniform_schemes(void) {
    const vitq_scheme *schemes[3] = {&vitq_i_scheme_minmax, &vitq_i_scheme_percentile, &vitq_i_scheme_omse};
    for (int k = 0; k < 3; k++)
        for (int bits = 2; bits <= 8; bits += 2)
            for (int sym = 0; sym <= 1; sym++) {
                vitq_i_instance inst;
                if (!make(&inst, schemes[k], bits, sym, VITQ_GRAN_TENSOR, 1)) continue;
                float s = 0.037f, z = sym ? 0.0f : (float)((1 << bits) / 3);
                set(&inst, "scale", &s, 1);
                set(&inst, "zero_point", &z, 1);
                vitq_i_uniform g = vitq_i_uniform_grid(bits, sym);
                check_point(&inst, ((double)g.qmin - z) * s, ((double)g.qmax - z) * s, 0, 0.5 * s * (1 + 1e-5));
                vitq_i_instance_destroy(&inst);
            }
}

static void test_twin_gelu(void) {
    for (int bits = 3; bits <= 8; bits += 5) {
        vitq_i_instance inst;
        if (!make(&inst, &vitq_i_scheme_twin_gelu, bits, 1, VITQ_GRAN_TENSOR, 1)) continue;
        float dpos = 0.05f;
        set(&inst, "scale", &dpos, 1);
        int n = 1 << (bits - 1);
        double dneg = 0.16997124 / n;
        check_point(&inst, -n * dneg, (n - 1) * (double)dpos, 0, 0.5 * fmax(dpos, dneg) * (1 + 1e-5));
        vitq_i_instance_destroy(&inst);
    }
}

static void test_twin_softmax(void) {
    vitq_i_instance inst;
    if (!make(&inst, &vitq_i_scheme_twin_softmax, 4, 0, VITQ_GRAN_TENSOR, 1)) return;
    float split = 0.125f;
    set(&inst, "split", &split, 1);
    check_point(&inst, 0.0, 1.0, 0, 0.5 / 7 * (1 + 1e-5)); /* high range step 1/(n - 1), n = 8 */
    vitq_i_instance_destroy(&inst);
}

static void test_log_grids(void) {
    for (int bits = 3; bits <= 4; bits++) {
        double levels = (double)(1 << bits);
        vitq_i_instance inst;
        if (make(&inst, &vitq_i_scheme_log2, bits, 0, VITQ_GRAN_TENSOR, 1)) {
            float sc = 0.8f;
            set(&inst, "scale", &sc, 1);
            /* levels s 2^-q: a value is within a factor sqrt 2 of its level, so within (sqrt 2 - 1) s of it */
            check_point(&inst, sc * exp2(-(levels - 1.5)), sc, 1, (sqrt(2.0) - 1) * sc);
            vitq_i_instance_destroy(&inst);
        }
        if (make(&inst, &vitq_i_scheme_log_sqrt2, bits, 0, VITQ_GRAN_TENSOR, 1)) {
            float sc = 0.6f;
            set(&inst, "scale", &sc, 1);
            check_point(&inst, sc * exp2(-(levels - 1.5) / 2), sc, 1, (pow(2.0, 0.25) - 1) * sc);
            vitq_i_instance_destroy(&inst);
        }
    }
    /* at 8 bits the lowest level s 2^-254.5 is below any float: the interval starts at the smallest positive
     * float, so 0 itself (which the grid sends to its zero code) passes nothing */
    vitq_i_instance inst;
    if (make(&inst, &vitq_i_scheme_log2, 8, 0, VITQ_GRAN_TENSOR, 1)) {
        float sc = 1.0f, x[2] = {0.0f, 1e-30f}, dy[2] = {1.0f, 1.0f}, dx[2];
        set(&inst, "scale", &sc, 1);
        vitq_i_ste s;
        CHECK_STATUS(vitq_i_ste_from_instance(&s, &alloc, &inst), VITQ_OK);
        CHECK(s.lo[0] > 0.0f);
        vitq_tensor_view v = vitq_i_view_rows(x, 1, 2);
        CHECK_STATUS(vitq_i_ste_backward(&s, &v, dy, dx, 0, "test"), VITQ_OK);
        CHECK(dx[0] == 0.0f && dx[1] == 1.0f);
        vitq_i_ste_free(&s);
        vitq_i_instance_destroy(&inst);
    }
}

static void test_mpq(void) {
    vitq_i_instance inst;
    if (!make(&inst, &vitq_i_scheme_mpq, 4, 0, VITQ_GRAN_TENSOR, 1)) return;
    float lower = 0.01f, upper = 0.9f;
    set(&inst, "lower", &lower, 1);
    set(&inst, "upper", &upper, 1);
    /* the largest gap of the power grid is its top one: u (1 - (14/15)^p), p = ln(u/l) / ln 15 */
    double p = log(upper / lower) / log(15.0), gap = upper * (1 - pow(14.0 / 15.0, p));
    check_point(&inst, 0.0, upper, 0, 0.5 * gap * (1 + 1e-5));
    vitq_i_instance_destroy(&inst);
}

/* Per-channel groups, a view with gaps between its slices, in place and accumulating. */
static void test_per_channel_layout(void) {
    enum { OUTER = 3, CH = 4, INNER = 5, STRIDE = CH * INNER + 3 };
    vitq_i_uniform g = vitq_i_uniform_grid(4, 1);
    float scale[2] = {0.1f, 0.5f}, zero[2] = {0, 0};
    vitq_i_ste s;
    CHECK_STATUS(vitq_i_ste_uniform(&s, &alloc, &g, scale, zero, 2, 2), VITQ_OK); /* channels 0-1, 2-3 */
    float x[OUTER * STRIDE], dy[OUTER * STRIDE], dx[OUTER * STRIDE];
    for (int i = 0; i < OUTER * STRIDE; i++) x[i] = (float)(2.0 * gauss()), dy[i] = (float)gauss(), dx[i] = -7.0f;
    vitq_tensor_view v = {sizeof v, x, OUTER, CH, INNER, STRIDE};
    CHECK_STATUS(vitq_i_ste_backward(&s, &v, dy, dx, 0, "test"), VITQ_OK);
    int bad = 0, passed = 0, stopped = 0;
    for (int o = 0; o < OUTER; o++)
        for (int i = 0; i < STRIDE; i++) {
            int at = o * STRIDE + i;
            if (i >= CH * INNER) {
                bad += dx[at] != -7.0f; /* the gap is not touched */
                continue;
            }
            float sc = scale[(i / INNER) / 2];
            int in = x[at] >= -8 * sc && x[at] <= 7 * sc;
            bad += dx[at] != (in ? dy[at] : 0.0f);
            if (in) passed++;
            else stopped++;
        }
    CHECK(bad == 0 && passed > 10 && stopped > 5);
    float acc[OUTER * STRIDE];
    memcpy(acc, dx, sizeof acc);
    CHECK_STATUS(vitq_i_ste_backward(&s, &v, dy, acc, 1, "test"), VITQ_OK);
    for (int o = 0; o < OUTER; o++)
        for (int i = 0; i < CH * INNER; i++) CHECK(acc[o * STRIDE + i] == 2.0f * dx[o * STRIDE + i]);
    /* in place: dx is dy */
    float inplace[OUTER * STRIDE];
    memcpy(inplace, dy, sizeof inplace);
    CHECK_STATUS(vitq_i_ste_backward(&s, &v, inplace, inplace, 0, "test"), VITQ_OK);
    for (int o = 0; o < OUTER; o++)
        for (int i = 0; i < CH * INNER; i++) CHECK(inplace[o * STRIDE + i] == dx[o * STRIDE + i]);
    vitq_tensor_view wrong = v;
    wrong.channels = 3;
    CHECK_STATUS(vitq_i_ste_backward(&s, &wrong, dy, dx, 0, "test.point"), VITQ_ERR_SHAPE);
    vitq_i_ste_free(&s);

    /* an instance with per-channel parameters gives the same intervals */
    vitq_i_instance inst;
    if (make(&inst, &vitq_i_scheme_minmax, 4, 1, VITQ_GRAN_CHANNEL, 2)) {
        set(&inst, "scale", scale, 2);
        set(&inst, "zero_point", zero, 2);
        CHECK_STATUS(vitq_i_ste_from_instance(&s, &alloc, &inst), VITQ_OK);
        CHECK(s.groups == 2 && s.lo[1] == -8 * 0.5f && s.hi[0] == 7 * 0.1f);
        vitq_i_ste_free(&s);
        vitq_i_instance_destroy(&inst);
    }
}

static vitq_status plugin_fake_quant(void *state, const vitq_tensor_view *x) {
    (void)state, (void)x;
    return VITQ_OK;
}

static void test_refusals(void) {
    vitq_i_instance inst;
    vitq_i_ste s;
    if (!make(&inst, &vitq_i_scheme_log2, 4, 0, VITQ_GRAN_TENSOR, 1)) return;
    /* parameters not known yet: the instance's own error */
    CHECK(vitq_i_ste_from_instance(&s, &alloc, &inst) != VITQ_OK);
    float sc = 1.0f;
    set(&inst, "scale", &sc, 1);
    /* a scheme the library does not know (a host's plugin) */
    vitq_i_instance other = inst;
    other.scheme.fake_quant = plugin_fake_quant;
    other.scheme.name = "plugin";
    CHECK_STATUS(vitq_i_ste_from_instance(&s, &alloc, &other), VITQ_ERR_UNSUPPORTED);
    CHECK(strstr(vitq_last_error(), "plugin") != NULL && strstr(vitq_last_error(), "test.point") != NULL);
    vitq_i_instance_destroy(&inst);
    vitq_i_uniform g = vitq_i_uniform_grid(4, 1);
    CHECK_STATUS(vitq_i_ste_uniform(&s, &alloc, &g, &sc, &sc, 0, 1), VITQ_ERR_INVALID_ARGUMENT);
}

int main(void) {
    if (vitq_i_allocator_resolve(NULL, &alloc) != VITQ_OK) return 1;
    RUN(test_uniform_schemes);
    RUN(test_twin_gelu);
    RUN(test_twin_softmax);
    RUN(test_log_grids);
    RUN(test_mpq);
    RUN(test_per_channel_layout);
    RUN(test_refusals);
    HARNESS_EXIT();
}
